//! A selected mailbox: its view of the messages and the operations on them.
//!
//! Offers [`Mailbox`]: a snapshot of the mailbox (sorted by UID; sequence
//! number = index + 1) that changes only in [`Mailbox::sync`] and in the
//! operations whose results the IMAP session reports itself (STORE updates
//! flags in place; EXPUNGE and MOVE remove the messages). Additions (APPEND,
//! COPY, MOVE into this mailbox, deliveries, other sessions) show up in the
//! next `sync`, which says what changed since the previous view.
//!
//! Guarantees: every write runs inside the user's `BEGIN IMMEDIATE`
//! transaction and re-reads the rows it acts on there, so a stale view never
//! acts on another message. A file rename or unlink that fails with ENOENT
//! (another process or tool moved the file) triggers a forced scan under the
//! same lock and one retry. APPEND and COPY are fsynced before they return
//! and enforce the quota. Needs sync.rs, index.rs, quota.rs.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::crlf::CrlfReader;
use crate::folders::UserInner;
use crate::index::{self, MailboxRow, MsgRow};
use crate::layout::{folder_path, is_maildir, normalize};
use crate::maildir::{set_mtime, write_tmp};
use crate::name::{base_with_sizes, cur_name, parse_file_name};
use crate::views::ViewKey;
use crate::{
    DELETED, FlagOp, Flags, MessageMeta, Result, StoreError, StoreFlagsResult, SyncChanges, quota,
    sync,
};

/// A selected mailbox.
pub struct Mailbox {
    user: Arc<UserInner>,
    name: String,
    dir: PathBuf,
    id: i64,
    uidvalidity: u32,
    uidnext: u32,
    highest_modseq: u64,
    /// Shared with the process's view cache until this handle changes it.
    messages: Arc<Vec<MessageMeta>>,
    /// UIDs this handle's own APPEND put in its view (at the end: each was
    /// UIDNEXT), for the next `sync` to report as added.
    unannounced: Vec<u32>,
}

impl std::fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailbox")
            .field("name", &self.name)
            .field("uidvalidity", &self.uidvalidity)
            .field("uidnext", &self.uidnext)
            .field("messages", &self.messages.len())
            .finish()
    }
}

fn is_not_found(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
}

/// The row of the mailbox `mb` has open, read inside the write lock; gone
/// if the mailbox was deleted and recreated or its index rebuilt (a new
/// row id, or the old one again with a new UIDVALIDITY).
fn locked_row(conn: &Connection, mb: &Mailbox) -> Result<MailboxRow> {
    index::mailbox_row(conn, &mb.name)?
        .filter(|r| mb.is_row(r))
        .ok_or_else(|| StoreError::NoSuchMailbox(mb.name.clone()))
}

impl Mailbox {
    pub(crate) fn open(user: Arc<UserInner>, name: &str) -> Result<Mailbox> {
        let name = normalize(name)?;
        let dir = folder_path(&user.dir, &name);
        if !is_maildir(&dir) {
            return Err(StoreError::NoSuchMailbox(name));
        }
        if name == "INBOX" {
            crate::maildir::ensure_maildir(&dir, &user.shared.cfg.root)?;
        }
        let mut mb = Mailbox {
            user,
            name,
            dir,
            id: -1,
            uidvalidity: 0,
            uidnext: 1,
            highest_modseq: 0,
            messages: Arc::new(Vec::new()),
            unannounced: Vec::new(),
        };
        mb.refresh(true)?;
        Ok(mb)
    }

    /// Scans if needed, then reloads the view if anything changed. Returns
    /// whether the view was reloaded.
    fn refresh(&mut self, first: bool) -> Result<bool> {
        if !is_maildir(&self.dir) {
            return Err(StoreError::NoSuchMailbox(self.name.clone()));
        }
        let mut conn = self.user.conn();
        let row = index::mailbox_row(&conn, &self.name)?;
        let scan = match &row {
            None => true,
            Some(r) => (!first && !self.is_row(r)) || sync::needs_scan(&self.dir, r)?,
        };
        if scan {
            drop(conn);
            // Most scans find nothing new (the directory moved because of
            // our own changes, already in the index): their commit only
            // records the directories' mtimes, a hint, so it is not
            // fsynced. A scan that changed anything a client can see (UIDs
            // given, expunges, flags: HIGHESTMODSEQ moved) or created the
            // row is followed by a fsynced commit before anyone hears of it.
            let mut durable = false;
            self.user.write_unsynced(|tx| {
                let mut row = match index::mailbox_row(tx, &self.name)? {
                    Some(r) if first || self.is_row(&r) => r,
                    None if first => {
                        durable = true;
                        index::create_row(tx, &self.user.dir, &self.name, None)?
                    }
                    _ => return Err(StoreError::NoSuchMailbox(self.name.clone())),
                };
                let before = (row.uidnext, row.highest_modseq);
                sync::scan_locked(tx, &self.dir, &mut row, false)?;
                durable |= before != (row.uidnext, row.highest_modseq);
                Ok(())
            })?;
            if durable {
                self.user.write(|tx| {
                    // Rewrites the row (a WAL frame) with fsync: the WAL, up
                    // to and with the scan's commit, is on disk.
                    let row = index::mailbox_row(tx, &self.name)?
                        .ok_or_else(|| StoreError::NoSuchMailbox(self.name.clone()))?;
                    index::update_row(tx, &row)
                })?;
            }
            conn = self.user.conn();
        } else if let Some(r) = &row
            && !first
            && r.highest_modseq == self.highest_modseq
            && r.uidnext == self.uidnext
        {
            return Ok(false);
        }
        // One read transaction: the row and the messages agree.
        let tx = conn.transaction_with_behavior(TransactionBehavior::Deferred)?;
        let row = index::mailbox_row(&tx, &self.name)?
            .ok_or_else(|| StoreError::NoSuchMailbox(self.name.clone()))?;
        if !first && !self.is_row(&row) {
            return Err(StoreError::NoSuchMailbox(self.name.clone()));
        }
        let key = (row.id, row.uidvalidity, row.uidnext, row.highest_modseq);
        if let Some(messages) = self.user.shared.views.get(&self.dir, key) {
            if !first && key == self.view_key() {
                return Ok(false);
            }
            self.messages = messages;
            self.id = row.id;
            self.uidvalidity = row.uidvalidity;
            self.uidnext = row.uidnext;
            self.highest_modseq = row.highest_modseq;
            return Ok(true);
        }
        // A view of this mailbox from before (this handle's, else the
        // cache's) is brought up to date with the rows changed and the
        // tombstones left since its HIGHESTMODSEQ: every change stamps its
        // row or tombstone with a new HIGHESTMODSEQ. Sessions of one
        // mailbox changing it in turn then never read every row.
        let base = if !first && self.is_row(&row) {
            Some((
                Arc::clone(&self.messages),
                self.uidnext,
                self.highest_modseq,
            ))
        } else {
            self.user
                .shared
                .views
                .latest(&self.dir, (row.id, row.uidvalidity))
        };
        let mut messages = match base {
            Some((old, uidnext, modseq))
                if uidnext <= row.uidnext && modseq <= row.highest_modseq =>
            {
                let changed = index::changed_since(&tx, row.id, modseq)?;
                let gone = index::vanished_since(&tx, row.id, modseq)?;
                apply_changes(&old, changed, &gone)
            }
            _ => {
                // UIDNEXT - 1 bounds the count.
                let hint = (row.uidnext as usize).saturating_sub(1).min(128 * 1024);
                index::load_messages(&tx, row.id, hint)?
            }
        };
        if messages.capacity() > 2 * messages.len() + 4096 {
            messages.shrink_to_fit();
        }
        tx.commit()?;
        self.messages = Arc::new(messages);
        self.user.shared.views.put(&self.dir, key, &self.messages);
        self.id = row.id;
        self.uidvalidity = row.uidvalidity;
        self.uidnext = row.uidnext;
        self.highest_modseq = row.highest_modseq;
        Ok(true)
    }

    /// Runs `f` with this mailbox's row inside the write lock, then saves
    /// the row (UIDNEXT, HIGHESTMODSEQ) and commits.
    fn write<T>(&self, f: impl FnOnce(&Connection, &mut MailboxRow) -> Result<T>) -> Result<T> {
        self.user.write(|tx| {
            let mut row = locked_row(tx, self)?;
            let (rec, pre) = (row.cur_mtime_ns, sync::cur_mtime(&self.dir).ok());
            let t = f(tx, &mut row)?;
            sync::after_own_change(&self.dir, &mut row, rec, pre);
            index::update_row(tx, &row)?;
            Ok(t)
        })
    }

    /// [`Mailbox::write`], not fsynced (see `UserInner::write_unsynced`),
    /// unless `f` gave out UIDs (a scan found new files): then a durable
    /// commit follows before this returns, so no UID anyone may see can be
    /// lost.
    fn write_unsynced<T>(
        &self,
        f: impl FnOnce(&Connection, &mut MailboxRow) -> Result<T>,
    ) -> Result<T> {
        let mut gave_uids = false;
        let t = self.user.write_unsynced(|tx| {
            let mut row = locked_row(tx, self)?;
            let uidnext = row.uidnext;
            let (rec, pre) = (row.cur_mtime_ns, sync::cur_mtime(&self.dir).ok());
            let t = f(tx, &mut row)?;
            gave_uids = row.uidnext != uidnext;
            sync::after_own_change(&self.dir, &mut row, rec, pre);
            index::update_row(tx, &row)?;
            Ok(t)
        })?;
        if gave_uids {
            // Rewrites the row (a WAL frame), committed with fsync: the
            // WAL, up to and with the commit above, is on disk.
            self.write(|_, _| Ok(()))?;
        }
        Ok(t)
    }

    /// When the store wants to verify, by one scan, changes it trusted
    /// without a scan (see sync.rs, invariant 5): an IDLE session syncs
    /// then, so a change by another tool made in the same clock tick as
    /// one of ours is pushed too. None: nothing to verify.
    pub fn verification_in(&self) -> Option<Duration> {
        sync::verification_in(&self.dir)
    }

    /// The mailbox's Maildir directory (watched by IDLE for changes made
    /// by other processes).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The mailbox name ("INBOX", "Lists/rust").
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn uidvalidity(&self) -> u32 {
        self.uidvalidity
    }
    pub fn uidnext(&self) -> u32 {
        self.uidnext
    }
    pub fn highest_modseq(&self) -> u64 {
        self.highest_modseq
    }

    /// The messages, sorted by UID; sequence number = index + 1. After
    /// this handle's own [`Mailbox::append`], the view ends with the new
    /// message before a `sync` has reported it.
    pub fn messages(&self) -> &[MessageMeta] {
        &self.messages
    }

    /// This handle's view, to change. If the view cache holds this very
    /// view, it is taken out first, so that the change is made in place
    /// instead of on a copy of every message (the caller puts the view
    /// back under its new key, see `adopt`); a view another handle shares
    /// is copied.
    fn view_mut(&mut self) -> &mut Vec<MessageMeta> {
        self.user.shared.views.release(&self.dir, &self.messages);
        Arc::make_mut(&mut self.messages)
    }

    /// Whether `row` is the mailbox this handle has open.
    fn is_row(&self, row: &MailboxRow) -> bool {
        (row.id, row.uidvalidity) == (self.id, self.uidvalidity)
    }

    /// The view cache's key of this handle's view.
    fn view_key(&self) -> ViewKey {
        (self.id, self.uidvalidity, self.uidnext, self.highest_modseq)
    }

    fn position(&self, uid: u32) -> Option<usize> {
        self.messages.binary_search_by_key(&uid, |m| m.uid).ok()
    }

    /// Brings the view up to date; says what changed since the previous one.
    /// Errors with [`StoreError::NoSuchMailbox`] if the mailbox was deleted
    /// or recreated (new UIDVALIDITY): the session must end.
    pub fn sync(&mut self) -> Result<SyncChanges> {
        let old = Arc::clone(&self.messages);
        let mut changes = match self.refresh(false)? {
            true => diff(&old, &self.messages),
            false => SyncChanges::default(),
        };
        drop(old);
        // Our own APPENDs, already in the old view. One expunged since was
        // never announced, so its expunge is not either.
        for uid in std::mem::take(&mut self.unannounced) {
            if let Some(i) = changes.expunged.iter().position(|&u| u == uid) {
                changes.expunged.remove(i);
            } else if self.position(uid).is_some() {
                changes.added.push(uid);
            }
        }
        changes.added.sort_unstable();
        changes.added.dedup();
        Ok(changes)
    }

    /// Messages of the view with a modseq above `modseq` (CHANGEDSINCE).
    pub fn changed_since(&self, modseq: u64) -> Vec<&MessageMeta> {
        self.messages.iter().filter(|m| m.modseq > modseq).collect()
    }

    /// UIDs expunged with a modseq above `modseq` (QRESYNC VANISHED).
    pub fn vanished_since(&self, modseq: u64) -> Result<Vec<u32>> {
        index::vanished_since(&self.user.conn(), self.id, modseq)
    }

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
                    let new = m.flags.apply(op, flags);
                    if new == m.flags {
                        continue 'each;
                    }
                    let mut file_name = m.file_name;
                    if new.system != m.flags.system {
                        match rename_flags(&self.dir, &file_name, new.system) {
                            Ok(f) => file_name = f,
                            Err(e) if is_not_found(&e) && attempt == 0 => {
                                sync::scan_locked(tx, &self.dir, row, true)?;
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

    /// After a change made under the lock from exactly this view's state
    /// (`before`, the locked row's (UIDNEXT, HIGHESTMODSEQ), equal to the
    /// view's), that gave out no UID and `n` modseqs (one per change the
    /// caller has applied to the view): the view is the index's state at
    /// `after`, so it takes that key and is shared (no reload of every
    /// row at the next sync). Anything else — another change in between, a
    /// scan inside — leaves the view to be reloaded.
    fn adopt(&mut self, before: (u32, u64), after: (u32, u64), n: usize) {
        if n > 0
            && before == (self.uidnext, self.highest_modseq)
            && after == (before.0, before.1 + n as u64)
        {
            self.highest_modseq = after.1;
            self.user
                .shared
                .views
                .put(&self.dir, self.view_key(), &self.messages);
        }
    }

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
        let w = write_tmp(&self.dir, &self.user.shared.names, content)?;
        let mut keys = ((0, 0), (0, 0));
        let mut meta = None;
        let result = (|| {
            quota::check(&self.user.dir, self.user.quota, w.disk_size, 1)?;
            if let Some(d) = internal_date {
                set_mtime(&w.tmp, d)?;
            }
            let date = internal_date.unwrap_or_else(|| {
                use std::os::unix::fs::MetadataExt;
                fs::metadata(&w.tmp).map(|m| m.mtime()).unwrap_or(0)
            });
            let name = cur_name(&w.base(), flags.system, "");
            let cur = self.dir.join("cur");
            self.write(|tx, row| {
                keys.0 = (row.uidnext, row.highest_modseq);
                // Renamed into cur/ under the lock, so no scan can see it
                // before its row exists.
                fs::rename(&w.tmp, cur.join(&name))?;
                facteur_util::fsync_dir(&cur)?;
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
                    self.user.shared.views.put(&self.dir, key, &self.messages);
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
        let src_cur = self.dir.join("cur");
        let dst_cur = dest.dir.join("cur");
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
                quota::check(&self.user.dir, self.user.quota, bytes, msgs.len() as u64)?;
            }
            let mut pairs = Vec::new();
            let mut bytes = 0u64;
            for mut m in msgs {
                let new_name = if remove {
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
                    let from = src_cur.join(&m.file_name);
                    let to = dst_cur.join(&new_name);
                    let r = if remove {
                        fs::rename(&from, &to)
                    } else {
                        link_or_copy(&from, &to, &dest.dir)
                    };
                    match r {
                        Ok(()) => break true,
                        Err(e) if is_not_found(&e) && !tried => {
                            // Moved by another process: rescan, retry once.
                            tried = true;
                            sync::scan_locked(tx, &self.dir, &mut row, true)?;
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
                if remove {
                    row.highest_modseq += 1;
                    index::expunge_message(tx, row.id, m.uid, row.highest_modseq)?;
                }
                bytes += m.disk_size;
                pairs.push((m.uid, new_uid));
            }
            facteur_util::fsync_dir(&dst_cur)?;
            if remove {
                facteur_util::fsync_dir(&src_cur)?;
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

    /// Removes the messages flagged \Deleted (only those in `uids` if
    /// given). Returns their UIDs, ascending; they leave this view.
    pub fn expunge(&mut self, uids: Option<&[u32]>) -> Result<Vec<u32>> {
        let cur = self.dir.join("cur");
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
                if let Err(e) = fs::remove_file(cur.join(&m.file_name)) {
                    if !is_not_found(&e) {
                        return Err(e.into());
                    }
                    sync::scan_locked(tx, &self.dir, row, true)?;
                    match index::message(tx, row.id, uid)? {
                        Some(again) if again.flags.system & DELETED != 0 => m = again,
                        _ => continue,
                    }
                    match fs::remove_file(cur.join(&m.file_name)) {
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
                facteur_util::fsync_dir(&cur)?;
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

    /// Reads the internal dates (file mtimes) still unknown among `uids`
    /// (every message of the view with `None`; see
    /// [`MessageMeta::internal_date`]) and records them in the index (not
    /// fsynced: they can be read again) and in this view. A message gone
    /// meanwhile keeps [`crate::UNKNOWN_DATE`].
    pub fn resolve_dates(&mut self, uids: Option<&[u32]>) -> Result<()> {
        let unknown = |m: &MessageMeta| m.internal_date == crate::UNKNOWN_DATE;
        let todo: Vec<usize> = match uids {
            Some(u) => u
                .iter()
                .filter_map(|&uid| self.position(uid))
                .filter(|&i| unknown(&self.messages[i]))
                .collect(),
            None => (0..self.messages.len())
                .filter(|&i| unknown(&self.messages[i]))
                .collect(),
        };
        if todo.is_empty() {
            return Ok(());
        }
        let cur = File::open(self.dir.join("cur"))?;
        let mut found: Vec<(usize, i64)> = Vec::with_capacity(todo.len());
        for i in todo {
            let m = &self.messages[i];
            let mtime = match sync::stat_at(&cur, &m.file_name) {
                Ok(t) => t.mtime,
                // Renamed by someone else: find it again.
                Err(e) if is_not_found(&e) => match self.open_file(m.uid) {
                    Ok(f) => {
                        use std::os::unix::fs::MetadataExt;
                        f.metadata()?.mtime()
                    }
                    Err(StoreError::NoSuchMessage(_)) => continue,
                    Err(e) => return Err(e),
                },
                Err(e) => return Err(e.into()),
            };
            found.push((i, mtime));
        }
        if found.is_empty() {
            return Ok(());
        }
        let rows: Vec<(u32, i64)> = found
            .iter()
            .map(|&(i, t)| (self.messages[i].uid, t))
            .collect();
        let id = self.id;
        self.user.write_unsynced(|tx| {
            let mut st = tx.prepare_cached(
                "UPDATE messages SET internal_date = ?3
                 WHERE mailbox = ?1 AND uid = ?2 AND internal_date = ?4",
            )?;
            for (uid, t) in &rows {
                st.execute(rusqlite::params![id, uid, t, crate::UNKNOWN_DATE])?;
            }
            Ok(())
        })?;
        // The cached view, if it is this one, is updated with it; another
        // cached view of this mailbox gets the dates too.
        let ours = self.user.shared.views.release(&self.dir, &self.messages);
        let msgs = Arc::make_mut(&mut self.messages);
        for (i, t) in found {
            msgs[i].internal_date = t;
        }
        if ours {
            let key = self.view_key();
            self.user.shared.views.put(&self.dir, key, &self.messages);
        } else {
            self.user.shared.views.fill_dates(&self.dir, &rows);
        }
        Ok(())
    }

    /// The file of message `uid`, following a rename by another process.
    fn open_file(&self, uid: u32) -> Result<File> {
        let cur = self.dir.join("cur");
        let i = self.position(uid).ok_or(StoreError::NoSuchMessage(uid))?;
        match File::open(cur.join(&*self.messages[i].file_name)) {
            Ok(f) => return Ok(f),
            Err(e) if !is_not_found(&e) => return Err(e.into()),
            Err(_) => {}
        }
        // Renamed meanwhile: ask the index, then scan and ask again.
        for force in [false, true] {
            let name = if force {
                self.write(|tx, row| {
                    sync::scan_locked(tx, &self.dir, row, true)?;
                    index::message(tx, row.id, uid)
                })?
            } else {
                index::message(&self.user.conn(), self.id, uid)?
            };
            let Some(m) = name else {
                return Err(StoreError::NoSuchMessage(uid));
            };
            match File::open(cur.join(&m.file_name)) {
                Ok(f) => return Ok(f),
                Err(e) if !is_not_found(&e) => return Err(e.into()),
                Err(_) => {}
            }
        }
        Err(StoreError::NoSuchMessage(uid))
    }

    /// The whole message in CRLF form.
    pub fn read_message(&self, uid: u32) -> Result<Vec<u8>> {
        // The index's CRLF size bounds the file's: one read, no regrowth.
        let size = self.position(uid).map_or(0, |i| self.messages[i].size);
        let mut raw = Vec::with_capacity((size as usize).min(64 << 20) + 1);
        self.open_file(uid)?.read_to_end(&mut raw)?;
        Ok(crate::crlf::to_crlf_exact(&raw))
    }

    /// The message's header block in CRLF form, up to and with the empty
    /// line that ends it (see [`crate::crlf::read_header`]): what FETCH of
    /// ENVELOPE or header fields needs, without reading a big message.
    pub fn read_header(&self, uid: u32) -> Result<Vec<u8>> {
        Ok(crate::crlf::read_header(&mut self.open_file(uid)?, 8192)?)
    }

    /// The exact size of the message in CRLF form, counted from its file
    /// (one pass in 64 KiB reads): what a streamed literal announces.
    pub fn crlf_size(&self, uid: u32) -> Result<u64> {
        let mut f = self.open_file(uid)?;
        let mut buf = vec![0u8; 64 * 1024];
        let mut size = 0u64;
        loop {
            let n = match f.read(&mut buf) {
                Ok(0) => return Ok(size),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            };
            size += crate::crlf::crlf_len(&buf[..n]);
        }
    }

    /// The message in CRLF form, streamed.
    pub fn open_message(&self, uid: u32) -> Result<Box<dyn Read + Send>> {
        Ok(Box::new(CrlfReader::new(self.open_file(uid)?)))
    }
}

fn next_uid(row: &mut MailboxRow) -> Result<u32> {
    let uid = row.uidnext;
    row.uidnext = uid
        .checked_add(1)
        .ok_or_else(|| StoreError::Index("UIDs exhausted in this mailbox".into()))?;
    Ok(uid)
}

/// Renames a file in `cur/` for new system flags; returns the new name.
fn rename_flags(dir: &Path, file_name: &str, system: u8) -> io::Result<String> {
    let cur = dir.join("cur");
    let p = parse_file_name(file_name).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("bad file name in index: {file_name}"),
        )
    })?;
    let new_name = cur_name(p.base, system, p.other_flags);
    fs::rename(cur.join(file_name), cur.join(&new_name))?;
    Ok(new_name)
}

/// Hard link, or (across devices, or where links are refused) a copy that
/// keeps the mtime, written in `tmp/` of `folder`, fsynced, then renamed.
fn link_or_copy(from: &Path, to: &Path, folder: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if is_not_found(&e) || e.kind() == io::ErrorKind::AlreadyExists => Err(e),
        Err(_) => {
            let base = to.file_name().and_then(|n| n.to_str()).unwrap_or("copy");
            let tmp = folder
                .join("tmp")
                .join(base.split(':').next().unwrap_or(base));
            let result = (|| {
                fs::copy(from, &tmp)?;
                let f = File::options().write(true).open(&tmp)?;
                f.set_modified(fs::metadata(from)?.modified()?)?;
                f.sync_all()?;
                fs::rename(&tmp, to)
            })();
            if result.is_err() {
                let _ = fs::remove_file(&tmp);
            }
            result
        }
    }
}

fn record_quota(user_dir: &Path, bytes: i64, count: i64) {
    if let Err(e) = quota::record(user_dir, bytes, count) {
        tracing::warn!(dir = %user_dir.display(), error = %e, "cannot update maildirsize");
    }
}

/// What changed from view `old` to view `new` (both sorted by UID).
/// `old` with the rows `changed` since (sorted by UID: new ones, new
/// flags) and without the UIDs `gone` (sorted).
fn apply_changes(old: &[MessageMeta], changed: Vec<MessageMeta>, gone: &[u32]) -> Vec<MessageMeta> {
    let mut out = Vec::with_capacity(old.len() + changed.len());
    let mut changed = changed.into_iter().peekable();
    for m in old {
        while let Some(c) = changed.next_if(|c| c.uid < m.uid) {
            out.push(c);
        }
        if let Some(mut c) = changed.next_if(|c| c.uid == m.uid) {
            // An internal date read since is kept (dates never change).
            if c.internal_date == crate::UNKNOWN_DATE {
                c.internal_date = m.internal_date;
            }
            out.push(c);
        } else if gone.binary_search(&m.uid).is_err() {
            out.push(m.clone());
        }
    }
    out.extend(changed);
    out
}

fn diff(old: &[MessageMeta], new: &[MessageMeta]) -> SyncChanges {
    let mut c = SyncChanges::default();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        match (old.get(i), new.get(j)) {
            (Some(a), Some(b)) if a.uid == b.uid => {
                if a.flags != b.flags || a.modseq != b.modseq {
                    c.flags_changed.push(a.uid);
                }
                i += 1;
                j += 1;
            }
            (Some(a), Some(b)) if a.uid < b.uid => {
                c.expunged.push(a.uid);
                i += 1;
            }
            (Some(a), None) => {
                c.expunged.push(a.uid);
                i += 1;
            }
            (_, Some(b)) => {
                c.added.push(b.uid);
                j += 1;
            }
            (None, None) => break,
        }
    }
    c
}

#[cfg(test)]
#[path = "mailbox_tests.rs"]
mod tests;
