//! Reading a server's replies (RFC 5321 §4.2, RFC 2034/3463 enhanced
//! status codes): a small bounded parser, pure code, no I/O. The SMTP/LMTP
//! client (`facteur-smtp-client`) reads every reply through it.
//!
//! Offers [`parse_reply`]: given the bytes received so far, either a whole
//! reply (single or multi-line) and how many bytes it used, "need more", or an
//! error; and [`parse_enhanced`] (an RFC 3463 code in text).
//!
//! Why not smtp-proto's `ResponseReceiver`: it is built for SMTP clients that
//! keep one receiver per reply and drops continuation-line structure; here the
//! client wants the code of *every* line checked (a multi-line reply
//! whose lines disagree is garbage), hard bounds on line length and line
//! count, and a stateless function that is trivial to test split at every
//! byte. It is ~100 lines.
//!
//! Guarantees: never panics on any input; memory is bounded by the caller's
//! buffer, which it may cap at [`MAX_REPLY_BYTES`] (a buffer longer than that
//! without a complete reply is an error, never "need more" forever). Bare LF
//! ends a line too (lenient in what we accept from a peer, since a reply line
//! cannot smuggle anything).
//!
//! Security: reply text is the peer's; it is kept as lossy UTF-8 with control
//! characters replaced, so it can go into logs and queue files (one line).

use super::Reply;

/// Longest reply line (RFC 5321 §4.5.3.1.5 says 512 octets; real servers send
/// longer text, so be generous but bounded).
pub const MAX_LINE: usize = 2048;
/// Most lines in one reply (an LHLO reply lists maybe 20 extensions).
pub const MAX_LINES: usize = 100;
/// A buffer this long without a whole reply is an error.
pub const MAX_REPLY_BYTES: usize = MAX_LINE * MAX_LINES;

/// Why the bytes are not a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    #[error("reply line longer than {MAX_LINE} octets")]
    LineTooLong,
    #[error("reply longer than {MAX_LINES} lines")]
    TooManyLines,
    #[error("malformed reply line: {0:?}")]
    Malformed(String),
}

/// Parses one reply at the start of `buf`. `Ok(None)`: incomplete, read more.
/// `Ok(Some((reply, used)))`: `used` bytes make up the reply.
pub fn parse_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
    let mut pos = 0;
    let mut code: Option<u16> = None;
    let mut enhanced = None;
    let mut lines = Vec::new();
    loop {
        let rest = &buf[pos..];
        let Some(nl) = memchr::memchr(b'\n', rest) else {
            if rest.len() > MAX_LINE {
                return Err(ReplyError::LineTooLong);
            }
            return Ok(None);
        };
        if nl > MAX_LINE {
            return Err(ReplyError::LineTooLong);
        }
        let mut line = &rest[..nl];
        if let [head @ .., b'\r'] = line {
            line = head;
        }
        pos += nl + 1;
        let (c, last, text) = parse_line(line)?;
        match code {
            None => code = Some(c),
            Some(first) if first != c => {
                return Err(ReplyError::Malformed(printable(line)));
            }
            Some(_) => {}
        }
        let (esc, text) = split_enhanced(text, c);
        if lines.is_empty() {
            enhanced = esc;
        }
        lines.push(printable(text));
        if last {
            let reply = Reply {
                code: c,
                enhanced,
                lines,
            };
            return Ok(Some((reply, pos)));
        }
        if lines.len() >= MAX_LINES {
            return Err(ReplyError::TooManyLines);
        }
    }
}

/// `ddd SP text`, `ddd-text` or a bare `ddd`: (code, is last line, text).
fn parse_line(line: &[u8]) -> Result<(u16, bool, &[u8]), ReplyError> {
    let bad = || ReplyError::Malformed(printable(line));
    let (digits, rest) = line.split_at_checked(3).ok_or_else(bad)?;
    if !digits.iter().all(u8::is_ascii_digit) || !(b'2'..=b'5').contains(&digits[0]) {
        return Err(bad());
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, d| acc * 10 + u16::from(d - b'0'));
    match rest.split_first() {
        None => Ok((code, true, &[])),
        Some((b' ', text)) => Ok((code, true, text)),
        Some((b'-', text)) => Ok((code, false, text)),
        Some(_) => Err(bad()),
    }
}

/// Splits `x.y.z ` off the text when its class matches the reply's
/// (RFC 3463: 2.x.x only with 2yz, and so on).
fn split_enhanced(text: &[u8], code: u16) -> (Option<(u8, u16, u16)>, &[u8]) {
    let end = text.iter().position(|&b| b == b' ').unwrap_or(text.len());
    let candidate = &text[..end];
    if let Some(esc) = parse_enhanced(candidate)
        && u16::from(esc.0) == code / 100
    {
        let rest = text.get(end + 1..).unwrap_or(&[]);
        return (Some(esc), rest);
    }
    (None, text)
}

/// Parses `class.subject.detail` (RFC 3463 §2: class 2, 4 or 5, then up to
/// three digits each).
pub fn parse_enhanced(s: &[u8]) -> Option<(u8, u16, u16)> {
    let s = std::str::from_utf8(s).ok()?;
    let mut it = s.split('.');
    let (a, b, c) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() {
        return None;
    }
    let num = |p: &str| -> Option<u16> {
        if p.is_empty() || p.len() > 3 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        p.parse().ok()
    };
    let class = num(a)?;
    if !matches!(class, 2 | 4 | 5) || a.len() != 1 {
        return None;
    }
    Some((class as u8, num(b)?, num(c)?))
}

/// Lossy UTF-8 with control characters replaced by spaces.
fn printable(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests {
    use super::*;

    fn whole(input: &[u8]) -> Result<Option<(Reply, usize)>, ReplyError> {
        // Every split must give "need more" up to the end, then the same result.
        let full = parse_reply(input);
        if let Ok(Some((_, used))) = &full {
            for cut in 0..*used {
                assert_eq!(parse_reply(&input[..cut]), Ok(None), "cut at {cut}");
            }
        }
        full
    }

    #[test]
    fn single_line_with_enhanced_code() {
        let (r, used) = whole(b"250 2.1.5 <a@b> OK\r\nrest").unwrap().unwrap();
        assert_eq!(used, 20);
        assert_eq!(r.code, 250);
        assert_eq!(r.enhanced, Some((2, 1, 5)));
        assert_eq!(r.lines, vec!["<a@b> OK"]);
        assert_eq!(r.to_string(), "250 2.1.5 <a@b> OK");
    }

    #[test]
    fn multi_line_lhlo() {
        let input = b"250-mail.example.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n";
        let (r, used) = whole(input).unwrap().unwrap();
        assert_eq!(used, input.len());
        assert_eq!(r.enhanced, None);
        assert_eq!(
            r.lines,
            vec!["mail.example.test", "PIPELINING", "8BITMIME", "SMTPUTF8"]
        );
    }

    #[test]
    fn bare_code_bare_lf_and_mismatched_class() {
        let (r, _) = whole(b"354\n").unwrap().unwrap();
        assert_eq!((r.code, r.lines.len()), (354, 1));
        // A 2.x.x code on a 5yz reply is text, not an enhanced code.
        let (r, _) = whole(b"550 2.0.0 odd\r\n").unwrap().unwrap();
        assert_eq!(r.enhanced, None);
        assert_eq!(r.lines, vec!["2.0.0 odd"]);
        let (r, _) = whole(b"452 4.5.3 Too many recipients\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.enhanced, Some((4, 5, 3)));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        // (input, the line the error names)
        let cases: [(&[u8], &str); 8] = [
            (b"hello\r\n", "hello"),
            (b"25\r\n", "25"),
            (b"2500 x\r\n", "2500 x"),
            (b"250x\r\n", "250x"),
            (b"650 no\r\n", "650 no"),
            (b"\r\n", ""),
            (b"250-a\r\n251 b\r\n", "251 b"),
            (b"\xff\xfe\xfd\r\n", "\u{fffd}\u{fffd}\u{fffd}"),
        ];
        for (bad, line) in cases {
            assert_eq!(
                parse_reply(bad),
                Err(ReplyError::Malformed(line.into())),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bounds() {
        let mut long = b"250 ".to_vec();
        long.extend(std::iter::repeat_n(b'x', MAX_LINE + 10));
        assert_eq!(parse_reply(&long), Err(ReplyError::LineTooLong));
        long.extend_from_slice(b"\r\n");
        assert_eq!(parse_reply(&long), Err(ReplyError::LineTooLong));
        let many: Vec<u8> = b"250-x\r\n".repeat(MAX_LINES + 1);
        assert_eq!(parse_reply(&many), Err(ReplyError::TooManyLines));
    }

    #[test]
    fn control_characters_and_invalid_utf8_are_sanitised() {
        let (r, _) = whole(b"550 5.1.1 bad\x1b[1m \xff user\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(r.lines[0], "bad [1m \u{fffd} user");
    }

    #[test]
    fn enhanced_code_syntax() {
        let cases = [
            (&b"5.1.1"[..], Some((5, 1, 1))),
            (b"4.123.999", Some((4, 123, 999))),
            (b"3.1.1", None),
            (b"5.1", None),
            (b"5.1.1.1", None),
            (b"55.1.1", None),
            (b"5..1", None),
            (b"5.1.1000", None),
        ];
        for (text, want) in cases {
            assert_eq!(parse_enhanced(text), want, "{text:?}");
        }
    }
}
