//! The DATA receiver (RFC 5321 §4.1.1.4, §4.5.2) and a line-ending checker for
//! BDAT chunks (RFC 3030).
//!
//! Why our own and not smtp-proto's `DataReceiver`: that one passes bare CR and
//! bare LF through silently and has no size bound, and facteur needs both
//! decided here. This receiver:
//! - ends a message only at `<CRLF>.<CRLF>` (the opening CRLF may be the end
//!   of the DATA command line itself, i.e. the very start of the data);
//! - removes one leading dot from lines that start with one (dot-stuffing);
//! - reports a bare CR (CR not followed by LF) and a bare LF (LF not preceded
//!   by CR) — and a bare line ending never starts a new line, so
//!   `\n.\n`, `\r.\r`, `\n.\r\n` and `\r\n.\n` can never end the message
//!   (SMTP smuggling, CVE-2023-51764 class);
//! - counts the message and, past the limit, stops emitting bytes but keeps
//!   scanning for the end, so an oversize message costs no memory and the
//!   client gets its reply at the end of data, in protocol order.
//!
//! Output is the message in network form (CRLF), dot-unstuffed. The caller
//! owns the output buffer and may drain it to disk at any time, which bounds
//! memory to one read buffer.

/// Summary of one received message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataOutcome {
    /// Octets of the message after unstuffing (all of them, even past the limit).
    pub size: u64,
    pub bare_cr: bool,
    pub bare_lf: bool,
    /// More than the limit was sent; the excess was not emitted.
    pub too_big: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or at the start of data).
    LineStart,
    /// A line that started with '.'.
    Dot,
    /// ".\r" at the start of a line.
    DotCr,
    /// Inside a line.
    Middle,
    /// Inside a line, right after a CR.
    Cr,
    /// `<CRLF>.<CRLF>` seen.
    Done,
}

/// Incremental DATA receiver.
#[derive(Debug, Clone)]
pub struct DataReceiver {
    state: State,
    max: u64,
    out: DataOutcome,
}

impl DataReceiver {
    /// `max` is the size limit in octets (0 = none).
    pub fn new(max: u64) -> Self {
        DataReceiver {
            state: State::LineStart,
            max,
            out: DataOutcome::default(),
        }
    }

    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// The outcome so far (final once [`is_done`](Self::is_done)).
    pub fn outcome(&self) -> DataOutcome {
        self.out
    }

    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        let n = bytes.len() as u64;
        if !self.out.too_big {
            if self.max > 0 && self.out.size + n > self.max {
                self.out.too_big = true;
            } else {
                out.extend_from_slice(bytes);
            }
        }
        self.out.size += n;
    }

    /// Consumes bytes from `input`, appends message bytes to `out`, and returns
    /// how many input bytes were used: all of them, unless the end of data was
    /// reached, in which case the rest belongs to the next command (pipelining).
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let mut i = 0;
        while i < input.len() {
            match self.state {
                State::Done => return i,
                State::Middle => {
                    // Fast path: copy the run up to the next CR or LF.
                    let rest = &input[i..];
                    match memchr::memchr2(b'\r', b'\n', rest) {
                        None => {
                            self.emit(out, rest);
                            return input.len();
                        }
                        Some(p) => {
                            self.emit(out, &rest[..p]);
                            i += p;
                            if rest[p] == b'\r' {
                                self.state = State::Cr;
                            } else {
                                // Bare LF: kept in the output (the caller rejects
                                // the message), but it does not start a line.
                                self.out.bare_lf = true;
                                self.emit(out, b"\n");
                            }
                            i += 1;
                        }
                    }
                }
                State::Cr => {
                    let b = input[i];
                    if b == b'\n' {
                        self.emit(out, b"\r\n");
                        self.state = State::LineStart;
                        i += 1;
                    } else {
                        self.out.bare_cr = true;
                        self.emit(out, b"\r");
                        self.state = State::Middle;
                        // `b` is processed again in Middle (it may be a CR).
                        if b == b'\r' {
                            self.state = State::Cr;
                            i += 1;
                        }
                    }
                }
                State::LineStart => {
                    if input[i] == b'.' {
                        self.state = State::Dot;
                        i += 1;
                    } else {
                        self.state = State::Middle;
                    }
                }
                State::Dot => {
                    if input[i] == b'\r' {
                        self.state = State::DotCr;
                        i += 1;
                    } else {
                        // A stuffed dot: dropped; the line goes on.
                        self.state = State::Middle;
                    }
                }
                State::DotCr => {
                    if input[i] == b'\n' {
                        self.state = State::Done;
                        return i + 1;
                    }
                    // ".\r" then something else: the dot was stuffing, the CR is bare.
                    self.out.bare_cr = true;
                    self.emit(out, b"\r");
                    self.state = State::Middle;
                    if input[i] == b'\r' {
                        self.state = State::Cr;
                        i += 1;
                    }
                }
            }
        }
        i
    }
}

/// Tracks bare CR / bare LF across BDAT chunks, whose bytes are taken as they
/// are (no dot-stuffing, no end marker).
#[derive(Debug, Clone, Copy, Default)]
pub struct LineEndingCheck {
    last_cr: bool,
    pub bare_cr: bool,
    pub bare_lf: bool,
}

impl LineEndingCheck {
    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' if !self.last_cr => self.bare_lf = true,
                _ if self.last_cr && b != b'\n' => self.bare_cr = true,
                _ => {}
            }
            self.last_cr = b == b'\r';
        }
    }

    /// Call at the end of the message: a trailing CR is bare.
    pub fn finish(&mut self) {
        if self.last_cr {
            self.bare_cr = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` split into pieces of `step` bytes; returns (message,
    /// outcome, bytes left after the end) or None if the end was not reached.
    fn run(input: &[u8], max: u64, step: usize) -> Option<(Vec<u8>, DataOutcome, Vec<u8>)> {
        let mut r = DataReceiver::new(max);
        let mut out = Vec::new();
        let mut pos = 0;
        while pos < input.len() {
            let end = (pos + step).min(input.len());
            let used = r.feed(&input[pos..end], &mut out);
            pos += used;
            if r.is_done() {
                return Some((out, r.outcome(), input[pos..].to_vec()));
            }
            assert_eq!(used, end - pos + used, "all bytes used before the end");
        }
        None
    }

    fn at_every_split(input: &[u8], max: u64) -> Option<(Vec<u8>, DataOutcome, Vec<u8>)> {
        let first = run(input, max, input.len().max(1));
        for step in 1..input.len() {
            assert_eq!(run(input, max, step), first, "split at {step}");
        }
        first
    }

    #[test]
    fn plain_message_and_pipelined_rest() {
        let (msg, o, rest) =
            at_every_split(b"Subject: x\r\n\r\nhello\r\n.\r\nQUIT\r\n", 0).unwrap();
        assert_eq!(msg, b"Subject: x\r\n\r\nhello\r\n");
        assert_eq!(o.size, msg.len() as u64);
        assert!(!o.bare_cr && !o.bare_lf && !o.too_big);
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn empty_message() {
        let (msg, _, rest) = at_every_split(b".\r\nNOOP\r\n", 0).unwrap();
        assert!(msg.is_empty());
        assert_eq!(rest, b"NOOP\r\n");
    }

    #[test]
    fn dot_unstuffing() {
        let (msg, ..) = at_every_split(b"..leading\r\n...\r\n.x\r\n.\r\n", 0).unwrap();
        assert_eq!(msg, b".leading\r\n..\r\nx\r\n");
    }

    #[test]
    fn smuggling_sequences_never_end_data() {
        // (probe, whether it holds a bare CR, a bare LF)
        let cases: [(&[u8], bool, bool); 5] = [
            (b"a\n.\nMAIL FROM:<x@y>\n", false, true),
            (b"a\r.\rMAIL FROM:<x@y>\r", true, false),
            (b"a\n.\r\nMAIL FROM:<x@y>\r\n", false, true),
            (b"a\r\n.\nMAIL FROM:<x@y>\r\n", false, true),
            (b"a\r\r\n.\r\r\n", true, false),
        ];
        for (probe, cr, lf) in cases {
            // Not ended by the probe, however it is split...
            for step in 1..=probe.len() {
                assert!(run(probe, 0, step).is_none(), "{probe:?} in {step}s");
            }
            // ...only by a real end of data, and the probe is flagged.
            let mut input = probe.to_vec();
            input.extend_from_slice(b"\r\n.\r\n");
            let (msg, o, rest) = at_every_split(&input, 0).unwrap();
            assert_eq!((o.bare_cr, o.bare_lf), (cr, lf), "{probe:?}");
            assert!(rest.is_empty());
            assert!(msg.starts_with(b"a"));
        }
    }

    #[test]
    fn bare_cr_followed_by_crlf_dot() {
        // "a\r" + "\r\n.\r\n": a bare CR, then a real end.
        let (msg, o, _) = at_every_split(b"a\r\r\n.\r\n", 0).unwrap();
        assert_eq!(msg, b"a\r\r\n");
        assert!(o.bare_cr && !o.bare_lf);
    }

    #[test]
    fn size_limit_stops_output_but_finds_end() {
        let mut input = vec![b'x'; 1000];
        input.extend_from_slice(b"\r\n.\r\nRSET\r\n");
        for step in [1, 3, 99, 100, 101, 2000] {
            // What was emitted before the limit depends on the split; the
            // caller throws it away. The outcome and the rest do not.
            let (msg, o, rest) = run(&input, 100, step).unwrap();
            assert!(o.too_big);
            assert!(msg.len() <= 100);
            assert_eq!(o.size, 1002);
            assert_eq!(rest, b"RSET\r\n");
        }
    }

    #[test]
    fn eight_bit_and_utf8_pass_through() {
        let mut body = "Subject: caf\u{e9}\r\n\r\n\u{1F600} \u{fffd}"
            .as_bytes()
            .to_vec();
        body.push(0xff);
        let mut input = body.clone();
        input.extend_from_slice(b"\r\n.\r\n");
        let (msg, ..) = at_every_split(&input, 0).unwrap();
        let mut want = body;
        want.extend_from_slice(b"\r\n");
        assert_eq!(msg, want);
    }

    #[test]
    fn bdat_line_ending_check() {
        let mut c = LineEndingCheck::default();
        c.feed(b"a\r");
        c.feed(b"\nb\r\n");
        c.finish();
        assert!(!c.bare_cr && !c.bare_lf);
        let mut c = LineEndingCheck::default();
        c.feed(b"a\nb");
        assert!(c.bare_lf);
        let mut c = LineEndingCheck::default();
        c.feed(b"a\rb");
        assert!(c.bare_cr);
        let mut c = LineEndingCheck::default();
        c.feed(b"a\r");
        c.finish();
        assert!(c.bare_cr);
    }
}
