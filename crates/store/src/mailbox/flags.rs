//! Changing flags: [`Mailbox::store_flags`] (STORE). System flags live in
//! the file name (a rename in `cur/`, not fsynced), keywords in the index
//! only; the commit is not fsynced either (docs/store-format.md).

use std::io;

use super::{Mailbox, is_not_found};
use crate::dirfd::Dir;
use crate::name::{cur_name, parse_file_name};
use crate::{FlagMask, FlagOp, Flags, Result, StoreFlagsResult, index, sync};

impl Mailbox {
    /// Changes flags (STORE). Messages expunged meanwhile are skipped;
    /// with `unchanged_since`, messages with a higher modseq fail (RFC 7162
    /// §3.1.3). Flags that do not change do not bump the modseq.
    pub fn store_flags(
        &mut self,
        uids: &[u32],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<u64>,
    ) -> Result<StoreFlagsResult> {
        self.store_flags_masked(uids, op, flags, unchanged_since, FlagMask::ALL)
    }

    /// [`Mailbox::store_flags`] touching only the flags in `mask` (the
    /// others keep their values, even under `FlagOp::Replace`).
    pub fn store_flags_masked(
        &mut self,
        uids: &[u32],
        op: FlagOp,
        flags: &Flags,
        unchanged_since: Option<u64>,
        mask: FlagMask,
    ) -> Result<StoreFlagsResult> {
        let mut changes: Vec<(u32, String, Flags, u64)> = Vec::new();
        // Not fsynced: flag changes are not worth a disk flush each (the
        // Maildir renames that carry them are not fsynced either).
        let mut keys = ((0, 0), (0, 0));
        let result = self.write_unsynced(|tx, row| {
            keys.0 = (row.uidnext, row.highest_modseq);
            let mut res = StoreFlagsResult::default();
            'each: for &uid in uids {
                // Twice at most: a file renamed behind our back makes us
                // rescan and decide again from the fresh row.
                for attempt in 0..2 {
                    let Some(m) = index::message(tx, row.id, uid)? else {
                        continue 'each;
                    };
                    if unchanged_since.is_some_and(|u| m.modseq > u) {
                        res.failed.push(uid);
                        continue 'each;
                    }
                    let new = m.flags.apply_masked(op, flags, mask);
                    if new == m.flags {
                        continue 'each;
                    }
                    let mut file_name = m.file_name;
                    if new.system != m.flags.system {
                        match rename_flags(&self.md.get()?.cur, &file_name, new.system) {
                            Ok(f) => file_name = f,
                            Err(e) if is_not_found(&e) && attempt == 0 => {
                                sync::scan_locked(tx, self.md.get()?, row, true)?;
                                continue;
                            }
                            Err(e) if is_not_found(&e) => continue 'each,
                            Err(e) => return Err(e.into()),
                        }
                    }
                    row.highest_modseq += 1;
                    index::update_message(tx, row.id, uid, &file_name, &new, row.highest_modseq)?;
                    res.updated.push(uid);
                    changes.push((uid, file_name, new, row.highest_modseq));
                    continue 'each;
                }
            }
            keys.1 = (row.uidnext, row.highest_modseq);
            Ok(res)
        })?;
        let n = changes.len();
        for (uid, file_name, new, modseq) in changes {
            if let Some(i) = self.position(uid) {
                let m = &mut self.view_mut()[i];
                m.file_name = file_name.into();
                m.flags = new;
                m.modseq = modseq;
            }
        }
        self.adopt(keys.0, keys.1, n);
        Ok(result)
    }
}

/// Renames a file in `cur/` for new system flags; returns the new name.
fn rename_flags(cur: &Dir, file_name: &str, system: u8) -> io::Result<String> {
    let p = parse_file_name(file_name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad file name in index: {file_name}"),
        )
    })?;
    let new_name = cur_name(p.base, system, p.other_flags);
    cur.rename(file_name, cur, &new_name)?;
    Ok(new_name)
}
