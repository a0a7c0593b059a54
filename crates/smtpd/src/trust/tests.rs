//! The checks wired into smtpd, in memory sessions from addresses the
//! e2e tests cannot have (loopback never has a verified PTR name), against
//! testkit's nameserver: the verified name in `Received:`, results and
//! `Received-SPF` above the message (the queue file's F record), forged
//! fields removed, DMARC reject and quarantine, and no checks for
//! `mynetworks` or the submission listener.

use crate::Mode;
use crate::handler::tests::{Fixture, fixture_with, transcript};
use facteur_config::trust::Incoming as IncomingConfig;
use facteur_testkit::{DnsServer, Zone};
use facteur_trust::{Incoming, Limits, Resolver};
use std::sync::Arc;
use std::time::Duration;

const ID: &str = "mx.example.test";

async fn checked_fixture() -> (Fixture, DnsServer) {
    let zone = Zone::default()
        .ptr("192.0.2.7", "client.good.test")
        .ip("client.good.test", "192.0.2.7")
        .ip("helo.good.test", "192.0.2.7")
        .txt("helo.good.test", "v=spf1 a -all")
        .txt("good.test", "v=spf1 ip4:192.0.2.7 -all")
        .txt("_dmarc.good.test", "v=DMARC1; p=reject")
        .txt("bank.test", "v=spf1 ip4:192.0.2.7 -all")
        .txt("_dmarc.bank.test", "v=DMARC1; p=reject")
        .txt("shop.test", "v=spf1 ip4:192.0.2.7 -all")
        .txt("_dmarc.shop.test", "v=DMARC1; p=quarantine");
    let dns = DnsServer::start(zone).await;
    let limits = Limits {
        check_timeout: Duration::from_secs(5),
        max_lookups: 30,
        max_signatures: 10,
    };
    let resolver = Resolver::new(&[dns.addr], Duration::from_millis(500), limits).unwrap();
    let trust = Incoming::new(resolver, ID.into(), ID.into(), IncomingConfig::default());
    // mynetworks: 198.51.100.0/24; the strangers are in 192.0.2.0/24.
    (
        fixture_with("198.51.100.0/24", 1 << 20, Some(Arc::new(trust))),
        dns,
    )
}

fn send<'a>(from: &'a [u8], data: &'a [u8], last: &'a [&'a str]) -> Vec<(&'a [u8], &'a [&'a str])> {
    vec![
        (b"EHLO helo.good.test\r\n", &["250 "]),
        (from, &["250 2.1.0"]),
        (b"RCPT TO:<alice@example.test>\r\n", &["250 2.1.5"]),
        (b"DATA\r\n", &["354"]),
        (data, last),
        (b"QUIT\r\n", &["221"]),
    ]
}

#[tokio::test]
async fn results_above_the_message_and_the_verified_name_in_received() {
    let (f, _dns) = checked_fixture().await;
    let data = b"Authentication-Results: MX.example.test.; dkim=pass header.d=bank.test\r\n\
        Authentication-Results: other.test; spf=pass\r\n\
        X-Spam: Yes\r\n\
        From: a@good.test\r\nSubject: hi\r\n\r\nbody\r\n.\r\n";
    let steps = send(b"MAIL FROM:<a@good.test>\r\n", data, &["250 2.0.0"]);
    transcript(&f, Mode::Mx, "192.0.2.7", &steps).await;
    let q = f.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(
        q[0].envelope.client_name.as_deref(),
        Some("client.good.test")
    );
    let text = f.message(&q[0].envelope.queue_id);
    let unfolded = text.replace("\r\n ", " ").replace("\r\n\t", " ");
    // Ours first (the F record), then Received with the verified name.
    assert!(unfolded.starts_with(&format!("Authentication-Results: {ID}; iprev=pass policy.iprev=192.0.2.7 (client.good.test); spf=pass smtp.mailfrom=a@good.test; spf=pass smtp.helo=helo.good.test; dkim=none; arc=none; dmarc=pass (p=reject) header.from=good.test\r\nReceived-SPF: pass ")), "{text}");
    assert!(
        unfolded.contains("Received: from helo.good.test (client.good.test [192.0.2.7])"),
        "{text}"
    );
    // The forged results and spam mark are gone; another server's stay.
    assert_eq!(
        unfolded.matches("Authentication-Results:").count(),
        2,
        "{text}"
    );
    assert!(unfolded.contains("Authentication-Results: other.test; spf=pass\r\n"));
    assert!(
        !unfolded.contains("header.d=bank.test") && !unfolded.contains("X-Spam"),
        "{text}"
    );
}

#[tokio::test]
async fn dmarc_reject_refuses_and_quarantine_marks() {
    let (f, _dns) = checked_fixture().await;
    let data = b"From: ceo@bank.test\r\nSubject: pay\r\n\r\nnow\r\n.\r\n";
    let steps = send(b"MAIL FROM:<ceo@bank.test>\r\n", data, &["550 5.7.1"]);
    transcript(&f, Mode::Mx, "192.0.2.8", &steps).await;
    assert!(f.queued().is_empty());
    let data = b"From: deals@shop.test\r\nSubject: sale\r\n\r\nbuy\r\n.\r\n";
    let steps = send(b"MAIL FROM:<deals@shop.test>\r\n", data, &["250 2.0.0"]);
    transcript(&f, Mode::Mx, "192.0.2.8", &steps).await;
    let q = f.queued();
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].envelope.client_name, None);
    let text = f.message(&q[0].envelope.queue_id);
    assert!(
        text.starts_with("X-Spam: Yes\r\nAuthentication-Results: "),
        "{text}"
    );
    let unfolded = text.replace("\r\n\t", " ");
    assert!(
        unfolded.contains(
            "dmarc=fail reason=\"no aligned SPF or DKIM pass\" (p=quarantine) header.from=shop.test"
        ),
        "{text}"
    );
    assert!(
        text.contains("Received: from helo.good.test (unknown [192.0.2.8])"),
        "{text}"
    );
}

#[tokio::test]
async fn mynetworks_and_submission_are_not_checked() {
    let (f, dns) = checked_fixture().await;
    let data = b"From: ceo@bank.test\r\nSubject: from inside\r\n\r\nok\r\n.\r\n";
    let steps = send(b"MAIL FROM:<ceo@bank.test>\r\n", data, &["250 2.0.0"]);
    transcript(&f, Mode::Mx, "198.51.100.9", &steps).await;
    let text = f.message(&f.queued()[0].envelope.queue_id);
    assert!(
        text.starts_with("Received: from helo.good.test (unknown [198.51.100.9])"),
        "{text}"
    );
    assert!(!text.contains("Authentication-Results") && !text.contains("Received-SPF"));
    // The submission listener has no checks by default: not even iprev at
    // connect (a session that only says hello).
    transcript(
        &f,
        Mode::Submission,
        "192.0.2.7",
        &[(b"EHLO x.test\r\n", &["250 "]), (b"QUIT\r\n", &["221"])],
    )
    .await;
    assert_eq!(*dns.queries.lock().unwrap(), 0);
}
