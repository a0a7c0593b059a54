//! facteur-mail: mail concepts shared by every daemon.
//!
//! Offers [`Address`], an RFC 5321 mailbox (`local-part@domain`) split into
//! its two halves, with the normalisation facteur uses everywhere a mailbox is
//! looked up: the domain is lower-cased, the local part is compared without
//! regard to ASCII case, and an optional recipient delimiter (`+` by default)
//! separates a detail (`user+tag@dom` reaches `user@dom`).
//!
//! Needs nothing but `std`. Pure code: no I/O.
//!
//! Standards: RFC 5321 §4.1.2 (Mailbox syntax), RFC 6531 (UTF-8 local parts and
//! domains are accepted as given). Security: the parser is strict about what a
//! lookup key may hold (no NUL, no control characters, no path separators in a
//! domain), because a domain and a local part become directory names in the
//! mail store.

pub mod dsn;
pub mod srs;

use std::fmt;

/// Longest mailbox we accept (RFC 5321 §4.5.3.1.3 allows a 256-octet path).
pub const MAX_ADDRESS_LEN: usize = 254;
/// RFC 5321 §4.5.3.1.1.
pub const MAX_LOCAL_LEN: usize = 64;
/// RFC 5321 §4.5.3.1.2.
pub const MAX_DOMAIN_LEN: usize = 255;

/// Why a string is not an address facteur will handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address is longer than {MAX_ADDRESS_LEN} octets")]
    TooLong,
    #[error("address has no '@domain'")]
    NoDomain,
    #[error("local part is empty or longer than {MAX_LOCAL_LEN} octets")]
    BadLocalPart,
    #[error("domain is not a valid domain name")]
    BadDomain,
    #[error("address contains a control character")]
    ControlCharacter,
}

/// A mailbox `local@domain`. The domain is stored lower-case; the local part as
/// given (use [`Address::key`] for lookups).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Address {
    local: String,
    domain: String,
}

impl Address {
    /// Parses `local@domain` (no angle brackets, no quoting: the SMTP codec has
    /// already removed them). The last `@` separates the domain, so a quoted
    /// local part holding `@` stays in the local part.
    pub fn parse(s: &str) -> Result<Address, AddressError> {
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.len() > MAX_ADDRESS_LEN {
            return Err(AddressError::TooLong);
        }
        if s.chars().any(|c| c.is_control()) {
            return Err(AddressError::ControlCharacter);
        }
        let (local, domain) = s.rsplit_once('@').ok_or(AddressError::NoDomain)?;
        if local.is_empty() || local.len() > MAX_LOCAL_LEN {
            return Err(AddressError::BadLocalPart);
        }
        let domain = normalize_domain(domain)?;
        Ok(Address {
            local: local.to_string(),
            domain,
        })
    }

    /// The local part, as given.
    pub fn local(&self) -> &str {
        &self.local
    }

    /// The domain, lower-case.
    pub fn domain(&self) -> &str {
        &self.domain
    }

    /// The lookup key: the whole address in lower case.
    pub fn key(&self) -> String {
        format!("{}@{}", self.local.to_lowercase(), self.domain)
    }

    /// Splits off a detail at the first occurrence of any character of
    /// `delimiters` (`"+"` by default; `"+-"` allows both). Returns the address
    /// without the detail, and the detail, or `None` when there is none (or
    /// the local part would become empty).
    pub fn split_detail(&self, delimiters: &str) -> (Address, Option<String>) {
        if delimiters.is_empty() {
            return (self.clone(), None);
        }
        match self.local.find(|c| delimiters.contains(c)) {
            Some(pos) if pos > 0 => (
                Address {
                    local: self.local[..pos].to_string(),
                    domain: self.domain.clone(),
                },
                Some(self.local[pos + 1..].to_string()),
            ),
            _ => (self.clone(), None),
        }
    }
}

/// An address as people write it on a command line or in an aliases
/// file: `<a@b>` or `a@b`, and a bare `name` completed with `domain`.
pub fn qualify(s: &str, domain: &str) -> Result<Address, AddressError> {
    let s = s.trim();
    let s = s
        .strip_prefix('<')
        .and_then(|s| s.strip_suffix('>'))
        .unwrap_or(s);
    if s.contains('@') {
        Address::parse(s)
    } else {
        Address::parse(&format!("{s}@{domain}"))
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

impl std::str::FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Address::parse(s)
    }
}

/// Checks and lower-cases a domain name. Accepts LDH labels and UTF-8 labels
/// (RFC 6531) and address literals `[...]`; refuses anything that could be a
/// path (`/`, `\`, a leading dot, `..`).
pub fn normalize_domain(domain: &str) -> Result<String, AddressError> {
    let d = domain.strip_suffix('.').unwrap_or(domain);
    if d.is_empty() || d.len() > MAX_DOMAIN_LEN {
        return Err(AddressError::BadDomain);
    }
    if d.starts_with('[') {
        // Address literal: kept verbatim; local delivery never matches one.
        if !d.ends_with(']') || d.contains('/') {
            return Err(AddressError::BadDomain);
        }
        return Ok(d.to_ascii_lowercase());
    }
    for label in d.split('.') {
        if label.is_empty() || label.len() > 63 || label.starts_with('-') || label.ends_with('-') {
            return Err(AddressError::BadDomain);
        }
        let ok = label.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || c == '-'
                || c == '_'
                || (!c.is_ascii() && !c.is_control() && !c.is_whitespace())
        });
        if !ok {
            return Err(AddressError::BadDomain);
        }
    }
    Ok(d.to_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_normalizes() {
        let a = Address::parse("John.Doe@Example.TEST").unwrap();
        assert_eq!(a.local(), "John.Doe");
        assert_eq!(a.domain(), "example.test");
        assert_eq!(a.key(), "john.doe@example.test");
        assert_eq!(a.to_string(), "John.Doe@example.test");
    }

    #[test]
    fn last_at_separates_domain() {
        let a = Address::parse("u@remote@local.test").unwrap();
        assert_eq!(a.local(), "u@remote");
        assert_eq!(a.domain(), "local.test");
    }

    #[test]
    fn refuses_bad_input() {
        for bad in [
            "",
            "nodomain",
            "@dom.test",
            "a@",
            "a@.test",
            "a@b..test",
            "a@-x.test",
            "a@x/y",
            "a\0@x.test",
            "a@x\\y",
        ] {
            assert!(Address::parse(bad).is_err(), "{bad:?} should be refused");
        }
        let long = format!("{}@x.test", "a".repeat(65));
        assert_eq!(Address::parse(&long), Err(AddressError::BadLocalPart));
    }

    #[test]
    fn utf8_is_accepted() {
        let a = Address::parse("józef@bücher.test").unwrap();
        assert_eq!(a.domain(), "bücher.test");
    }

    #[test]
    fn detail() {
        let a = Address::parse("user+tag+more@dom.test").unwrap();
        let (base, det) = a.split_detail("+");
        assert_eq!(base.to_string(), "user@dom.test");
        assert_eq!(det.as_deref(), Some("tag+more"));
        let (base, det) = a.split_detail("");
        assert_eq!(base, a);
        assert_eq!(det, None);
        let b = Address::parse("+only@dom.test").unwrap();
        assert_eq!(b.split_detail("+").1, None);
        let c = Address::parse("a-b@dom.test").unwrap();
        assert_eq!(c.split_detail("+-").0.local(), "a");
    }

    #[test]
    fn trailing_dot_and_literal() {
        assert_eq!(Address::parse("a@X.test.").unwrap().domain(), "x.test");
        assert_eq!(
            Address::parse("a@[127.0.0.1]").unwrap().domain(),
            "[127.0.0.1]"
        );
    }
}
