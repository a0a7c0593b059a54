//! SMTP/LMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463).
//!
//! A [`Reply`] is a code, an optional enhanced code and one or more text
//! lines; [`Reply::write_to`] formats it with `-` continuation lines. Text is
//! sanitised: CR, LF and other control characters never reach the wire, so a
//! reply can quote a peer's input without letting it inject lines.
//!
//! The other direction, a client reading a server's replies, is `reply/parse.rs`:
//! [`parse_reply`] takes the bytes received so far and gives a bounded
//! [`Reply`] (at most [`MAX_LINES`] lines of [`MAX_LINE`] octets), "need
//! more", or a [`ReplyError`].

mod parse;

pub use parse::{MAX_LINE, MAX_LINES, MAX_REPLY_BYTES, ReplyError, parse_enhanced, parse_reply};

use std::fmt::Write as _;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<(u8, u16, u16)>,
    pub lines: Vec<String>,
}

impl Reply {
    /// A one-line reply with an enhanced status code.
    pub fn new(code: u16, enhanced: (u8, u16, u16), text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    /// A one-line reply without an enhanced code (greeting, LHLO/EHLO).
    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines: vec![text.into()],
        }
    }

    /// A multi-line reply without enhanced code (the EHLO/LHLO keyword list).
    pub fn multi(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    /// `552 5.3.4`: the message is larger than the server takes (RFC 1870).
    pub fn too_big() -> Reply {
        Reply::new(
            552,
            (5, 3, 4),
            "Message size exceeds fixed maximum message size",
        )
    }

    /// The refusal of a message that was received to its end but cannot be
    /// taken: too big (`552 5.3.4`), or holding a bare CR or LF
    /// (`550 5.6.0`, the SMTP-smuggling guard); `None` when it is fine.
    pub fn content_refusal(too_big: bool, bare_line_ending: bool) -> Option<Reply> {
        if too_big {
            Some(Reply::too_big())
        } else if bare_line_ending {
            Some(Reply::new(
                550,
                (5, 6, 0),
                "Message contains a bare CR or LF; line endings must be CRLF",
            ))
        } else {
            None
        }
    }

    pub fn is_positive(&self) -> bool {
        (200..400).contains(&self.code)
    }

    pub fn is_transient(&self) -> bool {
        (400..500).contains(&self.code)
    }

    pub fn is_permanent(&self) -> bool {
        self.code >= 500
    }

    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut s = String::new();
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            let sep = if i + 1 == n { ' ' } else { '-' };
            let _ = write!(s, "{}{}", self.code, sep);
            if let Some((a, b, c)) = self.enhanced {
                let _ = write!(s, "{a}.{b}.{c} ");
            }
            s.extend(text.chars().map(|c| if c.is_control() { ' ' } else { c }));
            s.push_str("\r\n");
        }
        out.extend_from_slice(s.as_bytes());
    }

    /// The wire form as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.write_to(&mut v);
        v
    }
}

impl std::fmt::Display for Reply {
    /// One line for logs: `550 5.1.1 text`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.code)?;
        if let Some((a, b, c)) = self.enhanced {
            write!(f, " {a}.{b}.{c}")?;
        }
        write!(f, " {}", self.lines.join(" / "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_line() {
        let r = Reply::new(250, (2, 1, 5), "Recipient ok");
        assert_eq!(r.to_bytes(), b"250 2.1.5 Recipient ok\r\n");
        assert!(r.is_positive());
        assert_eq!(r.to_string(), "250 2.1.5 Recipient ok");
    }

    #[test]
    fn content_refusals() {
        assert_eq!(Reply::content_refusal(true, true).unwrap().code, 552);
        assert_eq!(
            Reply::content_refusal(false, true).unwrap().to_bytes()[..9],
            *b"550 5.6.0"
        );
        assert_eq!(Reply::content_refusal(false, false), None);
    }

    #[test]
    fn multi_line_and_sanitising() {
        let r = Reply::multi(
            250,
            vec!["host".into(), "PIPELINING".into(), "SIZE 10".into()],
        );
        assert_eq!(
            r.to_bytes(),
            b"250-host\r\n250-PIPELINING\r\n250 SIZE 10\r\n"
        );
        let evil = Reply::new(550, (5, 1, 1), "no\r\n250 ok");
        assert_eq!(evil.to_bytes(), b"550 5.1.1 no  250 ok\r\n");
        assert!(evil.is_permanent());
        assert!(Reply::new(451, (4, 3, 0), "x").is_transient());
    }
}
