//! When to try again, and when to give up: the retry schedule, pure code.
//!
//! Offers [`Schedule`] (from `[qmgr]` min_backoff, max_backoff,
//! max_lifetime) with [`Schedule::backoff`] and [`Schedule::expired`], and
//! [`now`], the clock every queue decision uses (unix seconds).
//!
//! The schedule is a function of the attempt count and the arrival time, both
//! stored in the queue file; nothing lives only in memory, so a restarted qmgr
//! keeps the same schedule (Postfix keeps it in the deferred file's mtime; we
//! keep it in the file's `next_attempt`).
//!
//! Backoff: after attempt n (1-based) the next try is `min * 2^(n-1)` seconds
//! later, capped at `max`. No overflow for any n.

use std::time::{SystemTime, UNIX_EPOCH};

/// The retry policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schedule {
    pub min_backoff: u64,
    pub max_backoff: u64,
    pub max_lifetime: u64,
}

impl Schedule {
    pub fn from_config(q: &facteur_config::Qmgr) -> Schedule {
        Schedule {
            min_backoff: q.min_backoff.0.max(1),
            max_backoff: q.max_backoff.0.max(q.min_backoff.0.max(1)),
            max_lifetime: q.max_lifetime.0,
        }
    }

    /// Seconds to wait after the `attempts`-th failed attempt (1-based; 0 is
    /// treated as 1).
    pub fn backoff(&self, attempts: u32) -> u64 {
        let shift = attempts.saturating_sub(1).min(63);
        self.min_backoff
            .saturating_mul(1u64 << shift)
            .min(self.max_backoff)
    }

    /// When to try again after the `attempts`-th attempt made at `now`.
    pub fn next_attempt(&self, now: i64, attempts: u32) -> i64 {
        now.saturating_add(i64::try_from(self.backoff(attempts)).unwrap_or(i64::MAX))
    }

    /// Whether a message that arrived at `arrival` has outlived its time.
    pub fn expired(&self, arrival: i64, now: i64) -> bool {
        let limit = i64::try_from(self.max_lifetime).unwrap_or(i64::MAX);
        now.saturating_sub(arrival) >= limit
    }
}

/// Now, in unix seconds.
pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(min: u64, max: u64) -> Schedule {
        Schedule {
            min_backoff: min,
            max_backoff: max,
            max_lifetime: 5 * 86400,
        }
    }

    #[test]
    fn doubles_then_caps() {
        let s = s(300, 3600);
        let got: Vec<u64> = (0..8).map(|n| s.backoff(n)).collect();
        assert_eq!(got, vec![300, 300, 600, 1200, 2400, 3600, 3600, 3600]);
        assert_eq!(s.next_attempt(1000, 3), 1000 + 1200);
    }

    #[test]
    fn never_overflows() {
        let s = s(1, u64::MAX);
        assert_eq!(s.backoff(64), 1 << 63);
        assert_eq!(s.backoff(u32::MAX), 1 << 63);
        let s2 = Schedule {
            min_backoff: u64::MAX / 2,
            ..s
        };
        assert_eq!(s2.backoff(10), u64::MAX);
        assert_eq!(s2.next_attempt(i64::MAX - 1, 10), i64::MAX);
    }

    #[test]
    fn expiry() {
        let s = s(1, 2);
        assert!(!s.expired(1000, 1000 + 5 * 86400 - 1));
        assert!(s.expired(1000, 1000 + 5 * 86400));
        // A clock that went backwards never expires a message.
        assert!(!s.expired(1000, 0));
    }

    #[test]
    fn from_config_is_sane() {
        let q = facteur_config::Qmgr {
            min_backoff: facteur_config::Seconds(1),
            max_backoff: facteur_config::Seconds(4),
            ..Default::default()
        };
        let s = Schedule::from_config(&q);
        assert_eq!((s.backoff(1), s.backoff(2), s.backoff(5)), (1, 2, 4));
    }
}
