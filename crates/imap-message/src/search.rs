//! SEARCH matching on one message (RFC 9051 §6.4.4): HEADER, FROM, TO, CC,
//! BCC, SUBJECT (top-level fields), BODY (decoded text parts), TEXT (header
//! or body), and the SENT* dates.
//!
//! Case-insensitive means Unicode lower-casing of both sides
//! (`str::to_lowercase`), which covers simple case folding for everything
//! but a few special cases (e.g. final sigma, Turkish dotless i), then a
//! memchr::memmem substring search: linear, never quadratic.
//!
//! Values are decoded before matching: RFC 2047 encoded words in header
//! fields; address fields also in their display form (`Name <a@b>`); in
//! bodies the transfer encoding is undone and the charset converted to
//! UTF-8 (mail-parser's decoders; unknown charsets read as UTF-8, lossy).
//! BODY walks multiparts and message/rfc822 parts (whose header counts as
//! body text of the outer message) and looks at text/* parts only.

use mail_parser::{HeaderValue, decoders::charsets::map::charset_decoder, parsers::MessageStream};

use crate::Message;
use crate::decode::{self, Cte};
use crate::envelope::{Item, decode_text, parse_addresses};
use crate::header;
use crate::mime::{Entity, Kind};

const ADDRESS_FIELDS: [&[u8]; 11] = [
    b"from",
    b"to",
    b"cc",
    b"bcc",
    b"sender",
    b"reply-to",
    b"resent-from",
    b"resent-to",
    b"resent-cc",
    b"resent-bcc",
    b"resent-sender",
];

fn fold(s: &str) -> String {
    s.to_lowercase()
}

fn has(hay: &str, folded_needle: &str) -> bool {
    memchr::memmem::find(fold(hay).as_bytes(), folded_needle.as_bytes()).is_some()
}

fn date(m: &Message<'_>) -> Option<mail_parser::DateTime> {
    let f = header::fields(m.raw, m.header_range()).find(|f| f.is(b"date"))?;
    match MessageStream::new(f.value).parse_date() {
        HeaderValue::DateTime(d) if d.is_valid() => Some(d),
        _ => None,
    }
}

pub(crate) fn sent_date(m: &Message<'_>) -> Option<i64> {
    date(m).map(|d| d.to_timestamp())
}

pub(crate) fn sent_day(m: &Message<'_>) -> Option<(i32, u8, u8)> {
    date(m).map(|d| (i32::from(d.year), d.month, d.day))
}

/// The decoded text a field value is matched on.
fn field_text(name: &[u8], value: &[u8]) -> String {
    let mut text = decode_text(value);
    if ADDRESS_FIELDS.iter().any(|a| name.eq_ignore_ascii_case(a)) {
        for item in parse_addresses(value) {
            text.push('\n');
            match item {
                Item::Mailbox {
                    name: Some(n),
                    addr,
                    ..
                } => {
                    text.push_str(&format!("{n} <{addr}>"));
                }
                Item::Mailbox {
                    name: None, addr, ..
                } => text.push_str(&addr),
                Item::GroupStart(g) => {
                    text.push_str(&g);
                    text.push(':');
                }
                Item::GroupEnd => text.push(';'),
            }
        }
    }
    text
}

pub(crate) fn header_contains(m: &Message<'_>, field: &str, needle: &str) -> bool {
    let needle = fold(needle);
    header::fields(m.raw, m.header_range())
        .filter(|f| f.is(field.as_bytes()))
        .any(|f| needle.is_empty() || has(&field_text(f.name, f.value), &needle))
}

/// Every field of a header block, `name: decoded value` per line.
fn header_text(raw: &[u8], range: std::ops::Range<usize>) -> String {
    let mut text = String::new();
    for f in header::fields(raw, range) {
        text.push_str(&String::from_utf8_lossy(f.name));
        text.push_str(": ");
        text.push_str(&field_text(f.name, f.value));
        text.push('\n');
    }
    text
}

/// The decoded text of a text/* leaf.
fn body_text(raw: &[u8], e: &Entity<'_>) -> String {
    body_text_prefix(raw, e, usize::MAX)
}

/// The decoded text of the first `max` octets of a text/* leaf's body
/// (a base64 or quoted-printable sequence cut at the end is dropped or
/// kept as it is by the lenient decoders).
pub(crate) fn body_text_prefix(raw: &[u8], e: &Entity<'_>, max: usize) -> String {
    let body = raw.get(e.body.clone()).unwrap_or_default();
    let body = &body[..body.len().min(max)];
    let bytes = decode::decode(Cte::of(e.cte.as_deref()), body).unwrap_or_else(|| body.to_vec());
    match e
        .param("charset")
        .and_then(|c| charset_decoder(c.trim().as_bytes()))
    {
        Some(convert) => convert(&bytes),
        None => String::from_utf8(bytes)
            .unwrap_or_else(|err| String::from_utf8_lossy(err.as_bytes()).into_owned()),
    }
}

fn entity_contains(raw: &[u8], e: &Entity<'_>, needle: &str) -> bool {
    match &e.kind {
        Kind::Multipart(kids) => kids.iter().any(|k| entity_contains(raw, k, needle)),
        Kind::Message(inner) => {
            has(&header_text(raw, inner.header.clone()), needle)
                || entity_contains(raw, inner, needle)
        }
        Kind::Leaf => e.is_text() && has(&body_text(raw, e), needle),
    }
}

/// The texts BODY and TEXT look in, folded as they fold them: the header
/// block (TEXT only), then, walking the body, the header of each
/// message/rfc822 part and each text/* leaf. A message matches TEXT (or
/// BODY) for a needle only if the folded needle is inside one of them, so
/// an index built from these (facteur-imapd's fts.rs) names every message
/// that can match.
pub(crate) fn texts(m: &Message<'_>) -> Vec<String> {
    fn walk(raw: &[u8], e: &Entity<'_>, out: &mut Vec<String>) {
        match &e.kind {
            Kind::Multipart(kids) => kids.iter().for_each(|k| walk(raw, k, out)),
            Kind::Message(inner) => {
                out.push(fold(&header_text(raw, inner.header.clone())));
                walk(raw, inner, out);
            }
            Kind::Leaf if e.is_text() => out.push(fold(&body_text(raw, e))),
            Kind::Leaf => {}
        }
    }
    let mut out = vec![fold(&header_text(m.raw, m.header_range()))];
    walk(m.raw, m.tree(), &mut out);
    out
}

pub(crate) fn body_contains(m: &Message<'_>, needle: &str) -> bool {
    let needle = fold(needle);
    needle.is_empty() || entity_contains(m.raw, m.tree(), &needle)
}

pub(crate) fn text_contains(m: &Message<'_>, needle: &str) -> bool {
    let folded = fold(needle);
    folded.is_empty()
        || has(&header_text(m.raw, m.header_range()), &folded)
        || entity_contains(m.raw, m.tree(), &folded)
}

#[cfg(test)]
mod tests {
    use crate::Message;

    const MAIL: &str = "Date: Mon, 02 Jan 2006 23:30:00 -0800\r\n\
From: =?ISO-8859-1?Q?Ren=E9?= Dupont <rene@example.fr>\r\n\
To: Team: ann@a.example;\r\n\
Cc: bob@b.example\r\n\
Subject: =?UTF-8?Q?R=C3=A9union?= demain\r\n\
X-Tag: first\r\n\
X-Tag: second\r\n\
Content-Type: multipart/mixed; boundary=b\r\n\
\r\n\
--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
Caf=E9 cr=E8me, GRAND\r\n\
--b\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
c2VjcmV0\r\n\
--b\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: forwarded thing\r\n\
\r\n\
Content-Transfer-Encoding: base64\r\n\
--b\r\n\
Content-Type: text/html; charset=utf-8\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PHA+w6l0w6k8L3A+\r\n\
--b--\r\n";

    #[test]
    fn headers() {
        let m = Message::parse(MAIL.as_bytes());
        let cases: &[(&str, &str, bool)] = &[
            ("subject", "réunion", true),
            ("SUBJECT", "RÉUNION DEM", true),
            ("from", "rené", true),
            ("from", "rené dupont <rene@example.fr>", true),
            ("from", "RENE@EXAMPLE", true),
            ("to", "team", true),
            ("to", "ann@a.example", true),
            ("cc", "bob", true),
            ("bcc", "", false),
            ("cc", "", true),
            ("x-tag", "second", true),
            ("x-tag", "third", false),
            ("subject", "forwarded", false),
        ];
        for (field, needle, want) in cases {
            assert_eq!(m.header_contains(field, needle), *want, "{field} {needle}");
        }
        assert_eq!(m.sent_date(), Some(1_136_273_400));
        assert_eq!(m.sent_day(), Some((2006, 1, 2)));
    }

    #[test]
    fn bodies() {
        let m = Message::parse(MAIL.as_bytes());
        let cases: &[(&str, bool, bool)] = &[
            ("café crème", true, true),
            ("grand", true, true),
            ("secret", false, false),        // not a text part
            ("forwarded thing", true, true), // inner message header is body text
            ("été", true, true),             // base64 html
            ("<p>", true, true),
            ("réunion", false, true), // header only
            ("x-tag: second", false, true),
            ("nowhere", false, false),
            ("", true, true),
        ];
        for (needle, body, text) in cases {
            assert_eq!(m.body_contains(needle), *body, "body {needle}");
            assert_eq!(m.text_contains(needle), *text, "text {needle}");
        }
    }

    #[test]
    fn every_match_is_inside_one_of_the_texts() {
        let m = Message::parse(MAIL.as_bytes());
        let texts = m.search_texts();
        for needle in [
            "café crème",
            "grand",
            "forwarded thing",
            "été",
            "<p>",
            "réunion",
            "x-tag: second",
        ] {
            let folded = needle.to_lowercase();
            assert!(m.text_contains(needle));
            assert!(
                texts.iter().any(|t| t.contains(&folded)),
                "{needle} in none of {texts:?}"
            );
        }
        // The base64 attachment is no text.
        assert!(!texts.iter().any(|t| t.contains("secret")));
    }

    #[test]
    fn odd_messages() {
        let m = Message::parse(b"\xff\xfegarbage\r\n\r\n\xe9t\xe9");
        assert!(m.body_contains("\u{fffd}t"));
        assert!(!m.header_contains("subject", ""));
        assert_eq!(m.sent_date(), None);
        let m = Message::parse(b"Date: not a date\r\n\r\n");
        assert_eq!(m.sent_day(), None);
        let m =
            Message::parse(b"Subject: plain\nDate: 1 Feb 2024 00:30:00 +0100\n\nBare LF body\n");
        assert!(m.body_contains("bare lf"));
        assert!(m.header_contains("Subject", "PLAIN"));
        assert_eq!(m.sent_day(), Some((2024, 2, 1)));
        assert_eq!(m.sent_date(), Some(1_706_743_800));
    }
}
