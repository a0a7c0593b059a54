//! The screen's state, in SQLite beside the directory
//! (`<state_dir>/screen/screen.sqlite`): greylisting triplets, the client
//! networks and sender domains whose mail passed, and pregreet passes.
//!
//! One writer: a thread owns the connection and takes requests from a
//! bounded queue, running what is waiting in one transaction (WAL,
//! synchronous=NORMAL: a crash may lose the last second of records, which
//! costs a sender one more retry, never a message). Sessions never touch
//! SQLite's locks, so there is no lock storm under load. When the queue
//! is full or the thread gone, the answer is "let it through" and a
//! warning: screening fails open, the door never jams.

use crate::greylist::{self, Grey, Passes, Record, Triplet};
use facteur_config::screen::Greylist;
use rusqlite::{Connection, OptionalExtension, params};
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use tokio::sync::oneshot;

/// Requests waiting at most; past this, screening fails open.
const QUEUE: usize = 10_000;

/// Why greylisting let an attempt through, or for how long it defers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GreyOutcome {
    /// The triplet passed (now or before).
    Passed {
        first_time: bool,
    },
    /// The client network passed often enough.
    ClientAllowlisted,
    /// The SPF-authorized sender's domain passed often enough.
    DomainAllowlisted,
    Defer(i64),
    /// The state could not be asked (queue full, database error).
    Unavailable,
}

enum Job {
    Grey {
        t: Triplet,
        /// The sender's domain, when SPF authorized the client for it.
        spf_domain: Option<String>,
        now: i64,
        reply: oneshot::Sender<GreyOutcome>,
    },
    PregreetKnown {
        ip: String,
        now: i64,
        reply: oneshot::Sender<bool>,
    },
    PregreetPass {
        ip: String,
        until: i64,
    },
}

/// The handle sessions use (cheap to clone).
#[derive(Clone)]
pub struct Db {
    tx: SyncSender<Job>,
}

impl Db {
    /// Opens (creates) the database and starts its thread.
    pub fn open(path: &Path, cfg: Greylist) -> Result<Db, rusqlite::Error> {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS triplet(
                 net TEXT NOT NULL, sender TEXT NOT NULL, rcpt TEXT NOT NULL,
                 first INTEGER NOT NULL, last INTEGER NOT NULL, passed INTEGER,
                 PRIMARY KEY(net, sender, rcpt)) WITHOUT ROWID;
             CREATE INDEX IF NOT EXISTS triplet_last ON triplet(last);
             CREATE TABLE IF NOT EXISTS client(
                 net TEXT PRIMARY KEY, count INTEGER NOT NULL, last INTEGER NOT NULL)
                 WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS domain(
                 name TEXT PRIMARY KEY, count INTEGER NOT NULL, last INTEGER NOT NULL)
                 WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS pregreet(ip TEXT PRIMARY KEY, until INTEGER NOT NULL)
                 WITHOUT ROWID;",
        )?;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("screen-db".into())
            .spawn(move || serve(conn, rx, cfg))
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
        Ok(Db { tx })
    }

    fn send(&self, job: Job) -> bool {
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => {
                tracing::warn!("screen database busy: letting the client through");
                false
            }
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!("screen database gone: letting the client through");
                false
            }
        }
    }

    /// Greylisting's verdict on an attempt at `now` (recorded).
    pub async fn greylist(&self, t: Triplet, spf_domain: Option<String>, now: i64) -> GreyOutcome {
        let (reply, rx) = oneshot::channel();
        if !self.send(Job::Grey {
            t,
            spf_domain,
            now,
            reply,
        }) {
            return GreyOutcome::Unavailable;
        }
        rx.await.unwrap_or(GreyOutcome::Unavailable)
    }

    /// Whether `ip` passed the pregreet test and is still remembered.
    pub async fn pregreet_known(&self, ip: String, now: i64) -> bool {
        let (reply, rx) = oneshot::channel();
        if !self.send(Job::PregreetKnown { ip, now, reply }) {
            return false;
        }
        rx.await.unwrap_or(false)
    }

    /// Remembers that `ip` passed the pregreet test, until `until`.
    pub fn pregreet_pass(&self, ip: String, until: i64) {
        self.send(Job::PregreetPass { ip, until });
    }
}

fn serve(mut conn: Connection, rx: Receiver<Job>, cfg: Greylist) {
    let mut last_purge = 0i64;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        while jobs.len() < 512
            && let Ok(j) = rx.try_recv()
        {
            jobs.push(j);
        }
        let now = facteur_now();
        if now - last_purge > 3600 {
            last_purge = now;
            if let Err(e) = purge(&conn, &cfg, now) {
                tracing::warn!(error = %e, "screen database: purge");
            }
        }
        let tx = match conn.transaction() {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(error = %e, "screen database");
                continue; // the replies drop: callers fail open
            }
        };
        for job in jobs {
            match job {
                Job::Grey {
                    t,
                    spf_domain,
                    now,
                    reply,
                } => {
                    let out = grey(&tx, &cfg, &t, spf_domain.as_deref(), now).unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "screen database: greylisting");
                        GreyOutcome::Unavailable
                    });
                    let _ = reply.send(out);
                }
                Job::PregreetKnown { ip, now, reply } => {
                    let known = tx
                        .query_row("SELECT until FROM pregreet WHERE ip = ?1", [&ip], |r| {
                            r.get::<_, i64>(0)
                        })
                        .optional()
                        .ok()
                        .flatten()
                        .is_some_and(|until| until > now);
                    let _ = reply.send(known);
                }
                Job::PregreetPass { ip, until } => {
                    let _ = tx.execute(
                        "INSERT OR REPLACE INTO pregreet(ip, until) VALUES (?1, ?2)",
                        params![ip, until],
                    );
                }
            }
        }
        if let Err(e) = tx.commit() {
            tracing::warn!(error = %e, "screen database: commit");
        }
    }
}

fn facteur_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

fn purge(conn: &Connection, cfg: &Greylist, now: i64) -> rusqlite::Result<()> {
    let old = now - cfg.expire.0 as i64;
    conn.execute("DELETE FROM triplet WHERE last < ?1", [old])?;
    conn.execute("DELETE FROM client WHERE last < ?1", [old])?;
    conn.execute("DELETE FROM domain WHERE last < ?1", [old])?;
    conn.execute("DELETE FROM pregreet WHERE until < ?1", [now])?;
    Ok(())
}

fn passes(conn: &Connection, table: &str, key: &str) -> rusqlite::Result<Option<Passes>> {
    let col = if table == "client" { "net" } else { "name" };
    conn.query_row(
        &format!("SELECT count, last FROM {table} WHERE {col} = ?1"),
        [key],
        |r| {
            Ok(Passes {
                count: r.get(0)?,
                last: r.get(1)?,
            })
        },
    )
    .optional()
}

fn count(conn: &Connection, table: &str, key: &str, now: i64) -> rusqlite::Result<()> {
    let p = greylist::count_pass(passes(conn, table, key)?.unwrap_or_default(), now);
    let col = if table == "client" { "net" } else { "name" };
    conn.execute(
        &format!("INSERT OR REPLACE INTO {table}({col}, count, last) VALUES (?1, ?2, ?3)"),
        params![key, p.count, p.last],
    )?;
    Ok(())
}

fn grey(
    conn: &Connection,
    cfg: &Greylist,
    t: &Triplet,
    spf_domain: Option<&str>,
    now: i64,
) -> rusqlite::Result<GreyOutcome> {
    if greylist::allowlisted(cfg, passes(conn, "client", &t.net)?, now) {
        return Ok(GreyOutcome::ClientAllowlisted);
    }
    if let Some(d) = spf_domain
        && greylist::allowlisted(cfg, passes(conn, "domain", d)?, now)
    {
        return Ok(GreyOutcome::DomainAllowlisted);
    }
    let old = conn
        .query_row(
            "SELECT first, last, passed FROM triplet WHERE net = ?1 AND sender = ?2 AND rcpt = ?3",
            params![t.net, t.sender, t.rcpt],
            |r| {
                Ok(Record {
                    first: r.get(0)?,
                    last: r.get(1)?,
                    passed: r.get(2)?,
                })
            },
        )
        .optional()?;
    let (g, rec) = greylist::decide(cfg, old, now);
    conn.execute(
        "INSERT OR REPLACE INTO triplet(net, sender, rcpt, first, last, passed)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![t.net, t.sender, t.rcpt, rec.first, rec.last, rec.passed],
    )?;
    Ok(match g {
        Grey::Defer(s) => GreyOutcome::Defer(s),
        Grey::Pass => GreyOutcome::Passed { first_time: false },
        Grey::FirstPass => {
            count(conn, "client", &t.net, now)?;
            if let Some(d) = spf_domain {
                count(conn, "domain", d, now)?;
            }
            GreyOutcome::Passed { first_time: true }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Greylist {
        Greylist {
            enabled: true,
            ..Greylist::default()
        }
    }

    #[tokio::test]
    async fn greylisting_kept_across_a_restart_and_auto_allowlisting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("screen").join("screen.sqlite");
        let ip = "192.0.2.7".parse().unwrap();
        let t = |rcpt: &str| Triplet::new(ip, "bob@example.org", rcpt);
        let t0 = 2_000_000_000;
        {
            let db = Db::open(&path, cfg()).unwrap();
            assert_eq!(
                db.greylist(t("a@x.test"), None, t0).await,
                GreyOutcome::Defer(300)
            );
            assert_eq!(
                db.greylist(t("a@x.test"), None, t0 + 60).await,
                GreyOutcome::Defer(240)
            );
        }
        // A new process: the first attempt is remembered.
        let db = Db::open(&path, cfg()).unwrap();
        assert_eq!(
            db.greylist(t("a@x.test"), None, t0 + 301).await,
            GreyOutcome::Passed { first_time: true }
        );
        // Four more passes of other triplets, an hour apart: the network
        // is allowlisted for a triplet it never sent.
        for h in 1..=4 {
            let rcpt = format!("r{h}@x.test");
            let at = t0 + h * 3600;
            db.greylist(t(&rcpt), None, at).await;
            let out = db.greylist(t(&rcpt), None, at + 301).await;
            assert_eq!(out, GreyOutcome::Passed { first_time: true });
        }
        let neighbour = Triplet::new("192.0.2.200".parse().unwrap(), "new@else.test", "z@x.test");
        assert_eq!(
            db.greylist(neighbour, None, t0 + 5 * 3600).await,
            GreyOutcome::ClientAllowlisted
        );
        let stranger = Triplet::new("198.51.100.1".parse().unwrap(), "new@else.test", "z@x.test");
        assert_eq!(
            db.greylist(stranger, None, t0 + 5 * 3600).await,
            GreyOutcome::Defer(300)
        );
    }

    #[tokio::test]
    async fn an_spf_authorized_domain_with_history_skips_greylisting() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.sqlite"), cfg()).unwrap();
        let t0 = 2_000_000_000;
        for h in 0..5i64 {
            // A different client network each time: the domain's history.
            let ip = format!("198.51.{h}.1").parse().unwrap();
            let t = Triplet::new(ip, "news@good.example", "a@x.test");
            db.greylist(t.clone(), Some("good.example".into()), t0 + h * 3600)
                .await;
            db.greylist(t, Some("good.example".into()), t0 + h * 3600 + 400)
                .await;
        }
        let t = Triplet::new(
            "203.0.113.9".parse().unwrap(),
            "other@good.example",
            "b@x.test",
        );
        let at = t0 + 6 * 3600;
        assert_eq!(
            db.greylist(t.clone(), Some("good.example".into()), at)
                .await,
            GreyOutcome::DomainAllowlisted
        );
        // Without SPF's word for it, the domain proves nothing.
        assert_eq!(db.greylist(t, None, at).await, GreyOutcome::Defer(300));
    }

    #[tokio::test]
    async fn pregreet_passes_expire() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&dir.path().join("s.sqlite"), cfg()).unwrap();
        assert!(!db.pregreet_known("192.0.2.1".into(), 100).await);
        db.pregreet_pass("192.0.2.1".into(), 200);
        assert!(db.pregreet_known("192.0.2.1".into(), 150).await);
        assert!(!db.pregreet_known("192.0.2.1".into(), 250).await);
    }
}
