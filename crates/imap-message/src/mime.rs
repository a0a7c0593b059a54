//! The MIME tree of a message (RFC 2045 §5-6, RFC 2046 §5), as byte ranges
//! into the raw message.
//!
//! Why our own splitter and not `mail_parser::Message::parts`: IMAP answers
//! with exact octet ranges (sizes, BODY[1.2], MIME headers), and mail-parser
//! decodes every base64 body while parsing (a 30 MB attachment would be
//! decoded just to answer BODYSTRUCTURE), re-bases offsets inside encoded
//! message/rfc822 parts and stops nesting at depth 3. Here a part is only
//! ranges plus its parsed Content-Type (mail-parser's field parser, with RFC
//! 2231 parameters); bodies are decoded only when asked for.
//!
//! Guarantees: never panics; every range lies inside the raw bytes and
//! inside its parent's; nesting is cut at [`MAX_DEPTH`] and the number of
//! parts at [`MAX_PARTS`] (deeper or further content becomes an opaque
//! leaf), so memory is bounded by the input size.
//!
//! Boundaries (RFC 2046 §5.1.1): a delimiter is `--boundary` at the start of
//! a line, optionally followed by `--` (close delimiter), then only blanks
//! up to the line end; the line end before it belongs to the delimiter, so
//! a part's body ends before that CRLF. A multipart whose delimiters are
//! never found has no parts.

use std::ops::Range;

use mail_parser::{ContentType, HeaderValue, parsers::MessageStream};

use crate::header;

/// Deepest nesting of multiparts and message/rfc822 followed.
pub(crate) const MAX_DEPTH: usize = 64;
/// Most parts in one message.
pub(crate) const MAX_PARTS: usize = 10_000;

#[derive(Debug)]
pub(crate) struct Entity<'a> {
    /// Header block, blank line included.
    pub header: Range<usize>,
    pub body: Range<usize>,
    /// Lower-case type and subtype, defaults applied.
    pub mtype: String,
    pub subtype: String,
    /// The Content-Type field as parsed, when valid.
    pub ctype: Option<ContentType<'a>>,
    /// The Content-Transfer-Encoding value, lower-cased; None when absent.
    pub cte: Option<String>,
    pub kind: Kind<'a>,
}

#[derive(Debug)]
pub(crate) enum Kind<'a> {
    Leaf,
    Multipart(Vec<Entity<'a>>),
    /// message/rfc822 or message/global: the encapsulated message's top
    /// entity (its header is the inner message's header).
    Message(Box<Entity<'a>>),
}

impl Entity<'_> {
    pub fn is_text(&self) -> bool {
        self.mtype == "text"
    }

    /// A Content-Type parameter (name compared ignoring case).
    pub fn param(&self, name: &str) -> Option<&str> {
        self.ctype
            .as_ref()?
            .attributes()?
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
            .map(|a| a.value.as_ref())
    }
}

/// Parse the whole message into its tree.
pub(crate) fn parse(raw: &[u8]) -> Entity<'_> {
    let mut b = Builder { raw, parts: 0 };
    b.entity(0..raw.len(), 0, false)
}

struct Builder<'a> {
    raw: &'a [u8],
    parts: usize,
}

/// Parse a Content-Type value with mail-parser's field parser.
pub(crate) fn content_type(value: &[u8]) -> Option<ContentType<'_>> {
    match MessageStream::new(value).parse_content_type() {
        HeaderValue::ContentType(ct) => Some(ct),
        _ => None,
    }
}

impl<'a> Builder<'a> {
    fn entity(&mut self, range: Range<usize>, depth: usize, in_digest: bool) -> Entity<'a> {
        self.parts += 1;
        let raw = self.raw;
        let bstart = header::body_start(raw, range.clone());
        let hrange = range.start..bstart;
        let mut ctype = None;
        let mut cte = None;
        for f in header::fields(raw, hrange.clone()) {
            if ctype.is_none() && f.is(b"content-type") {
                ctype = content_type(f.value);
            } else if cte.is_none() && f.is(b"content-transfer-encoding") {
                let v = header::unfold(f.value);
                cte = Some(String::from_utf8_lossy(&v).to_ascii_lowercase());
            }
        }
        let valid = ctype
            .as_ref()
            .filter(|c| c.subtype().is_some_and(|s| !s.is_empty()) && !c.ctype().is_empty());
        let (mtype, subtype) = match valid {
            Some(c) => (
                c.ctype().to_ascii_lowercase(),
                c.subtype().unwrap_or_default().to_ascii_lowercase(),
            ),
            None if in_digest => ("message".to_string(), "rfc822".to_string()),
            None => ("text".to_string(), "plain".to_string()),
        };
        if valid.is_none() {
            ctype = None;
        }
        let body = bstart..range.end;
        let can_nest = depth < MAX_DEPTH && self.parts < MAX_PARTS;
        let kind = if mtype == "multipart" && can_nest {
            let boundary = ctype
                .as_ref()
                .and_then(|c| c.attribute("boundary"))
                .filter(|b| !b.is_empty())
                .map(|b| b.as_bytes().to_vec());
            match boundary {
                Some(b) => {
                    let digest = subtype == "digest";
                    let ranges = split(raw, body.clone(), &b);
                    let mut kids = Vec::with_capacity(ranges.len().min(64));
                    for r in ranges {
                        if self.parts >= MAX_PARTS {
                            break;
                        }
                        kids.push(self.entity(r, depth + 1, digest));
                    }
                    Kind::Multipart(kids)
                }
                None => Kind::Multipart(Vec::new()),
            }
        } else if mtype == "message"
            && (subtype == "rfc822" || subtype == "global")
            && !matches!(cte.as_deref(), Some("base64" | "quoted-printable"))
            && can_nest
        {
            Kind::Message(Box::new(self.entity(body.clone(), depth + 1, false)))
        } else {
            Kind::Leaf
        };
        Entity {
            header: hrange,
            body,
            mtype,
            subtype,
            ctype,
            cte,
            kind,
        }
    }
}

/// The body ranges of the parts of a multipart whose body is `raw[body]`.
fn split(raw: &[u8], body: Range<usize>, boundary: &[u8]) -> Vec<Range<usize>> {
    let mut dash = Vec::with_capacity(boundary.len() + 2);
    dash.extend_from_slice(b"--");
    dash.extend_from_slice(boundary);
    let end = body.end.min(raw.len());
    let start = body.start.min(end);
    let hay = &raw[start..end];
    let mut out = Vec::new();
    let mut open: Option<usize> = None; // start of the current part
    for i in memchr::memmem::find_iter(hay, &dash) {
        if i > 0 && hay[i - 1] != b'\n' {
            continue;
        }
        if open.is_some_and(|o| i < o) {
            continue; // inside the delimiter line we just passed
        }
        let mut j = i + dash.len();
        let close = hay[j..].starts_with(b"--");
        if close {
            j += 2;
        }
        while j < hay.len() && matches!(hay[j], b' ' | b'\t') {
            j += 1;
        }
        let line_end = if hay[j..].starts_with(b"\r\n") {
            j + 2
        } else if hay[j..].starts_with(b"\n") || j == hay.len() {
            (j + 1).min(hay.len())
        } else {
            continue; // a longer boundary that merely starts like ours
        };
        if let Some(o) = open {
            // The line end before the delimiter belongs to the delimiter.
            let mut e = i;
            if e > o && hay[e - 1] == b'\n' {
                e -= 1;
                if e > o && hay[e - 1] == b'\r' {
                    e -= 1;
                }
            }
            out.push(start + o..start + e.max(o));
        }
        if close {
            return out;
        }
        open = Some(line_end);
    }
    if let Some(o) = open {
        out.push(start + o..end);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(e: &Entity<'_>, raw: &[u8], out: &mut String) {
        out.push_str(&format!("{}/{}", e.mtype, e.subtype));
        match &e.kind {
            Kind::Leaf => {
                let b = raw.get(e.body.clone()).unwrap_or_default();
                out.push_str(&format!("{:?}", String::from_utf8_lossy(b)));
            }
            Kind::Multipart(kids) => {
                out.push('[');
                for (i, k) in kids.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    shape(k, raw, out);
                }
                out.push(']');
            }
            Kind::Message(inner) => {
                out.push('{');
                shape(inner, raw, out);
                out.push('}');
            }
        }
    }

    #[test]
    fn trees() {
        let cases: &[(&str, &str)] = &[
            ("Subject: x\r\n\r\nhello\r\n", "text/plain\"hello\\r\\n\""),
            ("Subject: x\r\n", "text/plain\"\""),
            (
                "Content-Type: multipart/mixed; boundary=b\r\n\r\npre\r\n--b\r\n\r\none\r\n--b\r\nContent-Type: text/html\r\n\r\ntwo\r\n--b--\r\nepi\r\n",
                "multipart/mixed[text/plain\"one\",text/html\"two\"]",
            ),
            (
                "Content-Type: multipart/mixed; boundary=b\n\n--b\n\none\n--b\n\ntwo",
                "multipart/mixed[text/plain\"one\",text/plain\"two\"]",
            ),
            (
                "Content-Type: multipart/mixed; boundary=b\r\n\r\n--bb\r\n\r\nx\r\n--b \r\n\r\ny\r\n--b--",
                "multipart/mixed[text/plain\"y\"]",
            ),
            (
                "Content-Type: multipart/digest; boundary=b\r\n\r\n--b\r\n\r\nSubject: in\r\n\r\nz\r\n--b--\r\n",
                "multipart/digest[message/rfc822{text/plain\"z\"}]",
            ),
            (
                "Content-Type: multipart/mixed; boundary=\"o\"\r\n\r\n--o\r\nContent-Type: multipart/alternative; boundary=i\r\n\r\n--i\r\n\r\na\r\n--i\r\n\r\nb\r\n--i--\r\n--o\r\nContent-Type: message/rfc822\r\n\r\nContent-Type: text/html\r\n\r\n<p>\r\n--o--\r\n",
                "multipart/mixed[multipart/alternative[text/plain\"a\",text/plain\"b\"],message/rfc822{text/html\"<p>\"}]",
            ),
            (
                "Content-Type: multipart/mixed\r\n\r\nno boundary\r\n",
                "multipart/mixed[]",
            ),
            (
                "Content-Type: multipart/mixed; boundary=q\r\n\r\nnothing\r\n",
                "multipart/mixed[]",
            ),
            ("Content-Type: text\r\n\r\nx", "text/plain\"x\""),
            ("Content-Type: IMAGE/PNG\r\n\r\nx", "image/png\"x\""),
        ];
        for (raw, want) in cases {
            let e = parse(raw.as_bytes());
            let mut got = String::new();
            shape(&e, raw.as_bytes(), &mut got);
            assert_eq!(&got, want, "{raw:?}");
        }
    }

    #[test]
    fn deep_nesting_is_cut() {
        let mut raw = Vec::new();
        for _ in 0..200 {
            raw.extend_from_slice(b"Content-Type: message/rfc822\r\n\r\n");
        }
        raw.extend_from_slice(b"x");
        let mut e = &parse(&raw);
        let mut depth = 0;
        while let Kind::Message(inner) = &e.kind {
            e = inner;
            depth += 1;
        }
        assert_eq!(depth, MAX_DEPTH);
    }
}
