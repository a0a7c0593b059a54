//! facteur-directory: who receives mail here, and who may log in.
//!
//! Offers the directory of a facteur installation: local domains, users
//! (the login is the full address, stored lower-case), their password hashes
//! and quotas, aliases (one address to one or more local or external
//! addresses) and one catch-all alias per domain (source `@domain`). Used by
//! facteur-lmtpd (recipient lookups), smtpd (AUTH, RCPT checks), qmgr (alias
//! expansion), imapd and pop3d (login) and facteurctl (administration).
//!
//! Layout:
//! - `lib.rs`: [`open`] (the configured backend), the [`Directory`] trait
//!   every backend implements, the records,
//!   the errors, and input validation shared by backends;
//! - [`sqlite`]: [`SqliteDirectory`], the embedded default backend (one
//!   database file shared by several processes: WAL, busy timeout, schema
//!   version in `PRAGMA user_version`);
//! - [`password`]: hashing (argon2id for new hashes) and verification of the
//!   schemes admins import (Dovecot `{SCHEME}` prefixes, crypt strings), and
//!   [`password::credentials`], what is stored when a password is set: the
//!   hash and the SCRAM-SHA-256 keys (facteur-sasl);
//! - [`resolve`](mod@resolve): recipient resolution ([`resolve()`]) and
//!   login ([`authenticate`]), written once against the trait so every
//!   backend behaves alike;
//! - `nowait.rs`: [`without_waiting`], lookups run on an async thread
//!   unless one of them would wait (lmtpd's RCPT).
//!
//! Needs `facteur-mail` for address syntax and normalisation; the SQLite
//! backend needs a writable directory for its database file.
//!
//! SCRAM-SHA-256 keys (salt, iteration count, StoredKey, ServerKey) are
//! stored beside the password hash whenever a password is set through
//! [`Directory::set_credentials`] / [`Directory::add_user_with`]; a hash
//! set alone ([`Directory::set_password_hash`], imported hashes) clears
//! them, so keys never outlive the password they came from. A user without
//! keys cannot use SCRAM (it fails as a wrong password does) until the
//! password is set again; PLAIN and LOGIN work as before.
//!
//! Invariants: every address and domain is checked with facteur-mail before
//! it is written, and stored in its lookup form (`Address::key`: lower-case),
//! so lookups are case-insensitive; alias targets are stored as given (domain
//! lower-cased) but compared by key. A domain cannot be deleted while users or
//! aliases remain in it.
//!
//! Security: this crate holds password hashes and SCRAM keys. It never logs
//! a password, a hash or a key; [`password::verify_password`] compares in constant time and never
//! panics on a malformed stored string; [`authenticate`] spends comparable
//! time on unknown users so a client cannot probe which logins exist. The
//! database file is created mode 0640 (daemons read it as group `facteur`).

pub mod aliases_file;
pub mod login_cache;
mod nowait;
pub mod password;
pub mod resolve;
pub mod sqlite;
pub mod system;

pub use login_cache::{Check, LoginCache, Pending};
pub use nowait::without_waiting;
pub use resolve::{
    Hop, MAX_ALIAS_DEPTH, ResolveError, Target, authenticate, lookup_login, resolve, resolve_for,
    resolve_local, verify_login,
};
pub use sqlite::SqliteDirectory;

use facteur_mail::Address;
use std::sync::Arc;

/// Runs `f` with its lookups in `dir` together ([`Directory::read_together`]:
/// one read transaction where the backend has them) and returns what it
/// returns.
pub fn read_together<T>(dir: &dyn Directory, f: impl FnOnce() -> T) -> T {
    let mut f = Some(f);
    let mut out = None;
    dir.read_together(&mut || {
        if let Some(f) = f.take() {
            out = Some(f());
        }
    });
    // A backend that did not call it (none here does): run it alone.
    if let Some(f) = f.take() {
        out = Some(f());
    }
    // Invariant: f ran exactly once, above or inside (a panic in it
    // unwinds through read_together and never gets here).
    out.expect("f ran")
}

/// Opens the directory the configuration names, with the system domains
/// of `[aliases]` laid over it ([`system::SystemAliases`]): the one way
/// every program opens it, so that another backend (PostgreSQL) is one more
/// arm here. The error names the backend's location.
pub fn open(cfg: &facteur_config::Config) -> Result<Arc<dyn Directory>> {
    let inner = open_backend(cfg)?;
    Ok(Arc::new(system::SystemAliases::new(
        inner,
        system::Settings::from_config(cfg),
    )))
}

/// The configured backend alone, without the system aliases.
pub fn open_backend(cfg: &facteur_config::Config) -> Result<Arc<dyn Directory>> {
    let d = &cfg.directory;
    match d.backend {
        facteur_config::DirectoryBackend::Sqlite => SqliteDirectory::open(&d.path)
            .map(|d| Arc::new(d) as Arc<dyn Directory>)
            .map_err(|e| match e {
                DirectoryError::Backend(m) if m.contains(&*d.path.to_string_lossy()) => {
                    DirectoryError::Backend(m)
                }
                e => DirectoryError::Backend(format!("{}: {e}", d.path.display())),
            }),
    }
}

/// Why a directory operation failed. Each message names the input at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DirectoryError {
    /// The domain, user or alias does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The domain, user or alias target exists already.
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// A domain that still has users or aliases cannot be deleted.
    #[error("domain {0} still has users or aliases")]
    DomainNotEmpty(String),
    /// Not an address facteur accepts (see `facteur_mail::Address::parse`).
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    /// Not a domain facteur accepts as local (no address literals).
    #[error("invalid domain: {0}")]
    InvalidDomain(String),
    /// A quota larger than the backend can store (SQLite: 2^63 - 1).
    #[error("invalid quota: {0}")]
    InvalidQuota(u64),
    /// Hashing a password failed (should not happen: random source broken).
    #[error("password hashing failed: {0}")]
    Password(String),
    /// The storage failed: I/O, a locked database past the busy timeout, a
    /// schema newer than this program, a corrupt file.
    #[error("directory backend: {0}")]
    Backend(String),
}

/// Result of directory operations.
pub type Result<T> = std::result::Result<T, DirectoryError>;

/// A mailbox owner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// The lookup key, lower-case `user@domain`; also the login.
    pub address: String,
    /// A string [`password::verify_password`] understands.
    pub password_hash: String,
    /// Mailbox size limit in bytes, 0 = unlimited.
    pub quota_bytes: u64,
    /// Mailbox message count limit, 0 = unlimited.
    pub quota_messages: u64,
    /// SCRAM-SHA-256 keys in the text form `facteur_sasl::ScramCredentials`
    /// reads, or `None` when the password was set without them.
    pub scram: Option<String>,
}

/// What is stored when a password is set.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// A string [`password::verify_password`] understands.
    pub password_hash: String,
    /// SCRAM-SHA-256 keys (text form), when the password allows them.
    pub scram: Option<String>,
}

impl Credentials {
    /// A hash alone (an imported hash, tests): no SCRAM keys.
    pub fn hash_only(password_hash: &str) -> Self {
        Credentials {
            password_hash: password_hash.to_owned(),
            scram: None,
        }
    }
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("scram", &self.scram.is_some())
            .finish_non_exhaustive()
    }
}

/// All targets of one alias source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRecord {
    /// Lower-case `user@domain`, or `@domain` for the domain's catch-all.
    pub source: String,
    /// Target addresses in the order they were added.
    pub targets: Vec<String>,
}

/// The backend interface.
///
/// Synchronous on purpose: every call is one short indexed lookup or a small
/// write; rusqlite is synchronous; async daemons call it through
/// `tokio::task::spawn_blocking` (or accept a short block on a lookup), and a
/// PostgreSQL backend can use the synchronous `postgres` crate or a connection
/// pool behind the same methods. Object-safe, used as `Arc<dyn Directory>`.
///
/// Every method takes addresses and domains in any case and validates them:
/// malformed input gives [`DirectoryError::InvalidAddress`] or
/// [`DirectoryError::InvalidDomain`], on reads as well as writes.
pub trait Directory: Send + Sync {
    /// Adds a local domain. `AlreadyExists` if present.
    fn add_domain(&self, name: &str) -> Result<()>;
    /// Deletes a domain. `DomainNotEmpty` if users or aliases remain,
    /// `NotFound` if absent.
    fn delete_domain(&self, name: &str) -> Result<()>;
    /// All local domains, sorted.
    fn list_domains(&self) -> Result<Vec<String>>;
    /// Whether mail for `name` is delivered here.
    fn is_local_domain(&self, name: &str) -> Result<bool>;
    /// Adds a user with its credentials (make them with
    /// [`password::credentials`]); the domain must exist (`NotFound`
    /// otherwise).
    fn add_user_with(
        &self,
        address: &str,
        credentials: &Credentials,
        quota_bytes: u64,
        quota_messages: u64,
    ) -> Result<()>;
    /// Adds a user with a password hash alone, stored as given (hash with
    /// [`password::hash_password`] first, or import one): no SCRAM keys.
    fn add_user(
        &self,
        address: &str,
        password_hash: &str,
        quota_bytes: u64,
        quota_messages: u64,
    ) -> Result<()> {
        self.add_user_with(
            address,
            &Credentials::hash_only(password_hash),
            quota_bytes,
            quota_messages,
        )
    }
    /// Deletes a user (aliases naming it are left alone). `NotFound` if absent.
    fn delete_user(&self, address: &str) -> Result<()>;
    /// Replaces a user's credentials, hash and SCRAM keys together (one
    /// write). `NotFound` if absent.
    fn set_credentials(&self, address: &str, credentials: &Credentials) -> Result<()>;
    /// Replaces a user's password hash and removes its SCRAM keys (they
    /// belong to the old password). `NotFound` if absent.
    fn set_password_hash(&self, address: &str, password_hash: &str) -> Result<()> {
        self.set_credentials(address, &Credentials::hash_only(password_hash))
    }
    /// Replaces a user's quotas (0 = unlimited). `NotFound` if absent.
    fn set_quota(&self, address: &str, quota_bytes: u64, quota_messages: u64) -> Result<()>;
    /// The user, matched case-insensitively, or `None`.
    fn get_user(&self, address: &str) -> Result<Option<UserRecord>>;
    /// All users, or those of one domain, sorted by address.
    fn list_users(&self, domain: Option<&str>) -> Result<Vec<UserRecord>>;
    /// Adds one target to an alias (call again to add more). `source` is an
    /// address or `@domain` (the catch-all); its domain must be local
    /// (`NotFound` otherwise). `target` is any valid address.
    /// `AlreadyExists` if this source already has this target.
    fn add_alias(&self, source: &str, target: &str) -> Result<()>;
    /// Removes one target, or all targets when `target` is `None`.
    /// `NotFound` if nothing was removed.
    fn delete_alias(&self, source: &str, target: Option<&str>) -> Result<()>;
    /// The targets of `source` in the order they were added; empty if none.
    fn alias_targets(&self, source: &str) -> Result<Vec<String>>;
    /// All aliases, or those whose source is in one domain, sorted by source.
    fn list_aliases(&self, domain: Option<&str>) -> Result<Vec<AliasRecord>>;
    /// A random secret made once per directory and kept with it, the same
    /// for every daemon and across restarts: it keys the fake SCRAM salts
    /// of unknown users (`facteur_sasl::Secret`), so they are stable and
    /// cannot be told from real ones.
    fn scram_secret(&self) -> Result<Vec<u8>>;
    /// Runs `f`, whose lookups in this directory (on this thread) then
    /// share one read transaction where the backend has them: one view of
    /// the directory, and for SQLite one lock round trip instead of one per
    /// lookup (resolving an address asks three to five questions). For
    /// reads only: a write inside `f` fails. Nested calls run `f` as it
    /// is. Default: runs `f`.
    fn read_together(&self, f: &mut dyn FnMut()) {
        f()
    }
    /// Reads again what the directory keeps from files (the system aliases
    /// file), now; a summary for the one who asked, `None` when there is
    /// nothing of the kind.
    fn reload_files(&self) -> Result<Option<String>> {
        Ok(None)
    }
}

/// Parses and checks an address; the error names the input.
pub(crate) fn check_address(input: &str) -> Result<Address> {
    let addr = Address::parse(input)
        .map_err(|e| DirectoryError::InvalidAddress(format!("{input:?}: {e}")))?;
    if addr.domain().starts_with('[') {
        return Err(DirectoryError::InvalidAddress(format!(
            "{input:?}: address literals are never local"
        )));
    }
    Ok(addr)
}

/// Checks and lower-cases a domain that may be local (no address literal).
pub(crate) fn check_domain(input: &str) -> Result<String> {
    let d = facteur_mail::normalize_domain(input)
        .map_err(|e| DirectoryError::InvalidDomain(format!("{input:?}: {e}")))?;
    if d.starts_with('[') {
        return Err(DirectoryError::InvalidDomain(format!(
            "{input:?}: address literals are never local"
        )));
    }
    Ok(d)
}

/// An alias source in lookup form: its key (`user@dom` or `@dom`) and domain.
pub(crate) fn check_alias_source(input: &str) -> Result<(String, String)> {
    if let Some(domain) = input.strip_prefix('@') {
        let d = check_domain(domain)?;
        Ok((format!("@{d}"), d))
    } else {
        let a = check_address(input)?;
        Ok((a.key(), a.domain().to_string()))
    }
}

/// An alias target: any valid address, literals included (they are never
/// local, so they resolve as external). Returns (as stored, key).
pub(crate) fn check_alias_target(input: &str) -> Result<(String, String)> {
    let a = Address::parse(input)
        .map_err(|e| DirectoryError::InvalidAddress(format!("{input:?}: {e}")))?;
    Ok((a.to_string(), a.key()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_input() {
        match check_address("nodomain") {
            Err(DirectoryError::InvalidAddress(m)) => assert!(m.contains("nodomain"), "{m}"),
            other => panic!("{other:?}"),
        }
        match check_domain("bad/dom") {
            Err(DirectoryError::InvalidDomain(m)) => assert!(m.contains("bad/dom"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(check_domain("[127.0.0.1]").is_err());
        assert!(check_address("a@[127.0.0.1]").is_err());
        assert_eq!(check_domain("Example.TEST.").unwrap(), "example.test");
    }

    #[test]
    fn alias_source_forms() {
        assert_eq!(
            check_alias_source("@Example.Test").unwrap(),
            ("@example.test".to_string(), "example.test".to_string())
        );
        assert_eq!(
            check_alias_source("Sales@Example.Test").unwrap(),
            ("sales@example.test".to_string(), "example.test".to_string())
        );
        assert!(check_alias_source("@").is_err());
        assert!(check_alias_source("@@x.test").is_err());
        let (stored, key) = check_alias_target("Bob@Remote.Example").unwrap();
        assert_eq!(stored, "Bob@remote.example");
        assert_eq!(key, "bob@remote.example");
    }

    #[test]
    fn trait_is_object_safe() {
        fn takes(_: &dyn Directory) {}
        let d = SqliteDirectory::open_in_memory().unwrap();
        takes(&d);
        let _shared: std::sync::Arc<dyn Directory> = std::sync::Arc::new(d);
    }
}
