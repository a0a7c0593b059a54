//! The checks against a nameserver on loopback (facteur-testkit's
//! [`DnsServer`]) with messages
//! signed by dkimpy (`data/make.py`): SPF results, include loops and the
//! lookup limit, a 64 KB TXT record, DNS that never answers, iprev, DKIM
//! (pass, changed body, rsa-sha1, a 512-bit key, garbage tags, a huge
//! `h=`), DMARC, ARC, and the bounds of every check.

#![allow(clippy::unwrap_used)]

use crate::verify::Envelope;
use crate::*;
use facteur_testkit::{DnsServer, Zone};
use std::net::IpAddr;
use std::time::{Duration, Instant};

const LOCAL: &str = "127.0.0.1";

fn limits(timeout_ms: u64) -> Limits {
    Limits {
        check_timeout: Duration::from_millis(timeout_ms),
        max_lookups: 30,
        max_signatures: 10,
    }
}

fn resolver(dns: &DnsServer, timeout_ms: u64) -> Resolver {
    Resolver::new(&[dns.addr], Duration::from_millis(400), limits(timeout_ms)).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fixture(name: &str) -> Vec<u8> {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("src/tests/data")
        .join(name);
    std::fs::read(p).unwrap()
}

fn key_record(name: &str) -> String {
    format!(
        "v=DKIM1; k=rsa; p={}",
        String::from_utf8(fixture(name)).unwrap().trim()
    )
}

fn spf_zone() -> Zone {
    let mut z = Zone::default()
        .txt("pass.test", "v=spf1 ip4:127.0.0.1 -all")
        .txt("fail.test", "v=spf1 ip4:192.0.2.1 -all")
        .txt("soft.test", "v=spf1 ~all")
        .txt("neutral.test", "v=spf1 ?all")
        .ip("nospf.test", "192.0.2.7")
        .txt("mail.helo.test", "v=spf1 a -all")
        .ip("mail.helo.test", LOCAL)
        .txt("loop.test", "v=spf1 include:loop2.test -all")
        .txt("loop2.test", "v=spf1 include:loop.test -all")
        .silent("slow.test")
        .txt("big.test", format!("v=spf1 {}", "a".repeat(64_000)))
        .txt(
            "bigvalid.test",
            format!("v=spf1 {}ip4:127.0.0.1 -all", "ip4:192.0.2.1 ".repeat(4500)),
        );
    let includes: String = (1..=11)
        .map(|i| format!("include:i{i}.many.test "))
        .collect();
    z = z.txt("many.test", format!("v=spf1 {includes}-all"));
    for i in 1..=11 {
        z = z.txt(&format!("i{i}.many.test"), "v=spf1 -all");
    }
    z
}

#[tokio::test]
async fn spf_of_mail_from_and_helo() {
    let dns = DnsServer::start(spf_zone()).await;
    let r = resolver(&dns, 3000);
    let c = ip(LOCAL);
    let mail = |d: &str| {
        let sender = format!("someone@{d}");
        let r = r.clone();
        async move { r.spf_mail_from(c, "client.test", "mx.test", &sender).await }
    };
    assert_eq!(mail("pass.test").await.outcome, Outcome::Pass);
    assert_eq!(mail("fail.test").await.outcome, Outcome::Fail);
    assert_eq!(mail("soft.test").await.outcome, Outcome::SoftFail);
    assert_eq!(mail("neutral.test").await.outcome, Outcome::Neutral);
    assert_eq!(mail("nospf.test").await.outcome, Outcome::None);
    assert_eq!(mail("unknown.test").await.outcome, Outcome::None);
    // An include loop and more than 10 lookups: PermError (RFC 7208 §4.6.4).
    assert_eq!(mail("loop.test").await.outcome, Outcome::PermError);
    assert_eq!(mail("many.test").await.outcome, Outcome::PermError);
    // A 64 KB TXT record (over TCP): a clear result either way.
    assert_eq!(mail("big.test").await.outcome, Outcome::PermError);
    assert_eq!(mail("bigvalid.test").await.outcome, Outcome::Pass);
    let h = r.spf_helo(c, "mail.helo.test", "mx.test").await;
    assert_eq!((h.outcome, h.identity), (Outcome::Pass, SpfIdentity::Helo));
    // The null sender is postmaster@ the HELO name.
    let n = r.spf_mail_from(c, "mail.helo.test", "mx.test", "").await;
    assert_eq!(
        (n.outcome, n.domain.as_str()),
        (Outcome::Pass, "mail.helo.test")
    );
    // An address literal is no domain: none.
    assert_eq!(
        r.spf_helo(c, "[127.0.0.1]", "mx.test").await.outcome,
        Outcome::None
    );
}

#[tokio::test]
async fn dns_that_never_answers_is_a_temperror_in_bounded_time() {
    let dns = DnsServer::start(spf_zone()).await;
    let r = resolver(&dns, 1000);
    let t = Instant::now();
    let s = r
        .spf_mail_from(ip(LOCAL), "c.test", "mx.test", "a@slow.test")
        .await;
    assert_eq!(s.outcome, Outcome::TempError);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    // A nameserver that takes the packets and never answers at all.
    let hole = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let r = Resolver::new(
        &[hole.local_addr().unwrap()],
        Duration::from_millis(300),
        limits(1000),
    )
    .unwrap();
    let t = Instant::now();
    let s = r.spf_helo(ip(LOCAL), "c.test", "mx.test").await;
    let i = r.iprev(ip("192.0.2.1")).await;
    let m = r
        .verify_message(
            &fixture("rsa-sha256.eml"),
            &Envelope {
                ip: ip(LOCAL),
                helo: "c.test",
                sender: "alice@rsa.test",
                spf: None,
            },
        )
        .await;
    assert_eq!(s.outcome, Outcome::TempError);
    assert_eq!(i.outcome, Outcome::TempError);
    assert_eq!(m.dkim[0].outcome, Outcome::TempError);
    assert_eq!(m.dmarc.outcome, Outcome::TempError);
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}

#[tokio::test]
async fn iprev_verifies_the_name_both_ways() {
    // Not loopback addresses: the resolver answers 127/8 itself
    // ("localhost", RFC 6761 §6.3).
    let z = Zone::default()
        .ptr("192.0.2.1", "client.pass.test")
        .ip("client.pass.test", "192.0.2.1")
        .ptr("192.0.2.2", "liar.test")
        .ip("liar.test", "192.0.2.9")
        .ptr("192.0.2.5", "bad!name.test")
        .ptr("192.0.2.6", "slow.test")
        .silent("slow.test")
        .silent("7.2.0.192.in-addr.arpa");
    let dns = DnsServer::start(z).await;
    let r = resolver(&dns, 2000);
    let ok = r.iprev(ip("192.0.2.1")).await;
    assert_eq!(ok.outcome, Outcome::Pass);
    assert_eq!(ok.name.as_deref(), Some("client.pass.test"));
    let liar = r.iprev(ip("192.0.2.2")).await;
    assert_eq!((liar.outcome, liar.name), (Outcome::Fail, None));
    let none = r.iprev(ip("192.0.2.3")).await;
    assert_eq!(none.outcome, Outcome::PermError);
    assert!(r.iprev(ip("192.0.2.5")).await.name.is_none());
    assert_eq!(r.iprev(ip("192.0.2.6")).await.outcome, Outcome::TempError);
    assert_eq!(r.iprev(ip("192.0.2.7")).await.outcome, Outcome::TempError);
    let local = r.iprev(ip(LOCAL)).await;
    assert_eq!(local.name.as_deref(), Some("localhost"));
}

fn dkim_zone() -> Zone {
    Zone::default()
        .txt("s._domainkey.rsa.test", key_record("rsa2048.p"))
        .txt("s._domainkey.sha1.test", key_record("rsa2048.p"))
        .txt("s._domainkey.small.test", key_record("rsa512.p"))
        .txt("arc._domainkey.lists.test", key_record("rsa2048.p"))
        .txt("_dmarc.rsa.test", "v=DMARC1; p=reject")
        .txt("_dmarc.sha1.test", "v=DMARC1; p=reject")
        .txt("_dmarc.bank.test", "v=DMARC1; p=reject")
        .txt("_dmarc.shop.test", "v=DMARC1; p=quarantine")
        .txt("_dmarc.origin.test", "v=DMARC1; p=reject")
        .txt("rsa.test", "v=spf1 -all")
        .silent("_dmarc.slow.test")
        .silent("s._domainkey.slow.test")
        .txt(
            "s._domainkey.huge.test",
            format!("v=DKIM1; k=rsa; p={}", "A".repeat(64_000)),
        )
}

fn env<'a>(sender: &'a str, spf: Option<&'a Spf>) -> Envelope<'a> {
    Envelope {
        ip: ip(LOCAL),
        helo: "client.test",
        sender,
        spf,
    }
}

/// The fixture with its From domain and body changed.
fn edited(name: &str, from: (&str, &str), body: (&str, &str)) -> Vec<u8> {
    let t = String::from_utf8(fixture(name)).unwrap();
    t.replace(from.0, from.1)
        .replace(body.0, body.1)
        .into_bytes()
}

#[tokio::test]
async fn dkim_signatures_from_dkimpy() {
    let dns = DnsServer::start(dkim_zone()).await;
    let r = resolver(&dns, 3000);
    let m = r
        .verify_message(&fixture("rsa-sha256.eml"), &env("alice@rsa.test", None))
        .await;
    assert_eq!(m.dkim.len(), 1);
    let d = &m.dkim[0];
    assert_eq!(
        (
            d.outcome,
            d.domain.as_str(),
            d.selector.as_str(),
            d.algorithm
        ),
        (Outcome::Pass, "rsa.test", "s", "rsa-sha256")
    );
    // Aligned DKIM pass: DMARC passes although SPF (-all) fails.
    assert_eq!(m.dmarc.outcome, Outcome::Pass);
    assert_eq!(m.dmarc.policy, DmarcPolicy::Reject);
    // A changed body fails.
    let changed = edited("rsa-sha256.eml", ("", ""), ("the body", "the b0dy"));
    let m = r
        .verify_message(&changed, &env("alice@rsa.test", None))
        .await;
    assert_eq!(m.dkim[0].outcome, Outcome::Fail);
    assert_eq!(
        m.dkim[0].reason.as_deref(),
        Some("body hash did not verify")
    );
    assert_eq!(m.dmarc.outcome, Outcome::Fail);
    // A changed signed header fails too.
    let changed = edited(
        "rsa-sha256.eml",
        ("Subject: fixture", "Subject: fixture!"),
        ("", ""),
    );
    let m = r
        .verify_message(&changed, &env("alice@rsa.test", None))
        .await;
    assert_eq!(m.dkim[0].outcome, Outcome::Fail);
    // rsa-sha1 and a 512-bit key count as failing (RFC 8301).
    let m = r
        .verify_message(&fixture("rsa-sha1.eml"), &env("alice@sha1.test", None))
        .await;
    assert_eq!(m.dkim[0].outcome, Outcome::Fail, "{:?}", m.dkim);
    assert!(m.dkim[0].reason.as_deref().unwrap().contains("rsa-sha1"));
    assert_eq!(m.dmarc.outcome, Outcome::Fail);
    let m = r
        .verify_message(&fixture("rsa512.eml"), &env("alice@small.test", None))
        .await;
    assert_eq!(m.dkim[0].outcome, Outcome::Fail, "{:?}", m.dkim);
}

#[tokio::test]
async fn dmarc_reject_quarantine_and_temperror() {
    let dns = DnsServer::start(dkim_zone()).await;
    let r = resolver(&dns, 2000);
    let forged = |from: &str| {
        format!("From: <ceo@{from}>\r\nTo: <bob@example.test>\r\nSubject: pay\r\n\r\nnow\r\n")
            .into_bytes()
    };
    let m = r
        .verify_message(&forged("bank.test"), &env("x@evil.test", None))
        .await;
    assert_eq!(
        (m.dmarc.outcome, m.dmarc.policy),
        (Outcome::Fail, DmarcPolicy::Reject)
    );
    assert_eq!(m.dmarc.from_domain, "bank.test");
    assert!(m.dkim.is_empty());
    let m = r
        .verify_message(&forged("shop.test"), &env("x@evil.test", None))
        .await;
    assert_eq!(
        (m.dmarc.outcome, m.dmarc.policy),
        (Outcome::Fail, DmarcPolicy::Quarantine)
    );
    let m = r
        .verify_message(&forged("nodmarc.test"), &env("x@evil.test", None))
        .await;
    assert_eq!(m.dmarc.outcome, Outcome::None);
    let t = Instant::now();
    let m = r
        .verify_message(&forged("slow.test"), &env("x@evil.test", None))
        .await;
    assert_eq!(m.dmarc.outcome, Outcome::TempError);
    assert!(!m.dmarc.record);
    assert!(t.elapsed() < Duration::from_secs(5));
    // A second author domain does not hide the first.
    let two = b"From: a@nodmarc.test, ceo@bank.test\r\nSubject: x\r\n\r\nx\r\n";
    let m = r.verify_message(two, &env("x@evil.test", None)).await;
    assert_eq!(
        (m.dmarc.outcome, m.dmarc.from_domain.as_str()),
        (Outcome::Fail, "bank.test")
    );
    // SPF aligned and passing is enough.
    let spf = Spf {
        outcome: Outcome::Pass,
        identity: SpfIdentity::MailFrom,
        ip: ip(LOCAL),
        helo: "client.test".into(),
        sender: "bounce@bank.test".into(),
        domain: "bank.test".into(),
        reason: None,
    };
    let m = r
        .verify_message(&forged("bank.test"), &env("bounce@bank.test", Some(&spf)))
        .await;
    assert_eq!(m.dmarc.outcome, Outcome::Pass);
}

#[tokio::test]
async fn arc_chains_from_dkimpy() {
    let dns = DnsServer::start(dkim_zone()).await;
    let r = resolver(&dns, 3000);
    let m = r
        .verify_message(&fixture("arc.eml"), &env("list@lists.test", None))
        .await;
    assert_eq!(m.arc.outcome, Outcome::Pass, "{:?}", m.arc);
    assert_eq!(
        (m.arc.instances, m.arc.sealer.as_deref()),
        (1, Some("lists.test"))
    );
    // The From domain says reject and nothing aligns: a trusted sealer
    // could vouch for it (the policy's business), the chain passes.
    assert_eq!(m.dmarc.outcome, Outcome::Fail);
    let changed = edited("arc.eml", ("", ""), ("the body", "the b0dy"));
    let m = r
        .verify_message(&changed, &env("list@lists.test", None))
        .await;
    assert_eq!(m.arc.outcome, Outcome::Fail);
    let m = r
        .verify_message(&fixture("rsa-sha256.eml"), &env("a@rsa.test", None))
        .await;
    assert_eq!(m.arc.outcome, Outcome::None);
}

#[tokio::test]
async fn hostile_signatures_and_records_give_clear_results() {
    let dns = DnsServer::start(dkim_zone()).await;
    let r = resolver(&dns, 2000);
    let body = "From: a@rsa.test\r\nSubject: x\r\n\r\nbody\r\n";
    let garbage = format!(
        "DKIM-Signature: v=1; a=rsa-sha256; d=;;; s==; b=!!!; bh=%%%; h=\r\n\
DKIM-Signature: \x01\x02 nonsense ===;;;\r\n\
DKIM-Signature: v=9; a=rot13; c=odd/even; d=rsa.test; s=s; h=from; bh=AA==; b=AA==\r\n{body}"
    );
    let m = r
        .verify_message(garbage.as_bytes(), &env("a@rsa.test", None))
        .await;
    assert_eq!(m.dkim.len(), 3, "{:?}", m.dkim);
    assert!(
        m.dkim.iter().all(|d| d.outcome != Outcome::Pass),
        "{:?}",
        m.dkim
    );
    // A 10,000-character h= list.
    let h: Vec<String> = (0..2000).map(|i| format!("x{i}")).collect();
    let long = format!(
        "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=rsa.test; s=s; h=from:{};\r\n bh=Ck5SoRNWUpSR4X0COv7R5ub2pUTtl6xz4dTFz++ji4M=; b=AAAA\r\n{body}",
        h.join(":")
    );
    assert!(long.len() > 10_000);
    let t = Instant::now();
    let m = r
        .verify_message(long.as_bytes(), &env("a@rsa.test", None))
        .await;
    assert_eq!(m.dkim.len(), 1);
    assert_ne!(m.dkim[0].outcome, Outcome::Pass);
    assert!(t.elapsed() < Duration::from_secs(3));
    // A 64 KB key record; a key that never comes.
    for (d, want) in [
        ("huge.test", Outcome::Fail),
        ("slow.test", Outcome::TempError),
    ] {
        let sig = format!(
            "DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d={d}; s=s; h=from;\r\n bh=Ck5SoRNWUpSR4X0COv7R5ub2pUTtl6xz4dTFz++ji4M=; b=AAAA\r\n{body}"
        );
        let m = r
            .verify_message(sig.as_bytes(), &env("a@rsa.test", None))
            .await;
        assert_eq!(m.dkim[0].outcome, want, "{d}: {:?}", m.dkim);
    }
    // Not a message at all.
    let m = r.verify_message(b"\r\n\r\n", &env("", None)).await;
    assert!(m.dkim.is_empty() && m.dmarc.outcome == Outcome::None);
    let m = r.verify_message(&[0xff; 300], &env("", None)).await;
    assert!(m.dkim.is_empty());
}

#[tokio::test]
async fn at_most_max_signatures_are_verified_within_the_time_out() {
    let mut z = Zone::default();
    let mut msg = String::new();
    for i in 0..30 {
        z = z.silent(&format!("s._domainkey.d{i}.test"));
        msg.push_str(&format!(
            "DKIM-Signature: v=1; a=rsa-sha256; d=d{i}.test; s=s; h=from;\r\n bh=Ck5SoRNWUpSR4X0COv7R5ub2pUTtl6xz4dTFz++ji4M=; b=AAAA\r\n"
        ));
    }
    msg.push_str("From: a@d0.test\r\n\r\nbody\r\n");
    let dns = DnsServer::start(z).await;
    let r = resolver(&dns, 1500);
    let t = Instant::now();
    let m = r
        .verify_message(msg.as_bytes(), &env("a@d0.test", None))
        .await;
    assert_eq!((m.dkim.len(), m.dkim_skipped), (10, 20));
    assert!(
        m.dkim.iter().all(|d| d.outcome == Outcome::TempError),
        "{:?}",
        m.dkim
    );
    // DKIM, ARC and DMARC each within its time-out.
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
}

#[tokio::test]
async fn the_lookup_budget_ends_a_greedy_check() {
    // An SPF record with lookups that cost nothing against RFC 7208's
    // ten (none of them is a mechanism that counts) still ends.
    let mut z = Zone::default();
    let includes: String = (0..9).map(|i| format!("include:b{i}.test ")).collect();
    z = z.txt("greedy.test", format!("v=spf1 {includes}-all"));
    for i in 0..9 {
        let inner: String = (0..9).map(|j| format!("a:h{i}x{j}.test ")).collect();
        z = z.txt(&format!("b{i}.test"), format!("v=spf1 {inner}-all"));
    }
    let dns = DnsServer::start(z).await;
    let mut r = resolver(&dns, 3000);
    r.limits.max_lookups = 5;
    let s = r
        .spf_mail_from(ip(LOCAL), "c.test", "mx.test", "a@greedy.test")
        .await;
    assert!(
        matches!(s.outcome, Outcome::TempError | Outcome::PermError),
        "{s:?}"
    );
    assert!(
        *dns.queries.lock().unwrap() <= 12,
        "{}",
        dns.queries.lock().unwrap()
    );
}

#[tokio::test]
async fn memory_for_verification_is_shared_and_bounded() {
    let dns = DnsServer::start(Zone::default()).await;
    let cfg = facteur_config::trust::Incoming {
        verify_memory: facteur_config::ByteSize(2 << 20),
        ..Default::default()
    };
    let inc = Incoming::new(resolver(&dns, 300), "mx.test".into(), "mx.test".into(), cfg);
    let a = inc.reserve(1 << 20).await.unwrap();
    let _b = inc.reserve(1 << 20).await.unwrap();
    // Full: the third waits for its time-out.
    assert!(inc.reserve(1).await.is_none());
    drop(a);
    assert!(inc.reserve(1 << 20).await.is_some());
    assert!(inc.reserve(3 << 20).await.is_none());
}
