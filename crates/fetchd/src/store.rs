//! The accounts and what was fetched from them: `<state_dir>/fetchd.sqlite`,
//! mode 0600 (it holds the remote passwords; facteur-fetchd's user alone
//! reads it; `facteurctl fetch` becomes that user first).
//!
//! `seen` records each remote message taken (POP3: its UIDL; IMAP: folder,
//! UIDVALIDITY and UID) after its local copy is durable, so nothing is
//! fetched twice; rows of messages the server no longer has are pruned.
//! Written with synchronous=FULL: a recorded message stays recorded.

use rusqlite::{Connection, OptionalExtension, params};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Pop3,
    Imap,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        match s.to_ascii_lowercase().as_str() {
            "pop3" => Some(Protocol::Pop3),
            "imap" => Some(Protocol::Imap),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Pop3 => "pop3",
            Protocol::Imap => "imap",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// TLS from the first byte (995, 993).
    Implicit,
    /// STLS / STARTTLS before the login.
    StartTls,
    /// Clear text (a test, or a server on this host).
    None,
}

impl Tls {
    pub fn parse(s: &str) -> Option<Tls> {
        match s.to_ascii_lowercase().as_str() {
            "implicit" | "tls" | "ssl" => Some(Tls::Implicit),
            "starttls" | "stls" => Some(Tls::StartTls),
            "none" => Some(Tls::None),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Tls::Implicit => "implicit",
            Tls::StartTls => "starttls",
            Tls::None => "none",
        }
    }
}

/// One remote account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    /// The local mailbox (or, with multidrop, the fallback).
    pub local_user: String,
    pub protocol: Protocol,
    pub host: String,
    pub port: u16,
    pub tls: Tls,
    /// No certificate check (said in the log at each run).
    pub insecure: bool,
    pub login: String,
    pub password: String,
    /// Leave the messages on the server (else delete each once its local
    /// copy is durable).
    pub keep: bool,
    /// Only messages not fetched before (else all, each run).
    pub new_only: bool,
    pub interval: u64,
    pub max_per_run: u32,
    /// IMAP folders (default INBOX).
    pub folders: Vec<String>,
    /// Recipients from the message's headers (local domains only).
    pub multidrop: bool,
}

impl Account {
    /// `protocol://login@host:port`, for logs (never the password).
    pub fn label(&self) -> String {
        format!(
            "{}://{}@{}:{}",
            self.protocol.as_str(),
            self.login,
            self.host,
            self.port
        )
    }
}

/// The last run's outcome, for `fetch status`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    pub last_run: i64,
    pub last_result: String,
    pub last_error: String,
    pub failures: u32,
    pub next_run: i64,
    /// Login refused this many times in a row; at [`STOP_AFTER_LOGIN_FAILURES`]
    /// the account waits for `fetch run` or a new password.
    pub login_failures: u32,
}

/// Consecutive refused logins after which the account is not tried again
/// by itself.
pub const STOP_AFTER_LOGIN_FAILURES: u32 = 3;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("fetch accounts database: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("fetch accounts database {0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("no fetch account {0}")]
    NoAccount(i64),
}

pub type Result<T> = std::result::Result<T, StoreError>;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS accounts (
    id INTEGER PRIMARY KEY,
    local_user TEXT NOT NULL,
    protocol TEXT NOT NULL,
    host TEXT NOT NULL,
    port INTEGER NOT NULL,
    tls TEXT NOT NULL,
    insecure INTEGER NOT NULL,
    login TEXT NOT NULL,
    password TEXT NOT NULL,
    keep INTEGER NOT NULL,
    new_only INTEGER NOT NULL,
    interval INTEGER NOT NULL,
    max_per_run INTEGER NOT NULL,
    folders TEXT NOT NULL,
    multidrop INTEGER NOT NULL,
    last_run INTEGER NOT NULL DEFAULT 0,
    last_result TEXT NOT NULL DEFAULT '',
    last_error TEXT NOT NULL DEFAULT '',
    failures INTEGER NOT NULL DEFAULT 0,
    next_run INTEGER NOT NULL DEFAULT 0,
    login_failures INTEGER NOT NULL DEFAULT 0,
    running_until INTEGER NOT NULL DEFAULT 0,
    running_pid INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS seen (
    account INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    folder TEXT NOT NULL,
    uidvalidity TEXT NOT NULL,
    key TEXT NOT NULL,
    PRIMARY KEY (account, folder, uidvalidity, key)
);
";

/// The database file's path under `state_dir`.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("fetchd.sqlite")
}

pub struct Store {
    conn: Mutex<Connection>,
}

const COLUMNS: &str = "id, local_user, protocol, host, port, tls, insecure, login, password, keep, new_only, interval, max_per_run, folders, multidrop";

fn account_row(r: &rusqlite::Row) -> rusqlite::Result<Account> {
    let folders: String = r.get(13)?;
    Ok(Account {
        id: r.get(0)?,
        local_user: r.get(1)?,
        protocol: Protocol::parse(&r.get::<_, String>(2)?).unwrap_or(Protocol::Pop3),
        host: r.get(3)?,
        port: r.get(4)?,
        tls: Tls::parse(&r.get::<_, String>(5)?).unwrap_or(Tls::Implicit),
        insecure: r.get(6)?,
        login: r.get(7)?,
        password: r.get(8)?,
        keep: r.get(9)?,
        new_only: r.get(10)?,
        interval: r.get(11)?,
        max_per_run: r.get(12)?,
        folders: folders
            .split('\n')
            .filter(|f| !f.is_empty())
            .map(String::from)
            .collect(),
        multidrop: r.get(14)?,
    })
}

impl Store {
    /// Opens (creating, mode 0600) the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        // Made 0600 before SQLite opens it (SQLite would use the umask).
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| StoreError::Io(path.to_owned(), e))?;
        let conn = Connection::open(path)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(SCHEMA)?;
        Ok(Store {
            conn: Mutex::new(conn),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds an account; its id.
    pub fn add(&self, a: &Account) -> Result<i64> {
        let c = self.lock();
        c.execute(
            &format!(
                "INSERT INTO accounts ({}) VALUES (NULL, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                COLUMNS
            ),
            params![
                a.local_user,
                a.protocol.as_str(),
                a.host,
                a.port,
                a.tls.as_str(),
                a.insecure,
                a.login,
                a.password,
                a.keep,
                a.new_only,
                a.interval,
                a.max_per_run,
                a.folders.join("\n"),
                a.multidrop
            ],
        )?;
        Ok(c.last_insert_rowid())
    }

    pub fn delete(&self, id: i64) -> Result<()> {
        match self
            .lock()
            .execute("DELETE FROM accounts WHERE id = ?1", [id])?
        {
            0 => Err(StoreError::NoAccount(id)),
            _ => Ok(()),
        }
    }

    pub fn get(&self, id: i64) -> Result<Account> {
        self.lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM accounts WHERE id = ?1"),
                [id],
                account_row,
            )
            .optional()?
            .ok_or(StoreError::NoAccount(id))
    }

    pub fn all(&self) -> Result<Vec<Account>> {
        let c = self.lock();
        let mut st = c.prepare(&format!("SELECT {COLUMNS} FROM accounts ORDER BY id"))?;
        let rows = st.query_map([], account_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn status(&self, id: i64) -> Result<Status> {
        self.lock()
            .query_row(
                "SELECT last_run, last_result, last_error, failures, next_run, login_failures
                 FROM accounts WHERE id = ?1",
                [id],
                |r| {
                    Ok(Status {
                        last_run: r.get(0)?,
                        last_result: r.get(1)?,
                        last_error: r.get(2)?,
                        failures: r.get(3)?,
                        next_run: r.get(4)?,
                        login_failures: r.get(5)?,
                    })
                },
            )
            .optional()?
            .ok_or(StoreError::NoAccount(id))
    }

    /// Ids of accounts due at `now` (not stopped by refused logins).
    pub fn due(&self, now: i64) -> Result<Vec<i64>> {
        let c = self.lock();
        let mut st = c.prepare(
            "SELECT id FROM accounts WHERE next_run <= ?1 AND running_until <= ?1 AND login_failures < ?2 ORDER BY next_run, id",
        )?;
        let rows = st.query_map(params![now, STOP_AFTER_LOGIN_FAILURES], |r| r.get(0))?;
        let mut due: Vec<i64> = rows.collect::<rusqlite::Result<_>>()?;
        // Claimed by a process that died: due as well.
        let mut st = c.prepare(
            "SELECT id, running_pid FROM accounts WHERE next_run <= ?1 AND running_until > ?1 AND login_failures < ?2",
        )?;
        let held = st.query_map(params![now, STOP_AFTER_LOGIN_FAILURES], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, u32>(1)?))
        })?;
        for h in held {
            let (id, pid) = h?;
            if pid == 0 || !alive(pid) {
                due.push(id);
            }
        }
        Ok(due)
    }

    /// Claims the account for a run until `until` by process `pid` (so
    /// the daemon and `fetch run` never collect one account at once); false
    /// when another live process holds it. The claim of a process that
    /// died (kill -9) is taken over at once.
    pub fn claim(&self, id: i64, now: i64, until: i64, pid: u32) -> Result<bool> {
        let c = self.lock();
        let (held_until, holder): (i64, u32) = c
            .query_row(
                "SELECT running_until, running_pid FROM accounts WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?
            .ok_or(StoreError::NoAccount(id))?;
        let free = held_until <= now || holder == 0 || !alive(holder);
        Ok(free
            && c.execute(
                "UPDATE accounts SET running_until = ?3, running_pid = ?4
                 WHERE id = ?1 AND running_until = ?2 AND running_pid = ?5",
                params![id, held_until, until, pid, holder],
            )? == 1)
    }

    /// Records a run's end and schedules the next one.
    pub fn finish(&self, id: i64, now: i64, outcome: &Outcome) -> Result<()> {
        let c = self.lock();
        let (interval, failures, login_failures): (i64, u32, u32) = c.query_row(
            "SELECT interval, failures, login_failures FROM accounts WHERE id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
        let interval = interval.max(60);
        let (result, error, failures, login_failures) = match outcome {
            Outcome::Done(summary) | Outcome::More(summary) => {
                (summary.clone(), String::new(), 0, 0)
            }
            Outcome::Failed(e) => (String::from("failed"), e.clone(), failures + 1, 0),
            Outcome::LoginRefused(e) => (
                String::from("login refused"),
                e.clone(),
                failures + 1,
                login_failures + 1,
            ),
        };
        // Backoff: the interval doubled per failure in a row, up to 6 h.
        let wait = if matches!(outcome, Outcome::More(_)) {
            0
        } else if failures == 0 {
            interval
        } else {
            interval
                .saturating_mul(1 << failures.min(10))
                .min(6 * 3600)
                .max(interval)
        };
        c.execute(
            "UPDATE accounts SET last_run = ?2, last_result = ?3, last_error = ?4, failures = ?5,
             login_failures = ?6, next_run = ?7, running_until = 0, running_pid = 0 WHERE id = ?1",
            params![id, now, result, error, failures, login_failures, now + wait],
        )?;
        Ok(())
    }

    /// Makes the account due now and forgets refused logins (`fetch run`).
    pub fn reset(&self, id: i64) -> Result<()> {
        match self.lock().execute(
            "UPDATE accounts SET next_run = 0, login_failures = 0 WHERE id = ?1",
            [id],
        )? {
            0 => Err(StoreError::NoAccount(id)),
            _ => Ok(()),
        }
    }

    /// The keys already taken from a folder at a UIDVALIDITY.
    pub fn seen(
        &self,
        id: i64,
        folder: &str,
        uidvalidity: &str,
    ) -> Result<std::collections::HashSet<String>> {
        let c = self.lock();
        let mut st = c.prepare_cached(
            "SELECT key FROM seen WHERE account = ?1 AND folder = ?2 AND uidvalidity = ?3",
        )?;
        let rows = st.query_map(params![id, folder, uidvalidity], |r| r.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether the folder was read before at another UIDVALIDITY (its rows
    /// are then dropped: the old UIDs mean nothing now).
    pub fn uidvalidity_changed(&self, id: i64, folder: &str, uidvalidity: &str) -> Result<bool> {
        Ok(self.lock().execute(
            "DELETE FROM seen WHERE account = ?1 AND folder = ?2 AND uidvalidity <> ?3",
            params![id, folder, uidvalidity],
        )? > 0)
    }

    /// Records one message taken (durably, before it may be deleted
    /// remotely).
    pub fn record(&self, id: i64, folder: &str, uidvalidity: &str, key: &str) -> Result<()> {
        self.lock().execute(
            "INSERT OR IGNORE INTO seen (account, folder, uidvalidity, key) VALUES (?1, ?2, ?3, ?4)",
            params![id, folder, uidvalidity, key],
        )?;
        Ok(())
    }

    /// Forgets the keys of a folder that the server no longer lists.
    pub fn prune(
        &self,
        id: i64,
        folder: &str,
        uidvalidity: &str,
        present: &std::collections::HashSet<String>,
    ) -> Result<usize> {
        let gone: Vec<String> = self
            .seen(id, folder, uidvalidity)?
            .into_iter()
            .filter(|k| !present.contains(k))
            .collect();
        let mut c = self.lock();
        let tx = c.transaction()?;
        for k in &gone {
            tx.execute(
                "DELETE FROM seen WHERE account = ?1 AND folder = ?2 AND uidvalidity = ?3 AND key = ?4",
                params![id, folder, uidvalidity, k],
            )?;
        }
        tx.commit()?;
        Ok(gone.len())
    }
}

/// Whether process `pid` exists (signal 0).
fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Done(String),
    /// Done, with more messages waiting (the run stopped at its maximum):
    /// due again at once.
    More(String),
    Failed(String),
    LoginRefused(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account() -> Account {
        Account {
            id: 0,
            local_user: "alice@example.org".into(),
            protocol: Protocol::Imap,
            host: "imap.provider.test".into(),
            port: 993,
            tls: Tls::Implicit,
            insecure: false,
            login: "alice".into(),
            password: "secret".into(),
            keep: true,
            new_only: true,
            interval: 600,
            max_per_run: 100,
            folders: vec!["INBOX".into(), "Lists/rust".into()],
            multidrop: false,
        }
    }

    #[test]
    fn accounts_schedule_and_seen() {
        let d = tempfile::tempdir().unwrap();
        let p = path(d.path());
        let s = Store::open(&p).unwrap();
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let id = s.add(&account()).unwrap();
        let a = s.get(id).unwrap();
        assert_eq!(a, Account { id, ..account() });
        assert_eq!(s.due(1000).unwrap(), [id]);
        let me = std::process::id();
        assert!(s.claim(id, 1000, 1100, me).unwrap());
        assert!(!s.claim(id, 1050, 1150, me).unwrap());
        assert!(s.due(1050).unwrap().is_empty());
        s.finish(id, 1060, &Outcome::Done("3 fetched".into()))
            .unwrap();
        // A claim by a process that is gone is taken over.
        let gone = u32::MAX - 1;
        assert!(s.claim(id, 1061, 9999, gone).unwrap());
        assert_eq!(s.due(9000).unwrap(), [id]);
        assert!(s.claim(id, 1062, 9999, me).unwrap());
        s.finish(id, 1060, &Outcome::Done("3 fetched".into()))
            .unwrap();
        assert_eq!(s.status(id).unwrap().next_run, 1660);
        s.finish(id, 1060, &Outcome::More("500 fetched".into()))
            .unwrap();
        assert_eq!(s.status(id).unwrap().next_run, 1060);
        // Failures back off; refused logins stop the account at the third.
        s.finish(id, 2000, &Outcome::Failed("timeout".into()))
            .unwrap();
        assert_eq!(s.status(id).unwrap().next_run, 2000 + 1200);
        for _ in 0..3 {
            s.finish(id, 3000, &Outcome::LoginRefused("-ERR bad".into()))
                .unwrap();
        }
        let st = s.status(id).unwrap();
        assert_eq!(
            (st.login_failures, st.last_result.as_str()),
            (3, "login refused")
        );
        assert!(s.due(i64::MAX / 2).unwrap().is_empty());
        s.reset(id).unwrap();
        assert_eq!(s.due(0).unwrap(), [id]);
        // Seen keys, a UIDVALIDITY change, pruning.
        s.record(id, "INBOX", "7", "1").unwrap();
        s.record(id, "INBOX", "7", "2").unwrap();
        assert_eq!(s.seen(id, "INBOX", "7").unwrap().len(), 2);
        assert!(!s.uidvalidity_changed(id, "INBOX", "7").unwrap());
        let present = ["2".to_string()].into_iter().collect();
        assert_eq!(s.prune(id, "INBOX", "7", &present).unwrap(), 1);
        assert!(s.uidvalidity_changed(id, "INBOX", "8").unwrap());
        assert!(s.seen(id, "INBOX", "7").unwrap().is_empty());
        s.delete(id).unwrap();
        assert!(matches!(s.get(id), Err(StoreError::NoAccount(_))));
    }
}
