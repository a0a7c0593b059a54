//! The content items of a FETCH response (BODY[section]<partial>,
//! BINARY, BINARY.SIZE, ENVELOPE, BODYSTRUCTURE, RFC822.*, PREVIEW),
//! written from one parsed message. Formatting only (ENVELOPE and
//! BODYSTRUCTURE kept once written, see [`Formatted`]): fetch.rs reads the
//! files and decides what goes out.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use facteur_imap_message::{BinaryError, Message};
use facteur_imap_proto::{FetchAttr, SectionText, encode, section_label};

/// A message's ENVELOPE, BODY and BODYSTRUCTURE as written, kept with its
/// content in the store's cache (`facteur_store::Content::derived`), and
/// gone with it. Clients FETCH them again and again (a message list
/// redrawn, a webmail's every page; imaptest's stress mix), and parsing
/// the message and writing them was a third of such a FETCH's work. What
/// is kept for a message is at most its size: past that an item is
/// written without being kept, so the cache holds at most twice its bound.
#[derive(Default)]
pub(super) struct Formatted {
    /// [ENVELOPE, BODY, BODYSTRUCTURE] x [without, with UTF8=ACCEPT].
    items: [[OnceLock<Box<[u8]>>; 2]; 3],
    /// Bytes in `items`.
    bytes: AtomicUsize,
}

/// Where [`write_content`] finds and keeps formatted items of a message.
pub(super) struct Keep<'a> {
    pub formatted: &'a Formatted,
    /// The message's size: what it may keep in all.
    pub limit: usize,
    /// Whether the content is the whole message (else its header block,
    /// which makes an ENVELOPE but no BODYSTRUCTURE).
    pub whole: bool,
}

const ENVELOPE: usize = 0;
const BODY: usize = 1;
const BODYSTRUCTURE: usize = 2;

/// Writes the item `kind` that `write` formats: as kept in `keep`, or
/// formatted now and kept there if it fits.
fn kept_or_write(
    out: &mut Vec<u8>,
    keep: Option<&Keep<'_>>,
    kind: usize,
    utf8: bool,
    write: impl FnOnce(&mut Vec<u8>),
) {
    let Some(k) = keep.filter(|k| kind == ENVELOPE || k.whole) else {
        return write(out);
    };
    let slot = &k.formatted.items[kind][usize::from(utf8)];
    if let Some(b) = slot.get() {
        out.extend_from_slice(b);
        return;
    }
    let start = out.len();
    write(out);
    let made = &out[start..];
    let total = k.formatted.bytes.fetch_add(made.len(), Ordering::Relaxed) + made.len();
    if total > k.limit || slot.set(made.into()).is_err() {
        k.formatted.bytes.fetch_sub(made.len(), Ordering::Relaxed);
    }
}

/// Writes one content item; `false` if it was left out (BINARY of an
/// undecodable part). `keep`: where the message's formatted ENVELOPE and
/// BODYSTRUCTURE are kept, if the store keeps its content.
pub(super) fn write_content(
    out: &mut Vec<u8>,
    a: &FetchAttr,
    msg: &Message<'_>,
    keep: Option<&Keep<'_>>,
    utf8: bool,
    unknown_cte: &mut bool,
) -> bool {
    match a {
        FetchAttr::Envelope => {
            out.extend_from_slice(b"ENVELOPE ");
            kept_or_write(out, keep, ENVELOPE, utf8, |o| msg.envelope(o, utf8));
        }
        FetchAttr::Body => {
            out.extend_from_slice(b"BODY ");
            kept_or_write(out, keep, BODY, utf8, |o| {
                msg.body_structure(o, false, utf8);
            });
        }
        FetchAttr::BodyStructure => {
            out.extend_from_slice(b"BODYSTRUCTURE ");
            kept_or_write(out, keep, BODYSTRUCTURE, utf8, |o| {
                msg.body_structure(o, true, utf8);
            });
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

#[cfg(test)]
mod tests {
    use super::*;

    const MSG: &[u8] =
        b"From: =?utf-8?q?Andr=C3=A9?= <a@example.test>\r\nSubject: hi\r\n\r\nbody\r\n";

    /// The item `a` of MSG as `write_content` writes it with `keep`.
    fn item(a: FetchAttr, keep: Option<&Keep<'_>>, utf8: bool) -> String {
        let msg = Message::parse(MSG);
        let mut out = Vec::new();
        assert!(write_content(&mut out, &a, &msg, keep, utf8, &mut false));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn formatted_items_are_kept_apart_and_within_the_message_size() {
        // (A message this small has an ENVELOPE bigger than itself, so
        // the test gives it room.)
        let f = Formatted::default();
        let keep = Keep {
            formatted: &f,
            limit: 4096,
            whole: true,
        };
        for (a, kind) in [
            (FetchAttr::Envelope, ENVELOPE),
            (FetchAttr::Body, BODY),
            (FetchAttr::BodyStructure, BODYSTRUCTURE),
        ] {
            for utf8 in [false, true] {
                let fresh = item(a.clone(), None, utf8);
                assert_eq!(item(a.clone(), Some(&keep), utf8), fresh);
                // Kept: what is written next time is what was kept.
                let slot = &f.items[kind][usize::from(utf8)];
                let kept = slot.get().expect("kept");
                assert!(fresh.as_bytes().ends_with(kept));
                assert_eq!(item(a.clone(), Some(&keep), utf8), fresh);
            }
        }
        let total: usize = f
            .items
            .iter()
            .flatten()
            .filter_map(|s| s.get())
            .map(|b| b.len())
            .sum();
        assert_eq!(f.bytes.load(Ordering::Relaxed), total);
        assert!(total <= 4096, "{total}");
    }

    #[test]
    fn a_header_block_keeps_no_bodystructure_and_the_bound_holds() {
        let f = Formatted::default();
        let header_only = Keep {
            formatted: &f,
            limit: 4096,
            whole: false,
        };
        item(FetchAttr::BodyStructure, Some(&header_only), false);
        item(FetchAttr::Envelope, Some(&header_only), false);
        assert!(f.items[BODYSTRUCTURE][0].get().is_none());
        assert!(f.items[ENVELOPE][0].get().is_some());
        // Nothing fits in a limit of 10 bytes: written, not kept.
        let g = Formatted::default();
        let small = Keep {
            formatted: &g,
            limit: 10,
            whole: true,
        };
        assert_eq!(
            item(FetchAttr::Body, Some(&small), false),
            item(FetchAttr::Body, None, false)
        );
        assert!(g.items[BODY][0].get().is_none());
        assert_eq!(g.bytes.load(Ordering::Relaxed), 0);
    }
}
