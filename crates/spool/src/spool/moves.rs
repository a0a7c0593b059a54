//! Moving and removing queue files: [`Spool::move_to`] and
//! [`Spool::relocate`] between queues, [`Spool::rewrite_recipients`] (a
//! new file renamed over the old), [`Spool::remove`] and
//! [`Spool::discard`] (a delivered message, its files kept for reuse by
//! recycle.rs when there is room).

use super::{FILE_MODE, STATE_DIR, TMP_DIR, invalid_input, not_found_to};
use crate::format::{self, END_RECORD};
use crate::{Envelope, QueueName, Result, Spool, SpoolError};
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;

/// How long removals by `discard` may wait for their directory fsync.
pub(super) const DISCARD_SYNC_WINDOW: std::time::Duration = std::time::Duration::from_millis(100);

impl Spool {
    /// Moves a queue file between queues (rename, fsync both directories).
    /// The state file lives in `state/`, keyed by id, so it goes along.
    pub fn move_to(&self, id: &str, from: QueueName, to: QueueName) -> Result<()> {
        self.rename_between(id, from, to)?;
        facteur_util::fsync_dir(&self.dir(to))?;
        facteur_util::fsync_dir(&self.dir(from))?;
        Ok(())
    }

    /// Moves a queue file between queues without waiting for the disk: the
    /// qmgr's routine steps (incoming/ → active/, active/ ⇄ deferred/). A
    /// rename is atomic, so after a crash the file is in one of the two
    /// queues, both of which the qmgr scans; at worst it is resolved again
    /// or retried early. Nothing is lost, and two fsyncs per step are saved
    /// (Postfix's queue manager does not fsync these renames either).
    pub fn relocate(&self, id: &str, from: QueueName, to: QueueName) -> Result<()> {
        self.rename_between(id, from, to)
    }

    fn rename_between(&self, id: &str, from: QueueName, to: QueueName) -> Result<()> {
        let src = self.path(from, id)?;
        if from == to {
            fs::symlink_metadata(&src).map_err(|e| not_found_to(e, || id.to_string()))?;
            return Ok(());
        }
        let dst = self.path(to, id)?;
        if fs::symlink_metadata(&dst).is_ok() {
            return Err(SpoolError::Io(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", dst.display()),
            )));
        }
        fs::rename(&src, &dst).map_err(|e| not_found_to(e, || id.to_string()))?;
        Ok(())
    }

    /// Durably replaces the whole envelope (e.g. a new recipient list after
    /// alias expansion), keeping the message bytes: writes a new file in
    /// `tmp/` (copying the message), renames it over the old one.
    pub fn rewrite_recipients(&self, q: QueueName, id: &str, env: &Envelope) -> Result<()> {
        let (mut old, parsed, path) = self.parse(q, id)?;
        let mut env = env.clone();
        env.queue_id = id.to_string();
        let tmp = self.root.join(TMP_DIR).join(format!(".{id}.rewrite"));
        let result = (|| -> Result<()> {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(FILE_MODE)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            // Keep the old file's permissions (maildrop files are 0640).
            f.set_permissions(old.metadata()?.permissions())?;
            let mut w = BufWriter::with_capacity(64 * 1024, f);
            w.write_all(&format::encode_envelope(&env, rand::random::<u64>())?)?;
            let len = u32::try_from(parsed.message_len)
                .map_err(|_| invalid_input("message too large".into()))?;
            w.write_all(&format::message_record_head(len))?;
            old.seek(SeekFrom::Start(parsed.message_offset))?;
            let copied = io::copy(&mut (&mut old).take(parsed.message_len), &mut w)?;
            if copied != parsed.message_len {
                return Err(SpoolError::Incomplete(format!("{id}: message shrank")));
            }
            w.write_all(&format::prepend_record(&parsed.prepend)?)?;
            w.write_all(&END_RECORD)?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            facteur_util::fsync_dir(&self.dir(q))?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
            return result;
        }
        // The old state file names the old nonce: now stale, so harmless;
        // remove it to keep state/ tidy.
        let _ = fs::remove_file(self.state_path(id));
        Ok(())
    }

    /// Removes a delivered message's queue file and state file (or keeps
    /// them for reuse by later messages, recycle.rs, while fewer than a
    /// few hundred are kept), fsyncing the queue directory at most once
    /// per 100 ms (`DISCARD_SYNC_WINDOW`, see `sync_discards`).
    ///
    /// A killed process loses nothing here (a rename or an unlink is
    /// atomic). A power failure may undo the removals not yet fsynced:
    /// the queue file comes back, usually with no state file (a message
    /// delivered at its first attempt never had one), and the qmgr
    /// delivers it again. So a discard risks a duplicate, never a loss,
    /// as with Postfix (docs/queue-file.md, "Mutable state").
    pub fn discard(&self, q: QueueName, id: &str) -> Result<()> {
        let path = self.path(q, id)?;
        if !self.keep_queue_file(&path, id) {
            fs::remove_file(&path).map_err(|e| not_found_to(e, || id.to_string()))?;
        }
        self.sync_discards(q);
        // The state file's removal needs no fsync: come back alone, it
        // belongs to no queue file and `sweep` removes it.
        let state = self.state_path(id);
        if self.keep_free_state(&state, id) != super::recycle::Kept::No {
            return Ok(());
        }
        match fs::remove_file(state) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Makes the removals `discard` made from `q` durable, in batches: the
    /// first discard after a quiet [`DISCARD_SYNC_WINDOW`] fsyncs the
    /// directory at once; the discards that follow within the window are
    /// covered by the next one's fsync (or by the file system's periodic
    /// commit, at most a few seconds, for the last ones of a burst). A
    /// qmgr that delivers steadily thus pays one directory fsync per window
    /// instead of one per message (measured: a directory fsync tripled
    /// the cost of a discard), and after a power failure at most the
    /// messages of about one window are delivered twice.
    fn sync_discards(&self, q: QueueName) {
        let now = std::time::Instant::now();
        {
            let mut last = self.discard_syncs.lock().unwrap_or_else(|p| p.into_inner());
            let Some(slot) = QueueName::ALL
                .iter()
                .position(|&x| x == q)
                .and_then(|i| last.get_mut(i))
            else {
                return;
            };
            if slot.is_some_and(|t| now.duration_since(t) < DISCARD_SYNC_WINDOW) {
                return;
            }
            *slot = Some(now);
        }
        // A failure costs at most a duplicate after a power failure: no
        // reason to fail the removal of a delivered message.
        let _ = facteur_util::fsync_dir(&self.dir(q));
    }

    /// Removes a queue file and its state file (unlink, fsync directory).
    pub fn remove(&self, q: QueueName, id: &str) -> Result<()> {
        let path = self.path(q, id)?;
        fs::remove_file(&path).map_err(|e| not_found_to(e, || id.to_string()))?;
        facteur_util::fsync_dir(&self.dir(q))?;
        match fs::remove_file(self.state_path(id)) {
            Ok(()) => facteur_util::fsync_dir(&self.root.join(STATE_DIR))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::testutil::*;
    use facteur_mail::dsn::RcptStatus;
    use std::fs;

    #[test]
    fn rewrite_recipients_keeps_message_and_drops_stale_state() {
        let (d, spool) = temp_spool();
        let msg = b"Subject: alias\r\n\r\nbody\r\n";
        let id = put(&spool, QueueName::Incoming, msg);
        let mut e = spool.read(QueueName::Incoming, &id).unwrap().envelope;
        e.attempts = 2;
        e.recipients[0].status = RcptStatus::Deferred;
        spool.update(QueueName::Incoming, &id, &e).unwrap();
        let stale = fs::read(spool.state_path(&id)).unwrap();
        e.recipients = vec![
            Recipient::new("x@example.com"),
            Recipient::new("y@example.com"),
            Recipient::new("z@example.com"),
        ];
        spool
            .rewrite_recipients(QueueName::Incoming, &id, &e)
            .unwrap();
        let qf = spool.read(QueueName::Incoming, &id).unwrap();
        assert_eq!(qf.envelope, e);
        assert_eq!(message(&spool, QueueName::Incoming, &id), msg);
        // A state file left over from the old file (crash before its
        // removal) is ignored: it names the old nonce.
        fs::write(spool.state_path(&id), stale).unwrap();
        assert_eq!(spool.read(QueueName::Incoming, &id).unwrap().envelope, e);
        assert!(is_empty(&d.path().join(TMP_DIR)));
    }

    #[test]
    fn discards_fsync_their_directory_once_per_window() {
        let (_d, spool) = temp_spool();
        let last = |s: &Spool| s.discard_syncs.lock().unwrap()[2];
        let a = put(&spool, QueueName::Incoming, b"a\r\n");
        let b = put(&spool, QueueName::Incoming, b"b\r\n");
        for id in [&a, &b] {
            spool
                .relocate(id, QueueName::Incoming, QueueName::Active)
                .unwrap();
        }
        assert_eq!(QueueName::ALL[2], QueueName::Active);
        assert_eq!(last(&spool), None);
        spool.discard(QueueName::Active, &a).unwrap();
        let first = last(&spool).expect("the first discard fsyncs at once");
        spool.discard(QueueName::Active, &b).unwrap();
        assert_eq!(
            last(&spool),
            Some(first),
            "the next one, in the window, waits"
        );
        std::thread::sleep(DISCARD_SYNC_WINDOW);
        let c = put(&spool, QueueName::Incoming, b"c\r\n");
        spool
            .relocate(&c, QueueName::Incoming, QueueName::Active)
            .unwrap();
        spool.discard(QueueName::Active, &c).unwrap();
        assert!(
            last(&spool) > Some(first),
            "after the window: fsynced again"
        );
        assert!(spool.list(QueueName::Active).unwrap().is_empty());
    }
}
