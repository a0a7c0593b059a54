//! Change notification for selected mailboxes, so IDLE (RFC 2177) learns of
//! new mail and other sessions' changes at once, without polling.
//!
//! Two sources feed one counter per mailbox directory:
//! - this process: a session that changes a mailbox (STORE, APPEND, COPY,
//!   MOVE, EXPUNGE) calls [`Notifier::changed`];
//! - other processes (lmtpd delivering into `new/`, pop3d expunging from
//!   `cur/`, another imapd): one inotify instance for the whole process
//!   watches `new/` and `cur/` of every mailbox some session is idling on.
//!
//! A [`Subscription`] is a `watch` receiver on that counter; dropping the last
//! one removes the inotify watches. One inotify instance serves every
//! connection (the per-user instance limit is 128 by default, far below
//! thousands of IDLE clients). When inotify is unavailable or a watch cannot
//! be added (`max_user_watches`), the IDLE loop's periodic re-check (see
//! session/idle.rs) still finds changes, only later.
//!
//! NOTIFY (RFC 5465) subscribes the same way to the mailboxes it watches,
//! and to a user's mailbox list, which only this process's sessions change
//! ([`Notifier::subscribe_local`], [`names_key`]).
//!
//! The counter only says "look again": the session then syncs its view with
//! the store, which is the truth.
//!
//! One change wakes every session of the process watching that mailbox
//! (hundreds, for a shared mailbox or many devices of a user), and each
//! used to sync on its own: open the directories, stat them, read the
//! index, the same answer every time. [`Subscription::sync`] lets one of
//! them sync and the others take its result from the store's view cache
//! ([`Mailbox::sync_like`]), when that sync began after the counter
//! reached the value that woke them: the change they were told of was
//! made before that sync looked. (bench/scale: 100,000 IDLE clients.)

use facteur_store::{Mailbox, SyncChanges, Synced};
use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Instant;
use tokio::io::unix::AsyncFd;
use tokio::sync::watch;
use tracing::{debug, warn};

struct Watched {
    tx: watch::Sender<u64>,
    subscribers: usize,
    wds: Vec<WatchDescriptor>,
    shared: Arc<SharedSync>,
}

/// The syncs of one mailbox's woken sessions ([`Subscription::sync`]).
#[derive(Default)]
struct SharedSync {
    state: Mutex<Rounds>,
    done: Condvar,
}

#[derive(Default)]
struct Rounds {
    /// A session is syncing for the others.
    leading: bool,
    /// The latest sync that finished: the counter's value and the time
    /// before it began, and what it found.
    latest: Option<(u64, Instant, Synced)>,
}

impl Rounds {
    /// The latest sync's result if it began once the counter had reached
    /// `wanted`, and after `after`.
    fn usable(&self, wanted: u64, after: Option<Instant>) -> Option<Synced> {
        let (began, at, found) = self.latest?;
        (began >= wanted && after.is_none_or(|t| at >= t)).then_some(found)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The counters stay consistent if a holder panicked.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Default)]
struct Inner {
    dirs: HashMap<PathBuf, Watched>,
    by_wd: HashMap<WatchDescriptor, PathBuf>,
}

/// The process-wide registry of watched mailboxes.
pub struct Notifier {
    inner: Mutex<Inner>,
    inotify: Option<Inotify>,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("inotify", &self.inotify.is_some())
            .finish()
    }
}

/// Interest in one mailbox's changes; see [`Subscription::changed`].
pub struct Subscription {
    rx: watch::Receiver<u64>,
    /// The counter as [`Subscription::take_change`] last saw it.
    seen: u64,
    dir: PathBuf,
    notifier: Arc<Notifier>,
    shared: Arc<SharedSync>,
}

impl Notifier {
    /// A notifier; with a tokio runtime present, inotify events are read by
    /// a background task. Without inotify, only in-process changes notify.
    pub fn new() -> Arc<Notifier> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)
            .map_err(|e| warn!(error = %e, "inotify unavailable: IDLE will notice other processes' changes late"))
            .ok();
        let n = Arc::new(Notifier {
            inner: Mutex::new(Inner::default()),
            inotify,
        });
        if let Some(fd) = n
            .inotify
            .as_ref()
            .and_then(|i| i.as_fd().try_clone_to_owned().ok())
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let weak = Arc::downgrade(&n);
            tokio::spawn(async move {
                if let Err(e) = read_events(weak, fd).await {
                    warn!(error = %e, "inotify reader stopped");
                }
            });
        }
        n
    }

    /// Subscribes to changes of the mailbox in `dir`.
    pub fn subscribe(self: &Arc<Self>, dir: &Path) -> Subscription {
        self.subscribe_to(dir, true)
    }

    /// Subscribes to what this process says of `key` with
    /// [`changed`](Self::changed) only, with no file watch: the mailbox
    /// list of a user (see [`names_key`]).
    pub fn subscribe_local(self: &Arc<Self>, key: &Path) -> Subscription {
        self.subscribe_to(key, false)
    }

    fn subscribe_to(self: &Arc<Self>, dir: &Path, watch_files: bool) -> Subscription {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let inner = &mut *inner;
        let w = inner.dirs.entry(dir.to_path_buf()).or_insert_with(|| {
            let mut wds = Vec::new();
            if let Some(ino) = self.inotify.as_ref().filter(|_| watch_files) {
                let mask = AddWatchFlags::IN_CREATE
                    | AddWatchFlags::IN_MOVED_TO
                    | AddWatchFlags::IN_MOVED_FROM
                    | AddWatchFlags::IN_DELETE
                    | AddWatchFlags::IN_ONLYDIR;
                for sub in ["new", "cur"] {
                    match ino.add_watch(&dir.join(sub), mask) {
                        Ok(wd) => wds.push(wd),
                        Err(e) => debug!(dir = %dir.display(), error = %e, "cannot watch"),
                    }
                }
            }
            Watched {
                tx: watch::channel(0).0,
                subscribers: 0,
                wds,
                shared: Arc::default(),
            }
        });
        w.subscribers += 1;
        for wd in &w.wds {
            inner.by_wd.insert(*wd, dir.to_path_buf());
        }
        let rx = w.tx.subscribe();
        let seen = *rx.borrow();
        Subscription {
            seen,
            rx,
            dir: dir.to_path_buf(),
            notifier: Arc::clone(self),
            shared: Arc::clone(&w.shared),
        }
    }

    /// Says that this process changed the mailbox in `dir`.
    pub fn changed(&self, dir: &Path) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(w) = inner.dirs.get(dir) {
            w.tx.send_modify(|v| *v = v.wrapping_add(1));
        }
    }

    fn bump_wd(&self, wd: Option<WatchDescriptor>) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        match wd.and_then(|wd| inner.by_wd.get(&wd)) {
            Some(dir) => {
                if let Some(w) = inner.dirs.get(dir) {
                    w.tx.send_modify(|v| *v = v.wrapping_add(1));
                }
            }
            // Queue overflow (or an unknown watch): everyone looks again.
            None => {
                for w in inner.dirs.values() {
                    w.tx.send_modify(|v| *v = v.wrapping_add(1));
                }
            }
        }
    }

    fn unsubscribe(&self, dir: &Path) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some(w) = inner.dirs.get_mut(dir) else {
            return;
        };
        w.subscribers -= 1;
        if w.subscribers > 0 {
            return;
        }
        if let Some(w) = inner.dirs.remove(dir) {
            for wd in w.wds {
                inner.by_wd.remove(&wd);
                if let Some(ino) = &self.inotify {
                    let _ = ino.rm_watch(wd);
                }
            }
        }
    }
}

impl Subscription {
    /// Waits until the mailbox may have changed since the last call (or
    /// since subscribing).
    pub async fn changed(&mut self) {
        if self.rx.changed().await.is_err() {
            // The sender lives as long as the entry, which lives as long as
            // this subscription: never reached, but never spin either.
            std::future::pending::<()>().await;
        }
    }

    /// `mb` (the mailbox subscribed to) brought up to date after
    /// [`changed`](Self::changed) woke this session, or after the time
    /// `after` the store asked it to verify its view at
    /// (`Mailbox::verification_in`): by a sync of its own, or with the
    /// result of another session's sync that began after the counter
    /// reached the value this one sees now, and after `after` (the
    /// module's documentation). Blocks while another session syncs (call
    /// it where the session may block). Only for those wake-ups: changes
    /// made while nobody watched never moved the counter. Says whether the
    /// sync was another session's.
    pub fn sync(
        &self,
        mb: &mut Mailbox,
        after: Option<Instant>,
    ) -> facteur_store::Result<(SyncChanges, bool)> {
        let wanted = *self.rx.borrow();
        let mut st = lock(&self.shared.state);
        loop {
            if let Some(found) = st.usable(wanted, after) {
                drop(st);
                return match mb.sync_like(found) {
                    Some(changes) => Ok((changes, true)),
                    None => mb.sync().map(|c| (c, false)),
                };
            }
            if !st.leading {
                break;
            }
            st = self
                .shared
                .done
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        st.leading = true;
        drop(st);
        /// Hands the lead back however the sync ends (a panic included),
        /// so that the others never wait for a leader that is gone.
        struct Lead<'a>(&'a SharedSync, Option<(u64, Instant, Synced)>);
        impl Drop for Lead<'_> {
            fn drop(&mut self) {
                let mut st = lock(&self.0.state);
                st.leading = false;
                if let Some(round) = self.1
                    && st.latest.is_none_or(|(_, at, _)| at < round.1)
                {
                    st.latest = Some(round);
                }
                self.0.done.notify_all();
            }
        }
        let mut lead = Lead(&self.shared, None);
        // Read before the sync begins: every change that moved the counter
        // up to here is one this sync sees.
        let (began, at) = (*self.rx.borrow(), Instant::now());
        let changes = mb.sync()?;
        lead.1 = Some((began, at, mb.synced()));
        Ok((changes, false))
    }

    /// [`Subscription::sync`] if it can take another session's sync at
    /// once, without waiting or reading anything but memory (so the
    /// caller need not move to a thread that may block); None otherwise.
    pub fn try_shared(&self, mb: &mut Mailbox, after: Option<Instant>) -> Option<SyncChanges> {
        let wanted = *self.rx.borrow();
        let found = lock(&self.shared.state).usable(wanted, after)?;
        mb.sync_like(found)
    }

    /// Whether the mailbox may have changed since the last call (or
    /// since subscribing), without waiting; a wake-up from
    /// [`changed`](Self::changed) in between does not hide it.
    pub fn take_change(&mut self) -> bool {
        let v = *self.rx.borrow_and_update();
        let changed = v != self.seen;
        self.seen = v;
        changed
    }
}

/// Waits until one of `subs` may have changed (forever if there is none).
pub async fn any_changed<'a>(subs: impl IntoIterator<Item = &'a mut Subscription>) {
    let mut waits: Vec<_> = subs.into_iter().map(|s| Box::pin(s.changed())).collect();
    if waits.is_empty() {
        return std::future::pending().await;
    }
    std::future::poll_fn(|cx| {
        for w in &mut waits {
            if w.as_mut().poll(cx).is_ready() {
                return std::task::Poll::Ready(());
            }
        }
        std::task::Poll::Pending
    })
    .await
}

/// The key under which a user's mailbox list (names, subscriptions)
/// changes are said: beside the mailboxes, never a file.
pub fn names_key(user_dir: &Path) -> PathBuf {
    user_dir.join(".#mailbox-list")
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.notifier.unsubscribe(&self.dir);
    }
}

async fn read_events(n: std::sync::Weak<Notifier>, fd: OwnedFd) -> std::io::Result<()> {
    // `new` is deprecated for lack of I/O safety with borrowed descriptors;
    // this one is an OwnedFd the AsyncFd owns until it drops, and the
    // `register` replacement is `unsafe`, which the workspace denies.
    #[allow(deprecated)]
    let afd = AsyncFd::new(fd)?;
    loop {
        let mut guard = afd.readable().await?;
        let Some(n) = n.upgrade() else { return Ok(()) };
        let Some(ino) = &n.inotify else { return Ok(()) };
        match ino.read_events() {
            Ok(events) => {
                for ev in events {
                    if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                        n.bump_wd(None);
                    } else if !ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                        n.bump_wd(Some(ev.wd));
                    }
                }
            }
            Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn in_process_and_inotify_changes_wake_subscribers() {
        let t = tempfile::tempdir().unwrap();
        for d in ["new", "cur"] {
            std::fs::create_dir(t.path().join(d)).unwrap();
        }
        let n = Notifier::new();
        let mut a = n.subscribe(t.path());
        let mut b = n.subscribe(t.path());
        n.changed(t.path());
        tokio::time::timeout(Duration::from_secs(1), a.changed())
            .await
            .unwrap();
        tokio::time::timeout(Duration::from_secs(1), b.changed())
            .await
            .unwrap();
        // Another process delivering: a file appears in new/.
        std::fs::write(t.path().join("new/1.x"), b"mail").unwrap();
        tokio::time::timeout(Duration::from_secs(1), a.changed())
            .await
            .unwrap();
        drop(a);
        drop(b);
        assert!(n.inner.lock().unwrap().dirs.is_empty());
        assert!(n.inner.lock().unwrap().by_wd.is_empty());
        // Nobody watches: a change is a no-op.
        n.changed(t.path());
    }

    #[test]
    fn sessions_woken_by_one_change_share_a_sync_begun_after_it() {
        use facteur_store::{Quota, Store, StoreConfig};
        let d = tempfile::tempdir().unwrap();
        let s = Store::new(StoreConfig {
            root: d.path().to_path_buf(),
            hostname: "h".into(),
        });
        let user = "u@x.test";
        s.create_user(user).unwrap();
        let deliver = |body: &str| {
            s.deliver(user, None, &mut body.as_bytes(), Quota::default())
                .unwrap();
        };
        deliver("Subject: 1\n\none\n");
        let us = s.open_user(user, Quota::default()).unwrap();
        let (mut ma, mut mb) = (us.select("INBOX").unwrap(), us.select("INBOX").unwrap());
        // No runtime: no inotify reader, so only `changed` moves the counter.
        let n = Notifier::new();
        let (a, b) = (n.subscribe(ma.dir()), n.subscribe(mb.dir()));
        let added = |c: facteur_store::Result<(SyncChanges, bool)>, shared: bool| {
            let (c, s) = c.unwrap();
            assert_eq!(s, shared);
            c.added
        };

        deliver("Subject: 2\n\ntwo\n");
        n.changed(ma.dir());
        assert_eq!(added(a.sync(&mut ma, None), false), vec![2]);
        // Delivered without a word: `b`, woken by the same change as `a`,
        // takes `a`'s sync, which began after that change.
        deliver("Subject: 3\n\nthree\n");
        assert_eq!(added(b.sync(&mut mb, None), true), vec![2]);
        // A new change: `a`'s sync began before it, so `b` syncs itself,
        // and `a` then takes that.
        n.changed(ma.dir());
        assert_eq!(added(b.sync(&mut mb, None), false), vec![3]);
        assert_eq!(added(a.sync(&mut ma, None), true), vec![3]);
        assert_eq!(ma.synced(), mb.synced());
        // A verification due after `b`'s sync began: `a` syncs itself
        // (and finds what came in without a word), then `b` takes it.
        deliver("Subject: 4\n\nfour\n");
        let due = Some(Instant::now());
        assert_eq!(added(a.sync(&mut ma, due), false), vec![4]);
        assert_eq!(added(b.sync(&mut mb, due), true), vec![4]);
        // Taken at once, or not at all: a change no sync began after yet.
        deliver("Subject: 5\n\nfive\n");
        n.changed(ma.dir());
        assert!(b.try_shared(&mut mb, None).is_none());
        assert_eq!(added(a.sync(&mut ma, None), false), vec![5]);
        assert_eq!(b.try_shared(&mut mb, None).unwrap().added, vec![5]);
    }
}
