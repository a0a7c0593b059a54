//! qmgr end to end, in process: real facteur-lmtpd, real spool, real
//! directory; and a scripted LMTP server for the failure cases.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use facteur_mail::dsn::{Notify, RcptStatus};
use facteur_spool::QueueName;
use mail_parser::{MessageParser, MimeHeaders};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn local_delivery_and_alias_fan_out_exactly_once() {
    let root = root("");
    let suite = Suite::start(&root.cfg).await;
    // alice directly and through team: one copy each for alice and bob.
    root.queue(
        "sender@remote.test",
        &[
            "alice@example.test",
            "team@example.test",
            "carol+news@example.test",
        ],
        |_| {},
    );
    wait_for(15, "queue empty", || root.queue_empty()).await;
    wait_for(5, "mailboxes", || {
        root.mailbox("alice@example.test").len() == 1
            && root.mailbox("bob@example.test").len() == 1
            && root.mailbox("carol@example.test").len() == 1
    })
    .await;
    // Give a duplicate a chance to show up.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(root.mailbox("alice@example.test").len(), 1);
    assert_eq!(root.mailbox("bob@example.test").len(), 1);
    let m = &root.mailbox("bob@example.test")[0];
    let text = String::from_utf8_lossy(m);
    assert!(text.contains("Subject: test message"), "{text}");
    assert!(text.contains("\n.dot line"), "dot-stuffing undone: {text}");
    let carol = String::from_utf8_lossy(&root.mailbox("carol@example.test")[0]).to_string();
    assert!(
        carol.contains("Delivered-To: carol+news@example.test"),
        "{carol}"
    );
    // Delivered at the first attempt: no state was ever written (neither a
    // state file nor one kept for reuse).
    let state = root.cfg.paths.spool_dir.join("state");
    let files: Vec<_> = walk(&state);
    assert!(files.is_empty(), "state written: {files:?}");
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_arrival_does_not_read_the_deferred_queue() {
    let root = root("");
    let suite = Suite::start(&root.cfg).await;
    // After the start-up scan, an unreadable file in deferred/: only a
    // full scan (timer, every 30 s here) reads deferred/ and would move it
    // to corrupt/.
    wait_for(5, "qmgr started", || {
        root.cfg.paths.spool_dir.join("deferred").is_dir()
    })
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let garbage = root
        .spool()
        .dir(QueueName::Deferred)
        .join("0000000000000aa");
    std::fs::write(&garbage, b"not a queue file").unwrap();
    for _ in 0..3 {
        root.queue("sender@remote.test", &["alice@example.test"], |_| {});
    }
    wait_for(15, "delivered", || {
        root.mailbox("alice@example.test").len() == 3
    })
    .await;
    assert!(garbage.exists(), "deferred/ was read for an arrival");
    assert!(root.ids(QueueName::Corrupt).is_empty());
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_alias_target_bounces_to_local_sender() {
    let root = root("");
    let suite = Suite::start(&root.cfg).await;
    root.queue(
        "bob@example.test",
        &["broken@example.test", "alice@example.test"],
        |e| {
            e.envid = Some("ENV-42".into());
        },
    );
    wait_for(15, "bounce in bob's mailbox", || {
        root.mailbox("bob@example.test").len() == 1
    })
    .await;
    wait_for(10, "queue empty", || root.queue_empty()).await;
    assert_eq!(root.mailbox("alice@example.test").len(), 1);
    let raw = &root.mailbox("bob@example.test")[0];
    let m = MessageParser::default().parse(raw).unwrap();
    let ct = m.content_type().unwrap();
    assert_eq!((ct.ctype(), ct.subtype()), ("multipart", Some("report")));
    assert_eq!(ct.attribute("report-type"), Some("delivery-status"));
    let parts = m.root_part().sub_parts().unwrap().to_vec();
    assert_eq!(parts.len(), 3);
    let ds = String::from_utf8_lossy(m.part(parts[1]).unwrap().contents()).to_string();
    assert!(
        ds.contains("Final-Recipient: rfc822; broken@example.test"),
        "{ds}"
    );
    assert!(ds.contains("Status: 5.1.1"), "{ds}");
    assert!(ds.contains("Original-Envelope-Id: ENV-42"), "{ds}");
    assert!(!ds.contains("alice@"), "only the failure is reported: {ds}");
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.contains("Return-Path: <>"),
        "bounce has the null sender: {text}"
    );
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tempfail_is_deferred_then_retried() {
    let mut root = root("");
    let (fake, qmgr) = with_fake(&mut root, TEMPFAIL).await;
    let before = facteur_qmgr::schedule::now();
    let id = root.queue("s@remote.test", &["alice@example.test"], |_| {});
    let env = &deferred(&root, &id, 1).await;
    assert_eq!(env.attempts, 1);
    assert!(
        env.next_attempt > before && env.next_attempt <= before + 3,
        "{env:?}"
    );
    assert_eq!(env.recipients[0].status, RcptStatus::Deferred);
    assert!(last_reply(env, 0).starts_with("451 4.3.0"));
    // The server recovers; the retry after the 1 s backoff delivers.
    fake.set(ACCEPT);
    wait_for(10, "delivered on retry", || root.queue_empty()).await;
    assert_eq!(fake.transactions(), 1);
    qmgr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_defers_and_partial_acceptance() {
    let mut root = root("");
    root.cfg.qmgr.min_backoff = facteur_config::Seconds(3600);
    root.cfg.qmgr.max_backoff = facteur_config::Seconds(3600);
    let (fake, qmgr) = with_fake(&mut root, DROP).await;
    let id = root.queue("", &["alice@example.test"], |_| {});
    let env = deferred(&root, &id, 1).await;
    assert_eq!(env.recipients[0].status, RcptStatus::Deferred);
    assert!(last_reply(&env, 0).starts_with("4.4.2"), "{env:?}");

    fake.set(ONE_OF_THREE);
    let id2 = root.queue(
        "",
        &[
            "alice@example.test",
            "bob@example.test",
            "carol@example.test",
        ],
        |_| {},
    );
    let env = deferred(&root, &id2, 2).await;
    let st: Vec<RcptStatus> = env.recipients.iter().map(|r| r.status).collect();
    assert_eq!(
        st,
        vec![
            RcptStatus::Delivered,
            RcptStatus::Deferred,
            RcptStatus::Bounced
        ]
    );
    assert!(last_reply(&env, 0).contains("Saved as FAKE1"));
    qmgr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiry_bounces_remote_recipients() {
    let root = root("max_lifetime = 60\n");
    let suite = Suite::start(&root.cfg).await;
    // Remote: deferred (no DNS answers in this test) until it expires.
    let id = root.queue("bob@example.test", &["friend@remote.test"], |e| {
        e.arrival -= 120;
        e.recipients[0].notify = Notify {
            failure: true,
            ..Notify::default()
        };
    });
    wait_for(15, "expiry bounce", || {
        root.mailbox("bob@example.test").len() == 1
    })
    .await;
    wait_for(10, "queue empty", || root.queue_empty()).await;
    let raw = &root.mailbox("bob@example.test")[0];
    let text = String::from_utf8_lossy(raw);
    assert!(text.contains("Status: 4.4.7"), "{text}");
    assert!(text.contains("expired"), "{text}");
    assert!(text.contains(&id), "names the queue id: {text}");
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_recipient_stays_deferred() {
    let dns = facteur_testkit::servfail_dns();
    let root = root(&format!("dns_servers = [\"{dns}\"]\n"));
    let qmgr = start_qmgr(&root.cfg).await;
    let id = root.queue("bob@example.test", &["friend@remote.test"], |_| {});
    let env = deferred(&root, &id, 1).await;
    // The nameserver fails (SERVFAIL): a temporary failure, deferred.
    let reply = env.recipients[0].last_reply.as_deref().unwrap_or("");
    assert!(
        reply.starts_with("4.4.3 MX lookup of remote.test"),
        "{reply}"
    );
    qmgr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn null_sender_failure_is_never_bounced() {
    let root = root("");
    let suite = Suite::start(&root.cfg).await;
    root.queue("", &["nobody@example.test"], |_| {});
    wait_for(10, "queue empty", || root.queue_empty()).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(root.queue_empty(), "no bounce was queued");
    for u in ["alice", "bob", "carol"] {
        assert!(root.mailbox(&format!("{u}@example.test")).is_empty());
    }
    suite.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_keeps_the_schedule() {
    let mut root = root("");
    root.cfg.qmgr.min_backoff = facteur_config::Seconds(3600);
    root.cfg.qmgr.max_backoff = facteur_config::Seconds(7200);
    let (fake, qmgr) = with_fake(&mut root, TEMPFAIL).await;
    let id = root.queue("s@remote.test", &["alice@example.test"], |_| {});
    deferred(&root, &id, 1).await;
    qmgr.stop().await;
    let before = root.spool().envelope(QueueName::Deferred, &id);
    assert_eq!(before.attempts, 1);
    assert!(before.next_attempt > facteur_qmgr::schedule::now() + 3000);

    // A restarted qmgr does not retry before the time, even though the
    // server now accepts.
    fake.set(ACCEPT);
    let qmgr = start_qmgr(&root.cfg).await;
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let after = root.spool().envelope(QueueName::Deferred, &id);
    assert_eq!(after.attempts, 1);
    assert_eq!(after.next_attempt, before.next_attempt);
    assert_eq!(fake.transactions(), 0);
    qmgr.stop().await;

    // A message left in active/ with an attempt in progress (a kill -9
    // between lmtpd's reply and our update) is retried at start-up.
    let spool = root.spool();
    spool
        .move_to(&id, QueueName::Deferred, QueueName::Active)
        .unwrap();
    let mut env = before.clone();
    env.recipients[0].last_reply = Some(format!(
        "{}451 4.3.0 try again later",
        facteur_qmgr::queue::IN_PROGRESS
    ));
    spool.update(QueueName::Active, &id, &env).unwrap();
    let qmgr = start_qmgr(&root.cfg).await;
    wait_for(10, "retried and delivered", || root.queue_empty()).await;
    assert_eq!(fake.transactions(), 1);
    qmgr.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_file_goes_to_corrupt() {
    let root = root("");
    let spool = root.spool();
    std::fs::write(spool.dir(QueueName::Incoming).join("BADFILE1"), b"garbage").unwrap();
    let qmgr = start_qmgr(&root.cfg).await;
    wait_for(10, "moved to corrupt", || {
        root.ids(QueueName::Corrupt) == vec!["BADFILE1".to_string()]
    })
    .await;
    qmgr.stop().await;
}

/// Every file (not directory) under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            out.extend(walk(&e.path()));
        } else {
            out.push(e.path());
        }
    }
    out
}
