//! Tests of the first fill: the view shown before the commit, what waits
//! for the commit and what does not, and a fill that fails after showing.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use crate::{Quota, Result, Store, StoreConfig, StoreError};

/// What a fill of the folder at a path does before its commit (a test's
/// own temporary directory: tests running at once do not meet).
type Hook = Arc<dyn Fn() -> Result<()> + Send + Sync>;
static BEFORE_COMMIT: Mutex<Vec<(PathBuf, Hook)>> = Mutex::new(Vec::new());

pub(super) fn before_commit(dir: &Path) -> Result<()> {
    let hook = BEFORE_COMMIT
        .lock()
        .unwrap()
        .iter()
        .find(|(d, _)| d == dir)
        .map(|(_, h)| Arc::clone(h));
    hook.map_or(Ok(()), |h| h())
}

fn hook(dir: &Path, h: Hook) {
    BEFORE_COMMIT.lock().unwrap().push((dir.to_path_buf(), h));
}

fn unhook(dir: &Path) {
    BEFORE_COMMIT.lock().unwrap().retain(|(d, _)| d != dir);
}

const USER: &str = "u@x.test";

/// A store whose user has `n` messages in INBOX's `cur/` and no index
/// rows; the path of INBOX.
fn filled_maildir(n: u32) -> (tempfile::TempDir, Store, PathBuf) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::new(StoreConfig {
        root: d.path().to_path_buf(),
        hostname: "h".into(),
    });
    s.create_user(USER).unwrap();
    let inbox = d.path().join("x.test/u");
    for i in 0..n {
        let body = format!("Subject: {i}\n\nmessage {i}\n");
        let name = format!("{}.M{i}P1.h,S={}:2,", 1_700_000_000 + i, body.len());
        std::fs::write(inbox.join("cur").join(name), body).unwrap();
    }
    (d, s, inbox)
}

#[test]
fn a_select_is_answered_before_the_fill_commits_and_served_meanwhile() {
    // Few messages (the view built before the rows go in) and many (built
    // on another thread while they go in).
    for n in [3, crate::sync::PARALLEL_VIEW_ROWS as u32 + 5] {
        let (d, s, inbox) = filled_maildir(n);
        let (open, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        hook(
            &inbox,
            Arc::new(move || {
                let _ = gate.lock().unwrap().recv();
                Ok(())
            }),
        );
        let us = s.open_user(USER, Quota::default()).unwrap();
        // Returns while the fill waits at the gate, its rows not committed.
        let (mut mb, claimed) = us.select_claiming("INBOX").unwrap();
        assert_eq!(
            claimed,
            Some((1, n + 1)),
            "every message recent for the SELECT"
        );
        let uids: Vec<u32> = mb.messages().iter().map(|m| m.uid).collect();
        assert_eq!(uids, (1..=n).collect::<Vec<_>>());
        assert_eq!(mb.uidnext(), n + 1);
        // Served from the view meanwhile: a sync sees nothing new and
        // does not wait; an IDLE session comes back soon.
        let changes = mb.sync().unwrap();
        assert!(changes.added.is_empty() && changes.expunged.is_empty());
        assert_eq!(mb.verification_in(), Some(super::super::FILL_RECHECK));
        assert_eq!(mb.recent_from().unwrap(), n + 1);
        // Another opening needs the index: it waits for the commit.
        let other = {
            let s = s.clone();
            std::thread::spawn(move || {
                let us = s.open_user(USER, Quota::default()).unwrap();
                let mb = us.select("INBOX").unwrap();
                (
                    mb.uidvalidity(),
                    mb.messages().len(),
                    mb.recent_from().unwrap(),
                )
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        assert!(!other.is_finished(), "opened before the fill committed");
        open.send(()).unwrap();
        let (uidvalidity, count, recent_from) = other.join().unwrap();
        assert_eq!((uidvalidity, count), (mb.uidvalidity(), n as usize));
        assert_eq!(recent_from, n + 1, "the claim was committed with the rows");
        unhook(&inbox);
        // Once committed, this handle syncs against the index again.
        let end = Instant::now() + Duration::from_secs(10);
        while mb.filling.is_some() {
            assert!(Instant::now() < end, "the fill never ended");
            std::thread::sleep(Duration::from_millis(10));
            mb.sync().unwrap();
        }
        assert_ne!(mb.verification_in(), Some(super::super::FILL_RECHECK));
        // And the rows are there for a new process.
        let again = Store::new(StoreConfig {
            root: d.path().to_path_buf(),
            hostname: "h".into(),
        });
        let mb2 = again
            .open_user(USER, Quota::default())
            .unwrap()
            .select("INBOX")
            .unwrap();
        assert_eq!(mb2.uidvalidity(), mb.uidvalidity());
        assert_eq!(mb2.messages().len(), n as usize);
    }
}

#[test]
fn a_fill_that_fails_after_showing_its_view_ends_the_session() {
    let (_d, s, inbox) = filled_maildir(10);
    hook(
        &inbox,
        Arc::new(|| Err(StoreError::Index("injected failure".into()))),
    );
    let us = s.open_user(USER, Quota::default()).unwrap();
    let mut mb = us.select("INBOX").unwrap();
    let shown = mb.uidvalidity();
    assert_eq!(mb.messages().len(), 10);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        match mb.sync() {
            Ok(_) => {}
            Err(StoreError::NoSuchMailbox(_)) => break,
            Err(e) => panic!("{e}"),
        }
        assert!(
            Instant::now() < end,
            "the failure never reached the session"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    unhook(&inbox);
    // Nothing was committed: the next opening fills again, under a new,
    // greater UIDVALIDITY (the UIDs the session showed die with the old).
    let mb = us.select("INBOX").unwrap();
    assert!(mb.uidvalidity() > shown);
    assert_eq!(mb.messages().len(), 10);
}
