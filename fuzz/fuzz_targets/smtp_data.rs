//! Fuzz target for the DATA receiver against a plain model of RFC 5321
//! §4.1.1.4 and §4.5.2 written here (issue 14): lines are separated by
//! CRLF only (a bare CR or LF never starts a line, so `\n.\n` and friends
//! cannot end a message), the message ends at the first line that is a
//! lone `.`, and one leading dot is removed from every other line. Fed in
//! chunks whose sizes the input chooses, the receiver must end exactly
//! where the model ends (the bytes after belong to the next command), give
//! exactly the model's message and its bare CR / bare LF findings, and,
//! before the end, have emitted only a prefix of what the model gives once
//! the message is ended. With a size limit, the output is a prefix and
//! `too_big` says whether the limit was passed.

#![no_main]

use facteur_smtp_codec::DataReceiver;
use libfuzzer_sys::fuzz_target;

struct Model {
    /// Where the message ends (just after `CRLF.CRLF`), if it does.
    end: Option<usize>,
    out: Vec<u8>,
    bare_cr: bool,
    bare_lf: bool,
}

fn model(input: &[u8]) -> Model {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut end = None;
    while let Some(k) = input[pos..].windows(2).position(|w| w == b"\r\n") {
        let line = &input[pos..pos + k];
        if line == b"." {
            end = Some(pos + k + 2);
            break;
        }
        out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        out.extend_from_slice(b"\r\n");
        pos += k + 2;
    }
    let seen = &input[..end.unwrap_or(input.len())];
    let bare_lf = seen.iter().enumerate().any(|(i, &b)| b == b'\n' && (i == 0 || seen[i - 1] != b'\r'));
    let bare_cr = seen.iter().enumerate().any(|(i, &b)| b == b'\r' && seen.get(i + 1).is_some_and(|&n| n != b'\n'));
    Model { end, out, bare_cr, bare_lf }
}

/// Feeds `input` in chunks of `split` bytes; returns the bytes used, the
/// output and the receiver.
fn receive(input: &[u8], split: usize, max: u64) -> (usize, Vec<u8>, DataReceiver) {
    let mut rx = DataReceiver::new(max);
    let mut out = Vec::new();
    let mut used = 0;
    for chunk in input.chunks(split) {
        let n = rx.feed(chunk, &mut out);
        assert!(n <= chunk.len());
        used += n;
        if rx.is_done() {
            break;
        }
        assert_eq!(n, chunk.len(), "bytes left before the end");
    }
    (used, out, rx)
}

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, raw)) = data.split_first() else { return };
    // Map onto the bytes that matter so that most inputs have lines.
    let input: Vec<u8> = raw
        .iter()
        .map(|&b| match b % 8 {
            0 => b'\r',
            1 => b'\n',
            2 => b'.',
            _ => b'a' + b % 3,
        })
        .collect();
    let split = usize::from(knobs % 16) + 1;
    let m = model(&input);
    let (used, out, rx) = receive(&input, split, 0);
    let o = rx.outcome();
    match m.end {
        Some(end) => {
            assert!(rx.is_done());
            assert_eq!(used, end, "where the message ends");
            assert_eq!(out, m.out, "the message");
            assert_eq!((o.bare_cr, o.bare_lf), (m.bare_cr, m.bare_lf), "bare line ends");
            assert_eq!(o.size, m.out.len() as u64);
        }
        None => {
            assert!(!rx.is_done(), "ended where the model does not");
            assert_eq!(used, input.len());
            let mut ended = input.clone();
            ended.extend_from_slice(b"\r\n.\r\n");
            let full = model(&ended);
            assert!(full.out.starts_with(&out), "emitted what the end would change");
        }
    }
    // With a limit: a prefix, and too_big exactly when it was passed.
    let max = u64::from(knobs / 16) * 8 + 1;
    let (_, limited, rx) = receive(&input, split, max);
    let lo = rx.outcome();
    assert!(out.starts_with(&limited));
    assert!(limited.len() as u64 <= max);
    assert_eq!(lo.size, o.size);
    assert_eq!(lo.too_big, o.size > max);
});
