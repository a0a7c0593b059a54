//! The content items of a FETCH response (BODY[section]<partial>,
//! BINARY, BINARY.SIZE, ENVELOPE, BODYSTRUCTURE, RFC822.*, PREVIEW),
//! written from one parsed message. Pure formatting: fetch.rs reads the
//! files and decides what goes out.

use facteur_imap_message::{BinaryError, Message};
use facteur_imap_proto::{FetchAttr, SectionText, encode, section_label};

/// Writes one content item; `false` if it was left out (BINARY of an
/// undecodable part).
pub(super) fn write_content(
    out: &mut Vec<u8>,
    a: &FetchAttr,
    msg: &Message<'_>,
    utf8: bool,
    unknown_cte: &mut bool,
) -> bool {
    match a {
        FetchAttr::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            msg.envelope(out, utf8);
        }
        FetchAttr::Body => {
            out.extend_from_slice(b"BODY ");
            msg.body_structure(out, false, utf8);
        }
        FetchAttr::BodyStructure => {
            out.extend_from_slice(b"BODYSTRUCTURE ");
            msg.body_structure(out, true, utf8);
        }
        FetchAttr::Preview => {
            out.extend_from_slice(b"PREVIEW ");
            encode::string(out, msg.preview().as_bytes(), utf8);
        }
        FetchAttr::Rfc822 => {
            out.extend_from_slice(b"RFC822 ");
            text_literal(out, msg.raw());
        }
        FetchAttr::Rfc822Header | FetchAttr::Rfc822Text => {
            let (name, text) = if *a == FetchAttr::Rfc822Header {
                ("RFC822.HEADER ", SectionText::Header)
            } else {
                ("RFC822.TEXT ", SectionText::Text)
            };
            out.extend_from_slice(name.as_bytes());
            let s = facteur_imap_proto::Section {
                part: Vec::new(),
                text: Some(text),
            };
            text_literal(out, &msg.section(&s).unwrap_or_default());
        }
        FetchAttr::BodySection {
            section, partial, ..
        } => {
            out.extend_from_slice(section_label(a).as_bytes());
            out.push(b' ');
            if section.part.is_empty() && section.text.is_none() {
                // BODY[]: the message itself, without an intermediate copy.
                text_literal(out, cut(msg.raw(), *partial));
            } else {
                match msg.section(section) {
                    Some(d) => text_literal(out, cut(&d, *partial)),
                    None => out.extend_from_slice(b"NIL"),
                }
            }
        }
        FetchAttr::Binary { part, partial, .. } => match msg.binary(part) {
            Ok(d) => {
                out.extend_from_slice(section_label(a).as_bytes());
                out.push(b' ');
                let d = cut(&d, *partial);
                if d.contains(&0) {
                    out.push(b'~');
                }
                encode::literal(out, d);
            }
            Err(BinaryError::UnknownCte) => {
                *unknown_cte = true;
                return false;
            }
            Err(BinaryError::NoSuchPart) => {
                out.extend_from_slice(section_label(a).as_bytes());
                out.extend_from_slice(b" NIL");
            }
        },
        FetchAttr::BinarySize(part) => match msg.binary(part) {
            Ok(d) => {
                out.extend_from_slice(section_label(a).as_bytes());
                out.extend_from_slice(format!(" {}", d.len()).as_bytes());
            }
            Err(BinaryError::UnknownCte) => {
                *unknown_cte = true;
                return false;
            }
            Err(BinaryError::NoSuchPart) => {
                out.extend_from_slice(section_label(a).as_bytes());
                out.extend_from_slice(b" 0");
            }
        },
        _ => return false,
    }
    true
}

/// `d` as an ordinary literal, which may not hold NUL (RFC 9051 §4.3,
/// RFC 3501 §4.3: only literal8, for BINARY, may): a message that holds
/// NUL bytes has each sent as 0x80, so the length and every other byte stay
/// as they are. Messages without NUL (nearly all) are not copied.
fn text_literal(out: &mut Vec<u8>, d: &[u8]) {
    if memchr::memchr(0, d).is_none() {
        encode::literal(out, d);
    } else {
        let mut copy = d.to_vec();
        without_nul(&mut copy);
        encode::literal(out, &copy);
    }
}

/// Replaces each NUL of `d` by 0x80 (see [`text_literal`]).
pub(super) fn without_nul(d: &mut [u8]) {
    for b in d.iter_mut().filter(|b| **b == 0) {
        *b = 0x80;
    }
}

/// The `<offset.count>` slice of `d`.
fn cut(d: &[u8], partial: Option<(u32, u32)>) -> &[u8] {
    match partial {
        None => d,
        Some((o, n)) => {
            let start = (o as usize).min(d.len());
            let end = start.saturating_add(n as usize).min(d.len());
            &d[start..end]
        }
    }
}
