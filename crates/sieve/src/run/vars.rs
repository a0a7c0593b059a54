//! Variables (RFC 5229): expansion of templates, `set` and its modifiers,
//! match variables; `global` ones shared with included scripts (RFC 6609
//! §3.5).

use std::borrow::Cow;

use super::{RunError, Runtime};
use crate::ir::Modifiers;
use crate::strings::{MAX_VALUE, Part, Template};

/// Match variables kept (`${0}` .. `${32}`; RFC 5229 asks for 0 to 9);
/// a script naming a higher one does not compile.
pub const MAX_MATCHES: usize = 33;

/// Cut `s` to at most MAX_VALUE bytes, at a character boundary.
pub fn bound(s: String) -> String {
    bound_to(s, MAX_VALUE)
}

/// Cut `s` to at most `max` bytes, at a character boundary.
pub fn bound_to(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// [`bound_to`] for a quoted value: when the cut leaves an odd number of
/// `\` at the end, the last (half of a pair) goes too.
pub fn bound_escaped(s: String, max: usize) -> String {
    let mut s = bound_to(s, max);
    let trailing = s.bytes().rev().take_while(|&b| b == b'\\').count();
    if trailing % 2 == 1 {
        s.pop();
    }
    s
}

fn upper_first(s: &str, upper: bool) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => {
            let f: String = if upper {
                f.to_uppercase().collect()
            } else {
                f.to_lowercase().collect()
            };
            f + c.as_str()
        }
        None => String::new(),
    }
}

fn encode_url(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Apply `set`'s modifiers by precedence (RFC 5229 §4.1): case (40),
/// first letter (30), quoting (20), length (10).
pub fn apply_modifiers(mut v: String, m: &Modifiers) -> String {
    match m.case {
        1 => v = v.to_lowercase(),
        2 => v = v.to_uppercase(),
        _ => {}
    }
    match m.first {
        1 => v = upper_first(&v, false),
        2 => v = upper_first(&v, true),
        _ => {}
    }
    if m.quote_wildcard {
        v = super::matching::quote_wildcard(&v);
    }
    if m.quote_regex {
        v = super::matching::quote_regex(&v);
    }
    if m.encode_url {
        v = encode_url(&v);
    }
    if m.length {
        v = v.chars().count().to_string();
    }
    bound(v)
}

impl Runtime<'_> {
    fn is_global(&self, name: &str) -> bool {
        self.scopes.last().is_some_and(|s| s.globals.contains(name))
    }

    pub fn get_var(&self, name: &str) -> String {
        if self.is_global(name) {
            return self.globals.get(name).cloned().unwrap_or_default();
        }
        self.scopes
            .last()
            .and_then(|s| s.vars.get(name).cloned())
            .unwrap_or_default()
    }

    pub fn set_var(&mut self, name: &str, value: String) -> Result<(), RunError> {
        let value = bound_to(value, self.limits.max_variable_size);
        let max = self.limits.max_variables;
        if self.is_global(name) || name.starts_with("global.") {
            let name = name.strip_prefix("global.").unwrap_or(name).to_string();
            if self.globals.len() >= max && !self.globals.contains_key(&name) {
                return Err(self.fail("too many variables"));
            }
            self.globals.insert(name, value);
            return Ok(());
        }
        let Some(scope) = self.scopes.last_mut() else {
            return Ok(());
        };
        if scope.vars.len() >= max && !scope.vars.contains_key(name) {
            return Err(self.fail("too many variables"));
        }
        scope.vars.insert(name.to_string(), value);
        Ok(())
    }

    /// Set the match variables after a successful :matches or :regex.
    pub(crate) fn set_matches(&mut self, caps: Vec<String>) {
        let max = self.limits.max_variable_size;
        if let Some(s) = self.scopes.last_mut()
            && s.requires_variables
        {
            s.matches = caps
                .into_iter()
                .take(MAX_MATCHES)
                .map(|c| bound_to(c, max))
                .collect();
        }
    }

    /// Are match variables in use (so :matches must capture)?
    pub(crate) fn captures(&self) -> bool {
        self.scopes.last().is_some_and(|s| s.requires_variables)
    }

    /// Expand a template into its text.
    pub fn expand(&self, t: &Template) -> String {
        self.expand_cow(t).into_owned()
    }

    /// [`Runtime::expand`] without a copy of a template that has no
    /// references (most of a script's strings: header names, keys).
    pub fn expand_cow<'t>(&self, t: &'t Template) -> Cow<'t, str> {
        if let Some(l) = t.as_literal() {
            return Cow::Borrowed(l);
        }
        let mut out = String::new();
        for p in &t.parts {
            match p {
                Part::Lit(s) => out.push_str(s),
                Part::Var(name) => out.push_str(&self.get_var(name)),
                Part::Match(n) => {
                    if let Some(v) = self.scopes.last().and_then(|s| s.matches.get(*n)) {
                        out.push_str(v);
                    }
                }
                Part::Ns(ns, name) => {
                    if ns == "global" {
                        out.push_str(&self.globals.get(name).cloned().unwrap_or_default());
                    } else if let Some(v) = self.namespaces.get(&(ns.clone(), name.clone())) {
                        out.push_str(v);
                    }
                }
            }
            if out.len() > MAX_VALUE {
                break;
            }
        }
        Cow::Owned(bound(out))
    }

    pub fn expand_list(&self, l: &[Template]) -> Vec<String> {
        l.iter().map(|t| self.expand(t)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modifiers() {
        let m = |case, first, qw, length| Modifiers {
            case,
            first,
            quote_wildcard: qw,
            quote_regex: false,
            length,
            encode_url: false,
        };
        assert_eq!(
            apply_modifiers("juMBlEd lETteRS".into(), &m(1, 2, false, false)),
            "Jumbled letters"
        );
        assert_eq!(
            apply_modifiers("Ya*?".into(), &m(2, 0, true, false)),
            "YA\\*\\?"
        );
        assert_eq!(apply_modifiers("été".into(), &m(0, 0, false, true)), "3");
        assert_eq!(bound_escaped("0\\*\\*".into(), 4), "0\\*");
        assert_eq!(bound_escaped("0\\*\\*".into(), 5), "0\\*\\*");
        assert_eq!(bound_escaped("ab\\\\".into(), 9), "ab\\\\");
        assert_eq!(apply_modifiers("été".into(), &m(0, 2, false, false)), "Été");
        assert_eq!(encode_url("a b/é"), "a%20b%2F%C3%A9");
        assert_eq!(bound("é".repeat(40_000)).len(), MAX_VALUE);
    }
}
