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
//!
//! Layout: this file holds the handle, opening and syncing the view; each
//! kind of operation has its own file: `mailbox/read.rs` (messages,
//! internal dates), `mailbox/flags.rs` (STORE), `mailbox/transfer.rs`
//! (APPEND, COPY, MOVE), `mailbox/expunge.rs` (EXPUNGE),
//! `mailbox/recent.rs` (`\Recent`), `mailbox/fill.rs` (the first scan of
//! a folder without an index row, answered before its commit).

mod expunge;
mod fill;
mod flags;
mod read;
pub(crate) mod recent;
mod transfer;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rusqlite::{Connection, TransactionBehavior};

use crate::dirfd::{FileId, OpenMaildir, is_link_refused};
use crate::folders::UserInner;
use crate::index::{self, MailboxRow};
use crate::layout::{folder_path, maildir_id, normalize};
use crate::views::ViewKey;
use crate::{MessageMeta, Result, StoreError, SyncChanges, quota, sync};

/// How soon an IDLE session whose view comes from a first fill still
/// committing syncs again (a delivery meanwhile is seen then).
const FILL_RECHECK: Duration = Duration::from_millis(50);

/// The state of a mailbox one handle's sync found ([`Mailbox::synced`]),
/// which other handles in the process can take ([`Mailbox::sync_like`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Synced(ViewKey);

/// A selected mailbox.
pub struct Mailbox {
    user: Arc<UserInner>,
    name: String,
    /// The Maildir directory (its path: `md.path()`) and its `cur/`, open
    /// (no symbolic link followed) except while parked ([`Mailbox::park`]).
    md: LazyMaildir,
    id: i64,
    uidvalidity: u32,
    uidnext: u32,
    highest_modseq: u64,
    /// Shared with the process's view cache until this handle changes it.
    messages: Arc<Vec<MessageMeta>>,
    /// UIDs this handle's own APPEND put in its view (at the end: each was
    /// UIDNEXT), for the next `sync` to report as added.
    unannounced: Vec<u32>,
    /// The first fill of this mailbox's rows, which this handle's view
    /// comes from, until seen committed (mailbox/fill.rs).
    filling: Option<Box<fill::Filling>>,
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

/// Opens the Maildir of mailbox `name` at `dir`: a folder that is a
/// symbolic link, or whose `cur/` is, is no mailbox.
fn open_maildir(dir: &Path, name: &str) -> Result<OpenMaildir> {
    OpenMaildir::open(dir, name != "INBOX").map_err(|e| {
        if is_not_found(&e) || is_link_refused(&e) {
            StoreError::NoSuchMailbox(name.to_owned())
        } else {
            e.into()
        }
    })
}

/// A mailbox's [`OpenMaildir`], which an idle session can close
/// ([`Mailbox::park`]: two descriptors fewer for each IDLE connection) and
/// which is opened again, the same way, at its next use. Opening it again
/// is what a directory replaced by another tool gets anyway (`refresh`).
#[derive(Debug)]
struct LazyMaildir {
    dir: PathBuf,
    name: String,
    open: OnceLock<OpenMaildir>,
}

impl LazyMaildir {
    fn new(dir: PathBuf, name: &str) -> Result<LazyMaildir> {
        let md = open_maildir(&dir, name)?;
        Ok(LazyMaildir {
            dir,
            name: name.to_owned(),
            open: OnceLock::from(md),
        })
    }

    /// The open directories, opened again if parked.
    fn get(&self) -> Result<&OpenMaildir> {
        if let Some(md) = self.open.get() {
            return Ok(md);
        }
        let md = open_maildir(&self.dir, &self.name)?;
        Ok(self.open.get_or_init(|| md))
    }

    fn park(&mut self) {
        self.open.take();
    }

    fn reopen(&mut self) -> Result<()> {
        self.open = OnceLock::from(open_maildir(&self.dir, &self.name)?);
        Ok(())
    }

    /// The id of `cur/` as open now (None: parked).
    fn cur_id(&self) -> Option<FileId> {
        self.open.get().map(|m| m.cur_id)
    }
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
        Mailbox::open_with(user, name, false)
    }

    /// [`Mailbox::open`] for a session that takes the mailbox's `\Recent`
    /// messages (an IMAP4rev1 SELECT): also says which it took, `[from,
    /// to)`.
    pub(crate) fn open_claiming(
        user: Arc<UserInner>,
        name: &str,
    ) -> Result<(Mailbox, Option<(u32, u32)>)> {
        let mut mb = Mailbox::open_with(user, name, true)?;
        let claimed = match mb.filling.as_mut() {
            // A first fill claimed them in its commit.
            Some(f) => f.claim.take(),
            None => mb.claim_recent()?,
        };
        Ok((mb, claimed))
    }

    /// `claim`: a first fill (no row yet) claims the `\Recent` messages
    /// for this handle.
    fn open_with(user: Arc<UserInner>, name: &str, claim: bool) -> Result<Mailbox> {
        let name = normalize(name)?;
        let dir = folder_path(&user.dir, &name);
        // Refuses a folder, or a cur/, that is missing or a link.
        let md = LazyMaildir::new(dir.clone(), &name)?;
        if name == "INBOX" {
            crate::maildir::ensure_maildir(&dir, &user.shared.cfg.root)?;
        }
        let mut mb = Mailbox {
            user,
            name,
            md,
            id: -1,
            uidvalidity: 0,
            uidnext: 1,
            highest_modseq: 0,
            messages: Arc::new(Vec::new()),
            unannounced: Vec::new(),
            filling: None,
        };
        mb.refresh(true, claim)?;
        Ok(mb)
    }

    /// Scans if needed, then reloads the view if anything changed. Returns
    /// whether the view was reloaded. `claim`: see [`Mailbox::open_with`].
    fn refresh(&mut self, first: bool, claim: bool) -> Result<bool> {
        if let Some(f) = &self.filling {
            match f.done() {
                // Nothing changed since the fill listed the directories:
                // nothing to wait for (the fill holds the index).
                None if !sync::needs_scan(self.md.get()?, &f.row)? => return Ok(false),
                // Something did: read it once the fill is in, below (the
                // index is locked until then).
                None => {}
                Some(Ok(())) => self.filling = None,
                // Its UIDVALIDITY is gone: as if the index was rebuilt.
                Some(Err(_)) => return Err(StoreError::NoSuchMailbox(self.name.clone())),
            }
        }
        // Still there, and still the directories we hold open? (One
        // replaced by another tool is opened again.) Just opened: yes.
        if !first {
            match maildir_id(self.dir()) {
                None => return Err(StoreError::NoSuchMailbox(self.name.clone())),
                Some(id) if self.md.cur_id().is_some_and(|c| c != id) => self.md.reopen()?,
                Some(_) => {}
            }
        }
        let mut conn = self.user.conn();
        let row = index::mailbox_row(&conn, &self.name)?;
        let scan = match &row {
            None => true,
            Some(r) => (!first && !self.is_row(r)) || sync::needs_scan(self.md.get()?, r)?,
        };
        if scan {
            drop(conn);
            // Most scans find nothing new (the directory moved because of
            // our own changes, already in the index): their commit only
            // records the directories' mtimes, a hint, so it is not
            // fsynced. A scan that changed anything a client can see (UIDs
            // given, expunges, flags: HIGHESTMODSEQ moved) or created the
            // row is followed by a fsynced commit before anyone hears of it,
            // except the one commit that creates and fills a row (below).
            let mut durable = false;
            // A row made now: the scan's own view of what it indexed is
            // the mailbox, with the row as it left it.
            let mut fresh: Option<(MailboxRow, Vec<MessageMeta>)> = None;
            // No row yet: it is made and filled in one commit (the first
            // SELECT of a Maildir without an index), not fsynced: its
            // UIDVALIDITY is new, so a power failure that undoes the UIDs
            // undoes it too (see `UserInner::write_bulk`).
            let creating = row.is_none() && first;
            if creating && self.fill_first(claim)? {
                return Ok(true);
            }
            let write = |f: &mut dyn FnMut(&Connection) -> Result<()>| {
                if creating {
                    return self.user.write_bulk(|tx| f(tx));
                }
                // Asked again once this session holds the index: another
                // one (of the same user, woken by the same delivery) may
                // have scanned meanwhile, and then this one writes nothing.
                let wanted = |conn: &Connection| match index::mailbox_row(conn, &self.name)? {
                    Some(r) if first || self.is_row(&r) => {
                        Ok(sync::needs_scan(self.md.get()?, &r)?)
                    }
                    _ => Ok(true),
                };
                self.user.write_unsynced_if(wanted, |tx| f(tx)).map(|_| ())
            };
            write(&mut |tx| {
                let mut row = match index::mailbox_row(tx, &self.name)? {
                    Some(r) if first || self.is_row(&r) => r,
                    None if first => {
                        durable = !creating;
                        let mut row = index::create_row(tx, &self.user.dir, &self.name, None)?;
                        let view = std::sync::Mutex::new(None);
                        let publish = |v, _: &MailboxRow| {
                            *view.lock().unwrap_or_else(|p| p.into_inner()) = Some(v);
                        };
                        sync::scan_new(tx, self.md.get()?, &mut row, &publish)?;
                        if let Some(view) = view.into_inner().unwrap_or_else(|p| p.into_inner()) {
                            fresh = Some((row, view));
                        }
                        return Ok(());
                    }
                    _ => return Err(StoreError::NoSuchMailbox(self.name.clone())),
                };
                let before = (row.uidnext, row.highest_modseq);
                sync::scan_locked(tx, self.md.get()?, &mut row, false)?;
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
            if let Some((row, view)) = fresh {
                self.take_view(&row, Arc::new(view));
                return Ok(true);
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
        if let Some(messages) = self.user.shared.views.get(self.dir(), key) {
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
                .latest(self.dir(), (row.id, row.uidvalidity))
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
        self.user.shared.views.put(self.dir(), key, &self.messages);
        self.id = row.id;
        self.uidvalidity = row.uidvalidity;
        self.uidnext = row.uidnext;
        self.highest_modseq = row.highest_modseq;
        Ok(true)
    }

    /// Makes `messages` this handle's view, of mailbox `row` as it is, and
    /// shares it with the process's view cache (a view a scan made).
    fn take_view(&mut self, row: &MailboxRow, messages: Arc<Vec<MessageMeta>>) {
        self.messages = messages;
        self.id = row.id;
        self.uidvalidity = row.uidvalidity;
        self.uidnext = row.uidnext;
        self.highest_modseq = row.highest_modseq;
        let key = self.view_key();
        self.user.shared.views.put(self.dir(), key, &self.messages);
    }

    /// Runs `f` with this mailbox's row inside the write lock, then saves
    /// the row (UIDNEXT, HIGHESTMODSEQ) and commits.
    fn write<T>(&self, f: impl FnOnce(&Connection, &mut MailboxRow) -> Result<T>) -> Result<T> {
        self.user.write(|tx| {
            let mut row = locked_row(tx, self)?;
            let (rec, pre) = (row.cur_mtime_ns, sync::cur_mtime(self.md.get()?).ok());
            let t = f(tx, &mut row)?;
            sync::after_own_change(self.md.get()?, &mut row, rec, pre);
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
            let (rec, pre) = (row.cur_mtime_ns, sync::cur_mtime(self.md.get()?).ok());
            let t = f(tx, &mut row)?;
            gave_uids = row.uidnext != uidnext;
            sync::after_own_change(self.md.get()?, &mut row, rec, pre);
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

    /// Waits (up to 30 s) until a first fill this handle started has
    /// committed and its thread let go of the index.
    #[cfg(test)]
    pub(crate) fn wait_for_fill(&self) {
        let until = std::time::Instant::now() + Duration::from_secs(30);
        while self.filling.as_ref().is_some_and(|f| f.done().is_none()) {
            assert!(std::time::Instant::now() < until, "the fill never ended");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// When the store wants to verify, by one scan, changes it trusted
    /// without a scan (see sync.rs, invariant 5): an IDLE session syncs
    /// then, so a change by another tool made in the same clock tick as
    /// one of ours is pushed too. None: nothing to verify.
    pub fn verification_in(&self) -> Option<Duration> {
        if self.filling.as_ref().is_some_and(|f| f.done().is_none()) {
            return Some(FILL_RECHECK);
        }
        sync::verification_in(self.dir())
    }

    /// The mailbox's Maildir directory (watched by IDLE for changes made
    /// by other processes).
    pub fn dir(&self) -> &Path {
        &self.md.dir
    }

    /// Closes the mailbox's directories until its next use (which opens
    /// them again): an IDLE session holds its socket and nothing else.
    pub fn park(&mut self) {
        self.md.park();
    }

    /// The mailbox name ("INBOX", "Lists/rust").
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn uidvalidity(&self) -> u32 {
        self.uidvalidity
    }

    /// MAILBOXID (OBJECTID, RFC 8474 §4): the index row (never reused,
    /// kept by RENAME) and the UIDVALIDITY (a mailbox made again, or an
    /// index rebuilt, is another mailbox to clients anyway).
    pub fn mailbox_id(&self) -> String {
        format!("F{}-{:08x}", self.id, self.uidvalidity)
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
        self.user.shared.views.release(self.dir(), &self.messages);
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
        let reloaded = self.refresh(false, false)?;
        Ok(self.changes_from(old, reloaded))
    }

    /// What the last sync of this handle found, for other handles of the
    /// same mailbox in this process ([`Mailbox::sync_like`]).
    pub fn synced(&self) -> Synced {
        Synced(self.view_key())
    }

    /// [`Mailbox::sync`] with the result of another handle's sync of this
    /// mailbox (`s`, its [`Mailbox::synced`]), read from the process's view
    /// cache without touching the disk or the index. For sessions woken by
    /// one change: the caller vouches that that sync began after the change
    /// it must see (imapd's notify.rs). None (the caller syncs itself): the
    /// view is no longer cached, it is another row, it is older than this
    /// handle's, or a first fill is pending.
    pub fn sync_like(&mut self, s: Synced) -> Option<SyncChanges> {
        let key = s.0;
        let (id, uidvalidity, uidnext, modseq) = key;
        if self.filling.is_some()
            || (id, uidvalidity) != (self.id, self.uidvalidity)
            || uidnext < self.uidnext
            || modseq < self.highest_modseq
        {
            return None;
        }
        if key == self.view_key() {
            return Some(self.changes_from(Arc::clone(&self.messages), false));
        }
        let messages = self.user.shared.views.get(self.dir(), key)?;
        let old = std::mem::replace(&mut self.messages, messages);
        self.uidnext = uidnext;
        self.highest_modseq = modseq;
        Some(self.changes_from(old, true))
    }

    /// The changes from `old` to this handle's view (`reloaded`: whether
    /// it was replaced since), with this handle's own APPENDs not yet told.
    fn changes_from(&mut self, old: Arc<Vec<MessageMeta>>, reloaded: bool) -> SyncChanges {
        let mut changes = match reloaded {
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
        changes
    }

    /// Messages of the view with a modseq above `modseq` (CHANGEDSINCE).
    pub fn changed_since(&self, modseq: u64) -> Vec<&MessageMeta> {
        self.messages.iter().filter(|m| m.modseq > modseq).collect()
    }

    /// UIDs expunged with a modseq above `modseq` (QRESYNC VANISHED).
    pub fn vanished_since(&self, modseq: u64) -> Result<Vec<u32>> {
        index::vanished_since(&self.user.conn(), self.id, modseq)
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
                .put(self.dir(), self.view_key(), &self.messages);
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
pub(crate) mod tests;

#[cfg(test)]
#[path = "mailbox/sync_like_tests.rs"]
mod sync_like_tests;
