//! The per-user index: `<userdir>/facteur-index.sqlite`.
//!
//! Offers opening (creating, or rebuilding when corrupt) the SQLite database,
//! its schema, the mailbox rows, UIDVALIDITY allocation and the one-query
//! load of a mailbox's messages. Needs rusqlite (bundled SQLite).
//!
//! Guarantees: WAL journal, `synchronous=FULL` (a UID assignment that was
//! reported is on disk: losing one could let a UID be given twice; flag
//! changes alone commit unsynced, see `UserInner::write_unsynced`), a 5 s
//! busy timeout, `PRAGMA user_version` = [`VERSION`]. Writers use
//! `BEGIN IMMEDIATE`, so writers of all processes serialize on the database
//! lock, which is also the lock that makes a scan of `cur/` atomic.
//!
//! The UID map (messages.uid <-> file base name), UIDNEXT and the tombstones
//! are precious; everything else could be rebuilt from the files. If the
//! database is missing it is created empty; if it is not a database or is
//! corrupt it is moved aside (`facteur-index.sqlite.corrupt-<secs>`) and
//! created empty. A mailbox row created afresh always gets a new UIDVALIDITY,
//! larger than any given before in this user directory: the last one given is
//! kept outside the database in `facteur-uidvalidity`, so a lost index cannot
//! bring an old UIDVALIDITY back.
//!
//! The full schema is in docs/store-format.md.

use std::fs;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use crate::{Flags, MessageMeta, Result, SpecialUse, StoreError};

/// Format version, in `PRAGMA user_version`.
pub const VERSION: i32 = 1;
/// The database file name, in the user directory.
pub const FILE: &str = "facteur-index.sqlite";
/// The last UIDVALIDITY given, in the user directory.
pub const UIDVALIDITY_FILE: &str = "facteur-uidvalidity";

const SCHEMA: &str = "
CREATE TABLE mailboxes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL UNIQUE,
    uidvalidity INTEGER NOT NULL,
    uidnext INTEGER NOT NULL,
    highest_modseq INTEGER NOT NULL,
    special_use TEXT,
    cur_mtime_ns INTEGER NOT NULL DEFAULT -1,
    new_mtime_ns INTEGER NOT NULL DEFAULT -1
);
CREATE TABLE messages (
    mailbox INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    file_name TEXT NOT NULL,
    flags INTEGER NOT NULL,
    keywords TEXT NOT NULL DEFAULT '',
    modseq INTEGER NOT NULL,
    size INTEGER NOT NULL,
    disk_size INTEGER NOT NULL,
    internal_date INTEGER NOT NULL,
    PRIMARY KEY (mailbox, uid)
) WITHOUT ROWID;
CREATE TABLE expunged (
    mailbox INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    modseq INTEGER NOT NULL,
    PRIMARY KEY (mailbox, uid)
) WITHOUT ROWID;
";

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> StoreError {
        StoreError::Index(e.to_string())
    }
}

fn is_corrupt(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt)
    )
}

/// Opens the index of `user_dir`, creating it if missing and moving it aside
/// and creating it afresh if corrupt.
pub fn open(user_dir: &Path) -> Result<Connection> {
    let path = user_dir.join(FILE);
    match try_open(&path) {
        Ok(c) => Ok(c),
        Err(e) if is_corrupt(&e) => {
            let secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            tracing::warn!(path = %path.display(), error = %e, "index corrupt, rebuilding with a new UIDVALIDITY");
            let aside = user_dir.join(format!("{FILE}.corrupt-{secs}"));
            fs::rename(&path, &aside)?;
            for ext in ["-wal", "-shm"] {
                let _ = fs::remove_file(user_dir.join(format!("{FILE}{ext}")));
            }
            Ok(try_open(&path)?)
        }
        Err(e) => Err(e.into()),
    }
}

fn try_open(path: &Path) -> rusqlite::Result<Connection> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // rusqlite keeps 16 by default, fewer than the statements a session's
    // commands use in turn: each miss parsed its statement again.
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    let _: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    // mmap: a SELECT of a big mailbox reads its rows straight from the OS
    // page cache instead of through read(2) and a small SQLite cache.
    conn.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA mmap_size=268435456; PRAGMA cache_size=-16000;",
    )?;
    let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: i32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version == 0 {
            tx.execute_batch(SCHEMA)?;
            tx.execute_batch(&format!("PRAGMA user_version = {VERSION};"))?;
        }
        tx.commit()?;
    } else if version > VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
            Some(format!(
                "index format {version} is newer than this program's {VERSION}"
            )),
        ));
    }
    // Tombstones by modseq: VANISHED and the delta a view is brought up
    // to date with read only the recent ones. Added to indexes made before
    // it too (an index changes no format: older versions ignore it).
    conn.execute_batch(
        "CREATE INDEX IF NOT EXISTS expunged_by_modseq ON expunged (mailbox, modseq);",
    )?;
    // \Recent claims (mailbox/recent.rs), likewise added to older indexes.
    conn.execute_batch(crate::mailbox::recent::SCHEMA)?;
    // METADATA entries (metadata.rs), likewise.
    conn.execute_batch(crate::metadata::SCHEMA)?;
    // Save dates (SAVEDATE, RFC 8514) of messages APPENDed, copied or
    // moved in, likewise; a delivered message's is its file name's time.
    conn.execute_batch(SAVED_SCHEMA)?;
    // A file that is not a database is only noticed on first read: the
    // user_version read above is that read.
    Ok(conn)
}

/// A row of the `mailboxes` table.
#[derive(Debug, Clone)]
pub struct MailboxRow {
    pub id: i64,
    pub name: String,
    pub uidvalidity: u32,
    pub uidnext: u32,
    pub highest_modseq: u64,
    pub special_use: Option<SpecialUse>,
    pub cur_mtime_ns: i64,
    pub new_mtime_ns: i64,
}

const ROW_COLS: &str =
    "id, name, uidvalidity, uidnext, highest_modseq, special_use, cur_mtime_ns, new_mtime_ns";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MailboxRow> {
    let su: Option<String> = r.get(5)?;
    Ok(MailboxRow {
        id: r.get(0)?,
        name: r.get(1)?,
        uidvalidity: r.get(2)?,
        uidnext: r.get(3)?,
        highest_modseq: r.get::<_, i64>(4)? as u64,
        special_use: su.as_deref().and_then(SpecialUse::parse),
        cur_mtime_ns: r.get(6)?,
        new_mtime_ns: r.get(7)?,
    })
}

/// The row of mailbox `name`, if any.
pub fn mailbox_row(conn: &Connection, name: &str) -> Result<Option<MailboxRow>> {
    let sql = format!("SELECT {ROW_COLS} FROM mailboxes WHERE name = ?1");
    Ok(conn
        .prepare_cached(&sql)?
        .query_row([name], row)
        .optional()?)
}

/// All mailbox rows.
pub fn all_rows(conn: &Connection) -> Result<Vec<MailboxRow>> {
    let sql = format!("SELECT {ROW_COLS} FROM mailboxes ORDER BY name");
    let mut st = conn.prepare_cached(&sql)?;
    let rows = st
        .query_map([], row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Gives a new UIDVALIDITY: the time in seconds, or one more than the last
/// given if that is not smaller. Call inside a write transaction.
pub fn new_uidvalidity(user_dir: &Path) -> Result<u32> {
    let path = user_dir.join(UIDVALIDITY_FILE);
    let last: u32 = crate::dirfd::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as u32;
    let v = now.max(last.wrapping_add(1)).max(1);
    facteur_util::write_atomic(&path, format!("{v}\n").as_bytes(), 0o600)?;
    Ok(v)
}

/// Creates the row of mailbox `name` (which must not have one) with a new
/// UIDVALIDITY. Call inside a write transaction.
pub fn create_row(
    conn: &Connection,
    user_dir: &Path,
    name: &str,
    special_use: Option<SpecialUse>,
) -> Result<MailboxRow> {
    let uidvalidity = new_uidvalidity(user_dir)?;
    let special_use = special_use.or_else(|| SpecialUse::default_for(name));
    conn.prepare_cached(
        "INSERT INTO mailboxes (name, uidvalidity, uidnext, highest_modseq, special_use) VALUES (?1, ?2, 1, 1, ?3)",
    )?
    .execute(params![name, uidvalidity, special_use.map(|s| s.as_str())])?;
    mailbox_row(conn, name)?.ok_or_else(|| StoreError::Index("row vanished after insert".into()))
}

/// Removes mailbox `id` and everything about it.
pub fn delete_row(conn: &Connection, id: i64) -> Result<()> {
    conn.execute("DELETE FROM messages WHERE mailbox = ?1", [id])?;
    conn.execute("DELETE FROM expunged WHERE mailbox = ?1", [id])?;
    conn.execute("DELETE FROM recent WHERE mailbox = ?1", [id])?;
    conn.execute("DELETE FROM saved WHERE mailbox = ?1", [id])?;
    conn.execute("DELETE FROM mailboxes WHERE id = ?1", [id])?;
    Ok(())
}

/// Sets the UIDNEXT, HIGHESTMODSEQ and directory times of mailbox `id`.
pub fn update_row(conn: &Connection, r: &MailboxRow) -> Result<()> {
    conn.prepare_cached(
        "UPDATE mailboxes SET uidnext = ?2, highest_modseq = ?3, cur_mtime_ns = ?4, new_mtime_ns = ?5 WHERE id = ?1",
    )?
    .execute(params![r.id, r.uidnext, r.highest_modseq as i64, r.cur_mtime_ns, r.new_mtime_ns])?;
    Ok(())
}

/// Joins keywords for the `keywords` column (IMAP atoms hold no space).
pub fn join_keywords(f: &Flags) -> String {
    let mut s = String::new();
    for k in &f.keywords {
        if !s.is_empty() {
            s.push(' ');
        }
        s.push_str(k);
    }
    s
}

fn split_keywords(s: &str) -> std::collections::BTreeSet<String> {
    if s.is_empty() {
        return std::collections::BTreeSet::new();
    }
    s.split(' ')
        .filter(|k| !k.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Loads the messages of mailbox `id`, sorted by UID, with one query.
/// `hint`: how many to expect (saves reallocations of a big view).
pub fn load_messages(conn: &Connection, id: i64, hint: usize) -> Result<Vec<MessageMeta>> {
    let mut st = conn.prepare_cached(
        "SELECT uid, flags, keywords, modseq, size, internal_date, file_name FROM messages WHERE mailbox = ?1 ORDER BY uid",
    )?;
    let mut rows = st.query([id])?;
    let mut out = Vec::with_capacity(hint);
    while let Some(r) = rows.next()? {
        out.push(meta(r)?);
    }
    Ok(out)
}

/// The messages of mailbox `id` whose row changed (or was added) with a
/// modseq above `modseq`, sorted by UID. Reads every row's modseq, but
/// decodes only the changed rows.
pub fn changed_since(conn: &Connection, id: i64, modseq: u64) -> Result<Vec<MessageMeta>> {
    let mut st = conn.prepare_cached(
        "SELECT uid, flags, keywords, modseq, size, internal_date, file_name FROM messages WHERE mailbox = ?1 AND modseq > ?2 ORDER BY uid",
    )?;
    let mut rows = st.query(params![id, modseq as i64])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(meta(r)?);
    }
    Ok(out)
}

fn meta(r: &rusqlite::Row<'_>) -> Result<MessageMeta> {
    let kw = r
        .get_ref(2)?
        .as_str()
        .map_err(|e| StoreError::Index(e.to_string()))?;
    Ok(MessageMeta {
        uid: r.get(0)?,
        flags: Flags {
            system: r.get(1)?,
            keywords: split_keywords(kw),
        },
        modseq: r.get::<_, i64>(3)? as u64,
        size: r.get::<_, i64>(4)? as u64,
        internal_date: r.get(5)?,
        file_name: r
            .get_ref(6)?
            .as_str()
            .map_err(|e| StoreError::Index(e.to_string()))?
            .into(),
    })
}

/// One message row, as the write paths need it.
#[derive(Debug, Clone)]
pub struct MsgRow {
    pub uid: u32,
    pub file_name: String,
    pub flags: Flags,
    pub modseq: u64,
    pub size: u64,
    pub disk_size: u64,
    pub internal_date: i64,
}

/// Message `uid` of mailbox `id`, if it is there.
pub fn message(conn: &Connection, id: i64, uid: u32) -> Result<Option<MsgRow>> {
    let mut st = conn.prepare_cached(
        "SELECT file_name, flags, keywords, modseq, size, disk_size, internal_date FROM messages WHERE mailbox = ?1 AND uid = ?2",
    )?;
    Ok(st
        .query_row(params![id, uid], |r| {
            let kw: String = r.get(2)?;
            Ok(MsgRow {
                uid,
                file_name: r.get(0)?,
                flags: Flags {
                    system: r.get(1)?,
                    keywords: split_keywords(&kw),
                },
                modseq: r.get::<_, i64>(3)? as u64,
                size: r.get::<_, i64>(4)? as u64,
                disk_size: r.get::<_, i64>(5)? as u64,
                internal_date: r.get(6)?,
            })
        })
        .optional()?)
}

const SAVED_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS saved (
    mailbox INTEGER NOT NULL,
    uid INTEGER NOT NULL,
    at INTEGER NOT NULL,
    PRIMARY KEY (mailbox, uid)
) WITHOUT ROWID;";

/// Records when message `uid` of mailbox `id` was saved there.
pub fn record_saved(conn: &Connection, id: i64, uid: u32, at: i64) -> Result<()> {
    conn.prepare_cached("INSERT OR REPLACE INTO saved (mailbox, uid, at) VALUES (?1, ?2, ?3)")?
        .execute(params![id, uid, at])?;
    Ok(())
}

/// The recorded save dates of mailbox `id`: of `uids` if given (a few),
/// else all.
pub fn saved_dates(
    conn: &Connection,
    id: i64,
    uids: Option<&[u32]>,
) -> Result<std::collections::HashMap<u32, i64>> {
    let mut out = std::collections::HashMap::new();
    match uids {
        Some(uids) => {
            let mut st =
                conn.prepare_cached("SELECT at FROM saved WHERE mailbox = ?1 AND uid = ?2")?;
            for &u in uids {
                if let Some(at) = st.query_row(params![id, u], |r| r.get(0)).optional()? {
                    out.insert(u, at);
                }
            }
        }
        None => {
            let mut st = conn.prepare_cached("SELECT uid, at FROM saved WHERE mailbox = ?1")?;
            for row in st.query_map([id], |r| Ok((r.get(0)?, r.get(1)?)))? {
                let (u, at) = row?;
                out.insert(u, at);
            }
        }
    }
    Ok(out)
}

const INSERT_MESSAGE: &str = "INSERT INTO messages (mailbox, uid, file_name, flags, keywords, modseq, size, disk_size, internal_date)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// Inserts a message row.
pub fn insert_message(conn: &Connection, id: i64, m: &MsgRow) -> Result<()> {
    let mut st = conn.prepare_cached(INSERT_MESSAGE)?;
    let row = RowValues {
        uid: m.uid,
        file_name: &m.file_name,
        flags: m.flags.system,
        keywords: &join_keywords(&m.flags),
        modseq: m.modseq,
        sizes: (m.size, m.disk_size),
        internal_date: m.internal_date,
    };
    bind_row(&mut st, 0, id, &row)?;
    st.raw_execute()?;
    Ok(())
}

/// The values of a row of `messages`, as [`INSERT_MESSAGE`] lists them
/// (after the mailbox's id).
struct RowValues<'a> {
    uid: u32,
    file_name: &'a str,
    flags: u8,
    keywords: &'a str,
    modseq: u64,
    /// CRLF size, size on disk.
    sizes: (u64, u64),
    internal_date: i64,
}

/// Binds mailbox `id` and `row` to the parameters `at + 1 ..= at + 9` of
/// `st`: one row of [`INSERT_MESSAGE`], or of the many of [`insert_many`].
fn bind_row(
    st: &mut rusqlite::CachedStatement<'_>,
    at: usize,
    id: i64,
    row: &RowValues<'_>,
) -> rusqlite::Result<()> {
    st.raw_bind_parameter(at + 1, id)?;
    st.raw_bind_parameter(at + 2, row.uid)?;
    st.raw_bind_parameter(at + 3, row.file_name)?;
    st.raw_bind_parameter(at + 4, row.flags)?;
    st.raw_bind_parameter(at + 5, row.keywords)?;
    st.raw_bind_parameter(at + 6, row.modseq as i64)?;
    st.raw_bind_parameter(at + 7, row.sizes.0 as i64)?;
    st.raw_bind_parameter(at + 8, row.sizes.1 as i64)?;
    st.raw_bind_parameter(at + 9, row.internal_date)
}

/// Prepared statements kept per connection (see `try_open`).
const STATEMENT_CACHE: usize = 64;

/// SQLite's automatic checkpoint threshold, in WAL pages (its default).
pub(crate) const AUTOCHECKPOINT_PAGES: u32 = 1000;

/// Checkpoints the index of `user_dir` on a thread of its own, through a
/// connection of its own, if its WAL file has passed
/// [`AUTOCHECKPOINT_PAGES`] (after a commit made without the automatic
/// checkpoint; a WAL file keeps the size it once reached, and a checkpoint
/// of a few pages costs little) and no such thread runs yet; `running` is
/// set until it ends. PASSIVE: it waits for no reader or writer. Should it
/// fail, the next commit of a connection with automatic checkpoints does
/// it. False if no thread was started (nothing to do, one runs already, or
/// none could start).
pub(crate) fn checkpoint_aside(user_dir: &Path, running: &Arc<AtomicBool>) -> bool {
    let wal = user_dir.join(format!("{FILE}-wal"));
    match fs::metadata(&wal) {
        Ok(m) if m.len() > u64::from(AUTOCHECKPOINT_PAGES) * 4096 => {}
        _ => return false,
    }
    if running.swap(true, Ordering::AcqRel) {
        return false;
    }
    let dir = user_dir.to_path_buf();
    let done = Arc::clone(running);
    let spawned = std::thread::Builder::new()
        .name("index-checkpoint".into())
        .spawn(move || {
            // A bare connection to the existing file: never one that
            // creates it, or sets a corrupt one aside, from this thread.
            let r = Connection::open_with_flags(
                dir.join(FILE),
                rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .and_then(|c| {
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
            });
            if let Err(e) = r {
                tracing::warn!(dir = %dir.display(), error = %e, "index checkpoint failed (the next commit makes it)");
            }
            done.store(false, Ordering::Release);
        });
    if spawned.is_err() {
        running.store(false, Ordering::Release);
        return false;
    }
    true
}

/// Rows per statement of [`insert_many`]. A statement per row costs SQLite
/// a statement's start and end (its savepoint, its halt) for each: in the
/// first scan of a 100,000-message Maildir, a third of the insert time.
const BULK_ROWS: usize = 64;

/// `INSERT_MESSAGE` with [`BULK_ROWS`] rows of values.
fn bulk_insert_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let mut s = String::from(
            "INSERT INTO messages (mailbox, uid, file_name, flags, keywords, modseq, size, disk_size, internal_date) VALUES ",
        );
        for i in 0..BULK_ROWS {
            s.push_str(if i == 0 { "(" } else { ",(" });
            s.push_str(&["?"; 9].join(","));
            s.push(')');
        }
        s
    })
}

/// A message a scan found: a file of `cur/` the index did not know. It has
/// no keywords (they live in the index only).
pub struct NewRow<'a> {
    pub uid: u32,
    pub file_name: &'a Arc<str>,
    /// System flag bits, from the name.
    pub flags: u8,
    /// In CRLF form.
    pub size: u64,
    pub disk_size: u64,
    pub internal_date: i64,
}

/// Inserts the rows of a scan's new messages of mailbox `id`, all with
/// `modseq`, [`BULK_ROWS`] to a statement.
pub fn insert_many(conn: &Connection, id: i64, modseq: u64, rows: &[NewRow<'_>]) -> Result<()> {
    let bind = |st: &mut rusqlite::CachedStatement<'_>, at: usize, r: &NewRow<'_>| {
        let row = RowValues {
            uid: r.uid,
            file_name: r.file_name,
            flags: r.flags,
            keywords: "",
            modseq,
            sizes: (r.size, r.disk_size),
            internal_date: r.internal_date,
        };
        bind_row(st, at, id, &row)
    };
    let mut chunks = rows.chunks_exact(BULK_ROWS);
    if rows.len() >= BULK_ROWS {
        let mut st = conn.prepare_cached(bulk_insert_sql())?;
        for chunk in chunks.by_ref() {
            for (j, r) in chunk.iter().enumerate() {
                bind(&mut st, j * 9, r)?;
            }
            st.raw_execute()?;
        }
    }
    let mut st = conn.prepare_cached(INSERT_MESSAGE)?;
    for r in chunks.remainder() {
        bind(&mut st, 0, r)?;
        st.raw_execute()?;
    }
    Ok(())
}

/// Updates name, flags and modseq of a message row.
pub fn update_message(
    conn: &Connection,
    id: i64,
    uid: u32,
    file_name: &str,
    flags: &Flags,
    modseq: u64,
) -> Result<()> {
    conn.prepare_cached(
        "UPDATE messages SET file_name = ?3, flags = ?4, keywords = ?5, modseq = ?6 WHERE mailbox = ?1 AND uid = ?2",
    )?
    .execute(params![id, uid, file_name, flags.system, join_keywords(flags), modseq as i64])?;
    Ok(())
}

/// Removes a message row and leaves a tombstone with `modseq`.
pub fn expunge_message(conn: &Connection, id: i64, uid: u32, modseq: u64) -> Result<()> {
    conn.prepare_cached("DELETE FROM messages WHERE mailbox = ?1 AND uid = ?2")?
        .execute(params![id, uid])?;
    conn.prepare_cached("DELETE FROM saved WHERE mailbox = ?1 AND uid = ?2")?
        .execute(params![id, uid])?;
    conn.prepare_cached(
        "INSERT OR REPLACE INTO expunged (mailbox, uid, modseq) VALUES (?1, ?2, ?3)",
    )?
    .execute(params![id, uid, modseq as i64])?;
    Ok(())
}

/// UIDs expunged from mailbox `id` with a modseq above `modseq`.
pub fn vanished_since(conn: &Connection, id: i64, modseq: u64) -> Result<Vec<u32>> {
    let mut st = conn.prepare_cached(
        "SELECT uid FROM expunged WHERE mailbox = ?1 AND modseq > ?2 ORDER BY uid",
    )?;
    let v = st
        .query_map(params![id, modseq as i64], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<u32>>>()?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_schema_and_reopens() {
        let d = tempfile::tempdir().unwrap();
        let c = open(d.path()).unwrap();
        let v: i32 = c
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, VERSION);
        let mode: String = c
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let r = create_row(&c, d.path(), "Sent", None).unwrap();
        assert_eq!(r.special_use, Some(SpecialUse::Sent));
        drop(c);
        let c = open(d.path()).unwrap();
        assert_eq!(
            mailbox_row(&c, "Sent").unwrap().unwrap().uidvalidity,
            r.uidvalidity
        );
    }

    #[test]
    fn uidvalidity_always_grows() {
        let d = tempfile::tempdir().unwrap();
        let a = new_uidvalidity(d.path()).unwrap();
        let b = new_uidvalidity(d.path()).unwrap();
        assert!(b > a);
    }

    #[test]
    fn garbage_file_is_moved_aside() {
        let d = tempfile::tempdir().unwrap();
        fs::write(d.path().join(FILE), vec![b'x'; 8192]).unwrap();
        let c = open(d.path()).unwrap();
        assert!(mailbox_row(&c, "INBOX").unwrap().is_none());
        let aside = fs::read_dir(d.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with("facteur-index.sqlite.corrupt-")
            });
        assert!(aside);
    }
}
