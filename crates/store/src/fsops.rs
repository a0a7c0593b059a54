//! The store's changes to directory entries, in one place: new directories,
//! new files, renames, and the fsyncs that make them durable.
//!
//! Offers [`mkdir`], [`create_new`], [`sync_file`], [`rename`],
//! [`fsync_dir`], and [`StoreDirs`] (the same calls, for
//! `facteur_util::create_dirs_durable_with`). Each is the plain system
//! call; the test build also records it, per thread, so that a test can
//! check the order of a whole operation's calls ([`recording`],
//! [`check_durable`]): a directory entry is durable only if the directory
//! holding it was fsynced after the entry was made (docs/store-format.md,
//! "Durability").
//!
//! The renames, links and fsyncs made relative to a directory descriptor
//! (dirfd.rs) are recorded too; SQLite's own calls are not.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// One recorded call (recorded in test builds only).
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Event {
    Mkdir(std::path::PathBuf),
    Create(std::path::PathBuf),
    SyncFile(std::path::PathBuf),
    Rename(std::path::PathBuf, std::path::PathBuf),
    /// A hard link: a new name for a file whose data is durable.
    Link(std::path::PathBuf),
    SyncDir(std::path::PathBuf),
}

#[cfg(test)]
thread_local! {
    static LOG: std::cell::RefCell<Option<Vec<Event>>> = const { std::cell::RefCell::new(None) };
}

/// Records a call made elsewhere (dirfd.rs).
#[cfg(test)]
pub(crate) fn record(e: impl FnOnce() -> Event) {
    LOG.with(|l| {
        if let Some(v) = l.borrow_mut().as_mut() {
            v.push(e());
        }
    });
}

/// Records a call made elsewhere (dirfd.rs): nothing outside tests.
#[cfg(not(test))]
#[inline(always)]
pub(crate) fn record(_: impl FnOnce() -> Event) {}

/// mkdir(2) with `mode` (before the umask).
pub(crate) fn mkdir(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(mode).create(dir)?;
    record(|| Event::Mkdir(dir.to_path_buf()));
    Ok(())
}

/// A new file, opened for writing: `O_CREAT|O_EXCL` (which never follows
/// a symbolic link), with `mode` (before the umask).
pub(crate) fn create_new(path: &Path, mode: u32) -> io::Result<File> {
    let f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)?;
    record(|| Event::Create(path.to_path_buf()));
    Ok(f)
}

/// fsync(2) of a file's data and metadata; `path` names it in the record.
pub(crate) fn sync_file(f: &File, path: &Path) -> io::Result<()> {
    f.sync_all()?;
    record(|| Event::SyncFile(path.to_path_buf()));
    Ok(())
}

/// rename(2).
pub(crate) fn rename(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::rename(from, to)?;
    record(|| Event::Rename(from.to_path_buf(), to.to_path_buf()));
    Ok(())
}

/// fsync(2) of a directory: the entries made in it so far are durable.
/// Shared with the other deliveries into the same directory at the same
/// moment (`facteur_util::group`: one fsync that starts after the entry
/// was made makes it durable, whoever asked for it).
pub(crate) fn fsync_dir(dir: &Path) -> io::Result<()> {
    facteur_util::group::fsync_dir(dir)?;
    record(|| Event::SyncDir(dir.to_path_buf()));
    Ok(())
}

/// A coming [`fsync_dir`] announced before the work that precedes it (the
/// new file's write and fsync), so that the round that covers another
/// delivery into the same directory waits for this one too
/// (`facteur_util::group::intend`).
pub(crate) struct DirSync(facteur_util::group::Intent, std::path::PathBuf);

pub(crate) fn intend(dir: &Path) -> DirSync {
    DirSync(facteur_util::group::intend(dir), dir.to_path_buf())
}

impl DirSync {
    /// The announced [`fsync_dir`].
    pub(crate) fn fsync_dir(self) -> io::Result<()> {
        self.0.fsync_dir()?;
        record(|| Event::SyncDir(self.1));
        Ok(())
    }
}

/// [`mkdir`] and [`fsync_dir`] for `facteur_util::create_dirs_durable_with`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StoreDirs;

impl facteur_util::DirOps for StoreDirs {
    fn mkdir(&self, dir: &Path, mode: u32) -> io::Result<()> {
        mkdir(dir, mode)
    }

    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        fsync_dir(dir)
    }
}

/// Records this thread's calls until dropped.
#[cfg(test)]
pub(crate) struct Recording(());

#[cfg(test)]
impl Recording {
    /// The calls recorded so far (and starts afresh).
    pub fn take(&self) -> Vec<Event> {
        LOG.with(|l| l.borrow_mut().as_mut().map(std::mem::take))
            .unwrap_or_default()
    }
}

#[cfg(test)]
impl Drop for Recording {
    fn drop(&mut self) {
        LOG.with(|l| *l.borrow_mut() = None);
    }
}

/// Starts recording this thread's calls.
#[cfg(test)]
pub(crate) fn recording() -> Recording {
    LOG.with(|l| *l.borrow_mut() = Some(Vec::new()));
    Recording(())
}

/// Checks that the calls `events` of one finished operation left every
/// entry they made durable: each new directory, new file and rename
/// target that still exists was followed by a fsync of the directory
/// holding it — before that directory was itself renamed (a directory
/// built under a temporary name carries its entries along) or after —
/// and each new file's data was fsynced before it got its final name.
/// Entries gone by the end (a temporary file renamed away) need nothing.
#[cfg(test)]
pub(crate) fn check_durable(events: &[Event]) -> std::result::Result<(), String> {
    use std::path::PathBuf;
    let parent = |p: &Path| p.parent().map(Path::to_path_buf).unwrap_or_default();
    // Entries made and not yet durable, and new files whose data is not.
    let mut pending: Vec<PathBuf> = Vec::new();
    let mut unsynced: Vec<PathBuf> = Vec::new();
    for (i, e) in events.iter().enumerate() {
        match e {
            Event::Mkdir(p) | Event::Link(p) => pending.push(p.clone()),
            Event::Create(p) => {
                pending.push(p.clone());
                unsynced.push(p.clone());
            }
            Event::SyncFile(p) => unsynced.retain(|q| q != p),
            Event::Rename(from, to) => {
                if unsynced.contains(from) {
                    return Err(format!(
                        "call {i}: {} renamed before its data was fsynced",
                        from.display()
                    ));
                }
                // The old name needs nothing; what was made under it moves.
                pending.retain(|q| q != from);
                for q in &mut pending {
                    if let Ok(rest) = q.strip_prefix(from) {
                        *q = to.join(rest);
                    }
                }
                pending.push(to.clone());
            }
            Event::SyncDir(d) => pending.retain(|q| parent(q) != *d),
        }
    }
    let lost: Vec<String> = pending
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_ok())
        .map(|p| p.display().to_string())
        .collect();
    if lost.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "entries whose directory was not fsynced after they were made: {lost:?}"
        ))
    }
}
