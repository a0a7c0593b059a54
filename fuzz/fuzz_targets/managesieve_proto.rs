//! Fuzz target for the ManageSieve codec (facteur-managesieve-proto):
//! random bytes, with bytes >= 0x80 mapped onto ManageSieve tokens
//! (commands, quoted strings with escapes, literal announcements, numbers,
//! CRLF), split into lines and literals as a session would feed them.
//! Checks: no panic; a literal asked for is never over the limit; tokens
//! per command stay bounded; a command that parses writes back as a
//! response string without panicking.

#![no_main]

use facteur_managesieve_proto::{self as proto, Need, Receiver, Token};
use libfuzzer_sys::fuzz_target;

const TOKENS: &[&[u8]] = &[
    b"\r\n", b" ", b"PUTSCRIPT ", b"GETSCRIPT ", b"AUTHENTICATE ", b"HAVESPACE ", b"RENAMESCRIPT ",
    b"NOOP ", b"CAPABILITY", b"\"main\"", b"\"a\\\"b\\\\\"", b"{5+}", b"{3}", b"{99999999+}", b"12",
    b"\"PLAIN\"", b"\"", b"\\", b"{", b"}", b"+", b"\0",
];

const MAX: usize = 64;

fuzz_target!(|data: &[u8]| {
    let mut input = Vec::with_capacity(data.len() * 4);
    for &b in data {
        if b & 0x80 != 0 {
            input.extend_from_slice(TOKENS[(b & 0x7f) as usize % TOKENS.len()]);
        } else {
            input.push(b);
        }
    }
    let mut rx = Receiver::new(MAX);
    let mut rest = &input[..];
    while let Some(end) = rest.windows(2).position(|w| w == b"\r\n") {
        let line = &rest[..end];
        rest = &rest[end + 2..];
        match rx.line(line) {
            Ok(Need::Literal { size, .. }) => {
                assert!(size <= MAX);
                let n = size.min(rest.len());
                rx.literal(rest[..n].to_vec());
                rest = &rest[n..];
            }
            Ok(Need::Done(tokens)) => {
                assert!(tokens.len() <= proto::MAX_TOKENS + 1);
                if let Ok(cmd) = proto::parse(&tokens) {
                    let mut out = Vec::new();
                    proto::write_string(&mut out, format!("{cmd:?}").as_bytes());
                }
                for t in tokens {
                    if let Token::Str(s) = t {
                        let mut out = Vec::new();
                        proto::write_string(&mut out, &s);
                    }
                }
            }
            Err(_) => rx.reset(),
        }
    }
});
