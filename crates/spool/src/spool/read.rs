//! Reading: [`Spool::list`] (the ids in a queue), [`Spool::read`] and
//! [`Spool::find`] (envelope with its latest state), [`Spool::open_message`]
//! (the message bytes), [`Spool::read_small`] (both at once, for a small
//! message). Files are opened with `O_NOFOLLOW` and must be
//! regular files; the queue id record must name the file.

use super::open_regular;
use super::state::framed_state;
use crate::format;
use crate::{QueueFile, QueueName, Result, Spool, SpoolError, valid_queue_id};
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::PathBuf;

/// How much longer than the message asked for a queue file may be and
/// still be read whole by [`Spool::read_small`]: its envelope (a few
/// hundred bytes, more with many recipients).
const WHOLE_FILE_SLACK: u64 = 16 * 1024;

/// Refuses a queue file whose queue id record does not name it.
fn check_id(parsed: &format::ParsedQueueFile, id: &str, path: &std::path::Path) -> Result<()> {
    if parsed.envelope.queue_id != id {
        return Err(SpoolError::Corrupt(format!(
            "{}: queue id record says {:?}",
            path.display(),
            parsed.envelope.queue_id
        )));
    }
    Ok(())
}

impl Spool {
    /// The queue ids in `q`, sorted (= by arrival). Temporary files, state
    /// files and anything that is not a valid id are never listed.
    pub fn list(&self, q: QueueName) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(self.dir(q))? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str()
                && valid_queue_id(name)
            {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    pub(super) fn parse(
        &self,
        q: QueueName,
        id: &str,
    ) -> Result<(File, format::ParsedQueueFile, PathBuf)> {
        let path = self.path(q, id)?;
        let (file, len) = open_regular(&path, id)?;
        let mut r = BufReader::with_capacity(16 * 1024, &file);
        let parsed = format::parse_queue_file(&mut r, len)?;
        drop(r);
        check_id(&parsed, id, &path)?;
        Ok((file, parsed, path))
    }

    /// The latest delivery state for a file, if a state file belongs to it.
    pub(super) fn load_state(&self, id: &str, nonce: u64) -> Result<Option<format::DeliveryState>> {
        let data = match fs::read(self.state_path(id)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let st = match framed_state(&data) {
            // The state log: its last intact frame is the state.
            Some((Ok(frame), _)) => format::parse_state_bytes(frame),
            // A log with no intact frame: its first write was cut short by
            // a crash, before `update` returned; there is no state yet.
            Some((Err(()), _)) => return Ok(None),
            // A whole-file state (written before state logs existed).
            None => format::parse_state_bytes(&data),
        }
        .map_err(|e| SpoolError::Corrupt(format!("state file of {id}: {e}")))?;
        Ok((st.nonce == nonce).then_some(st))
    }

    /// Reads a queue file's envelope, with its latest delivery state.
    pub fn read(&self, q: QueueName, id: &str) -> Result<QueueFile> {
        let (_, parsed, path) = self.parse(q, id)?;
        self.with_state(q, id, parsed, path)
    }

    /// [`Spool::read`], and the message as [`Spool::open_message`] gives
    /// it when it is at most `max` bytes: read from the file already open,
    /// so a small message costs no second open and parse (nor, for the
    /// caller, a second trip to a blocking thread).
    pub fn read_small(
        &self,
        q: QueueName,
        id: &str,
        max: u64,
    ) -> Result<(QueueFile, Option<Vec<u8>>)> {
        let path = self.path(q, id)?;
        let (mut file, len) = open_regular(&path, id)?;
        if len <= max.saturating_add(WHOLE_FILE_SLACK) {
            // Small enough to read at once: one read(2) for the envelope,
            // the message and the END record, instead of reads and seeks.
            let mut data = Vec::with_capacity(len as usize);
            (&mut file).take(len).read_to_end(&mut data)?;
            let parsed = format::parse_queue_file_bytes(&data)?;
            check_id(&parsed, id, &path)?;
            let size = parsed.size();
            let message = if size <= max {
                // The parser has checked that the message lies within the
                // file; a range outside it would be a parser bug, refused
                // here as a corrupt file rather than a panic.
                let body = usize::try_from(parsed.message_offset)
                    .ok()
                    .zip(usize::try_from(parsed.message_len).ok())
                    .and_then(|(at, n)| data.get(at..at.checked_add(n)?))
                    .ok_or_else(|| {
                        SpoolError::Corrupt(format!("{}: message out of bounds", path.display()))
                    })?;
                let mut buf = Vec::with_capacity(size as usize);
                buf.extend_from_slice(&parsed.prepend);
                buf.extend_from_slice(body);
                Some(buf)
            } else {
                None
            };
            return Ok((self.with_state(q, id, parsed, path)?, message));
        }
        let mut r = BufReader::with_capacity(16 * 1024, &file);
        let parsed = format::parse_queue_file(&mut r, len)?;
        drop(r);
        check_id(&parsed, id, &path)?;
        let size = parsed.size();
        let message = if size <= max {
            let mut buf = Vec::with_capacity(size as usize);
            buf.extend_from_slice(&parsed.prepend);
            file.seek(SeekFrom::Start(parsed.message_offset))?;
            (&mut file).take(parsed.message_len).read_to_end(&mut buf)?;
            if buf.len() as u64 != size {
                return Err(SpoolError::Incomplete(format!(
                    "{}: the message ends early",
                    path.display()
                )));
            }
            Some(buf)
        } else {
            None
        };
        Ok((self.with_state(q, id, parsed, path)?, message))
    }

    /// The queue file of `parsed`, with its latest delivery state.
    fn with_state(
        &self,
        q: QueueName,
        id: &str,
        parsed: format::ParsedQueueFile,
        path: PathBuf,
    ) -> Result<QueueFile> {
        let message_size = parsed.size();
        let mut envelope = parsed.envelope;
        if let Some(st) = self.load_state(id, parsed.nonce)?
            && !st.apply(&mut envelope)
        {
            return Err(SpoolError::Corrupt(format!(
                "state file of {id} does not match its recipients"
            )));
        }
        Ok(QueueFile {
            queue: q,
            envelope,
            message_size,
            path,
        })
    }

    /// Reads a queue file from whichever queue directory holds it.
    pub fn find(&self, id: &str) -> Result<QueueFile> {
        for q in QueueName::ALL {
            match self.read(q, id) {
                Err(SpoolError::NotFound(_)) => continue,
                other => return other,
            }
        }
        Err(SpoolError::NotFound(id.to_string()))
    }

    /// The message of a queue file, network form (CRLF), exactly as written:
    /// the header fields of its `F` record, if any, then the message record.
    pub fn open_message(&self, q: QueueName, id: &str) -> Result<Box<dyn Read + Send>> {
        let (mut file, parsed, _) = self.parse(q, id)?;
        file.seek(SeekFrom::Start(parsed.message_offset))?;
        let message = BufReader::with_capacity(64 * 1024, file.take(parsed.message_len));
        Ok(Box::new(io::Cursor::new(parsed.prepend).chain(message)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::testutil::*;
    use std::fs::{self, File};
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn list_ignores_temporary_and_foreign_files() {
        let (_d, spool) = temp_spool();
        let w = spool.create(QueueName::Maildrop, &env()).unwrap();
        fs::write(spool.dir(QueueName::Maildrop).join("x.tmp"), b"").unwrap();
        assert!(spool.list(QueueName::Maildrop).unwrap().is_empty());
        let id = w.commit().unwrap();
        assert_eq!(spool.list(QueueName::Maildrop).unwrap(), vec![id.clone()]);
        let mode = fs::metadata(spool.dir(QueueName::Maildrop).join(&id))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, MAILDROP_FILE_MODE);
    }

    #[test]
    fn missing_end_is_incomplete_and_garbage_corrupt() {
        let (_d, spool) = temp_spool();
        let id = put(&spool, QueueName::Incoming, b"hello\r\n");
        let p = spool.dir(QueueName::Incoming).join(&id);
        let len = fs::metadata(&p).unwrap().len();
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        assert!(matches!(
            spool.read(QueueName::Incoming, &id),
            Err(SpoolError::Incomplete(_))
        ));
        assert!(spool.open_message(QueueName::Incoming, &id).is_err());
        fs::write(
            spool.dir(QueueName::Hold).join("GARBAGE"),
            b"not a queue file",
        )
        .unwrap();
        assert!(matches!(
            spool.read(QueueName::Hold, "GARBAGE"),
            Err(SpoolError::Corrupt(_))
        ));
        assert!(matches!(
            spool.read(QueueName::Hold, "NOPE"),
            Err(SpoolError::NotFound(_))
        ));
        assert!(matches!(
            spool.read(QueueName::Hold, "../x"),
            Err(SpoolError::NotFound(_))
        ));
        assert!(matches!(spool.find("NOPE"), Err(SpoolError::NotFound(_))));
        // A file whose queue id record names another file.
        fs::copy(
            spool.dir(QueueName::Hold).join("GARBAGE"),
            spool.dir(QueueName::Hold).join("G2"),
        )
        .unwrap();
        let other = put(&spool, QueueName::Incoming, b"x");
        fs::copy(
            spool.dir(QueueName::Incoming).join(&other),
            spool.dir(QueueName::Hold).join("OTHER"),
        )
        .unwrap();
        assert!(matches!(
            spool.read(QueueName::Hold, "OTHER"),
            Err(SpoolError::Corrupt(_))
        ));
    }

    #[test]
    fn a_small_message_comes_with_its_queue_file_as_open_message_reads_it() {
        use std::io::Write;
        let (_d, spool) = temp_spool();
        let plain = put(&spool, QueueName::Incoming, b"Subject: s\r\n\r\nsmall\r\n");
        let mut w = spool.create(QueueName::Incoming, &env()).unwrap();
        w.write_all(b"Subject: t\r\n\r\nbody\r\n").unwrap();
        w.prepend(b"X-Spam: Yes\r\n").unwrap();
        let prepended = w.commit().unwrap();
        for id in [&plain, &prepended] {
            let want = message(&spool, QueueName::Incoming, id);
            let (qf, bytes) = spool.read_small(QueueName::Incoming, id, 1 << 16).unwrap();
            assert_eq!(qf, spool.read(QueueName::Incoming, id).unwrap());
            assert_eq!(bytes.as_deref(), Some(&want[..]));
            // One byte over the bound: the queue file alone.
            let max = want.len() as u64 - 1;
            let (qf, bytes) = spool.read_small(QueueName::Incoming, id, max).unwrap();
            assert_eq!((qf.message_size, bytes), (want.len() as u64, None));
        }
        assert!(matches!(
            spool.read_small(QueueName::Incoming, "NOSUCHID", 1 << 16),
            Err(SpoolError::NotFound(_))
        ));
        // An envelope longer than WHOLE_FILE_SLACK: the file is read in
        // parts, and gives the same.
        let mut many = env_with("r0@x.test");
        many.recipients = (0..2000)
            .map(|i| Recipient::new(format!("recipient{i}@example.test")))
            .collect();
        let mut w = spool.create(QueueName::Incoming, &many).unwrap();
        w.write_all(b"Subject: u\r\n\r\nmany\r\n").unwrap();
        let big = w.commit().unwrap();
        let want = message(&spool, QueueName::Incoming, &big);
        let len = fs::metadata(spool.dir(QueueName::Incoming).join(&big))
            .unwrap()
            .len();
        assert!(len > want.len() as u64 + WHOLE_FILE_SLACK);
        let (qf, bytes) = spool
            .read_small(QueueName::Incoming, &big, want.len() as u64)
            .unwrap();
        assert_eq!(qf, spool.read(QueueName::Incoming, &big).unwrap());
        assert_eq!(bytes.as_deref(), Some(&want[..]));
        // A small file cut short is refused, with or without its message.
        let cut = spool.dir(QueueName::Hold).join(&plain);
        let data = fs::read(spool.dir(QueueName::Incoming).join(&plain)).unwrap();
        fs::write(&cut, &data[..data.len() - 3]).unwrap();
        for max in [1 << 16, 0] {
            assert!(spool.read_small(QueueName::Hold, &plain, max).is_err());
        }
    }

    #[test]
    fn symlinks_are_refused() {
        let (_d, spool) = temp_spool();
        let id = put(&spool, QueueName::Incoming, b"x");
        std::os::unix::fs::symlink(
            spool.dir(QueueName::Incoming).join(&id),
            spool.dir(QueueName::Hold).join("LINK"),
        )
        .unwrap();
        assert!(matches!(
            spool.read(QueueName::Hold, "LINK"),
            Err(SpoolError::Corrupt(_))
        ));
    }
}
