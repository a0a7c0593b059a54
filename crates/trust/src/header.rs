//! The header parsers we own (fuzzed: `fuzz/fuzz_targets/trust_headers.rs`):
//! the fields of a header section ([`fields`]), the authserv-id of an
//! `Authentication-Results` field (RFC 8601 §2.2, [`authserv_id`]), and
//! what smtpd removes from mail that arrives from outside ([`strip_forged`]:
//! `Authentication-Results` claiming our authserv-id, RFC 8601 §5, and the
//! spam mark) and lmtpd looks for ([`has_spam_mark`]).
//!
//! Input is untrusted bytes: no panic, no allocation but the output, no
//! recursion (comments nest through a counter). Lines end with CRLF (a
//! bare LF is taken as a line end too, so nothing hides behind one).

/// The name of the spam mark: a field `X-Spam: Yes` that smtpd writes on
/// mail its policy quarantines (and rspamd's, when it is wired in), and
/// lmtpd files into Junk. Arriving from outside, it is removed.
pub const SPAM_MARK_NAME: &str = "X-Spam";
/// The spam mark, a whole field without its CRLF.
pub const SPAM_MARK: &str = "X-Spam: Yes";
/// The name of the field whose forgeries are removed.
pub const AUTH_RESULTS: &str = "Authentication-Results";

/// One header field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    /// The whole field: its lines with their line endings.
    pub raw: &'a [u8],
    /// The name, without surrounding white space ("" for a line with no
    /// colon).
    pub name: &'a [u8],
    /// Everything after the colon, folding included, without the final
    /// line ending.
    pub value: &'a [u8],
}

impl Field<'_> {
    /// Whether the field is named `name` (case-insensitive).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// The fields of a header section, in order, up to the empty line that
/// ends it (or the end of `section`). See [`Fields`].
pub fn fields(section: &[u8]) -> Fields<'_> {
    Fields {
        rest: section,
        done: false,
    }
}

/// Iterator of [`fields`]. After each field, [`Fields::rest`] tells what
/// follows it: empty when `section` ended inside or right after it (so a
/// caller seeing only the start of a message cannot know it is whole).
#[derive(Debug, Clone)]
pub struct Fields<'a> {
    rest: &'a [u8],
    done: bool,
}

impl<'a> Fields<'a> {
    /// What is left after the fields returned so far (the empty line and
    /// the body once the section ended).
    pub fn rest(&self) -> &'a [u8] {
        self.rest
    }
}

/// The end of the line starting at `from` (just past its LF), or `None`.
fn line_end(b: &[u8], from: usize) -> Option<usize> {
    memchr::memchr(b'\n', &b[from..]).map(|p| from + p + 1)
}

impl<'a> Iterator for Fields<'a> {
    type Item = Field<'a>;

    fn next(&mut self) -> Option<Field<'a>> {
        let b = self.rest;
        if self.done || b.is_empty() || b.starts_with(b"\r\n") || b.starts_with(b"\n") {
            self.done = true;
            return None;
        }
        // The field runs to the first line end followed by a line that
        // does not start with white space.
        let mut end = b.len();
        let mut at = 0;
        while let Some(e) = line_end(b, at) {
            if !matches!(b.get(e), Some(b' ' | b'\t')) {
                end = e;
                break;
            }
            at = e;
        }
        let raw = &b[..end];
        self.rest = &b[end..];
        let body = raw
            .strip_suffix(b"\r\n")
            .or_else(|| raw.strip_suffix(b"\n"))
            .unwrap_or(raw);
        let (name, value) = match memchr::memchr(b':', body) {
            // A colon on the first line only: a line without one is no
            // field (kept as it is, nameless).
            Some(p) if !body[..p].contains(&b'\n') => (body[..p].trim_ascii(), &body[p + 1..]),
            _ => (&b""[..], body),
        };
        Some(Field { raw, name, value })
    }
}

/// RFC 2045 tspecials, with white space and controls: what ends a token.
fn ends_token(c: u8) -> bool {
    c <= b' ' || c == 0x7f || b"()<>@,;:\\\"/[]?=".contains(&c)
}

/// Skips CFWS (RFC 5322 §3.2.2: white space, line folding, comments that
/// nest, quoted pairs inside them); returns the offset after it.
fn skip_cfws(v: &[u8], mut i: usize) -> usize {
    let mut depth = 0usize;
    while let Some(&c) = v.get(i) {
        match c {
            b'(' => depth += 1,
            b')' if depth > 0 => depth -= 1,
            b'\\' if depth > 0 => i += 1,
            b' ' | b'\t' | b'\r' | b'\n' => {}
            _ if depth > 0 => {}
            _ => return i,
        }
        i += 1;
    }
    v.len()
}

/// The authserv-id of an `Authentication-Results` value (RFC 8601 §2.2:
/// `[CFWS] authserv-id`, a token or a quoted string), in lower case
/// without a trailing dot; `None` when there is none.
pub fn authserv_id(value: &[u8]) -> Option<String> {
    let i = skip_cfws(value, 0);
    let id: Vec<u8> = match value.get(i)? {
        b'"' => {
            let mut out = Vec::new();
            let mut j = i + 1;
            loop {
                match *value.get(j)? {
                    b'"' => break,
                    b'\\' => {
                        out.push(*value.get(j + 1)?);
                        j += 2;
                    }
                    b'\r' | b'\n' => j += 1,
                    c => {
                        out.push(c);
                        j += 1;
                    }
                }
            }
            out
        }
        _ => value[i..]
            .iter()
            .copied()
            .take_while(|&c| !ends_token(c))
            .collect(),
    };
    let id = String::from_utf8_lossy(&id).to_ascii_lowercase();
    // White space and dots at the end both go (a quoted `"mx.test ."`
    // claims mx.test as much as `mx.test.` does).
    let id = id
        .trim_start()
        .trim_end_matches(|c: char| c == '.' || c.is_whitespace());
    (!id.is_empty()).then(|| id.to_string())
}

/// Whether `f` must not come from outside: an `Authentication-Results`
/// claiming `our_id` (compared without case and trailing dot), or a spam
/// mark (whatever its value).
pub fn is_forged(f: &Field<'_>, our_id: &str) -> bool {
    let ours = our_id.trim_end_matches('.');
    (f.is(AUTH_RESULTS) && authserv_id(f.value).is_some_and(|id| id.eq_ignore_ascii_case(ours)))
        || f.is(SPAM_MARK_NAME)
}

/// `head` (the start of a message: its header section, maybe the body
/// after it) without the fields [`is_forged`] names, or `None` when it has
/// none. Only whole fields are judged: a last field that may go on past
/// `head` (no line after it yet) is kept as it is, as is everything after
/// the header section.
pub fn strip_forged(head: &[u8], our_id: &str) -> Option<Vec<u8>> {
    let mut it = fields(head);
    let mut out: Option<Vec<u8>> = None;
    let mut kept = 0usize;
    while let Some(f) = it.next() {
        let whole = !it.rest().is_empty();
        if whole && is_forged(&f, our_id) {
            let start = f.raw.as_ptr() as usize - head.as_ptr() as usize;
            let o = out.get_or_insert_with(|| Vec::with_capacity(head.len()));
            o.extend_from_slice(&head[kept..start]);
            kept = start + f.raw.len();
        }
    }
    out.map(|mut o| {
        o.extend_from_slice(&head[kept..]);
        o
    })
}

/// How many fields of `head`'s header section [`is_forged`] names.
pub fn forged_count(head: &[u8], our_id: &str) -> usize {
    fields(head).filter(|f| is_forged(f, our_id)).count()
}

/// Whether the header section of `head` carries the spam mark (a field
/// `X-Spam` whose value starts with `yes`, any case).
pub fn has_spam_mark(head: &[u8]) -> bool {
    fields(head).any(|f| {
        f.is(SPAM_MARK_NAME)
            && f.value.trim_ascii_start().len() >= 3
            && f.value.trim_ascii_start()[..3].eq_ignore_ascii_case(b"yes")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_with_folding_and_the_end() {
        let h = b"From: a@b\r\nSubject: one\r\n two\r\n\tthree\r\nno colon here\r\nX: 1\r\n\r\nBody: no\r\n";
        let got: Vec<_> = fields(h).map(|f| (f.name, f.value)).collect();
        assert_eq!(
            got,
            vec![
                (&b"From"[..], &b" a@b"[..]),
                (b"Subject", b" one\r\n two\r\n\tthree"),
                (b"", b"no colon here"),
                (b"X", b" 1"),
            ]
        );
        let mut it = fields(h);
        for _ in it.by_ref() {}
        assert_eq!(it.rest(), b"\r\nBody: no\r\n");
        assert_eq!(fields(b"\r\nbody").count(), 0);
        assert_eq!(fields(b"").count(), 0);
        // A colon on a continuation line does not name a field.
        let f = fields(b"no colon\r\n x: y\r\n").next().unwrap();
        assert_eq!(f.name, b"");
    }

    #[test]
    fn authserv_ids_as_rfc_8601_writes_them() {
        for (v, want) in [
            (&b" mx.example.org; spf=pass"[..], Some("mx.example.org")),
            (b" MX.Example.ORG.;none", Some("mx.example.org")),
            (
                b" (comment (nested) \\) ) mx.example.org 1; none",
                Some("mx.example.org"),
            ),
            (b"\r\n\tmx.example.org;", Some("mx.example.org")),
            (b" \"mx.example.org\"; none", Some("mx.example.org")),
            (b" \"mx.exa\\\"mple\"; none", Some("mx.exa\"mple")),
            (b" example.com/1; none", Some("example.com")),
            (b" ; spf=pass", None),
            (b" (unterminated", None),
            (b" \"unterminated", None),
            (b"", None),
        ] {
            assert_eq!(
                authserv_id(v).as_deref(),
                want,
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
    }

    #[test]
    fn forged_results_and_marks_are_removed_and_nothing_else() {
        let id = "mx.example.test";
        let h = b"Received: x\r\n\
authentication-results: MX.example.test; dkim=pass\r\n\
Authentication-Results: other.test; dkim=pass\r\n\
Authentication-Results : (c) mx.example.test.;\r\n spf=pass\r\n\
X-Spam: Yes\r\n\
x-spam:no\r\n\
X-Spam-Flag: YES\r\n\
Subject: Authentication-Results: mx.example.test\r\n\r\n\
Authentication-Results: mx.example.test; in the body\r\n";
        let out = strip_forged(h, id).unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out),
            "Received: x\r\n\
Authentication-Results: other.test; dkim=pass\r\n\
X-Spam-Flag: YES\r\n\
Subject: Authentication-Results: mx.example.test\r\n\r\n\
Authentication-Results: mx.example.test; in the body\r\n"
        );
        assert_eq!(forged_count(h, id), 4);
        assert_eq!(forged_count(&out, id), 0);
        assert!(strip_forged(&out, id).is_none());
        assert!(strip_forged(b"Subject: x\r\n\r\n", id).is_none());
    }

    #[test]
    fn a_field_that_may_go_on_is_kept_whole() {
        let id = "mx.test";
        // Cut inside the header section: the last field may continue.
        let cut = b"Authentication-Results: mx.test; a\r\nAuthentication-Results: mx.test;";
        let out = strip_forged(cut, id).unwrap();
        assert_eq!(out, b"Authentication-Results: mx.test;");
        let cut = b"Authentication-Results: mx.test; a\r\n";
        assert!(strip_forged(cut, id).is_none());
    }

    #[test]
    fn spam_marks() {
        assert!(has_spam_mark(b"Subject: s\r\nX-Spam: Yes\r\n\r\n"));
        assert!(has_spam_mark(b"x-spam:   YES (dmarc)\r\n\r\n"));
        assert!(!has_spam_mark(b"X-Spam: No\r\n\r\n"));
        assert!(!has_spam_mark(b"X-Spam-Flag: Yes\r\n\r\n"));
        assert!(!has_spam_mark(b"Subject: s\r\n\r\nX-Spam: Yes\r\n"));
        assert!(!has_spam_mark(b"X-Spam: y\r\n"));
    }

    /// What fuzz/fuzz_targets/trust_headers.rs checks, here on every
    /// prefix of seeds and on single-byte changes to them from the
    /// alphabet that matters (line ends, folding, quotes, comments).
    fn properties(data: &[u8]) {
        let id = "mx.example.test";
        let mut at = 0usize;
        let mut it = fields(data);
        while let Some(f) = it.next() {
            assert_eq!(&data[at..at + f.raw.len()], f.raw);
            at += f.raw.len();
            assert_eq!(it.rest(), &data[at..]);
            if let Some(a) = authserv_id(f.value) {
                assert!(!a.is_empty() && !a.ends_with('.'));
                assert!(!a.bytes().any(|b| b.is_ascii_uppercase()));
                assert_eq!(a.trim(), a);
            }
        }
        let complete = !it.rest().is_empty();
        let _ = has_spam_mark(data);
        if let Some(out) = strip_forged(data, id) {
            assert!(out.len() < data.len());
            if complete {
                assert_eq!(
                    forged_count(&out, id),
                    0,
                    "{:?}",
                    String::from_utf8_lossy(data)
                );
                assert!(strip_forged(&out, id).is_none());
            }
        }
    }

    #[test]
    fn properties_hold_for_prefixes_and_mutations() {
        let seeds: [&[u8]; 2] = [
            b"Authentication-Results: mx.example.test; dkim=pass\r\n\
Authentication-Results: (c (nested)) \"MX.Example.Test.\"; spf=pass\r\n\
X-Spam: Yes\r\nFrom: a@b\r\n folded\r\n\r\nbody\r\n",
            b"Subject: x\nX-Spam: no\n\nAuthentication-Results: mx.example.test; none\n",
        ];
        let alphabet = b"\r\n \t:\"()\\;.Xx";
        for seed in seeds {
            for end in 0..=seed.len() {
                properties(&seed[..end]);
            }
            for i in 0..seed.len() {
                for &c in alphabet {
                    let mut m = seed.to_vec();
                    m[i] = c;
                    properties(&m);
                    m.insert(i, c);
                    properties(&m);
                }
            }
        }
    }
}
