//! One connection: greeting, EHLO/HELO or LHLO, STARTTLS (RFC 3207), AUTH
//! PLAIN/LOGIN (RFC 4954), RSET, QUIT, and the reading and writing that
//! every step shares (each with its time-out, replies bounded by the
//! codec's parser). Transactions are in `transaction.rs`.
//!
//! Generic over the stream: a TCP connection, a Unix socket, or an
//! in-memory pipe in tests. STARTTLS changes the stream's type, so it
//! returns a [`Connection<BoxIo>`].

use crate::{ClientError, Dialect, Timeouts};
use facteur_sasl::codec::encode;
use facteur_smtp_codec::Reply;
use facteur_smtp_codec::client::Extensions;
use facteur_smtp_codec::reply::parse_reply;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// A byte stream a connection can run over and hand between tasks.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}
/// The stream, boxed so STARTTLS can replace it.
pub type BoxIo = Box<dyn Io>;

/// One SMTP or LMTP connection, ready for transactions once
/// [`Connection::start`] returned.
pub struct Connection<S> {
    io: S,
    buf: Vec<u8>,
    pub(crate) dialect: Dialect,
    /// What the server offered in its EHLO/LHLO reply.
    pub ext: Extensions,
    /// Whether TLS is on.
    pub tls: bool,
    /// Whether the peer knew EHLO/LHLO (else HELO: no extensions at all).
    pub esmtp: bool,
    /// The first line of the EHLO/LHLO reply: the server's name.
    pub server_name: String,
    helo_name: String,
    pub(crate) t: Timeouts,
}

impl<S> std::fmt::Debug for Connection<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("dialect", &self.dialect)
            .field("ext", &self.ext)
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Connection<S> {
    /// Reads the greeting and says EHLO (HELO if EHLO is refused) or LHLO.
    pub async fn start(
        io: S,
        dialect: Dialect,
        helo_name: &str,
        t: Timeouts,
    ) -> Result<Connection<S>, ClientError> {
        let mut c = Connection {
            io,
            buf: Vec::with_capacity(1024),
            dialect,
            ext: Extensions::default(),
            tls: false,
            esmtp: false,
            server_name: String::new(),
            helo_name: helo_name.to_string(),
            t,
        };
        let g = c.read_reply(t.greeting, "the greeting").await?;
        if g.code != 220 {
            return Err(ClientError::Refused("the greeting", g));
        }
        c.hello().await?;
        Ok(c)
    }

    /// EHLO or LHLO; for SMTP, HELO when the peer does not know EHLO.
    async fn hello(&mut self) -> Result<(), ClientError> {
        let (verb, what) = match self.dialect {
            Dialect::Smtp => ("EHLO", "the EHLO reply"),
            Dialect::Lmtp => ("LHLO", "the LHLO reply"),
        };
        self.no_early_talk(verb)?;
        self.cmd(&format!("{verb} {}\r\n", self.helo_name)).await?;
        let r = self.read_reply(self.t.command, what).await?;
        if r.code == 250 {
            self.server_name = r.lines.first().cloned().unwrap_or_default();
            self.ext = Extensions::from_ehlo(&r.lines);
            self.esmtp = true;
            return Ok(());
        }
        if self.dialect == Dialect::Lmtp || r.code / 100 == 4 || r.code == 554 {
            return Err(ClientError::Refused(verb, r));
        }
        // 500/502 and friends: an old server; HELO, no extensions.
        self.cmd(&format!("HELO {}\r\n", self.helo_name)).await?;
        let r = self.read_reply(self.t.command, "the HELO reply").await?;
        if r.code != 250 {
            return Err(ClientError::Refused("HELO", r));
        }
        self.server_name = r.lines.first().cloned().unwrap_or_default();
        self.ext = Extensions::default();
        self.esmtp = false;
        Ok(())
    }

    /// A peer must not send anything before we have spoken.
    fn no_early_talk(&self, before: &str) -> Result<(), ClientError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ClientError::Protocol(format!(
                "the peer sent data before our {before} (pipelining desync)"
            )))
        }
    }

    /// AUTH PLAIN (or LOGIN when PLAIN is not offered). Only over TLS.
    pub async fn auth(&mut self, user: &str, pass: &str) -> Result<(), ClientError> {
        if !self.tls {
            return Err(ClientError::Protocol(
                "refusing to send credentials without TLS".into(),
            ));
        }
        let t = self.t.command;
        if self.ext.auth.iter().any(|m| m == "PLAIN") {
            let token = encode(format!("\0{user}\0{pass}").as_bytes());
            self.cmd(&format!("AUTH PLAIN {token}\r\n")).await?;
        } else if self.ext.auth.iter().any(|m| m == "LOGIN") {
            self.cmd("AUTH LOGIN\r\n").await?;
            for v in [user, pass] {
                let r = self.read_reply(t, "the AUTH reply").await?;
                if r.code != 334 {
                    return Err(ClientError::Refused("AUTH", r));
                }
                self.cmd(&format!("{}\r\n", encode(v.as_bytes()))).await?;
            }
        } else {
            return Err(ClientError::Protocol(
                "the relayhost offers neither AUTH PLAIN nor LOGIN".into(),
            ));
        }
        let r = self.read_reply(t, "the AUTH reply").await?;
        if r.code != 235 {
            return Err(ClientError::Refused("AUTH", r));
        }
        Ok(())
    }

    /// RSET: the connection is usable for the next message when it is Ok
    /// (also how a pooled connection proves it is still alive).
    pub async fn rset(&mut self) -> Result<(), ClientError> {
        self.cmd("RSET\r\n").await?;
        let r = self.read_reply(self.t.command, "the RSET reply").await?;
        if r.code / 100 != 2 {
            return Err(ClientError::Protocol(format!("RSET refused: {r}")));
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

    /// Writes one command line and flushes it.
    pub(crate) async fn cmd(&mut self, line: &str) -> Result<(), ClientError> {
        let t = self.t.command;
        self.write(line.as_bytes(), t).await?;
        self.flush(t).await
    }

    pub(crate) async fn write(&mut self, b: &[u8], t: Duration) -> Result<(), ClientError> {
        tokio::time::timeout(t, self.io.write_all(b))
            .await
            .map_err(|_| ClientError::Timeout("a write to complete"))??;
        Ok(())
    }

    pub(crate) async fn flush(&mut self, t: Duration) -> Result<(), ClientError> {
        tokio::time::timeout(t, self.io.flush())
            .await
            .map_err(|_| ClientError::Timeout("a write to complete"))??;
        Ok(())
    }

    /// The next reply, within `t` in all (bounded by the codec's parser).
    pub(crate) async fn read_reply(
        &mut self,
        t: Duration,
        what: &'static str,
    ) -> Result<Reply, ClientError> {
        let deadline = tokio::time::Instant::now() + t;
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

impl<S: Io + 'static> Connection<S> {
    /// STARTTLS, the handshake for `server_name` (the name a `verify`
    /// configuration checks), then EHLO/LHLO again.
    pub async fn starttls(
        mut self,
        cfg: Arc<rustls::ClientConfig>,
        server_name: &str,
    ) -> Result<Connection<BoxIo>, ClientError> {
        self.cmd("STARTTLS\r\n").await?;
        let r = self
            .read_reply(self.t.command, "the STARTTLS reply")
            .await?;
        if r.code != 220 {
            return Err(ClientError::Refused("STARTTLS", r));
        }
        // Nothing may have come after the 220: it would be read as if it
        // came over TLS.
        self.no_early_talk("TLS handshake")?;
        let name = rustls::pki_types::ServerName::try_from(server_name.to_string())
            .map_err(|e| ClientError::Tls(format!("bad server name {server_name:?}: {e}")))?;
        let connector = tokio_rustls::TlsConnector::from(cfg);
        let tls = tokio::time::timeout(self.t.command, connector.connect(name, self.io))
            .await
            .map_err(|_| ClientError::Timeout("the TLS handshake"))?
            .map_err(|e| ClientError::Tls(e.to_string()))?;
        let mut c = Connection {
            io: Box::new(tls) as BoxIo,
            buf: Vec::with_capacity(1024),
            dialect: self.dialect,
            ext: Extensions::default(),
            tls: true,
            esmtp: false,
            server_name: String::new(),
            helo_name: self.helo_name,
            t: self.t,
        };
        c.hello().await?;
        Ok(c)
    }
}
