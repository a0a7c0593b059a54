//! The POP3 side of the collector (RFC 1939, STLS from RFC 2595, UIDL):
//! greeting, STLS, USER/PASS, UIDL, RETR, DELE, QUIT. Deletions take
//! effect at QUIT only (the UPDATE state), so a connection that breaks
//! deletes nothing.

use crate::FetchError;
use crate::conn::Conn;
use std::sync::Arc;

pub struct Pop3 {
    c: Conn,
}

fn check(line: String) -> Result<String, FetchError> {
    if let Some(rest) = line.strip_prefix("+OK") {
        Ok(rest.trim().to_string())
    } else {
        Err(FetchError::Remote(line.chars().take(300).collect()))
    }
}

impl Pop3 {
    /// Reads the greeting, upgrades with STLS when asked, logs in.
    pub fn open(
        mut c: Conn,
        starttls: Option<Arc<rustls::ClientConfig>>,
        login: &str,
        password: &str,
    ) -> Result<Pop3, FetchError> {
        check(c.read_line()?)?;
        if let Some(cfg) = starttls {
            c.send("STLS")?;
            check(c.read_line()?).map_err(|e| FetchError::Remote(format!("STLS refused: {e}")))?;
            c.start_tls(cfg)?;
        }
        let mut p = Pop3 { c };
        let refused = |e: FetchError| match e {
            FetchError::Remote(m) => FetchError::LoginRefused(m),
            e => e,
        };
        if login.contains(['\r', '\n']) || password.contains(['\r', '\n']) {
            return Err(FetchError::LoginRefused(
                "a line break in the login or password".into(),
            ));
        }
        p.command(&format!("USER {login}")).map_err(refused)?;
        p.command(&format!("PASS {password}")).map_err(refused)?;
        Ok(p)
    }

    fn command(&mut self, line: &str) -> Result<String, FetchError> {
        self.c.send(line)?;
        check(self.c.read_line()?)
    }

    /// The lines of a multi-line answer, dot-unstuffed, up to its `.`.
    fn lines(&mut self) -> Result<Vec<String>, FetchError> {
        let mut out = Vec::new();
        loop {
            let l = self.c.read_line()?;
            if l == "." {
                return Ok(out);
            }
            if out.len() > 1_000_000 {
                return Err(FetchError::Remote("UIDL answer too long".into()));
            }
            out.push(l.strip_prefix('.').map_or(l.clone(), String::from));
        }
    }

    /// (message number, unique id) of every message.
    pub fn uidl(&mut self) -> Result<Vec<(u32, String)>, FetchError> {
        self.command("UIDL")?;
        let mut out = Vec::new();
        for l in self.lines()? {
            let mut it = l.split_whitespace();
            if let (Some(n), Some(u)) = (it.next().and_then(|n| n.parse().ok()), it.next()) {
                out.push((n, u.to_string()));
            }
        }
        Ok(out)
    }

    /// Message `n` in network form; `None` when larger than `max` (read
    /// and dropped).
    pub fn retr(&mut self, n: u32, max: u64) -> Result<Option<Vec<u8>>, FetchError> {
        self.command(&format!("RETR {n}"))?;
        let mut msg = Vec::new();
        let mut line = Vec::new();
        let mut too_big = false;
        loop {
            line.clear();
            self.c.read_raw_line(&mut line)?;
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            let body = body.strip_suffix(b"\r").unwrap_or(body);
            if body == b"." {
                break;
            }
            let body = body.strip_prefix(b".").unwrap_or(body);
            if msg.len() as u64 + body.len() as u64 + 2 > max {
                too_big = true;
            }
            if !too_big {
                msg.extend_from_slice(body);
                msg.extend_from_slice(b"\r\n");
            }
        }
        Ok((!too_big).then_some(msg))
    }

    pub fn dele(&mut self, n: u32) -> Result<(), FetchError> {
        self.command(&format!("DELE {n}")).map(|_| ())
    }

    /// Ends the session: the server deletes what DELE marked.
    pub fn quit(mut self) -> Result<(), FetchError> {
        self.command("QUIT").map(|_| ())
    }
}
