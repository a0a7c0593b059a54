//! TOP (RFC 1939 §7): the headers, the blank line after them, then the
//! first `n` lines of the body.
//!
//! Offers [`TopLimiter`]: fed the message (CRLF form) chunk by chunk, it
//! says how much of each chunk belongs to the answer; once
//! [`is_done`](TopLimiter::is_done) the rest need not even be read. The
//! header section ends at the first empty line (CRLF CRLF, or a bare LF
//! after a line ending); a message without one is all headers and is sent
//! whole. Any line count works: 0 gives the headers and the blank line,
//! more lines than the body has give the whole message. The output then
//! goes through the dot-stuffer like RETR's.

/// Decides the prefix of a message that TOP sends.
#[derive(Debug, Clone)]
pub struct TopLimiter {
    lines: u64,
    state: State,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// In the headers; `line_start`: at the start of a line; `blank_cr`: the
    /// current line so far is a lone CR.
    Headers {
        line_start: bool,
        blank_cr: bool,
    },
    /// In the body, `left` lines still to send.
    Body {
        left: u64,
    },
    Done,
}

impl TopLimiter {
    /// For `TOP msg lines`.
    pub fn new(lines: u64) -> TopLimiter {
        TopLimiter {
            lines,
            state: State::Headers {
                line_start: true,
                blank_cr: false,
            },
        }
    }

    /// Whether everything TOP sends has been taken.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// How many octets at the front of `input` belong to the answer.
    pub fn take(&mut self, input: &[u8]) -> usize {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => break,
                State::Headers {
                    line_start,
                    blank_cr,
                } => {
                    let b = input[i];
                    i += 1;
                    self.state = match b {
                        b'\n' if line_start || blank_cr => {
                            if self.lines == 0 {
                                State::Done
                            } else {
                                State::Body { left: self.lines }
                            }
                        }
                        b'\n' => State::Headers {
                            line_start: true,
                            blank_cr: false,
                        },
                        b'\r' if line_start => State::Headers {
                            line_start: false,
                            blank_cr: true,
                        },
                        _ => State::Headers {
                            line_start: false,
                            blank_cr: false,
                        },
                    };
                }
                State::Body { left } => match memchr::memchr(b'\n', &input[i..]) {
                    Some(j) => {
                        i += j + 1;
                        self.state = if left <= 1 {
                            State::Done
                        } else {
                            State::Body { left: left - 1 }
                        };
                    }
                    None => i = input.len(),
                },
            }
        }
        i
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn top(msg: &[u8], lines: u64, split: usize) -> Vec<u8> {
        let mut t = TopLimiter::new(lines);
        let mut out = Vec::new();
        for c in msg.chunks(split) {
            let n = t.take(c);
            out.extend_from_slice(&c[..n]);
            if t.is_done() {
                break;
            }
        }
        out
    }

    #[test]
    fn table_split_at_every_byte() {
        let msg: &[u8] = b"Subject: a\r\nX: b\r\n\r\nline1\r\n.line2\r\n\r\nline4";
        let cases: &[(&[u8], u64, &[u8])] = &[
            (msg, 0, b"Subject: a\r\nX: b\r\n\r\n"),
            (msg, 1, b"Subject: a\r\nX: b\r\n\r\nline1\r\n"),
            (msg, 2, b"Subject: a\r\nX: b\r\n\r\nline1\r\n.line2\r\n"),
            (msg, 3, b"Subject: a\r\nX: b\r\n\r\nline1\r\n.line2\r\n\r\n"),
            (msg, 4, msg),
            (msg, u64::MAX, msg),
            (b"\r\nbody\r\nmore\r\n", 1, b"\r\nbody\r\n"),
            (b"\r\nbody\r\n", 0, b"\r\n"),
            (
                b"Only: headers\r\nNo: body\r\n",
                0,
                b"Only: headers\r\nNo: body\r\n",
            ),
            (b"A: b\r\r\nc\r\n\r\nx\r\n", 0, b"A: b\r\r\nc\r\n\r\n"),
            (b"A: b\n\nx\ny\n", 1, b"A: b\n\nx\n"),
            (b"", 5, b""),
        ];
        for (m, n, want) in cases {
            for split in 1..=m.len().max(1) {
                assert_eq!(
                    top(m, *n, split),
                    *want,
                    "{:?} TOP {n} split {split}",
                    String::from_utf8_lossy(m)
                );
            }
        }
    }
}
