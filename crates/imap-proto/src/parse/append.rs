//! APPEND (RFC 9051 §6.3.12) with literal8 (RFC 3516) and LITERAL+ (RFC
//! 7888), the messages after the first of MULTIAPPEND (RFC 3502), and
//! messages put together from parts with CATENATE (RFC 4469).
//!
//! An APPEND spans lines: each literal ends one. A line is parsed into
//! [`AppendStep`]s; the session reads the literal that ends it, then the
//! next line ([`append_next`], told whether a CATENATE's parts are open).
//!
//! Needs the lexer; guarantees what it does (no panic, linear time).

use super::lexer::{Parser, Res};
use crate::types::{AppendNext, AppendStep, Command, Literal};

/// Most parts in one line of a CATENATE (a line is bounded anyway; this
/// bounds the steps a small line can ask for).
pub const MAX_CATENATE_PARTS: usize = 1000;

/// `APPEND mailbox 1*append-message`, where the input ends right after a
/// literal's announcement (`{n}`, `{n+}`, `~{n}`) or with the command.
pub(super) fn append(p: &mut Parser<'_>) -> Res<Command> {
    p.arg("missing mailbox name")?;
    let mailbox = p.mailbox()?;
    if p.at_end() {
        return Err("missing message literal");
    }
    let steps = steps(p, false)?;
    Ok(Command::Append { mailbox, steps })
}

/// The steps of a line, from the cursor to its end; `catenate`: the line
/// starts inside a CATENATE's parts. Empty when the line is empty outside
/// a CATENATE (the command's end).
fn steps(p: &mut Parser<'_>, mut catenate: bool) -> Res<Vec<AppendStep>> {
    let mut out = Vec::new();
    // the first part after `(` has no space before it
    let mut first_part = false;
    loop {
        if out.len() > MAX_CATENATE_PARTS {
            return Err("too many CATENATE parts");
        }
        if catenate {
            if p.eat(b')') {
                out.push(AppendStep::EndCatenate);
                catenate = false;
                continue;
            }
            if !first_part {
                p.arg("unterminated CATENATE")?;
            }
            first_part = false;
            let w = p.word();
            p.sp()?;
            if w.eq_ignore_ascii_case(b"URL") {
                out.push(AppendStep::Url(p.astring()?));
            } else if w.eq_ignore_ascii_case(b"TEXT") {
                if p.peek() != Some(b'{') {
                    return Err("expected a literal after TEXT");
                }
                let a = p.announce()?;
                out.push(AppendStep::Text(Literal {
                    len: a.len,
                    sync: a.sync,
                    binary: a.binary,
                }));
                if !p.at_end() {
                    return Err("unexpected characters after a TEXT literal");
                }
                return Ok(out);
            } else {
                return Err("expected URL or TEXT in CATENATE");
            }
            continue;
        }
        if p.at_end() {
            return Ok(out);
        }
        match message(p)? {
            Head::Literal(m) => {
                out.push(AppendStep::Message(m));
                return Ok(out);
            }
            Head::Catenate { flags, date } => {
                out.push(AppendStep::Catenate { flags, date });
                catenate = true;
                first_part = true;
            }
        }
    }
}

/// How one message of APPEND starts.
enum Head {
    Literal(AppendNext),
    Catenate {
        flags: Vec<String>,
        date: Option<i64>,
    },
}

/// `SP [flag-list SP] [date-time SP]` then a literal, up to the end of the
/// input, or `CATENATE SP (` (one message of APPEND).
fn message(p: &mut Parser<'_>) -> Res<Head> {
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
        let m = p.mark();
        if p.word().eq_ignore_ascii_case(b"CATENATE") && p.eat(b' ') && p.eat(b'(') {
            return Ok(Head::Catenate { flags, date });
        }
        p.reset(m);
        return Err("expected message literal");
    }
    let a = p.announce()?;
    if !p.at_end() {
        return Err("unexpected characters after APPEND literal");
    }
    Ok(Head::Literal(AppendNext {
        flags,
        date,
        literal: Literal {
            len: a.len,
            sync: a.sync,
            binary: a.binary,
        },
    }))
}

/// The line read after a literal of APPEND (`rest`, its line end
/// included): the command's end (no steps), the next message (MULTIAPPEND,
/// RFC 3502), or, when `catenate` (the literal was a CATENATE's TEXT
/// part), more parts and the `)` that ends them.
pub fn append_next(rest: &[u8], catenate: bool) -> Result<Vec<AppendStep>, &'static str> {
    let line = rest
        .strip_suffix(b"\r\n")
        .or_else(|| rest.strip_suffix(b"\n"))
        .unwrap_or(rest);
    if line.is_empty() && catenate {
        return Err("unterminated CATENATE");
    }
    steps(&mut Parser::new(line), catenate)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::ok_bytes;
    use crate::types::*;

    fn s(x: &str) -> String {
        x.to_owned()
    }

    fn lit(len: u64, sync: bool, binary: bool) -> Literal {
        Literal { len, sync, binary }
    }

    /// A CATENATE without flags or date.
    fn cat() -> AppendStep {
        AppendStep::Catenate {
            flags: vec![],
            date: None,
        }
    }

    fn msg(flags: &[&str], date: Option<i64>, literal: Literal) -> AppendStep {
        AppendStep::Message(AppendNext {
            flags: flags.iter().map(|x| s(x)).collect(),
            date,
            literal,
        })
    }

    #[test]
    fn multiappend_continuations() {
        use super::append_next;
        assert_eq!(append_next(b"\r\n", false), Ok(vec![]));
        assert_eq!(append_next(b"\n", false), Ok(vec![]));
        assert_eq!(
            append_next(b" (\\Seen) \" 3-Nov-2026 10:00:00 +0100\" {310}\r\n", false),
            Ok(vec![msg(
                &["\\Seen"],
                Some(1_793_696_400),
                lit(310, true, false)
            )])
        );
        assert_eq!(
            append_next(b" ~{5+}\r\n", false),
            Ok(vec![msg(&[], None, lit(5, false, true))])
        );
        for bad in [
            &b" \r\n"[..],
            b"x\r\n",
            b" (\\Seen)\r\n",
            b" {3} x\r\n",
            b" \"bad\" {3}\r\n",
            b" CATENATE\r\n",
            b" CATENATE (URL\r\n",
        ] {
            assert!(append_next(bad, false).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn catenate() {
        use super::append_next;
        // the first line, up to the first TEXT literal
        assert_eq!(
            ok_bytes(
                b"a APPEND Drafts (\\Seen) CATENATE (URL \"/INBOX/;uid=5/;section=1\" TEXT {42}"
            ),
            Command::Append {
                mailbox: s("Drafts"),
                steps: vec![
                    AppendStep::Catenate {
                        flags: vec![s("\\Seen")],
                        date: None
                    },
                    AppendStep::Url(s("/INBOX/;uid=5/;section=1")),
                    AppendStep::Text(lit(42, true, false)),
                ],
            }
        );
        // a whole CATENATE of URLs on one line, then a second message
        // (MULTIAPPEND) given as a literal
        assert_eq!(
            ok_bytes(b"a APPEND x catenate (url \"/a/;uid=1\" url \"/a/;uid=2\") {5+}"),
            Command::Append {
                mailbox: s("x"),
                steps: vec![
                    cat(),
                    AppendStep::Url(s("/a/;uid=1")),
                    AppendStep::Url(s("/a/;uid=2")),
                    AppendStep::EndCatenate,
                    msg(&[], None, lit(5, false, false)),
                ],
            }
        );
        assert_eq!(
            ok_bytes(b"a APPEND x CATENATE (URL \"/a/;uid=1\")"),
            Command::Append {
                mailbox: s("x"),
                steps: vec![
                    cat(),
                    AppendStep::Url(s("/a/;uid=1")),
                    AppendStep::EndCatenate,
                ],
            }
        );
        // after a TEXT literal: more parts, the end of the list, the end of
        // the command or another message
        assert_eq!(
            append_next(b" URL \"/a/;uid=1\" TEXT {3+}\r\n", true),
            Ok(vec![
                AppendStep::Url(s("/a/;uid=1")),
                AppendStep::Text(lit(3, false, false))
            ])
        );
        assert_eq!(
            append_next(b")\r\n", true),
            Ok(vec![AppendStep::EndCatenate])
        );
        assert_eq!(
            append_next(b") CATENATE (TEXT {1}\r\n", true),
            Ok(vec![
                AppendStep::EndCatenate,
                cat(),
                AppendStep::Text(lit(1, true, false))
            ])
        );
        for (bad, open) in [
            (&b"\r\n"[..], true),
            (b" URL \"/a\"\r\n", true),
            (b"URL \"/a\")\r\n", true),
            (b" TEXT \"abc\")\r\n", true),
            (b" TEXT {3} URL \"/a\")\r\n", true),
            (b" FOO \"/a\")\r\n", true),
            (b") x\r\n", true),
            (b" CATENATE (URL \"/a\"\r\n", false),
        ] {
            assert!(append_next(bad, open).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn append() {
        let app =
            |m: &str, flags: &[&str], date: Option<i64>, len: u64, sync: bool, binary: bool| {
                Command::Append {
                    mailbox: s(m),
                    steps: vec![msg(flags, date, lit(len, sync, binary))],
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
