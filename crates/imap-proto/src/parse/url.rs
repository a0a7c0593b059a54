//! IMAP URLs (RFC 5092) of one message or one part of it, as CATENATE
//! (RFC 4469) takes them: `/mailbox[;UIDVALIDITY=n]/;UID=n[/;SECTION=s]
//! [/;PARTIAL=o[.l]]`, or the same after `imap://[user[;AUTH=..]@]host
//! [:port]`. Message lists (`?search`) and URLAUTH are not parts of a
//! message and are refused.
//!
//! Pure; never panics; linear in the input. The section is read by FETCH's
//! section parser, so `SECTION=1.HEADER` means what `BODY[1.HEADER]` does.

use super::lexer::Parser;
use crate::types::{ImapUrl, Section};

/// Parses `url`; the error says what is wrong (for `NO [BADURL ...]`).
pub fn parse_imap_url(url: &str) -> Result<ImapUrl, &'static str> {
    let (user, path) = match strip_prefix_ci(url, "imap://") {
        Some(rest) => {
            let end = rest.find('/').ok_or("no mailbox in the URL")?;
            let server = &rest[..end];
            let user = match server.rsplit_once('@') {
                Some((info, _host)) => {
                    let name = info.split(';').next().unwrap_or("");
                    (!name.is_empty()).then(|| decode(name)).transpose()?
                }
                None => None,
            };
            (user, &rest[end..])
        }
        None => (None, url),
    };
    let path = path.strip_prefix('/').ok_or("not an IMAP URL")?;
    if path.contains('?') {
        return Err("a message list is not a message");
    }
    // The mailbox ends at the first `;` (escaped in names), before
    // `;UIDVALIDITY=` or `/;UID=`.
    let semi = path.find(';').ok_or("no UID in the URL")?;
    let enc_mailbox = &path[..semi];
    let mut params = path[semi + 1..].split(';');
    let mailbox = decode(enc_mailbox.strip_suffix('/').unwrap_or(enc_mailbox))?;
    if mailbox.is_empty() {
        return Err("no mailbox in the URL");
    }
    let mut next = params.next();
    let mut uidvalidity = None;
    if !enc_mailbox.ends_with('/')
        && let Some(v) = next.and_then(|p| strip_prefix_ci(p, "UIDVALIDITY="))
    {
        let v = v.strip_suffix('/').ok_or("no UID in the URL")?;
        uidvalidity = Some(nz_number(v)?);
        next = params.next();
    } else if !enc_mailbox.ends_with('/') {
        return Err("no UID in the URL");
    }
    let uid = next
        .and_then(|p| strip_prefix_ci(p, "UID="))
        .ok_or("no UID in the URL")?;
    let (uid, mut more) = value(uid);
    let uid = nz_number(uid)?;
    let mut section = None;
    let mut partial = None;
    let mut p = params.next();
    if let Some(s) = p.and_then(|p| strip_prefix_ci(p, "SECTION=")) {
        if !more {
            return Err("parameters must be separated by '/'");
        }
        let (s, m) = value(s);
        section = Some(parse_section(&decode(s)?)?);
        more = m;
        p = params.next();
    }
    if let Some(s) = p.and_then(|p| strip_prefix_ci(p, "PARTIAL=")) {
        if !more {
            return Err("parameters must be separated by '/'");
        }
        let (s, m) = value(s);
        let (offset, len) = match s.split_once('.') {
            Some((o, l)) => (number(o)?, Some(nz_number(l)? as u64)),
            None => (number(s)?, None),
        };
        partial = Some((offset, len));
        more = m;
        p = params.next();
    }
    match p {
        None if !more => Ok(ImapUrl {
            user,
            mailbox,
            uidvalidity,
            uid,
            section,
            partial,
        }),
        None => Err("the URL ends with '/'"),
        Some(x)
            if strip_prefix_ci(x, "URLAUTH=").is_some()
                || strip_prefix_ci(x, "EXPIRE=").is_some() =>
        {
            Err("URLAUTH is not supported")
        }
        Some(_) => Err("unknown URL parameter"),
    }
}

/// A parameter's value, and whether a `/` (before the next one) ends it.
fn value(v: &str) -> (&str, bool) {
    match v.strip_suffix('/') {
        Some(v) => (v, true),
        None => (v, false),
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn number(s: &str) -> Result<u64, &'static str> {
    if s.is_empty() || s.len() > 19 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("invalid number in the URL");
    }
    s.parse().map_err(|_| "invalid number in the URL")
}

fn nz_number(s: &str) -> Result<u32, &'static str> {
    match number(s)? {
        0 => Err("invalid number in the URL"),
        n => u32::try_from(n).map_err(|_| "invalid number in the URL"),
    }
}

/// Percent-decoding into UTF-8.
fn decode(s: &str) -> Result<String, &'static str> {
    facteur_util::percent_decode(s).ok_or("invalid %-escape in the URL, or not UTF-8")
}

/// `SECTION=` text, read as FETCH's `[section]`.
fn parse_section(s: &str) -> Result<Section, &'static str> {
    let wrapped = format!("[{s}]");
    let mut p = Parser::new(wrapped.as_bytes());
    let sec = super::fetch::section(&mut p).map_err(|_| "invalid section in the URL")?;
    if !p.at_end() {
        return Err("invalid section in the URL");
    }
    Ok(sec)
}

#[cfg(test)]
mod tests {
    use super::parse_imap_url;
    use crate::types::{ImapUrl, Section, SectionText};

    fn url(
        mailbox: &str,
        uidvalidity: Option<u32>,
        uid: u32,
        section: Option<Section>,
        partial: Option<(u64, Option<u64>)>,
    ) -> ImapUrl {
        ImapUrl {
            user: None,
            mailbox: mailbox.into(),
            uidvalidity,
            uid,
            section,
            partial,
        }
    }

    #[test]
    fn urls_of_messages_and_parts() {
        let header = Section {
            part: vec![],
            text: Some(SectionText::Header),
        };
        assert_eq!(
            parse_imap_url("/INBOX/;uid=5/;section=header"),
            Ok(url("INBOX", None, 5, Some(header.clone()), None))
        );
        assert_eq!(
            parse_imap_url("/INBOX;UIDVALIDITY=77/;UID=5/;SECTION=HEADER"),
            Ok(url("INBOX", Some(77), 5, Some(header), None))
        );
        assert_eq!(
            parse_imap_url("/a%20b/c/;uid=9/;section=1.2.MIME/;partial=100.20"),
            Ok(url(
                "a b/c",
                None,
                9,
                Some(Section {
                    part: vec![1, 2],
                    text: Some(SectionText::Mime)
                }),
                Some((100, Some(20)))
            ))
        );
        assert_eq!(
            parse_imap_url("/Sent/;uid=3/;partial=100000"),
            Ok(url("Sent", None, 3, None, Some((100_000, None))))
        );
        assert_eq!(
            parse_imap_url("/INBOX/;uid=1"),
            Ok(url("INBOX", None, 1, None, None))
        );
        let mut abs = url("Dr%afts", None, 2, None, None);
        abs.mailbox = "Dr\u{e4}fts".into();
        abs.user = Some("joe@example.com".into());
        assert_eq!(
            parse_imap_url(
                "imap://joe%40example.com;AUTH=*@mail.example.com:143/Dr%C3%A4fts/;UID=2"
            ),
            Ok(abs)
        );
    }

    #[test]
    fn broken_urls_say_why() {
        for bad in [
            "",
            "INBOX/;uid=1",
            "/INBOX",
            "/INBOX/;uid=0",
            "/INBOX/;uid=x",
            "/INBOX/;uid=99999999999",
            "/INBOX;uid=1",
            "/INBOX;uidvalidity=5;uid=1",
            "/INBOX/;uid=1/",
            "/INBOX/;uid=1;section=1",
            "/INBOX/;uid=1/;section=1.FOO",
            "/INBOX/;uid=1/;partial=1.0",
            "/INBOX/;uid=1/;urlauth=anonymous:internal:abc",
            "/INBOX?SUBJECT%20x",
            "/%ZZ/;uid=1",
            "/%+5/;uid=1",
            "/%FF/;uid=1",
            "/;uid=1",
            "imap://host",
        ] {
            assert!(parse_imap_url(bad).is_err(), "{bad:?}");
        }
    }
}
