//! Line framing for POP3 commands (RFC 1939 §3: commands end with CRLF).
//!
//! Offers [`LineFramer`]: give it the bytes received so far, it answers with
//! how many it consumed and, when one is complete, a line (without its line
//! ending) or the news that a line was too long. A bare LF also ends a line
//! (lenient towards clients; the trailing CR, if any, is removed).
//!
//! Guarantees: the caller never needs to keep more than `max` bytes of an
//! unfinished line: a longer line is reported once as
//! [`LineEvent::TooLong`], consumed, and the rest of it, up to its LF, is
//! skipped, so its tail is never taken for a command.

/// The longest command line accepted, line ending included. RFC 2449 §4
/// limits commands to 255 octets; SASL responses (RFC 5034 §4) may be longer
/// (a PLAIN response with a long password), so the limit is more generous.
pub const MAX_LINE: usize = 1024;

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A complete line, without CRLF.
    Line(&'a [u8]),
    /// A line longer than the limit; it is being skipped.
    TooLong,
}

/// Splits a byte stream into command lines.
#[derive(Debug)]
pub struct LineFramer {
    max: usize,
    discarding: bool,
}

impl LineFramer {
    /// A framer for lines of at most `max` bytes (line ending included).
    pub fn new(max: usize) -> LineFramer {
        LineFramer {
            max: max.max(3),
            discarding: false,
        }
    }

    /// Whether the framer is skipping the rest of an overlong line.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Looks at `input` (the unconsumed bytes). Returns how many bytes to
    /// drop from the front and the event, if any. With `None` the caller
    /// reads more and calls again.
    pub fn next<'a>(&mut self, input: &'a [u8]) -> (usize, Option<LineEvent<'a>>) {
        match memchr::memchr(b'\n', input) {
            Some(lf) if self.discarding => {
                self.discarding = false;
                (lf + 1, None)
            }
            None if self.discarding => (input.len(), None),
            Some(lf) if lf < self.max => {
                let line = &input[..lf];
                let line = line.strip_suffix(b"\r").unwrap_or(line);
                (lf + 1, Some(LineEvent::Line(line)))
            }
            Some(lf) => (lf + 1, Some(LineEvent::TooLong)),
            None if input.len() >= self.max => {
                self.discarding = true;
                (input.len(), Some(LineEvent::TooLong))
            }
            None => (0, None),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Feeds `input` split at `split` bytes; returns the events.
    fn frame(max: usize, input: &[u8], split: usize) -> Vec<Option<Vec<u8>>> {
        let mut f = LineFramer::new(max);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for chunk in input.chunks(split.max(1)) {
            buf.extend_from_slice(chunk);
            loop {
                let (used, ev) = f.next(&buf);
                let got = ev.map(|e| match e {
                    LineEvent::Line(l) => Some(l.to_vec()),
                    LineEvent::TooLong => None,
                });
                buf.drain(..used);
                assert!(buf.len() < max, "framer kept {} bytes", buf.len());
                match got {
                    Some(g) => out.push(g),
                    None if used == 0 => break,
                    None => {}
                }
            }
        }
        out
    }

    #[test]
    fn table_split_at_every_byte() {
        let l = |s: &str| Some(s.as_bytes().to_vec());
        type Events = Vec<Option<Vec<u8>>>;
        let cases: &[(&[u8], Events)] = &[
            (b"STAT\r\n", vec![l("STAT")]),
            (b"STAT\nLIST 1\r\n", vec![l("STAT"), l("LIST 1")]),
            (b"\r\n", vec![l("")]),
            (b"a\rb\r\n", vec![l("a\rb")]),
            (b"NOOP", vec![]),
            // 20 bytes with a limit of 16: reported once, tail skipped.
            (b"PASS 0123456789abcdef\r\nQUIT\r\n", vec![None, l("QUIT")]),
            (b"PASS 0123456789\r\n", vec![None]),
            (b"PASS 012345678\r\n", vec![l("PASS 012345678")]),
        ];
        for (input, want) in cases {
            for split in 1..=input.len() {
                assert_eq!(
                    &frame(16, input, split),
                    want,
                    "{:?} split {split}",
                    String::from_utf8_lossy(input)
                );
            }
        }
    }
}
