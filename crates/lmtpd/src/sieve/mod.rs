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
//! Compiled scripts are kept in memory keyed by their text's hash, so a
//! script is compiled once per process, not once per message.

pub mod exec;
pub mod state;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use facteur_sieve::{Options, Script};
use facteur_store::Store;
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
}

impl Settings {
    pub fn from_config(c: &facteur_config::Sieve) -> Settings {
        Settings {
            enabled: c.enabled,
            before: c.before.clone(),
            after: c.after.clone(),
            global_dir: c.global_dir.clone(),
            options: Options {
                disabled: c
                    .disabled_extensions
                    .iter()
                    .map(|e| e.to_ascii_lowercase())
                    .collect(),
                ..Options::default()
            },
            limits: facteur_sieve::Limits {
                max_actions: c.max_actions as usize,
                max_redirects: c.max_redirects as usize,
                ..facteur_sieve::Limits::default()
            },
            vacation: (
                c.vacation_default_period.0,
                c.vacation_min_period.0,
                c.vacation_max_period.0,
            ),
            duplicate_period: c.duplicate_default_period.0,
        }
    }

    /// Is there anything to run at all for a user with no script?
    pub fn has_global(&self) -> bool {
        !self.before.is_empty() || !self.after.is_empty()
    }
}

/// Compiled scripts by text hash (at most [`CACHE_MAX`]; emptied when
/// full, which only costs compiles).
#[derive(Debug, Default)]
pub struct Cache {
    scripts: Mutex<HashMap<(u64, usize), Arc<Script>>>,
}

pub const CACHE_MAX: usize = 4096;

impl Cache {
    /// The compiled form of `text`, or the compile errors as one line.
    pub fn compile(&self, text: &[u8], opts: &Options) -> Result<Arc<Script>, String> {
        let h = facteur_sieve::run::vacation::fnv(&[
            &String::from_utf8_lossy(text),
            &opts.disabled.join(","),
        ]);
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
}

/// One script to run: where it came from (for logs) and its text.
#[derive(Debug, Clone)]
pub struct Source {
    pub label: String,
    pub text: Vec<u8>,
}

/// The scripts for `user`, in order: before, the domain's filters, the
/// user's active one, after.
/// A global script that cannot be read is logged and skipped.
pub fn scripts_for(store: &Store, settings: &Settings, user: &str, queue_id: &str) -> Vec<Source> {
    let mut out = Vec::new();
    let global = |paths: &[PathBuf], out: &mut Vec<Source>| {
        for p in paths {
            match std::fs::read(p) {
                Ok(text) => out.push(Source {
                    label: p.display().to_string(),
                    text,
                }),
                Err(e) => {
                    warn!(queue_id, script = %p.display(), error = %e, "global sieve script unreadable: skipped");
                }
            }
        }
    };
    global(&settings.before, &mut out);
    // the domain's filters (facteurctl filter --domain)
    if let Some((_, domain)) = user.rsplit_once('@') {
        match store.domain_scripts(domain).and_then(|s| s.active()) {
            Ok(Some((name, text))) => out.push(Source {
                label: format!("{domain}:{name}"),
                text,
            }),
            Ok(None) => {}
            Err(e) => {
                warn!(queue_id, domain, error = %e, "domain sieve script unreadable: not run");
            }
        }
    }
    if settings.enabled {
        match store.scripts(user).and_then(|s| s.active()) {
            Ok(Some((name, text))) => out.push(Source {
                label: format!("{user}:{name}"),
                text,
            }),
            Ok(None) => {}
            Err(e) => {
                warn!(queue_id, user, error = %e, "sieve script unreadable: not run");
            }
        }
    }
    global(&settings.after, &mut out);
    out
}
