//! Fuzz target for the POP3 codec: random bytes are mapped onto the
//! protocol's alphabet (command words, numbers, CR, LF, '.', SASL text) so
//! that most inputs look like a session, then pushed through the line framer
//! and the command parser, and, as a message, through the dot-stuffer and
//! the TOP limiter, split where the input says. Checks: no panic; the
//! framer's buffer stays under its limit; the stuffed message has no
//! terminator before its end and exactly the size reported (also by
//! `measure`); TOP sends a prefix of the message.

#![no_main]

use facteur_pop3_proto::{DotStuffer, TopLimiter, parse_command};
use libfuzzer_sys::fuzz_target;

const TOKENS: &[&[u8]] = &[
    b"\r\n", b"\n", b"\r", b".", b"\r\n.\r\n", b"USER a@b", b"PASS ", b"AUTH PLAIN ", b"AUTH", b"STAT", b"LIST",
    b"RETR ", b"DELE ", b"TOP ", b"UIDL", b"NOOP", b"RSET", b"QUIT", b"CAPA", b"STLS", b" ", b"1", b"0",
    b"4294967296", b"99999999999999999999999", b"=", b"*", b"AGEAYg==", b"\0", b"\xc3\xa9", b"\xff", b"Subject: x",
];

fn expand(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for &b in data {
        if b & 0x80 != 0 {
            out.extend_from_slice(TOKENS[(b & 0x7f) as usize % TOKENS.len()]);
        } else {
            out.push(b);
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let split = (head as usize % 31) + 1;
    let top_lines = u64::from(head % 5);
    let input = expand(rest);

    // Commands: one per line (line framing itself is fuzzed with the
    // shared LineFramer in the smtp_codec target).
    for l in input.split(|&b| b == b'\n') {
        let l = l.strip_suffix(b"\r").unwrap_or(l);
        let _ = parse_command(l);
    }

    // The same bytes as a message: RETR.
    let mut stuffer = DotStuffer::new();
    let mut measure = DotStuffer::new();
    let mut out = Vec::new();
    for chunk in input.chunks(split) {
        stuffer.push(chunk, &mut out);
        measure.measure(chunk);
    }
    let size = stuffer.finish(&mut out);
    assert_eq!(size as usize + 3, out.len());
    assert_eq!(measure.message_len(), size);
    assert!(out.ends_with(b".\r\n"));
    let body = &out[..out.len() - 3];
    assert!(body.is_empty() || body.ends_with(b"\r\n"));
    // No line of the body is a lone "." (after any LF, or at the start).
    let mut start = 0;
    while start < body.len() {
        let end = body[start..].iter().position(|&b| b == b'\n').map_or(body.len(), |i| start + i + 1);
        let line = &body[start..end];
        assert!(line != b".\r\n" && line != b".\n" && line != b".");
        start = end;
    }

    // TOP: a prefix of the message.
    let mut top = TopLimiter::new(top_lines);
    let mut taken = Vec::new();
    for chunk in input.chunks(split) {
        let n = top.take(chunk);
        assert!(n <= chunk.len());
        taken.extend_from_slice(&chunk[..n]);
        if top.is_done() {
            break;
        }
        assert_eq!(n, chunk.len());
    }
    assert!(input.starts_with(&taken));
});
