//! Evaluating tests, the match driver shared by all of them, and the
//! editheader commands (which match like tests do).

use std::borrow::Cow;
use std::sync::Arc;

use smallvec::SmallVec;

use super::address;
use super::date::{self, Moment};
use super::matching::{self, build_regex};
use super::message::{Field, fold_value};
use super::{Host, RunError, Runtime};
use crate::ir::{BodyTransform, Index, Match, MatchKind, Test, Zone};
use crate::strings::Template;

/// The environment items (RFC 5183 §4.1) a run asks its host for.
pub const ENVIRONMENT_ITEMS: &[&str] = &[
    "domain",
    "host",
    "location",
    "name",
    "phase",
    "remote-host",
    "remote-ip",
    "version",
];

/// Fields a script may not delete (RFC 5293 §6): the trace and
/// loop-protection fields.
fn protected(name: &str) -> bool {
    name.eq_ignore_ascii_case("received") || name.eq_ignore_ascii_case("auto-submitted")
}

/// A test's values, fields or keys: most tests have one or two, kept
/// without a heap allocation (a script runs at every delivery).
type Few<T> = SmallVec<[T; 4]>;

/// Pick the `:index` occurrence out of `values`.
fn pick<T>(mut values: Vec<T>, index: Option<Index>) -> Vec<T> {
    let Some(ix) = index else {
        return values;
    };
    let n = usize::try_from(ix.n).unwrap_or(usize::MAX);
    if n == 0 || n > values.len() {
        return Vec::new();
    }
    let i = if ix.last { values.len() - n } else { n - 1 };
    vec![values.swap_remove(i)]
}

/// `:index` as [`super::message::MessageView::named_into`] takes it.
fn index_pair(ix: Index) -> (usize, bool) {
    (usize::try_from(ix.n).unwrap_or(usize::MAX), ix.last)
}

impl Runtime<'_> {
    /// Does any value match any key? Sets the match variables on success
    /// of :matches and :regex.
    pub(crate) fn match_values<V: AsRef<str>>(
        &mut self,
        m: &Match,
        values: &[V],
        keys: &[Template],
    ) -> Result<bool, RunError> {
        self.match_values_capturing(m, values, keys, true)
    }

    /// [`Runtime::match_values`]; `capture` false for the tests whose
    /// matches set no match variables (body, as in Pigeonhole).
    pub(crate) fn match_values_capturing<V: AsRef<str>>(
        &mut self,
        m: &Match,
        values: &[V],
        keys: &[Template],
        capture: bool,
    ) -> Result<bool, RunError> {
        // no value, no match (and no key to expand): the usual case of a
        // rule on a field the message does not have
        if values.is_empty() && !matches!(m.kind, MatchKind::Count(_)) {
            return Ok(false);
        }
        let keys: Few<Cow<'_, str>> = keys.iter().map(|k| self.expand_cow(k)).collect();
        if let MatchKind::Count(op) = m.kind {
            let count = values.len().to_string();
            self.step(keys.len() as u64)?;
            return Ok(keys
                .iter()
                .any(|k| matching::relation(op, matching::order(m.cmp, &count, k))));
        }
        for v in values {
            let v = v.as_ref();
            self.step(keys.len() as u64 + 1)?;
            for k in &keys {
                let hit = match &m.kind {
                    MatchKind::Is => matching::equal(m.cmp, v, k),
                    MatchKind::Contains => matching::contains(m.cmp, v, k),
                    MatchKind::Value(op) => matching::relation(*op, matching::order(m.cmp, v, k)),
                    MatchKind::Matches => {
                        self.step(u64::try_from(v.len() / 64).unwrap_or(u64::MAX))?;
                        match matching::matches(m.cmp, v, k) {
                            Some(caps) => {
                                if capture && self.captures() {
                                    self.set_matches(caps);
                                }
                                true
                            }
                            None => false,
                        }
                    }
                    MatchKind::Regex => {
                        // a key that is not a valid regex (made at run time
                        // from variables) matches nothing
                        let Some(re) = self.regex(k, m) else {
                            continue;
                        };
                        match re.captures(v) {
                            Some(c) => {
                                let caps = c
                                    .iter()
                                    .map(|g| g.map_or(String::new(), |g| g.as_str().to_string()))
                                    .collect();
                                if capture && self.captures() {
                                    self.set_matches(caps);
                                }
                                true
                            }
                            None => false,
                        }
                    }
                    MatchKind::Count(_) => false,
                };
                if hit {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn regex(&mut self, key: &str, m: &Match) -> Option<regex::Regex> {
        let cache_key = format!("{:?}\u{0}{key}", m.cmp);
        if let Some(r) = self.regex_cache.get(&cache_key) {
            return Some(r.clone());
        }
        let re = match build_regex(key, m.cmp) {
            Ok(re) => re,
            Err(e) => {
                if self.warnings.len() < 16 {
                    self.warnings
                        .push(format!("invalid regular expression \"{key}\": {e}"));
                }
                return None;
            }
        };
        if self.regex_cache.len() < 64 {
            self.regex_cache.insert(cache_key, re.clone());
        }
        Some(re)
    }

    /// The fields of every name in `names` (each one's `:index` applied),
    /// in the names' order.
    fn fields_named(&mut self, names: &[Template], index: Option<Index>) -> Few<Arc<Field>> {
        let mut out = Few::new();
        for n in names {
            let n = self.expand_cow(n);
            self.message.named_into(&n, index.map(index_pair), &mut out);
        }
        out
    }

    fn zone_offset(&mut self, host: &mut dyn Host, zone: &Zone, original: i32) -> Option<i32> {
        match zone {
            Zone::Local => Some(host.local_offset()),
            Zone::Original => Some(original),
            Zone::Fixed(t) => date::parse_zone(&self.expand(t)),
        }
    }

    pub fn eval(&mut self, host: &mut dyn Host, test: &Test) -> Result<bool, RunError> {
        self.step(1)?;
        Ok(match test {
            Test::True => true,
            Test::False => false,
            Test::Not(t) => !self.eval(host, t)?,
            Test::AllOf(ts) => {
                for t in ts {
                    if !self.eval(host, t)? {
                        return Ok(false);
                    }
                }
                true
            }
            Test::AnyOf(ts) => {
                for t in ts {
                    if self.eval(host, t)? {
                        return Ok(true);
                    }
                }
                false
            }
            Test::Address {
                m,
                part,
                index,
                headers,
                keys,
                ..
            } => {
                // the values borrow from the fields (shared, not copied)
                let fields = self.fields_named(headers, *index);
                let seps = &self.detail_separators;
                let mut values: Few<Cow<'_, str>> = Few::new();
                for f in &fields {
                    // an address that is not valid has no local part or
                    // domain to match (RFC 5228 §2.7.4); 8-bit text in
                    // a header address is not RFC 5322 syntax (Pigeonhole
                    // agrees: its test-address.svtest)
                    let ok = |a: &String| {
                        a.is_ascii()
                            && matches!(a.rsplit_once('@'), Some((l, d)) if !l.is_empty() && !d.is_empty())
                    };
                    let valid = |a: &&String| *part == crate::ir::AddrPart::All || ok(a);
                    // an empty field, or one that is a single invalid
                    // address, is that text to `:all` (Pigeonhole's
                    // reading: `Cc: nonsense` is "nonsense")
                    let mut addrs = f.addresses();
                    let single = !f.value().contains(&b',');
                    if addrs.is_empty() || (single && !addrs.iter().all(ok)) {
                        if *part == crate::ir::AddrPart::All {
                            let raw = String::from_utf8_lossy(f.value())
                                .split_whitespace()
                                .collect::<Vec<_>>()
                                .join(" ");
                            values.push(Cow::Owned(raw));
                        }
                        addrs = &[];
                    }
                    values.extend(
                        addrs
                            .iter()
                            .filter(valid)
                            .filter_map(|a| address::part_with(a, *part, seps))
                            .map(Cow::Borrowed),
                    );
                }
                self.match_values(m, &values, keys)?
            }
            Test::Envelope {
                m,
                part,
                fields,
                keys,
            } => {
                let mut values = Vec::new();
                for f in fields {
                    let f = self.expand_cow(f);
                    let addr = match f.to_ascii_lowercase().as_str() {
                        // the null reverse-path is matched as "" whatever
                        // the address part (RFC 5228 §5.4)
                        "from" if self.envelope.from.is_empty() => {
                            values.push(String::new());
                            continue;
                        }
                        "from" => self.envelope.from.clone(),
                        // no recipient: no value
                        "to" if self.envelope.to.is_empty() => continue,
                        "to" => self.envelope.to.clone(),
                        "auth" => match &self.envelope.auth {
                            Some(a) => a.clone(),
                            None => continue,
                        },
                        _ => continue,
                    };
                    values.extend(
                        address::part_with(&addr, *part, &self.detail_separators)
                            .map(str::to_string),
                    );
                }
                self.match_values(m, &values, keys)?
            }
            Test::Header {
                m,
                index,
                names,
                keys,
                ..
            } => {
                let fields = self.fields_named(names, *index);
                let values: Few<&str> = fields.iter().map(|f| f.text()).collect();
                self.match_values(m, &values, keys)?
            }
            Test::Exists { names, .. } => names.iter().all(|n| {
                let n = self.expand_cow(n);
                self.message.exists(&n)
            }),
            Test::Size { over, limit } => {
                let size = self.message.size();
                if *over { size > *limit } else { size < *limit }
            }
            Test::Body { m, transform, keys } => {
                let values = self.body_values(transform);
                self.step(values.iter().map(|v| v.len() as u64 / 256).sum())?;
                self.match_values_capturing(m, &values, keys, false)?
            }
            Test::Date {
                m,
                index,
                zone,
                header,
                part,
                keys,
            } => {
                let part = self.expand(part);
                let mut values = Vec::new();
                for f in self.fields_named(std::slice::from_ref(header), *index) {
                    let text = f.text();
                    let text = if f.is("received") {
                        text.rsplit_once(';').map_or(text, |(_, d)| d)
                    } else {
                        text
                    };
                    let Some(mo) = date::parse_date(text) else {
                        continue;
                    };
                    let Some(offset) = self.zone_offset(host, zone, mo.offset) else {
                        continue;
                    };
                    values.extend(date::part(Moment { offset, ..mo }, &part));
                }
                self.match_values(m, &values, keys)?
            }
            Test::CurrentDate {
                m,
                zone,
                part,
                keys,
            } => {
                let part = self.expand(part);
                let now = host.now();
                let local = host.local_offset();
                let values: Vec<String> = self
                    .zone_offset(host, zone, local)
                    .and_then(|offset| date::part(Moment { epoch: now, offset }, &part))
                    .into_iter()
                    .collect();
                self.match_values(m, &values, keys)?
            }
            Test::HasFlag { m, vars, keys } => {
                let flags = match vars {
                    None => self.flags.clone(),
                    Some(vs) => {
                        let mut all = Vec::new();
                        for v in self.expand_list(vs) {
                            all.extend(super::split_flags(&self.get_var(&v.to_ascii_lowercase())));
                        }
                        super::normalize_flags(all)
                    }
                };
                if let MatchKind::Count(_) = m.kind {
                    self.match_values(m, &flags, keys)?
                } else {
                    // the keys are flag lists too (RFC 5232 §4)
                    let keys: Vec<Template> = self
                        .expand_list(keys)
                        .iter()
                        .flat_map(|k| super::split_flags(k))
                        .map(Template::literal)
                        .collect();
                    self.match_values(m, &flags, &keys)?
                }
            }
            Test::String { m, sources, keys } => {
                let mut values = self.expand_list(sources);
                if let MatchKind::Count(_) = m.kind {
                    values.retain(|v| !v.is_empty());
                }
                self.match_values(m, &values, keys)?
            }
            Test::MailboxExists(names) => {
                let names = self.expand_list(names);
                names.iter().all(|n| host.mailbox_exists(n))
            }
            Test::SpecialUseExists { mailbox, uses } => {
                let mailbox = mailbox.as_ref().map(|t| self.expand(t));
                let uses = self.expand_list(uses);
                host.special_use_exists(mailbox.as_deref(), &uses)
            }
            Test::Environment { m, name, keys } => {
                let name = self.expand(name).to_ascii_lowercase();
                match host.environment(&name) {
                    Some(v) => self.match_values(m, &[v], keys)?,
                    None => false,
                }
            }
            Test::Duplicate(d) => {
                let handle = d
                    .handle
                    .as_ref()
                    .map(|t| self.expand(t))
                    .unwrap_or_default();
                let id = match (&d.uniqueid, &d.header) {
                    (Some(u), _) => Some(self.expand(u)),
                    (None, h) => {
                        let name = h
                            .as_ref()
                            .map_or_else(|| "message-id".to_string(), |t| self.expand(t));
                        self.message.values(&name).into_iter().next()
                    }
                };
                let Some(id) = id else {
                    return Ok(false);
                };
                let period = d.seconds.unwrap_or(0);
                let seen = host.duplicate_seen(&handle, &id, period, d.last);
                self.out.duplicates.push(super::actions::DuplicateMark {
                    handle,
                    id,
                    period,
                    last: d.last,
                });
                seen
            }
            Test::Ihave(b) => *b,
            Test::Custom(c) => host.custom_test(self, c)?,
        })
    }

    fn body_values(&mut self, transform: &BodyTransform) -> Vec<String> {
        match transform {
            BodyTransform::Raw if !self.message.has_body() => Vec::new(),
            BodyTransform::Raw => vec![String::from_utf8_lossy(self.message.body()).into_owned()],
            BodyTransform::Text | BodyTransform::Content(_) => {
                let specs: Vec<String> = match transform {
                    BodyTransform::Content(l) => self
                        .expand_list(l)
                        .into_iter()
                        .map(|s| s.to_ascii_lowercase())
                        .collect(),
                    _ => vec!["text".into()],
                };
                // "" is every part, "type" every subtype of it,
                // "type/subtype" exactly that; anything else nothing
                let text_only = matches!(transform, BodyTransform::Text);
                let want = |t: &str, s: &str| {
                    if text_only {
                        // the parts a reader sees as text: text/* with a
                        // valid subtype, and XHTML
                        return (t == "text" && !s.is_empty() && !s.contains('/'))
                            || (t == "application" && s == "xhtml+xml");
                    }
                    specs.iter().any(|spec| match spec.split_once('/') {
                        Some((st, ss)) => {
                            !st.is_empty()
                                && !ss.is_empty()
                                && !ss.contains('/')
                                && st == t
                                && ss == s
                        }
                        None => spec.is_empty() || spec == t,
                    })
                };
                if !self.message.has_body() {
                    return Vec::new();
                }
                let msg = facteur_imap_message::Message::parse(self.message.raw());
                let mut out = Vec::new();
                // :text reads HTML as its text, not its markup (RFC 5173
                // §5.1: what a user would see)
                msg.body_parts(&want, &mut |p| {
                    if text_only && (p.subtype == "html" || p.subtype == "xhtml+xml") {
                        out.push(facteur_imap_message::fields::html_to_text(&p.text));
                    } else {
                        out.push(p.text);
                    }
                });
                out
            }
        }
    }

    pub(crate) fn add_header(
        &mut self,
        name: &str,
        value: &str,
        last: bool,
    ) -> Result<(), RunError> {
        if !crate::compile::valid_header_name(name) {
            return Err(self.fail(format!("addheader: the field name \"{name}\" is invalid")));
        }
        if let Some(why) =
            crate::compile::bad_header_value(value, self.limits.editheader.max_header_size)
        {
            return Err(self.fail(format!("addheader: {why}")));
        }
        let lower = name.to_ascii_lowercase();
        let policy = &self.limits.editheader;
        // Received and Auto-Submitted may be added, never deleted (RFC
        // 5293 §6 protects what is there).
        if policy.protected.contains(&lower) || policy.forbid_add.contains(&lower) {
            return Ok(());
        }
        // Line breaks in the value: one already folded (followed by a
        // blank) is unfolded, any other becomes a space; the field is
        // folded again when it is written.
        let mut clean = String::with_capacity(value.len());
        let mut it = value.chars().peekable();
        while let Some(c) = it.next() {
            if c == '\r' || c == '\n' {
                if c == '\r' && it.peek() == Some(&'\n') {
                    it.next();
                }
                if !matches!(it.peek(), Some(' ' | '\t')) {
                    clean.push(' ');
                }
            } else {
                clean.push(c);
            }
        }
        let encoded = facteur_imap_message::fields::encode(&clean);
        let mut v = b" ".to_vec();
        v.extend_from_slice(fold_value(&encoded).as_bytes());
        v.extend_from_slice(b"\r\n");
        let field = Arc::new(Field::new(name, &v));
        let fields = self.message.fields();
        if last {
            fields.push(field);
        } else {
            fields.insert(0, field);
        }
        self.message.version += 1;
        Ok(())
    }

    pub(crate) fn delete_header(
        &mut self,
        index: Option<Index>,
        m: &Match,
        name: &Template,
        patterns: Option<&[Template]>,
    ) -> Result<(), RunError> {
        let name = self.expand(name);
        let lower = name.to_ascii_lowercase();
        let policy = &self.limits.editheader;
        if protected(&name)
            || policy.protected.contains(&lower)
            || policy.forbid_delete.contains(&lower)
        {
            return Ok(());
        }
        let positions: Vec<usize> = self
            .message
            .fields()
            .iter()
            .enumerate()
            .filter(|(_, f)| f.is(&name))
            .map(|(i, _)| i)
            .collect();
        let candidates = pick(positions, index);
        let mut doomed = Vec::new();
        for i in candidates {
            let keep_it = match patterns {
                None => false,
                Some(p) => {
                    let text = self.message.fields()[i].text().to_string();
                    !self.match_values(m, &[text], p)?
                }
            };
            if !keep_it {
                doomed.push(i);
            }
        }
        if doomed.is_empty() {
            return Ok(());
        }
        let mut i = 0;
        self.message.fields().retain(|_| {
            let drop = doomed.contains(&i);
            i += 1;
            !drop
        });
        self.message.version += 1;
        Ok(())
    }
}
