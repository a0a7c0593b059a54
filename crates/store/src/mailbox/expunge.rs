//! [`Mailbox::expunge`]: removing the messages flagged \Deleted. The
//! unlinks are made durable by fsyncing `cur/`; the index commit is not
//! fsynced (a power failure that undoes it makes the next scan record the
//! expunges again).

use super::{Mailbox, is_not_found, record_quota};
use crate::{DELETED, Result, index, sync};

impl Mailbox {
    /// Removes the messages flagged \Deleted (only those in `uids` if
    /// given). Returns their UIDs, ascending; they leave this view.
    pub fn expunge(&mut self, uids: Option<&[u32]>) -> Result<Vec<u32>> {
        let cur = &self.md.get()?.cur;
        let mut keys = ((0, 0), (0, 0));
        // The removals are made durable by fsyncing cur/ below; the index
        // commit is not fsynced: if a power failure undoes it, the next
        // scan finds the files gone and records the expunges again.
        // A current view has the index's flags: its \Deleted messages are
        // the candidates, without reading every row.
        // (Only for a plain EXPUNGE: UID EXPUNGE names its candidates.)
        let view_deleted: Option<Vec<u32>> = uids.is_none().then(|| {
            self.messages
                .iter()
                .filter(|m| m.flags.system & DELETED != 0)
                .map(|m| m.uid)
                .collect()
        });
        let view_key = (self.uidnext, self.highest_modseq);
        let (gone, bytes) = self.write_unsynced(|tx, row| {
            keys.0 = (row.uidnext, row.highest_modseq);
            let candidates: Vec<u32> = match (uids, view_deleted) {
                (Some(u), _) => u.to_vec(),
                (None, Some(v)) if keys.0 == view_key => v,
                (None, _) => {
                    let mut st = tx.prepare_cached(
                        "SELECT uid FROM messages WHERE mailbox = ?1 AND (flags & ?2) != 0 ORDER BY uid",
                    )?;
                    st.query_map(rusqlite::params![row.id, DELETED], |r| r.get(0))?
                        .collect::<rusqlite::Result<Vec<u32>>>()?
                }
            };
            let mut gone = Vec::new();
            let mut bytes = 0u64;
            for uid in candidates {
                let Some(mut m) = index::message(tx, row.id, uid)? else { continue };
                if m.flags.system & DELETED == 0 {
                    continue;
                }
                if let Err(e) = cur.unlink(&m.file_name) {
                    if !is_not_found(&e) {
                        return Err(e.into());
                    }
                    sync::scan_locked(tx, self.md.get()?, row, true)?;
                    match index::message(tx, row.id, uid)? {
                        Some(again) if again.flags.system & DELETED != 0 => m = again,
                        _ => continue,
                    }
                    match cur.unlink(&m.file_name) {
                        Ok(()) => {}
                        Err(e) if is_not_found(&e) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                row.highest_modseq += 1;
                index::expunge_message(tx, row.id, uid, row.highest_modseq)?;
                bytes += m.disk_size;
                gone.push(uid);
            }
            if !gone.is_empty() {
                cur.fsync()?;
            }
            keys.1 = (row.uidnext, row.highest_modseq);
            Ok((gone, bytes))
        })?;
        record_quota(&self.user.dir, -(bytes as i64), -(gone.len() as i64));
        let mut gone = gone;
        gone.sort_unstable();
        if gone.is_empty() {
            return Ok(gone);
        }
        let before = self.messages.len();
        self.view_mut()
            .retain(|m| gone.binary_search(&m.uid).is_err());
        // Every expunged UID was in the view when the view was current.
        if before - self.messages.len() == gone.len() {
            self.adopt(keys.0, keys.1, gone.len());
        }
        Ok(gone)
    }
}
