//! The system aliases file, aliases(5): `name: value, value, ...`.
//!
//! Offers [`parse`], a pure function from the file's text to its entries
//! and the problems found, each with its line number. The policy (what is
//! delivered, what is refused) is [`crate::system`]'s; this module only
//! reads the syntax Postfix's and Sendmail's `newaliases` read:
//! - a line whose first non-blank character is `#` is a comment, a blank
//!   line is skipped; a line that starts with a space or a tab continues
//!   the entry above it;
//! - the name ends at the first `:` (it may be written in double quotes)
//!   and is looked up without regard to case;
//! - values are separated by commas; double quotes protect commas and
//!   spaces (`"|/usr/bin/prog -a, -b"`);
//! - a value is an address (`user@domain`), a local name (`root`, made
//!   `root@<domain>` with the domain given), `:include:/path`, `|command`,
//!   `/path/file`, or `\name` (the Unix mailbox of name, bypassing
//!   aliases).
//!
//! Bounds: the caller reads at most [`MAX_FILE`] bytes; a name or value
//! longer than an address may be is a problem, not an entry.

use std::path::PathBuf;

/// The largest aliases file (or included file) read.
pub const MAX_FILE: u64 = 16 << 20;

/// One value of an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// An address, local names qualified with the domain given to [`parse`].
    Address(String),
    /// `:include:/path`.
    Include(PathBuf),
    /// `|command`.
    Command(String),
    /// `/path`: append to a file.
    File(PathBuf),
    /// `\name`: the Unix mailbox of name.
    Mailbox(String),
}

/// One `name: values` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Lower-case.
    pub name: String,
    /// The line the entry starts on (1-based).
    pub line: usize,
    pub values: Vec<Value>,
}

/// What [`parse`] could not read, by line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// Parses an aliases file; `domain` qualifies local names. Entries keep the
/// file's order; a name given twice is a problem, the first one counts.
pub fn parse(text: &str, domain: &str) -> (Vec<Entry>, Vec<Problem>) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut problems = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for (line, logical) in logical_lines(text) {
        let Some((name, rest)) = split_name(&logical) else {
            problems.push(Problem {
                line,
                message: "no `name:` at the start of the entry".into(),
            });
            continue;
        };
        let name = name.to_lowercase();
        if name.is_empty() || name.len() > facteur_mail::MAX_LOCAL_LEN {
            problems.push(Problem {
                line,
                message: "the name is empty or too long".into(),
            });
            continue;
        }
        let values = values(rest, domain, line, &mut problems);
        if !seen.insert(name.clone()) {
            problems.push(Problem {
                line,
                message: format!("{name:?} is given again (the first entry counts)"),
            });
            continue;
        }
        if values.is_empty() {
            problems.push(Problem {
                line,
                message: format!("{name:?} has no value"),
            });
            continue;
        }
        entries.push(Entry { name, line, values });
    }
    (entries, problems)
}

/// Parses the values of an included file: the same values as after a name,
/// on any number of lines (comments and blank lines skipped).
pub fn parse_values(text: &str, domain: &str) -> (Vec<Value>, Vec<Problem>) {
    let mut problems = Vec::new();
    let mut out = Vec::new();
    for (n, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        out.extend(values(t, domain, n + 1, &mut problems));
    }
    (out, problems)
}

/// The file's entries joined with their continuation lines, each with the
/// number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let l = raw.strip_suffix('\r').unwrap_or(raw);
        let t = l.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if l.starts_with([' ', '\t'])
            && let Some(last) = out.last_mut()
        {
            last.1.push(' ');
            last.1.push_str(t);
            continue;
        }
        out.push((n + 1, t.to_string()));
    }
    out
}

/// `name: rest` (a quoted name may hold a colon).
fn split_name(l: &str) -> Option<(String, &str)> {
    if let Some(q) = l.strip_prefix('"') {
        let end = q.find('"')?;
        let rest = q[end + 1..].trim_start().strip_prefix(':')?;
        return Some((q[..end].to_string(), rest));
    }
    let (name, rest) = l.split_once(':')?;
    Some((name.trim().to_string(), rest))
}

/// Splits at commas outside double quotes and classifies each value.
fn values(rest: &str, domain: &str, line: usize, problems: &mut Vec<Problem>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut items = Vec::new();
    for c in rest.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                cur.push(c);
            }
            ',' if !quoted => items.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    items.push(cur);
    if quoted {
        problems.push(Problem {
            line,
            message: "a double quote is not closed".into(),
        });
        return out;
    }
    for item in items {
        let t = item.trim();
        if t.is_empty() {
            continue;
        }
        // Quotes around a whole value are the file's; inside an address
        // they are the local part's.
        let unq = match t.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
            Some(inner) if !inner.contains('"') => inner.trim(),
            _ => t,
        };
        match classify(unq, domain) {
            Ok(v) => out.push(v),
            Err(message) => problems.push(Problem { line, message }),
        }
    }
    out
}

fn classify(v: &str, domain: &str) -> Result<Value, String> {
    if let Some(cmd) = v.strip_prefix('|') {
        return Ok(Value::Command(cmd.trim().to_string()));
    }
    if let Some(p) = v.strip_prefix(":include:") {
        return Ok(Value::Include(PathBuf::from(p.trim())));
    }
    if v.starts_with('/') {
        return Ok(Value::File(PathBuf::from(v)));
    }
    if let Some(n) = v.strip_prefix('\\') {
        return Ok(Value::Mailbox(n.to_string()));
    }
    facteur_mail::qualify(v, domain)
        .map(|a| Value::Address(a.to_string()))
        .map_err(|e| format!("{v:?} is not an address: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Value {
        Value::Address(s.into())
    }

    #[test]
    fn debian_default_file() {
        let text = "# See man 5 aliases for format\npostmaster:    root\n";
        let (e, p) = parse(text, "mail.example.org");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(
            e,
            [Entry {
                name: "postmaster".into(),
                line: 2,
                values: vec![addr("root@mail.example.org")],
            }]
        );
    }

    #[test]
    fn values_continuations_and_quotes() {
        let text = "Root: alice@Example.ORG, bob,\n\t<carol@example.org>\n\
                    \"list name\": \"|/usr/bin/prog -a, -b\", :include:/etc/mail/staff, /var/log/mail.txt\n\
                    old: \\old, \"quoted local\"@example.org\n";
        let (e, p) = parse(text, "h.test");
        assert!(p.is_empty(), "{p:?}");
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].name, "root");
        assert_eq!(
            e[0].values,
            [
                addr("alice@example.org"),
                addr("bob@h.test"),
                addr("carol@example.org")
            ]
        );
        assert_eq!(e[1].name, "list name");
        assert_eq!(e[1].line, 3);
        assert_eq!(
            e[1].values,
            [
                Value::Command("/usr/bin/prog -a, -b".into()),
                Value::Include("/etc/mail/staff".into()),
                Value::File("/var/log/mail.txt".into()),
            ]
        );
        assert_eq!(
            e[2].values,
            [
                Value::Mailbox("old".into()),
                addr("\"quoted local\"@example.org")
            ]
        );
    }

    #[test]
    fn problems_name_their_lines() {
        let text = "no colon here\nroot: alice\nroot: bob\nempty:\nbad: a@b@\nopen: \"x\n";
        let (e, p) = parse(text, "h.test");
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].values, [addr("alice@h.test")]);
        let lines: Vec<usize> = p.iter().map(|p| p.line).collect();
        assert_eq!(lines, [1, 3, 4, 5, 5, 6, 6], "{p:?}");
        assert!(p[1].message.contains("again"));
    }

    #[test]
    fn included_values() {
        let (v, p) = parse_values("# staff\nalice\nbob@example.org, carol\n\n", "h.test");
        assert!(p.is_empty());
        assert_eq!(
            v,
            [
                addr("alice@h.test"),
                addr("bob@example.org"),
                addr("carol@h.test")
            ]
        );
    }

    #[test]
    fn hostile_text_is_bounded_and_never_panics() {
        let long = "x".repeat(100_000);
        let text = format!("{long}: {long}\n\u{0}: \u{7f}\n:\n\"\n \n\t,\n a:b");
        let (e, p) = parse(&text, "h.test");
        assert!(e.is_empty());
        assert!(!p.is_empty());
    }
}
