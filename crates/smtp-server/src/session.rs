//! One SMTP or LMTP connection: the state machine and its I/O, generic over
//! the stream (tests run it over in-memory pipes) and over the [`Handler`].
//!
//! Reading: one buffer, command lines framed with a length limit; replies
//! are batched and flushed before every blocking read (RFC 2920
//! pipelining). DATA and BDAT read the message from the same buffer
//! ([`crate::data`]). STARTTLS clears the buffer before the handshake, so
//! nothing pipelined in clear text survives into the TLS session
//! (CVE-2011-0411 class), and resets the session to the state after the
//! greeting (RFC 3207 §4.2).
//!
//! Order of judgment at each command: the session's state (sequence,
//! limits), then the handler, then the checks ([`crate::check`]).

use crate::check::{self, Verdict};
use crate::data::Bdat;
use crate::handler::{Dialect, Handler, Peer, SessionInfo, Txn};
use facteur_daemon::conn::Conn;
use facteur_daemon::lineio::{Fill, Input, LineIo};
use facteur_smtp_codec::command::is_unframed_bdat;
use facteur_smtp_codec::{Command, MailFrom, RcptTo, Reply, parse_command};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span};

/// Commands that move nothing forward a session may send freely.
const JUNK_LIMIT: u32 = 100;

pub(crate) enum Flow {
    Continue,
    Close,
}

pub(crate) struct Session<H: Handler, S> {
    pub(crate) h: Arc<H>,
    pub(crate) io: LineIo<Conn<S>>,
    pub(crate) info: SessionInfo,
    pub(crate) txn: Option<Txn<H::Rcpt>>,
    /// BDAT state of the current transaction, from its first chunk.
    pub(crate) bdat: Option<Bdat<H::Sink>>,
    pub(crate) errors: u32,
    /// Commands that move nothing forward (NOOP, RSET, VRFY, HELP).
    pub(crate) junk: u32,
    /// The handler's limits when the session began.
    pub(crate) limits: Arc<crate::handler::Limits>,
    /// A connect check refused the client: every command but QUIT gets this.
    refused: Option<Reply>,
    /// The stage of the command being answered (metrics).
    pub(crate) stage: &'static str,
}

/// Serves one connection until QUIT, EOF, a time-out, too many errors or a
/// shutdown. On an implicit-TLS listener the caller passes a stream whose
/// TLS is already up (`Conn::Tls`).
pub async fn serve<H, S>(
    handler: Arc<H>,
    conn: Conn<S>,
    peer: Peer,
    listener: &'static str,
    stop: watch::Receiver<bool>,
) where
    H: Handler,
    S: AsyncRead + AsyncWrite + Unpin,
{
    let proto = match handler.dialect() {
        Dialect::Smtp => "smtp",
        Dialect::Lmtp => "lmtp",
    };
    let span = info_span!("session", proto, peer = %peer, listener);
    async move {
        debug!("connected");
        let limits = handler.limits();
        let tls = conn.tls_description();
        let io = LineIo::new(conn, limits.max_line_length, limits.timeout, stop);
        let mut s = Session {
            h: handler,
            io,
            info: SessionInfo {
                peer,
                listener,
                helo: None,
                esmtp: false,
                tls,
                auth_user: None,
                early_talker: false,
                notes: Default::default(),
            },
            txn: None,
            bdat: None,
            errors: 0,
            junk: 0,
            limits,
            refused: None,
            stage: "connect",
        };
        if let Err(e) = s.run().await {
            debug!(error = %e, "connection ended with an I/O error");
        }
        s.abort_txn();
        debug!("disconnected");
    }
    .instrument(span)
    .await
}

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin> Session<H, S> {
    pub(crate) fn reply(&mut self, r: &Reply) {
        crate::metrics::reply(self.info.listener, self.stage, r);
        r.write_to(self.io.out());
    }

    pub(crate) fn error(&mut self, r: Reply) {
        self.errors += 1;
        self.reply(&r);
    }

    /// The greeting, and the connect checks and the pregreet test before
    /// it (postscreen's model): while the checks run, and, when the
    /// handler asks for the test, after a `220-` teaser for the wait it
    /// names, any byte from the client makes it an early talker — spam
    /// software that does not wait its turn. The handler then says what
    /// becomes of it ([`Handler::pregreet_done`]).
    async fn greet(&mut self) -> io::Result<Flow> {
        // Bytes already waiting before our greeting.
        if let Ok(Ok(Fill::Data)) = tokio::time::timeout(Duration::ZERO, self.io.fill(false)).await
        {
            self.info.early_talker = true;
        }
        let (h, info) = (Arc::clone(&self.h), self.info.clone());
        let checks = check::first_refusal(h.checks(), |c| c.connect(&info));
        tokio::pin!(checks);
        let mut gone = false;
        let verdict = if self.info.early_talker {
            checks.await
        } else {
            tokio::select! {
                v = &mut checks => v,
                r = self.io.fill(false) => {
                    self.info.early_talker = matches!(r, Ok(Fill::Data));
                    gone = !self.info.early_talker;
                    checks.await
                }
            }
        };
        if gone {
            // Hung up (or failed) before the greeting: nothing to say, and
            // no pregreet pass to remember.
            return Ok(Flow::Close);
        }
        match verdict {
            Verdict::Accept => {}
            Verdict::Reject(r) => {
                self.reply(&r);
                self.refused = Some(Reply::new(503, (5, 5, 1), "Refused; say QUIT"));
                return Ok(Flow::Continue);
            }
            Verdict::Disconnect(r) => {
                self.reply(&r);
                return Ok(Flow::Close);
            }
        }
        let greeting = self.h.greeting();
        // Asked after the checks, which may have vouched for the client.
        let test = self.h.pregreet(&self.info).await;
        if let Some(wait) = test {
            if !self.info.early_talker {
                self.io
                    .out()
                    .extend_from_slice(format!("220-{greeting}\r\n").as_bytes());
                self.io.flush().await?;
                match tokio::time::timeout(wait, self.io.fill(false)).await {
                    Ok(Ok(Fill::Data)) => self.info.early_talker = true,
                    // Waited its turn.
                    Err(_) => {}
                    // Left during the wait: it did not pass.
                    Ok(_) => return Ok(Flow::Close),
                }
            }
            if self.info.early_talker {
                info!("client talked before the greeting");
            }
            match self.h.pregreet_done(&self.info) {
                Verdict::Accept => {}
                Verdict::Reject(r) => {
                    // The greeting goes on (a multi-line reply keeps its
                    // code); every command gets the refusal.
                    self.reply(&Reply::plain(220, greeting));
                    self.refused = Some(r);
                    return Ok(Flow::Continue);
                }
                Verdict::Disconnect(r) => {
                    self.reply(&r);
                    return Ok(Flow::Close);
                }
            }
        } else if self.info.early_talker {
            info!("client talked before the greeting");
        }
        self.reply(&Reply::plain(220, greeting));
        Ok(Flow::Continue)
    }

    async fn run(&mut self) -> io::Result<()> {
        if let Flow::Close = self.greet().await? {
            return self.io.flush().await;
        }
        loop {
            if self.io.stopping() && self.txn.is_none() {
                self.reply(&Reply::new(421, (4, 3, 2), "Service shutting down"));
                return self.io.flush().await;
            }
            match self.io.next_line(self.txn.is_none()).await? {
                Input::Line(line) => {
                    if let Flow::Close = self.command(&line).await? {
                        return self.io.flush().await;
                    }
                }
                Input::TooLong => self.error(Reply::new(500, (5, 5, 2), "Line too long")),
                Input::Eof => return Ok(()),
                Input::Timeout => {
                    self.reply(&Reply::new(421, (4, 4, 2), "Timeout, closing connection"));
                    return self.io.flush().await;
                }
                Input::Stop => continue,
            }
            if self.errors >= self.limits.max_errors {
                self.reply(&Reply::new(
                    421,
                    (4, 7, 0),
                    "Too many errors, closing connection",
                ));
                return self.io.flush().await;
            }
        }
    }

    async fn command(&mut self, line: &[u8]) -> io::Result<Flow> {
        self.stage = "other";
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(r) => {
                self.error(r);
                // A BDAT whose size we cannot read: where its chunk ends is
                // unknown, so nothing after it can be read as a command.
                if is_unframed_bdat(line) {
                    return Ok(Flow::Close);
                }
                return Ok(Flow::Continue);
            }
        };
        if let Some(r) = self.refused.clone() {
            if cmd == Command::Quit {
                self.reply(&Reply::new(221, (2, 0, 0), "Bye"));
                return Ok(Flow::Close);
            }
            self.error(r);
            return Ok(Flow::Continue);
        }
        self.stage = match cmd {
            Command::Ehlo(_) | Command::Helo(_) | Command::Lhlo(_) => "helo",
            Command::Auth { .. } => "auth",
            Command::Mail(_) => "mail",
            Command::Rcpt(_) => "rcpt",
            Command::Data | Command::Bdat { .. } => "data",
            _ => "other",
        };
        let lmtp = self.h.dialect() == Dialect::Lmtp;
        // Past JUNK_LIMIT, each command that moves nothing forward counts
        // as an error (Postfix's smtpd_junk_command_limit): a client cannot
        // keep a connection for ever with NOOPs.
        if matches!(
            cmd,
            Command::Noop | Command::Rset | Command::Vrfy(_) | Command::Help
        ) {
            self.junk += 1;
            if self.junk > JUNK_LIMIT {
                self.errors += 1;
            }
        }
        match cmd {
            Command::Ehlo(_) | Command::Helo(_) if lmtp => {
                self.error(Reply::new(
                    500,
                    (5, 5, 1),
                    "This is an LMTP server: use LHLO",
                ));
            }
            Command::Lhlo(_) if !lmtp => {
                self.error(Reply::new(500, (5, 5, 1), "This is SMTP: use EHLO"))
            }
            Command::Ehlo(host) | Command::Lhlo(host) => return self.hello(host, true).await,
            Command::Helo(host) => return self.hello(host, false).await,
            Command::StartTls => return self.starttls().await,
            Command::Auth { mechanism, initial } => {
                if let crate::auth::AuthEnd::Close = self.auth(mechanism, initial).await? {
                    return Ok(Flow::Close);
                }
            }
            Command::Mail(from) => self.mail(from).await,
            Command::Rcpt(to) => self.rcpt(to).await,
            Command::Data => return self.data().await,
            Command::Bdat { size, last } => return self.bdat(size, last).await,
            Command::Rset => {
                self.abort_txn();
                self.reply(&Reply::new(250, (2, 0, 0), "OK"));
            }
            Command::Noop => self.reply(&Reply::new(250, (2, 0, 0), "OK")),
            Command::Vrfy(_) => self.reply(&Reply::new(
                252,
                (2, 5, 2),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Help => {
                let verbs = if lmtp {
                    "LHLO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT (RFC 2033)"
                } else {
                    "EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT STARTTLS AUTH"
                };
                self.reply(&Reply::new(214, (2, 0, 0), format!("Commands: {verbs}")))
            }
            Command::Quit => {
                self.reply(&Reply::new(221, (2, 0, 0), "Bye"));
                return Ok(Flow::Close);
            }
            Command::NotImplemented(_) => {
                self.error(Reply::new(502, (5, 5, 1), "Command not implemented"))
            }
        }
        Ok(Flow::Continue)
    }

    /// Ends the transaction and throws away a message being received.
    pub(crate) fn abort_txn(&mut self) {
        self.txn = None;
        if let Some(b) = self.bdat.take() {
            b.abort();
        }
    }

    fn ehlo_reply(&self) -> Reply {
        let l = &self.limits;
        let mut lines = vec![
            format!(
                "{} greets {}",
                self.h.hostname(),
                self.info.helo.as_deref().unwrap_or("")
            ),
            "PIPELINING".into(),
            format!("SIZE {}", l.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
        ];
        lines.extend(self.h.extensions(&self.info));
        if !self.io.stream.is_tls() && self.h.tls().is_some() {
            lines.push("STARTTLS".into());
        }
        if self.info.auth_user.is_none() && self.h.logins(&self.info).is_some() {
            lines.push(format!("AUTH {}", crate::auth::mechanisms()));
        }
        Reply::multi(250, lines)
    }

    async fn hello(&mut self, host: String, esmtp: bool) -> io::Result<Flow> {
        self.abort_txn();
        let info = self.info.clone();
        match check::first_refusal(self.h.checks(), |c| c.helo(&info, &host)).await {
            Verdict::Accept => {}
            Verdict::Reject(r) => {
                self.error(r);
                return Ok(Flow::Continue);
            }
            Verdict::Disconnect(r) => {
                self.reply(&r);
                return Ok(Flow::Close);
            }
        }
        self.info.helo = Some(host);
        self.info.esmtp = esmtp;
        let r = if esmtp {
            self.ehlo_reply()
        } else {
            Reply::plain(250, self.h.hostname().to_string())
        };
        self.reply(&r);
        Ok(Flow::Continue)
    }

    async fn starttls(&mut self) -> io::Result<Flow> {
        if self.io.stream.is_tls() {
            self.error(Reply::new(503, (5, 5, 1), "TLS already active"));
            return Ok(Flow::Continue);
        }
        let Some(tls) = self.h.tls() else {
            // Not offered in EHLO (no certificate, or LMTP).
            self.error(Reply::new(502, (5, 5, 1), "STARTTLS not offered"));
            return Ok(Flow::Continue);
        };
        self.reply(&Reply::new(220, (2, 0, 0), "Ready to start TLS"));
        // Anything pipelined in clear text is thrown away by start_tls.
        if !self.io.start_tls(tls).await? {
            return Ok(Flow::Close);
        }
        self.abort_txn();
        self.info.helo = None;
        self.info.esmtp = false;
        self.info.auth_user = None;
        self.info.tls = self.io.stream.tls_description();
        Ok(Flow::Continue)
    }

    async fn mail(&mut self, mut from: MailFrom) {
        let lmtp = self.h.dialect() == Dialect::Lmtp;
        if self.info.helo.is_none() {
            let hello = if lmtp { "LHLO" } else { "EHLO/HELO" };
            return self.error(Reply::new(503, (5, 5, 1), format!("Send {hello} first")));
        }
        if self.txn.is_some() {
            return self.error(Reply::new(503, (5, 5, 1), "Nested MAIL command"));
        }
        if self.h.requires_auth(&self.info) && self.info.auth_user.is_none() {
            return self.error(Reply::new(530, (5, 7, 0), "Authentication required"));
        }
        if from.params.queue_id.is_some() && !lmtp {
            return self.error(Reply::new(555, (5, 5, 4), "Unsupported parameter XQUEUEID"));
        }
        // BINARYMIME is not offered: the store keeps messages as lines, and
        // a binary body with bare LFs would not come back byte for byte.
        if from.params.body == Some(facteur_mail::dsn::BodyType::BinaryMime) {
            return self.error(Reply::new(
                555,
                (5, 5, 4),
                "BODY=BINARYMIME is not offered here",
            ));
        }
        if from
            .params
            .size
            .is_some_and(|n| n > self.limits.max_message_size)
        {
            return self.error(Reply::too_big());
        }
        if !from.address.is_empty() {
            match self.h.normalize_sender(&from.address) {
                Ok(a) => from.address = a,
                Err(r) => return self.error(r),
            }
        }
        if let Err(r) = self.h.mail(&self.info, &from).await {
            info!(from = %from.address, result = ?r.to_string(), "sender refused");
            return self.error(r);
        }
        let info = self.info.clone();
        match check::first_refusal(self.h.checks(), |c| c.mail(&info, &from)).await {
            Verdict::Accept => {}
            // MAIL has no "close" of its own: a Disconnect from a check is
            // taken as a refusal here and closes at the next error limit.
            Verdict::Reject(r) | Verdict::Disconnect(r) => return self.error(r),
        }
        debug!(from = %from.address, queue_id = from.params.queue_id.as_deref().unwrap_or(""), "MAIL");
        self.txn = Some(Txn {
            mail: from,
            rcpts: Vec::new(),
            started: Instant::now(),
        });
        self.reply(&Reply::new(250, (2, 1, 0), "Sender OK"));
    }

    async fn rcpt(&mut self, mut to: RcptTo) {
        let Some(t) = self.txn.as_ref() else {
            return self.error(Reply::new(503, (5, 5, 1), "Send MAIL first"));
        };
        if t.rcpts.len() >= self.limits.max_recipients {
            return self.error(Reply::new(452, (4, 5, 3), "Too many recipients"));
        }
        match self.h.normalize_recipient(&to.address) {
            Ok(a) => to.address = a,
            Err(r) => return self.error(r),
        }
        let (data, ok) = match self.h.rcpt(&self.info, t, &to).await {
            Ok(x) => x,
            Err(r) => {
                info!(rcpt = %to.address, result = ?r.to_string(), "recipient refused");
                return self.error(r);
            }
        };
        let info = self.info.clone();
        let from = &t.mail;
        match check::first_refusal(self.h.checks(), |c| c.rcpt(&info, from, &to)).await {
            Verdict::Accept => {}
            Verdict::Reject(r) | Verdict::Disconnect(r) => {
                info!(rcpt = %to.address, result = ?r.to_string(), "recipient refused");
                return self.error(r);
            }
        }
        debug!(rcpt = %to.address, "RCPT accepted");
        if let Some(t) = self.txn.as_mut() {
            t.rcpts.push((to, data));
        }
        self.reply(&ok);
    }
}
