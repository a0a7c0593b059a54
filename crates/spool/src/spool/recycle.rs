//! Keeping the files of delivered messages for reuse: about
//! [`MAX_FREE_QUEUE_FILES`] queue files in `tmp/.free/` (rewritten in
//! place by `create`) and [`MAX_FREE_STATES`] state files in
//! `state/.free/` (taken by a message's first `update`), so that no inode
//! is allocated per message.

use super::{DIR_MODE, FILE_MODE, STATE_DIR, TMP_DIR};
use crate::Spool;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where `discard` keeps state files for reuse, inside `state/` (and
/// queue files, inside `tmp/`).
pub(super) const FREE_STATES: &str = ".free";
/// How many state files are kept for reuse.
pub(super) const MAX_FREE_STATES: usize = 256;
/// How many queue files are kept for reuse: enough for the backlog of a
/// burst (smtpd takes one per message received while the qmgr is still
/// delivering the ones before; 700 were waiting in bench/'s workload 1).
pub(super) const MAX_FREE_QUEUE_FILES: usize = 1024;
/// `tmp/.free/` is trimmed back to [`MAX_FREE_QUEUE_FILES`] after this
/// many queue files are kept, so it never holds more than the sum.
const TRIM_EVERY: u32 = 64;
/// A kept queue file keeps its blocks until it is rewritten: larger ones
/// are removed instead, so that the kept files hold at most
/// (1024 + 64) × 256 KiB of disk (most mail is far smaller).
const KEEP_MAX_LEN: u64 = 256 * 1024;

/// Renames `from` to `dir/name`, making `dir` (a `.free/`) the first time.
/// `NotFound`: `from` does not exist.
fn move_into(from: &Path, dir: &Path, name: &str) -> io::Result<()> {
    let to = dir.join(name);
    match fs::rename(from, &to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && !dir.is_dir() => fs::DirBuilder::new()
            .mode(DIR_MODE & 0o777)
            .create(dir)
            .and_then(|()| fs::rename(from, &to)),
        r => r,
    }
}

/// Removes entries of `dir` beyond its first `keep` (in directory order;
/// smtpd takes from the first ones it reads). A file smtpd takes at the
/// same moment is either renamed away first (the unlink fails) or gone
/// (the rename fails and smtpd takes another).
fn trim(dir: &Path, keep: usize) {
    if let Ok(rd) = fs::read_dir(dir) {
        for e in rd.flatten().skip(keep) {
            let _ = fs::remove_file(e.path());
        }
    }
}

/// Whether `f` has one name only. The rename that takes a kept file out
/// of `.free/` is not fsynced (the directory fsync after its new name is
/// made covers it on most file systems, not on all): after a power
/// failure a kept name may come back beside the file's new one, a queue
/// or state file in use. Such a file is never reused; one `fstat`.
pub(super) fn sole_name(f: &File) -> bool {
    use std::os::unix::fs::MetadataExt;
    f.metadata().is_ok_and(|m| m.nlink() == 1)
}

/// What [`Spool::keep_free_state`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kept {
    Yes,
    /// Not kept (enough are, or the move failed): remove it.
    No,
    /// There was no such file.
    Missing,
}

impl Spool {
    /// Moves a delivered message's queue file to `tmp/.free/` for `create`
    /// to rewrite (no inode allocated per message); false if not kept.
    ///
    /// The bound is kept by trimming, not by refusing: smtpd (another
    /// process) takes files out as it receives, so a count kept here goes
    /// stale. Under steady load the pool sits at its bound, and a stale
    /// count refused about one file in seven, each then unlinked here and
    /// allocated anew by smtpd (on ext4 without a journal, a search past
    /// every inode freed in the last minutes). Every [`TRIM_EVERY`] files
    /// kept, what smtpd has not taken beyond [`MAX_FREE_QUEUE_FILES`] is
    /// removed: the pool never holds more than the sum.
    pub(super) fn keep_queue_file(&self, path: &Path, id: &str) -> bool {
        // Only our own files (a maildrop file belongs to its sender), and
        // not large ones (see KEEP_MAX_LEN).
        match fs::symlink_metadata(path) {
            Ok(m)
                if m.file_type().is_file()
                    && m.permissions().mode() & 0o777 == FILE_MODE
                    && m.len() <= KEEP_MAX_LEN => {}
            _ => return false,
        }
        let dir = self.root.join(TMP_DIR).join(FREE_STATES);
        let mut g = self
            .free_queue_files
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if g.1 >= TRIM_EVERY {
            g.1 = 0;
            trim(&dir, MAX_FREE_QUEUE_FILES);
        }
        g.1 += 1;
        move_into(path, &dir, id).is_ok()
    }

    /// Claims a kept queue file as `tmp_path` (a rename: of two processes
    /// after the same file, one gets it) and opens it for overwriting: not
    /// truncated, so its blocks are rewritten in place instead of freed and
    /// allocated again; `QueueWriter::commit` cuts it to its new length.
    pub(super) fn reuse_queue_file(&self, tmp_path: &Path) -> Option<File> {
        let mut g = self
            .free_queue_files
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if g.0.is_empty() {
            g.0 = fs::read_dir(self.root.join(TMP_DIR).join(FREE_STATES))
                .map(|rd| rd.flatten().map(|e| e.path()).take(64).collect())
                .unwrap_or_default();
        }
        while let Some(free) = g.0.pop() {
            if fs::rename(&free, tmp_path).is_ok() {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(tmp_path);
                match f {
                    Ok(f) if sole_name(&f) => return Some(f),
                    Ok(_) => {
                        // Also another file (see `sole_name`): drop this
                        // name, never overwrite that file.
                        let _ = fs::remove_file(tmp_path);
                    }
                    Err(_) => {
                        let _ = fs::remove_file(tmp_path);
                        return None;
                    }
                }
            }
        }
        None
    }

    /// The list of reusable state files, loaded on first use.
    fn with_free_states<T>(&self, f: impl FnOnce(&mut Vec<PathBuf>) -> T) -> T {
        let mut g = self.free_states.lock().unwrap_or_else(|p| p.into_inner());
        let list = g.get_or_insert_with(|| {
            fs::read_dir(self.root.join(STATE_DIR).join(FREE_STATES))
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .take(MAX_FREE_STATES)
                        .collect()
                })
                .unwrap_or_default()
        });
        f(list)
    }

    pub(super) fn take_free_state(&self) -> Option<PathBuf> {
        self.with_free_states(Vec::pop)
    }

    /// Moves a delivered message's state file aside for reuse.
    pub(super) fn keep_free_state(&self, state: &Path, id: &str) -> Kept {
        self.with_free_states(|list| {
            if list.len() >= MAX_FREE_STATES {
                return Kept::No;
            }
            let dir = self.root.join(STATE_DIR).join(FREE_STATES);
            match move_into(state, &dir, id) {
                Ok(()) => {
                    list.push(dir.join(id));
                    Kept::Yes
                }
                // Most messages never had one (delivered at the first
                // attempt): nothing to remove either.
                Err(e) if e.kind() == io::ErrorKind::NotFound => Kept::Missing,
                Err(_) => Kept::No,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::testutil::*;
    use facteur_mail::dsn::RcptStatus;
    use std::fs;
    use std::io::{Read, Write};

    #[test]
    fn discarded_state_files_are_reused_and_never_leak_state() {
        let (d, spool) = temp_spool();
        let commit = |rcpt: &str, body_lines: usize| {
            let mut w = spool.create(QueueName::Incoming, &env_with(rcpt)).unwrap();
            w.write_all(b"Subject: x\r\n\r\n").unwrap();
            w.write_all(&b"body\r\n".repeat(body_lines)).unwrap();
            w.commit().unwrap()
        };
        // Message A (longer than B) is delivered: its state says so, then
        // it is discarded.
        let a = commit("a@x.test", 5000);
        let mut qf = spool.read(QueueName::Incoming, &a).unwrap();
        qf.envelope.recipients[0].status = RcptStatus::Delivered;
        spool.update(QueueName::Incoming, &a, &qf.envelope).unwrap();
        spool.discard(QueueName::Incoming, &a).unwrap();
        assert!(!spool.state_path(&a).exists());
        let free = d.path().join(STATE_DIR).join(FREE_STATES);
        assert_eq!(fs::read_dir(&free).unwrap().count(), 1);
        // Message B has no state yet: A's old file must not speak for it.
        let b = commit("b@x.test", 1);
        let qb = spool.read(QueueName::Incoming, &b).unwrap();
        assert_eq!(qb.envelope.recipients[0].status, RcptStatus::Pending);
        // B's first update takes A's old file (no new inode)...
        let mut eb = qb.envelope.clone();
        eb.recipients[0].last_reply = Some("in progress".into());
        spool.update(QueueName::Incoming, &b, &eb).unwrap();
        assert_eq!(fs::read_dir(&free).unwrap().count(), 0);
        // ...and B reads its own state, not A's delivered status.
        let qb = spool.read(QueueName::Incoming, &b).unwrap();
        assert_eq!(qb.envelope.recipients[0].status, RcptStatus::Pending);
        assert_eq!(
            qb.envelope.recipients[0].last_reply.as_deref(),
            Some("in progress")
        );
        // A's queue file was kept too, and B's creation above reused it:
        // B reads back as itself, cut to its own length.
        let kept_q = d.path().join(TMP_DIR).join(FREE_STATES);
        assert_eq!(fs::read_dir(&kept_q).unwrap().count(), 0);
        let mut msg = Vec::new();
        spool
            .open_message(QueueName::Incoming, &b)
            .unwrap()
            .read_to_end(&mut msg)
            .unwrap();
        assert_eq!(msg, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(
            spool
                .read(QueueName::Incoming, &b)
                .unwrap()
                .envelope
                .recipients[0]
                .address,
            "b@x.test"
        );
        let b_len = fs::metadata(spool.path(QueueName::Incoming, &b).unwrap())
            .unwrap()
            .len();
        assert!(b_len < 1000, "{b_len} bytes: A's tail is left");
        // A fresh Spool (a restarted qmgr) finds kept files again.
        spool.discard(QueueName::Incoming, &b).unwrap();
        let again = Spool::open(d.path()).unwrap();
        assert!(again.take_free_state().is_some());
    }

    #[test]
    fn a_message_without_a_state_file_is_discarded_without_one() {
        let (d, spool) = temp_spool();
        let mut w = spool
            .create(QueueName::Incoming, &env_with("a@x.test"))
            .unwrap();
        w.write_all(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let id = w.commit().unwrap();
        spool.discard(QueueName::Incoming, &id).unwrap();
        assert!(!spool.dir(QueueName::Incoming).join(&id).exists());
        assert!(!spool.state_path(&id).exists());
        let free = d.path().join(STATE_DIR).join(FREE_STATES);
        assert_eq!(fs::read_dir(&free).map(|r| r.count()).unwrap_or(0), 0);
        assert_eq!(
            spool.keep_free_state(&spool.state_path(&id), &id),
            Kept::Missing
        );
    }

    #[test]
    fn kept_queue_files_stay_bounded_and_none_is_refused_while_smtpd_takes() {
        let (d, qmgr) = temp_spool();
        // smtpd's handle: another process, with its own view of the pool.
        let smtpd = Spool::open(d.path()).unwrap();
        let kept = d.path().join(TMP_DIR).join(FREE_STATES);
        let count = || fs::read_dir(&kept).map(|r| r.count()).unwrap_or(0);
        let incoming = qmgr.dir(QueueName::Incoming);
        let mut n = 0;
        // qmgr discards k delivered queue files of `len` bytes; how many
        // it kept.
        let mut deliver_len = |k: usize, len: usize| {
            (0..k)
                .filter(|_| {
                    n += 1;
                    let id = format!("Q{n:013}");
                    let p = incoming.join(&id);
                    fs::write(&p, vec![b'x'; len]).unwrap();
                    fs::set_permissions(&p, fs::Permissions::from_mode(FILE_MODE)).unwrap();
                    qmgr.keep_queue_file(&p, &id)
                })
                .count()
        };
        // A large file is not kept: it would hold its blocks.
        assert_eq!(deliver_len(1, KEEP_MAX_LEN as usize + 1), 0);
        assert_eq!(deliver_len(1, KEEP_MAX_LEN as usize), 1);
        let mut deliver = |k: usize| deliver_len(k, 1);
        const MAX: usize = MAX_FREE_QUEUE_FILES;
        assert_eq!(deliver(MAX - 1), MAX - 1);
        assert_eq!(count(), MAX);
        // Steady load at the bound: smtpd takes files as qmgr keeps them.
        // Every one is kept (a count kept by qmgr alone went stale here).
        for round in 0..8 {
            for i in 0..20 {
                let tmp = d.path().join(TMP_DIR).join(format!(".R{round}-{i}.tmp"));
                assert!(smtpd.reuse_queue_file(&tmp).is_some());
                fs::remove_file(tmp).unwrap();
            }
            assert_eq!(deliver(20), 20, "round {round}");
            assert!(count() <= MAX + TRIM_EVERY as usize);
        }
        // Nobody takes any: the pool is trimmed, never above the bound.
        for _ in 0..MAX / 8 {
            deliver(16);
            assert!(count() <= MAX + TRIM_EVERY as usize);
        }
        assert!(count() >= MAX);
    }

    #[test]
    fn a_kept_file_that_has_another_name_is_never_rewritten() {
        let (d, spool) = temp_spool();
        let a = put(&spool, QueueName::Incoming, b"message A\r\n");
        let mut e = spool.read(QueueName::Incoming, &a).unwrap().envelope;
        e.attempts = 1;
        spool.update(QueueName::Incoming, &a, &e).unwrap();
        spool.discard(QueueName::Incoming, &a).unwrap();
        // What a power failure may leave when a kept file's new names were
        // made durable but not its move out of .free/: the kept queue file
        // and state file are also a live message's.
        let kept_q = d.path().join(TMP_DIR).join(FREE_STATES).join(&a);
        let kept_s = d.path().join(STATE_DIR).join(FREE_STATES).join(&a);
        fs::hard_link(&kept_q, spool.dir(QueueName::Hold).join(&a)).unwrap();
        fs::hard_link(&kept_s, spool.state_path(&a)).unwrap();
        let before_q = fs::read(&kept_q).unwrap();
        let before_s = fs::read(&kept_s).unwrap();
        // A new message and its first update take neither.
        let b = put(&spool, QueueName::Incoming, b"message B\r\n");
        let mut eb = spool.read(QueueName::Incoming, &b).unwrap().envelope;
        eb.attempts = 1;
        spool.update(QueueName::Incoming, &b, &eb).unwrap();
        assert_eq!(
            fs::read(spool.dir(QueueName::Hold).join(&a)).unwrap(),
            before_q
        );
        assert_eq!(fs::read(spool.state_path(&a)).unwrap(), before_s);
        assert_eq!(message(&spool, QueueName::Hold, &a), b"message A\r\n");
        assert_eq!(
            spool.read(QueueName::Hold, &a).unwrap().envelope.attempts,
            1
        );
        assert_eq!(message(&spool, QueueName::Incoming, &b), b"message B\r\n");
        assert_eq!(
            spool
                .read(QueueName::Incoming, &b)
                .unwrap()
                .envelope
                .attempts,
            1
        );
        // The extra names are gone, the live files are whole.
        assert!(!kept_q.exists() && !kept_s.exists());
    }
}
