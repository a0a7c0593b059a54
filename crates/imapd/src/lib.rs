//! facteur-imapd: mailboxes over IMAP4rev2 (RFC 9051) and IMAP4rev1
//! (RFC 3501), on the Maildir++ store lmtpd delivers into and pop3d reads.
//!
//! Layout (server, session, one file per command group):
//!
//! ```text
//!   server.rs              listeners (143 STARTTLS, 993 TLS), limits, SIGHUP
//!   notify.rs              change notification for IDLE (in-process + inotify)
//!   keywords.rs            the keywords announced in FLAGS, agreed per mailbox
//!   fts.rs                 the full-text index SEARCH BODY/TEXT reads first
//!   session.rs             one connection: reading commands and their
//!                          literals, dispatch by state, untagged updates
//!   session/auth.rs        CAPABILITY, STARTTLS, LOGIN, AUTHENTICATE, ENABLE, ID
//!   session/mailboxes.rs   SELECT/EXAMINE, CREATE, DELETE, RENAME, (UN)SUBSCRIBE,
//!                          LIST, LSUB, STATUS, NAMESPACE, quota
//!   session/append.rs      APPEND, its literal streamed to disk
//!   session/fetch.rs       FETCH and UID FETCH
//!   session/search.rs      SEARCH, ESEARCH, SEARCHRES
//!   session/modify.rs      STORE, COPY, MOVE, EXPUNGE, CLOSE, UNSELECT
//!   session/idle.rs        IDLE
//!   session/shared.rs      the Shared/ namespace, rights per command, SETACL,
//!                          DELETEACL, GETACL, LISTRIGHTS, MYRIGHTS
//! ```
//!
//! The codec is `facteur-imap-proto` (pure); message views (ENVELOPE,
//! BODYSTRUCTURE, sections, SEARCH text) are `facteur-imap-message`.
//!
//! Invariants:
//! - A session's sequence numbers are the positions in its store view
//!   (`Mailbox::messages`). The view changes only by the session's own
//!   operations (whose results it reports) and by `Mailbox::sync`, which is
//!   called only where EXPUNGE may be sent (not during FETCH, STORE, SEARCH
//!   by sequence number: RFC 9051 §7.5.1); every change sync reports is
//!   announced (EXISTS, EXPUNGE or VANISHED, FETCH FLAGS) before the tagged
//!   reply.
//! - APPEND OK is sent only after the message is in `cur/` and its index row
//!   committed, both fsynced (the store's guarantee). A literal is streamed to
//!   memory or an unlinked file, never held whole beyond 1 MiB.
//! - Time is bounded per phase: before login the whole session has
//!   `login_timeout` (a trickle or a cheap command now and then does not
//!   stretch it); a command line must arrive whole within the idle time-out
//!   and a literal at 1 KiB/s at least (`LineIo`).
//! - CPU a client chooses is bounded and shared: a FETCH asks for at most
//!   64 content sections and 1,000 header field names, long name lists are
//!   matched by hash, and message content is read and formatted (FETCH,
//!   SEARCH) in blocking calls behind a process-wide gate of one per core
//!   less one (`session::heavy`), so other sessions' commands always find
//!   a core.
//! - Memory per connection is bounded: a command, its literals included, by
//!   `max_command_size`; literal announcements over the limits are refused
//!   before a byte is read (`APPEND INBOX {4294967295}` costs nothing).
//!
//! Security: LOGIN and AUTHENTICATE (SCRAM-SHA-256, PLAIN, LOGIN: facteur-sasl,
//! driven against the directory by facteur-auth) are refused before TLS
//! (LOGINDISABLED) unless `allow_plaintext_auth_on_loopback` and the client
//! is on loopback;
//! after STARTTLS the bytes pipelined in clear text are thrown away; failed
//! logins are slowed down per address and per user; mailbox names go through
//! the store's name checks, which keep them inside the user's directory.
//!
//! Standards: RFC 9051, RFC 3501, RFC 4616 (PLAIN), RFC 7677 (SCRAM-SHA-256),
//! RFC 2177 (IDLE), RFC 2342 (NAMESPACE),
//! RFC 4315 (UIDPLUS), RFC 6851 (MOVE), RFC 3691 (UNSELECT), RFC 7888
//! (LITERAL+/-), RFC 5161 (ENABLE), RFC 2971 (ID), RFC 4959 (SASL-IR),
//! RFC 6154 (SPECIAL-USE), RFC 5258/5819 (LIST-EXTENDED, LIST-STATUS),
//! RFC 3348 (CHILDREN), RFC 4731 (ESEARCH), RFC 5182 (SEARCHRES), RFC 7162
//! (CONDSTORE, QRESYNC), RFC 9208 (QUOTA), RFC 7889 (APPENDLIMIT), RFC 8438
//! (STATUS=SIZE), RFC 3516 (BINARY), RFC 4314 (ACL), RFC 8440
//! (LIST-MYRIGHTS), RFC 4467 and RFC 5524 (URLAUTH, URLAUTH=BINARY).

pub mod fts;
pub mod keywords;
pub mod notify;
pub mod server;
pub mod session;

use facteur_access::Access;
use facteur_config::Config;
use facteur_store::{Quota, StoreError, UserStore};
use std::sync::Arc;

pub use server::run;

/// Everything sessions share: the access daemons' part (directory, logins,
/// store, TLS, limits: [`Access`], reached through `Deref`), `[imapd]`,
/// change notification and the open user stores.
pub struct Context {
    pub access: Access,
    /// `[imapd]`, replaced by a reload; a session keeps the one it began
    /// with.
    pub cfg: facteur_daemon::reload::Live<facteur_config::Imapd>,
    pub notifier: Arc<notify::Notifier>,
    /// Open user stores, shared by all sessions of a user (a phone, a
    /// laptop and a webmail of one user share one index connection).
    pub users: std::sync::Mutex<std::collections::HashMap<String, std::sync::Weak<UserStore>>>,
    /// The most recently used user stores, kept open after their last
    /// session ends: a client that logs in for each check (webmail, phones,
    /// the benchmark's visits) does not reopen the index every time.
    pub recent: std::sync::Mutex<std::collections::VecDeque<Arc<UserStore>>>,
    /// The keywords each selected mailbox has shown (keywords.rs).
    pub keywords: keywords::Boards,
}

impl std::ops::Deref for Context {
    type Target = Access;
    fn deref(&self) -> &Access {
        &self.access
    }
}

/// User stores kept open after their last session.
const RECENT_USERS: usize = 128;

impl Context {
    /// The user's store, shared with the user's other sessions; opened
    /// (the index: file work) if this process does not have it open.
    pub fn user_store(&self, address: &str, quota: Quota) -> Result<Arc<UserStore>, StoreError> {
        if let Some(s) = self.user_store_if_open(address, quota) {
            return Ok(s);
        }
        let s = {
            let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            match users.get(address).and_then(std::sync::Weak::upgrade) {
                Some(s) => s,
                None => {
                    let s = Arc::new(self.store.open_user(address, quota)?);
                    if users.len() >= 2 * RECENT_USERS {
                        users.retain(|_, w| w.strong_count() > 0);
                    }
                    users.insert(address.to_string(), Arc::downgrade(&s));
                    s
                }
            }
        };
        self.used(&s, quota);
        Ok(s)
    }

    /// The user's store if this process has it open (another session of
    /// the user's, or [`Context::recent`]): memory alone, so a login
    /// needs no blocking call for it.
    pub fn user_store_if_open(&self, address: &str, quota: Quota) -> Option<Arc<UserStore>> {
        let s = {
            let users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            users.get(address).and_then(std::sync::Weak::upgrade)?
        };
        self.used(&s, quota);
        Some(s)
    }

    /// Records a login's use of the store `s`: its quota, and its place
    /// among the recent ones.
    fn used(&self, s: &Arc<UserStore>, quota: Quota) {
        // The directory's quota as of this login (or SETQUOTA): a change
        // made since the store was opened applies to every handle.
        s.set_quota(quota);
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        recent.retain(|r| !Arc::ptr_eq(r, s));
        if recent.len() >= RECENT_USERS {
            recent.pop_front();
        }
        recent.push_back(Arc::clone(s));
    }
}

impl Context {
    pub fn from_config(cfg: &Config) -> anyhow::Result<Context> {
        Ok(Context::new(
            Access::from_config(cfg, facteur_access::Daemon::Imapd)?,
            cfg.imapd.clone(),
        ))
    }

    /// A context around `access` (tests build theirs this way).
    pub fn new(access: Access, cfg: facteur_config::Imapd) -> Context {
        Context {
            access,
            cfg: facteur_daemon::reload::Live::new(cfg),
            notifier: notify::Notifier::new(),
            users: Default::default(),
            recent: Default::default(),
            keywords: Default::default(),
        }
    }
}
