//! The process-wide limit on expensive login work (password hashes):
//! a few at a time, queued fairly per client, the queues bounded.
//!
//! Offers [`Limiter`]: [`Limiter::acquire`] waits for one of `slots`
//! permits ([`Permit`], given back on drop) or answers [`Busy`] at once.
//! Nothing in it knows a protocol: a caller names the client by its
//! address, and any login of any protocol (SMTP, IMAP, POP3, ManageSieve)
//! goes through the same limiter of its process.
//!
//! Guarantees:
//! - at most `slots` permits exist at any time;
//! - waiting work is queued per client ([`Source`]: an IPv4 address, an
//!   IPv6 /64) and served round-robin between clients, in arrival order
//!   within one: work that arrives while others wait is served after at
//!   most one permit for each client ahead of it, however much those
//!   clients queued;
//! - a client has at most `per_client` waiting: beyond that, [`Busy`];
//! - at most `total` wait in all: a newcomer then takes the place of the
//!   newest waiting work of the client with the longest queue, when that
//!   queue is longer than the newcomer's by two or more (that work gets
//!   [`Busy`]); otherwise the newcomer gets [`Busy`];
//! - work abandoned while it waits (its future dropped: the client went
//!   away, the session was stopped) leaves its queue at once, and a permit
//!   granted to abandoned work is given back.
//!
//! Memory: a waiting entry is a few words; the expensive state (a hash's
//! working memory) belongs to permits, of which there are `slots`.

use crate::net::Source;
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// The sizes of a [`Limiter`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Permits: work running at once (at least 1).
    pub slots: usize,
    /// Work one client may have waiting.
    pub per_client: usize,
    /// Work waiting in all.
    pub total: usize,
}

impl Sizes {
    /// The default number of slots: the number of CPUs, at most 4. A hash
    /// keeps a CPU busy; more at once would only make each slower and use
    /// more memory (19 MiB each for argon2id).
    pub fn default_slots() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
    }
}

/// Refused: too much work waits already (for this client, or in all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Busy;

/// See the module documentation.
#[derive(Debug)]
pub struct Limiter {
    sizes: Sizes,
    state: Mutex<State>,
}

#[derive(Debug)]
struct Waiter {
    id: u64,
    /// `true`: a permit is granted; `false`: pushed out ([`Busy`]).
    tx: oneshot::Sender<bool>,
}

#[derive(Debug, Default)]
struct State {
    free: usize,
    queues: HashMap<Source, VecDeque<Waiter>>,
    /// The clients with waiting work, in the order they are served.
    ring: VecDeque<Source>,
    waiting: usize,
    next_id: u64,
}

impl State {
    /// Hands free permits to waiting work, one client after the other.
    fn dispatch(&mut self) {
        while self.free > 0 {
            let Some(src) = self.ring.pop_front() else {
                return;
            };
            let Some(q) = self.queues.get_mut(&src) else {
                continue;
            };
            let Some(w) = q.pop_front() else {
                self.queues.remove(&src);
                continue;
            };
            if q.is_empty() {
                self.queues.remove(&src);
            } else {
                self.ring.push_back(src);
            }
            self.waiting -= 1;
            // The receiver lives until its owner took it out of the queue
            // under this lock, so the send reaches it; if not, the permit
            // stays free.
            if w.tx.send(true).is_ok() {
                self.free -= 1;
            }
        }
    }

    /// Makes room for one more waiter of a client that has `mine` waiting:
    /// pushes out the newest waiter of the longest queue if that is longer
    /// than `mine + 1`.
    fn push_out(&mut self, mine: usize) -> bool {
        let longest = self
            .queues
            .iter()
            .max_by_key(|(_, q)| q.len())
            .map(|(s, q)| (*s, q.len()));
        let Some((src, len)) = longest else {
            return false;
        };
        if len <= mine + 1 {
            return false;
        }
        let Some(w) = self.queues.get_mut(&src).and_then(VecDeque::pop_back) else {
            return false;
        };
        self.waiting -= 1;
        let _ = w.tx.send(false);
        true
    }

    /// Takes waiter `id` of `src` out of its queue; whether it was there.
    fn forget(&mut self, src: Source, id: u64) -> bool {
        let Some(q) = self.queues.get_mut(&src) else {
            return false;
        };
        let Some(i) = q.iter().position(|w| w.id == id) else {
            return false;
        };
        q.remove(i);
        self.waiting -= 1;
        if q.is_empty() {
            self.queues.remove(&src);
            self.ring.retain(|s| *s != src);
        }
        true
    }
}

/// One running piece of work; the slot is given back on drop.
#[derive(Debug)]
pub struct Permit {
    limiter: Arc<Limiter>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        self.limiter.release();
    }
}

/// A waiter's stake in the queue while its future is alive.
struct Waiting<'a> {
    limiter: &'a Arc<Limiter>,
    src: Source,
    id: u64,
    rx: oneshot::Receiver<bool>,
    settled: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        let mut st = self.limiter.lock();
        if st.forget(self.src, self.id) {
            return;
        }
        // Already out of the queue: granted (give the permit back) or
        // pushed out (nothing to do).
        if self.rx.try_recv() == Ok(true) {
            st.free += 1;
            st.dispatch();
        }
    }
}

impl Limiter {
    /// A limiter of these sizes (`slots` at least 1).
    pub fn new(sizes: Sizes) -> Arc<Self> {
        let sizes = Sizes {
            slots: sizes.slots.max(1),
            ..sizes
        };
        Arc::new(Limiter {
            sizes,
            state: Mutex::new(State {
                free: sizes.slots,
                ..State::default()
            }),
        })
    }

    /// Its sizes.
    pub fn sizes(&self) -> Sizes {
        self.sizes
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent between statements: a panic elsewhere
        // cannot leave it half-changed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn release(&self) {
        let mut st = self.lock();
        st.free += 1;
        st.dispatch();
    }

    /// A permit for work of the client at `ip`: at once when a slot is
    /// free and nobody waits, else in the client's turn; [`Busy`] when the
    /// client, or everyone, has too much waiting already.
    pub async fn acquire(self: &Arc<Self>, ip: IpAddr) -> Result<Permit, Busy> {
        let src = Source::of(ip);
        let (id, rx) = {
            let mut st = self.lock();
            if st.free > 0 && st.waiting == 0 {
                st.free -= 1;
                return Ok(Permit {
                    limiter: Arc::clone(self),
                });
            }
            let mine = st.queues.get(&src).map_or(0, VecDeque::len);
            if mine >= self.sizes.per_client {
                return Err(Busy);
            }
            if st.waiting >= self.sizes.total && !st.push_out(mine) {
                return Err(Busy);
            }
            let id = st.next_id;
            st.next_id += 1;
            let (tx, rx) = oneshot::channel();
            if mine == 0 {
                st.ring.push_back(src);
            }
            st.queues
                .entry(src)
                .or_default()
                .push_back(Waiter { id, tx });
            st.waiting += 1;
            (id, rx)
        };
        let mut w = Waiting {
            limiter: self,
            src,
            id,
            rx,
            settled: false,
        };
        let granted = (&mut w.rx).await;
        w.settled = true;
        match granted {
            Ok(true) => Ok(Permit {
                limiter: Arc::clone(self),
            }),
            _ => Err(Busy),
        }
    }

    /// Work waiting now (tests, logs).
    pub fn waiting(&self) -> usize {
        self.lock().waiting
    }

    /// Permits free now.
    pub fn free(&self) -> usize {
        self.lock().free
    }
}

#[cfg(test)]
mod tests;
