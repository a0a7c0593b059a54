//! IMAP views of one message: ENVELOPE, BODY / BODYSTRUCTURE, BODY[section],
//! BINARY[part], and the text matching behind SEARCH.
//!
//! Pure code, no I/O. Input is the whole message as stored (CRLF form, but
//! anything is accepted: broken MIME, 8-bit, invalid UTF-8, bare LF, no
//! header/body separator). Nothing here panics on any input, and nothing
//! copies more than its output.
//!
//! Layout:
//! - [`header`]: raw header scanning (end of a header block, its fields as
//!   they appear on the wire).
//! - [`mime`]: the MIME tree as byte ranges (built lazily, once per
//!   [`Message`], only when a view needs it).
//! - [`envelope`]: ENVELOPE (RFC 9051 §7.5.2).
//! - [`structure`]: BODY / BODYSTRUCTURE (RFC 9051 §7.5.2).
//! - [`section`]: BODY[section] (RFC 9051 §6.4.5) and BINARY (RFC 3516).
//! - [`search`]: SEARCH HEADER/FROM/.../BODY/TEXT and SENT* dates
//!   (RFC 9051 §6.4.4).
//! - [`convert`]: `binary` parts re-encoded as base64 for storing (APPEND of
//!   a literal8, RFC 3516 §4.4).
//! - [`sort`]: base subjects, address and display keys, threading ids
//!   (SORT and THREAD, RFC 5256, RFC 5957).
//! - [`thread`]: THREAD=ORDEREDSUBJECT and THREAD=REFERENCES.
//! - [`preview`]: PREVIEW (RFC 8970), a short summary of the text.
//! - [`decode`]: base64 and quoted-printable body decoding (RFC 2045 §6).
//!
//! mail-parser (=0.11.9) is used for what it does well, one field value at a
//! time: addresses, Content-Type with RFC 2231 parameters, RFC 2047 encoded
//! words, dates, charsets. The part tree is ours (see [`mime`] for why).
//!
//! Cost model: [`Message::parse`] only records the bytes. `BODY[HEADER...]`
//! on the top level scans the header only; ENVELOPE parses a handful of
//! fields; BODYSTRUCTURE, part sections and BODY search build the tree once
//! (a memchr pass per nesting level) and decode nothing they do not need.

mod convert;
mod decode;
mod envelope;
pub mod fields;
mod header;
mod mime;
mod preview;
mod search;
mod section;
pub mod sort;
mod structure;
pub mod thread;

use std::cell::OnceCell;

use facteur_imap_proto::Section;

/// Why BINARY[part] cannot be served (RFC 3516 §4.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BinaryError {
    /// The part's Content-Transfer-Encoding is not one we can undo: the
    /// session answers `NO [UNKNOWN-CTE]`.
    #[error("unknown content-transfer-encoding")]
    UnknownCte,
    /// The part number does not name a part of this message.
    #[error("no such part")]
    NoSuchPart,
}

/// One message, borrowed from its bytes. Views are computed on demand; the
/// MIME tree is built at most once.
pub struct Message<'a> {
    raw: &'a [u8],
    tree: OnceCell<mime::Entity<'a>>,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("len", &self.raw.len())
            .finish()
    }
}

impl<'a> Message<'a> {
    /// Never fails: bytes with no header at all are a message whose header
    /// is everything up to the first empty line (Dovecot does the same) and
    /// whose body is text/plain.
    pub fn parse(raw: &'a [u8]) -> Message<'a> {
        Message {
            raw,
            tree: OnceCell::new(),
        }
    }

    /// The raw bytes.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    pub(crate) fn tree(&self) -> &mime::Entity<'a> {
        self.tree.get_or_init(|| mime::parse(self.raw))
    }

    /// The top-level header block (blank line included).
    pub(crate) fn header_range(&self) -> std::ops::Range<usize> {
        match self.tree.get() {
            Some(t) => t.header.clone(),
            None => 0..header::body_start(self.raw, 0..self.raw.len()),
        }
    }

    /// The ENVELOPE parenthesised list (RFC 9051 §7.5.2).
    pub fn envelope(&self, out: &mut Vec<u8>, utf8: bool) {
        envelope::write(out, self.raw, self.header_range(), utf8);
    }

    /// BODY (`extensible` false) or BODYSTRUCTURE (true).
    pub fn body_structure(&self, out: &mut Vec<u8>, extensible: bool, utf8: bool) {
        structure::write(out, self.raw, self.tree(), extensible, utf8);
    }

    /// BODYSTRUCTURE of one part (`part` as in `BODY[1.2]`; empty: the
    /// whole message), as URLFETCH's BODYPARTSTRUCTURE gives it (RFC 5524
    /// §3); false when there is no such part. `decoded`: the part's
    /// content as BINARY gives it, when the client asked for that too; a
    /// leaf is then described as those octets.
    pub fn part_structure(
        &self,
        part: &[u32],
        out: &mut Vec<u8>,
        utf8: bool,
        decoded: Option<&[u8]>,
    ) -> bool {
        let entity = if part.is_empty() {
            self.tree()
        } else {
            match section::resolve(self.tree(), part) {
                Some(e) => e,
                None => return false,
            }
        };
        structure::write_as(out, self.raw, entity, true, utf8, decoded);
        true
    }

    /// The octets of BODY[section] exactly as sent; None when the part does
    /// not exist.
    pub fn section(&self, section: &Section) -> Option<Vec<u8>> {
        section::section(self, section)
    }

    /// BINARY[part]: the part's body with its Content-Transfer-Encoding
    /// undone. `BINARY[]` (empty part) is the whole message unchanged: the
    /// message as a whole has no transfer encoding (only its body may), and
    /// RFC 3516 §4.2 defines the empty section as the whole message.
    pub fn binary(&self, part: &[u32]) -> Result<Vec<u8>, BinaryError> {
        section::binary(self, part)
    }

    /// The message with every `Content-Transfer-Encoding: binary` leaf part
    /// re-encoded as base64, so that storing it in LF form loses nothing;
    /// None when it has no such part. BINARY[part] of the result gives the
    /// appended octets back.
    pub fn binary_to_base64(&self) -> Option<Vec<u8>> {
        convert::binary_to_base64(self.raw, self.tree())
    }

    /// PREVIEW (RFC 8970): up to 200 characters of the first text part.
    pub fn preview(&self) -> String {
        preview::preview(self)
    }

    /// The Date: header field as unix seconds.
    pub fn sent_date(&self) -> Option<i64> {
        search::sent_date(self)
    }

    /// The Date: header field's calendar date in the field's own zone, as
    /// SENTBEFORE/SENTON/SENTSINCE compare it (RFC 9051 §6.4.4).
    pub fn sent_day(&self) -> Option<(i32, u8, u8)> {
        search::sent_day(self)
    }

    /// SEARCH HEADER/FROM/TO/CC/BCC/SUBJECT.
    pub fn header_contains(&self, field: &str, needle: &str) -> bool {
        search::header_contains(self, field, needle)
    }

    /// SEARCH BODY.
    pub fn body_contains(&self, needle: &str) -> bool {
        search::body_contains(self, needle)
    }

    /// SEARCH TEXT: the header (every field, decoded) or the body.
    pub fn text_contains(&self, needle: &str) -> bool {
        search::text_contains(self, needle)
    }

    /// The texts SEARCH TEXT and BODY look in, lower-cased: a message can
    /// match a needle only if its lower-cased form is inside one of them.
    pub fn search_texts(&self) -> Vec<String> {
        search::texts(self)
    }
}

/// Number of lines in a body, as BODYSTRUCTURE reports for text and
/// message/rfc822 parts: the count of LF octets, as Dovecot counts. A part
/// ending just before a boundary does not count its last line, whose CRLF
/// belongs to the boundary (RFC 2046 §5.1.1).
pub fn lines(body: &[u8]) -> u32 {
    u32::try_from(memchr::memchr_iter(b'\n', body).count()).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_counts() {
        for (body, want) in [
            (&b""[..], 0),
            (b"x", 0),
            (b"x\r\n", 1),
            (b"x\r\ny", 1),
            (b"\r\n\r\n", 2),
        ] {
            assert_eq!(lines(body), want);
        }
    }

    fn bs(raw: &[u8], ext: bool) -> String {
        let mut out = Vec::new();
        Message::parse(raw).body_structure(&mut out, ext, false);
        String::from_utf8_lossy(&out).into_owned()
    }

    #[test]
    fn rfc9051_example_structure() {
        // RFC 9051 §7.5.2 BODYSTRUCTURE example: a 3028-octet, 92-line body.
        let mut raw = b"Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n\r\n".to_vec();
        for _ in 0..91 {
            raw.extend_from_slice(&[b'x'; 31]);
            raw.extend_from_slice(b"\r\n");
        }
        raw.extend_from_slice(&[b'y'; 23]);
        raw.extend_from_slice(b"\r\n");
        assert_eq!(
            bs(&raw, false),
            "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92)"
        );
    }

    #[test]
    fn broken_messages() {
        let plain = |size: usize, lines: u32| {
            format!(
                "(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"us-ascii\") NIL NIL \"7BIT\" {size} {lines})"
            )
        };
        let cases: Vec<(&[u8], String)> = vec![
            // No body separator: all header, empty body.
            (b"Subject: x\r\nFrom: a@b", plain(0, 0)),
            // Garbage: header up to the first empty line.
            (b"\xff\xfe\x00\r\n\r\n\x80body", plain(5, 0)),
            (b"", plain(0, 0)),
            // Bare LF throughout, multipart still split.
            (
                b"Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\ntwo\n--b--\n",
                format!("({} \"MIXED\")", plain(7, 1)),
            ),
            // Unterminated multipart: the last part runs to the end.
            (
                b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\nabc\r\n",
                format!("({} \"MIXED\")", plain(5, 1)),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(bs(raw, false), want, "{:?}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn header_fetch_does_not_build_the_tree() {
        let mut raw =
            b"Subject: big\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\n"
                .to_vec();
        raw.resize(raw.len() + 1_000_000, b'a');
        let m = Message::parse(&raw);
        let s = Section {
            part: vec![],
            text: Some(facteur_imap_proto::SectionText::HeaderFields(vec![
                "subject".into(),
            ])),
        };
        assert_eq!(m.section(&s).as_deref(), Some(&b"Subject: big\r\n\r\n"[..]));
        let mut env = Vec::new();
        m.envelope(&mut env, false);
        assert!(m.header_contains("subject", "BIG"));
        assert!(m.tree.get().is_none());
        assert_eq!(m.binary(&[1]).map(|b| b.len()), Ok(1_000_000));
        assert!(m.tree.get().is_some());
    }
}
