//! Opening a Maildir's directories and message files without following
//! symbolic links: every call is made relative to a directory descriptor
//! (`openat`, `renameat`, `linkat`, `unlinkat`, `fstatat`), with
//! `O_NOFOLLOW` / `AT_SYMLINK_NOFOLLOW`.
//!
//! Offers [`Dir`] (an open directory and the `*at` calls on it),
//! [`MsgFile`] (a message file open for reading: a regular file, never
//! through a link) and [`OpenMaildir`] (a folder and its `cur/`, opened
//! once per selected mailbox).
//!
//! Security: anyone who can write into a Maildir (a shell user, a
//! compromised webmail) could put a symbolic link where the store expects
//! a message or a directory, pointing anywhere the daemons can read or
//! write. So a link in the last component is refused (`ELOOP`) and never
//! followed, a message must be a regular file (a FIFO does not block the
//! open: `O_NONBLOCK`), and a listing returns regular files only (from the
//! directory entry's type, no extra call), so links, FIFOs and
//! directories inside `cur/` or `new/` are skipped; the caller logs them.
//! Only the user directory itself is opened through links (an
//! administrator may have moved it). The workspace forbids `unsafe`, and
//! nix 0.29 hands out raw descriptors: [`Fd`] owns one and closes it.

use std::ffi::OsStr;
use std::io::{self, Read};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode, SFlag};

use crate::fsops::{self, Event};

/// An open file descriptor, closed when dropped. Never copied.
#[derive(Debug)]
pub(crate) struct Fd(RawFd);

impl Drop for Fd {
    fn drop(&mut self) {
        let _ = nix::unistd::close(self.0);
    }
}

/// Whether an error is "a symbolic link where a file or directory was
/// expected" (`ELOOP` from `O_NOFOLLOW`) or "not a directory".
pub(crate) fn is_link_refused(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR))
}

fn not_regular(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: not a regular file", path.display()),
    )
}

const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_CLOEXEC);

/// An open directory.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: Fd,
    path: PathBuf,
}

/// The names in a directory: regular files, and what was skipped.
#[derive(Debug, Default)]
pub(crate) struct Listing {
    /// Shared strings: a scan's new messages keep their names as they are.
    pub files: Vec<Arc<str>>,
    /// Entries that are not regular files (links, FIFOs, directories...).
    pub skipped: Vec<String>,
}

impl Listing {
    /// Logs the skipped entries of directory `dir`, if any.
    pub fn warn_skipped(&self, dir: &Path) {
        warn_skipped(dir, &self.skipped);
    }
}

/// Logs the entries of directory `dir` that were skipped, if any.
pub(crate) fn warn_skipped(dir: &Path, skipped: &[String]) {
    if !skipped.is_empty() {
        tracing::warn!(dir = %dir.display(), entries = ?skipped, "not regular files (symbolic links?): skipped, never followed");
    }
}

impl Dir {
    fn open_flags(path: &Path, flags: OFlag) -> io::Result<Dir> {
        let fd = nix::fcntl::open(path, flags, Mode::empty())?;
        Ok(Dir {
            fd: Fd(fd),
            path: path.to_path_buf(),
        })
    }

    /// Opens `path`, following links in any component (the user
    /// directory, which an administrator may have linked elsewhere).
    pub fn open(path: &Path) -> io::Result<Dir> {
        Dir::open_flags(path, DIR_FLAGS)
    }

    /// Opens `path`; its last component must not be a link.
    pub fn open_nofollow(path: &Path) -> io::Result<Dir> {
        Dir::open_flags(path, DIR_FLAGS | OFlag::O_NOFOLLOW)
    }

    /// Opens the directory `name` in this one, never through a link.
    pub fn sub(&self, name: &str) -> io::Result<Dir> {
        let fd = nix::fcntl::openat(
            Some(self.fd.0),
            name,
            DIR_FLAGS | OFlag::O_NOFOLLOW,
            Mode::empty(),
        )?;
        Ok(Dir {
            fd: Fd(fd),
            path: self.path.join(name),
        })
    }

    /// Where this directory was opened (for logs and records).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `fstat` of this directory.
    pub fn stat(&self) -> io::Result<FileStat> {
        Ok(nix::sys::stat::fstat(self.fd.0)?)
    }

    /// `fstatat` of `name`, not through a link (a link is described as
    /// itself).
    pub fn stat_at(&self, name: &str) -> io::Result<FileStat> {
        Ok(nix::sys::stat::fstatat(
            Some(self.fd.0),
            name,
            AtFlags::AT_SYMLINK_NOFOLLOW,
        )?)
    }

    /// Opens the regular file `name` for reading, never through a link.
    /// Anything else is refused (`ELOOP` for a link, `InvalidData` for a
    /// FIFO, a socket or a directory).
    pub fn open_file(&self, name: &str) -> io::Result<MsgFile> {
        let fd = nix::fcntl::openat(
            Some(self.fd.0),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let f = MsgFile(Fd(fd));
        let st = f.stat()?;
        if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
            return Err(not_regular(&self.path.join(name)));
        }
        Ok(f)
    }

    /// The entries of this directory (`.` and `..` aside, names that are
    /// not UTF-8 ignored): regular files, and the rest. The type comes from
    /// the directory entry; only a file system that does not give it costs
    /// an `fstatat`.
    pub fn list(&self) -> io::Result<Listing> {
        let mut out = Listing::default();
        self.each_entry(|name, regular| {
            if regular {
                out.files.push(name.into());
            } else {
                out.skipped.push(name.to_owned());
            }
        })?;
        Ok(out)
    }

    /// [`Dir::list`] as it reads: `each(name, regular)` for every entry.
    pub fn each_entry(&self, mut each: impl FnMut(&str, bool)) -> io::Result<()> {
        let mut d = nix::dir::Dir::openat(Some(self.fd.0), ".", DIR_FLAGS, Mode::empty())?;
        for e in d.iter() {
            let e = e?;
            let raw = e.file_name().to_bytes();
            if raw == b"." || raw == b".." {
                continue;
            }
            let Ok(name) = std::str::from_utf8(raw) else {
                continue;
            };
            let regular = match e.file_type() {
                Some(t) => t == nix::dir::Type::File,
                None => match self.stat_at(name) {
                    Ok(st) => {
                        SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
                    }
                    // Gone meanwhile.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                },
            };
            each(name, regular);
        }
        Ok(())
    }

    /// `renameat` of `from` in this directory to `to` in `to_dir` (a link
    /// is moved as itself, never followed).
    pub fn rename(&self, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
        nix::fcntl::renameat(Some(self.fd.0), from, Some(to_dir.fd.0), to)?;
        fsops::record(|| Event::Rename(self.path.join(from), to_dir.path.join(to)));
        Ok(())
    }

    /// `renameat` of the file at `from` (a path) to `to` in this directory.
    pub fn rename_into(&self, from: &Path, to: &str) -> io::Result<()> {
        nix::fcntl::renameat(None, from, Some(self.fd.0), to)?;
        fsops::record(|| Event::Rename(from.to_path_buf(), self.path.join(to)));
        Ok(())
    }

    /// `linkat` of `from` in this directory as `to` in `to_dir` (without
    /// `AT_SYMLINK_FOLLOW`: a link is never followed).
    pub fn link(&self, from: &str, to_dir: &Dir, to: &str) -> io::Result<()> {
        nix::unistd::linkat(
            Some(self.fd.0),
            OsStr::from_bytes(from.as_bytes()),
            Some(to_dir.fd.0),
            OsStr::from_bytes(to.as_bytes()),
            AtFlags::empty(),
        )?;
        fsops::record(|| Event::Link(to_dir.path.join(to)));
        Ok(())
    }

    /// `unlinkat` of the file `name` (a link is removed as itself).
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        Ok(nix::unistd::unlinkat(
            Some(self.fd.0),
            name,
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        )?)
    }

    /// fsync(2) of this directory.
    pub fn fsync(&self) -> io::Result<()> {
        nix::unistd::fsync(self.fd.0)?;
        fsops::record(|| Event::SyncDir(self.path.clone()));
        Ok(())
    }
}

/// A message file open for reading: a regular file, opened without
/// following a link.
#[derive(Debug)]
pub(crate) struct MsgFile(Fd);

impl MsgFile {
    /// `fstat` of the file.
    pub fn stat(&self) -> io::Result<FileStat> {
        Ok(nix::sys::stat::fstat((self.0).0)?)
    }
}

impl Read for MsgFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        Ok(nix::unistd::read((self.0).0, buf)?)
    }
}

/// A small file read whole, not through a link (`O_NOFOLLOW`; a FIFO
/// does not block the open).
pub(crate) fn read_to_string(path: &Path) -> io::Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut s = String::new();
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)?
        .read_to_string(&mut s)?;
    Ok(s)
}

/// (device, inode) of a file.
pub(crate) type FileId = (u64, u64);

/// The id in a `FileStat`.
pub(crate) fn file_id(st: &FileStat) -> FileId {
    (st.st_dev, st.st_ino)
}

/// A selected mailbox's directories, open: the folder (INBOX: the user
/// directory) and its `cur/`, neither through a link (but the user
/// directory, see the module header). `new/` and `tmp/` are opened when a
/// scan needs them, the same way. So a selected mailbox holds two
/// descriptors while it is in use (an IDLE session closes them while it
/// waits: `Mailbox::park`): reading a message is then one `openat`, as
/// many calls as the path-based open it replaces.
#[derive(Debug)]
pub(crate) struct OpenMaildir {
    pub folder: Dir,
    pub cur: Dir,
    /// The id of `cur/` when opened: a directory replaced since (another
    /// tool, a restore) is opened again (`Mailbox::refresh`).
    pub cur_id: FileId,
}

impl OpenMaildir {
    /// Opens the Maildir at `dir`; `folder`: a folder (`.Name`), which
    /// must not be a link, else INBOX (the user directory).
    pub fn open(dir: &Path, folder: bool) -> io::Result<OpenMaildir> {
        let folder = if folder {
            Dir::open_nofollow(dir)?
        } else {
            Dir::open(dir)?
        };
        let cur = folder.sub("cur")?;
        let cur_id = file_id(&cur.stat()?);
        Ok(OpenMaildir {
            folder,
            cur,
            cur_id,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    #[test]
    fn links_are_refused_and_listed_apart() {
        let d = tempfile::tempdir().unwrap();
        let outside = d.path().join("outside");
        fs::create_dir(&outside).unwrap();
        fs::write(outside.join("secret"), b"secret").unwrap();
        let m = d.path().join("m");
        fs::create_dir_all(m.join("cur")).unwrap();
        fs::write(m.join("cur/real"), b"mail").unwrap();
        symlink(outside.join("secret"), m.join("cur/link")).unwrap();
        symlink(&outside, m.join("new")).unwrap();
        let md = OpenMaildir::open(&m, true).unwrap();
        let mut l = md.cur.list().unwrap();
        l.files.sort();
        assert_eq!(l.files, [Arc::from("real")]);
        assert_eq!(l.skipped, ["link"]);
        let mut s = String::new();
        md.cur
            .open_file("real")
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "mail");
        assert!(is_link_refused(&md.cur.open_file("link").unwrap_err()));
        assert!(is_link_refused(&md.folder.sub("new").unwrap_err()));
        // A directory is no message.
        fs::create_dir(m.join("cur/dir")).unwrap();
        assert_eq!(
            md.cur.open_file("dir").unwrap_err().kind(),
            io::ErrorKind::InvalidData
        );
        // A folder that is a link is refused; INBOX (the user directory)
        // may be one.
        symlink(&m, d.path().join(".Linked")).unwrap();
        assert!(OpenMaildir::open(&d.path().join(".Linked"), true).is_err());
        assert!(OpenMaildir::open(&d.path().join(".Linked"), false).is_ok());
    }
}
