//! facteur-smtp-client: the outbound client of facteur, one connection type
//! with two dialects. The queue manager hands local mail to facteur-lmtpd
//! (or any LMTP server) in the [`Dialect::Lmtp`] dialect (RFC 2033) and
//! remote mail to the world's MX hosts and relayhosts in the
//! [`Dialect::Smtp`] dialect (RFC 5321), through `facteur-remote`.
//!
//! Layout:
//! - this file: the types of a conversation — [`Dialect`], [`Timeouts`],
//!   [`ClientError`], [`Txn`] / [`TxnRcpt`] / [`TxnOutcome`];
//! - [`connection`]: [`Connection`], one connection over any stream:
//!   greeting, EHLO (HELO when EHLO is refused) or LHLO, STARTTLS, AUTH
//!   PLAIN/LOGIN, RSET, QUIT, and the bounded reading of replies;
//! - [`transaction`]: [`Connection::send`], one transaction: MAIL, RCPT...,
//!   DATA with the dot-stuffed message (or BDAT chunks), pipelined when
//!   offered; one final reply per transaction (SMTP) or per accepted
//!   recipient (LMTP);
//! - [`source`]: [`MessageSource`], the message streamed from a blocking
//!   reader (a queue file) in 64 KiB chunks, never held whole in memory;
//! - [`pool`]: [`Pool`], connections kept open between messages, per key,
//!   for a limited idle time;
//! - `testing` (feature `testing`, and this crate's tests): a scripted
//!   peer for transcript tests.
//!
//! The pure parts live in `facteur-smtp-codec`: the reply parser
//! (`reply::parse_reply`), the EHLO/LHLO keywords (`client::Extensions`),
//! the checked MAIL/RCPT lines (`client::mail_from`, `client::rcpt_to`)
//! and the dot-stuffer (`client::DotStuffer`).
//!
//! Guarantees (both dialects):
//! - Every read and write has a time-out ([`Timeouts`]: the RFC 5321
//!   §4.5.3.2 values for SMTP, shorter ones for the local LMTP server), and
//!   replies are parsed with hard bounds (at most 100 lines of 2048
//!   octets), so a peer that sends 10,000 continuation lines, never
//!   answers, or closes the connection costs bounded memory and time, never
//!   a panic.
//! - A recipient's outcome is `Some(reply)` only when the peer said it: the
//!   RCPT refusal, the MAIL or DATA refusal, or the reply after the data.
//!   Otherwise it is `None`, and the caller must treat the recipient as not
//!   delivered *and* possibly delivered (it defers; a duplicate is the worst
//!   case).
//! - If the message source fails mid-DATA the connection is dropped without
//!   the final dot (or `BDAT LAST`), so a truncated message is never
//!   delivered.
//! - Addresses reach the wire only through the one checked path formatter
//!   (`mail_from`, `rcpt_to`): a sender or recipient with a control
//!   character, a space or an angle bracket is never written into a command
//!   (the recipient gets `553 5.1.3`, the transaction with such a sender is
//!   not started).
//!
//! Standards: RFC 5321, RFC 2033 (LMTP), RFC 2920 (PIPELINING), RFC 3030
//! (CHUNKING), RFC 3207 (STARTTLS), RFC 4954 (AUTH), RFC 4616 (PLAIN),
//! RFC 1870, RFC 6152, RFC 6531, RFC 3461 (parameters, formatted by the
//! codec); `XQUEUEID` (facteur's LMTP extension: the queue id of the
//! message, sent when the LHLO reply lists it).
//!
//! Security: a peer that talks before its turn (bytes after the greeting
//! before our EHLO/LHLO, or after its STARTTLS 220 before the handshake) is
//! dropped: pipelined plaintext must never be read as if it came over TLS
//! (the CVE-2011-0411 class). Credentials are sent only over TLS
//! ([`Connection::auth`] refuses otherwise; their base64 is
//! `facteur-sasl`'s codec). Reply text is sanitised by the parser before it
//! reaches logs, queue files or bounces.

pub mod connection;
pub mod pool;
pub mod source;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod transaction;

pub use connection::{BoxIo, Connection, Io};
pub use pool::Pool;
pub use source::{MessageSource, Opener, in_memory, open_source, stream_reader};

use facteur_smtp_codec::Reply;
use facteur_smtp_codec::client::MailParams;
use facteur_smtp_codec::reply::ReplyError;
use std::io;
use std::time::Duration;

/// Which protocol a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// RFC 5321: EHLO (HELO when refused), STARTTLS, AUTH, CHUNKING; one
    /// final reply per transaction.
    Smtp,
    /// RFC 2033: LHLO; one final reply per accepted recipient; `XQUEUEID`.
    Lmtp,
}

/// Time-outs of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    /// The 220 greeting.
    pub greeting: Duration,
    /// EHLO/LHLO, STARTTLS, AUTH, MAIL, RCPT, RSET replies; command writes.
    pub command: Duration,
    /// The 354 after DATA.
    pub data_init: Duration,
    /// Each write of message data, each BDAT reply.
    pub data_block: Duration,
    /// Each reply after the final dot or BDAT LAST (LMTP: each of them).
    pub data_done: Duration,
}

impl Timeouts {
    /// RFC 5321 §4.5.3.2: 5 min greeting and commands, 2 min for the 354,
    /// 3 min per data block, 10 min after the final dot (connect: 30 s).
    pub fn smtp() -> Timeouts {
        Timeouts {
            connect: Duration::from_secs(30),
            greeting: Duration::from_secs(300),
            command: Duration::from_secs(300),
            data_init: Duration::from_secs(120),
            data_block: Duration::from_secs(180),
            data_done: Duration::from_secs(600),
        }
    }

    /// The local LMTP server: 60 s for everything but the replies after the
    /// data (5 min each: the server is writing copies).
    pub fn lmtp() -> Timeouts {
        Timeouts {
            data_done: Duration::from_secs(300),
            ..Timeouts::uniform(Duration::from_secs(60))
        }
    }

    /// The same time-out everywhere (tests).
    pub fn uniform(d: Duration) -> Timeouts {
        Timeouts {
            connect: d,
            greeting: d,
            command: d,
            data_init: d,
            data_block: d,
            data_done: d,
        }
    }
}

/// Why a connection failed; after any of these it is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("timeout waiting for {0}")]
    Timeout(&'static str),
    #[error("connection closed by the peer")]
    Closed,
    #[error("bad reply: {0}")]
    Reply(#[from] ReplyError),
    /// The peer refused the greeting, EHLO/HELO/LHLO, STARTTLS or AUTH.
    #[error("{0} refused: {1}")]
    Refused(&'static str, Reply),
    #[error("TLS: {0}")]
    Tls(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("reading the queued message failed: {0}")]
    Source(String),
}

impl ClientError {
    /// One line for the queue file and logs, RFC 3463 style.
    pub fn as_reply_text(&self) -> String {
        match self {
            ClientError::Refused(what, r) => format!("{r} (in reply to {what})"),
            ClientError::Tls(_) => format!("4.7.5 {self}"),
            ClientError::Source(_) => format!("4.3.0 {self}"),
            _ => format!("4.4.2 {self}"),
        }
    }
}

/// One recipient of a transaction.
#[derive(Debug, Clone, Default)]
pub struct TxnRcpt {
    pub address: String,
    /// `SUCCESS,FAILURE,DELAY` or `NEVER`; sent only when the peer offers
    /// DSN.
    pub notify: Option<String>,
    /// Sent only when the peer offers DSN.
    pub orcpt: Option<String>,
}

impl TxnRcpt {
    /// A recipient without DSN parameters.
    pub fn new(address: impl Into<String>) -> TxnRcpt {
        TxnRcpt {
            address: address.into(),
            ..TxnRcpt::default()
        }
    }
}

/// One transaction to run.
#[derive(Debug)]
pub struct Txn<'a> {
    /// "" is the null reverse-path.
    pub sender: &'a str,
    /// MAIL parameters, already decided against the peer's extensions
    /// (but `queue_id` is set here by [`Connection::send`] itself).
    pub params: MailParams<'a>,
    pub rcpts: &'a [TxnRcpt],
    /// The queue id of the message: sent as `XQUEUEID=` when an LMTP server
    /// offers it, never otherwise.
    pub queue_id: Option<&'a str>,
}

/// What became of each recipient; `error` set means the connection is dead.
#[derive(Debug)]
pub struct TxnOutcome {
    /// In recipient order; `None`: no answer (see the crate guarantees).
    pub replies: Vec<Option<Reply>>,
    pub error: Option<ClientError>,
    /// The transaction ended in an error before the peer's first reply in
    /// it (the one to MAIL): the peer got no byte of the message, which is
    /// sent only after its replies, so the transaction can run again on a
    /// new connection without any risk of a duplicate.
    pub unheard: bool,
}

impl TxnOutcome {
    /// What a queue records: each recipient's reply, or, where the peer
    /// said nothing, the text of the failure that ended the connection (a
    /// temporary failure: the recipient may or may not have the message);
    /// and that text alone when the connection is dead.
    pub fn per_recipient(self) -> (Vec<Result<Reply, String>>, Option<String>) {
        let broken = self.error.as_ref().map(ClientError::as_reply_text);
        let silent = broken
            .clone()
            .unwrap_or_else(|| "4.4.2 no reply from the peer".into());
        let replies = self
            .replies
            .into_iter()
            .map(|r| r.ok_or_else(|| silent.clone()))
            .collect();
        (replies, broken)
    }
}

#[cfg(test)]
mod tests;
