//! Greylisting, Postgrey's rules: what a triplet is, and what its record
//! says now. Pure: the time is a parameter ([`decide`]), the records live
//! in [`db`](crate::db).
//!
//! A triplet is the client's network (/24 for IPv4, /64 for IPv6: a
//! sender's pool of outgoing servers retries from a neighbour), the
//! sender normalized (BATV and SRS-style tags unwrapped, `+ext` removed,
//! runs of digits folded — per-message bounce addresses would otherwise
//! make every message a new triplet) and the recipient.

use facteur_config::screen::Greylist;
use std::net::IpAddr;

/// One triplet, normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Triplet {
    pub net: String,
    pub sender: String,
    pub rcpt: String,
}

impl Triplet {
    pub fn new(ip: IpAddr, sender: &str, rcpt: &str) -> Triplet {
        Triplet {
            net: client_net(ip),
            sender: normalize_sender(sender),
            rcpt: rcpt.to_ascii_lowercase(),
        }
    }
}

/// The network a client counts in: /24 (IPv4) or /64 (IPv6).
pub fn client_net(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            format!("{}.{}.{}.0/24", o[0], o[1], o[2])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => client_net(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

/// The sender as greylisting sees it: lowercase; `prvs=TAG=user`,
/// `msprvs1=TAG=user` and `btv1==TAG==user` (BATV) unwrapped; everything
/// from the first `+` of the local part removed; each run of digits in
/// the local part made one `#`. The null sender stays empty.
pub fn normalize_sender(s: &str) -> String {
    let s = s.to_ascii_lowercase();
    let Some((local, domain)) = s.rsplit_once('@') else {
        return s;
    };
    let mut local = local;
    for prefix in ["prvs=", "msprvs1="] {
        if let Some(rest) = local.strip_prefix(prefix)
            && let Some((_tag, user)) = rest.split_once('=')
        {
            local = user;
        }
    }
    if let Some(rest) = local.strip_prefix("btv1==")
        && let Some((_tag, user)) = rest.split_once("==")
    {
        local = user;
    }
    if let Some((base, _ext)) = local.split_once('+')
        && !base.is_empty()
    {
        local = base;
    }
    let mut out = String::with_capacity(local.len() + domain.len() + 1);
    let mut in_digits = false;
    for c in local.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push('#');
            }
            in_digits = true;
        } else {
            out.push(c);
            in_digits = false;
        }
    }
    out.push('@');
    out.push_str(domain);
    out
}

/// A triplet's record (Unix seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    /// The first attempt of the current try.
    pub first: i64,
    /// The last attempt.
    pub last: i64,
    /// When it was first let through (then it passes until it expires).
    pub passed: Option<i64>,
}

/// What greylisting says about one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Grey {
    /// Let through: the triplet passed before, or it waited long enough.
    Pass,
    /// The first pass of this triplet (the client's and the domain's
    /// counts go up).
    FirstPass,
    /// Not yet: try again in this many seconds.
    Defer(i64),
}

/// The verdict on an attempt at `now`, and the record to keep.
pub fn decide(cfg: &Greylist, old: Option<Record>, now: i64) -> (Grey, Record) {
    let fresh = Record {
        first: now,
        last: now,
        passed: None,
    };
    let Some(r) = old else {
        return (Grey::Defer(cfg.delay.0 as i64), fresh);
    };
    if now - r.last > cfg.expire.0 as i64 {
        // Forgotten: a new first attempt.
        return (Grey::Defer(cfg.delay.0 as i64), fresh);
    }
    if r.passed.is_some() {
        return (Grey::Pass, Record { last: now, ..r });
    }
    let waited = now - r.first;
    if waited > cfg.retry_window.0 as i64 {
        // Came back too late: the wait starts again.
        return (Grey::Defer(cfg.delay.0 as i64), fresh);
    }
    if waited >= cfg.delay.0 as i64 {
        return (
            Grey::FirstPass,
            Record {
                last: now,
                passed: Some(now),
                ..r
            },
        );
    }
    (
        Grey::Defer(cfg.delay.0 as i64 - waited),
        Record { last: now, ..r },
    )
}

/// A client's (or a sender domain's) record of passes: counted at most
/// once an hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Passes {
    pub count: u32,
    pub last: i64,
}

/// The record after a pass at `now`.
pub fn count_pass(p: Passes, now: i64) -> Passes {
    if p.count > 0 && now - p.last < 3600 {
        p
    } else {
        Passes {
            count: p.count.saturating_add(1),
            last: now,
        }
    }
}

/// Whether a record of passes allowlists (and has not expired).
pub fn allowlisted(cfg: &Greylist, p: Option<Passes>, now: i64) -> bool {
    cfg.auto_allow_after > 0
        && p.is_some_and(|p| p.count >= cfg.auto_allow_after && now - p.last <= cfg.expire.0 as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn senders_normalized() {
        for (raw, want) in [
            ("Bob@Example.ORG", "bob@example.org"),
            ("prvs=1234abcdef=bob@example.org", "bob@example.org"),
            ("msprvs1=17abc=bob@example.org", "bob@example.org"),
            ("btv1==1234abc==bob@example.org", "bob@example.org"),
            ("bob+list-42@example.org", "bob@example.org"),
            ("bounce-12345-678@lists.example", "bounce-#-#@lists.example"),
            ("+only@example.org", "+only@example.org"),
            ("", ""),
        ] {
            assert_eq!(normalize_sender(raw), want, "{raw}");
        }
    }

    #[test]
    fn networks() {
        let n = |s: &str| client_net(s.parse().unwrap());
        assert_eq!(n("192.0.2.77"), "192.0.2.0/24");
        assert_eq!(n("::ffff:192.0.2.77"), "192.0.2.0/24");
        assert_eq!(n("2001:db8:aa:bb:1::5"), "2001:db8:aa:bb::/64");
    }

    #[test]
    fn postgreys_rules_with_a_clock() {
        let cfg = Greylist::default(); // 300 s delay, 2 days to retry, 35 days to expire
        let t0 = 1_000_000;
        let (g, r) = decide(&cfg, None, t0);
        assert_eq!(g, Grey::Defer(300));
        // Too early: still deferred, for what remains.
        let (g, r) = decide(&cfg, Some(r), t0 + 100);
        assert_eq!((g, r.first), (Grey::Defer(200), t0));
        // After the delay: through, and from then on.
        let (g, r) = decide(&cfg, Some(r), t0 + 301);
        assert_eq!(g, Grey::FirstPass);
        let (g, r) = decide(&cfg, Some(r), t0 + 86_400 * 20);
        assert_eq!(g, Grey::Pass);
        // Unseen for longer than `expire`: a stranger again.
        let (g, _) = decide(&cfg, Some(r), t0 + 86_400 * 56);
        assert_eq!(g, Grey::Defer(300));
        // A retry after the window starts the wait again.
        let (_, r) = decide(&cfg, None, t0);
        let (g, r) = decide(&cfg, Some(r), t0 + 3 * 86_400);
        assert_eq!((g, r.first), (Grey::Defer(300), t0 + 3 * 86_400));
    }

    #[test]
    fn passes_count_once_an_hour() {
        let cfg = Greylist::default();
        let mut p = Passes::default();
        let t0 = 5_000_000;
        for i in 0..10 {
            p = count_pass(p, t0 + i * 60);
        }
        assert_eq!(p.count, 1);
        for h in 1..=4 {
            p = count_pass(p, t0 + h * 3600);
        }
        assert_eq!(p.count, 5);
        assert!(allowlisted(&cfg, Some(p), t0 + 5 * 3600));
        assert!(!allowlisted(&cfg, Some(p), t0 + 40 * 86_400));
        let never = Greylist {
            auto_allow_after: 0,
            ..Greylist::default()
        };
        assert!(!allowlisted(&never, Some(p), t0 + 5 * 3600));
    }
}
