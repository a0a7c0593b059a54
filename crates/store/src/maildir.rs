//! One Maildir directory: making it (durably), and writing a message into
//! its `tmp/`. Used by delivery, folder creation, APPEND and COPY.
//!
//! Offers [`ensure_maildir`] (`cur/ new/ tmp/` and the directories above
//! them, created and made durable the first time, three `lstat`s after),
//! [`build_folder`] (a complete folder under a temporary name, durable
//! before it is renamed into place), [`write_tmp`] (a message written into
//! `tmp/` in LF form and fsynced) and [`set_mtime`]. Every directory entry
//! goes through fsops.rs.
//!
//! Durability: a new directory is reachable after a power failure only if
//! its entry in its parent was fsynced after it was made, and so on up to
//! the mail root; [`ensure_maildir`] fsyncs exactly those directories, and
//! only when it made something (docs/store-format.md, "Durability").
//!
//! Security: `cur/`, `new/` and `tmp/` must be real directories, never
//! symbolic links: one that is a link is refused (and logged), not
//! followed. Files are created with `O_EXCL` (which never follows a link)
//! and mode 0600, directories 0700.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use crate::crlf::ToLf;
use crate::fsops;
use crate::name::{UniqueNames, base_with_sizes};
use crate::{Result, StoreError};

/// The three directories of a Maildir.
const SUBDIRS: [&str; 3] = ["cur", "new", "tmp"];

/// The empty file that marks a Maildir++ folder.
pub(crate) const FOLDER_MARK: &str = "maildirfolder";

/// Makes `dir` a Maildir (`cur/ new/ tmp/`, 0700) if it is not one yet,
/// with any missing directory above it up to the mail root `root`; what it
/// creates is durable before it returns (see the module header). A
/// Maildir that exists costs three `lstat`s and no fsync.
pub(crate) fn ensure_maildir(dir: &Path, root: &Path) -> Result<()> {
    let mut missing: Vec<PathBuf> = Vec::new();
    for sub in SUBDIRS {
        let p = dir.join(sub);
        match fs::symlink_metadata(&p) {
            Ok(m) if m.file_type().is_dir() => {}
            Ok(_) => {
                tracing::warn!(path = %p.display(), "not a directory (a symbolic link?): refused");
                return Err(StoreError::Io(io::Error::other(format!(
                    "{}: not a directory",
                    p.display()
                ))));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => missing.push(p),
            Err(e) => return Err(e.into()),
        }
    }
    if !missing.is_empty() {
        let refs: Vec<&Path> = missing.iter().map(PathBuf::as_path).collect();
        facteur_util::create_dirs_durable_with(&fsops::StoreDirs, &refs, root, 0o700)?;
    }
    Ok(())
}

/// Builds a complete, empty folder (`cur/ new/ tmp/` and the
/// `maildirfolder` mark) at `tmp`, a new temporary name in the user
/// directory, and fsyncs it: renamed into place afterwards, the folder
/// arrives whole (the caller fsyncs the user directory after the rename).
/// On error, what was built is removed.
pub(crate) fn build_folder(tmp: &Path) -> io::Result<()> {
    let result = (|| {
        fsops::mkdir(tmp, 0o700)?;
        for sub in SUBDIRS {
            fsops::mkdir(&tmp.join(sub), 0o700)?;
        }
        let mark = tmp.join(FOLDER_MARK);
        fsops::create_new(&mark, 0o600)?;
        fsops::fsync_dir(tmp)
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(tmp);
    }
    result
}

/// A message written into `tmp/` and fsynced.
#[derive(Debug)]
pub(crate) struct Written {
    pub tmp: PathBuf,
    pub unique: String,
    pub disk_size: u64,
    pub crlf_size: u64,
}

impl Written {
    /// `<unique>,S=..,W=..`
    pub fn base(&self) -> String {
        base_with_sizes(&self.unique, self.disk_size, self.crlf_size)
    }

    /// Removes the temporary file (after a refusal or an error).
    pub fn discard(&self) {
        let _ = fs::remove_file(&self.tmp);
    }
}

/// Bytes read from the content at a time.
const COPY_CHUNK: usize = 64 * 1024;

thread_local! {
    /// The copy buffers of [`write_tmp`], one pair per thread for the
    /// thread's life: a delivery used to allocate (and zero) 128 KiB and
    /// free it, and glibc gave the freed top of a thread's arena back to
    /// the kernel (madvise) often enough that the next delivery's page
    /// faults cost more than the copy.
    static BUFFERS: std::cell::Cell<(Vec<u8>, Vec<u8>)> = const {
        std::cell::Cell::new((Vec::new(), Vec::new()))
    };
}

/// Runs `f` with the thread's copy buffers (a read buffer of
/// [`COPY_CHUNK`] bytes and an output buffer): taken out for the call and
/// put back after (a call further down the stack would find empty ones
/// and make its own).
fn with_buffers<T>(f: impl FnOnce(&mut [u8], &mut Vec<u8>) -> T) -> T {
    let (mut buf, mut out) = BUFFERS.try_with(std::cell::Cell::take).unwrap_or_default();
    if buf.len() != COPY_CHUNK {
        buf.resize(COPY_CHUNK, 0);
    }
    let r = f(&mut buf, &mut out);
    let _ = BUFFERS.try_with(|b| b.set((buf, out)));
    r
}

/// Writes `content` (CRLF form) into `<folder>/tmp/` in LF form and fsyncs it.
pub(crate) fn write_tmp(
    folder: &Path,
    names: &UniqueNames,
    content: &mut dyn Read,
) -> Result<Written> {
    let mut tries = 0;
    let (unique, tmp, mut file) = loop {
        let unique = names.next();
        let tmp = folder.join("tmp").join(&unique);
        match fsops::create_new(&tmp, 0o600) {
            Ok(f) => break (unique, tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 3 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let result = with_buffers(|buf: &mut [u8], out| -> io::Result<(u64, u64)> {
        out.clear();
        let mut conv = ToLf::new();
        let (mut crlf, mut disk) = (0u64, 0u64);
        loop {
            let n = match content.read(buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            crlf += n as u64;
            conv.push(&buf[..n], out);
            file.write_all(out)?;
            disk += out.len() as u64;
            out.clear();
        }
        conv.finish(out);
        file.write_all(out)?;
        disk += out.len() as u64;
        fsops::sync_file(&file, &tmp)?;
        Ok((disk, crlf))
    });
    match result {
        Ok((disk_size, crlf_size)) => Ok(Written {
            tmp,
            unique,
            disk_size,
            crlf_size,
        }),
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            Err(e.into())
        }
    }
}

/// Sets a file's mtime (the INTERNALDATE of a message) to `secs`; never
/// through a symbolic link.
pub(crate) fn set_mtime(path: &Path, secs: i64) -> io::Result<()> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|f: File| f.set_modified(t))
}
