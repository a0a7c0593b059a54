//! Adding messages: [`Mailbox::append`] (APPEND), [`Mailbox::copy_to`]
//! (COPY: hard links, or copies) and [`Mailbox::move_to`] (MOVE: one
//! rename each). Each file is put into `cur/` under the user's write lock,
//! `cur/` is fsynced, and the row is written in the same transaction, so
//! no scan sees the file unindexed; the quota is enforced (not for MOVE).

use std::fs;
use std::io::{self, Read};
use std::path::Path;

use super::{Mailbox, is_not_found, locked_row, record_quota};
use crate::dirfd::Dir;
use crate::fsops;
use crate::index::{self, MailboxRow, MsgRow};
use crate::maildir::{set_mtime, write_tmp};
use crate::name::{base_with_sizes, cur_name, parse_file_name};
use crate::{FlagMask, Flags, MessageMeta, Result, StoreError, quota, sync};

impl Mailbox {
    /// Appends a message (CRLF form). Fsynced before return; the UID is
    /// given now; the quota is enforced; the file's mtime is the internal
    /// date. If this handle's view was current, the message joins it at
    /// once (no reload of every row) and the next `sync` reports it as
    /// added; otherwise the view learns of it at the next `sync`.
    pub fn append(
        &mut self,
        content: &mut dyn Read,
        flags: &Flags,
        internal_date: Option<i64>,
    ) -> Result<u32> {
        let w = write_tmp(self.dir(), &self.user.shared.names, content)?;
        let mut keys = ((0, 0), (0, 0));
        let mut meta = None;
        let result = (|| {
            quota::check(&self.user.dir, self.user.quota(), w.disk_size, 1)?;
            if let Some(d) = internal_date {
                set_mtime(&w.tmp, d)?;
            }
            let date = internal_date.unwrap_or_else(|| {
                use std::os::unix::fs::MetadataExt;
                fs::symlink_metadata(&w.tmp).map(|m| m.mtime()).unwrap_or(0)
            });
            let name = cur_name(&w.base(), flags.system, "");
            let cur = &self.md.get()?.cur;
            self.write(|tx, row| {
                keys.0 = (row.uidnext, row.highest_modseq);
                // Renamed into cur/ under the lock, so no scan can see it
                // before its row exists.
                cur.rename_into(&w.tmp, &name)?;
                cur.fsync()?;
                let uid = next_uid(row)?;
                row.highest_modseq += 1;
                let m = MsgRow {
                    uid,
                    file_name: name,
                    flags: flags.clone(),
                    modseq: row.highest_modseq,
                    size: w.crlf_size,
                    disk_size: w.disk_size,
                    internal_date: date,
                };
                index::insert_message(tx, row.id, &m)?;
                index::record_saved(tx, row.id, uid, now_secs())?;
                keys.1 = (row.uidnext, row.highest_modseq);
                meta = Some(MessageMeta {
                    uid,
                    flags: m.flags,
                    modseq: m.modseq,
                    size: m.size,
                    internal_date: date,
                    file_name: m.file_name.into(),
                });
                Ok(uid)
            })
        })();
        match result {
            Ok(uid) => {
                record_quota(&self.user.dir, w.disk_size as i64, 1);
                // Nothing else happened under the lock since the view: the
                // view plus this message is the index's state.
                let (before, after) = keys;
                if before == (self.uidnext, self.highest_modseq)
                    && before.0 == uid
                    && after == (uid.saturating_add(1), before.1 + 1)
                    && let Some(m) = meta
                {
                    self.view_mut().push(m);
                    self.unannounced.push(uid);
                    (self.uidnext, self.highest_modseq) = after;
                    let key = self.view_key();
                    self.user.shared.views.put(self.dir(), key, &self.messages);
                }
                Ok(uid)
            }
            Err(e) => {
                w.discard();
                Err(e)
            }
        }
    }

    /// Copies messages into `dest` (hard links where possible, else copy +
    /// fsync). Returns (source UID, new UID) pairs; messages gone meanwhile
    /// are skipped.
    pub fn copy_to(&mut self, uids: &[u32], dest: &mut Mailbox) -> Result<Vec<(u32, u32)>> {
        self.transfer(uids, dest, false)
    }

    /// Copies messages into `dest` by appending each again (a new file,
    /// its internal date kept, only the flags in `mask`): for a `dest` of
    /// another user, whose directory a link must not share and whose quota
    /// counts the copy, or for flags limited by a shared mailbox's rights.
    /// Returns (source UID, new UID) pairs; messages gone meanwhile are
    /// skipped.
    pub fn copy_appending(
        &mut self,
        uids: &[u32],
        dest: &mut Mailbox,
        mask: FlagMask,
    ) -> Result<Vec<(u32, u32)>> {
        self.resolve_dates(Some(uids))?;
        let mut pairs = Vec::new();
        for &uid in uids {
            let Some(i) = self.position(uid) else {
                continue;
            };
            let m = &self.messages()[i];
            let flags = mask.filter(&m.flags);
            let date = (m.internal_date != crate::UNKNOWN_DATE).then_some(m.internal_date);
            let mut content = match self.open_message(uid) {
                Ok(r) => r,
                Err(StoreError::NoSuchMessage(_)) => continue,
                Err(StoreError::Io(e)) if is_not_found(&e) => continue,
                Err(e) => return Err(e),
            };
            pairs.push((uid, dest.append(&mut content, &flags, date)?));
        }
        Ok(pairs)
    }

    /// Whether `other` is a mailbox of the same user.
    pub fn same_user(&self, other: &Mailbox) -> bool {
        self.user.dir == other.user.dir
    }

    /// Moves messages into `dest` (one rename each); they leave this view.
    pub fn move_to(&mut self, uids: &[u32], dest: &mut Mailbox) -> Result<Vec<(u32, u32)>> {
        let pairs = self.transfer(uids, dest, true)?;
        let moved: std::collections::HashSet<u32> = pairs.iter().map(|p| p.0).collect();
        if !moved.is_empty() {
            self.view_mut().retain(|m| !moved.contains(&m.uid));
        }
        Ok(pairs)
    }

    fn transfer(
        &mut self,
        uids: &[u32],
        dest: &mut Mailbox,
        remove: bool,
    ) -> Result<Vec<(u32, u32)>> {
        if dest.user.dir != self.user.dir {
            return Err(StoreError::Index("copy between users".into()));
        }
        let (src_cur, dst_cur) = (&self.md.get()?.cur, &dest.md.get()?.cur);
        let names = &self.user.shared.names;
        let (pairs, bytes) = self.user.write(|tx| {
            let mut row = locked_row(tx, self)?;
            let mut drow = locked_row(tx, dest)?;
            let same = row.id == drow.id;
            let mut msgs = Vec::new();
            for &uid in uids {
                if let Some(m) = index::message(tx, row.id, uid)? {
                    msgs.push(m);
                }
            }
            if !remove {
                let bytes: u64 = msgs.iter().map(|m| m.disk_size).sum();
                quota::check(&self.user.dir, self.user.quota(), bytes, msgs.len() as u64)?;
            }
            let mut pairs = Vec::new();
            let mut bytes = 0u64;
            for mut m in msgs {
                // A move keeps the file's name, except within one mailbox
                // (a MOVE into the selected mailbox: the message gets a new
                // UID, as a copy and an expunge would give it, and a new
                // name so that the old row and the new never share one).
                let new_name = if remove && !same {
                    m.file_name.clone()
                } else {
                    let p = parse_file_name(&m.file_name);
                    let other = p.as_ref().map(|p| p.other_flags).unwrap_or("");
                    cur_name(
                        &base_with_sizes(&names.next(), m.disk_size, m.size),
                        m.flags.system,
                        other,
                    )
                };
                let mut tried = false;
                let done = loop {
                    let r = if remove {
                        src_cur.rename(&m.file_name, dst_cur, &new_name)
                    } else {
                        link_or_copy(src_cur, &m.file_name, dst_cur, &new_name, dest.dir())
                    };
                    match r {
                        Ok(()) => break true,
                        // Not a regular file (a link?): not copied.
                        Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                            tracing::warn!(dir = %src_cur.path().display(), file = %m.file_name, "not a regular file (a symbolic link?): not copied");
                            break false;
                        }
                        Err(e) if is_not_found(&e) && !tried => {
                            // Moved by another process: rescan, retry once.
                            tried = true;
                            sync::scan_locked(tx, self.md.get()?, &mut row, true)?;
                            match index::message(tx, row.id, m.uid)? {
                                Some(again) => m = again,
                                None => break false,
                            }
                        }
                        Err(e) if is_not_found(&e) => break false,
                        Err(e) => return Err(e.into()),
                    }
                };
                if !done {
                    continue;
                }
                let new_uid = if same {
                    next_uid(&mut row)?
                } else {
                    next_uid(&mut drow)?
                };
                let dm = if same { &mut row } else { &mut drow };
                dm.highest_modseq += 1;
                index::insert_message(
                    tx,
                    dm.id,
                    &MsgRow {
                        uid: new_uid,
                        file_name: new_name,
                        modseq: dm.highest_modseq,
                        ..m.clone()
                    },
                )?;
                index::record_saved(tx, dm.id, new_uid, now_secs())?;
                if remove {
                    row.highest_modseq += 1;
                    index::expunge_message(tx, row.id, m.uid, row.highest_modseq)?;
                }
                bytes += m.disk_size;
                pairs.push((m.uid, new_uid));
            }
            dst_cur.fsync()?;
            if remove {
                src_cur.fsync()?;
            }
            if same {
                index::update_row(tx, &row)?;
            } else {
                index::update_row(tx, &row)?;
                index::update_row(tx, &drow)?;
            }
            Ok((pairs, bytes))
        })?;
        if !remove {
            record_quota(&self.user.dir, bytes as i64, pairs.len() as i64);
        }
        Ok(pairs)
    }
}

fn next_uid(row: &mut MailboxRow) -> Result<u32> {
    let uid = row.uidnext;
    row.uidnext = uid
        .checked_add(1)
        .ok_or_else(|| StoreError::Index("UIDs exhausted in this mailbox".into()))?;
    Ok(uid)
}

/// Hard link of `from` in `from_dir` as `to` in `to_dir`, or (across
/// devices, or where links are refused) a copy that keeps the mtime,
/// written in `tmp/` of `folder`, fsynced, then renamed. Only a regular
/// file is copied (`InvalidData` otherwise); links are never followed.
fn link_or_copy(
    from_dir: &Dir,
    from: &str,
    to_dir: &Dir,
    to: &str,
    folder: &Path,
) -> io::Result<()> {
    use nix::sys::stat::SFlag;
    let st = from_dir.stat_at(from)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a regular file",
        ));
    }
    match from_dir.link(from, to_dir, to) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) || e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            let tmp = folder.join("tmp").join(to.split(':').next().unwrap_or(to));
            let result = (|| {
                let mut src = from_dir.open_file(from)?;
                let mut f = fsops::create_new(&tmp, 0o600)?;
                io::copy(&mut src, &mut f)?;
                let secs = u64::try_from(st.st_mtime).unwrap_or(0);
                let nanos = u32::try_from(st.st_mtime_nsec).unwrap_or(0);
                f.set_modified(std::time::UNIX_EPOCH + std::time::Duration::new(secs, nanos))?;
                fsops::sync_file(&f, &tmp)?;
                to_dir.rename_into(&tmp, to)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result
        }
    }
}

/// Now, in seconds since the epoch (a save date).
fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
