//! The DNS side of mail authentication: [`Resolver`] is mail-auth's
//! `MessageAuthenticator` on a hickory resolver built from `[trust]`
//! (nameservers, query time-out), with the bounds every check runs under
//! ([`Limits`]); [`Budget`] counts one check's lookups.
//!
//! Shared by both directions: incoming verification (this crate's
//! [`verify`](crate::verify)) and outgoing work (DKIM key publication
//! checks) take the same [`Resolver`], so one configuration says where
//! authentication lookups go.
//!
//! Bounds, each check on its own: mail-auth's limits (SPF: 10 lookups that
//! cost DNS and 20 s, RFC 7208 §4.6.4; ARC: 50 sets), our own cap on DKIM
//! signatures, a [`Budget`] of lookups per check (every lookup mail-auth
//! makes asks its cache first; the budget is that cache, and past its
//! limit it answers "failed" or "nothing" without asking the network),
//! and a time-out per check around all of it.

use facteur_config::Trust;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use mail_auth::{DnssecStatus, MX, MessageAuthenticator, RecordSet, ResolverCache, Txt};
use std::borrow::Borrow;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Why a resolver could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("DNS resolver for mail authentication: {0}")]
pub struct ResolverError(String);

/// The bounds every check runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Time one check may take with all its lookups.
    pub check_timeout: Duration,
    /// Lookups one check may make.
    pub max_lookups: u32,
    /// DKIM signatures verified per message.
    pub max_signatures: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            check_timeout: Duration::from_secs(15),
            max_lookups: 30,
            max_signatures: 10,
        }
    }
}

/// A resolver configuration that asks `servers` ("ip:port", from the
/// configuration) over UDP, then TCP for truncated answers. Shared by
/// every resolver of the suite that takes its nameservers from
/// `facteur.toml` (authentication, DNS lists, remote delivery).
pub fn name_servers(servers: &[SocketAddr]) -> ResolverConfig {
    let ns = servers
        .iter()
        .map(|s| {
            let mut udp = ConnectionConfig::udp();
            udp.port = s.port();
            let mut tcp = ConnectionConfig::tcp();
            tcp.port = s.port();
            NameServerConfig::new(s.ip(), true, vec![udp, tcp])
        })
        .collect();
    ResolverConfig::from_name_servers(ns)
}

/// mail-auth on our resolver, with the checks' bounds.
#[derive(Clone)]
pub struct Resolver {
    auth: MessageAuthenticator,
    pub limits: Limits,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("limits", &self.limits)
            .finish()
    }
}

impl Resolver {
    /// A resolver asking `servers` (UDP, then TCP for truncated answers),
    /// or the system's /etc/resolv.conf when empty; each query may take
    /// `query_timeout`, twice.
    pub fn new(
        servers: &[SocketAddr],
        query_timeout: Duration,
        limits: Limits,
    ) -> Result<Resolver, ResolverError> {
        let (config, mut opts) = if servers.is_empty() {
            hickory_resolver::system_conf::read_system_conf()
                .map_err(|e| ResolverError(format!("/etc/resolv.conf: {e}")))?
        } else {
            (name_servers(servers), ResolverOpts::default())
        };
        opts.timeout = query_timeout;
        opts.attempts = 2;
        // Names are asked as given (fully qualified by mail-auth): the
        // search list must never turn `example.org` into a local name.
        opts.ndots = 0;
        // Nor may /etc/hosts answer (127.0.0.1 is "localhost" there, which
        // would pass iprev for any loopback client).
        opts.use_hosts_file = ResolveHosts::Never;
        let auth =
            MessageAuthenticator::new(config, opts).map_err(|e| ResolverError(e.to_string()))?;
        Ok(Resolver { auth, limits })
    }

    /// The resolver of `[trust]` with `[trust.incoming]`'s bounds.
    pub fn from_config(t: &Trust) -> Result<Resolver, ResolverError> {
        let i = &t.incoming;
        Resolver::new(
            &t.dns_servers,
            t.dns_timeout.duration(),
            Limits {
                check_timeout: i.check_timeout.duration(),
                max_lookups: i.max_lookups,
                max_signatures: i.max_signatures as usize,
            },
        )
    }

    /// mail-auth's authenticator (for lookups of one's own: DKIM key
    /// publication checks).
    pub fn authenticator(&self) -> &MessageAuthenticator {
        &self.auth
    }

    /// A new lookup budget for one check.
    pub fn budget(&self) -> Budget {
        Budget::new(self.limits.max_lookups)
    }
}

/// One check's lookups, counted: mail-auth asks its cache before each
/// lookup, and this "cache" answers only once the budget is spent — a
/// failure for TXT (the check's result becomes a temporary error, as for
/// a DNS failure), an empty answer for the others. It never stores
/// anything (hickory's resolver has the real cache).
#[derive(Debug)]
pub struct Budget {
    left: AtomicU32,
    spent: AtomicU32,
    refused: AtomicU32,
}

/// The text of the error past the budget.
pub const BUDGET_SPENT: &str = "too many DNS lookups for one check";

impl Budget {
    pub fn new(max: u32) -> Budget {
        Budget {
            left: AtomicU32::new(max),
            spent: AtomicU32::new(0),
            refused: AtomicU32::new(0),
        }
    }

    /// Counts a lookup: true when it may go to the network.
    fn take(&self) -> bool {
        self.spent.fetch_add(1, Ordering::Relaxed);
        let ok = self
            .left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok();
        if !ok {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        ok
    }

    /// Lookups asked so far (those refused included).
    pub fn spent(&self) -> u32 {
        self.spent.load(Ordering::Relaxed)
    }

    /// Whether some lookup was refused.
    pub fn exhausted(&self) -> bool {
        self.refused.load(Ordering::Relaxed) > 0
    }
}

fn empty<T>() -> RecordSet<T> {
    RecordSet {
        rrset: Arc::from(Vec::new()),
        dnssec_status: DnssecStatus::Indeterminate,
    }
}

impl ResolverCache<Box<str>, Txt> for Budget {
    fn get<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        (!self.take()).then(|| {
            Txt::Error(mail_auth::Error::Dns(mail_auth::DnsError::Resolver(
                BUDGET_SPENT.into(),
            )))
        })
    }
    fn remove<Q>(&self, _: &Q) -> Option<Txt>
    where
        Box<str>: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        None
    }
    fn insert(&self, _: Box<str>, _: Txt, _: std::time::Instant) {}
}

/// The record types whose spent budget answers "nothing".
macro_rules! empty_past_budget {
    ($k:ty, $v:ty) => {
        impl ResolverCache<$k, RecordSet<$v>> for Budget {
            fn get<Q>(&self, _: &Q) -> Option<RecordSet<$v>>
            where
                $k: Borrow<Q>,
                Q: Hash + Eq + ?Sized,
            {
                (!self.take()).then(empty)
            }
            fn remove<Q>(&self, _: &Q) -> Option<RecordSet<$v>>
            where
                $k: Borrow<Q>,
                Q: Hash + Eq + ?Sized,
            {
                None
            }
            fn insert(&self, _: $k, _: RecordSet<$v>, _: std::time::Instant) {}
        }
    };
}
empty_past_budget!(Box<str>, MX);
empty_past_budget!(Box<str>, Ipv4Addr);
empty_past_budget!(Box<str>, Ipv6Addr);
empty_past_budget!(IpAddr, Box<str>);

type NoCache<K, V> = mail_auth::common::cache::NoCache<K, V>;
/// mail-auth's parameters as `Parameters::new` makes them (no caches).
type Plain<'x, P> = mail_auth::Parameters<
    'x,
    P,
    NoCache<Box<str>, Txt>,
    NoCache<Box<str>, RecordSet<MX>>,
    NoCache<Box<str>, RecordSet<Ipv4Addr>>,
    NoCache<Box<str>, RecordSet<Ipv6Addr>>,
    NoCache<IpAddr, RecordSet<Box<str>>>,
>;

/// `p` with `budget` as every cache: each lookup is counted.
pub(crate) fn with_budget<'x, P>(
    p: Plain<'x, P>,
    budget: &'x Budget,
) -> mail_auth::Parameters<'x, P, Budget, Budget, Budget, Budget, Budget> {
    p.with_txt_cache(budget)
        .with_mx_cache(budget)
        .with_ipv4_cache(budget)
        .with_ipv6_cache(budget)
        .with_ptr_cache(budget)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_counts_and_then_refuses() {
        let b = Budget::new(2);
        let get = |b: &Budget| ResolverCache::<Box<str>, Txt>::get(b, "x.test.").is_some();
        assert!(!get(&b) && !get(&b));
        assert!(!b.exhausted());
        assert!(get(&b));
        let ip: IpAddr = "192.0.2.1"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let ptr = ResolverCache::<IpAddr, RecordSet<Box<str>>>::get(&b, &ip);
        assert!(ptr.is_some_and(|r| r.rrset.is_empty()));
        assert!(b.exhausted());
        assert_eq!(b.spent(), 4);
    }
}
