//! A new message's first attempt uses what its pickup read (prefetch.rs),
//! and never after a control request changed the message.

#![allow(clippy::unwrap_used)]

mod common;

use common::*;
use facteur_qmgr::{Context, lane, queue};
use facteur_spool::QueueName;
use facteur_spool::control::Op;
use std::sync::Arc;

async fn context(root: &mut Root) -> (Fake, Arc<Context>) {
    let fake = Fake::start(root.path().join("fake.sock"), ACCEPT);
    root.set_lmtp(&fake.path);
    (fake, Arc::new(Context::from_config(&root.cfg).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_attempt_uses_the_pickup_read() {
    let mut root = root("");
    let (fake, ctx) = context(&mut root).await;
    let id = root.queue("sender@remote.test", &["alice@example.test"], |_| {});
    assert!(queue::pickup(&ctx, QueueName::Incoming, &id));
    assert_eq!(ctx.prefetch.len(), 1, "pickup kept nothing");
    queue::attempt(Arc::clone(&ctx), id.clone()).await;
    assert_eq!(fake.transactions(), 1);
    assert!(ctx.prefetch.is_empty(), "the attempt left its read");
    assert!(root.queue_empty());
    let lines = fake.lines.lock().unwrap().clone();
    assert!(
        lines
            .iter()
            .any(|l| l.contains("RCPT TO:<alice@example.test>")),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_request_after_pickup_is_obeyed() {
    let mut root = root("");
    let (fake, ctx) = context(&mut root).await;
    let held = root.queue("sender@remote.test", &["alice@example.test"], |_| {});
    let deleted = root.queue("sender@remote.test", &["bob@example.test"], |_| {});
    assert!(queue::pickup(&ctx, QueueName::Incoming, &held));
    assert!(queue::pickup(&ctx, QueueName::Incoming, &deleted));
    assert_eq!(ctx.prefetch.len(), 2);

    let a = lane::control(&ctx, &Op::Hold(held.clone()));
    assert!(a.result.is_ok(), "{:?}", a.result);
    let a = lane::control(&ctx, &Op::Delete(deleted.clone()));
    assert!(a.result.is_ok(), "{:?}", a.result);
    assert!(ctx.prefetch.is_empty(), "reads kept past a request");

    // Were the scheduler to start the attempts anyway, they find the
    // files gone from active/ and deliver nothing.
    queue::attempt(Arc::clone(&ctx), held.clone()).await;
    queue::attempt(Arc::clone(&ctx), deleted.clone()).await;
    assert_eq!(fake.transactions(), 0, "a held or deleted message went out");
    assert_eq!(root.ids(QueueName::Hold), vec![held]);
    assert!(root.queue_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewritten_file_is_read_again() {
    let mut root = root("");
    let (fake, ctx) = context(&mut root).await;
    // An alias: pickup writes the resolved recipients into the file.
    let id = root.queue("sender@remote.test", &["team@example.test"], |_| {});
    assert!(queue::pickup(&ctx, QueueName::Incoming, &id));
    assert!(ctx.prefetch.is_empty(), "kept the read of a rewritten file");
    queue::attempt(Arc::clone(&ctx), id).await;
    assert_eq!(fake.transactions(), 1);
    let lines = fake.lines.lock().unwrap().clone();
    for who in ["alice", "bob"] {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(&format!("RCPT TO:<{who}@example.test>"))),
            "{lines:?}"
        );
    }
}
