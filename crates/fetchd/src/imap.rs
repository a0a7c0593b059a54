//! The IMAP side of the collector (RFC 9051 / 3501, what every server
//! speaks): greeting, STARTTLS, LOGIN, SELECT (its UIDVALIDITY), UID
//! SEARCH ALL, UID FETCH of BODY.PEEK[] (the message as a literal), UID
//! STORE +FLAGS.SILENT (\Deleted) and EXPUNGE, LOGOUT.
//!
//! Responses are read line by line; a line ending in `{n}` is followed by
//! an n-byte literal, read within the size the caller allows (the rest is
//! read and dropped). Folder names are sent as quoted strings.

use crate::FetchError;
use crate::conn::Conn;
use std::sync::Arc;

pub struct Imap {
    c: Conn,
    tag: u32,
}

/// One response: its text lines (literals replaced by `{n}`) and the
/// literals, in order.
#[derive(Debug, Default)]
struct Response {
    untagged: Vec<(String, Vec<Vec<u8>>)>,
    status: String,
}

/// A quoted string (RFC 9051 `quoted`); CR and LF cannot be sent.
fn quote(s: &str) -> Result<String, FetchError> {
    if s.contains(['\r', '\n', '\0']) {
        return Err(FetchError::Remote(format!("{s:?} cannot be sent in IMAP")));
    }
    Ok(format!(
        "\"{}\"",
        s.replace('\\', "\\\\").replace('"', "\\\"")
    ))
}

/// The size of a literal ending `line`, if any.
fn literal_size(line: &str) -> Option<u64> {
    let l = line.strip_suffix('}')?;
    let open = l.rfind('{')?;
    l[open + 1..].trim_end_matches('+').parse().ok()
}

impl Imap {
    /// Reads the greeting, upgrades with STARTTLS when asked, logs in.
    pub fn open(
        c: Conn,
        starttls: Option<Arc<rustls::ClientConfig>>,
        login: &str,
        password: &str,
    ) -> Result<Imap, FetchError> {
        let mut i = Imap { c, tag: 0 };
        let greeting = i.c.read_line()?;
        if !greeting.starts_with("* OK") && !greeting.starts_with("* PREAUTH") {
            return Err(FetchError::Remote(greeting.chars().take(300).collect()));
        }
        if let Some(cfg) = starttls {
            i.command("STARTTLS", 0)?;
            i.c.start_tls(cfg)?;
        }
        let cmd = format!("LOGIN {} {}", quote(login)?, quote(password)?);
        match i.command(&cmd, 0) {
            Ok(_) => Ok(i),
            Err(FetchError::Remote(m)) => Err(FetchError::LoginRefused(m)),
            Err(e) => Err(e),
        }
    }

    /// Sends a command, reads to its tagged answer; an answer other than
    /// OK is an error. Literals are kept up to `keep` bytes each.
    fn command(&mut self, cmd: &str, keep: u64) -> Result<Response, FetchError> {
        self.tag += 1;
        let tag = format!("f{}", self.tag);
        self.c.send(&format!("{tag} {cmd}"))?;
        let mut resp = Response::default();
        loop {
            let mut line = self.c.read_line()?;
            let mut literals = Vec::new();
            while let Some(n) = literal_size(&line) {
                let mut lit = Vec::new();
                self.c.read_exact_into(n, keep, &mut lit)?;
                literals.push(lit);
                if literals.len() > 16 {
                    return Err(FetchError::Remote(
                        "too many literals in one response".into(),
                    ));
                }
                line.push_str(&self.c.read_line()?);
            }
            if let Some(rest) = line.strip_prefix(&format!("{tag} ")) {
                resp.status = rest.to_string();
                let ok = rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("OK");
                if !ok {
                    let what = cmd.split(' ').next().unwrap_or("");
                    return Err(FetchError::Remote(format!(
                        "{what}: {}",
                        rest.chars().take(300).collect::<String>()
                    )));
                }
                return Ok(resp);
            }
            if resp.untagged.len() > 1_000_000 {
                return Err(FetchError::Remote("answer too long".into()));
            }
            resp.untagged.push((line, literals));
        }
    }

    /// Selects `folder`; its UIDVALIDITY.
    pub fn select(&mut self, folder: &str) -> Result<String, FetchError> {
        let r = self.command(&format!("SELECT {}", quote(folder)?), 0)?;
        for (l, _) in &r.untagged {
            if let Some(i) = l.to_ascii_uppercase().find("[UIDVALIDITY ") {
                let v: String = l[i + 13..]
                    .chars()
                    .take_while(|c| c.is_ascii_digit())
                    .collect();
                if !v.is_empty() {
                    return Ok(v);
                }
            }
        }
        Err(FetchError::Remote(format!(
            "SELECT {folder}: no UIDVALIDITY"
        )))
    }

    /// The UIDs of every message of the selected folder, ascending.
    pub fn uids(&mut self) -> Result<Vec<u32>, FetchError> {
        let r = self.command("UID SEARCH ALL", 0)?;
        let mut out: Vec<u32> = Vec::new();
        for (l, _) in &r.untagged {
            if let Some(rest) = l.strip_prefix("* SEARCH") {
                out.extend(
                    rest.split_whitespace()
                        .filter_map(|n| n.parse::<u32>().ok()),
                );
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    /// Message `uid` (BODY.PEEK[]: its flags untouched); `None` when
    /// larger than `max` or gone.
    pub fn fetch(&mut self, uid: u32, max: u64) -> Result<Option<Vec<u8>>, FetchError> {
        let r = self.command(
            &format!("UID FETCH {uid} (UID RFC822.SIZE BODY.PEEK[])"),
            max.saturating_add(1),
        )?;
        for (l, mut lits) in r.untagged {
            let up = l.to_ascii_uppercase();
            if up.contains(" FETCH ") && up.contains("BODY[]") && !lits.is_empty() {
                let body = lits.swap_remove(lits.len() - 1);
                return Ok((body.len() as u64 <= max).then_some(body));
            }
        }
        Ok(None)
    }

    /// Marks `uids` \Deleted and expunges them.
    pub fn delete(&mut self, uids: &[u32]) -> Result<(), FetchError> {
        for chunk in uids.chunks(500) {
            let set: Vec<String> = chunk.iter().map(u32::to_string).collect();
            self.command(
                &format!("UID STORE {} +FLAGS.SILENT (\\Deleted)", set.join(",")),
                0,
            )?;
        }
        if !uids.is_empty() {
            self.command("EXPUNGE", 0)?;
        }
        Ok(())
    }

    pub fn logout(mut self) -> Result<(), FetchError> {
        self.command("LOGOUT", 0).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_quoting() {
        assert_eq!(literal_size("* 1 FETCH (UID 7 BODY[] {123}"), Some(123));
        assert_eq!(literal_size("* 1 FETCH (BODY[] {5+}"), Some(5));
        assert_eq!(literal_size("* OK done"), None);
        assert_eq!(literal_size("* 1 FETCH {x}"), None);
        assert_eq!(quote("a\"b\\c").unwrap(), "\"a\\\"b\\\\c\"");
        assert!(quote("a\r\nb").is_err());
    }
}
