//! One ManageSieve connection (RFC 5804): framing of command lines and
//! literals, capabilities, STARTTLS, AUTHENTICATE, LOGOUT, NOOP,
//! UNAUTHENTICATE; the commands on scripts are in `session/scripts.rs`.
//! Generic over the stream: tests run it over in-memory pipes.
//!
//! A literal larger than `[sieve] max_script_size` is refused when it is
//! announced: its octets are read and thrown away (the client sends them
//! anyway: `{n+}` does not wait), then the command gets `NO (QUOTA/MAXSIZE)`.
//!
//! STARTTLS (RFC 5804 §2.2): `OK`, then the input pipelined in clear text
//! is dropped before the handshake, and the capabilities are sent again in
//! TLS.

mod scripts;

use crate::Context;
use facteur_access::{blocking, strip_eol};
use facteur_auth::{Answer, Channel, Outcome};
use facteur_daemon::conn::Conn;
use facteur_daemon::lineio::{Fill, Input, LineIo};
use facteur_directory::UserRecord;
use facteur_managesieve_proto::{
    self as proto, Command, Error, MAX_LINE, Need, Receiver, Response, Token,
};
use facteur_sasl::{Failure, Mechanism};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span};

/// Whether the session goes on.
enum Flow {
    Continue,
    Close,
}

/// What reading a command gave.
enum Read {
    Command(Vec<Token>),
    /// A protocol error to be answered.
    Bad(Response),
    /// An error after which the connection closes (this response, then
    /// the end).
    Fatal(Response),
    Closed,
}

/// A literal this much over the limit is not even read and thrown away:
/// the connection is closed instead.
const SKIP_MAX: u64 = 16 * 1024 * 1024;

struct Session<S> {
    ctx: Arc<Context>,
    cfg: Arc<facteur_config::Managesieved>,
    sieve: Arc<facteur_config::Sieve>,
    io: LineIo<Conn<S>>,
    ip: IpAddr,
    user: Option<UserRecord>,
    errors: u32,
    /// The kind of the last response (`ok`, `no`, `bye`), for the metrics.
    result: &'static str,
}

/// Serves one connection.
pub async fn serve<S>(ctx: Arc<Context>, conn: Conn<S>, ip: IpAddr, stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let span = info_span!("managesieve", peer = %ip, tls = conn.is_tls());
    async move {
        debug!("connected");
        let cfg = ctx.cfg.get();
        let sieve = ctx.sieve.get();
        let timeout = cfg.timeout.duration();
        let io = LineIo::new(conn, MAX_LINE, timeout, stop);
        let mut s = Session {
            ctx,
            cfg,
            sieve,
            io,
            ip,
            user: None,
            errors: 0,
            result: "ok",
        };
        s.capabilities();
        let hello = format!("{} ManageSieve ready (facteur)", s.ctx.hostname);
        s.reply(&Response::ok(hello));
        if let Err(e) = s.run().await {
            debug!(error = %e, "connection ended with an I/O error");
        }
        debug!("disconnected");
    }
    .instrument(span)
    .await
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn reply(&mut self, r: &Response) {
        self.result = match r.kind {
            "OK" => "ok",
            "NO" => "no",
            _ => "bye",
        };
        r.write_to(self.io.out());
    }

    /// A `NO` that counts towards `max_errors`.
    fn error(&mut self, r: Response) {
        self.errors += 1;
        self.reply(&r);
    }

    fn max_script(&self) -> usize {
        usize::try_from(self.sieve.max_script_size.0).unwrap_or(usize::MAX)
    }

    /// A password may be sent: over TLS, or from loopback when allowed.
    fn login_allowed(&self) -> bool {
        self.io.stream.is_tls()
            || (self.cfg.allow_plaintext_auth_on_loopback && self.ip.is_loopback())
    }

    fn capabilities(&mut self) {
        let mut out = Vec::new();
        let mut pair = |k: &str, v: Option<&str>| {
            proto::write_string(&mut out, k.as_bytes());
            if let Some(v) = v {
                out.push(b' ');
                proto::write_string(&mut out, v.as_bytes());
            }
            out.extend_from_slice(b"\r\n");
        };
        pair("IMPLEMENTATION", Some("facteur"));
        let exts: Vec<&str> = facteur_sieve::compile::EXTENSIONS
            .iter()
            .copied()
            .filter(|e| {
                !self
                    .sieve
                    .disabled_extensions
                    .iter()
                    .any(|d| d.eq_ignore_ascii_case(e))
            })
            .collect();
        pair("SIEVE", Some(&exts.join(" ")));
        let mechanisms: Vec<&str> = if self.user.is_none() && self.login_allowed() {
            Mechanism::ALL.iter().map(|m| m.name()).collect()
        } else {
            Vec::new()
        };
        pair("SASL", Some(&mechanisms.join(" ")));
        if self.user.is_none() && !self.io.stream.is_tls() && self.ctx.tls.get().is_some() {
            pair("STARTTLS", None);
        }
        pair("MAXREDIRECTS", Some(&self.sieve.max_redirects.to_string()));
        pair("VERSION", Some("1.0"));
        pair("UNAUTHENTICATE", None);
        if let Some(u) = &self.user {
            pair("OWNER", Some(&u.address));
        }
        self.io.out().extend_from_slice(&out);
    }

    /// Reads one whole command: lines and the literals they announce.
    async fn read_command(&mut self) -> io::Result<Read> {
        let mut rx = Receiver::new(self.max_script());
        loop {
            let line = match self.io.next_line(true).await? {
                Input::Line(l) => strip_eol(l),
                Input::TooLong => return Ok(Read::Bad(Response::no("Line too long"))),
                Input::Eof | Input::Timeout | Input::Stop => return Ok(Read::Closed),
            };
            match rx.line(&line) {
                Ok(Need::Done(tokens)) => return Ok(Read::Command(tokens)),
                Ok(Need::Literal { size, .. }) => {
                    let mut data = Vec::with_capacity(size);
                    match self
                        .io
                        .read_exact(size as u64, |b| data.extend_from_slice(b))
                        .await?
                    {
                        Fill::Data => rx.literal(data),
                        _ => return Ok(Read::Closed),
                    }
                }
                Err(Error::TooBig { size, .. }) if size > SKIP_MAX + self.max_script() as u64 => {
                    return Ok(Read::Fatal(
                        Response::bye("Literal far too big").code("QUOTA/MAXSIZE"),
                    ));
                }
                Err(Error::TooBig { size, max, .. }) => {
                    // the octets come anyway: read and drop them, and the rest
                    // of the command line
                    if !matches!(self.io.read_exact(size, |_| {}).await?, Fill::Data) {
                        return Ok(Read::Closed);
                    }
                    if !matches!(self.io.next_line(false).await?, Input::Line(_)) {
                        return Ok(Read::Closed);
                    }
                    return Ok(Read::Bad(
                        Response::no(format!("Script too big (at most {max} octets)"))
                            .code("QUOTA/MAXSIZE"),
                    ));
                }
                Err(e) => return Ok(Read::Bad(Response::no(e.to_string()))),
            }
        }
    }

    async fn run(&mut self) -> io::Result<()> {
        loop {
            self.io.flush().await?;
            if self.io.stopping() {
                self.reply(&Response::bye("Server shutting down"));
                return self.io.flush().await;
            }
            let tokens = match self.read_command().await? {
                Read::Closed => {
                    if self.io.stopping() {
                        continue;
                    }
                    return Ok(());
                }
                Read::Fatal(r) => {
                    self.reply(&r);
                    return self.io.flush().await;
                }
                Read::Bad(r) => {
                    self.error(r);
                    if self.errors >= self.cfg.max_errors {
                        self.reply(&Response::bye("Too many errors"));
                        return self.io.flush().await;
                    }
                    continue;
                }
                Read::Command(t) => t,
            };
            let flow = match proto::parse(&tokens) {
                Ok(cmd) => {
                    let (name, started) = (cmd.name(), std::time::Instant::now());
                    let flow = self.command(cmd).await?;
                    facteur_access::metrics::command(name, self.result, started.elapsed());
                    flow
                }
                Err(e) => {
                    self.error(Response::no(e.to_string()));
                    Flow::Continue
                }
            };
            if let Flow::Close = flow {
                return self.io.flush().await;
            }
            if self.errors >= self.cfg.max_errors {
                self.reply(&Response::bye("Too many errors"));
                return self.io.flush().await;
            }
        }
    }

    async fn command(&mut self, cmd: Command) -> io::Result<Flow> {
        match cmd {
            Command::Capability => {
                self.capabilities();
                self.reply(&Response::ok("Capability completed"));
            }
            Command::Logout => {
                self.reply(&Response::ok("Logout completed"));
                return Ok(Flow::Close);
            }
            Command::Noop { tag } => {
                let mut r = Response::ok("Done");
                if let Some(t) = tag {
                    let mut code = b"TAG ".to_vec();
                    proto::write_string(&mut code, &t);
                    r = r.code(String::from_utf8_lossy(&code).into_owned());
                }
                self.reply(&r);
            }
            Command::StartTls => return self.starttls().await,
            Command::Authenticate { mechanism, initial } => {
                self.authenticate(&mechanism, initial).await?
            }
            Command::Unauthenticate => {
                if self.user.take().is_some() {
                    self.reply(&Response::ok("Logged out"));
                } else {
                    self.error(Response::no("Not logged in"));
                }
            }
            other => {
                let Some(user) = self.user.clone() else {
                    self.error(Response::no("Log in first (AUTHENTICATE)"));
                    return Ok(Flow::Continue);
                };
                self.scripts(&user, other).await?;
            }
        }
        Ok(Flow::Continue)
    }

    async fn starttls(&mut self) -> io::Result<Flow> {
        if self.io.stream.is_tls() || self.user.is_some() {
            self.error(Response::no("STARTTLS is only allowed once, before login"));
            return Ok(Flow::Continue);
        }
        let Some(tls) = self.ctx.tls.get() else {
            self.error(Response::no("TLS not available"));
            return Ok(Flow::Continue);
        };
        self.reply(&Response::ok("Begin TLS negotiation now"));
        if !self.io.start_tls(tls).await? {
            return Ok(Flow::Close);
        }
        // RFC 5804 §2.2: the capabilities again, in TLS
        self.capabilities();
        self.reply(&Response::ok("TLS negotiation successful"));
        Ok(Flow::Continue)
    }

    async fn authenticate(&mut self, mechanism: &str, initial: Option<Vec<u8>>) -> io::Result<()> {
        if self.user.is_some() {
            self.error(Response::no("Already logged in"));
            return Ok(());
        }
        if !self.login_allowed() {
            self.error(Response::no("Use STARTTLS before AUTHENTICATE").code("ENCRYPT-NEEDED"));
            return Ok(());
        }
        let Some(mech) = Mechanism::from_name(mechanism) else {
            self.error(Response::no("Unsupported authentication mechanism"));
            return Ok(());
        };
        let initial = match initial.map(|t| facteur_sasl::decode_initial(&t)) {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(_)) => {
                self.error(Response::no("Cannot decode the credentials"));
                return Ok(());
            }
        };
        let logins = Arc::clone(&self.ctx.logins);
        let outcome = logins.sasl(self.ip, self, mech, initial.as_deref()).await?;
        match outcome {
            Outcome::Success(u) => {
                info!(user = %u.address, mechanism = mech.name(), "logged in");
                self.user = Some(u);
                self.reply(&Response::ok("Logged in"));
            }
            Outcome::Failed => self.error(Response::no("Authentication failed")),
            Outcome::Refused(Failure::Cancelled) => {
                self.error(Response::no("Authentication cancelled"))
            }
            Outcome::Refused(why) => self.error(Response::no(why.sentence())),
            Outcome::Unavailable => {
                self.reply(&Response::no("Temporary failure, try again later").code("TRYLATER"))
            }
            Outcome::Closed => {}
        }
        Ok(())
    }
}

/// ManageSieve's side of a SASL exchange (RFC 5804 §2.1): a challenge is
/// a string holding base64; the answer a string (quoted or literal), `"*"`
/// to cancel.
impl<S: AsyncRead + AsyncWrite + Unpin> Channel for Session<S> {
    async fn challenge(&mut self, data: &[u8]) -> io::Result<Answer> {
        let encoded = facteur_sasl::encode(data);
        proto::write_string(self.io.out(), encoded.as_bytes());
        self.io.out().extend_from_slice(b"\r\n");
        self.io.flush().await?;
        let mut rx = Receiver::new(MAX_LINE);
        loop {
            let line = match self.io.next_line(false).await? {
                Input::Line(l) => strip_eol(l),
                Input::TooLong => return Ok(Answer::TooLong),
                _ => return Ok(Answer::Closed),
            };
            match rx.line(&line) {
                Ok(Need::Done(tokens)) => {
                    return Ok(match tokens.as_slice() {
                        [Token::Str(s)] => Answer::Line(s.clone()),
                        _ => Answer::Line(b"*".to_vec()),
                    });
                }
                Ok(Need::Literal { size, .. }) => {
                    let mut data = Vec::with_capacity(size);
                    if !matches!(
                        self.io
                            .read_exact(size as u64, |b| data.extend_from_slice(b))
                            .await?,
                        Fill::Data
                    ) {
                        return Ok(Answer::Closed);
                    }
                    rx.literal(data);
                }
                Err(_) => return Ok(Answer::TooLong),
            }
        }
    }
}

#[cfg(test)]
mod tests;
