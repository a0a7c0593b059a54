//! Fuzz target for the SMTP/LMTP codec: random bytes are mapped onto the
//! protocol's alphabet (command words, CR, LF, '.', '<', '>', ':' and
//! parameters) so that most inputs look like a session, then pushed through
//! the line framer, the command parser and the DATA receiver, split where the
//! input says. Checks: no panic; the framer's buffer never exceeds the limit;
//! a parsed BDAT size or MAIL SIZE is exactly the number written on the line
//! (never a wrapped or saturated one); no parsed address or host holds a
//! control character; the DATA receiver's output never exceeds its limit; a
//! message it accepts never holds a bare LF unless it reported one.

#![no_main]

use facteur_smtp_codec::{Command, DataReceiver, parse_command};
use facteur_util::line::{LineEvent, LineFramer};
use libfuzzer_sys::fuzz_target;

const TOKENS: &[&[u8]] = &[
    b"\r\n", b"\n", b"\r", b".", b"\r\n.\r\n", b"LHLO x", b"EHLO x", b"MAIL FROM:<", b"RCPT TO:<", b">", b"@", b"a",
    b" SIZE=", b" BODY=8BITMIME", b" SMTPUTF8", b" NOTIFY=SUCCESS,FAILURE", b" ORCPT=rfc822;", b"DATA", b"BDAT ",
    b" LAST", b"RSET", b"QUIT", b"\xc3\xa9", b"\xff", b"\0", b"9999999999999999999999", b"\"", b"\\",
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

/// The digits that follow `key` (case-insensitive) on the line.
fn digits_after(line: &[u8], key: &[u8]) -> Option<String> {
    let up = line.to_ascii_uppercase();
    let at = up.windows(key.len()).rposition(|w| w == key)? + key.len();
    let d: Vec<u8> = line[at..].iter().take_while(|b| b.is_ascii_digit()).copied().collect();
    String::from_utf8(d).ok()
}

fn check_command(line: &[u8]) {
    let Ok(cmd) = parse_command(line) else { return };
    let clean = |s: &str| assert!(!s.chars().any(char::is_control), "{s:?}");
    match cmd {
        Command::Bdat { size, .. } => {
            let d = digits_after(line, b"BDAT ").expect("BDAT has digits");
            assert_eq!(d.trim_start_matches('0').to_string(), if size == 0 { String::new() } else { size.to_string() });
        }
        Command::Mail(m) => {
            clean(&m.address);
            if let Some(n) = m.params.size {
                let d = digits_after(line, b"SIZE=").expect("SIZE has digits");
                assert_eq!(d.parse::<u128>().ok(), Some(u128::from(n)));
            }
            if let Some(e) = &m.params.envid {
                clean(e);
            }
        }
        Command::Rcpt(r) => {
            clean(&r.address);
            if let Some(o) = &r.params.orcpt {
                clean(o);
            }
        }
        Command::Ehlo(h) | Command::Helo(h) | Command::Lhlo(h) => {
            clean(&h);
            assert!(!h.contains(' '));
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let (split, rest) = match data.split_first() {
        Some((s, r)) => ((*s as usize % 31) + 1, r),
        None => return,
    };
    let input = expand(rest);
    let mut framer = LineFramer::new(64);
    let mut buf = Vec::new();
    for chunk in input.chunks(split) {
        buf.extend_from_slice(chunk);
        loop {
            let (used, ev) = framer.next(&buf);
            let more = ev.is_some();
            if let Some(LineEvent::Line(l)) = ev {
                check_command(l);
            }
            buf.drain(..used);
            if !more {
                break;
            }
        }
        assert!(buf.len() <= 64);
    }
    let mut rx = DataReceiver::new(256);
    let mut out = Vec::new();
    for chunk in input.chunks(split) {
        let used = rx.feed(chunk, &mut out);
        assert!(used <= chunk.len());
        if rx.is_done() {
            break;
        }
    }
    let o = rx.outcome();
    assert!(out.len() <= 256);
    if !o.bare_lf && !o.too_big {
        for (i, &b) in out.iter().enumerate() {
            if b == b'\n' {
                assert!(i > 0 && out[i - 1] == b'\r', "unreported bare LF");
            }
        }
    }
});
