//! Maildir++ quota: the `maildirsize` file in the user directory.
//!
//! Offers [`check`] (would this message fit?), [`record`] (account for an
//! added or removed message) and [`usage`]. Needs the folder layout (any
//! `.Name/` directory of the user with a `cur/`) and the `S=` sizes in file
//! names. Reads and writes no index: delivery calls it on its hot path.
//!
//! Format (Maildir++, as Courier documents it): the first line holds the
//! limits, `<bytes>S,<messages>C`; every later line is `<bytes> <count>`,
//! a signed change appended with O_APPEND by whoever delivered or removed
//! mail, one `write` per line so concurrent appends never interleave. Usage
//! is the sum of the lines. The file is recalculated from the file names of
//! all folders (and written atomically) when it is missing, longer than 5120
//! bytes, malformed, or its limits differ from the ones asked for; and once
//! more when it says "over quota" but is older than 15 minutes, so drift
//! (lost races between a recalculation and an append) cannot refuse mail
//! for long. The count is advisory, as in Maildir++: it errs by a message or
//! two under races, never unboundedly.
//!
//! With no quota (both limits 0) nothing is read and the file is not
//! created; lines are still appended to an existing file so that it stays
//! right if a quota is set later.
//!
//! Security: `maildirsize` is opened with `O_NOFOLLOW` (a link put there
//! is neither read nor appended to), and folders are summed through
//! descriptors that follow no link (dirfd.rs).

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::dirfd::{Dir, is_link_refused};
use crate::name::parse_file_name;
use crate::{Quota, Result, StoreError};

/// The file name, in the user directory.
pub const FILE: &str = "maildirsize";
const MAX_LEN: u64 = 5120;
const STALE: Duration = Duration::from_secs(15 * 60);

fn limits_line(q: Quota) -> String {
    format!("{}S,{}C", q.bytes, q.messages)
}

/// Reads the sums of the file; `None` if it must be recalculated.
fn read(path: &Path, q: Quota) -> io::Result<Option<(i64, i64, SystemTime)>> {
    let mut f = match OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        // A link: recalculated, and replaced by a file (atomically).
        Err(e) if is_link_refused(&e) => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = f.metadata()?;
    if !meta.is_file() || meta.len() > MAX_LEN {
        return Ok(None);
    }
    let mut text = String::with_capacity(meta.len() as usize);
    match f.read_to_string(&mut text) {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::InvalidData => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut lines = text.lines();
    if lines.next() != Some(limits_line(q).as_str()) {
        return Ok(None);
    }
    let (mut bytes, mut count) = (0i64, 0i64);
    for line in lines {
        let mut it = line.split_ascii_whitespace();
        let (Some(b), Some(c), None) = (it.next(), it.next(), it.next()) else {
            return Ok(None);
        };
        let (Ok(b), Ok(c)) = (b.parse::<i64>(), c.parse::<i64>()) else {
            return Ok(None);
        };
        bytes = bytes.saturating_add(b);
        count = count.saturating_add(c);
    }
    Ok(Some((bytes, count, meta.modified()?)))
}

/// Sums the `S=` sizes (or the file sizes) of every message of every folder.
pub fn scan(user_dir: &Path) -> io::Result<(u64, u64)> {
    let (mut bytes, mut count) = folder_usage(&Dir::open(user_dir)?)?;
    for e in fs::read_dir(user_dir)? {
        let e = e?;
        let n = e.file_name();
        let n = n.to_string_lossy();
        // The entry's own type: a link to a directory is no folder.
        if n.starts_with('.') && n != "." && n != ".." && e.file_type()?.is_dir() {
            let folder = match Dir::open_nofollow(&e.path()) {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::NotFound || is_link_refused(&e) => continue,
                Err(e) => return Err(e),
            };
            let (b, c) = folder_usage(&folder)?;
            bytes += b;
            count += c;
        }
    }
    Ok((bytes, count))
}

/// The `S=` sizes (or file sizes) and the count of the messages of one
/// folder, in `cur/` and `new/`: regular files only, no link followed
/// (a `cur/` or `new/` that is a link counts nothing).
pub fn folder_usage(folder: &Dir) -> io::Result<(u64, u64)> {
    let (mut bytes, mut count) = (0, 0);
    for sub in ["cur", "new"] {
        let dir = match folder.sub(sub) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound || is_link_refused(&e) => continue,
            Err(e) => return Err(e),
        };
        for n in dir.list()?.files {
            let Some(p) = parse_file_name(&n) else {
                continue;
            };
            bytes += match p.disk_size {
                Some(s) => s,
                None => match dir.stat_at(&n) {
                    Ok(st) => u64::try_from(st.st_size).unwrap_or(0),
                    Err(_) => continue, // removed meanwhile
                },
            };
            count += 1;
        }
    }
    Ok((bytes, count))
}

/// Recalculates and rewrites the file; returns the usage.
fn recalc(user_dir: &Path, q: Quota) -> io::Result<(u64, u64)> {
    let (bytes, count) = scan(user_dir)?;
    let text = format!("{}\n{bytes} {count}\n", limits_line(q));
    facteur_util::write_atomic(&user_dir.join(FILE), text.as_bytes(), 0o600)?;
    Ok((bytes, count))
}

/// Current usage (bytes, messages), recalculating the file if needed.
pub fn usage(user_dir: &Path, q: Quota) -> io::Result<(u64, u64)> {
    match read(&user_dir.join(FILE), q)? {
        Some((b, c, _)) => Ok((b.max(0) as u64, c.max(0) as u64)),
        None => recalc(user_dir, q),
    }
}

fn fits(q: Quota, usage: (u64, u64), add_bytes: u64, add_count: u64) -> bool {
    (q.bytes == 0 || usage.0.saturating_add(add_bytes) <= q.bytes)
        && (q.messages == 0 || usage.1.saturating_add(add_count) <= q.messages)
}

/// Refuses with [`StoreError::OverQuota`] if adding `add_count` messages of
/// `add_bytes` (on disk) would exceed `q`.
pub fn check(user_dir: &Path, q: Quota, add_bytes: u64, add_count: u64) -> Result<()> {
    if q == Quota::default() {
        return Ok(());
    }
    let path = user_dir.join(FILE);
    let (usage, stale) = match read(&path, q)? {
        Some((b, c, mtime)) => {
            let age = SystemTime::now().duration_since(mtime).unwrap_or_default();
            ((b.max(0) as u64, c.max(0) as u64), age > STALE)
        }
        None => (recalc(user_dir, q)?, false),
    };
    if fits(q, usage, add_bytes, add_count) {
        return Ok(());
    }
    if stale && fits(q, recalc(user_dir, q)?, add_bytes, add_count) {
        return Ok(());
    }
    Err(StoreError::OverQuota)
}

/// Appends a change to the file, if it exists.
pub fn record(user_dir: &Path, bytes: i64, count: i64) -> io::Result<()> {
    if bytes == 0 && count == 0 {
        return Ok(());
    }
    let mut f = match OpenOptions::new()
        .append(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(user_dir.join(FILE))
    {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    // One write call: O_APPEND makes it atomic with respect to other appends.
    f.write_all(format!("{bytes} {count}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn maildir(d: &Path) {
        for s in ["cur", "new", "tmp", ".Sent/cur", ".Sent/new", ".Sent/tmp"] {
            fs::create_dir_all(d.join(s)).unwrap();
        }
    }

    #[test]
    fn recalculates_from_names_and_appends() {
        let d = tempfile::tempdir().unwrap();
        maildir(d.path());
        fs::write(d.path().join("new/a,S=100,W=104"), b"").unwrap();
        fs::write(d.path().join(".Sent/cur/b,S=50:2,S"), b"").unwrap();
        fs::write(d.path().join("cur/c:2,"), b"12345").unwrap();
        let q = Quota {
            bytes: 1000,
            messages: 10,
        };
        assert_eq!(usage(d.path(), q).unwrap(), (155, 3));
        record(d.path(), 45, 1).unwrap();
        assert_eq!(usage(d.path(), q).unwrap(), (200, 4));
        check(d.path(), q, 800, 1).unwrap();
        assert!(matches!(
            check(d.path(), q, 801, 1),
            Err(StoreError::OverQuota)
        ));
        // Other limits: recalculated (the appended line had no file behind it).
        let q2 = Quota {
            bytes: 0,
            messages: 3,
        };
        assert_eq!(usage(d.path(), q2).unwrap(), (155, 3));
        assert!(matches!(
            check(d.path(), q2, 1, 1),
            Err(StoreError::OverQuota)
        ));
        check(d.path(), Quota::default(), u64::MAX, 1).unwrap();
    }

    #[test]
    fn malformed_or_long_file_is_recalculated() {
        let d = tempfile::tempdir().unwrap();
        maildir(d.path());
        let q = Quota {
            bytes: 10,
            messages: 0,
        };
        fs::write(d.path().join(FILE), "10S,0C\nnonsense\n").unwrap();
        assert_eq!(usage(d.path(), q).unwrap(), (0, 0));
        let mut long = String::from("10S,0C\n");
        while long.len() <= 5120 {
            long.push_str("1 1\n");
        }
        fs::write(d.path().join(FILE), long).unwrap();
        assert_eq!(usage(d.path(), q).unwrap(), (0, 0));
        record(d.path(), -5, -1).unwrap();
        assert_eq!(usage(d.path(), q).unwrap(), (0, 0), "clamped at zero");
    }

    #[test]
    fn a_linked_maildirsize_is_neither_read_nor_appended_to() {
        let d = tempfile::tempdir().unwrap();
        let user = d.path().join("u");
        maildir(&user);
        fs::write(user.join("new/a,S=100,W=104"), b"").unwrap();
        let target = d.path().join("elsewhere");
        fs::write(&target, "1000S,10C\n7 7\n").unwrap();
        std::os::unix::fs::symlink(&target, user.join(FILE)).unwrap();
        assert!(record(&user, 5, 1).is_err());
        let q = Quota {
            bytes: 1000,
            messages: 10,
        };
        assert_eq!(usage(&user, q).unwrap(), (100, 1), "recalculated, not read");
        assert_eq!(fs::read_to_string(&target).unwrap(), "1000S,10C\n7 7\n");
        assert!(fs::symlink_metadata(user.join(FILE)).unwrap().is_file());
    }
}
