//! One POP3 connection: its I/O, framing and command dispatch, generic over
//! the stream (tests run it over in-memory pipes).
//!
//! States (RFC 1939 §3): AUTHORIZATION (`session/login.rs`), TRANSACTION and
//! UPDATE (`session/transaction.rs`). Commands are read from one buffer,
//! framed with a length limit (an overlong line gets `-ERR` and is skipped);
//! replies are batched and flushed before every blocking read, so pipelined
//! commands (RFC 2449 §6.6) are answered in one write.
//!
//! STLS (RFC 2595 §4): `+OK`, then the input buffer is cleared before the
//! handshake, so nothing the client pipelined in clear text is ever taken as
//! a command in the TLS session (CVE-2011-0411 class); any pending USER is
//! forgotten.
//!
//! Ends without UPDATE (nothing deleted) on EOF, I/O error, idle timeout,
//! too many errors, or shutdown; with UPDATE only on QUIT in TRANSACTION.

mod login;
mod transaction;

use crate::Context;
use crate::maildrop::Maildrop;
use facteur_daemon::conn::Conn;
use facteur_pop3_proto::{Command, LineEvent, LineFramer, MAX_LINE, Response, parse_command};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, warn};

const READ_CHUNK: usize = 16 * 1024;
/// Output is written out once this much is batched (during RETR).
const WRITE_CHUNK: usize = 64 * 1024;

enum Fill {
    Data,
    Eof,
    Timeout,
    Stop,
}

/// Whether the session goes on.
pub(crate) enum Flow {
    Continue,
    Close,
}

enum State {
    /// AUTHORIZATION; the name given by USER, if any.
    Authorization { user: Option<String> },
    /// TRANSACTION; the maildrop is `None` only while a blocking task
    /// borrows it.
    Transaction(Option<Box<Maildrop>>),
}

struct Session<S> {
    ctx: Arc<Context>,
    conn: Conn<S>,
    inbuf: Vec<u8>,
    out: Vec<u8>,
    framer: LineFramer,
    ip: IpAddr,
    state: State,
    errors: u32,
    stop: watch::Receiver<bool>,
}

/// Serves one connection. For implicit TLS the caller passes a stream on
/// which TLS is already established (`Conn::Tls`).
pub async fn serve<S>(ctx: Arc<Context>, conn: Conn<S>, ip: IpAddr, stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let span = info_span!("pop3", peer = %ip, tls = conn.is_tls());
    async move {
        debug!("connected");
        let mut s = Session {
            ctx,
            conn,
            inbuf: Vec::with_capacity(1024),
            out: Vec::with_capacity(1024),
            framer: LineFramer::new(MAX_LINE),
            ip,
            state: State::Authorization { user: None },
            errors: 0,
            stop,
        };
        let greeting = Response::ok(format!("{} POP3 server ready (facteur)", s.ctx.hostname));
        s.reply(&greeting);
        if let Err(e) = s.run().await {
            debug!(error = %e, "connection ended with an I/O error");
        }
        if let State::Transaction(Some(md)) = &s.state {
            info!(
                user = %md.user(),
                marked = md.marked(),
                "session ended without QUIT: nothing deleted"
            );
        }
        debug!("disconnected");
    }
    .instrument(span)
    .await
}

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T, F>(f: F) -> io::Result<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| io::Error::other(format!("blocking task failed: {e}")))
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn reply(&mut self, r: &Response) {
        r.write_to(&mut self.out);
    }

    /// A `-ERR` that counts towards `max_errors`.
    fn error(&mut self, r: Response) {
        self.errors += 1;
        self.reply(&r);
    }

    /// Writes the batched output, with the idle timeout as a write timeout
    /// (a client that stops reading cannot hold the session forever).
    async fn flush(&mut self) -> io::Result<()> {
        if self.out.is_empty() {
            return Ok(());
        }
        let timeout = self.ctx.cfg.timeout.duration();
        let w = async {
            self.conn.write_all(&self.out).await?;
            self.conn.flush().await
        };
        match tokio::time::timeout(timeout, w).await {
            Ok(r) => r?,
            Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "write timeout")),
        }
        self.out.clear();
        if self.out.capacity() > 4 * WRITE_CHUNK {
            self.out.shrink_to(WRITE_CHUNK);
        }
        Ok(())
    }

    async fn fill(&mut self, idle: bool) -> io::Result<Fill> {
        self.flush().await?;
        if self.inbuf.capacity() - self.inbuf.len() < READ_CHUNK / 4 {
            self.inbuf.reserve(READ_CHUNK);
        }
        let timeout = self.ctx.cfg.timeout.duration();
        let mut stop = self.stop.clone();
        let read = tokio::time::timeout(timeout, self.conn.read_buf(&mut self.inbuf));
        let r = if idle {
            tokio::select! {
                r = read => r,
                _ = stop.wait_for(|s| *s) => return Ok(Fill::Stop),
            }
        } else {
            read.await
        };
        match r {
            Err(_) => Ok(Fill::Timeout),
            Ok(Ok(0)) => Ok(Fill::Eof),
            Ok(Ok(_)) => Ok(Fill::Data),
            Ok(Err(e)) => Err(e),
        }
    }

    /// The next line: `Ok(Some(Ok(line)))`, `Ok(Some(Err(())))` for an
    /// overlong one, `Ok(None)` when the buffer holds no complete line.
    fn next_line(&mut self) -> Option<Result<Vec<u8>, ()>> {
        let (used, ev) = self.framer.next(&self.inbuf);
        let ev = ev.map(|e| match e {
            LineEvent::Line(l) => Ok(l.to_vec()),
            LineEvent::TooLong => Err(()),
        });
        self.inbuf.drain(..used);
        ev
    }

    /// Reads one line (a SASL response). `None` on EOF, timeout, stop.
    async fn read_line(&mut self) -> io::Result<Option<Result<Vec<u8>, ()>>> {
        loop {
            if let Some(l) = self.next_line() {
                return Ok(Some(l));
            }
            match self.fill(false).await? {
                Fill::Data => {}
                Fill::Eof | Fill::Timeout | Fill::Stop => return Ok(None),
            }
        }
    }

    async fn run(&mut self) -> io::Result<()> {
        loop {
            if *self.stop.borrow() {
                self.reply(&Response::err_code(
                    facteur_pop3_proto::RespCode::SysTemp,
                    "Server shutting down, nothing was deleted",
                ));
                return self.flush().await;
            }
            match self.next_line() {
                None => match self.fill(true).await? {
                    Fill::Data | Fill::Stop => continue,
                    Fill::Eof => return Ok(()),
                    Fill::Timeout => {
                        info!("idle for too long");
                        self.reply(&Response::err(
                            "Autologout: idle for too long, nothing was deleted",
                        ));
                        return self.flush().await;
                    }
                },
                Some(Err(())) => self.error(Response::err("Line too long")),
                Some(Ok(line)) => {
                    if let Flow::Close = self.command(&line).await? {
                        return self.flush().await;
                    }
                }
            }
            if self.errors >= self.ctx.cfg.max_errors {
                self.reply(&Response::err("Too many errors, closing connection"));
                return self.flush().await;
            }
        }
    }

    async fn command(&mut self, line: &[u8]) -> io::Result<Flow> {
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(e) => {
                self.error(Response::err(e.to_string()));
                return Ok(Flow::Continue);
            }
        };
        match (&self.state, cmd) {
            (_, Command::Capa) => {
                self.capa();
                Ok(Flow::Continue)
            }
            (State::Authorization { .. }, Command::Quit) => {
                self.reply(&Response::ok("Bye"));
                Ok(Flow::Close)
            }
            (State::Authorization { .. }, Command::Stls) => self.stls().await,
            (State::Authorization { .. }, c) => self.authorization(c).await,
            (State::Transaction(_), Command::Stls) => {
                self.error(Response::err("STLS is only allowed before login"));
                Ok(Flow::Continue)
            }
            (State::Transaction(_), c) => self.transaction(c).await,
        }
    }

    fn in_transaction(&self) -> bool {
        matches!(self.state, State::Transaction(_))
    }

    /// Whether a password may be sent now: over TLS, or in clear text from
    /// loopback when the configuration allows it.
    fn login_allowed(&self) -> bool {
        self.conn.is_tls()
            || (self.ctx.cfg.allow_plaintext_auth_on_loopback && self.ip.is_loopback())
    }

    fn capa(&mut self) {
        let auth = !self.in_transaction() && self.login_allowed();
        let capa = facteur_pop3_proto::Capa {
            user: auth,
            sasl: if auth { &["PLAIN"] } else { &[] },
            stls: !self.in_transaction() && !self.conn.is_tls() && self.ctx.tls.get().is_some(),
            implementation: Some("facteur"),
        };
        capa.write_to(&mut self.out);
    }

    async fn stls(&mut self) -> io::Result<Flow> {
        if self.conn.is_tls() {
            self.error(Response::err("TLS already active"));
            return Ok(Flow::Continue);
        }
        let Some(tls) = self.ctx.tls.get() else {
            self.error(Response::err("TLS not available"));
            return Ok(Flow::Continue);
        };
        self.reply(&Response::ok("Begin TLS negotiation"));
        self.flush().await?;
        // Anything pipelined after STLS in clear text is discarded.
        if !self.inbuf.is_empty() || self.framer.is_discarding() {
            warn!(
                bytes = self.inbuf.len(),
                "discarding data pipelined after STLS"
            );
        }
        self.inbuf.clear();
        self.framer = LineFramer::new(MAX_LINE);
        self.state = State::Authorization { user: None };
        let plain = match std::mem::replace(&mut self.conn, Conn::Gone) {
            Conn::Plain(s) => s,
            other => {
                self.conn = other;
                return Ok(Flow::Close);
            }
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(plain)).await {
            Ok(Ok(t)) => {
                self.conn = Conn::Tls(Box::new(t));
                debug!(tls = %self.conn.tls_description().unwrap_or_default(), "STLS done");
                Ok(Flow::Continue)
            }
            Ok(Err(e)) => {
                info!(error = %e, "TLS handshake failed");
                Ok(Flow::Close)
            }
            Err(_) => {
                info!("TLS handshake timed out");
                Ok(Flow::Close)
            }
        }
    }
}

#[cfg(test)]
mod tests;
