//! The message as sendmail receives it: reading stdin into network form,
//! the header section (RFC 5322 §2.2: fields, folding), recipients from
//! To/Cc/Bcc for `-t` (RFC 5322 §3.4 address lists: display names, comments,
//! quoted strings, groups), and the headers sendmail adds when missing
//! (From:, Date: per §3.3, Message-ID: per §3.6.4).
//!
//! Pure: bytes in, bytes out (the clock and names are passed in).
//! Guarantees: output is in network form (every line ends in CRLF); bare CR
//! bytes inside a line are kept as they are; Bcc: never survives.

use std::io::{self, BufRead};

/// Reads a message from a local program: lines end in LF or CRLF (both
/// become CRLF); without `ignore_dots`, a line holding only "." ends the
/// input. A leading Unix "From " line (mbox) is dropped. More than `limit`
/// bytes (0 = none) is an error of kind `FileTooLarge`.
pub fn read_message<R: BufRead>(mut r: R, ignore_dots: bool, limit: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut line = Vec::new();
    let mut first = true;
    loop {
        line.clear();
        if r.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        if line.last() == Some(&b'\n') {
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
        }
        if !ignore_dots && line == b"." {
            break;
        }
        if first && line.starts_with(b"From ") {
            first = false;
            continue;
        }
        first = false;
        out.extend_from_slice(&line);
        out.extend_from_slice(b"\r\n");
        if limit > 0 && out.len() as u64 > limit {
            return Err(io::Error::new(
                io::ErrorKind::FileTooLarge,
                format!("message larger than {limit} bytes"),
            ));
        }
    }
    Ok(out)
}

/// One header field: its name and its raw lines (without CRLF).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    pub name: String,
    pub lines: Vec<Vec<u8>>,
}

impl Field {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// The unfolded value (after the colon), as text.
    pub fn value(&self) -> String {
        let mut v = Vec::new();
        for (i, l) in self.lines.iter().enumerate() {
            let l = if i == 0 {
                &l[self.name.len() + 1..]
            } else {
                &l[..]
            };
            v.extend_from_slice(l);
        }
        String::from_utf8_lossy(&v).trim().to_string()
    }
}

/// A message split into its header fields and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub fields: Vec<Field>,
    /// The body, network form, without the blank separator line.
    pub body: Vec<u8>,
}

fn field_name(line: &[u8]) -> Option<&str> {
    let colon = line.iter().position(|&b| b == b':')?;
    let name = &line[..colon];
    if name.is_empty() || !name.iter().all(|&b| (33..=126).contains(&b)) {
        return None;
    }
    std::str::from_utf8(name).ok()
}

impl Message {
    /// Splits a network-form message. The header section ends at the first
    /// empty line, or at the first line that is neither a field nor a
    /// continuation (which then starts the body).
    pub fn parse(msg: &[u8]) -> Message {
        let mut fields: Vec<Field> = Vec::new();
        let mut pos = 0;
        while pos < msg.len() {
            let end = memchr_crlf(&msg[pos..]).map(|e| pos + e);
            let (line, next) = match end {
                Some(e) => (&msg[pos..e], e + 2),
                None => (&msg[pos..], msg.len()),
            };
            if line.is_empty() {
                pos = next;
                break;
            }
            if matches!(line[0], b' ' | b'\t') && !fields.is_empty() {
                if let Some(f) = fields.last_mut() {
                    f.lines.push(line.to_vec());
                }
            } else if let Some(name) = field_name(line) {
                fields.push(Field {
                    name: name.to_string(),
                    lines: vec![line.to_vec()],
                });
            } else {
                break;
            }
            pos = next;
        }
        Message {
            fields,
            body: msg[pos..].to_vec(),
        }
    }

    pub fn has(&self, name: &str) -> bool {
        self.fields.iter().any(|f| f.is(name))
    }

    /// The values of every field called `name`.
    pub fn values(&self, name: &str) -> Vec<String> {
        self.fields
            .iter()
            .filter(|f| f.is(name))
            .map(Field::value)
            .collect()
    }

    pub fn remove(&mut self, name: &str) {
        self.fields.retain(|f| !f.is(name));
    }

    /// Appends a field (value must be one line).
    pub fn add(&mut self, name: &str, value: &str) {
        self.fields.push(Field {
            name: name.to_string(),
            lines: vec![format!("{name}: {value}").into_bytes()],
        });
    }

    /// The recipients named in To:, Cc: and Bcc: (`-t`).
    pub fn header_recipients(&self) -> Vec<String> {
        let mut out = Vec::new();
        for f in self
            .fields
            .iter()
            .filter(|f| f.is("to") || f.is("cc") || f.is("bcc"))
        {
            out.extend(parse_address_list(&f.value()));
        }
        out
    }

    /// Whether any header byte is outside ASCII.
    pub fn has_8bit_headers(&self) -> bool {
        self.fields
            .iter()
            .flat_map(|f| &f.lines)
            .any(|l| !l.is_ascii())
    }

    /// The message in network form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body.len() + 1024);
        for l in self.fields.iter().flat_map(|f| &f.lines) {
            out.extend_from_slice(l);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

fn memchr_crlf(b: &[u8]) -> Option<usize> {
    b.windows(2).position(|w| w == b"\r\n")
}

/// The addresses of an RFC 5322 address list: `a@b`, `Name <a@b>`,
/// `"Doe, J." <a@b>`, `a@b (comment)`, groups `team: a@b, c@d;` and empty
/// groups `undisclosed-recipients:;`. Obsolete routes (`<@r:a@b>`) are
/// dropped. Returns the addr-specs as written (quoted local parts kept).
pub fn parse_address_list(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut angle: Option<String> = None;
    let mut flush = |cur: &mut String, angle: &mut Option<String>| {
        let a = angle.take().unwrap_or_else(|| std::mem::take(cur));
        cur.clear();
        let a = a.trim();
        if !a.is_empty() {
            out.push(a.to_string());
        }
    };
    let mut it = s.chars().peekable();
    while let Some(c) = it.next() {
        match c {
            '(' => {
                let mut depth = 1;
                while let Some(c) = it.next() {
                    match c {
                        '\\' => {
                            it.next();
                        }
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            '"' => {
                cur.push('"');
                while let Some(c) = it.next() {
                    cur.push(c);
                    match c {
                        '\\' => {
                            if let Some(n) = it.next() {
                                cur.push(n);
                            }
                        }
                        '"' => break,
                        _ => {}
                    }
                }
            }
            '<' => {
                let mut a = String::new();
                for c in it.by_ref() {
                    if c == '>' {
                        break;
                    }
                    a.push(c);
                }
                let a = a.rsplit_once(':').map(|(_, a)| a).unwrap_or(&a);
                angle = Some(a.trim().to_string());
            }
            ',' | ';' => flush(&mut cur, &mut angle),
            // A group's display name ends at ':'.
            ':' => cur.clear(),
            c if c.is_whitespace() => {}
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut angle);
    out
}

/// A From: value: `Full Name <addr>` with the name quoted or encoded
/// (RFC 2047, UTF-8, base64) as needed, or just `addr`.
pub fn from_value(full_name: Option<&str>, addr: &str) -> String {
    let name = full_name.map(str::trim).filter(|n| !n.is_empty());
    let Some(name) = name else {
        return addr.to_string();
    };
    let name: String = name.chars().filter(|c| !c.is_control()).collect();
    let atext = |c: char| c.is_ascii_alphanumeric() || " !#$%&'*+-/=?^_`{|}~".contains(c);
    if name.chars().all(atext) {
        format!("{name} <{addr}>")
    } else if name.is_ascii() {
        let q = name.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{q}\" <{addr}>")
    } else {
        format!("=?UTF-8?B?{}?= <{addr}>", base64(name.as_bytes()))
    }
}

fn base64(b: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut s = String::with_capacity(b.len().div_ceil(3) * 4);
    for ch in b.chunks(3) {
        let n = (ch[0] as u32) << 16
            | (*ch.get(1).unwrap_or(&0) as u32) << 8
            | *ch.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            if i <= ch.len() {
                s.push(T[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                s.push('=');
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(input: &str, ignore_dots: bool) -> String {
        String::from_utf8(read_message(input.as_bytes(), ignore_dots, 0).unwrap()).unwrap()
    }

    #[test]
    fn line_endings_and_dots() {
        assert_eq!(read("a\nb\r\nc", false), "a\r\nb\r\nc\r\n");
        assert_eq!(read("a\rx\n", false), "a\rx\r\n", "bare CR kept");
        assert_eq!(read("a\n.\nb\n", false), "a\r\n");
        assert_eq!(read("a\r\n.\r\nb\n", false), "a\r\n");
        assert_eq!(read("a\n.\nb\n", true), "a\r\n.\r\nb\r\n");
        assert_eq!(
            read("a\n..\n.x\n", false),
            "a\r\n..\r\n.x\r\n",
            "no unstuffing"
        );
        assert_eq!(
            read("From someone Mon Jan 1\nSubject: x\n", false),
            "Subject: x\r\n"
        );
        assert_eq!(read("", false), "");
        let e = read_message(&b"0123456789\n"[..], false, 5).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
    }

    #[test]
    fn headers_folded_and_body() {
        let m = Message::parse(b"To: a@x.example,\r\n\tb@y.example\r\nSubject: s\r\n\r\nbody\r\n");
        assert_eq!(m.fields.len(), 2);
        assert_eq!(m.values("to"), ["a@x.example,\tb@y.example"]);
        assert_eq!(m.body, b"body\r\n");
        assert_eq!(
            m.to_bytes(),
            b"To: a@x.example,\r\n\tb@y.example\r\nSubject: s\r\n\r\nbody\r\n"
        );
        // No header at all: everything is body.
        let m = Message::parse(b"hello world\r\n");
        assert!(m.fields.is_empty());
        assert_eq!(m.to_bytes(), b"\r\nhello world\r\n");
        // A non-field line ends the header section.
        let m = Message::parse(b"Subject: x\r\nnot a header\r\n");
        assert_eq!(m.fields.len(), 1);
        assert_eq!(m.body, b"not a header\r\n");
    }

    #[test]
    fn recipients_for_dash_t_and_bcc_removal() {
        let raw =
            b"From: me@h.example\r\nTo: Ann <ann@a.example>, \"Doe, Bob\" <bob@b.example>\r\n\
Cc: carl@c.example (Carl),\r\n  team: dee@d.example, <eve@e.example>;\r\nTo: fay@f.example\r\n\
Bcc: hidden@h.example\r\nBCC: undisclosed-recipients:;\r\nSubject: t\r\n\r\nbody\r\n";
        let mut m = Message::parse(raw);
        assert_eq!(
            m.header_recipients(),
            [
                "ann@a.example",
                "bob@b.example",
                "carl@c.example",
                "dee@d.example",
                "eve@e.example",
                "fay@f.example",
                "hidden@h.example"
            ]
        );
        m.remove("bcc");
        let out = String::from_utf8(m.to_bytes()).unwrap();
        assert!(!out.to_ascii_lowercase().contains("bcc"), "{out}");
        assert!(!out.contains("hidden"));
        assert!(out.ends_with("Subject: t\r\n\r\nbody\r\n"));
    }

    #[test]
    fn address_lists() {
        let cases: &[(&str, &[&str])] = &[
            ("a@b", &["a@b"]),
            ("  a@b ,c@d ", &["a@b", "c@d"]),
            ("Name <a@b>", &["a@b"]),
            ("\"q, x\" <a@b>", &["a@b"]),
            ("\"john doe\"@b", &["\"john doe\"@b"]),
            ("a@b (A (nested) comment)", &["a@b"]),
            ("<@relay.example:a@b>", &["a@b"]),
            ("undisclosed-recipients:;", &[]),
            ("g: a@b, N <c@d>; e@f", &["a@b", "c@d", "e@f"]),
            ("root", &["root"]),
            ("", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(parse_address_list(input), *want, "{input}");
        }
    }

    #[test]
    fn from_values() {
        assert_eq!(from_value(None, "u@h"), "u@h");
        assert_eq!(from_value(Some("Cron Daemon"), "u@h"), "Cron Daemon <u@h>");
        assert_eq!(from_value(Some("Doe, J."), "u@h"), "\"Doe, J.\" <u@h>");
        assert_eq!(
            from_value(Some("Jörg"), "u@h"),
            "=?UTF-8?B?SsO2cmc=?= <u@h>"
        );
        assert_eq!(base64(b"any carnal pleas"), "YW55IGNhcm5hbCBwbGVhcw==");
        assert_eq!(base64(b"any carnal pleasu"), "YW55IGNhcm5hbCBwbGVhc3U=");
    }
}
