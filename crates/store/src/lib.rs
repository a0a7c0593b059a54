//! facteur-store: the mail store, Maildir++ plus a per-user SQLite index.
//!
//! Used at once by facteur-lmtpd (delivery), facteur-imapd and facteur-pop3d,
//! in separate processes. The on-disk format (version 1) is specified in
//! `docs/store-format.md`.
//!
//! Layout of the crate:
//!
//! ```text
//!   lib.rs      the types and Store
//!   name.rs     unique names, file name parsing, flag letters (pure)
//!   crlf.rs     CRLF <-> LF conversion (pure, incremental)
//!   contents.rs small messages' content kept for reading again (FETCH)
//!   layout.rs   user and mailbox names <-> directories, what is a Maildir
//!   fsops.rs    the mkdirs, new files, renames and directory fsyncs of
//!               delivery and folders (recorded in tests: durability)
//!   dirfd.rs    directories and message files opened without following
//!               symbolic links; the *at() calls on them
//!   maildir.rs  making a Maildir (durably), writing a message into tmp/
//!   quota.rs    the Maildir++ maildirsize file
//!   deliver.rs  Store::deliver (the hot path of facteur-lmtpd)
//!   users.rs    Store: user directories, create_user, purge_user, open_user
//!   folders.rs  UserStore: list, create, delete, rename, subscribe, select
//!   index.rs    the SQLite index: schema, rows, UIDVALIDITY
//!   sync.rs     bringing the index up to date with the directories
//!   mailbox.rs  a selected Mailbox: view, flags, append, copy, move, expunge
//!   sieve.rs    the user's Sieve scripts and which one is active
//!   acl.rs      access control lists: mailboxes shared in a domain
//!   urlauth.rs  URLAUTH access keys, one per mailbox of a user
//!
//! Dependencies point one way: users -> folders -> mailbox -> sync, index;
//! deliver, folders and mailbox -> maildir -> fsops; all -> layout.
//! ```
//!
//! Layout on disk: `<root>/<domain>/<localpart>/` holds INBOX (`cur/ new/
//! tmp/`), one `.Name/` directory per other folder (Maildir++), the quota
//! file `maildirsize`, and the index `facteur-index.sqlite`.
//!
//! Invariants:
//! - Message files are plain Maildir and immutable; their names carry the
//!   system flags. Messages are stored with LF line endings and handed out
//!   with CRLF; the conversion is a bijection (see crlf.rs).
//! - Delivery never opens the index: it writes `tmp/`, fsyncs, renames into
//!   `new/`, fsyncs `new/`; the next sync gives the message its UID.
//! - Every directory entry an acknowledgement depends on is durable before
//!   it is given: a new directory's parent, and each directory above it up
//!   to the mail root, is fsynced after it is made (maildir.rs; the order
//!   of calls is checked by tests through fsops.rs).
//! - Every change to the index, and every scan of a mailbox directory, runs
//!   inside one SQLite `BEGIN IMMEDIATE` transaction per user, so processes
//!   serialize: a UID is never given twice and never reused.
//! - The index can always be rebuilt from the files, but only with a new
//!   UIDVALIDITY.
//!
//! Standards: Maildir (cr.yp.to/proto/maildir.html), Maildir++ (Courier),
//! IMAP4rev2 (RFC 9051) semantics for names, UIDs and RENAME INBOX,
//! CONDSTORE/QRESYNC (RFC 7162) for MODSEQ and vanished UIDs, SPECIAL-USE
//! (RFC 6154).
//!
//! Security: user names and mailbox names are checked before they become
//! paths (no `/`, no `..`, no leading `.`, no NUL or control characters), so
//! nothing can reach outside the user's directory. No symbolic link is
//! followed below the user directory: folders, `cur/ new/ tmp/` and
//! message files are opened with `O_NOFOLLOW` and reached through
//! directory descriptors (dirfd.rs); links and other non-regular files are
//! skipped and logged, never moved, listed or read. Directories are 0700,
//! files 0600.

pub mod acl;
pub use contents::Content;
mod contents;
mod crlf;
mod deliver;
mod dirfd;
mod folders;
mod fsops;
mod import;
mod index;
mod layout;
mod listing;
mod mailbox;
mod maildir;
mod metadata;
pub mod name;
mod quota;
pub mod sieve;
mod sync;
mod urlauth;
mod users;
mod views;

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

pub use acl::{Grant, Rights};
pub use crlf::{CrlfReader, ToCrlf, ToLf, read_header, to_crlf, to_lf};
pub use folders::UserStore;
pub use import::{ExportMailbox, ImportCount, ImportMessage};
pub use layout::normalize as normalize_name;
pub use layout::{decode_dir, dir_name};
pub use mailbox::{Mailbox, Synced};
pub use metadata::SetMetadata;
pub use name::{ANSWERED, DELETED, DRAFT, FLAGGED, ParsedName, SEEN, parse_file_name};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("over quota")]
    OverQuota,
    #[error("no such mailbox: {0}")]
    NoSuchMailbox(String),
    #[error("mailbox already exists: {0}")]
    MailboxExists(String),
    #[error("invalid mailbox name: {0}")]
    InvalidName(String),
    #[error("invalid user: {0}")]
    InvalidUser(String),
    #[error("no such message: uid {0}")]
    NoSuchMessage(u32),
    /// DELETE of a mailbox that has children (RFC 9051 §6.3.5 lets a server
    /// refuse; Maildir++ cannot keep a \Noselect parent).
    #[error("mailbox has children: {0}")]
    HasChildren(String),
    /// Over one of the user's [`FolderLimits`] (RFC 5530 `LIMIT`).
    #[error("{0}")]
    Limit(String),
    #[error("index: {0}")]
    Index(String),
    /// Another user's mailbox, visible to this one but not for this
    /// (RFC 4314 rights; the text says which).
    #[error("{0}")]
    NoPermission(String),
    #[error("no such script: {0}")]
    NoSuchScript(String),
    #[error("script already exists: {0}")]
    ScriptExists(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The result type of the store.
pub type Result<T> = std::result::Result<T, StoreError>;

/// A quota; 0 means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Quota {
    /// Bytes on disk (the `S=` sizes).
    pub bytes: u64,
    /// Number of messages.
    pub messages: u64,
}

/// Where the store lives.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// The mail root: `<root>/<domain>/<localpart>/`.
    pub root: PathBuf,
    /// This host's name, used in unique file names.
    pub hostname: String,
}

/// Limits on one user's folders and subscriptions: each mailbox costs a
/// directory, an index row and work in every LIST and DELETE, each
/// subscription a line read by every LIST, and a client may create them at
/// will (issue 14: 10,000 mailboxes in 12 s).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FolderLimits {
    /// Mailboxes besides INBOX.
    pub mailboxes: usize,
    /// Levels of a mailbox name (`a/b/c` is 3).
    pub depth: usize,
    /// Subscribed names.
    pub subscriptions: usize,
}

impl Default for FolderLimits {
    fn default() -> Self {
        FolderLimits {
            mailboxes: 1000,
            depth: 16,
            subscriptions: 1000,
        }
    }
}

/// What a process shares between all its handles.
#[derive(Debug)]
pub(crate) struct Shared {
    pub cfg: StoreConfig,
    pub limits: FolderLimits,
    pub names: name::UniqueNames,
    pub views: views::Views,
    /// Small messages' content (`contents.rs`).
    pub contents: contents::Contents,
    /// `\Recent` claims known to this process (`mailbox/recent.rs`).
    pub recent: mailbox::recent::Known,
}

/// The mail store. Cheap to clone; Send + Sync.
#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) shared: Arc<Shared>,
}

/// A delivered message.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// Its file, in `new/`.
    pub path: PathBuf,
    /// Its size on disk (LF line endings).
    pub disk_size: u64,
    /// Its size in CRLF form (RFC822.SIZE, POP3 sizes).
    pub size: u64,
}

/// SPECIAL-USE roles (RFC 6154).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    All,
    Archive,
    Drafts,
    Flagged,
    Junk,
    Sent,
    Trash,
}

impl SpecialUse {
    const ALL: [SpecialUse; 7] = [
        SpecialUse::All,
        SpecialUse::Archive,
        SpecialUse::Drafts,
        SpecialUse::Flagged,
        SpecialUse::Junk,
        SpecialUse::Sent,
        SpecialUse::Trash,
    ];

    /// The IMAP attribute, e.g. `\Sent`.
    pub fn as_str(self) -> &'static str {
        match self {
            SpecialUse::All => "\\All",
            SpecialUse::Archive => "\\Archive",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Flagged => "\\Flagged",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Trash => "\\Trash",
        }
    }

    /// Parses an attribute (case-insensitive).
    pub fn parse(s: &str) -> Option<SpecialUse> {
        SpecialUse::ALL
            .into_iter()
            .find(|u| u.as_str().eq_ignore_ascii_case(s))
    }

    /// The role a folder created by `create_user` has; also given back to
    /// those folders when the index is rebuilt.
    pub(crate) fn default_for(name: &str) -> Option<SpecialUse> {
        DEFAULT_FOLDERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, u)| *u)
    }
}

/// The folders every new user gets.
pub(crate) const DEFAULT_FOLDERS: [(&str, SpecialUse); 5] = [
    ("Sent", SpecialUse::Sent),
    ("Drafts", SpecialUse::Drafts),
    ("Trash", SpecialUse::Trash),
    ("Junk", SpecialUse::Junk),
    ("Archive", SpecialUse::Archive),
];

/// A mailbox as LIST shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxInfo {
    /// Its name: "INBOX", "Sent", "Lists/rust".
    pub name: String,
    pub special_use: Option<SpecialUse>,
    pub subscribed: bool,
}

/// Message flags: system flags as bits, keywords by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flags {
    /// [`SEEN`], [`ANSWERED`], [`FLAGGED`], [`DELETED`], [`DRAFT`].
    pub system: u8,
    /// IMAP keywords (atoms). Kept in the index only.
    pub keywords: BTreeSet<String>,
}

impl Flags {
    /// Only system flags.
    pub fn system(bits: u8) -> Flags {
        Flags {
            system: bits,
            keywords: BTreeSet::new(),
        }
    }

    /// Applies `op` with `arg` to these flags.
    pub fn apply(&self, op: FlagOp, arg: &Flags) -> Flags {
        match op {
            FlagOp::Replace => arg.clone(),
            FlagOp::Add => Flags {
                system: self.system | arg.system,
                keywords: self.keywords.union(&arg.keywords).cloned().collect(),
            },
            FlagOp::Remove => Flags {
                system: self.system & !arg.system,
                keywords: self.keywords.difference(&arg.keywords).cloned().collect(),
            },
        }
    }
}

/// Which flags a change may touch: the system flags whose bits are set,
/// and keywords or not (a shared mailbox's rights, RFC 4314 §4: `s` for
/// \Seen, `t` for \Deleted, `w` for the others). The flags outside it keep
/// their values, whatever the operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlagMask {
    pub system: u8,
    pub keywords: bool,
}

impl FlagMask {
    pub const ALL: FlagMask = FlagMask {
        system: u8::MAX,
        keywords: true,
    };
    /// A read-only mailbox's.
    pub const NONE: FlagMask = FlagMask {
        system: 0,
        keywords: false,
    };

    /// Whether every flag may change.
    pub fn is_all(&self) -> bool {
        *self == FlagMask::ALL
    }

    /// `flags` without what the mask leaves out.
    pub fn filter(&self, flags: &Flags) -> Flags {
        Flags {
            system: flags.system & self.system,
            keywords: if self.keywords {
                flags.keywords.clone()
            } else {
                Default::default()
            },
        }
    }
}

impl Flags {
    /// [`Flags::apply`] within `mask`.
    pub fn apply_masked(&self, op: FlagOp, arg: &Flags, mask: FlagMask) -> Flags {
        let new = self.apply(op, arg);
        Flags {
            system: (new.system & mask.system) | (self.system & !mask.system),
            keywords: if mask.keywords {
                new.keywords
            } else {
                self.keywords.clone()
            },
        }
    }
}

/// How STORE changes flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagOp {
    Add,
    Remove,
    Replace,
}

/// [`MessageMeta::internal_date`] not looked up yet.
pub const UNKNOWN_DATE: i64 = i64::MIN;

/// EMAILID (OBJECTID, RFC 8474 §5) of a message stored as `file_name`:
/// a 64-bit FNV-1a hash of the name's unique part (before `:2,`), which
/// flag changes keep. Stable across restarts and versions; a copy (a new
/// file) has its own, as RFC 8474 allows.
pub fn email_id(file_name: &str) -> String {
    let base = file_name.split(':').next().unwrap_or(file_name);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in base.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    format!("M{h:016x}")
}

/// A message as the index knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub uid: u32,
    pub flags: Flags,
    pub modseq: u64,
    /// Size in CRLF form.
    pub size: u64,
    /// Unix seconds: the file's mtime, or [`UNKNOWN_DATE`] until someone
    /// asks for it ([`Mailbox::resolve_dates`]): a scan that finds new
    /// files does not stat them (the first SELECT of a big Maildir would
    /// stat every file).
    pub internal_date: i64,
    /// The file's name in `cur/` when last seen. Shared: views are copied
    /// (a session's own change to a view another shares, a view brought up
    /// to date) without copying every name.
    pub file_name: std::sync::Arc<str>,
}

/// What changed since a handle's previous view.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncChanges {
    pub added: Vec<u32>,
    pub expunged: Vec<u32>,
    pub flags_changed: Vec<u32>,
}

/// The outcome of a STORE.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreFlagsResult {
    /// Messages whose flags changed.
    pub updated: Vec<u32>,
    /// Messages that failed the UNCHANGEDSINCE test.
    pub failed: Vec<u32>,
}

#[cfg(test)]
impl Store {
    /// A store rooted at `root`, for tests.
    pub(crate) fn for_tests(root: &std::path::Path) -> Store {
        Store::new(StoreConfig {
            root: root.to_path_buf(),
            hostname: "mx.test".into(),
        })
    }
}

impl Store {
    /// A store rooted at `cfg.root`.
    pub fn new(cfg: StoreConfig) -> Store {
        Store::with_limits(cfg, FolderLimits::default())
    }

    /// A store whose users' folders are bounded by `limits`.
    pub fn with_limits(cfg: StoreConfig, limits: FolderLimits) -> Store {
        let names = name::UniqueNames::new(&cfg.hostname);
        Store {
            shared: Arc::new(Shared {
                cfg,
                limits,
                names,
                views: views::Views::default(),
                contents: Default::default(),
                recent: Default::default(),
            }),
        }
    }
}
