//! Keeping the files of delivered messages for reuse: up to
//! [`MAX_FREE_STATES`] queue files in `tmp/.free/` (rewritten in place by
//! `create`) and as many state files in `state/.free/` (taken by a
//! message's first `update`), so that no inode is allocated per message.

use super::{DIR_MODE, FILE_MODE, STATE_DIR, TMP_DIR};
use crate::Spool;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Where `discard` keeps state files for reuse, inside `state/` (and
/// queue files, inside `tmp/`).
pub(super) const FREE_STATES: &str = ".free";
/// How many state files (and queue files) are kept for reuse.
pub(super) const MAX_FREE_STATES: usize = 256;

/// Renames `from` to `dir/name`, making `dir` (a `.free/`) the first time.
fn move_into(from: &Path, dir: &Path, name: &str) -> io::Result<()> {
    let to = dir.join(name);
    match fs::rename(from, &to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && from.exists() && !dir.is_dir() => {
            fs::DirBuilder::new()
                .mode(DIR_MODE & 0o777)
                .create(dir)
                .and_then(|()| fs::rename(from, &to))
        }
        r => r,
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

impl Spool {
    /// Moves a delivered message's queue file to `tmp/.free/` for `create`
    /// to rewrite (no inode allocated per message); false if not kept.
    pub(super) fn keep_queue_file(&self, path: &Path, id: &str) -> bool {
        let dir = self.root.join(TMP_DIR).join(FREE_STATES);
        let mut g = self
            .free_queue_files
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Recount now and then: other processes take files out.
        if g.2.is_multiple_of(64) {
            g.1 = fs::read_dir(&dir).map(|rd| rd.count()).unwrap_or(0);
        }
        g.2 = g.2.wrapping_add(1);
        if g.1 >= MAX_FREE_STATES {
            return false;
        }
        // Only our own files (a maildrop file belongs to its sender).
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_file() && m.permissions().mode() & 0o777 == FILE_MODE => {}
            _ => return false,
        }
        let moved = move_into(path, &dir, id);
        if moved.is_ok() {
            g.1 += 1;
        }
        moved.is_ok()
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

    /// Moves a delivered message's state file aside for reuse; false if
    /// it was not (none, or enough kept already).
    pub(super) fn keep_free_state(&self, state: &Path, id: &str) -> bool {
        self.with_free_states(|list| {
            if list.len() >= MAX_FREE_STATES {
                return false;
            }
            let dir = self.root.join(STATE_DIR).join(FREE_STATES);
            match move_into(state, &dir, id) {
                Ok(()) => {
                    list.push(dir.join(id));
                    true
                }
                Err(_) => false,
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
