//! The maildrop of a POP3 session: the user's INBOX, locked, as of login.
//!
//! Offers [`Maildrop::open`] (lock, sync the INBOX, snapshot its messages
//! with their POP3 sizes), the numbered view the commands work on (message
//! numbers 1..=n of the snapshot; marked messages hidden), the deletion
//! marks (DELE, RSET), and [`Maildrop::update`], the UPDATE state
//! (RFC 1939 §6). Every method here may block on the disk: the session calls
//! them from `spawn_blocking`.
//!
//! Guarantees:
//! - The lock (`flock(LOCK_EX|LOCK_NB)` on `<user dir>/facteur-pop3.lock`)
//!   is taken before the INBOX is read and held as long as the `Maildrop`
//!   lives; a second session, in this process or another, gets
//!   [`OpenError::InUse`]. IMAP sessions and deliveries are not blocked.
//! - Nothing is deleted except in [`Maildrop::update`]: it flags exactly the
//!   marked UIDs `\Deleted` and expunges exactly those UIDs, leaving any
//!   other message (even one an IMAP client flagged `\Deleted`) alone. It
//!   also flags the retrieved messages `\Seen`, as IMAP users expect.
//! - Messages that arrive during the session are not shown (the snapshot is
//!   taken at login); messages expunged by IMAP meanwhile answer
//!   "no such message" when retrieved.

use crate::sizes;
use facteur_store::{DELETED, FlagOp, Flags, Mailbox, Quota, SEEN, Store, StoreError};
use std::fs::{File, OpenOptions, TryLockError};
use std::io::Read;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;

/// The lock file's name in the user's directory.
pub const LOCK_FILE: &str = "facteur-pop3.lock";

/// Why a maildrop cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// Another POP3 session holds the lock.
    #[error("maildrop in use by another POP3 session")]
    InUse,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// One message of the snapshot.
#[derive(Debug, Clone)]
pub struct Msg {
    pub uid: u32,
    /// Octets RETR sends (CRLF, dot-stuffed).
    pub size: u64,
    pub deleted: bool,
    pub retrieved: bool,
}

/// The locked maildrop of one session.
pub struct Maildrop {
    user: String,
    dir: PathBuf,
    mailbox: Mailbox,
    uidvalidity: u32,
    msgs: Vec<Msg>,
    _lock: File,
}

impl std::fmt::Debug for Maildrop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Maildrop")
            .field("user", &self.user)
            .field("messages", &self.msgs.len())
            .finish()
    }
}

/// What UPDATE did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Updated {
    pub deleted: usize,
    pub left: usize,
}

/// Takes the POP3 lock of a user directory.
pub fn lock(dir: &std::path::Path) -> Result<File, OpenError> {
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(dir.join(LOCK_FILE))?;
    match f.try_lock() {
        Ok(()) => Ok(f),
        Err(TryLockError::WouldBlock) => Err(OpenError::InUse),
        Err(TryLockError::Error(e)) => Err(e.into()),
    }
}

impl Maildrop {
    /// Locks and opens `user`'s INBOX (the user's Maildir is created if
    /// missing), and learns every message's POP3 size.
    pub fn open(store: &Store, user: &str) -> Result<Maildrop, OpenError> {
        let us = store.open_user(user, Quota::default())?;
        let dir = store.user_dir(user)?;
        let lock = lock(&dir)?;
        let mailbox = us.select("INBOX")?;
        let uidvalidity = mailbox.uidvalidity();
        let cached = sizes::load(&dir, uidvalidity);
        let mut msgs = Vec::with_capacity(mailbox.messages().len());
        let mut measured = 0usize;
        for m in mailbox.messages() {
            let size = match cached.get(&m.uid) {
                Some(&s) => s,
                None => match mailbox.open_message(m.uid) {
                    Ok(r) => {
                        measured += 1;
                        sizes::measure(r)?
                    }
                    // Expunged by another process meanwhile: not ours.
                    Err(StoreError::NoSuchMessage(_)) => continue,
                    Err(e) => return Err(e.into()),
                },
            };
            msgs.push(Msg {
                uid: m.uid,
                size,
                deleted: false,
                retrieved: false,
            });
        }
        // Rewrite the cache when it learnt something or holds stale UIDs.
        if measured > 0 || cached.len() != msgs.len() {
            let list: Vec<(u32, u64)> = msgs.iter().map(|m| (m.uid, m.size)).collect();
            if let Err(e) = sizes::save(&dir, uidvalidity, &list) {
                tracing::warn!(user, error = %e, "cannot write the POP3 size cache");
            }
        }
        tracing::debug!(user, measured, cached = cached.len(), "maildrop sizes");
        Ok(Maildrop {
            user: user.to_owned(),
            dir,
            mailbox,
            uidvalidity,
            msgs,
            _lock: lock,
        })
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// The message numbered `n` (1-based), unless out of range or marked.
    pub fn get(&self, n: u32) -> Option<&Msg> {
        let i = (n as usize).checked_sub(1)?;
        self.msgs.get(i).filter(|m| !m.deleted)
    }

    /// (number, message) of every message not marked as deleted.
    pub fn visible(&self) -> impl Iterator<Item = (u32, &Msg)> {
        self.msgs
            .iter()
            .enumerate()
            .filter(|(_, m)| !m.deleted)
            .map(|(i, m)| (i as u32 + 1, m))
    }

    /// STAT: the count and total size of the messages not marked.
    pub fn stat(&self) -> (usize, u64) {
        self.visible()
            .fold((0, 0), |(n, s), (_, m)| (n + 1, s + m.size))
    }

    /// The number of messages in the snapshot, marked or not.
    pub fn len(&self) -> usize {
        self.msgs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    /// The unique-id listing of a message (RFC 1939 §7 UIDL): printable
    /// ASCII, at most 70 octets; `<UIDVALIDITY>.<UID>`.
    pub fn uidl(&self, m: &Msg) -> String {
        format!("{}.{}", self.uidvalidity, m.uid)
    }

    /// DELE: marks message `n`. False if there is none (or already marked).
    pub fn mark_deleted(&mut self, n: u32) -> bool {
        match (n as usize)
            .checked_sub(1)
            .and_then(|i| self.msgs.get_mut(i))
        {
            Some(m) if !m.deleted => {
                m.deleted = true;
                true
            }
            _ => false,
        }
    }

    /// RSET: unmarks all messages.
    pub fn reset(&mut self) {
        for m in &mut self.msgs {
            m.deleted = false;
        }
    }

    /// Notes that message `n` was retrieved whole (flagged \Seen at UPDATE).
    pub fn mark_retrieved(&mut self, n: u32) {
        if let Some(m) = (n as usize)
            .checked_sub(1)
            .and_then(|i| self.msgs.get_mut(i))
        {
            m.retrieved = true;
        }
    }

    /// Count of marked messages.
    pub fn marked(&self) -> usize {
        self.msgs.iter().filter(|m| m.deleted).count()
    }

    /// Opens message `uid` in CRLF form, streamed.
    pub fn open_message(&self, uid: u32) -> Result<Box<dyn Read + Send>, StoreError> {
        self.mailbox.open_message(uid)
    }

    /// Forgets a cached size that proved wrong (it is measured again at the
    /// next login).
    pub fn forget_size(&self, uid: u32) {
        let list: Vec<(u32, u64)> = self
            .msgs
            .iter()
            .filter(|m| m.uid != uid)
            .map(|m| (m.uid, m.size))
            .collect();
        if let Err(e) = sizes::save(&self.dir, self.uidvalidity, &list) {
            tracing::warn!(user = %self.user, error = %e, "cannot write the POP3 size cache");
        }
    }

    /// The UPDATE state: retrieved messages get \Seen, marked ones are
    /// flagged \Deleted and expunged (only those UIDs).
    pub fn update(&mut self) -> Result<Updated, StoreError> {
        let seen: Vec<u32> = self
            .msgs
            .iter()
            .filter(|m| m.retrieved && !m.deleted)
            .map(|m| m.uid)
            .collect();
        let dele: Vec<u32> = self
            .msgs
            .iter()
            .filter(|m| m.deleted)
            .map(|m| m.uid)
            .collect();
        if !seen.is_empty() {
            // Cosmetic for IMAP; a failure must not keep the deletions from
            // happening.
            if let Err(e) = self
                .mailbox
                .store_flags(&seen, FlagOp::Add, &Flags::system(SEEN), None)
            {
                tracing::warn!(user = %self.user, error = %e, "cannot flag retrieved messages \\Seen");
            }
        }
        let mut deleted = 0;
        if !dele.is_empty() {
            self.mailbox
                .store_flags(&dele, FlagOp::Add, &Flags::system(DELETED), None)?;
            deleted = self.mailbox.expunge(Some(&dele))?.len();
        }
        let left = self.msgs.len() - dele.len();
        Ok(Updated { deleted, left })
    }
}
