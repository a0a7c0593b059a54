//! The spool directory: creating, listing, reading, updating, moving and
//! removing queue files.
//!
//! Layout of the module: this file holds [`Spool`] itself (opening the
//! spool, paths, the file modes); each job has its own file:
//!
//! ```text
//!   spool/create.rs   Spool::create: a new queue file (writer.rs commits it)
//!   spool/read.rs     list, read, find, open_message
//!   spool/state.rs    update: the state log of a message
//!   spool/moves.rs    move_to, relocate, rewrite_recipients, remove, discard
//!   spool/sweep.rs    sweep: what crashes leave behind
//!   spool/recycle.rs  the files of delivered messages, kept for reuse
//! ```
//!
//! Needs: a POSIX file system with hard links (falls back to a checked
//! rename without them), `facteur-util` for fsync helpers and queue ids.
//!
//! Guarantees (see the crate documentation): nothing is visible in a queue
//! directory before it is complete and durable; `update` is atomic and
//! durable; ids are validated before use in paths; files are opened with
//! O_NOFOLLOW and must be regular files.
//!
//! Concurrency: any number of writers may create files at once (ids are
//! reserved with O_EXCL). Operations on one existing queue file (update,
//! move, rewrite, remove) must be serialized by the caller; qmgr owns the
//! messages in its queues, and facteurctl asks qmgr or works on `hold/`.

mod create;
mod moves;
mod read;
mod recycle;
mod state;
mod sweep;
#[cfg(test)]
mod testutil;

use crate::{QueueName, Result, SpoolError, valid_queue_id};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of `maildrop/`: setgid (files get the spool's group, so qmgr can read
/// them), sticky (users cannot remove each other's files), writable and
/// searchable by all, readable (listable) only by the owner.
pub const MAILDROP_MODE: u32 = 0o3733;
/// Mode of every other directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of queue files in `maildrop/` (group: the spool's, via setgid).
pub const MAILDROP_FILE_MODE: u32 = 0o640;
/// Mode of every other queue file and state file.
pub const FILE_MODE: u32 = 0o600;

pub(super) const TMP_DIR: &str = "tmp";
pub(super) const STATE_DIR: &str = "state";

/// A spool rooted at a directory. Cheap to clone; holds at most one open
/// descriptor per queue directory (see `queue_dirs`), shared by its clones.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    /// The queue directories, opened `O_PATH` at the first
    /// [`Spool::exists_anywhere`] (each `None` if it could not be):
    /// smtpd asks about every new queue id, and an `fstatat` in an open
    /// directory looks up one name where a path looks up six.
    queue_dirs: std::sync::Arc<std::sync::OnceLock<Vec<Option<File>>>>,
    /// State files of delivered messages kept for reuse (see `discard`);
    /// `None` until first needed.
    free_states: std::sync::Arc<std::sync::Mutex<Option<Vec<PathBuf>>>>,
    /// Queue files of delivered messages waiting in `tmp/.free/` to be
    /// rewritten by `create` (names seen there; another process may have
    /// taken one meanwhile), and how many `discard` kept since it last
    /// trimmed the directory.
    free_queue_files: std::sync::Arc<std::sync::Mutex<(Vec<PathBuf>, u32)>>,
    /// When `discard` last fsynced each queue directory (moves.rs).
    discard_syncs: std::sync::Arc<std::sync::Mutex<[Option<std::time::Instant>; 6]>>,
}

pub(super) fn not_found_to(e: io::Error, what: impl FnOnce() -> String) -> SpoolError {
    if e.kind() == io::ErrorKind::NotFound {
        SpoolError::NotFound(what())
    } else {
        SpoolError::Io(e)
    }
}

pub(super) fn invalid_input(msg: String) -> SpoolError {
    SpoolError::Io(io::Error::new(io::ErrorKind::InvalidInput, msg))
}

/// Opens an existing queue or state file for reading, refusing symlinks and
/// anything but a regular file; with its length.
pub(super) fn open_regular(path: &Path, id: &str) -> Result<(File, u64)> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                SpoolError::Corrupt(format!("{}: is a symbolic link", path.display()))
            } else {
                not_found_to(e, || id.to_string())
            }
        })?;
    let m = f.metadata()?;
    if !m.file_type().is_file() {
        return Err(SpoolError::Corrupt(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    Ok((f, m.len()))
}

impl Spool {
    /// Opens the spool at `root`, creating the queue directories (and the
    /// private `tmp/` and `state/`) that are missing, durably (the root is
    /// fsynced after). Existing directories keep their modes: an
    /// unprivileged `sendmail` only needs them to exist.
    pub fn open(root: &Path) -> Result<Spool> {
        if !root.is_dir() {
            facteur_util::create_dirs_durable(&[root], root, 0o755)?;
        }
        let spool = Spool {
            root: root.to_path_buf(),
            queue_dirs: Default::default(),
            free_states: Default::default(),
            free_queue_files: Default::default(),
            discard_syncs: Default::default(),
        };
        let mut dirs: Vec<(PathBuf, u32)> = QueueName::ALL
            .iter()
            .map(|&q| {
                let mode = if q == QueueName::Maildrop {
                    MAILDROP_MODE
                } else {
                    DIR_MODE
                };
                (spool.dir(q), mode)
            })
            .collect();
        dirs.push((root.join(TMP_DIR), DIR_MODE));
        dirs.push((root.join(STATE_DIR), DIR_MODE));
        let mut created = false;
        for (dir, mode) in dirs {
            if dir.is_dir() {
                continue;
            }
            match fs::DirBuilder::new().mode(mode & 0o777).create(&dir) {
                Ok(()) => {}
                // Made by another process at the same moment, which may
                // not have fsynced the root yet.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    created = true;
                    continue;
                }
                Err(e) => return Err(e.into()),
            }
            created = true;
            // mkdir applies the umask and may drop the setgid/sticky bits.
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))?;
        }
        if created {
            // A queue file committed into a directory whose own entry is
            // not durable could vanish with it after a power failure.
            facteur_util::fsync_dir(root)?;
        }
        Ok(spool)
    }

    /// The spool root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of queue `q`.
    pub fn dir(&self, q: QueueName) -> PathBuf {
        self.root.join(q.as_str())
    }

    pub(super) fn path(&self, q: QueueName, id: &str) -> Result<PathBuf> {
        if !valid_queue_id(id) {
            return Err(SpoolError::NotFound(id.to_string()));
        }
        Ok(self.dir(q).join(id))
    }

    pub(super) fn state_path(&self, id: &str) -> PathBuf {
        self.root.join(STATE_DIR).join(format!("{id}.state"))
    }

    /// Whether a file named `id` is in any queue directory.
    ///
    /// A directory that could not be opened is asked by path. One opened
    /// stays the one asked about for the life of this `Spool`: a spool
    /// directory replaced under a running daemon (not something facteur
    /// does) needs the daemon restarted.
    pub(super) fn exists_anywhere(&self, id: &str) -> bool {
        use std::os::fd::AsRawFd;
        let dirs = self.queue_dirs.get_or_init(|| {
            QueueName::ALL
                .iter()
                .map(|&q| {
                    OpenOptions::new()
                        .read(true)
                        .custom_flags(libc::O_PATH | libc::O_DIRECTORY)
                        .open(self.dir(q))
                        .ok()
                })
                .collect()
        });
        QueueName::ALL.iter().zip(dirs).any(|(&q, dir)| match dir {
            Some(d) => nix::sys::stat::fstatat(
                Some(d.as_raw_fd()),
                id,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .is_ok(),
            None => fs::symlink_metadata(self.dir(q).join(id)).is_ok(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spool::testutil::*;
    use crate::wake_qmgr;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn open_creates_directories_with_modes() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(&d.path().join("spool")).unwrap();
        for q in QueueName::ALL {
            let mode = fs::metadata(spool.dir(q)).unwrap().permissions().mode() & 0o7777;
            let want = if q == QueueName::Maildrop {
                MAILDROP_MODE
            } else {
                DIR_MODE
            };
            assert_eq!(mode, want, "{q}");
        }
        // Opening again is harmless.
        Spool::open(spool.root()).unwrap();
    }

    #[test]
    fn exists_anywhere_looks_in_every_queue_directory() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(&d.path().join("spool")).unwrap();
        let id = facteur_util::new_id();
        assert!(!spool.exists_anywhere(&id));
        for q in QueueName::ALL {
            let path = spool.dir(q).join(&id);
            fs::write(&path, b"x").unwrap();
            assert!(spool.exists_anywhere(&id), "{q}");
            // A clone shares the open directories and sees the same.
            assert!(spool.clone().exists_anywhere(&id), "{q}");
            fs::remove_file(&path).unwrap();
            assert!(!spool.exists_anywhere(&id), "{q}");
        }
        // A name that is only in tmp/ or state/ is in no queue.
        fs::write(d.path().join("spool").join(TMP_DIR).join(&id), b"x").unwrap();
        assert!(!spool.exists_anywhere(&id));
    }

    #[test]
    fn wake_qmgr_is_quiet_and_delivers() {
        let d = tempfile::tempdir().unwrap();
        wake_qmgr(&d.path().join("missing.sock"));
        let path = d.path().join("qmgr.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        wake_qmgr(&path);
        let mut buf = [0u8; 8];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"W");
    }
}
