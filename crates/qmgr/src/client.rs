//! The LMTP client (RFC 2033): how qmgr hands mail to facteur-lmtpd, or to
//! any LMTP server.
//!
//! Offers [`LmtpTarget`] (where: `unix:/path` or `inet:host:port`),
//! [`Client`] (one connection: greeting, LHLO, then any number of
//! transactions, QUIT) and [`Txn`] / [`TxnOutcome`] (one transaction and one
//! final reply per recipient). Generic over the stream, so tests can drive it
//! against scripted servers.
//!
//! Protocol, per transaction: `MAIL FROM:<s>` (with `BODY=8BITMIME` and
//! `SMTPUTF8` when the envelope says so and the server offers them), one
//! `RCPT TO:` per recipient, `DATA`; with PIPELINING (RFC 2920) all of these
//! go in one write and the replies are read in order. Then the message,
//! streamed (never held whole in memory) with dot-stuffing (RFC 5321
//! §4.5.2), and `.`; then ONE reply PER ACCEPTED RECIPIENT (RFC 2033 §4.2).
//!
//! Guarantees:
//! - Every read and write has a timeout; replies are parsed with hard bounds
//!   ([`crate::reply`]); nothing the server sends can panic us or grow memory
//!   without bound.
//! - A recipient's outcome is `Some(reply)` only when the server really said
//!   it: the RCPT refusal, the MAIL or DATA refusal, or the post-DATA reply.
//!   Otherwise (connection lost, timeout, garbage) it is `None`, and the
//!   caller must treat the recipient as not delivered *and* possibly
//!   delivered — it defers, and a duplicate is the worst case.
//! - If the message source fails mid-DATA the connection is dropped without
//!   sending the final dot, so a truncated message is never delivered.
//!
//! Security: the server's reply text is sanitised by the reply parser before
//! it reaches logs or the queue file.

use crate::reply::{ReplyError, parse_reply};
use facteur_smtp_codec::Reply;
use std::io;
use std::path::PathBuf;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// Where LMTP goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpTarget {
    Unix(PathBuf),
    /// `host:port`, resolved at connect time.
    Inet(String),
}

impl LmtpTarget {
    /// From `[qmgr] lmtp`: "" means this configuration's lmtpd socket.
    pub fn from_config(cfg: &facteur_config::Config) -> LmtpTarget {
        let s = cfg.qmgr.lmtp.as_str();
        if let Some(p) = s.strip_prefix("unix:") {
            LmtpTarget::Unix(PathBuf::from(p))
        } else if let Some(a) = s.strip_prefix("inet:") {
            LmtpTarget::Inet(a.to_string())
        } else {
            // "" (the config check refuses anything else).
            LmtpTarget::Unix(cfg.lmtp_socket())
        }
    }

    /// Connects, within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> io::Result<facteur_daemon::Stream> {
        let fut = async {
            match self {
                LmtpTarget::Unix(p) => Ok(facteur_daemon::Stream::Unix(
                    tokio::net::UnixStream::connect(p).await?,
                )),
                LmtpTarget::Inet(a) => {
                    let s = tokio::net::TcpStream::connect(a.as_str()).await?;
                    let _ = s.set_nodelay(true);
                    Ok(facteur_daemon::Stream::Tcp(s))
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }
}

impl std::fmt::Display for LmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LmtpTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            LmtpTarget::Inet(a) => write!(f, "inet:{a}"),
        }
    }
}

/// Timeouts of one connection.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    /// Connect, greeting, each command reply, each write.
    pub command: Duration,
    /// Each reply after the final dot (the server is writing copies).
    pub data_end: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            command: Duration::from_secs(60),
            data_end: Duration::from_secs(300),
        }
    }
}

/// Why a connection failed. After any of these the connection is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("timeout waiting for {0}")]
    Timeout(&'static str),
    #[error("connection closed by the server")]
    Closed,
    #[error("bad reply from the server: {0}")]
    Reply(#[from] ReplyError),
    /// The greeting or LHLO was refused.
    #[error("refused: {0}")]
    Refused(Reply),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("reading the queued message failed: {0}")]
    Source(String),
}

impl ClientError {
    /// One line for the queue file and the logs, RFC 3463 style.
    pub fn as_reply_text(&self) -> String {
        match self {
            ClientError::Refused(r) => r.to_string(),
            ClientError::Timeout(_) => format!("4.4.2 {self}"),
            ClientError::Source(_) => format!("4.3.0 {self}"),
            _ => format!("4.4.2 {self}"),
        }
    }
}

/// What the server offered in its LHLO reply.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub pipelining: bool,
    pub eight_bit_mime: bool,
    pub smtputf8: bool,
}

/// One transaction to run.
#[derive(Debug)]
pub struct Txn<'a> {
    /// "" is the null reverse-path.
    pub sender: &'a str,
    pub eight_bit: bool,
    pub smtputf8: bool,
    pub rcpts: &'a [String],
}

/// What became of each recipient; `error` set means the connection is dead.
#[derive(Debug)]
pub struct TxnOutcome {
    /// In recipient order; `None`: no answer (see the module guarantees).
    pub replies: Vec<Option<Reply>>,
    pub error: Option<ClientError>,
}

/// Chunks of the message as read by a blocking reader (see [`stream_reader`]).
pub type MessageSource = mpsc::Receiver<io::Result<Vec<u8>>>;

/// Reads `r` on a blocking thread in 64 KiB chunks, at most four chunks
/// ahead of the network.
pub fn stream_reader(mut r: Box<dyn io::Read + Send>) -> MessageSource {
    let (tx, rx) = mpsc::channel(4);
    tokio::task::spawn_blocking(move || {
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            match r.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    buf.truncate(n);
                    if tx.blocking_send(Ok(buf)).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = tx.blocking_send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// LMTP connections kept open between messages, so the next delivery skips
/// the connect, greeting and LHLO (lmtpd serves any number of transactions
/// per connection). A connection is checked with RSET before reuse and
/// dropped after [`POOL_IDLE`] unused, well inside lmtpd's idle timeout.
pub struct Pool {
    idle: std::sync::Mutex<Vec<(Client<facteur_daemon::Stream>, std::time::Instant)>>,
    max: usize,
}

/// How long a pooled connection may wait for its next message.
pub const POOL_IDLE: Duration = Duration::from_secs(20);

impl Pool {
    pub fn new(max: usize) -> Pool {
        Pool {
            idle: std::sync::Mutex::new(Vec::new()),
            max,
        }
    }

    /// A live pooled connection, if one is waiting.
    pub async fn take(&self) -> Option<Client<facteur_daemon::Stream>> {
        loop {
            let c = {
                let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
                idle.retain(|(_, since)| since.elapsed() < POOL_IDLE);
                idle.pop()
            };
            let (mut c, _) = c?;
            if c.rset().await.is_ok() {
                return Some(c);
            }
        }
    }

    /// Gives a connection back after a clean transaction (or closes it when
    /// the pool is full).
    pub async fn put(&self, c: Client<facteur_daemon::Stream>) {
        let full = {
            let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
            if idle.len() < self.max {
                idle.push((c, std::time::Instant::now()));
                None
            } else {
                Some(c)
            }
        };
        if let Some(c) = full {
            c.quit().await;
        }
    }
}

/// One LMTP connection.
pub struct Client<S> {
    io: S,
    buf: Vec<u8>,
    pub caps: Caps,
    /// The LHLO reply's first line: the server's name.
    pub server_name: String,
    timeouts: Timeouts,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    /// Reads the greeting and says LHLO.
    pub async fn start(io: S, hostname: &str, timeouts: Timeouts) -> Result<Self, ClientError> {
        let mut c = Client {
            io,
            buf: Vec::with_capacity(1024),
            caps: Caps::default(),
            server_name: String::new(),
            timeouts,
        };
        let greeting = c.read_reply(timeouts.command, "the greeting").await?;
        if greeting.code != 220 {
            return Err(ClientError::Refused(greeting));
        }
        c.write(format!("LHLO {hostname}\r\n").as_bytes()).await?;
        c.flush().await?;
        let r = c.read_reply(timeouts.command, "the LHLO reply").await?;
        if r.code != 250 {
            return Err(ClientError::Refused(r));
        }
        c.server_name = r.lines.first().cloned().unwrap_or_default();
        for l in r.lines.iter().skip(1) {
            let kw = l
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            match kw.as_str() {
                "PIPELINING" => c.caps.pipelining = true,
                "8BITMIME" => c.caps.eight_bit_mime = true,
                "SMTPUTF8" => c.caps.smtputf8 = true,
                _ => {}
            }
        }
        Ok(c)
    }

    /// Runs one transaction. Never fails as a whole: see [`TxnOutcome`].
    pub async fn send(&mut self, txn: &Txn<'_>, message: MessageSource) -> TxnOutcome {
        let mut replies: Vec<Option<Reply>> = vec![None; txn.rcpts.len()];
        let error = self.send_inner(txn, message, &mut replies).await.err();
        TxnOutcome { replies, error }
    }

    async fn send_inner(
        &mut self,
        txn: &Txn<'_>,
        mut message: MessageSource,
        replies: &mut [Option<Reply>],
    ) -> Result<(), ClientError> {
        let mut mail = format!("MAIL FROM:<{}>", txn.sender);
        if txn.eight_bit && self.caps.eight_bit_mime {
            mail.push_str(" BODY=8BITMIME");
        }
        if txn.smtputf8 && self.caps.smtputf8 {
            mail.push_str(" SMTPUTF8");
        }
        mail.push_str("\r\n");
        let rcpt_lines: Vec<String> = txn
            .rcpts
            .iter()
            .map(|r| format!("RCPT TO:<{r}>\r\n"))
            .collect();
        let t = self.timeouts.command;

        // MAIL, RCPT..., DATA: pipelined in one write when offered.
        let pipelined = self.caps.pipelining;
        self.write(mail.as_bytes()).await?;
        if pipelined {
            for l in &rcpt_lines {
                self.write(l.as_bytes()).await?;
            }
            self.write(b"DATA\r\n").await?;
        }
        self.flush().await?;
        let mail_reply = self.read_reply(t, "the MAIL reply").await?;
        let mail_ok = mail_reply.code / 100 == 2;
        if !mail_ok && !pipelined {
            replies.fill(Some(mail_reply));
            return self.rset().await;
        }
        let mut accepted = Vec::new();
        for (i, l) in rcpt_lines.iter().enumerate() {
            if !pipelined {
                self.write(l.as_bytes()).await?;
                self.flush().await?;
            }
            let r = self.read_reply(t, "a RCPT reply").await?;
            if !mail_ok {
                // With MAIL refused, RCPT replies are "503 need MAIL": the
                // MAIL reply is what counts.
                continue;
            }
            if r.code / 100 == 2 {
                accepted.push(i);
            } else {
                replies[i] = Some(r);
            }
        }
        if !pipelined && mail_ok && !accepted.is_empty() {
            self.write(b"DATA\r\n").await?;
            self.flush().await?;
        }
        if !mail_ok {
            let data = self.read_reply(t, "the DATA reply").await?;
            replies.fill(Some(mail_reply));
            if data.code == 354 {
                return Err(ClientError::Protocol(
                    "DATA accepted after MAIL was refused".into(),
                ));
            }
            return self.rset().await;
        }
        if accepted.is_empty() {
            if pipelined {
                let data = self.read_reply(t, "the DATA reply").await?;
                if data.code == 354 {
                    // RFC 2920 §3.1 says send the dot; an LMTP server then owes
                    // zero replies, which is ambiguous: drop the connection.
                    return Err(ClientError::Protocol(
                        "DATA accepted with no valid recipient".into(),
                    ));
                }
            }
            return self.rset().await;
        }
        let data = self.read_reply(t, "the DATA reply").await?;
        if data.code != 354 {
            for &i in &accepted {
                replies[i] = Some(data.clone());
            }
            return self.rset().await;
        }

        // The message.
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::with_capacity(70 * 1024);
        while let Some(chunk) = message.recv().await {
            let chunk = chunk.map_err(|e| ClientError::Source(e.to_string()))?;
            out.clear();
            stuffer.push(&chunk, &mut out);
            self.write(&out).await?;
        }
        out.clear();
        stuffer.finish(&mut out);
        self.write(&out).await?;
        self.flush().await?;

        // One reply per accepted recipient, in order (RFC 2033 §4.2).
        for &i in &accepted {
            let r = self
                .read_reply(self.timeouts.data_end, "a reply after DATA")
                .await?;
            replies[i] = Some(r);
        }
        Ok(())
    }

    /// RSET: also how a pooled connection proves it is still alive.
    pub async fn rset(&mut self) -> Result<(), ClientError> {
        self.write(b"RSET\r\n").await?;
        self.flush().await?;
        let r = self
            .read_reply(self.timeouts.command, "the RSET reply")
            .await?;
        if r.code / 100 != 2 {
            return Err(ClientError::Protocol(format!("RSET refused: {r}")));
        }
        Ok(())
    }

    /// Says QUIT and waits briefly for the answer (best effort).
    pub async fn quit(mut self) {
        if self.write(b"QUIT\r\n").await.is_ok() && self.flush().await.is_ok() {
            let _ = self
                .read_reply(Duration::from_secs(5), "the QUIT reply")
                .await;
        }
        let _ = self.io.shutdown().await;
    }

    async fn write(&mut self, b: &[u8]) -> Result<(), ClientError> {
        tokio::time::timeout(self.timeouts.command, self.io.write_all(b))
            .await
            .map_err(|_| ClientError::Timeout("a write to complete"))??;
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), ClientError> {
        tokio::time::timeout(self.timeouts.command, self.io.flush())
            .await
            .map_err(|_| ClientError::Timeout("a write to complete"))??;
        Ok(())
    }

    async fn read_reply(
        &mut self,
        timeout: Duration,
        what: &'static str,
    ) -> Result<Reply, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some((r, used)) = parse_reply(&self.buf)? {
                self.buf.drain(..used);
                return Ok(r);
            }
            self.buf.reserve(4096);
            let n = tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf))
                .await
                .map_err(|_| ClientError::Timeout(what))??;
            if n == 0 {
                return Err(ClientError::Closed);
            }
        }
    }
}

/// Dot-stuffing (RFC 5321 §4.5.2) across chunk boundaries: a line that
/// starts with `.` gets another `.` in front.
#[derive(Debug)]
pub struct DotStuffer {
    at_line_start: bool,
    /// The last two bytes seen, to know whether the message ends in CRLF.
    tail: [u8; 2],
    empty: bool,
}

impl Default for DotStuffer {
    fn default() -> Self {
        DotStuffer {
            at_line_start: true,
            tail: [0; 2],
            empty: true,
        }
    }
}

impl DotStuffer {
    /// Appends the stuffed form of `chunk` to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<u8>) {
        let mut start = 0;
        for (i, &b) in chunk.iter().enumerate() {
            if self.at_line_start && b == b'.' {
                out.extend_from_slice(&chunk[start..i]);
                out.push(b'.');
                start = i;
            }
            self.at_line_start = b == b'\n';
        }
        out.extend_from_slice(&chunk[start..]);
        match chunk {
            [] => {}
            [b] => self.tail = [self.tail[1], *b],
            [.., a, b] => self.tail = [*a, *b],
        }
        self.empty &= chunk.is_empty();
    }

    /// Ends the data: a CRLF if the message did not end with one, then `.`.
    pub fn finish(&self, out: &mut Vec<u8>) {
        if !self.empty && self.tail != *b"\r\n" {
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b".\r\n");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests;
