//! Annotations of mailboxes and of the server (IMAP METADATA, RFC 5464),
//! kept in the user's index: `metadata (mailbox, entry, value)`, the
//! server's under the mailbox name "". Entry names arrive checked and
//! lower-cased (facteur-imap-proto); this module stores them, follows a
//! mailbox through RENAME and drops its entries with it on DELETE.
//!
//! A user keeps at most `max_entries` entries: a SETMETADATA that would
//! pass it changes nothing ([`SetMetadata::TooMany`]). Every write is one
//! fsynced transaction: all of a command's entries or none.

use rusqlite::{Connection, OptionalExtension};

use crate::folders::UserStore;
use crate::layout::{folder_path, is_maildir, normalize};
use crate::{Result, StoreError};

/// Added to every index, old ones included (older versions ignore it).
pub(crate) const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS metadata (
    mailbox TEXT NOT NULL,
    entry TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (mailbox, entry)
) WITHOUT ROWID;";

/// How a SETMETADATA went.
#[derive(Debug, PartialEq, Eq)]
pub enum SetMetadata {
    Done,
    /// The user's entries would pass the limit: nothing changed.
    TooMany,
}

/// Moves the entries of mailbox `from` to `to` (inside RENAME's
/// transaction); what a mailbox once named `to` left goes.
pub(crate) fn rename(conn: &Connection, from: &str, to: &str) -> Result<()> {
    delete(conn, to)?;
    conn.execute(
        "UPDATE metadata SET mailbox = ?2 WHERE mailbox = ?1",
        [from, to],
    )?;
    Ok(())
}

/// Drops the entries of mailbox `name` (inside DELETE's transaction).
pub(crate) fn delete(conn: &Connection, name: &str) -> Result<()> {
    conn.execute("DELETE FROM metadata WHERE mailbox = ?1", [name])?;
    Ok(())
}

impl UserStore {
    /// The key of `mailbox` (None: the server), after checking it exists.
    fn metadata_key(&self, mailbox: Option<&str>) -> Result<String> {
        let Some(name) = mailbox else {
            return Ok(String::new());
        };
        let norm = normalize(name)?;
        if !is_maildir(&folder_path(self.dir(), &norm)) {
            return Err(StoreError::NoSuchMailbox(norm));
        }
        Ok(norm)
    }

    /// The entries asked for that have a value, each with those below it
    /// down to `depth` more levels (None: all of them), sorted by name
    /// without repeats. `mailbox` None: the server's entries.
    pub fn get_metadata(
        &self,
        mailbox: Option<&str>,
        entries: &[String],
        depth: Option<usize>,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let key = self.metadata_key(mailbox)?;
        let conn = self.inner.conn();
        let mut out: Vec<(String, Vec<u8>)> = Vec::new();
        for e in entries {
            let v: Option<Vec<u8>> = conn
                .prepare_cached("SELECT value FROM metadata WHERE mailbox = ?1 AND entry = ?2")?
                .query_row([&key, e], |r| r.get(0))
                .optional()?;
            if let Some(v) = v {
                out.push((e.clone(), v));
            }
            if depth == Some(0) {
                continue;
            }
            // Below `e/`: the names between "e/" and "e0" ('0' follows '/').
            let (lo, hi) = (format!("{e}/"), format!("{e}0"));
            let mut st = conn.prepare_cached(
                "SELECT entry, value FROM metadata WHERE mailbox = ?1 AND entry >= ?2 AND entry < ?3",
            )?;
            let rows = st.query_map([&key, &lo, &hi], |r| Ok((r.get(0)?, r.get(1)?)))?;
            for row in rows {
                let (name, value): (String, Vec<u8>) = row?;
                let levels = name[lo.len()..].split('/').count();
                if depth.is_none_or(|d| levels <= d) {
                    out.push((name, value));
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out.dedup_by(|a, b| a.0 == b.0);
        Ok(out)
    }

    /// Sets (Some) or removes (None) entries of `mailbox` (None: the
    /// server), all or none.
    pub fn set_metadata(
        &self,
        mailbox: Option<&str>,
        entries: &[(String, Option<Vec<u8>>)],
        max_entries: usize,
    ) -> Result<SetMetadata> {
        let key = self.metadata_key(mailbox)?;
        self.inner.write(|tx| {
            for (e, v) in entries {
                match v {
                    Some(v) => tx.execute(
                        "INSERT OR REPLACE INTO metadata (mailbox, entry, value) VALUES (?1, ?2, ?3)",
                        rusqlite::params![&key, e, v],
                    )?,
                    None => tx.execute(
                        "DELETE FROM metadata WHERE mailbox = ?1 AND entry = ?2",
                        [&key, e],
                    )?,
                };
            }
            let n: i64 = tx.query_row("SELECT count(*) FROM metadata", [], |r| r.get(0))?;
            if usize::try_from(n).unwrap_or(usize::MAX) > max_entries {
                // Rolled back by the error; told apart below.
                return Err(StoreError::Limit("metadata entries".into()));
            }
            Ok(SetMetadata::Done)
        })
        .or_else(|e| match e {
            StoreError::Limit(ref what) if what == "metadata entries" => Ok(SetMetadata::TooMany),
            e => Err(e),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::SetMetadata;
    use crate::{Quota, Store, StoreError};

    fn v(s: &str) -> Option<Vec<u8>> {
        Some(s.as_bytes().to_vec())
    }

    #[test]
    fn entries_are_kept_found_by_depth_and_follow_their_mailbox() {
        let d = tempfile::tempdir().unwrap();
        let store = Store::for_tests(d.path());
        store.create_user("a@example.test").unwrap();
        let us = store.open_user("a@example.test", Quota::default()).unwrap();
        us.create_mailbox("Work", None).unwrap();
        let set = |m: Option<&str>, e: &[(&str, Option<Vec<u8>>)]| {
            let e: Vec<(String, Option<Vec<u8>>)> =
                e.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            us.set_metadata(m, &e, 5).unwrap()
        };
        let get = |m: Option<&str>, e: &[&str], depth| {
            let e: Vec<String> = e.iter().map(|s| s.to_string()).collect();
            us.get_metadata(m, &e, depth).unwrap()
        };
        assert_eq!(
            set(
                Some("Work"),
                &[
                    ("/private/comment", v("mine")),
                    ("/private/a/b", v("1")),
                    ("/private/a/b/c", v("2")),
                    ("/private/a0", v("not below /private/a")),
                ]
            ),
            SetMetadata::Done
        );
        assert_eq!(
            set(None, &[("/shared/comment", v("server"))]),
            SetMetadata::Done
        );
        assert_eq!(
            get(Some("Work"), &["/private/comment"], Some(0)),
            vec![("/private/comment".to_string(), b"mine".to_vec())]
        );
        let names = |r: Vec<(String, Vec<u8>)>| r.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
        assert_eq!(
            names(get(Some("Work"), &["/private/a"], Some(1))),
            ["/private/a/b"]
        );
        assert_eq!(
            names(get(Some("Work"), &["/private/a", "/private/a/b"], None)),
            ["/private/a/b", "/private/a/b/c"]
        );
        assert_eq!(names(get(None, &["/shared"], None)), ["/shared/comment"]);
        // Five entries at most: a sixth changes nothing, a removal frees one.
        assert_eq!(set(None, &[("/shared/x", v("x"))]), SetMetadata::TooMany);
        assert!(get(None, &["/shared/x"], Some(0)).is_empty());
        assert_eq!(
            set(None, &[("/shared/comment", None), ("/shared/x", v("x"))]),
            SetMetadata::Done
        );
        // RENAME takes the entries along; DELETE drops them.
        us.rename_mailbox("Work", "Job").unwrap();
        assert_eq!(names(get(Some("Job"), &["/private"], None)).len(), 4);
        us.create_mailbox("Work", None).unwrap();
        assert!(get(Some("Work"), &["/private"], None).is_empty());
        us.delete_mailbox("Job").unwrap();
        us.create_mailbox("Job", None).unwrap();
        assert!(get(Some("Job"), &["/private"], None).is_empty());
        assert!(matches!(
            us.get_metadata(Some("Nowhere"), &[], None),
            Err(StoreError::NoSuchMailbox(_))
        ));
    }
}
