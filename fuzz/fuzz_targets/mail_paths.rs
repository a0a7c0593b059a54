//! Fuzz target for the parsers that turn network names into paths (issue
//! 14): an address into a user directory under the mail root, a mailbox
//! name into a Maildir++ folder directory, and a directory found on disk
//! back into a name. Checks: a user directory is exactly two plain
//! components below the root (no `.`, `..`, `/` or NUL); a mailbox's
//! directory is one plain component starting with `.`, never `.` or `..`;
//! the name ↔ directory mapping round-trips both ways, so two names never
//! share a directory and a directory stands for at most one name.

#![no_main]

use facteur_store::{Store, StoreConfig, decode_dir, dir_name, normalize_name};
use libfuzzer_sys::fuzz_target;
use std::path::{Component, Path};

fn plain(c: &str) -> bool {
    !c.is_empty() && c != "." && c != ".." && !c.contains(['/', '\0'])
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let root = Path::new("/mail");
    let store = Store::new(StoreConfig { root: root.to_path_buf(), hostname: "h".into() });
    if let Ok(dir) = store.user_dir(s) {
        let rest = dir.strip_prefix(root).expect("under the root");
        let comps: Vec<Component<'_>> = rest.components().collect();
        assert_eq!(comps.len(), 2, "{s:?} -> {dir:?}");
        for c in comps {
            match c {
                Component::Normal(n) => assert!(plain(n.to_str().unwrap_or("/")), "{s:?} -> {dir:?}"),
                other => panic!("{s:?} -> {dir:?}: {other:?}"),
            }
        }
    }
    if let Ok(norm) = normalize_name(s) {
        assert_eq!(normalize_name(&norm).ok().as_deref(), Some(norm.as_str()), "normal form is stable");
        if norm != "INBOX" {
            let d = dir_name(&norm);
            assert!(d.starts_with('.') && plain(&d) && d.len() > 1, "{norm:?} -> {d:?}");
            assert_eq!(decode_dir(&d).as_deref(), Some(norm.as_str()), "{norm:?} -> {d:?}");
        }
    }
    if let Some(name) = decode_dir(s) {
        assert_eq!(dir_name(&name), s, "{s:?} stands for {name:?}");
    }
});
