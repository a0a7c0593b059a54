//! Group commit of directory fsyncs: [`fsync_dir`] makes the entries a
//! caller has made in a directory durable, sharing one fsync(2) with every
//! other thread of the process that asks for the same directory meanwhile.
//!
//! Why: each message that smtpd accepts is linked into `incoming/` and the
//! directory fsynced before the 250; with ten sessions committing at once
//! that was ten fsyncs of the same directory in a row, each waiting for the
//! disk. One fsync that *starts after* an entry was made makes it durable,
//! whoever asked for it. So the first caller runs the fsync (the leader);
//! those who arrive while it runs wait, and the next of them runs one more
//! fsync for all of them together (their entries may have been made after
//! the running one started, so it cannot count for them). The same as a
//! database's group commit of its log.
//!
//! Guarantee, the same as a plain fsync of the directory: when
//! [`fsync_dir`] returns `Ok`, an fsync of the directory that started after
//! the call began has completed without error. If such an fsync failed (or
//! a later one did before the caller looked), the caller gets an error:
//! after a failed fsync, Linux may report success for the next one although
//! the lost entries never reached the disk, so a failure is never hidden.
//!
//! A caller may also say beforehand that it is about to ask ([`intend`],
//! before it fsyncs its file): a leader then waits for those callers to
//! arrive, up to [`GATHER`], so that one round covers them too instead of
//! their starting the next round the moment this one ends.
//!
//! Cost when nobody else is syncing: two uncontended lock round trips.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// How long a leader waits at most for the callers that said they were
/// coming ([`intend`]): about one file fsync on an SSD. A wait costs each
/// of them less than the round of its own it would otherwise start.
pub const GATHER: Duration = Duration::from_millis(1);

/// One directory's rounds of fsync.
#[derive(Debug)]
struct Group {
    state: Mutex<Rounds>,
    done: Condvar,
    /// [`GATHER`] (longer in tests).
    gather: Duration,
}

impl Default for Group {
    fn default() -> Self {
        Group {
            state: Mutex::default(),
            done: Condvar::new(),
            gather: GATHER,
        }
    }
}

#[derive(Debug, Default)]
struct Rounds {
    /// Rounds started so far (the number of the latest).
    started: u64,
    /// The latest round that has finished.
    finished: u64,
    /// Whether a round is running (or its leader gathering) now.
    running: bool,
    /// Callers that said they are coming ([`intend`]) and have not yet.
    coming: usize,
    /// The latest round that failed, and how (0: none).
    failed: u64,
    error: Option<(io::ErrorKind, String)>,
    /// Callers served (for tests; the rounds run are `started`).
    calls: u64,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves consistent counters.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Group {
    /// Runs `sync` or waits for a round of it that started after this call.
    /// `arriving`: the caller had said it was coming ([`intend`]); it is
    /// counted here, under the same lock, so that a gathering leader's
    /// round covers it.
    fn sync(&self, arriving: bool, sync: impl FnOnce() -> io::Result<()>) -> io::Result<()> {
        let mut st = lock(&self.state);
        st.calls += 1;
        if arriving {
            st.coming -= 1;
            self.done.notify_all();
        }
        // The round that covers us: the next one to start (a running
        // round may have begun before our entry was made).
        let need = st.started + 1;
        let mut sync = Some(sync);
        loop {
            if st.finished >= need {
                return match &st.error {
                    Some((kind, msg)) if st.failed >= need => {
                        Err(io::Error::new(*kind, msg.clone()))
                    }
                    _ => Ok(()),
                };
            }
            if !st.running {
                // Our turn to lead: no round is running, so the next one is
                // ours (need == started + 1 still holds). Those who said
                // they are coming get a moment to arrive; whoever arrives
                // before the round starts is covered by it.
                st.running = true;
                let until = Instant::now() + self.gather;
                while st.coming > 0 {
                    let left = until.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break;
                    }
                    st = self
                        .done
                        .wait_timeout(st, left)
                        .unwrap_or_else(PoisonError::into_inner)
                        .0;
                }
                st.started += 1;
                let round = st.started;
                drop(st);
                let run = sync.take().expect("a caller leads at most once");
                let r = run();
                st = lock(&self.state);
                st.running = false;
                st.finished = round;
                if let Err(e) = &r {
                    st.failed = round;
                    st.error = Some((e.kind(), e.to_string()));
                }
                self.done.notify_all();
                return r;
            }
            st = self.done.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// The directories being synced now, with how many callers each has; an
/// entry leaves when its last caller does, so the map holds only
/// directories in use.
static GROUPS: Mutex<Option<Groups>> = Mutex::new(None);

/// Each directory in use: its group and how many callers it has.
type Groups = HashMap<PathBuf, (Arc<Group>, usize)>;

/// fsync(2) of `dir`, shared with the other threads asking for it at the
/// same time (see the module's documentation). Same meaning as
/// [`crate::fsync_dir`]: the entries made in `dir` before the call are
/// durable once it returns `Ok`.
pub fn fsync_dir(dir: &Path) -> io::Result<()> {
    sync_and_leave(&enter(dir), dir, false)
}

/// `dir`'s fsync through its group (`arriving`: see [`Group::sync`]), then
/// [`leave`].
fn sync_and_leave(group: &Group, dir: &Path, arriving: bool) -> io::Result<()> {
    let r = group.sync(arriving, || crate::fsync_dir(dir));
    leave(dir);
    r
}

/// The group of `dir`, counting one more caller.
fn enter(dir: &Path) -> Arc<Group> {
    let mut map = lock(&GROUPS);
    let e = map
        .get_or_insert_with(HashMap::new)
        .entry(dir.to_path_buf())
        .or_default();
    e.1 += 1;
    Arc::clone(&e.0)
}

/// One caller fewer for `dir`; the last one removes its group.
fn leave(dir: &Path) {
    let mut map = lock(&GROUPS);
    if let Some(m) = map.as_mut()
        && let Some(e) = m.get_mut(dir)
    {
        e.1 -= 1;
        if e.1 == 0 {
            m.remove(dir);
        }
    }
}

/// A caller's word that it will soon ask for an fsync of a directory
/// ([`intend`]); [`Intent::fsync_dir`] keeps it, dropping it withdraws it.
#[derive(Debug)]
pub struct Intent {
    dir: PathBuf,
    group: Option<Arc<Group>>,
}

/// Says that this thread will soon call [`Intent::fsync_dir`] for `dir`
/// (say it before fsyncing the file whose new entry that will cover, not
/// before anything that waits on a client): a round's leader waits for it,
/// up to [`GATHER`].
pub fn intend(dir: &Path) -> Intent {
    let group = enter(dir);
    lock(&group.state).coming += 1;
    Intent {
        dir: dir.to_path_buf(),
        group: Some(group),
    }
}

impl Intent {
    /// [`fsync_dir`] of the directory named in [`intend`].
    pub fn fsync_dir(mut self) -> io::Result<()> {
        let group = self.group.take().expect("an intent is kept once");
        sync_and_leave(&group, &self.dir, true)
    }
}

impl Drop for Intent {
    fn drop(&mut self) {
        if let Some(group) = self.group.take() {
            group.arrive();
            leave(&self.dir);
        }
    }
}

impl Group {
    /// A caller that said it was coming gave up.
    fn arrive(&self) {
        let mut st = lock(&self.state);
        st.coming -= 1;
        self.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;
    use std::time::{Duration, Instant};

    /// Each caller is covered by a round that started after it called and
    /// ended before it returned; the rounds are fewer than the callers.
    #[test]
    fn concurrent_callers_share_rounds_that_started_after_them() {
        let g = Arc::new(Group::default());
        let rounds = Arc::new(Mutex::new(Vec::<(Instant, Instant)>::new()));
        let start = Arc::new(Barrier::new(12));
        let calls: Vec<_> = (0..12)
            .map(|i| {
                let (g, rounds, start) = (g.clone(), rounds.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    // Some arrive while the first round runs.
                    std::thread::sleep(Duration::from_millis(i % 3 * 10));
                    let called = Instant::now();
                    g.sync(false, || {
                        let s = Instant::now();
                        std::thread::sleep(Duration::from_millis(30));
                        rounds.lock().unwrap().push((s, Instant::now()));
                        Ok(())
                    })
                    .unwrap();
                    (called, Instant::now())
                })
            })
            .collect();
        let calls: Vec<_> = calls.into_iter().map(|t| t.join().unwrap()).collect();
        let rounds = rounds.lock().unwrap();
        for (called, returned) in &calls {
            assert!(
                rounds.iter().any(|(s, e)| s >= called && e <= returned),
                "a caller returned without a round that started after it"
            );
        }
        assert!(
            rounds.len() < calls.len(),
            "{} rounds for {} callers",
            rounds.len(),
            calls.len()
        );
        let st = lock(&g.state);
        assert_eq!((st.started as usize, st.calls), (rounds.len(), 12));
    }

    #[test]
    fn a_failed_round_fails_everyone_it_covered_and_no_one_after() {
        let g = Arc::new(Group::default());
        let inside = Arc::new(Barrier::new(2));
        let release = Arc::new(Barrier::new(2));
        // A leader whose round blocks until the waiters have queued.
        let leader = {
            let (g, inside, release) = (g.clone(), inside.clone(), release.clone());
            std::thread::spawn(move || {
                g.sync(false, || {
                    inside.wait();
                    release.wait();
                    Ok(())
                })
            })
        };
        inside.wait();
        // Two callers arrive while round 1 runs: round 2 is theirs, and fails.
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let g = g.clone();
                std::thread::spawn(move || g.sync(false, || Err(io::Error::other("disk gone"))))
            })
            .collect();
        while lock(&g.state).calls < 3 {
            std::thread::sleep(Duration::from_millis(1));
        }
        release.wait();
        assert!(leader.join().unwrap().is_ok());
        for w in waiters {
            let e = w.join().unwrap().unwrap_err();
            assert_eq!(e.to_string(), "disk gone");
        }
        // A later caller runs its own round.
        assert!(g.sync(false, || Ok(())).is_ok());
        assert_eq!(lock(&g.state).started, 3);
    }

    #[test]
    fn a_leader_gathers_the_callers_that_said_they_were_coming() {
        let g = Arc::new(Group {
            gather: Duration::from_secs(30),
            ..Group::default()
        });
        lock(&g.state).coming += 2;
        let leader = {
            let g = g.clone();
            std::thread::spawn(move || g.sync(false, || Ok(())))
        };
        while !lock(&g.state).running {
            std::thread::sleep(Duration::from_millis(1));
        }
        // One arrives late, still before the round starts: covered by it.
        std::thread::sleep(Duration::from_millis(20));
        let late = {
            let g = g.clone();
            std::thread::spawn(move || g.sync(true, || panic!("the leader's round covers it")))
        };
        while lock(&g.state).coming > 1 {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(lock(&g.state).started, 0, "still waiting for the other one");
        // The other one gives up (its intent dropped): the round runs.
        g.arrive();
        leader.join().unwrap().unwrap();
        late.join().unwrap().unwrap();
        let st = lock(&g.state);
        assert_eq!((st.started, st.calls, st.coming), (1, 2, 0));
    }

    #[test]
    fn an_intent_kept_or_dropped_leaves_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        let kept = intend(d.path());
        let dropped = intend(d.path());
        {
            let map = lock(&GROUPS);
            let (g, users) = &map.as_ref().unwrap()[d.path()];
            assert_eq!((lock(&g.state).coming, *users), (2, 2));
        }
        drop(dropped);
        kept.fsync_dir().unwrap();
        assert!(!lock(&GROUPS).as_ref().unwrap().contains_key(d.path()));
    }

    #[test]
    fn the_map_holds_only_directories_in_use() {
        let d = tempfile::tempdir().unwrap();
        fsync_dir(d.path()).unwrap();
        let err = fsync_dir(&d.path().join("missing")).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        let map = lock(&GROUPS);
        let m = map.as_ref().unwrap();
        assert!(!m.contains_key(d.path()) && !m.contains_key(&d.path().join("missing")));
    }
}
