//! Binary parts made storable (RFC 3516 §4.4, APPEND of a literal8).
//!
//! The store keeps messages in LF form on disk (Maildir; `facteur_store`'s
//! crlf.rs), where CR LF and a bare LF are the same byte: a part sent with
//! `Content-Transfer-Encoding: binary` whose octets hold a bare LF would
//! come back with CR LF, and BINARY[part] would no longer return what was
//! appended. RFC 3516 lets the server change the encoding of what it stores
//! ("the server MAY ... convert binary data to another encoding"), as long
//! as BINARY gives the content back: every `binary` leaf part is re-encoded
//! as base64, its Content-Transfer-Encoding field rewritten, and everything
//! else left as it was, octet for octet.
//!
//! Pure; never panics. Output is about 4/3 of the converted parts plus the
//! rest unchanged.

use std::ops::Range;

use base64::Engine;

use crate::header;
use crate::mime::{Entity, Kind};

/// The message with its `binary` leaf parts re-encoded as base64; None when
/// there is none (the message is stored as it is).
pub(crate) fn binary_to_base64(raw: &[u8], root: &Entity<'_>) -> Option<Vec<u8>> {
    let mut edits: Vec<(Range<usize>, Vec<u8>)> = Vec::new();
    collect(raw, root, &mut edits);
    if edits.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len() + raw.len() / 3 + 64);
    let mut pos = 0;
    for (range, with) in edits {
        // Edits come in document order and never overlap (a header block
        // precedes its body; parts follow each other).
        if range.start < pos || range.end > raw.len() {
            continue;
        }
        out.extend_from_slice(&raw[pos..range.start]);
        out.extend_from_slice(&with);
        pos = range.end;
    }
    out.extend_from_slice(&raw[pos..]);
    Some(out)
}

fn collect(raw: &[u8], e: &Entity<'_>, edits: &mut Vec<(Range<usize>, Vec<u8>)>) {
    match &e.kind {
        Kind::Multipart(kids) => kids.iter().for_each(|k| collect(raw, k, edits)),
        Kind::Message(inner) => collect(raw, inner, edits),
        Kind::Leaf => {
            if e.cte.as_deref().map(str::trim) != Some("binary") {
                return;
            }
            let base = raw.as_ptr() as usize;
            let Some(field) =
                header::fields(raw, e.header.clone()).find(|f| f.is(b"content-transfer-encoding"))
            else {
                return;
            };
            let start = (field.raw.as_ptr() as usize).wrapping_sub(base);
            let end = start.saturating_add(field.raw.len());
            if end > e.header.end || start < e.header.start {
                return;
            }
            edits.push((
                start..end,
                b"Content-Transfer-Encoding: base64\r\n".to_vec(),
            ));
            let body = raw.get(e.body.clone()).unwrap_or_default();
            // The line end before a boundary belongs to the boundary; at the
            // end of the message the encoded body gets one of its own.
            let last = e.body.end >= raw.len();
            edits.push((e.body.clone(), encode_lines(body, last)));
        }
    }
}

/// Base64 in lines of 76 characters (RFC 2045 §6.8), CRLF between them.
fn encode_lines(body: &[u8], final_crlf: bool) -> Vec<u8> {
    let text = base64::engine::general_purpose::STANDARD.encode(body);
    let mut out = Vec::with_capacity(text.len() + text.len() / 38 + 2);
    for (i, line) in text.as_bytes().chunks(76).enumerate() {
        if i > 0 {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(line);
    }
    if final_crlf && !out.is_empty() {
        out.extend_from_slice(b"\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::Message;

    fn convert(raw: &[u8]) -> Option<Vec<u8>> {
        Message::parse(raw).binary_to_base64()
    }

    #[test]
    fn a_single_binary_body_becomes_base64_and_decodes_back() {
        let raw = b"From: a@b\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: binary\r\n\r\n\0-\xe4\n\r\n\n";
        let out = convert(raw).expect("converted");
        assert_eq!(
            out,
            b"From: a@b\r\nContent-Type: application/octet-stream\r\n\
Content-Transfer-Encoding: base64\r\n\r\nAC3kCg0KCg==\r\n"
        );
        let m = Message::parse(&out);
        assert_eq!(m.binary(&[1]).unwrap(), b"\0-\xe4\n\r\n\n");
    }

    #[test]
    fn only_binary_leaves_change_in_a_multipart() {
        let raw = b"Content-Type: multipart/mixed; boundary=x\r\n\r\npre\r\n--x\r\n\
Content-Type: text/plain\r\n\r\nhello\nthere\r\n--x\r\n\
Content-Type: image/png\r\nContent-Transfer-Encoding: BINARY \r\n\r\n\x89PNG\n\0\r\n--x--\r\nepi\r\n";
        let out = convert(raw).expect("converted");
        let m = Message::parse(&out);
        assert_eq!(m.binary(&[1]).unwrap(), b"hello\nthere");
        assert_eq!(m.binary(&[2]).unwrap(), b"\x89PNG\n\0");
        assert!(!out.contains(&0));
        assert!(out.ends_with(b"\r\n--x--\r\nepi\r\n"));
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("Content-Transfer-Encoding: base64\r\n\r\niVBORwoA\r\n--x--"));
    }

    #[test]
    fn messages_without_binary_parts_are_left_alone() {
        assert_eq!(convert(b"Subject: x\r\n\r\n8bit \xe9\0 body\r\n"), None);
        assert_eq!(
            convert(b"Content-Transfer-Encoding: 8bit\r\n\r\nbody\r\n"),
            None
        );
        assert_eq!(convert(b""), None);
        assert_eq!(convert(b"\r\n"), None);
    }

    #[test]
    fn long_bodies_are_cut_into_lines_of_76() {
        let body = vec![0xffu8; 200];
        let mut raw = b"Content-Transfer-Encoding: binary\r\n\r\n".to_vec();
        raw.extend_from_slice(&body);
        let out = convert(&raw).expect("converted");
        let text = &out[b"Content-Transfer-Encoding: base64\r\n\r\n".len()..];
        let lines: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
        assert!(lines.iter().all(|l| l.len() <= 77));
        assert_eq!(Message::parse(&out).binary(&[1]).unwrap(), body);
    }
}
