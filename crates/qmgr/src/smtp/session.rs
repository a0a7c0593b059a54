//! One outbound SMTP connection (RFC 5321): greeting, EHLO (HELO when EHLO
//! is refused), STARTTLS (RFC 3207), AUTH PLAIN/LOGIN (RFC 4954), then any
//! number of transactions, each with one outcome per recipient; RSET
//! between messages, QUIT at the end.
//!
//! Offers [`Session`] over any stream ([`BoxIo`]: a TCP connection, or an
//! in-memory pipe in tests), [`Txn`] / [`TxnOutcome`], [`Timeouts`].
//!
//! Protocol per transaction: `MAIL FROM` (SIZE, BODY, SMTPUTF8, RET, ENVID
//! as the peer offers them), one `RCPT TO` per recipient (NOTIFY, ORCPT with
//! DSN), then `DATA` with the dot-stuffed message and `.` — or, when the
//! peer offers CHUNKING, `BDAT` chunks ending with `BDAT 0 LAST` (RFC 3030),
//! the bytes as queued. With PIPELINING (RFC 2920) MAIL, the RCPTs and DATA
//! go in one write and the replies are read in order.
//!
//! Guarantees:
//! - Every wait has its RFC 5321 §4.5.3.2 time-out ([`Timeouts`]); replies
//!   are parsed with hard bounds (`crate::reply`: at most 100 lines of 2048
//!   octets), so a peer that sends 10,000 continuation lines, never answers,
//!   or closes the connection costs bounded memory and time, never a panic.
//! - A recipient's outcome is `Some(reply)` only when the peer said it;
//!   otherwise `None` (the caller defers: not delivered, or maybe delivered
//!   if the connection died after the final dot).
//! - A peer that talks before its turn (bytes after the greeting before our
//!   EHLO, or after its STARTTLS 220 before the handshake) is dropped:
//!   pipelined plaintext must never be read as if it came over TLS
//!   (CVE-2011-0411 class).
//! - Credentials are sent only over TLS; the caller checks [`Session::tls`]
//!   and this module refuses too.
//!
//! Security: reply text is sanitised by the parser before it reaches logs,
//! queue files or bounces.

use crate::client::{DotStuffer, MessageSource};
use crate::reply::{ReplyError, parse_reply};
use facteur_smtp_codec::Reply;
use facteur_smtp_codec::client::{Extensions, MailParams, mail_from, rcpt_to};
use std::io;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A byte stream a session can run over.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
/// The stream, boxed so STARTTLS can replace it.
pub type BoxIo = Box<dyn Io>;

/// Time-outs of one connection (RFC 5321 §4.5.3.2 defaults).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub connect: Duration,
    /// The 220 greeting (5 min).
    pub greeting: Duration,
    /// EHLO, STARTTLS, AUTH, MAIL, RCPT, RSET replies (5 min).
    pub command: Duration,
    /// The 354 after DATA (2 min).
    pub data_init: Duration,
    /// Each write of message data, each BDAT reply (3 min).
    pub data_block: Duration,
    /// The reply after the final dot or BDAT LAST (10 min).
    pub data_done: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(300),
            command: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_block: Duration::from_secs(180),
            data_done: Duration::from_secs(600),
        }
    }
}

/// Why a connection failed; after any of these it is unusable.
#[derive(Debug, thiserror::Error)]
pub enum SmtpError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("timeout waiting for {0}")]
    Timeout(&'static str),
    #[error("connection closed by the peer")]
    Closed,
    #[error("bad reply: {0}")]
    Reply(#[from] ReplyError),
    /// The peer refused the greeting, EHLO/HELO, STARTTLS or AUTH.
    #[error("{0} refused: {1}")]
    Refused(&'static str, Reply),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("reading the queued message failed: {0}")]
    Source(String),
}

impl SmtpError {
    /// One line for the queue file and logs, RFC 3463 style.
    pub fn as_reply_text(&self) -> String {
        match self {
            SmtpError::Refused(what, r) => format!("{r} (in reply to {what})"),
            SmtpError::Tls(_) => format!("4.7.5 {self}"),
            SmtpError::Source(_) => format!("4.3.0 {self}"),
            _ => format!("4.4.2 {self}"),
        }
    }
}

/// One recipient of a transaction.
#[derive(Debug, Clone)]
pub struct TxnRcpt {
    pub address: String,
    /// `SUCCESS,FAILURE,DELAY` or `NEVER`; sent only with DSN.
    pub notify: Option<String>,
    pub orcpt: Option<String>,
}

/// One transaction to run.
#[derive(Debug)]
pub struct Txn<'a> {
    /// "" is the null reverse-path.
    pub sender: &'a str,
    pub params: MailParams<'a>,
    pub rcpts: &'a [TxnRcpt],
}

/// What became of each recipient; `error` set means the connection is dead.
#[derive(Debug)]
pub struct TxnOutcome {
    pub replies: Vec<Option<Reply>>,
    pub error: Option<SmtpError>,
}

/// One SMTP connection.
pub struct Session {
    io: BoxIo,
    buf: Vec<u8>,
    pub ext: Extensions,
    /// Whether TLS is on.
    pub tls: bool,
    /// Whether the peer knew EHLO (else HELO: no extensions at all).
    pub esmtp: bool,
    helo_name: String,
    t: Timeouts,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("ext", &self.ext)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// Reads the greeting and says EHLO (HELO if EHLO is refused).
    pub async fn start(io: BoxIo, helo_name: &str, t: Timeouts) -> Result<Session, SmtpError> {
        let mut s = Session {
            io,
            buf: Vec::with_capacity(1024),
            ext: Extensions::default(),
            tls: false,
            esmtp: false,
            helo_name: helo_name.to_string(),
            t,
        };
        let g = s.read_reply(t.greeting, "the greeting").await?;
        if g.code != 220 {
            return Err(SmtpError::Refused("the greeting", g));
        }
        s.ehlo().await?;
        Ok(s)
    }

    async fn ehlo(&mut self) -> Result<(), SmtpError> {
        self.no_early_talk("EHLO")?;
        self.cmd(&format!("EHLO {}\r\n", self.helo_name)).await?;
        let r = self.read_reply(self.t.command, "the EHLO reply").await?;
        if r.code == 250 {
            self.ext = Extensions::from_ehlo(&r.lines);
            self.esmtp = true;
            return Ok(());
        }
        if r.code / 100 == 4 || r.code == 554 {
            return Err(SmtpError::Refused("EHLO", r));
        }
        // 500/502 and friends: an old server; HELO, no extensions.
        self.cmd(&format!("HELO {}\r\n", self.helo_name)).await?;
        let r = self.read_reply(self.t.command, "the HELO reply").await?;
        if r.code != 250 {
            return Err(SmtpError::Refused("HELO", r));
        }
        self.ext = Extensions::default();
        self.esmtp = false;
        Ok(())
    }

    /// A peer must not send anything before we have spoken.
    fn no_early_talk(&self, before: &str) -> Result<(), SmtpError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(SmtpError::Protocol(format!(
                "the peer sent data before our {before} (pipelining desync)"
            )))
        }
    }

    /// STARTTLS, the handshake for `server_name`, then EHLO again.
    pub async fn starttls(
        mut self,
        cfg: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<Session, SmtpError> {
        self.cmd("STARTTLS\r\n").await?;
        let r = self
            .read_reply(self.t.command, "the STARTTLS reply")
            .await?;
        if r.code != 220 {
            return Err(SmtpError::Refused("STARTTLS", r));
        }
        self.no_early_talk("TLS handshake")?;
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
            .map_err(|e| SmtpError::Tls(format!("bad server name {server_name:?}: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(cfg);
        let tls = tokio::time::timeout(self.t.command, connector.connect(name, self.io))
            .await
            .map_err(|_| SmtpError::Timeout("the TLS handshake"))?
            .map_err(|e| SmtpError::Tls(e.to_string()))?;
        let mut s = Session {
            io: Box::new(tls),
            buf: Vec::with_capacity(1024),
            ext: Extensions::default(),
            tls: true,
            esmtp: false,
            helo_name: self.helo_name,
            t: self.t,
        };
        s.ehlo().await?;
        Ok(s)
    }

    /// AUTH PLAIN (or LOGIN when PLAIN is not offered). Only over TLS.
    pub async fn auth(&mut self, user: &str, pass: &str) -> Result<(), SmtpError> {
        if !self.tls {
            return Err(SmtpError::Protocol(
                "refusing to send credentials without TLS".into(),
            ));
        }
        let t = self.t.command;
        if self.ext.auth.iter().any(|m| m == "PLAIN") {
            let token = base64(format!("\0{user}\0{pass}").as_bytes());
            self.cmd(&format!("AUTH PLAIN {token}\r\n")).await?;
        } else if self.ext.auth.iter().any(|m| m == "LOGIN") {
            self.cmd("AUTH LOGIN\r\n").await?;
            for v in [user, pass] {
                let r = self.read_reply(t, "the AUTH reply").await?;
                if r.code != 334 {
                    return Err(SmtpError::Refused("AUTH", r));
                }
                self.cmd(&format!("{}\r\n", base64(v.as_bytes()))).await?;
            }
        } else {
            return Err(SmtpError::Protocol(
                "the relayhost offers neither AUTH PLAIN nor LOGIN".into(),
            ));
        }
        let r = self.read_reply(t, "the AUTH reply").await?;
        if r.code != 235 {
            return Err(SmtpError::Refused("AUTH", r));
        }
        Ok(())
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
        message: MessageSource,
        replies: &mut [Option<Reply>],
    ) -> Result<(), SmtpError> {
        let mail = mail_from(txn.sender, &txn.params)
            .ok_or_else(|| SmtpError::Protocol("unusable sender address".into()))?;
        let dsn = self.ext.dsn;
        let mut rcpt_lines = Vec::with_capacity(txn.rcpts.len());
        for r in txn.rcpts {
            let (n, o) = if dsn {
                (r.notify.as_deref(), r.orcpt.as_deref())
            } else {
                (None, None)
            };
            rcpt_lines.push(rcpt_to(&r.address, n, o));
        }
        let t = self.t.command;
        let chunking = self.ext.chunking;
        let pipelined = self.ext.pipelining;

        // MAIL, RCPT..., (DATA): one write with PIPELINING.
        self.write(mail.as_bytes(), t).await?;
        let mut sent_rcpt = vec![false; rcpt_lines.len()];
        if pipelined {
            for (i, l) in rcpt_lines.iter().enumerate() {
                if let Some(l) = l {
                    self.write(l.as_bytes(), t).await?;
                    sent_rcpt[i] = true;
                }
            }
            if !chunking {
                self.write(b"DATA\r\n", t).await?;
            }
        }
        self.flush(t).await?;
        let mail_reply = self.read_reply(t, "the MAIL reply").await?;
        let mail_ok = mail_reply.code / 100 == 2;
        let mut accepted = Vec::new();
        for (i, l) in rcpt_lines.iter().enumerate() {
            let Some(l) = l else {
                replies[i] = Some(Reply::new(553, (5, 1, 3), "unusable recipient address"));
                continue;
            };
            if !pipelined {
                if !mail_ok {
                    break;
                }
                self.write(l.as_bytes(), t).await?;
                self.flush(t).await?;
                sent_rcpt[i] = true;
            }
            if !sent_rcpt[i] {
                continue;
            }
            let r = self.read_reply(t, "a RCPT reply").await?;
            if mail_ok && r.code / 100 == 2 {
                accepted.push(i);
            } else if mail_ok {
                replies[i] = Some(r);
            }
        }
        if !mail_ok {
            if pipelined && !chunking {
                let d = self.read_reply(self.t.data_init, "the DATA reply").await?;
                if d.code == 354 {
                    return Err(SmtpError::Protocol(
                        "DATA accepted after MAIL was refused".into(),
                    ));
                }
            }
            for (i, r) in replies.iter_mut().enumerate() {
                if r.is_none() && rcpt_lines[i].is_some() {
                    *r = Some(mail_reply.clone());
                }
            }
            return self.rset().await;
        }
        if chunking {
            if accepted.is_empty() {
                return self.rset().await;
            }
            let r = self.bdat(message).await?;
            for &i in &accepted {
                replies[i] = Some(r.clone());
            }
            return Ok(());
        }
        if !pipelined {
            if accepted.is_empty() {
                return self.rset().await;
            }
            self.write(b"DATA\r\n", t).await?;
            self.flush(t).await?;
        }
        let d = self.read_reply(self.t.data_init, "the DATA reply").await?;
        if d.code != 354 {
            for &i in &accepted {
                replies[i] = Some(d.clone());
            }
            return self.rset().await;
        }
        if accepted.is_empty() {
            // RFC 2920 §3.1: DATA was accepted with no valid recipient; end
            // it at once (the peer refuses the empty message).
            self.write(b".\r\n", t).await?;
            self.flush(t).await?;
            let _ = self
                .read_reply(self.t.data_done, "the reply after DATA")
                .await?;
            return self.rset().await;
        }
        let r = self.data(message).await?;
        for &i in &accepted {
            replies[i] = Some(r.clone());
        }
        Ok(())
    }

    /// Streams the message dot-stuffed, `.`, and reads the final reply.
    async fn data(&mut self, mut message: MessageSource) -> Result<Reply, SmtpError> {
        let tb = self.t.data_block;
        let mut stuffer = DotStuffer::default();
        let mut out = Vec::with_capacity(70 * 1024);
        while let Some(chunk) = message.recv().await {
            let chunk = chunk.map_err(|e| SmtpError::Source(e.to_string()))?;
            out.clear();
            stuffer.push(&chunk, &mut out);
            self.write(&out, tb).await?;
        }
        out.clear();
        stuffer.finish(&mut out);
        self.write(&out, tb).await?;
        self.flush(tb).await?;
        self.read_reply(self.t.data_done, "the reply after the final dot")
            .await
    }

    /// RFC 3030: the message as `BDAT n` chunks, then `BDAT 0 LAST`.
    async fn bdat(&mut self, mut message: MessageSource) -> Result<Reply, SmtpError> {
        let tb = self.t.data_block;
        while let Some(chunk) = message.recv().await {
            let chunk = chunk.map_err(|e| SmtpError::Source(e.to_string()))?;
            if chunk.is_empty() {
                continue;
            }
            self.write(format!("BDAT {}\r\n", chunk.len()).as_bytes(), tb)
                .await?;
            self.write(&chunk, tb).await?;
            self.flush(tb).await?;
            let r = self.read_reply(tb, "a BDAT reply").await?;
            if r.code / 100 != 2 {
                // The transaction is over (RFC 3030 §2): this is the answer.
                self.rset().await?;
                return Ok(r);
            }
        }
        self.write(b"BDAT 0 LAST\r\n", tb).await?;
        self.flush(tb).await?;
        self.read_reply(self.t.data_done, "the BDAT LAST reply")
            .await
    }

    /// RSET; the connection is usable for the next message when it is Ok.
    pub async fn rset(&mut self) -> Result<(), SmtpError> {
        self.cmd("RSET\r\n").await?;
        let r = self.read_reply(self.t.command, "the RSET reply").await?;
        if r.code / 100 != 2 {
            return Err(SmtpError::Protocol(format!("RSET refused: {r}")));
        }
        Ok(())
    }

    /// QUIT, waiting briefly for the answer (best effort).
    pub async fn quit(mut self) {
        if self.cmd("QUIT\r\n").await.is_ok() {
            let _ = self
                .read_reply(Duration::from_secs(5), "the QUIT reply")
                .await;
        }
        let _ = self.io.shutdown().await;
    }

    async fn cmd(&mut self, line: &str) -> Result<(), SmtpError> {
        let t = self.t.command;
        self.write(line.as_bytes(), t).await?;
        self.flush(t).await
    }

    async fn write(&mut self, b: &[u8], t: Duration) -> Result<(), SmtpError> {
        tokio::time::timeout(t, self.io.write_all(b))
            .await
            .map_err(|_| SmtpError::Timeout("a write to complete"))??;
        Ok(())
    }

    async fn flush(&mut self, t: Duration) -> Result<(), SmtpError> {
        tokio::time::timeout(t, self.io.flush())
            .await
            .map_err(|_| SmtpError::Timeout("a write to complete"))??;
        Ok(())
    }

    async fn read_reply(&mut self, t: Duration, what: &'static str) -> Result<Reply, SmtpError> {
        let deadline = tokio::time::Instant::now() + t;
        loop {
            if let Some((r, used)) = parse_reply(&self.buf)? {
                self.buf.drain(..used);
                return Ok(r);
            }
            self.buf.reserve(4096);
            let n = tokio::time::timeout_at(deadline, self.io.read_buf(&mut self.buf))
                .await
                .map_err(|_| SmtpError::Timeout(what))??;
            if n == 0 {
                return Err(SmtpError::Closed);
            }
        }
    }
}

/// Standard base64 (RFC 4648 §4), for AUTH.
pub fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for c in input.chunks(3) {
        let b = [c[0], *c.get(1).unwrap_or(&0), *c.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for (k, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if k <= c.len() {
                out.push(T[((n >> shift) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}
