//! Field-level views for other readers of a message than IMAP (Sieve's
//! header, address, body and date tests): the top-level fields as on the
//! wire, a field value decoded, the addresses of an address field, and the
//! decoded text of the parts a reader asks for.
//!
//! Same guarantees as the rest of the crate: no panic on any input, no
//! copy beyond the output.

use crate::envelope::{Item, decode_text, parse_addresses};
use crate::mime::{Entity, Kind};
use crate::{Message, header};

/// The top-level header fields: (name, value after the colon, folding and
/// line end included).
pub fn header_fields(raw: &[u8]) -> impl Iterator<Item = (&[u8], &[u8])> {
    header::fields(raw, 0..header::body_start(raw, 0..raw.len())).map(|f| (f.name, f.value))
}

/// Where the body starts (after the blank line; the end when none).
pub fn body_start(raw: &[u8]) -> usize {
    header::body_start(raw, 0..raw.len())
}

/// A field value unfolded and with RFC 2047 encoded words decoded.
pub fn decode(value: &[u8]) -> String {
    decode_text(value)
}

/// The addresses of an address-list field value, in order: each mailbox's
/// address (source route dropped), group members included, group names
/// not.
pub fn addresses(value: &[u8]) -> Vec<String> {
    parse_addresses(value)
        .into_iter()
        .filter_map(|i| match i {
            Item::Mailbox { addr, .. } => Some(addr),
            _ => None,
        })
        .collect()
}

/// A header value with non-ASCII text written as RFC 2047 encoded words
/// (UTF-8, base64; at most 45 octets per word so each stays under the
/// 75-character limit); ASCII text is returned as it is.
pub fn encode(s: &str) -> String {
    if s.is_ascii() {
        return s.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for ch in s.chars() {
        if chunk.len() + ch.len_utf8() > 45 {
            words.push(crate::decode::encoded_word(&chunk));
            chunk.clear();
        }
        chunk.push(ch);
    }
    if !chunk.is_empty() {
        words.push(crate::decode::encoded_word(&chunk));
    }
    words.join(" ")
}

/// The text of an HTML body, its markup dropped (entities decoded, script
/// and style left out).
pub fn html_to_text(html: &str) -> String {
    crate::preview::strip_html(html)
}

/// One part handed to [`Message::body_parts`].
#[derive(Debug)]
pub struct Part<'a> {
    /// Lower-case type and subtype.
    pub mtype: &'a str,
    pub subtype: &'a str,
    /// The body with its transfer encoding undone and, for text/*, its
    /// charset converted to UTF-8 (other parts: lossy UTF-8).
    pub text: String,
}

impl Message<'_> {
    /// Visit every leaf part (multiparts walked, an attached message's
    /// parts too) for which `want(type, subtype)` holds, with its decoded
    /// text. A message/rfc822 part itself is offered with its header as
    /// text when `want("message", subtype)` holds.
    pub fn body_parts(&self, want: &dyn Fn(&str, &str) -> bool, visit: &mut dyn FnMut(Part<'_>)) {
        walk(self.raw, self.tree(), want, visit);
    }
}

/// A multipart body's prologue (before the first boundary line) and
/// epilogue (after the closing one), without the line ends that belong to
/// the boundaries; the empty ones left out.
fn prologue_epilogue(body: &[u8], boundary: &str) -> Vec<String> {
    if boundary.is_empty() {
        return Vec::new();
    }
    let open = format!("--{boundary}");
    let close = format!("--{boundary}--");
    let mut lines = Vec::new();
    let mut pos = 0;
    while pos < body.len() {
        let end = body[pos..]
            .iter()
            .position(|&b| b == b'\n')
            .map_or(body.len(), |i| pos + i + 1);
        lines.push((pos, end));
        pos = end;
    }
    let text = |l: &[u8]| {
        let l = l.strip_suffix(b"\n").unwrap_or(l);
        l.strip_suffix(b"\r").unwrap_or(l).to_vec()
    };
    let is = |s: usize, e: usize, b: &str| {
        let l = text(&body[s..e]);
        l.starts_with(b.as_bytes()) && l[b.len()..].iter().all(|c| *c == b' ' || *c == b'\t')
    };
    let first = lines
        .iter()
        .position(|&(s, e)| is(s, e, &open) || is(s, e, &close));
    let last = lines.iter().rposition(|&(s, e)| is(s, e, &close));
    let mut out = Vec::new();
    let mut push = |bytes: &[u8]| {
        let b = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let b = b.strip_suffix(b"\r").unwrap_or(b);
        if !b.iter().all(u8::is_ascii_whitespace) {
            out.push(String::from_utf8_lossy(b).into_owned());
        }
    };
    if let Some(f) = first {
        push(&body[..lines[f].0]);
    }
    if let Some(l) = last {
        push(&body[lines[l].1..]);
    }
    out
}

fn walk(
    raw: &[u8],
    e: &Entity<'_>,
    want: &dyn Fn(&str, &str) -> bool,
    visit: &mut dyn FnMut(Part<'_>),
) {
    match &e.kind {
        Kind::Multipart(kids) => {
            // A multipart's own text: its prologue and its epilogue, each
            // a string of its own (RFC 5173 §5.2).
            if want(&e.mtype, &e.subtype) {
                let body = raw.get(e.body.clone()).unwrap_or_default();
                for text in prologue_epilogue(body, e.param("boundary").unwrap_or_default()) {
                    visit(Part {
                        mtype: &e.mtype,
                        subtype: &e.subtype,
                        text,
                    });
                }
            }
            kids.iter().for_each(|k| walk(raw, k, want, visit))
        }
        Kind::Message(inner) => {
            if want(&e.mtype, &e.subtype) {
                // The header fields, without the empty line that ends them.
                let h = raw.get(inner.header.clone()).unwrap_or_default();
                let h = h
                    .strip_suffix(b"\r\n")
                    .filter(|h| h.ends_with(b"\n"))
                    .or_else(|| h.strip_suffix(b"\n").filter(|h| h.ends_with(b"\n")))
                    .unwrap_or(h);
                visit(Part {
                    mtype: &e.mtype,
                    subtype: &e.subtype,
                    text: String::from_utf8_lossy(h).into_owned(),
                });
            }
            walk(raw, inner, want, visit);
        }
        Kind::Leaf => {
            if want(&e.mtype, &e.subtype) {
                // A part in an encoding nobody knows cannot be read: its
                // text is empty (Pigeonhole's body tests agree).
                let unreadable =
                    crate::decode::Cte::of(e.cte.as_deref()) == crate::decode::Cte::Unknown;
                visit(Part {
                    mtype: &e.mtype,
                    subtype: &e.subtype,
                    text: if unreadable {
                        String::new()
                    } else {
                        crate::search::body_text_prefix(raw, e, usize::MAX)
                    },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views() {
        let raw = b"From: =?utf-8?q?Ren=C3=A9?= <r@x.example>\r\nTo: g: a@b.example, c@d.example;\r\n  , e@f.example\r\nSubject: a\r\n b\r\nContent-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\ncaf=E9\r\n--z\r\nContent-Type: image/png\r\n\r\nPNG\r\n--z--\r\n";
        let f: Vec<_> = header_fields(raw).collect();
        assert_eq!(f.len(), 4);
        assert_eq!(decode(f[0].1), "René <r@x.example>");
        assert_eq!(decode(f[2].1), "a b");
        assert_eq!(
            addresses(f[1].1),
            ["a@b.example", "c@d.example", "e@f.example"]
        );
        let m = Message::parse(raw);
        let mut seen = Vec::new();
        m.body_parts(&|t, _| t == "text", &mut |p| {
            seen.push((p.subtype.to_string(), p.text))
        });
        assert_eq!(seen, [("plain".to_string(), "café".to_string())]);
        assert!(body_start(raw) > 100);
        assert_eq!(encode("plain"), "plain");
        assert_eq!(
            decode(format!(" {}\r\n", encode(&"é".repeat(40))).as_bytes()),
            "é".repeat(40)
        );
    }
}
