//! The `[screen]` section: keeping junk out at facteur-smtpd's door, for
//! clients that are neither logged in nor in `smtpd.mynetworks`.
//!
//! At connection: the allow and deny lists, the pregreet test (a client
//! that talks before our greeting is spam software), DNS block and allow
//! lists with weights and a threshold, and optionally forward-confirmed
//! reverse DNS; at HELO, the name's syntax and identity; at RCPT,
//! recipients per client per minute and greylisting (`[screen.greylist]`).
//! Every key is documented in `etc/facteur.toml`.
//!
//! A DNS list is written as postscreen writes it: `zone[=filter][*weight]`
//! (`zen.spamhaus.org*3`, `list.dnswl.org=127.0.[0..255].[2..3]*-4`): the
//! filter says which answers count, one term per octet, each a number or
//! bracketed numbers and ranges separated by `;`. Parsed and checked at
//! load ([`DnsList::parse`]).

use crate::IpNet;
use crate::units::Seconds;
use serde::Deserialize;
use std::net::{Ipv4Addr, SocketAddr};

/// What happens to a client that talks before the greeting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PregreetAction {
    /// `521 5.5.1` and the connection is closed.
    Drop,
    /// A `554 5.7.1` greeting, and every command but QUIT refused.
    Enforce,
    /// Logged and counted only.
    Ignore,
}

/// When a message with the null sender (a bounce) is greylisted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NullSenderAt {
    /// At each RCPT, like any other sender.
    Rcpt,
    /// Once, after the data (some senders of bounces give up on a RCPT
    /// refused with 4xx but retry a message refused after DATA).
    Data,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Screen {
    /// Listeners screened (`mx`, `submission`, `submissions`): the MX one
    /// by default; logged-in clients are never screened anyway.
    pub listeners: Vec<String>,
    /// Clients, senders and recipients always accepted: no pregreet wait,
    /// no DNS lists, no FCrDNS, no greylisting. Networks (`192.0.2.0/24`),
    /// addresses (`boss@example.org`), domains (`example.org`, and
    /// `.example.org` for its subdomains). `facteurctl access` keeps more
    /// in `<state_dir>/screen/access`, read again when it changes.
    pub allow: Vec<String>,
    /// Clients and senders always refused (networks at connection,
    /// addresses and domains at MAIL).
    pub deny: Vec<String>,
    /// How long a client is watched for talking before the greeting (a
    /// `220-` line, then the wait, then the rest); 0 turns the test off.
    pub pregreet_wait: Seconds,
    pub pregreet_action: PregreetAction,
    /// How long a client that waited its turn is remembered (no wait
    /// during that time).
    pub pregreet_pass_ttl: Seconds,
    /// DNS block and allow lists (see the module header); none by default.
    pub dns_lists: Vec<DnsList>,
    /// A client whose weights add up to this or more is refused
    /// (`554 5.7.1`).
    pub dns_lists_threshold: i32,
    /// A client whose weights add up to this or less is trusted: no
    /// greylisting, and remembered as a pregreet pass.
    pub dns_lists_trust_threshold: i32,
    /// Time all the lists' queries of one client may take together; a
    /// list that has not answered counts as not listing the client.
    pub dns_lists_timeout: Seconds,
    /// Bounds on how long an answer (or a "not listed") is cached.
    pub dns_lists_min_ttl: Seconds,
    pub dns_lists_max_ttl: Seconds,
    /// Nameservers for the lists, "ip:port"; empty = `[trust]
    /// dns_servers`, or the system's /etc/resolv.conf. Public lists
    /// refuse queries that come through large public resolvers: use a
    /// local caching resolver.
    pub dns_servers: Vec<SocketAddr>,
    /// HELO checks: a name that is neither a domain nor an address
    /// literal, a literal that is not the client's address, or our own
    /// name, is refused (`550 5.7.1`).
    pub helo_checks: bool,
    /// Listeners (among the screened ones) that refuse clients whose
    /// address has no name that resolves back to it (`554 5.7.25`; `421
    /// 4.7.25` when DNS fails); none by default.
    pub require_fcrdns: Vec<String>,
    /// Recipients accepted per client address per minute (`450 4.7.0`
    /// beyond); 0 = no limit.
    pub max_recipients_per_ip_per_minute: u32,
    pub greylist: Greylist,
}

impl Default for Screen {
    fn default() -> Self {
        Screen {
            listeners: vec!["mx".into()],
            allow: Vec::new(),
            deny: Vec::new(),
            pregreet_wait: Seconds(6),
            pregreet_action: PregreetAction::Drop,
            pregreet_pass_ttl: Seconds(86_400),
            dns_lists: Vec::new(),
            dns_lists_threshold: 1,
            dns_lists_trust_threshold: -1,
            dns_lists_timeout: Seconds(5),
            dns_lists_min_ttl: Seconds(60),
            dns_lists_max_ttl: Seconds(3600),
            dns_servers: Vec::new(),
            helo_checks: true,
            require_fcrdns: Vec::new(),
            max_recipients_per_ip_per_minute: 1200,
            greylist: Greylist::default(),
        }
    }
}

impl Screen {
    /// Whether clients of `listener` are screened.
    pub fn screens(&self, listener: &str) -> bool {
        self.listeners.iter().any(|l| l == listener)
    }
}

/// `[screen.greylist]`: Postgrey's rules. A triplet (client network,
/// sender, recipient) seen for the first time is refused with `451 4.7.1`;
/// its retry is accepted once `delay` has passed, within `retry_window`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Greylist {
    pub enabled: bool,
    pub delay: Seconds,
    /// How long after the first attempt a retry is still taken as one (a
    /// later attempt starts again).
    pub retry_window: Seconds,
    /// A triplet (and an allowlisted client) not seen for this long is
    /// forgotten.
    pub expire: Seconds,
    /// A client network whose mail passed this many times (counted at
    /// most once an hour) is no longer greylisted; 0 = never.
    pub auto_allow_after: u32,
    pub null_sender_at: NullSenderAt,
    /// Skip greylisting for a sender that SPF authorizes (`[trust]`
    /// incoming checks must run) from a domain whose mail passed
    /// greylisting `auto_allow_after` times already.
    pub skip_spf_pass: bool,
}

impl Default for Greylist {
    fn default() -> Self {
        Greylist {
            enabled: false,
            delay: Seconds(300),
            retry_window: Seconds(2 * 86_400),
            expire: Seconds(35 * 86_400),
            auto_allow_after: 5,
            null_sender_at: NullSenderAt::Rcpt,
            skip_spf_pass: true,
        }
    }
}

/// One DNS list: the zone, which answers count, and the weight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsList {
    pub zone: String,
    /// One set of accepted values per octet of the answer; `None` = any
    /// answer but the list's error codes.
    pub filter: Option<[Vec<(u8, u8)>; 4]>,
    pub weight: i32,
    /// As written in the configuration (for logs).
    pub spec: String,
}

impl DnsList {
    /// Parses `zone[=filter][*weight]`.
    pub fn parse(spec: &str) -> Result<DnsList, String> {
        let s = spec.trim();
        let (rest, weight) = match s.rsplit_once('*') {
            Some((r, w)) => (
                r,
                w.trim()
                    .parse::<i32>()
                    .ok()
                    .filter(|w| (-1000..=1000).contains(w))
                    .ok_or_else(|| format!("{spec:?}: the weight must be a number"))?,
            ),
            None => (s, 1),
        };
        let (zone, filter) = match rest.split_once('=') {
            Some((z, f)) => (
                z,
                Some(parse_filter(f).ok_or_else(|| {
                    format!("{spec:?}: the filter must be four octets, each a number or [a..b;c]")
                })?),
            ),
            None => (rest, None),
        };
        let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
        let ok = !zone.is_empty()
            && zone.len() <= 200
            && zone.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            });
        if !ok {
            return Err(format!("{spec:?}: {zone:?} is not a DNS zone"));
        }
        Ok(DnsList {
            zone,
            filter,
            weight,
            spec: s.to_string(),
        })
    }

    /// Whether an answer of the list counts (its filter accepts it).
    pub fn counts(&self, a: Ipv4Addr) -> bool {
        match &self.filter {
            None => true,
            Some(f) => a
                .octets()
                .iter()
                .zip(f)
                .all(|(o, set)| set.iter().any(|(lo, hi)| (*lo..=*hi).contains(o))),
        }
    }
}

fn parse_filter(f: &str) -> Option<[Vec<(u8, u8)>; 4]> {
    // Split on the dots outside brackets (`[0..255]` holds dots).
    let f = f.trim();
    let mut octets = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in f.char_indices() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            '.' if depth == 0 => {
                octets.push(&f[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    octets.push(&f[start..]);
    if octets.len() != 4 {
        return None;
    }
    let mut out: [Vec<(u8, u8)>; 4] = Default::default();
    for (o, slot) in octets.iter().zip(out.iter_mut()) {
        let terms = match o.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            Some(inner) => inner.split(';').collect::<Vec<_>>(),
            None => vec![*o],
        };
        for t in terms {
            let (lo, hi) = match t.split_once("..") {
                Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
                None => {
                    let v: u8 = t.trim().parse().ok()?;
                    (v, v)
                }
            };
            if lo > hi {
                return None;
            }
            slot.push((lo, hi));
        }
    }
    Some(out)
}

impl<'de> Deserialize<'de> for DnsList {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        DnsList::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// One entry of the allow and deny lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessEntry {
    Network(IpNet),
    /// A whole address, lowercase.
    Address(String),
    /// A domain, lowercase; `subdomains` for `.example.org`.
    Domain {
        name: String,
        subdomains: bool,
    },
}

impl AccessEntry {
    /// Parses a network, an address or a (dot-prefixed) domain.
    pub fn parse(s: &str) -> Result<AccessEntry, String> {
        let t = s.trim();
        if let Some(n) = IpNet::parse(t) {
            return Ok(AccessEntry::Network(n));
        }
        let lower = t.to_ascii_lowercase();
        if let Some((local, domain)) = lower.rsplit_once('@') {
            if local.is_empty() || facteur_mail::normalize_domain(domain).is_err() {
                return Err(format!("{s:?} is not an address"));
            }
            return Ok(AccessEntry::Address(lower));
        }
        let (name, subdomains) = match lower.strip_prefix('.') {
            Some(d) => (d.to_string(), true),
            None => (lower.clone(), false),
        };
        if facteur_mail::normalize_domain(&name).is_err() || !name.contains('.') {
            return Err(format!(
                "{s:?} is not a network, an address or a domain (\"192.0.2.0/24\", \
                 \"user@example.org\", \"example.org\", \".example.org\")"
            ));
        }
        Ok(AccessEntry::Domain { name, subdomains })
    }
}

/// Checked at load: lists, entries and bounds.
pub(crate) fn check(s: &Screen) -> Result<(), (String, String)> {
    for (key, list) in [
        ("screen.listeners", &s.listeners),
        ("screen.require_fcrdns", &s.require_fcrdns),
    ] {
        for l in list {
            if !["mx", "submission", "submissions"].contains(&l.as_str()) {
                return Err((
                    key.into(),
                    format!("{l:?} is not mx, submission or submissions"),
                ));
            }
        }
    }
    for (key, list) in [("screen.allow", &s.allow), ("screen.deny", &s.deny)] {
        for e in list {
            AccessEntry::parse(e).map_err(|r| (key.to_string(), r))?;
        }
    }
    if s.pregreet_wait.0 > 60 {
        return Err((
            "screen.pregreet_wait".into(),
            "must be at most 60 seconds (senders give up on a slow greeting)".into(),
        ));
    }
    if s.dns_lists_trust_threshold >= s.dns_lists_threshold {
        return Err((
            "screen.dns_lists_trust_threshold".into(),
            "must be below screen.dns_lists_threshold".into(),
        ));
    }
    if !(1..=60).contains(&s.dns_lists_timeout.0) {
        return Err((
            "screen.dns_lists_timeout".into(),
            "must be between 1 and 60 seconds".into(),
        ));
    }
    if s.dns_lists_min_ttl.0 > s.dns_lists_max_ttl.0 {
        return Err((
            "screen.dns_lists_min_ttl".into(),
            "must not be above screen.dns_lists_max_ttl".into(),
        ));
    }
    if s.dns_lists.len() > 32 {
        return Err(("screen.dns_lists".into(), "at most 32 lists".into()));
    }
    let g = &s.greylist;
    if g.delay.0 >= g.retry_window.0 {
        return Err((
            "screen.greylist.delay".into(),
            "must be below screen.greylist.retry_window".into(),
        ));
    }
    if g.retry_window.0 > g.expire.0 {
        return Err((
            "screen.greylist.retry_window".into(),
            "must not be above screen.greylist.expire".into(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_lists_as_postscreen_writes_them() {
        let l = DnsList::parse("zen.spamhaus.org*3").unwrap();
        assert_eq!(
            (l.zone.as_str(), l.weight, l.filter.is_none()),
            ("zen.spamhaus.org", 3, true)
        );
        let l = DnsList::parse("list.dnswl.org=127.0.[0..255].[2..3]*-4").unwrap();
        assert_eq!(l.weight, -4);
        assert!(l.counts(Ipv4Addr::new(127, 0, 9, 2)));
        assert!(l.counts(Ipv4Addr::new(127, 0, 200, 3)));
        assert!(!l.counts(Ipv4Addr::new(127, 0, 9, 1)));
        assert!(!l.counts(Ipv4Addr::new(127, 1, 9, 2)));
        let l = DnsList::parse("b.example=127.0.0.[2;4..5]").unwrap();
        assert_eq!(l.weight, 1);
        assert!(l.counts(Ipv4Addr::new(127, 0, 0, 4)) && !l.counts(Ipv4Addr::new(127, 0, 0, 3)));
        for bad in [
            "",
            "*3",
            "zen.spamhaus.org*x",
            "a.example=127.0.0",
            "a.example=1.2.3.[5..4]",
            "a.example=1.2.3.256",
            "bad zone.example",
            "a.example*99999",
        ] {
            assert!(DnsList::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn access_entries() {
        assert!(matches!(
            AccessEntry::parse("192.0.2.0/24"),
            Ok(AccessEntry::Network(_))
        ));
        assert!(matches!(
            AccessEntry::parse("2001:db8::1"),
            Ok(AccessEntry::Network(_))
        ));
        assert_eq!(
            AccessEntry::parse("Boss@Example.ORG"),
            Ok(AccessEntry::Address("boss@example.org".into()))
        );
        assert_eq!(
            AccessEntry::parse(".example.org"),
            Ok(AccessEntry::Domain {
                name: "example.org".into(),
                subdomains: true
            })
        );
        for bad in [
            "",
            "@example.org",
            "nodot",
            "a@",
            "1.2.3.4/40",
            "x y.example",
        ] {
            assert!(AccessEntry::parse(bad).is_err(), "{bad}");
        }
    }
}
