//! Client addresses as the login limits see them: an address in its
//! canonical form ([`canonical`]: an IPv4-mapped IPv6 address is the IPv4
//! address), its network ([`Net`]: the /24 of an IPv4 address, the /64 of
//! an IPv6 one), and the client a queue is kept for ([`Source`]: an IPv4
//! address, or an IPv6 /64 — a host is given a whole /64, so within it
//! addresses cost an attacker nothing).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `ip` with an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`, how a
/// dual-stack listener sees IPv4 clients) turned into the IPv4 address.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The network of an address: its /24 (IPv4) or /64 (IPv6).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Net {
    /// The first three octets.
    V4([u8; 3]),
    /// The first 64 bits.
    V6(u64),
}

impl Net {
    /// The network of `ip` (canonical form first).
    pub fn of(ip: IpAddr) -> Net {
        match canonical(ip) {
            IpAddr::V4(a) => {
                let [x, y, z, _] = a.octets();
                Net::V4([x, y, z])
            }
            IpAddr::V6(a) => Net::V6((u128::from(a) >> 64) as u64),
        }
    }
}

impl fmt::Display for Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Net::V4([x, y, z]) => write!(f, "{}/24", Ipv4Addr::new(x, y, z, 0)),
            Net::V6(high) => write!(f, "{}/64", Ipv6Addr::from(u128::from(high) << 64)),
        }
    }
}

/// The client a queue of work is kept for: an IPv4 address, or the /64 of
/// an IPv6 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Source {
    V4(Ipv4Addr),
    V6(Net),
}

impl Source {
    /// The source of `ip` (canonical form first).
    pub fn of(ip: IpAddr) -> Source {
        match canonical(ip) {
            IpAddr::V4(a) => Source::V4(a),
            v6 => Source::V6(Net::of(v6)),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_and_sources() {
        assert_eq!(canonical(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(canonical(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(Net::of(ip("192.0.2.7")), Net::of(ip("::ffff:192.0.2.200")));
        assert_ne!(Net::of(ip("192.0.2.7")), Net::of(ip("192.0.3.7")));
        assert_eq!(Net::of(ip("192.0.2.7")).to_string(), "192.0.2.0/24");
        let a = ip("2001:db8:1:2:aaaa::1");
        let b = ip("2001:db8:1:2:bbbb::9");
        assert_eq!(Net::of(a), Net::of(b));
        assert_ne!(Net::of(a), Net::of(ip("2001:db8:1:3::1")));
        assert_eq!(Net::of(a).to_string(), "2001:db8:1:2::/64");
        // IPv4 clients are queued per address, IPv6 ones per /64.
        assert_ne!(Source::of(ip("192.0.2.7")), Source::of(ip("192.0.2.8")));
        assert_eq!(
            Source::of(ip("192.0.2.7")),
            Source::of(ip("::ffff:192.0.2.7"))
        );
        assert_eq!(Source::of(a), Source::of(b));
    }
}
