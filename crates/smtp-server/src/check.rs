//! The hook points where judgment plugs in: a [`Check`] is asked at each
//! stage of a session — connect, HELO, MAIL, RCPT, end of data — after the
//! handler's own decision, in the order the handler lists them, and may
//! refuse the command or end the connection.
//!
//! DESIGN.md puts every check at the earliest stage that has what it
//! needs, in one place: this is that place. Allow/deny lists and DNSBLs go
//! at connect, HELO and SPF checks at HELO and MAIL, greylisting at RCPT,
//! DKIM/DMARC/scanners at the end of data (they read the whole message
//! through [`Sink::reader`](crate::Sink::reader)). A check holds no session
//! state of its own: what it learns goes into its reply or its verdict.
//!
//! Every method has a default that accepts, so a check implements only
//! its stages.

use crate::handler::{SessionInfo, Txn};
use facteur_smtp_codec::{MailFrom, RcptTo, Reply};
use std::future::Future;
use std::io::{self, Read};
use std::pin::Pin;

/// A future a check returns.
pub type CheckFuture<'a> = Pin<Box<dyn Future<Output = Verdict> + Send + 'a>>;

/// What a check decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing against it: the next check is asked.
    Accept,
    /// Refuse this command (or, at connect, greet with this reply and
    /// refuse every command but QUIT); the session goes on.
    Reject(Reply),
    /// Send this reply and close the connection.
    Disconnect(Reply),
}

/// A message that can be read again from its first byte.
pub trait Content {
    /// A reader over the message as received (network form).
    fn reader(&mut self) -> io::Result<Box<dyn Read + Send + '_>>;
}

/// What an end-of-data check is shown.
pub struct Message<'a> {
    pub mail: &'a MailFrom,
    /// The accepted recipients.
    pub rcpts: Vec<&'a RcptTo>,
    pub size: u64,
    pub(crate) content: &'a mut (dyn Content + Send),
}

impl Message<'_> {
    /// The message from its first byte; each call starts again.
    pub fn reader(&mut self) -> io::Result<Box<dyn Read + Send + '_>> {
        self.content.reader()
    }
}

fn accept<'a>() -> CheckFuture<'a> {
    Box::pin(std::future::ready(Verdict::Accept))
}

/// One check. See the module header.
pub trait Check: Send + Sync {
    /// For logs: which check refused.
    fn name(&self) -> &'static str;
    /// Before the greeting.
    fn connect<'a>(&'a self, _s: &'a SessionInfo) -> CheckFuture<'a> {
        accept()
    }
    /// EHLO, HELO or LHLO.
    fn helo<'a>(&'a self, _s: &'a SessionInfo, _name: &'a str) -> CheckFuture<'a> {
        accept()
    }
    /// MAIL, after the handler accepted the sender.
    fn mail<'a>(&'a self, _s: &'a SessionInfo, _from: &'a MailFrom) -> CheckFuture<'a> {
        accept()
    }
    /// RCPT, after the handler accepted the recipient.
    fn rcpt<'a>(
        &'a self,
        _s: &'a SessionInfo,
        _from: &'a MailFrom,
        _to: &'a RcptTo,
    ) -> CheckFuture<'a> {
        accept()
    }
    /// The end of data, before the message is made durable.
    fn data<'a>(&'a self, _s: &'a SessionInfo, _m: Message<'a>) -> CheckFuture<'a> {
        accept()
    }
}

/// Logs a refusal by check `c`.
pub(crate) fn log_refusal(c: &dyn Check, v: &Verdict) {
    if *v != Verdict::Accept {
        tracing::info!(check = c.name(), verdict = ?v, "check refused");
    }
}

/// The first verdict of `checks` that is not [`Verdict::Accept`].
pub(crate) async fn first_refusal<'a, F>(checks: &'a [std::sync::Arc<dyn Check>], ask: F) -> Verdict
where
    F: Fn(&'a dyn Check) -> CheckFuture<'a>,
{
    for c in checks {
        let v = ask(c.as_ref()).await;
        if v != Verdict::Accept {
            log_refusal(c.as_ref(), &v);
            return v;
        }
    }
    Verdict::Accept
}

/// The recipients of a transaction, as checks see them.
pub(crate) fn rcpts_of<R>(t: &Txn<R>) -> Vec<&RcptTo> {
    t.rcpts.iter().map(|(r, _)| r).collect()
}
