//! Fuzz target for the numbers clients send (issue 14: a parser that
//! saturates or wraps reads `BDAT 99999999999999999999999` as another size
//! than a front end does, and the bytes after it run as commands). Each
//! input is a run of digits of any length (leading zeros included) put in
//! every numeric position of IMAP, POP3 and SMTP commands. Checks, against
//! the exact decimal value computed here with no limit: a parse that
//! succeeds carries exactly that value, and a value out of the field's
//! range is refused, never wrapped or saturated.

#![no_main]

use facteur_imap_proto::{Command as Imap, FetchAttr, SeqBound, SequenceSet, literal_at_end, parse_command};
use facteur_pop3_proto::{Command as Pop3, parse_command as parse_pop3};
use facteur_smtp_codec::{Command as Smtp, parse_command as parse_smtp};
use libfuzzer_sys::fuzz_target;

/// The exact value of `digits` if it fits in 128 bits (more than any
/// protocol field), else `None` ("huge").
fn exact(digits: &str) -> Option<u128> {
    let significant = digits.trim_start_matches('0');
    if significant.len() > 38 {
        return None;
    }
    Some(significant.parse::<u128>().unwrap_or(0))
}

fn in_range(v: Option<u128>, lo: u128, hi: u128) -> bool {
    v.is_some_and(|v| v >= lo && v <= hi)
}

fn imap(digits: &str, v: Option<u128>) {
    // A message number: nz-number, at most 2^32 - 1.
    match parse_command(format!("a FETCH {digits} FLAGS").as_bytes()) {
        Ok(t) => match t.command {
            Imap::Fetch { set: SequenceSet::Ranges(r), .. } => {
                assert!(in_range(v, 1, u32::MAX as u128), "{digits} accepted");
                assert_eq!(r, vec![(SeqBound::Num(v.unwrap() as u32), SeqBound::Num(v.unwrap() as u32))]);
            }
            other => panic!("{digits}: {other:?}"),
        },
        Err(_) => assert!(!in_range(v, 1, u32::MAX as u128), "{digits} refused"),
    }
    // A mod-sequence: at most 2^63 - 1.
    match parse_command(format!("a FETCH 1 (FLAGS) (CHANGEDSINCE {digits})").as_bytes()) {
        Ok(t) => match t.command {
            Imap::Fetch { changed_since, .. } => {
                assert!(in_range(v, 0, i64::MAX as u128), "{digits} accepted");
                assert_eq!(changed_since.map(u128::from), v);
            }
            other => panic!("{digits}: {other:?}"),
        },
        Err(_) => assert!(!in_range(v, 1, i64::MAX as u128), "{digits} refused"),
    }
    // A partial's origin: at most 2^32 - 1 here (refused beyond, never
    // saturated: the response repeats it).
    match parse_command(format!("a FETCH 1 BODY.PEEK[]<{digits}.1>").as_bytes()) {
        Ok(t) => match t.command {
            Imap::Fetch { attrs, .. } => match attrs.first() {
                Some(FetchAttr::BodySection { partial: Some((o, 1)), .. }) => {
                    assert_eq!(Some(u128::from(*o)), v, "{digits}");
                }
                other => panic!("{digits}: {other:?}"),
            },
            other => panic!("{digits}: {other:?}"),
        },
        Err(_) => assert!(!in_range(v, 0, u32::MAX as u128), "{digits} refused"),
    }
    // A literal's announced size: any u64.
    match literal_at_end(format!("a LOGIN {{{digits}}}").as_bytes()) {
        Ok(Some(l)) => assert_eq!(Some(u128::from(l.len)), v, "{digits}"),
        Ok(None) => panic!("{digits}: no literal seen"),
        Err(_) => assert!(digits.len() > 20 || !in_range(v, 0, u64::MAX as u128), "{digits} refused"),
    }
}

/// POP3 arguments are 40 characters at most (RFC 2449 §4): a longer one
/// is refused whatever its value.
fn pop3_range(digits: &str, v: Option<u128>, lo: u128, hi: u128) -> bool {
    digits.len() <= 40 && in_range(v, lo, hi)
}

fn pop3(digits: &str, v: Option<u128>) {
    match parse_pop3(format!("RETR {digits}").as_bytes()) {
        Ok(Pop3::Retr(n)) => {
            assert!(pop3_range(digits, v, 1, u32::MAX as u128), "{digits} accepted");
            assert_eq!(Some(u128::from(n)), v);
        }
        Ok(other) => panic!("{digits}: {other:?}"),
        Err(_) => assert!(!pop3_range(digits, v, 1, u32::MAX as u128), "{digits} refused"),
    }
    match parse_pop3(format!("TOP 1 {digits}").as_bytes()) {
        Ok(Pop3::Top { lines, .. }) => {
            assert!(pop3_range(digits, v, 0, u64::MAX as u128), "{digits} accepted");
            assert_eq!(Some(u128::from(lines)), v);
        }
        Ok(other) => panic!("{digits}: {other:?}"),
        Err(_) => assert!(!pop3_range(digits, v, 0, u64::MAX as u128), "{digits} refused"),
    }
}

/// SMTP numbers are read only up to 20 digits (the most a u64 needs),
/// leading zeros included: a longer one is refused whatever its value, and
/// a refused BDAT ends the connection (nothing after it runs as a command).
fn smtp_range(digits: &str, v: Option<u128>) -> bool {
    digits.len() <= 20 && in_range(v, 0, u64::MAX as u128)
}

fn smtp(digits: &str, v: Option<u128>) {
    match parse_smtp(format!("BDAT {digits} LAST\r\n").as_bytes()) {
        Ok(Smtp::Bdat { size, last }) => {
            assert!(last && smtp_range(digits, v), "{digits} accepted");
            assert_eq!(Some(u128::from(size)), v);
        }
        Ok(other) => panic!("{digits}: {other:?}"),
        Err(_) => assert!(!smtp_range(digits, v), "{digits} refused"),
    }
    match parse_smtp(format!("MAIL FROM:<a@b.test> SIZE={digits}\r\n").as_bytes()) {
        Ok(Smtp::Mail(m)) => {
            assert!(smtp_range(digits, v), "{digits} accepted");
            assert_eq!(m.params.size.map(u128::from), v);
        }
        Ok(other) => panic!("{digits}: {other:?}"),
        Err(_) => assert!(!smtp_range(digits, v), "{digits} refused"),
    }
}

fuzz_target!(|data: &[u8]| {
    // Digits only; the input's length sets the number's length.
    let digits: String = data.iter().map(|b| char::from(b'0' + b % 10)).collect();
    if digits.is_empty() || digits.len() > 200 {
        return;
    }
    let v = exact(&digits);
    imap(&digits, v);
    pop3(&digits, v);
    smtp(&digits, v);
});
