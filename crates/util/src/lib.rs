//! facteur-util: generic helpers at the bottom of the workspace.
//!
//! Offers durable file operations: [`fsync_dir`] (make a rename or a create in
//! a directory durable), [`write_atomic`] (temporary name, write, fsync,
//! rename, fsync the directory) and [`create_dirs_durable`] (make missing
//! directories and fsync every directory an entry was added to), and
//! [`group::fsync_dir`] (one directory fsync shared by the threads that ask
//! for it at once: group commit); [`line`],
//! the command-line framer every line protocol (SMTP, LMTP, POP3, IMAP)
//! reads with; [`date`] and [`id`]; [`percent_decode`] (URL segments).
//! Needs `std` and memchr.
//!
//! Guarantees: after `write_atomic` returns `Ok`, a crash at any later moment
//! leaves either the complete new file or the old one, never a mix; before it
//! returns, readers see the old file or nothing. After `create_dirs_durable`
//! returns `Ok`, the directories it was given survive a power failure.
//!
//! A directory entry (a new file, a new directory, the target of a rename)
//! is durable only once the directory that holds it has been fsynced after
//! the entry was made (fsync(2): "calling fsync() on a file does not
//! necessarily ensure that the entry in the directory containing the file
//! has also reached disk"); and a new directory is reachable after a crash
//! only if its own entry, in its parent, is durable too.

pub mod date;
pub mod group;
pub mod id;
pub mod line;

pub use id::new_id;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Fsyncs a directory, so that entries created, renamed or removed in it
/// survive a crash.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Writes `contents` to `path` atomically and durably, with permission bits
/// `mode` (before the umask).
pub fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> io::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fsync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Reads the secret in `path`, or makes one (32 random bytes, mode 0600)
/// if there is none yet. Several processes may race to make it: each
/// writes its own temporary file and links it into place, the first link
/// wins and everybody reads the winner's.
pub fn load_or_create_secret(path: &Path) -> io::Result<Vec<u8>> {
    match fs::read(path) {
        Ok(s) if s.len() >= 16 => return Ok(s),
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: a secret of under 16 bytes", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut secret = vec![0u8; 32];
    File::open("/dev/urandom")?.read_exact(&mut secret)?;
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(&secret)?;
    f.sync_all()?;
    let linked = fs::hard_link(&tmp, path);
    let _ = fs::remove_file(&tmp);
    match linked {
        Ok(()) => {
            if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fsync_dir(dir)?;
            }
            Ok(secret)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => fs::read(path),
        Err(e) => Err(e),
    }
}

/// Creates `dir` and its parents with `mode` for the ones it creates. Not
/// durable: see [`create_dirs_durable`] for directories that an
/// acknowledgement depends on.
pub fn create_dir_all_mode(dir: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    fs::DirBuilder::new().recursive(true).mode(mode).create(dir)
}

/// The two calls [`create_dirs_durable_with`] makes, so that a caller can
/// route them through its own layer (and its tests record them).
pub trait DirOps {
    /// mkdir(2) of one directory, with `mode` (before the umask).
    fn mkdir(&self, dir: &Path, mode: u32) -> io::Result<()>;
    /// fsync(2) of one directory.
    fn fsync_dir(&self, dir: &Path) -> io::Result<()>;
}

/// [`DirOps`] straight to the system.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemDirs;

impl DirOps for SystemDirs {
    fn mkdir(&self, dir: &Path, mode: u32) -> io::Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new().mode(mode).create(dir)
    }

    fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
        fsync_dir(dir)
    }
}

/// [`create_dirs_durable_with`] with [`SystemDirs`].
pub fn create_dirs_durable(dirs: &[&Path], top: &Path, mode: u32) -> io::Result<bool> {
    create_dirs_durable_with(&SystemDirs, dirs, top, mode)
}

/// Creates the directories `dirs` and their missing parents with `mode`,
/// then makes them durable: fsyncs every directory in which it created an
/// entry, and every ancestor of those up to and including `top`, deepest
/// first, so that each new entry is durable and reachable from `top`
/// before this returns. Directories that already exist are followed (a
/// symbolic link an administrator placed is fine) and left alone; if all
/// of `dirs` exist nothing is fsynced (returns false: nothing created).
///
/// A directory another process created at the same moment (`EEXIST` on a
/// directory that was missing a moment before) counts as created here
/// too: that process may not have fsynced its parent yet. The ancestors
/// up to `top` are fsynced for the same reason: the directory above a new
/// one may have been made, but not yet made durable, by a process that
/// died in between.
pub fn create_dirs_durable_with(
    ops: &impl DirOps,
    dirs: &[&Path],
    top: &Path,
    mode: u32,
) -> io::Result<bool> {
    let parent_of = |p: &Path| -> PathBuf {
        match p.parent() {
            Some(q) if !q.as_os_str().is_empty() => q.to_path_buf(),
            _ => PathBuf::from("."),
        }
    };
    // Directories whose entries changed, to fsync.
    let mut touched: Vec<PathBuf> = Vec::new();
    for dir in dirs {
        // The missing ones, outermost first.
        let mut missing = Vec::new();
        let mut p = dir.to_path_buf();
        loop {
            match fs::metadata(&p) {
                Ok(m) if m.is_dir() => break,
                Ok(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::AlreadyExists,
                        format!("{}: exists and is not a directory", p.display()),
                    ));
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            let up = parent_of(&p);
            missing.push(std::mem::replace(&mut p, up));
            if p == Path::new(".") || p == Path::new("/") {
                break;
            }
        }
        for m in missing.into_iter().rev() {
            match ops.mkdir(&m, mode) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && m.is_dir() => {}
                Err(e) => return Err(e),
            }
            touched.push(parent_of(&m));
        }
    }
    if touched.is_empty() {
        return Ok(false);
    }
    // Every ancestor of a touched directory, up to `top`.
    let mut all: Vec<PathBuf> = Vec::new();
    for t in touched {
        let mut p = t;
        loop {
            if !all.contains(&p) {
                all.push(p.clone());
            }
            if p == top || !p.starts_with(top) {
                break;
            }
            p = parent_of(&p);
        }
    }
    // Deepest first: a directory becomes durably reachable only once what
    // it holds is.
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in &all {
        ops.fsync_dir(p)?;
    }
    Ok(true)
}

/// Decodes RFC 3986 percent-encoding (`%` and two hex digits) into UTF-8;
/// None when an escape is malformed or the result is not UTF-8. Pure; never
/// panics.
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return None;
            }
            out.push(u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_escapes_are_two_hex_digits() {
        assert_eq!(percent_decode("a%20b%2Fc").as_deref(), Some("a b/c"));
        assert_eq!(
            percent_decode("Dr%C3%A4fts").as_deref(),
            Some("Dr\u{e4}fts")
        );
        assert_eq!(percent_decode("plain").as_deref(), Some("plain"));
        for bad in ["%", "%2", "%ZZ", "%+5", "%FF", "a%2"] {
            assert_eq!(percent_decode(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_secret_is_made_once_and_kept() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("srs.secret");
        let a = load_or_create_secret(&p).unwrap();
        assert_eq!(a.len(), 32);
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(load_or_create_secret(&p).unwrap(), a);
        fs::write(&p, b"short").unwrap();
        assert!(load_or_create_secret(&p).is_err());
        assert_eq!(
            fs::read_dir(d.path()).unwrap().count(),
            1,
            "no temporary file left"
        );
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn atomic_write_replaces_whole_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f.txt");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(
            fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // No temporary file is left behind.
        assert_eq!(fs::read_dir(d.path()).unwrap().count(), 1);
    }

    /// Records the calls, and makes them.
    #[derive(Default)]
    struct Recorder(std::cell::RefCell<Vec<String>>);

    impl DirOps for Recorder {
        fn mkdir(&self, dir: &Path, mode: u32) -> io::Result<()> {
            self.0.borrow_mut().push(format!("mkdir {}", dir.display()));
            SystemDirs.mkdir(dir, mode)
        }
        fn fsync_dir(&self, dir: &Path) -> io::Result<()> {
            self.0.borrow_mut().push(format!("fsync {}", dir.display()));
            SystemDirs.fsync_dir(dir)
        }
    }

    #[test]
    fn created_directories_are_fsynced_in_their_parents_deepest_first() {
        let d = tempfile::tempdir().unwrap();
        let top = d.path().join("mail");
        fs::create_dir(&top).unwrap();
        let user = top.join("dom/u");
        let subs = [user.join("cur"), user.join("new"), user.join("tmp")];
        let refs: Vec<&Path> = subs.iter().map(PathBuf::as_path).collect();
        let r = Recorder::default();
        assert!(create_dirs_durable_with(&r, &refs, &top, 0o700).unwrap());
        let t = top.display();
        assert_eq!(
            *r.0.borrow(),
            [
                format!("mkdir {t}/dom"),
                format!("mkdir {t}/dom/u"),
                format!("mkdir {t}/dom/u/cur"),
                format!("mkdir {t}/dom/u/new"),
                format!("mkdir {t}/dom/u/tmp"),
                format!("fsync {t}/dom/u"),
                format!("fsync {t}/dom"),
                format!("fsync {t}"),
            ]
        );
        for s in &subs {
            assert_eq!(fs::metadata(s).unwrap().permissions().mode() & 0o777, 0o700);
        }
        // Existing: nothing at all.
        let r = Recorder::default();
        assert!(!create_dirs_durable_with(&r, &refs, &top, 0o700).unwrap());
        assert!(r.0.borrow().is_empty());
        // A new directory under an existing one: its parent and every
        // ancestor up to the top.
        let r = Recorder::default();
        let more = user.join(".Sent");
        assert!(create_dirs_durable_with(&r, &[&more], &top, 0o700).unwrap());
        assert_eq!(
            *r.0.borrow(),
            [
                format!("mkdir {t}/dom/u/.Sent"),
                format!("fsync {t}/dom/u"),
                format!("fsync {t}/dom"),
                format!("fsync {t}"),
            ]
        );
        // A file in the way is an error.
        fs::write(user.join("f"), b"").unwrap();
        let f = user.join("f/x");
        assert!(create_dirs_durable(&[&f], &top, 0o700).is_err());
    }

    #[test]
    fn fsync_dir_on_missing_dir_fails() {
        assert!(fsync_dir(Path::new("/nonexistent/facteur")).is_err());
    }
}
