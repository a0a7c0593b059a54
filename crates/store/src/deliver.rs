//! Users' directories and delivery: the hot path of facteur-lmtpd.
//!
//! Offers [`Store::user_dir`], [`Store::create_user`], [`Store::purge_user`],
//! [`Store::deliver`], [`Store::open_user`], and to the rest of the crate
//! [`write_tmp`] (a message written into `tmp/` and fsynced) and
//! [`ensure_maildir`].
//!
//! Delivery follows Maildir (cr.yp.to/proto/maildir.html): a unique name in
//! `tmp/`, write (CRLF -> LF), fsync the file, check the quota with its real
//! size, rename into `new/` as `<unique>,S=<disk>,W=<crlf>`, fsync `new/`,
//! and only then return. Unique names make concurrent deliveries (threads or
//! processes) safe without a lock; readers never see a partial file, since
//! `tmp/` is not read. Delivery never opens the SQLite index.
//!
//! Security: the user name becomes two path components, so it is checked
//! first: [`Store::user_dir`] refuses empty parts, `/`, NUL, control
//! characters, a leading `.` and `..`. Directories are made 0700, files 0600.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::crlf::ToLf;
use crate::name::{UniqueNames, base_with_sizes};
use crate::{Delivered, Quota, Result, Store, StoreError, UserStore, folders, quota};

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
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
        {
            Ok(f) => break (unique, tmp, f),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 3 => tries += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let result = (|| -> io::Result<(u64, u64)> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut out = Vec::with_capacity(64 * 1024 + 1);
        let mut conv = ToLf::new();
        let (mut crlf, mut disk) = (0u64, 0u64);
        loop {
            let n = match content.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            crlf += n as u64;
            conv.push(&buf[..n], &mut out);
            file.write_all(&out)?;
            disk += out.len() as u64;
            out.clear();
        }
        conv.finish(&mut out);
        file.write_all(&out)?;
        disk += out.len() as u64;
        file.sync_all()?;
        Ok((disk, crlf))
    })();
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

/// Makes `dir` a Maildir (`cur/ new/ tmp/`, 0700) if it is not one yet.
pub(crate) fn ensure_maildir(dir: &Path) -> io::Result<()> {
    if dir.join("new").is_dir() && dir.join("cur").is_dir() && dir.join("tmp").is_dir() {
        return Ok(());
    }
    for sub in ["cur", "new", "tmp"] {
        facteur_util::create_dir_all_mode(&dir.join(sub), 0o700)?;
    }
    Ok(())
}

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

impl Store {
    /// The directory of `user` ("local@domain", already lower-case):
    /// `<root>/<domain>/<local>/`. Refuses names that could leave the root.
    pub fn user_dir(&self, user: &str) -> Result<PathBuf> {
        let (local, domain) = user
            .rsplit_once('@')
            .ok_or_else(|| StoreError::InvalidUser(user.to_owned()))?;
        check_part(user, local)?;
        check_part(user, domain)?;
        Ok(self.shared.cfg.root.join(domain).join(local))
    }

    /// Creates the user's Maildir with INBOX and the special-use folders
    /// (Sent, Drafts, Trash, Junk, Archive), subscribed. Idempotent.
    pub fn create_user(&self, user: &str) -> Result<()> {
        let dir = self.user_dir(user)?;
        ensure_maildir(&dir)?;
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
        let local = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let aside = parent.join(format!(".purge-{local}-{}", self.shared.names.next()));
        match fs::rename(&dir, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        facteur_util::fsync_dir(parent)?;
        fs::remove_dir_all(&aside)?;
        Ok(())
    }

    /// Delivers a message (CRLF form, dot-unstuffed) into INBOX or
    /// `mailbox`, which must exist. Creates the user's Maildir if missing.
    /// Returns once the message is durably in `new/`.
    pub fn deliver(
        &self,
        user: &str,
        mailbox: Option<&str>,
        content: &mut dyn Read,
        quota: Quota,
    ) -> Result<Delivered> {
        let user_dir = self.user_dir(user)?;
        ensure_maildir(&user_dir)?;
        let folder = match mailbox {
            None => user_dir.clone(),
            Some(name) => {
                let norm = folders::normalize(name)?;
                let f = folders::folder_path(&user_dir, &norm);
                if !f.join("new").is_dir() {
                    return Err(StoreError::NoSuchMailbox(name.to_owned()));
                }
                f
            }
        };
        // Early refusal when already full, before reading the message.
        quota::check(&user_dir, quota, 0, 1)?;
        let w = write_tmp(&folder, &self.shared.names, content)?;
        if let Err(e) = quota::check(&user_dir, quota, w.disk_size, 1) {
            w.discard();
            return Err(e);
        }
        let new_dir = folder.join("new");
        let path = new_dir.join(w.base());
        if let Err(e) = fs::rename(&w.tmp, &path).and_then(|()| facteur_util::fsync_dir(&new_dir)) {
            w.discard();
            return Err(e.into());
        }
        if let Err(e) = quota::record(&user_dir, w.disk_size as i64, 1) {
            // The message is delivered: failing now would make the client
            // send it again. The next recalculation corrects the file.
            tracing::warn!(user, error = %e, "cannot update maildirsize");
        }
        tracing::debug!(user, path = %path.display(), size = w.crlf_size, "delivered");
        Ok(Delivered {
            path,
            disk_size: w.disk_size,
            size: w.crlf_size,
        })
    }

    /// Opens the user's index (creating the Maildir and the index if
    /// missing). `quota` applies to APPEND, COPY and `quota_usage`.
    pub fn open_user(&self, user: &str, quota: Quota) -> Result<UserStore> {
        let dir = self.user_dir(user)?;
        ensure_maildir(&dir)?;
        UserStore::open(Arc::clone(&self.shared), dir, quota)
    }
}

/// Sets a file's mtime (the INTERNALDATE of a message) to `secs`.
pub(crate) fn set_mtime(path: &Path, secs: i64) -> io::Result<()> {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.max(0) as u64);
    File::options().write(true).open(path)?.set_modified(t)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreConfig;

    fn store(d: &Path) -> Store {
        Store::new(StoreConfig {
            root: d.to_path_buf(),
            hostname: "mx.test".into(),
        })
    }

    fn files(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    #[test]
    fn user_dir_refuses_escapes() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        assert_eq!(
            s.user_dir("bob@example.test").unwrap(),
            d.path().join("example.test/bob")
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
                matches!(s.user_dir(bad), Err(StoreError::InvalidUser(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn delivery_lands_in_new_with_lf_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let msg = b"Subject: hi\r\n\r\nbody\rwith lone cr\r\n";
        let r = s
            .deliver("bob@example.test", None, &mut &msg[..], Quota::default())
            .unwrap();
        let u = s.user_dir("bob@example.test").unwrap();
        assert!(files(&u.join("tmp")).is_empty());
        assert_eq!(files(&u.join("new")), vec![r.path.clone()]);
        let disk = fs::read(&r.path).unwrap();
        assert_eq!(disk, b"Subject: hi\n\nbody\rwith lone cr\n");
        assert_eq!(r.disk_size, disk.len() as u64);
        assert_eq!(r.size, msg.len() as u64);
        assert_eq!(crate::to_crlf(&disk), msg);
        let name = r.path.file_name().unwrap().to_str().unwrap();
        assert!(
            name.ends_with(&format!(",S={},W={}", disk.len(), msg.len())),
            "{name}"
        );
        assert!(!name.contains(':'));
    }

    #[test]
    fn fifty_concurrent_deliveries() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let handles: Vec<_> = (0..50)
            .map(|i| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let m = format!("Subject: {i}\r\n\r\n{i}\r\n");
                    s.deliver(
                        "bob@example.test",
                        None,
                        &mut m.as_bytes(),
                        Quota::default(),
                    )
                    .unwrap()
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let u = s.user_dir("bob@example.test").unwrap();
        assert_eq!(files(&u.join("new")).len(), 50);
        assert!(files(&u.join("tmp")).is_empty());
    }

    #[test]
    fn quota_refuses_bytes_and_count() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        let msg = b"0123456789\r\n"; // 11 bytes on disk
        let q = Quota {
            bytes: 30,
            messages: 0,
        };
        s.deliver("a@x.test", None, &mut &msg[..], q).unwrap();
        s.deliver("a@x.test", None, &mut &msg[..], q).unwrap();
        assert!(matches!(
            s.deliver("a@x.test", None, &mut &msg[..], q),
            Err(StoreError::OverQuota)
        ));
        let u = s.user_dir("a@x.test").unwrap();
        assert!(files(&u.join("tmp")).is_empty(), "refused message removed");
        assert_eq!(files(&u.join("new")).len(), 2);
        let q = Quota {
            bytes: 0,
            messages: 3,
        };
        s.deliver("b@x.test", None, &mut &msg[..], q).unwrap();
        s.deliver("b@x.test", None, &mut &msg[..], q).unwrap();
        s.deliver("b@x.test", None, &mut &msg[..], q).unwrap();
        assert!(matches!(
            s.deliver("b@x.test", None, &mut &msg[..], q),
            Err(StoreError::OverQuota)
        ));
        let us = s.open_user("b@x.test", q).unwrap();
        assert_eq!(us.quota_usage().unwrap(), (33, 3));
    }

    #[test]
    fn delivery_into_folder_and_missing_folder() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        s.create_user("bob@x.test").unwrap();
        let r = s
            .deliver(
                "bob@x.test",
                Some("Junk"),
                &mut &b"x\r\n"[..],
                Quota::default(),
            )
            .unwrap();
        assert!(r.path.starts_with(d.path().join("x.test/bob/.Junk/new")));
        assert!(matches!(
            s.deliver(
                "bob@x.test",
                Some("Nope"),
                &mut &b"x\r\n"[..],
                Quota::default()
            ),
            Err(StoreError::NoSuchMailbox(_))
        ));
        assert!(matches!(
            s.deliver(
                "bob@x.test",
                Some("/abs"),
                &mut &b"x\r\n"[..],
                Quota::default()
            ),
            Err(StoreError::InvalidName(_))
        ));
        assert!(matches!(
            s.deliver(
                "bob@x.test",
                Some("../x"),
                &mut &b"x\r\n"[..],
                Quota::default()
            ),
            Err(StoreError::NoSuchMailbox(_))
        ));
    }

    #[test]
    fn purge_removes_everything() {
        let d = tempfile::tempdir().unwrap();
        let s = store(d.path());
        s.create_user("bob@x.test").unwrap();
        s.deliver("bob@x.test", None, &mut &b"x\r\n"[..], Quota::default())
            .unwrap();
        s.purge_user("bob@x.test").unwrap();
        assert!(!s.user_dir("bob@x.test").unwrap().exists());
        assert!(files(&d.path().join("x.test")).is_empty());
        s.purge_user("bob@x.test").unwrap();
    }
}
