//! lmtpd on the SMTP core (LMTP dialect): recipients resolved to mailboxes
//! at RCPT ([`envelope`]), the message held in a [`Body`] (memory, spilled
//! to an unlinked file past 1 MiB), one copy per recipient written by
//! [`deliver`] after the data, and one reply per recipient, each sent as
//! soon as its copy is durable (RFC 2033 §4.2).
//!
//! The queue id: a facteur-qmgr sends `XQUEUEID=<id>` with MAIL (we list
//! the keyword in LHLO), and every log line about the message carries it,
//! so one grep follows a message from smtpd through qmgr into the
//! mailbox. A third-party MTA sends none: the transaction gets an id of
//! our own, which the 250 replies name.
//!
//! [`envelope`]: crate::envelope
//! [`deliver`]: crate::deliver

use crate::Context;
use crate::deliver::{self, LocalTarget};
use crate::envelope;
use facteur_daemon::body::Body;
use facteur_smtp_codec::{MailFrom, RcptTo, Reply};
use facteur_smtp_server::{
    BareLineEndings, Content, Dialect, Handler, Limits, ReplyFuture, SessionInfo, Sink, Txn,
};
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use tracing::debug;

/// facteur-lmtpd's handler.
pub struct Lmtp {
    pub ctx: Arc<Context>,
}

impl Lmtp {
    pub fn new(ctx: Arc<Context>) -> Lmtp {
        Lmtp { ctx }
    }
}

/// The message while it arrives.
pub struct Message {
    body: Body,
    tmp_dir: PathBuf,
}

impl Content for Message {
    fn reader(&mut self) -> io::Result<Box<dyn Read + Send + '_>> {
        Ok(Box::new(self.body.read_from_start()?))
    }
}

impl Sink for Message {
    fn push(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.body.append(bytes, &self.tmp_dir)
    }

    fn abort(self) {}
}

impl Handler for Lmtp {
    type Rcpt = Vec<LocalTarget>;
    type Sink = Message;

    fn dialect(&self) -> Dialect {
        Dialect::Lmtp
    }

    fn greeting(&self) -> String {
        format!("{} LMTP facteur ready", self.ctx.hostname)
    }

    fn hostname(&self) -> &str {
        &self.ctx.hostname
    }

    fn limits(&self) -> Arc<Limits> {
        let l = self.ctx.limits.get();
        Arc::new(Limits {
            max_line_length: l.max_line_length,
            max_message_size: l.max_message_size,
            max_recipients: l.max_recipients,
            max_errors: l.max_errors,
            timeout: l.timeout,
            bare_line_endings: BareLineEndings::Refuse,
        })
    }

    fn extensions(&self, _s: &SessionInfo) -> Vec<String> {
        vec!["XQUEUEID".into()]
    }

    async fn mail(&self, _s: &SessionInfo, _from: &MailFrom) -> Result<(), Reply> {
        Ok(())
    }

    async fn rcpt(
        &self,
        _s: &SessionInfo,
        txn: &Txn<Vec<LocalTarget>>,
        to: &RcptTo,
    ) -> Result<(Vec<LocalTarget>, Reply), Reply> {
        let queue_id = txn.mail.params.queue_id.as_deref().unwrap_or("");
        envelope::rcpt(&self.ctx, queue_id, &to.address).await
    }

    fn open(&self, _s: &SessionInfo, _t: &Txn<Vec<LocalTarget>>) -> Result<Message, Reply> {
        Ok(Message {
            body: Body::default(),
            tmp_dir: self.ctx.tmp_dir.clone(),
        })
    }

    async fn finish(
        &self,
        _s: &SessionInfo,
        txn: Txn<Vec<LocalTarget>>,
        msg: Message,
        _size: u64,
    ) -> Vec<ReplyFuture> {
        let queue_id = txn
            .mail
            .params
            .queue_id
            .clone()
            .unwrap_or_else(facteur_util::new_id);
        let rcpts: Vec<deliver::Rcpt> = txn
            .rcpts
            .into_iter()
            .map(|(to, targets)| deliver::Rcpt {
                address: to.address,
                targets,
            })
            .collect();
        let body = msg.body.freeze();
        let handles = deliver::start(&self.ctx, &queue_id, &txn.mail.address, &rcpts, &body);
        debug!(queue_id = %queue_id, ms = txn.started.elapsed().as_millis() as u64, "copies started");
        handles
            .into_iter()
            .map(|h| {
                Box::pin(async move {
                    h.await.unwrap_or_else(|_| {
                        Reply::new(451, (4, 3, 0), "Local error in delivery, try again later")
                    })
                }) as ReplyFuture
            })
            .collect()
    }
}

#[cfg(test)]
pub(crate) mod tests;
