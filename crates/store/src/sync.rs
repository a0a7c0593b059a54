//! Sync: bringing a mailbox's index rows up to date with its directories.
//!
//! Offers [`scan_locked`], called inside the user's `BEGIN IMMEDIATE`
//! transaction, and [`needs_scan`], the cheap test done before taking it.
//! Needs the index (index.rs) and the name parser (name.rs).
//!
//! Invariants (each holds at every commit of the index):
//! 1. Every file of `cur/` whose name parses is known by its *base* (the
//!    name up to `:`) to exactly one row; no two rows of a mailbox share a
//!    base. A file is matched to its row by base only, so a flag rename by
//!    any tool keeps the UID.
//! 2. UIDs are given only here and in APPEND/COPY/MOVE, always from the
//!    mailbox row's `uidnext`, which only grows, inside the write lock; so no
//!    UID is given twice or reused, whichever process syncs. New files get
//!    UIDs in a stable order: by the delivery time their names start with
//!    (`<secs>.M<usec>`), then by name. Their mtimes (internal dates) are not read here when
//!    the name gives the size: `Mailbox::resolve_dates` reads them when
//!    asked.
//! 3. Every change that a client can see (new message, expunge, flags)
//!    takes a modseq above the mailbox's previous HIGHESTMODSEQ, and an
//!    expunged UID leaves a tombstone with its modseq (for QRESYNC VANISHED).
//! 4. Only a scan done under the lock moves files from `new/` to `cur/` (with
//!    `:2,`), and a file moved but not yet committed is found again by its
//!    base: a crash between the rename and the commit loses nothing.
//! 5. The recorded directory mtimes (ns) are the ones seen *before* the
//!    readdir. One older than [`SETTLE`] is trusted: a change made within
//!    the same timestamp tick is impossible, and an equal mtime means
//!    nothing changed. A younger `cur/` or `new/` mtime is recorded as
//!    *young* (`-2 - mtime`), and so is `cur/`'s mtime after a change this process
//!    made itself under the lock and wrote to the index (APPEND, STORE's
//!    renames, EXPUNGE: [`after_own_change`]), when the record was current
//!    before it. A young record is trusted only by the process that made
//!    it, and only until [`SETTLE`] after the first young record since its
//!    last trusted one ([`verification_in`]); then one scan verifies it.
//!    So a session's own changes cost no rescan of a big `cur/`, and a
//!    change by another tool in the same clock tick as one of ours is seen
//!    at most [`SETTLE`] late. (IDLE wakes up for that verification.)
//!
//! Files in `tmp/` older than 36 hours are removed (Maildir's rule).
//!
//! Security: every directory and file is reached through descriptors
//! (dirfd.rs), never through a symbolic link: a `new/` or `tmp/` that is a
//! link is skipped (and logged), so no outside file is moved into the
//! store or removed; links and other non-regular entries of `new/` and
//! `cur/` are skipped (and logged), never moved, listed or read.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, params};

use crate::dirfd::{Dir, OpenMaildir, is_link_refused};
use crate::index::{self, MailboxRow};
use crate::name::parse_file_name;
use crate::{Flags, MessageMeta, Result};

/// How old a directory's mtime must be before it is trusted as unchanged.
pub const SETTLE: Duration = Duration::from_secs(2);
const TMP_MAX_AGE: Duration = Duration::from_secs(36 * 3600);

fn mtime_ns(st: &nix::sys::stat::FileStat) -> i64 {
    st.st_mtime
        .saturating_mul(1_000_000_000)
        .saturating_add(st.st_mtime_nsec)
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos() as i64
}

/// The delivery time a Maildir name starts with: `<secs>.M<usec>...`
/// (ours, Dovecot's) or `<secs>.<anything>` (usec 0); (0, 0) for a name
/// without one. Numbers, so that `M99` sorts before `M100`.
fn name_time(name: &str) -> (u64, u64) {
    /// The number the bytes start with (None: no digit, or too large) and
    /// what follows it.
    fn digits(s: &[u8]) -> (Option<u64>, &[u8]) {
        let end = s
            .iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(s.len());
        let n = s[..end].iter().try_fold(0u64, |n, &c| {
            n.checked_mul(10)?.checked_add(u64::from(c - b'0'))
        });
        (n.filter(|_| end > 0), &s[end..])
    }
    let (Some(secs), rest) = digits(name.as_bytes()) else {
        return (0, 0);
    };
    let usec = rest
        .strip_prefix(b".M")
        .and_then(|r| digits(r).0)
        .unwrap_or(0);
    (secs, usec)
}

/// Names listed in `cur/` before [`parsed_files`] parses the rest on a
/// second thread, and then per batch sent to it.
const PARSE_BATCH: usize = 2048;

/// The files of `cur/`, parsed, and the entries that are not regular
/// files. A big directory is read on this thread and parsed on another as
/// the names come: the kernel's readdir and the parsing each take a core.
fn parsed_files(cur: &Dir) -> io::Result<(Vec<OnDisk>, Vec<String>)> {
    let mut skipped = Vec::new();
    let mut batch: Vec<Arc<str>> = Vec::with_capacity(PARSE_BATCH);
    let parse = |files: &mut Vec<OnDisk>, batch: Vec<Arc<str>>| {
        files.extend(batch.into_iter().filter_map(OnDisk::new));
    };
    std::thread::scope(|s| {
        let mut parser: Option<(mpsc::SyncSender<Vec<Arc<str>>>, _)> = None;
        // No thread could start: everything is parsed here, after.
        let mut alone = false;
        let listed = cur.each_entry(|name, regular| {
            if !regular {
                skipped.push(name.to_owned());
                return;
            }
            batch.push(name.into());
            if alone || batch.len() < PARSE_BATCH {
                return;
            }
            let full = std::mem::replace(&mut batch, Vec::with_capacity(PARSE_BATCH));
            if parser.is_none() {
                let (tx, rx) = mpsc::sync_channel::<Vec<Arc<str>>>(8);
                let spawned = std::thread::Builder::new()
                    .name("scan-parse".into())
                    .spawn_scoped(s, move || {
                        let mut files = Vec::new();
                        for b in rx {
                            parse(&mut files, b);
                        }
                        files
                    });
                match spawned {
                    Ok(h) => parser = Some((tx, h)),
                    Err(_) => {
                        alone = true;
                        batch = full;
                        return;
                    }
                }
            }
            if let Some((tx, _)) = &parser {
                // The parser ends only when this side hangs up.
                let _ = tx.send(full);
            }
        });
        let mut files = match parser {
            Some((tx, h)) => {
                drop(tx);
                h.join().unwrap_or_else(|p| std::panic::resume_unwind(p))
            }
            None => Vec::new(),
        };
        parse(&mut files, batch);
        listed.map(|()| (files, skipped))
    })
}

/// New rows from which a first scan builds its view on a thread of its own
/// while this one writes them into the index.
pub(crate) const PARALLEL_VIEW_ROWS: usize = 4096;

/// A message file found in `cur/`, its name parsed once. Only what a
/// scan uses of the parsed name: a first SELECT holds one for each of a
/// big Maildir's files, and memory first touched costs a page fault per
/// page.
struct OnDisk {
    time: (u64, u64),
    name: Arc<str>,
    disk_size: Option<u64>,
    crlf_size: Option<u64>,
    /// The length of the base (`ParsedName::base`), a prefix of the name.
    base_len: u32,
    flags: u8,
    /// Matched by a message the index knows.
    known: bool,
}

impl OnDisk {
    fn new(name: Arc<str>) -> Option<OnDisk> {
        let p = parse_file_name(&name)?;
        Some(OnDisk {
            time: name_time(p.unique),
            disk_size: p.disk_size,
            crlf_size: p.crlf_size,
            base_len: p.base.len() as u32,
            flags: p.flags,
            known: false,
            name,
        })
    }

    fn base(&self) -> &str {
        &self.name[..self.base_len as usize]
    }
}

/// What a scan needs of a new file whose name lacks its size.
pub(crate) struct FileTimes {
    pub mtime: i64,
    /// The last change of the inode (never set by anyone: utimes, rename
    /// and writes all bump it to now).
    pub ctime: i64,
    len: u64,
}

/// `fstatat(dir, name)`, not through a symbolic link; `None` for anything
/// but a regular file.
pub(crate) fn stat_at(dir: &Dir, name: &str) -> io::Result<Option<FileTimes>> {
    use nix::sys::stat::SFlag;
    let st = dir.stat_at(name)?;
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG {
        return Ok(None);
    }
    Ok(Some(FileTimes {
        mtime: st.st_mtime,
        ctime: st.st_ctime,
        len: u64::try_from(st.st_size).unwrap_or(0),
    }))
}

/// The mtimes of `cur/` and `new/` (of a `new/` that is a link: the link's).
fn dir_mtimes(md: &OpenMaildir) -> io::Result<(i64, i64)> {
    Ok((
        mtime_ns(&md.cur.stat()?),
        mtime_ns(&md.folder.stat_at("new")?),
    ))
}

/// A young record of `cur/`'s mtime `ns` (see invariant 5).
fn young(ns: i64) -> i64 {
    if ns < 0 { -1 } else { -2 - ns }
}

/// The mtime in a young record.
fn young_mtime(rec: i64) -> Option<i64> {
    (rec <= -2).then(|| -2 - rec)
}

/// Per process: since when it has trusted a young record of a `cur/`
/// without verifying it by a scan. Bounded; forgetting an entry only costs
/// a scan.
fn unverified() -> std::sync::MutexGuard<'static, HashMap<std::path::PathBuf, Instant>> {
    static MAP: std::sync::OnceLock<Mutex<HashMap<std::path::PathBuf, Instant>>> =
        std::sync::OnceLock::new();
    MAP.get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner())
}
const MAX_UNVERIFIED: usize = 4096;

fn mark_unverified(dir: &Path, keep_older: bool) {
    let mut m = unverified();
    if keep_older && m.contains_key(dir) {
        return;
    }
    if m.len() >= MAX_UNVERIFIED {
        m.clear();
    }
    m.insert(dir.to_path_buf(), Instant::now());
}

/// Whether the record `rec` says `cur/` or `new/` (now at mtime `ns`) has
/// not changed since it was written.
fn record_current(dir: &Path, rec: i64, ns: i64) -> bool {
    if rec >= 0 {
        return rec == ns;
    }
    young_mtime(rec) == Some(ns) && unverified().get(dir).is_some_and(|t| t.elapsed() < SETTLE)
}

/// When this process will want to verify `dir`'s young record by a scan
/// (None: it trusts no young record of it).
pub fn verification_in(dir: &Path) -> Option<Duration> {
    unverified()
        .get(dir)
        .map(|t| SETTLE.saturating_sub(t.elapsed()))
}

/// `cur/`'s mtime (ns).
pub(crate) fn cur_mtime(md: &OpenMaildir) -> io::Result<i64> {
    Ok(mtime_ns(&md.cur.stat()?))
}

/// After a change this process made to `cur/` inside the write lock and
/// recorded in the index: if the row's record (`rec_before`) was current
/// at `pre` (the mtime read under the lock before the change), records the
/// new mtime as young, so the change costs no rescan. Otherwise leaves the
/// row alone (the next sync scans).
pub(crate) fn after_own_change(
    md: &OpenMaildir,
    row: &mut MailboxRow,
    rec_before: i64,
    pre: Option<i64>,
) {
    let dir = md.folder.path();
    let Some(pre) = pre else { return };
    // A scan inside the change wrote its own record.
    if row.cur_mtime_ns != rec_before || !record_current(dir, rec_before, pre) {
        return;
    }
    match cur_mtime(md) {
        Ok(post) if post == pre => {}
        Ok(post) => {
            // From a trusted record the deferral starts now; from a young
            // one it keeps its start, so it stays bounded by SETTLE.
            mark_unverified(dir, rec_before < 0);
            row.cur_mtime_ns = young(post);
        }
        Err(_) => row.cur_mtime_ns = -1,
    }
}

/// Whether the directories may have changed since `row` was written.
pub fn needs_scan(md: &OpenMaildir, row: &MailboxRow) -> io::Result<bool> {
    let dir = md.folder.path();
    let (c, n) = dir_mtimes(md)?;
    Ok(!(record_current(dir, row.cur_mtime_ns, c) && record_current(dir, row.new_mtime_ns, n)))
}

/// Brings the rows of mailbox `row` (in the Maildir `md`) up to date. Must
/// run inside a write transaction; updates `row` in memory and in the
/// index. With `force`, scans even when the mtimes say nothing changed.
pub fn scan_locked(
    conn: &Connection,
    md: &OpenMaildir,
    row: &mut MailboxRow,
    force: bool,
) -> Result<()> {
    scan(conn, md, row, force, None)
}

/// What a first scan hands out before its rows go in (see [`scan_new`]):
/// the view (every message, by UID) and the row as the commit will leave
/// it (UIDNEXT, HIGHESTMODSEQ, the directories' mtimes).
pub type Publish<'a> = &'a (dyn Fn(Vec<MessageMeta>, &MailboxRow) + Sync);

/// [`scan_locked`] of a mailbox whose row was just created: it also gives
/// the view of what it indexes to `publish`, as soon as that view is built
/// and before the rows are in (from another thread for a big one), so
/// that the first SELECT of a Maildir without an index neither reads back
/// the rows it has just written nor waits for them. Not called if the row
/// had messages after all.
pub fn scan_new(
    conn: &Connection,
    md: &OpenMaildir,
    row: &mut MailboxRow,
    publish: Publish<'_>,
) -> Result<()> {
    scan(conn, md, row, true, Some(publish))
}

fn scan(
    conn: &Connection,
    md: &OpenMaildir,
    row: &mut MailboxRow,
    force: bool,
    mut publish: Option<Publish<'_>>,
) -> Result<()> {
    let dir = md.folder.path();
    let (cur_ns, new_ns) = dir_mtimes(md)?;
    if !force
        && record_current(dir, row.cur_mtime_ns, cur_ns)
        && record_current(dir, row.new_mtime_ns, new_ns)
    {
        return Ok(());
    }
    let settled = now_ns() - SETTLE.as_nanos() as i64;
    clean_tmp(md);
    let cur = &md.cur;
    // new/ -> cur/, adding the empty info part.
    match md.folder.sub("new") {
        Ok(new) => {
            let listing = new.list()?;
            listing.warn_skipped(new.path());
            for name in listing.files {
                let Some(p) = parse_file_name(&name) else {
                    continue;
                };
                let target = if p.has_info {
                    name.to_string()
                } else {
                    format!("{name}:2,")
                };
                match new.rename(&name, cur, &target) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Err(e) if is_link_refused(&e) => {
            tracing::warn!(dir = %dir.display(), "new/ is not a directory (a symbolic link?): skipped, never followed");
        }
        Err(e) => return Err(e.into()),
    }
    // What is in cur/: each name parsed once, sorted by delivery time, then
    // base, then name (a known message is found by binary search, new ones
    // come out in order, and the files of one base are side by side). Two
    // files with one base: the first by name is kept (a stable choice),
    // the other ignored.
    let (mut files, skipped) = parsed_files(cur)?;
    crate::dirfd::warn_skipped(cur.path(), &skipped);
    // The files stay where they are; their order is a list of slim keys
    // (the time, then the file's place), sorted: sorting the files
    // themselves moved all their fields at every step.
    let mut order: Vec<(u64, u64, u32)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| (f.time.0, f.time.1, i as u32))
        .collect();
    order.sort_unstable_by(|a, b| {
        (a.0, a.1).cmp(&(b.0, b.1)).then_with(|| {
            let (x, y) = (&files[a.2 as usize], &files[b.2 as usize]);
            x.base().cmp(y.base()).then_with(|| x.name.cmp(&y.name))
        })
    });
    order.dedup_by(|later, first| {
        // One base, one time: files of different times are different.
        if (later.0, later.1) != (first.0, first.1) {
            return false;
        }
        let (l, f) = (&files[later.2 as usize], &files[first.2 as usize]);
        let same = l.base() == f.base();
        if same {
            tracing::warn!(dir = %cur.path().display(), a = &*f.name, b = &*l.name, "two files with one base name");
        }
        same
    });
    let modseq = row.highest_modseq + 1;
    let mut changed = false;
    let mut matched = 0;
    {
        let mut st =
            conn.prepare_cached("SELECT uid, file_name, flags FROM messages WHERE mailbox = ?1")?;
        let known = st
            .query_map([row.id], |r| {
                Ok((
                    r.get::<_, u32>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, u8>(2)?,
                ))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        if !known.is_empty() {
            publish = None;
        }
        let mut upd = conn.prepare_cached(
            "UPDATE messages SET file_name = ?3, flags = ?4, modseq = CASE WHEN ?5 THEN ?6 ELSE modseq END
             WHERE mailbox = ?1 AND uid = ?2",
        )?;
        for (uid, file_name, flags) in known {
            let base = file_name.split(':').next().unwrap_or(&file_name);
            let key = (name_time(base), base);
            let found = order.binary_search_by(|&(t0, t1, i)| {
                (t0, t1)
                    .cmp(&key.0)
                    .then_with(|| files[i as usize].base().cmp(key.1))
            });
            let found = match found {
                // a second row of one base (never written so) is expunged
                Ok(k) if !files[order[k].2 as usize].known => {
                    let f = &mut files[order[k].2 as usize];
                    f.known = true;
                    matched += 1;
                    Some(&*f)
                }
                _ => None,
            };
            match found {
                Some(f) if *f.name == *file_name => {}
                Some(f) => {
                    // Renamed by someone else: flags may have changed.
                    let (now, new_flags) = (&*f.name, f.flags);
                    let bump = new_flags != flags;
                    upd.execute(params![row.id, uid, now, new_flags, bump, modseq as i64])?;
                    changed |= bump;
                }
                None => {
                    index::expunge_message(conn, row.id, uid, modseq)?;
                    changed = true;
                }
            }
        }
    }
    // Files unknown to the index: new messages, in that order. Only a
    // name without its size (S=) costs a stat (fstatat on the descriptor
    // of cur/, no path walk); the internal date is left unknown otherwise.
    let fresh = order
        .iter()
        .map(|&(_, _, i)| &files[i as usize])
        .filter(|f| !f.known);
    // One read buffer for every file that has to be read (no W= size).
    let mut buf = Vec::new();
    // The new rows, inserted together after the loop (many to a statement).
    let unknown = order.len() - matched;
    let mut fresh_rows: Vec<index::NewRow<'_>> = Vec::with_capacity(unknown);
    for f in fresh {
        let name = &*f.name;
        let (disk_size, internal_date) = match f.disk_size {
            Some(d) => (d, crate::UNKNOWN_DATE),
            None => match stat_at(cur, name) {
                Ok(Some(t)) => (t.len, t.mtime),
                // Replaced by a link (or another kind of file) meanwhile.
                Ok(None) => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e.into()),
            },
        };
        let size = match f.crlf_size {
            Some(w) => w,
            None => match crlf_size_of(cur, name, &mut buf) {
                Ok(w) => w,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) if is_link_refused(&e) || e.kind() == io::ErrorKind::InvalidData => {
                    continue;
                }
                Err(e) => return Err(e.into()),
            },
        };
        let uid = row.uidnext;
        row.uidnext = row
            .uidnext
            .checked_add(1)
            .ok_or_else(|| crate::StoreError::Index("UIDs exhausted in this mailbox".into()))?;
        fresh_rows.push(index::NewRow {
            uid,
            file_name: &f.name,
            flags: f.flags,
            size,
            disk_size,
            internal_date,
        });
    }
    changed |= !fresh_rows.is_empty();
    if changed {
        row.highest_modseq = modseq;
    }
    row.cur_mtime_ns = if cur_ns < settled {
        unverified().remove(dir);
        cur_ns
    } else {
        // This scan verified everything up to its readdir: the deferral
        // starts again now.
        mark_unverified(dir, false);
        young(cur_ns)
    };
    row.new_mtime_ns = if new_ns < settled {
        new_ns
    } else {
        // Young too (a delivery just now): trusted by this process until
        // the verification, so the other sessions woken by the same
        // delivery do not each scan again. Keeps an older deferral (the
        // cur/ branch above restarted it if cur/ is young).
        mark_unverified(dir, true);
        young(new_ns)
    };
    // The rows go into the index on this thread (the connection's); the
    // view of a first scan, if asked, is built and published meanwhile on
    // another when there are many (both cores: the first SELECT of a big
    // Maildir), else just before.
    let shown = publish.is_some().then(|| row.clone());
    let build = |rows: &[index::NewRow<'_>]| -> Vec<MessageMeta> {
        rows.iter()
            .map(|r| MessageMeta {
                uid: r.uid,
                flags: Flags::system(r.flags),
                modseq,
                size: r.size,
                internal_date: r.internal_date,
                file_name: Arc::clone(r.file_name),
            })
            .collect()
    };
    let rows = &fresh_rows;
    // Copy (it holds references and numbers): if no thread can start
    // with a copy, another copy runs here.
    let publish = publish
        .zip(shown.as_ref())
        .map(|(p, r)| move || p(build(rows), r));
    match publish {
        Some(publish) if fresh_rows.len() >= PARALLEL_VIEW_ROWS => {
            std::thread::scope(|s| {
                let builder = std::thread::Builder::new()
                    .name("scan-view".into())
                    .spawn_scoped(s, publish);
                let builder = match builder {
                    Ok(h) => Some(h),
                    Err(_) => {
                        publish();
                        None
                    }
                };
                index::insert_many(conn, row.id, modseq, &fresh_rows)?;
                if let Some(h) = builder {
                    h.join().unwrap_or_else(|p| std::panic::resume_unwind(p));
                }
                Ok::<_, crate::StoreError>(())
            })?;
        }
        Some(publish) => {
            publish();
            index::insert_many(conn, row.id, modseq, &fresh_rows)?;
        }
        None => index::insert_many(conn, row.id, modseq, &fresh_rows)?,
    }
    index::update_row(conn, row)?;
    Ok(())
}

/// The CRLF size of a file written by another tool (no `W=`): its size plus
/// its LF count.
fn crlf_size_of(cur: &Dir, name: &str, buf: &mut Vec<u8>) -> io::Result<u64> {
    let mut f = cur.open_file(name)?;
    buf.resize(64 * 1024, 0);
    let mut total = 0u64;
    loop {
        let n = match f.read(buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += crate::crlf::crlf_len(&buf[..n]);
    }
}

/// Removes regular files older than 36 hours from `tmp/` (best effort; a
/// `tmp/` that is a link is left alone: its target is not ours).
fn clean_tmp(md: &OpenMaildir) {
    let tmp = match md.folder.sub("tmp") {
        Ok(t) => t,
        Err(e) => {
            if is_link_refused(&e) {
                tracing::warn!(dir = %md.folder.path().display(), "tmp/ is not a directory (a symbolic link?): not cleaned, never followed");
            }
            return;
        }
    };
    let Ok(listing) = tmp.list() else {
        return;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs() as i64;
    // Age by the later of mtime and ctime: an APPEND with an old internal
    // date sets its tmp/ file's mtime years back before the rename into
    // cur/ (the file's ctime says it is being worked on).
    for name in listing.files {
        if let Ok(Some(t)) = stat_at(&tmp, &name)
            && now.saturating_sub(t.mtime.max(t.ctime)) > TMP_MAX_AGE.as_secs() as i64
        {
            let _ = tmp.unlink(&name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::name_time;

    #[test]
    fn a_tmp_file_dated_back_by_append_is_not_cleaned() {
        // The race imaptest's stress run found: APPEND with an internal
        // date years ago sets the mtime of its tmp/ file, then a scan by
        // another session removed it as stale before its rename into cur/.
        let d = tempfile::tempdir().unwrap();
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir(d.path().join(sub)).unwrap();
        }
        let f = d.path().join("tmp").join("1700000000.M1P1.host");
        std::fs::write(&f, b"Subject: old\n\nbody\n").unwrap();
        crate::maildir::set_mtime(&f, 1_000_000_000).unwrap();
        let md = crate::dirfd::OpenMaildir::open(d.path(), false).unwrap();
        super::clean_tmp(&md);
        assert!(f.exists(), "an APPEND's file was removed from tmp/");
    }

    #[test]
    fn names_sort_by_their_delivery_time() {
        assert_eq!(name_time("1700000000.M99P1Q2R3.h,S=1"), (1_700_000_000, 99));
        assert_eq!(name_time("1700000000.M100P1.h"), (1_700_000_000, 100));
        assert_eq!(name_time("1700000000.12345_1.courier"), (1_700_000_000, 0));
        assert_eq!(name_time("foreign"), (0, 0));
        assert_eq!(name_time("99999999999999999999999.M1"), (0, 0));
        let mut v = [
            "1700000000.M100P1.h",
            "1700000000.M99P1.h",
            "1600000000.M5.h",
        ];
        v.sort_unstable_by_key(|n| (name_time(n), *n));
        assert_eq!(
            v,
            [
                "1600000000.M5.h",
                "1700000000.M99P1.h",
                "1700000000.M100P1.h"
            ]
        );
    }
}

#[cfg(test)]
#[path = "sync_big_tests.rs"]
mod big_tests;
