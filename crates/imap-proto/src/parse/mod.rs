//! The IMAP command parser: one complete command (lines joined by CRLF,
//! literal data inline) to a [`Tagged`], or a [`ParseError`] carrying the
//! tag (when there is one) and a short message for `tag BAD message`.
//!
//! Layout, one file per command group:
//!
//! ```text
//!   lexer.rs     primitives of RFC 9051 §9: atoms, numbers, strings,
//!                literals, flags, sequence sets, dates
//!   session.rs   any state and not authenticated: CAPABILITY, NOOP, LOGOUT,
//!                ID, STARTTLS, AUTHENTICATE, LOGIN, ENABLE, IDLE,
//!                NAMESPACE, quota commands, COMPRESS
//!   mailbox.rs   SELECT/EXAMINE (CONDSTORE, QRESYNC), CREATE, DELETE,
//!                RENAME, (UN)SUBSCRIBE, LIST (extended), LSUB, STATUS, APPEND
//!   fetch.rs     FETCH (sections, partials, BINARY, modifiers), STORE,
//!                COPY, MOVE, UID EXPUNGE
//!   append.rs    APPEND (MULTIAPPEND's next messages, CATENATE's parts)
//!   url.rs       IMAP URLs of a message or part (CATENATE's URL parts)
//!   search.rs    SEARCH (ESEARCH RETURN, CHARSET, every search key), SORT
//!                (ESORT RETURN), THREAD
//!   notify.rs    NOTIFY
//!   metadata.rs  GETMETADATA, SETMETADATA
//! ```
//!
//! Needs: nothing but the bytes. Guarantees: never panics; recursion only
//! in SEARCH keys, bounded by [`MAX_SEARCH_DEPTH`]; time linear in the
//! input; memory proportional to it. Commands and keywords are matched
//! ignoring ASCII case; strings come out unquoted and valid UTF-8.
//!
//! APPEND is special (see [`crate::types::Literal`]): its input ends right
//! after the message literal's announcement, without CRLF or data.
//!
//! Standards: RFC 9051 and RFC 3501 (§6 commands, §9 syntax), RFC 2177
//! IDLE, RFC 2342 NAMESPACE, RFC 4315 UIDPLUS, RFC 6851 MOVE, RFC 3691
//! UNSELECT, RFC 7888 LITERAL+/-, RFC 5161 ENABLE, RFC 2971 ID, RFC 4959
//! SASL-IR, RFC 6154 SPECIAL-USE, RFC 5258 LIST-EXTENDED, RFC 5819
//! LIST-STATUS, RFC 4731 ESEARCH, RFC 5182 SEARCHRES, RFC 7162
//! CONDSTORE/QRESYNC, RFC 9208 QUOTA, RFC 8438 STATUS=SIZE, RFC 7889
//! APPENDLIMIT, RFC 3516 BINARY, RFC 4978 COMPRESS, RFC 5267 CONTEXT=SEARCH,
//! RFC 9394 PARTIAL, RFC 5465 NOTIFY, RFC 5464 METADATA.
//!
//! Security: the input comes from unauthenticated peers; every error is a
//! value for the peer.

mod append;
pub use append::append_next;
mod fetch;
pub(crate) mod lexer;
mod mailbox;
mod metadata;
mod notify;
mod search;
mod session;
mod url;
mod urlauth;
pub use url::parse_imap_url;

use crate::types::{Command, Tagged};
use lexer::{Parser, Res, astring_char};

/// Deepest nesting of SEARCH keys (parentheses, NOT, OR) accepted.
pub const MAX_SEARCH_DEPTH: usize = 64;

/// Why a command could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ParseError {
    /// The command's tag, when the input starts with a valid one (the
    /// session answers `tag BAD message`, else `* BAD message`).
    pub tag: Option<String>,
    /// Short, human, safe to send to the peer.
    pub message: String,
}

/// Parses one complete command; see the module documentation.
pub fn parse_command(input: &[u8]) -> Result<Tagged, ParseError> {
    let mut p = Parser::new(input);
    let tag = tag(&mut p).map_err(|m| ParseError {
        tag: None,
        message: m.to_owned(),
    })?;
    match command(&mut p) {
        Ok(command) => Ok(Tagged { tag, command }),
        Err(m) => Err(ParseError {
            tag: Some(tag),
            message: m.to_owned(),
        }),
    }
}

/// `tag SP`: one or more ASTRING-CHARs except `+`.
fn tag(p: &mut Parser<'_>) -> Res<String> {
    if p.at_end() {
        return Err("empty command");
    }
    let t = p.take_while(|b| astring_char(b) && b != b'+');
    if t.is_empty() || !(p.at_end() || p.peek() == Some(b' ')) {
        return Err("invalid tag");
    }
    // ASTRING-CHARs are ASCII.
    Ok(t.iter().map(|&b| char::from(b)).collect())
}

/// The command after its tag.
fn command(p: &mut Parser<'_>) -> Res<Command> {
    if p.at_end() {
        return Err("missing command");
    }
    p.sp()?;
    let name = p.word();
    if name.is_empty() {
        return Err("missing command");
    }
    let is = |s: &str| name.eq_ignore_ascii_case(s.as_bytes());
    let cmd = if is("UID") {
        p.arg("missing UID command")?;
        let sub = p.word();
        let is = |s: &str| sub.eq_ignore_ascii_case(s.as_bytes());
        if is("FETCH") {
            fetch::fetch(p, true)?
        } else if is("STORE") {
            fetch::store(p, true)?
        } else if is("COPY") {
            fetch::copy(p, true, false)?
        } else if is("MOVE") {
            fetch::copy(p, true, true)?
        } else if is("SEARCH") {
            search::search(p, true)?
        } else if is("SORT") {
            search::sort(p, true)?
        } else if is("THREAD") {
            search::thread(p, true)?
        } else if is("EXPUNGE") {
            fetch::uid_expunge(p)?
        } else {
            return Err("unknown UID command");
        }
    } else if let Some(c) = session::parse(p, name)? {
        c
    } else if let Some(c) = mailbox::parse(p, name)? {
        c
    } else if let Some(c) = urlauth::parse(p, name)? {
        c
    } else if is("FETCH") {
        fetch::fetch(p, false)?
    } else if is("STORE") {
        fetch::store(p, false)?
    } else if is("COPY") {
        fetch::copy(p, false, false)?
    } else if is("MOVE") {
        fetch::copy(p, false, true)?
    } else if is("SEARCH") {
        search::search(p, false)?
    } else if is("SORT") {
        search::sort(p, false)?
    } else if is("THREAD") {
        search::thread(p, false)?
    } else if is("GETMETADATA") {
        metadata::get(p)?
    } else if is("SETMETADATA") {
        metadata::set(p)?
    } else if is("NOTIFY") {
        notify::notify(p)?
    } else if is("CHECK") {
        Command::Check
    } else if is("CLOSE") {
        Command::Close
    } else if is("UNSELECT") {
        Command::Unselect
    } else if is("EXPUNGE") {
        Command::Expunge
    } else {
        return Err("unknown command");
    };
    // APPEND checks its own end (the announcement must end the input).
    p.end()?;
    Ok(cmd)
}

/// Helpers for the tests of every parser file.
#[cfg(test)]
pub(crate) mod testutil {
    use super::*;

    /// The command parsed from `input`; panics (test failure) otherwise.
    pub fn ok(input: &str) -> Command {
        ok_bytes(input.as_bytes())
    }

    pub fn ok_bytes(input: &[u8]) -> Command {
        match parse_command(input) {
            Ok(t) => t.command,
            Err(e) => panic!("{:?}: {e:?}", String::from_utf8_lossy(input)),
        }
    }

    /// Each input parses to its command.
    pub fn parses(cases: &[(&str, Command)]) {
        for (input, want) in cases {
            assert_eq!(&ok(input), want, "{input}");
        }
    }

    /// Each input, tagged `a`, is refused with its message and its tag.
    pub fn refused(cases: &[(&[u8], &str)]) {
        for (input, msg) in cases {
            let e = err(input);
            assert_eq!(
                (e.tag.as_deref(), e.message.as_str()),
                (Some("a"), *msg),
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    /// The error for `input`; panics if it parses.
    pub fn err(input: &[u8]) -> ParseError {
        match parse_command(input) {
            Ok(t) => panic!("{:?} parsed: {t:?}", String::from_utf8_lossy(input)),
            Err(e) => e,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;
    use crate::types::*;

    #[test]
    fn simple_commands() {
        let cases = [
            ("a CAPABILITY", Command::Capability),
            ("a noop", Command::Noop),
            ("a LogOut", Command::Logout),
            ("a STARTTLS", Command::StartTls),
            ("a IDLE", Command::Idle),
            ("a NAMESPACE", Command::Namespace),
            ("a CHECK", Command::Check),
            ("a CLOSE", Command::Close),
            ("a UNSELECT", Command::Unselect),
            (
                "a CANCELUPDATE \"A1\" {2+}\r\nB2",
                Command::CancelUpdate(vec!["A1".into(), "B2".into()]),
            ),
            ("a EXPUNGE", Command::Expunge),
        ];
        for (input, want) in cases {
            assert_eq!(ok(input), want, "{input}");
            // Trailing garbage is refused, with the tag.
            let e = err(format!("{input} x").as_bytes());
            assert_eq!(e.tag.as_deref(), Some("a"), "{input}");
        }
    }

    #[test]
    fn tags() {
        let t = parse_command(b"A0001.x] NOOP").ok();
        assert_eq!(t.map(|t| t.tag).as_deref(), Some("A0001.x]"));
        for (input, tag, msg) in [
            (&b""[..], None, "empty command"),
            (b" NOOP", None, "invalid tag"),
            (b"+ NOOP", None, "invalid tag"),
            (b"a+ NOOP", None, "invalid tag"),
            (b"a\"b NOOP", None, "invalid tag"),
            (b"a(b NOOP", None, "invalid tag"),
            (b"*", None, "invalid tag"),
            (b"\xff NOOP", None, "invalid tag"),
            (b"abc", Some("abc"), "missing command"),
            (b"abc ", Some("abc"), "missing command"),
            (b"abc  NOOP", Some("abc"), "missing command"),
            (b"abc FROB", Some("abc"), "unknown command"),
            (b"abc NOOPX", Some("abc"), "unknown command"),
            (b"abc UID FROB 1", Some("abc"), "unknown UID command"),
            (b"abc UID", Some("abc"), "missing UID command"),
            (b"abc UID NOOP", Some("abc"), "unknown UID command"),
            (
                b"abc NOOP\r\n",
                Some("abc"),
                "unexpected characters at end of command",
            ),
            (
                b"abc NOOP ",
                Some("abc"),
                "unexpected characters at end of command",
            ),
        ] {
            let e = err(input);
            assert_eq!(
                (e.tag.as_deref(), e.message.as_str()),
                (tag, msg),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn strings_and_literals() {
        let login = |u: &str, p: &str| Command::Login {
            user: u.into(),
            password: p.into(),
        };
        let cases: &[(&[u8], Command)] = &[
            (b"a LOGIN SMITH SESAME", login("SMITH", "SESAME")),
            (
                b"a LOGIN \"fred smith\" \"a\\\"b\\\\c\"",
                login("fred smith", "a\"b\\c"),
            ),
            (b"a LOGIN {4}\r\nfred {3}\r\nx y", login("fred", "x y")),
            (b"a LOGIN {4+}\r\nfred {0+}\r\n", login("fred", "")),
            (b"a LOGIN \"\" \"\"", login("", "")),
            (
                b"a LOGIN \"j\xc3\xa9r\xc3\xb4me\" p]w",
                login("jérôme", "p]w"),
            ),
            (
                b"a LOGIN {6}\r\nj\xc3\xa9r\xc3\xb4 {2}\r\n\r\n",
                login("jérô", "\r\n"),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(
                &ok_bytes(input),
                want,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        refused(&[
            (&b"a LOGIN \"a\0b\" x"[..], "NUL in quoted string"),
            (b"a LOGIN \"a\rb\" x", "CR in quoted string"),
            (b"a LOGIN \"a\nb\" x", "LF in quoted string"),
            (b"a LOGIN \"a\\nb\" x", "invalid escape in quoted string"),
            (b"a LOGIN \"ab x", "unterminated quoted string"),
            (b"a LOGIN \"ab\\", "unterminated quoted string"),
            (b"a LOGIN \"\xff\" x", "invalid UTF-8"),
            (b"a LOGIN {1}\r\n\xff x", "invalid UTF-8"),
            (b"a LOGIN {1}\r\n\0 x", "NUL in literal"),
            (b"a LOGIN {5}\r\nab", "literal data missing"),
            (b"a LOGIN {5}", "literal data missing"),
            (b"a LOGIN {5}x", "expected CRLF after literal"),
            (
                b"a LOGIN {18446744073709551615}\r\nab",
                "literal data missing",
            ),
            (b"a LOGIN {18446744073709551616}\r\nab", "literal too large"),
            (b"a LOGIN {5x}\r\nabcde x", "malformed literal"),
            (b"a LOGIN ~{1}\r\na x", "literal8 not allowed here"),
            (b"a LOGIN", "missing user name"),
            (b"a LOGIN x", "missing password"),
            (b"a LOGIN x ", "missing password"),
            (b"a LOGIN \xc3\xa9 x", "expected a string"),
            (b"a LOGIN x y z", "unexpected characters at end of command"),
        ]);
    }

    /// Valid commands of every kind, used for the truncation test.
    const VALID: &[&[u8]] = &[
        b"a1 LOGIN {4}\r\nfred \"pass word\"",
        b"a2 SELECT INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500 15000,22500)))",
        b"a3 FETCH 1:* (FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From To)]<0.100> BINARY[1]) (CHANGEDSINCE 5)",
        b"a4 UID SEARCH RETURN (MIN MAX) CHARSET UTF-8 OR (FROM x TO {2}\r\nab) NOT SINCE \"01-Feb-2024\"",
        b"a5 LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"a\" \"b%\") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))",
        b"a6 APPEND INBOX (\\Seen) \" 3-Nov-2026 10:00:00 +0100\" {1234}",
        b"a7 STORE 7,5,9 (UNCHANGEDSINCE 320162338) +FLAGS.SILENT (\\Deleted $Junk)",
        b"a8 ID (\"name\" \"x\" \"version\" NIL)",
        b"a9 AUTHENTICATE PLAIN dGVzdAB0ZXN0AHRlc3Q=",
        b"a10 CREATE \"Sent Items\" (USE (\\Sent))",
        b"a11 STATUS blurdybloop (UIDNEXT MESSAGES HIGHESTMODSEQ SIZE)",
        b"a12 UID MOVE $ Trash",
        b"a14 UID COPY 1:3,5,9:* {5}\r\nTrash",
        b"a13 SEARCH MODSEQ \"/flags/\\\\draft\" all 620162338 HEADER X-A b",
        b"a15 UID SORT RETURN (MIN COUNT) (REVERSE DATE SUBJECT DISPLAYFROM) UTF-8 UNSEEN",
        b"a16 THREAD REFERENCES \"US-ASCII\" SINCE 1-Feb-2024 FROM x",
    ];

    #[test]
    fn truncations_never_panic() {
        for input in VALID {
            assert!(
                parse_command(input).is_ok(),
                "{:?}",
                String::from_utf8_lossy(input)
            );
            for i in 0..input.len() {
                // Must not panic; a prefix may or may not parse.
                let _ = parse_command(&input[..i]);
                // Nor must a byte flipped anywhere.
                let mut v = input.to_vec();
                v[i] ^= 0x20;
                let _ = parse_command(&v);
                v[i] = 0;
                let _ = parse_command(&v);
            }
        }
    }

    #[test]
    fn errors_keep_the_tag() {
        for input in VALID {
            let tag_len = input.iter().position(|&b| b == b' ').unwrap_or(0);
            for i in tag_len + 1..input.len() {
                if let Err(e) = parse_command(&input[..i]) {
                    assert_eq!(e.tag.as_deref().map(str::as_bytes), Some(&input[..tag_len]));
                    assert!(!e.message.is_empty());
                }
            }
        }
    }

    #[test]
    fn big_inputs_are_linear() {
        // A long sequence set and a long quoted string parse quickly.
        let mut s = b"a FETCH ".to_vec();
        for i in 1..100_000u32 {
            s.extend_from_slice(format!("{i},").as_bytes());
        }
        s.extend_from_slice(b"1 FLAGS");
        assert!(parse_command(&s).is_ok());
        let mut s = b"a SEARCH SUBJECT \"".to_vec();
        s.resize(s.len() + 1_000_000, b'x');
        s.push(b'"');
        assert!(parse_command(&s).is_ok());
        // Deep nesting is refused, not a stack overflow.
        for open in ["(", "NOT ", "OR ALL "] {
            let mut s = b"a SEARCH ".to_vec();
            for _ in 0..100_000 {
                s.extend_from_slice(open.as_bytes());
            }
            assert_eq!(err(&s).message, "search key nesting too deep", "{open}");
        }
    }
}
