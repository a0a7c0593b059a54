//! One SMTP connection: the state machine and its I/O, generic over the
//! stream (tests run it over in-memory pipes).
//!
//! Reading: one buffer, command lines framed with a length limit; replies are
//! batched and flushed before every blocking read (RFC 2920 pipelining).
//! DATA and BDAT read the message from the same buffer. STARTTLS clears the
//! buffer before the handshake, so nothing pipelined in clear text survives
//! into the TLS session (CVE-2011-0411 class), and resets the session to the
//! state after the greeting (RFC 3207 §4.2).

use crate::auth;
use crate::message::{Incoming, Trace};
use crate::policy::{self, Client};
use crate::{Context, Mode};
use facteur_daemon::conn::Conn;
use facteur_daemon::lineio::{Fill, Input, LineIo};
use facteur_mail::dsn::{BodyType, Notify, RcptStatus, Ret};
use facteur_smtp_codec::{DataReceiver, LineEndingCheck, Reply, parse_command};
use facteur_spool::{Envelope, QueueName, Recipient};
use smtp_proto::{MailFrom, RcptTo, Request};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, warn};

enum Flow {
    Continue,
    Close,
}

struct Txn {
    mail: MailFrom<String>,
    rcpts: Vec<RcptTo<String>>,
    bdat: Option<Incoming>,
    bdat_check: LineEndingCheck,
    bdat_size: u64,
    bdat_failed: bool,
}

struct Session<S> {
    ctx: Arc<Context>,
    mode: Mode,
    io: LineIo<Conn<S>>,
    ip: IpAddr,
    helo: Option<String>,
    esmtp: bool,
    auth_user: Option<String>,
    txn: Option<Txn>,
    errors: u32,
}

/// Serves one connection. For [`Mode::Submissions`] the caller passes a
/// stream on which TLS is already established (`Conn::Tls`).
pub async fn serve<S>(
    ctx: Arc<Context>,
    mode: Mode,
    conn: Conn<S>,
    ip: IpAddr,
    stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let span = info_span!("smtp", peer = %ip, listener = mode.as_str());
    async move {
        debug!("connected");
        let max_line = ctx.cfg.max_line_length as usize;
        let io = LineIo::new(conn, max_line, ctx.cfg.timeout.duration(), stop);
        let mut s = Session {
            ctx,
            mode,
            io,
            ip,
            helo: None,
            esmtp: false,
            auth_user: None,
            txn: None,
            errors: 0,
        };
        let greeting = Reply::plain(220, format!("{} ESMTP facteur", s.ctx.hostname));
        s.reply(&greeting);
        if let Err(e) = s.run().await {
            debug!(error = %e, "connection ended with an I/O error");
        }
        s.abort_txn();
        debug!("disconnected");
    }
    .instrument(span)
    .await
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn reply(&mut self, r: &Reply) {
        r.write_to(self.io.out());
    }

    fn error(&mut self, r: Reply) {
        self.errors += 1;
        self.reply(&r);
    }

    /// Reads one line (the AUTH exchange). `None` when the client is gone.
    async fn read_line(&mut self) -> io::Result<Option<Vec<u8>>> {
        Ok(match self.io.next_line(false).await? {
            Input::Line(l) => Some(l),
            Input::TooLong => Some(Vec::new()),
            Input::Eof | Input::Timeout | Input::Stop => None,
        })
    }

    /// Answers a read that ended inside DATA or BDAT: the connection closes.
    async fn interrupted(&mut self, why: Fill, what: &str) -> io::Result<()> {
        if why == Fill::Timeout {
            self.reply(&Reply::new(
                421,
                (4, 4, 2),
                format!("Timeout in {what}, closing connection"),
            ));
            self.io.flush().await?;
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timeout in {what}"),
            ));
        }
        Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("connection closed in {what}"),
        ))
    }

    async fn run(&mut self) -> io::Result<()> {
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
            if self.errors >= self.ctx.cfg.max_errors {
                self.reply(&Reply::new(
                    421,
                    (4, 7, 0),
                    "Too many errors, closing connection",
                ));
                return self.io.flush().await;
            }
        }
    }

    fn auth_offered(&self) -> bool {
        self.mode != Mode::Mx
            && (self.io.stream.is_tls()
                || (self.ctx.cfg.allow_plaintext_auth_on_loopback && self.ip.is_loopback()))
    }

    fn ehlo_reply(&self) -> Reply {
        let mut lines = vec![
            format!(
                "{} greets {}",
                self.ctx.hostname,
                self.helo.as_deref().unwrap_or("")
            ),
            "PIPELINING".into(),
            format!("SIZE {}", self.ctx.cfg.max_message_size.0),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "DSN".into(),
            "CHUNKING".into(),
        ];
        if !self.io.stream.is_tls() && self.ctx.tls.get().is_some() {
            lines.push("STARTTLS".into());
        }
        if self.auth_offered() {
            lines.push("AUTH PLAIN LOGIN".into());
        }
        lines.push("HELP".into());
        Reply::multi(250, lines)
    }

    async fn command(&mut self, line: &[u8]) -> io::Result<Flow> {
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(r) => {
                self.error(r);
                return Ok(Flow::Continue);
            }
        };
        match cmd {
            Request::Ehlo { host } => {
                self.abort_txn();
                self.helo = Some(host);
                self.esmtp = true;
                let r = self.ehlo_reply();
                self.reply(&r);
            }
            Request::Helo { host } => {
                self.abort_txn();
                self.helo = Some(host);
                self.esmtp = false;
                self.reply(&Reply::plain(250, self.ctx.hostname.clone()));
            }
            Request::Lhlo { .. } => {
                self.error(Reply::new(500, (5, 5, 1), "This is SMTP: use EHLO"))
            }
            Request::StartTls => return self.starttls().await,
            Request::Auth {
                mechanism,
                initial_response,
            } => self.auth(mechanism, initial_response).await?,
            Request::Mail { from } => self.mail(from).await,
            Request::Rcpt { to } => self.rcpt(to).await,
            Request::Data => self.data().await?,
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size as u64, is_last).await?,
            Request::Rset => {
                self.abort_txn();
                self.reply(&Reply::new(250, (2, 0, 0), "OK"));
            }
            Request::Noop { .. } => self.reply(&Reply::new(250, (2, 0, 0), "OK")),
            Request::Vrfy { .. } => self.reply(&Reply::new(
                252,
                (2, 5, 2),
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Request::Help { .. } => self.reply(&Reply::new(
                214,
                (2, 0, 0),
                "Commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT STARTTLS AUTH",
            )),
            Request::Quit => {
                self.reply(&Reply::new(221, (2, 0, 0), "Bye"));
                return Ok(Flow::Close);
            }
            _ => self.error(Reply::new(502, (5, 5, 1), "Command not implemented")),
        }
        Ok(Flow::Continue)
    }

    fn abort_txn(&mut self) {
        if let Some(Txn { bdat: Some(m), .. }) = self.txn.take() {
            m.abort();
        }
    }

    async fn starttls(&mut self) -> io::Result<Flow> {
        if self.io.stream.is_tls() {
            self.error(Reply::new(503, (5, 5, 1), "TLS already active"));
            return Ok(Flow::Continue);
        }
        let Some(tls) = self.ctx.tls.get() else {
            self.error(Reply::new(454, (4, 7, 0), "TLS not available"));
            return Ok(Flow::Continue);
        };
        self.reply(&Reply::new(220, (2, 0, 0), "Ready to start TLS"));
        // Anything pipelined in clear text is thrown away by start_tls.
        if !self.io.start_tls(tls).await? {
            return Ok(Flow::Close);
        }
        self.abort_txn();
        self.helo = None;
        self.esmtp = false;
        self.auth_user = None;
        Ok(Flow::Continue)
    }

    async fn auth(&mut self, mechanism: u64, initial: String) -> io::Result<()> {
        if !self.auth_offered() {
            self.error(Reply::new(
                503,
                (5, 5, 1),
                "AUTH not available (use STARTTLS first)",
            ));
            return Ok(());
        }
        if self.auth_user.is_some() {
            self.error(Reply::new(503, (5, 5, 1), "Already authenticated"));
            return Ok(());
        }
        if self.txn.is_some() {
            self.error(Reply::new(
                503,
                (5, 5, 1),
                "AUTH not allowed during a mail transaction",
            ));
            return Ok(());
        }
        let creds = if mechanism == smtp_proto::AUTH_PLAIN {
            let resp = if initial.is_empty() {
                self.reply(&Reply::plain(334, ""));
                match self.read_line().await? {
                    Some(l) => String::from_utf8_lossy(&l).trim().to_string(),
                    None => return Ok(()),
                }
            } else {
                initial
            };
            if resp == "*" {
                self.error(Reply::new(501, (5, 0, 0), "Authentication cancelled"));
                return Ok(());
            }
            auth::decode(&resp).as_deref().and_then(auth::parse_plain)
        } else if mechanism == smtp_proto::AUTH_LOGIN {
            let user = if initial.is_empty() {
                self.reply(&Reply::plain(334, auth::encode(b"Username:")));
                match self.read_line().await? {
                    Some(l) => String::from_utf8_lossy(&l).trim().to_string(),
                    None => return Ok(()),
                }
            } else {
                initial
            };
            if user == "*" {
                self.error(Reply::new(501, (5, 0, 0), "Authentication cancelled"));
                return Ok(());
            }
            self.reply(&Reply::plain(334, auth::encode(b"Password:")));
            let pass = match self.read_line().await? {
                Some(l) => String::from_utf8_lossy(&l).trim().to_string(),
                None => return Ok(()),
            };
            if pass == "*" {
                self.error(Reply::new(501, (5, 0, 0), "Authentication cancelled"));
                return Ok(());
            }
            let u = auth::decode(&user).and_then(|b| String::from_utf8(b).ok());
            let p = auth::decode(&pass).and_then(|b| String::from_utf8(b).ok());
            u.zip(p)
        } else {
            self.error(Reply::new(
                504,
                (5, 5, 4),
                "Unrecognized authentication mechanism",
            ));
            return Ok(());
        };
        let Some((user, pass)) = creds else {
            self.error(Reply::new(501, (5, 5, 2), "Cannot decode the credentials"));
            return Ok(());
        };
        let ctx = Arc::clone(&self.ctx);
        let login = user.clone();
        let ok = tokio::task::spawn_blocking(move || {
            ctx.logins
                .authenticate(ctx.directory.as_ref(), &login, &pass)
        })
        .await
        .ok()
        .and_then(|r| r.ok())
        .flatten();
        match ok {
            Some(u) => {
                info!(user = %u.address, "authenticated");
                self.auth_user = Some(u.address);
                self.reply(&Reply::new(235, (2, 7, 0), "Authentication successful"));
            }
            None => {
                warn!(user = %user, "authentication failed");
                tokio::time::sleep(Duration::from_millis(1500)).await;
                self.error(Reply::new(
                    535,
                    (5, 7, 8),
                    "Authentication credentials invalid",
                ));
            }
        }
        Ok(())
    }

    fn client(&self) -> Client {
        Client {
            ip: self.ip,
            auth_user: self.auth_user.clone(),
        }
    }

    async fn mail(&mut self, from: MailFrom<String>) {
        if self.helo.is_none() {
            return self.error(Reply::new(503, (5, 5, 1), "Send EHLO/HELO first"));
        }
        if self.txn.is_some() {
            return self.error(Reply::new(503, (5, 5, 1), "Nested MAIL command"));
        }
        if self.mode != Mode::Mx && self.auth_user.is_none() {
            return self.error(Reply::new(530, (5, 7, 0), "Authentication required"));
        }
        if from.size as u64 > self.ctx.cfg.max_message_size.0 {
            return self.error(Reply::too_big());
        }
        if !from.address.is_empty()
            && let Err(e) = facteur_mail::Address::parse(&from.address)
        {
            return self.error(Reply::new(
                501,
                (5, 1, 7),
                format!("Bad sender address: {e}"),
            ));
        }
        if let Some(user) = self.auth_user.clone()
            && let Err(r) = policy::check_sender(&self.ctx, &user, &from.address).await
        {
            return self.error(r);
        }
        if !self
            .ctx
            .rates
            .message_allowed(self.ip, self.ctx.cfg.max_messages_per_ip_per_minute)
        {
            info!("message rate limit reached");
            return self.reply(&Reply::new(
                450,
                (4, 7, 0),
                "Too many messages from your address, slow down",
            ));
        }
        self.txn = Some(Txn {
            mail: from,
            rcpts: Vec::new(),
            bdat: None,
            bdat_check: LineEndingCheck::default(),
            bdat_size: 0,
            bdat_failed: false,
        });
        self.reply(&Reply::new(250, (2, 1, 0), "Sender OK"));
    }

    async fn rcpt(&mut self, to: RcptTo<String>) {
        let Some(n) = self.txn.as_ref().map(|t| t.rcpts.len()) else {
            return self.error(Reply::new(503, (5, 5, 1), "Send MAIL first"));
        };
        if n >= self.ctx.cfg.max_recipients as usize {
            return self.reply(&Reply::new(452, (4, 5, 3), "Too many recipients"));
        }
        match policy::check_rcpt(&self.ctx, &self.client(), &to.address).await {
            Ok(addr) => {
                debug!(rcpt = %addr, "RCPT accepted");
                if let Some(t) = self.txn.as_mut() {
                    t.rcpts.push(to);
                }
                self.reply(&Reply::new(250, (2, 1, 5), "Recipient OK"));
            }
            Err(r) => {
                info!(rcpt = %to.address, result = %r, "recipient refused");
                self.error(r);
            }
        }
    }

    fn ready_for_message(&self) -> Option<Reply> {
        match &self.txn {
            None => Some(Reply::new(503, (5, 5, 1), "Send MAIL first")),
            Some(t) if t.rcpts.is_empty() => {
                Some(Reply::new(503, (5, 5, 1), "No valid recipients"))
            }
            _ => None,
        }
    }

    /// Opens the queue file for the current transaction.
    fn start_message(&self) -> Result<Incoming, Reply> {
        let Some(t) = &self.txn else {
            return Err(Reply::new(503, (5, 5, 1), "Send MAIL first"));
        };
        let env = envelope(self, t);
        let writer = self
            .ctx
            .spool
            .create(QueueName::Incoming, &env)
            .map_err(|e| {
                warn!(error = %e, "cannot create a queue file");
                Reply::new(451, (4, 3, 0), "Local error in processing, try again later")
            })?;
        let qid = writer.queue_id().to_string();
        let protocol = protocol(
            self.esmtp,
            self.io.stream.is_tls(),
            self.auth_user.is_some(),
            t.mail.flags & smtp_proto::MAIL_SMTPUTF8 != 0,
        );
        let trace = Trace {
            helo: self.helo.clone().unwrap_or_default(),
            client_name: None,
            client_ip: self.ip.to_string(),
            hostname: self.ctx.hostname.clone(),
            protocol,
            queue_id: qid.clone(),
            tls: self.io.stream.tls_description(),
            single_rcpt: (t.rcpts.len() == 1).then(|| t.rcpts[0].address.clone()),
            date: facteur_util::date::rfc5322_now(),
        };
        let add = (self.mode != Mode::Mx)
            .then(|| (format!("<{qid}@{}>", self.ctx.hostname), trace.date.clone()));
        Ok(Incoming::new(writer, &trace, add))
    }

    async fn data(&mut self) -> io::Result<()> {
        if let Some(r) = self.ready_for_message() {
            self.error(r);
            return Ok(());
        }
        if self
            .txn
            .as_ref()
            .is_some_and(|t| t.bdat.is_some() || t.bdat_failed)
        {
            self.error(Reply::new(
                503,
                (5, 5, 1),
                "DATA cannot follow BDAT in one transaction",
            ));
            return Ok(());
        }
        let mut incoming = match self.start_message() {
            Ok(m) => m,
            Err(r) => {
                self.reply(&r);
                return Ok(());
            }
        };
        self.reply(&Reply::new(
            354,
            (2, 0, 0),
            "Start mail input; end with <CRLF>.<CRLF>",
        ));
        let mut rx = DataReceiver::new(self.ctx.cfg.max_message_size.0);
        let end = self
            .io
            .read_data(&mut rx, |chunk| incoming.push(chunk))
            .await?;
        if end != Fill::Data {
            incoming.abort();
            return self.interrupted(end, "DATA").await;
        }
        let o = rx.outcome();
        let refusal = Reply::content_refusal(o.too_big, o.bare_cr || o.bare_lf);
        self.finish(incoming, refusal, o.size).await;
        Ok(())
    }

    async fn bdat(&mut self, size: u64, last: bool) -> io::Result<()> {
        // The chunk is consumed whatever happens: its bytes are never commands.
        let mut refusal = self.ready_for_message();
        if refusal.is_none() {
            let needs_start = self
                .txn
                .as_ref()
                .is_some_and(|t| t.bdat.is_none() && !t.bdat_failed);
            if needs_start {
                match self.start_message() {
                    Ok(m) => {
                        if let Some(t) = self.txn.as_mut() {
                            t.bdat = Some(m);
                        }
                    }
                    Err(r) => refusal = Some(r),
                }
            }
        }
        let max = self.ctx.cfg.max_message_size.0;
        let mut too_big = self
            .txn
            .as_ref()
            .is_some_and(|t| t.bdat_size.saturating_add(size) > max);
        let keep = refusal.is_none() && !too_big;
        let txn = &mut self.txn;
        let end = self
            .io
            .read_exact(size, |chunk| {
                if keep
                    && let Some(t) = txn.as_mut()
                    && !t.bdat_failed
                {
                    t.bdat_check.feed(chunk);
                    if let Some(m) = t.bdat.as_mut() {
                        m.push(chunk);
                    }
                }
            })
            .await?;
        if end != Fill::Data {
            return self.interrupted(end, "BDAT").await;
        }
        if let Some(r) = refusal {
            self.error(r);
            return Ok(());
        }
        let Some(t) = self.txn.as_mut() else {
            return Ok(());
        };
        t.bdat_size += size;
        too_big |= t.bdat_failed;
        if too_big {
            t.bdat_failed = true;
            if let Some(m) = t.bdat.take() {
                m.abort();
            }
        }
        if !last {
            if too_big {
                self.error(Reply::too_big());
            } else {
                self.reply(&Reply::new(
                    250,
                    (2, 0, 0),
                    format!("{size} octets received"),
                ));
            }
            return Ok(());
        }
        let mut check = t.bdat_check;
        check.finish();
        let total = t.bdat_size;
        let incoming = t.bdat.take();
        let refusal = Reply::content_refusal(too_big, check.bare_cr || check.bare_lf);
        match incoming {
            Some(m) => self.finish(m, refusal, total).await,
            None => {
                self.txn = None;
                let r = refusal
                    .unwrap_or_else(|| Reply::new(451, (4, 3, 0), "Local error in processing"));
                self.error(r);
            }
        }
        Ok(())
    }

    /// Ends the transaction: commits the queue file (or throws it away) and
    /// answers. The 250 is written only after the commit returned.
    async fn finish(&mut self, incoming: Incoming, refusal: Option<Reply>, size: u64) {
        let txn = self.txn.take();
        let qid = incoming.queue_id().to_string();
        let from = txn
            .as_ref()
            .map(|t| t.mail.address.clone())
            .unwrap_or_default();
        let nrcpt = txn.as_ref().map(|t| t.rcpts.len()).unwrap_or(0);
        if let Some(r) = refusal {
            incoming.abort();
            info!(queue_id = %qid, from = %from, size, result = %r, "message refused");
            self.error(r);
            return;
        }
        match tokio::task::spawn_blocking(move || incoming.commit()).await {
            Ok(Ok(id)) => {
                info!(queue_id = %id, from = %from, nrcpt, size, user = self.auth_user.as_deref().unwrap_or(""), "queued");
                self.reply(&Reply::new(250, (2, 0, 0), format!("OK: queued as {id}")));
                facteur_spool::wake_qmgr(&self.ctx.qmgr_socket);
            }
            Ok(Err(e)) => {
                warn!(queue_id = %qid, error = %e, "cannot commit the queue file");
                self.reply(&Reply::new(
                    451,
                    (4, 3, 0),
                    "Local error in processing, try again later",
                ));
            }
            Err(_) => self.reply(&Reply::new(
                451,
                (4, 3, 0),
                "Local error in processing, try again later",
            )),
        }
    }
}

/// RFC 3848 / RFC 6531 protocol names for Received: `with`.
pub fn protocol(esmtp: bool, tls: bool, auth: bool, utf8: bool) -> String {
    if !esmtp {
        return "SMTP".into();
    }
    let base = if utf8 { "UTF8SMTP" } else { "ESMTP" };
    format!(
        "{base}{}{}",
        if tls { "S" } else { "" },
        if auth { "A" } else { "" }
    )
}

fn envelope<S: AsyncRead + AsyncWrite + Unpin>(s: &Session<S>, t: &Txn) -> Envelope {
    let f = t.mail.flags;
    Envelope {
        queue_id: String::new(),
        sender: t.mail.address.clone(),
        recipients: t
            .rcpts
            .iter()
            .map(|r| Recipient {
                address: r.address.clone(),
                orcpt: r.orcpt.clone(),
                notify: Notify {
                    success: r.flags & smtp_proto::RCPT_NOTIFY_SUCCESS != 0,
                    failure: r.flags & smtp_proto::RCPT_NOTIFY_FAILURE != 0,
                    delay: r.flags & smtp_proto::RCPT_NOTIFY_DELAY != 0,
                    never: r.flags & smtp_proto::RCPT_NOTIFY_NEVER != 0,
                },
                status: RcptStatus::Pending,
                last_reply: None,
            })
            .collect(),
        ret: if f & smtp_proto::MAIL_RET_FULL != 0 {
            Some(Ret::Full)
        } else if f & smtp_proto::MAIL_RET_HDRS != 0 {
            Some(Ret::Hdrs)
        } else {
            None
        },
        envid: t.mail.env_id.clone(),
        body: if f & smtp_proto::MAIL_BODY_BINARYMIME != 0 {
            BodyType::BinaryMime
        } else if f & smtp_proto::MAIL_BODY_8BITMIME != 0 {
            BodyType::EightBitMime
        } else {
            BodyType::SevenBit
        },
        smtputf8: f & smtp_proto::MAIL_SMTPUTF8 != 0,
        client_addr: Some(s.ip.to_string()),
        client_name: None,
        helo: s.helo.clone(),
        protocol: Some(protocol(
            s.esmtp,
            s.io.stream.is_tls(),
            s.auth_user.is_some(),
            f & smtp_proto::MAIL_SMTPUTF8 != 0,
        )),
        auth_user: s.auth_user.clone(),
        local_user: None,
        arrival: facteur_util::date::now_unix(),
        attempts: 0,
        next_attempt: 0,
        delay_notified: false,
    }
}

#[cfg(test)]
mod tests;
