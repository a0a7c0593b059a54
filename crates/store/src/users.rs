//! Users' directories: [`Store::user_dir`], [`Store::create_user`] (what
//! `facteurctl user add` runs), [`Store::purge_user`] and
//! [`Store::open_user`].
//!
//! Security: the user name becomes two path components, so it is checked
//! first (layout.rs): no empty part, `/`, NUL, control character, leading
//! `.` or `..`. Directories are made 0700, files 0600.

use std::fs;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use crate::maildir::ensure_maildir;
use crate::{Quota, Result, Store, UserStore, fsops, layout};

impl Store {
    /// The directory of `user` ("local@domain", already lower-case):
    /// `<root>/<domain>/<local>/`. Refuses names that could leave the root.
    pub fn user_dir(&self, user: &str) -> Result<PathBuf> {
        layout::user_dir(&self.shared.cfg.root, user)
    }

    /// Creates the user's Maildir with INBOX and the special-use folders
    /// (Sent, Drafts, Trash, Junk, Archive), subscribed. Idempotent.
    pub fn create_user(&self, user: &str) -> Result<()> {
        let dir = self.user_dir(user)?;
        ensure_maildir(&dir, &self.shared.cfg.root)?;
        let us = self.open_user(user, Quota::default())?;
        us.create_defaults()
    }

    /// Removes the user's directory and all the mail in it. The directory
    /// is first renamed out of the way (atomically), so no delivery lands
    /// in a half-removed tree.
    pub fn purge_user(&self, user: &str) -> Result<()> {
        let dir = self.user_dir(user)?;
        let Some(parent) = dir.parent() else {
            return Ok(());
        };
        self.forget_user(user)?;
        let local = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let aside = parent.join(format!(".purge-{local}-{}", self.shared.names.next()));
        match fsops::rename(&dir, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        fsops::fsync_dir(parent)?;
        fs::remove_dir_all(&aside)?;
        Ok(())
    }

    /// Opens the user's index (creating the Maildir and the index if
    /// missing). `quota` applies to APPEND, COPY and `quota_usage`.
    pub fn open_user(&self, user: &str, quota: Quota) -> Result<UserStore> {
        let dir = self.user_dir(user)?;
        ensure_maildir(&dir, &self.shared.cfg.root)?;
        UserStore::open(Arc::clone(&self.shared), dir, quota)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreError;

    #[test]
    fn user_dir_is_under_the_root() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::for_tests(d.path());
        assert_eq!(
            s.user_dir("bob@example.test").unwrap(),
            d.path().join("example.test/bob")
        );
        assert!(matches!(
            s.user_dir("../x@example.test"),
            Err(StoreError::InvalidUser(_))
        ));
    }

    #[test]
    fn purge_removes_everything() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::for_tests(d.path());
        s.create_user("bob@x.test").unwrap();
        s.deliver("bob@x.test", None, &mut &b"x\r\n"[..], Quota::default())
            .unwrap();
        s.purge_user("bob@x.test").unwrap();
        assert!(!s.user_dir("bob@x.test").unwrap().exists());
        assert!(
            fs::read_dir(d.path().join("x.test"))
                .unwrap()
                .next()
                .is_none()
        );
        s.purge_user("bob@x.test").unwrap();
    }

    #[test]
    fn user_add_makes_every_folder_durable_before_it_returns() {
        use crate::fsops::{self, Event};
        let d = tempfile::tempdir().unwrap();
        let s = Store::for_tests(d.path());
        let rec = fsops::recording();
        s.create_user("bob@x.test").unwrap();
        let ev = rec.take();
        let user = s.user_dir("bob@x.test").unwrap();
        // Each special folder is built under a temporary name, made
        // durable there (its cur/ new/ tmp/ and maildirfolder entries),
        // renamed into place, and the user directory fsynced after.
        for name in [".Sent", ".Drafts", ".Trash", ".Junk", ".Archive"] {
            let to = user.join(name);
            let (i, tmp) = ev
                .iter()
                .enumerate()
                .find_map(|(i, e)| match e {
                    Event::Rename(a, b) if *b == to => Some((i, a.clone())),
                    _ => None,
                })
                .unwrap_or_else(|| panic!("{name} not renamed into place: {ev:#?}"));
            let cur = ev
                .iter()
                .position(|e| *e == Event::Mkdir(tmp.join("cur")))
                .unwrap_or_else(|| panic!("{name}: no cur/ made: {ev:#?}"));
            assert!(
                ev[cur..i].contains(&Event::SyncDir(tmp.clone())),
                "{name} renamed into place before its cur/ was durable: {ev:#?}"
            );
            assert!(
                ev[i..].contains(&Event::SyncDir(user.clone())),
                "{name}: the user directory not fsynced after the rename: {ev:#?}"
            );
        }
        fsops::check_durable(&ev).unwrap_or_else(|e| panic!("{e}: {ev:#?}"));
    }
}
