//! Raw header scanning: where a header block ends, and its fields as they
//! appear on the wire (name, value with folding, the whole field).
//!
//! Needs nothing but the bytes. Guarantees: never panics, never reads past
//! the range it is given, allocates nothing; works with CRLF and bare LF
//! line ends. RFC 5322 §2.2 (fields, folding), §2.1 (the empty line that
//! ends the header section). A line with no colon is kept as a field whose
//! name is the whole line and whose value is empty (Dovecot does the same),
//! so HEADER.FIELDS.NOT still returns it.

use std::ops::Range;

/// Where the body of the entity in `raw[range]` starts: just after the first
/// empty line (CRLF or bare LF); `range.end` when there is none (the whole
/// entity is header). The header block is `range.start..body_start`, blank
/// line included.
pub(crate) fn body_start(raw: &[u8], range: Range<usize>) -> usize {
    let end = range.end.min(raw.len());
    let mut pos = range.start.min(end);
    while pos < end {
        match raw[pos] {
            b'\n' => return pos + 1,
            b'\r' if pos + 1 < end && raw[pos + 1] == b'\n' => return pos + 2,
            _ => {}
        }
        match memchr::memchr(b'\n', &raw[pos..end]) {
            Some(i) => pos += i + 1,
            None => return end,
        }
    }
    end
}

/// One header field as it appears: `raw` is the whole field, folding and
/// final line end included (the last field of a header with no body
/// separator may lack its line end); `name` has trailing blanks removed;
/// `value` is everything after the colon.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field<'a> {
    pub name: &'a [u8],
    pub value: &'a [u8],
    pub raw: &'a [u8],
}

impl Field<'_> {
    /// The name compared ignoring ASCII case, as field names are.
    pub fn is(&self, name: &[u8]) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// The fields of the header block `raw[range]` (which may include the blank
/// line; iteration stops there).
pub(crate) fn fields(raw: &[u8], range: Range<usize>) -> Fields<'_> {
    let end = range.end.min(raw.len());
    let start = range.start.min(end);
    Fields {
        data: &raw[start..end],
    }
}

pub(crate) struct Fields<'a> {
    data: &'a [u8],
}

/// Length of the line at the start of `d`, line end included.
fn line_len(d: &[u8]) -> usize {
    memchr::memchr(b'\n', d).map_or(d.len(), |i| i + 1)
}

fn is_blank_line(d: &[u8]) -> bool {
    d.first() == Some(&b'\n') || d.starts_with(b"\r\n")
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let d = self.data;
        if d.is_empty() || is_blank_line(d) {
            self.data = &[];
            return None;
        }
        let mut len = line_len(d);
        let first = len;
        while len < d.len() && matches!(d[len], b' ' | b'\t') {
            len += line_len(&d[len..]);
        }
        let raw = &d[..len];
        self.data = &d[len..];
        let line = &raw[..first];
        let (name, value) = match memchr::memchr(b':', line) {
            Some(c) => (&raw[..c], &raw[c + 1..]),
            None => (trim_eol(line), &raw[first..]),
        };
        Some(Field {
            name: trim_end(name),
            value,
            raw,
        })
    }
}

fn trim_eol(s: &[u8]) -> &[u8] {
    let s = s.strip_suffix(b"\n").unwrap_or(s);
    s.strip_suffix(b"\r").unwrap_or(s)
}

fn trim_end(s: &[u8]) -> &[u8] {
    let n = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    &s[..n]
}

/// A field value unfolded the way Dovecot sends ENVELOPE strings: CR and LF
/// removed (the blank after them kept), leading and trailing blanks trimmed.
pub(crate) fn unfold(value: &[u8]) -> Vec<u8> {
    let v: Vec<u8> = value
        .iter()
        .copied()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let start = v
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    v[start..end.max(start)].to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_starts() {
        let cases: &[(&[u8], usize)] = &[
            (b"A: b\r\n\r\nbody", 8),
            (b"A: b\n\nbody", 6),
            (b"A: b\r\n", 6),
            (b"A: b", 4),
            (b"\r\nbody", 2),
            (b"", 0),
            (b"A: b\r\n \r\n\r\nx", 11),
            (b"A: b\r\r\n\r\n", 9),
        ];
        for (raw, want) in cases {
            assert_eq!(
                body_start(raw, 0..raw.len()),
                *want,
                "{:?}",
                String::from_utf8_lossy(raw)
            );
        }
        assert_eq!(body_start(b"A: b\r\n\r\n", 0..100), 8);
        assert_eq!(body_start(b"A: b\r\n\r\n", 50..100), 8);
    }

    #[test]
    fn field_split() {
        let raw = b"Subject: a\r\n b\r\nFrom : x\r\ngarbage\r\nTo:\r\n\r\nBody: no\r\n";
        let f: Vec<_> = fields(raw, 0..raw.len())
            .map(|f| (f.name.to_vec(), f.value.to_vec(), f.raw.len()))
            .collect();
        assert_eq!(f.len(), 4);
        assert_eq!(f[0], (b"Subject".to_vec(), b" a\r\n b\r\n".to_vec(), 16));
        assert_eq!(f[1].0, b"From");
        assert_eq!(f[2], (b"garbage".to_vec(), Vec::new(), 9));
        assert_eq!(f[3], (b"To".to_vec(), b"\r\n".to_vec(), 5));
        assert_eq!(unfold(b" a\r\n b\r\n"), b"a b");
        assert_eq!(unfold(b"  \r\n"), b"");
        // A last field without a line end.
        let raw = b"X: 1\nY: 2";
        let f: Vec<_> = fields(raw, 0..raw.len()).map(|f| f.raw).collect();
        assert_eq!(f, [&b"X: 1\n"[..], &b"Y: 2"[..]]);
    }
}
