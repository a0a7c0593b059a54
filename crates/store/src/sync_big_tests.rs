//! Tests of the first scan of a big Maildir: files parsed on a second
//! thread, rows inserted many to a statement, the view built aside, and
//! the checkpoint left to a thread of its own.

use std::fs;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::{DELETED, FLAGGED, Quota, SEEN, Store, StoreConfig, index};

const USER: &str = "u@x.test";

fn setup() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::new(StoreConfig {
        root: d.path().to_path_buf(),
        hostname: "h".into(),
    });
    s.create_user(USER).unwrap();
    (d, s)
}

/// Writes message `i` into `cur` under a name dated `1700000000 + i`
/// (with `S=` and `W=` unless `bare`); returns its name and CRLF size.
fn put(cur: &Path, i: u32, flags: &str, bare: bool) -> (String, u64) {
    let body = format!("Subject: {i}\n\nbody of message {i}\n");
    let crlf = (body.len() + body.matches('\n').count()) as u64;
    let base = if bare {
        format!("{}.M{i}P7.h", 1_700_000_000 + i)
    } else {
        format!("{}.M{i}P7.h,S={},W={crlf}", 1_700_000_000 + i, body.len())
    };
    let name = format!("{base}:2,{flags}");
    fs::write(cur.join(&name), &body).unwrap();
    (name, crlf)
}

#[test]
fn a_first_scan_of_many_files_indexes_them_in_delivery_order() {
    // More than the batches handed to the parsing thread, more than the
    // rows from which the view is built aside, and not a multiple of the
    // rows per INSERT: every path of a first scan.
    const N: u32 = 2 * super::PARSE_BATCH as u32 + super::PARALLEL_VIEW_ROWS as u32 / 2 + 37;
    let (d, s) = setup();
    let cur = d.path().join("x.test/u/cur");
    // Written in an order unlike the delivery order (the directory's order
    // is the file system's anyway).
    let mut want = Vec::new();
    for k in 0..N {
        let i = (k * 7919) % N;
        let flags = match i % 5 {
            0 => "S",
            1 => "FS",
            2 => "T",
            _ => "",
        };
        let (name, size) = put(&cur, i, flags, i % 97 == 3);
        want.push((i, name, size));
    }
    want.sort();
    // The same base twice (a copy by another tool): one is indexed.
    let dup = want[10].1.replace(":2,", ":2,D");
    fs::copy(cur.join(&want[10].1), cur.join(&dup)).unwrap();
    // Not a regular file: skipped.
    std::os::unix::fs::symlink("/etc/passwd", cur.join("1600000000.M1P1.h:2,")).unwrap();

    let us = s.open_user(USER, Quota::default()).unwrap();
    let mb = us.select("INBOX").unwrap();
    let msgs = mb.messages();
    assert_eq!(msgs.len(), N as usize);
    for (k, (m, (i, name, size))) in msgs.iter().zip(&want).enumerate() {
        assert_eq!(m.uid, k as u32 + 1, "UIDs in delivery order");
        if k != 10 {
            assert_eq!(&*m.file_name, name.as_str());
        }
        assert_eq!(m.size, *size, "size of message {i}");
        let f = &m.flags;
        assert_eq!(
            (
                f.system & SEEN != 0,
                f.system & FLAGGED != 0,
                f.system & DELETED != 0
            ),
            (i % 5 <= 1, i % 5 == 1, i % 5 == 2),
            "flags of message {i}"
        );
    }
    assert_eq!(mb.uidnext(), N + 1);
    assert_eq!(
        mb.read_message(1).unwrap(),
        b"Subject: 0\r\n\r\nbody of message 0\r\n"
    );
    // The view is what the index holds (dates aside: names with S= have
    // theirs read lazily).
    let id = index::mailbox_row(&us.inner.conn(), "INBOX")
        .unwrap()
        .unwrap()
        .id;
    let mut loaded = index::load_messages(&us.inner.conn(), id, 0).unwrap();
    for (l, m) in loaded.iter_mut().zip(msgs.iter()) {
        l.internal_date = m.internal_date;
    }
    assert_eq!(msgs.to_vec(), loaded);
    let (v, uids): (u32, Vec<u32>) = (mb.uidvalidity(), msgs.iter().map(|m| m.uid).collect());
    drop((mb, us));
    let us = s.open_user(USER, Quota::default()).unwrap();
    let mb = us.select("INBOX").unwrap();
    assert_eq!(mb.uidvalidity(), v);
    assert_eq!(
        mb.messages().iter().map(|m| m.uid).collect::<Vec<_>>(),
        uids
    );
}

#[test]
fn a_big_commit_leaves_the_checkpoint_to_a_thread_then_gets_its_own_back() {
    let (d, s) = setup();
    let us = s.open_user(USER, Quota::default()).unwrap();
    let db = d.path().join("x.test/u").join(index::FILE);
    let before = fs::metadata(&db).unwrap().len();
    // More than the automatic checkpoint's 1,000 pages in one commit.
    us.inner
        .write_bulk(|tx| {
            tx.execute_batch("CREATE TABLE filler (b BLOB)")?;
            let mut st = tx.prepare("INSERT INTO filler VALUES (zeroblob(4000))")?;
            for _ in 0..1500 {
                st.execute([])?;
            }
            Ok(())
        })
        .unwrap();
    // The thread copies the WAL into the database.
    let t0 = Instant::now();
    while us.inner.checkpointing.load(Ordering::Acquire) {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "the checkpoint never ended"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let after = fs::metadata(&db).unwrap().len();
    assert!(
        after > before + 1500 * 4000,
        "checkpointed: {before} -> {after} bytes"
    );
    // The next write gives the connection its automatic checkpoint back.
    us.inner.write(|_| Ok(())).unwrap();
    let pages: i64 = us
        .inner
        .conn()
        .query_row("PRAGMA wal_autocheckpoint", [], |r| r.get(0))
        .unwrap();
    assert_eq!(pages, i64::from(index::AUTOCHECKPOINT_PAGES));
}
