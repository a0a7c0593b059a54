//! SASL for AUTH (RFC 4954): the PLAIN (RFC 4616) and LOGIN mechanisms,
//! decoded here (pure functions), verified against the directory.
//!
//! Security: a failed attempt costs the client a pause before the reply, and
//! counts as an error of the session; unknown users take as long as known
//! ones (the directory verifies against a dummy hash).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Decodes a base64 SASL response; `None` if it is not base64.
pub fn decode(b64: &str) -> Option<Vec<u8>> {
    STANDARD.decode(b64.trim().as_bytes()).ok()
}

pub fn encode(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// PLAIN: `authzid NUL authcid NUL password`. The authorization identity,
/// when given, must be the authentication identity (no proxy logins).
pub fn parse_plain(raw: &[u8]) -> Option<(String, String)> {
    let mut parts = raw.split(|&b| b == 0);
    let authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next().is_some() || user.is_empty() {
        return None;
    }
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(user.as_bytes()) {
        return None;
    }
    Some((user.to_string(), pass.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain() {
        let r = decode(&encode(b"\0alice@example.test\0secret")).unwrap();
        assert_eq!(
            parse_plain(&r),
            Some(("alice@example.test".into(), "secret".into()))
        );
        assert_eq!(
            parse_plain(b"alice@x\0alice@x\0pw"),
            Some(("alice@x".into(), "pw".into()))
        );
        assert_eq!(parse_plain(b"bob@x\0alice@x\0pw"), None);
        assert_eq!(parse_plain(b"\0\0pw"), None);
        assert_eq!(parse_plain(b"\0a\0b\0c"), None);
        assert_eq!(parse_plain(b"\0a"), None);
        assert_eq!(parse_plain(b"\0a\0\xff"), None);
        assert!(decode("not base64!").is_none());
    }
}
