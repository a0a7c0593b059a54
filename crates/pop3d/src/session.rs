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
pub(crate) use facteur_access::{blocking, strip_eol};
use facteur_daemon::conn::Conn;
use facteur_daemon::lineio::{Input, LineIo};
use facteur_pop3_proto::{Command, MAX_LINE, Response, parse_command};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span};

/// Output is written out once this much is batched (during RETR).
const WRITE_CHUNK: usize = 64 * 1024;

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
    /// `[pop3d]` as the session began (a reload applies to later ones).
    cfg: Arc<facteur_config::Pop3d>,
    io: LineIo<Conn<S>>,
    ip: IpAddr,
    state: State,
    errors: u32,
    /// How the command being answered ended: ok or err (metrics).
    result: &'static str,
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
        let cfg = ctx.cfg.get();
        let timeout = cfg.timeout.duration();
        let mut io = LineIo::new(conn, MAX_LINE, timeout, stop);
        // Before login, the whole session has `timeout` (issue 14): a
        // client that sends a CAPA now and then cannot hold a slot longer.
        io.set_deadline(Some(tokio::time::Instant::now() + timeout));
        let mut s = Session {
            ctx,
            cfg,
            io,
            ip,
            state: State::Authorization { user: None },
            errors: 0,
            result: "none",
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

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn reply(&mut self, r: &Response) {
        self.result = if r.ok { "ok" } else { "err" };
        r.write_to(self.io.out());
    }

    /// A `-ERR` that counts towards `max_errors`.
    fn error(&mut self, r: Response) {
        self.errors += 1;
        self.reply(&r);
    }

    async fn flush(&mut self) -> io::Result<()> {
        self.io.flush().await
    }

    /// Reads one line (a SASL response), without its line ending: `Err(())`
    /// for an overlong one, `None` on EOF, timeout, stop.
    async fn read_line(&mut self) -> io::Result<Option<Result<Vec<u8>, ()>>> {
        Ok(match self.io.next_line(false).await? {
            Input::Line(l) => Some(Ok(strip_eol(l))),
            Input::TooLong => Some(Err(())),
            Input::Eof | Input::Timeout | Input::Stop => None,
        })
    }

    async fn run(&mut self) -> io::Result<()> {
        loop {
            if self.io.stopping() {
                self.reply(&Response::err_code(
                    facteur_pop3_proto::RespCode::SysTemp,
                    "Server shutting down, nothing was deleted",
                ));
                return self.flush().await;
            }
            match self.io.next_line(true).await? {
                Input::Stop => continue,
                Input::Eof => return Ok(()),
                Input::Timeout => {
                    info!("idle for too long");
                    self.reply(&Response::err(
                        "Autologout: idle for too long, nothing was deleted",
                    ));
                    return self.flush().await;
                }
                Input::TooLong => self.error(Response::err("Line too long")),
                Input::Line(line) => {
                    if let Flow::Close = self.command(&strip_eol(line)).await? {
                        return self.flush().await;
                    }
                }
            }
            if self.errors >= self.cfg.max_errors {
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
        let (name, started) = (cmd.name(), std::time::Instant::now());
        self.result = "none";
        let flow = self.run_command(cmd).await;
        facteur_access::metrics::command(name, self.result, started.elapsed());
        flow
    }

    async fn run_command(&mut self, cmd: Command) -> io::Result<Flow> {
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
        self.io.stream.is_tls()
            || (self.cfg.allow_plaintext_auth_on_loopback && self.ip.is_loopback())
    }

    fn capa(&mut self) {
        let auth = !self.in_transaction() && self.login_allowed();
        let mechanisms = facteur_sasl::Mechanism::ALL.map(facteur_sasl::Mechanism::name);
        let capa = facteur_pop3_proto::Capa {
            user: auth,
            sasl: if auth { &mechanisms } else { &[] },
            stls: !self.in_transaction()
                && !self.io.stream.is_tls()
                && self.ctx.tls.get().is_some(),
            implementation: Some("facteur"),
        };
        capa.write_to(self.io.out());
    }

    async fn stls(&mut self) -> io::Result<Flow> {
        if self.io.stream.is_tls() {
            self.error(Response::err("TLS already active"));
            return Ok(Flow::Continue);
        }
        let Some(tls) = self.ctx.tls.get() else {
            self.error(Response::err("TLS not available"));
            return Ok(Flow::Continue);
        };
        self.reply(&Response::ok("Begin TLS negotiation"));
        // Anything pipelined in clear text is thrown away by start_tls.
        self.state = State::Authorization { user: None };
        if !self.io.start_tls(tls).await? {
            return Ok(Flow::Close);
        }
        Ok(Flow::Continue)
    }
}

#[cfg(test)]
mod tests;
