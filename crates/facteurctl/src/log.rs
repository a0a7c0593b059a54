//! `facteurctl log`: the suite's log lines, every daemon's, in time order,
//! filtered — by date or time range, text, queue id, address, errors only —
//! from the systemd journal (`journalctl -o json` of the `facteur-*`
//! units), or from the `*.log` files of a directory (a development setup,
//! the tests). Lines in either of the daemons' formats (`[log] format`,
//! text or JSON) are read; `--queue-id` shows one message's whole path,
//! smtpd → qmgr → lmtpd or the remote reply, since every line about a
//! message carries its queue id (a bounce's lines name the original's).
//!
//! Parsing ([`parse`]) and filtering ([`Filter::keeps`]) are pure; the
//! command around them reads the sources and prints.

use anyhow::Context as _;
use serde_json::Value;
use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};

/// One log line, as printed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// RFC 3339, UTC (`2026-12-05T20:03:54.685227Z`): sorts as text.
    pub time: String,
    pub daemon: String,
    /// ERROR, WARN, INFO, DEBUG, TRACE.
    pub level: String,
    /// The rest of the line: spans, message, fields.
    pub text: String,
}

impl Line {
    pub fn is_error(&self) -> bool {
        self.level == "ERROR" || self.level == "WARN"
    }

    fn render(&self) -> String {
        format!(
            "{} {} {:>5} {}",
            self.time, self.daemon, self.level, self.text
        )
    }
}

/// Reads one line of a daemon's log (text: `facteur-smtpd 2026-12-05T20:03:54Z
/// INFO ...`; JSON: `{"daemon":...,"timestamp":...,"level":...,"fields":{...}}`).
/// `None` for a line of neither form (a continuation, another program).
pub fn parse(raw: &str) -> Option<Line> {
    let raw = strip_ansi(raw.trim_end());
    if raw.starts_with('{') {
        return parse_json(&raw);
    }
    let mut it = raw.splitn(3, ' ');
    let daemon = it.next()?;
    let time = it.next()?;
    let rest = it.next()?.trim_start();
    if !daemon.starts_with("facteur") || !time.contains('T') {
        return None;
    }
    let (level, text) = rest.split_once(' ').unwrap_or((rest, ""));
    Some(Line {
        time: time.to_string(),
        daemon: daemon.to_string(),
        level: level.to_string(),
        text: text.trim_start().to_string(),
    })
}

fn parse_json(raw: &str) -> Option<Line> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
    let mut text = String::new();
    if let Some(Value::Array(spans)) = v.get("spans") {
        for sp in spans {
            if let Value::Object(o) = sp {
                let name = o.get("name").and_then(Value::as_str).unwrap_or("span");
                let fields: Vec<String> = o
                    .iter()
                    .filter(|(k, _)| *k != "name")
                    .map(|(k, x)| format!("{k}={}", plain(x)))
                    .collect();
                text.push_str(&format!("{name}{{{}}}: ", fields.join(" ")));
            }
        }
    }
    if let Some(Value::Object(f)) = v.get("fields") {
        if let Some(m) = f.get("message").and_then(Value::as_str) {
            text.push_str(m);
        }
        for (k, x) in f.iter().filter(|(k, _)| *k != "message") {
            text.push_str(&format!(" {k}={}", plain(x)));
        }
    }
    Some(Line {
        time: s("timestamp")?,
        daemon: s("daemon")?,
        level: s("level")?,
        text,
    })
}

/// A field's value as the text format writes it: a string with spaces or
/// quotes quoted (as tracing writes a string field), others as they are.
fn plain(v: &Value) -> String {
    match v {
        Value::String(s) if s.contains([' ', '"', '\t']) => format!("{s:?}"),
        Value::String(s) => s.clone(),
        x => x.to_string(),
    }
}

/// Removes terminal colour codes (the daemons colour a terminal's lines).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// What to keep.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    /// `YYYY-MM-DD`: that day (UTC).
    pub date: Option<String>,
    /// Lower and upper bounds, compared with the lines' UTC times as text
    /// (`2026-12-05`, `2026-12-05T20:00`, ...).
    pub since: Option<String>,
    pub until: Option<String>,
    pub grep: Option<String>,
    pub queue_id: Option<String>,
    /// Case-insensitive.
    pub address: Option<String>,
    pub errors: bool,
}

impl Filter {
    pub fn keeps(&self, l: &Line) -> bool {
        let whole = format!("{} {}", l.daemon, l.text);
        self.date
            .as_ref()
            .is_none_or(|d| l.time.starts_with(d.as_str()))
            && self
                .since
                .as_ref()
                .is_none_or(|s| l.time.as_str() >= s.as_str())
            && self
                .until
                .as_ref()
                .is_none_or(|u| l.time.as_str() < u.as_str())
            && self
                .grep
                .as_ref()
                .is_none_or(|g| whole.contains(g.as_str()))
            && self
                .queue_id
                .as_ref()
                .is_none_or(|q| whole.contains(q.as_str()))
            && self
                .address
                .as_ref()
                .is_none_or(|a| whole.to_ascii_lowercase().contains(&a.to_ascii_lowercase()))
            && (!self.errors || l.is_error())
    }
}

/// The lines of the `*.log` files of `dir`.
fn from_dir(dir: &Path) -> anyhow::Result<Vec<Line>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    for f in files {
        let text = std::fs::read(&f).with_context(|| format!("reading {}", f.display()))?;
        out.extend(String::from_utf8_lossy(&text).lines().filter_map(parse));
    }
    Ok(out)
}

/// The journal's entries of the facteur units, their MESSAGE parsed.
fn journal_args(f: &Filter, follow: bool) -> Vec<String> {
    let mut a: Vec<String> = ["-o", "json", "--no-pager", "-u", "facteur-*"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    // journalctl narrows by time first (its times are local); the UTC
    // comparison of `Filter::keeps` then applies to what it gives.
    if let Some(d) = &f.date {
        a.push(format!("--since={d} 00:00:00"));
        a.push(format!("--until={d} 23:59:59"));
    }
    if let Some(s) = &f.since {
        a.push(format!("--since={}", s.replace('T', " ")));
    }
    if let Some(u) = &f.until {
        a.push(format!("--until={}", u.replace('T', " ")));
    }
    if follow {
        a.push("--follow".into());
    }
    a
}

fn journal_line(raw: &str) -> Option<Line> {
    let v: Value = serde_json::from_str(raw).ok()?;
    let msg = match v.get("MESSAGE")? {
        Value::String(s) => s.clone(),
        // Non-UTF-8 messages come as byte arrays.
        Value::Array(b) => b
            .iter()
            .filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
            .map(char::from)
            .collect(),
        _ => return None,
    };
    parse(&msg)
}

fn print(out: &mut impl Write, l: &Line, colour: bool) -> std::io::Result<()> {
    if colour && l.is_error() {
        writeln!(out, "\u{1b}[31m{}\u{1b}[0m", l.render())
    } else {
        writeln!(out, "{}", l.render())
    }
}

/// The kept lines, in time order, from `dir`'s files or the journal.
pub fn collect(filter: &Filter, dir: Option<&Path>) -> anyhow::Result<Vec<Line>> {
    let mut lines: Vec<Line> = match dir {
        Some(dir) => from_dir(dir)?,
        None => {
            let out = std::process::Command::new("journalctl")
                .args(journal_args(filter, false))
                .output()
                .context("running journalctl (use --dir for log files)")?;
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(journal_line)
                .collect()
        }
    };
    lines.retain(|l| filter.keeps(l));
    lines.sort_by(|a, b| a.time.cmp(&b.time));
    Ok(lines)
}

/// Runs the command: prints the kept lines in time order (and new ones as
/// they come with `follow`).
pub fn run(filter: &Filter, dir: Option<&Path>, follow: bool) -> anyhow::Result<u8> {
    let colour = std::io::stdout().is_terminal();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match dir {
        Some(dir) => {
            for l in &collect(filter, Some(dir))? {
                print(&mut out, l, colour)?;
            }
            if follow {
                follow_dir(dir, filter, &mut out, colour)?;
            }
        }
        None if !follow => {
            for l in &collect(filter, None)? {
                print(&mut out, l, colour)?;
            }
        }
        None => {
            let mut child = std::process::Command::new("journalctl")
                .args(journal_args(filter, true))
                .stdout(std::process::Stdio::piped())
                .spawn()
                .context("running journalctl (use --dir for log files)")?;
            let reader =
                std::io::BufReader::new(child.stdout.take().context("journalctl's output")?);
            for raw in reader.lines() {
                let Some(l) = journal_line(&raw?) else {
                    continue;
                };
                if filter.keeps(&l) {
                    print(&mut out, &l, colour)?;
                    out.flush()?;
                }
            }
            child.wait()?;
        }
    }
    Ok(0)
}

/// Prints lines added to the directory's files from now on.
fn follow_dir(
    dir: &Path,
    filter: &Filter,
    out: &mut impl Write,
    colour: bool,
) -> anyhow::Result<()> {
    let mut seen: std::collections::HashMap<PathBuf, u64> = std::collections::HashMap::new();
    for e in std::fs::read_dir(dir)?.flatten() {
        if let Ok(m) = e.metadata() {
            seen.insert(e.path(), m.len());
        }
    }
    loop {
        std::thread::sleep(std::time::Duration::from_millis(500));
        for e in std::fs::read_dir(dir)?.flatten() {
            let p = e.path();
            if p.extension().is_none_or(|x| x != "log") {
                continue;
            }
            let len = e.metadata().map(|m| m.len()).unwrap_or(0);
            let from = seen.get(&p).copied().unwrap_or(0).min(len);
            if len > from {
                use std::io::{Read, Seek, SeekFrom};
                let mut f = std::fs::File::open(&p)?;
                f.seek(SeekFrom::Start(from))?;
                let mut buf = Vec::new();
                f.take(len - from).read_to_end(&mut buf)?;
                for l in String::from_utf8_lossy(&buf).lines().filter_map(parse) {
                    if filter.keeps(&l) {
                        print(out, &l, colour)?;
                    }
                }
                out.flush()?;
            }
            seen.insert(p, len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_lines() {
        let t = parse("facteur-smtpd 2026-12-05T20:03:54.685227Z  INFO session{peer=127.0.0.1}: queued queue_id=1K1X queued").unwrap();
        assert_eq!(
            (t.daemon.as_str(), t.level.as_str()),
            ("facteur-smtpd", "INFO")
        );
        assert!(t.text.starts_with("session{peer=127.0.0.1}: queued"));
        let j = parse(r#"{"daemon":"facteur-qmgr","timestamp":"2026-12-05T20:03:55.1Z","level":"WARN","fields":{"message":"deferred","queue_id":"1K1X","rcpt":"a@b"},"spans":[{"name":"attempt","n":2}]}"#).unwrap();
        assert_eq!(
            (j.daemon.as_str(), j.level.as_str()),
            ("facteur-qmgr", "WARN")
        );
        assert_eq!(j.text, "attempt{n=2}: deferred queue_id=1K1X rcpt=a@b");
        assert!(parse("  continuation").is_none());
        assert!(parse("something else entirely").is_none());
        let coloured =
            parse("facteur-lmtpd 2026-12-05T20:03:56Z \u{1b}[32m INFO\u{1b}[0m delivered").unwrap();
        assert_eq!(coloured.level, "INFO");
    }

    #[test]
    fn filters() {
        let l = |time: &str, level: &str, text: &str| Line {
            time: time.into(),
            daemon: "facteur-qmgr".into(),
            level: level.into(),
            text: text.into(),
        };
        let a = l(
            "2026-12-05T20:00:00Z",
            "INFO",
            "delivered queue_id=AAA rcpt=Alice@Example.test",
        );
        let b = l("2026-12-06T01:00:00Z", "WARN", "deferred queue_id=BBB");
        let f = Filter {
            queue_id: Some("AAA".into()),
            ..Filter::default()
        };
        assert!(f.keeps(&a) && !f.keeps(&b));
        let f = Filter {
            address: Some("alice@example.TEST".into()),
            ..Filter::default()
        };
        assert!(f.keeps(&a) && !f.keeps(&b));
        let f = Filter {
            errors: true,
            ..Filter::default()
        };
        assert!(!f.keeps(&a) && f.keeps(&b));
        let f = Filter {
            date: Some("2026-12-06".into()),
            ..Filter::default()
        };
        assert!(!f.keeps(&a) && f.keeps(&b));
        let f = Filter {
            since: Some("2026-12-05T21".into()),
            until: Some("2026-12-07".into()),
            ..Filter::default()
        };
        assert!(!f.keeps(&a) && f.keeps(&b));
        let f = Filter {
            grep: Some("qmgr deferred".into()),
            ..Filter::default()
        };
        assert!(f.keeps(&b));
    }
}
