//! The spool directory: creating, listing, reading, updating, moving and
//! removing queue files, and waking the queue manager.
//!
//! Needs: a POSIX file system with hard links (falls back to a checked
//! rename without them), `facteur-util` for fsync helpers and queue ids.
//!
//! Guarantees (see the crate documentation): nothing is visible in a queue
//! directory before it is complete and durable; `update` is atomic and
//! durable; ids are validated before use in paths; files are opened with
//! O_NOFOLLOW and must be regular files.
//!
//! Concurrency: any number of writers may create files at once (ids are
//! reserved with O_EXCL). Operations on one existing queue file (update,
//! move, rewrite, remove) must be serialized by the caller; qmgr owns the
//! messages in its queues, and facteurctl asks qmgr or works on `hold/`.

use crate::format::{self, END_RECORD};
use crate::writer::QueueWriter;
use crate::{Envelope, QueueFile, QueueName, Result, SpoolError, valid_queue_id};
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Mode of `maildrop/`: setgid (files get the spool's group, so qmgr can read
/// them), sticky (users cannot remove each other's files), writable and
/// searchable by all, readable (listable) only by the owner.
pub const MAILDROP_MODE: u32 = 0o3733;
/// Mode of every other directory.
pub const DIR_MODE: u32 = 0o700;
/// Mode of queue files in `maildrop/` (group: the spool's, via setgid).
pub const MAILDROP_FILE_MODE: u32 = 0o640;
/// Mode of every other queue file and state file.
pub const FILE_MODE: u32 = 0o600;

const TMP_DIR: &str = "tmp";
const STATE_DIR: &str = "state";

/// A spool rooted at a directory. Cheap to clone; holds no open files.
#[derive(Debug, Clone)]
pub struct Spool {
    root: PathBuf,
    /// State files of delivered messages kept for reuse (see `discard`);
    /// `None` until first needed.
    free_states: std::sync::Arc<std::sync::Mutex<Option<Vec<PathBuf>>>>,
    /// Queue files of delivered messages waiting in `tmp/.free/` to be
    /// rewritten by `create` (names seen there; another process may have
    /// taken one meanwhile), and how many `discard` thinks are there.
    free_queue_files: std::sync::Arc<std::sync::Mutex<(Vec<PathBuf>, usize, u32)>>,
}

/// Where `discard` keeps state files for reuse, inside `state/`.
const FREE_STATES: &str = ".free";
/// How many state files are kept for reuse.
const MAX_FREE_STATES: usize = 256;

fn not_found_to(e: io::Error, what: impl FnOnce() -> String) -> SpoolError {
    if e.kind() == io::ErrorKind::NotFound {
        SpoolError::NotFound(what())
    } else {
        SpoolError::Io(e)
    }
}

fn invalid_input(msg: String) -> SpoolError {
    SpoolError::Io(io::Error::new(io::ErrorKind::InvalidInput, msg))
}

/// Opens an existing queue or state file for reading, refusing symlinks and
/// anything but a regular file.
fn open_regular(path: &Path, id: &str) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                SpoolError::Corrupt(format!("{}: is a symbolic link", path.display()))
            } else {
                not_found_to(e, || id.to_string())
            }
        })?;
    if !f.metadata()?.file_type().is_file() {
        return Err(SpoolError::Corrupt(format!(
            "{}: not a regular file",
            path.display()
        )));
    }
    Ok(f)
}

impl Spool {
    /// Opens the spool at `root`, creating the queue directories (and the
    /// private `tmp/` and `state/`) that are missing. Existing directories
    /// keep their modes: an unprivileged `sendmail` only needs them to exist.
    pub fn open(root: &Path) -> Result<Spool> {
        if !root.is_dir() {
            facteur_util::create_dir_all_mode(root, 0o755)?;
        }
        let spool = Spool {
            root: root.to_path_buf(),
            free_states: Default::default(),
            free_queue_files: Default::default(),
        };
        let mut dirs: Vec<(PathBuf, u32)> = QueueName::ALL
            .iter()
            .map(|&q| {
                let mode = if q == QueueName::Maildrop {
                    MAILDROP_MODE
                } else {
                    DIR_MODE
                };
                (spool.dir(q), mode)
            })
            .collect();
        dirs.push((root.join(TMP_DIR), DIR_MODE));
        dirs.push((root.join(STATE_DIR), DIR_MODE));
        for (dir, mode) in dirs {
            if dir.is_dir() {
                continue;
            }
            match fs::DirBuilder::new().mode(mode & 0o777).create(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(e.into()),
            }
            // mkdir applies the umask and may drop the setgid/sticky bits.
            fs::set_permissions(&dir, fs::Permissions::from_mode(mode))?;
        }
        Ok(spool)
    }

    /// The spool root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of queue `q`.
    pub fn dir(&self, q: QueueName) -> PathBuf {
        self.root.join(q.as_str())
    }

    fn path(&self, q: QueueName, id: &str) -> Result<PathBuf> {
        if !valid_queue_id(id) {
            return Err(SpoolError::NotFound(id.to_string()));
        }
        Ok(self.dir(q).join(id))
    }

    fn state_path(&self, id: &str) -> PathBuf {
        self.root.join(STATE_DIR).join(format!("{id}.state"))
    }

    /// Whether a file named `id` is in any queue directory.
    fn exists_anywhere(&self, id: &str) -> bool {
        QueueName::ALL
            .iter()
            .any(|&q| fs::symlink_metadata(self.dir(q).join(id)).is_ok())
    }

    /// Starts a new queue file in `q` (Incoming or Maildrop) with envelope
    /// `env` (its `queue_id` is ignored: a new id is assigned). Write the
    /// message (network form) into the returned writer, then commit.
    pub fn create(&self, q: QueueName, env: &Envelope) -> Result<QueueWriter> {
        let (tmp_dir, mode) = match q {
            QueueName::Incoming => (self.root.join(TMP_DIR), FILE_MODE),
            // Unprivileged users cannot enter tmp/: they write in maildrop/
            // itself, under a name that `list` never returns.
            QueueName::Maildrop => (self.dir(q), MAILDROP_FILE_MODE),
            _ => return Err(invalid_input(format!("cannot create files in {q}"))),
        };
        let mut tries = 0;
        let (id, tmp_path, file) = loop {
            tries += 1;
            let id = facteur_util::new_id();
            let tmp_path = tmp_dir.join(format!(".{id}.tmp"));
            if q == QueueName::Incoming
                && let Some(f) = self.reuse_queue_file(&tmp_path)
            {
                if self.exists_anywhere(&id) {
                    let _ = fs::remove_file(&tmp_path);
                } else {
                    break (id, tmp_path, f);
                }
            }
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp_path)
            {
                Ok(f) => {
                    if self.exists_anywhere(&id) {
                        let _ = fs::remove_file(&tmp_path);
                    } else {
                        break (id, tmp_path, f);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 100 => {}
                Err(e) => return Err(e.into()),
            }
            if tries >= 100 {
                return Err(SpoolError::Io(io::Error::other("no free queue id")));
            }
        };
        let mut writer = QueueWriter {
            spool: self.clone(),
            queue: q,
            id,
            tmp_path,
            file: Some(BufWriter::with_capacity(64 * 1024, file)),
            len_offset: 0,
            written: 0,
        };
        let mut env = env.clone();
        env.queue_id = writer.id.clone();
        let head = format::encode_envelope(&env, rand::random::<u64>())?;
        writer.len_offset = head.len() as u64 + 1;
        let out = writer.file.as_mut().expect("just set");
        out.write_all(&head)?;
        out.write_all(&format::message_record_head(0))?;
        Ok(writer)
    }

    /// The queue ids in `q`, sorted (= by arrival). Temporary files, state
    /// files and anything that is not a valid id are never listed.
    pub fn list(&self, q: QueueName) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        for entry in fs::read_dir(self.dir(q))? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str()
                && valid_queue_id(name)
            {
                ids.push(name.to_string());
            }
        }
        ids.sort();
        Ok(ids)
    }

    fn parse(&self, q: QueueName, id: &str) -> Result<(File, format::ParsedQueueFile, PathBuf)> {
        let path = self.path(q, id)?;
        let file = open_regular(&path, id)?;
        let len = file.metadata()?.len();
        let mut r = BufReader::with_capacity(16 * 1024, &file);
        let parsed = format::parse_queue_file(&mut r, len)?;
        drop(r);
        if parsed.envelope.queue_id != id {
            return Err(SpoolError::Corrupt(format!(
                "{}: queue id record says {:?}",
                path.display(),
                parsed.envelope.queue_id
            )));
        }
        Ok((file, parsed, path))
    }

    /// The latest delivery state for a file, if a state file belongs to it.
    fn load_state(&self, id: &str, nonce: u64) -> Result<Option<format::DeliveryState>> {
        let data = match fs::read(self.state_path(id)) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let st = match framed_state(&data) {
            // The state log: its last intact frame is the state.
            Some((Ok(frame), _)) => format::parse_state_bytes(frame),
            // A log with no intact frame: its first write was cut short by
            // a crash, before `update` returned; there is no state yet.
            Some((Err(()), _)) => return Ok(None),
            // A whole-file state (written before state logs existed).
            None => format::parse_state_bytes(&data),
        }
        .map_err(|e| SpoolError::Corrupt(format!("state file of {id}: {e}")))?;
        Ok((st.nonce == nonce).then_some(st))
    }

    /// Reads a queue file's envelope, with its latest delivery state.
    pub fn read(&self, q: QueueName, id: &str) -> Result<QueueFile> {
        let (_, parsed, path) = self.parse(q, id)?;
        let mut envelope = parsed.envelope;
        if let Some(st) = self.load_state(id, parsed.nonce)?
            && !st.apply(&mut envelope)
        {
            return Err(SpoolError::Corrupt(format!(
                "state file of {id} does not match its recipients"
            )));
        }
        Ok(QueueFile {
            queue: q,
            envelope,
            message_size: parsed.message_len,
            path,
        })
    }

    /// Reads a queue file from whichever queue directory holds it.
    pub fn find(&self, id: &str) -> Result<QueueFile> {
        for q in QueueName::ALL {
            match self.read(q, id) {
                Err(SpoolError::NotFound(_)) => continue,
                other => return other,
            }
        }
        Err(SpoolError::NotFound(id.to_string()))
    }

    /// The message of a queue file, network form (CRLF), exactly as written.
    pub fn open_message(&self, q: QueueName, id: &str) -> Result<Box<dyn Read + Send>> {
        let (mut file, parsed, _) = self.parse(q, id)?;
        file.seek(SeekFrom::Start(parsed.message_offset))?;
        Ok(Box::new(BufReader::with_capacity(
            64 * 1024,
            file.take(parsed.message_len),
        )))
    }

    /// Moves a queue file between queues (rename, fsync both directories).
    /// The state file lives in `state/`, keyed by id, so it goes along.
    pub fn move_to(&self, id: &str, from: QueueName, to: QueueName) -> Result<()> {
        self.rename_between(id, from, to)?;
        facteur_util::fsync_dir(&self.dir(to))?;
        facteur_util::fsync_dir(&self.dir(from))?;
        Ok(())
    }

    /// Moves a queue file between queues without waiting for the disk: the
    /// qmgr's routine steps (incoming/ → active/, active/ ⇄ deferred/). A
    /// rename is atomic, so after a crash the file is in one of the two
    /// queues, both of which the qmgr scans; at worst it is resolved again
    /// or retried early. Nothing is lost, and two fsyncs per step are saved
    /// (Postfix's queue manager does not fsync these renames either).
    pub fn relocate(&self, id: &str, from: QueueName, to: QueueName) -> Result<()> {
        self.rename_between(id, from, to)
    }

    fn rename_between(&self, id: &str, from: QueueName, to: QueueName) -> Result<()> {
        let src = self.path(from, id)?;
        if from == to {
            fs::symlink_metadata(&src).map_err(|e| not_found_to(e, || id.to_string()))?;
            return Ok(());
        }
        let dst = self.path(to, id)?;
        if fs::symlink_metadata(&dst).is_ok() {
            return Err(SpoolError::Io(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} already exists", dst.display()),
            )));
        }
        fs::rename(&src, &dst).map_err(|e| not_found_to(e, || id.to_string()))?;
        Ok(())
    }

    /// Durably replaces the mutable state (recipients' status and last
    /// reply, attempts, next attempt, delay notified). `env` must have the
    /// same recipients, in the same order, as the file.
    pub fn update(&self, q: QueueName, id: &str, env: &Envelope) -> Result<()> {
        let (_, parsed, _) = self.parse(q, id)?;
        let old = &parsed.envelope.recipients;
        if old.len() != env.recipients.len()
            || old
                .iter()
                .zip(&env.recipients)
                .any(|(a, b)| a.address != b.address)
        {
            return Err(invalid_input(format!(
                "update of {id}: the recipient list differs (use rewrite_recipients)"
            )));
        }
        let data = format::encode_state(env, parsed.nonce)?;
        let path = self.state_path(id);
        let frame = state_frame(&data);
        // Append to the state log while it is small and intact: one write
        // and one fdatasync, no new inode, no directory fsync (a new state
        // file per update cost the qmgr most of its CPU in ext4 inode
        // allocation). A log whose tail a crash cut is rewritten instead,
        // so no frame ever follows a broken one.
        let intact = match fs::read(&path) {
            Ok(old) => {
                old.len() + frame.len() <= MAX_STATE_LOG as usize
                    && framed_state(&old).is_some_and(|(_, clean)| clean)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                // The first update: a state file of a delivered message is
                // reused when there is one (creating an inode per message
                // was most of the qmgr's kernel time), else one is created
                // in place (no temporary name). Either way a crash mid-write
                // leaves a file with no intact frame of this message (the
                // frames of the file's previous message have another
                // nonce), read as "no state yet" — what there was.
                if let Some(free) = self.take_free_state()
                    && fs::rename(&free, &path).is_ok()
                {
                    let mut f = OpenOptions::new()
                        .write(true)
                        .truncate(true)
                        .custom_flags(libc::O_NOFOLLOW)
                        .open(&path)?;
                    f.write_all(&frame)?;
                    f.sync_data()?;
                    facteur_util::fsync_dir(&self.root.join(STATE_DIR))?;
                    return Ok(());
                }
                match OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(FILE_MODE)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
                {
                    Ok(mut f) => {
                        f.write_all(&frame)?;
                        f.sync_data()?;
                        facteur_util::fsync_dir(&self.root.join(STATE_DIR))?;
                        return Ok(());
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
                    Err(e) => return Err(e.into()),
                }
            }
            Err(e) => return Err(e.into()),
        };
        if intact {
            let mut f = OpenOptions::new()
                .append(true)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&path)?;
            f.write_all(&frame)?;
            f.sync_data()?;
            return Ok(());
        }
        // First update, or a log grown long: a fresh log of one frame.
        facteur_util::write_atomic(&path, &frame, FILE_MODE)?;
        Ok(())
    }

    /// Durably replaces the whole envelope (e.g. a new recipient list after
    /// alias expansion), keeping the message bytes: writes a new file in
    /// `tmp/` (copying the message), renames it over the old one.
    pub fn rewrite_recipients(&self, q: QueueName, id: &str, env: &Envelope) -> Result<()> {
        let (mut old, parsed, path) = self.parse(q, id)?;
        let mut env = env.clone();
        env.queue_id = id.to_string();
        let tmp = self.root.join(TMP_DIR).join(format!(".{id}.rewrite"));
        let result = (|| -> Result<()> {
            let f = OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(FILE_MODE)
                .custom_flags(libc::O_NOFOLLOW)
                .open(&tmp)?;
            // Keep the old file's permissions (maildrop files are 0640).
            f.set_permissions(old.metadata()?.permissions())?;
            let mut w = BufWriter::with_capacity(64 * 1024, f);
            w.write_all(&format::encode_envelope(&env, rand::random::<u64>())?)?;
            let len = u32::try_from(parsed.message_len)
                .map_err(|_| invalid_input("message too large".into()))?;
            w.write_all(&format::message_record_head(len))?;
            old.seek(SeekFrom::Start(parsed.message_offset))?;
            let copied = io::copy(&mut (&mut old).take(parsed.message_len), &mut w)?;
            if copied != parsed.message_len {
                return Err(SpoolError::Incomplete(format!("{id}: message shrank")));
            }
            w.write_all(&END_RECORD)?;
            let f = w.into_inner().map_err(|e| e.into_error())?;
            f.sync_all()?;
            fs::rename(&tmp, &path)?;
            facteur_util::fsync_dir(&self.dir(q))?;
            Ok(())
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
            return result;
        }
        // The old state file names the old nonce: now stale, so harmless;
        // remove it to keep state/ tidy.
        let _ = fs::remove_file(self.state_path(id));
        Ok(())
    }

    /// Removes a delivered message's queue file and state file without
    /// waiting for the disk. If a crash undoes the unlinks, the file comes
    /// back with its (durable) state saying every recipient is final, and
    /// the qmgr removes it again: nothing is delivered twice.
    /// The state file is kept for reuse by a later message (`update`)
    /// while fewer than a few hundred are kept.
    pub fn discard(&self, q: QueueName, id: &str) -> Result<()> {
        let path = self.path(q, id)?;
        if !self.keep_queue_file(&path, id) {
            fs::remove_file(&path).map_err(|e| not_found_to(e, || id.to_string()))?;
        }
        let state = self.state_path(id);
        if self.keep_free_state(&state, id) {
            return Ok(());
        }
        match fs::remove_file(state) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes what crashes leave behind, once older than `max_age`:
    /// temporary files of `create` (`tmp/.<id>.tmp`, `maildrop/.<id>.tmp`)
    /// and of `write_atomic` (`state/.<name>.tmp.<n>`), and state files
    /// whose message is in no queue (a crash inside `discard`). Never a
    /// queue file, never a file kept for reuse, never a symlink's target;
    /// errors on single files are skipped. Returns how many were removed.
    pub fn sweep(&self, max_age: std::time::Duration) -> usize {
        let now = std::time::SystemTime::now();
        let old = |m: &fs::Metadata| {
            m.modified()
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .is_some_and(|age| age > max_age)
        };
        let mut removed = 0;
        let mut sweep_dir = |dir: &Path, doomed: &dyn Fn(&str) -> bool| {
            let Ok(rd) = fs::read_dir(dir) else { return };
            for e in rd.flatten() {
                let name = e.file_name();
                let Some(name) = name.to_str() else { continue };
                if !doomed(name) {
                    continue;
                }
                // symlink_metadata: a link is judged (and removed) as itself.
                let Ok(m) = fs::symlink_metadata(e.path()) else {
                    continue;
                };
                if !m.is_dir() && old(&m) && fs::remove_file(e.path()).is_ok() {
                    removed += 1;
                }
            }
        };
        let temporary = |n: &str| n.starts_with('.') && n.ends_with(".tmp");
        sweep_dir(&self.root.join(TMP_DIR), &temporary);
        sweep_dir(&self.dir(QueueName::Maildrop), &temporary);
        let orphan_state = |n: &str| {
            if n.starts_with('.') {
                // write_atomic's temporary: ".<name>.tmp.<n>"
                return n.contains(".tmp.");
            }
            match n.strip_suffix(".state") {
                // Twice: a file moving between queues (a rename) can be
                // missed by one pass over the directories; the second pass
                // finds it unless it moved again meanwhile.
                Some(id) if valid_queue_id(id) => {
                    !self.exists_anywhere(id) && !self.exists_anywhere(id)
                }
                _ => false,
            }
        };
        sweep_dir(&self.root.join(STATE_DIR), &orphan_state);
        removed
    }

    /// Moves a delivered message's queue file to `tmp/.free/` for `create`
    /// to rewrite (no inode allocated per message); false if not kept.
    fn keep_queue_file(&self, path: &Path, id: &str) -> bool {
        let dir = self.root.join(TMP_DIR).join(FREE_STATES);
        let mut g = self
            .free_queue_files
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        // Recount now and then: other processes take files out.
        if g.2.is_multiple_of(64) {
            g.1 = fs::read_dir(&dir).map(|rd| rd.count()).unwrap_or(0);
        }
        g.2 = g.2.wrapping_add(1);
        if g.1 >= MAX_FREE_STATES {
            return false;
        }
        // Only our own files (a maildrop file belongs to its sender).
        match fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_file() && m.permissions().mode() & 0o777 == FILE_MODE => {}
            _ => return false,
        }
        let to = dir.join(id);
        let mut moved = fs::rename(path, &to);
        if matches!(&moved, Err(e) if e.kind() == io::ErrorKind::NotFound)
            && path.exists()
            && !dir.is_dir()
        {
            moved = fs::DirBuilder::new()
                .mode(DIR_MODE & 0o777)
                .create(&dir)
                .and_then(|()| fs::rename(path, &to));
        }
        if moved.is_ok() {
            g.1 += 1;
        }
        moved.is_ok()
    }

    /// Claims a kept queue file as `tmp_path` (a rename: of two processes
    /// after the same file, one gets it) and opens it for overwriting: not
    /// truncated, so its blocks are rewritten in place instead of freed and
    /// allocated again; `QueueWriter::commit` cuts it to its new length.
    fn reuse_queue_file(&self, tmp_path: &Path) -> Option<File> {
        let mut g = self
            .free_queue_files
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if g.0.is_empty() {
            g.0 = fs::read_dir(self.root.join(TMP_DIR).join(FREE_STATES))
                .map(|rd| rd.flatten().map(|e| e.path()).take(64).collect())
                .unwrap_or_default();
        }
        while let Some(free) = g.0.pop() {
            if fs::rename(&free, tmp_path).is_ok() {
                let f = OpenOptions::new()
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(tmp_path);
                if f.is_err() {
                    let _ = fs::remove_file(tmp_path);
                }
                return f.ok();
            }
        }
        None
    }

    /// The list of reusable state files, loaded on first use.
    fn with_free_states<T>(&self, f: impl FnOnce(&mut Vec<PathBuf>) -> T) -> T {
        let mut g = self.free_states.lock().unwrap_or_else(|p| p.into_inner());
        let list = g.get_or_insert_with(|| {
            fs::read_dir(self.root.join(STATE_DIR).join(FREE_STATES))
                .map(|rd| {
                    rd.flatten()
                        .map(|e| e.path())
                        .take(MAX_FREE_STATES)
                        .collect()
                })
                .unwrap_or_default()
        });
        f(list)
    }

    fn take_free_state(&self) -> Option<PathBuf> {
        self.with_free_states(Vec::pop)
    }

    /// Moves a delivered message's state file aside for reuse; false if
    /// it was not (none, or enough kept already).
    fn keep_free_state(&self, state: &Path, id: &str) -> bool {
        self.with_free_states(|list| {
            if list.len() >= MAX_FREE_STATES {
                return false;
            }
            let dir = self.root.join(STATE_DIR).join(FREE_STATES);
            let to = dir.join(id);
            let mut moved = fs::rename(state, &to);
            if matches!(&moved, Err(e) if e.kind() == io::ErrorKind::NotFound)
                && state.exists()
                && !dir.is_dir()
            {
                // The first time: make the directory, then again.
                moved = fs::DirBuilder::new()
                    .mode(DIR_MODE & 0o777)
                    .create(&dir)
                    .and_then(|()| fs::rename(state, &to));
            }
            match moved {
                Ok(()) => {
                    list.push(to);
                    true
                }
                Err(_) => false,
            }
        })
    }

    /// Removes a queue file and its state file (unlink, fsync directory).
    pub fn remove(&self, q: QueueName, id: &str) -> Result<()> {
        let path = self.path(q, id)?;
        fs::remove_file(&path).map_err(|e| not_found_to(e, || id.to_string()))?;
        facteur_util::fsync_dir(&self.dir(q))?;
        match fs::remove_file(self.state_path(id)) {
            Ok(()) => facteur_util::fsync_dir(&self.root.join(STATE_DIR))?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }
}

/// The state log is rewritten whole past this size.
const MAX_STATE_LOG: u64 = 64 * 1024;
/// Starts every frame of a state log (docs/queue-file.md, "State file").
const FRAME_MAGIC: &[u8; 4] = b"FQSL";

/// `FQSL` length:u32 checksum:u64 payload, big-endian; the checksum is
/// FNV-1a over the payload (it detects a frame cut by a crash, not an
/// adversary: the spool is private to facteur).
fn state_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 16);
    f.extend_from_slice(FRAME_MAGIC);
    f.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    f.extend_from_slice(&fnv1a(payload).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn fnv1a(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in data {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The payload of the last intact frame of a state log (`Err` if none is)
/// and whether the frames cover the whole file; `None` if `data` is not a
/// state log.
fn framed_state(data: &[u8]) -> Option<(std::result::Result<&[u8], ()>, bool)> {
    if !data.starts_with(FRAME_MAGIC) {
        return None;
    }
    let mut last = Err(());
    let mut rest = data;
    while rest.len() >= 16 && rest.starts_with(FRAME_MAGIC) {
        let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
        let sum = u64::from_be_bytes([
            rest[8], rest[9], rest[10], rest[11], rest[12], rest[13], rest[14], rest[15],
        ]);
        let Some(payload) = rest.get(16..16 + len) else {
            break;
        };
        if fnv1a(payload) != sum {
            break;
        }
        last = Ok(payload);
        rest = &rest[16 + len..];
    }
    Some((last, rest.is_empty()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Recipient;
    use crate::wake_qmgr;
    use facteur_mail::dsn::{BodyType, Notify, RcptStatus, Ret};

    fn env() -> Envelope {
        Envelope {
            sender: "".into(),
            recipients: vec![
                Recipient::new("a@example.net"),
                Recipient {
                    address: "bé@exämple.org".into(),
                    orcpt: Some("utf-8;bé@exämple.org".into()),
                    notify: Notify {
                        failure: true,
                        delay: true,
                        ..Notify::default()
                    },
                    ..Recipient::default()
                },
            ],
            ret: Some(Ret::Full),
            envid: Some("E1".into()),
            body: BodyType::BinaryMime,
            smtputf8: true,
            client_addr: Some("192.0.2.1".into()),
            client_name: None,
            helo: Some("[192.0.2.1]".into()),
            protocol: Some("ESMTP".into()),
            auth_user: None,
            local_user: None,
            arrival: 1_700_000_000,
            ..Envelope::default()
        }
    }

    fn put(spool: &Spool, q: QueueName, msg: &[u8]) -> String {
        let mut w = spool.create(q, &env()).unwrap();
        w.write_all(msg).unwrap();
        w.commit().unwrap()
    }

    fn message(spool: &Spool, q: QueueName, id: &str) -> Vec<u8> {
        let mut v = Vec::new();
        spool
            .open_message(q, id)
            .unwrap()
            .read_to_end(&mut v)
            .unwrap();
        v
    }

    #[test]
    fn open_creates_directories_with_modes() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(&d.path().join("spool")).unwrap();
        for q in QueueName::ALL {
            let mode = fs::metadata(spool.dir(q)).unwrap().permissions().mode() & 0o7777;
            let want = if q == QueueName::Maildrop {
                MAILDROP_MODE
            } else {
                DIR_MODE
            };
            assert_eq!(mode, want, "{q}");
        }
        // Opening again is harmless.
        Spool::open(spool.root()).unwrap();
    }

    #[test]
    fn create_commit_read_round_trip() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let msg = b"From: a@b\r\nSubject: t\r\n\r\n.dot\r\nbare\rcr\r\n";
        let mut w = spool.create(QueueName::Incoming, &env()).unwrap();
        let id = w.queue_id().to_string();
        assert_eq!(id.len(), 14);
        assert!(
            spool.list(QueueName::Incoming).unwrap().is_empty(),
            "visible before commit"
        );
        w.write_all(msg).unwrap();
        assert_eq!(w.commit().unwrap(), id);
        assert_eq!(spool.list(QueueName::Incoming).unwrap(), vec![id.clone()]);
        let qf = spool.read(QueueName::Incoming, &id).unwrap();
        let mut want = env();
        want.queue_id = id.clone();
        assert_eq!(qf.envelope, want);
        assert_eq!(qf.message_size, msg.len() as u64);
        assert_eq!(qf.queue, QueueName::Incoming);
        assert_eq!(qf.path, spool.dir(QueueName::Incoming).join(&id));
        assert_eq!(message(&spool, QueueName::Incoming, &id), msg);
        assert_eq!(spool.find(&id).unwrap().envelope, want);
        assert!(
            fs::read_dir(d.path().join(TMP_DIR))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn five_megabyte_message_streamed() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let msg: Vec<u8> = (0..5 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        let mut w = spool.create(QueueName::Incoming, &env()).unwrap();
        for chunk in msg.chunks(7919) {
            w.write_all(chunk).unwrap();
        }
        let id = w.commit().unwrap();
        assert_eq!(
            spool.read(QueueName::Incoming, &id).unwrap().message_size,
            msg.len() as u64
        );
        assert!(message(&spool, QueueName::Incoming, &id) == msg);
    }

    #[test]
    fn abort_and_drop_leave_nothing() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let mut w = spool.create(QueueName::Maildrop, &env()).unwrap();
        w.write_all(b"x").unwrap();
        w.abort();
        drop(spool.create(QueueName::Incoming, &env()).unwrap());
        assert!(
            fs::read_dir(d.path().join(TMP_DIR))
                .unwrap()
                .next()
                .is_none()
        );
        assert!(
            fs::read_dir(spool.dir(QueueName::Maildrop))
                .unwrap()
                .next()
                .is_none()
        );
        assert!(spool.create(QueueName::Active, &env()).is_err());
    }

    #[test]
    fn list_ignores_temporary_and_foreign_files() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let w = spool.create(QueueName::Maildrop, &env()).unwrap();
        fs::write(spool.dir(QueueName::Maildrop).join("x.tmp"), b"").unwrap();
        assert!(spool.list(QueueName::Maildrop).unwrap().is_empty());
        let id = w.commit().unwrap();
        assert_eq!(spool.list(QueueName::Maildrop).unwrap(), vec![id.clone()]);
        let mode = fs::metadata(spool.dir(QueueName::Maildrop).join(&id))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, MAILDROP_FILE_MODE);
    }

    #[test]
    fn missing_end_is_incomplete_and_garbage_corrupt() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let id = put(&spool, QueueName::Incoming, b"hello\r\n");
        let p = spool.dir(QueueName::Incoming).join(&id);
        let len = fs::metadata(&p).unwrap().len();
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(len - 5)
            .unwrap();
        assert!(matches!(
            spool.read(QueueName::Incoming, &id),
            Err(SpoolError::Incomplete(_))
        ));
        assert!(spool.open_message(QueueName::Incoming, &id).is_err());
        fs::write(
            spool.dir(QueueName::Hold).join("GARBAGE"),
            b"not a queue file",
        )
        .unwrap();
        assert!(matches!(
            spool.read(QueueName::Hold, "GARBAGE"),
            Err(SpoolError::Corrupt(_))
        ));
        assert!(matches!(
            spool.read(QueueName::Hold, "NOPE"),
            Err(SpoolError::NotFound(_))
        ));
        assert!(matches!(
            spool.read(QueueName::Hold, "../x"),
            Err(SpoolError::NotFound(_))
        ));
        assert!(matches!(spool.find("NOPE"), Err(SpoolError::NotFound(_))));
        // A file whose queue id record names another file.
        fs::copy(
            spool.dir(QueueName::Hold).join("GARBAGE"),
            spool.dir(QueueName::Hold).join("G2"),
        )
        .unwrap();
        let other = put(&spool, QueueName::Incoming, b"x");
        fs::copy(
            spool.dir(QueueName::Incoming).join(&other),
            spool.dir(QueueName::Hold).join("OTHER"),
        )
        .unwrap();
        assert!(matches!(
            spool.read(QueueName::Hold, "OTHER"),
            Err(SpoolError::Corrupt(_))
        ));
    }

    #[test]
    fn update_is_durable_and_follows_moves() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let id = put(&spool, QueueName::Incoming, b"m\r\n");
        spool
            .move_to(&id, QueueName::Incoming, QueueName::Active)
            .unwrap();
        let mut e = spool.read(QueueName::Active, &id).unwrap().envelope;
        e.recipients[0].status = RcptStatus::Delivered;
        e.recipients[0].last_reply = Some("250 2.0.0 ok".into());
        e.recipients[1].status = RcptStatus::Deferred;
        e.recipients[1].last_reply = Some("451 4.4.1 no answer".into());
        e.attempts = 1;
        e.next_attempt = 1_700_000_600;
        e.delay_notified = true;
        spool.update(QueueName::Active, &id, &e).unwrap();
        // A fresh handle sees it (nothing cached).
        let again = Spool::open(d.path()).unwrap();
        assert_eq!(again.read(QueueName::Active, &id).unwrap().envelope, e);
        again
            .move_to(&id, QueueName::Active, QueueName::Deferred)
            .unwrap();
        assert_eq!(again.read(QueueName::Deferred, &id).unwrap().envelope, e);
        assert!(matches!(
            again.read(QueueName::Active, &id),
            Err(SpoolError::NotFound(_))
        ));
        assert_eq!(message(&again, QueueName::Deferred, &id), b"m\r\n");
        // A different recipient list is refused.
        let mut wrong = e.clone();
        wrong.recipients.pop();
        assert!(spool.update(QueueName::Deferred, &id, &wrong).is_err());
        // remove takes the state file along.
        spool.remove(QueueName::Deferred, &id).unwrap();
        assert!(!spool.state_path(&id).exists());
        assert!(matches!(
            spool.remove(QueueName::Deferred, &id),
            Err(SpoolError::NotFound(_))
        ));
        assert!(matches!(
            spool.move_to(&id, QueueName::Deferred, QueueName::Hold),
            Err(SpoolError::NotFound(_))
        ));
    }

    #[test]
    fn rewrite_recipients_keeps_message_and_drops_stale_state() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let msg = b"Subject: alias\r\n\r\nbody\r\n";
        let id = put(&spool, QueueName::Incoming, msg);
        let mut e = spool.read(QueueName::Incoming, &id).unwrap().envelope;
        e.attempts = 2;
        e.recipients[0].status = RcptStatus::Deferred;
        spool.update(QueueName::Incoming, &id, &e).unwrap();
        let stale = fs::read(spool.state_path(&id)).unwrap();
        e.recipients = vec![
            Recipient::new("x@example.com"),
            Recipient::new("y@example.com"),
            Recipient::new("z@example.com"),
        ];
        spool
            .rewrite_recipients(QueueName::Incoming, &id, &e)
            .unwrap();
        let qf = spool.read(QueueName::Incoming, &id).unwrap();
        assert_eq!(qf.envelope, e);
        assert_eq!(message(&spool, QueueName::Incoming, &id), msg);
        // A state file left over from the old file (crash before its
        // removal) is ignored: it names the old nonce.
        fs::write(spool.state_path(&id), stale).unwrap();
        assert_eq!(spool.read(QueueName::Incoming, &id).unwrap().envelope, e);
        assert!(
            fs::read_dir(d.path().join(TMP_DIR))
                .unwrap()
                .next()
                .is_none()
        );
    }

    #[test]
    fn concurrent_creates_get_unique_ids() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let spool = spool.clone();
                std::thread::spawn(move || {
                    (0..25)
                        .map(|i| {
                            let q = if i % 2 == 0 {
                                QueueName::Incoming
                            } else {
                                QueueName::Maildrop
                            };
                            put(&spool, q, format!("{t}/{i}").as_bytes())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut all: Vec<String> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        let n = all.len();
        all.sort();
        all.dedup();
        assert_eq!(all.len(), n);
        let listed = spool.list(QueueName::Incoming).unwrap().len()
            + spool.list(QueueName::Maildrop).unwrap().len();
        assert_eq!(listed, n);
    }

    #[test]
    fn symlinks_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let id = put(&spool, QueueName::Incoming, b"x");
        std::os::unix::fs::symlink(
            spool.dir(QueueName::Incoming).join(&id),
            spool.dir(QueueName::Hold).join("LINK"),
        )
        .unwrap();
        assert!(matches!(
            spool.read(QueueName::Hold, "LINK"),
            Err(SpoolError::Corrupt(_))
        ));
    }

    #[test]
    fn wake_qmgr_is_quiet_and_delivers() {
        let d = tempfile::tempdir().unwrap();
        wake_qmgr(&d.path().join("missing.sock"));
        let path = d.path().join("qmgr.sock");
        let sock = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        wake_qmgr(&path);
        let mut buf = [0u8; 8];
        let n = sock.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"W");
    }
}

#[cfg(test)]
mod state_log_tests {
    use super::*;

    #[test]
    fn frames_torn_tails_and_old_files() {
        let a = state_frame(b"first");
        let b = state_frame(b"second");
        let mut log = [a.clone(), b.clone()].concat();
        assert_eq!(framed_state(&log), Some((Ok(&b"second"[..]), true)));
        // A crash in the middle of the second frame: the first one holds.
        for cut in a.len()..log.len() {
            let (last, clean) = framed_state(&log[..cut]).unwrap_or((Err(()), false));
            assert_eq!(last, Ok(&b"first"[..]), "cut at {cut}");
            assert_eq!(clean, cut == a.len());
        }
        // A crash during the very first write: no state at all.
        for cut in 4..a.len() {
            assert_eq!(framed_state(&a[..cut]).map(|x| x.0), Some(Err(())));
        }
        // A flipped byte in the last frame is caught by the checksum.
        let n = log.len() - 1;
        log[n] ^= 1;
        assert_eq!(framed_state(&log), Some((Ok(&b"first"[..]), false)));
        // Not a log (a whole-file state of the first format).
        assert_eq!(framed_state(b"\x89FQS...."), None);
    }
}

#[cfg(test)]
mod free_state_tests {
    use super::*;
    use crate::{Envelope, Recipient};
    use facteur_mail::dsn::RcptStatus;

    #[test]
    fn sweep_removes_only_old_leftovers() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let day = std::time::Duration::from_secs(86_400);
        let age = |p: &Path, secs: u64| {
            let t = std::time::SystemTime::now() - std::time::Duration::from_secs(secs);
            File::options()
                .write(true)
                .open(p)
                .unwrap()
                .set_modified(t)
                .unwrap();
        };
        let make = |p: PathBuf, secs: u64| {
            fs::write(&p, b"x").unwrap();
            age(&p, secs);
            p
        };
        // A queued message with its state, both old: kept.
        let mut w = spool
            .create(QueueName::Incoming, &env_with("a@x.test"))
            .unwrap();
        w.write_all(b"Subject: x\r\n\r\nbody\r\n").unwrap();
        let id = w.commit().unwrap();
        let mut qf = spool.read(QueueName::Incoming, &id).unwrap();
        qf.envelope.attempts = 1;
        spool
            .update(QueueName::Incoming, &id, &qf.envelope)
            .unwrap();
        age(&spool.path(QueueName::Incoming, &id).unwrap(), 2 * 86_400);
        age(&spool.state_path(&id), 2 * 86_400);
        let tmp = d.path().join(TMP_DIR);
        let state = d.path().join(STATE_DIR);
        let dead_tmp = make(tmp.join(".1K0Z97C413K3CE.tmp"), 2 * 86_400);
        let young_tmp = make(tmp.join(".1K0Z97C413K3CF.tmp"), 60);
        let dead_drop = make(
            spool.dir(QueueName::Maildrop).join(".1K0Z97C413K3CG.tmp"),
            2 * 86_400,
        );
        let orphan = make(state.join("1K0Z97C413K3CH.state"), 2 * 86_400);
        let young_orphan = make(state.join("1K0Z97C413K3CJ.state"), 60);
        let dead_atomic = make(state.join(".1K0Z97C413K3CK.state.tmp.123"), 2 * 86_400);
        let other = make(state.join("README"), 2 * 86_400);
        assert_eq!(spool.sweep(day), 4);
        for gone in [&dead_tmp, &dead_drop, &orphan, &dead_atomic] {
            assert!(!gone.exists(), "{} kept", gone.display());
        }
        for kept in [&young_tmp, &young_orphan, &other] {
            assert!(kept.exists(), "{} removed", kept.display());
        }
        assert_eq!(
            spool
                .read(QueueName::Incoming, &id)
                .unwrap()
                .envelope
                .attempts,
            1
        );
        assert_eq!(spool.sweep(day), 0);
    }

    fn env_with(rcpt: &str) -> Envelope {
        Envelope {
            sender: "s@x.test".into(),
            recipients: vec![Recipient::new(rcpt)],
            ..Envelope::default()
        }
    }

    #[test]
    fn discarded_state_files_are_reused_and_never_leak_state() {
        let d = tempfile::tempdir().unwrap();
        let spool = Spool::open(d.path()).unwrap();
        let commit = |rcpt: &str, body_lines: usize| {
            let mut w = spool.create(QueueName::Incoming, &env_with(rcpt)).unwrap();
            w.write_all(b"Subject: x\r\n\r\n").unwrap();
            w.write_all(&b"body\r\n".repeat(body_lines)).unwrap();
            w.commit().unwrap()
        };
        // Message A (longer than B) is delivered: its state says so, then
        // it is discarded.
        let a = commit("a@x.test", 5000);
        let mut qf = spool.read(QueueName::Incoming, &a).unwrap();
        qf.envelope.recipients[0].status = RcptStatus::Delivered;
        spool.update(QueueName::Incoming, &a, &qf.envelope).unwrap();
        spool.discard(QueueName::Incoming, &a).unwrap();
        assert!(!spool.state_path(&a).exists());
        let free = d.path().join(STATE_DIR).join(FREE_STATES);
        assert_eq!(fs::read_dir(&free).unwrap().count(), 1);
        // Message B has no state yet: A's old file must not speak for it.
        let b = commit("b@x.test", 1);
        let qb = spool.read(QueueName::Incoming, &b).unwrap();
        assert_eq!(qb.envelope.recipients[0].status, RcptStatus::Pending);
        // B's first update takes A's old file (no new inode)...
        let mut eb = qb.envelope.clone();
        eb.recipients[0].last_reply = Some("in progress".into());
        spool.update(QueueName::Incoming, &b, &eb).unwrap();
        assert_eq!(fs::read_dir(&free).unwrap().count(), 0);
        // ...and B reads its own state, not A's delivered status.
        let qb = spool.read(QueueName::Incoming, &b).unwrap();
        assert_eq!(qb.envelope.recipients[0].status, RcptStatus::Pending);
        assert_eq!(
            qb.envelope.recipients[0].last_reply.as_deref(),
            Some("in progress")
        );
        // A's queue file was kept too, and B's creation above reused it:
        // B reads back as itself, cut to its own length.
        let kept_q = d.path().join(TMP_DIR).join(FREE_STATES);
        assert_eq!(fs::read_dir(&kept_q).unwrap().count(), 0);
        let mut msg = Vec::new();
        spool
            .open_message(QueueName::Incoming, &b)
            .unwrap()
            .read_to_end(&mut msg)
            .unwrap();
        assert_eq!(msg, b"Subject: x\r\n\r\nbody\r\n");
        assert_eq!(
            spool
                .read(QueueName::Incoming, &b)
                .unwrap()
                .envelope
                .recipients[0]
                .address,
            "b@x.test"
        );
        let b_len = fs::metadata(spool.path(QueueName::Incoming, &b).unwrap())
            .unwrap()
            .len();
        assert!(b_len < 1000, "{b_len} bytes: A's tail is left");
        // A fresh Spool (a restarted qmgr) finds kept files again.
        spool.discard(QueueName::Incoming, &b).unwrap();
        let again = Spool::open(d.path()).unwrap();
        assert!(again.take_free_state().is_some());
    }
}
