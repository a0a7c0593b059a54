//! The message: DATA (RFC 5321 §4.1.1.4) and BDAT (RFC 3030), into the
//! handler's sink, then the end-of-data checks and the handler's finish.
//!
//! Rules that hold for both:
//! - The bytes of a message are consumed whatever happens (a refused DATA
//!   is read to its end, a refused chunk is skipped): they are never taken
//!   for commands.
//! - A message is whole or refused. If the sink cannot be opened, or any
//!   write into it fails, the transaction fails with a temporary error
//!   (`451 4.3.0`, or `452 4.3.1` when the disk is full) — never a
//!   permanent one, never a 250 for what is missing. With BDAT, the chunk
//!   that failed and every later one get that error, and BDAT LAST
//!   refuses the message (RFC 3030 §2: the transaction has failed).
//! - Too big is `552 5.3.4`; a bare CR or LF is `550 5.6.0` unless the
//!   handler accepts them ([`BareLineEndings::Accept`]).
//! - SMTP answers once after the data; LMTP once per accepted recipient
//!   (RFC 2033 §4.2), each reply flushed as soon as it is known.

use crate::check::{self, Content, Message, Verdict};
use crate::handler::{BareLineEndings, Dialect, Handler, Sink};
use crate::session::{Flow, Session};
use facteur_daemon::lineio::Fill;
use facteur_smtp_codec::{DataReceiver, LineEndingCheck, Reply};
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

/// BDAT state of a transaction, from its first chunk.
pub(crate) struct Bdat<K> {
    sink: Option<K>,
    check: LineEndingCheck,
    size: u64,
    /// The reply every later chunk gets once one failed.
    failure: Option<Reply>,
}

impl<K: Sink> Bdat<K> {
    pub(crate) fn abort(self) {
        if let Some(s) = self.sink {
            s.abort();
        }
    }
}

/// The temporary failure for a sink that could not take the bytes.
pub fn write_failure(e: &io::Error) -> Reply {
    if e.raw_os_error() == Some(28) || e.kind() == io::ErrorKind::StorageFull {
        Reply::new(
            452,
            (4, 3, 1),
            "Insufficient system storage, try again later",
        )
    } else {
        Reply::new(451, (4, 3, 0), "Local error in processing, try again later")
    }
}

impl<H: Handler, S: AsyncRead + AsyncWrite + Unpin> Session<H, S> {
    fn ready_for_message(&self) -> Option<Reply> {
        match &self.txn {
            None => Some(Reply::new(503, (5, 5, 1), "Send MAIL first")),
            Some(t) if t.rcpts.is_empty() => {
                Some(Reply::new(503, (5, 5, 1), "No valid recipients"))
            }
            _ => None,
        }
    }

    /// Answers a read that ended inside DATA or BDAT: the connection closes.
    async fn interrupted(&mut self, why: Fill, what: &str) -> io::Result<Flow> {
        self.abort_txn();
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

    fn open_sink(&mut self) -> Result<H::Sink, Reply> {
        let Some(t) = self.txn.as_ref() else {
            return Err(Reply::new(503, (5, 5, 1), "Send MAIL first"));
        };
        self.h.open(&self.info, t)
    }

    pub(crate) async fn data(&mut self) -> io::Result<Flow> {
        if let Some(r) = self.ready_for_message() {
            self.error(r);
            return Ok(Flow::Continue);
        }
        if self.bdat.is_some() {
            self.error(Reply::new(
                503,
                (5, 5, 1),
                "DATA cannot follow BDAT in one transaction",
            ));
            return Ok(Flow::Continue);
        }
        let mut sink = match self.open_sink() {
            Ok(s) => s,
            Err(r) => {
                self.reply(&r);
                return Ok(Flow::Continue);
            }
        };
        self.reply(&Reply::new(
            354,
            (2, 0, 0),
            "Start mail input; end with <CRLF>.<CRLF>",
        ));
        let mut rx = DataReceiver::new(self.limits.max_message_size);
        let mut failed: Option<io::Error> = None;
        let mut chunk = Vec::with_capacity(64 * 1024);
        let end = self
            .io
            .consume(|buf| {
                chunk.clear();
                let used = rx.feed(buf, &mut chunk);
                if failed.is_none()
                    && !chunk.is_empty()
                    && let Err(e) = sink.push(&chunk)
                {
                    failed = Some(e);
                }
                (used, rx.is_done())
            })
            .await?;
        if end != Fill::Data {
            sink.abort();
            return self.interrupted(end, "DATA").await;
        }
        let o = rx.outcome();
        let refusal = self.content_refusal(o.too_big, o.bare_cr || o.bare_lf, failed.as_ref());
        self.finish(sink, refusal, o.size).await
    }

    fn content_refusal(
        &self,
        too_big: bool,
        bare: bool,
        failed: Option<&io::Error>,
    ) -> Option<Reply> {
        let bare = bare && self.limits.bare_line_endings == BareLineEndings::Refuse;
        Reply::content_refusal(too_big, bare).or_else(|| {
            failed.map(|e| {
                warn!(error = %e, "cannot store the message");
                write_failure(e)
            })
        })
    }

    pub(crate) async fn bdat(&mut self, size: u64, last: bool) -> io::Result<Flow> {
        // The chunk is consumed whatever happens: its bytes are never
        // commands (RFC 3030 §2).
        let mut refusal = self.ready_for_message();
        if refusal.is_none() && self.bdat.is_none() {
            let sink = match self.open_sink() {
                Ok(s) => Some(s),
                Err(r) => {
                    warn!(result = %r, "cannot open the message; the transaction fails");
                    refusal = Some(r.clone());
                    // Kept so later chunks and BDAT LAST fail too (bug: a
                    // client that kept sending got 250 for a truncated
                    // message).
                    self.bdat = Some(Bdat {
                        sink: None,
                        check: LineEndingCheck::default(),
                        size: 0,
                        failure: Some(r),
                    });
                    None
                }
            };
            if refusal.is_none() {
                self.bdat = Some(Bdat {
                    sink,
                    check: LineEndingCheck::default(),
                    size: 0,
                    failure: None,
                });
            }
        }
        let max = self.limits.max_message_size;
        let bdat = &mut self.bdat;
        let keep = refusal.is_none();
        let mut left = size;
        let end = self
            .io
            .consume(|buf| {
                let k = (left.min(buf.len() as u64)) as usize;
                if keep && let Some(b) = bdat.as_mut() {
                    let fits = b.size.saturating_add(k as u64) <= max;
                    if b.failure.is_none() && !fits {
                        b.failure = Some(Reply::too_big());
                    }
                    if b.failure.is_none() {
                        b.check.feed(&buf[..k]);
                        if let Some(s) = b.sink.as_mut()
                            && let Err(e) = s.push(&buf[..k])
                        {
                            warn!(error = %e, "cannot store a BDAT chunk; the transaction fails");
                            b.failure = Some(write_failure(&e));
                        }
                    }
                    b.size = b.size.saturating_add(k as u64);
                }
                left -= k as u64;
                (k, left == 0)
            })
            .await?;
        if end != Fill::Data {
            return self.interrupted(end, "BDAT").await;
        }
        if let Some(r) = refusal {
            if last {
                self.abort_txn();
            }
            self.error(r);
            return Ok(Flow::Continue);
        }
        let Some(b) = self.bdat.as_mut() else {
            return Ok(Flow::Continue);
        };
        if !last {
            match b.failure.clone() {
                Some(r) => self.error(r),
                None => self.reply(&Reply::new(
                    250,
                    (2, 0, 0),
                    format!("{size} octets received"),
                )),
            }
            return Ok(Flow::Continue);
        }
        let Some(mut b) = self.bdat.take() else {
            return Ok(Flow::Continue);
        };
        b.check.finish();
        let bare = (b.check.bare_cr || b.check.bare_lf)
            && self.limits.bare_line_endings == BareLineEndings::Refuse;
        let refusal = b
            .failure
            .take()
            .or_else(|| Reply::content_refusal(false, bare));
        match b.sink.take() {
            Some(sink) => self.finish(sink, refusal, b.size).await,
            None => {
                self.abort_txn();
                let r = refusal
                    .unwrap_or_else(|| Reply::new(451, (4, 3, 0), "Local error in processing"));
                self.error(r);
                Ok(Flow::Continue)
            }
        }
    }

    /// Refuses the message: once in SMTP, once per recipient in LMTP.
    fn refuse_message(&mut self, r: Reply, n_rcpts: usize) {
        if self.h.dialect() == Dialect::Lmtp {
            for _ in 0..n_rcpts.max(1) {
                self.reply(&r);
            }
            self.errors += 1;
        } else {
            self.error(r);
        }
    }

    /// Ends the transaction: the end-of-data checks, then the handler makes
    /// the message durable (or it is thrown away) and the replies go out.
    async fn finish(
        &mut self,
        mut sink: H::Sink,
        refusal: Option<Reply>,
        size: u64,
    ) -> io::Result<Flow> {
        let Some(txn) = self.txn.take() else {
            sink.abort();
            return Ok(Flow::Continue);
        };
        let from = txn.mail.address.clone();
        let n = txn.rcpts.len();
        if let Some(r) = refusal {
            sink.abort();
            info!(from = %from, size, result = ?r.to_string(), "message refused");
            self.refuse_message(r, n);
            return Ok(Flow::Continue);
        }
        let mut verdict = Verdict::Accept;
        let info = self.info.clone();
        let mut added = Vec::new();
        let mut edits = Vec::new();
        for c in self.h.checks() {
            let m = Message {
                mail: &txn.mail,
                rcpts: check::rcpts_of(&txn),
                size,
                content: &mut sink,
                added: &mut added,
                edits: &mut edits,
            };
            verdict = c.data(&info, m).await;
            if verdict != Verdict::Accept {
                check::log_refusal(c.as_ref(), &verdict);
                break;
            }
        }
        if verdict == Verdict::Accept
            && !edits.is_empty()
            && let Err(e) = sink
                .reader()
                .and_then(|mut r| crate::edit::effective(&mut r, &edits))
                .and_then(|edits| match edits.is_empty() {
                    true => Ok(()),
                    false => sink.edit(&edits),
                })
        {
            warn!(error = %e, "cannot make the checks' changes to the message");
            verdict = Verdict::Reject(write_failure(&e));
        }
        if verdict == Verdict::Accept
            && !added.is_empty()
            && let Err(e) = sink.prepend(&added)
        {
            warn!(error = %e, "cannot add the checks' header fields");
            verdict = Verdict::Reject(write_failure(&e));
        }
        match verdict {
            Verdict::Accept => {}
            Verdict::Reject(r) => {
                sink.abort();
                info!(from = %from, size, result = ?r.to_string(), "message refused");
                self.refuse_message(r, n);
                return Ok(Flow::Continue);
            }
            Verdict::Disconnect(r) => {
                sink.abort();
                info!(from = %from, size, result = ?r.to_string(), "message refused");
                self.reply(&r);
                return Ok(Flow::Close);
            }
        }
        let replies = self.h.finish(&self.info, txn, sink, size).await;
        let mut received = false;
        let lmtp = self.h.dialect() == crate::handler::Dialect::Lmtp;
        for r in replies {
            let r = r.await;
            received |= r.code / 100 == 2;
            if lmtp {
                crate::metrics::lmtp_delivery(&r);
            }
            self.reply(&r);
            self.io.flush().await?;
        }
        if received {
            crate::metrics::message(self.info.listener, size);
            // A message received forgives earlier errors and junk commands,
            // as Postfix's smtpd does: a client that keeps its connection
            // for many messages, with an RSET before each (qmgr's LMTP pool,
            // Postfix's connection cache), is not cut off after the 120th.
            self.errors = 0;
            self.junk = 0;
        }
        Ok(Flow::Continue)
    }
}
