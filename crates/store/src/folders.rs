//! Mailbox names and folders: [`UserStore`] (LIST, CREATE, DELETE, RENAME,
//! SUBSCRIBE, quota usage, SELECT).
//!
//! Names map to directories as layout.rs says: INBOX is the user
//! directory, any other folder a Maildir++ directory `.<c1>.<c2>...` holding
//! `cur/ new/ tmp/` and an empty `maildirfolder` file. A new folder is
//! built under a temporary name and renamed into place (maildir.rs).
//!
//! Subscriptions live in the plain file `facteur-subscriptions` (one name a
//! line), not in the index, so a rebuilt index keeps them. Changes to it and
//! to folders are made inside the index's write lock, so they serialize
//! between processes.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rusqlite::Connection;

use crate::dirfd::{Dir, is_link_refused};
use crate::layout::{folder_path, is_maildir, normalize};
use crate::maildir::build_folder;
use crate::{
    DEFAULT_FOLDERS, FolderLimits, Mailbox, MailboxInfo, Quota, Result, Shared, SpecialUse,
    StoreError, fsops, index, quota,
};

/// The subscriptions file, in the user directory.
pub const SUBSCRIPTIONS: &str = "facteur-subscriptions";

/// One user's store: holds the index connection. Send + Sync.
pub struct UserStore {
    pub(crate) inner: Arc<UserInner>,
}

impl std::fmt::Debug for UserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserStore")
            .field("dir", &self.inner.dir)
            .finish()
    }
}

/// What a user's handles share.
pub(crate) struct UserInner {
    pub shared: Arc<Shared>,
    pub dir: PathBuf,
    /// The user's quota, bytes and messages (0: none); changed in place by
    /// [`UserStore::set_quota`], so every handle of the user sees it.
    quota_bytes: AtomicU64,
    quota_messages: AtomicU64,
    conn: Mutex<Connection>,
    /// `conn` runs without SQLite's automatic checkpoint (after
    /// [`UserInner::write_bulk`]); read and changed with `conn` held.
    autocheckpoint_off: AtomicBool,
    /// `conn` is at `synchronous=NORMAL`, as the last unsynced commit left
    /// it (a fresh connection is at FULL); read and changed with `conn`
    /// held. Each commit sets the level it needs only if the connection is
    /// not there already ([`UserInner::set_synchronous`]).
    unsynced: AtomicBool,
    /// A checkpoint runs aside ([`index::checkpoint_aside`]): until it
    /// ends, `conn` stays without the automatic one, whose commit would
    /// otherwise do the copy itself first.
    pub(crate) checkpointing: Arc<AtomicBool>,
    /// The folders and subscriptions LIST read last (listing.rs).
    listing: crate::listing::Listing,
}

impl UserInner {
    /// The quota now.
    pub fn quota(&self) -> Quota {
        Quota {
            bytes: self.quota_bytes.load(Ordering::Relaxed),
            messages: self.quota_messages.load(Ordering::Relaxed),
        }
    }

    /// The index connection. A panic while it was held left no transaction
    /// open (rusqlite rolls back on drop), so a poisoned lock is usable.
    pub fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` inside `BEGIN IMMEDIATE` ... `COMMIT` (rolled back on
    /// error); the commit is fsynced (`synchronous=FULL`).
    pub fn write<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        self.restore_autocheckpoint(&mut conn)?;
        self.set_synchronous(&mut conn, true)?;
        commit_on(&mut conn, f)
    }

    /// Puts `conn` at `synchronous=FULL` (`full`) or NORMAL for the next
    /// commit, unless it is there already. SQLite applies a PRAGMA when it
    /// prepares it, so even a cached one is prepared again at every run:
    /// switching at every unsynced commit and back cost two statement
    /// compilations per STORE (perf under imaptest's stress mix). Should
    /// going back to FULL fail, the connection is replaced (a fresh one is
    /// at FULL) rather than left unsynced for a commit that must not be.
    fn set_synchronous(&self, conn: &mut Connection, full: bool) -> Result<()> {
        if self.unsynced.load(Ordering::Relaxed) != full {
            return Ok(());
        }
        let pragma = if full {
            "PRAGMA synchronous = FULL"
        } else {
            "PRAGMA synchronous = NORMAL"
        };
        match conn.execute_batch(pragma) {
            Ok(()) => {}
            Err(e) if full => {
                tracing::error!(dir = %self.dir.display(), error = %e, "cannot restore synchronous=FULL; reopening the index");
                *conn = crate::index::open(&self.dir)?;
            }
            Err(e) => return Err(e.into()),
        }
        self.unsynced.store(!full, Ordering::Relaxed);
        Ok(())
    }

    /// The transaction that creates a folder's row and fills it (the first
    /// scan of a Maildir without an index: a row for each of its messages,
    /// under a UIDVALIDITY made for it). Its commit is not fsynced: a power
    /// failure that undoes it undoes the UIDVALIDITY with the UIDs, and the
    /// next scan gives a new one (`facteur-uidvalidity` was fsynced before,
    /// so it is greater), so no UID comes back for another message under
    /// the UIDVALIDITY a client was told. It also leaves out SQLite's
    /// automatic checkpoint (copying the WAL into the database and fsyncing
    /// both, on the committing thread, once the WAL passes 1,000 pages): a
    /// thread of its own does that after, which makes the commit durable
    /// without the client waiting for it. Any fsynced commit meanwhile
    /// (an APPEND) makes it durable too: the WAL is fsynced up to its end.
    pub fn write_bulk<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let mut conn = self.conn();
        if !self.autocheckpoint_off.load(Ordering::Relaxed) {
            let _: i64 = conn.query_row("PRAGMA wal_autocheckpoint = 0", [], |r| r.get(0))?;
            self.autocheckpoint_off.store(true, Ordering::Relaxed);
        }
        let result = self.commit_unsynced_on(&mut conn, f);
        // The commits after this one (the session's first STORE, say) also
        // leave the copy to the thread, until it is done.
        if result.is_err() || !index::checkpoint_aside(&self.dir, &self.checkpointing) {
            self.restore_autocheckpoint(&mut conn)?;
        }
        result
    }

    /// Gives `conn` its automatic checkpoint back once no checkpoint runs
    /// aside. Should that fail, the connection is replaced (a fresh one
    /// has it) rather than left without.
    fn restore_autocheckpoint(&self, conn: &mut Connection) -> Result<()> {
        if !self.autocheckpoint_off.load(Ordering::Relaxed)
            || self.checkpointing.load(Ordering::Acquire)
        {
            return Ok(());
        }
        let pragma = format!(
            "PRAGMA wal_autocheckpoint = {}",
            index::AUTOCHECKPOINT_PAGES
        );
        if let Err(e) = conn.query_row(&pragma, [], |r| r.get::<_, i64>(0)) {
            tracing::error!(dir = %self.dir.display(), error = %e, "cannot restore wal_autocheckpoint; reopening the index");
            *conn = index::open(&self.dir)?;
            self.unsynced.store(false, Ordering::Relaxed);
        }
        self.autocheckpoint_off.store(false, Ordering::Relaxed);
        Ok(())
    }

    /// [`UserInner::write`] whose commit is not fsynced
    /// (`synchronous=NORMAL`, which the connection keeps until a commit
    /// that must be fsynced sets FULL again). A killed process
    /// loses nothing (the WAL is written before COMMIT returns); a power
    /// failure may undo the commit until the next fsynced commit or
    /// checkpoint, as with Dovecot's default `mail_fsync = optimized`. For
    /// flag changes, scans that found nothing, and EXPUNGE after it has
    /// fsynced the removals themselves (docs/store-format.md); never for a
    /// change that gives out UIDs (callers follow a scan that did with a
    /// fsynced commit).
    pub fn write_unsynced<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        self.write_unsynced_on(&mut self.conn(), f)
    }

    /// [`UserInner::write_unsynced`] if `wanted` says so, asked first
    /// under the same hold of the connection. Sessions that all saw the
    /// same change (an IDLE wake-up: hundreds of one user's connections)
    /// then scan once: the others, waiting for the connection meanwhile,
    /// find the change indexed and write nothing. None: not wanted.
    pub fn write_unsynced_if<T>(
        &self,
        wanted: impl FnOnce(&Connection) -> Result<bool>,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<Option<T>> {
        let mut conn = self.conn();
        if !wanted(&conn)? {
            return Ok(None);
        }
        self.write_unsynced_on(&mut conn, f).map(Some)
    }

    fn write_unsynced_on<T>(
        &self,
        conn: &mut Connection,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        self.restore_autocheckpoint(conn)?;
        self.commit_unsynced_on(conn, f)
    }

    /// [`commit_on`] with `synchronous=NORMAL` for this commit.
    fn commit_unsynced_on<T>(
        &self,
        conn: &mut Connection,
        f: impl FnOnce(&Connection) -> Result<T>,
    ) -> Result<T> {
        self.set_synchronous(conn, false)?;
        commit_on(conn, f)
    }
}

/// `f` inside `BEGIN IMMEDIATE` ... `COMMIT` on `conn` (rolled back on
/// error, or if `f` panics), as the connection's settings make the commit.
/// BEGIN and COMMIT are cached statements: rusqlite's `Transaction`
/// parses both anew every time, which cost more than some whole commands'
/// own statements (perf under imaptest's stress mix).
fn commit_on<T>(conn: &mut Connection, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
    /// Rolls the transaction back when dropped unless it was committed.
    struct Open<'a>(&'a Connection, bool);
    impl Drop for Open<'_> {
        fn drop(&mut self) {
            if !self.1 {
                // Fails harmlessly if SQLite has already rolled it back.
                let _ = self.0.execute_batch("ROLLBACK");
            }
        }
    }
    let conn: &Connection = conn;
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let mut open = Open(conn, false);
    let t = f(conn)?;
    conn.prepare_cached("COMMIT")?.execute([])?;
    open.1 = true;
    Ok(t)
}

fn subscriptions(dir: &Path) -> io::Result<Vec<String>> {
    match crate::dirfd::read_to_string(&dir.join(SUBSCRIPTIONS)) {
        Ok(s) => Ok(s
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) if is_link_refused(&e) => {
            tracing::warn!(dir = %dir.display(), "{SUBSCRIPTIONS} is a symbolic link: not read (replaced at the next change)");
            Ok(Vec::new())
        }
        Err(e) => Err(e),
    }
}

fn write_subscriptions(dir: &Path, names: &[String]) -> io::Result<()> {
    let mut s = String::new();
    for n in names {
        s.push_str(n);
        s.push('\n');
    }
    facteur_util::write_atomic(&dir.join(SUBSCRIPTIONS), s.as_bytes(), 0o600)
}

/// The folder directories of the user: (normalized name, directory name).
/// Read afresh (LIST keeps what it read: listing.rs).
fn folder_dirs(user_dir: &Path) -> io::Result<Vec<(String, String)>> {
    crate::listing::read_folders(user_dir).map(|(maildirs, _)| maildirs)
}

impl UserStore {
    pub(crate) fn open(shared: Arc<Shared>, dir: PathBuf, quota: Quota) -> Result<UserStore> {
        let conn = index::open(&dir)?;
        Ok(UserStore {
            inner: Arc::new(UserInner {
                shared,
                dir,
                quota_bytes: AtomicU64::new(quota.bytes),
                quota_messages: AtomicU64::new(quota.messages),
                conn: Mutex::new(conn),
                autocheckpoint_off: AtomicBool::new(false),
                unsynced: AtomicBool::new(false),
                checkpointing: Arc::new(AtomicBool::new(false)),
                listing: crate::listing::Listing::default(),
            }),
        })
    }

    /// The default folders with their roles; subscribes them the first time.
    pub(crate) fn create_defaults(&self) -> Result<()> {
        for (name, su) in DEFAULT_FOLDERS {
            match self.create_mailbox(name, Some(su)) {
                Ok(()) | Err(StoreError::MailboxExists(_)) => {}
                Err(e) => return Err(e),
            }
        }
        let dir = &self.inner.dir;
        self.inner.write(|_| {
            if !dir.join(SUBSCRIPTIONS).exists() {
                let mut names = vec!["INBOX".to_owned()];
                names.extend(DEFAULT_FOLDERS.iter().map(|(n, _)| (*n).to_owned()));
                write_subscriptions(dir, &names)?;
            }
            Ok(())
        })
    }

    /// All mailboxes: INBOX first, then by name.
    pub fn list_mailboxes(&self) -> Result<Vec<MailboxInfo>> {
        let rows = index::all_rows(&self.inner.conn())?;
        let dir = &self.inner.dir;
        let listing = &self.inner.listing;
        let subs = listing.subscriptions(&dir.join(SUBSCRIPTIONS), || subscriptions(dir))?;
        let mut names: Vec<String> = listing
            .folder_dirs(dir)?
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        names.insert(0, "INBOX".to_owned());
        Ok(names
            .into_iter()
            .map(|name| {
                let special_use = match rows.iter().find(|r| r.name == name) {
                    Some(r) => r.special_use,
                    None => SpecialUse::default_for(&name),
                };
                let subscribed = subs.contains(&name);
                MailboxInfo {
                    name,
                    special_use,
                    subscribed,
                }
            })
            .collect())
    }

    /// Creates a mailbox (and its missing parents, without roles).
    pub fn create_mailbox(&self, name: &str, special_use: Option<SpecialUse>) -> Result<()> {
        let norm = normalize(name)?;
        if norm == "INBOX" {
            return Err(StoreError::MailboxExists(norm));
        }
        let dir = &self.inner.dir;
        let limits = self.inner.shared.limits;
        self.inner.write(|tx| {
            let comps: Vec<&str> = norm.split('/').collect();
            check_depth(&norm, limits)?;
            let missing = (1..=comps.len())
                .filter(|&i| !is_maildir(&folder_path(dir, &comps[..i].join("/"))))
                .count();
            check_count(dir, missing, limits)?;
            for i in 1..=comps.len() {
                let n = comps[..i].join("/");
                let path = folder_path(dir, &n);
                let last = i == comps.len();
                if is_maildir(&path) {
                    if last {
                        return Err(StoreError::MailboxExists(norm.clone()));
                    }
                    continue;
                }
                // Grants left for the name by a mailbox deleted before
                // (acl.rs) do not pass to the new one.
                crate::acl::forget(dir, &n);
                // Built under a temporary name, then renamed: a crash leaves
                // either no folder or a complete one.
                let tmp = dir.join(format!(
                    "facteur-new-folder-{}",
                    self.inner.shared.names.next()
                ));
                build_folder(&tmp)?;
                if let Err(e) = fsops::rename(&tmp, &path) {
                    let _ = fs::remove_dir_all(&tmp);
                    return Err(e.into());
                }
                if let Some(old) = index::mailbox_row(tx, &n)? {
                    index::delete_row(tx, old.id)?;
                }
                index::create_row(tx, dir, &n, if last { special_use } else { None })?;
            }
            fsops::fsync_dir(dir)?;
            Ok(())
        })
    }

    /// Deletes a mailbox and its messages. INBOX cannot be deleted; a
    /// mailbox with children is refused ([`StoreError::HasChildren`]).
    pub fn delete_mailbox(&self, name: &str) -> Result<()> {
        let norm = normalize(name)?;
        if norm == "INBOX" {
            return Err(StoreError::InvalidName(norm));
        }
        let dir = &self.inner.dir;
        self.inner.write(|tx| {
            let path = folder_path(dir, &norm);
            if !is_maildir(&path) {
                return Err(StoreError::NoSuchMailbox(norm.clone()));
            }
            let prefix = format!("{norm}/");
            if folder_dirs(dir)?
                .iter()
                .any(|(n, _)| n.starts_with(&prefix))
            {
                return Err(StoreError::HasChildren(norm.clone()));
            }
            let (bytes, count) = quota::folder_usage(&Dir::open_nofollow(&path)?)?;
            let aside = dir.join(format!(
                "facteur-deleting-{}",
                self.inner.shared.names.next()
            ));
            fsops::rename(&path, &aside)?;
            fsops::fsync_dir(dir)?;
            if let Some(row) = index::mailbox_row(tx, &norm)? {
                index::delete_row(tx, row.id)?;
            }
            crate::metadata::delete(tx, &norm)?;
            fs::remove_dir_all(&aside)?;
            quota::record(dir, -(bytes as i64), -(count as i64))?;
            Ok(())
        })?;
        // RFC 4314 §4: DELETE deletes the mailbox's ACL.
        crate::acl::forget(dir, &norm);
        Ok(())
    }

    /// Renames a mailbox and its children. Renaming INBOX moves its
    /// messages into a new mailbox `to` and leaves INBOX empty, its children
    /// untouched (RFC 9051 §6.3.6).
    pub fn rename_mailbox(&self, from: &str, to: &str) -> Result<()> {
        let from = normalize(from)?;
        let to = normalize(to)?;
        if to == "INBOX" {
            return Err(StoreError::MailboxExists(to));
        }
        if from == "INBOX" {
            return self.rename_inbox(&to);
        }
        if to == from || to.starts_with(&format!("{from}/")) {
            return Err(StoreError::InvalidName(to));
        }
        let dir = &self.inner.dir;
        let limits = self.inner.shared.limits;
        self.inner.write(|tx| {
            let src = folder_path(dir, &from);
            if !is_maildir(&src) {
                return Err(StoreError::NoSuchMailbox(from.clone()));
            }
            if folder_path(dir, &to).exists() {
                return Err(StoreError::MailboxExists(to.clone()));
            }
            let prefix = format!("{from}/");
            let mut moves = vec![(from.clone(), to.clone())];
            for (n, _) in folder_dirs(dir)? {
                if let Some(rest) = n.strip_prefix(&prefix) {
                    moves.push((n.clone(), format!("{to}/{rest}")));
                }
            }
            for (_, b) in &moves {
                check_depth(b, limits)?;
            }
            for (a, b) in &moves {
                let b = normalize(b)?;
                let target = folder_path(dir, &b);
                if target.exists() {
                    return Err(StoreError::MailboxExists(b));
                }
                fsops::rename(&folder_path(dir, a), &target)?;
                if let Some(stale) = index::mailbox_row(tx, &b)? {
                    index::delete_row(tx, stale.id)?;
                }
                tx.execute("UPDATE mailboxes SET name = ?2 WHERE name = ?1", [a, &b])?;
                crate::metadata::rename(tx, a, &b)?;
            }
            fsops::fsync_dir(dir)?;
            Ok(())
        })?;
        crate::acl::renamed(dir, &from, &to);
        Ok(())
    }

    fn rename_inbox(&self, to: &str) -> Result<()> {
        self.create_mailbox(to, None)?;
        let dir = &self.inner.dir;
        let user = Dir::open(dir)?;
        let dest = Dir::open_nofollow(&folder_path(dir, to))?;
        self.inner.write(|_| {
            for sub in ["new", "cur"] {
                // Never through a link: what a link leads to is not INBOX's.
                let from = match user.sub(sub) {
                    Ok(d) => d,
                    Err(e) if is_link_refused(&e) => {
                        tracing::warn!(dir = %dir.display(), sub, "not a directory (a symbolic link?): its files stay where they are");
                        continue;
                    }
                    Err(e) => return Err(e.into()),
                };
                let to = dest.sub(sub)?;
                let listing = from.list()?;
                listing.warn_skipped(from.path());
                for n in listing.files {
                    if n.starts_with('.') {
                        continue;
                    }
                    match from.rename(&n, &to, &n) {
                        Ok(()) => {}
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                to.fsync()?;
                from.fsync()?;
            }
            Ok(())
        })
    }

    /// The subscribed names, mailboxes or not (a DELETE keeps its
    /// subscription, RFC 9051 §6.3.4).
    pub fn subscriptions(&self) -> Result<Vec<String>> {
        Ok(subscriptions(&self.inner.dir)?)
    }

    /// Subscribes (`on`) or unsubscribes a name (which need not exist).
    pub fn subscribe(&self, name: &str, on: bool) -> Result<()> {
        let norm = normalize(name)?;
        let dir = &self.inner.dir;
        let limits = self.inner.shared.limits;
        self.inner.write(|_| {
            let mut subs = subscriptions(dir)?;
            let had = subs.contains(&norm);
            if on && !had && subs.len() >= limits.subscriptions {
                return Err(StoreError::Limit(format!(
                    "Too many subscriptions (at most {})",
                    limits.subscriptions
                )));
            }
            if on && !had {
                subs.push(norm.clone());
            } else if !on && had {
                subs.retain(|n| *n != norm);
            } else {
                return Ok(());
            }
            write_subscriptions(dir, &subs)?;
            Ok(())
        })
    }

    /// The user's directory (its `tmp/` takes spilled APPEND literals).
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Quota usage: (bytes on disk, messages), from `maildirsize`.
    pub fn quota_usage(&self) -> Result<(u64, u64)> {
        Ok(quota::usage(&self.inner.dir, self.inner.quota())?)
    }

    /// Sets the user's quota for every handle of this user (a changed
    /// limit applies at the next APPEND or COPY, not at the next login).
    pub fn set_quota(&self, q: Quota) {
        self.inner.quota_bytes.store(q.bytes, Ordering::Relaxed);
        self.inner
            .quota_messages
            .store(q.messages, Ordering::Relaxed);
    }

    /// The user's quota.
    pub fn quota(&self) -> Quota {
        self.inner.quota()
    }

    /// The directory the mailbox `name` has (or would have), as
    /// [`Mailbox::dir`] gives it once opened.
    pub fn mailbox_dir(&self, name: &str) -> Result<PathBuf> {
        Ok(crate::layout::folder_path(
            &self.inner.dir,
            &normalize(name)?,
        ))
    }

    /// Whether the mailbox exists (without opening it).
    pub fn exists(&self, name: &str) -> Result<bool> {
        let norm = normalize(name)?;
        Ok(is_maildir(&folder_path(&self.inner.dir, &norm)))
    }

    /// Opens a mailbox and syncs it.
    pub fn select(&self, name: &str) -> Result<Mailbox> {
        Mailbox::open(Arc::clone(&self.inner), name)
    }

    /// [`UserStore::select`] for a session that takes the mailbox's
    /// `\Recent` messages (an IMAP4rev1 SELECT, RFC 3501 §2.3.2): also
    /// says which UIDs it took, `[from, to)`.
    pub fn select_claiming(&self, name: &str) -> Result<(Mailbox, Option<(u32, u32)>)> {
        Mailbox::open_claiming(Arc::clone(&self.inner), name)
    }
}

/// A name deeper than the limit is refused.
fn check_depth(norm: &str, limits: FolderLimits) -> Result<()> {
    if norm.split('/').count() > limits.depth {
        return Err(StoreError::Limit(format!(
            "Mailbox names are at most {} levels deep",
            limits.depth
        )));
    }
    Ok(())
}

/// `more` new mailboxes must fit beside the user's others.
fn check_count(dir: &Path, more: usize, limits: FolderLimits) -> Result<()> {
    if more > 0 && folder_dirs(dir)?.len() + more > limits.mailboxes {
        return Err(StoreError::Limit(format!(
            "Too many mailboxes (at most {})",
            limits.mailboxes
        )));
    }
    Ok(())
}

#[cfg(test)]
#[path = "folders_tests.rs"]
mod tests;
