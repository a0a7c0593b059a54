//! Remote delivery against scripted peers on loopback (the SMTP client's
//! test peer) with a mock DNS.

use crate::deliver::{Message, Outcome, Remote};
use crate::dns::Mx;
use crate::dns::mock::MockDns;
use crate::settings::{Settings, load_credentials};
use crate::tls::TlsClients;
use facteur_config::TlsPolicy;
use facteur_smtp_client::testing::{standard, tcp_peer};
use facteur_smtp_client::{Opener, Timeouts};
use facteur_spool::{Envelope, Recipient};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

fn short() -> Timeouts {
    Timeouts::uniform(Duration::from_millis(300))
}

fn settings(port: u16) -> Settings {
    Settings {
        helo_name: "client.test".into(),
        relayhost: None,
        destinations: BTreeMap::new(),
        tls_policy: TlsPolicy::May,
        smtp_port: port,
        timeouts: short(),
        max_recipients: 100,
        failure_limit: 2,
        backoff: Duration::from_secs(60),
        reuse: Duration::from_secs(0),
    }
}

fn tls() -> TlsClients {
    TlsClients::new(std::path::Path::new("/nonexistent/ca.pem")).unwrap()
}

/// An opener of `body`, as qmgr gives one for a queued message.
fn opener(body: &'static [u8]) -> Opener {
    Arc::new(move || Ok(Box::new(std::io::Cursor::new(body)) as Box<dyn std::io::Read + Send>))
}

#[tokio::test]
async fn size_smtputf8_null_mx_next_mx_and_backoff() {
    let port = tcp_peer(b"220 hi\r\n", standard).await;
    let mut dns = MockDns::default();
    let mx = |p, e: &str| Mx {
        preference: p,
        exchange: e.into(),
    };
    // The preferred MX greets with 421 (next one), the second works.
    dns.mx.insert(
        "x.test.".into(),
        Ok(vec![mx(20, "good.x.test"), mx(10, "busy.x.test")]),
    );
    dns.addrs
        .insert("good.x.test.".into(), vec!["127.0.0.1".parse().unwrap()]);
    dns.addrs
        .insert("busy.x.test.".into(), vec!["127.0.0.5".parse().unwrap()]);
    dns.mx.insert("null.test.".into(), Ok(vec![mx(0, "")]));
    dns.mx
        .insert("down.test.".into(), Ok(vec![mx(10, "nothing.down.test")]));
    dns.addrs.insert(
        "nothing.down.test.".into(),
        vec!["127.0.0.1".parse().unwrap()],
    );
    let busy = tokio::net::TcpListener::bind(("127.0.0.5", port)).await;
    if let Ok(l) = busy {
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let _ = s.write_all(b"421 4.3.2 busy\r\n").await;
            }
        });
    }
    let mut st = settings(port);
    st.destinations
        .insert("down.test".into(), (None, Some(TlsPolicy::Encrypt)));
    let remote = Remote::new(Arc::new(dns), tls(), st, Ok(Default::default()), 4, 2);

    let env = Envelope {
        sender: "s@y.test".into(),
        recipients: vec![Recipient::new("a@x.test"), Recipient::new("b@x.test")],
        ..Envelope::default()
    };
    let open = opener(b"Subject: t\r\n\r\nhi\r\n");
    let msg = |env, size| Message {
        id: "Q1",
        env,
        size,
        open: &open,
    };
    let out = remote.deliver(msg(&env, 20), "x.test", &[0, 1]).await;
    assert!(
        out.iter()
            .all(|o| matches!(o, Outcome::Reply(r) if r.code == 250)),
        "{out:?}"
    );
    // Bigger than the peer's SIZE 1000: bounced without sending.
    let out = remote.deliver(msg(&env, 5000), "x.test", &[0]).await;
    assert!(
        matches!(&out[0], Outcome::Perm(t) if t.starts_with("552 5.3.4")),
        "{out:?}"
    );
    // SMTPUTF8 needed, not offered (RFC 6531 §3.2): bounced.
    let mut utf = env.clone();
    utf.smtputf8 = true;
    let out = remote.deliver(msg(&utf, 20), "x.test", &[0]).await;
    assert!(
        matches!(&out[0], Outcome::Perm(t) if t.starts_with("553 5.6.7")),
        "{out:?}"
    );
    // Null MX: bounced at once.
    let out = remote.deliver(msg(&env, 20), "null.test", &[0]).await;
    assert!(
        matches!(&out[0], Outcome::Perm(t) if t.contains("5.1.10")),
        "{out:?}"
    );
    // `encrypt` and a peer without STARTTLS: deferred; twice, and the
    // destination is backed off (failure_limit 2).
    for _ in 0..2 {
        let out = remote.deliver(msg(&env, 20), "down.test", &[0]).await;
        assert!(
            matches!(&out[0], Outcome::Temp(t) if t.starts_with("4.7.4")),
            "{out:?}"
        );
    }
    let out = remote.deliver(msg(&env, 20), "down.test", &[0]).await;
    assert!(
        matches!(&out[0], Outcome::Temp(t) if t.contains("backed off")),
        "{out:?}"
    );
    remote.clear_backoff(None);
    let out = remote.deliver(msg(&env, 20), "down.test", &[0]).await;
    assert!(
        matches!(&out[0], Outcome::Temp(t) if t.starts_with("4.7.4")),
        "{out:?}"
    );
}

#[test]
fn credentials_file_readable_by_others_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("pw");
    std::fs::write(&p, "[relay.test]:587 user secret\n# comment\n").unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = load_credentials(&p).unwrap_err();
    assert!(e.contains("0644") && e.contains("refusing"), "{e}");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = load_credentials(&p).unwrap();
    assert_eq!(
        c.get("[relay.test]:587"),
        Some(&("user".to_string(), "secret".to_string()))
    );
    std::fs::write(&p, "too few\n").unwrap();
    assert!(load_credentials(&p).is_err());
}
