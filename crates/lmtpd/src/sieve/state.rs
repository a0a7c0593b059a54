//! What Sieve remembers between deliveries (RFC 5230 §4.2 vacation's
//! "recently answered" list, RFC 7352's duplicate ids): one small SQLite
//! database beside the directory, `<state_dir>/sieve-state.sqlite`.
//!
//! Records are written only after the delivery they belong to succeeded
//! (a reply queued, the copies on disk), so a failed delivery retried by
//! the sender is not taken for a duplicate. Keys are hashed (SHA-256 is
//! overkill; FNV-1a 64 of the parts is enough to tell ids apart and keeps
//! addresses out of the file). Expired rows are removed as they are met
//! and by a sweep every 1,000 writes. SQLite's own locking serializes the
//! lmtpd processes; one connection per process, behind a mutex.

use std::path::Path;
use std::sync::Mutex;

use rusqlite::{Connection, OptionalExtension, params};

pub struct State {
    conn: Mutex<Connection>,
    writes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("sieve::State")
    }
}

fn key(parts: &[&str]) -> i64 {
    // the bits of the hash, as SQLite's signed integer
    i64::from_ne_bytes(facteur_sieve::run::vacation::fnv(parts).to_ne_bytes())
}

fn now() -> i64 {
    facteur_util::date::now_unix()
}

impl State {
    pub fn open(path: &Path) -> rusqlite::Result<State> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=FULL;
             CREATE TABLE IF NOT EXISTS vacation (
                 key INTEGER PRIMARY KEY, expires INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS duplicate (
                 key INTEGER PRIMARY KEY, expires INTEGER NOT NULL);",
        )?;
        Ok(State {
            conn: Mutex::new(conn),
            writes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn live(&self, table: &str, k: i64) -> bool {
        let sql = format!("SELECT expires FROM {table} WHERE key = ?1");
        let found: Option<i64> = self
            .conn()
            .query_row(&sql, params![k], |r| r.get(0))
            .optional()
            .unwrap_or(None);
        found.is_some_and(|e| e > now())
    }

    fn put(&self, table: &str, k: i64, expires: i64) -> rusqlite::Result<()> {
        let c = self.conn();
        c.execute(
            &format!("INSERT OR REPLACE INTO {table} (key, expires) VALUES (?1, ?2)"),
            params![k, expires],
        )?;
        if self
            .writes
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 1000
            == 999
        {
            let t = now();
            c.execute("DELETE FROM vacation WHERE expires <= ?1", params![t])?;
            c.execute("DELETE FROM duplicate WHERE expires <= ?1", params![t])?;
        }
        Ok(())
    }

    /// Was `sender` answered for (`user`, `handle`) and is that still in
    /// its period?
    pub fn vacation_sent(&self, user: &str, sender: &str, handle: &str) -> bool {
        self.live(
            "vacation",
            key(&[user, &sender.to_ascii_lowercase(), handle]),
        )
    }

    /// Claim the right to answer `sender`: true when no reply is recorded
    /// within the period, and then the reply is recorded, in one
    /// transaction, so that two deliveries at once (two lmtpd sessions, or
    /// two processes) cannot both answer. [`State::release_vacation`] undoes
    /// the claim when the reply could not be queued.
    pub fn claim_vacation(
        &self,
        user: &str,
        sender: &str,
        handle: &str,
        period: u64,
    ) -> rusqlite::Result<bool> {
        let k = key(&[user, &sender.to_ascii_lowercase(), handle]);
        let expires = now().saturating_add(i64::try_from(period).unwrap_or(i64::MAX));
        let mut c = self.conn();
        let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let live: Option<i64> = tx
            .query_row(
                "SELECT expires FROM vacation WHERE key = ?1",
                params![k],
                |r| r.get(0),
            )
            .optional()?;
        if live.is_some_and(|e| e > now()) {
            return Ok(false);
        }
        tx.execute(
            "INSERT OR REPLACE INTO vacation (key, expires) VALUES (?1, ?2)",
            params![k, expires],
        )?;
        tx.commit()?;
        Ok(true)
    }

    pub fn release_vacation(&self, user: &str, sender: &str, handle: &str) -> rusqlite::Result<()> {
        let k = key(&[user, &sender.to_ascii_lowercase(), handle]);
        self.conn()
            .execute("DELETE FROM vacation WHERE key = ?1", params![k])?;
        Ok(())
    }

    pub fn duplicate_seen(&self, user: &str, handle: &str, id: &str) -> bool {
        self.live("duplicate", key(&[user, handle, id]))
    }

    /// Remember `id`; with `last` the period restarts at every sighting,
    /// without it the first sighting's period stands.
    pub fn record_duplicate(
        &self,
        user: &str,
        handle: &str,
        id: &str,
        period: u64,
        last: bool,
    ) -> rusqlite::Result<()> {
        let k = key(&[user, handle, id]);
        if !last && self.live("duplicate", k) {
            return Ok(());
        }
        self.put(
            "duplicate",
            k,
            now().saturating_add(i64::try_from(period).unwrap_or(i64::MAX)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry() {
        let d = tempfile::tempdir().unwrap();
        let s = State::open(&d.path().join("s.sqlite")).unwrap();
        assert!(!s.vacation_sent("u", "a@x", "h"));
        assert!(s.claim_vacation("u", "A@x", "h", 3600).unwrap());
        assert!(
            !s.claim_vacation("u", "a@x", "h", 3600).unwrap(),
            "claimed once"
        );
        assert!(s.vacation_sent("u", "a@x", "h"));
        assert!(!s.vacation_sent("u", "a@x", "other"));
        assert!(!s.vacation_sent("v", "a@x", "h"));
        s.release_vacation("u", "a@x", "h").unwrap();
        assert!(!s.vacation_sent("u", "a@x", "h"));
        assert!(s.claim_vacation("u", "b@x", "h", 0).unwrap());
        assert!(
            s.claim_vacation("u", "b@x", "h", 0).unwrap(),
            "a zero period never holds"
        );
        s.record_duplicate("u", "", "<id>", 3600, false).unwrap();
        assert!(s.duplicate_seen("u", "", "<id>"));
        assert!(!s.duplicate_seen("u", "x", "<id>"));
        drop(s);
        let s = State::open(&d.path().join("s.sqlite")).unwrap();
        assert!(s.duplicate_seen("u", "", "<id>"), "survives a restart");
    }
}
