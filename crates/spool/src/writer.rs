//! Writing a new queue file: [`QueueWriter`] streams the message after the
//! envelope records that `Spool::create` wrote, and `commit` makes it
//! visible; [`wake_qmgr`] tells the queue manager.
//!
//! Guarantees: `commit` returns only when the file is complete (END record,
//! message length patched in), fsynced, linked into its queue directory
//! without replacing anything, and the directory fsynced. A writer dropped
//! without commit removes its temporary file. Messages are limited to
//! `format::MAX_MESSAGE` bytes (4 GiB - 1).

use crate::format::{self, END_RECORD};
use crate::{QueueName, Result, Spool, SpoolError};
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

fn invalid_input(msg: String) -> SpoolError {
    SpoolError::Io(io::Error::new(io::ErrorKind::InvalidInput, msg))
}

/// A queue file being written: the envelope is already on disk; write the
/// message bytes, then [`QueueWriter::commit`]. Dropped without commit, the
/// temporary file is removed (as by [`QueueWriter::abort`]).
#[derive(Debug)]
pub struct QueueWriter {
    pub(crate) spool: Spool,
    pub(crate) queue: QueueName,
    pub(crate) id: String,
    pub(crate) tmp_path: PathBuf,
    pub(crate) file: Option<BufWriter<File>>,
    /// Offset of the message record's length field.
    pub(crate) len_offset: u64,
    pub(crate) written: u64,
    /// Header fields for the `F` record, written at commit.
    pub(crate) prepend: Vec<u8>,
}

impl QueueWriter {
    /// The queue id this file will have.
    pub fn queue_id(&self) -> &str {
        &self.id
    }

    /// Bytes of message written so far.
    pub fn message_size(&self) -> u64 {
        self.written
    }

    /// A reader over the message bytes written so far (end-of-data checks
    /// read the message before it is committed). Flushes the buffer first.
    pub fn message_reader(&mut self) -> io::Result<MessageReader> {
        let w = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("queue file already closed"))?;
        w.flush()?;
        let start = self.len_offset + 4;
        Ok(MessageReader {
            file: w.get_ref().try_clone()?,
            pos: start,
            end: start + self.written,
        })
    }

    /// Rewrites the message written so far: `f` reads it (a copy in an
    /// unlinked temporary file of the spool) and writes the new one in
    /// its place. smtpd's end-of-data checks' changes (header fields
    /// removed or changed, a body replaced); on an error the writer is
    /// left unusable and the transaction must fail.
    pub fn rewrite_message(
        &mut self,
        f: impl FnOnce(&mut dyn io::Read, &mut dyn Write) -> io::Result<()>,
    ) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let mut copy = {
            let path = self.tmp_path.with_extension("rewrite");
            let c = fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)?;
            let _ = fs::remove_file(&path);
            c
        };
        io::copy(&mut self.message_reader()?, &mut copy)?;
        copy.seek(SeekFrom::Start(0))?;
        let start = self.len_offset + 4;
        let w = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("queue file already closed"))?;
        w.flush()?;
        w.get_mut().seek(SeekFrom::Start(start))?;
        self.written = 0;
        let mut input = io::BufReader::new(copy);
        let r = f(&mut input, self);
        if r.is_err() {
            self.file = None;
        }
        r?;
        self.flush()
    }

    /// Header fields (whole fields, each ending with CRLF) that readers
    /// emit above the message: kept in memory and written at commit in an
    /// `F` record after the message (docs/queue-file.md). smtpd's
    /// end-of-data checks add them once the message has streamed to disk
    /// (`Authentication-Results`, the spam mark). At most
    /// `format::MAX_RECORD` bytes in all.
    pub fn prepend(&mut self, fields: &[u8]) -> io::Result<()> {
        if !fields.ends_with(b"\r\n")
            || self.prepend.len() + fields.len() > format::MAX_RECORD as usize
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "prepended header fields: not CRLF-terminated, or too long",
            ));
        }
        self.prepend.extend_from_slice(fields);
        Ok(())
    }

    /// Writes END, fsyncs the file, links it into its queue directory (never
    /// replacing a file), fsyncs the directory; returns the queue id. Only
    /// after this may anyone say 250.
    pub fn commit(mut self) -> Result<String> {
        let result = self.finish();
        if result.is_err() {
            self.discard();
        }
        result.map(|()| std::mem::take(&mut self.id))
    }

    fn finish(&mut self) -> Result<()> {
        let w = self.file.take().expect("commit once");
        let file = w.into_inner().map_err(|e| e.into_error())?;
        let len = u32::try_from(self.written).map_err(|_| {
            invalid_input(format!("message of {} bytes is too large", self.written))
        })?;
        let mut end = self.len_offset + 4 + self.written;
        let f = format::prepend_record(&self.prepend)?;
        file.write_all_at(&f, end)?;
        end += f.len() as u64;
        file.write_all_at(&END_RECORD, end)?;
        file.write_all_at(&len.to_be_bytes(), self.len_offset)?;
        // A reused file (`Spool::create`) may be longer than this message.
        file.set_len(end + END_RECORD.len() as u64)?;
        let dir = self.spool.dir(self.queue);
        // Group commit (facteur_util::group): the queue directory's fsync
        // is shared with the other sessions committing now, and whoever
        // leads the next one waits for us to link our file first.
        let intent = facteur_util::group::intend(&dir);
        file.sync_all()?;
        let dst = dir.join(&self.id);
        match fs::hard_link(&self.tmp_path, &dst) {
            Ok(()) => fs::remove_file(&self.tmp_path)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(e.into()),
            // File systems without hard links: a checked rename.
            Err(_) => {
                if fs::symlink_metadata(&dst).is_ok() {
                    return Err(SpoolError::Io(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{} already exists", dst.display()),
                    )));
                }
                fs::rename(&self.tmp_path, &dst)?;
            }
        }
        match intent.fsync_dir() {
            // An unprivileged sendmail cannot open maildrop/ (mode 3733: no
            // read bit for others) to fsync it; syncfs on the queue file
            // makes the new directory entry durable with the rest of its
            // file system instead.
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                use std::os::fd::AsRawFd;
                nix::unistd::syncfs(file.as_raw_fd()).map_err(io::Error::from)?;
            }
            r => r?,
        }
        drop(file);
        self.tmp_path = PathBuf::new();
        Ok(())
    }

    /// Gives up: removes the temporary file.
    pub fn abort(mut self) {
        self.discard();
    }

    fn discard(&mut self) {
        self.file = None;
        if !self.tmp_path.as_os_str().is_empty() {
            let _ = fs::remove_file(&self.tmp_path);
            self.tmp_path = PathBuf::new();
        }
    }
}

impl Drop for QueueWriter {
    fn drop(&mut self) {
        self.discard();
    }
}

impl Write for QueueWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.written + buf.len() as u64 > format::MAX_MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "message too large for a queue file",
            ));
        }
        let w = self
            .file
            .as_mut()
            .ok_or_else(|| io::Error::other("queue file already closed"))?;
        let n = w.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.file.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

/// Reads a byte range of a queue file being written (positioned reads: the
/// writer's offset is untouched).
#[derive(Debug)]
pub struct MessageReader {
    file: File,
    pos: u64,
    end: u64,
}

impl io::Read for MessageReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let want = (self.end - self.pos).min(buf.len() as u64) as usize;
        if want == 0 {
            return Ok(0);
        }
        let n = self.file.read_at(&mut buf[..want], self.pos)?;
        self.pos += n as u64;
        Ok(n)
    }
}

/// Best-effort hint to the queue manager: one datagram `b"W"` from an
/// unbound socket to `socket`, non-blocking. Errors (no qmgr, full queue)
/// are ignored: qmgr also scans its directories periodically.
pub fn wake_qmgr(socket: &Path) {
    // One socket per process, made at the first wake-up (a socket and a
    // close per message otherwise); a failure to make it is retried at the
    // next wake-up.
    static SOCKET: std::sync::OnceLock<std::os::unix::net::UnixDatagram> =
        std::sync::OnceLock::new();
    let s = match SOCKET.get() {
        Some(s) => s,
        None => {
            let Ok(s) = std::os::unix::net::UnixDatagram::unbound() else {
                return;
            };
            if s.set_nonblocking(true).is_err() {
                return;
            }
            SOCKET.get_or_init(|| s)
        }
    };
    let _ = s.send_to(b"W", socket);
}
