//! A process-wide cache of mailbox views, so that SELECT of a big mailbox
//! that has not changed costs one index row read instead of loading every
//! message row again (a client reconnecting, a second device, a webmail
//! that logs in for each page).
//!
//! A view is keyed by the mailbox's directory and valid for exactly one
//! (index row id, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ): every change to a mailbox —
//! a new message, a flag, an expunge, a change found by a scan — raises
//! HIGHESTMODSEQ, so a view whose triple matches the row is the row's
//! messages. Views are shared (`Arc`); a handle that changes its own view
//! takes it out of the cache if the cache holds that very view (changed in
//! place, then put back under its new key), and otherwise copies it
//! (`Arc::make_mut`), leaving the cached one intact for the other handles.
//!
//! Bounded: at most [`MAX_MESSAGES`] messages in all the cached views; the
//! least recently used go first.

use crate::MessageMeta;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Messages kept in all cached views together (about 100 bytes each).
pub const MAX_MESSAGES: usize = 1_000_000;

/// A view's identity: index row id, UIDVALIDITY (a rebuilt index may give
/// a mailbox its old row id again, never its UIDVALIDITY), UIDNEXT,
/// HIGHESTMODSEQ.
pub(crate) type ViewKey = (i64, u32, u32, u64);

struct View {
    key: ViewKey,
    messages: Arc<Vec<MessageMeta>>,
    used: u64,
}

/// The cache.
#[derive(Default)]
pub(crate) struct Views {
    inner: Mutex<(HashMap<PathBuf, View>, u64)>,
}

impl std::fmt::Debug for Views {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Views")
    }
}

impl Views {
    /// The cached view of `dir` for (id, uidnext, highest_modseq).
    pub fn get(&self, dir: &Path, key: ViewKey) -> Option<Arc<Vec<MessageMeta>>> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, clock) = &mut *g;
        *clock += 1;
        let v = map.get_mut(dir).filter(|v| v.key == key)?;
        v.used = *clock;
        Some(Arc::clone(&v.messages))
    }

    /// The cached view of `dir` if it is of this (row id, UIDVALIDITY),
    /// whatever its (UIDNEXT, HIGHESTMODSEQ): a base to bring up to date.
    pub fn latest(
        &self,
        dir: &Path,
        mailbox: (i64, u32),
    ) -> Option<(Arc<Vec<MessageMeta>>, u32, u64)> {
        let g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let v = g.0.get(dir).filter(|v| (v.key.0, v.key.1) == mailbox)?;
        Some((Arc::clone(&v.messages), v.key.2, v.key.3))
    }

    /// Records internal dates read since the view of `dir` was cached
    /// (`Mailbox::resolve_dates`). A message's date never changes, so they
    /// hold in whichever view has the UID.
    pub fn fill_dates(&self, dir: &Path, dates: &[(u32, i64)]) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(v) = g.0.get_mut(dir) else { return };
        let msgs = Arc::make_mut(&mut v.messages);
        for &(uid, date) in dates {
            if let Ok(i) = msgs.binary_search_by_key(&uid, |m| m.uid) {
                msgs[i].internal_date = date;
            }
        }
    }

    /// Forgets the cached view of `dir` if it is `messages` itself, so
    /// that the handle holding it can change it in place; says whether it
    /// did.
    pub fn release(&self, dir: &Path, messages: &Arc<Vec<MessageMeta>>) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match g.0.get(dir) {
            Some(v) if Arc::ptr_eq(&v.messages, messages) => {
                g.0.remove(dir);
                true
            }
            _ => false,
        }
    }

    /// Remembers the view of `dir` for `key`.
    pub fn put(&self, dir: &Path, key: ViewKey, messages: &Arc<Vec<MessageMeta>>) {
        if messages.len() > MAX_MESSAGES / 4 {
            return;
        }
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, clock) = &mut *g;
        *clock += 1;
        map.insert(
            dir.to_path_buf(),
            View {
                key,
                messages: Arc::clone(messages),
                used: *clock,
            },
        );
        let mut total: usize = map.values().map(|v| v.messages.len()).sum();
        while total > MAX_MESSAGES {
            let Some(oldest) = map
                .iter()
                .min_by_key(|(_, v)| v.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(v) = map.remove(&oldest) {
                total -= v.messages.len();
            }
        }
    }
}
