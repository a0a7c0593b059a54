//! BODY and BODYSTRUCTURE (RFC 9051 §7.5.2, grammar §9 `body`).
//!
//! Conventions (Dovecot's, written down): type, subtype, parameter names,
//! encoding and disposition type are sent upper-case (they are
//! case-insensitive tokens); parameter values as given. A part with no
//! Content-Type (or an invalid one) is `"TEXT" "PLAIN" ("CHARSET"
//! "us-ascii")` — or `"MESSAGE" "RFC822"` inside multipart/digest — with
//! encoding `"7BIT"` when absent. Size is the octets of the encoded body
//! as stored; lines are [`crate::lines`] of the body. Parameters are RFC
//! 2231-decoded by mail-parser: with `utf8` they are sent as UTF-8; without
//! it a non-ASCII value is sent RFC 2231-encoded (`"NAME*"
//! "utf-8''%C3%A9..."`), like Dovecot.
//!
//! Cases the grammar cannot express as parsed: a multipart whose
//! delimiters never appear gets one empty text/plain part (Dovecot does the
//! same, the grammar needs at least one); a multipart or message/rfc822
//! beyond the nesting limit, or a message/rfc822 that is base64 or
//! quoted-printable encoded, is described as APPLICATION/OCTET-STREAM (a
//! "MESSAGE" "RFC822" body must be followed by an envelope we cannot build).
//! BODYSTRUCTURE adds MD5 (the Content-MD5 value), disposition, language
//! and location.

use std::ops::Range;

use facteur_imap_proto::encode::{nstring, string};

use crate::envelope::{self, decode_text};
use crate::header::{self, unfold};
use crate::mime::{self, Entity, Kind};

/// The empty part Dovecot puts inside a multipart that has none.
const EMPTY_PART: &[u8] = b"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0";

pub(crate) fn write(out: &mut Vec<u8>, raw: &[u8], e: &Entity<'_>, ext: bool, utf8: bool) {
    write_as(out, raw, e, ext, utf8, None);
}

/// [`write`], with a leaf described as its `decoded` content would be
/// (URLFETCH's BODYPARTSTRUCTURE beside BINARY, RFC 5524 §3): encoding
/// 7BIT, 8BIT or BINARY by what the octets hold, their size, and 0 lines
/// (as Dovecot gives).
pub(crate) fn write_as(
    out: &mut Vec<u8>,
    raw: &[u8],
    e: &Entity<'_>,
    ext: bool,
    utf8: bool,
    decoded: Option<&[u8]>,
) {
    match &e.kind {
        Kind::Multipart(kids) => {
            out.push(b'(');
            if kids.is_empty() {
                out.extend_from_slice(EMPTY_PART);
                if ext {
                    out.extend_from_slice(b" NIL NIL NIL NIL");
                }
                out.push(b')');
            }
            for k in kids {
                write(out, raw, k, ext, utf8);
            }
            out.push(b' ');
            string(out, e.subtype.to_ascii_uppercase().as_bytes(), utf8);
            if ext {
                let f = MimeFields::of(raw, e.header.clone());
                out.push(b' ');
                params(out, e, utf8);
                extension(out, &f, utf8);
            }
            out.push(b')');
        }
        kind => {
            let f = MimeFields::of(raw, e.header.clone());
            let opaque = matches!(kind, Kind::Leaf)
                && (e.mtype == "multipart"
                    || e.mtype == "message" && (e.subtype == "rfc822" || e.subtype == "global"));
            out.push(b'(');
            if opaque {
                out.extend_from_slice(b"\"APPLICATION\" \"OCTET-STREAM\"");
            } else {
                string(out, e.mtype.to_ascii_uppercase().as_bytes(), utf8);
                out.push(b' ');
                string(out, e.subtype.to_ascii_uppercase().as_bytes(), utf8);
            }
            out.push(b' ');
            params(out, e, utf8);
            out.push(b' ');
            nstring(out, f.id.map(unfold).as_deref(), utf8);
            out.push(b' ');
            match f.description {
                Some(d) if utf8 => string(out, decode_text(d).as_bytes(), utf8),
                d => nstring(out, d.map(unfold).as_deref(), utf8),
            }
            out.push(b' ');
            let body = raw.get(e.body.clone()).unwrap_or_default();
            match decoded.filter(|_| matches!(kind, Kind::Leaf)) {
                Some(d) => {
                    let enc = if d.contains(&0) {
                        "BINARY"
                    } else if d.is_ascii() {
                        "7BIT"
                    } else {
                        "8BIT"
                    };
                    string(out, enc.as_bytes(), utf8);
                    out.extend_from_slice(format!(" {}", d.len()).as_bytes());
                    if e.is_text() {
                        out.extend_from_slice(b" 0");
                    }
                }
                None => {
                    let enc = e.cte.as_deref().map(str::to_ascii_uppercase);
                    string(out, enc.as_deref().unwrap_or("7BIT").as_bytes(), utf8);
                    out.extend_from_slice(format!(" {}", body.len()).as_bytes());
                    if let Kind::Message(inner) = kind {
                        out.push(b' ');
                        envelope::write(out, raw, inner.header.clone(), utf8);
                        out.push(b' ');
                        write(out, raw, inner, ext, utf8);
                        out.extend_from_slice(format!(" {}", crate::lines(body)).as_bytes());
                    } else if e.is_text() {
                        out.extend_from_slice(format!(" {}", crate::lines(body)).as_bytes());
                    }
                }
            }
            if ext {
                out.push(b' ');
                nstring(out, f.md5.map(unfold).as_deref(), utf8);
                extension(out, &f, utf8);
            }
            out.push(b')');
        }
    }
}

/// The MIME fields BODYSTRUCTURE reports beyond Content-Type, first
/// occurrence of each, raw values.
#[derive(Default)]
struct MimeFields<'a> {
    id: Option<&'a [u8]>,
    description: Option<&'a [u8]>,
    disposition: Option<&'a [u8]>,
    language: Option<&'a [u8]>,
    location: Option<&'a [u8]>,
    md5: Option<&'a [u8]>,
}

impl<'a> MimeFields<'a> {
    fn of(raw: &'a [u8], header: Range<usize>) -> Self {
        let mut m = MimeFields::default();
        for f in header::fields(raw, header) {
            let slot = if f.is(b"content-id") {
                &mut m.id
            } else if f.is(b"content-description") {
                &mut m.description
            } else if f.is(b"content-disposition") {
                &mut m.disposition
            } else if f.is(b"content-language") {
                &mut m.language
            } else if f.is(b"content-location") {
                &mut m.location
            } else if f.is(b"content-md5") {
                &mut m.md5
            } else {
                continue;
            };
            slot.get_or_insert(f.value);
        }
        m
    }
}

/// ` dsp lang loc` (the leading space included).
fn extension(out: &mut Vec<u8>, f: &MimeFields<'_>, utf8: bool) {
    out.push(b' ');
    match f.disposition.and_then(mime::content_type) {
        Some(d) if !d.ctype().trim().is_empty() => {
            out.push(b'(');
            string(out, d.ctype().trim().to_ascii_uppercase().as_bytes(), utf8);
            out.push(b' ');
            attribute_list(
                out,
                d.attributes()
                    .unwrap_or_default()
                    .iter()
                    .map(|a| (a.name.as_ref(), a.value.as_ref())),
                utf8,
            );
            out.push(b')');
        }
        _ => out.extend_from_slice(b"NIL"),
    }
    out.push(b' ');
    let langs: Vec<Vec<u8>> = f
        .language
        .map(|l| {
            unfold(l)
                .split(|&b| b == b',')
                .map(|t| {
                    t.iter()
                        .copied()
                        .filter(|b| !b.is_ascii_whitespace())
                        .collect::<Vec<u8>>()
                })
                .filter(|t| !t.is_empty())
                .collect()
        })
        .unwrap_or_default();
    match langs.as_slice() {
        [] => out.extend_from_slice(b"NIL"),
        [one] => string(out, one, utf8),
        many => {
            out.push(b'(');
            for (i, l) in many.iter().enumerate() {
                if i > 0 {
                    out.push(b' ');
                }
                string(out, l, utf8);
            }
            out.push(b')');
        }
    }
    out.push(b' ');
    nstring(out, f.location.map(unfold).as_deref(), utf8);
}

fn params(out: &mut Vec<u8>, e: &Entity<'_>, utf8: bool) {
    match &e.ctype {
        Some(ct) => attribute_list(
            out,
            ct.attributes()
                .unwrap_or_default()
                .iter()
                .map(|a| (a.name.as_ref(), a.value.as_ref())),
            utf8,
        ),
        None if e.is_text() => out.extend_from_slice(b"(\"CHARSET\" \"us-ascii\")"),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// `("NAME" "value" ...)` or NIL when empty.
fn attribute_list<'x>(
    out: &mut Vec<u8>,
    attrs: impl Iterator<Item = (&'x str, &'x str)>,
    utf8: bool,
) {
    let mut any = false;
    for (name, value) in attrs {
        out.push(if any { b' ' } else { b'(' });
        any = true;
        let name = name.to_ascii_uppercase();
        if utf8 || value.is_ascii() {
            string(out, name.as_bytes(), utf8);
            out.push(b' ');
            string(out, value.as_bytes(), utf8);
        } else {
            string(out, format!("{name}*").as_bytes(), utf8);
            out.push(b' ');
            string(out, rfc2231(value).as_bytes(), utf8);
        }
    }
    out.extend_from_slice(if any { b")" } else { b"NIL" });
}

/// RFC 2231 §4 extended value: `utf-8''` then percent-encoding.
fn rfc2231(value: &str) -> String {
    let mut s = String::from("utf-8''");
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            s.push(char::from(b));
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use crate::Message;

    fn bs(raw: &str, ext: bool, utf8: bool) -> String {
        let mut out = Vec::new();
        Message::parse(raw.as_bytes()).body_structure(&mut out, ext, utf8);
        String::from_utf8_lossy(&out).into_owned()
    }

    const ALTERNATIVE: &str = "From: a@b.example\r\n\
Content-Type: multipart/alternative; boundary=\"alt\"\r\n\
\r\n\
--alt\r\n\
Content-Type: text/plain; charset=utf-8\r\n\
Content-Transfer-Encoding: quoted-printable\r\n\
\r\n\
caf=C3=A9\r\n\
two\r\n\
--alt\r\n\
Content-Type: text/html; charset=\"UTF-8\"\r\n\
\r\n\
<p>caf\u{e9}</p>\r\n\
--alt--\r\n";

    const MIXED: &str = "Subject: report\r\n\
MIME-Version: 1.0\r\n\
Content-Type: multipart/mixed; boundary=mix\r\n\
\r\n\
This is a MIME message.\r\n\
--mix\r\n\
\r\n\
see attached\r\n\
--mix\r\n\
Content-Type: application/pdf; name=\"r.pdf\"\r\n\
Content-Transfer-Encoding: base64\r\n\
Content-Disposition: attachment;\r\n filename*0*=utf-8''r%C3%A9;\r\n filename*1=sum.pdf\r\n\
Content-ID: <id1@x>\r\n\
Content-Description: the report\r\n\
Content-Language: en, fr\r\n\
\r\n\
JVBERi0xLjQK\r\n\
JVBERi0xLjQK\r\n\
--mix--\r\n";

    #[test]
    fn structures() {
        let nested = "Subject: outer\r\n\
Content-Type: multipart/mixed; boundary=o\r\n\
\r\n\
--o\r\n\
Content-Type: message/rfc822\r\n\
\r\n\
Subject: inner\r\n\
From: x@y.example\r\n\
\r\n\
hi\r\n\
there\r\n\
--o--\r\n";
        let cases: &[(&str, bool, bool, &str)] = &[
            (
                "Subject: x\r\n\r\nhello\r\nworld\r\n",
                false,
                false,
                "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 14 2)",
            ),
            (
                "Subject: x\r\n\r\nhello\r\nworld\r\n",
                true,
                false,
                "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 14 2 NIL NIL NIL NIL)",
            ),
            (
                ALTERNATIVE,
                false,
                false,
                "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 14 1)\
(\"TEXT\" \"HTML\" (\"CHARSET\" \"UTF-8\") NIL NIL \"7BIT\" 12 0) \"ALTERNATIVE\")",
            ),
            (
                ALTERNATIVE,
                true,
                false,
                "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 14 1 NIL NIL NIL NIL)\
(\"TEXT\" \"HTML\" (\"CHARSET\" \"UTF-8\") NIL NIL \"7BIT\" 12 0 NIL NIL NIL NIL) \"ALTERNATIVE\" (\"BOUNDARY\" \"alt\") NIL NIL NIL)",
            ),
            (
                MIXED,
                true,
                false,
                "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 12 0 NIL NIL NIL NIL)\
(\"APPLICATION\" \"PDF\" (\"NAME\" \"r.pdf\") \"<id1@x>\" \"the report\" \"BASE64\" 26 NIL \
(\"ATTACHMENT\" (\"FILENAME*\" \"utf-8''r%C3%A9sum.pdf\")) (\"en\" \"fr\") NIL) \"MIXED\" (\"BOUNDARY\" \"mix\") NIL NIL NIL)",
            ),
            (
                MIXED,
                true,
                true,
                "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 12 0 NIL NIL NIL NIL)\
(\"APPLICATION\" \"PDF\" (\"NAME\" \"r.pdf\") \"<id1@x>\" \"the report\" \"BASE64\" 26 NIL \
(\"ATTACHMENT\" (\"FILENAME\" \"r\u{e9}sum.pdf\")) (\"en\" \"fr\") NIL) \"MIXED\" (\"BOUNDARY\" \"mix\") NIL NIL NIL)",
            ),
            (
                nested,
                false,
                false,
                "((\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" 46 \
(NIL \"inner\" ((NIL NIL \"x\" \"y.example\")) ((NIL NIL \"x\" \"y.example\")) ((NIL NIL \"x\" \"y.example\")) NIL NIL NIL NIL NIL) \
(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 9 1) 4) \"MIXED\")",
            ),
            (
                "Content-Type: multipart/mixed; boundary=zz\r\n\r\nno parts\r\n",
                false,
                false,
                "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" 0 0) \"MIXED\")",
            ),
            (
                "Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogeA0KDQp4\r\n",
                false,
                false,
                "(\"APPLICATION\" \"OCTET-STREAM\" NIL NIL NIL \"BASE64\" 22)",
            ),
            (
                "Content-Type: image/png\r\nContent-Disposition: inline\r\nContent-Location: http://x/\r\n a.png\r\n\r\n",
                true,
                false,
                "(\"IMAGE\" \"PNG\" NIL NIL NIL \"7BIT\" 0 NIL (\"INLINE\" NIL) NIL \"http://x/ a.png\")",
            ),
        ];
        for (raw, ext, utf8, want) in cases {
            assert_eq!(&bs(raw, *ext, *utf8), want, "{raw:?}");
        }
    }
}
