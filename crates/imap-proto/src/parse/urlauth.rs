//! URLAUTH commands (RFC 4467): GENURLAUTH, URLFETCH with the items of
//! URLAUTH=BINARY (RFC 5524), RESETKEY. The URLs themselves are parsed by
//! `url.rs` when the server uses them.
//!
//! Needs the lexer; guarantees what it does (no panic, linear time).

use super::lexer::{Parser, Res};
use crate::types::{Command, UrlFetchItem};

/// Parses the commands of this group; Ok(None) if `name` is not one.
pub(super) fn parse(p: &mut Parser<'_>, name: &[u8]) -> Res<Option<Command>> {
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    let cmd = if is("GENURLAUTH") {
        // 1*(SP url-rump SP mechanism)
        let mut v = Vec::new();
        while !p.at_end() {
            p.arg("missing URL")?;
            let url = p.astring()?;
            p.arg("missing URLAUTH mechanism")?;
            v.push((url, p.atom()?));
        }
        if v.is_empty() {
            return Err("missing URL");
        }
        Command::GenUrlAuth(v)
    } else if is("URLFETCH") {
        let mut v = Vec::new();
        while !p.at_end() {
            p.arg("missing URL")?;
            v.push(url_fetch_item(p)?);
        }
        if v.is_empty() {
            return Err("missing URL");
        }
        Command::UrlFetch(v)
    } else if is("RESETKEY") {
        let mut mailbox = None;
        let mut mechanisms = Vec::new();
        if !p.at_end() {
            p.arg("missing mailbox name")?;
            mailbox = Some(p.mailbox()?);
            while !p.at_end() {
                p.arg("missing URLAUTH mechanism")?;
                mechanisms.push(p.atom()?);
            }
        }
        Command::ResetKey {
            mailbox,
            mechanisms,
        }
    } else {
        return Ok(None);
    };
    Ok(Some(cmd))
}

/// One URLFETCH argument: `url`, or `(url *(SP item))` with the items of
/// RFC 5524 (BODY, BINARY, BODYPARTSTRUCTURE; BODY and BINARY exclude
/// each other).
fn url_fetch_item(p: &mut Parser<'_>) -> Res<UrlFetchItem> {
    let extended = p.eat(b'(');
    let mut item = UrlFetchItem {
        url: p.astring()?,
        extended,
        body: false,
        binary: false,
        bodypartstructure: false,
    };
    while extended && !p.eat(b')') {
        p.sp().map_err(|_| "expected ')'")?;
        let w = p.word();
        let is = |s: &str| w.eq_ignore_ascii_case(s.as_bytes());
        if is("BODY") {
            item.body = true;
        } else if is("BINARY") {
            item.binary = true;
        } else if is("BODYPARTSTRUCTURE") {
            item.bodypartstructure = true;
        } else {
            return Err("unknown URLFETCH item");
        }
    }
    if item.body && item.binary {
        return Err("URLFETCH asks for BODY or BINARY, not both");
    }
    Ok(item)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{parses, refused};
    use crate::types::*;

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn urlauth_commands() {
        let item = |url: &str, extended, body, binary, bodypartstructure| UrlFetchItem {
            url: url.into(),
            extended,
            body,
            binary,
            bodypartstructure,
        };
        parses(&[
            // RFC 4467 §7 (its examples)
            (
                "a GENURLAUTH \"imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred\" INTERNAL",
                Command::GenUrlAuth(vec![(
                    s("imap://joe@example.com/INBOX/;uid=20/;section=1.2;urlauth=submit+fred"),
                    s("INTERNAL"),
                )]),
            ),
            (
                "b GENURLAUTH imap://a@h/x/;uid=1;urlauth=anonymous internal imap://a@h/y/;uid=2;urlauth=authuser INTERNAL",
                Command::GenUrlAuth(vec![
                    (s("imap://a@h/x/;uid=1;urlauth=anonymous"), s("internal")),
                    (s("imap://a@h/y/;uid=2;urlauth=authuser"), s("INTERNAL")),
                ]),
            ),
            (
                "c URLFETCH \"imap://a@h/x/;uid=1;urlauth=anonymous:internal:00\" u2",
                Command::UrlFetch(vec![
                    item(
                        "imap://a@h/x/;uid=1;urlauth=anonymous:internal:00",
                        false,
                        false,
                        false,
                        false,
                    ),
                    item("u2", false, false, false, false),
                ]),
            ),
            // RFC 5524
            (
                "d URLFETCH (u1 BINARY bodypartstructure) (u2) (u3 BODY)",
                Command::UrlFetch(vec![
                    item("u1", true, false, true, true),
                    item("u2", true, false, false, false),
                    item("u3", true, true, false, false),
                ]),
            ),
            (
                "e RESETKEY",
                Command::ResetKey {
                    mailbox: None,
                    mechanisms: vec![],
                },
            ),
            (
                "f RESETKEY INBOX INTERNAL",
                Command::ResetKey {
                    mailbox: Some(s("INBOX")),
                    mechanisms: vec![s("INTERNAL")],
                },
            ),
        ]);
    }

    #[test]
    fn errors() {
        refused(&[
            (b"a GENURLAUTH", "missing URL"),
            (
                b"a GENURLAUTH imap://u@h/INBOX/;uid=1;urlauth=anonymous",
                "missing URLAUTH mechanism",
            ),
            (b"a URLFETCH", "missing URL"),
            (b"a URLFETCH (x FOO)", "unknown URLFETCH item"),
            (
                b"a URLFETCH (x BODY BINARY)",
                "URLFETCH asks for BODY or BINARY, not both",
            ),
            (b"a URLFETCH (x BODY", "expected ')'"),
            (b"a RESETKEY INBOX ", "missing URLAUTH mechanism"),
        ]);
    }
}
