//! The embedded SQLite backend of the directory.
//!
//! Offers [`SqliteDirectory`], a [`Directory`] kept in one database file
//! (`/var/lib/facteur/directory.sqlite` in production). Needs a writable
//! parent directory (SQLite puts `-wal` and `-shm` files beside the database).
//!
//! Guarantees, for several processes using the file at once (daemons read while
//! facteurctl writes):
//! - WAL journal: readers never block the writer nor each other;
//! - `busy_timeout` of 5 s: a writer waits for another writer instead of
//!   failing at once;
//! - every write runs in a `BEGIN IMMEDIATE` transaction, so a check and the
//!   write that depends on it (does the domain exist? is it empty?) see the
//!   same state, and no read-to-write upgrade can deadlock;
//! - foreign keys on: users and aliases always belong to an existing domain;
//! - the schema version lives in `PRAGMA user_version`; [`SqliteDirectory::open`]
//!   migrates an older file forward in one transaction and refuses a newer one.
//!
//! Schema version history:
//! - 1: `domains(name)`, `users(address, domain, password_hash, quota_bytes,
//!   quota_messages)`, `aliases(id, source, domain, target, target_key)`;
//!   quotas are stored as SQLite integers (i64), so a quota above 2^63 - 1 is
//!   refused with [`DirectoryError::InvalidQuota`].
//! - 2: `users.scram` (SCRAM-SHA-256 keys in their text form, NULL when the
//!   password was set without them: every user of version 1), and
//!   `secrets(name, value)`, where `scram` is the random secret of
//!   [`Directory::scram_secret`] (made at its first use).
//!
//! Security: the file holds password hashes, SCRAM keys and a secret; it is created mode 0640 when
//! missing. All SQL uses bound parameters, never string formatting.

use std::path::Path;
use std::sync::{Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};

use crate::{
    AliasRecord, Credentials, Directory, DirectoryError, Result, UserRecord, check_address,
    check_alias_source, check_alias_target, check_domain,
};

/// How long a connection waits for a lock held by another process.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Migrations: `MIGRATIONS[i]` takes a database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the first schema.
    "CREATE TABLE domains (
        name TEXT PRIMARY KEY NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE users (
        address TEXT PRIMARY KEY NOT NULL,
        domain TEXT NOT NULL REFERENCES domains(name) ON DELETE RESTRICT,
        password_hash TEXT NOT NULL,
        quota_bytes INTEGER NOT NULL DEFAULT 0 CHECK (quota_bytes >= 0),
        quota_messages INTEGER NOT NULL DEFAULT 0 CHECK (quota_messages >= 0)
     );
     CREATE INDEX users_domain ON users(domain);
     CREATE TABLE aliases (
        id INTEGER PRIMARY KEY,
        source TEXT NOT NULL,
        domain TEXT NOT NULL REFERENCES domains(name) ON DELETE RESTRICT,
        target TEXT NOT NULL,
        target_key TEXT NOT NULL,
        UNIQUE (source, target_key)
     );
     CREATE INDEX aliases_domain ON aliases(domain);",
    // 1 -> 2: SCRAM-SHA-256 keys beside the hash; the secret for fake salts.
    "ALTER TABLE users ADD COLUMN scram TEXT;
     CREATE TABLE secrets (
        name TEXT PRIMARY KEY NOT NULL,
        value BLOB NOT NULL
     ) WITHOUT ROWID;",
];

/// The columns [`user_from_row`] reads, in its order.
const USER_COLUMNS: &str = "address, password_hash, quota_bytes, quota_messages, scram";

/// The schema version this program writes and understands.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// A [`Directory`] in an SQLite database. One connection per handle, behind a
/// mutex: calls from several threads are serialised, which costs nothing next
/// to the file locking SQLite does between processes anyway.
pub struct SqliteDirectory {
    conn: Mutex<Connection>,
}

impl std::fmt::Debug for SqliteDirectory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteDirectory").finish_non_exhaustive()
    }
}

/// rusqlite errors become backend errors; the message keeps SQLite's text.
fn db(e: rusqlite::Error) -> DirectoryError {
    use rusqlite::ErrorCode::{DatabaseBusy, DatabaseLocked};
    if crate::nowait::active()
        && matches!(e.sqlite_error_code(), Some(DatabaseBusy | DatabaseLocked))
    {
        return crate::nowait::would_wait();
    }
    DirectoryError::Backend(e.to_string())
}

/// The connection for a read (see [`SqliteDirectory::read`]).
enum Reader<'a> {
    Locked {
        conn: MutexGuard<'a, Connection>,
        /// Taken under `without_waiting`: the busy time-out is off
        /// meanwhile.
        quick: bool,
    },
    /// The connection this thread holds in [`Directory::read_together`],
    /// inside its read transaction.
    Held(&'a Connection),
}

impl std::ops::Deref for Reader<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        match self {
            Reader::Locked { conn, .. } => conn,
            Reader::Held(c) => c,
        }
    }
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        if let Reader::Locked { conn, quick: true } = self {
            let _ = conn.busy_timeout(BUSY_TIMEOUT);
        }
    }
}

thread_local! {
    /// The directory (its address) whose connection this thread holds in
    /// [`Directory::read_together`], and that connection.
    static HELD: std::cell::Cell<Option<(usize, *const Connection)>> =
        const { std::cell::Cell::new(None) };
}

/// Ends a [`Directory::read_together`]: forgets the held connection, ends
/// its read transaction and puts its busy time-out back. Dropped before
/// the mutex guard it points into, on return and on unwinding alike.
struct Together<'a> {
    conn: &'a Connection,
    quick: bool,
}

impl Drop for Together<'_> {
    fn drop(&mut self) {
        HELD.with(|h| h.set(None));
        // A read transaction: COMMIT only releases its snapshot.
        let _ = self.conn.execute_batch("COMMIT");
        if self.quick {
            let _ = self.conn.busy_timeout(BUSY_TIMEOUT);
        }
    }
}

fn quota(q: u64) -> Result<i64> {
    i64::try_from(q).map_err(|_| DirectoryError::InvalidQuota(q))
}

fn user_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<UserRecord> {
    let qb: i64 = row.get(2)?;
    let qm: i64 = row.get(3)?;
    Ok(UserRecord {
        address: row.get(0)?,
        password_hash: row.get(1)?,
        // The CHECK constraints keep both non-negative; clamp anything else.
        quota_bytes: u64::try_from(qb).unwrap_or(0),
        quota_messages: u64::try_from(qm).unwrap_or(0),
        scram: row.get(4)?,
    })
}

fn domain_exists(tx: &Connection, domain: &str) -> Result<bool> {
    // Cached: asked for every RCPT and by qmgr for every recipient.
    tx.prepare_cached("SELECT 1 FROM domains WHERE name = ?1")
        .and_then(|mut st| st.query_row([domain], |_| Ok(())))
        .optional()
        .map(|o| o.is_some())
        .map_err(db)
}

impl SqliteDirectory {
    /// Opens the database at `path`, creating the file (mode 0640) and the
    /// schema when missing, and migrating an older schema forward.
    pub fn open(path: &Path) -> Result<Self> {
        create_private(path)?;
        let conn = Connection::open(path)
            .map_err(|e| DirectoryError::Backend(format!("{}: {e}", path.display())))?;
        conn.busy_timeout(BUSY_TIMEOUT).map_err(db)?;
        // WAL is persistent in the file; setting it again is a no-op.
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "directory database is not in WAL mode");
        }
        Self::setup(conn)
    }

    /// A private database in memory (tests, `facteurctl` dry runs).
    pub fn open_in_memory() -> Result<Self> {
        let conn = Connection::open_in_memory().map_err(db)?;
        Self::setup(conn)
    }

    fn setup(mut conn: Connection) -> Result<Self> {
        conn.pragma_update(None, "foreign_keys", true).map_err(db)?;
        // NORMAL is durable enough in WAL mode (a power cut may lose the last
        // commit, never corrupt the file) and avoids an fsync per write.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(db)?;
        migrate(&mut conn)?;
        Ok(SqliteDirectory {
            conn: Mutex::new(conn),
        })
    }

    /// The schema version of the open database (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<i64> {
        user_version(&*self.lock()?)
    }

    /// This directory's address, as [`HELD`] names it.
    fn id(&self) -> usize {
        self as *const Self as usize
    }

    /// The connection this thread holds in `read_together`, if it does.
    fn held(&self) -> Option<&Connection> {
        match HELD.with(std::cell::Cell::get) {
            // SAFETY: HELD names a connection only while `read_together`
            // on this same thread holds its mutex guard: `Together` clears
            // it before the guard is dropped (also when unwinding). Calls
            // made meanwhile on this thread run inside `f`, within the
            // guard's life, and use the connection only through shared
            // references (rusqlite's reads take `&Connection`); no other
            // thread can reach it, the mutex being held.
            #[allow(unsafe_code)]
            Some((id, conn)) if id == self.id() => Some(unsafe { &*conn }),
            _ => None,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Connection>> {
        if self.held().is_some() {
            // The mutex is this thread's already: waiting would never end.
            return Err(DirectoryError::Backend(
                "a write or a direct use of the directory inside read_together".into(),
            ));
        }
        // A panic while the lock was held cannot leave the connection in a
        // half-written state (an open Transaction rolls back on drop), so a
        // poisoned lock is safe to take over.
        Ok(self.conn.lock().unwrap_or_else(|p| p.into_inner()))
    }

    /// The connection, locked; under [`crate::without_waiting`], only if
    /// no other thread holds it, and with no busy time-out (`quick`): a
    /// database locked by another process fails at once (`db` then
    /// records it).
    fn lock_for_read(&self) -> Result<(MutexGuard<'_, Connection>, bool)> {
        if !crate::nowait::active() {
            return Ok((self.lock()?, false));
        }
        let conn = match self.conn.try_lock() {
            Ok(c) => c,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(crate::nowait::would_wait()),
        };
        conn.busy_timeout(Duration::ZERO).map_err(db)?;
        Ok((conn, true))
    }

    /// The connection for a read: the one this thread holds in
    /// `read_together`, else the locked one (`lock_for_read`).
    fn read(&self) -> Result<Reader<'_>> {
        if let Some(c) = self.held() {
            return Ok(Reader::Held(c));
        }
        let (conn, quick) = self.lock_for_read()?;
        Ok(Reader::Locked { conn, quick })
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction, committing on success.
    fn write<T>(&self, f: impl FnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        let mut conn = self.lock()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(db)?;
        let out = f(&tx)?;
        tx.commit().map_err(db)?;
        Ok(out)
    }
}

/// Creates `path` mode 0640 if it does not exist, so SQLite (which would use
/// 0644 less the umask) opens a file that is not world-readable. SQLite gives
/// its `-wal` and `-shm` files the mode of the database file.
fn create_private(path: &Path) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o640);
    }
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(DirectoryError::Backend(format!("{}: {e}", path.display()))),
    }
}

fn user_version(conn: &Connection) -> Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(db)
}

/// Brings the schema to [`SCHEMA_VERSION`]. The common case (already current)
/// takes no write lock; otherwise the version is read again under the lock,
/// because another process may have migrated meanwhile.
fn migrate(conn: &mut Connection) -> Result<()> {
    let v = user_version(conn)?;
    if v == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(db)?;
    let v = user_version(&tx)?;
    if !(0..=SCHEMA_VERSION).contains(&v) {
        return Err(DirectoryError::Backend(format!(
            "directory schema version {v} is not one this program knows (up to {SCHEMA_VERSION}); upgrade facteur"
        )));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(v as usize) {
        tracing::info!(from, to = from + 1, "migrating directory schema");
        tx.execute_batch(sql).map_err(db)?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(db)?;
    tx.commit().map_err(db)
}

impl Directory for SqliteDirectory {
    fn add_domain(&self, name: &str) -> Result<()> {
        let d = check_domain(name)?;
        self.write(|tx| {
            if domain_exists(tx, &d)? {
                return Err(DirectoryError::AlreadyExists(format!("domain {d}")));
            }
            tx.execute("INSERT INTO domains (name) VALUES (?1)", [&d])
                .map_err(db)?;
            tracing::info!(domain = %d, "domain added");
            Ok(())
        })
    }

    fn delete_domain(&self, name: &str) -> Result<()> {
        let d = check_domain(name)?;
        self.write(|tx| {
            if !domain_exists(tx, &d)? {
                return Err(DirectoryError::NotFound(format!("domain {d}")));
            }
            let used: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM users WHERE domain = ?1)
                         OR EXISTS (SELECT 1 FROM aliases WHERE domain = ?1)",
                    [&d],
                    |r| r.get(0),
                )
                .map_err(db)?;
            if used {
                return Err(DirectoryError::DomainNotEmpty(d.clone()));
            }
            tx.execute("DELETE FROM domains WHERE name = ?1", [&d])
                .map_err(db)?;
            tracing::info!(domain = %d, "domain deleted");
            Ok(())
        })
    }

    fn list_domains(&self) -> Result<Vec<String>> {
        let conn = self.read()?;
        let mut st = conn
            .prepare_cached("SELECT name FROM domains ORDER BY name")
            .map_err(db)?;
        let rows = st.query_map([], |r| r.get(0)).map_err(db)?;
        rows.collect::<rusqlite::Result<Vec<String>>>().map_err(db)
    }

    fn is_local_domain(&self, name: &str) -> Result<bool> {
        let d = check_domain(name)?;
        let conn = self.read()?;
        domain_exists(&conn, &d)
    }

    fn add_user_with(
        &self,
        address: &str,
        credentials: &Credentials,
        quota_bytes: u64,
        quota_messages: u64,
    ) -> Result<()> {
        let a = check_address(address)?;
        let (qb, qm) = (quota(quota_bytes)?, quota(quota_messages)?);
        let key = a.key();
        self.write(|tx| {
            if !domain_exists(tx, a.domain())? {
                return Err(DirectoryError::NotFound(format!("domain {}", a.domain())));
            }
            let exists = tx
                .query_row("SELECT 1 FROM users WHERE address = ?1", [&key], |_| Ok(()))
                .optional()
                .map_err(db)?
                .is_some();
            if exists {
                return Err(DirectoryError::AlreadyExists(format!("user {key}")));
            }
            tx.execute(
                "INSERT INTO users (address, domain, password_hash, quota_bytes, quota_messages, scram)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    key,
                    a.domain(),
                    credentials.password_hash,
                    qb,
                    qm,
                    credentials.scram
                ],
            )
            .map_err(db)?;
            tracing::info!(user = %key, "user added");
            Ok(())
        })
    }

    fn delete_user(&self, address: &str) -> Result<()> {
        let key = check_address(address)?.key();
        self.write(|tx| {
            let n = tx
                .execute("DELETE FROM users WHERE address = ?1", [&key])
                .map_err(db)?;
            if n == 0 {
                return Err(DirectoryError::NotFound(format!("user {key}")));
            }
            tracing::info!(user = %key, "user deleted");
            Ok(())
        })
    }

    fn set_credentials(&self, address: &str, credentials: &Credentials) -> Result<()> {
        let key = check_address(address)?.key();
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE users SET password_hash = ?2, scram = ?3 WHERE address = ?1",
                    params![key, credentials.password_hash, credentials.scram],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(DirectoryError::NotFound(format!("user {key}")));
            }
            tracing::info!(user = %key, scram = credentials.scram.is_some(), "password changed");
            Ok(())
        })
    }

    fn set_quota(&self, address: &str, quota_bytes: u64, quota_messages: u64) -> Result<()> {
        let key = check_address(address)?.key();
        let (qb, qm) = (quota(quota_bytes)?, quota(quota_messages)?);
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE users SET quota_bytes = ?2, quota_messages = ?3 WHERE address = ?1",
                    params![key, qb, qm],
                )
                .map_err(db)?;
            if n == 0 {
                return Err(DirectoryError::NotFound(format!("user {key}")));
            }
            tracing::info!(user = %key, quota_bytes, quota_messages, "quota changed");
            Ok(())
        })
    }

    fn get_user(&self, address: &str) -> Result<Option<UserRecord>> {
        let key = check_address(address)?.key();
        let conn = self.read()?;
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE address = ?1"
            ))
            .map_err(db)?;
        st.query_row([&key], user_from_row).optional().map_err(db)
    }

    fn list_users(&self, domain: Option<&str>) -> Result<Vec<UserRecord>> {
        let d = domain.map(check_domain).transpose()?;
        let conn = self.read()?;
        let mut st = conn
            .prepare_cached(&format!(
                "SELECT {USER_COLUMNS} FROM users WHERE ?1 IS NULL OR domain = ?1 ORDER BY address"
            ))
            .map_err(db)?;
        let rows = st.query_map([&d], user_from_row).map_err(db)?;
        rows.collect::<rusqlite::Result<Vec<_>>>().map_err(db)
    }

    fn add_alias(&self, source: &str, target: &str) -> Result<()> {
        let (src, domain) = check_alias_source(source)?;
        let (tgt, tgt_key) = check_alias_target(target)?;
        self.write(|tx| {
            if !domain_exists(tx, &domain)? {
                return Err(DirectoryError::NotFound(format!("domain {domain}")));
            }
            let exists = tx
                .query_row(
                    "SELECT 1 FROM aliases WHERE source = ?1 AND target_key = ?2",
                    [&src, &tgt_key],
                    |_| Ok(()),
                )
                .optional()
                .map_err(db)?
                .is_some();
            if exists {
                return Err(DirectoryError::AlreadyExists(format!(
                    "alias {src} -> {tgt}"
                )));
            }
            tx.execute(
                "INSERT INTO aliases (source, domain, target, target_key) VALUES (?1, ?2, ?3, ?4)",
                params![src, domain, tgt, tgt_key],
            )
            .map_err(db)?;
            tracing::info!(alias = %src, target = %tgt, "alias target added");
            Ok(())
        })
    }

    fn delete_alias(&self, source: &str, target: Option<&str>) -> Result<()> {
        let (src, _) = check_alias_source(source)?;
        let tgt = target.map(check_alias_target).transpose()?;
        self.write(|tx| {
            let n = match &tgt {
                Some((_, key)) => tx.execute(
                    "DELETE FROM aliases WHERE source = ?1 AND target_key = ?2",
                    [&src, key],
                ),
                None => tx.execute("DELETE FROM aliases WHERE source = ?1", [&src]),
            }
            .map_err(db)?;
            if n == 0 {
                let what = match &tgt {
                    Some((t, _)) => format!("alias {src} -> {t}"),
                    None => format!("alias {src}"),
                };
                return Err(DirectoryError::NotFound(what));
            }
            tracing::info!(alias = %src, removed = n, "alias targets deleted");
            Ok(())
        })
    }

    fn alias_targets(&self, source: &str) -> Result<Vec<String>> {
        let (src, _) = check_alias_source(source)?;
        let conn = self.read()?;
        let mut st = conn
            .prepare_cached("SELECT target FROM aliases WHERE source = ?1 ORDER BY id")
            .map_err(db)?;
        let rows = st.query_map([&src], |r| r.get(0)).map_err(db)?;
        rows.collect::<rusqlite::Result<Vec<String>>>().map_err(db)
    }

    fn list_aliases(&self, domain: Option<&str>) -> Result<Vec<AliasRecord>> {
        let d = domain.map(check_domain).transpose()?;
        let conn = self.read()?;
        let mut st = conn
            .prepare_cached(
                "SELECT source, target FROM aliases WHERE ?1 IS NULL OR domain = ?1
                 ORDER BY source, id",
            )
            .map_err(db)?;
        let rows = st
            .query_map([&d], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
            })
            .map_err(db)?;
        let mut out: Vec<AliasRecord> = Vec::new();
        for row in rows {
            let (source, target) = row.map_err(db)?;
            match out.last_mut() {
                Some(last) if last.source == source => last.targets.push(target),
                _ => out.push(AliasRecord {
                    source,
                    targets: vec![target],
                }),
            }
        }
        Ok(out)
    }

    fn read_together(&self, f: &mut dyn FnMut()) {
        if self.held().is_some() {
            // Already inside one (a resolution inside a wider batch).
            return f();
        }
        let Ok((conn, quick)) = self.lock_for_read() else {
            // Would wait (or failed): each lookup locks on its own, and
            // says so itself.
            return f();
        };
        // DEFERRED: the snapshot is taken at the first read inside `f`.
        if conn.execute_batch("BEGIN").is_err() {
            if quick {
                let _ = conn.busy_timeout(BUSY_TIMEOUT);
            }
            drop(conn);
            return f();
        }
        HELD.with(|h| h.set(Some((self.id(), &*conn as *const Connection))));
        let _together = Together { conn: &conn, quick };
        f();
    }

    fn scram_secret(&self) -> Result<Vec<u8>> {
        const GET: &str = "SELECT value FROM secrets WHERE name = 'scram'";
        let found: Option<Vec<u8>> = self
            .lock()?
            .query_row(GET, [], |r| r.get(0))
            .optional()
            .map_err(db)?;
        if let Some(v) = found {
            return Ok(v);
        }
        // First use: made here, from the OS's random source. Another process
        // may do the same at once: the first insert wins, both read it.
        self.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO secrets (name, value) VALUES ('scram', ?1)",
                [rand::random::<[u8; 32]>().to_vec()],
            )
            .map_err(db)?;
            tx.query_row(GET, [], |r| r.get(0)).map_err(db)
        })
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
