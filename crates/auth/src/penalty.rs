//! The slow-down of failed logins: what an attempt waits before its
//! credentials are looked at, from the failures of its address, of its
//! network and against its user; the same for every protocol.
//!
//! Offers [`Penalty`]: [`Penalty::admit`] says how long an attempt waits
//! (or that it is refused at once), [`Penalty::failed`] and
//! [`Penalty::succeeded`] tell it how attempts ended. Ideas from Dovecot's
//! auth penalty (a pause doubling with the failures of an address, a
//! success forgiving) and fail2ban (counts over a window, networks and not
//! only addresses); the rules are ours:
//!
//! - An attempt's wait is the longest of three, each `base × 2^(n − 1)`
//!   (at most `max_delay`) for an excess `n` of failures:
//!   - **address**: `n` = the failures from this address;
//!   - **network** (the /24 of an IPv4 address, the /64 of an IPv6 one):
//!     `n` = the failures from all its addresses beyond
//!     [`NETWORK_GRACE`];
//!   - **user** (a distributed attack on one account): `n` = the networks
//!     that failed for this user name beyond [`USER_GRACE`], not the
//!     failures: a burst from one place does not count more than once.
//! - **Trust**: an address where the user logged in successfully within
//!   `trust_for` is exempt from the network and user waits for that user.
//!   So the real user is not locked out by someone else's failures, from
//!   anywhere she logged in before, nor from a new network unless her
//!   account is attacked from many networks at once. Only the address
//!   wait applies to her, and only at an address that failed itself.
//! - **Spacing**: the waits are a rate, not a pause that parallel
//!   connections share: while a wait applies to an address (network,
//!   user), its attempts start at least that wait apart. An attempt that
//!   would wait longer than `max_delay` is refused at once (the caller
//!   answers it as a failure after the base pause), so nothing waits
//!   longer and at most about one attempt per `max_delay` gets through
//!   from a source at the worst penalty.
//! - A refused attempt, and one refused by the hash limiter, counts as a
//!   failure of its address and network, not of its user (its password
//!   was never checked).
//! - **Forgetting**: the counts of an address, network or user fade
//!   `forget_after` after its last failure. A success as a user forgives
//!   that user's failures from the address (and from the address's network
//!   and the user's list of failing networks), not those for other users:
//!   typos are forgiven, an attacker's own account does not wipe out the
//!   failures of its guesses.
//!
//! Memory is bounded: each table holds at most [`MAX_ENTRIES`] entries;
//! when full, idle entries go first, then the eighth least recently used.
//! User names are kept as keyed 64-bit hashes. Trust is written only on a
//! successful login, so strangers cannot push it out. State lives in the
//! process and is lost at restart (failures are forgotten, trust too).

use crate::net::{Net, canonical};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;
use tokio::time::Instant;

/// Failures a network may have before its addresses wait for them.
pub const NETWORK_GRACE: u32 = 10;
/// Networks that may fail for one user before untrusted attempts wait.
pub const USER_GRACE: usize = 5;
/// Entries per table at most.
pub const MAX_ENTRIES: usize = 10_000;
/// User names counted separately per address (the others together).
const USERS_PER_ADDRESS: usize = 8;
/// Failing networks remembered per user.
const NETWORKS_PER_USER: usize = 32;
/// Trusted addresses remembered per user.
const TRUSTED_PER_USER: usize = 8;

/// The numbers of the policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The first step of a wait; also the pause after every failure.
    pub base: Duration,
    /// The longest wait; an attempt that would wait longer is refused.
    pub max_delay: Duration,
    /// How long failures are remembered after the last one.
    pub forget_after: Duration,
    /// How long a successful login makes its address trusted for its user.
    pub trust_for: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            base: Duration::from_millis(1500),
            max_delay: Duration::from_secs(30),
            forget_after: Duration::from_secs(15 * 60),
            trust_for: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

/// What an attempt does before its credentials are looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Wait this long (zero: go ahead).
    Wait(Duration),
    /// It would wait longer than `max_delay`: refused.
    Refused,
}

/// Failures of one address or network.
#[derive(Debug, Clone, Copy)]
struct Meter {
    failures: u32,
    last: Instant,
    /// The earliest start of the next attempt while a wait applies.
    next: Option<Instant>,
}

impl Meter {
    fn new(now: Instant) -> Meter {
        Meter {
            failures: 0,
            last: now,
            next: None,
        }
    }

    fn count(&self, now: Instant, p: &Policy) -> u32 {
        if now.duration_since(self.last) < p.forget_after {
            self.failures
        } else {
            0
        }
    }

    /// Counts one failure; whether the count had faded (started again).
    fn fail(&mut self, now: Instant, p: &Policy) -> bool {
        let faded = self.count(now, p) == 0;
        self.failures = if faded {
            1
        } else {
            self.failures.saturating_add(1)
        };
        self.last = now;
        faded
    }
}

#[derive(Debug)]
struct Address {
    meter: Meter,
    /// Failures per user name (hashed), for the first few names.
    by_user: Vec<(u64, u32)>,
}

#[derive(Debug)]
struct User {
    /// Networks that failed for the user, with their last failure.
    nets: Vec<(Net, Instant)>,
    next: Option<Instant>,
}

impl User {
    fn count(&self, now: Instant, p: &Policy) -> usize {
        let fresh = |t: &Instant| now.duration_since(*t) < p.forget_after;
        self.nets.iter().filter(|(_, t)| fresh(t)).count()
    }
}

#[derive(Debug)]
struct Trusted {
    addrs: Vec<(IpAddr, Instant)>,
}

/// What the tables need of an entry to make room.
trait Aged {
    /// When it last changed.
    fn last(&self) -> Instant;
    /// Whether forgetting it changes nothing.
    fn idle(&self, now: Instant, p: &Policy) -> bool;
}

fn passed(next: Option<Instant>, now: Instant) -> bool {
    next.is_none_or(|n| n <= now)
}

impl Aged for Meter {
    fn last(&self) -> Instant {
        self.last.max(self.next.unwrap_or(self.last))
    }
    fn idle(&self, now: Instant, p: &Policy) -> bool {
        self.count(now, p) == 0 && passed(self.next, now)
    }
}

impl Aged for Address {
    fn last(&self) -> Instant {
        self.meter.last()
    }
    fn idle(&self, now: Instant, p: &Policy) -> bool {
        self.meter.idle(now, p)
    }
}

impl Aged for User {
    fn last(&self) -> Instant {
        let last = self.nets.iter().map(|(_, t)| *t).max();
        match (last, self.next) {
            (Some(l), Some(n)) => l.max(n),
            (l, n) => l.or(n).unwrap_or_else(Instant::now),
        }
    }
    fn idle(&self, now: Instant, p: &Policy) -> bool {
        self.count(now, p) == 0 && passed(self.next, now)
    }
}

impl Aged for Trusted {
    fn last(&self) -> Instant {
        let last = self.addrs.iter().map(|(_, t)| *t).max();
        last.unwrap_or_else(Instant::now)
    }
    fn idle(&self, now: Instant, p: &Policy) -> bool {
        self.addrs
            .iter()
            .all(|(_, t)| now.duration_since(*t) >= p.trust_for)
    }
}

/// A map of at most `max` entries.
#[derive(Debug)]
struct Table<K, V> {
    map: HashMap<K, V>,
    max: usize,
}

impl<K: Hash + Eq + Copy, V: Aged> Table<K, V> {
    fn new(max: usize) -> Self {
        Table {
            map: HashMap::new(),
            max: max.max(1),
        }
    }

    /// The entry of `k`, made with `make` if there is none (room made
    /// first if the table is full).
    fn slot(&mut self, k: K, now: Instant, p: &Policy, make: impl FnOnce() -> V) -> &mut V {
        if self.map.len() >= self.max && !self.map.contains_key(&k) {
            self.map.retain(|_, v| !v.idle(now, p));
            if self.map.len() >= self.max {
                let mut ages: Vec<Instant> = self.map.values().map(Aged::last).collect();
                let (_, cutoff, _) = ages.select_nth_unstable(self.max / 8);
                let cutoff = *cutoff;
                self.map.retain(|_, v| v.last() > cutoff);
            }
        }
        self.map.entry(k).or_insert_with(make)
    }
}

#[derive(Debug)]
struct State {
    addrs: Table<IpAddr, Address>,
    nets: Table<Net, Meter>,
    users: Table<u64, User>,
    trusted: Table<u64, Trusted>,
}

/// See the module documentation.
#[derive(Debug)]
pub struct Penalty {
    policy: Policy,
    /// Keys the hashes of user names.
    names: RandomState,
    state: Mutex<State>,
}

impl Penalty {
    /// The penalty of `policy`, tables of [`MAX_ENTRIES`].
    pub fn new(policy: Policy) -> Self {
        Self::with_capacity(policy, MAX_ENTRIES)
    }

    /// With tables of `max` entries (tests).
    pub fn with_capacity(policy: Policy, max: usize) -> Self {
        Penalty {
            policy,
            names: RandomState::new(),
            state: Mutex::new(State {
                addrs: Table::new(max),
                nets: Table::new(max),
                users: Table::new(max),
                trusted: Table::new(max),
            }),
        }
    }

    /// Its policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is complete between statements: a panic elsewhere
        // cannot leave the tables half-changed.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn user_key(&self, user: &str) -> u64 {
        self.names.hash_one(user.to_lowercase())
    }

    /// The wait for an excess of `n` failures.
    fn curve(&self, n: u32) -> Duration {
        if n == 0 {
            return Duration::ZERO;
        }
        let p = &self.policy;
        p.base.saturating_mul(1 << (n - 1).min(20)).min(p.max_delay)
    }

    /// Whether `user` logged in from `addr` within `trust_for`.
    fn trusts(st: &State, user: u64, addr: IpAddr, now: Instant, p: &Policy) -> bool {
        st.trusted.map.get(&user).is_some_and(|t| {
            t.addrs
                .iter()
                .any(|(a, at)| *a == addr && now.duration_since(*at) < p.trust_for)
        })
    }

    /// What an attempt to log in as `user` from `ip` does first. A wait is
    /// booked: attempts that come later wait after it.
    pub fn admit(&self, ip: IpAddr, user: &str) -> Admission {
        let now = Instant::now();
        let p = &self.policy;
        let (addr, user) = (canonical(ip), self.user_key(user));
        let net = Net::of(addr);
        let mut st = self.lock();
        let trusted = Self::trusts(&st, user, addr, now, p);
        let a = st.addrs.map.get(&addr).map(|a| a.meter);
        let n = st.nets.map.get(&net).copied();
        let u = st.users.map.get(&user);
        let waits = [
            (a.map_or(0, |m| m.count(now, p)), a.and_then(|m| m.next)),
            (
                n.map_or(0, |m| m.count(now, p).saturating_sub(NETWORK_GRACE)),
                n.and_then(|m| m.next),
            ),
            (
                u.map_or(0, |u| u.count(now, p).saturating_sub(USER_GRACE)) as u32,
                u.and_then(|u| u.next),
            ),
        ]
        .map(|(excess, next)| (self.curve(excess), next));
        let exempt = [false, trusted, trusted];
        let mut start = now;
        for ((wait, next), exempt) in waits.iter().zip(exempt) {
            if !wait.is_zero() && !exempt {
                start = start.max(next.map_or(now, |t| t.max(now)) + *wait);
            }
        }
        let wait = start - now;
        if wait > p.max_delay {
            return Admission::Refused;
        }
        if wait.is_zero() {
            return Admission::Wait(wait);
        }
        // Book the start on every count that made it wait.
        if !waits[0].0.is_zero()
            && let Some(a) = st.addrs.map.get_mut(&addr)
        {
            a.meter.next = Some(start);
        }
        if !trusted {
            if !waits[1].0.is_zero()
                && let Some(n) = st.nets.map.get_mut(&net)
            {
                n.next = Some(start);
            }
            if !waits[2].0.is_zero()
                && let Some(u) = st.users.map.get_mut(&user)
            {
                u.next = Some(start);
            }
        }
        Admission::Wait(wait)
    }

    /// Records a failed attempt from `ip`: wrong credentials for `user`,
    /// or (`None`) refused before they were checked.
    pub fn failed(&self, ip: IpAddr, user: Option<&str>) {
        let now = Instant::now();
        let p = &self.policy;
        let addr = canonical(ip);
        let net = Net::of(addr);
        let user = user.map(|u| self.user_key(u));
        let mut st = self.lock();
        let a = st.addrs.slot(addr, now, p, || Address {
            meter: Meter::new(now),
            by_user: Vec::new(),
        });
        if a.meter.fail(now, p) {
            a.by_user.clear();
        }
        if let Some(user) = user {
            match a.by_user.iter().position(|(k, _)| *k == user) {
                Some(i) => a.by_user[i].1 = a.by_user[i].1.saturating_add(1),
                None if a.by_user.len() < USERS_PER_ADDRESS => a.by_user.push((user, 1)),
                None => {}
            }
        }
        st.nets.slot(net, now, p, || Meter::new(now)).fail(now, p);
        let Some(user) = user else {
            return;
        };
        let u = st.users.slot(user, now, p, || User {
            nets: Vec::new(),
            next: None,
        });
        u.nets
            .retain(|(_, t)| now.duration_since(*t) < p.forget_after);
        match u.nets.iter_mut().find(|(n, _)| *n == net) {
            Some((_, t)) => *t = now,
            None => {
                if u.nets.len() >= NETWORKS_PER_USER {
                    u.nets.remove(0);
                }
                u.nets.push((net, now));
            }
        }
    }

    /// Records a successful login as `user` from `ip`: the user's failures
    /// from there are forgiven, and the address is trusted for the user.
    pub fn succeeded(&self, ip: IpAddr, user: &str) {
        let now = Instant::now();
        let p = &self.policy;
        let addr = canonical(ip);
        let net = Net::of(addr);
        let user = self.user_key(user);
        let mut st = self.lock();
        let mut forgiven = 0;
        if let Some(a) = st.addrs.map.get_mut(&addr)
            && a.meter.count(now, p) > 0
            && let Some(i) = a.by_user.iter().position(|(k, _)| *k == user)
        {
            forgiven = a.by_user.swap_remove(i).1;
            a.meter.failures = a.meter.failures.saturating_sub(forgiven);
        }
        if let Some(n) = st.nets.map.get_mut(&net) {
            n.failures = n.failures.saturating_sub(forgiven);
        }
        if let Some(u) = st.users.map.get_mut(&user) {
            u.nets.retain(|(n, _)| *n != net);
        }
        let t = st
            .trusted
            .slot(user, now, p, || Trusted { addrs: Vec::new() });
        t.addrs
            .retain(|(a, at)| *a != addr && now.duration_since(*at) < p.trust_for);
        if t.addrs.len() >= TRUSTED_PER_USER {
            t.addrs.remove(0);
        }
        t.addrs.push((addr, now));
    }

    /// Entries held per table (addresses, networks, users, trusted users).
    pub fn entries(&self) -> [usize; 4] {
        let st = self.lock();
        [
            st.addrs.map.len(),
            st.nets.map.len(),
            st.users.map.len(),
            st.trusted.map.len(),
        ]
    }
}

#[cfg(test)]
mod tests;
