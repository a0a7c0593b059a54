//! PLAIN (RFC 4616) and LOGIN (draft-murchison-sasl-login-00).
//!
//! PLAIN: one client message, `[authzid] NUL authcid NUL passwd`, each part
//! UTF-8, authcid and passwd not empty (RFC 4616 §2). LOGIN: the server
//! prompts `Username:` then `Password:`; an initial response, when the
//! client sends one, is the user name.

use crate::{Failure, authorize};

/// PLAIN's message → (user, password).
pub(crate) fn parse_plain(raw: &[u8]) -> Result<(String, String), Failure> {
    const WHAT: Failure = Failure::Malformed("PLAIN");
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authz), Some(user), Some(pass), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(WHAT);
    };
    fn text(b: &[u8]) -> Result<&str, Failure> {
        std::str::from_utf8(b).map_err(|_| WHAT)
    }
    let (authz, user, pass) = (text(authz)?, text(user)?, text(pass)?);
    if user.is_empty() || pass.is_empty() {
        return Err(WHAT);
    }
    authorize(Some(authz), user)?;
    Ok((user.to_owned(), pass.to_owned()))
}

/// A LOGIN response: a user name or a password, UTF-8, not empty, with
/// no NUL (the draft's strings are plain text).
pub(crate) fn parse_login_field(raw: &[u8]) -> Result<String, Failure> {
    match std::str::from_utf8(raw) {
        Ok(s) if !s.is_empty() && !s.contains('\0') => Ok(s.to_owned()),
        _ => Err(Failure::Malformed("LOGIN")),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn plain_table() {
        let ok = |u: &str, p: &str| Ok((u.to_owned(), p.to_owned()));
        let bad = Err(Failure::Malformed("PLAIN"));
        type Creds = Result<(String, String), Failure>;
        let cases: &[(&[u8], Creds)] = &[
            (
                b"\0alice@example.test\0secret",
                ok("alice@example.test", "secret"),
            ),
            (b"alice@x\0alice@x\0pw", ok("alice@x", "pw")),
            (b"ALICE@x\0alice@x\0pw", ok("alice@x", "pw")),
            (b"\0a\0pass with spaces", ok("a", "pass with spaces")),
            (b"\0\xc3\xa9@x\0\xc3\xa9", ok("\u{e9}@x", "\u{e9}")),
            (b"bob@x\0alice@x\0pw", Err(Failure::AuthzidMismatch)),
            (b"\0\0pw", bad.clone()),
            (b"\0a\0", bad.clone()),
            (b"\0a\0b\0c", bad.clone()),
            (b"\0a", bad.clone()),
            (b"", bad.clone()),
            (b"\0a\0\xff", bad.clone()),
            (b"\xff\0a\0b", bad.clone()),
        ];
        for (raw, want) in cases {
            assert_eq!(&parse_plain(raw), want, "{raw:?}");
        }
    }

    #[test]
    fn login_fields() {
        assert_eq!(parse_login_field(b"alice@x"), Ok("alice@x".into()));
        for bad in [&b""[..], b"a\0b", b"\xff"] {
            assert_eq!(
                parse_login_field(bad),
                Err(Failure::Malformed("LOGIN")),
                "{bad:?}"
            );
        }
    }
}
