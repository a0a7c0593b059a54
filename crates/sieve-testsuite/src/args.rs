//! The arguments of the test suite's commands, as the compiler passed them
//! through: tags with their values, then positional strings and numbers;
//! and the comparator / match type tags turned into a [`Match`].

use facteur_sieve::ir::{Comparator, CustomArg, Match, MatchKind, RelOp};
use facteur_sieve::strings::Template;

#[derive(Debug, Default)]
pub struct Parsed {
    /// (tag, its string or number value when it takes one)
    pub tags: Vec<(String, Option<CustomArg>)>,
    pub positional: Vec<CustomArg>,
}

/// Tags that take a value.
fn takes_value(tag: &str) -> bool {
    matches!(
        tag,
        "comparator"
            | "value"
            | "count"
            | "index"
            | "folder"
            | "extension"
            | "specialuse"
            | "mailbox"
    )
}

pub fn parse(args: &[CustomArg]) -> Parsed {
    let mut p = Parsed::default();
    let mut it = args.iter().peekable();
    while let Some(a) = it.next() {
        match a {
            CustomArg::Tag(t) => {
                let v = if takes_value(t) {
                    it.next().cloned()
                } else {
                    None
                };
                p.tags.push((t.clone(), v));
            }
            other => p.positional.push(other.clone()),
        }
    }
    p
}

impl Parsed {
    pub fn has(&self, tag: &str) -> bool {
        self.tags.iter().any(|(t, _)| t == tag)
    }

    pub fn tag(&self, tag: &str) -> Option<&CustomArg> {
        self.tags
            .iter()
            .find(|(t, _)| t == tag)
            .and_then(|(_, v)| v.as_ref())
    }

    pub fn number(&self, tag: &str) -> Option<u64> {
        match self.tag(tag) {
            Some(CustomArg::Number(n)) => Some(*n),
            _ => None,
        }
    }

    pub fn strings(&self, i: usize) -> Option<&Vec<Template>> {
        match self.positional.get(i) {
            Some(CustomArg::Strings(l)) => Some(l),
            _ => None,
        }
    }

    pub fn positional_number(&self, i: usize) -> Option<u64> {
        match self.positional.get(i) {
            Some(CustomArg::Number(n)) => Some(*n),
            _ => None,
        }
    }

    fn tag_literal(&self, tag: &str) -> Option<String> {
        match self.tag(tag) {
            Some(CustomArg::Strings(l)) => {
                l.first().and_then(|t| t.as_literal()).map(str::to_string)
            }
            _ => None,
        }
    }

    /// The comparator and match type, i;octet unless one is named
    /// (test_result_action and test_error compare exactly).
    pub fn matcher_octet(&self) -> Match {
        let mut m = self.matcher();
        if !self.has("comparator") {
            m.cmp = Comparator::Octet;
        }
        m
    }

    /// The comparator and match type (default :is, i;ascii-casemap).
    pub fn matcher(&self) -> Match {
        let mut m = Match::default();
        if let Some(c) = self.tag_literal("comparator") {
            m.cmp = match c.to_ascii_lowercase().as_str() {
                "i;octet" => Comparator::Octet,
                "i;ascii-numeric" => Comparator::AsciiNumeric,
                "i;unicode-casemap" => Comparator::UnicodeCasemap,
                _ => Comparator::AsciiCasemap,
            };
        }
        let rel = |s: Option<String>| match s.unwrap_or_default().to_ascii_lowercase().as_str() {
            "gt" => RelOp::Gt,
            "ge" => RelOp::Ge,
            "lt" => RelOp::Lt,
            "le" => RelOp::Le,
            "ne" => RelOp::Ne,
            _ => RelOp::Eq,
        };
        if self.has("contains") {
            m.kind = MatchKind::Contains;
        } else if self.has("matches") {
            m.kind = MatchKind::Matches;
        } else if self.has("regex") {
            m.kind = MatchKind::Regex;
        } else if self.has("count") {
            m.kind = MatchKind::Count(rel(self.tag_literal("count")));
        } else if self.has("value") {
            m.kind = MatchKind::Value(rel(self.tag_literal("value")));
        }
        m
    }
}
