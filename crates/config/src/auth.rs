//! The `[auth]` section: how smtpd, imapd and pop3d (each for itself) limit
//! logins — password hashes at once and waiting, and the slow-down of
//! failed logins (facteur-auth has the policy in full).
//!
//! Checked at load ([`check`]): every limit within range. Every key is
//! documented in `etc/facteur.toml`.

use crate::units::Seconds;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    /// Password hashes a daemon computes at once (argon2id: 19 MiB each).
    /// 0: the number of CPUs, at most 4.
    pub max_parallel_hashes: u32,
    /// Logins of one client (an IPv4 address, an IPv6 /64) that may wait
    /// for a hash; beyond, they fail at once.
    pub max_queued_per_address: u32,
    /// Logins that may wait for a hash, all clients together.
    pub max_queued: u32,
    /// The longest a login waits because of earlier failures; one that
    /// would wait longer fails at once.
    pub max_delay: Seconds,
    /// How long failures count after the last one.
    pub forget_failures_after: Seconds,
    /// How long a successful login keeps its address trusted for its user
    /// (not slowed down by others' failures against that user).
    pub trust_logins_for: Seconds,
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            max_parallel_hashes: 0,
            max_queued_per_address: 8,
            max_queued: 256,
            max_delay: Seconds(30),
            forget_failures_after: Seconds(15 * 60),
            trust_logins_for: Seconds(30 * 24 * 3600),
        }
    }
}

/// Checks what types alone cannot; the error names the key.
pub fn check(a: &Auth) -> Result<(), (String, String)> {
    let ranges = [
        (
            "auth.max_parallel_hashes",
            a.max_parallel_hashes as u64,
            0,
            64,
        ),
        (
            "auth.max_queued_per_address",
            a.max_queued_per_address as u64,
            1,
            1000,
        ),
        ("auth.max_queued", a.max_queued as u64, 1, 100_000),
        ("auth.max_delay", a.max_delay.0, 1, 3600),
        (
            "auth.forget_failures_after",
            a.forget_failures_after.0,
            60,
            86_400,
        ),
        (
            "auth.trust_logins_for",
            a.trust_logins_for.0,
            0,
            366 * 86_400,
        ),
    ];
    for (key, v, min, max) in ranges {
        if v < min || v > max {
            return Err((key.into(), format!("{v} is outside {min}..={max}")));
        }
    }
    if a.max_queued < a.max_queued_per_address {
        return Err((
            "auth.max_queued".into(),
            "is smaller than auth.max_queued_per_address".into(),
        ));
    }
    Ok(())
}
