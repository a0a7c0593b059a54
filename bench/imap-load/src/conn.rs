//! One IMAP client connection, just enough for load generation: connect
//! from a chosen loopback source address, send tagged commands, and read
//! responses up to the tagged status, skipping over literals ({n} followed
//! by n bytes, RFC 9051 §4.3) without keeping them.
//!
//! Needs: a server that speaks IMAP4rev1/rev2 in clear text (the benchmark
//! runs on loopback only). Guarantees: every read is bounded by the
//! time-out given at connect; a NO/BAD/BYE becomes an error naming the
//! command, so a misconfigured server never passes for a fast one.

use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

type Reader = Box<dyn AsyncRead + Unpin + Send>;
type Writer = Box<dyn AsyncWrite + Unpin + Send>;

/// What a command ended with, and what came before it.
pub struct Response {
    /// The untagged lines, literal contents left out (each literal leaves
    /// its `{n}` marker in the line).
    pub untagged: Vec<String>,
    /// The tagged status line, tag removed ("OK [APPENDUID 1 5] done").
    pub status: String,
    /// Bytes of literal data received.
    pub literal_bytes: u64,
}

impl Response {
    /// The number in `* N EXISTS`, the last one seen.
    pub fn exists(&self) -> Option<u32> {
        self.untagged.iter().rev().find_map(|l| {
            let mut w = l.split(' ');
            let (star, n, word) = (w.next()?, w.next()?, w.next()?);
            (star == "*" && word.eq_ignore_ascii_case("EXISTS")).then(|| n.parse().ok())?
        })
    }

    /// The UID of `[APPENDUID validity uid]` in the status, if any.
    pub fn append_uid(&self) -> Option<u32> {
        let i = self.status.to_ascii_uppercase().find("[APPENDUID ")?;
        let rest = &self.status[i + 11..];
        let end = rest.find(']')?;
        rest[..end].split(' ').nth(1)?.parse().ok()
    }
}

pub struct Conn {
    rd: BufReader<Reader>,
    wr: Writer,
    next_tag: u32,
    timeout: Duration,
    line: Vec<u8>,
}

/// A loopback source address for connection number `i`: spreading clients
/// over 127.0.0.2-254 keeps per-address limits and ephemeral ports out of
/// the measurement.
pub fn source_addr(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % 253) as u8)
}

fn err(msg: String) -> io::Error {
    io::Error::other(msg)
}

/// How to open a connection: TLS from the first byte (`--tls 1`: the
/// server's implicit-TLS port) or not, and the read buffer's size.
#[derive(Clone)]
pub struct Dial {
    pub tls: Option<crate::tls::Client>,
    pub buf: usize,
    pub timeout: Duration,
}

impl Conn {
    /// Connects from `src` to `dst` and reads the greeting (IMAP's).
    pub async fn connect(src: Ipv4Addr, dst: SocketAddr, timeout: Duration) -> io::Result<Conn> {
        Conn::dial(src, dst, &Dial { tls: None, buf: 16 * 1024, timeout }, "* OK").await
    }

    /// Connects from `src` to `dst` and reads a greeting line that must
    /// start with `greeting` ("* OK" for IMAP, "+OK" for POP3, "220" for
    /// SMTP; IMAP's "* PREAUTH" is taken too).
    pub async fn dial(src: Ipv4Addr, dst: SocketAddr, d: &Dial, greeting: &str) -> io::Result<Conn> {
        let sock = TcpSocket::new_v4()?;
        sock.bind(SocketAddr::V4(SocketAddrV4::new(src, 0)))?;
        let stream: TcpStream = tokio::time::timeout(d.timeout, sock.connect(dst))
            .await
            .map_err(|_| err(format!("connect to {dst}: timed out")))??;
        stream.set_nodelay(true)?;
        let (r, w): (Reader, Writer) = match &d.tls {
            None => {
                let (r, w) = stream.into_split();
                (Box::new(r), Box::new(w))
            }
            Some(tls) => {
                let s = tokio::time::timeout(d.timeout, tls.handshake(stream))
                    .await
                    .map_err(|_| err(format!("TLS handshake with {dst}: timed out")))??;
                let (r, w) = tokio::io::split(s);
                (Box::new(r), Box::new(w))
            }
        };
        let mut c = Conn { rd: BufReader::with_capacity(d.buf, r), wr: w, next_tag: 1, timeout: d.timeout, line: Vec::new() };
        let first = c.read_line().await?;
        if !first.starts_with(greeting) && !first.starts_with("* PREAUTH") {
            return Err(err(format!("greeting: {first}")));
        }
        Ok(c)
    }

    /// Sends one raw line (CRLF added) and reads reply lines until one
    /// starts with `last` (SMTP's "250 " after EHLO, POP3's "+OK").
    pub async fn say(&mut self, line: &str, last: &str) -> io::Result<()> {
        self.wr.write_all(format!("{line}\r\n").as_bytes()).await?;
        loop {
            let l = self.read_line().await?;
            if l.starts_with(last) {
                return Ok(());
            }
            if l.starts_with("5") || l.starts_with("-ERR") {
                return Err(err(format!("{line}: {l}")));
            }
        }
    }

    /// Waits, with no time limit, for the server to announce a new
    /// message (`* N EXISTS`) in IDLE.
    pub async fn wait_exists(&mut self) -> io::Result<()> {
        loop {
            self.line.clear();
            if self.rd.read_until(b'\n', &mut self.line).await? == 0 {
                return Err(err("connection closed by the server in IDLE".into()));
            }
            let l = String::from_utf8_lossy(&self.line);
            if l.starts_with("* ") && l.trim_end().to_ascii_uppercase().ends_with(" EXISTS") {
                return Ok(());
            }
        }
    }

    async fn read_line(&mut self) -> io::Result<String> {
        self.line.clear();
        let n = tokio::time::timeout(self.timeout, self.rd.read_until(b'\n', &mut self.line))
            .await
            .map_err(|_| err("read timed out".into()))??;
        if n == 0 {
            return Err(err("connection closed by the server".into()));
        }
        while matches!(self.line.last(), Some(b'\n' | b'\r')) {
            self.line.pop();
        }
        Ok(String::from_utf8_lossy(&self.line).into_owned())
    }

    /// Reads one logical response line: a line and, when it ends with a
    /// literal marker, the literal and the rest of the line after it.
    async fn read_logical(&mut self, literal_bytes: &mut u64) -> io::Result<String> {
        let mut whole = self.read_line().await?;
        while let Some(n) = literal_len(&whole) {
            let mut left = n;
            let mut sink = [0u8; 8192];
            while left > 0 {
                let want = left.min(sink.len() as u64) as usize;
                let got = tokio::time::timeout(self.timeout, self.rd.read(&mut sink[..want]))
                    .await
                    .map_err(|_| err("literal read timed out".into()))??;
                if got == 0 {
                    return Err(err("connection closed inside a literal".into()));
                }
                left -= got as u64;
            }
            *literal_bytes += n;
            let rest = self.read_line().await?;
            whole.push_str(&rest);
        }
        Ok(whole)
    }

    fn tag(&mut self) -> String {
        let t = format!("a{}", self.next_tag);
        self.next_tag += 1;
        t
    }

    async fn read_until_tag(&mut self, tag: &str, what: &str) -> io::Result<Response> {
        let mut resp = Response { untagged: Vec::new(), status: String::new(), literal_bytes: 0 };
        loop {
            let line = self.read_logical(&mut resp.literal_bytes).await?;
            if let Some(rest) = line.strip_prefix(tag).and_then(|r| r.strip_prefix(' ')) {
                if rest.len() >= 2 && rest[..2].eq_ignore_ascii_case("OK") {
                    resp.status = rest.to_string();
                    return Ok(resp);
                }
                return Err(err(format!("{what}: {rest}")));
            }
            if line.starts_with("* BYE") {
                return Err(err(format!("{what}: {line}")));
            }
            resp.untagged.push(line);
        }
    }

    /// Sends `cmd` (without tag and CRLF) and reads its response.
    pub async fn command(&mut self, cmd: &str) -> io::Result<Response> {
        let tag = self.tag();
        let out = format!("{tag} {cmd}\r\n");
        self.wr.write_all(out.as_bytes()).await?;
        let what = cmd.split(' ').next().unwrap_or(cmd).to_string();
        self.read_until_tag(&tag, &what).await
    }

    /// APPEND with a synchronizing literal: waits for the continuation
    /// request before sending the message.
    pub async fn append(&mut self, mailbox: &str, flags: &str, msg: &[u8]) -> io::Result<Response> {
        let tag = self.tag();
        let head = format!("{tag} APPEND {mailbox} ({flags}) {{{}}}\r\n", msg.len());
        self.wr.write_all(head.as_bytes()).await?;
        loop {
            let line = self.read_line().await?;
            if line.starts_with('+') {
                break;
            }
            if line.starts_with(&tag) {
                return Err(err(format!("APPEND: {line}")));
            }
        }
        self.wr.write_all(msg).await?;
        self.wr.write_all(b"\r\n").await?;
        self.read_until_tag(&tag, "APPEND").await
    }

    /// Starts IDLE and waits for the server's continuation.
    pub async fn idle(&mut self) -> io::Result<()> {
        let tag = self.tag();
        self.wr.write_all(format!("{tag} IDLE\r\n").as_bytes()).await?;
        loop {
            let line = self.read_line().await?;
            if line.starts_with('+') {
                return Ok(());
            }
            if line.starts_with(&tag) {
                return Err(err(format!("IDLE: {line}")));
            }
        }
    }

    /// LOGOUT: the server's BYE is expected here; reads until the tagged
    /// reply or the end of the stream, whichever comes first.
    pub async fn logout(&mut self) -> io::Result<()> {
        let tag = self.tag();
        self.wr.write_all(format!("{tag} LOGOUT\r\n").as_bytes()).await?;
        loop {
            match self.read_line().await {
                Ok(line) if line.starts_with(&tag) => return Ok(()),
                Ok(_) => continue,
                Err(_) => return Ok(()),
            }
        }
    }

    pub async fn login(&mut self, user: &str, password: &str) -> io::Result<()> {
        self.command(&format!("LOGIN {} {}", quote(user), quote(password))).await.map(|_| ())
    }
}

/// An IMAP quoted string.
pub fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// The n of a line ending with `{n}` (or `{n+}`), if it does.
fn literal_len(line: &str) -> Option<u64> {
    let body = line.strip_suffix('}')?;
    let open = body.rfind('{')?;
    body[open + 1..].trim_end_matches('+').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_markers() {
        assert_eq!(literal_len("* 1 FETCH (BODY[] {123}"), Some(123));
        assert_eq!(literal_len("* 1 FETCH (BODY[] {12+}"), Some(12));
        assert_eq!(literal_len("* 1 FETCH (FLAGS (\\Seen))"), None);
        assert_eq!(literal_len("* OK {x}"), None);
    }

    #[test]
    fn appenduid_and_exists() {
        let r = Response {
            untagged: vec!["* 12 EXISTS".into(), "* 0 RECENT".into()],
            status: "OK [APPENDUID 1700000000 77] APPEND completed".into(),
            literal_bytes: 0,
        };
        assert_eq!(r.exists(), Some(12));
        assert_eq!(r.append_uid(), Some(77));
    }
}
