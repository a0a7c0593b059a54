//! Fuzz target for IMAP output encoding (issue 14): whatever a message or
//! a client put in a string — CR, LF, NUL, quotes, backslashes, 8-bit
//! bytes — `encode::string` and `encode::astring` write it so that it
//! cannot end the response line or start another: a quoted string holds no
//! CR, LF or NUL and unescapes to exactly the input; anything else is a
//! literal whose announced length is the input's. And what the server
//! writes, a client parses back to the same value (through our own command
//! parser, which reads the same syntax: `a LOGIN <astring> pw`).

#![no_main]

use facteur_imap_proto::{Command, encode, parse_command};
use libfuzzer_sys::fuzz_target;

/// Checks one encoded string (quoted or literal) against `s`.
fn check_string(enc: &[u8], s: &[u8]) {
    if let Some(inner) = enc.strip_prefix(b"\"") {
        let inner = inner.strip_suffix(b"\"").expect("a closing quote");
        assert!(!inner.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0), "{enc:?}");
        let mut out = Vec::new();
        let mut it = inner.iter();
        while let Some(&b) = it.next() {
            if b == b'\\' {
                let &next = it.next().expect("an escaped character");
                assert!(next == b'"' || next == b'\\', "{enc:?}");
                out.push(next);
            } else {
                assert!(b != b'"', "an unescaped quote: {enc:?}");
                out.push(b);
            }
        }
        assert_eq!(out, s);
    } else {
        let header = format!("{{{}}}\r\n", s.len());
        assert!(enc.starts_with(header.as_bytes()), "{enc:?}");
        assert_eq!(&enc[header.len()..], s);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, s)) = data.split_first() else { return };
    let utf8 = flags & 1 == 1;
    let mut enc = Vec::new();
    encode::string(&mut enc, s, utf8);
    // NUL may not go out at all outside literal8: it is sent as 0x80.
    let sent: Vec<u8> = s.iter().map(|&b| if b == 0 { 0x80 } else { b }).collect();
    assert!(!enc.contains(&0));
    check_string(&enc, &sent);

    let Ok(text) = std::str::from_utf8(s) else { return };
    let mut enc = Vec::new();
    encode::astring(&mut enc, text, utf8);
    if !enc.starts_with(b"\"") && !enc.starts_with(b"{") {
        // An atom: nothing to escape, and nothing a line could end at.
        assert_eq!(enc, s);
        assert!(!s.is_empty() && s.iter().all(|&b| b > 0x20 && b < 0x7f));
    } else {
        check_string(&enc, &sent);
    }
    // Read back as a client (or our parser) reads it.
    let mut cmd = b"a LOGIN ".to_vec();
    cmd.extend_from_slice(&enc);
    cmd.extend_from_slice(b" pw");
    match parse_command(&cmd) {
        Ok(t) => match t.command {
            Command::Login { user, .. } => assert_eq!(user.as_bytes(), &sent[..]),
            other => panic!("{other:?}"),
        },
        // The parser takes only UTF-8 text (a NUL sent as 0x80 is not).
        Err(e) => assert!(std::str::from_utf8(&sent).is_err(), "{cmd:?}: {e:?}"),
    }
});
