//! APPEND (RFC 9051 §6.3.12) with literal8 (RFC 3516) and LITERAL+ (RFC
//! 7888), and the messages after the first of MULTIAPPEND (RFC 3502).
//!
//! Needs the lexer; guarantees what it does (no panic, linear time).

use super::lexer::{Parser, Res};
use crate::types::{AppendNext, Command, Literal};

/// `APPEND mailbox [SP flag-list] [SP date-time] SP literal`, where the
/// input ends right after the literal's announcement (`{n}`, `{n+}`,
/// `~{n}`).
pub(super) fn append(p: &mut Parser<'_>) -> Res<Command> {
    p.arg("missing mailbox name")?;
    let mailbox = p.mailbox()?;
    let m = message(p)?;
    Ok(Command::Append {
        mailbox,
        flags: m.flags,
        date: m.date,
        literal: m.literal,
    })
}

/// `SP [flag-list SP] [date-time SP] literal`, up to the end of the input
/// (one message of APPEND).
fn message(p: &mut Parser<'_>) -> Res<AppendNext> {
    p.arg("missing message literal")?;
    let mut flags = Vec::new();
    if p.peek() == Some(b'(') {
        flags = p.flag_list()?;
        p.arg("missing message literal")?;
    }
    let mut date = None;
    if p.peek() == Some(b'"') {
        date = Some(p.date_time()?);
        p.arg("missing message literal")?;
    }
    if !matches!(p.peek(), Some(b'{' | b'~')) {
        return Err("expected message literal");
    }
    let a = p.announce()?;
    if !p.at_end() {
        return Err("unexpected characters after APPEND literal");
    }
    Ok(AppendNext {
        flags,
        date,
        literal: Literal {
            len: a.len,
            sync: a.sync,
            binary: a.binary,
        },
    })
}

/// What follows a message literal of APPEND: the end of the command, or
/// (MULTIAPPEND, RFC 3502) ` [flags] [date-time] literal` announcing the
/// next message. `rest` is the line read after the literal's octets, its
/// line end included.
pub fn append_next(rest: &[u8]) -> Result<Option<AppendNext>, &'static str> {
    let line = rest
        .strip_suffix(b"\r\n")
        .or_else(|| rest.strip_suffix(b"\n"))
        .unwrap_or(rest);
    if line.is_empty() {
        return Ok(None);
    }
    message(&mut Parser::new(line)).map(Some)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::ok_bytes;
    use crate::types::*;

    fn s(x: &str) -> String {
        x.to_owned()
    }

    #[test]
    fn multiappend_continuations() {
        use super::append_next;
        assert_eq!(append_next(b"\r\n"), Ok(None));
        assert_eq!(append_next(b"\n"), Ok(None));
        assert_eq!(
            append_next(b" (\\Seen) \" 3-Nov-2026 10:00:00 +0100\" {310}\r\n"),
            Ok(Some(AppendNext {
                flags: vec![s("\\Seen")],
                date: Some(1_793_696_400),
                literal: Literal {
                    len: 310,
                    sync: true,
                    binary: false
                },
            }))
        );
        assert_eq!(
            append_next(b" ~{5+}\r\n").map(|n| n.map(|n| n.literal)),
            Ok(Some(Literal {
                len: 5,
                sync: false,
                binary: true
            }))
        );
        for bad in [
            &b" \r\n"[..],
            b"x\r\n",
            b" (\\Seen)\r\n",
            b" {3} x\r\n",
            b" \"bad\" {3}\r\n",
        ] {
            assert!(append_next(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn append() {
        let app =
            |m: &str, flags: &[&str], date: Option<i64>, len: u64, sync: bool, binary: bool| {
                Command::Append {
                    mailbox: s(m),
                    flags: flags.iter().map(|x| s(x)).collect(),
                    date,
                    literal: Literal { len, sync, binary },
                }
            };
        let cases: &[(&[u8], Command)] = &[
            (
                b"A003 APPEND saved-messages (\\Seen) {326}",
                app("saved-messages", &["\\Seen"], None, 326, true, false),
            ),
            (
                b"a APPEND INBOX (\\Seen) \"23-Nov-2026 10:00:00 +0100\" {1234}",
                app("INBOX", &["\\Seen"], Some(1_795_424_400), 1234, true, false),
            ),
            (
                b"a APPEND INBOX \" 1-Jan-1970 00:00:00 +0000\" {1+}",
                app("INBOX", &[], Some(0), 1, false, false),
            ),
            (
                b"a APPEND INBOX \"01-Jan-1970 00:00:00 -0130\" ~{1}",
                app("INBOX", &[], Some(5400), 1, true, true),
            ),
            (
                b"a APPEND INBOX \"1-Jan-1970 00:00:00 +0000\" ~{0+}",
                app("INBOX", &[], Some(0), 0, false, true),
            ),
            (
                b"a APPEND INBOX () {5}",
                app("INBOX", &[], None, 5, true, false),
            ),
            (
                b"a APPEND {5}\r\nDraft (\\Draft $MDNSent) {5}",
                app("Draft", &["\\Draft", "$MDNSent"], None, 5, true, false),
            ),
            (
                b"a APPEND x \"29-Feb-2024 23:59:60 +0000\" {1}",
                app("x", &[], Some(1_709_251_200), 1, true, false),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(&ok_bytes(input), want, "{}", String::from_utf8_lossy(input));
        }
    }
}
