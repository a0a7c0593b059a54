//! A big backlog does not stall the queue (issue 14, item 8): a flush of
//! tens of thousands of deferred messages is answered at once, and new
//! mail is delivered while the flush goes on.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
mod spoolfill;

use common::*;
use facteur_spool::QueueName;
use facteur_spool::control::{self, Op};
use std::time::{Duration, Instant};

/// How many deferred messages. 50,000 as in the issue: written in about
/// 3 s and cleaned up in about 2 s in a debug build on 2 cores; the
/// drain itself is not waited for (bench/ measures it, at 100,000).
const BACKLOG: usize = 50_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_of_a_big_backlog_answers_at_once_and_new_mail_goes_on() {
    let root = root("");
    let t = Instant::now();
    let backlog = spoolfill::fill(
        &root.spool(),
        QueueName::Deferred,
        BACKLOG,
        "alice@example.test",
        spoolfill::deferred_for_an_hour,
    );
    eprintln!("{BACKLOG} deferred messages written in {:?}", t.elapsed());
    let lmtpd = start_lmtpd(&root.cfg).await;
    let qmgr = start_qmgr(&root.cfg).await;
    let sock = root.cfg.qmgr_control_socket();
    wait_for(10, "the control socket", || sock.exists()).await;

    // The flush is answered within a second, with what it will do: qmgr
    // is still walking deferred/ for its start-up scan meanwhile.
    let t = Instant::now();
    let answer = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::task::spawn_blocking(move || control::request(&sock, &Op::Flush(None))),
    )
    .await
    .expect("no answer to FLUSH within 5 s")
    .unwrap()
    .unwrap()
    .unwrap();
    let took = t.elapsed();
    eprintln!("FLUSH answered in {took:?}: {answer:?}");
    assert!(took < Duration::from_secs(1), "FLUSH took {took:?}");
    assert_eq!(answer.len(), 1, "{answer:?}");
    assert!(
        answer[0].starts_with(&format!("flushing {BACKLOG} deferred messages")),
        "{answer:?}"
    );

    // New mail submitted meanwhile is delivered within a few seconds.
    let t = Instant::now();
    root.queue("sender@remote.test", &["bob@example.test"], |_| {});
    wait_for(10, "the new message in bob's mailbox", || {
        root.mailbox("bob@example.test").len() == 1
    })
    .await;
    let took = t.elapsed();
    let left = root.ids(QueueName::Deferred).len() + root.ids(QueueName::Active).len();
    let delivered = root.mailbox("alice@example.test").len();
    eprintln!(
        "new mail delivered in {took:?}; flush meanwhile: {delivered} delivered, {left} still queued"
    );
    assert!(took < Duration::from_secs(5), "new mail took {took:?}");
    assert!(delivered > 0, "the flushed backlog is being delivered");
    assert!(
        left > BACKLOG / 2,
        "the flush was still working ({left} left)"
    );
    // The backlog drains: flushed messages reach active/ as slots free up
    // (never all at once), and deliveries go on.
    assert!(root.ids(QueueName::Active).len() < 5_000);
    let before = root.mailbox("alice@example.test").len();
    wait_for(10, "more of the backlog delivered", || {
        root.mailbox("alice@example.test").len() > before + 100
    })
    .await;
    qmgr.stop().await;
    lmtpd.stop().await;
    // Nothing lost, nothing twice: each message delivered or still queued.
    let queued = root.ids(QueueName::Deferred).len() + root.ids(QueueName::Active).len();
    assert_eq!(
        queued + root.mailbox("alice@example.test").len(),
        backlog.len()
    );
    assert!(root.ids(QueueName::Corrupt).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_about_messages_waiting_in_a_flush_are_kept() {
    let root = root("");
    let mut backlog = spoolfill::fill(
        &root.spool(),
        QueueName::Deferred,
        2000,
        "alice@example.test",
        spoolfill::deferred_for_an_hour,
    );
    backlog.sort();
    let lmtpd = start_lmtpd(&root.cfg).await;
    let qmgr = start_qmgr(&root.cfg).await;
    let sock = root.cfg.qmgr_control_socket();
    wait_for(10, "the control socket", || sock.exists()).await;
    let ask = |op: Op| {
        let sock = sock.clone();
        tokio::task::spawn_blocking(move || control::request(&sock, &op).unwrap())
    };
    let flushed = ask(Op::Flush(None)).await.unwrap().unwrap();
    assert!(flushed[0].starts_with("flushing 2000"), "{flushed:?}");
    // Among the first moved to active/ (waiting for a slot, or being
    // delivered: then the request waits for the attempt), and the last
    // (most likely still in deferred/).
    let (held, deleted, last) = (&backlog[150], &backlog[200], &backlog[1999]);
    let (h, d, l) = tokio::join!(
        ask(Op::Hold(held.clone())),
        ask(Op::Delete(deleted.clone())),
        ask(Op::Hold(last.clone())),
    );
    let mut done = Vec::new();
    for (what, res) in [("hold", h), ("delete", d), ("hold", l)] {
        let res = res.unwrap();
        // Refused only if it was delivered first (then it is gone).
        if let Err(e) = &res {
            assert!(e.contains("no such message"), "{what}: {e}");
        }
        done.push(res.is_ok());
    }
    wait_for(120, "the backlog delivered", || {
        root.ids(QueueName::Deferred).is_empty() && root.ids(QueueName::Active).is_empty()
    })
    .await;
    qmgr.stop().await;
    lmtpd.stop().await;
    // Each message once: delivered, held or deleted; held ones stay held.
    let hold = root.ids(QueueName::Hold);
    let delivered = root.mailbox("alice@example.test").len();
    let want_held: Vec<&String> = [(held, done[0]), (last, done[2])]
        .into_iter()
        .filter_map(|(id, ok)| ok.then_some(id))
        .collect();
    assert_eq!(hold.iter().collect::<Vec<_>>(), want_held);
    assert!(root.spool().find(deleted).is_err());
    assert_eq!(delivered + hold.len() + usize::from(done[1]), backlog.len());
    assert!(root.ids(QueueName::Corrupt).is_empty());
}
