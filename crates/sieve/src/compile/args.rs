//! Argument scanning shared by every command and test: tagged arguments
//! first (in any order, each at most once), then the positional ones; the
//! comparator, match type, address part and index tags (RFC 5228 §2.7,
//! RFC 5231, RFC 5233, RFC 5260 §6); strings turned into templates.

use crate::ir::{AddrPart, Comparator, Index, List, Match, MatchKind, RelOp};
use crate::lex::Pos;
use crate::parse::{Arg, Argument};
use crate::strings::{self, Template};

use super::Compiler;

/// What a tag takes after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TagArg {
    None,
    Number,
    String,
    List,
}

/// A tag as found: its (lower-case) name, where, and its argument.
#[derive(Debug)]
pub struct FoundTag<'a> {
    pub name: String,
    pub pos: Pos,
    pub arg: Option<&'a Argument>,
}

#[derive(Debug)]
pub struct Scanned<'a> {
    pub tags: Vec<FoundTag<'a>>,
    pub positional: Vec<&'a Argument>,
}

impl<'a> Scanned<'a> {
    pub fn take(&mut self, name: &str) -> Option<FoundTag<'a>> {
        let i = self.tags.iter().position(|t| t.name == name)?;
        Some(self.tags.remove(i))
    }

    pub fn flag(&mut self, name: &str) -> bool {
        self.take(name).is_some()
    }
}

/// The tags every matching test takes, and the extension each needs.
fn match_tag(name: &str) -> Option<(TagArg, Option<&'static str>)> {
    Some(match name {
        "comparator" => (TagArg::String, None),
        "is" | "contains" | "matches" => (TagArg::None, None),
        "regex" => (TagArg::None, Some("regex")),
        "value" | "count" => (TagArg::String, Some("relational")),
        _ => return None,
    })
}

fn address_tag(name: &str) -> Option<(TagArg, Option<&'static str>)> {
    Some(match name {
        "all" | "localpart" | "domain" => (TagArg::None, None),
        "user" | "detail" => (TagArg::None, Some("subaddress")),
        _ => return None,
    })
}

fn index_tag(name: &str) -> Option<(TagArg, Option<&'static str>)> {
    Some(match name {
        "index" => (TagArg::Number, Some("index")),
        "last" => (TagArg::None, Some("index")),
        _ => return None,
    })
}

/// Whether `name` is the name of a tag some test or command takes (a tag
/// written without its colon reads as a test name).
pub fn is_tag_name(name: &str) -> bool {
    match_tag(name).is_some()
        || address_tag(name).is_some()
        || index_tag(name).is_some()
        || matches!(
            name,
            "copy"
                | "create"
                | "flags"
                | "over"
                | "under"
                | "days"
                | "seconds"
                | "subject"
                | "from"
                | "addresses"
                | "mime"
                | "handle"
                | "raw"
                | "content"
                | "text"
                | "zone"
                | "originalzone"
                | "specialuse"
                | "global"
                | "personal"
                | "once"
                | "optional"
                | "upper"
                | "lower"
                | "upperfirst"
                | "lowerfirst"
                | "quotewildcard"
                | "quoteregex"
                | "length"
                | "uniqueid"
        )
}

/// Which tag groups a test accepts.
#[derive(Debug, Clone, Copy, Default)]
pub struct Groups {
    pub matching: bool,
    pub address: bool,
    pub index: bool,
}

pub type TagSpec<'s> = &'s dyn Fn(&str) -> Option<(TagArg, Option<&'static str>)>;

impl Compiler<'_> {
    /// Split `args` into tags and positional arguments, checking every tag
    /// against `groups` and `own` (the command's own tags) and the
    /// extensions they need. None after an error was recorded.
    pub fn scan<'a>(
        &mut self,
        what: &str,
        args: &'a [Argument],
        groups: Groups,
        own: TagSpec<'_>,
    ) -> Option<Scanned<'a>> {
        let mut out = Scanned {
            tags: Vec::new(),
            positional: Vec::new(),
        };
        let mut i = 0;
        let mut ok = true;
        while i < args.len() {
            let a = &args[i];
            let Arg::Tag(tag) = &a.arg else {
                out.positional.push(a);
                i += 1;
                continue;
            };
            let name = tag.to_ascii_lowercase();
            let spec = own(&name)
                .or_else(|| groups.matching.then(|| match_tag(&name)).flatten())
                .or_else(|| groups.address.then(|| address_tag(&name)).flatten())
                .or_else(|| groups.index.then(|| index_tag(&name)).flatten());
            let noun = self.noun(what);
            let Some((targ, _)) = spec.filter(|(_, ext)| ext.is_none_or(|e| self.has(e))) else {
                // one mistake, usually repeated: said once per script
                if self.unknown_names.insert(format!("{what} :{name}")) {
                    self.error(
                        a.pos,
                        format!(
                            "unknown tagged argument ':{tag}' for the {what} {noun} (said once)"
                        ),
                    );
                }
                return None;
            };
            if !out.positional.is_empty() {
                self.error(
                    a.pos,
                    format!("unexpected tag ':{tag}' after the positional arguments of the {what} {noun}"),
                );
                return None;
            }
            if out.tags.iter().any(|t| t.name == name) {
                self.error(a.pos, format!("{what}: tag :{tag} given twice"));
                ok = false;
            }
            let arg = match targ {
                TagArg::None => None,
                _ => {
                    let next = args.get(i + 1);
                    let fits = match (targ, next.map(|n| &n.arg)) {
                        (TagArg::Number, Some(Arg::Number(_))) => true,
                        (TagArg::String, Some(Arg::Strings { list, .. })) => !list,
                        (TagArg::List, Some(Arg::Strings { .. })) => true,
                        _ => false,
                    };
                    if !fits {
                        let kind = match targ {
                            TagArg::Number => "a number",
                            TagArg::String => "a string",
                            _ => "a string list",
                        };
                        self.error(a.pos, format!("{what}: tag :{tag} needs {kind}"));
                        return None;
                    }
                    i += 1;
                    next
                }
            };
            out.tags.push(FoundTag {
                name,
                pos: a.pos,
                arg,
            });
            i += 1;
        }
        ok.then_some(out)
    }

    /// A string (encoded characters decoded, variables made a template).
    pub fn template(&mut self, s: &str, pos: Pos) -> Template {
        let s = if self.has("encoded-character") {
            match strings::decode_encoded_characters(s, pos) {
                Ok(s) => s,
                Err(e) => {
                    self.error(e.pos(), e.message.clone());
                    s.to_string()
                }
            }
        } else {
            s.to_string()
        };
        if self.has("variables") {
            let t = strings::template(&s);
            for p in &t.parts {
                if let strings::Part::Match(n) = p
                    && *n >= crate::run::vars::MAX_MATCHES
                {
                    self.error(
                        pos,
                        format!(
                            "match value index {n} out of range (the highest is {})",
                            crate::run::vars::MAX_MATCHES - 1
                        ),
                    );
                }
                if let strings::Part::Ns(ns, _) = p {
                    let known = ns == "env" && self.has("environment")
                        || ns == "global" && self.has("include")
                        || self.opts.custom.as_ref().is_some_and(|c| {
                            c.namespaces.iter().any(|n| n == ns)
                                && c.names.iter().any(|n| self.has(n))
                        });
                    if !known {
                        self.error(pos, format!("unknown variable namespace \"{ns}\""));
                    }
                }
            }
            t
        } else {
            Template::literal(s)
        }
    }

    /// A single-string argument.
    pub fn string_arg(&mut self, what: &str, a: Option<&Argument>, pos: Pos) -> Option<Template> {
        match a.map(|a| (&a.arg, a.pos)) {
            // a list of one is still a list (RFC 5228 §2.4.2.1 lets a
            // string stand for a list, not the other way)
            Some((
                Arg::Strings {
                    values,
                    list: false,
                },
                p,
            )) => {
                let v = values[0].clone();
                Some(self.template(&v, p))
            }
            Some((_, p)) => {
                self.error(p, format!("{what}: expected a string"));
                None
            }
            None => {
                self.error(pos, format!("{what}: a string argument is missing"));
                None
            }
        }
    }

    /// A string-list argument (a single string is a list of one).
    pub fn list_arg(&mut self, what: &str, a: Option<&Argument>, pos: Pos) -> Option<List> {
        match a.map(|a| (&a.arg, a.pos)) {
            Some((Arg::Strings { values, .. }, p)) => {
                let values = values.clone();
                Some(values.iter().map(|v| self.template(v, p)).collect())
            }
            Some((_, p)) => {
                self.error(p, format!("{what}: expected a string list"));
                None
            }
            None => {
                self.error(pos, format!("{what}: a string list argument is missing"));
                None
            }
        }
    }

    pub fn tag_string(&mut self, what: &str, t: &FoundTag<'_>) -> Option<Template> {
        self.string_arg(what, t.arg, t.pos)
    }

    pub fn tag_number(t: &FoundTag<'_>) -> u64 {
        match t.arg.map(|a| &a.arg) {
            Some(Arg::Number(n)) => *n,
            _ => 0,
        }
    }

    /// The exact number of positional arguments.
    pub fn arity(&mut self, what: &str, s: &Scanned<'_>, n: usize, pos: Pos) -> bool {
        if s.positional.len() == n {
            return true;
        }
        let noun = self.noun(what);
        self.error(
            pos,
            format!(
                "the {what} {noun} requires {n} positional argument{}, but {} {} specified",
                if n == 1 { "" } else { "s" },
                s.positional.len(),
                if s.positional.len() == 1 { "is" } else { "are" }
            ),
        );
        false
    }

    /// "test" or "command", for messages.
    pub fn noun(&self, what: &str) -> &'static str {
        let custom = self
            .opts
            .custom
            .as_ref()
            .is_some_and(|c| c.tests.iter().any(|n| n == what));
        if custom || super::tests::TESTS.contains(&what) {
            "test"
        } else {
            "command"
        }
    }

    /// A string-list argument at a place the messages name (`n`, from 1,
    /// and what it holds).
    pub fn list_arg_at(
        &mut self,
        what: &str,
        a: Option<&Argument>,
        pos: Pos,
        n: usize,
        role: &str,
    ) -> Option<List> {
        if let Some(a) = a
            && !matches!(a.arg, Arg::Strings { .. })
        {
            let found = if matches!(a.arg, Arg::Number(_)) {
                "a number"
            } else {
                "something else"
            };
            let noun = self.noun(what);
            self.error(
                a.pos,
                format!(
                    "the {what} {noun} expects a string list as argument {n} ({role}), but {found} was found"
                ),
            );
            return None;
        }
        self.list_arg(what, a, pos)
    }

    /// The comparator and match type among the scanned tags.
    pub fn matcher(&mut self, what: &str, s: &mut Scanned<'_>) -> Option<Match> {
        let mut m = Match::default();
        if let Some(t) = s.take("comparator") {
            let name = match t.arg.map(|a| &a.arg) {
                Some(Arg::Strings { values, .. }) => values[0].to_ascii_lowercase(),
                _ => String::new(),
            };
            m.cmp = match name.as_str() {
                "i;octet" => Comparator::Octet,
                "i;ascii-casemap" => Comparator::AsciiCasemap,
                "i;ascii-numeric" if self.has("comparator-i;ascii-numeric") => {
                    Comparator::AsciiNumeric
                }
                "i;unicode-casemap" if self.has("comparator-i;unicode-casemap") => {
                    Comparator::UnicodeCasemap
                }
                _ => {
                    self.error(t.pos, format!("{what}: unknown comparator \"{name}\""));
                    return None;
                }
            };
        }
        let mut kinds = Vec::new();
        for name in ["is", "contains", "matches", "regex", "value", "count"] {
            if let Some(t) = s.take(name) {
                kinds.push((name, t));
            }
        }
        if kinds.len() > 1 {
            self.error(kinds[1].1.pos, format!("{what}: more than one match type"));
            return None;
        }
        if let Some((name, t)) = kinds.pop() {
            m.kind = match name {
                "is" => MatchKind::Is,
                "contains" => MatchKind::Contains,
                "matches" => MatchKind::Matches,
                "regex" => MatchKind::Regex,
                _ => {
                    let op = match t.arg.map(|a| &a.arg) {
                        Some(Arg::Strings { values, .. }) => values[0].to_ascii_lowercase(),
                        _ => String::new(),
                    };
                    let op = match op.as_str() {
                        "gt" => RelOp::Gt,
                        "ge" => RelOp::Ge,
                        "lt" => RelOp::Lt,
                        "le" => RelOp::Le,
                        "eq" => RelOp::Eq,
                        "ne" => RelOp::Ne,
                        _ => {
                            self.error(
                                t.pos,
                                format!("{what}: invalid relational operator \"{op}\""),
                            );
                            return None;
                        }
                    };
                    if name == "value" {
                        MatchKind::Value(op)
                    } else {
                        MatchKind::Count(op)
                    }
                }
            };
            let substring = matches!(
                m.kind,
                MatchKind::Contains | MatchKind::Matches | MatchKind::Regex
            );
            if substring && m.cmp == Comparator::AsciiNumeric {
                self.error(
                    t.pos,
                    format!("{what}: the comparator i;ascii-numeric cannot be used with :{name}"),
                );
                return None;
            }
        }
        Some(m)
    }

    /// Check the constant keys of a `:regex` match compile.
    pub fn check_regex_keys(&mut self, m: &Match, keys: &List, pos: Pos) {
        if m.kind != MatchKind::Regex {
            return;
        }
        for k in keys {
            if let Some(k) = k.as_literal()
                && let Err(e) = crate::run::matching::build_regex(k, m.cmp)
            {
                self.error(pos, format!("invalid regular expression \"{k}\": {e}"));
            }
        }
    }

    pub fn address_part(s: &mut Scanned<'_>, c: &mut Self, what: &str) -> Option<AddrPart> {
        let mut parts = Vec::new();
        for (name, p) in [
            ("all", AddrPart::All),
            ("localpart", AddrPart::LocalPart),
            ("domain", AddrPart::Domain),
            ("user", AddrPart::User),
            ("detail", AddrPart::Detail),
        ] {
            if let Some(t) = s.take(name) {
                parts.push((p, t.pos));
            }
        }
        if parts.len() > 1 {
            c.error(parts[1].1, format!("{what}: more than one address part"));
            return None;
        }
        Some(parts.pop().map_or(AddrPart::All, |p| p.0))
    }

    pub fn index(&mut self, what: &str, s: &mut Scanned<'_>) -> Option<Option<Index>> {
        let index = s.take("index");
        let last = s.take("last");
        match (index, last) {
            (None, None) => Some(None),
            (None, Some(l)) => {
                self.error(l.pos, format!("{what}: :last needs :index"));
                None
            }
            (Some(i), last) => {
                let n = Self::tag_number(&i);
                if n == 0 {
                    self.error(i.pos, format!("{what}: :index counts from 1"));
                    return None;
                }
                Some(Some(Index {
                    n,
                    last: last.is_some(),
                }))
            }
        }
    }
}
