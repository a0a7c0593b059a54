//! BODY[section] (RFC 9051 §6.4.5) and BINARY[part] (RFC 3516).
//!
//! Part numbers: a message's parts are its top entity's children when that
//! is a multipart, else part 1 is the top entity itself (its body is the
//! message body). The parts of a multipart are its children; the parts of a
//! message/rfc822 part are the parts of the message it encapsulates.
//! HEADER, HEADER.FIELDS[.NOT] and TEXT after a part number need that part
//! to be message/rfc822 and then refer to the inner message; MIME is the
//! part's own header block. A part that does not exist gives None.
//!
//! Cost: a top-level HEADER / HEADER.FIELDS / TEXT / [] never builds the
//! MIME tree; output is the only copy made.

use facteur_imap_proto::{Section, SectionText};
use std::collections::HashSet;

use crate::decode::{self, Cte};
use crate::mime::{Entity, Kind};
use crate::{BinaryError, Message, header};

fn slice(raw: &[u8], r: std::ops::Range<usize>) -> &[u8] {
    raw.get(r).unwrap_or_default()
}

/// The entity named by a non-empty part path.
pub(crate) fn resolve<'t, 'a>(root: &'t Entity<'a>, path: &[u32]) -> Option<&'t Entity<'a>> {
    let mut cur: Option<&'t Entity<'a>> = None;
    for &k in path {
        let idx = usize::try_from(k.checked_sub(1)?).ok()?;
        let top = match cur {
            None => root,
            Some(e) => match &e.kind {
                Kind::Message(inner) => inner,
                Kind::Multipart(kids) => {
                    cur = Some(kids.get(idx)?);
                    continue;
                }
                Kind::Leaf => return None,
            },
        };
        cur = Some(match &top.kind {
            Kind::Multipart(kids) => kids.get(idx)?,
            _ if idx == 0 => top,
            _ => return None,
        });
    }
    cur
}

/// The fields of `raw[range]` whose names are (or, with `not`, are not) in
/// `names`, each as it appears with its line end, then an empty line.
pub(crate) fn header_fields(
    raw: &[u8],
    range: std::ops::Range<usize>,
    names: &[String],
    not: bool,
) -> Vec<u8> {
    let mut out = Vec::new();
    // A long list is looked up by hash: the cost stays one pass over the
    // fields, whatever the number of names a client sends.
    let many: Option<HashSet<Vec<u8>>> = (names.len() > 8).then(|| {
        names
            .iter()
            .map(|n| n.as_bytes().to_ascii_lowercase())
            .collect()
    });
    let mut lower = Vec::new();
    for f in header::fields(raw, range) {
        let listed = match &many {
            Some(set) => {
                lower.clear();
                lower.extend(f.name.iter().map(u8::to_ascii_lowercase));
                set.contains(&lower)
            }
            None => names.iter().any(|n| f.is(n.as_bytes())),
        };
        if listed != not {
            out.extend_from_slice(f.raw);
            if !f.raw.ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
    }
    out.extend_from_slice(b"\r\n");
    out
}

pub(crate) fn section(m: &Message<'_>, s: &Section) -> Option<Vec<u8>> {
    let raw = m.raw;
    if s.part.is_empty() {
        let h = m.header_range();
        return match &s.text {
            None => Some(raw.to_vec()),
            Some(SectionText::Header) => Some(slice(raw, h).to_vec()),
            Some(SectionText::HeaderFields(n)) => Some(header_fields(raw, h, n, false)),
            Some(SectionText::HeaderFieldsNot(n)) => Some(header_fields(raw, h, n, true)),
            Some(SectionText::Text) => Some(slice(raw, h.end..raw.len()).to_vec()),
            Some(SectionText::Mime) => None,
        };
    }
    let e = resolve(m.tree(), &s.part)?;
    let inner = || match &e.kind {
        Kind::Message(inner) => Some(inner),
        _ => None,
    };
    Some(match &s.text {
        None => slice(raw, e.body.clone()).to_vec(),
        Some(SectionText::Mime) => slice(raw, e.header.clone()).to_vec(),
        Some(SectionText::Header) => slice(raw, inner()?.header.clone()).to_vec(),
        Some(SectionText::HeaderFields(n)) => header_fields(raw, inner()?.header.clone(), n, false),
        Some(SectionText::HeaderFieldsNot(n)) => {
            header_fields(raw, inner()?.header.clone(), n, true)
        }
        Some(SectionText::Text) => slice(raw, inner()?.body.clone()).to_vec(),
    })
}

pub(crate) fn binary(m: &Message<'_>, part: &[u32]) -> Result<Vec<u8>, BinaryError> {
    if part.is_empty() {
        return Ok(m.raw.to_vec());
    }
    let e = resolve(m.tree(), part).ok_or(BinaryError::NoSuchPart)?;
    let body = slice(m.raw, e.body.clone());
    match e.kind {
        // Multiparts and encapsulated messages cannot be encoded other than
        // 7bit/8bit/binary (RFC 2045 §6.4): their octets are the content.
        Kind::Multipart(_) | Kind::Message(_) => Ok(body.to_vec()),
        Kind::Leaf => {
            decode::decode(Cte::of(e.cte.as_deref()), body).ok_or(BinaryError::UnknownCte)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_name_lists_match_as_short_ones() {
        let raw = b"From: a\r\nSubject: s\r\nX-a: 1\r\nx-B: 2\r\nTo: t\r\n\r\nbody";
        let h = 0..header::body_start(raw, 0..raw.len());
        let few: Vec<String> = ["subject", "X-B"].iter().map(|s| s.to_string()).collect();
        let mut many = few.clone();
        many.extend((0..20).map(|i| format!("X-Other-{i}")));
        for not in [false, true] {
            assert_eq!(
                header_fields(raw, h.clone(), &few, not),
                header_fields(raw, h.clone(), &many, not),
            );
        }
        assert_eq!(
            header_fields(raw, h, &many, false),
            b"Subject: s\r\nx-B: 2\r\n\r\n"
        );
    }

    const NESTED: &str = "From: a@example.org\r\n\
Subject: nest\r\n\
Content-Type: multipart/mixed; boundary=\"outer\"\r\n\
\r\n\
preamble\r\n\
--outer\r\n\
Content-Type: text/plain\r\n\
\r\n\
part one\r\n\
--outer\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
X-Inner: 1\r\n\
Content-Type: multipart/alternative; boundary=in\r\n\
\r\n\
--in\r\n\
\r\n\
plain\r\n\
--in\r\n\
Content-Type: text/html\r\n\
Content-Transfer-Encoding: base64\r\n\
\r\n\
PGI+aGk8L2I+\r\n\
--in--\r\n\
--outer\r\n\
Content-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: x-uuencode\r\n\
\r\n\
begin 644 x\r\n\
--outer--\r\n";

    fn sec(part: &[u32], text: Option<SectionText>) -> Section {
        Section {
            part: part.to_vec(),
            text,
        }
    }

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn sections() {
        let m = Message::parse(NESTED.as_bytes());
        let hdr_end = NESTED.find("\r\n\r\n").unwrap_or(0) + 4;
        let cases: Vec<(Section, Option<&str>)> = vec![
            (sec(&[], None), Some(NESTED)),
            (
                sec(&[], Some(SectionText::Header)),
                Some(&NESTED[..hdr_end]),
            ),
            (sec(&[], Some(SectionText::Text)), Some(&NESTED[hdr_end..])),
            (sec(&[], Some(SectionText::Mime)), None),
            (
                sec(
                    &[],
                    Some(SectionText::HeaderFields(names(&["SUBJECT", "x-none"]))),
                ),
                Some("Subject: nest\r\n\r\n"),
            ),
            (
                sec(
                    &[],
                    Some(SectionText::HeaderFieldsNot(names(&[
                        "content-type",
                        "from",
                    ]))),
                ),
                Some("Subject: nest\r\n\r\n"),
            ),
            (sec(&[1], None), Some("part one")),
            (
                sec(&[1], Some(SectionText::Mime)),
                Some("Content-Type: text/plain\r\n\r\n"),
            ),
            (sec(&[1], Some(SectionText::Header)), None),
            (sec(&[1, 1], None), None),
            (sec(&[2, 1], Some(SectionText::Mime)), Some("\r\n")),
            (sec(&[2, 1], None), Some("plain")),
            (sec(&[2, 2], None), Some("PGI+aGk8L2I+")),
            (sec(&[2, 3], None), None),
            (
                sec(&[2], Some(SectionText::HeaderFields(names(&["x-inner"])))),
                Some("X-Inner: 1\r\n\r\n"),
            ),
            (
                sec(&[2], Some(SectionText::Text)),
                Some(
                    "--in\r\n\r\nplain\r\n--in\r\nContent-Type: text/html\r\nContent-Transfer-Encoding: base64\r\n\r\nPGI+aGk8L2I+\r\n--in--",
                ),
            ),
            (sec(&[3], None), Some("begin 644 x")),
            (sec(&[4], None), None),
            (sec(&[0], None), None),
        ];
        for (s, want) in cases {
            let got = m.section(&s);
            assert_eq!(
                got.as_deref().map(String::from_utf8_lossy).as_deref(),
                want,
                "{s:?}"
            );
        }
        let inner = m.section(&sec(&[2], None)).unwrap_or_default();
        assert!(inner.starts_with(b"Subject: inner\r\n"));
        assert!(inner.ends_with(b"--in--"));
        assert_eq!(
            m.section(&sec(&[2], Some(SectionText::Header))).as_deref(),
            Some(&b"Subject: inner\r\nX-Inner: 1\r\nContent-Type: multipart/alternative; boundary=in\r\n\r\n"[..])
        );
    }

    #[test]
    fn single_part_numbers() {
        let raw = b"Subject: x\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9\r\n";
        let m = Message::parse(raw);
        assert_eq!(
            m.section(&sec(&[1], None)).as_deref(),
            Some(&b"caf=C3=A9\r\n"[..])
        );
        assert_eq!(m.section(&sec(&[2], None)), None);
        assert_eq!(
            m.section(&sec(&[1], Some(SectionText::Mime)))
                .map(|v| v.len()),
            Some(59)
        );
        assert_eq!(m.binary(&[1]).as_deref(), Ok("café\r\n".as_bytes()));
        assert_eq!(m.binary(&[]).as_deref(), Ok(&raw[..]));
        assert_eq!(m.binary(&[2]), Err(BinaryError::NoSuchPart));
    }

    #[test]
    fn binaries() {
        let m = Message::parse(NESTED.as_bytes());
        assert_eq!(m.binary(&[2, 2]).as_deref(), Ok(&b"<b>hi</b>"[..]));
        assert_eq!(m.binary(&[1]).as_deref(), Ok(&b"part one"[..]));
        assert_eq!(m.binary(&[3]), Err(BinaryError::UnknownCte));
        assert_eq!(m.binary(&[9]), Err(BinaryError::NoSuchPart));
        assert!(
            m.binary(&[2])
                .is_ok_and(|b| b.starts_with(b"Subject: inner"))
        );
    }

    #[test]
    fn odd_headers() {
        // No body separator: all header, empty text.
        let m = Message::parse(b"Subject: x\r\nFrom: y");
        assert_eq!(
            m.section(&sec(&[], Some(SectionText::Text))).as_deref(),
            Some(&b""[..])
        );
        assert_eq!(
            m.section(&sec(&[], Some(SectionText::HeaderFields(names(&["from"])))))
                .as_deref(),
            Some(&b"From: y\r\n\r\n"[..])
        );
        // Folded field kept as it appears; bare LF kept.
        let m = Message::parse(b"Subject: a\n b\nTo: c\n\nbody");
        assert_eq!(
            m.section(&sec(
                &[],
                Some(SectionText::HeaderFields(names(&["subject"])))
            ))
            .as_deref(),
            Some(&b"Subject: a\n b\n\r\n"[..])
        );
        assert_eq!(m.section(&sec(&[1], None)).as_deref(), Some(&b"body"[..]));
        // Garbage.
        let m = Message::parse(b"\xff\xfe\x00garbage");
        assert_eq!(m.section(&sec(&[1], None)).as_deref(), Some(&b""[..]));
        assert_eq!(
            m.section(&sec(&[], Some(SectionText::HeaderFieldsNot(vec![]))))
                .as_deref(),
            Some(&b"\xff\xfe\x00garbage\r\n\r\n"[..])
        );
    }
}
