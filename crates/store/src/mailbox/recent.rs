//! `\Recent` (IMAP4rev1, RFC 3501 §2.3.2): a message is recent in the one
//! session that first sees it. The index keeps, per mailbox, the first UID
//! no session has claimed yet (table `recent`, made when the index is
//! opened; a mailbox without a row has claimed nothing: every message is
//! recent). A session that selects the mailbox read-write claims the UIDs
//! below UIDNEXT ([`Mailbox::claim_recent`]); EXAMINE and STATUS only read
//! ([`Mailbox::recent_from`]).
//!
//! The claim commits unsynced: a crash can only make messages recent again,
//! which costs a client nothing. Older versions of facteur ignore the
//! table.

use rusqlite::{OptionalExtension, params};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;

use super::{Mailbox, locked_row};
use crate::Result;

/// The first unclaimed UID of each mailbox as this process last saw it
/// (by directory and UIDVALIDITY). Claims only move forward, so a value
/// here at or above a view's UIDNEXT means nothing to claim, without a
/// query: a warm SELECT costs no index read for `\Recent`.
#[derive(Debug, Default)]
pub(crate) struct Known(Mutex<HashMap<(PathBuf, u32), u32>>);

/// Entries kept at most (one per mailbox seen; cleared when full).
const KNOWN_MAX: usize = 100_000;

impl Known {
    fn get(&self, key: &(PathBuf, u32)) -> Option<u32> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    pub(super) fn set(&self, key: (PathBuf, u32), next: u32) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= KNOWN_MAX {
            m.clear();
        }
        let v = m.entry(key).or_insert(next);
        *v = (*v).max(next);
    }
}

/// Made by `index::open` (kept with the schema it extends).
pub(crate) const SCHEMA: &str =
    "CREATE TABLE IF NOT EXISTS recent (mailbox INTEGER PRIMARY KEY, next_uid INTEGER NOT NULL);";

fn next_uid(conn: &rusqlite::Connection, id: i64) -> Result<u32> {
    Ok(conn
        .prepare_cached("SELECT next_uid FROM recent WHERE mailbox = ?1")?
        .query_row([id], |r| r.get::<_, u32>(0))
        .optional()?
        .unwrap_or(1))
}

/// Records that the UIDs of mailbox `id` below `next` are claimed.
pub(super) fn record_claim(conn: &rusqlite::Connection, id: i64, next: u32) -> Result<()> {
    conn.prepare_cached(
        "INSERT INTO recent (mailbox, next_uid) VALUES (?1, ?2) \
         ON CONFLICT (mailbox) DO UPDATE SET next_uid = ?2",
    )?
    .execute(params![id, next])?;
    Ok(())
}

impl Mailbox {
    /// Whether this process knows, without reading the index, that every
    /// message of this handle's view is claimed already (by this session or
    /// another): then [`Mailbox::claim_recent`] would claim nothing. A
    /// lookup in memory, for callers that avoid blocking when they can.
    pub fn recent_all_claimed(&self) -> bool {
        let key = (self.dir().to_path_buf(), self.uidvalidity);
        self.user
            .shared
            .recent
            .get(&key)
            .is_some_and(|n| n >= self.uidnext)
    }

    /// The first UID not yet claimed: messages from it on are recent.
    pub fn recent_from(&self) -> Result<u32> {
        // A first fill still committing holds the index; it says.
        if let Some(f) = self.filling.as_ref().filter(|f| f.done().is_none()) {
            return Ok(f.recent_from);
        }
        next_uid(&self.user.conn(), self.id)
    }

    /// Claims the recent messages for the calling session: the UIDs from
    /// the first unclaimed one up to UIDNEXT, `[from, to)`; `None` when
    /// there is none.
    pub fn claim_recent(&self) -> Result<Option<(u32, u32)>> {
        // Nothing new in this handle's view: no write transaction (a warm
        // SELECT stays a read). Messages that came after the view are
        // claimed by the sync that shows them.
        if self.recent_all_claimed() {
            return Ok(None);
        }
        let key = (self.dir().to_path_buf(), self.uidvalidity);
        let known = &self.user.shared.recent;
        let next = next_uid(&self.user.conn(), self.id)?;
        if next >= self.uidnext {
            known.set(key, next);
            return Ok(None);
        }
        let claimed = self.user.write_unsynced(|tx| {
            let row = locked_row(tx, self)?;
            let from = next_uid(tx, row.id)?;
            if from >= row.uidnext {
                return Ok(None);
            }
            record_claim(tx, row.id, row.uidnext)?;
            Ok(Some((from, row.uidnext)))
        })?;
        if let Some((_, to)) = claimed {
            known.set(key, to);
        }
        Ok(claimed)
    }
}
