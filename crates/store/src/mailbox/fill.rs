//! The first fill of a mailbox's index rows: the first SELECT of a Maildir
//! without an index (a migration, or a folder another tool filled), which
//! gives every message its UID under a new UIDVALIDITY.
//!
//! The scan runs on a thread of its own, which holds the user's index (its
//! connection and `BEGIN IMMEDIATE`) from before the listing to after the
//! commit, and hands the opening session its view as soon as the view is
//! built, before the rows are in (for 100,000 messages the rows are about
//! half of the work). The session answers its client meanwhile and serves
//! what the view holds (FETCH FLAGS, the files); anything that reads or
//! writes the index waits for the lock, hence for the commit, as it would
//! wait for any other writer.
//!
//! Why that is sound: what the session hands out is a UIDVALIDITY made by
//! the fill and the UIDs under it. If the commit never happens (killed,
//! power failure, disk error), the UIDVALIDITY goes with them, the next
//! scan gives a new, greater one (`facteur-uidvalidity` is fsynced before
//! the fill writes anything), and clients resynchronise: no UID comes back
//! for another message under a UIDVALIDITY a client was told (a stopped
//! process does not wait for its fills either). A session whose fill
//! failed is told so at its next sync and ends (`* BYE`), as when a
//! mailbox is rebuilt under it. The commit itself is
//! not fsynced (`UserInner::write_bulk`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use super::{Mailbox, open_maildir, recent};
use crate::folders::UserInner;
use crate::index::{self, MailboxRow};
use crate::{MessageMeta, Result, StoreError, sync};

/// Set by a fill's thread once its commit is done, or failed (the text).
type Filled = Arc<OnceLock<std::result::Result<(), String>>>;

/// A fill still committing, as its session's handle knows it.
#[derive(Debug)]
pub(super) struct Filling {
    filled: Filled,
    /// The row as the commit leaves it: whether the directories changed
    /// since the fill listed them is asked of it.
    pub(super) row: MailboxRow,
    /// The first UID not claimed as `\Recent` once it commits.
    pub(super) recent_from: u32,
    /// What it claimed for the session that asked (`[from, to)`), until
    /// taken.
    pub(super) claim: Option<(u32, u32)>,
}

impl Filling {
    /// None while it commits; then whether it committed.
    pub(super) fn done(&self) -> Option<std::result::Result<(), &str>> {
        self.filled
            .get()
            .map(|r| r.as_ref().map(|_| ()).map_err(|e| e.as_str()))
    }
}

/// What the fill hands the session: the row's identity and counters, and
/// the view.
struct Published {
    row: MailboxRow,
    messages: Vec<MessageMeta>,
    claim: Option<(u32, u32)>,
}

/// The fill's word to the opening session: its view, or None when there was
/// nothing to fill after all (a row appeared before it held the lock).
type Word = Result<Option<Published>>;

/// Sets the fill's result, if its thread ends without one (a panic).
struct Ended(Filled);

impl Drop for Ended {
    fn drop(&mut self) {
        let _ = self.0.set(Err("the index fill's thread ended".into()));
    }
}

impl Mailbox {
    /// Fills the rows of this mailbox, which had none when looked at, on a
    /// thread of its own, and takes the view it hands back; with `claim`,
    /// the fill also claims every message as `\Recent` for this handle.
    /// False if no fill happened (a row appeared meanwhile, or no thread
    /// could start): the caller scans the usual way.
    pub(super) fn fill_first(&mut self, claim: bool) -> Result<bool> {
        let (send, word) = mpsc::sync_channel::<Word>(1);
        let filled: Filled = Arc::default();
        let job = Job {
            user: Arc::clone(&self.user),
            dir: self.dir().to_path_buf(),
            name: self.name.clone(),
            claim,
            send: Mutex::new(Some(send)),
            published: AtomicBool::new(false),
        };
        let ended = Ended(Arc::clone(&filled));
        let spawned = std::thread::Builder::new()
            .name("index-fill".into())
            .spawn(move || {
                let ended = ended;
                job.run(&ended.0);
            });
        if spawned.is_err() {
            return Ok(false);
        }
        let p = match word.recv() {
            Ok(Ok(Some(p))) => p,
            Ok(Ok(None)) => return Ok(false),
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(StoreError::Index("the index fill's thread ended".into())),
        };
        self.take_view(&p.row, Arc::new(p.messages));
        let recent_from = p.claim.map_or(1, |(_, to)| to);
        if claim {
            let key = (self.dir().to_path_buf(), self.uidvalidity);
            self.user.shared.recent.set(key, recent_from);
        }
        self.filling = Some(Box::new(Filling {
            filled,
            row: p.row,
            recent_from,
            claim: p.claim,
        }));
        Ok(true)
    }
}

/// What the fill's thread owns.
struct Job {
    user: Arc<UserInner>,
    dir: PathBuf,
    name: String,
    claim: bool,
    /// Taken by the one word sent.
    send: Mutex<Option<mpsc::SyncSender<Word>>>,
    published: AtomicBool,
}

impl Job {
    /// Sends the session its word, once.
    fn say(&self, word: Word) {
        let send = self.send.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = send {
            // The session waits for it: the channel is open and has room.
            let _ = s.send(word);
        }
    }

    /// Fills, then says how it went. The job (its hold on the user's
    /// index connection) is dropped before `filled` is set: whoever sees the
    /// fill done knows this thread holds the index no more.
    fn run(self, filled: &Filled) {
        let result = self.user.write_bulk(|tx| {
            if index::mailbox_row(tx, &self.name)?.is_some() {
                return Ok(());
            }
            let md = open_maildir(&self.dir, &self.name)?;
            let mut row = index::create_row(tx, &self.user.dir, &self.name, None)?;
            let publish = |messages: Vec<MessageMeta>, row: &MailboxRow| {
                self.published.store(true, Ordering::Release);
                self.say(Ok(Some(Published {
                    claim: (self.claim && row.uidnext > 1).then_some((1, row.uidnext)),
                    row: row.clone(),
                    messages,
                })));
            };
            sync::scan_new(tx, &md, &mut row, &publish)?;
            if self.claim && row.uidnext > 1 {
                recent::record_claim(tx, row.id, row.uidnext)?;
            }
            #[cfg(test)]
            tests::before_commit(&self.dir)?;
            Ok(())
        });
        let published = self.published.load(Ordering::Acquire);
        let outcome = match result {
            Ok(()) if published => Ok(()),
            Ok(()) => return self.say(Ok(None)),
            Err(e) if !published => return self.say(Err(e)),
            Err(e) => {
                tracing::error!(dir = %self.dir.display(), error = %e, "first fill of the index failed after its view was shown; its sessions end");
                Err(e.to_string())
            }
        };
        drop(self);
        let _ = filled.set(outcome);
    }
}

#[cfg(test)]
#[path = "fill_tests.rs"]
mod tests;
