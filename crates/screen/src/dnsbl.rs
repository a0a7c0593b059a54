//! DNS block and allow lists (RFC 5782): a client's address, reversed,
//! under each list's zone; an A answer is a listing. Every list is asked
//! at once, all within one time-out; the weights of the lists that list
//! the client add up to its score.
//!
//! Answers are cached by the resolver between the configured minimum and
//! maximum TTL, "not listed" (NXDOMAIN) as well, so a flood from one
//! address costs one query per list per TTL. A list that has not
//! answered in time, or failed, counts as not listing (and is logged).
//! Answers that are a list's way of saying "error" — Spamhaus's
//! 127.255.255.0/24 (typing error, public resolver, too many queries),
//! and anything outside 127.0.0.0/8 (a list's domain that expired and
//! now answers everything) — are logged and never counted.

use facteur_config::screen::DnsList;
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ResolveHosts, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::RData;
use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// One list's answer about one client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListAnswer {
    /// Listed: the answers the filter accepted (non-empty).
    Listed(Vec<Ipv4Addr>),
    NotListed,
    /// The list's error codes, a failure or no answer in time: not
    /// counted.
    Error(String),
}

/// What the lists say about a client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Score {
    pub total: i32,
    /// The lists that listed the client (their zones), in configuration
    /// order.
    pub listed_by: Vec<String>,
    /// (zone, why) of lists that could not answer.
    pub errors: Vec<(String, String)>,
}

impl Score {
    /// The list to name in a refusal: the first with a positive weight.
    pub fn blamed(&self, lists: &[DnsList]) -> Option<&str> {
        self.listed_by
            .iter()
            .find(|z| lists.iter().any(|l| &l.zone == *z && l.weight > 0))
            .map(String::as_str)
    }
}

/// The name to ask: the address's octets (IPv4) or nibbles (IPv6)
/// reversed, then the zone, fully qualified.
pub fn query_name(ip: IpAddr, zone: &str) -> String {
    let mut s = String::with_capacity(80);
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            let _ = write!(s, "{}.{}.{}.{}.", o[3], o[2], o[1], o[0]);
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => return query_name(IpAddr::V4(v4), zone),
            None => {
                for b in v6.octets().iter().rev() {
                    let _ = write!(s, "{:x}.{:x}.", b & 0xf, b >> 4);
                }
            }
        },
    }
    s.push_str(zone);
    s.push('.');
    s
}

/// What an A answer set of `list` means.
pub fn judge(list: &DnsList, answers: &[Ipv4Addr]) -> ListAnswer {
    if let Some(bad) = answers
        .iter()
        .find(|a| a.octets()[0] != 127 || a.octets()[..3] == [127, 255, 255])
    {
        return ListAnswer::Error(format!("the list answered {bad} (an error code)"));
    }
    let counted: Vec<Ipv4Addr> = answers
        .iter()
        .copied()
        .filter(|a| list.counts(*a))
        .collect();
    if counted.is_empty() {
        ListAnswer::NotListed
    } else {
        ListAnswer::Listed(counted)
    }
}

/// Adds up the answers of `lists` (same order).
pub fn score(lists: &[DnsList], answers: &[ListAnswer]) -> Score {
    let mut s = Score::default();
    for (l, a) in lists.iter().zip(answers) {
        match a {
            ListAnswer::Listed(_) => {
                s.total = s.total.saturating_add(l.weight);
                s.listed_by.push(l.zone.clone());
            }
            ListAnswer::NotListed => {}
            ListAnswer::Error(e) => s.errors.push((l.zone.clone(), e.clone())),
        }
    }
    s
}

/// The lists and the resolver that asks them.
pub struct DnsLists {
    pub lists: Arc<[DnsList]>,
    resolver: TokioResolver,
    timeout: Duration,
}

impl DnsLists {
    /// `servers` empty: the system's /etc/resolv.conf.
    pub fn new(
        lists: Vec<DnsList>,
        servers: &[SocketAddr],
        timeout: Duration,
        min_ttl: Duration,
        max_ttl: Duration,
    ) -> Result<DnsLists, String> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio().map_err(|e| format!("/etc/resolv.conf: {e}"))?
        } else {
            TokioResolver::builder_with_config(
                facteur_trust::resolver::name_servers(servers),
                provider,
            )
        };
        let o: &mut ResolverOpts = builder.options_mut();
        o.timeout = timeout;
        o.attempts = 2;
        o.ndots = 0;
        o.use_hosts_file = ResolveHosts::Never;
        o.cache_size = 65_536;
        o.positive_min_ttl = Some(min_ttl);
        o.positive_max_ttl = Some(max_ttl);
        o.negative_min_ttl = Some(min_ttl);
        o.negative_max_ttl = Some(max_ttl);
        let resolver = builder.build().map_err(|e| e.to_string())?;
        Ok(DnsLists {
            lists: lists.into(),
            resolver,
            timeout,
        })
    }

    /// Asks every list about `ip` at once.
    pub async fn check(&self, ip: IpAddr) -> (Score, Vec<ListAnswer>) {
        let mut answers: Vec<ListAnswer> = self
            .lists
            .iter()
            .map(|_| ListAnswer::Error("no answer in time".into()))
            .collect();
        let mut set = tokio::task::JoinSet::new();
        for (i, l) in self.lists.iter().enumerate() {
            let (r, l) = (self.resolver.clone(), l.clone());
            set.spawn(async move { (i, ask(&r, &l, ip).await) });
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        while let Ok(Some(done)) = tokio::time::timeout_at(deadline, set.join_next()).await {
            if let Ok((i, a)) = done {
                answers[i] = a;
            }
        }
        // Dropping the set aborts the queries still out.
        (score(&self.lists, &answers), answers)
    }
}

async fn ask(resolver: &TokioResolver, list: &DnsList, ip: IpAddr) -> ListAnswer {
    let name = query_name(ip, &list.zone);
    match resolver.ipv4_lookup(name.as_str()).await {
        Ok(l) => {
            let a: Vec<Ipv4Addr> = l
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::A(a) => Some(a.0),
                    _ => None,
                })
                .collect();
            judge(list, &a)
        }
        Err(e) if e.is_no_records_found() => ListAnswer::NotListed,
        Err(e) => ListAnswer::Error(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_names() {
        let v4: IpAddr = "192.0.2.99".parse().unwrap();
        assert_eq!(query_name(v4, "zen.example"), "99.2.0.192.zen.example.");
        let mapped: IpAddr = "::ffff:192.0.2.99".parse().unwrap();
        assert_eq!(query_name(mapped, "zen.example"), "99.2.0.192.zen.example.");
        // RFC 5782 §2.4: nibbles, least significant first.
        let v6: IpAddr = "2001:db8:1:2:3:4:567:89ab".parse().unwrap();
        assert_eq!(
            query_name(v6, "zen.example"),
            "b.a.9.8.7.6.5.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.zen.example."
        );
    }

    #[test]
    fn answers_and_scores() {
        let zen = DnsList::parse("zen.example*3").unwrap();
        let wl = DnsList::parse("wl.example=127.0.[0..255].[2..3]*-4").unwrap();
        let a = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        assert_eq!(
            judge(&zen, &[a("127.0.0.2")]),
            ListAnswer::Listed(vec![a("127.0.0.2")])
        );
        // Spamhaus's error codes and answers outside 127/8 never count.
        for bad in ["127.255.255.254", "127.255.255.252", "10.0.0.1"] {
            assert!(
                matches!(judge(&zen, &[a(bad)]), ListAnswer::Error(_)),
                "{bad}"
            );
        }
        assert_eq!(judge(&wl, &[a("127.0.5.1")]), ListAnswer::NotListed);
        let lists = [zen.clone(), wl.clone()];
        let s = score(
            &lists,
            &[
                ListAnswer::Listed(vec![a("127.0.0.2")]),
                ListAnswer::Listed(vec![a("127.0.5.3")]),
            ],
        );
        assert_eq!((s.total, s.listed_by.len()), (-1, 2));
        assert_eq!(s.blamed(&lists), Some("zen.example"));
        let s = score(
            &lists,
            &[ListAnswer::Error("x".into()), ListAnswer::NotListed],
        );
        assert_eq!((s.total, s.errors.len(), s.blamed(&lists)), (0, 1, None));
    }
}

#[cfg(test)]
mod resolver_tests {
    use super::*;
    use facteur_testkit::{DnsServer, Zone};

    #[tokio::test]
    async fn lists_asked_at_once_with_error_codes_and_a_cache() {
        let dns = DnsServer::start(
            Zone::default()
                .ip("99.2.0.192.zen.test", "127.0.0.2")
                .ip("99.2.0.192.wl.test", "127.0.5.3")
                .ip("99.2.0.192.broken.test", "127.255.255.254")
                .ip("1.2.0.192.zen.test", "127.0.0.4")
                .silent("99.2.0.192.slow.test"),
        )
        .await;
        let lists: Vec<DnsList> = [
            "zen.test*3",
            "wl.test=127.0.[0..255].[2..3]*-4",
            "broken.test*2",
            "slow.test*5",
        ]
        .iter()
        .map(|s| DnsList::parse(s).unwrap())
        .collect();
        let d = DnsLists::new(
            lists,
            &[dns.addr],
            Duration::from_secs(1),
            Duration::from_secs(60),
            Duration::from_secs(3600),
        )
        .unwrap();
        let ip: IpAddr = "192.0.2.99".parse().unwrap();
        let started = std::time::Instant::now();
        let (s, answers) = d.check(ip).await;
        // The silent list costs the time-out once, not once per list.
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(s.total, 3 - 4, "{s:?}");
        assert_eq!(s.listed_by, ["zen.test", "wl.test"]);
        assert_eq!(s.errors.len(), 2, "{answers:?}");
        assert!(matches!(&answers[2], ListAnswer::Error(e) if e.contains("127.255.255.254")));
        // Not listed anywhere but zen: NXDOMAIN elsewhere.
        let (s, _) = d.check("192.0.2.1".parse().unwrap()).await;
        assert_eq!((s.total, s.errors.len()), (3, 0), "{s:?}");
        // Asked again: answers (and "not listed") come from the cache.
        let before = *dns.queries.lock().unwrap();
        let (s, _) = d.check("192.0.2.1".parse().unwrap()).await;
        assert_eq!(s.total, 3);
        assert_eq!(*dns.queries.lock().unwrap(), before, "no new query");
    }
}
