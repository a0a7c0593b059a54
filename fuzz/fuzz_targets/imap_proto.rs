//! Fuzz target for the IMAP command codec (facteur-imap-proto).
//!
//! Random bytes are mapped onto IMAP's alphabet (command words, search keys,
//! fetch items, sections, partials, parentheses, brackets, quotes, escapes,
//! literal announcements with their CRLF, numbers at the u32/u64 edges,
//! dates, 8-bit and NUL bytes) so most inputs look like commands, then fed
//! to `parse_command`, line by line to `literal_at_end`, and as text to the
//! modified UTF-7 codec. Checks: no panic; an error's tag is the input's
//! leading tag; parsed sequence sets give sorted, merged ranges that agree
//! with `contains`; every fetch item has a label; a literal is only found at
//! a line ending in `}` (and only ends an APPEND line, CATENATE's TEXT
//! parts included); IMAP URLs parse or say why (a URLAUTH rump parses
//! alone); UTF-7 round-trips and `decode` accepts only
//! canonical encodings (`encode(decode(x)) == x`).

#![no_main]

use facteur_imap_proto::{
    AppendStep, Command, FetchAttr, SearchKey, SequenceSet, Store, append_next, literal_at_end, parse_command, parse_imap_url,
    section_label, utf7,
};
use libfuzzer_sys::fuzz_target;

const TOKENS: &[&[u8]] = &[
    b"a ", b"A1 UID ", b"FETCH ", b"STORE ", b"SEARCH ", b"COPY ", b"MOVE ", b"EXPUNGE", b"SELECT ", b"EXAMINE ",
    b"LIST ", b"LSUB ", b"STATUS ", b"APPEND ", b"CREATE ", b"RENAME ", b"LOGIN ", b"AUTHENTICATE PLAIN ", b"ID ",
    b"ENABLE ", b"SETQUOTA ", b"NOOP", b"IDLE", b" ", b"(", b")", b"[", b"]", b"<", b">", b".", b"\"", b"\\", b"{3}\r\n",
    b"{0}\r\n", b"{5+}\r\n", b"~{4}", b"{1", b"}", b"\r\n", b"1", b"0", b"*", b"$", b",", b":", b"1:*", b"4294967295",
    b"4294967296", b"18446744073709551616", b"9223372036854775808", b"BODY[", b"BODY.PEEK[", b"BINARY[", b"BINARY.SIZE[",
    b"HEADER.FIELDS (", b"HEADER.FIELDS.NOT (", b"TEXT", b"MIME", b"HEADER", b"<0.100>", b"FLAGS", b"+FLAGS.SILENT ",
    b"(UNCHANGEDSINCE 5) ", b"(CHANGEDSINCE 1 VANISHED)", b"(CONDSTORE)", b"(QRESYNC (1 2 1:5 (1,3 2,9)))", b"ALL", b"FULL",
    b"NOT ", b"OR ", b"CHARSET UTF-8 ", b"RETURN (", b"MIN COUNT SAVE", b"MODSEQ \"/flags/\\\\seen\" all ", b"SINCE ",
    b"1-Feb-2024", b"\"29-Feb-2024 23:59:60 -0130\"", b"\\Seen", b"$Junk", b"NIL", b"INBOX", b"(SUBSCRIBED RECURSIVEMATCH) ",
    b"RETURN (CHILDREN STATUS (MESSAGES SIZE))", b"(USE (\\Sent))", b"dGVzdA==", b"=", b"\0", b"\xc3\xa9", b"\xff", b"&",
    b"&AOk-", b"&-", b"-", b"%", b"CATENATE (", b"URL \"/INBOX/;uid=1/;section=1.MIME/;partial=0.5\"", b"TEXT ",
    b"/;UIDVALIDITY=", b"imap://u@h/", b"GENURLAUTH ", b"URLFETCH ", b"RESETKEY", b" INTERNAL", b";urlauth=",
    b"anonymous", b"authuser", b"user+u", b"submit+u", b":internal:", b"0123456789abcdef0123456789abcdef",
    b";expire=2026-12-31T23:59:59Z", b"+01:00", b" BINARY BODYPARTSTRUCTURE)",
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

fn check_set(set: &SequenceSet, largest: u32) {
    let r = set.ranges(largest);
    for w in r.windows(2) {
        // Sorted, disjoint and not adjacent.
        assert!(w[0].1 < w[1].0 && w[1].0 - w[0].1 > 1);
    }
    for &(lo, hi) in &r {
        assert!(lo <= hi);
        for n in [lo, hi, lo.wrapping_sub(1), hi.wrapping_add(1)] {
            let inside = r.iter().any(|&(a, b)| a <= n && n <= b);
            assert_eq!(set.contains(n, largest), inside);
        }
    }
}

fn check_key(k: &SearchKey, largest: u32, budget: &mut u32) {
    if *budget == 0 {
        return;
    }
    *budget -= 1;
    match k {
        SearchKey::Seq(s) | SearchKey::Uid(s) => check_set(s, largest),
        SearchKey::Not(k) => check_key(k, largest, budget),
        SearchKey::Or(a, b) => {
            check_key(a, largest, budget);
            check_key(b, largest, budget);
        }
        SearchKey::And(v) => v.iter().for_each(|k| check_key(k, largest, budget)),
        _ => {}
    }
}

fn check_command(input: &[u8], largest: u32) {
    match parse_command(input) {
        Ok(t) => {
            assert!(!t.tag.is_empty() && input.starts_with(t.tag.as_bytes()));
            match &t.command {
                Command::Fetch { set, attrs, .. } => {
                    check_set(set, largest);
                    for a in attrs {
                        let l = section_label(a);
                        assert!(!l.is_empty() && !l.starts_with("BODY.PEEK") && !l.starts_with("BINARY.PEEK"));
                        if let FetchAttr::BodySection { partial: None, .. } = a {
                            assert!(l.ends_with(']'));
                        }
                    }
                }
                Command::Store(Store { set, .. }) | Command::Copy { set, .. } | Command::Move { set, .. } => check_set(set, largest),
                Command::UidExpunge(set) => check_set(set, largest),
                Command::Search { key, .. } => check_key(key, largest, &mut 10_000),
                Command::Append { steps, .. } => match steps.last() {
                    // A literal's announcement ends the input.
                    Some(AppendStep::Message(_) | AppendStep::Text(_)) => {
                        assert!(input.ends_with(b"}"));
                        let line = input.rsplit(|&b| b == b'\n').next().unwrap_or(input);
                        assert!(matches!(literal_at_end(line), Ok(Some(_))));
                    }
                    // Or a CATENATE of URLs only, closed.
                    last => assert_eq!(last, Some(&AppendStep::EndCatenate)),
                },
                _ => {}
            }
        }
        Err(e) => {
            assert!(!e.message.is_empty());
            if let Some(tag) = e.tag {
                assert!(input.starts_with(tag.as_bytes()));
                let rest = &input[tag.len()..];
                assert!(rest.is_empty() || rest[0] == b' ');
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&head, rest)) = data.split_first() else {
        return;
    };
    let largest = [0, 1, 5, u32::MAX][usize::from(head & 3)];
    let input = expand(rest);

    check_command(&input, largest);
    check_command(rest, largest);

    for line in input.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if let Ok(Some(_)) = literal_at_end(line) {
            assert!(line.ends_with(b"}"));
        }
        // APPEND's next lines: a literal only ever ends one
        for catenate in [false, true] {
            if let Ok(steps) = append_next(line, catenate) {
                for s in steps.iter().rev().skip(1) {
                    assert!(!matches!(s, AppendStep::Message(_) | AppendStep::Text(_)));
                }
            }
        }
        let text = String::from_utf8_lossy(line);
        if let Ok(u) = parse_imap_url(&text) {
            assert!(u.uid > 0 && !u.mailbox.is_empty());
            if let Some(a) = &u.urlauth {
                // the rump is a prefix of the URL, and a URL made of the rump
                // alone parses to the same but the token
                assert!(text.starts_with(&a.rump) && u.user.is_some());
                assert_eq!(a.mechanism.is_some(), a.token.is_some());
                let rump = parse_imap_url(&a.rump).expect("a rump parses");
                assert_eq!(rump.urlauth.as_ref().map(|r| &r.access), Some(&a.access));
            }
        }
    }

    for text in [String::from_utf8_lossy(&input), String::from_utf8_lossy(rest)] {
        let enc = utf7::encode(&text);
        assert!(enc.bytes().all(|b| (0x20..0x7f).contains(&b)));
        assert_eq!(utf7::decode(&enc).as_deref(), Some(&*text));
        if let Some(dec) = utf7::decode(&text) {
            assert_eq!(utf7::encode(&dec), text);
        }
    }
});
