//! The paths of MAIL FROM and RCPT TO (RFC 5321 §4.1.2, RFC 6531 §3.3).
//!
//! `Path = "<" [ A-d-l ":" ] Mailbox ">"`: the source route (`@a,@b:`) is
//! read and dropped (§4.1.1.3 says to ignore it), a quoted local part is
//! unquoted (`"john doe"@x` gives `john doe@x`; facteur-mail's `Address`
//! takes the last `@` as the separator), and the mailbox is returned as
//! text. What this checks is the grammar's shape — brackets, quoting, no
//! space or control character outside a quoted string, UTF-8 — so that the
//! end of the path is found without doubt; whether a domain or a local part
//! is acceptable is facteur-mail's judgement, made by the caller.
//!
//! Leniency, as deployed servers have: spaces between the colon and `<`
//! (`MAIL FROM: <a@b>`), and a path without brackets when it holds no space
//! (`MAIL FROM:a@b`, old local programs).

/// Why a path is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not a path at all (missing brackets, a space, a control character).
    Syntax,
    /// Not UTF-8.
    Encoding,
}

/// Parses a path at the start of `s`. Returns the mailbox (`""` for `<>`)
/// and the rest of the line after the path.
pub fn parse_path(s: &str) -> Result<(String, &str), PathError> {
    let s = s.trim_start_matches(' ');
    let Some(inner) = s.strip_prefix('<') else {
        // No brackets: the path runs to the next space.
        let end = s.find(' ').unwrap_or(s.len());
        let (p, rest) = s.split_at(end);
        if p.is_empty() || p.contains(['<', '>']) {
            return Err(PathError::Syntax);
        }
        return Ok((mailbox(p)?, rest));
    };
    let end = closing_bracket(inner).ok_or(PathError::Syntax)?;
    let (p, rest) = (&inner[..end], &inner[end + 1..]);
    if p.is_empty() {
        return Ok((String::new(), rest));
    }
    Ok((mailbox(strip_route(p)?)?, rest))
}

/// The offset of the `>` that closes the path: outside quotes and address
/// literals, and not escaped.
fn closing_bracket(s: &str) -> Option<usize> {
    let mut quoted = false;
    let mut literal = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if quoted => escaped = true,
            '"' if !literal => quoted = !quoted,
            '[' if !quoted => literal = true,
            ']' if !quoted => literal = false,
            '>' if !quoted && !literal => return Some(i),
            _ => {}
        }
    }
    None
}

/// Drops `@a,@b:` in front of the mailbox.
fn strip_route(p: &str) -> Result<&str, PathError> {
    if !p.starts_with('@') {
        return Ok(p);
    }
    let colon = p.find(':').ok_or(PathError::Syntax)?;
    let route = &p[..colon];
    let hops_ok = route.split(',').all(|hop| {
        hop.strip_prefix('@')
            .is_some_and(|d| !d.is_empty() && !d.contains(['@', ' ']))
    });
    if !hops_ok {
        return Err(PathError::Syntax);
    }
    Ok(&p[colon + 1..])
}

/// Checks the mailbox's shape and unquotes its local part.
fn mailbox(p: &str) -> Result<String, PathError> {
    if p.chars().any(|c| c.is_control()) {
        return Err(PathError::Syntax);
    }
    let Some(q) = p.strip_prefix('"') else {
        // Dot-string local part: no specials (RFC 5322 atext, and UTF-8 per
        // RFC 6531); one '@' at most (`<Postmaster>` has none).
        let (local, domain) = match p.split_once('@') {
            Some((l, d)) => (l, Some(d)),
            None => (p, None),
        };
        if local.is_empty() || local.contains(SPECIALS) || local.contains(' ') {
            return Err(PathError::Syntax);
        }
        if let Some(d) = domain
            && !domain_ok(d)
        {
            return Err(PathError::Syntax);
        }
        return Ok(p.to_string());
    };
    // Quoted-string local part: `"` *( qtext / "\" char ) `"` "@" domain.
    let mut local = String::new();
    let mut chars = q.char_indices();
    let rest = loop {
        match chars.next() {
            None => return Err(PathError::Syntax),
            Some((_, '\\')) => match chars.next() {
                Some((_, c)) => local.push(c),
                None => return Err(PathError::Syntax),
            },
            Some((i, '"')) => break &q[i + 1..],
            Some((_, c)) => local.push(c),
        }
    };
    let Some(domain) = rest.strip_prefix('@') else {
        return Err(PathError::Syntax);
    };
    if local.is_empty() || !domain_ok(domain) {
        return Err(PathError::Syntax);
    }
    Ok(format!("{local}@{domain}"))
}

/// RFC 5322 specials: never in a dot-string.
const SPECIALS: [char; 11] = ['(', ')', '<', '>', '[', ']', ':', ';', '@', '\\', ','];

/// A domain or an address literal: no space, quote, backslash or `@`;
/// brackets only around a whole literal.
fn domain_ok(d: &str) -> bool {
    if d.is_empty() || d.contains([' ', '"', '\\', '@', '(', ')', '<', '>', ';', ',']) {
        return false;
    }
    match d.strip_prefix('[') {
        Some(lit) => lit
            .strip_suffix(']')
            .is_some_and(|l| !l.contains(['[', ']'])),
        None => !d.contains(['[', ']', ':']),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ok(s: &str) -> (String, String) {
        let (m, rest) = parse_path(s).unwrap_or_else(|e| panic!("{s:?}: {e:?}"));
        (m, rest.to_string())
    }

    #[test]
    fn paths() {
        assert_eq!(ok("<a@b.test>"), ("a@b.test".into(), "".into()));
        assert_eq!(ok("<> SIZE=1"), ("".into(), " SIZE=1".into()));
        assert_eq!(ok(" <a@b.test> X"), ("a@b.test".into(), " X".into()));
        assert_eq!(
            ok("<@r1.test,@r2.test:a@b.test>"),
            ("a@b.test".into(), "".into())
        );
        assert_eq!(
            ok("<\"john doe\"@b.test>"),
            ("john doe@b.test".into(), "".into())
        );
        assert_eq!(
            ok("<\"a>b\\\"c\"@b.test>"),
            ("a>b\"c@b.test".into(), "".into())
        );
        assert_eq!(ok("<a@[IPv6:::1]>"), ("a@[IPv6:::1]".into(), "".into()));
        assert_eq!(
            ok("<józef@bücher.test>"),
            ("józef@bücher.test".into(), "".into())
        );
        assert_eq!(ok("a@b.test SIZE=5"), ("a@b.test".into(), " SIZE=5".into()));
        assert_eq!(ok("<Postmaster>"), ("Postmaster".into(), "".into()));
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "<a@b.test",
            "<a b@c.test>",
            "<a\u{1}@b.test>",
            "<\"unterminated@b.test>",
            "<\"q\"x@b.test>",
            "<@r1.test a@b.test>",
            "<@:a@b.test>",
            "a<b@c.test",
            "<\"\"@b.test>",
            "<bad@@x.test>",
            "<a(b)@x.test>",
            "<a@x.test:25>",
            "<a@[1.2.3.4>",
            "<a,b@x.test>",
        ] {
            assert!(parse_path(bad).is_err(), "{bad:?}");
        }
    }
}
