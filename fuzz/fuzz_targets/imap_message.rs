//! Fuzz target for the IMAP views of a message (facteur-imap-message):
//! random bytes, with bytes >= 0x80 mapped onto MIME tokens (boundaries,
//! Content-Type lines, encodings, encoded words, CRLF) so that most inputs
//! are nested MIME, are parsed as a message and every view is taken.
//! Checks: no panic; BODY[] and BINARY[] are the message; HEADER followed by
//! TEXT is the message; every part's body and MIME header are slices of the
//! message; HEADER.FIELDS output ends with an empty line; the message with
//! its binary parts re-encoded (APPEND of a literal8) has none left; the
//! base subject of a base subject is itself; THREAD of its ids ends; a
//! PREVIEW has at most 200 characters.

#![no_main]

use facteur_imap_message::Message;
use facteur_imap_proto::{Section, SectionText};
use libfuzzer_sys::fuzz_target;

const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"--b\r\n",
    b"--b--\r\n",
    b"--c\r\n",
    b"--c--",
    b"Content-Type: multipart/mixed; boundary=b\r\n",
    b"Content-Type: multipart/alternative; boundary=\"c\"\r\n",
    b"Content-Type: multipart/digest; boundary=b\r\n",
    b"Content-Type: message/rfc822\r\n",
    b"Content-Type: text/plain; charset=iso-8859-1\r\n",
    b"Content-Type: text/html; charset*=utf-8''%C3%A9\r\n",
    b"Content-Type: application/x; name*0=a; name*1*=%E9\r\n",
    b"Content-Transfer-Encoding: base64\r\n",
    b"Content-Transfer-Encoding: quoted-printable\r\n",
    b"Content-Transfer-Encoding: x-uuencode\r\n",
    b"Content-Transfer-Encoding: binary\r\n",
    b"Content-Disposition: attachment; filename=\"x\"\r\n",
    b"Content-Language: en, fr\r\n",
    b"Subject: =?utf-8?q?caf=C3=A9?= ",
    b"From: \"N, M\" <a@b>, G: c@d, e@f;\r\n",
    b"To: =?iso-8859-1?b?6Q==?= <x@y>\r\n",
    b"Date: Mon, 02 Jan 2006 23:30:00 -0800\r\n",
    b"=C3=A9",
    b"=\r\n",
    b"aGVsbG8=",
    b" \t",
    b":",
    b"\xff",
    b"\xc3\xa9",
    b"\0",
];

fn expand(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() * 2);
    for &b in data {
        if b & 0x80 != 0 {
            out.extend_from_slice(TOKENS[(b & 0x7f) as usize % TOKENS.len()]);
        } else {
            out.push(b);
        }
    }
    out
}

fn is_slice_of(part: &[u8], whole: &[u8]) -> bool {
    part.is_empty() || memchr::memmem::find(whole, part).is_some()
}

fuzz_target!(|data: &[u8]| {
    let raw = expand(data);
    let m = Message::parse(&raw);
    let mut out = Vec::new();
    for utf8 in [false, true] {
        m.envelope(&mut out, utf8);
        m.body_structure(&mut out, false, utf8);
        m.body_structure(&mut out, true, utf8);
    }
    let sec = |part: &[u32], text: Option<SectionText>| Section {
        part: part.to_vec(),
        text,
    };
    assert_eq!(m.section(&sec(&[], None)).as_deref(), Some(&raw[..]));
    assert_eq!(m.binary(&[]).as_deref(), Ok(&raw[..]));
    let mut whole = m
        .section(&sec(&[], Some(SectionText::Header)))
        .unwrap_or_default();
    whole.extend(
        m.section(&sec(&[], Some(SectionText::Text)))
            .unwrap_or_default(),
    );
    assert_eq!(whole, raw);
    let names = vec!["subject".to_string(), "Content-Type".to_string()];
    let paths: &[&[u32]] = &[
        &[],
        &[1],
        &[2],
        &[3],
        &[1, 1],
        &[1, 2],
        &[2, 1],
        &[2, 2],
        &[1, 1, 1],
        &[2, 1, 2],
    ];
    for p in paths {
        for text in [
            None,
            Some(SectionText::Mime),
            Some(SectionText::Header),
            Some(SectionText::Text),
            Some(SectionText::HeaderFields(names.clone())),
            Some(SectionText::HeaderFieldsNot(names.clone())),
        ] {
            let fields = matches!(
                text,
                Some(SectionText::HeaderFields(_) | SectionText::HeaderFieldsNot(_))
            );
            if let Some(v) = m.section(&sec(p, text)) {
                if fields {
                    assert!(v.ends_with(b"\r\n"));
                } else {
                    assert!(is_slice_of(&v, &raw));
                }
            }
        }
        let _ = m.binary(p);
        // BODYPARTSTRUCTURE (URLAUTH=BINARY): for every part that exists,
        // a parenthesised list; the whole message's is BODYSTRUCTURE
        let mut one = Vec::new();
        if m.part_structure(p, &mut one, false, None) {
            assert!(one.starts_with(b"(") && one.ends_with(b")"));
            assert!(m.section(&sec(p, None)).is_some() || p.is_empty());
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    assert!(m.part_structure(&[], &mut a, true, None));
    m.body_structure(&mut b, true, true);
    assert_eq!(a, b);
    if let Some(converted) = m.binary_to_base64() {
        assert_eq!(Message::parse(&converted).binary_to_base64(), None);
    }
    let _ = (m.sent_date(), m.sent_day());
    // SORT and THREAD keys: base subjects are idempotent.
    let (base, _) = facteur_imap_message::sort::base_subject(&m.subject());
    let (again, _) = facteur_imap_message::sort::base_subject(&base);
    assert_eq!(again, base.to_ascii_uppercase());
    for f in ["from", "to", "cc"] {
        let _ = (m.sort_address(f), m.display_address(f));
    }
    assert!(m.preview().chars().count() <= 200);
    let ids = m.thread_ids();
    let msg = facteur_imap_message::thread::ThreadMessage {
        id: 1,
        date: 0,
        base_subject: base,
        reply: false,
        ids,
    };
    let forest = facteur_imap_message::thread::references(&[msg.clone(), msg]);
    let mut text = String::new();
    facteur_imap_message::thread::write(&mut text, &forest);
    for needle in ["", "caf\u{e9}", "A", "subject"] {
        let _ = m.header_contains("subject", needle);
        let _ = m.header_contains("from", needle);
        let _ = m.body_contains(needle);
        let _ = m.text_contains(needle);
    }
});
