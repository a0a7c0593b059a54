//! Command-line framing (pure code): splits a byte stream into lines ending in LF (CRLF
//! expected; a bare LF is tolerated on command lines, as most servers do, but
//! never inside DATA), with a maximum length.
//!
//! Guarantees: memory is bounded by the caller's read buffer plus `max`; an
//! overlong line is reported once as [`LineEvent::TooLong`] and its remaining
//! bytes, however many, are skipped up to the next LF.

/// What the framer found.
#[derive(Debug, PartialEq, Eq)]
pub enum LineEvent<'a> {
    /// A whole line, with its line terminator (`\r\n` or `\n`).
    Line(&'a [u8]),
    /// A line longer than the limit, with its first bytes (at most
    /// [`HEAD`]: enough for a tag); the rest is being skipped.
    TooLong(&'a [u8]),
}

/// The bytes of an overlong line's start that [`LineEvent::TooLong`] keeps.
pub const HEAD: usize = 128;

/// Incremental line splitter.
#[derive(Debug, Clone)]
pub struct LineFramer {
    max: usize,
    discarding: bool,
}

impl LineFramer {
    /// `max` counts the terminator: RFC 5321 §4.5.3.1.4 says 512 for command
    /// lines, but extensions make them longer; smtpd uses more.
    pub fn new(max: usize) -> Self {
        LineFramer {
            max: max.max(3),
            discarding: false,
        }
    }

    /// True while skipping the rest of an overlong line.
    pub fn is_discarding(&self) -> bool {
        self.discarding
    }

    /// Looks at `input` (everything buffered and not yet consumed). Returns how
    /// many bytes the caller must drop from the front of its buffer, and the
    /// event, if any. `(0, None)` means "need more data".
    pub fn next<'a>(&mut self, input: &'a [u8]) -> (usize, Option<LineEvent<'a>>) {
        let mut start = 0;
        loop {
            let rest = &input[start..];
            match memchr::memchr(b'\n', rest) {
                None => {
                    if self.discarding {
                        return (input.len(), None);
                    }
                    if rest.len() >= self.max {
                        self.discarding = true;
                        let head = &rest[..rest.len().min(HEAD)];
                        return (input.len(), Some(LineEvent::TooLong(head)));
                    }
                    return (start, None);
                }
                Some(pos) => {
                    let end = start + pos + 1;
                    if self.discarding {
                        // End of an overlong line already reported.
                        self.discarding = false;
                        start = end;
                        continue;
                    }
                    if pos + 1 > self.max {
                        let head = &rest[..rest.len().min(HEAD)];
                        return (end, Some(LineEvent::TooLong(head)));
                    }
                    return (end, Some(LineEvent::Line(&input[start..end])));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes, as a session would, and
    /// collects what comes out.
    fn run(input: &[u8], max: usize, step: usize) -> Vec<Result<Vec<u8>, ()>> {
        let mut f = LineFramer::new(max);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        for chunk in input.chunks(step.max(1)) {
            buf.extend_from_slice(chunk);
            loop {
                let (used, ev) = f.next(&buf);
                let ev = ev.map(|e| match e {
                    LineEvent::Line(l) => Ok(l.to_vec()),
                    LineEvent::TooLong(head) => {
                        assert!(head.len() <= HEAD);
                        Err(())
                    }
                });
                buf.drain(..used);
                match ev {
                    Some(e) => out.push(e),
                    None => break,
                }
            }
            assert!(buf.len() <= max, "buffer grew past the limit");
        }
        out
    }

    #[test]
    fn splits_lines_at_every_byte() {
        let input = b"EHLO a\r\nMAIL FROM:<>\r\nNOOP\n";
        for step in 1..input.len() {
            let out = run(input, 100, step);
            assert_eq!(
                out,
                vec![
                    Ok(b"EHLO a\r\n".to_vec()),
                    Ok(b"MAIL FROM:<>\r\n".to_vec()),
                    Ok(b"NOOP\n".to_vec())
                ],
                "step {step}"
            );
        }
    }

    #[test]
    fn overlong_line_reported_once_then_skipped() {
        let mut input = vec![b'x'; 10_000];
        input.extend_from_slice(b"\r\nNOOP\r\n");
        for step in [1, 7, 64, 20_000] {
            let out = run(&input, 512, step);
            assert_eq!(out, vec![Err(()), Ok(b"NOOP\r\n".to_vec())], "step {step}");
        }
    }

    #[test]
    fn line_exactly_at_limit_passes() {
        let mut line = vec![b'a'; 10];
        line.extend_from_slice(b"\r\n");
        assert_eq!(run(&line, 12, 3), vec![Ok(line.clone())]);
        assert_eq!(run(&line, 11, 3), vec![Err(())]);
    }
}
