//! Address parts (RFC 5228 §2.7.4, RFC 5233 subaddress).

use crate::ir::AddrPart;

/// The separator between user and detail (RFC 5233 leaves it to the
/// site; `+` is everyone's).
pub const DETAIL_SEPARATOR: char = '+';

/// Split an address at its last `@`: (local part, domain). An address
/// without `@` is all local part (RFC 5228 §2.7.4 leaves it to us; the
/// envelope's postmaster-style `<postmaster>` is such a one).
pub fn split(addr: &str) -> (&str, Option<&str>) {
    match addr.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (addr, None),
    }
}

/// The part of `addr` a test compares, or None when the address has no
/// such part (no detail without a separator: RFC 5233 §4 says the test
/// then fails for that address).
pub fn part(addr: &str, part: AddrPart) -> Option<String> {
    let (local, domain) = split(addr);
    match part {
        AddrPart::All => Some(addr.to_string()),
        AddrPart::LocalPart => Some(local.to_string()),
        AddrPart::Domain => Some(domain.unwrap_or_default().to_string()),
        AddrPart::User => Some(
            local
                .split_once(DETAIL_SEPARATOR)
                .map_or(local, |(u, _)| u)
                .to_string(),
        ),
        AddrPart::Detail => local
            .split_once(DETAIL_SEPARATOR)
            .map(|(_, d)| d.to_string()),
    }
}

/// One address written as a `From:`-style value (`Name <a@b>` or `a@b`):
/// the address, when there is exactly one with a local part and a domain.
pub fn parse_one(value: &str) -> Option<String> {
    let mut v = value.as_bytes().to_vec();
    v.extend_from_slice(b"\r\n");
    let list = facteur_imap_message::fields::addresses(&v);
    match list.as_slice() {
        [a] if a.contains('@') && !a.starts_with('@') && !a.ends_with('@') => Some(a.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        assert_eq!(
            part("ken+sieve@example.org", AddrPart::User).as_deref(),
            Some("ken")
        );
        assert_eq!(
            part("ken+sieve@example.org", AddrPart::Detail).as_deref(),
            Some("sieve")
        );
        assert_eq!(
            part("ken+@example.org", AddrPart::Detail).as_deref(),
            Some("")
        );
        assert_eq!(part("ken@example.org", AddrPart::Detail), None);
        assert_eq!(
            part("ken@example.org", AddrPart::Domain).as_deref(),
            Some("example.org")
        );
        assert_eq!(part("a@b@c", AddrPart::LocalPart).as_deref(), Some("a@b"));
        assert_eq!(part("", AddrPart::Domain).as_deref(), Some(""));
        assert_eq!(
            parse_one("Joe <joe@example.com>").as_deref(),
            Some("joe@example.com")
        );
        assert_eq!(
            parse_one("joe@example.com").as_deref(),
            Some("joe@example.com")
        );
        assert_eq!(parse_one("not an address"), None);
        assert_eq!(parse_one("a@b, c@d"), None);
    }
}
