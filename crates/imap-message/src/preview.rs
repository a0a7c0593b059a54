//! PREVIEW (RFC 8970): a short plain-text summary of a message, for the
//! line under the subject in a message list.
//!
//! The first text/plain part that is not an attachment (else the first
//! text/html, its markup dropped), decoded (transfer encoding, charset),
//! quoted lines (`>`) left out as Dovecot does, white space collapsed, cut
//! to [`MAX_CHARS`] characters. Pure; only the first [`MAX_INPUT`] octets
//! of the part are decoded, so a huge body costs no more than a small one.

use crate::Message;
use crate::header;
use crate::mime::{Entity, Kind};
use crate::search::body_text_prefix;

/// RFC 8970 §3.1: at most 256 characters; 200 is what a list shows.
pub const MAX_CHARS: usize = 200;
/// Octets of the part's body decoded at most.
const MAX_INPUT: usize = 16 * 1024;

fn is_attachment(raw: &[u8], e: &Entity<'_>) -> bool {
    header::fields(raw, e.header.clone())
        .find(|f| f.is(b"content-disposition"))
        .is_some_and(|f| {
            let v = String::from_utf8_lossy(f.value)
                .trim_start()
                .to_ascii_lowercase();
            v.starts_with("attachment")
        })
}

/// The first leaf of `subtype` (text/…) that is not an attachment, depth
/// first, without descending into attached messages.
fn first_text<'t, 'a>(raw: &[u8], root: &'t Entity<'a>, subtype: &str) -> Option<&'t Entity<'a>> {
    let mut stack = vec![root];
    while let Some(e) = stack.pop() {
        match &e.kind {
            Kind::Multipart(kids) => stack.extend(kids.iter().rev()),
            Kind::Message(_) => {}
            Kind::Leaf => {
                if e.is_text() && e.subtype == subtype && !is_attachment(raw, e) {
                    return Some(e);
                }
            }
        }
    }
    None
}

/// Markup dropped: tags, comments, and the content of style and script
/// elements; the common character references decoded.
pub(crate) fn strip_html(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let lower = html.to_ascii_lowercase();
    let mut i = 0;
    let b = html.as_bytes();
    while i < b.len() {
        if b[i] == b'<' {
            let skip_to = if lower[i..].starts_with("<!--") {
                lower[i..].find("-->").map(|n| i + n + 3)
            } else if lower[i..].starts_with("<style") {
                lower[i..].find("</style").map(|n| i + n)
            } else if lower[i..].starts_with("<script") {
                lower[i..].find("</script").map(|n| i + n)
            } else {
                None
            };
            let from = skip_to.unwrap_or(i);
            match lower[from..].find('>') {
                Some(n) => {
                    i = from + n + 1;
                    out.push(' ');
                }
                None => break,
            }
            continue;
        }
        if b[i] == b'&'
            && let Some(n) = lower[i..].find(';').filter(|&n| n <= 10)
        {
            let name = &lower[i + 1..i + n];
            let ch = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "nbsp" => Some(' '),
                _ => name
                    .strip_prefix("#x")
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| name.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            if let Some(c) = ch {
                out.push(c);
                i += n + 1;
                continue;
            }
        }
        // `i` is on a character boundary: it only moves by whole
        // characters, over ASCII markup or below.
        let c = html[i..].chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
    out
}

/// The preview of `m` ("" when it has no text).
pub(crate) fn preview(m: &Message<'_>) -> String {
    let raw = m.raw();
    let root = m.tree();
    let text = match first_text(raw, root, "plain") {
        Some(e) => body_text_prefix(raw, e, MAX_INPUT),
        None => match first_text(raw, root, "html") {
            Some(e) => strip_html(&body_text_prefix(raw, e, MAX_INPUT)),
            None => return String::new(),
        },
    };
    let mut out = String::new();
    let mut chars = 0;
    'lines: for line in text.lines() {
        if line.trim_start().starts_with('>') {
            continue;
        }
        for w in line.split_whitespace() {
            if !out.is_empty() {
                out.push(' ');
                chars += 1;
            }
            for c in w.chars().filter(|c| !c.is_control()) {
                if chars >= MAX_CHARS {
                    break 'lines;
                }
                out.push(c);
                chars += 1;
            }
        }
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use crate::Message;

    fn preview(raw: &str) -> String {
        Message::parse(raw.as_bytes()).preview()
    }

    #[test]
    fn plain_text_with_quotes_left_out() {
        assert_eq!(
            preview(
                "Subject: x\r\n\r\nHello  Bob,\r\n\r\n> quoted\r\n>> more\r\nSee you\ttomorrow.\r\n"
            ),
            "Hello Bob, See you tomorrow."
        );
        assert_eq!(preview("Subject: x\r\n\r\n"), "");
    }

    #[test]
    fn the_first_text_part_decoded() {
        let m = "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\
Content-Type: application/pdf\r\n\r\n%PDF\r\n--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Disposition: attachment\r\n\r\nnot this\r\n--b\r\n\
Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n\
R=E9union =C0 midi\r\n--b--\r\n";
        assert_eq!(preview(m), "Réunion À midi");
    }

    #[test]
    fn html_loses_its_markup() {
        let m = "Content-Type: text/html\r\n\r\n<html><head><style>p { color: red }</style>\
<script>x()</script></head><body><!-- c --><p>Caf&eacute; &amp; <b>tea</b>&nbsp;&#233;&#x41;</p></body></html>";
        assert_eq!(preview(m), "Caf&eacute; & tea éA");
    }

    #[test]
    fn long_text_is_cut_at_200_characters() {
        let body = "é".repeat(1000);
        let p = preview(&format!(
            "Content-Type: text/plain; charset=utf-8\r\n\r\n{body}"
        ));
        assert_eq!(p.chars().count(), 200);
    }
}
