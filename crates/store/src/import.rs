//! Moving mailboxes in and out with their identity: [`UserStore::import_messages`]
//! puts messages into a mailbox under the UIDs and the UIDVALIDITY another
//! server gave them (so that clients, which cache by UID, download nothing
//! again), and [`UserStore::export_mailbox`] lists a mailbox for the way
//! back. The formats of the other server (Dovecot's `dovecot-uidlist` and
//! friends) are facteurctl's business; this is the store's half.
//!
//! Import rules:
//! - The mailbox takes the given UIDVALIDITY if it is new or empty (a new
//!   user's default folders); one that holds messages under another
//!   UIDVALIDITY is refused.
//! - Each message file is written into `tmp/` under the `unique` part the
//!   old server gave it (with our `,S=,W=` sizes), fsynced, dated (mtime =
//!   INTERNALDATE), then, a batch at a time under the user's write lock,
//!   renamed into `cur/` and its row written with its UID in the same
//!   transaction; `cur/` is fsynced before the commit.
//! - Resumable: a UID that already has a row is skipped. A file of `cur/`
//!   with the unique part of a message to import is the trace of a run cut
//!   between the rename and the commit: it is taken as that message's file
//!   (its row, if a scan gave it another UID meanwhile, is replaced).
//! - UIDNEXT becomes at least the old server's and above every UID; the
//!   user's `facteur-uidvalidity` is raised to the imported UIDVALIDITY, so
//!   a mailbox made later never gets an older one.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use rusqlite::{OptionalExtension, params};

use crate::crlf::ToLf;
use crate::dirfd::Dir;
use crate::folders::UserStore;
use crate::index::{self, MsgRow};
use crate::layout::{folder_path, is_maildir, normalize};
use crate::maildir::set_mtime;
use crate::name::{base_with_sizes, cur_name, parse_file_name};
use crate::{Flags, Result, StoreError, fsops};

/// One message to import.
#[derive(Debug, Clone)]
pub struct ImportMessage {
    /// Its file (LF or CRLF line ends).
    pub source: PathBuf,
    /// The unique part of its name on the old server (`1700000000.M1P2.host`):
    /// how an interrupted import recognises it.
    pub unique: String,
    pub uid: u32,
    pub flags: Flags,
    /// INTERNALDATE, seconds since the epoch.
    pub internal_date: i64,
}

/// What an import did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImportCount {
    pub imported: usize,
    /// Already there (an earlier run).
    pub skipped: usize,
}

/// A mailbox as export sees it.
#[derive(Debug, Clone)]
pub struct ExportMailbox {
    pub uidvalidity: u32,
    pub uidnext: u32,
    /// (UID, file, flags, INTERNALDATE), by UID.
    pub messages: Vec<(u32, PathBuf, Flags, i64)>,
}

/// Messages renamed into `cur/` per transaction.
const BATCH: usize = 256;

impl UserStore {
    /// Imports `msgs` into mailbox `name` (made if missing) under
    /// `uidvalidity`, keeping their UIDs (see the module).
    pub fn import_messages(
        &self,
        name: &str,
        uidvalidity: u32,
        uidnext: u32,
        msgs: &[ImportMessage],
    ) -> Result<ImportCount> {
        let norm = normalize(name)?;
        if uidvalidity == 0 || msgs.iter().any(|m| m.uid == 0) {
            return Err(StoreError::Index("UIDVALIDITY and UIDs are never 0".into()));
        }
        if !is_maildir(&folder_path(self.dir(), &norm)) {
            self.create_mailbox(&norm, None)?;
        }
        self.adopt_uidvalidity(&norm, uidvalidity)?;
        raise_uidvalidity_file(self.dir(), uidvalidity)?;
        let mb = self.select(&norm)?;
        let have: HashSet<u32> = mb.messages().iter().map(|m| m.uid).collect();
        // Files of cur/ by unique part: traces of an interrupted run.
        let mut traces: HashMap<String, String> = HashMap::new();
        let folder = mb.dir().to_path_buf();
        let cur = Dir::open_nofollow(&folder.join("cur"))?;
        for f in cur.list()?.files.iter() {
            if let Some(p) = parse_file_name(f) {
                traces.insert(p.unique.to_owned(), f.to_string());
            }
        }
        let mut count = ImportCount::default();
        let todo: Vec<&ImportMessage> = msgs
            .iter()
            .filter(|m| {
                let had = have.contains(&m.uid);
                if had {
                    count.skipped += 1;
                }
                !had
            })
            .collect();
        for batch in todo.chunks(BATCH) {
            // Written and fsynced outside the lock.
            let mut ready = Vec::with_capacity(batch.len());
            for m in batch {
                if !valid_unique(&m.unique) {
                    return Err(StoreError::Index(format!(
                        "invalid file name from the old server: {:?}",
                        m.unique
                    )));
                }
                match traces.get(&m.unique) {
                    Some(file) => ready.push((m, Placed::Traced(file.clone()))),
                    None => {
                        let (tmp, disk, crlf) = write_import_tmp(&folder, m)?;
                        ready.push((m, Placed::Tmp(tmp, disk, crlf)));
                    }
                }
            }
            self.inner.write(|tx| {
                let mut row = index::mailbox_row(tx, &norm)?
                    .ok_or_else(|| StoreError::NoSuchMailbox(norm.clone()))?;
                for (m, placed) in &ready {
                    let (file_name, disk, crlf) = match placed {
                        Placed::Tmp(tmp, disk, crlf) => {
                            let base = base_with_sizes(&m.unique, *disk, *crlf);
                            let name = cur_name(&base, m.flags.system, "");
                            cur.rename_into(tmp, &name)?;
                            (name, *disk, *crlf)
                        }
                        Placed::Traced(file) => {
                            let p = parse_file_name(file);
                            let (disk, crlf) = p
                                .as_ref()
                                .and_then(|p| Some((p.disk_size?, p.crlf_size?)))
                                .unwrap_or((0, 0));
                            // A scan may have given it a UID of its own:
                            // that one is expunged (clients see it go).
                            let scanned: Option<u32> = tx
                                .query_row(
                                    "SELECT uid FROM messages WHERE mailbox = ?1 AND file_name = ?2",
                                    params![row.id, file],
                                    |r| r.get(0),
                                )
                                .optional()?;
                            if let Some(uid) = scanned {
                                row.highest_modseq += 1;
                                index::expunge_message(tx, row.id, uid, row.highest_modseq)?;
                            }
                            (file.clone(), disk, crlf)
                        }
                    };
                    row.highest_modseq += 1;
                    index::insert_message(
                        tx,
                        row.id,
                        &MsgRow {
                            uid: m.uid,
                            file_name,
                            flags: m.flags.clone(),
                            modseq: row.highest_modseq,
                            size: crlf,
                            disk_size: disk,
                            internal_date: m.internal_date,
                        },
                    )?;
                    row.uidnext = row.uidnext.max(m.uid.saturating_add(1));
                }
                row.uidnext = row.uidnext.max(uidnext);
                // The next sync looks at cur/ again rather than trust it.
                row.cur_mtime_ns = -1;
                cur.fsync()?;
                index::update_row(tx, &row)?;
                Ok(())
            })?;
            count.imported += ready.len();
            let bytes: u64 = ready
                .iter()
                .map(|(_, p)| match p {
                    Placed::Tmp(_, disk, _) => *disk,
                    Placed::Traced(_) => 0,
                })
                .sum();
            let n = ready
                .iter()
                .filter(|(_, p)| matches!(p, Placed::Tmp(..)))
                .count();
            crate::quota::record(self.dir(), bytes as i64, n as i64)?;
        }
        if todo.is_empty() && uidnext > mb.uidnext() {
            self.inner.write(|tx| {
                tx.execute(
                    "UPDATE mailboxes SET uidnext = max(uidnext, ?2) WHERE name = ?1",
                    params![norm, uidnext],
                )?;
                Ok(())
            })?;
        }
        Ok(count)
    }

    /// Gives mailbox `norm` the UIDVALIDITY `v` if it has no message yet.
    fn adopt_uidvalidity(&self, norm: &str, v: u32) -> Result<()> {
        let mb = self.select(norm)?;
        if mb.uidvalidity() == v {
            return Ok(());
        }
        if !mb.messages().is_empty() {
            return Err(StoreError::Index(format!(
                "{norm} already holds messages under UIDVALIDITY {} (importing {v})",
                mb.uidvalidity()
            )));
        }
        self.inner.write(|tx| {
            tx.execute(
                "UPDATE mailboxes SET uidvalidity = ?2 WHERE name = ?1",
                params![norm, v],
            )?;
            Ok(())
        })
    }

    /// A mailbox for export: its UIDVALIDITY, UIDNEXT and messages.
    pub fn export_mailbox(&self, name: &str) -> Result<ExportMailbox> {
        let mut mb = self.select(name)?;
        mb.resolve_dates(None)?;
        let dir = mb.dir().join("cur");
        Ok(ExportMailbox {
            uidvalidity: mb.uidvalidity(),
            uidnext: mb.uidnext(),
            messages: mb
                .messages()
                .iter()
                .map(|m| {
                    (
                        m.uid,
                        dir.join(&*m.file_name),
                        m.flags.clone(),
                        m.internal_date,
                    )
                })
                .collect(),
        })
    }
}

/// Where a message's file is before the commit.
enum Placed {
    /// Written to `tmp/`: (path, size on disk, CRLF size).
    Tmp(PathBuf, u64, u64),
    /// Already in `cur/` under this name (an interrupted run).
    Traced(String),
}

/// A unique part usable in a file name: no separator, no `/`, no `:` or
/// `,` (ours come after it), not empty, not a dot file.
fn valid_unique(u: &str) -> bool {
    !u.is_empty()
        && u.len() <= 200
        && !u.starts_with('.')
        && u.bytes()
            .all(|b| b.is_ascii_graphic() && !matches!(b, b'/' | b':' | b','))
}

/// Copies `m`'s file into `folder/tmp/<unique>` in LF form, fsynced and
/// dated; returns (path, size on disk, CRLF size).
fn write_import_tmp(folder: &Path, m: &ImportMessage) -> Result<(PathBuf, u64, u64)> {
    let data = fs::read(&m.source)?;
    let tmp = folder.join("tmp").join(&m.unique);
    // A leftover of an interrupted run.
    let _ = fs::remove_file(&tmp);
    let mut out = Vec::with_capacity(data.len() + 1);
    let mut conv = ToLf::new();
    conv.push(&data, &mut out);
    conv.finish(&mut out);
    let crlf = crate::crlf::crlf_len(&out);
    let mut f: File = fsops::create_new(&tmp, 0o600)?;
    f.write_all(&out)?;
    fsops::sync_file(&f, &tmp)?;
    drop(f);
    set_mtime(&tmp, m.internal_date)?;
    Ok((tmp, out.len() as u64, crlf))
}

/// Raises the user's `facteur-uidvalidity` to at least `v`.
fn raise_uidvalidity_file(user_dir: &Path, v: u32) -> io::Result<()> {
    let path = user_dir.join(index::UIDVALIDITY_FILE);
    let now: u32 = crate::dirfd::read_to_string(&path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if now >= v {
        return Ok(());
    }
    facteur_util::write_atomic(&path, format!("{v}\n").as_bytes(), 0o600)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::{Quota, SEEN, Store};

    fn msg(dir: &Path, unique: &str, uid: u32, seen: bool, kw: &[&str]) -> ImportMessage {
        let source = dir.join(unique);
        fs::write(&source, format!("Subject: {uid}\n\nbody {uid}\n")).unwrap();
        let mut flags = Flags::system(if seen { SEEN } else { 0 });
        flags.keywords.extend(kw.iter().map(|k| k.to_string()));
        ImportMessage {
            source,
            unique: unique.into(),
            uid,
            flags,
            internal_date: 1_600_000_000 + i64::from(uid),
        }
    }

    #[test]
    fn uids_and_uidvalidity_are_kept_and_a_second_run_adds_nothing() {
        let d = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let s = Store::for_tests(d.path());
        s.create_user("u@x.test").unwrap();
        let us = s.open_user("u@x.test", Quota::default()).unwrap();
        let msgs = vec![
            msg(src.path(), "1600000005.M1P1.old", 5, true, &["$label1"]),
            msg(src.path(), "1600000009.M2P1.old", 9, false, &[]),
            msg(src.path(), "1600000010.M3P1.old", 10, false, &["work"]),
        ];
        // INBOX exists (empty): it takes the old UIDVALIDITY.
        let c = us.import_messages("INBOX", 1_234_567, 40, &msgs).unwrap();
        assert_eq!(
            c,
            ImportCount {
                imported: 3,
                skipped: 0
            }
        );
        let mut mb = us.select("INBOX").unwrap();
        assert_eq!(mb.uidvalidity(), 1_234_567);
        assert_eq!(mb.uidnext(), 40);
        let got: Vec<(u32, u8, Vec<String>)> = mb
            .messages()
            .iter()
            .map(|m| {
                (
                    m.uid,
                    m.flags.system,
                    m.flags.keywords.iter().cloned().collect(),
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (5, SEEN, vec!["$label1".to_string()]),
                (9, 0, vec![]),
                (10, 0, vec!["work".to_string()])
            ]
        );
        mb.resolve_dates(None).unwrap();
        assert_eq!(mb.messages()[1].internal_date, 1_600_000_009);
        assert_eq!(mb.read_message(9).unwrap(), b"Subject: 9\r\n\r\nbody 9\r\n");
        // A new message after the import takes a UID above the old UIDNEXT.
        let new = mb
            .append(
                &mut &b"Subject: new\r\n\r\nx\r\n"[..],
                &Flags::default(),
                None,
            )
            .unwrap();
        assert_eq!(new, 40);
        // Again: nothing imported twice.
        let c = us.import_messages("INBOX", 1_234_567, 40, &msgs).unwrap();
        assert_eq!(
            c,
            ImportCount {
                imported: 0,
                skipped: 3
            }
        );
        // A mailbox with messages under another UIDVALIDITY is refused.
        assert!(us.import_messages("INBOX", 7, 1, &msgs).is_err());
        // A later mailbox never gets an older UIDVALIDITY than imported ones.
        let old = vec![msg(src.path(), "1.M1P1.old", 1, false, &[])];
        us.import_messages("Later", 4_000_000_000, 2, &old).unwrap();
        us.create_mailbox("Newer", None).unwrap();
        assert!(us.select("Newer").unwrap().uidvalidity() > 4_000_000_000);
        let e = us.export_mailbox("INBOX").unwrap();
        assert_eq!((e.uidvalidity, e.uidnext), (1_234_567, 41));
        assert_eq!(
            e.messages.iter().map(|m| m.0).collect::<Vec<_>>(),
            [5, 9, 10, 40]
        );
        assert!(e.messages[0].1.exists());
    }

    #[test]
    fn a_run_cut_after_the_rename_is_resumed_without_a_duplicate() {
        let d = tempfile::tempdir().unwrap();
        let src = tempfile::tempdir().unwrap();
        let s = Store::for_tests(d.path());
        s.create_user("u@x.test").unwrap();
        let us = s.open_user("u@x.test", Quota::default()).unwrap();
        let msgs = vec![
            msg(src.path(), "1600000001.M1P1.old", 1, false, &[]),
            msg(src.path(), "1600000002.M2P1.old", 2, false, &[]),
        ];
        us.import_messages("Box", 99, 3, &msgs[..1]).unwrap();
        // Message 2's file reached cur/ but its row was never committed;
        // then a scan indexed it under a UID of its own.
        let cur = us.mailbox_dir("Box").unwrap().join("cur");
        fs::write(
            cur.join("1600000002.M2P1.old,S=16,W=18:2,"),
            "Subject: 2\n\nbody 2\n",
        )
        .unwrap();
        let mb = us.select("Box").unwrap();
        assert_eq!(mb.messages().len(), 2);
        let c = us.import_messages("Box", 99, 3, &msgs).unwrap();
        assert_eq!(
            c,
            ImportCount {
                imported: 1,
                skipped: 1
            }
        );
        let mb = us.select("Box").unwrap();
        assert_eq!(
            mb.messages().iter().map(|m| m.uid).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(fs::read_dir(&cur).unwrap().count(), 2);
    }
}
