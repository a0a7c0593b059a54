//! Compiling tests: the base ones (RFC 5228 §5) and those extensions add.

use super::Compiler;
use super::args::{Groups, TagArg};
use crate::ir::{BodyTransform, Custom, CustomArg, Duplicate, Match, Test, Zone};
use crate::lex::Pos;
use crate::parse::{self, Arg};
use crate::strings::Template;

/// The date parts of RFC 5260 §4.2.
pub const DATE_PARTS: &[&str] = &[
    "year", "month", "day", "date", "julian", "hour", "minute", "second", "time", "iso8601",
    "std11", "zone", "weekday",
];

fn no_tags(_: &str) -> Option<(TagArg, Option<&'static str>)> {
    None
}

/// A header field name (RFC 5322 §3.6.8): printable ASCII but colon.
pub fn valid_header_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| (33..=126).contains(&b) && b != b':')
}

impl Compiler<'_> {
    fn needs(&mut self, ext: &str, pos: Pos, name: &str) -> bool {
        if self.has(ext) {
            return true;
        }
        self.error(pos, format!("unknown test '{name}' (require \"{ext}\")"));
        false
    }

    /// A test naming an invalid header field simply never matches it
    /// (Pigeonhole only warns); nothing to refuse.
    fn check_header_names(&mut self, _names: &[Template], _pos: Pos) {}

    fn subtests(&mut self, t: &parse::Test) -> Vec<Test> {
        t.tests.iter().map(|s| self.test(s)).collect()
    }

    fn zone(&mut self, what: &str, s: &mut super::args::Scanned<'_>) -> Option<Zone> {
        let zone = s.take("zone");
        let orig = s.take("originalzone");
        match (zone, orig) {
            (Some(z), None) => {
                let t = self.tag_string(what, &z)?;
                if let Some(lit) = t.as_literal()
                    && crate::run::date::parse_zone(lit).is_none()
                {
                    self.error(z.pos, format!("{what}: invalid time zone \"{lit}\""));
                }
                Some(Zone::Fixed(t))
            }
            (None, Some(_)) => Some(Zone::Original),
            (None, None) => Some(Zone::Local),
            (Some(z), Some(_)) => {
                self.error(z.pos, format!("{what}: :zone and :originalzone together"));
                None
            }
        }
    }

    fn date_part(&mut self, what: &str, t: &Template, pos: Pos) {
        if let Some(p) = t.as_literal()
            && !DATE_PARTS.contains(&p.to_ascii_lowercase().as_str())
        {
            self.error(pos, format!("{what}: unknown date part \"{p}\""));
        }
    }

    pub fn test(&mut self, t: &parse::Test) -> Test {
        self.try_test(t).unwrap_or(Test::False)
    }

    fn try_test(&mut self, t: &parse::Test) -> Option<Test> {
        let name = t.name.to_ascii_lowercase();
        let what = name.as_str();
        let pos = t.pos;
        let takes_tests = matches!(what, "allof" | "anyof" | "not");
        let custom = self.opts.custom.as_ref().is_some_and(|c| {
            c.tests.iter().any(|n| n == what) && c.names.iter().any(|n| self.has(n))
        });
        if super::commands::KNOWN.contains(&what)
            || matches!(what, "if" | "elsif" | "else" | "require")
        {
            self.error(pos, format!("cannot use command '{}' as a test", t.name));
            return None;
        }
        if !takes_tests
            && !custom
            && let Some(first) = t.tests.first()
        {
            // its arguments are checked all the same, and said first
            let bare = parse::Test {
                tests: Vec::new(),
                ..t.clone()
            };
            let _ = self.try_test(&bare);
            self.stray_test(what, first, pos);
            return None;
        }
        let matching = Groups {
            matching: true,
            ..Groups::default()
        };
        Some(match what {
            "true" | "false" => {
                let s = self.scan(what, &t.args, Groups::default(), &no_tags)?;
                self.arity(what, &s, 0, pos);
                if what == "true" {
                    Test::True
                } else {
                    Test::False
                }
            }
            "not" => {
                if !t.args.is_empty() || t.tests.len() != 1 || t.test_list {
                    self.error(pos, "not takes exactly one test");
                    return None;
                }
                Test::Not(Box::new(self.test(&t.tests[0])))
            }
            "allof" | "anyof" => {
                if !t.args.is_empty() || !t.test_list {
                    self.error(pos, format!("{what} takes a list of tests"));
                    return None;
                }
                let subs = self.subtests(t);
                if what == "allof" {
                    Test::AllOf(subs)
                } else {
                    Test::AnyOf(subs)
                }
            }
            "address" | "header" | "exists" => {
                let groups = Groups {
                    matching: what != "exists",
                    address: what == "address",
                    index: what != "exists",
                };
                let mut s = self.scan(what, &t.args, groups, &no_tags)?;
                let m = if what == "exists" {
                    Match::default()
                } else {
                    self.matcher(what, &mut s)?
                };
                let part = if what == "address" {
                    Self::address_part(&mut s, self, what)?
                } else {
                    Default::default()
                };
                let index = if what == "exists" {
                    None
                } else {
                    self.index(what, &mut s)?
                };
                let want = if what == "exists" { 1 } else { 2 };
                if !self.arity(what, &s, want, pos) {
                    return None;
                }
                let role = if what == "address" {
                    "header list"
                } else {
                    "header names"
                };
                let names = self.list_arg_at(what, s.positional.first().copied(), pos, 1, role)?;
                self.check_header_names(&names, pos);
                if what == "address"
                    && let Some(n) = names
                        .iter()
                        .filter_map(|n| n.as_literal())
                        .find(|n| !holds_addresses(n))
                {
                    // RFC 5228 §5.1: restricted to fields that hold addresses
                    self.error(
                        pos,
                        format!("the field '{n}' is not allowed in the address test: it holds no addresses"),
                    );
                }
                if what == "exists" {
                    return Some(Test::Exists { names, mime: None });
                }
                let keys =
                    self.list_arg_at(what, s.positional.get(1).copied(), pos, 2, "key list")?;
                self.check_regex_keys(&m, &keys, pos);
                if what == "address" {
                    Test::Address {
                        m,
                        part,
                        index,
                        headers: names,
                        keys,
                        mime: None,
                    }
                } else {
                    Test::Header {
                        m,
                        index,
                        names,
                        keys,
                        mime: None,
                    }
                }
            }
            "envelope" => {
                if !self.needs("envelope", pos, what) {
                    return None;
                }
                let groups = Groups {
                    matching: true,
                    address: true,
                    index: false,
                };
                let mut s = self.scan(what, &t.args, groups, &no_tags)?;
                let m = self.matcher(what, &mut s)?;
                let part = Self::address_part(&mut s, self, what)?;
                if !self.arity(what, &s, 2, pos) {
                    return None;
                }
                let fields = self.list_arg(what, s.positional.first().copied(), pos)?;
                for f in &fields {
                    if let Some(f) = f.as_literal()
                        && !matches!(f.to_ascii_lowercase().as_str(), "from" | "to" | "auth")
                    {
                        self.error(pos, format!("envelope: unknown envelope part \"{f}\""));
                    }
                }
                let keys = self.list_arg(what, s.positional.get(1).copied(), pos)?;
                self.check_regex_keys(&m, &keys, pos);
                Test::Envelope {
                    m,
                    part,
                    fields,
                    keys,
                }
            }
            "size" => {
                let own = |n: &str| matches!(n, "over" | "under").then_some((TagArg::None, None));
                let mut s = self.scan(what, &t.args, Groups::default(), &own)?;
                let over = s.take("over");
                let under = s.take("under");
                if over.is_some() == under.is_some() {
                    self.error(pos, "size needs exactly one of :over and :under");
                    return None;
                }
                if !self.arity(what, &s, 1, pos) {
                    return None;
                }
                let Arg::Number(limit) = s.positional[0].arg else {
                    self.error(s.positional[0].pos, "size: expected a number");
                    return None;
                };
                Test::Size {
                    over: over.is_some(),
                    limit,
                }
            }
            "body" => {
                if !self.needs("body", pos, what) {
                    return None;
                }
                let own = |n: &str| match n {
                    "raw" | "text" => Some((TagArg::None, None)),
                    "content" => Some((TagArg::List, None)),
                    _ => None,
                };
                let mut s = self.scan(what, &t.args, matching, &own)?;
                let m = self.matcher(what, &mut s)?;
                let raw = s.take("raw");
                let text = s.take("text");
                let content = s.take("content");
                let n = usize::from(raw.is_some())
                    + usize::from(text.is_some())
                    + usize::from(content.is_some());
                if n > 1 {
                    self.error(pos, "body: more than one transform");
                    return None;
                }
                let transform = match (raw, content) {
                    (Some(_), _) => BodyTransform::Raw,
                    (_, Some(c)) => BodyTransform::Content(self.list_arg(what, c.arg, c.pos)?),
                    _ => BodyTransform::Text,
                };
                if !self.arity(what, &s, 1, pos) {
                    return None;
                }
                let keys = self.list_arg(what, s.positional.first().copied(), pos)?;
                self.check_regex_keys(&m, &keys, pos);
                Test::Body { m, transform, keys }
            }
            "date" | "currentdate" => {
                if !self.needs("date", pos, what) {
                    return None;
                }
                let own = |n: &str| match n {
                    "zone" => Some((TagArg::String, None)),
                    "originalzone" if what == "date" => Some((TagArg::None, None)),
                    _ => None,
                };
                let groups = Groups {
                    matching: true,
                    address: false,
                    index: what == "date",
                };
                let mut s = self.scan(what, &t.args, groups, &own)?;
                let m = self.matcher(what, &mut s)?;
                let zone = self.zone(what, &mut s)?;
                let index = if what == "date" {
                    self.index(what, &mut s)?
                } else {
                    None
                };
                let want = if what == "date" { 3 } else { 2 };
                if !self.arity(what, &s, want, pos) {
                    return None;
                }
                let mut it = s.positional.iter().copied();
                let header = if what == "date" {
                    let h = self.string_arg(what, it.next(), pos)?;
                    self.check_header_names(std::slice::from_ref(&h), pos);
                    Some(h)
                } else {
                    None
                };
                let part = self.string_arg(what, it.next(), pos)?;
                self.date_part(what, &part, pos);
                let keys = self.list_arg(what, it.next(), pos)?;
                self.check_regex_keys(&m, &keys, pos);
                match header {
                    Some(header) => Test::Date {
                        m,
                        index,
                        zone,
                        header,
                        part,
                        keys,
                    },
                    None => Test::CurrentDate {
                        m,
                        zone,
                        part,
                        keys,
                    },
                }
            }
            "hasflag" => {
                if !self.needs("imap4flags", pos, what) {
                    return None;
                }
                let mut s = self.scan(what, &t.args, matching, &no_tags)?;
                let m = self.matcher(what, &mut s)?;
                let (vars, keys) = match s.positional.len() {
                    1 => (None, self.list_arg(what, Some(s.positional[0]), pos)?),
                    2 => {
                        let vars = self.list_arg(what, Some(s.positional[0]), pos)?;
                        self.check_var_names(&vars, pos);
                        (Some(vars), self.list_arg(what, Some(s.positional[1]), pos)?)
                    }
                    _ => {
                        self.arity(what, &s, 2, pos);
                        return None;
                    }
                };
                self.check_regex_keys(&m, &keys, pos);
                Test::HasFlag { m, vars, keys }
            }
            "string" => {
                if !self.needs("variables", pos, what) {
                    return None;
                }
                let mut s = self.scan(what, &t.args, matching, &no_tags)?;
                // i;octet when none is named, as Dovecot's Pigeonhole does
                // (the scripts people move in from it rely on it)
                let named = s.tags.iter().any(|t| t.name == "comparator");
                let mut m = self.matcher(what, &mut s)?;
                if !named {
                    m.cmp = crate::ir::Comparator::Octet;
                }
                if !self.arity(what, &s, 2, pos) {
                    return None;
                }
                let sources = self.list_arg(what, Some(s.positional[0]), pos)?;
                let keys = self.list_arg(what, Some(s.positional[1]), pos)?;
                self.check_regex_keys(&m, &keys, pos);
                Test::String { m, sources, keys }
            }
            "mailboxexists" => {
                if !self.needs("mailbox", pos, what) {
                    return None;
                }
                let s = self.scan(what, &t.args, Groups::default(), &no_tags)?;
                if !self.arity(what, &s, 1, pos) {
                    return None;
                }
                Test::MailboxExists(self.list_arg(what, Some(s.positional[0]), pos)?)
            }
            "specialuse_exists" => {
                if !self.needs("special-use", pos, what) {
                    return None;
                }
                let s = self.scan(what, &t.args, Groups::default(), &no_tags)?;
                let test = match s.positional.len() {
                    1 => Test::SpecialUseExists {
                        mailbox: None,
                        uses: self.list_arg(what, Some(s.positional[0]), pos)?,
                    },
                    2 => Test::SpecialUseExists {
                        mailbox: Some(self.string_arg(what, Some(s.positional[0]), pos)?),
                        uses: self.list_arg(what, Some(s.positional[1]), pos)?,
                    },
                    _ => {
                        self.arity(what, &s, 2, pos);
                        return None;
                    }
                };
                if let Test::SpecialUseExists { uses, .. } = &test {
                    for u in uses.iter().filter_map(|u| u.as_literal()) {
                        self.check_special_use(what, u, pos);
                    }
                }
                test
            }
            "environment" => {
                if !self.needs("environment", pos, what) {
                    return None;
                }
                let mut s = self.scan(what, &t.args, matching, &no_tags)?;
                let m = self.matcher(what, &mut s)?;
                if !self.arity(what, &s, 2, pos) {
                    return None;
                }
                let name = self.string_arg(what, Some(s.positional[0]), pos)?;
                let keys = self.list_arg(what, Some(s.positional[1]), pos)?;
                self.check_regex_keys(&m, &keys, pos);
                Test::Environment { m, name, keys }
            }
            "duplicate" => {
                if !self.needs("duplicate", pos, what) {
                    return None;
                }
                let own = |n: &str| match n {
                    "handle" | "header" | "uniqueid" => Some((TagArg::String, None)),
                    "seconds" => Some((TagArg::Number, None)),
                    "last" => Some((TagArg::None, None)),
                    _ => None,
                };
                let mut s = self.scan(what, &t.args, Groups::default(), &own)?;
                let mut tag =
                    |c: &mut Self, n: &str| s.take(n).and_then(|t| c.tag_string(what, &t));
                let handle = tag(self, "handle");
                let header = tag(self, "header");
                let uniqueid = tag(self, "uniqueid");
                if header.is_some() && uniqueid.is_some() {
                    self.error(pos, "duplicate: :header and :uniqueid together");
                    return None;
                }
                if let Some(h) = &header {
                    self.check_header_names(std::slice::from_ref(h), pos);
                }
                let seconds = s.take("seconds").map(|t| Self::tag_number(&t));
                let last = s.flag("last");
                self.arity(what, &s, 0, pos);
                Test::Duplicate(Box::new(Duplicate {
                    handle,
                    header,
                    uniqueid,
                    seconds,
                    last,
                }))
            }
            "ihave" => {
                if !self.needs("ihave", pos, what) {
                    return None;
                }
                let s = self.scan(what, &t.args, Groups::default(), &no_tags)?;
                if !self.arity(what, &s, 1, pos) {
                    return None;
                }
                let Arg::Strings { values, .. } = &s.positional[0].arg else {
                    self.error(pos, "ihave: expected a string list");
                    return None;
                };
                // encoded-character and variables change how the script is
                // read: they cannot be had at run time (only by require)
                let all = values.iter().all(|v| {
                    let v = v.to_ascii_lowercase();
                    self.opts.knows(&v)
                        && (!matches!(v.as_str(), "encoded-character" | "variables")
                            || self.has(&v))
                });
                if all {
                    for v in values {
                        self.exts.insert(v.to_ascii_lowercase());
                    }
                }
                Test::Ihave(all)
            }
            _ if custom => Test::Custom(Box::new(self.custom(
                t.name.clone(),
                &t.args,
                &t.tests,
                None,
                pos,
            ))),
            _ if super::commands::KNOWN.contains(&what) => {
                self.error(pos, format!("cannot use command '{}' as a test", t.name));
                return None;
            }
            _ => {
                if self.unknown_names.insert(format!("test {what}")) {
                    self.error(pos, format!("unknown test '{}'", t.name));
                }
                return None;
            }
        })
    }

    /// Pass a host command's or test's arguments through.
    pub fn custom(
        &mut self,
        name: String,
        args: &[parse::Argument],
        tests: &[parse::Test],
        block: Option<Vec<crate::ir::Cmd>>,
        pos: Pos,
    ) -> Custom {
        let args = args
            .iter()
            .map(|a| match &a.arg {
                Arg::Tag(t) => CustomArg::Tag(t.to_ascii_lowercase()),
                Arg::Number(n) => CustomArg::Number(*n),
                Arg::Strings { values, .. } => {
                    CustomArg::Strings(values.iter().map(|v| self.template(v, a.pos)).collect())
                }
            })
            .collect();
        let tests = tests.iter().map(|t| self.test(t)).collect();
        Custom {
            name: name.to_ascii_lowercase(),
            args,
            tests,
            block,
            line: pos.line,
        }
    }

    pub fn check_var_names(&mut self, vars: &[Template], pos: Pos) {
        for v in vars {
            match v.as_literal() {
                Some(n) if crate::strings::valid_var_name(n) => {}
                Some(n) => self.error(pos, format!("invalid variable name \"{n}\"")),
                None => self.error(pos, "a variable name cannot contain variables"),
            }
        }
    }
}

/// The fields an `address` test may read (RFC 5228 §5.1: restricted to
/// fields that hold addresses, at least From, To, Cc, Bcc, Sender,
/// Resent-From and Resent-To): RFC 5322's address fields, the ones MTAs
/// and list managers add, and any `X-` field (sites add their own).
pub fn holds_addresses(field: &str) -> bool {
    const FIELDS: &[&str] = &[
        "from",
        "to",
        "cc",
        "bcc",
        "sender",
        "reply-to",
        "resent-from",
        "resent-to",
        "resent-cc",
        "resent-bcc",
        "resent-sender",
        "resent-reply-to",
        "return-path",
        "delivered-to",
        "envelope-to",
        "original-recipient",
        "errors-to",
        "apparently-to",
        "mail-followup-to",
        "mail-reply-to",
        "disposition-notification-to",
        "return-receipt-to",
        "read-receipt-to",
        "abuse-reports-to",
        "for-approval",
        "for-handling",
        "for-comment",
    ];
    let f = field.to_ascii_lowercase();
    FIELDS.contains(&f.as_str()) || (f.starts_with("x-") && f.len() > 2)
}

/// The tests [`Compiler::try_test`] knows, whatever the script requires.
pub const TESTS: &[&str] = &[
    "true",
    "false",
    "not",
    "allof",
    "anyof",
    "address",
    "header",
    "exists",
    "envelope",
    "size",
    "body",
    "date",
    "currentdate",
    "hasflag",
    "string",
    "mailboxexists",
    "specialuse_exists",
    "environment",
    "duplicate",
    "ihave",
];
