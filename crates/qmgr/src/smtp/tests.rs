//! The SMTP client against scripted in-memory peers (transcripts), and
//! remote delivery against scripted peers on loopback with a mock DNS.

use super::deliver::{Message, Outcome, Remote, Settings};
use super::dns::Mx;
use super::dns::mock::MockDns;
use super::session::{BoxIo, Session, SmtpError, Timeouts, Txn, TxnRcpt};
use super::tls::TlsClients;
use crate::client::MessageSource;
use facteur_config::TlsPolicy;
use facteur_smtp_codec::client::MailParams;
use facteur_spool::{Envelope, QueueName, Recipient, Spool};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

fn short() -> Timeouts {
    let s = Duration::from_millis(300);
    Timeouts {
        connect: s,
        greeting: s,
        command: s,
        data_init: s,
        data_block: s,
        data_done: s,
    }
}

/// What the scripted peer does with one command line (or, in DATA, with
/// the whole message: the line is `<DATA>` + its bytes).
enum Act {
    Say(&'static str),
    Silent,
    Close,
}

/// A peer: sends `greeting`, then answers each line with `f`. Records
/// every line (and in DATA the message) in `log`.
async fn run_peer<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    greeting: &'static [u8],
    log: Arc<Mutex<Vec<String>>>,
    mut f: impl FnMut(&str) -> Act,
) {
    let (r, mut w) = tokio::io::split(io);
    let mut r = BufReader::new(r);
    if w.write_all(greeting).await.is_err() {
        return;
    }
    let mut in_data = false;
    let mut data = String::new();
    loop {
        let mut line = String::new();
        match r.read_line(&mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        if in_data {
            if line == ".\r\n" {
                in_data = false;
                line = format!("<DATA>{data}");
                data.clear();
            } else {
                data.push_str(&line);
                continue;
            }
        } else if let Some(n) = line.strip_prefix("BDAT ") {
            let n: usize = n.split_whitespace().next().unwrap_or("0").parse().unwrap();
            let mut b = vec![0u8; n];
            r.read_exact(&mut b).await.unwrap();
            line = format!("{}<{}>", line.trim_end(), String::from_utf8_lossy(&b));
        }
        log.lock().unwrap().push(line.trim_end().to_string());
        match f(line.trim_end()) {
            Act::Say(s) => {
                if line.starts_with("DATA") && s.contains("354 ") {
                    in_data = true;
                }
                if w.write_all(s.as_bytes()).await.is_err() {
                    return;
                }
            }
            Act::Silent => {}
            Act::Close => return,
        }
    }
}

const EHLO_ALL: &str =
    "250-peer.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 DSN\r\n";

/// The usual answers, for a peer without special behaviour.
fn standard(l: &str) -> Act {
    match l.split(' ').next().unwrap_or("") {
        "EHLO" => Act::Say(EHLO_ALL),
        "MAIL" | "RSET" => Act::Say("250 2.0.0 ok\r\n"),
        "RCPT" => Act::Say("250 2.1.5 ok\r\n"),
        "DATA" => Act::Say("354 go\r\n"),
        "QUIT" => Act::Say("221 bye\r\n"),
        _ if l.starts_with("<DATA>") => Act::Say("250 2.0.0 queued\r\n"),
        _ => Act::Say("502 5.5.2 no\r\n"),
    }
}

fn pipe() -> (BoxIo, tokio::io::DuplexStream) {
    let (a, b) = tokio::io::duplex(1 << 16);
    (Box::new(a), b)
}

fn message(bytes: &'static [u8]) -> MessageSource {
    let (tx, rx) = tokio::sync::mpsc::channel(2);
    tokio::spawn(async move {
        let _ = tx.send(Ok(bytes.to_vec())).await;
    });
    rx
}

fn rcpts(a: &[&str]) -> Vec<TxnRcpt> {
    a.iter()
        .map(|a| TxnRcpt {
            address: a.to_string(),
            notify: Some("FAILURE".into()),
            orcpt: Some(format!("rfc822;{a}")),
        })
        .collect()
}

#[tokio::test]
async fn one_of_three_refused_one_deferred_pipelined_in_one_batch() {
    let (io, peer) = pipe();
    let log = Arc::new(Mutex::new(Vec::new()));
    let l2 = Arc::clone(&log);
    let mut pending: Vec<&'static str> = Vec::new();
    tokio::spawn(run_peer(peer, b"220 peer.test ESMTP\r\n", l2, move |l| {
        // Pipelining: answer nothing until DATA arrives, then everything in
        // order. A client that waited for each reply would time out here.
        if l.starts_with("MAIL") {
            pending = vec!["250 2.1.0 ok\r\n"];
            return Act::Silent;
        }
        if l.starts_with("RCPT") {
            pending.push(if l.contains("<b@") {
                "550 5.1.1 no such user\r\n"
            } else if l.contains("<c@") {
                "451 4.2.0 later\r\n"
            } else {
                "250 2.1.5 ok\r\n"
            });
            return Act::Silent;
        }
        if l == "DATA" {
            pending.push("354 go\r\n");
            let all: String = pending.concat();
            return Act::Say(Box::leak(all.into_boxed_str()));
        }
        standard(l)
    }));
    let mut s = Session::start(io, "client.test", short()).await.unwrap();
    assert!(s.ext.pipelining && s.ext.dsn && !s.tls);
    let r = rcpts(&["a@x.test", "b@x.test", "c@x.test"]);
    let txn = Txn {
        sender: "s@y.test",
        params: MailParams {
            envid: Some("E1"),
            ret_hdrs: Some(true),
            ..MailParams::default()
        },
        rcpts: &r,
    };
    let out = s
        .send(&txn, message(b"Subject: x\r\n\r\n.dot\r\nend\r\n"))
        .await;
    assert!(out.error.is_none(), "{:?}", out.error);
    let codes: Vec<u16> = out
        .replies
        .iter()
        .map(|r| r.as_ref().unwrap().code)
        .collect();
    assert_eq!(codes, vec![250, 550, 451]);
    let log = log.lock().unwrap().clone();
    assert_eq!(log[1], "MAIL FROM:<s@y.test> RET=HDRS ENVID=E1");
    assert_eq!(
        log[2],
        "RCPT TO:<a@x.test> NOTIFY=FAILURE ORCPT=rfc822;a@x.test"
    );
    assert_eq!(log[5], "DATA");
    // Dot-stuffed on the wire.
    assert_eq!(log[6], "<DATA>Subject: x\r\n\r\n..dot\r\nend"); // (trailing CRLF trimmed by the log)
    // A second message on the same connection, after RSET.
    s.rset().await.unwrap();
    let r = rcpts(&["a@x.test"]);
    let txn = Txn {
        sender: "",
        params: MailParams::default(),
        rcpts: &r,
    };
    let out = s.send(&txn, message(b"hi\r\n")).await;
    assert_eq!(out.replies[0].as_ref().unwrap().code, 250);
    s.quit().await;
}

#[tokio::test]
async fn reply_before_greeting_and_talk_before_ehlo_are_refused() {
    let (io, peer) = pipe();
    let log = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(run_peer(
        peer,
        b"250 not a greeting\r\n",
        log.clone(),
        standard,
    ));
    let e = Session::start(io, "c", short()).await.unwrap_err();
    assert!(matches!(e, SmtpError::Refused("the greeting", _)), "{e}");
    // A greeting with an unsolicited reply behind it (pipelining desync).
    let (io, peer) = pipe();
    tokio::spawn(run_peer(peer, b"220 hi\r\n250 surprise\r\n", log, standard));
    let e = Session::start(io, "c", short()).await.unwrap_err();
    assert!(matches!(e, SmtpError::Protocol(_)), "{e}");
}

#[tokio::test]
async fn ten_thousand_line_reply_is_refused_with_bounded_memory() {
    let (io, mut peer) = pipe();
    tokio::spawn(async move {
        peer.write_all(b"220 hi\r\n").await.unwrap();
        let mut b = [0u8; 64];
        let _ = peer.read(&mut b).await;
        for _ in 0..10_000 {
            if peer
                .write_all(b"250-xxxxxxxxxxxxxxxxxxxxxxxx\r\n")
                .await
                .is_err()
            {
                return; // the client hung up: good
            }
        }
        let _ = peer.write_all(b"250 end\r\n").await;
    });
    let e = Session::start(io, "c", short()).await.unwrap_err();
    assert!(
        matches!(e, SmtpError::Reply(crate::reply::ReplyError::TooManyLines)),
        "{e}"
    );
}

#[tokio::test]
async fn a_peer_that_hangs_times_out_at_each_stage() {
    // No greeting at all.
    let (io, _peer) = pipe();
    let t0 = std::time::Instant::now();
    let e = Session::start(io, "c", short()).await.unwrap_err();
    assert!(matches!(e, SmtpError::Timeout("the greeting")), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(3));
    // Silent after the final dot: the recipients get no reply (deferred).
    let (io, peer) = pipe();
    tokio::spawn(run_peer(peer, b"220 hi\r\n", Default::default(), |l| {
        if l.starts_with("<DATA>") {
            Act::Silent
        } else {
            standard(l)
        }
    }));
    let mut s = Session::start(io, "c", short()).await.unwrap();
    let r = rcpts(&["a@x.test"]);
    let txn = Txn {
        sender: "s@y.test",
        params: MailParams::default(),
        rcpts: &r,
    };
    let out = s.send(&txn, message(b"hi\r\n")).await;
    assert!(out.replies[0].is_none());
    assert!(matches!(
        out.error,
        Some(SmtpError::Timeout("the reply after the final dot"))
    ));
}

#[tokio::test]
async fn close_mid_data_leaves_recipients_unanswered() {
    let (io, peer) = pipe();
    tokio::spawn(run_peer(peer, b"220 hi\r\n", Default::default(), |l| {
        if l == "DATA" {
            Act::Say("354 go\r\n")
        } else if l.starts_with("<DATA>") {
            Act::Close
        } else {
            standard(l)
        }
    }));
    let mut s = Session::start(io, "c", short()).await.unwrap();
    let r = rcpts(&["a@x.test", "b@x.test"]);
    let txn = Txn {
        sender: "s@y.test",
        params: MailParams::default(),
        rcpts: &r,
    };
    let out = s.send(&txn, message(b"hi\r\n")).await;
    assert!(out.replies.iter().all(Option::is_none));
    assert!(out.error.is_some());
    assert!(out.error.unwrap().as_reply_text().starts_with("4.4.2"));
}

#[tokio::test]
async fn temporary_mail_refusal_and_permanent_data_refusal() {
    let (io, peer) = pipe();
    let mut n = 0;
    tokio::spawn(run_peer(
        peer,
        b"220 hi\r\n",
        Default::default(),
        move |l| {
            if l.starts_with("MAIL") {
                n += 1;
                if n == 1 {
                    return Act::Say("451 4.3.0 busy\r\n");
                }
            }
            if l.starts_with("RCPT") && n == 1 {
                return Act::Say("503 5.5.1 need MAIL\r\n");
            }
            if l == "DATA" && n == 1 {
                return Act::Say("503 5.5.1 need RCPT\r\n");
            }
            if l.starts_with("<DATA>") {
                return Act::Say("554 5.7.1 content refused\r\n");
            }
            standard(l)
        },
    ));
    let mut s = Session::start(io, "c", short()).await.unwrap();
    let r = rcpts(&["a@x.test", "b@x.test"]);
    let txn = Txn {
        sender: "s@y.test",
        params: MailParams::default(),
        rcpts: &r,
    };
    let out = s.send(&txn, message(b"hi\r\n")).await;
    assert!(out.error.is_none(), "{:?}", out.error);
    assert!(out.replies.iter().all(|r| r.as_ref().unwrap().code == 451));
    let out = s.send(&txn, message(b"hi\r\n")).await;
    assert!(out.replies.iter().all(|r| r.as_ref().unwrap().code == 554));
}

#[tokio::test]
async fn chunking_sends_bdat_and_helo_fallback() {
    let (io, peer) = pipe();
    let log = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(run_peer(peer, b"220 hi\r\n", log.clone(), |l| {
        if l.starts_with("EHLO") {
            Act::Say("250-peer\r\n250 CHUNKING\r\n")
        } else if l.starts_with("BDAT") {
            Act::Say("250 2.0.0 ok\r\n")
        } else {
            standard(l)
        }
    }));
    let mut s = Session::start(io, "c", short()).await.unwrap();
    let r = rcpts(&["a@x.test"]);
    let txn = Txn {
        sender: "s@y.test",
        params: MailParams::default(),
        rcpts: &r,
    };
    let out = s.send(&txn, message(b".x\r\n")).await;
    assert_eq!(out.replies[0].as_ref().unwrap().code, 250);
    let log = log.lock().unwrap().clone();
    // No dot-stuffing with BDAT, no DSN parameters without DSN.
    assert_eq!(log[2], "RCPT TO:<a@x.test>");
    assert_eq!(log[3], "BDAT 4<.x\r\n>");
    assert_eq!(log[4], "BDAT 0 LAST<>");

    // EHLO refused with 502: HELO, and no extensions.
    let (io, peer) = pipe();
    tokio::spawn(run_peer(peer, b"220 hi\r\n", Default::default(), |l| {
        if l.starts_with("EHLO") {
            Act::Say("502 5.5.2 what\r\n")
        } else if l.starts_with("HELO") {
            Act::Say("250 old.peer\r\n")
        } else {
            standard(l)
        }
    }));
    let s = Session::start(io, "c", short()).await.unwrap();
    assert!(!s.esmtp && !s.ext.pipelining);
}

#[test]
fn base64_rfc4648_vectors() {
    use super::session::base64;
    for (i, o) in [
        ("", ""),
        ("f", "Zg=="),
        ("fo", "Zm8="),
        ("foo", "Zm9v"),
        ("foobar", "Zm9vYmFy"),
    ] {
        assert_eq!(base64(i.as_bytes()), o);
    }
}

// --- remote delivery with a mock DNS and peers on loopback -----------------

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

/// A queued message in a fresh spool.
fn queued(env: Envelope, body: &[u8]) -> (tempfile::TempDir, Spool, String, Envelope) {
    let d = tempfile::tempdir().unwrap();
    let spool = Spool::open(d.path()).unwrap();
    let mut w = spool.create(QueueName::Incoming, &env).unwrap();
    w.write_all(body).unwrap();
    let id = w.commit().unwrap();
    spool
        .move_to(&id, QueueName::Incoming, QueueName::Active)
        .unwrap();
    let env = spool.read(QueueName::Active, &id).unwrap().envelope;
    (d, spool, id, env)
}

/// Serves `greeting` + `f` on 127.0.0.1:0; returns the port.
async fn tcp_peer(greeting: &'static [u8], f: fn(&str) -> Act) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(run_peer(s, greeting, Default::default(), f));
        }
    });
    port
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
    let (_d, spool, id, env) = queued(env, b"Subject: t\r\n\r\nhi\r\n");
    let out = remote
        .deliver(
            Message {
                spool: &spool,
                queue: QueueName::Active,
                id: &id,
                env: &env,
                size: 20,
            },
            "x.test",
            &[0, 1],
        )
        .await;
    assert!(
        out.iter()
            .all(|o| matches!(o, Outcome::Reply(r) if r.code == 250)),
        "{out:?}"
    );
    // Bigger than the peer's SIZE 1000: bounced without sending.
    let out = remote
        .deliver(
            Message {
                spool: &spool,
                queue: QueueName::Active,
                id: &id,
                env: &env,
                size: 5000,
            },
            "x.test",
            &[0],
        )
        .await;
    assert!(
        matches!(&out[0], Outcome::Perm(t) if t.starts_with("552 5.3.4")),
        "{out:?}"
    );
    // SMTPUTF8 needed, not offered (RFC 6531 §3.2): bounced.
    let mut utf = env.clone();
    utf.smtputf8 = true;
    let out = remote
        .deliver(
            Message {
                spool: &spool,
                queue: QueueName::Active,
                id: &id,
                env: &utf,
                size: 20,
            },
            "x.test",
            &[0],
        )
        .await;
    assert!(
        matches!(&out[0], Outcome::Perm(t) if t.starts_with("553 5.6.7")),
        "{out:?}"
    );
    // Null MX: bounced at once.
    let out = remote
        .deliver(
            Message {
                spool: &spool,
                queue: QueueName::Active,
                id: &id,
                env: &env,
                size: 20,
            },
            "null.test",
            &[0],
        )
        .await;
    assert!(
        matches!(&out[0], Outcome::Perm(t) if t.contains("5.1.10")),
        "{out:?}"
    );
    // `encrypt` and a peer without STARTTLS: deferred; twice, and the
    // destination is backed off (failure_limit 2).
    for _ in 0..2 {
        let out = remote
            .deliver(
                Message {
                    spool: &spool,
                    queue: QueueName::Active,
                    id: &id,
                    env: &env,
                    size: 20,
                },
                "down.test",
                &[0],
            )
            .await;
        assert!(
            matches!(&out[0], Outcome::Temp(t) if t.starts_with("4.7.4")),
            "{out:?}"
        );
    }
    let out = remote
        .deliver(
            Message {
                spool: &spool,
                queue: QueueName::Active,
                id: &id,
                env: &env,
                size: 20,
            },
            "down.test",
            &[0],
        )
        .await;
    assert!(
        matches!(&out[0], Outcome::Temp(t) if t.contains("backed off")),
        "{out:?}"
    );
    remote.clear_backoff(None);
    let out = remote
        .deliver(
            Message {
                spool: &spool,
                queue: QueueName::Active,
                id: &id,
                env: &env,
                size: 20,
            },
            "down.test",
            &[0],
        )
        .await;
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
    let e = super::deliver::load_credentials(&p).unwrap_err();
    assert!(e.contains("0644") && e.contains("refusing"), "{e}");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    let c = super::deliver::load_credentials(&p).unwrap();
    assert_eq!(
        c.get("[relay.test]:587"),
        Some(&("user".to_string(), "secret".to_string()))
    );
    std::fs::write(&p, "too few\n").unwrap();
    assert!(super::deliver::load_credentials(&p).is_err());
}
