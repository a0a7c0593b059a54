//! Starting a new queue file: [`Spool::create`] reserves a queue id with
//! `O_EXCL`, opens the temporary file (or a kept one, recycle.rs) and
//! writes the envelope; `QueueWriter` (writer.rs) streams the message and
//! commits it.

use super::{FILE_MODE, MAILDROP_FILE_MODE, TMP_DIR, invalid_input};
use crate::format;
use crate::writer::QueueWriter;
use crate::{Envelope, QueueName, Result, Spool, SpoolError};
use std::fs::{self, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;

impl Spool {
    /// Starts a new queue file in `q` (Incoming or Maildrop) with envelope
    /// `env` (its `queue_id` is ignored: a new id is assigned). Write the
    /// message (network form) into the returned writer, then commit.
    pub fn create(&self, q: QueueName, env: &Envelope) -> Result<QueueWriter> {
        let (tmp_dir, mode) = match q {
            QueueName::Incoming => (self.root.join(TMP_DIR), FILE_MODE),
            // Unprivileged users cannot enter tmp/: they write in maildrop/
            // itself, under a name that `list` never returns.
            QueueName::Maildrop => (self.dir(q), MAILDROP_FILE_MODE),
            _ => return Err(invalid_input(format!("cannot create files in {q}"))),
        };
        let mut tries = 0;
        let (id, tmp_path, file) = loop {
            tries += 1;
            let id = facteur_util::new_id();
            let tmp_path = tmp_dir.join(format!(".{id}.tmp"));
            if q == QueueName::Incoming
                && let Some(f) = self.reuse_queue_file(&tmp_path)
            {
                if self.exists_anywhere(&id) {
                    let _ = fs::remove_file(&tmp_path);
                } else {
                    break (id, tmp_path, f);
                }
            }
            // Read too: end-of-data checks read the message back
            // (`QueueWriter::message_reader`) before it is committed.
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp_path)
            {
                Ok(f) => {
                    if self.exists_anywhere(&id) {
                        let _ = fs::remove_file(&tmp_path);
                    } else {
                        break (id, tmp_path, f);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 100 => {}
                Err(e) => return Err(e.into()),
            }
            if tries >= 100 {
                return Err(SpoolError::Io(io::Error::other("no free queue id")));
            }
        };
        let mut writer = QueueWriter {
            spool: self.clone(),
            queue: q,
            id,
            tmp_path,
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            len_offset: 0,
            written: 0,
            prepend: Vec::new(),
        };
        let mut env = env.clone();
        env.queue_id = writer.id.clone();
        let head = format::encode_envelope(&env, rand::random::<u64>())?;
        writer.len_offset = head.len() as u64 + 1;
        // Invariant: `file` is the Some(..) built a few lines above.
        let out = writer.file.as_mut().expect("just set");
        out.write_all(&head)?;
        out.write_all(&format::message_record_head(0))?;
        Ok(writer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::testutil::*;

    #[test]
    fn create_commit_read_round_trip() {
        let (d, spool) = temp_spool();
        let msg = b"From: a@b\r\nSubject: t\r\n\r\n.dot\r\nbare\rcr\r\n";
        let mut w = spool.create(QueueName::Incoming, &env()).unwrap();
        let id = w.queue_id().to_string();
        assert_eq!(id.len(), 14);
        assert!(
            spool.list(QueueName::Incoming).unwrap().is_empty(),
            "visible before commit"
        );
        w.write_all(msg).unwrap();
        assert_eq!(w.commit().unwrap(), id);
        assert_eq!(spool.list(QueueName::Incoming).unwrap(), vec![id.clone()]);
        let qf = spool.read(QueueName::Incoming, &id).unwrap();
        let mut want = env();
        want.queue_id = id.clone();
        assert_eq!(qf.envelope, want);
        assert_eq!(qf.message_size, msg.len() as u64);
        assert_eq!(qf.queue, QueueName::Incoming);
        assert_eq!(qf.path, spool.dir(QueueName::Incoming).join(&id));
        assert_eq!(message(&spool, QueueName::Incoming, &id), msg);
        assert_eq!(spool.find(&id).unwrap().envelope, want);
        assert!(is_empty(&d.path().join(TMP_DIR)));
    }

    #[test]
    fn prepended_fields_are_read_above_the_message_and_survive_a_rewrite() {
        let (_d, spool) = temp_spool();
        let mut w = spool.create(QueueName::Incoming, &env()).unwrap();
        w.write_all(b"Subject: t\r\n\r\nbody\r\n").unwrap();
        w.prepend(b"X-Spam: Yes\r\n").unwrap();
        w.prepend(b"Authentication-Results: mx.test; none\r\n")
            .unwrap();
        assert!(w.prepend(b"no CRLF").is_err());
        // What the end-of-data checks read is the message as received.
        let mut seen = Vec::new();
        io::Read::read_to_end(&mut w.message_reader().unwrap(), &mut seen).unwrap();
        assert_eq!(seen, b"Subject: t\r\n\r\nbody\r\n");
        let id = w.commit().unwrap();
        let want: &[u8] =
            b"X-Spam: Yes\r\nAuthentication-Results: mx.test; none\r\nSubject: t\r\n\r\nbody\r\n";
        assert_eq!(message(&spool, QueueName::Incoming, &id), want);
        let mut qf = spool.read(QueueName::Incoming, &id).unwrap();
        assert_eq!(qf.message_size, want.len() as u64);
        qf.envelope
            .recipients
            .push(crate::Recipient::new("z@example.test"));
        spool
            .rewrite_recipients(QueueName::Incoming, &id, &qf.envelope)
            .unwrap();
        assert_eq!(message(&spool, QueueName::Incoming, &id), want);
    }

    #[test]
    fn a_message_rewritten_before_commit_shorter_or_longer() {
        for new in [&b"Subject: x\r\n\r\n"[..], &[b'a'; 70_000][..]] {
            let (d, spool) = temp_spool();
            let mut w = spool.create(QueueName::Incoming, &env()).unwrap();
            w.write_all(b"Subject: first\r\n\r\na longer body than the new one\r\n")
                .unwrap();
            w.rewrite_message(|r, out| {
                let mut old = Vec::new();
                r.read_to_end(&mut old)?;
                assert!(old.starts_with(b"Subject: first"));
                out.write_all(new)
            })
            .unwrap();
            let mut seen = Vec::new();
            io::Read::read_to_end(&mut w.message_reader().unwrap(), &mut seen).unwrap();
            assert_eq!(seen, new);
            let id = w.commit().unwrap();
            assert_eq!(message(&spool, QueueName::Incoming, &id), new);
            assert_eq!(
                spool.read(QueueName::Incoming, &id).unwrap().message_size,
                new.len() as u64
            );
            // The copy left nothing behind.
            assert!(is_empty(&d.path().join(TMP_DIR)));
        }
    }

    #[test]
    fn five_megabyte_message_streamed() {
        let (_d, spool) = temp_spool();
        let msg: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut w = spool.create(QueueName::Incoming, &env()).unwrap();
        for chunk in msg.chunks(7919) {
            w.write_all(chunk).unwrap();
        }
        let id = w.commit().unwrap();
        assert_eq!(
            spool.read(QueueName::Incoming, &id).unwrap().message_size,
            msg.len() as u64
        );
        assert!(message(&spool, QueueName::Incoming, &id) == msg);
    }

    #[test]
    fn abort_and_drop_leave_nothing() {
        let (d, spool) = temp_spool();
        let mut w = spool.create(QueueName::Maildrop, &env()).unwrap();
        w.write_all(b"x").unwrap();
        w.abort();
        drop(spool.create(QueueName::Incoming, &env()).unwrap());
        assert!(is_empty(&d.path().join(TMP_DIR)));
        assert!(is_empty(&spool.dir(QueueName::Maildrop)));
        assert!(spool.create(QueueName::Active, &env()).is_err());
    }

    #[test]
    fn concurrent_creates_get_unique_ids() {
        let (_d, spool) = temp_spool();
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let spool = spool.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| {
                            let q = if i % 2 == 0 {
                                QueueName::Incoming
                            } else {
                                QueueName::Maildrop
                            };
                            put(&spool, q, format!("{t}/{i}").as_bytes())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<String> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
        let listed = spool.list(QueueName::Incoming).unwrap().len()
            + spool.list(QueueName::Maildrop).unwrap().len();
        assert_eq!(listed, n);
    }
}
