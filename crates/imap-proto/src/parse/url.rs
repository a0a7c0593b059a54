//! IMAP URLs (RFC 5092) of one message or one part of it, as CATENATE
//! (RFC 4469) and URLAUTH (RFC 4467) take them: `/mailbox[;UIDVALIDITY=n]
//! /;UID=n[/;SECTION=s][/;PARTIAL=o[.l]]`, or the same after
//! `imap://[user[;AUTH=..]@]host[:port]`, then optionally `;EXPIRE=t` and
//! `;URLAUTH=access[:mechanism:token]`. Message lists (`?search`) are not
//! parts of a message and are refused.
//!
//! Pure; never panics; linear in the input. The section is read by FETCH's
//! section parser, so `SECTION=1.HEADER` means what `BODY[1.HEADER]` does.

use super::lexer::Parser;
use crate::types::{ImapUrl, Section, UrlAccess, UrlAuth};

/// Parses `url`; the error says what is wrong (for `NO [BADURL ...]`).
pub fn parse_imap_url(url: &str) -> Result<ImapUrl, &'static str> {
    let (user, host, path) = match strip_prefix_ci(url, "imap://") {
        Some(rest) => {
            let end = rest.find('/').ok_or("no mailbox in the URL")?;
            let server = &rest[..end];
            let (user, hostport) = match server.rsplit_once('@') {
                Some((info, hostport)) => {
                    let name = info.split(';').next().unwrap_or("");
                    let user = (!name.is_empty()).then(|| decode(name)).transpose()?;
                    (user, hostport)
                }
                None => (None, server),
            };
            let host = if hostport.starts_with('[') {
                hostport.find(']').map_or(hostport, |i| &hostport[..=i])
            } else {
                hostport.split(':').next().unwrap_or("")
            };
            (
                user,
                (!host.is_empty()).then(|| host.to_string()),
                &rest[end..],
            )
        }
        None => (None, None, url),
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
    // `;EXPIRE=` and `;URLAUTH=` follow with a `;`, never after a `/`.
    let mut expire = None;
    if let Some(t) = p.and_then(|p| strip_prefix_ci(p, "EXPIRE=")) {
        if more {
            return Err("unknown URL parameter");
        }
        expire = Some(rfc3339(t).ok_or("invalid EXPIRE date-time in the URL")?);
        p = params.next();
    }
    let mut urlauth = None;
    if let Some(a) = p.and_then(|p| strip_prefix_ci(p, "URLAUTH=")) {
        if more {
            return Err("unknown URL parameter");
        }
        if user.is_none() {
            return Err("a URLAUTH URL names its user");
        }
        let mut parts = a.splitn(3, ':');
        let access_text = parts.next().unwrap_or("");
        let access = access(access_text)?;
        let (mechanism, token) = match (parts.next(), parts.next()) {
            (None, _) => (None, None),
            (Some(m), Some(t))
                if !m.is_empty()
                    && m.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                    && t.len() >= 32
                    && t.bytes().all(|b| b.is_ascii_hexdigit()) =>
            {
                (Some(m.to_string()), Some(t.to_string()))
            }
            _ => return Err("invalid URLAUTH mechanism or token"),
        };
        // The rump: the URL as written, up to the access identifier. `a`
        // is a slice of `url` (every step above takes subslices), so its
        // offset is where it starts in `url`, and the access identifier
        // ends at an ASCII ':' or at the end: a character boundary.
        let rump_len = (a.as_ptr() as usize - url.as_ptr() as usize) + access_text.len();
        urlauth = Some(UrlAuth {
            access,
            rump: url[..rump_len].to_string(),
            mechanism,
            token,
        });
        p = params.next();
    }
    match p {
        None if !more => Ok(ImapUrl {
            user,
            host,
            mailbox,
            uidvalidity,
            uid,
            section,
            partial,
            expire,
            urlauth,
        }),
        None => Err("the URL ends with '/'"),
        Some(_) => Err("unknown URL parameter"),
    }
}

/// An access identifier (RFC 4467 §3).
fn access(s: &str) -> Result<UrlAccess, &'static str> {
    if s.eq_ignore_ascii_case("anonymous") {
        Ok(UrlAccess::Anonymous)
    } else if s.eq_ignore_ascii_case("authuser") {
        Ok(UrlAccess::AuthUser)
    } else if let Some(u) = strip_prefix_ci(s, "user+").filter(|u| !u.is_empty()) {
        Ok(UrlAccess::User(decode(u)?))
    } else if let Some(u) = strip_prefix_ci(s, "submit+").filter(|u| !u.is_empty()) {
        Ok(UrlAccess::Submit(decode(u)?))
    } else {
        Err("invalid URLAUTH access identifier")
    }
}

/// An RFC 3339 date-time (`2026-12-31T23:59:59Z`, fractions of a second
/// ignored, `+hh:mm`/`-hh:mm` offsets) as unix seconds.
fn rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    let digits = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit())).then(|| t.parse().ok())?
    };
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, sec) = (digits(11..13)?, digits(14..16)?, digits(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let offset = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let oh: i64 = rest[1..3].parse().ok()?;
            let om: i64 = rest[4..6].parse().ok()?;
            if oh > 23 || om > 59 {
                return None;
            }
            (oh * 3600 + om * 60) * if *sign == b'-' { -1 } else { 1 }
        }
        _ => return None,
    };
    // Days from 1970-01-01 (the civil-from-days inverse, proleptic Gregorian).
    let (y, m) = if mo <= 2 {
        (y - 1, mo + 9)
    } else {
        (y, mo - 3)
    };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec - offset)
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
    use crate::types::{ImapUrl, Section, SectionText, UrlAccess, UrlAuth};

    fn url(
        mailbox: &str,
        uidvalidity: Option<u32>,
        uid: u32,
        section: Option<Section>,
        partial: Option<(u64, Option<u64>)>,
    ) -> ImapUrl {
        ImapUrl {
            user: None,
            host: None,
            mailbox: mailbox.into(),
            uidvalidity,
            uid,
            section,
            partial,
            expire: None,
            urlauth: None,
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
        abs.host = Some("mail.example.com".into());
        assert_eq!(
            parse_imap_url(
                "imap://joe%40example.com;AUTH=*@mail.example.com:143/Dr%C3%A4fts/;UID=2"
            ),
            Ok(abs)
        );
    }

    #[test]
    fn urlauth_urls() {
        let token = "0123456789abcdef0123456789ABCDEF";
        let text = format!(
            "imap://fred@example.org:143/INBOX;UIDVALIDITY=3/;uid=20/;section=1.2\
             ;expire=2026-12-31T23:59:59+01:00;urlauth=submit+fred:INTERNAL:{token}"
        );
        let u = parse_imap_url(&text).unwrap();
        assert_eq!(u.user.as_deref(), Some("fred"));
        assert_eq!(u.host.as_deref(), Some("example.org"));
        assert_eq!(u.uid, 20);
        assert_eq!(u.expire, Some(1_798_757_999));
        let a = u.urlauth.unwrap();
        assert_eq!(a.access, UrlAccess::Submit("fred".into()));
        assert_eq!(a.mechanism.as_deref(), Some("INTERNAL"));
        assert_eq!(a.token.as_deref(), Some(token));
        assert_eq!(a.rump, text[..text.len() - token.len() - 10]);
        assert!(a.rump.ends_with(";urlauth=submit+fred"));
        let rump = parse_imap_url("imap://joe@h/Sent/;UID=5;URLAUTH=user+ann%40x.test").unwrap();
        assert_eq!(
            rump.urlauth,
            Some(UrlAuth {
                access: UrlAccess::User("ann@x.test".into()),
                rump: "imap://joe@h/Sent/;UID=5;URLAUTH=user+ann%40x.test".into(),
                mechanism: None,
                token: None,
            })
        );
        for (access, want) in [
            ("anonymous", UrlAccess::Anonymous),
            ("AuthUser", UrlAccess::AuthUser),
        ] {
            let u = parse_imap_url(&format!("imap://joe@h/INBOX/;uid=1;urlauth={access}")).unwrap();
            assert_eq!(u.urlauth.unwrap().access, want);
        }
        assert_eq!(super::rfc3339("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(super::rfc3339("2000-03-01T00:00:00.25Z"), Some(951_868_800));
        assert_eq!(super::rfc3339("1970-01-01T01:00:00+01:00"), Some(0));
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
            "/INBOX/;uid=1;urlauth=anonymous",
            "imap://u@h/INBOX/;uid=1/;urlauth=anonymous",
            "imap://u@h/INBOX/;uid=1;urlauth=nobody",
            "imap://u@h/INBOX/;uid=1;urlauth=user+",
            "imap://u@h/INBOX/;uid=1;urlauth=anonymous:internal:abc",
            "imap://u@h/INBOX/;uid=1;urlauth=anonymous:internal",
            "imap://u@h/INBOX/;uid=1;expire=2026-13-01T00:00:00Z;urlauth=anonymous",
            "imap://u@h/INBOX/;uid=1;expire=tomorrow;urlauth=anonymous",
            "imap://u@h/INBOX/;uid=1;urlauth=anonymous;expire=2026-12-01T00:00:00Z",
            "imap://u@h/INBOX/;uid=1;urlauth=anonymous;\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
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
