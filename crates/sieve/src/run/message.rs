//! The message as the script sees it: its header fields (which editheader
//! may change, RFC 5293), its size and its body.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock};

use facteur_imap_message::fields;

/// A header field. Its decoded text and its addresses are worked out once,
/// when a test first asks, and kept: a script of twenty rules reads From
/// once, not twenty times (the fields are shared, [`MessageView::named`]).
///
/// The name and the value share one buffer (a message's fields are made
/// at every delivery through a script: one allocation each, not two).
#[derive(Debug, Clone)]
pub struct Field {
    /// The name (valid UTF-8), then everything after the colon.
    bytes: Box<[u8]>,
    name_len: usize,
    text: OnceLock<String>,
    addresses: OnceLock<Vec<String>>,
}

impl Field {
    pub fn new(name: &str, value: &[u8]) -> Field {
        let mut bytes = Vec::with_capacity(name.len() + value.len());
        bytes.extend_from_slice(name.as_bytes());
        bytes.extend_from_slice(value);
        Field {
            bytes: bytes.into_boxed_slice(),
            name_len: name.len(),
            text: OnceLock::new(),
            addresses: OnceLock::new(),
        }
    }

    /// A field as the message has it: a name that is not UTF-8 is read
    /// leniently.
    fn parsed(name: &[u8], value: &[u8]) -> Field {
        match std::str::from_utf8(name) {
            Ok(n) => Field::new(n, value),
            Err(_) => Field::new(&String::from_utf8_lossy(name), value),
        }
    }

    pub fn name(&self) -> &str {
        std::str::from_utf8(&self.bytes[..self.name_len]).unwrap_or_default()
    }

    /// Everything after the colon, folding and the final line end included.
    pub fn value(&self) -> &[u8] {
        &self.bytes[self.name_len..]
    }

    pub fn is(&self, name: &str) -> bool {
        self.bytes[..self.name_len].eq_ignore_ascii_case(name.as_bytes())
    }

    /// Unfolded, RFC 2047-decoded, blanks around removed.
    pub fn text(&self) -> &str {
        self.text.get_or_init(|| {
            let t = fields::decode(self.value());
            t.trim_matches([' ', '\t', '\r', '\n']).to_string()
        })
    }

    /// The addresses in the field (address-list syntax).
    pub fn addresses(&self) -> &[String] {
        self.addresses
            .get_or_init(|| fields::addresses(self.value()))
    }
}

#[derive(Debug)]
pub struct MessageView<'a> {
    raw: Cow<'a, [u8]>,
    body_start: usize,
    fields: Option<Vec<Arc<Field>>>,
    /// Bumped by every header edit.
    pub version: u32,
    /// The size the `size` test sees: the raw bytes' length, unless the
    /// host gave only the start of a large message and set the whole size.
    pub size: u64,
}

impl<'a> MessageView<'a> {
    pub fn new(raw: Cow<'a, [u8]>) -> MessageView<'a> {
        let body_start = fields::body_start(&raw);
        MessageView {
            body_start,
            fields: None,
            version: 0,
            size: raw.len() as u64,
            raw,
        }
    }

    pub fn fields(&mut self) -> &mut Vec<Arc<Field>> {
        let raw = &self.raw;
        self.fields.get_or_insert_with(|| {
            fields::header_fields(raw)
                .map(|(n, v)| Arc::new(Field::parsed(n, v)))
                .collect()
        })
    }

    /// The fields named `name`, in order (shared, not copied).
    pub fn named(&mut self, name: &str) -> Vec<Arc<Field>> {
        let mut out = Vec::new();
        self.named_into(name, None, &mut out);
        out
    }

    /// Appends the fields named `name` to `out`, or only the `:index`
    /// one (RFC 5260 §4.1: `(n, last)`, counted from 1, from the end when
    /// `last`) when `index` is given.
    pub fn named_into(
        &mut self,
        name: &str,
        index: Option<(usize, bool)>,
        out: &mut impl Extend<Arc<Field>>,
    ) {
        let mut all = self.fields().iter().filter(|f| f.is(name));
        match index {
            None => out.extend(all.cloned()),
            Some((0, _)) => {}
            Some((n, false)) => out.extend(all.nth(n - 1).cloned()),
            Some((n, true)) => out.extend(all.rev().nth(n - 1).cloned()),
        }
    }

    /// The decoded values of the fields named `name`, in order.
    pub fn values(&mut self, name: &str) -> Vec<String> {
        self.fields()
            .iter()
            .filter(|f| f.is(name))
            .map(|f| f.text().to_string())
            .collect()
    }

    pub fn exists(&mut self, name: &str) -> bool {
        self.fields().iter().any(|f| f.is(name))
    }

    pub fn raw(&self) -> &[u8] {
        &self.raw
    }

    /// Whether the message has a body at all (a blank line after the
    /// header), empty or not.
    pub fn has_body(&self) -> bool {
        self.body_start < self.raw.len()
            || self.raw.ends_with(b"\n\n")
            || self.raw.ends_with(b"\r\n\r\n")
    }

    pub fn body(&self) -> &[u8] {
        self.raw.get(self.body_start..).unwrap_or_default()
    }

    /// The size the `size` test sees (RFC 5228 §5.9: the message as
    /// received, octets).
    pub fn size(&self) -> u64 {
        if self.version == 0 {
            return self.size;
        }
        // edits change the size by what they changed in the header
        let edited = self.render().map_or(self.raw.len(), |m| m.len()) as u64;
        (self.size + edited).saturating_sub(self.raw.len() as u64)
    }

    /// The message with the edited header, when edits were made.
    pub fn render(&self) -> Option<Vec<u8>> {
        if self.version == 0 {
            return None;
        }
        let fields = self.fields.as_ref()?;
        let mut out = Vec::with_capacity(self.raw.len() + 256);
        for f in fields {
            out.extend_from_slice(f.name().as_bytes());
            out.push(b':');
            out.extend_from_slice(f.value());
            if !f.value().ends_with(b"\n") {
                out.extend_from_slice(b"\r\n");
            }
        }
        // the blank line and the body, as they were
        let sep = &self.raw[..self.body_start];
        if sep.ends_with(b"\r\n\r\n") || sep == b"\r\n" {
            out.extend_from_slice(b"\r\n");
        } else if sep.ends_with(b"\n\n") || sep == b"\n" {
            out.extend_from_slice(b"\n");
        } else {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(self.body());
        Some(out)
    }

    /// Replace the whole message (the test suite's `test_set "message"`).
    pub fn replace(&mut self, raw: Vec<u8>) {
        *self = MessageView::new(Cow::Owned(raw));
    }
}

/// Fold a field value for writing (RFC 5322 §2.2.3): break before a blank
/// where a line would pass 76 characters.
pub fn fold_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 8);
    let mut line = 0usize;
    for (i, word) in value.split(' ').enumerate() {
        if i > 0 {
            if line + 1 + word.len() > 76 && line > 0 {
                out.push_str("\r\n ");
                line = 1;
            } else {
                out.push(' ');
                line += 1;
            }
        }
        out.push_str(word);
        line += word.len();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_and_edit() {
        let mut m = MessageView::new(Cow::Borrowed(
            b"Subject: hi\r\n there\r\nX-A: 1\r\nX-A: =?utf-8?q?=C3=A9?=\r\n\r\nbody\r\n",
        ));
        assert_eq!(m.values("subject"), ["hi there"]);
        assert_eq!(m.values("x-a"), ["1", "é"]);
        assert!(m.exists("X-A") && !m.exists("x-b"));
        assert_eq!(m.render(), None);
        m.fields()
            .insert(0, Arc::new(Field::new("X-New", b" v\r\n")));
        m.fields().retain(|f| !f.is("subject"));
        m.version += 1;
        assert_eq!(
            m.render().as_deref(),
            Some(&b"X-New: v\r\nX-A: 1\r\nX-A: =?utf-8?q?=C3=A9?=\r\n\r\nbody\r\n"[..])
        );
        assert_eq!(m.body(), b"body\r\n");
        assert_eq!(fold_value("short"), "short");
        assert!(fold_value(&"word ".repeat(40)).contains("\r\n "));
    }
}
