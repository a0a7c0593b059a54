//! Where a domain's mail goes: MX lookup (RFC 5321 §5.1), null MX (RFC
//! 7505), the implicit MX (A/AAAA of the domain itself), address literals.
//!
//! Offers the [`Dns`] trait (two questions: the MX records of a name, the
//! addresses of a host), [`HickoryDns`] (the real one, hickory-resolver) and
//! [`route`], pure logic over any [`Dns`]: the ordered list of hosts to try.
//! Tests use a mock [`Dns`] (mox does the same).
//!
//! Rules:
//! - names are looked up fully qualified (a trailing dot), so the resolver's
//!   search list never turns `example.org` into `example.org.corp.local`;
//! - MX records are tried by preference, lowest first, in random order among
//!   equal preferences (RFC 5321 §5.1);
//! - a single MX with preference 0 and the root as exchange is a null MX:
//!   the domain accepts no mail, and the message bounces at once (5.1.10);
//!   a null MX mixed with other records is ignored (RFC 7505 §3);
//! - no MX record (NOERROR/NXDOMAIN with no answer) means the domain itself
//!   is the only host (the implicit MX); a name that does not exist at all
//!   bounces (5.1.2); any other DNS failure is temporary;
//! - each host's IPv4 and IPv6 addresses are all tried (A, then AAAA).

use hickory_resolver::proto::rr::RData;
use hickory_resolver::{TokioResolver, net::NetError};
use rand::seq::SliceRandom;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;

/// A boxed future, so [`Dns`] can be used as `dyn Dns`.
pub type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Why a lookup gave nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name has no records of that type (NODATA), or does not exist.
    #[error("no such record")]
    NoRecords { nxdomain: bool },
    /// A timeout, SERVFAIL, an unreachable server: try later.
    #[error("DNS lookup failed: {0}")]
    Temporary(String),
}

/// One MX record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mx {
    pub preference: u16,
    /// The exchange, without the trailing dot; "" is the root (null MX).
    pub exchange: String,
}

/// The two questions remote delivery asks.
pub trait Dns: Send + Sync {
    /// MX records of `name` (fully qualified, with its trailing dot).
    fn mx<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Vec<Mx>, DnsError>>;
    /// IPv4 then IPv6 addresses of `name` (fully qualified).
    fn addrs<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Vec<IpAddr>, DnsError>>;
    /// TXT records of `name` (fully qualified), each one's strings joined.
    fn txt<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Vec<Vec<u8>>, DnsError>>;
}

/// The real resolver.
pub struct HickoryDns {
    resolver: TokioResolver,
}

impl HickoryDns {
    /// `servers` empty: the system's /etc/resolv.conf; else these
    /// nameservers (UDP, falling back to TCP for truncated answers).
    pub fn new(servers: &[SocketAddr]) -> Result<HickoryDns, NetError> {
        let provider = hickory_resolver::net::runtime::TokioRuntimeProvider::default();
        let builder = if servers.is_empty() {
            TokioResolver::builder_tokio()?
        } else {
            TokioResolver::builder_with_config(
                facteur_trust::resolver::name_servers(servers),
                provider,
            )
        };
        Ok(HickoryDns {
            resolver: builder.build()?,
        })
    }
}

fn map_err(e: NetError) -> DnsError {
    if e.is_no_records_found() {
        DnsError::NoRecords {
            nxdomain: e.is_nx_domain(),
        }
    } else {
        DnsError::Temporary(e.to_string())
    }
}

impl Dns for HickoryDns {
    fn txt<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Vec<Vec<u8>>, DnsError>> {
        Box::pin(async move {
            let l = self.resolver.txt_lookup(name).await.map_err(map_err)?;
            Ok(l.answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(t) => Some(t.txt_data.concat()),
                    _ => None,
                })
                .collect())
        })
    }

    fn mx<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Vec<Mx>, DnsError>> {
        Box::pin(async move {
            let l = self.resolver.mx_lookup(name).await.map_err(map_err)?;
            Ok(l.answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some(Mx {
                        preference: mx.preference,
                        exchange: mx.exchange.to_ascii().trim_end_matches('.').to_string(),
                    }),
                    _ => None,
                })
                .collect())
        })
    }

    fn addrs<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Vec<IpAddr>, DnsError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut last = None;
            let (v4, v6) = tokio::join!(
                self.resolver.ipv4_lookup(name),
                self.resolver.ipv6_lookup(name)
            );
            for l in [v4, v6] {
                match l {
                    Ok(l) => out.extend(l.answers().iter().filter_map(|r| match &r.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(a) => Some(IpAddr::V6(a.0)),
                        _ => None,
                    })),
                    Err(e) => last = Some(map_err(e)),
                }
            }
            match (out.is_empty(), last) {
                (true, Some(e)) => Err(e),
                _ => Ok(out),
            }
        })
    }
}

/// Where to deliver: an ordered list of host names (or address literals)
/// with the port, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// Try these in order.
    Hosts(Vec<String>),
    /// Bounce every recipient with this text (null MX, no such domain).
    Refused(String),
    /// Try later with this text.
    Later(String),
}

/// The fully qualified form of `name` (a trailing dot).
pub fn fqdn(name: &str) -> String {
    if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    }
}

/// The hosts that take `domain`'s mail, by MX preference (random among
/// equals), or the domain itself without MX. `mx = false` skips the MX
/// lookup (a `[relayhost]`). An address literal `[1.2.3.4]` is itself.
pub async fn route(dns: &dyn Dns, domain: &str, mx: bool) -> Route {
    if let Some(lit) = domain.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        return Route::Hosts(vec![format!("[{lit}]")]);
    }
    if !mx {
        return Route::Hosts(vec![domain.to_string()]);
    }
    match dns.mx(&fqdn(domain)).await {
        Ok(mut records) if !records.is_empty() => {
            if records.len() == 1 && records[0].exchange.is_empty() {
                return Route::Refused(format!(
                    "556 5.1.10 domain {domain} does not accept mail (null MX, RFC 7505)"
                ));
            }
            records.retain(|r| !r.exchange.is_empty());
            // Shuffle, then a stable sort: random order among equals.
            records.shuffle(&mut rand::thread_rng());
            records.sort_by_key(|r| r.preference);
            let mut hosts: Vec<String> = Vec::new();
            for r in records {
                if !hosts.contains(&r.exchange) {
                    hosts.push(r.exchange);
                }
            }
            Route::Hosts(hosts)
        }
        Ok(_) | Err(DnsError::NoRecords { nxdomain: false }) => {
            Route::Hosts(vec![domain.to_string()])
        }
        Err(DnsError::NoRecords { nxdomain: true }) => Route::Refused(format!(
            "550 5.1.2 domain {domain} does not exist (DNS: no such domain)"
        )),
        Err(DnsError::Temporary(e)) => Route::Later(format!("4.4.3 MX lookup of {domain}: {e}")),
    }
}

/// The addresses of one host of a [`Route`] (an `[address literal]` is
/// itself).
pub async fn host_addrs(dns: &dyn Dns, host: &str) -> Result<Vec<IpAddr>, String> {
    if let Some(lit) = host.strip_prefix('[').and_then(|d| d.strip_suffix(']')) {
        let lit = lit.strip_prefix("IPv6:").unwrap_or(lit);
        return lit
            .parse::<IpAddr>()
            .map(|a| vec![a])
            .map_err(|_| format!("5.1.2 bad address literal [{lit}]"));
    }
    if let Ok(a) = host.parse::<IpAddr>() {
        return Ok(vec![a]);
    }
    match dns.addrs(&fqdn(host)).await {
        Ok(a) if !a.is_empty() => Ok(a),
        Ok(_) | Err(DnsError::NoRecords { .. }) => {
            Err(format!("4.4.4 host {host} has no address (A/AAAA)"))
        }
        Err(DnsError::Temporary(e)) => Err(format!("4.4.3 address lookup of {host}: {e}")),
    }
}

#[cfg(test)]
pub mod mock {
    //! A [`Dns`] from a table, for tests.
    use super::*;
    use std::collections::HashMap;

    #[derive(Default)]
    pub struct MockDns {
        pub mx: HashMap<String, Result<Vec<Mx>, DnsError>>,
        pub addrs: HashMap<String, Vec<IpAddr>>,
        pub txt: HashMap<String, Vec<Vec<u8>>>,
    }

    impl Dns for MockDns {
        fn txt<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Vec<Vec<u8>>, DnsError>> {
            assert!(name.ends_with('.'), "not fully qualified: {name}");
            let r = self
                .txt
                .get(name)
                .cloned()
                .ok_or(DnsError::NoRecords { nxdomain: true });
            Box::pin(async move { r })
        }
        fn mx<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Vec<Mx>, DnsError>> {
            assert!(name.ends_with('.'), "not fully qualified: {name}");
            let r = self
                .mx
                .get(name)
                .cloned()
                .unwrap_or(Err(DnsError::NoRecords { nxdomain: false }));
            Box::pin(async move { r })
        }
        fn addrs<'a>(&'a self, name: &'a str) -> BoxFut<'a, Result<Vec<IpAddr>, DnsError>> {
            assert!(name.ends_with('.'), "not fully qualified: {name}");
            let r = self
                .addrs
                .get(name)
                .cloned()
                .ok_or(DnsError::NoRecords { nxdomain: true });
            Box::pin(async move { r })
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::mock::MockDns;
    use super::*;

    fn mx(p: u16, e: &str) -> Mx {
        Mx {
            preference: p,
            exchange: e.into(),
        }
    }

    #[tokio::test]
    async fn mx_order_null_mx_implicit_mx() {
        let mut d = MockDns::default();
        d.mx.insert(
            "a.test.".into(),
            Ok(vec![
                mx(20, "c.a.test"),
                mx(10, "x.a.test"),
                mx(10, "y.a.test"),
            ]),
        );
        d.mx.insert("null.test.".into(), Ok(vec![mx(0, "")]));
        d.mx.insert(
            "mixed.test.".into(),
            Ok(vec![mx(0, ""), mx(5, "m.mixed.test")]),
        );
        d.mx.insert(
            "gone.test.".into(),
            Err(DnsError::NoRecords { nxdomain: true }),
        );
        d.mx.insert(
            "broken.test.".into(),
            Err(DnsError::Temporary("SERVFAIL".into())),
        );
        let mut seen_first = std::collections::HashSet::new();
        for _ in 0..64 {
            let Route::Hosts(h) = route(&d, "a.test", true).await else {
                panic!()
            };
            assert_eq!(h.len(), 3);
            assert_eq!(h[2], "c.a.test");
            seen_first.insert(h[0].clone());
        }
        // Both equal-preference hosts come first sometimes.
        assert_eq!(seen_first.len(), 2);
        assert!(
            matches!(route(&d, "null.test", true).await, Route::Refused(t) if t.contains("5.1.10"))
        );
        assert_eq!(
            route(&d, "mixed.test", true).await,
            Route::Hosts(vec!["m.mixed.test".into()])
        );
        assert_eq!(
            route(&d, "nomx.test", true).await,
            Route::Hosts(vec!["nomx.test".into()])
        );
        assert!(
            matches!(route(&d, "gone.test", true).await, Route::Refused(t) if t.starts_with("550 5.1.2"))
        );
        assert!(
            matches!(route(&d, "broken.test", true).await, Route::Later(t) if t.starts_with("4.4.3"))
        );
        assert_eq!(
            route(&d, "[192.0.2.1]", true).await,
            Route::Hosts(vec!["[192.0.2.1]".into()])
        );
        assert_eq!(
            route(&d, "relay.test", false).await,
            Route::Hosts(vec!["relay.test".into()])
        );
    }

    #[tokio::test]
    async fn addresses() {
        let mut d = MockDns::default();
        d.addrs.insert(
            "h.test.".into(),
            vec!["127.0.0.2".parse().unwrap(), "::1".parse().unwrap()],
        );
        assert_eq!(host_addrs(&d, "h.test").await.unwrap().len(), 2);
        assert!(
            host_addrs(&d, "none.test")
                .await
                .unwrap_err()
                .starts_with("4.4.4")
        );
        assert_eq!(
            host_addrs(&d, "[IPv6:::1]").await.unwrap(),
            vec!["::1".parse::<IpAddr>().unwrap()]
        );
        assert_eq!(fqdn("x.test"), "x.test.");
        assert_eq!(fqdn("x.test."), "x.test.");
    }
}
