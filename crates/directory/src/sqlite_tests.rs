//! Tests of the SQLite backend: CRUD, case, schema versions and migrations.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test

use super::*;

fn dir() -> SqliteDirectory {
    let d = SqliteDirectory::open_in_memory().unwrap();
    d.add_domain("example.test").unwrap();
    d
}

#[test]
fn domains_crud() {
    let d = dir();
    assert_eq!(
        d.add_domain("EXAMPLE.test"),
        Err(DirectoryError::AlreadyExists("domain example.test".into()))
    );
    d.add_domain("b.test.").unwrap();
    assert_eq!(d.list_domains().unwrap(), vec!["b.test", "example.test"]);
    assert!(d.is_local_domain("Example.Test").unwrap());
    assert!(!d.is_local_domain("other.test").unwrap());
    assert!(
        matches!(d.add_domain("bad domain"), Err(DirectoryError::InvalidDomain(m)) if m.contains("bad domain"))
    );
    assert!(matches!(
        d.add_domain("[10.0.0.1]"),
        Err(DirectoryError::InvalidDomain(_))
    ));
    d.delete_domain("B.TEST").unwrap();
    assert_eq!(
        d.delete_domain("b.test"),
        Err(DirectoryError::NotFound("domain b.test".into()))
    );
    assert_eq!(d.list_domains().unwrap(), vec!["example.test"]);
}

#[test]
fn domain_delete_refused_while_used() {
    let d = dir();
    d.add_user("a@example.test", "{PLAIN}x", 0, 0).unwrap();
    assert_eq!(
        d.delete_domain("example.test"),
        Err(DirectoryError::DomainNotEmpty("example.test".into()))
    );
    d.delete_user("a@example.test").unwrap();
    d.add_alias("@example.test", "someone@remote.test").unwrap();
    assert_eq!(
        d.delete_domain("example.test"),
        Err(DirectoryError::DomainNotEmpty("example.test".into()))
    );
    d.delete_alias("@example.test", None).unwrap();
    d.delete_domain("example.test").unwrap();
    assert!(d.list_domains().unwrap().is_empty());
}

#[test]
fn users_crud_and_case() {
    let d = dir();
    d.add_user("John.Doe@Example.TEST", "{PLAIN}pw", 1000, 10)
        .unwrap();
    assert_eq!(
        d.add_user("john.doe@example.test", "{PLAIN}other", 0, 0),
        Err(DirectoryError::AlreadyExists(
            "user john.doe@example.test".into()
        ))
    );
    let u = d.get_user("JOHN.DOE@example.test").unwrap().unwrap();
    assert_eq!(
        u,
        UserRecord {
            address: "john.doe@example.test".into(),
            password_hash: "{PLAIN}pw".into(),
            quota_bytes: 1000,
            quota_messages: 10,
            scram: None,
        }
    );
    assert_eq!(d.get_user("nobody@example.test").unwrap(), None);
    d.set_password_hash("john.doe@EXAMPLE.test", "{PLAIN}new")
        .unwrap();
    d.set_quota("john.doe@example.test", 0, 5).unwrap();
    let u = d.get_user("john.doe@example.test").unwrap().unwrap();
    assert_eq!(
        (u.password_hash.as_str(), u.quota_bytes, u.quota_messages),
        ("{PLAIN}new", 0, 5)
    );
    assert!(matches!(
        d.set_quota("x@example.test", 1, 1),
        Err(DirectoryError::NotFound(_))
    ));
    assert!(matches!(
        d.set_password_hash("x@example.test", "h"),
        Err(DirectoryError::NotFound(_))
    ));
    assert_eq!(
        d.set_quota("john.doe@example.test", u64::MAX, 0),
        Err(DirectoryError::InvalidQuota(u64::MAX))
    );
    d.set_quota("john.doe@example.test", i64::MAX as u64, 0)
        .unwrap();
    assert_eq!(
        d.get_user("john.doe@example.test")
            .unwrap()
            .unwrap()
            .quota_bytes,
        i64::MAX as u64
    );
    d.delete_user("John.Doe@example.test").unwrap();
    assert_eq!(d.get_user("john.doe@example.test").unwrap(), None);
    assert!(matches!(
        d.delete_user("john.doe@example.test"),
        Err(DirectoryError::NotFound(_))
    ));
}

#[test]
fn user_needs_domain_and_valid_address() {
    let d = dir();
    assert_eq!(
        d.add_user("a@nowhere.test", "h", 0, 0),
        Err(DirectoryError::NotFound("domain nowhere.test".into()))
    );
    assert!(
        matches!(d.add_user("no-at-sign", "h", 0, 0), Err(DirectoryError::InvalidAddress(m)) if m.contains("no-at-sign"))
    );
    assert!(matches!(
        d.get_user("a@b/c"),
        Err(DirectoryError::InvalidAddress(_))
    ));
}

#[test]
fn list_users_by_domain() {
    let d = dir();
    d.add_domain("other.test").unwrap();
    d.add_user("b@example.test", "h", 0, 0).unwrap();
    d.add_user("a@example.test", "h", 0, 0).unwrap();
    d.add_user("c@other.test", "h", 0, 0).unwrap();
    let all: Vec<_> = d
        .list_users(None)
        .unwrap()
        .into_iter()
        .map(|u| u.address)
        .collect();
    assert_eq!(
        all,
        vec!["a@example.test", "b@example.test", "c@other.test"]
    );
    let ex: Vec<_> = d
        .list_users(Some("EXAMPLE.TEST"))
        .unwrap()
        .into_iter()
        .map(|u| u.address)
        .collect();
    assert_eq!(ex, vec!["a@example.test", "b@example.test"]);
    assert!(d.list_users(Some("none.test")).unwrap().is_empty());
}

#[test]
fn aliases_crud() {
    let d = dir();
    d.add_alias("Sales@Example.test", "bob@example.test")
        .unwrap();
    d.add_alias("sales@example.test", "Alice@Remote.Example")
        .unwrap();
    assert_eq!(
        d.add_alias("sales@example.test", "alice@remote.example"),
        Err(DirectoryError::AlreadyExists(
            "alias sales@example.test -> alice@remote.example".into()
        ))
    );
    assert_eq!(
        d.alias_targets("SALES@example.test").unwrap(),
        vec!["bob@example.test", "Alice@remote.example"]
    );
    assert!(d.alias_targets("none@example.test").unwrap().is_empty());
    assert_eq!(
        d.add_alias("x@remote.example", "bob@example.test"),
        Err(DirectoryError::NotFound("domain remote.example".into()))
    );
    assert!(matches!(
        d.add_alias("x@example.test", "not an address"),
        Err(DirectoryError::InvalidAddress(_))
    ));
    d.add_alias("@example.test", "postmaster@example.test")
        .unwrap();
    assert_eq!(
        d.alias_targets("@EXAMPLE.test").unwrap(),
        vec!["postmaster@example.test"]
    );
    assert_eq!(
        d.list_aliases(Some("example.test")).unwrap(),
        vec![
            AliasRecord {
                source: "@example.test".into(),
                targets: vec!["postmaster@example.test".into()]
            },
            AliasRecord {
                source: "sales@example.test".into(),
                targets: vec!["bob@example.test".into(), "Alice@remote.example".into()]
            },
        ]
    );
    d.delete_alias("sales@example.test", Some("ALICE@remote.example"))
        .unwrap();
    assert_eq!(
        d.alias_targets("sales@example.test").unwrap(),
        vec!["bob@example.test"]
    );
    assert!(matches!(
        d.delete_alias("sales@example.test", Some("alice@remote.example")),
        Err(DirectoryError::NotFound(_))
    ));
    d.delete_alias("sales@example.test", None).unwrap();
    assert!(matches!(
        d.delete_alias("sales@example.test", None),
        Err(DirectoryError::NotFound(_))
    ));
    assert_eq!(d.list_aliases(None).unwrap().len(), 1);
    assert!(d.list_aliases(Some("other.test")).unwrap().is_empty());
}

#[test]
fn schema_version_is_set() {
    let d = dir();
    assert_eq!(d.schema_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(SCHEMA_VERSION, 2);
}

#[test]
fn file_shared_between_handles() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("directory.sqlite");
    let writer = SqliteDirectory::open(&path).unwrap();
    let reader = SqliteDirectory::open(&path).unwrap();
    assert_eq!(reader.schema_version().unwrap(), SCHEMA_VERSION);
    writer.add_domain("example.test").unwrap();
    writer.add_user("a@example.test", "{PLAIN}x", 0, 0).unwrap();
    assert!(reader.is_local_domain("example.test").unwrap());
    assert_eq!(
        reader.get_user("A@example.test").unwrap().unwrap().address,
        "a@example.test"
    );
    // And the other way round.
    reader
        .add_alias("b@example.test", "a@example.test")
        .unwrap();
    assert_eq!(
        writer.alias_targets("b@example.test").unwrap(),
        vec!["a@example.test"]
    );
    let mode: String = writer
        .lock()
        .unwrap()
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let fk: i64 = writer
        .lock()
        .unwrap()
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .unwrap();
    assert_eq!(fk, 1);
    drop((writer, reader));
    // Reopening keeps the data and the version.
    let again = SqliteDirectory::open(&path).unwrap();
    assert_eq!(again.list_users(None).unwrap().len(), 1);
    assert_eq!(again.schema_version().unwrap(), SCHEMA_VERSION);
}

#[cfg(unix)]
#[test]
fn new_file_is_not_world_readable() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("directory.sqlite");
    let _d = SqliteDirectory::open(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o007, 0, "mode {mode:o}");
    assert_eq!(mode & 0o600, 0o600, "mode {mode:o}");
}

#[test]
fn newer_schema_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("directory.sqlite");
    drop(SqliteDirectory::open(&path).unwrap());
    let conn = Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(conn);
    match SqliteDirectory::open(&path) {
        Err(DirectoryError::Backend(m)) => assert!(m.contains("schema version 3"), "{m}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn not_a_database() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("garbage");
    std::fs::write(&path, b"this is not an sqlite file, not at all, no no no no no no no no no no no no no no no no no no no no").unwrap();
    assert!(matches!(
        SqliteDirectory::open(&path),
        Err(DirectoryError::Backend(_))
    ));
    let missing = tmp.path().join("no/such/dir/db.sqlite");
    assert!(matches!(
        SqliteDirectory::open(&missing),
        Err(DirectoryError::Backend(_))
    ));
}

#[test]
fn credentials_are_written_and_cleared_together() {
    let d = dir();
    let c = crate::password::credentials("pw one").unwrap();
    d.add_user_with("a@example.test", &c, 0, 0).unwrap();
    let u = d.get_user("a@example.test").unwrap().unwrap();
    assert_eq!(
        (u.password_hash, u.scram.clone()),
        (c.password_hash, c.scram)
    );
    assert!(
        u.scram
            .as_deref()
            .unwrap()
            .starts_with("SCRAM-SHA-256$10000:")
    );
    // A new password: new keys.
    let c2 = crate::password::credentials("pw two").unwrap();
    d.set_credentials("A@example.test", &c2).unwrap();
    let u2 = d.get_user("a@example.test").unwrap().unwrap();
    assert_eq!(u2.scram, c2.scram);
    assert_ne!(u2.scram, u.scram);
    // A hash alone removes the keys of the old password.
    d.set_password_hash("a@example.test", "{PLAIN}x").unwrap();
    assert_eq!(d.get_user("a@example.test").unwrap().unwrap().scram, None);
    assert!(matches!(
        d.set_credentials("x@example.test", &c2),
        Err(DirectoryError::NotFound(_))
    ));
    assert_eq!(d.list_users(None).unwrap()[0].scram, None);
}

#[test]
fn scram_secret_is_made_once_and_shared() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("directory.sqlite");
    let a = SqliteDirectory::open(&path).unwrap();
    let b = SqliteDirectory::open(&path).unwrap();
    let s = a.scram_secret().unwrap();
    assert_eq!(s.len(), 32);
    assert_eq!(b.scram_secret().unwrap(), s);
    drop((a, b));
    assert_eq!(
        SqliteDirectory::open(&path)
            .unwrap()
            .scram_secret()
            .unwrap(),
        s
    );
    let other = SqliteDirectory::open_in_memory().unwrap();
    assert_ne!(other.scram_secret().unwrap(), s);
}

#[test]
fn version_1_is_migrated_and_its_users_keep_their_password() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("directory.sqlite");
    {
        // A version 1 database, as the previous release wrote it.
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(
            "INSERT INTO domains (name) VALUES ('example.test');
             INSERT INTO users (address, domain, password_hash)
             VALUES ('old@example.test', 'example.test', '{PLAIN}old-pw');
             PRAGMA user_version = 1;",
        )
        .unwrap();
    }
    let d = SqliteDirectory::open(&path).unwrap();
    assert_eq!(d.schema_version().unwrap(), 2);
    let u = d.get_user("old@example.test").unwrap().unwrap();
    assert_eq!((u.password_hash.as_str(), u.scram), ("{PLAIN}old-pw", None));
    assert!(
        crate::authenticate(&d, "old@example.test", "old-pw")
            .unwrap()
            .is_some()
    );
    assert_eq!(d.scram_secret().unwrap().len(), 32);
    // Setting the password again gives the keys.
    d.set_credentials(
        "old@example.test",
        &crate::password::credentials("new-pw").unwrap(),
    )
    .unwrap();
    let keys = d
        .get_user("old@example.test")
        .unwrap()
        .unwrap()
        .scram
        .unwrap();
    assert!(
        facteur_sasl::ScramCredentials::parse(&keys)
            .unwrap()
            .matches("new-pw")
    );
}

#[test]
fn lookups_without_waiting_run_at_once_or_say_they_would_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("directory.sqlite");
    let d = SqliteDirectory::open(&path).unwrap();
    d.add_domain("example.test").unwrap();
    let local = || d.is_local_domain("example.test");
    // Nothing in the way: the answer, as without.
    assert_eq!(crate::without_waiting(local), Some(Ok(true)));
    // Another thread holds the connection: refused, not waited for.
    {
        let _held = d.lock().unwrap();
        std::thread::scope(|s| {
            let r = s.spawn(|| crate::without_waiting(local)).join().unwrap();
            assert_eq!(r, None);
        });
    }
    // A database another process holds (SQLITE_BUSY) is not waited for:
    // the busy time-out is off while such a read holds the connection, and
    // a busy error is a refusal.
    let timeout = |c: &Connection| -> i64 {
        c.query_row("PRAGMA busy_timeout", [], |r| r.get(0))
            .unwrap()
    };
    let inside = crate::without_waiting(|| timeout(&d.read().unwrap()));
    assert_eq!(inside, Some(0));
    assert_eq!(timeout(&d.lock().unwrap()), BUSY_TIMEOUT.as_millis() as i64);
    let busy = || {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY), None)
    };
    assert_eq!(crate::without_waiting(|| db(busy())), None);
    assert!(matches!(db(busy()), DirectoryError::Backend(_)));
    assert_eq!(crate::without_waiting(local), Some(Ok(true)));
}

#[test]
fn system_domains_are_not_looked_up_without_waiting() {
    use crate::system::{Settings, SystemAliases};
    let tmp = tempfile::tempdir().unwrap();
    let inner: std::sync::Arc<dyn Directory> = std::sync::Arc::new(dir());
    let settings = Settings {
        file: tmp.path().join("aliases"),
        domains: vec!["host.example.test".into()],
        unix_users: "root@host.example.test".into(),
        allow_include: false,
    };
    let s = SystemAliases::new(inner, settings);
    assert_eq!(
        crate::without_waiting(|| s.alias_targets("root@host.example.test").is_ok()),
        None
    );
    // Other domains are.
    assert_eq!(
        crate::without_waiting(|| s.alias_targets("a@example.test")),
        Some(Ok(Vec::new()))
    );
}

#[test]
fn lookups_read_together_share_one_snapshot_and_writes_inside_fail() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("directory.sqlite");
    let d = SqliteDirectory::open(&path).unwrap();
    d.add_domain("example.test").unwrap();
    // Another process's connection (facteurctl's).
    let other = SqliteDirectory::open(&path).unwrap();
    let mut seen = Vec::new();
    crate::read_together(&d, || {
        seen.push(d.get_user("amy@example.test").unwrap().is_some());
        other
            .add_user("amy@example.test", "{PLAIN}x", 0, 0)
            .unwrap();
        // The same view as the first lookup: one read transaction.
        seen.push(d.get_user("amy@example.test").unwrap().is_some());
        // Nested: runs inside the same one.
        crate::read_together(&d, || {
            seen.push(d.get_user("amy@example.test").unwrap().is_some());
        });
        // A write, which would wait on this thread's own lock: refused.
        assert!(matches!(
            d.add_domain("b.test"),
            Err(DirectoryError::Backend(_))
        ));
    });
    assert_eq!(seen, [false, false, false]);
    // Afterwards: the new state, and writes work again.
    assert!(d.get_user("amy@example.test").unwrap().is_some());
    d.add_domain("b.test").unwrap();
    // A panic inside leaves the directory usable, its snapshot released.
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::read_together(&d, || {
            d.is_local_domain("example.test").unwrap();
            panic!("inside");
        })
    }));
    assert!(r.is_err());
    other
        .add_user("bea@example.test", "{PLAIN}x", 0, 0)
        .unwrap();
    assert!(d.get_user("bea@example.test").unwrap().is_some());
    d.add_domain("c.test").unwrap();
}

#[test]
fn reading_together_without_waiting_still_refuses_to_wait() {
    let d = dir();
    // Another thread holds the connection: the lookups inside say they
    // would wait, each on its own, and nothing blocks.
    let _held = d.lock().unwrap();
    std::thread::scope(|s| {
        let r = s
            .spawn(|| {
                crate::without_waiting(|| {
                    crate::read_together(&d, || d.is_local_domain("example.test"))
                })
            })
            .join()
            .unwrap();
        assert_eq!(r, None);
    });
}
