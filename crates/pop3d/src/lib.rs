//! facteur-pop3d: each user's INBOX over POP3 (RFC 1939).
//!
//! Two kinds of listener (`[pop3d]`): `listen` (port 110: clear text, STLS
//! offered, RFC 2595) and `listen_tls` (995: implicit TLS). Users log in with
//! USER/PASS or AUTH (RFC 5034: SCRAM-SHA-256, PLAIN, LOGIN through
//! facteur-sasl and facteur-auth) against the directory, then see their
//! INBOX from the mail store, the same store imapd and lmtpd use.
//!
//! Layout (the mini-redis layering: server, session, commands):
//!
//! ```text
//!   server.rs               listeners, connection limits, implicit TLS, SIGHUP
//!   (facteur_daemon::limits: connections per address; failed-login slowdown)
//!   session.rs              one connection: I/O, framing, dispatch, STLS
//!   session/login.rs        AUTHORIZATION state: USER, PASS, AUTH, CAPA
//!   session/transaction.rs  TRANSACTION state: STAT LIST UIDL RETR TOP DELE RSET NOOP, QUIT
//!   maildrop.rs             the locked maildrop: snapshot, marks, UPDATE
//!   sizes.rs                the per-user cache of dot-stuffed sizes
//! ```
//!
//! Invariants:
//! - One POP3 session per mailbox at a time, across processes: an exclusive
//!   `flock` on `<user dir>/facteur-pop3.lock`, taken at login and held to
//!   the end; a second login gets `-ERR [IN-USE]`. The kernel drops the lock
//!   when the process dies, so a crash never leaves a mailbox locked.
//! - The maildrop is the INBOX as of login. DELE only marks; the messages
//!   are flagged `\Deleted` and expunged (exactly those UIDs) only at QUIT in
//!   the UPDATE state. A connection that drops, times out, is shut down or
//!   errors out deletes nothing.
//! - Sizes in STAT and LIST are the octets RETR sends: CRLF line endings and
//!   dot-stuffing included (see sizes.rs for how they are kept cheap).
//! - UIDL values are `<UIDVALIDITY>.<UID>` from the store's index: stable
//!   across sessions and restarts, and changed (so clients fetch again rather
//!   than miss mail) only if the index is rebuilt with a new UIDVALIDITY.
//! - RETR and TOP stream the message; it is never loaded whole.
//!
//! Standards: RFC 1939, RFC 2449 (CAPA, RESP-CODES, PIPELINING), RFC 3206
//! (AUTH-RESP-CODE, SYS/TEMP), RFC 2595 (STLS), RFC 5034 (SASL), RFC 4616
//! (PLAIN), RFC 7677 (SCRAM-SHA-256).
//!
//! Security: no password in clear text: USER, PASS and AUTH are refused with
//! `-ERR [AUTH]` (and not advertised in CAPA) until TLS is up, unless
//! `allow_plaintext_auth_on_loopback` is set and the client is on loopback.
//! After STLS, bytes the client pipelined in clear text are thrown away.
//! Failed logins are slowed down per address and per user; lines over the
//! limit get `-ERR`; idle clients are dropped; too many errors end the
//! session.

pub mod maildrop;
pub mod server;
pub mod session;
pub mod sizes;

use facteur_access::Access;
use facteur_config::Config;

pub use server::run;

/// Everything sessions share: the access daemons' part (directory, logins,
/// store, TLS, limits: [`Access`], reached through `Deref`) and `[pop3d]`.
pub struct Context {
    pub access: Access,
    /// `[pop3d]`, replaced by a reload; a session keeps the one it began
    /// with.
    pub cfg: facteur_daemon::reload::Live<facteur_config::Pop3d>,
}

impl std::ops::Deref for Context {
    type Target = Access;
    fn deref(&self) -> &Access {
        &self.access
    }
}

impl Context {
    pub fn from_config(cfg: &Config) -> anyhow::Result<Context> {
        Ok(Context::new(
            Access::from_config(cfg, facteur_access::Daemon::Pop3d)?,
            cfg.pop3d.clone(),
        ))
    }

    /// A context around `access` (tests build theirs this way).
    pub fn new(access: Access, cfg: facteur_config::Pop3d) -> Context {
        Context {
            access,
            cfg: facteur_daemon::reload::Live::new(cfg),
        }
    }
}
