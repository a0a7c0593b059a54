//! AUTH (RFC 5034) and the SASL PLAIN mechanism (RFC 4616).
//!
//! `AUTH mechanism [initial-response]`: the mechanism is a SASL name (at most
//! 20 characters by RFC 4422, we allow 40), upper-cased here; the initial
//! response is base64, `=` standing for an empty one (RFC 5034 §4). `AUTH`
//! alone asks for the list of mechanisms (RFC 1734 clients do this).
//!
//! The client's answers to challenges are whole lines: base64, or `*` to
//! cancel ([`decode_sasl_response`]). [`parse_plain`] splits the PLAIN
//! message `authzid NUL authcid NUL passwd`.
//!
//! Security: an authorization identity different from the authentication
//! identity is refused (no proxy logins); the password is never logged.

use super::{Command, MAX_ARG, ParseError};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

pub(super) fn auth(rest: &[u8]) -> Result<Command, ParseError> {
    let words: Vec<&[u8]> = rest
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let word = |w: &[u8], max: usize| -> Result<String, ParseError> {
        if w.len() > max {
            return Err(ParseError::ArgumentTooLong("AUTH"));
        }
        if !w.iter().all(u8::is_ascii_graphic) {
            return Err(ParseError::InvalidArgument("AUTH"));
        }
        // Checked: ASCII graphic bytes are UTF-8.
        Ok(String::from_utf8_lossy(w).into_owned())
    };
    match words.as_slice() {
        [] => Ok(Command::Auth {
            mechanism: None,
            initial: None,
        }),
        [m] => Ok(Command::Auth {
            mechanism: Some(word(m, MAX_ARG)?.to_ascii_uppercase()),
            initial: None,
        }),
        [m, ir] => Ok(Command::Auth {
            mechanism: Some(word(m, MAX_ARG)?.to_ascii_uppercase()),
            initial: Some(word(ir, usize::MAX)?),
        }),
        _ => Err(ParseError::TooManyArguments("AUTH")),
    }
}

/// A client's SASL response line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslResponse {
    /// `*`: the client gives up (RFC 5034 §4).
    Cancel,
    /// The decoded bytes (empty for `=` or an empty line).
    Data(Vec<u8>),
}

/// Decodes a response line, or an initial response (where `=` means empty).
/// `None` if it is not base64.
pub fn decode_sasl_response(text: &str) -> Option<SaslResponse> {
    let t = text.trim();
    match t {
        "*" => Some(SaslResponse::Cancel),
        "" | "=" => Some(SaslResponse::Data(Vec::new())),
        _ => STANDARD.decode(t.as_bytes()).ok().map(SaslResponse::Data),
    }
}

/// PLAIN: `authzid NUL authcid NUL passwd` -> (user, password). The
/// authorization identity, when given, must equal the authentication
/// identity (case-insensitively).
pub fn parse_plain(raw: &[u8]) -> Option<(String, String)> {
    let mut parts = raw.split(|&b| b == 0);
    let authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next().is_some() || user.is_empty() || pass.is_empty() {
        return None;
    }
    if !authz.is_empty() && !authz.eq_ignore_ascii_case(user.as_bytes()) {
        return None;
    }
    Some((user.to_owned(), pass.to_owned()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn sasl_responses() {
        let cases: &[(&str, Option<SaslResponse>)] = &[
            ("*", Some(SaslResponse::Cancel)),
            (" * ", Some(SaslResponse::Cancel)),
            ("=", Some(SaslResponse::Data(vec![]))),
            ("", Some(SaslResponse::Data(vec![]))),
            ("AGEAYg==", Some(SaslResponse::Data(b"\0a\0b".to_vec()))),
            ("not base64!", None),
            ("AGEAYg", None),
        ];
        for (t, want) in cases {
            assert_eq!(&decode_sasl_response(t), want, "{t:?}");
        }
    }

    #[test]
    fn plain_table() {
        type Creds = Option<(String, String)>;
        let ok = |u: &str, p: &str| Some((u.to_owned(), p.to_owned()));
        let cases: &[(&[u8], Creds)] = &[
            (
                b"\0alice@example.test\0secret",
                ok("alice@example.test", "secret"),
            ),
            (b"alice@x\0alice@x\0pw", ok("alice@x", "pw")),
            (b"ALICE@x\0alice@x\0pw", ok("alice@x", "pw")),
            (b"\0a\0pass with spaces", ok("a", "pass with spaces")),
            (b"bob@x\0alice@x\0pw", None),
            (b"\0\0pw", None),
            (b"\0a\0", None),
            (b"\0a\0b\0c", None),
            (b"\0a", None),
            (b"", None),
            (b"\0a\0\xff", None),
        ];
        for (raw, want) in cases {
            assert_eq!(&parse_plain(raw), want, "{raw:?}");
        }
    }
}
