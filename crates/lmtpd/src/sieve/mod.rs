//! Sieve at delivery: for each recipient's mailbox, the global "before"
//! scripts, the user's active script and the global "after" scripts run
//! (facteur-sieve, [`facteur_config::Sieve`]), and their actions are
//! carried out before the recipient's reply ([`exec`]).
//!
//! Rules that keep mail safe:
//! - A script that cannot be read or compiled, or that fails at run time,
//!   keeps the message in INBOX and the reason is logged with the queue id:
//!   a script never loses a message.
//! - Redirects, vacation replies are new messages written into the spool's
//!   maildrop and sent by facteur-qmgr; nothing is sent from here.
//! - Vacation and duplicate records are written only once the delivery
//!   succeeded ([`state`]).
//!
//! Compiled scripts are kept in memory keyed by their text's hash and by
//! file stamps ([`Cache`]): a delivery stats its scripts, and compiles one
//! only when it changed. Memory per delivery is bounded: the scripts read
//! at most the first 256 KiB of a message, 4 MiB when they read bodies
//! (crate::deliver::SIEVE_READ_HEADER, SIEVE_READ_BODY).

pub mod exec;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use facteur_sieve::{Options, Script};
use facteur_store::sieve::Scripts;
use facteur_store::{Store, StoreError};
use tracing::warn;

/// The settings of a reload, as the delivery path needs them.
#[derive(Debug, Clone)]
pub struct Settings {
    pub enabled: bool,
    pub before: Vec<PathBuf>,
    pub after: Vec<PathBuf>,
    pub global_dir: Option<PathBuf>,
    pub options: Options,
    pub limits: facteur_sieve::Limits,
    pub vacation: (u64, u64, u64),
    pub duplicate_period: u64,
    /// The envelope sender of redirects.
    pub redirect_from: facteur_sieve::RedirectSender,
}

impl Settings {
    pub fn from_config(c: &facteur_config::Sieve) -> Settings {
        Settings {
            enabled: c.enabled,
            before: c.before.clone(),
            after: c.after.clone(),
            global_dir: c.global_dir.clone(),
            options: Options {
                editheader_max_header_size: c.editheader_max_header_size.0 as usize,
                ..Options::disabling(&c.disabled_extensions)
            },
            limits: facteur_sieve::Limits {
                max_actions: c.max_actions as usize,
                max_redirects: c.max_redirects as usize,
                editheader: facteur_sieve::EditHeaderPolicy {
                    max_header_size: c.editheader_max_header_size.0 as usize,
                    ..facteur_sieve::EditHeaderPolicy::from_lists(
                        &c.editheader_protected.join(" "),
                        &c.editheader_forbid_add.join(" "),
                        &c.editheader_forbid_delete.join(" "),
                    )
                },
                vacation: facteur_sieve::VacationOptions {
                    default_subject: c.vacation_default_subject.clone(),
                    default_subject_template: c.vacation_subject_template.clone(),
                    max_subject_codepoints: c.vacation_max_subject_codepoints.max(1) as usize,
                    use_original_recipient: c.vacation_use_original_recipient,
                    dont_check_recipient: c.vacation_dont_check_recipient,
                    send_from_recipient: c.vacation_send_from_recipient,
                    to_header_ignore_envelope: c.vacation_to_header_ignore_envelope,
                },
                ..facteur_sieve::Limits::default()
            },
            vacation: (
                c.vacation_default_period.0,
                c.vacation_min_period.0,
                c.vacation_max_period.0,
            ),
            duplicate_period: c.duplicate_default_period.0,
            // checked at load (facteur_config); a value it let through
            // and the interpreter does not read keeps the sender
            redirect_from: facteur_sieve::RedirectSender::parse(&c.redirect_envelope_from)
                .unwrap_or_else(|e| {
                    warn!(error = %e, "sieve.redirect_envelope_from not understood: redirects keep the sender");
                    facteur_sieve::RedirectSender::Sender
                }),
        }
    }
}

/// Compiled scripts, so that a delivery neither reads nor compiles a
/// script that has not changed: by text hash (at most [`CACHE_MAX`];
/// emptied when full, which only costs compiles), and by file, checked
/// against the file's modification time, size and inode (and, for a
/// user's scripts, the `sieve/` directory's: every change renames into
/// it). A delivery then costs one or two `stat` calls per script.
#[derive(Debug, Default)]
pub struct Cache {
    scripts: Mutex<HashMap<(u64, usize), Arc<Script>>>,
    files: Mutex<HashMap<PathBuf, (Stamp, Compiled)>>,
    /// Script directories: their stamp and the active script's name then.
    dirs: Mutex<HashMap<PathBuf, (Stamp, String)>>,
}

pub const CACHE_MAX: usize = 4096;

/// A compiled script, or why it could not be.
pub type Compiled = Result<Arc<Script>, String>;

/// What identifies a file's content here.
type Stamp = Option<(std::time::SystemTime, u64, u64)>;

fn stamp(path: &Path) -> std::io::Result<Stamp> {
    use std::os::unix::fs::MetadataExt;
    match std::fs::metadata(path) {
        Ok(m) => Ok(Some((m.modified()?, m.len(), m.ino()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

impl Cache {
    /// The compiled form of `text`, or the compile errors as one line.
    pub fn compile(&self, text: &[u8], opts: &Options) -> Compiled {
        let h =
            facteur_sieve::run::vacation::fnv_bytes(&[text, opts.disabled.join(",").as_bytes()]);
        let k = (h, text.len());
        if let Some(s) = self
            .scripts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&k)
        {
            return Ok(Arc::clone(s));
        }
        let s = Arc::new(Script::compile_bytes(text, opts).map_err(|errs| {
            errs.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        })?);
        let mut m = self.scripts.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= CACHE_MAX {
            m.clear();
        }
        m.insert(k, Arc::clone(&s));
        Ok(s)
    }

    /// The script in `path` compiled (None: no such file), read again only
    /// when the file changed.
    pub fn file(&self, path: &Path, opts: &Options) -> std::io::Result<Option<Compiled>> {
        let st = stamp(path)?;
        if st.is_none() {
            return Ok(None);
        }
        if let Some((old, c)) = self
            .files
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(path)
            && *old == st
        {
            return Ok(Some(c.clone()));
        }
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let c = self.compile(&text, opts);
        let mut m = self.files.lock().unwrap_or_else(|p| p.into_inner());
        if m.len() >= CACHE_MAX {
            m.clear();
        }
        m.insert(path.to_path_buf(), (st, c.clone()));
        Ok(Some(c))
    }

    /// The active script of `scripts` (a user's or a domain's): its name
    /// and compiled form. One `stat` when there is no script directory,
    /// two when nothing changed.
    pub fn active(
        &self,
        scripts: &Scripts,
        opts: &Options,
    ) -> Result<Option<(String, Compiled)>, StoreError> {
        let dir = scripts.dir();
        let dir_stamp = stamp(dir)?;
        if dir_stamp.is_none() {
            return Ok(None);
        }
        let cached = self
            .dirs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(dir)
            .filter(|(st, _)| *st == dir_stamp)
            .map(|(_, n)| n.clone());
        let name = match cached {
            Some(n) => n,
            None => {
                let n = scripts.active_name()?.unwrap_or_default();
                let mut m = self.dirs.lock().unwrap_or_else(|p| p.into_inner());
                if m.len() >= CACHE_MAX {
                    m.clear();
                }
                m.insert(dir.to_path_buf(), (dir_stamp, n.clone()));
                n
            }
        };
        if name.is_empty() {
            return Ok(None);
        }
        Ok(self.file(&scripts.path(&name), opts)?.map(|c| (name, c)))
    }
}

/// One script to run: where it came from (for logs) and its compiled form.
#[derive(Debug, Clone)]
pub struct Source {
    pub label: String,
    pub script: Compiled,
}

/// The scripts for `user`, in order: before, the domain's filters, the
/// user's active one, after. A script that cannot be read is logged and
/// skipped; one that does not compile is returned as such (the delivery
/// then keeps the message in INBOX).
pub fn scripts_for(
    store: &Store,
    cache: &Cache,
    settings: &Settings,
    user: &str,
    queue_id: &str,
) -> Vec<Source> {
    let opts = &settings.options;
    let mut out = Vec::new();
    let global = |paths: &[PathBuf], out: &mut Vec<Source>| {
        for p in paths {
            match cache.file(p, opts) {
                Ok(Some(script)) => out.push(Source {
                    label: p.display().to_string(),
                    script,
                }),
                Ok(None) => {
                    warn!(queue_id, script = %p.display(), "global sieve script missing: skipped")
                }
                Err(e) => {
                    warn!(queue_id, script = %p.display(), error = %e, "global sieve script unreadable: skipped");
                }
            }
        }
    };
    global(&settings.before, &mut out);
    // the domain's filters (facteurctl filter --domain)
    if let Some((_, domain)) = user.rsplit_once('@') {
        match store
            .domain_scripts(domain)
            .and_then(|s| cache.active(&s, opts))
        {
            Ok(Some((name, script))) => out.push(Source {
                label: format!("{domain}:{name}"),
                script,
            }),
            Ok(None) => {}
            Err(e) => {
                warn!(queue_id, domain, error = %e, "domain sieve script unreadable: not run")
            }
        }
    }
    if settings.enabled {
        match store.scripts(user).and_then(|s| cache.active(&s, opts)) {
            Ok(Some((name, script))) => out.push(Source {
                label: format!("{user}:{name}"),
                script,
            }),
            Ok(None) => {}
            Err(e) => warn!(queue_id, user, error = %e, "sieve script unreadable: not run"),
        }
    }
    global(&settings.after, &mut out);
    out
}
