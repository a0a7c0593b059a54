//! Tests of Mailbox and sync (kept apart from mailbox.rs for its length).

use super::*;
use crate::{
    ANSWERED, DELETED, DRAFT, FLAGGED, FlagOp, Flags, Quota, SEEN, Store, StoreConfig, UserStore,
};
use std::fs::{self, File};
use std::path::Path;

const USER: &str = "u@x.test";

/// A store with one user, `USER` (the other modules' tests use it too).
pub(crate) fn setup() -> (tempfile::TempDir, Store, UserStore) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::new(StoreConfig {
        root: d.path().to_path_buf(),
        hostname: "h".into(),
    });
    s.create_user(USER).unwrap();
    let us = s.open_user(USER, Quota::default()).unwrap();
    (d, s, us)
}

pub(super) fn deliver(s: &Store, body: &str) {
    s.deliver(USER, None, &mut body.as_bytes(), Quota::default())
        .unwrap();
}

pub(super) fn uids(mb: &Mailbox) -> Vec<u32> {
    mb.messages().iter().map(|m| m.uid).collect()
}

/// Asserts that `mb`'s view is the index's state (with `lazy_dates`,
/// internal dates the view has not read yet are not compared).
fn assert_view_is_index(us: &UserStore, mb: &Mailbox, lazy_dates: bool) {
    let mut loaded = index::load_messages(&us.inner.conn(), mb.id, 0).unwrap();
    if lazy_dates {
        for (l, m) in loaded.iter_mut().zip(mb.messages.iter()) {
            if m.internal_date == crate::UNKNOWN_DATE {
                l.internal_date = m.internal_date;
            }
        }
    }
    assert_eq!(*mb.messages, loaded, "the view is the index's state");
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    v.sort();
    v
}

#[test]
fn handles_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
    check::<UserStore>();
    check::<Mailbox>();
}

#[test]
fn select_assigns_uids_stable_after_reopen() {
    let (d, s, us) = setup();
    for i in 0..3 {
        deliver(&s, &format!("Subject: {i}\r\n\r\nbody {i}\r\n"));
    }
    let mb = us.select("INBOX").unwrap();
    assert_eq!(uids(&mb), [1, 2, 3]);
    assert_eq!(mb.uidnext(), 4);
    let v = mb.uidvalidity();
    assert!(v > 0);
    let udir = d.path().join("x.test/u");
    assert!(names(&udir.join("new")).is_empty(), "moved to cur/");
    assert!(names(&udir.join("cur")).iter().all(|n| n.ends_with(":2,")));
    let bodies: Vec<_> = mb
        .messages()
        .iter()
        .map(|m| mb.read_message(m.uid).unwrap())
        .collect();
    for (i, b) in bodies.iter().enumerate() {
        assert_eq!(
            b,
            format!("Subject: {i}\r\n\r\nbody {i}\r\n").as_bytes(),
            "order by delivery"
        );
    }
    let mut streamed = Vec::new();
    mb.open_message(2)
        .unwrap()
        .read_to_end(&mut streamed)
        .unwrap();
    assert_eq!(bodies[1], streamed);
    assert_eq!(mb.messages()[0].size, bodies[0].len() as u64);
    drop(mb);
    drop(us);
    let us = s.open_user(USER, Quota::default()).unwrap();
    let mb = us.select("inbox").unwrap();
    assert_eq!(
        (uids(&mb), mb.uidvalidity(), mb.name()),
        (vec![1, 2, 3], v, "INBOX")
    );
    assert!(matches!(
        mb.read_message(9),
        Err(StoreError::NoSuchMessage(9))
    ));
    assert!(matches!(
        us.select("Nope"),
        Err(StoreError::NoSuchMailbox(_))
    ));
}

#[test]
fn uid_never_reused_after_expunge() {
    let (_d, s, us) = setup();
    deliver(&s, "a\r\n");
    deliver(&s, "b\r\n");
    let mut mb = us.select("INBOX").unwrap();
    mb.store_flags(&[2], FlagOp::Add, &Flags::system(DELETED), None)
        .unwrap();
    assert_eq!(mb.expunge(None).unwrap(), [2]);
    assert_eq!(uids(&mb), [1]);
    deliver(&s, "c\r\n");
    let ch = mb.sync().unwrap();
    assert_eq!(ch.added, [3]);
    assert!(ch.expunged.is_empty());
    assert_eq!(uids(&mb), [1, 3]);
    assert_eq!(mb.read_message(3).unwrap(), b"c\r\n");
}

#[test]
fn a_first_scan_numbers_by_delivery_time_and_keeps_one_file_per_base() {
    let (d, _s, us) = setup();
    let cur = d.path().join("x.test/u/cur");
    for name in [
        "1700000000.M100P1.h:2,",
        "1700000000.M99P1.h:2,S",
        "1600000000.M5.h",
        // one message under two names (a copy left behind): one is kept
        "1650000000.M1.h:2,S",
        "1650000000.M1.h:2,F",
    ] {
        fs::write(cur.join(name), "x\n").unwrap();
    }
    let mut mb = us.select("INBOX").unwrap();
    let names: Vec<(u32, &str)> = mb
        .messages()
        .iter()
        .map(|m| (m.uid, &*m.file_name))
        .collect();
    assert_eq!(
        names,
        [
            (1, "1600000000.M5.h"),
            (2, "1650000000.M1.h:2,F"),
            (3, "1700000000.M99P1.h:2,S"),
            (4, "1700000000.M100P1.h:2,"),
        ]
    );
    assert_eq!(mb.messages()[1].flags.system, FLAGGED);
    // The kept name goes: the other file of that base is the same
    // message, found again (renamed), not a new one.
    fs::remove_file(cur.join("1650000000.M1.h:2,F")).unwrap();
    let ch = mb.sync().unwrap();
    assert_eq!(ch.flags_changed, [2]);
    assert!(ch.added.is_empty() && ch.expunged.is_empty());
    assert_eq!(&*mb.messages()[1].file_name, "1650000000.M1.h:2,S");
    assert_eq!(mb.messages()[1].flags.system, SEEN);
}

#[test]
fn external_tool_changes_are_noticed() {
    let (d, s, us) = setup();
    deliver(&s, "a\r\n");
    deliver(&s, "b\r\n");
    let mut mb = us.select("INBOX").unwrap();
    let cur = d.path().join("x.test/u/cur");
    let m0 = mb.messages()[0].clone();
    let base = m0.file_name.split(':').next().unwrap().to_owned();
    // mutt marks message 1 seen and flagged.
    fs::rename(cur.join(&*m0.file_name), cur.join(format!("{base}:2,FS"))).unwrap();
    // Another tool removes message 2 and drops a new one into cur/ (no S=/W=).
    fs::remove_file(cur.join(&*mb.messages()[1].file_name)).unwrap();
    fs::write(cur.join("1234.foreign.host:2,S"), "x\ny\n").unwrap();
    let before = mb.highest_modseq();
    let ch = mb.sync().unwrap();
    assert_eq!(ch.flags_changed, [1]);
    assert_eq!(ch.expunged, [2]);
    assert_eq!(ch.added, [3]);
    assert_eq!(mb.messages()[0].flags.system, SEEN | FLAGGED);
    assert!(mb.messages()[0].modseq > before);
    assert_eq!(mb.messages()[1].size, 6, "CRLF size counted");
    assert_eq!(mb.read_message(3).unwrap(), b"x\r\ny\r\n");
    assert_eq!(mb.vanished_since(before).unwrap(), [2]);
    // Nothing more changed: an empty sync.
    assert_eq!(mb.sync().unwrap(), SyncChanges::default());
    // A rename behind our back, then a STORE on the old name: retried.
    let m = mb.messages()[0].clone();
    let base = m.file_name.split(':').next().unwrap().to_owned();
    fs::rename(cur.join(&*m.file_name), cur.join(format!("{base}:2,S"))).unwrap();
    let r = mb
        .store_flags(&[1], FlagOp::Add, &Flags::system(ANSWERED), None)
        .unwrap();
    assert_eq!(r.updated, [1]);
    assert!(cur.join(format!("{base}:2,RS")).exists());
    // And reading a message renamed behind our back still works.
    fs::rename(
        cur.join(format!("{base}:2,RS")),
        cur.join(format!("{base}:2,R")),
    )
    .unwrap();
    assert_eq!(mb.read_message(1).unwrap(), b"a\r\n");
    // STORE commits without fsync (synchronous=NORMAL, 1); a commit that
    // must be fsynced gets FULL (2) again, however the last one left it.
    let level = |tx: &rusqlite::Connection| -> Result<i64> {
        Ok(tx.query_row("PRAGMA synchronous", [], |r| r.get(0))?)
    };
    for _ in 0..2 {
        assert_eq!(
            us.inner.write_unsynced(level).unwrap(),
            1,
            "NORMAL inside write_unsynced"
        );
    }
    for _ in 0..2 {
        assert_eq!(us.inner.write(level).unwrap(), 2, "FULL inside write");
    }
    assert_eq!(us.inner.write_unsynced(level).unwrap(), 1);
    assert_eq!(us.inner.write(level).unwrap(), 2);
    // A STORE whose retry scan gives a UID to a new file: the UID is kept.
    deliver(&s, "c\r\n");
    fs::rename(
        cur.join(format!("{base}:2,R")),
        cur.join(format!("{base}:2,FR")),
    )
    .unwrap();
    let r = mb
        .store_flags(&[1], FlagOp::Add, &Flags::system(DRAFT), None)
        .unwrap();
    assert_eq!(r.updated, [1]);
    let again = us.select("INBOX").unwrap();
    assert_eq!(uids(&again), [1, 3, 4]);
}

#[test]
fn store_flags_keywords_and_unchangedsince() {
    let (d, s, us) = setup();
    deliver(&s, "a\r\n");
    deliver(&s, "b\r\n");
    let mut mb = us.select("INBOX").unwrap();
    let ms0 = mb.messages()[0].modseq;
    let mut f = Flags::system(SEEN);
    f.keywords.insert("$Junk".into());
    let r = mb.store_flags(&[1, 2, 99], FlagOp::Add, &f, None).unwrap();
    assert_eq!(r.updated, [1, 2]);
    assert!(mb.messages().iter().all(|m| m.flags == f && m.modseq > ms0));
    let cur = d.path().join("x.test/u/cur");
    assert!(
        names(&cur).iter().all(|n| n.ends_with(":2,S")),
        "keywords not in names"
    );
    // Unchanged flags do not bump.
    let hm = mb.messages()[1].modseq;
    assert!(
        mb.store_flags(&[2], FlagOp::Add, &f, None)
            .unwrap()
            .updated
            .is_empty()
    );
    assert_eq!(mb.messages()[1].modseq, hm);
    // UNCHANGEDSINCE: message 1 changed after `ms0`.
    let r = mb
        .store_flags(&[1, 2], FlagOp::Remove, &Flags::system(SEEN), Some(ms0))
        .unwrap();
    assert_eq!((r.updated, r.failed), (vec![], vec![1, 2]));
    let r = mb
        .store_flags(&[1], FlagOp::Replace, &Flags::system(FLAGGED), Some(hm))
        .unwrap();
    assert_eq!(r.updated, [1]);
    assert_eq!(mb.messages()[0].flags, Flags::system(FLAGGED));
    // Another session sees the change, flags included.
    let us2 = s.open_user(USER, Quota::default()).unwrap();
    let mb2 = us2.select("INBOX").unwrap();
    assert_eq!(mb2.messages()[0].flags, Flags::system(FLAGGED));
    assert!(mb2.messages()[1].flags.keywords.contains("$Junk"));
    assert_eq!(
        mb2.changed_since(hm)
            .iter()
            .map(|m| m.uid)
            .collect::<Vec<_>>(),
        [1]
    );
    // Our own STORE is not reported again by sync.
    assert!(mb.sync().unwrap().flags_changed.is_empty());
}

#[test]
fn a_masked_store_keeps_the_flags_outside_the_mask() {
    let (_d, s, us) = setup();
    deliver(&s, "a\r\n");
    let mut mb = us.select("INBOX").unwrap();
    let mut f = Flags::system(FLAGGED | DELETED);
    f.keywords.insert("$Work".into());
    mb.store_flags(&[1], FlagOp::Replace, &f, None).unwrap();
    // Rights "s" only (RFC 4314 §4): \Seen may change, nothing else.
    let only_seen = crate::FlagMask {
        system: SEEN,
        keywords: false,
    };
    let r = mb
        .store_flags_masked(&[1], FlagOp::Replace, &Flags::system(SEEN), None, only_seen)
        .unwrap();
    assert_eq!(r.updated, [1]);
    let mut want = f.clone();
    want.system |= SEEN;
    assert_eq!(mb.messages()[0].flags, want);
    // A change wholly outside the mask changes nothing (no new modseq).
    let ms = mb.messages()[0].modseq;
    let r = mb
        .store_flags_masked(&[1], FlagOp::Remove, &f, None, only_seen)
        .unwrap();
    assert!(r.updated.is_empty());
    assert_eq!(mb.messages()[0].modseq, ms);
    assert_eq!(crate::FlagMask::ALL.filter(&f), f);
    assert_eq!(only_seen.filter(&want), Flags::system(SEEN));
}

#[test]
fn append_copy_move_expunge() {
    let (d, _s, us) = setup();
    let mut inbox = us.select("INBOX").unwrap();
    let mut archive = us.select("Archive").unwrap();
    let m0 = inbox.highest_modseq();
    let uid = inbox
        .append(
            &mut &b"Subject: app\r\n\r\nx\r\n"[..],
            &Flags::system(SEEN),
            Some(1_000_000_000),
        )
        .unwrap();
    assert_eq!(uid, 1);
    let ch = inbox.sync().unwrap();
    assert_eq!(ch.added, [1]);
    let m = &inbox.messages()[0];
    assert_eq!(
        (m.internal_date, m.flags.system, m.size),
        (1_000_000_000, SEEN, 19)
    );
    assert!(m.modseq > m0);
    let f = d.path().join("x.test/u/cur").join(&*m.file_name);
    assert_eq!(
        fs::metadata(&f).unwrap().modified().unwrap(),
        UNIX_EPOCH_PLUS(1_000_000_000)
    );
    assert!(names(&d.path().join("x.test/u/tmp")).is_empty());

    // COPY: a new UID in Archive, the same bytes, the same flags.
    assert_eq!(inbox.copy_to(&[1], &mut archive).unwrap(), [(1, 1)]);
    assert_eq!(archive.sync().unwrap().added, [1]);
    assert_eq!(
        archive.read_message(1).unwrap(),
        b"Subject: app\r\n\r\nx\r\n"
    );
    assert_eq!(archive.messages()[0].flags.system, SEEN);
    assert_eq!(archive.messages()[0].internal_date, 1_000_000_000);
    assert_eq!(us.quota_usage().unwrap(), (32, 2));

    // MOVE back from Archive: gone there (tombstone), new UID in INBOX.
    let before = archive.highest_modseq();
    assert_eq!(archive.move_to(&[1], &mut inbox).unwrap(), [(1, 2)]);
    assert!(archive.messages().is_empty());
    assert_eq!(
        archive.sync().unwrap(),
        SyncChanges::default(),
        "already out of the view"
    );
    assert_eq!(archive.vanished_since(before).unwrap(), [1]);
    assert_eq!(inbox.sync().unwrap().added, [2]);
    assert_eq!(
        names(&d.path().join("x.test/u/.Archive/cur")),
        Vec::<String>::new()
    );

    // EXPUNGE only \Deleted ones, restricted to the given UIDs.
    inbox
        .store_flags(&[1, 2], FlagOp::Add, &Flags::system(DELETED), None)
        .unwrap();
    let before = inbox.highest_modseq();
    let ms_after_store = inbox.messages()[1].modseq;
    assert_eq!(inbox.expunge(Some(&[2])).unwrap(), [2]);
    assert_eq!(uids(&inbox), [1]);
    assert_eq!(inbox.expunge(None).unwrap(), [1]);
    assert!(inbox.messages().is_empty());
    assert_eq!(inbox.vanished_since(before).unwrap(), [1, 2]);
    assert_eq!(inbox.vanished_since(ms_after_store + 1).unwrap(), [1]);
    assert_eq!(us.quota_usage().unwrap(), (0, 0));
    assert!(names(&d.path().join("x.test/u/cur")).is_empty());
    assert_eq!(inbox.sync().unwrap(), SyncChanges::default());
}

#[allow(non_snake_case)]
fn UNIX_EPOCH_PLUS(secs: u64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

#[test]
fn append_enforces_quota() {
    let (_d, s, _) = setup();
    let us = s
        .open_user(
            USER,
            Quota {
                bytes: 0,
                messages: 1,
            },
        )
        .unwrap();
    let mut mb = us.select("INBOX").unwrap();
    mb.append(&mut &b"a\r\n"[..], &Flags::default(), None)
        .unwrap();
    assert!(matches!(
        mb.append(&mut &b"b\r\n"[..], &Flags::default(), None),
        Err(StoreError::OverQuota)
    ));
    let mut sent = us.select("Sent").unwrap();
    assert!(matches!(
        mb.copy_to(&[1], &mut sent),
        Err(StoreError::OverQuota)
    ));
    assert_eq!(us.quota_usage().unwrap(), (2, 1));
}

#[test]
fn rename_inbox_moves_messages() {
    let (_d, s, us) = setup();
    deliver(&s, "a\r\n");
    deliver(&s, "b\r\n");
    let inbox = us.select("INBOX").unwrap();
    assert_eq!(inbox.messages().len(), 2);
    us.rename_mailbox("INBOX", "Old").unwrap();
    let mut inbox = us.select("INBOX").unwrap();
    assert!(inbox.messages().is_empty());
    let old = us.select("Old").unwrap();
    assert_eq!(uids(&old), [1, 2]);
    assert_eq!(old.read_message(2).unwrap(), b"b\r\n");
    deliver(&s, "c\r\n");
    assert_eq!(inbox.sync().unwrap().added, [3], "INBOX UIDs go on");
    // A plain rename keeps UIDVALIDITY and UIDs.
    let v = old.uidvalidity();
    drop(old);
    us.rename_mailbox("Old", "Older/Still").unwrap();
    let o = us.select("Older/Still").unwrap();
    assert_eq!((o.uidvalidity(), uids(&o)), (v, vec![1, 2]));
}

#[test]
fn index_deleted_or_corrupt_is_rebuilt_with_new_uidvalidity() {
    let (d, s, us) = setup();
    for i in 0..5 {
        deliver(&s, &format!("m{i}\r\n"));
    }
    let mut mb = us.select("INBOX").unwrap();
    mb.store_flags(&[2], FlagOp::Add, &Flags::system(FLAGGED), None)
        .unwrap();
    let v = mb.uidvalidity();
    drop(mb);
    drop(us);
    let udir = d.path().join("x.test/u");
    for ext in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(udir.join(format!("facteur-index.sqlite{ext}")));
    }
    let us = s.open_user(USER, Quota::default()).unwrap();
    let mb = us.select("INBOX").unwrap();
    assert!(mb.uidvalidity() > v);
    assert_eq!(mb.messages().len(), 5);
    assert_eq!(
        mb.messages()[1].flags.system,
        FLAGGED,
        "flags come back from names"
    );
    assert_eq!(mb.read_message(5).unwrap(), b"m4\r\n");
    let sent = us
        .list_mailboxes()
        .unwrap()
        .into_iter()
        .find(|m| m.name == "Sent")
        .unwrap();
    assert_eq!(
        sent.special_use,
        Some(crate::SpecialUse::Sent),
        "roles come back"
    );
    let v2 = mb.uidvalidity();
    // The rebuild's fill commits on a thread of its own: until that thread
    // lets go of the index, closing its connection could write the WAL
    // back over the garbage below.
    mb.wait_for_fill();
    drop(mb);
    drop(us);
    fs::write(udir.join("facteur-index.sqlite"), vec![0x55; 4096]).unwrap();
    let _ = fs::remove_file(udir.join("facteur-index.sqlite-wal"));
    let _ = fs::remove_file(udir.join("facteur-index.sqlite-shm"));
    let us = s.open_user(USER, Quota::default()).unwrap();
    let mb = us.select("INBOX").unwrap();
    assert!(mb.uidvalidity() > v2);
    assert_eq!(mb.messages().len(), 5);
}

#[test]
fn deleted_and_recreated_mailbox_ends_session() {
    let (_d, _s, us) = setup();
    us.create_mailbox("Tmp", None).unwrap();
    let mut mb = us.select("Tmp").unwrap();
    let v = mb.uidvalidity();
    us.delete_mailbox("Tmp").unwrap();
    assert!(matches!(mb.sync(), Err(StoreError::NoSuchMailbox(_))));
    us.create_mailbox("Tmp", None).unwrap();
    assert!(matches!(mb.sync(), Err(StoreError::NoSuchMailbox(_))));
    assert!(us.select("Tmp").unwrap().uidvalidity() > v);
}

#[test]
fn concurrent_syncs_never_duplicate_uids() {
    let (_d, s, _us) = setup();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut readers = Vec::new();
    for _ in 0..2 {
        let s = s.clone();
        let stop = Arc::clone(&stop);
        readers.push(std::thread::spawn(move || {
            let us = s.open_user(USER, Quota::default()).unwrap();
            let mut mb = us.select("INBOX").unwrap();
            let mut seen = std::collections::HashMap::new();
            loop {
                let done = stop.load(std::sync::atomic::Ordering::SeqCst);
                mb.sync().unwrap();
                for m in mb.messages() {
                    // A UID always names the same file (same base).
                    let base = m.file_name.split(':').next().unwrap().to_owned();
                    let prev = seen.insert(m.uid, base.clone());
                    assert!(prev.is_none_or(|p| p == base), "uid {} given twice", m.uid);
                }
                if done {
                    return uids(&mb);
                }
            }
        }));
    }
    let writers: Vec<_> = (0..3)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..40 {
                    deliver(&s, &format!("t{t} m{i}\r\n"));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    for r in readers {
        assert_eq!(r.join().unwrap(), (1..=120).collect::<Vec<u32>>());
    }
}

/// Run with `cargo test -p facteur-store -- --ignored --nocapture bench`.
#[test]
#[ignore]
fn bench_select_100k() {
    let (d, s, us) = setup();
    let udir = d.path().join("x.test/u");
    let cur = udir.join("cur");
    let t = std::time::Instant::now();
    for i in 0..100_000u32 {
        fs::write(
            cur.join(format!("{}.M{i}P1Q{i}R0.h,S=5,W=6:2,S", 1_600_000_000 + i)),
            "body\n",
        )
        .unwrap();
    }
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(60);
    for sub in ["cur", "new"] {
        File::open(udir.join(sub))
            .unwrap()
            .set_modified(old)
            .unwrap();
    }
    eprintln!("wrote 100k files in {:?}", t.elapsed());
    drop(us);
    // the first SELECT of a mailbox no index knows, three times over
    for _ in 0..3 {
        for e in fs::read_dir(&udir).unwrap() {
            let p = e.unwrap().path();
            if p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(crate::index::FILE)
            {
                fs::remove_file(p).unwrap();
            }
        }
        let us = s.open_user(USER, Quota::default()).unwrap();
        let t = std::time::Instant::now();
        let mb = us.select("INBOX").unwrap();
        eprintln!("cold select (scan, 100k UIDs assigned): {:?}", t.elapsed());
        assert_eq!(mb.messages().len(), 100_000);
    }
    let us = s.open_user(USER, Quota::default()).unwrap();
    let mut best = std::time::Duration::MAX;
    for _ in 0..5 {
        let t = std::time::Instant::now();
        let mb = us.select("INBOX").unwrap();
        best = best.min(t.elapsed());
        assert_eq!(mb.uidnext(), 100_001);
    }
    eprintln!("warm select of 100k messages: best of 5 {best:?}");
    let mut mb = us.select("INBOX").unwrap();
    let t = std::time::Instant::now();
    mb.sync().unwrap();
    eprintln!("sync with nothing changed: {:?}", t.elapsed());
}

#[test]
fn cached_views_are_shared_and_never_stale() {
    let (_d, s, us) = setup();
    for i in 0..3 {
        deliver(&s, &format!("Subject: {i}\r\n\r\nbody {i}\r\n"));
    }
    let mut a = us.select("INBOX").unwrap();
    // A second SELECT of an unchanged mailbox shares the first one's view.
    let b = us.select("INBOX").unwrap();
    assert!(Arc::ptr_eq(&a.messages, &b.messages));
    // A handle that changes flags copies the view; the cache keeps the old
    // one only under the old HIGHESTMODSEQ, so a new SELECT sees the change.
    a.store_flags(&[2], FlagOp::Add, &Flags::system(SEEN), None)
        .unwrap();
    assert!(!Arc::ptr_eq(&a.messages, &b.messages));
    assert_eq!(b.messages()[1].flags.system & SEEN, 0);
    let c = us.select("INBOX").unwrap();
    assert_eq!(c.messages()[1].flags.system & SEEN, SEEN);
    // New mail and expunges too.
    deliver(&s, "Subject: 4\r\n\r\nbody 4\r\n");
    let d = us.select("INBOX").unwrap();
    assert_eq!(uids(&d), [1, 2, 3, 4]);
    // Another user store (another process's view of the same index) agrees.
    let other = s.open_user(USER, Quota::default()).unwrap();
    assert_eq!(uids(&other.select("INBOX").unwrap()), [1, 2, 3, 4]);
}

#[test]
fn internal_dates_are_read_when_asked_and_kept() {
    let (d, s, us) = setup();
    deliver(&s, "a\r\n");
    deliver(&s, "b\r\n");
    let new = d.path().join("x.test/u/new");
    let when = |secs: i64| UNIX_EPOCH_PLUS(secs as u64);
    for (k, n) in names(&new).iter().enumerate() {
        File::options()
            .write(true)
            .open(new.join(n))
            .unwrap()
            .set_modified(when(1_000_000_000 + k as i64 * 86_400))
            .unwrap();
    }
    // The scan gives UIDs without reading the dates (the names carry S=).
    let mut mb = us.select("INBOX").unwrap();
    assert!(
        mb.messages()
            .iter()
            .all(|m| m.internal_date == crate::UNKNOWN_DATE)
    );
    // Message 2 is renamed by another tool before anyone asks: followed.
    let cur = d.path().join("x.test/u/cur");
    let m2 = mb.messages()[1].file_name.clone();
    let base = m2.split(':').next().unwrap().to_owned();
    fs::rename(cur.join(&*m2), cur.join(format!("{base}:2,S"))).unwrap();
    mb.resolve_dates(Some(&[1])).unwrap();
    assert_eq!(mb.messages()[0].internal_date, 1_000_000_000);
    assert_eq!(mb.messages()[1].internal_date, crate::UNKNOWN_DATE);
    mb.resolve_dates(None).unwrap();
    assert_eq!(mb.messages()[1].internal_date, 1_000_000_000 + 86_400);
    // Kept: a new handle knows them without asking, from the cached view
    // (the handle above is still open and shares it)...
    let again = us.select("INBOX").unwrap();
    let dates: Vec<i64> = again.messages().iter().map(|m| m.internal_date).collect();
    assert_eq!(dates, [1_000_000_000, 1_000_000_000 + 86_400]);
    // ...and from the index, in another process.
    drop((mb, again));
    let fresh = s.open_user(USER, Quota::default()).unwrap();
    let conn = fresh.inner.conn();
    let stored: Vec<i64> = conn
        .prepare("SELECT internal_date FROM messages ORDER BY uid")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(stored, [1_000_000_000, 1_000_000_000 + 86_400]);
    drop(conn);
    // The shared view got the dates too: with the index's copy wiped, a
    // new handle on the same view still knows them.
    deliver(&s, "c\r\n");
    let mut mb = us.select("INBOX").unwrap();
    assert_eq!(mb.messages()[2].internal_date, crate::UNKNOWN_DATE);
    mb.resolve_dates(None).unwrap();
    us.inner
        .conn()
        .execute(
            "UPDATE messages SET internal_date = ?1 WHERE uid = 3",
            [crate::UNKNOWN_DATE],
        )
        .unwrap();
    let other = us.select("INBOX").unwrap();
    assert_eq!(
        other.messages()[2].internal_date,
        mb.messages()[2].internal_date
    );
    assert_ne!(other.messages()[2].internal_date, crate::UNKNOWN_DATE);
}

#[test]
fn own_changes_cost_no_rescan_and_are_verified_after_settle() {
    let (d, s, us) = setup();
    deliver(&s, "a\r\n");
    let mut mb = us.select("INBOX").unwrap();
    // That scan moved the delivery from new/ to cur/, so the next one
    // scans again (once); new/ is made old, as it is between deliveries.
    let new = d.path().join("x.test/u/new");
    File::open(&new)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(3600))
        .unwrap();
    mb.sync().unwrap();
    let cur = d.path().join("x.test/u/cur");
    // Our own APPEND: cur/'s new mtime is recorded as ours.
    mb.append(&mut &b"b\r\n"[..], &Flags::default(), None)
        .unwrap();
    let mtime = fs::metadata(&cur).unwrap().modified().unwrap();
    // A file from another tool whose arrival leaves cur/'s mtime as it was
    // (as a change in the same clock tick as ours would).
    fs::write(cur.join("1234.foreign.host:2,S"), "x\ny\n").unwrap();
    File::open(&cur).unwrap().set_modified(mtime).unwrap();
    // No rescan: our APPEND shows up (from the index), the other file not
    // yet, and the store says when it will verify.
    let ch = mb.sync().unwrap();
    assert_eq!(ch.added, [2]);
    let wait = mb.verification_in().expect("a verification is due");
    assert!(wait <= crate::sync::SETTLE);
    // Once that time has passed, the next sync scans and finds it.
    std::thread::sleep(wait + std::time::Duration::from_millis(50));
    let ch = mb.sync().unwrap();
    assert_eq!(ch.added, [3]);
    assert_eq!(mb.read_message(3).unwrap(), b"x\r\ny\r\n");
    // Verified on a settled directory: nothing more to verify.
    std::thread::sleep(std::time::Duration::from_millis(100));
    mb.sync().unwrap();
    assert!(mb.verification_in().is_none());
}

#[test]
fn own_store_and_expunge_keep_the_view_shared_and_exact() {
    let (_d, s, us) = setup();
    for b in ["a\r\n", "b\r\n", "c\r\n"] {
        deliver(&s, b);
    }
    let mut a = us.select("INBOX").unwrap();
    let exact = |mb: &Mailbox| assert_view_is_index(&us, mb, false);
    let before = a.highest_modseq();
    a.store_flags(&[1, 2], FlagOp::Add, &Flags::system(SEEN | DELETED), None)
        .unwrap();
    assert_eq!(a.highest_modseq(), before + 2);
    exact(&a);
    // A new handle gets this very view from the cache (no reload).
    let c = us.select("INBOX").unwrap();
    assert!(Arc::ptr_eq(&a.messages, &c.messages));
    assert_eq!(c.highest_modseq(), a.highest_modseq());
    assert_eq!(a.expunge(None).unwrap(), [1, 2]);
    exact(&a);
    assert_eq!(uids(&a), [3]);
    let e = us.select("INBOX").unwrap();
    assert!(Arc::ptr_eq(&a.messages, &e.messages));
    // The other handle hears of it at its next sync, as before.
    let mut c = c;
    assert_eq!(c.sync().unwrap().expunged, [1, 2]);
}

#[test]
fn own_append_joins_the_view_and_the_next_sync_reports_it() {
    let (_d, s, us) = setup();
    deliver(&s, "a\r\n");
    let mut a = us.select("INBOX").unwrap();
    let exact = |mb: &Mailbox| assert_view_is_index(&us, mb, false);
    let uid = a
        .append(
            &mut &b"Subject: x\r\n\r\nb\r\n"[..],
            &Flags::system(SEEN),
            None,
        )
        .unwrap();
    assert_eq!(uid, 2);
    assert_eq!(uids(&a), [1, 2]);
    exact(&a);
    // Shared at its new key: a new handle gets this very view.
    let b = us.select("INBOX").unwrap();
    assert!(Arc::ptr_eq(&a.messages, &b.messages));
    let c = a.sync().unwrap();
    assert_eq!((c.added, c.expunged), (vec![2], vec![]));
    assert_eq!(a.sync().unwrap(), SyncChanges::default());

    // Appended, then expunged by another handle before this one synced:
    // never announced, so neither added nor expunged.
    let uid = a
        .append(&mut &b"c\r\n"[..], &Flags::system(DELETED), None)
        .unwrap();
    let mut b = us.select("INBOX").unwrap();
    assert_eq!(b.expunge(None).unwrap(), [uid]);
    assert_eq!(a.sync().unwrap(), SyncChanges::default());
    assert_eq!(uids(&a), [1, 2]);

    // A view that was not current (another handle appended) learns of
    // both at the sync, as before.
    let other = b
        .append(&mut &b"d\r\n"[..], &Flags::default(), None)
        .unwrap();
    let uid = a
        .append(&mut &b"e\r\n"[..], &Flags::default(), None)
        .unwrap();
    assert_eq!(uids(&a), [1, 2], "not current: not joined");
    let c = a.sync().unwrap();
    assert_eq!(c.added, [other, uid]);
    exact(&a);
}

#[test]
fn expunge_takes_deleted_messages_from_the_index_when_the_view_is_stale() {
    let (_d, s, us) = setup();
    for b in ["a\r\n", "b\r\n", "c\r\n"] {
        deliver(&s, b);
    }
    let mut a = us.select("INBOX").unwrap();
    let mut b = us.select("INBOX").unwrap();
    // a's view: 2 is \Deleted. b then undeletes 2 and deletes 3.
    a.store_flags(&[2], FlagOp::Add, &Flags::system(DELETED), None)
        .unwrap();
    b.sync().unwrap();
    b.store_flags(&[2], FlagOp::Remove, &Flags::system(DELETED), None)
        .unwrap();
    b.store_flags(&[3], FlagOp::Add, &Flags::system(DELETED), None)
        .unwrap();
    assert_eq!(a.expunge(None).unwrap(), [3]);
    // From a current view, its own \Deleted.
    a.sync().unwrap();
    a.store_flags(&[1], FlagOp::Add, &Flags::system(DELETED), None)
        .unwrap();
    assert_eq!(a.expunge(None).unwrap(), [1]);
    assert_eq!(uids(&a), [2]);
}

#[test]
fn a_stale_view_is_brought_up_to_date_by_the_changes_since() {
    let (_d, s, us) = setup();
    for b in ["a\r\n", "b\r\n", "c\r\n", "d\r\n"] {
        deliver(&s, b);
    }
    let mut a = us.select("INBOX").unwrap();
    let mut b = us.select("INBOX").unwrap();
    // Internal dates are filled lazily: compared where the view knows them.
    let exact = |mb: &Mailbox| assert_view_is_index(&us, mb, true);
    a.resolve_dates(None).unwrap();
    // b: a flag, an append, an expunge; then a delivery found by a scan.
    b.store_flags(&[2], FlagOp::Add, &Flags::system(FLAGGED), None)
        .unwrap();
    let new = b
        .append(&mut &b"e\r\n"[..], &Flags::default(), None)
        .unwrap();
    b.store_flags(&[3], FlagOp::Add, &Flags::system(DELETED), None)
        .unwrap();
    assert_eq!(b.expunge(None).unwrap(), [3]);
    // The cache holds b's view; a new handle starts from it.
    let c = a.sync().unwrap();
    assert_eq!(c.added, [new]);
    assert_eq!(c.expunged, [3]);
    assert_eq!(c.flags_changed, [2]);
    exact(&a);
    // A change the cache did not see (b's view is stale after a's STORE
    // from a view b had not): b catches up from its own view.
    a.store_flags(&[1], FlagOp::Add, &Flags::system(SEEN), None)
        .unwrap();
    a.store_flags(&[4], FlagOp::Add, &Flags::system(DELETED), None)
        .unwrap();
    assert_eq!(a.expunge(None).unwrap(), [4]);
    deliver(&s, "f\r\n");
    let c = b.sync().unwrap();
    assert_eq!(c.flags_changed, [1]);
    assert_eq!(c.expunged, [4]);
    // b's own APPEND, not announced yet, and the delivery.
    assert_eq!(c.added, [new, new + 1]);
    exact(&b);
}

#[test]
fn changes_applied_to_a_view() {
    let m = |uid: u32, modseq: u64, date: i64| MessageMeta {
        uid,
        flags: Flags::default(),
        modseq,
        size: 1,
        internal_date: date,
        file_name: format!("f{uid}-{modseq}").into(),
    };
    let u = crate::UNKNOWN_DATE;
    let old = vec![m(1, 1, 10), m(2, 1, 20), m(4, 1, 40), m(6, 1, 60)];
    // 2 changed (its date, unknown in the row, is kept), 4 gone, 3 (a row
    // the old view lacked) and 7 new.
    let changed = vec![m(2, 5, u), m(3, 6, u), m(7, 7, 70)];
    let got = apply_changes(&old, changed, &[4]);
    assert_eq!(
        got,
        vec![
            m(1, 1, 10),
            m(2, 5, 20),
            m(3, 6, u),
            m(6, 1, 60),
            m(7, 7, 70)
        ]
    );
    assert_eq!(apply_changes(&[], vec![m(1, 2, 3)], &[]), vec![m(1, 2, 3)]);
    assert_eq!(apply_changes(&old, vec![], &[1, 2, 4, 6]), vec![]);
}

/// A directory outside the mail root, with one file a daemon could read.
fn outside(d: &Path) -> std::path::PathBuf {
    let o = d.join("outside");
    fs::create_dir(&o).unwrap();
    fs::write(o.join("secret"), "Subject: secret\n\nthe daemon's secret\n").unwrap();
    o
}

#[test]
fn a_symlink_in_cur_is_neither_listed_nor_read() {
    let (d, s, us) = setup();
    let o = outside(d.path());
    deliver(&s, "Subject: real\r\n\r\nreal\r\n");
    let cur = d.path().join("x.test/u/cur");
    std::os::unix::fs::symlink(
        o.join("secret"),
        cur.join("1700000000.M1P1Q1.evil,S=40,W=43:2,"),
    )
    .unwrap();
    let mut mb = us.select("INBOX").unwrap();
    assert_eq!(mb.messages().len(), 1, "the link is not listed");
    // Read by another process: this one keeps no copy of it (contents.rs).
    let other = Store::new(StoreConfig {
        root: d.path().to_path_buf(),
        hostname: "h".into(),
    });
    let other = other.open_user(USER, Quota::default()).unwrap();
    assert_eq!(
        other.select("INBOX").unwrap().read_message(1).unwrap(),
        b"Subject: real\r\n\r\nreal\r\n"
    );
    // A message indexed, then replaced by a link: not served.
    let name = mb.messages()[0].file_name.to_string();
    fs::remove_file(cur.join(&name)).unwrap();
    std::os::unix::fs::symlink(o.join("secret"), cur.join(&name)).unwrap();
    assert!(mb.read_message(1).is_err());
    assert!(mb.read_header(1).is_err());
    assert!(mb.crlf_size(1).is_err());
    assert!(mb.open_message(1).is_err());
    // COPY does not carry it into another folder either.
    let mut sent = us.select("Sent").unwrap();
    let _ = mb.copy_to(&[1], &mut sent);
    sent.sync().unwrap();
    for m in sent.messages() {
        assert!(sent.read_message(m.uid).is_err());
    }
    // The next sync sees the message gone, and still lists no link.
    let c = mb.sync().unwrap();
    assert_eq!(c.expunged, [1]);
    assert!(mb.messages().is_empty());
    assert!(o.join("secret").is_file(), "the outside file is untouched");
}

#[test]
fn a_folder_whose_new_or_tmp_is_a_symlink_keeps_the_outside_files_out() {
    let (d, _s, us) = setup();
    let o = outside(d.path());
    fs::write(o.join("1700000000.M1P1Q1.h,S=5,W=6"), "x\ny\n").unwrap();
    fs::write(o.join("1700000001.M2P1Q1.h"), "x\ny\n").unwrap();
    // Old enough for the cleaning of tmp/ (36 hours).
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(48 * 3600);
    File::options()
        .write(true)
        .open(o.join("secret"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    us.create_mailbox("Evil", None).unwrap();
    let f = d.path().join("x.test/u/.Evil");
    for sub in ["new", "tmp"] {
        fs::remove_dir(f.join(sub)).unwrap();
        std::os::unix::fs::symlink(&o, f.join(sub)).unwrap();
    }
    if let Ok(mut mb) = us.select("Evil") {
        assert!(mb.messages().is_empty());
        let _ = mb.sync();
        assert!(mb.messages().is_empty());
    }
    assert_eq!(
        names(&o),
        [
            "1700000000.M1P1Q1.h,S=5,W=6",
            "1700000001.M2P1Q1.h",
            "secret"
        ],
        "nothing moved out of (or removed from) the outside directory"
    );
    assert!(names(&f.join("cur")).is_empty());
}

#[test]
fn create_then_append_makes_every_entry_durable_before_ok() {
    let (_d, _s, us) = setup();
    let rec = crate::fsops::recording();
    us.create_mailbox("Fresh/Sub", None).unwrap();
    let mut mb = us.select("Fresh/Sub").unwrap();
    mb.append(
        &mut &b"Subject: a\r\n\r\nx\r\n"[..],
        &Flags::default(),
        None,
    )
    .unwrap();
    let ev = rec.take();
    assert!(
        ev.iter()
            .any(|e| matches!(e, crate::fsops::Event::SyncDir(p) if p.ends_with(".Fresh.Sub/cur"))),
        "{ev:#?}"
    );
    crate::fsops::check_durable(&ev).unwrap_or_else(|e| panic!("{e}: {ev:#?}"));
}

#[test]
fn move_into_the_same_mailbox_gives_a_new_uid() {
    let (d, _s, us) = setup();
    let mut inbox = us.select("INBOX").unwrap();
    let mut inbox2 = us.select("INBOX").unwrap();
    for _ in 0..2 {
        inbox
            .append(
                &mut &b"Subject: m\r\n\r\nx\r\n"[..],
                &Flags::system(SEEN),
                None,
            )
            .unwrap();
    }
    inbox.sync().unwrap();
    let before = inbox.highest_modseq();
    assert_eq!(inbox.move_to(&[1], &mut inbox2).unwrap(), [(1, 3)]);
    assert_eq!(uids(&inbox), [2]);
    assert_eq!(inbox.sync().unwrap().added, [3]);
    assert_eq!(uids(&inbox), [2, 3]);
    assert_eq!(inbox.messages()[1].flags.system, SEEN);
    assert_eq!(inbox.read_message(3).unwrap(), b"Subject: m\r\n\r\nx\r\n");
    assert_eq!(inbox.vanished_since(before).unwrap(), [1]);
    // One file per message, and the quota counts two.
    assert_eq!(names(&d.path().join("x.test/u/cur")).len(), 2);
    assert_eq!(us.quota_usage().unwrap().1, 2);
}

#[test]
fn recent_messages_are_claimed_once() {
    let (_d, _s, us) = setup();
    let mut inbox = us.select("INBOX").unwrap();
    assert_eq!(inbox.claim_recent().unwrap(), None);
    for _ in 0..2 {
        inbox
            .append(
                &mut &b"Subject: r\r\n\r\nx\r\n"[..],
                &Flags::default(),
                None,
            )
            .unwrap();
    }
    inbox.sync().unwrap();
    // EXAMINE and STATUS read without claiming.
    assert_eq!(inbox.recent_from().unwrap(), 1);
    let other = us.select("INBOX").unwrap();
    assert_eq!(other.claim_recent().unwrap(), Some((1, 3)));
    assert_eq!(
        inbox.claim_recent().unwrap(),
        None,
        "claimed by the other session"
    );
    assert_eq!(inbox.recent_from().unwrap(), 3);
    inbox
        .append(
            &mut &b"Subject: r\r\n\r\nx\r\n"[..],
            &Flags::default(),
            None,
        )
        .unwrap();
    assert_eq!(inbox.claim_recent().unwrap(), Some((3, 4)));
    // A mailbox deleted and made again starts with nothing claimed.
    us.create_mailbox("Tmp", None).unwrap();
    let tmp = us.select("Tmp").unwrap();
    assert_eq!(tmp.recent_from().unwrap(), 1);
}

/// Descriptors of this process open on `dir` or a directory in it (a
/// parked mailbox has none; the user's index files are the user's).
fn fds_on(dir: &Path) -> usize {
    fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| fs::read_link(e.ok()?.path()).ok())
        .filter(|t| t.starts_with(dir) && t.is_dir())
        .count()
}

#[test]
fn a_parked_mailbox_holds_no_directory_and_works_as_before() {
    let (d, s, us) = setup();
    deliver(&s, "a\r\n");
    let mut mb = us.select("INBOX").unwrap();
    // Another opening waits for the first fill's commit, hence for its
    // thread to close the directories it opened.
    drop(us.select("INBOX").unwrap());
    let udir = d.path().join("x.test/u");
    assert!(fds_on(&udir) >= 2, "selected: the folder and cur/ open");
    mb.park();
    assert_eq!(fds_on(&udir), 0, "parked: nothing open in the Maildir");
    // A delivery while parked is found by the next sync, which opens them.
    deliver(&s, "b\r\n");
    assert_eq!(mb.sync().unwrap().added, [2]);
    assert_eq!(mb.read_message(2).unwrap(), b"b\r\n");
    // cur/ replaced while parked (a restore): opened afresh, same content.
    mb.park();
    let cur = udir.join("cur");
    fs::rename(&cur, udir.join("cur.old")).unwrap();
    fs::create_dir(&cur).unwrap();
    for e in fs::read_dir(udir.join("cur.old")).unwrap() {
        let e = e.unwrap();
        fs::rename(e.path(), cur.join(e.file_name())).unwrap();
    }
    mb.sync().unwrap();
    assert_eq!(uids(&mb), [1, 2]);
    let r = mb
        .store_flags(&[1], FlagOp::Add, &Flags::system(SEEN), None)
        .unwrap();
    assert_eq!(r.updated, [1]);
    assert_eq!(mb.read_message(1).unwrap(), b"a\r\n");
    // Gone while parked: the next use says so.
    mb.park();
    fs::remove_dir_all(&udir).unwrap();
    assert!(matches!(mb.sync(), Err(StoreError::NoSuchMailbox(_))));
}

/// A delivery's young new/ is trusted by the other sessions of this
/// process until it is verified: they do not each scan again, and a file
/// that arrived in the same clock tick is found by the verification.
#[test]
fn a_young_new_is_scanned_once_and_verified_after_settle() {
    let (d, s, us) = setup();
    let mut a = us.select("INBOX").unwrap();
    let mut b = us.select("INBOX").unwrap();
    let mut c = us.select("INBOX").unwrap();
    deliver(&s, "a\r\n");
    // a's scan moves the file, which changes the mtimes it read before:
    // the next session scans once more and records them as they are now.
    assert_eq!(a.sync().unwrap().added, [1]);
    assert_eq!(c.sync().unwrap().added, [1]);
    let new = d.path().join("x.test/u/new");
    let mtime = fs::metadata(&new).unwrap().modified().unwrap();
    // Another delivery in the same tick: new/'s mtime as it was.
    deliver(&s, "b\r\n");
    File::open(&new).unwrap().set_modified(mtime).unwrap();
    // b trusts a's young record (no scan): it hears of message 1 only.
    assert_eq!(b.sync().unwrap().added, [1]);
    let wait = b.verification_in().expect("a verification is due");
    std::thread::sleep(wait + std::time::Duration::from_millis(50));
    // The verification scans and finds the second delivery.
    assert_eq!(b.sync().unwrap().added, [2]);
    assert_eq!(a.sync().unwrap().added, [2]);
    assert_eq!(b.read_message(2).unwrap(), b"b\r\n");
}
