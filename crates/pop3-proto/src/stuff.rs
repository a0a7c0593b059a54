//! Dot-stuffing (RFC 1939 §3): a message as the body of a multi-line
//! response, streamed.
//!
//! Offers [`DotStuffer`]: push the message (CRLF form) chunk by chunk, split
//! anywhere; each line that starts with `.` gets one more `.` in front. At
//! the end, [`DotStuffer::finish`] adds a CRLF if the message does not end
//! with one, then the terminating `.CRLF`. [`DotStuffer::measure`] runs the
//! same state machine without output, to learn the size beforehand.
//!
//! Guarantees: the size it reports ([`DotStuffer::message_len`], and what
//! `finish` returns) is exactly the number of octets written between the
//! status line and the terminator, stuffing dots and the added CRLF
//! included; so LIST and STAT, which announce that size, agree with what
//! RETR sends. A line is taken to start after every LF (a bare LF too), so no
//! client, strict or lenient about line endings, can read a premature
//! terminator. Memory: nothing is buffered; output is at most
//! `input + input/1 + 5` octets (every byte a '.' after an LF, at worst).

/// Streams a message as a dot-stuffed multi-line body.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    /// The last two input octets (zeros before any input).
    tail: [u8; 2],
    input_len: u64,
    /// Octets emitted so far: input plus stuffing dots.
    stuffed: u64,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer::new()
    }
}

impl DotStuffer {
    /// A stuffer at the start of a message.
    pub fn new() -> DotStuffer {
        DotStuffer {
            at_line_start: true,
            tail: [0, 0],
            input_len: 0,
            stuffed: 0,
        }
    }

    /// Appends the stuffed form of `input` to `out`.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) {
        out.reserve(input.len() + 16);
        self.run(input, Some(out));
    }

    /// Counts what [`push`](Self::push) would write, without writing.
    pub fn measure(&mut self, input: &[u8]) {
        self.run(input, None);
    }

    fn run(&mut self, mut input: &[u8], mut out: Option<&mut Vec<u8>>) {
        match input {
            [] => return,
            [b] => self.tail = [self.tail[1], *b],
            [.., a, b] => self.tail = [*a, *b],
        }
        self.input_len += input.len() as u64;
        while let Some(&first) = input.first() {
            if self.at_line_start && first == b'.' {
                self.stuffed += 1;
                if let Some(o) = out.as_deref_mut() {
                    o.push(b'.');
                }
            }
            let n = match memchr::memchr(b'\n', input) {
                Some(i) => {
                    self.at_line_start = true;
                    i + 1
                }
                None => {
                    self.at_line_start = false;
                    input.len()
                }
            };
            if let Some(o) = out.as_deref_mut() {
                o.extend_from_slice(&input[..n]);
            }
            self.stuffed += n as u64;
            input = &input[n..];
        }
    }

    fn needs_crlf(&self) -> bool {
        self.input_len > 0 && self.tail != *b"\r\n"
    }

    /// The octets of the message in the response if it ended here: stuffed
    /// input plus the CRLF `finish` would add (the terminator not counted).
    pub fn message_len(&self) -> u64 {
        self.stuffed + if self.needs_crlf() { 2 } else { 0 }
    }

    /// Ends the message: CRLF if missing, then `.CRLF`. Returns
    /// [`message_len`](Self::message_len).
    pub fn finish(self, out: &mut Vec<u8>) -> u64 {
        if self.needs_crlf() {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        self.message_len()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The obvious, non-incremental definition.
    fn reference(msg: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut start = true;
        for &b in msg {
            if start && b == b'.' {
                out.push(b'.');
            }
            out.push(b);
            start = b == b'\n';
        }
        if !msg.is_empty() && !msg.ends_with(b"\r\n") {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    #[test]
    fn table_split_at_every_byte() {
        let cases: &[(&[u8], &[u8])] = &[
            (b"", b".\r\n"),
            (b"a\r\n", b"a\r\n.\r\n"),
            (b"a", b"a\r\n.\r\n"),
            (b".\r\n", b"..\r\n.\r\n"),
            (
                b"Subject: x\r\n\r\n.\r\n..\r\n.x\r\nx.\r\n",
                b"Subject: x\r\n\r\n..\r\n...\r\n..x\r\nx.\r\n.\r\n",
            ),
            (b"a\r\n.", b"a\r\n..\r\n.\r\n"),
            (b"a\n.b\n", b"a\n..b\n\r\n.\r\n"),
            (b"a\r", b"a\r\r\n.\r\n"),
            (b"\r\n\r\n", b"\r\n\r\n.\r\n"),
        ];
        for (msg, want) in cases {
            assert_eq!(reference(msg), *want, "reference {msg:?}");
            for split in 1..=msg.len().max(1) {
                let mut s = DotStuffer::new();
                let mut m = DotStuffer::new();
                let mut out = Vec::new();
                for c in msg.chunks(split) {
                    s.push(c, &mut out);
                    m.measure(c);
                }
                let size = s.finish(&mut out);
                assert_eq!(out, *want, "{msg:?} split {split}");
                assert_eq!(size as usize, want.len() - 3, "{msg:?} split {split}");
                assert_eq!(m.message_len(), size);
            }
        }
    }

    #[test]
    fn pseudo_random_messages_match_the_reference() {
        let mut x: u32 = 12345;
        for _ in 0..300 {
            let len = (x % 97) as usize;
            let msg: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    b".\r\na"[((x >> 16) % 4) as usize]
                })
                .collect();
            let want = reference(&msg);
            let split = (x % 7) as usize + 1;
            let mut s = DotStuffer::new();
            let mut out = Vec::new();
            for c in msg.chunks(split) {
                s.push(c, &mut out);
            }
            let n = s.finish(&mut out);
            assert_eq!(out, want);
            assert_eq!(n as usize, want.len() - 3);
        }
    }
}
