//! facteur-spool: the queue on disk, the contract between the programs that
//! accept mail (`facteur-smtpd`, `sendmail`) and the one that delivers it
//! (`facteur-qmgr`), and what `facteurctl` shows and edits.
//!
//! Layout: under the spool root, the queue directories `maildrop/ incoming/
//! active/ deferred/ hold/ corrupt/` ([`QueueName`]), plus two private ones:
//! `tmp/` (queue files being written, never read by anyone) and `state/`
//! (the mutable delivery state of a message, `<id>.state`, keyed by queue id
//! and therefore independent of the directory the message is in). The
//! on-disk format is specified in `docs/queue-file.md`; [`format`] implements
//! it, [`spool`] the directory operations, [`writer`] new files;
//! [`control`] is what `facteurctl queue` and `mailq` do (queue operations,
//! qmgr's control protocol, the listing).
//!
//! Invariants:
//! - A file appears in a queue directory only when it is complete (ends with
//!   its END record) and fsynced: it is written under a temporary name and
//!   linked/renamed into place, and the directory is fsynced, before
//!   [`QueueWriter::commit`] returns. A file without END is never delivered:
//!   [`Spool::read`] answers [`SpoolError::Incomplete`].
//! - The message bytes of a queue file never change after commit (only
//!   [`Spool::rewrite_recipients`] writes a new file, via temp + rename).
//! - [`Spool::update`] appends the mutable state as a frame to the log
//!   `state/<id>.state` and fdatasyncs it (the first frame, or a log that
//!   grew too long or was cut by a crash, is written whole: temp + fsync +
//!   rename + fsync dir); the last intact frame is the state, so a crash
//!   leaves the old or the new one (docs/queue-file.md). The state file
//!   names the file instance (a random nonce) it belongs to, so a stale one
//!   is ignored.
//! - Bad bytes never panic and never allocate more than the file holds.
//!
//! Security: `maildrop/` is mode 03733 (setgid, sticky, writable by all,
//! listable by none but the owner) because the `sendmail` command writes it
//! as any local user; its files are therefore untrusted input for qmgr (the
//! file owner, not the `local_user` record, says who submitted). Every other
//! directory is 0700. Queue ids are checked (`[0-9A-Za-z]`, at most 64) before
//! they become path components; files are opened with O_NOFOLLOW.
//!
//! Standards: RFC 3461 (DSN parameters: NOTIFY, ORCPT, RET, ENVID), RFC 6152
//! and RFC 3030 (body types), RFC 6531 (SMTPUTF8).

pub mod control;
pub mod format;
pub mod spool;
pub mod writer;

pub use format::{ParsedQueueFile, parse_queue_file_bytes};
pub use spool::Spool;
pub use writer::{QueueWriter, wake_qmgr};

use facteur_mail::dsn::{BodyType, Notify, RcptStatus, Ret};
use std::path::PathBuf;

/// The queue directories, each with a fixed meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum QueueName {
    /// Written by the `sendmail` command (any local user); picked up by qmgr.
    Maildrop,
    /// Written by smtpd; new mail that qmgr has not looked at yet.
    Incoming,
    /// Messages qmgr is working on.
    Active,
    /// Messages waiting for their next attempt.
    Deferred,
    /// Held by the administrator; nothing happens until released.
    Hold,
    /// Files that could not be parsed; kept for a human to look at.
    Corrupt,
}

impl QueueName {
    pub const ALL: [QueueName; 6] = [
        QueueName::Maildrop,
        QueueName::Incoming,
        QueueName::Active,
        QueueName::Deferred,
        QueueName::Hold,
        QueueName::Corrupt,
    ];

    /// The directory name.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueName::Maildrop => "maildrop",
            QueueName::Incoming => "incoming",
            QueueName::Active => "active",
            QueueName::Deferred => "deferred",
            QueueName::Hold => "hold",
            QueueName::Corrupt => "corrupt",
        }
    }

    /// The inverse of [`QueueName::as_str`].
    pub fn parse(s: &str) -> Option<QueueName> {
        QueueName::ALL.into_iter().find(|q| q.as_str() == s)
    }
}

impl std::fmt::Display for QueueName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// No such queue file (the string names it).
    #[error("queue file not found: {0}")]
    NotFound(String),
    /// The file has no END record (truncated, or still being written).
    #[error("incomplete queue file: {0}")]
    Incomplete(String),
    /// The file cannot be parsed.
    #[error("corrupt queue file: {0}")]
    Corrupt(String),
    #[error("spool I/O error: {0}")]
    Io(#[from] std::io::Error),
}

pub type Result<T> = std::result::Result<T, SpoolError>;

/// One envelope recipient with its own delivery state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Recipient {
    /// The envelope recipient as accepted (after alias expansion by qmgr,
    /// the final address).
    pub address: String,
    /// RFC 3461 ORCPT, e.g. `rfc822;user@example.org`.
    pub orcpt: Option<String>,
    pub notify: Notify,
    pub status: RcptStatus,
    /// The last reply or diagnostic for this recipient, one line.
    pub last_reply: Option<String>,
}

impl Recipient {
    /// A pending recipient with no DSN parameters.
    pub fn new(address: impl Into<String>) -> Recipient {
        Recipient {
            address: address.into(),
            ..Recipient::default()
        }
    }
}

/// Everything about a message except its bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope {
    /// Filled in by [`Spool::create`].
    pub queue_id: String,
    /// The reverse-path; `""` = the null reverse-path `<>`.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    pub ret: Option<Ret>,
    pub envid: Option<String>,
    pub body: BodyType,
    pub smtputf8: bool,
    /// IP address of the SMTP client.
    pub client_addr: Option<String>,
    /// Its name, if known.
    pub client_name: Option<String>,
    pub helo: Option<String>,
    /// `ESMTPSA`, `SMTP`, `sendmail`, ...
    pub protocol: Option<String>,
    pub auth_user: Option<String>,
    /// sendmail: the Unix user who submitted.
    pub local_user: Option<String>,
    /// Unix seconds.
    pub arrival: i64,
    /// Delivery attempts so far.
    pub attempts: u32,
    /// Unix seconds; 0 = now.
    pub next_attempt: i64,
    /// A "delayed" DSN was sent.
    pub delay_notified: bool,
}

/// A queue file as read: where it is, its envelope (with the latest
/// mutable state applied) and the size of its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueFile {
    pub queue: QueueName,
    pub envelope: Envelope,
    /// Bytes of the message, network form.
    pub message_size: u64,
    pub path: PathBuf,
}

/// Whether `id` may name a queue file: 1 to 64 ASCII letters and digits (so
/// it can never be `..`, contain `/`, or name a temporary or state file).
pub fn valid_queue_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_names_round_trip() {
        for q in QueueName::ALL {
            assert_eq!(QueueName::parse(q.as_str()), Some(q));
        }
        assert_eq!(QueueName::parse("tmp"), None);
    }

    #[test]
    fn queue_ids_checked() {
        assert!(valid_queue_id("0AB12CDEF34GHJ"));
        for bad in ["", "..", "a/b", ".x", "x.state", "x.tmp", &"A".repeat(65)] {
            assert!(!valid_queue_id(bad), "{bad}");
        }
    }
}
