//! Where things are: user names and mailbox names to directories, and what
//! counts as a Maildir. Pure path logic (plus the `lstat`s of
//! [`is_maildir`]), used by delivery, folders and mailboxes alike.
//!
//! Names: the IMAP-visible hierarchy separator is `/`; names are UTF-8 (the
//! IMAP layer does modified UTF-7). On disk a folder is the Maildir++
//! directory `.<c1>.<c2>...` in the user directory, where in each component
//! `%` is written `%25` and `.` is written `%2E` (so the mapping is
//! reversible); INBOX is the user directory itself, and `inbox` in any case
//! means INBOX. A user `local@domain` lives in `<root>/<domain>/<local>/`.
//!
//! Security: [`user_dir`] refuses empty parts, `/`, `\`, NUL, control
//! characters, a leading `.` (so `.` and `..` too); [`normalize`] refuses
//! empty names and components, control characters, names over 255 bytes
//! (and directory names over 255 bytes); after escaping, no component can
//! be `.`, `..` or hold `/`. So no name reaches outside the mail root or the
//! user directory. [`is_maildir`] refuses a folder, or a `cur/`, that is a
//! symbolic link.

use std::fs;
use std::path::{Path, PathBuf};

use crate::{Result, StoreError};

fn check_part(user: &str, part: &str) -> Result<()> {
    if part.is_empty()
        || part.len() > 255
        || part.starts_with('.')
        || part.contains(['/', '\\'])
        || part.chars().any(char::is_control)
    {
        return Err(StoreError::InvalidUser(user.to_owned()));
    }
    Ok(())
}

/// The directory of `user` ("local@domain", already lower-case) under the
/// mail root: `<root>/<domain>/<local>/`. Refuses names that could leave
/// the root.
pub(crate) fn user_dir(root: &Path, user: &str) -> Result<PathBuf> {
    let (local, domain) = user
        .rsplit_once('@')
        .ok_or_else(|| StoreError::InvalidUser(user.to_owned()))?;
    check_part(user, local)?;
    check_part(user, domain)?;
    Ok(root.join(domain).join(local))
}

/// Checks a mailbox name and returns its normal form (`INBOX` spelled so).
pub fn normalize(name: &str) -> Result<String> {
    let bad = || StoreError::InvalidName(name.to_owned());
    if name.is_empty() || name.len() > 255 || name.chars().any(char::is_control) {
        return Err(bad());
    }
    let mut out = String::with_capacity(name.len());
    for (i, comp) in name.split('/').enumerate() {
        if comp.is_empty() {
            return Err(bad());
        }
        if i > 0 {
            out.push('/');
        }
        if i == 0 && comp.eq_ignore_ascii_case("INBOX") {
            out.push_str("INBOX");
        } else {
            out.push_str(comp);
        }
    }
    if out != "INBOX" && dir_name(&out).len() > 255 {
        return Err(bad());
    }
    Ok(out)
}

/// The directory name of a normalized name other than INBOX: `.a.b`.
pub fn dir_name(norm: &str) -> String {
    let mut s = String::with_capacity(norm.len() + 4);
    for comp in norm.split('/') {
        s.push('.');
        for c in comp.chars() {
            match c {
                '%' => s.push_str("%25"),
                '.' => s.push_str("%2E"),
                c => s.push(c),
            }
        }
    }
    s
}

/// The name a folder directory stands for, if it is one of ours (the
/// mapping must give the directory name back exactly).
pub fn decode_dir(dir: &str) -> Option<String> {
    let rest = dir.strip_prefix('.')?;
    let mut out = String::with_capacity(rest.len());
    for (i, comp) in rest.split('.').enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(
            &comp
                .replace("%2E", ".")
                .replace("%2e", ".")
                .replace("%25", "%"),
        );
    }
    let norm = normalize(&out).ok()?;
    (norm != "INBOX" && dir_name(&norm) == dir).then_some(norm)
}

/// The directory of a normalized name.
pub fn folder_path(user_dir: &Path, norm: &str) -> PathBuf {
    if norm == "INBOX" {
        user_dir.to_path_buf()
    } else {
        user_dir.join(dir_name(norm))
    }
}

/// Whether `dir` is a Maildir we may use: its `cur/` is a real directory,
/// and a folder (`.Name`) is a real directory too, never a symbolic link,
/// so no mailbox name can lead outside the user's directory. (The user
/// directory itself may be a link an administrator placed.)
pub(crate) fn is_maildir(dir: &Path) -> bool {
    maildir_id(dir).is_some()
}

/// [`is_maildir`], and if so the (device, inode) of `cur/` (`lstat`s).
pub(crate) fn maildir_id(dir: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let folder = dir
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with('.'));
    if folder && !real_dir(dir) {
        return None;
    }
    fs::symlink_metadata(dir.join("cur"))
        .ok()
        .filter(|m| m.file_type().is_dir())
        .map(|m| (m.dev(), m.ino()))
}

/// Whether `p` is a directory and not a symbolic link (`lstat`).
pub(crate) fn real_dir(p: &Path) -> bool {
    fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_dir())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_dir_refuses_escapes() {
        let root = Path::new("/mail");
        assert_eq!(
            user_dir(root, "bob@example.test").unwrap(),
            root.join("example.test/bob")
        );
        for bad in [
            "bob",
            "@example.test",
            "bob@",
            "../x@example.test",
            "bob@..",
            "a/b@c",
            "bob@ex/../..",
            "b\0@c",
            ".x@c",
            "x@.c",
        ] {
            assert!(
                matches!(user_dir(root, bad), Err(StoreError::InvalidUser(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn names_escape_and_refuse() {
        assert_eq!(normalize("inbox").unwrap(), "INBOX");
        assert_eq!(normalize("Inbox/x").unwrap(), "INBOX/x");
        assert_eq!(dir_name("Lists/rust"), ".Lists.rust");
        assert_eq!(dir_name("a.b/50%"), ".a%2Eb.50%25");
        assert_eq!(dir_name(".."), ".%2E%2E");
        for n in ["Lists/rust", "a.b/50%", "..", "é/ü", "x%2Ey"] {
            assert_eq!(decode_dir(&dir_name(n)).as_deref(), Some(n), "{n}");
        }
        for bad in ["", "/abs", "a//b", "a/", "x\ny", "a\0b", &"x".repeat(256)] {
            assert!(
                matches!(normalize(bad), Err(StoreError::InvalidName(_))),
                "{bad:?}"
            );
        }
        // `..` and `a/../../b` are harmless names: they stay inside.
        assert_eq!(dir_name(&normalize("../x").unwrap()), ".%2E%2E.x");
        assert_eq!(
            dir_name(&normalize("a/../../b").unwrap()),
            ".a.%2E%2E.%2E%2E.b"
        );
        assert_eq!(decode_dir(".a%41"), None, "not ours: not listed");
        assert_eq!(decode_dir("cur"), None);
    }
}
