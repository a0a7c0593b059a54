//! Commands about the session rather than a mailbox: CAPABILITY, NOOP,
//! LOGOUT, ID (RFC 2971), STARTTLS, AUTHENTICATE with SASL-IR (RFC 4959),
//! LOGIN, ENABLE (RFC 5161), IDLE (RFC 2177), NAMESPACE (RFC 2342), the
//! QUOTA commands (RFC 9208 §4), COMPRESS (RFC 4978) and CANCELUPDATE
//! (RFC 5267 §4.2).
//!
//! Needs the lexer; guarantees what it does (no panic, linear time).

use base64::Engine as _;

use super::lexer::{Parser, Res};
use crate::types::Command;

/// Parses the commands of this group; Ok(None) if `name` is not one.
pub(super) fn parse(p: &mut Parser<'_>, name: &[u8]) -> Res<Option<Command>> {
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    let cmd = if is("CAPABILITY") {
        Command::Capability
    } else if is("NOOP") {
        Command::Noop
    } else if is("LOGOUT") {
        Command::Logout
    } else if is("STARTTLS") {
        Command::StartTls
    } else if is("IDLE") {
        Command::Idle
    } else if is("NAMESPACE") {
        Command::Namespace
    } else if is("ID") {
        id(p)?
    } else if is("AUTHENTICATE") {
        authenticate(p)?
    } else if is("LOGIN") {
        p.arg("missing user name")?;
        let user = p.astring()?;
        p.arg("missing password")?;
        let password = p.astring()?;
        Command::Login { user, password }
    } else if is("CANCELUPDATE") {
        p.arg("missing search tag")?;
        let mut tags = vec![p.string()?];
        while !p.at_end() {
            p.sp()?;
            tags.push(p.string()?);
        }
        Command::CancelUpdate(tags)
    } else if is("ENABLE") {
        p.arg("missing capability")?;
        let mut caps = vec![p.atom()?];
        while !p.at_end() {
            p.sp()?;
            caps.push(p.atom()?);
        }
        Command::Enable(caps)
    } else if is("GETQUOTA") {
        p.arg("missing quota root")?;
        Command::GetQuota(p.astring()?)
    } else if is("GETQUOTAROOT") {
        p.arg("missing mailbox name")?;
        Command::GetQuotaRoot(p.mailbox()?)
    } else if is("SETQUOTA") {
        p.arg("missing quota root")?;
        let root = p.astring()?;
        p.arg("missing resource list")?;
        let limits = p.paren_list0(|p| {
            let name = p.atom()?;
            p.sp()?;
            Ok((name, p.number64()?))
        })?;
        Command::SetQuota { root, limits }
    } else if is("COMPRESS") {
        p.arg("missing compression mechanism")?;
        Command::Compress(p.atom()?)
    } else {
        return Ok(None);
    };
    Ok(Some(cmd))
}

/// `ID SP ( "(" [string SP nstring *(SP string SP nstring)] ")" / NIL )`.
fn id(p: &mut Parser<'_>) -> Res<Command> {
    p.arg("missing ID parameters")?;
    if p.peek() != Some(b'(') {
        return match p.nstring()? {
            None => Ok(Command::Id(None)),
            Some(_) => Err("expected a parameter list or NIL"),
        };
    }
    let pairs = p.paren_list0(|p| {
        let k = p.string()?;
        p.sp()?;
        Ok((k, p.nstring()?))
    })?;
    Ok(Command::Id(Some(pairs)))
}

/// `AUTHENTICATE SP mech [SP (base64 / "=")]`.
fn authenticate(p: &mut Parser<'_>) -> Res<Command> {
    p.arg("missing mechanism")?;
    let mechanism = p.atom()?;
    let mut initial = None;
    if !p.at_end() {
        p.arg("missing initial response")?;
        let b = p.take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'='));
        initial = Some(if b == b"=" {
            Vec::new()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(b)
                .map_err(|_| "invalid base64 in initial response")?
        });
    }
    Ok(Command::Authenticate { mechanism, initial })
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{parses, refused};
    use crate::types::Command;

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn table() {
        let auth = |m: &str, i: Option<&[u8]>| Command::Authenticate {
            mechanism: s(m),
            initial: i.map(<[u8]>::to_vec),
        };
        let cases = [
            // RFC 9051 §6.2.2, RFC 4959 §3.
            ("A001 AUTHENTICATE GSSAPI", auth("GSSAPI", None)),
            (
                "a AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=",
                auth("PLAIN", Some(b"test\0test\0test")),
            ),
            ("a authenticate plain =", auth("plain", Some(b""))),
            (
                "a AUTHENTICATE XOAUTH2 dXNlcj1h",
                auth("XOAUTH2", Some(b"user=a")),
            ),
            // RFC 9051 §6.2.3.
            (
                "a001 LOGIN SMITH SESAME",
                Command::Login {
                    user: s("SMITH"),
                    password: s("SESAME"),
                },
            ),
            // RFC 5161 §4.
            (
                "t2 ENABLE CONDSTORE X-GOOD-IDEA",
                Command::Enable(vec![s("CONDSTORE"), s("X-GOOD-IDEA")]),
            ),
            (
                "t ENABLE UTF8=ACCEPT",
                Command::Enable(vec![s("UTF8=ACCEPT")]),
            ),
            // RFC 2971 §3.
            (
                "a023 ID (\"name\" \"sodr\" \"version\" \"19.34\" \"vendor\" \"Pink Floyd Music Limited\")",
                Command::Id(Some(vec![
                    (s("name"), Some(s("sodr"))),
                    (s("version"), Some(s("19.34"))),
                    (s("vendor"), Some(s("Pink Floyd Music Limited"))),
                ])),
            ),
            ("a ID NIL", Command::Id(None)),
            ("a id nil", Command::Id(None)),
            ("a ID ()", Command::Id(Some(vec![]))),
            (
                "a ID (\"os\" NIL)",
                Command::Id(Some(vec![(s("os"), None)])),
            ),
            // RFC 9208 §4.
            (
                "G0001 GETQUOTA \"!partition/sda4\"",
                Command::GetQuota(s("!partition/sda4")),
            ),
            (
                "G0002 GETQUOTAROOT INBOX",
                Command::GetQuotaRoot(s("INBOX")),
            ),
            (
                "S0000 SETQUOTA \"\" (STORAGE 512)",
                Command::SetQuota {
                    root: s(""),
                    limits: vec![(s("STORAGE"), 512)],
                },
            ),
            (
                "S0001 SETQUOTA \"\" (STORAGE 512 MESSAGE 100)",
                Command::SetQuota {
                    root: s(""),
                    limits: vec![(s("STORAGE"), 512), (s("MESSAGE"), 100)],
                },
            ),
            (
                "S0002 SETQUOTA x ()",
                Command::SetQuota {
                    root: s("x"),
                    limits: vec![],
                },
            ),
            // RFC 4978 §3.
            ("a COMPRESS DEFLATE", Command::Compress(s("DEFLATE"))),
        ];
        parses(&cases);
    }

    #[test]
    fn errors() {
        refused(&[
            (&b"a AUTHENTICATE"[..], "missing mechanism"),
            (b"a AUTHENTICATE PLAIN ", "missing initial response"),
            (
                b"a AUTHENTICATE PLAIN dGVzdA",
                "invalid base64 in initial response",
            ),
            (
                b"a AUTHENTICATE PLAIN dGVzdA=!",
                "invalid base64 in initial response",
            ),
            (
                b"a AUTHENTICATE PLAIN dGVzdA==!",
                "unexpected characters at end of command",
            ),
            (
                b"a AUTHENTICATE PLAIN dGVzdA== y",
                "unexpected characters at end of command",
            ),
            (b"a ENABLE", "missing capability"),
            (b"a ENABLE ", "missing capability"),
            (b"a ENABLE a  b", "expected an atom"),
            (b"a ID", "missing ID parameters"),
            (b"a ID (\"a\")", "expected a space"),
            (b"a ID (\"a\" \"b\"", "expected ')'"),
            (b"a ID \"x\"", "expected a parameter list or NIL"),
            (b"a ID (a b)", "expected a string"),
            (b"a GETQUOTA", "missing quota root"),
            (b"a GETQUOTAROOT", "missing mailbox name"),
            (b"a SETQUOTA x (STORAGE)", "expected a space"),
            (b"a SETQUOTA x (STORAGE -1)", "expected a number"),
            (
                b"a SETQUOTA x (STORAGE 99999999999999999999)",
                "number too large",
            ),
            (b"a COMPRESS", "missing compression mechanism"),
            (b"a CAPABILITY x", "unexpected characters at end of command"),
        ]);
    }
}
