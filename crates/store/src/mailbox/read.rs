//! Reading messages: [`Mailbox::read_message`], [`Mailbox::read_header`],
//! [`Mailbox::crlf_size`], [`Mailbox::open_message`] (CRLF form, from the
//! LF files), and [`Mailbox::resolve_dates`] (internal dates, read when
//! first asked for). A file renamed by another process is found again
//! through the index, then by a scan.

use std::io::{self, Read};
use std::sync::Arc;

use super::{Mailbox, is_not_found};
use crate::crlf::CrlfReader;
use crate::dirfd::{MsgFile, is_link_refused};
use crate::{Content, MessageMeta, Result, StoreError, index, sync};

impl Mailbox {
    /// Save dates (SAVEDATE, RFC 8514: when each message was saved into
    /// this mailbox) of `uids` (every message of the view with `None`):
    /// the time APPEND, COPY or MOVE recorded, else the time at the start
    /// of the file's name (a delivery's, or an external tool's writing).
    /// A message with neither is left out.
    pub fn save_dates(&self, uids: Option<&[u32]>) -> Result<std::collections::HashMap<u32, i64>> {
        let mut out =
            index::saved_dates(&self.user.conn(), self.id, uids.filter(|u| u.len() <= 64))?;
        let mut fill = |m: &MessageMeta| {
            if !out.contains_key(&m.uid)
                && let Some(t) = name_time(&m.file_name)
            {
                out.insert(m.uid, t);
            }
        };
        match uids {
            Some(u) => u
                .iter()
                .filter_map(|&uid| self.position(uid))
                .for_each(|i| fill(&self.messages[i])),
            None => self.messages.iter().for_each(fill),
        }
        Ok(out)
    }

    /// Reads the internal dates (file mtimes) still unknown among `uids`
    /// (every message of the view with `None`; see
    /// [`MessageMeta::internal_date`]) and records them in the index (not
    /// fsynced: they can be read again) and in this view. A message gone
    /// meanwhile keeps [`crate::UNKNOWN_DATE`].
    pub fn resolve_dates(&mut self, uids: Option<&[u32]>) -> Result<()> {
        let unknown = |m: &MessageMeta| m.internal_date == crate::UNKNOWN_DATE;
        let todo: Vec<usize> = match uids {
            Some(u) => u
                .iter()
                .filter_map(|&uid| self.position(uid))
                .filter(|&i| unknown(&self.messages[i]))
                .collect(),
            None => (0..self.messages.len())
                .filter(|&i| unknown(&self.messages[i]))
                .collect(),
        };
        if todo.is_empty() {
            return Ok(());
        }
        let cur = &self.md.get()?.cur;
        let mut found: Vec<(usize, i64)> = Vec::with_capacity(todo.len());
        for i in todo {
            let m = &self.messages[i];
            let mtime = match sync::stat_at(cur, &m.file_name) {
                Ok(Some(t)) => t.mtime,
                // Not a regular file any more (a link?): never followed.
                Ok(None) => continue,
                // Renamed by someone else: find it again.
                Err(e) if is_not_found(&e) => match self.open_file(m.uid) {
                    Ok(f) => f.stat()?.st_mtime,
                    Err(StoreError::NoSuchMessage(_)) => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e.into()),
            };
            found.push((i, mtime));
        }
        if found.is_empty() {
            return Ok(());
        }
        let rows: Vec<(u32, i64)> = found
            .iter()
            .map(|&(i, t)| (self.messages[i].uid, t))
            .collect();
        let id = self.id;
        self.user.write_unsynced(|tx| {
            let mut st = tx.prepare_cached(
                "UPDATE messages SET internal_date = ?3
                 WHERE mailbox = ?1 AND uid = ?2 AND internal_date = ?4",
            )?;
            for (uid, t) in &rows {
                st.execute(rusqlite::params![id, uid, t, crate::UNKNOWN_DATE])?;
            }
            Ok(())
        })?;
        // The cached view, if it is this one, is updated with it; another
        // cached view of this mailbox gets the dates too.
        let ours = self.user.shared.views.release(self.dir(), &self.messages);
        let msgs = Arc::make_mut(&mut self.messages);
        for (i, t) in found {
            msgs[i].internal_date = t;
        }
        if ours {
            let key = self.view_key();
            self.user.shared.views.put(self.dir(), key, &self.messages);
        } else {
            self.user.shared.views.fill_dates(self.dir(), &rows);
        }
        Ok(())
    }

    /// The file of message `uid`, following a rename by another process
    /// (never a symbolic link: a message that is not a regular file is
    /// refused, and logged, as no message).
    fn open_file(&self, uid: u32) -> Result<MsgFile> {
        let cur = &self.md.get()?.cur;
        let refused = |e: io::Error| -> StoreError {
            if is_link_refused(&e) || e.kind() == io::ErrorKind::InvalidData {
                tracing::warn!(dir = %cur.path().display(), uid, error = %e, "message is not a regular file (a symbolic link?): not read");
                StoreError::NoSuchMessage(uid)
            } else {
                e.into()
            }
        };
        let i = self.position(uid).ok_or(StoreError::NoSuchMessage(uid))?;
        match cur.open_file(&self.messages[i].file_name) {
            Ok(f) => return Ok(f),
            Err(e) if !is_not_found(&e) => return Err(refused(e)),
            Err(_) => {}
        }
        // Renamed meanwhile: ask the index, then scan and ask again.
        for force in [false, true] {
            let name = if force {
                self.write(|tx, row| {
                    sync::scan_locked(tx, self.md.get()?, row, true)?;
                    index::message(tx, row.id, uid)
                })?
            } else {
                index::message(&self.user.conn(), self.id, uid)?
            };
            let Some(m) = name else {
                return Err(StoreError::NoSuchMessage(uid));
            };
            match cur.open_file(&m.file_name) {
                Ok(f) => return Ok(f),
                Err(e) if !is_not_found(&e) => return Err(refused(e)),
                Err(_) => {}
            }
        }
        Err(StoreError::NoSuchMessage(uid))
    }

    /// The whole message in CRLF form; a small one is kept for the next
    /// reader in this process (`contents.rs`).
    pub fn read_message(&self, uid: u32) -> Result<Content> {
        if let Some(c) = self.kept_message(uid) {
            return Ok(c);
        }
        let i = self.position(uid).ok_or(StoreError::NoSuchMessage(uid))?;
        let m = &self.messages[i];
        // The index's CRLF size bounds the file's: one read, no regrowth.
        let mut raw = Vec::with_capacity((m.size as usize).min(64 << 20) + 1);
        self.open_file(uid)?.read_to_end(&mut raw)?;
        let c = Content::from(crate::crlf::to_crlf_exact(&raw));
        self.user.shared.contents.put(self.dir(), &m.file_name, &c);
        Ok(c)
    }

    /// The message, if this process keeps it in memory (read before, and
    /// small: `contents.rs`): no file is opened.
    pub fn kept_message(&self, uid: u32) -> Option<Content> {
        let m = &self.messages[self.position(uid)?];
        self.user.shared.contents.get(self.dir(), &m.file_name)
    }

    /// The message's header block (as [`Mailbox::read_header`]), if this
    /// process keeps the message in memory: no file is opened.
    pub fn kept_header(&self, uid: u32) -> Option<Content> {
        self.kept_message(uid).map(Content::header)
    }

    /// The message's header block in CRLF form, up to and with the empty
    /// line that ends it (see [`crate::crlf::read_header`]): what FETCH of
    /// ENVELOPE or header fields needs. A small message is read whole and
    /// kept (as [`Mailbox::read_message`] does); of a big one, only the
    /// first kilobytes are read.
    pub fn read_header(&self, uid: u32) -> Result<Content> {
        let i = self.position(uid).ok_or(StoreError::NoSuchMessage(uid))?;
        if self.messages[i].size <= crate::contents::MAX_MESSAGE {
            return Ok(self.read_message(uid)?.header());
        }
        Ok(crate::crlf::read_header(&mut self.open_file(uid)?, 8192)?.into())
    }

    /// The exact size of the message in CRLF form, counted from its file
    /// (one pass in 64 KiB reads): what a streamed literal announces.
    pub fn crlf_size(&self, uid: u32) -> Result<u64> {
        let mut f = self.open_file(uid)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => return Ok(size),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            size += crate::crlf::crlf_len(&buf[..n]);
        }
    }

    /// The message in CRLF form, streamed.
    pub fn open_message(&self, uid: u32) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(CrlfReader::new(self.open_file(uid)?)))
    }
}

/// The seconds at the start of a Maildir file name (`1733400000.M…`).
fn name_time(name: &str) -> Option<i64> {
    let digits = name.split('.').next()?;
    (!digits.is_empty() && digits.len() <= 12 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::Flags;

    #[test]
    fn save_dates_are_recorded_or_read_from_the_file_name() {
        let (_d, _s, us) = crate::mailbox::tests::setup();
        // A file another program put in new/, named in 2001.
        let inbox_new = us.mailbox_dir("INBOX").unwrap().join("new");
        std::fs::write(inbox_new.join("1000000000.M1P1.h"), "Subject: x\n\nx\n").unwrap();
        let mut inbox = us.select("INBOX").unwrap();
        let delivered = inbox.messages()[0].uid;
        // APPENDed with an old internal date: saved now all the same.
        let appended = inbox
            .append(
                &mut &b"Subject: y\r\n\r\ny\r\n"[..],
                &Flags::default(),
                Some(86_400),
            )
            .unwrap();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let dates = inbox.save_dates(None).unwrap();
        assert_eq!(dates[&delivered], 1_000_000_000);
        assert!((now - dates[&appended]).abs() < 5, "{dates:?}");
        // Copied and moved: saved now in the other mailbox.
        us.create_mailbox("Keep", None).unwrap();
        let mut keep = us.select("Keep").unwrap();
        let copied = inbox.copy_to(&[delivered], &mut keep).unwrap();
        let moved = inbox.move_to(&[delivered], &mut keep).unwrap();
        keep.sync().unwrap();
        let dates = keep.save_dates(Some(&[copied[0].1, moved[0].1])).unwrap();
        assert!((now - dates[&copied[0].1]).abs() < 5, "{dates:?}");
        assert!((now - dates[&moved[0].1]).abs() < 5, "{dates:?}");
        // The moved message left INBOX, and its recorded date with it.
        inbox.sync().unwrap();
        let dates = inbox.save_dates(None).unwrap();
        assert_eq!(dates.len(), 1);
        assert!(dates.contains_key(&appended));
    }

    #[test]
    fn a_small_message_once_read_is_read_again_without_its_file() {
        let (_d, s, us) = crate::mailbox::tests::setup();
        let small = "Subject: small\r\nTo: a@x.test\r\n\r\nbody\r\n";
        let big = format!(
            "Subject: big\r\n\r\n{}",
            "0123456789abcdef\r\n".repeat(5000)
        );
        crate::mailbox::tests::deliver(&s, small);
        crate::mailbox::tests::deliver(&s, &big);
        let mut mb = us.select("INBOX").unwrap();
        assert_eq!(
            mb.read_header(1).unwrap(),
            b"Subject: small\r\nTo: a@x.test\r\n\r\n"
        );
        assert_eq!(mb.read_header(2).unwrap(), b"Subject: big\r\n\r\n");
        assert_eq!(mb.read_message(2).unwrap(), big.as_bytes());
        // A flag change renames the file: the same message all the same.
        mb.store_flags(
            &[1, 2],
            crate::FlagOp::Add,
            &Flags::system(crate::SEEN),
            None,
        )
        .unwrap();
        // The files go (as if another process expunged them): the small
        // message is still read, from memory; the big one was not kept.
        let cur = us.mailbox_dir("INBOX").unwrap().join("cur");
        for e in std::fs::read_dir(&cur).unwrap() {
            std::fs::remove_file(e.unwrap().path()).unwrap();
        }
        assert_eq!(mb.read_message(1).unwrap(), small.as_bytes());
        assert_eq!(
            mb.read_header(1).unwrap(),
            b"Subject: small\r\nTo: a@x.test\r\n\r\n"
        );
        assert!(mb.read_message(2).is_err());
        assert!(mb.read_header(2).is_err());
        // Another mailbox's message of the same file name is its own.
        us.create_mailbox("Other", None).unwrap();
        let name = &mb.messages()[0].file_name;
        let other_cur = us.mailbox_dir("Other").unwrap().join("cur");
        std::fs::write(other_cur.join(&**name), "Subject: other\n\nx\n").unwrap();
        let other = us.select("Other").unwrap();
        assert_eq!(
            other.read_message(1).unwrap(),
            b"Subject: other\r\n\r\nx\r\n"
        );
    }
}
