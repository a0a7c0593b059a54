//! Strings as the interpreter sees them: the `${hex:...}`/`${unicode:...}`
//! escapes of encoded-character (RFC 5228 §2.4.2.4) are undone when the
//! script is compiled, and with the variables extension (RFC 5229 §3) a
//! string becomes a template of literal text, variable references and match
//! variable references, expanded at run time.
//!
//! Expansion is bounded: a value never grows past [`MAX_VALUE`] bytes.

use crate::CompileError;
use crate::lex::Pos;

/// Longest value a variable or an expanded string may hold (Pigeonhole's
/// default `sieve_variables_max_variable_size` is 4 KiB; we allow more,
/// still bounded).
pub const MAX_VALUE: usize = 64 * 1024;

/// One piece of a template.
#[derive(Debug, Clone, PartialEq)]
pub enum Part {
    Lit(String),
    /// A variable, name lower-cased (`${Name}` and `${name}` are one).
    Var(String),
    /// A namespaced variable (`${env.foo}`, `${tst.name}`), lower-cased.
    Ns(String, String),
    /// `${0}`..`${9}` (and beyond, which always expand to nothing).
    Match(usize),
}

/// A string argument: literal text, or a template when it references
/// variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub parts: Vec<Part>,
}

impl Template {
    pub fn literal(s: impl Into<String>) -> Template {
        Template {
            parts: vec![Part::Lit(s.into())],
        }
    }

    /// The text when the template has no references.
    pub fn as_literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Lit(s)] => Some(s),
            _ => None,
        }
    }

    pub fn is_constant(&self) -> bool {
        self.as_literal().is_some()
    }
}

/// Decode `${hex:41 42}` and `${unicode:263a}` sequences (RFC 5228
/// §2.4.2.4). A malformed sequence stays as written; code points that are
/// not Unicode scalar values are an error.
pub fn decode_encoded_characters(s: &str, pos: Pos) -> Result<String, CompileError> {
    if !s.contains("${") {
        return Ok(s.to_string());
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match decode_one(after, pos)? {
            Some((text, used)) => {
                out.push_str(&text);
                rest = &after[used..];
            }
            None => {
                out.push_str("${");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// One encoded sequence after its `${`: the decoded text and the length
/// used (through the `}`), or None when it is not a well-formed sequence.
fn decode_one(s: &str, pos: Pos) -> Result<Option<(String, usize)>, CompileError> {
    let Some(close) = s.find('}') else {
        return Ok(None);
    };
    let inner = &s[..close];
    let Some((kind, body)) = inner.split_once(':') else {
        return Ok(None);
    };
    let hex = kind.eq_ignore_ascii_case("hex");
    if !hex && !kind.eq_ignore_ascii_case("unicode") {
        return Ok(None);
    }
    let words: Vec<&str> = body
        .split([' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
        .collect();
    if !body
        .chars()
        .all(|c| c.is_ascii_hexdigit() || matches!(c, ' ' | '\t' | '\r' | '\n'))
    {
        return Ok(None);
    }
    if words.is_empty() {
        // `${hex:}`: no content, not an encoded sequence
        return Ok(None);
    }
    if hex {
        let mut bytes = Vec::new();
        for w in words {
            if w.len() > 2 && w.trim_start_matches('0').len() > 2 {
                return Ok(None);
            }
            let Ok(b) = u8::from_str_radix(w, 16) else {
                return Ok(None);
            };
            bytes.push(b);
        }
        // octets that are not UTF-8 become U+FFFD: the name or text they
        // end up in is refused or never matches at run time
        return Ok(Some((
            String::from_utf8_lossy(&bytes).into_owned(),
            close + 1,
        )));
    }
    let mut text = String::new();
    for w in words {
        let v = u32::from_str_radix(w.trim_start_matches('0'), 16).ok().or(
            if w.chars().all(|c| c == '0') {
                Some(0)
            } else {
                None
            },
        );
        match v.and_then(char::from_u32) {
            Some(c) => text.push(c),
            None => {
                return Err(CompileError::new(
                    pos,
                    format!("invalid Unicode character U+{w} in encoded character sequence"),
                ));
            }
        }
    }
    Ok(Some((text, close + 1)))
}

fn is_ident(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(f) if f.is_ascii_alphabetic() || f == '_')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Is `name` a valid variable name for `set` (an identifier, or a
/// namespaced one when `ns` allows it)?
pub fn valid_var_name(name: &str) -> bool {
    is_ident(name) && name.len() <= MAX_VAR_NAME
}

/// The longest variable name.
pub const MAX_VAR_NAME: usize = 64;

/// Split a string into a template (RFC 5229 §3): `${identifier}`,
/// `${ns.identifier}` and `${digits}`; anything else that looks like a
/// reference stays literal text.
pub fn template(s: &str) -> Template {
    let mut parts: Vec<Part> = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let part = after.find('}').and_then(|close| {
            let name = &after[..close];
            let p = if !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
                Some(Part::Match(name.parse().unwrap_or(usize::MAX)))
            } else if is_ident(name) {
                Some(Part::Var(name.to_ascii_lowercase()))
            } else {
                let mut segs = name.split('.');
                let ns = segs.next().unwrap_or_default();
                let rest_name = &name[ns.len()..];
                if is_ident(ns)
                    && rest_name.len() > 1
                    && rest_name[1..].split('.').all(|seg| {
                        !seg.is_empty()
                            && seg
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    })
                {
                    Some(Part::Ns(
                        ns.to_ascii_lowercase(),
                        rest_name[1..].to_ascii_lowercase(),
                    ))
                } else {
                    None
                }
            };
            p.map(|p| (p, close + 1))
        });
        match part {
            Some((p, used)) => {
                if !lit.is_empty() {
                    parts.push(Part::Lit(std::mem::take(&mut lit)));
                }
                parts.push(p);
                rest = &after[used..];
            }
            None => {
                lit.push_str("${");
                rest = after;
            }
        }
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Template { parts }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_characters() {
        let p = Pos::default();
        let d = |s: &str| decode_encoded_characters(s, p).expect("decodes");
        assert_eq!(d("${hex:40}"), "@");
        assert_eq!(d("x${hex: 40 41}y"), "x@Ay");
        assert_eq!(d("${HEX:24 24}{hex:40}"), "$${hex:40}");
        assert_eq!(d("${unicode:40}${Unicode:263A}"), "@\u{263a}");
        assert_eq!(d("${hex:400}"), "${hex:400}");
        assert_eq!(d("${hex:4g}"), "${hex:4g}");
        assert_eq!(d("${hex:}"), "${hex:}");
        assert_eq!(d("${other:40}${hex:40"), "${other:40}${hex:40");
        assert!(decode_encoded_characters("${unicode:D800}", p).is_err());
        assert!(decode_encoded_characters("${unicode:110000}", p).is_err());
        assert_eq!(d("${hex:ff}"), "\u{fffd}");
    }

    #[test]
    fn templates() {
        assert_eq!(template("plain").as_literal(), Some("plain"));
        let t = template("a${Name}b${1}${env.x}${bad-name}${}c$");
        assert_eq!(
            t.parts,
            vec![
                Part::Lit("a".into()),
                Part::Var("name".into()),
                Part::Lit("b".into()),
                Part::Match(1),
                Part::Ns("env".into(), "x".into()),
                Part::Lit("${bad-name}${}c$".into()),
            ]
        );
        assert_eq!(template("${00}").parts, vec![Part::Match(0)]);
    }
}
