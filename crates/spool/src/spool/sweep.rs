//! [`Spool::sweep`]: removing what crashes leave behind (old temporary
//! files, state files of messages in no queue), never a queue file.

use super::{STATE_DIR, TMP_DIR};
use crate::{QueueName, Spool, valid_queue_id};
use std::fs;
use std::path::Path;

impl Spool {
    /// Removes what crashes leave behind, once older than `max_age`:
    /// temporary files of `create` (`tmp/.<id>.tmp`, `maildrop/.<id>.tmp`)
    /// and of `write_atomic` (`state/.<name>.tmp.<n>`), and state files
    /// whose message is in no queue (a crash inside `discard`). Never a
    /// queue file, never a file kept for reuse, never a symlink's target;
    /// errors on single files are skipped. Returns how many were removed.
    pub fn sweep(&self, max_age: std::time::Duration) -> usize {
        let now = std::time::SystemTime::now();
        let old = |m: &fs::Metadata| {
            m.modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > max_age)
        };
        let mut removed = 0;
        let mut sweep_dir = |dir: &Path, doomed: &dyn Fn(&str) -> bool| {
            let Ok(rd) = fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if !doomed(name) {
                    continue;
                }
                // symlink_metadata: a link is judged (and removed) as itself.
                let Ok(m) = fs::symlink_metadata(e.path()) else {
                    continue;
                };
                if !m.is_dir() && old(&m) && fs::remove_file(e.path()).is_ok() {
                    removed += 1;
                }
            }
        };
        let temporary = |n: &str| n.starts_with('.') && n.ends_with(".tmp");
        sweep_dir(&self.root.join(TMP_DIR), &temporary);
        sweep_dir(&self.dir(QueueName::Maildrop), &temporary);
        let orphan_state = |n: &str| {
            if n.starts_with('.') {
                // write_atomic's temporary: ".<name>.tmp.<n>"
                return n.contains(".tmp.");
            }
            match n.strip_suffix(".state") {
                // Twice: a file moving between queues (a rename) can be
                // missed by one pass over the directories; the second pass
                // finds it unless it moved again meanwhile.
                Some(id) if valid_queue_id(id) => {
                    !self.exists_anywhere(id) && !self.exists_anywhere(id)
                }
                _ => false,
            }
        };
        sweep_dir(&self.root.join(STATE_DIR), &orphan_state);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::testutil::*;
    use std::fs::{self, File};
    use std::io::Write;
    use std::path::{Path, PathBuf};

    #[test]
    fn sweep_removes_only_old_leftovers() {
        let (d, spool) = temp_spool();
        let day = std::time::Duration::from_secs(86_400);
        let age = |p: &Path, secs: u64| {
            let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        let make = |p: PathBuf, secs: u64| {
            fs::write(&p, b"x").unwrap();
            age(&p, secs);
            p
        };
        // A queued message with its state, both old: kept.
        let mut w = spool
            .create(QueueName::Incoming, &env_with("a@x.test"))
            .unwrap();
        w.write_all(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let id = w.commit().unwrap();
        let mut qf = spool.read(QueueName::Incoming, &id).unwrap();
        qf.envelope.attempts = 1;
        spool
            .update(QueueName::Incoming, &id, &qf.envelope)
            .unwrap();
        age(&spool.path(QueueName::Incoming, &id).unwrap(), 2 * 86_400);
        age(&spool.state_path(&id), 2 * 86_400);
        let tmp = d.path().join(TMP_DIR);
        let state = d.path().join(STATE_DIR);
        let dead_tmp = make(tmp.join(".1K0Z97C413K3CE.tmp"), 2 * 86_400);
        let young_tmp = make(tmp.join(".1K0Z97C413K3CF.tmp"), 60);
        let dead_drop = make(
            spool.dir(QueueName::Maildrop).join(".1K0Z97C413K3CG.tmp"),
            2 * 86_400,
        );
        let orphan = make(state.join("1K0Z97C413K3CH.state"), 2 * 86_400);
        let young_orphan = make(state.join("1K0Z97C413K3CJ.state"), 60);
        let dead_atomic = make(state.join(".1K0Z97C413K3CK.state.tmp.123"), 2 * 86_400);
        let other = make(state.join("README"), 2 * 86_400);
        assert_eq!(spool.sweep(day), 4);
        for gone in [&dead_tmp, &dead_drop, &orphan, &dead_atomic] {
            assert!(!gone.exists(), "{} kept", gone.display());
        }
        for kept in [&young_tmp, &young_orphan, &other] {
            assert!(kept.exists(), "{} removed", kept.display());
        }
        assert_eq!(
            spool
                .read(QueueName::Incoming, &id)
                .unwrap()
                .envelope
                .attempts,
            1
        );
        assert_eq!(spool.sweep(day), 0);
    }
}
