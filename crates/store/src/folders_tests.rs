//! Tests of folders.rs: the index writers, folder limits, special-use
//! folders, CREATE, DELETE, RENAME and their durability.

use super::*;
use crate::{Store, StoreConfig};

fn user() -> (tempfile::TempDir, UserStore) {
    let (d, _store, us) = crate::mailbox::tests::setup();
    (d, us)
}

#[test]
fn a_failed_or_panicking_write_leaves_nothing_behind() {
    let (_d, us) = user();
    let inner = &us.inner;
    let add = |c: &Connection, id: i64| {
        c.execute(
            "INSERT INTO recent (mailbox, next_uid) VALUES (?1, 5)",
            [id],
        )
    };
    let failed = inner.write(|c| {
        add(c, 1)?;
        Err::<(), _>(StoreError::Index("refused".into()))
    });
    assert!(failed.is_err());
    let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        inner.write_unsynced(|c| -> Result<()> {
            add(c, 2)?;
            panic!("inside a write");
        })
    }));
    assert!(panicked.is_err());
    // Both rolled back, and the connection takes the next write.
    inner.write(|c| Ok(add(c, 3)?)).unwrap();
    let ids: Vec<i64> = inner
        .conn()
        .prepare("SELECT mailbox FROM recent")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<rusqlite::Result<_>>()
        .unwrap();
    assert_eq!(ids, [3]);
}

#[test]
fn folders_and_subscriptions_are_bounded() {
    let d = tempfile::tempdir().unwrap();
    let limits = FolderLimits {
        mailboxes: 8,
        depth: 3,
        subscriptions: 8,
    };
    let s = Store::with_limits(
        StoreConfig {
            root: d.path().to_path_buf(),
            hostname: "h".into(),
        },
        limits,
    );
    s.create_user("u@x.test").unwrap();
    let us = s.open_user("u@x.test", Quota::default()).unwrap();
    // The five special folders count; they and INBOX are subscribed.
    let limit = |r: Result<()>| matches!(r, Err(StoreError::Limit(_)));
    us.create_mailbox("a/b/c", None).unwrap();
    assert!(limit(us.create_mailbox("a/b/c/d", None)), "too deep");
    assert!(limit(us.rename_mailbox("a", "x/y")), "children too deep");
    // 5 + a, a/b, a/b/c = 8: full; an existing parent costs nothing.
    assert!(limit(us.create_mailbox("e", None)));
    assert!(limit(us.create_mailbox("a/f", None)));
    us.delete_mailbox("a/b/c").unwrap();
    us.create_mailbox("a/f", None).unwrap();
    us.subscribe("a", true).unwrap();
    us.subscribe("a/f", true).unwrap();
    assert!(limit(us.subscribe("a/b", true)));
    // Unsubscribing and subscribing again what is there are free.
    us.subscribe("a", true).unwrap();
    us.subscribe("a", false).unwrap();
    us.subscribe("a/b", true).unwrap();
}

#[test]
fn create_user_gives_special_folders() {
    let (_d, us) = user();
    let l = us.list_mailboxes().unwrap();
    let names: Vec<_> = l.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(
        names,
        ["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"]
    );
    assert!(l.iter().all(|m| m.subscribed));
    assert_eq!(
        l.iter().find(|m| m.name == "Sent").unwrap().special_use,
        Some(SpecialUse::Sent)
    );
    assert!(us.inner.dir.join(".Sent/maildirfolder").is_file());
    // Idempotent, and keeps an unsubscription.
    us.subscribe("Junk", false).unwrap();
    us.create_defaults().unwrap();
    let l = us.list_mailboxes().unwrap();
    assert!(!l.iter().find(|m| m.name == "Junk").unwrap().subscribed);
}

#[test]
fn create_delete_rename() {
    let (_d, us) = user();
    us.create_mailbox("Lists/rust", None).unwrap();
    assert!(matches!(
        us.create_mailbox("Lists/rust", None),
        Err(StoreError::MailboxExists(_))
    ));
    assert!(matches!(
        us.create_mailbox("inbox", None),
        Err(StoreError::MailboxExists(_))
    ));
    assert!(matches!(us.create_mailbox("../x", None), Ok(())));
    assert!(us.inner.dir.join(".%2E%2E.x").is_dir());
    assert!(matches!(
        us.delete_mailbox("Lists"),
        Err(StoreError::HasChildren(_))
    ));
    us.rename_mailbox("Lists", "Old").unwrap();
    let names: Vec<_> = us
        .list_mailboxes()
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert!(
        names.contains(&"Old/rust".to_owned()) && !names.iter().any(|n| n.starts_with("Lists"))
    );
    assert!(matches!(
        us.rename_mailbox("Old", "Sent"),
        Err(StoreError::MailboxExists(_))
    ));
    assert!(matches!(
        us.rename_mailbox("Nope", "X"),
        Err(StoreError::NoSuchMailbox(_))
    ));
    us.delete_mailbox("Old/rust").unwrap();
    us.delete_mailbox("Old").unwrap();
    assert!(matches!(
        us.delete_mailbox("INBOX"),
        Err(StoreError::InvalidName(_))
    ));
    assert!(matches!(
        us.delete_mailbox("Old"),
        Err(StoreError::NoSuchMailbox(_))
    ));
}

#[test]
fn special_use_given_at_create() {
    let (_d, us) = user();
    us.create_mailbox("Everything", Some(SpecialUse::All))
        .unwrap();
    let l = us.list_mailboxes().unwrap();
    assert_eq!(
        l.iter()
            .find(|m| m.name == "Everything")
            .unwrap()
            .special_use,
        Some(SpecialUse::All)
    );
    assert!(
        !l.iter()
            .find(|m| m.name == "Everything")
            .unwrap()
            .subscribed
    );
    us.subscribe("Everything", true).unwrap();
    assert!(
        us.list_mailboxes()
            .unwrap()
            .iter()
            .find(|m| m.name == "Everything")
            .unwrap()
            .subscribed
    );
}

#[test]
fn create_makes_the_folder_and_its_parents_durable() {
    let (_d, us) = user();
    let rec = crate::fsops::recording();
    us.create_mailbox("Lists/rust", None).unwrap();
    let ev = rec.take();
    assert!(us.inner.dir.join(".Lists.rust/cur").is_dir());
    crate::fsops::check_durable(&ev).unwrap_or_else(|e| panic!("{e}: {ev:#?}"));
}
