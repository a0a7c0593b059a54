//! Comparators (RFC 4790 §9: i;octet, i;ascii-casemap, i;ascii-numeric;
//! RFC 5051: i;unicode-casemap) and match types (RFC 5228 §2.7.1: :is,
//! :contains, :matches; RFC 5231: :value and :count; the regex draft), with
//! the match variables they capture (RFC 5229 §3.2).
//!
//! Costs: :matches is the classic one-star backtracking glob, O(n·m) at
//! worst; :regex uses the regex crate (linear-time matching) with its
//! program size capped at [`REGEX_SIZE_LIMIT`].

use std::cmp::Ordering;

use crate::ir::{Comparator, RelOp};

/// Largest compiled regex program (bytes).
pub const REGEX_SIZE_LIMIT: usize = 256 * 1024;
/// Longest regex source accepted.
pub const REGEX_MAX_LEN: usize = 4096;

fn fold_char(cmp: Comparator, c: char) -> char {
    match cmp {
        Comparator::Octet | Comparator::AsciiNumeric => c,
        Comparator::AsciiCasemap => c.to_ascii_lowercase(),
        Comparator::UnicodeCasemap => c.to_lowercase().next().unwrap_or(c),
    }
}

fn fold(cmp: Comparator, s: &str) -> std::borrow::Cow<'_, str> {
    match cmp {
        Comparator::Octet | Comparator::AsciiNumeric => s.into(),
        Comparator::AsciiCasemap => {
            if s.bytes().any(|b| b.is_ascii_uppercase()) {
                s.to_ascii_lowercase().into()
            } else {
                s.into()
            }
        }
        Comparator::UnicodeCasemap => s
            .chars()
            .map(|c| fold_char(cmp, c))
            .collect::<String>()
            .into(),
    }
}

/// i;ascii-numeric's value: the leading digits (leading zeros dropped), or
/// None for "positive infinity" when the string starts with no digit.
fn numeric(s: &str) -> Option<&str> {
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return None;
    }
    let d = s[..digits].trim_start_matches('0');
    Some(d)
}

fn numeric_order(a: &str, b: &str) -> Ordering {
    match (numeric(a), numeric(b)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => x.len().cmp(&y.len()).then_with(|| x.cmp(y)),
    }
}

/// The comparator's order of two values.
pub fn order(cmp: Comparator, a: &str, b: &str) -> Ordering {
    match cmp {
        Comparator::AsciiNumeric => numeric_order(a, b),
        Comparator::Octet => a.as_bytes().cmp(b.as_bytes()),
        _ => fold(cmp, a).as_bytes().cmp(fold(cmp, b).as_bytes()),
    }
}

pub fn equal(cmp: Comparator, a: &str, b: &str) -> bool {
    match cmp {
        Comparator::Octet => a == b,
        Comparator::AsciiCasemap => a.eq_ignore_ascii_case(b),
        _ => order(cmp, a, b) == Ordering::Equal,
    }
}

pub fn relation(op: RelOp, o: Ordering) -> bool {
    match op {
        RelOp::Gt => o == Ordering::Greater,
        RelOp::Ge => o != Ordering::Less,
        RelOp::Lt => o == Ordering::Less,
        RelOp::Le => o != Ordering::Greater,
        RelOp::Eq => o == Ordering::Equal,
        RelOp::Ne => o != Ordering::Equal,
    }
}

pub fn contains(cmp: Comparator, hay: &str, needle: &str) -> bool {
    let h = fold(cmp, hay);
    let n = fold(cmp, needle);
    memchr::memmem::find(h.as_bytes(), n.as_bytes()).is_some()
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum G {
    Lit(char),
    One,
    Star,
}

fn glob(pattern: &str) -> Vec<G> {
    let mut out = Vec::new();
    let mut it = pattern.chars();
    while let Some(c) = it.next() {
        out.push(match c {
            '*' => G::Star,
            '?' => G::One,
            '\\' => match it.next() {
                Some(n) => G::Lit(n),
                None => G::Lit('\\'),
            },
            c => G::Lit(c),
        });
    }
    out
}

/// `:matches`: `*` any sequence, `?` one character, `\` quotes the next.
/// On a match, the captures: `${0}` the whole value, then one per wildcard
/// in order; each `*` takes as little as it can, left to right.
pub fn matches(cmp: Comparator, value: &str, pattern: &str) -> Option<Vec<String>> {
    let p = glob(pattern);
    let t: Vec<(usize, char)> = value.char_indices().collect();
    let (mut pi, mut ti) = (0usize, 0usize);
    // captures per wildcard position in p: (start, end) in t indices
    let mut caps: Vec<(usize, usize, usize)> = Vec::new(); // (pattern index, start, end)
    let mut star: Option<(usize, usize, usize)> = None; // (pattern index, text start, caps len)
    loop {
        if pi < p.len() {
            match p[pi] {
                G::Star => {
                    caps.push((pi, ti, ti));
                    star = Some((pi, ti, caps.len()));
                    pi += 1;
                    continue;
                }
                G::One if ti < t.len() => {
                    caps.push((pi, ti, ti + 1));
                    pi += 1;
                    ti += 1;
                    continue;
                }
                G::Lit(c) if ti < t.len() && fold_char(cmp, c) == fold_char(cmp, t[ti].1) => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
        } else if ti == t.len() {
            break;
        }
        // mismatch: let the last star take one more character
        let (sp, start, ncaps) = star?;
        let taken = caps[ncaps - 1].2 + 1;
        if taken > t.len() {
            return None;
        }
        caps.truncate(ncaps);
        caps[ncaps - 1] = (sp, start, taken);
        pi = sp + 1;
        ti = taken;
    }
    let at = |i: usize| t.get(i).map_or(value.len(), |x| x.0);
    let mut out = vec![value.to_string()];
    for (_, s, e) in caps {
        out.push(value[at(s)..at(e)].to_string());
    }
    Some(out)
}

/// Build a `:regex` key (POSIX extended syntax, which the regex crate reads
/// for everything scripts use); the casemap comparators make it
/// case-insensitive.
pub fn build_regex(key: &str, cmp: Comparator) -> Result<regex::Regex, String> {
    if key.len() > REGEX_MAX_LEN {
        return Err("regular expression too long".into());
    }
    regex::RegexBuilder::new(key)
        .case_insensitive(matches!(
            cmp,
            Comparator::AsciiCasemap | Comparator::UnicodeCasemap
        ))
        .size_limit(REGEX_SIZE_LIMIT)
        .dfa_size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| e.to_string())
}

/// Quote `*`, `?` and `\` for :matches (`:quotewildcard`).
pub fn quote_wildcard(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Quote regex metacharacters (`:quoteregex`).
pub fn quote_regex(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if "\\^$.[]|()?*+{}".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use Comparator::*;

    #[test]
    fn comparators() {
        assert!(equal(AsciiCasemap, "Frobnitz", "frobNITZ"));
        assert!(!equal(Octet, "Frobnitz", "frobnitz"));
        assert!(equal(AsciiNumeric, "0042abc", "42"));
        assert!(equal(AsciiNumeric, "abc", "xyz"), "both infinity");
        assert_eq!(order(AsciiNumeric, "9", "10"), Ordering::Less);
        assert_eq!(
            order(AsciiNumeric, "x", "99999999999999999999999"),
            Ordering::Greater
        );
        assert!(contains(AsciiCasemap, "Hello World", "O W"));
        assert!(!contains(Octet, "Hello World", "o w"));
        assert!(equal(UnicodeCasemap, "ÉTÉ", "été"));
    }

    #[test]
    fn globs() {
        let m = |v: &str, p: &str| matches(AsciiCasemap, v, p);
        assert_eq!(
            m("frobnitz", "fr*b?itz"),
            Some(vec!["frobnitz".into(), "o".into(), "n".into()])
        );
        assert!(m("frobnitz", "*itz").is_some());
        assert!(m("frobnitz", "*itx").is_none());
        assert!(m("", "*").is_some());
        assert!(m("a", "").is_none());
        assert!(m("a*b", "a\\*b").is_some());
        assert!(m("axb", "a\\*b").is_none());
        // RFC 5229 §3.2: each * as short as possible, left to right
        assert_eq!(
            m("Subject: [acme-users] [fwd] version 1.0 is out", "*[*] *"),
            Some(vec![
                "Subject: [acme-users] [fwd] version 1.0 is out".into(),
                "Subject: ".into(),
                "acme-users".into(),
                "[fwd] version 1.0 is out".into()
            ])
        );
        assert_eq!(
            m("foo.bar@example.com", "*.*@*.*").map(|c| c[1..].to_vec()),
            Some(vec![
                "foo".into(),
                "bar".into(),
                "example".into(),
                "com".into()
            ])
        );
        assert!(m("ééx", "??x").is_some());
        // no exponential blow-up
        let v = "a".repeat(2000);
        assert!(m(&v, &"*a".repeat(50).replace("a", "b")).is_none());
    }

    #[test]
    fn regexes() {
        let r = build_regex("^fo+(b)ar$", AsciiCasemap).expect("builds");
        assert!(r.is_match("FOOBAR"));
        assert!(build_regex("(", Octet).is_err());
        assert!(build_regex(&"a".repeat(5000), Octet).is_err());
        assert_eq!(quote_regex("a.b*"), "a\\.b\\*");
        assert_eq!(quote_wildcard("a*?\\"), "a\\*\\?\\\\");
    }
}
