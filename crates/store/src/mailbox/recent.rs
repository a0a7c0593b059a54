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

use super::{Mailbox, locked_row};
use crate::Result;

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

impl Mailbox {
    /// The first UID not yet claimed: messages from it on are recent.
    pub fn recent_from(&self) -> Result<u32> {
        next_uid(&self.user.conn(), self.id)
    }

    /// Claims the recent messages for the calling session: the UIDs from
    /// the first unclaimed one up to UIDNEXT, `[from, to)`; `None` when
    /// there is none.
    pub fn claim_recent(&self) -> Result<Option<(u32, u32)>> {
        // Nothing new in this handle's view: no write transaction (a warm
        // SELECT stays a read). Messages that came after the view are
        // claimed by the sync that shows them.
        if next_uid(&self.user.conn(), self.id)? >= self.uidnext {
            return Ok(None);
        }
        self.user.write_unsynced(|tx| {
            let row = locked_row(tx, self)?;
            let from = next_uid(tx, row.id)?;
            if from >= row.uidnext {
                return Ok(None);
            }
            tx.prepare_cached(
                "INSERT INTO recent (mailbox, next_uid) VALUES (?1, ?2) \
                 ON CONFLICT (mailbox) DO UPDATE SET next_uid = ?2",
            )?
            .execute(params![row.id, row.uidnext])?;
            Ok(Some((from, row.uidnext)))
        })
    }
}
