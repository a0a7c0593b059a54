//! Start-up with thousands of messages in active/ (issue 14, item 8):
//! recovery logs one summary line, not a line per message (a qmgr that
//! stopped during a burst logged 586,330 lines at one start), and still
//! warns about each retry that was in progress (the possible duplicates).

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

mod common;
mod spoolfill;

use common::*;
use facteur_spool::QueueName;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// What qmgr logs at the default level (info), as text lines.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn lines(&self) -> Vec<String> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_with_thousands_in_active_logs_a_summary() {
    let log = Log::default();
    let w = log.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || w.clone())
        .init();
    let root = root("");
    let spool = root.spool();
    // Picked up, never tried (a first attempt may have been under way).
    let fresh = spoolfill::fill(
        &spool,
        QueueName::Active,
        3000,
        "alice@example.test",
        |_| {},
    );
    // Tried, not due: they go back to deferred/.
    let tried = spoolfill::fill(
        &spool,
        QueueName::Active,
        1000,
        "bob@example.test",
        spoolfill::deferred_for_an_hour,
    );
    // Retries that were in progress: warned one by one.
    let marked = spoolfill::fill(&spool, QueueName::Active, 3, "carol@example.test", |e| {
        spoolfill::deferred_for_an_hour(e);
        e.recipients[0].last_reply = Some(format!(
            "{}451 4.3.0 try again later",
            facteur_qmgr::queue::IN_PROGRESS
        ));
    });
    let lmtpd = start_lmtpd(&root.cfg).await;
    let qmgr = start_qmgr(&root.cfg).await;
    wait_for(30, "the not-due ones back in deferred/", || {
        root.ids(QueueName::Deferred).len() == tried.len()
    })
    .await;
    wait_for(10, "the summary line", || {
        log.lines().iter().any(|l| l.contains("start-up:"))
    })
    .await;
    qmgr.stop().await;
    lmtpd.stop().await;

    let lines = log.lines();
    let summary: Vec<&String> = lines.iter().filter(|l| l.contains("start-up:")).collect();
    assert_eq!(summary.len(), 1, "{summary:#?}");
    let s = summary[0];
    for field in [
        "found=4003",
        "tried_now=3003",
        "never_tried=3000",
        "in_progress=3",
        "to_deferred=1000",
    ] {
        assert!(s.contains(field), "{field} not in {s}");
    }
    // Nothing per message about recovery at the info level...
    let per_message: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains("start-up:"))
        .filter(|l| l.contains("before qmgr stopped") || l.contains("back to deferred"))
        .collect();
    assert!(
        per_message.is_empty(),
        "{} lines, e.g. {:?}",
        per_message.len(),
        per_message.first()
    );
    // ...and nothing at all about the messages that only went back.
    let about_tried = lines
        .iter()
        .filter(|l| tried.iter().any(|id| l.contains(id.as_str())))
        .count();
    assert_eq!(about_tried, 0);
    // But each retry that was in progress is named, with its warning.
    for id in &marked {
        assert!(
            lines
                .iter()
                .any(|l| l.contains(id.as_str()) && l.contains("duplicate")),
            "no warning for {id}"
        );
    }
    assert!(fresh.len() + tried.len() + marked.len() == 4003);
}
