//! Literal framing: does a command line end with a literal announcement?
//!
//! Offers [`literal_at_end`]. The session reads a command line by line; when
//! a line ends with `{n}` (synchronising: send `+ ` first), `{n+}` (LITERAL+
//! / LITERAL-, RFC 7888) or `~{n}` (literal8, RFC 3516), it reads n octets
//! and then the next line, accumulating one command for
//! [`crate::parse_command`]. Needs nothing; guarantees no panic, time linear
//! in the line, no allocation. RFC 9051 §4.3 (literal), §7.5 (continuation).
//!
//! Only the end of the line matters: a `}` that is not part of an
//! announcement (`}` is an ATOM-CHAR) gives `None`, but a last token with a
//! `{` in it that does not form `{digits[+]}` is an error, so the session
//! answers BAD at once instead of waiting for octets that will never make
//! sense.

use crate::parse::ParseError;
use crate::types::Literal;

fn bad(message: &str) -> ParseError {
    ParseError {
        tag: None,
        message: message.to_owned(),
    }
}

/// The literal announced at the very end of `line` (one line, without its
/// CRLF), if any. `Err` for a malformed announcement (`{12x}`, `{}`, more
/// than 20 digits, a length over `u64::MAX`). The error carries no tag: the
/// session knows the tag of the command it is accumulating.
pub fn literal_at_end(line: &[u8]) -> Result<Option<Literal>, ParseError> {
    let Some(body) = line.strip_suffix(b"}") else {
        return Ok(None);
    };
    let (body, sync) = match body.strip_suffix(b"+") {
        Some(b) => (b, false),
        None => (body, true),
    };
    let ndigits = body.iter().rev().take_while(|b| b.is_ascii_digit()).count();
    let (before, digits) = body.split_at(body.len() - ndigits);
    let Some(before) = before.strip_suffix(b"{") else {
        // Not `{digits}`: an error if the last token holds a `{`.
        let token_start = line
            .iter()
            .rposition(|&b| matches!(b, b' ' | b'(' | b')' | b'"'))
            .map_or(0, |i| i + 1);
        return if line[token_start..].contains(&b'{') {
            Err(bad("malformed literal announcement"))
        } else {
            Ok(None)
        };
    };
    if digits.is_empty() || digits.len() > 20 {
        return Err(bad("malformed literal announcement"));
    }
    let mut len: u64 = 0;
    for &d in digits {
        len = len
            .checked_mul(10)
            .and_then(|n| n.checked_add(u64::from(d - b'0')))
            .ok_or_else(|| bad("literal too large"))?;
    }
    let binary = before.ends_with(b"~");
    Ok(Some(Literal { len, sync, binary }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(len: u64, sync: bool, binary: bool) -> Option<Literal> {
        Some(Literal { len, sync, binary })
    }

    #[test]
    fn table() {
        let cases: &[(&[u8], Option<Literal>)] = &[
            (b"a LOGIN {5}", lit(5, true, false)),
            (b"a LOGIN {5+}", lit(5, false, false)),
            (b"a APPEND INBOX ~{12}", lit(12, true, true)),
            (b"a APPEND INBOX ~{12+}", lit(12, false, true)),
            (
                b"a APPEND INBOX (\\Seen) \"23-Nov-2026 10:00:00 +0100\" {1234}",
                lit(1234, true, false),
            ),
            (b"{0}", lit(0, true, false)),
            (b"a LOGIN {00012}", lit(12, true, false)),
            (
                b"a LOGIN {18446744073709551615}",
                lit(u64::MAX, true, false),
            ),
            (b"a NOOP", None),
            (b"", None),
            (b"}", None),
            (b"a CREATE foo}", None),
            (b"a CREATE \"{5}\"", None),
            (b"a LOGIN {5", None),
            (b"a LOGIN {5}x", None),
            (b"a LOGIN 12}", None),
            (b"a LOGIN { 5}", None),
        ];
        for (line, want) in cases {
            assert_eq!(
                literal_at_end(line).ok(),
                Some(*want),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn malformed() {
        for line in [
            &b"a LOGIN {12x}"[..],
            b"a LOGIN {}",
            b"a LOGIN {+}",
            b"a LOGIN {-1}",
            b"a LOGIN {18446744073709551616}",
            b"a LOGIN {000000000000000000001}",
            b"a LOGIN {99999999999999999999}",
            b"a LOGIN x{y}",
        ] {
            let e = literal_at_end(line);
            assert!(e.is_err(), "{}: {e:?}", String::from_utf8_lossy(line));
            assert_eq!(e.err().and_then(|e| e.tag), None);
        }
    }

    /// Every prefix of an announcing line gives None or, once complete, the
    /// literal; never a spurious error.
    #[test]
    fn split_at_every_byte() {
        for (line, want) in [
            (&b"a1 LOGIN {5}"[..], lit(5, true, false)),
            (b"a1 LOGIN fred {11+}", lit(11, false, false)),
            (
                b"A003 APPEND saved-messages (\\Seen) ~{310}",
                lit(310, true, true),
            ),
        ] {
            for i in 0..line.len() {
                assert_eq!(literal_at_end(&line[..i]).ok(), Some(None), "prefix {i}");
            }
            assert_eq!(literal_at_end(line).ok(), Some(want));
        }
    }
}
