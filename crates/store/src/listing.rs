//! What LIST reads of a user directory, kept between LISTs while the
//! directory and the subscriptions file say they have not changed.
//!
//! A LIST read the whole user directory (open, getdents, close), lstat'ed
//! every folder and its `cur/`, and read `facteur-subscriptions`: about a
//! dozen system calls, for an answer that changes only when a folder is
//! created, deleted or renamed. Clients LIST at every connection
//! (imaptest's stress mix: a LIST for every other login). Now one `lstat`
//! of the directory and one of the file answer it while both are as they
//! were.
//!
//! A folder comes or goes by an entry added, removed or renamed in the
//! user directory, which changes the directory's modification and change
//! times; facteur's own CREATE, DELETE and RENAME always do (they rename
//! whole folders into place: maildir.rs). The subscriptions file is
//! replaced whole (a new inode) or, by another tool, written in place (new
//! times and size). A stamp is kept only once its times are
//! [`SETTLED_SECS`] in the past: a change in the same clock tick as the
//! one read (file systems keep times as coarse as a second) would
//! otherwise leave the times as they were.
//!
//! An entry named like a folder that was not a Maildir yet (another tool
//! makes `.Name` and then `.Name/cur`, which does not touch the user
//! directory) is looked at again at every LIST. The other way round, a
//! folder whose `cur/` another tool removes stays listed until the user
//! directory changes; SELECT then finds no such mailbox, as it would have
//! a moment after any LIST.

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Mutex;

use crate::layout::decode_dir;

/// How old, in seconds, a stamp's times must be to be kept.
const SETTLED_SECS: i64 = 2;

/// A file's or directory's identity, size and times, as `lstat` gives them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        Stamp {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Whether its times are old enough that any later change gives new
    /// ones (`now`: seconds since the epoch).
    fn settled(&self, now: i64) -> bool {
        now - self.mtime.0.max(self.ctime.0) >= SETTLED_SECS
    }
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// The folders of a user directory as last read.
struct Folders {
    stamp: Stamp,
    /// (normalized name, directory name) of each folder that is a Maildir.
    maildirs: Vec<(String, String)>,
    /// Entries named like folders that were not Maildirs (yet).
    others: Vec<(String, String)>,
}

/// The subscriptions file as last read.
struct Subscriptions {
    stamp: Stamp,
    names: Vec<String>,
}

/// What one user's handles keep of the user directory (in `UserInner`).
#[derive(Default)]
pub(crate) struct Listing {
    folders: Mutex<Option<Folders>>,
    subscriptions: Mutex<Option<Subscriptions>>,
}

impl Listing {
    /// The folder directories of `user_dir`: (normalized name, directory
    /// name), in no particular order.
    pub(crate) fn folder_dirs(&self, user_dir: &Path) -> io::Result<Vec<(String, String)>> {
        let stamp = Stamp::of(&fs::symlink_metadata(user_dir)?);
        let mut kept = self.folders.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(f) = kept.as_ref().filter(|f| f.stamp == stamp) {
            let mut out = f.maildirs.clone();
            out.extend(
                f.others
                    .iter()
                    .filter(|(_, n)| crate::layout::is_maildir(&user_dir.join(n)))
                    .cloned(),
            );
            return Ok(out);
        }
        let (maildirs, others) = read_folders(user_dir)?;
        let out = maildirs.clone();
        *kept = stamp.settled(now_secs()).then_some(Folders {
            stamp,
            maildirs,
            others,
        });
        Ok(out)
    }

    /// The names in the subscriptions file `path`: those kept while the
    /// file is as it was, else what `read` gives (also for a file that is
    /// missing or not a plain file: `read` says what that means).
    pub(crate) fn subscriptions(
        &self,
        path: &Path,
        read: impl FnOnce() -> io::Result<Vec<String>>,
    ) -> io::Result<Vec<String>> {
        let stamp = match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_file() => Some(Stamp::of(&m)),
            _ => None,
        };
        let mut kept = self.subscriptions.lock().unwrap_or_else(|p| p.into_inner());
        if let (Some(s), Some(k)) = (stamp, kept.as_ref())
            && k.stamp == s
        {
            return Ok(k.names.clone());
        }
        let names = read()?;
        *kept = stamp
            .filter(|s| s.settled(now_secs()))
            .map(|stamp| Subscriptions {
                stamp,
                names: names.clone(),
            });
        Ok(names)
    }
}

/// (normalized name, directory name) of entries of a user directory.
type FolderEntries = Vec<(String, String)>;

/// Reads the user directory: its folders that are Maildirs, and the
/// entries named like folders that are not.
pub(crate) fn read_folders(user_dir: &Path) -> io::Result<(FolderEntries, FolderEntries)> {
    let (mut maildirs, mut others) = (Vec::new(), Vec::new());
    for e in fs::read_dir(user_dir)? {
        let e = e?;
        let Ok(n) = e.file_name().into_string() else {
            continue;
        };
        let Some(name) = decode_dir(&n) else {
            continue;
        };
        // The entry's type comes with it (no lstat): a folder is a real
        // directory, never a link.
        if !e.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        if crate::layout::is_maildir(&e.path()) {
            maildirs.push((name, n));
        } else {
            others.push((name, n));
        }
    }
    Ok((maildirs, others))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(dir: &Path, n: &str) {
        for sub in ["cur", "new", "tmp"] {
            fs::create_dir_all(dir.join(n).join(sub)).unwrap();
        }
    }

    /// Keeps, for `dir` as it is now, a listing that is not its own (a
    /// change time cannot be set in the past, so a test cannot make a
    /// settled stamp otherwise): what LIST says then shows whether the
    /// kept listing was used.
    fn keep_stale(l: &Listing, dir: &Path) {
        *l.folders.lock().unwrap() = Some(Folders {
            stamp: Stamp::of(&fs::symlink_metadata(dir).unwrap()),
            maildirs: vec![("Stale".into(), ".Stale".into())],
            others: Vec::new(),
        });
        // Kernels before 6.13 take file times from a clock that moves
        // once a tick (up to 10 ms): the change after this must get
        // times of its own, as one a second later would.
        std::thread::sleep(std::time::Duration::from_millis(30));
    }

    fn names(v: Vec<(String, String)>) -> Vec<String> {
        let mut n: Vec<String> = v.into_iter().map(|(n, _)| n).collect();
        n.sort();
        n
    }

    #[test]
    fn folders_are_read_again_when_the_directory_changes() {
        let d = tempfile::tempdir().unwrap();
        folder(d.path(), ".Sent");
        folder(d.path(), ".A.B");
        fs::create_dir(d.path().join("cur")).unwrap();
        fs::write(d.path().join(".file"), b"").unwrap();
        std::os::unix::fs::symlink(d.path().join(".Sent"), d.path().join(".Link")).unwrap();
        let l = Listing::default();
        // Read: links, files and cur/ are not folders.
        assert_eq!(names(l.folder_dirs(d.path()).unwrap()), ["A/B", "Sent"]);
        keep_stale(&l, d.path());
        assert_eq!(names(l.folder_dirs(d.path()).unwrap()), ["Stale"]);
        // A folder made, renamed, removed: the directory's times move, so
        // the kept listing is left and the directory read again.
        folder(d.path(), ".New");
        assert_eq!(
            names(l.folder_dirs(d.path()).unwrap()),
            ["A/B", "New", "Sent"]
        );
        keep_stale(&l, d.path());
        fs::rename(d.path().join(".New"), d.path().join(".Old")).unwrap();
        assert_eq!(
            names(l.folder_dirs(d.path()).unwrap()),
            ["A/B", "Old", "Sent"]
        );
        keep_stale(&l, d.path());
        fs::remove_dir_all(d.path().join(".Old")).unwrap();
        assert_eq!(names(l.folder_dirs(d.path()).unwrap()), ["A/B", "Sent"]);
    }

    #[test]
    fn a_kept_listing_is_used_and_looks_again_at_what_was_not_a_maildir() {
        let d = tempfile::tempdir().unwrap();
        folder(d.path(), ".Sent");
        fs::create_dir(d.path().join(".Later")).unwrap();
        let l = Listing::default();
        // Only a settled stamp is kept: the change time of a directory
        // just made is now, so nothing is kept yet.
        l.folder_dirs(d.path()).unwrap();
        assert!(l.folders.lock().unwrap().is_none());
        // Kept (by hand: the change time cannot be made old in a test).
        let stamp = Stamp::of(&fs::symlink_metadata(d.path()).unwrap());
        *l.folders.lock().unwrap() = Some(Folders {
            stamp,
            maildirs: vec![("Kept".into(), ".Kept".into())],
            others: vec![("Later".into(), ".Later".into())],
        });
        assert_eq!(names(l.folder_dirs(d.path()).unwrap()), ["Kept"]);
        // `.Later/cur` made inside the entry leaves the user directory's
        // times alone: the entry is looked at again all the same.
        fs::create_dir(d.path().join(".Later/cur")).unwrap();
        assert_eq!(names(l.folder_dirs(d.path()).unwrap()), ["Kept", "Later"]);
    }

    #[test]
    fn subscriptions_are_kept_while_the_file_is_the_same() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("subs");
        fs::write(&path, "INBOX\n").unwrap();
        let l = Listing::default();
        let reads = std::cell::Cell::new(0);
        let read = || {
            reads.set(reads.get() + 1);
            Ok(fs::read_to_string(&path)?
                .lines()
                .map(str::to_owned)
                .collect())
        };
        // The file's change time is now: not kept.
        assert_eq!(l.subscriptions(&path, read).unwrap(), ["INBOX"]);
        assert_eq!(l.subscriptions(&path, read).unwrap(), ["INBOX"]);
        assert_eq!(reads.get(), 2);
        // A settled stamp (set by hand, as above) is kept and used.
        let stamp = Stamp::of(&fs::symlink_metadata(&path).unwrap());
        *l.subscriptions.lock().unwrap() = Some(Subscriptions {
            stamp,
            names: vec!["Kept".into()],
        });
        assert_eq!(l.subscriptions(&path, read).unwrap(), ["Kept"]);
        assert_eq!(reads.get(), 2);
        // Replaced (a new inode, as facteur writes it): read again.
        let new = d.path().join("subs.new");
        fs::write(&new, "INBOX\nSent\n").unwrap();
        fs::rename(&new, &path).unwrap();
        assert_eq!(l.subscriptions(&path, read).unwrap(), ["INBOX", "Sent"]);
        assert_eq!(reads.get(), 3);
        // Missing: read (the reader says what that means).
        fs::remove_file(&path).unwrap();
        assert!(l.subscriptions(&path, read).is_err());
    }

    #[test]
    fn stamps_settle_after_two_seconds() {
        let d = tempfile::tempdir().unwrap();
        let s = Stamp::of(&fs::symlink_metadata(d.path()).unwrap());
        let t = s.mtime.0.max(s.ctime.0);
        assert!(!s.settled(t));
        assert!(!s.settled(t + 1));
        assert!(s.settled(t + 2));
    }
}
