//! One LMTP connection: the state machine and its I/O, generic over the
//! stream so tests run it in memory.
//!
//! The loop reads into one buffer, frames command lines (bounded length),
//! and answers; replies are batched and flushed whenever no more input is
//! buffered (RFC 2920 pipelining), before blocking on a read. DATA and BDAT
//! read the message straight from the same buffer, so pipelined commands
//! after the end of data are never lost nor taken as data.
//!
//! After DATA or BDAT LAST, one reply per accepted recipient, in order, each
//! written and flushed as soon as its copy is durable (RFC 2033 §4.2).

use crate::Context;
use crate::deliver;
use crate::envelope::{self, Transaction};
use facteur_daemon::body::Body;
use facteur_daemon::lineio::{Fill, Input, LineIo};
use facteur_smtp_codec::{DataReceiver, LineEndingCheck, Reply, parse_command};
use smtp_proto::Request;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tracing::{Instrument, debug, info, info_span, warn};

enum Flow {
    Continue,
    Close,
}

struct Session<S> {
    ctx: Arc<Context>,
    io: LineIo<S>,
    lhlo: bool,
    txn: Option<Transaction>,
    errors: u32,
}

/// Serves one connection until QUIT, EOF, a timeout, too many errors or a
/// shutdown.
pub async fn serve<S>(ctx: Arc<Context>, io: S, peer: String, stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let span = info_span!("lmtp", peer = %peer);
    async move {
        debug!("connected");
        let io = LineIo::new(io, ctx.limits.max_line_length, ctx.limits.timeout, stop);
        let mut s = Session {
            ctx,
            io,
            lhlo: false,
            txn: None,
            errors: 0,
        };
        let greeting = Reply::plain(220, format!("{} LMTP facteur ready", s.ctx.hostname));
        s.reply(&greeting);
        if let Err(e) = s.run().await {
            debug!(error = %e, "connection ended with an I/O error");
        }
        if let Some(t) = &s.txn {
            info!(tx = %t.id, "transaction abandoned by the client");
        }
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
            if self.errors >= self.ctx.limits.max_errors {
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
        let cmd = match parse_command(line) {
            Ok(c) => c,
            Err(r) => {
                self.error(r);
                return Ok(Flow::Continue);
            }
        };
        match cmd {
            Request::Lhlo { .. } => {
                self.txn = None;
                self.lhlo = true;
                let r = envelope::lhlo_reply(&self.ctx);
                self.reply(&r);
            }
            Request::Ehlo { .. } | Request::Helo { .. } => {
                self.error(Reply::new(
                    500,
                    (5, 5, 1),
                    "This is an LMTP server: use LHLO",
                ));
            }
            Request::Mail { from } => {
                if !self.lhlo {
                    self.error(Reply::new(503, (5, 5, 1), "Send LHLO first"));
                } else if self.txn.is_some() {
                    self.error(Reply::new(503, (5, 5, 1), "Nested MAIL command"));
                } else {
                    match envelope::mail(&self.ctx, &from) {
                        Ok(t) => {
                            debug!(tx = %t.id, from = %t.sender, "MAIL");
                            self.txn = Some(t);
                            self.reply(&Reply::new(250, (2, 1, 0), "Sender OK"));
                        }
                        Err(r) => self.error(r),
                    }
                }
            }
            Request::Rcpt { to } => match self.txn.as_mut() {
                None => self.error(Reply::new(503, (5, 5, 1), "Send MAIL first")),
                Some(txn) => {
                    let r = envelope::rcpt(&self.ctx, txn, &to).await;
                    if r.is_positive() {
                        self.reply(&r);
                    } else {
                        info!(tx = %txn.id, to = %to.address, result = %r, "recipient refused");
                        self.error(r);
                    }
                }
            },
            Request::Data => self.data().await?,
            Request::Bdat {
                chunk_size,
                is_last,
            } => self.bdat(chunk_size, is_last).await?,
            Request::Rset => {
                self.txn = None;
                self.reply(&Reply::new(250, (2, 0, 0), "OK"));
            }
            Request::Noop { .. } => self.reply(&Reply::new(250, (2, 0, 0), "OK")),
            Request::Vrfy { .. } => {
                self.reply(&Reply::new(
                    252,
                    (2, 5, 2),
                    "Cannot VRFY; send the message and see",
                ));
            }
            Request::Help { .. } => self.reply(&Reply::new(
                214,
                (2, 0, 0),
                "Commands: LHLO MAIL RCPT DATA BDAT RSET NOOP VRFY HELP QUIT (RFC 2033)",
            )),
            Request::Quit => {
                self.reply(&Reply::new(221, (2, 0, 0), "Bye"));
                return Ok(Flow::Close);
            }
            _ => self.error(Reply::new(502, (5, 5, 1), "Command not implemented")),
        }
        Ok(Flow::Continue)
    }

    /// Checks that a message may start; the refusal otherwise.
    fn ready_for_message(&self) -> Option<Reply> {
        match &self.txn {
            None => Some(Reply::new(503, (5, 5, 1), "Send MAIL first")),
            Some(t) if t.rcpts.is_empty() => {
                Some(Reply::new(503, (5, 5, 1), "No valid recipients"))
            }
            _ => None,
        }
    }

    async fn data(&mut self) -> io::Result<()> {
        if let Some(r) = self.ready_for_message() {
            self.error(r);
            return Ok(());
        }
        if self
            .txn
            .as_ref()
            .is_some_and(|t| !t.bdat_body.is_empty() || t.bdat_failed)
        {
            self.error(Reply::new(
                503,
                (5, 5, 1),
                "DATA cannot follow BDAT in one transaction",
            ));
            return Ok(());
        }
        self.reply(&Reply::new(
            354,
            (2, 0, 0),
            "Start mail input; end with <CRLF>.<CRLF>",
        ));
        let mut rx = DataReceiver::new(self.ctx.limits.max_message_size);
        let mut body = Body::default();
        let mut io_error: Option<io::Error> = None;
        let tmp_dir = self.ctx.tmp_dir.clone();
        let end = self
            .io
            .read_data(&mut rx, |chunk| {
                if io_error.is_none()
                    && let Err(e) = body.append(chunk, &tmp_dir)
                {
                    io_error = Some(e);
                }
            })
            .await?;
        if end != Fill::Data {
            return self.interrupted(end, "DATA").await;
        }
        let o = rx.outcome();
        let refusal = Reply::content_refusal(o.too_big, o.bare_lf || o.bare_cr).or_else(|| {
            io_error.map(|e| {
                warn!(error = %e, "cannot buffer the message");
                Reply::new(
                    451,
                    (4, 3, 0),
                    "Local error buffering the message, try again later",
                )
            })
        });
        self.finish(body, refusal).await
    }

    async fn bdat(&mut self, size: usize, last: bool) -> io::Result<()> {
        // The chunk is read (or skipped) whatever the state: its bytes must
        // never be taken for commands (RFC 3030 §2).
        let refusal = self.ready_for_message();
        let max = self.ctx.limits.max_message_size;
        let mut body = self.bdat_body();
        let mut check = self.take_bdat_check();
        let mut too_big = body.len().saturating_add(size as u64) > max;
        let mut io_error = None;
        let tmp_dir = self.ctx.tmp_dir.clone();
        let keep = refusal.is_none() && !too_big;
        let end = self
            .io
            .read_exact(size as u64, |chunk| {
                if keep && io_error.is_none() {
                    check.feed(chunk);
                    if let Err(e) = body.append(chunk, &tmp_dir) {
                        io_error = Some(e);
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
        if let Some(t) = self.txn.as_mut() {
            too_big |= t.bdat_failed;
        }
        if !last {
            if too_big || io_error.is_some() {
                if let Some(t) = self.txn.as_mut() {
                    t.bdat_failed = true;
                }
                self.error(Reply::too_big());
            } else {
                self.reply(&Reply::new(
                    250,
                    (2, 0, 0),
                    format!("{size} octets received"),
                ));
            }
            self.put_bdat(body, check);
            return Ok(());
        }
        check.finish();
        let refusal =
            Reply::content_refusal(too_big, check.bare_cr || check.bare_lf).or_else(|| {
                io_error.map(|_| {
                    Reply::new(
                        451,
                        (4, 3, 0),
                        "Local error buffering the message, try again later",
                    )
                })
            });
        self.finish(body, refusal).await
    }

    fn bdat_body(&mut self) -> Body {
        self.txn
            .as_mut()
            .map(|t| std::mem::take(&mut t.bdat_body))
            .unwrap_or_default()
    }

    fn take_bdat_check(&mut self) -> LineEndingCheck {
        self.txn
            .as_mut()
            .map(|t| std::mem::take(&mut t.bdat_check))
            .unwrap_or_default()
    }

    fn put_bdat(&mut self, body: Body, check: LineEndingCheck) {
        if let Some(t) = self.txn.as_mut() {
            t.bdat_body = body;
            t.bdat_check = check;
        }
    }

    /// Ends the transaction: one reply per recipient.
    async fn finish(&mut self, body: Body, refusal: Option<Reply>) -> io::Result<()> {
        let Some(txn) = self.txn.take() else {
            return Ok(());
        };
        if let Some(r) = refusal {
            for rcpt in &txn.rcpts {
                info!(tx = %txn.id, from = %txn.sender, to = %rcpt.address, size = body.len(), result = %r, "refused");
                self.reply(&r);
            }
            self.errors += 1;
            return Ok(());
        }
        let body = body.freeze();
        let handles = deliver::start(&self.ctx, &txn.id, &txn.sender, &txn.rcpts, &body);
        for h in handles {
            let r = h.await.unwrap_or_else(|_| {
                Reply::new(451, (4, 3, 0), "Local error in delivery, try again later")
            });
            self.reply(&r);
            self.io.flush().await?;
        }
        debug!(tx = %txn.id, ms = txn.started.elapsed().as_millis() as u64, "transaction done");
        Ok(())
    }
}

#[cfg(test)]
mod tests;
