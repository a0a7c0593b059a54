//! Address parts (RFC 5228 §2.7.4, RFC 5233 subaddress).

use crate::ir::AddrPart;

/// The separator between user and detail (RFC 5233 leaves it to the
/// site; `+` is everyone's).
pub const DETAIL_SEPARATOR: char = '+';

/// Split an address at its last `@`: (local part, domain). An address
/// without `@` is all local part (RFC 5228 §2.7.4 leaves it to us; the
/// envelope's postmaster-style `<postmaster>` is such a one).
pub fn split(addr: &str) -> (&str, Option<&str>) {
    match addr.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (addr, None),
    }
}

/// The part of `addr` a test compares, or None when the address has no
/// such part (no detail without a separator: RFC 5233 §4 says the test
/// then fails for that address).
pub fn part(addr: &str, part: AddrPart) -> Option<String> {
    part_with(addr, part, "+").map(str::to_string)
}

/// [`part`] with the site's user/detail separators (the first one found
/// in the local part splits it). A slice of `addr`, not a copy.
pub fn part_with<'a>(addr: &'a str, part: AddrPart, separators: &str) -> Option<&'a str> {
    let (local, domain) = split(addr);
    let cut = || local.find(|c| separators.contains(c));
    match part {
        AddrPart::All => Some(addr),
        AddrPart::LocalPart => Some(local),
        AddrPart::Domain => Some(domain.unwrap_or_default()),
        AddrPart::User => Some(cut().map_or(local, |i| &local[..i])),
        AddrPart::Detail => cut().map(|i| {
            let sep = local[i..].chars().next().map_or(1, char::len_utf8);
            &local[i + sep..]
        }),
    }
}

/// One address written as a `From:`-style value (`Name <a@b>` or `a@b`):
/// the address, when there is exactly one with a local part and a domain.
pub fn parse_one(value: &str) -> Option<String> {
    let mut v = value.as_bytes().to_vec();
    v.extend_from_slice(b"\r\n");
    let list = facteur_imap_message::fields::addresses(&v);
    match list.as_slice() {
        [a] if a.contains('@') && !a.starts_with('@') && !a.ends_with('@') => Some(a.clone()),
        _ => None,
    }
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii()
}

/// A cursor over an address string (RFC 5322 §3.4 syntax).
struct P<'a> {
    s: &'a [u8],
    text: &'a str,
    i: usize,
}

impl P<'_> {
    fn peek(&self) -> Option<char> {
        // never panics: past the end or inside a character is "nothing"
        self.text.get(self.i..).and_then(|t| t.chars().next())
    }

    /// Skip blanks and (nested) comments; false on an unclosed comment.
    fn cfws(&mut self) -> bool {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\n') => self.i += 1,
                Some('(') => {
                    let mut depth = 0;
                    loop {
                        match self.s.get(self.i) {
                            None => return false,
                            Some(b'\\') if self.i + 1 < self.s.len() => self.i += 1,
                            Some(b'(') => depth += 1,
                            Some(b')') => {
                                depth -= 1;
                                if depth == 0 {
                                    self.i += 1;
                                    break;
                                }
                            }
                            _ => {}
                        }
                        self.i += 1;
                    }
                }
                _ => return true,
            }
        }
    }

    fn atom(&mut self) -> Option<String> {
        let start = self.i;
        while let Some(c) = self.peek() {
            if !is_atext(c) {
                break;
            }
            self.i += c.len_utf8();
        }
        (self.i > start).then(|| self.text[start..self.i].to_string())
    }

    fn quoted(&mut self) -> Option<String> {
        if self.peek() != Some('"') {
            return None;
        }
        self.i += 1;
        let mut out = String::new();
        loop {
            let c = self.peek()?;
            self.i += c.len_utf8();
            match c {
                '"' => return Some(out),
                '\\' => {
                    let n = self.peek()?;
                    self.i += n.len_utf8();
                    out.push(n);
                }
                '\r' | '\n' => return None,
                c => out.push(c),
            }
        }
    }

    /// dot-atom, blanks allowed around the dots (obsolete syntax).
    fn dot_atom(&mut self) -> Option<String> {
        let mut out = self.atom()?;
        loop {
            let save = self.i;
            self.cfws();
            if self.peek() == Some('.') {
                self.i += 1;
                self.cfws();
                out.push('.');
                out.push_str(&self.atom()?);
            } else {
                self.i = save;
                return Some(out);
            }
        }
    }

    /// A dot-atom local part, or one with leading, trailing or repeated
    /// dots (not RFC 5322, but real: some Japanese mobile carriers handed
    /// such addresses out, and mail to them works).
    fn loose_local(&mut self) -> Option<String> {
        let mut out = String::new();
        loop {
            let save = self.i;
            self.cfws();
            match self.peek() {
                Some('.') => {
                    self.i += 1;
                    out.push('.');
                }
                Some(c) if is_atext(c) && (out.is_empty() || out.ends_with('.')) => {
                    out.push_str(&self.atom()?);
                }
                _ => {
                    self.i = save;
                    break;
                }
            }
        }
        out.chars().any(|c| c != '.').then_some(out)
    }

    /// local-part "@" domain, normalized: a quoted local part that is a
    /// plain dot-atom loses its quotes.
    fn addr_spec(&mut self) -> Option<String> {
        self.cfws();
        let local = if self.peek() == Some('"') {
            let q = self.quoted()?;
            let plain = !q.is_empty()
                && q.split('.')
                    .all(|p| !p.is_empty() && p.chars().all(is_atext));
            if plain {
                q
            } else {
                let mut esc = String::from("\"");
                for c in q.chars() {
                    if c == '"' || c == '\\' {
                        esc.push('\\');
                    }
                    esc.push(c);
                }
                esc.push('"');
                esc
            }
        } else {
            self.loose_local()?
        };
        self.cfws();
        if self.peek() != Some('@') {
            return None;
        }
        self.i += 1;
        self.cfws();
        let domain = if self.peek() == Some('[') {
            let start = self.i;
            let end = self.text[start..].find(']')? + start;
            self.i = end + 1;
            self.text[start..=end].to_string()
        } else {
            self.dot_atom()?
        };
        Some(format!("{local}@{domain}"))
    }
}

/// A redirect target (RFC 5228 §4.2: an RFC 5322 mailbox, `Name
/// <addr>` or a bare address, comments and blanks allowed), normalized to
/// `local@domain`; None when it is not exactly one valid address.
pub fn parse_mailbox(s: &str) -> Option<String> {
    let mut p = P {
        s: s.as_bytes(),
        text: s,
        i: 0,
    };
    p.cfws();
    let start = p.i;
    // try a bare addr-spec first
    if let Some(a) = p.addr_spec()
        && p.cfws()
        && p.i == s.len()
    {
        return Some(a);
    }
    // else a display name (words and quoted strings), then <addr-spec>
    p.i = start;
    loop {
        p.cfws();
        match p.peek() {
            Some('<') => break,
            Some('"') => {
                p.quoted()?;
            }
            Some('.') => p.i += 1,
            Some(c) if is_atext(c) => {
                p.atom()?;
            }
            _ => return None,
        }
    }
    p.i += 1;
    let a = p.addr_spec()?;
    p.cfws();
    if p.peek() != Some('>') {
        return None;
    }
    p.i += 1;
    (p.cfws() && p.i == s.len()).then_some(a)
}

fn valid_domain(d: &str) -> bool {
    !d.is_empty()
        && d.split('.').all(|l| {
            !l.is_empty()
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || !c.is_ascii())
        })
}

/// A mailbox's domain as hosts in the wild have them: labels of letters,
/// digits, `-` and `_` anywhere (`_example.com`, `example-.com`).
fn lenient_domain(d: &str) -> bool {
    !d.is_empty()
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || !c.is_ascii())
        })
}

/// An SMTP path as in MAIL FROM / RCPT TO (RFC 5321 §4.1.2): angle
/// brackets optional, a source route (`@a,@b:`) dropped; `""` and `<>`
/// are the null path (Some("")). None when it is not valid.
pub fn parse_path(s: &str) -> Option<String> {
    let s = s.trim();
    let inner = match (s.strip_prefix('<'), s.ends_with('>')) {
        (Some(rest), true) => rest.strip_suffix('>')?,
        (None, false) => s,
        _ => return None,
    };
    if inner.is_empty() {
        return Some(String::new());
    }
    if inner.contains(['<', '>']) {
        return None;
    }
    let mailbox = if inner.starts_with('@') {
        let (route, rest) = inner.split_once(':')?;
        if !route
            .split(',')
            .all(|h| h.strip_prefix('@').is_some_and(valid_domain))
        {
            return None;
        }
        rest
    } else {
        inner
    };
    // The local part is read leniently, dots anywhere (the addresses some
    // Japanese providers hand out, `.taro..@`); a path with a local part
    // only (`<MAILER-DAEMON>`) is accepted, one ending in `@` is not.
    let (local, domain) = match mailbox.rsplit_once('@') {
        Some((l, d)) => (l, Some(d)),
        None => (mailbox, None),
    };
    let local_ok = if local.starts_with('"') {
        let mut p = P {
            s: local.as_bytes(),
            text: local,
            i: 0,
        };
        p.quoted().is_some() && p.i == local.len()
    } else {
        !local.is_empty() && local.chars().all(|c| c == '.' || is_atext(c))
    };
    if !local_ok {
        return None;
    }
    match domain {
        None => Some(local.to_string()),
        Some(d) if lenient_domain(d) || (d.starts_with('[') && d.ends_with(']')) => {
            Some(format!("{local}@{d}"))
        }
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts() {
        assert_eq!(
            part("ken+sieve@example.org", AddrPart::User).as_deref(),
            Some("ken")
        );
        assert_eq!(
            part("ken+sieve@example.org", AddrPart::Detail).as_deref(),
            Some("sieve")
        );
        assert_eq!(
            part("ken+@example.org", AddrPart::Detail).as_deref(),
            Some("")
        );
        assert_eq!(part("ken@example.org", AddrPart::Detail), None);
        assert_eq!(
            part("ken@example.org", AddrPart::Domain).as_deref(),
            Some("example.org")
        );
        assert_eq!(part("a@b@c", AddrPart::LocalPart).as_deref(), Some("a@b"));
        assert_eq!(part("", AddrPart::Domain).as_deref(), Some(""));
        assert_eq!(
            parse_one("Joe <joe@example.com>").as_deref(),
            Some("joe@example.com")
        );
        assert_eq!(
            parse_one("joe@example.com").as_deref(),
            Some("joe@example.com")
        );
        assert_eq!(parse_one("not an address"), None);
        assert_eq!(parse_one("a@b, c@d"), None);
    }

    #[test]
    fn mailboxes_and_paths() {
        for (input, want) in [
            ("stephan@example.org", Some("stephan@example.org")),
            (" stephan @ example.org ", Some("stephan@example.org")),
            (
                "  Stephan Bosch  <  stephan  @  example.org  > ",
                Some("stephan@example.org"),
            ),
            (
                "Stephan Bosch<stephan@example.org>",
                Some("stephan@example.org"),
            ),
            (
                "\"Stephan Bosch\" <\"S.Bosch\"@example.net>",
                Some("S.Bosch@example.net"),
            ),
            ("\"S[r]us\"@example.net", Some("\"S[r]us\"@example.net")),
            ("(comment) a@b.example", Some("a@b.example")),
            ("not an address", None),
            ("(unclosed \\", None),
            ("a@b (\\é", None),
            ("\"\\", None),
            ("a@b, c@d", None),
            ("<a@b", None),
            ("a@", None),
        ] {
            assert_eq!(parse_mailbox(input).as_deref(), want, "{input}");
        }
        for (input, want) in [
            ("<stephan@example.org>", Some("stephan@example.org")),
            ("stephan@example.org", Some("stephan@example.org")),
            ("<>", Some("")),
            ("", Some("")),
            ("<<stephan@example.org>", None),
            ("stephan@example.org>", None),
            ("<stephan example.org>", None),
            ("<stephan@@example.org>", None),
            ("hutsefluts@", None),
            (
                "<@cola.example.org,@mx.utwente.nl:stephan@example.org>",
                Some("stephan@example.org"),
            ),
            ("<cola.example.org:stephan@example.org>", None),
            ("<@.example.org:stephan@example.org>", None),
            ("<MAILER-DAEMON>", Some("MAILER-DAEMON")),
            ("MAILER-DAEMON@", None),
            (
                "..japanese...localpart..@example.com",
                Some("..japanese...localpart..@example.com"),
            ),
        ] {
            assert_eq!(parse_path(input).as_deref(), want, "{input}");
        }
    }
}
