//! Delivery: the hot path of facteur-lmtpd ([`Store::deliver`]).
//!
//! Delivery follows Maildir (cr.yp.to/proto/maildir.html): a unique name in
//! `tmp/`, write (CRLF -> LF), fsync the file, check the quota with its real
//! size, rename into `new/` as `<unique>,S=<disk>,W=<crlf>`, fsync `new/`,
//! and only then return. Unique names make concurrent deliveries (threads or
//! processes) safe without a lock; readers never see a partial file, since
//! `tmp/` is not read. Delivery never opens the SQLite index. A user's
//! first delivery creates the Maildir (maildir.rs), durably.
//!
//! Security: the user name is checked before it becomes a path (layout.rs);
//! a mailbox name too. A `cur/`, `new/` or `tmp/` of INBOX, a folder, or a
//! folder's `new/`, that is a symbolic link is refused (`lstat`s that
//! replace the `stat`s made anyway): nothing is delivered through a link.
//! (The new file itself is created with `O_EXCL`, which follows no link.)

use std::io::Read;

use crate::maildir::{ensure_maildir, write_tmp};
use crate::{Delivered, Quota, Result, Store, StoreError, fsops, layout, quota};

impl Store {
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
        ensure_maildir(&user_dir, &self.shared.cfg.root)?;
        let folder = match mailbox {
            None => user_dir.clone(),
            Some(name) => {
                let norm = layout::normalize(name)?;
                let f = layout::folder_path(&user_dir, &norm);
                // A folder, or its new/, that is a symbolic link is no
                // mailbox: nothing is written through it.
                if !(layout::real_dir(&f) && layout::real_dir(&f.join("new"))) {
                    return Err(StoreError::NoSuchMailbox(name.to_owned()));
                }
                f
            }
        };
        // Early refusal when already full, before reading the message.
        quota::check(&user_dir, quota, 0, 1)?;
        let new_dir = folder.join("new");
        // Group commit: new/'s fsync is shared with the deliveries into
        // the same folder at the same moment (fsops::intend).
        let sync = fsops::intend(&new_dir);
        let w = write_tmp(&folder, &self.shared.names, content)?;
        if let Err(e) = quota::check(&user_dir, quota, w.disk_size, 1) {
            w.discard();
            return Err(e);
        }
        let path = new_dir.join(w.base());
        if let Err(e) = fsops::rename(&w.tmp, &path).and_then(|()| sync.fsync_dir()) {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::{Path, PathBuf};

    fn files(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    #[test]
    fn delivery_lands_in_new_with_lf_and_round_trips() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::for_tests(d.path());
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
        let s = Store::for_tests(d.path());
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
        let s = Store::for_tests(d.path());
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
        let s = Store::for_tests(d.path());
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

    /// What a delivery to an existing Maildir calls, in order.
    fn steady_state_calls(ev: &[fsops::Event], new: &Path) -> Vec<String> {
        ev.iter()
            .map(|e| match e {
                fsops::Event::Mkdir(p) => format!("mkdir {}", p.display()),
                fsops::Event::Create(_) => "create tmp/".into(),
                fsops::Event::SyncFile(_) => "fsync file".into(),
                fsops::Event::Rename(_, to) if to.parent() == Some(new) => "rename to new/".into(),
                fsops::Event::Rename(a, b) => format!("rename {} {}", a.display(), b.display()),
                fsops::Event::Link(p) => format!("link {}", p.display()),
                fsops::Event::SyncDir(d) => format!("fsync {}", d.display()),
            })
            .collect()
    }

    #[test]
    fn a_delivery_to_an_existing_maildir_makes_no_directory_and_one_directory_fsync() {
        let d = tempfile::tempdir().unwrap();
        let s = Store::for_tests(d.path());
        s.deliver("bob@x.test", None, &mut &b"x\r\n"[..], Quota::default())
            .unwrap();
        let new = s.user_dir("bob@x.test").unwrap().join("new");
        let rec = fsops::recording();
        s.deliver("bob@x.test", None, &mut &b"y\r\n"[..], Quota::default())
            .unwrap();
        let ev = rec.take();
        fsops::check_durable(&ev).unwrap();
        assert_eq!(
            steady_state_calls(&ev, &new),
            [
                "create tmp/".to_owned(),
                "fsync file".into(),
                "rename to new/".into(),
                format!("fsync {}", new.display()),
            ]
        );
    }

    /// The index of the first event `pred` matches, after `from`.
    fn find(
        ev: &[fsops::Event],
        from: usize,
        pred: impl Fn(&fsops::Event) -> bool,
    ) -> Option<usize> {
        ev.iter().skip(from).position(pred).map(|i| i + from)
    }

    #[test]
    fn a_first_delivery_makes_every_new_directory_durable_before_it_returns() {
        use fsops::Event::{Mkdir, SyncDir};
        let d = tempfile::tempdir().unwrap();
        let root = d.path().join("mail");
        fs::create_dir(&root).unwrap();
        let s = Store::for_tests(&root);
        let rec = fsops::recording();
        s.deliver(
            "bob@example.test",
            None,
            &mut &b"x\r\n"[..],
            Quota::default(),
        )
        .unwrap();
        let ev = rec.take();
        let dom = root.join("example.test");
        let user = dom.join("bob");
        // Every new directory: made, and then (not before) the directory
        // holding it fsynced, so its entry survives a power failure.
        for dir in [
            dom.clone(),
            user.clone(),
            user.join("cur"),
            user.join("new"),
            user.join("tmp"),
        ] {
            let made = find(&ev, 0, |e| *e == Mkdir(dir.clone()))
                .unwrap_or_else(|| panic!("{} not made: {ev:#?}", dir.display()));
            let parent = dir.parent().unwrap().to_path_buf();
            assert!(
                find(&ev, made, |e| *e == SyncDir(parent.clone())).is_some(),
                "{} not fsynced after {} was made: {ev:#?}",
                parent.display(),
                dir.display()
            );
        }
        // And the same for every entry made, the message's included.
        fsops::check_durable(&ev).unwrap_or_else(|e| panic!("{e}: {ev:#?}"));
    }

    #[test]
    fn nothing_is_delivered_through_a_symbolic_link() {
        use std::os::unix::fs::symlink;
        let d = tempfile::tempdir().unwrap();
        let s = Store::for_tests(&d.path().join("mail"));
        s.create_user("bob@x.test").unwrap();
        let u = s.user_dir("bob@x.test").unwrap();
        let outside = d.path().join("outside");
        fs::create_dir_all(outside.join("new")).unwrap();
        fs::create_dir_all(outside.join("tmp")).unwrap();
        fs::create_dir_all(outside.join("cur")).unwrap();
        let msg = |s: &Store, folder| {
            s.deliver("bob@x.test", folder, &mut &b"x\r\n"[..], Quota::default())
        };
        // A folder that is a link.
        fs::remove_dir_all(u.join(".Junk")).unwrap();
        symlink(&outside, u.join(".Junk")).unwrap();
        assert!(matches!(
            msg(&s, Some("Junk")),
            Err(StoreError::NoSuchMailbox(_))
        ));
        // A folder whose new/ is a link.
        fs::remove_dir(u.join(".Sent/new")).unwrap();
        symlink(outside.join("new"), u.join(".Sent/new")).unwrap();
        assert!(matches!(
            msg(&s, Some("Sent")),
            Err(StoreError::NoSuchMailbox(_))
        ));
        // INBOX's new/ or tmp/.
        for sub in ["new", "tmp"] {
            fs::rename(u.join(sub), u.join(format!("{sub}.real"))).unwrap();
            symlink(outside.join(sub), u.join(sub)).unwrap();
            assert!(msg(&s, None).is_err(), "{sub}");
            fs::remove_file(u.join(sub)).unwrap();
            fs::rename(u.join(format!("{sub}.real")), u.join(sub)).unwrap();
        }
        for sub in ["new", "tmp", "cur"] {
            assert!(files(&outside.join(sub)).is_empty(), "{sub}");
        }
        msg(&s, None).unwrap();
    }
}
