//! Limits that protect facteur-pop3d from its clients: connections per
//! client address, and the slowdown of failed logins.
//!
//! Offers [`Limits`]: [`Limits::connect`] hands out a [`ConnSlot`] (released
//! on drop) while an address is under `max_connections_per_ip`;
//! [`Limits::login_delay`], [`Limits::failed`] and [`Limits::succeeded`]
//! keep count of recent failed logins per client address and per user name.
//!
//! The slowdown: every failed login is answered only after the session's
//! base pause (`Context::auth_delay`, 1.5 s). Beyond that, each new attempt
//! from an address, or for a user, that failed recently waits before its
//! password is even checked: base × 2^(failures − 1), at most 30 s. The
//! per-user count slows a distributed guessing attack on one account, the
//! per-address count one client trying many accounts; parallel connections
//! do not escape either. Counts fade 15 minutes after the last failure; a
//! successful login clears the user's count (not the address's: many users
//! may share one NAT address).
//!
//! Memory is bounded: at most [`MAX_ENTRIES`] counters; beyond that the
//! stale ones are dropped, and if all are fresh, the table is cleared (the
//! slowdown weakens under a flood, memory does not grow).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a failure is remembered.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// The longest pause before an attempt.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// Counters kept at most.
pub const MAX_ENTRIES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    Ip(IpAddr),
    User(String),
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Connection counts and failed-login counts.
#[derive(Debug, Default)]
pub struct Limits {
    conns: Mutex<HashMap<IpAddr, u32>>,
    failures: Mutex<HashMap<Key, Failures>>,
}

/// One connection slot of an address; released on drop.
#[derive(Debug)]
pub struct ConnSlot {
    limits: Arc<Limits>,
    ip: IpAddr,
}

impl Drop for ConnSlot {
    fn drop(&mut self) {
        if let Ok(mut m) = self.limits.conns.lock()
            && let Some(n) = m.get_mut(&self.ip)
        {
            *n = n.saturating_sub(1);
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

fn user_key(user: &str) -> Key {
    Key::User(user.to_lowercase())
}

impl Limits {
    /// Takes a connection slot for `ip`, or `None` at `max` already.
    pub fn connect(self: &Arc<Self>, ip: IpAddr, max: u32) -> Option<ConnSlot> {
        let mut m = self.conns.lock().ok()?;
        let n = m.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ConnSlot {
            limits: Arc::clone(self),
            ip,
        })
    }

    /// How many connections `ip` holds now.
    pub fn connections(&self, ip: IpAddr) -> u32 {
        self.conns
            .lock()
            .map(|m| m.get(&ip).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    /// The pause before checking a login for `user` from `ip`.
    pub fn login_delay(&self, ip: IpAddr, user: &str, base: Duration) -> Duration {
        let Ok(m) = self.failures.lock() else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let recent = |k: &Key| {
            m.get(k)
                .filter(|f| now.duration_since(f.last) < WINDOW)
                .map_or(0, |f| f.count)
        };
        let n = recent(&Key::Ip(ip)).max(recent(&user_key(user)));
        if n == 0 {
            return Duration::ZERO;
        }
        base.saturating_mul(1u32 << (n - 1).min(10)).min(MAX_DELAY)
    }

    /// Records a failed login.
    pub fn failed(&self, ip: IpAddr, user: &str) {
        let Ok(mut m) = self.failures.lock() else {
            return;
        };
        let now = Instant::now();
        if m.len() + 2 > MAX_ENTRIES {
            m.retain(|_, f| now.duration_since(f.last) < WINDOW);
            if m.len() + 2 > MAX_ENTRIES {
                m.clear();
            }
        }
        for k in [Key::Ip(ip), user_key(user)] {
            let f = m.entry(k).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(f.last) >= WINDOW {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
        }
    }

    /// Records a successful login: the user's count is cleared.
    pub fn succeeded(&self, user: &str) {
        if let Ok(mut m) = self.failures.lock() {
            m.remove(&user_key(user));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn connection_slots() {
        let l = Arc::new(Limits::default());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let a = l.connect(ip, 2).unwrap();
        let _b = l.connect(ip, 2).unwrap();
        assert_eq!(l.connections(ip), 2);
        assert!(l.connect(ip, 2).is_none());
        assert!(l.connect("192.0.2.2".parse().unwrap(), 2).is_some());
        drop(a);
        assert!(l.connect(ip, 2).is_some());
    }

    #[test]
    fn failed_logins_slow_down_per_ip_and_per_user() {
        let l = Limits::default();
        let base = Duration::from_secs(1);
        let ip1: IpAddr = "192.0.2.1".parse().unwrap();
        let ip2: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(l.login_delay(ip1, "alice@x", base), Duration::ZERO);
        l.failed(ip1, "alice@x");
        assert_eq!(l.login_delay(ip1, "bob@x", base), base); // same address
        assert_eq!(l.login_delay(ip2, "ALICE@x", base), base); // same user
        assert_eq!(l.login_delay(ip2, "bob@x", base), Duration::ZERO);
        l.failed(ip1, "alice@x");
        l.failed(ip1, "alice@x");
        assert_eq!(l.login_delay(ip2, "alice@x", base), base * 4);
        for _ in 0..20 {
            l.failed(ip1, "alice@x");
        }
        assert_eq!(l.login_delay(ip2, "alice@x", base), MAX_DELAY);
        l.succeeded("alice@x");
        assert_eq!(l.login_delay(ip2, "alice@x", base), Duration::ZERO);
        assert_eq!(l.login_delay(ip1, "carol@x", base), MAX_DELAY);
    }

    #[test]
    fn bounded_memory() {
        let l = Limits::default();
        for i in 0..(MAX_ENTRIES as u32 * 2) {
            l.failed(IpAddr::from(i.to_be_bytes()), &format!("u{i}"));
        }
        assert!(l.failures.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
