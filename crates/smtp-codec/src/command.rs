//! One command line to a [`Command`].
//!
//! The grammar is smtp-proto's (`Request::parse`), a parser written for SMTP
//! and LMTP by a mail project and kept up; we add what a server needs around
//! it: a command is always parsed from one complete framed line, and each
//! parse error maps to the reply RFC 5321 §4.2 and RFC 3463 prescribe.

use crate::reply::Reply;
use smtp_proto::{Error as ProtoError, Request};

/// A parsed command, with owned strings.
pub type Command = Request<String>;

/// Parses one complete line (including its `\n`). On error, returns the reply
/// to send.
pub fn parse_command(line: &[u8]) -> Result<Command, Reply> {
    // smtp-proto reads up to the LF; a line from LineFramer always has one,
    // but keep the function total for any input (the fuzz target calls it
    // with arbitrary bytes).
    let owned;
    let line = if line.last() == Some(&b'\n') {
        line
    } else {
        owned = [line, b"\r\n"].concat();
        &owned
    };
    if line.contains(&0) {
        return Err(Reply::new(500, (5, 5, 2), "NUL byte in command"));
    }
    let mut it = line.iter();
    match Request::parse(&mut it) {
        Ok(Request::Rcpt { to }) if to.address.is_empty() => {
            Err(Reply::new(501, (5, 1, 3), "Empty recipient address"))
        }
        Ok(req) => Ok(req.into_owned()),
        Err(e) => Err(error_reply(e)),
    }
}

fn error_reply(e: ProtoError) -> Reply {
    match e {
        ProtoError::UnknownCommand => Reply::new(500, (5, 5, 2), "Command unrecognized"),
        ProtoError::InvalidSenderAddress => Reply::new(501, (5, 1, 7), "Bad sender address syntax"),
        ProtoError::InvalidRecipientAddress => {
            Reply::new(501, (5, 1, 3), "Bad recipient address syntax")
        }
        ProtoError::SyntaxError { syntax } => {
            Reply::new(501, (5, 5, 4), format!("Syntax: {syntax}"))
        }
        ProtoError::InvalidParameter { param } => {
            Reply::new(501, (5, 5, 4), format!("Invalid parameter {param}"))
        }
        ProtoError::UnsupportedParameter { param } => {
            Reply::new(555, (5, 5, 4), format!("Unsupported parameter {param}"))
        }
        ProtoError::ResponseTooLong => Reply::new(500, (5, 5, 2), "Line too long"),
        _ => Reply::new(500, (5, 5, 2), "Syntax error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use smtp_proto::{MAIL_BODY_8BITMIME, MAIL_SMTPUTF8, RCPT_NOTIFY_FAILURE};

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
    fn transcript_of_commands() {
        assert_eq!(
            ok("LHLO client.test\r\n"),
            Request::Lhlo {
                host: "client.test".into()
            }
        );
        assert_eq!(
            ok("lhlo client.test\n"),
            Request::Lhlo {
                host: "client.test".into()
            }
        );
        match ok("MAIL FROM:<a@b.test> BODY=8BITMIME SMTPUTF8 SIZE=1000\r\n") {
            Request::Mail { from } => {
                assert_eq!(from.address, "a@b.test");
                assert_eq!(from.size, 1000);
                assert!(from.flags & MAIL_BODY_8BITMIME != 0);
                assert!(from.flags & MAIL_SMTPUTF8 != 0);
            }
            other => panic!("{other:?}"),
        }
        match ok("MAIL FROM:<>\r\n") {
            Request::Mail { from } => assert_eq!(from.address, ""),
            other => panic!("{other:?}"),
        }
        match ok("RCPT TO:<user@example.test> NOTIFY=FAILURE ORCPT=rfc822;user@example.test\r\n") {
            Request::Rcpt { to } => {
                assert_eq!(to.address, "user@example.test");
                assert!(to.flags & RCPT_NOTIFY_FAILURE != 0);
                assert_eq!(to.orcpt.as_deref(), Some("user@example.test"));
            }
            other => panic!("{other:?}"),
        }
        match ok("RCPT TO:<józef@bücher.test>\r\n") {
            Request::Rcpt { to } => assert_eq!(to.address, "józef@bücher.test"),
            other => panic!("{other:?}"),
        }
        assert_eq!(ok("DATA\r\n"), Request::Data);
        assert_eq!(
            ok("BDAT 100 LAST\r\n"),
            Request::Bdat {
                chunk_size: 100,
                is_last: true
            }
        );
        assert_eq!(
            ok("BDAT 5\r\n"),
            Request::Bdat {
                chunk_size: 5,
                is_last: false
            }
        );
        assert_eq!(ok("RSET\r\n"), Request::Rset);
        assert_eq!(ok("QUIT\r\n"), Request::Quit);
        assert!(matches!(ok("NOOP\r\n"), Request::Noop { .. }));
    }

    #[test]
    fn errors_map_to_replies() {
        assert_eq!(err("FOO bar\r\n"), 500);
        assert_eq!(err("MAIL FROM:<@>\r\n"), 501);
        assert_eq!(err("MAIL TO:<a@b>\r\n"), 501);
        assert_eq!(err("RCPT TO:<>\r\n"), 501);
        assert_eq!(err("MAIL FROM:<a@b.test> FOO=BAR\r\n"), 555);
        assert_eq!(err("NO\0OP\r\n"), 500);
        // No terminator at all: still a total function.
        assert_eq!(ok("QUIT"), Request::Quit);
    }

    #[test]
    fn garbage_never_panics() {
        let samples: &[&[u8]] = &[
            b"\xff\xfe\r\n",
            b"MAIL FROM:<\xff@x>\r\n",
            b"RCPT TO:<a@b> NOTIFY=\r\n",
            b"BDAT 99999999999999999999999\r\n",
            b"\r\n",
            b"\n",
            b"",
        ];
        for s in samples {
            let _ = parse_command(s);
        }
    }
}
