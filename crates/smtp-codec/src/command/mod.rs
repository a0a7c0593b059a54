//! One command line to a [`Command`] (RFC 5321 §4.1, RFC 2033, RFC 3030,
//! RFC 3207, RFC 4954), or the reply RFC 5321 §4.2 and RFC 3463 prescribe
//! for its error.
//!
//! Our own grammar, not smtp-proto's: smtp-proto 0.2.5 wraps large numbers
//! (see [`params`]) and refuses parameters it does not know (XQUEUEID), and
//! a server must decide both itself. Layout: [`path`] reads the paths of
//! MAIL and RCPT, [`params`] their ESMTP parameters and the numbers.
//!
//! Guarantees: total over any bytes (the fuzz target calls it with random
//! input); a command is parsed from one complete framed line; a number
//! that does not fit a `u64` is an error, never a smaller number; no
//! control character survives into a host name, an address or a
//! parameter value.

pub mod params;
pub mod path;

use crate::reply::Reply;
pub use params::{MailParams, ParamError, RcptParams, parse_number};

/// MAIL FROM: the reverse-path (`""` for `<>`) and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailFrom {
    pub address: String,
    pub params: MailParams,
}

/// RCPT TO: the forward-path and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTo {
    pub address: String,
    pub params: RcptParams,
}

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Ehlo(String),
    Helo(String),
    Lhlo(String),
    Mail(MailFrom),
    Rcpt(RcptTo),
    Data,
    Bdat {
        size: u64,
        last: bool,
    },
    Rset,
    Noop,
    Vrfy(String),
    Help,
    Quit,
    StartTls,
    /// AUTH mechanism [initial-response] (RFC 4954 §4); the mechanism is
    /// upper-cased, the response kept as sent (base64, or `=` for empty).
    Auth {
        mechanism: String,
        initial: Option<String>,
    },
    /// A command RFC 5321 or an extension defines that we do not offer
    /// (EXPN, TURN, ETRN, ...): `502`.
    NotImplemented(String),
}

impl Command {
    /// The verb, upper case, for logs.
    pub fn verb(&self) -> &str {
        match self {
            Command::Ehlo(_) => "EHLO",
            Command::Helo(_) => "HELO",
            Command::Lhlo(_) => "LHLO",
            Command::Mail(_) => "MAIL",
            Command::Rcpt(_) => "RCPT",
            Command::Data => "DATA",
            Command::Bdat { .. } => "BDAT",
            Command::Rset => "RSET",
            Command::Noop => "NOOP",
            Command::Vrfy(_) => "VRFY",
            Command::Help => "HELP",
            Command::Quit => "QUIT",
            Command::StartTls => "STARTTLS",
            Command::Auth { .. } => "AUTH",
            Command::NotImplemented(v) => v,
        }
    }
}

fn syntax(what: &str) -> Reply {
    Reply::new(501, (5, 5, 4), format!("Syntax: {what}"))
}

/// Parses one complete line (with or without its terminator). On error,
/// returns the reply to send.
pub fn parse_command(line: &[u8]) -> Result<Command, Reply> {
    let line = line
        .strip_suffix(b"\n")
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .unwrap_or(line);
    if line.contains(&0) {
        return Err(Reply::new(500, (5, 5, 2), "NUL byte in command"));
    }
    let Ok(line) = std::str::from_utf8(line) else {
        return Err(Reply::new(500, (5, 5, 2), "Command is not UTF-8"));
    };
    let (verb, args) = match line.split_once(' ') {
        Some((v, a)) => (v, a),
        None => (line, ""),
    };
    let verb = verb.to_ascii_uppercase();
    let no_args = |c: Command| {
        if args.trim().is_empty() {
            Ok(c)
        } else {
            Err(syntax(&format!("{verb} takes no argument")))
        }
    };
    match verb.as_str() {
        "EHLO" => hello(args).map(Command::Ehlo),
        "HELO" => hello(args).map(Command::Helo),
        "LHLO" => hello(args).map(Command::Lhlo),
        "MAIL" => mail(args),
        "RCPT" => rcpt(args),
        "DATA" => no_args(Command::Data),
        "BDAT" => bdat(args),
        "RSET" => no_args(Command::Rset),
        "NOOP" => Ok(Command::Noop),
        "QUIT" => no_args(Command::Quit),
        "STARTTLS" => no_args(Command::StartTls),
        "HELP" => Ok(Command::Help),
        "VRFY" => Ok(Command::Vrfy(args.trim().to_string())),
        "AUTH" => auth(args),
        "EXPN" | "TURN" | "ETRN" | "ATRN" | "BURL" | "SEND" | "SOML" | "SAML" | "XCLIENT"
        | "XFORWARD" => Ok(Command::NotImplemented(verb)),
        _ => Err(Reply::new(500, (5, 5, 2), "Command unrecognized")),
    }
}

/// The argument of EHLO/HELO/LHLO: a domain or an address literal; we
/// check only that it is one printable word (RFC 5321 §4.1.4 forbids
/// refusing a client for a wrong name, and many send odd ones).
fn hello(args: &str) -> Result<String, Reply> {
    let host = args.trim_matches(' ');
    if host.is_empty() {
        return Err(syntax("EHLO/HELO/LHLO needs a host name"));
    }
    if host.len() > 255 || host.chars().any(|c| c.is_control() || c == ' ') {
        return Err(Reply::new(501, (5, 5, 4), "Invalid host name"));
    }
    Ok(host.to_string())
}

/// `FROM:` / `TO:`, case-insensitive, then the rest.
fn keyword<'a>(args: &'a str, kw: &str) -> Option<&'a str> {
    let head = args.get(..kw.len())?;
    head.eq_ignore_ascii_case(kw).then(|| &args[kw.len()..])
}

fn param_error(e: ParamError) -> Reply {
    match e {
        ParamError::Unsupported(k) => {
            Reply::new(555, (5, 5, 4), format!("Unsupported parameter {k}"))
        }
        ParamError::Invalid(k) => Reply::new(501, (5, 5, 4), format!("Invalid parameter {k}")),
    }
}

fn mail(args: &str) -> Result<Command, Reply> {
    let rest = keyword(args, "FROM:").ok_or_else(|| syntax("MAIL FROM:<address>"))?;
    let (address, rest) = path::parse_path(rest)
        .map_err(|_| Reply::new(501, (5, 1, 7), "Bad sender address syntax"))?;
    let params = params::mail_params(rest).map_err(param_error)?;
    Ok(Command::Mail(MailFrom { address, params }))
}

fn rcpt(args: &str) -> Result<Command, Reply> {
    let rest = keyword(args, "TO:").ok_or_else(|| syntax("RCPT TO:<address>"))?;
    let (address, rest) = path::parse_path(rest)
        .map_err(|_| Reply::new(501, (5, 1, 3), "Bad recipient address syntax"))?;
    if address.is_empty() {
        return Err(Reply::new(501, (5, 1, 3), "Empty recipient address"));
    }
    let params = params::rcpt_params(rest).map_err(param_error)?;
    Ok(Command::Rcpt(RcptTo { address, params }))
}

fn bdat(args: &str) -> Result<Command, Reply> {
    // Exactly `size [SP LAST]` (RFC 3030 §4): a chunk's size is read as
    // written or not at all, so that no front end reads another one
    // (found by fuzz/fuzz_targets/smtp_codec.rs: `BDAT  5`).
    let mut words = args.split(' ');
    let size = words.next().ok_or_else(|| syntax("BDAT size [LAST]"))?;
    // A chunk size that does not fit is refused; the caller must then end
    // the connection, since it cannot know where the chunk ends.
    let size = parse_number(size).ok_or_else(|| {
        Reply::new(
            552,
            (5, 3, 4),
            "Chunk size is not a number we can take; closing",
        )
    })?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(syntax("BDAT size [LAST]")),
    };
    if words.next().is_some() {
        return Err(syntax("BDAT size [LAST]"));
    }
    Ok(Command::Bdat { size, last })
}

fn auth(args: &str) -> Result<Command, Reply> {
    let mut words = args.split(' ').filter(|w| !w.is_empty());
    let mechanism = words
        .next()
        .filter(|m| {
            m.len() <= 20
                && m.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .ok_or_else(|| syntax("AUTH mechanism [initial-response]"))?
        .to_ascii_uppercase();
    let initial = words.next().map(str::to_string);
    if words.next().is_some() {
        return Err(syntax("AUTH mechanism [initial-response]"));
    }
    Ok(Command::Auth { mechanism, initial })
}

/// Whether an unparseable BDAT line leaves the stream without a known
/// frame: the caller then closes the connection after the reply. Any BDAT
/// we refuse to read (a size that does not fit, two spaces, a word after
/// LAST) may be followed by a chunk, whose bytes must never be read as
/// commands.
pub fn is_unframed_bdat(line: &[u8]) -> bool {
    line.get(..5)
        .is_some_and(|v| v.eq_ignore_ascii_case(b"BDAT "))
        && parse_command(line).is_err()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use facteur_mail::dsn::BodyType;

    fn ok(line: &str) -> Command {
        parse_command(line.as_bytes()).unwrap_or_else(|r| panic!("{line:?} -> {r}"))
    }

    fn err(line: &str) -> u16 {
        match parse_command(line.as_bytes()) {
            Ok(c) => panic!("{line:?} parsed as {c:?}"),
            Err(r) => r.code,
        }
    }

    #[test]
    fn hello_names_with_control_characters_are_refused() {
        // RFC 5321 §4.1.1.1: a domain or an address literal; a control
        // character would end up in Received: and the logs (issue 14).
        for line in [
            "EHLO a\tb\r\n",
            "HELO a\x01b\r\n",
            "LHLO client\x7f.test\r\n",
            "EHLO a\x1bb\r\n",
            "EHLO a\rb\r\n",
        ] {
            assert_eq!(err(line), 501, "{line:?}");
        }
        assert_eq!(
            ok("EHLO client.test\r\n"),
            Command::Ehlo("client.test".into())
        );
    }

    #[test]
    fn transcript_of_commands() {
        assert_eq!(
            ok("LHLO client.test\r\n"),
            Command::Lhlo("client.test".into())
        );
        assert_eq!(
            ok("lhlo client.test\n"),
            Command::Lhlo("client.test".into())
        );
        assert_eq!(
            ok("EHLO [127.0.0.1]\r\n"),
            Command::Ehlo("[127.0.0.1]".into())
        );
        match ok("MAIL FROM:<a@b.test> BODY=8BITMIME SMTPUTF8 SIZE=1000\r\n") {
            Command::Mail(m) => {
                assert_eq!(m.address, "a@b.test");
                assert_eq!(m.params.size, Some(1000));
                assert_eq!(m.params.body, Some(BodyType::EightBitMime));
                assert!(m.params.smtputf8);
            }
            other => panic!("{other:?}"),
        }
        match ok("mail from: <>\r\n") {
            Command::Mail(m) => assert_eq!(m.address, ""),
            other => panic!("{other:?}"),
        }
        match ok("RCPT TO:<user@example.test> NOTIFY=FAILURE ORCPT=rfc822;user@example.test\r\n") {
            Command::Rcpt(r) => {
                assert_eq!(r.address, "user@example.test");
                assert!(r.params.notify.failure);
                assert_eq!(r.params.orcpt.as_deref(), Some("user@example.test"));
            }
            other => panic!("{other:?}"),
        }
        match ok("RCPT TO:<józef@bücher.test>\r\n") {
            Command::Rcpt(r) => assert_eq!(r.address, "józef@bücher.test"),
            other => panic!("{other:?}"),
        }
        assert_eq!(ok("DATA\r\n"), Command::Data);
        assert_eq!(
            ok("BDAT 100 LAST\r\n"),
            Command::Bdat {
                size: 100,
                last: true
            }
        );
        assert_eq!(
            ok("bdat 5\r\n"),
            Command::Bdat {
                size: 5,
                last: false
            }
        );
        assert_eq!(ok("RSET\r\n"), Command::Rset);
        assert_eq!(ok("QUIT\r\n"), Command::Quit);
        assert_eq!(ok("NOOP anything\r\n"), Command::Noop);
        assert_eq!(ok("STARTTLS\r\n"), Command::StartTls);
        assert_eq!(
            ok("AUTH plain AGEAYg==\r\n"),
            Command::Auth {
                mechanism: "PLAIN".into(),
                initial: Some("AGEAYg==".into())
            }
        );
        assert_eq!(ok("EXPN staff\r\n"), Command::NotImplemented("EXPN".into()));
    }

    #[test]
    fn errors_map_to_replies() {
        assert_eq!(err("FOO bar\r\n"), 500);
        assert_eq!(err("MAIL FROM:<@>\r\n"), 501);
        assert_eq!(err("MAIL TO:<a@b>\r\n"), 501);
        assert_eq!(err("RCPT TO:<>\r\n"), 501);
        assert_eq!(err("MAIL FROM:<a@b.test> FOO=BAR\r\n"), 555);
        assert_eq!(err("NO\0OP\r\n"), 500);
        assert_eq!(err("EHLO\r\n"), 501);
        assert_eq!(err("EHLO a\u{1b}[31mb\r\n"), 501);
        assert_eq!(err("DATA now\r\n"), 501);
        assert_eq!(err("BDAT 5 LAST x\r\n"), 501);
        assert_eq!(err("BDAT x\r\n"), 552);
        assert_eq!(err("\u{ff}\r\n"), 500);
        assert_eq!(
            err("MAIL FROM:<a@b.test> SIZE=99999999999999999999999\r\n"),
            501
        );
        // No terminator at all: still a total function.
        assert_eq!(ok("QUIT"), Command::Quit);
    }

    #[test]
    fn bdat_sizes_never_wrap() {
        // The smtp-proto 0.2.5 bug: this read as a 999-byte chunk.
        assert_eq!(err("BDAT 99999999999999999999999 LAST\r\n"), 552);
        assert!(is_unframed_bdat(b"BDAT 99999999999999999999999 LAST\r\n"));
        assert!(!is_unframed_bdat(b"BDAT 10 LAST\r\n"));
        // Exactly one space between the words (RFC 3030 §4); a BDAT that
        // is not read ends the connection, whatever is wrong with it.
        for bad in [
            "BDAT  5\r\n",
            "BDAT 5  LAST\r\n",
            "BDAT 5 LAST \r\n",
            "BDAT 5 FOO\r\n",
            "BDAT \r\n",
        ] {
            assert!(parse_command(bad.as_bytes()).is_err(), "{bad:?}");
            assert!(is_unframed_bdat(bad.as_bytes()), "{bad:?}");
        }
        assert_eq!(
            ok("BDAT 18446744073709551615\r\n"),
            Command::Bdat {
                size: u64::MAX,
                last: false
            }
        );
    }

    #[test]
    fn garbage_never_panics() {
        let samples: &[&[u8]] = &[
            b"\xff\xfe\r\n",
            b"MAIL FROM:<\xff@x>\r\n",
            b"RCPT TO:<a@b> NOTIFY=\r\n",
            b"BDAT 99999999999999999999999\r\n",
            b"MAIL FROM:",
            b"MAIL FROM:<\"\\",
            b"AUTH",
            b"\r\n",
            b"\n",
            b"",
        ];
        for s in samples {
            let _ = parse_command(s);
        }
    }
}
