//! What a program plugs into the core: the [`Handler`] (where accepted
//! recipients and messages go, and the program's own policy) and the
//! values the core shows it ([`SessionInfo`], [`Txn`]).
//!
//! The core owns the protocol: command order, replies to bad input,
//! pipelining, limits, DATA/BDAT framing, STARTTLS, AUTH. A handler only
//! answers questions at fixed points: may this sender send (`mail`), is this
//! recipient deliverable (`rcpt`), open a sink for the message (`open`),
//! and make it durable and say how it went (`finish`). Everything a
//! handler answers is a [`Reply`] the core sends as is.

use crate::check::{Check, Content, Notes};
pub use facteur_daemon::Peer;
use facteur_smtp_codec::{MailFrom, RcptTo, Reply};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// SMTP (RFC 5321) or LMTP (RFC 2033): the greeting verb (EHLO/HELO or
/// LHLO) and one reply per message or one per recipient after the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Smtp,
    Lmtp,
}

/// What to do with a bare CR or LF inside a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLineEndings {
    /// Refuse the message (`550 5.6.0`): the network rule, the SMTP
    /// smuggling guard.
    Refuse,
    /// Take it: the sink repairs the line endings (`sendmail -bs`, whose
    /// client is a local program, not a relay).
    Accept,
}

/// The limits of one session.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_line_length: usize,
    pub max_message_size: u64,
    pub max_recipients: usize,
    /// Errors before the connection is closed (`421 4.7.0`).
    pub max_errors: u32,
    /// Idle time-out between reads.
    pub timeout: Duration,
    pub bare_line_endings: BareLineEndings,
}

/// What the session knows, shown to handlers and checks.
#[derive(Debug, Clone)]
pub struct SessionInfo {
    pub peer: Peer,
    /// The listener's name (`mx`, `submission`, `lmtp`, ...).
    pub listener: &'static str,
    /// The EHLO/HELO/LHLO argument, once given.
    pub helo: Option<String>,
    /// EHLO (or LHLO) rather than HELO.
    pub esmtp: bool,
    /// "TLSv1.3 with cipher ..." once TLS is up.
    pub tls: Option<String>,
    /// The login, once AUTH succeeded.
    pub auth_user: Option<String>,
    /// The client sent bytes before our greeting (a pregreet talker):
    /// known at the end of the pregreet test, and, when there is none,
    /// if they came before the connect checks finished.
    pub early_talker: bool,
    /// What checks learned for later stages (see [`Notes`]).
    pub notes: Notes,
}

/// A transaction: from MAIL to the end of the data (or RSET).
#[derive(Debug)]
pub struct Txn<R> {
    /// The sender as the handler normalised it.
    pub mail: MailFrom,
    /// Accepted recipients, each with what the handler keeps about it.
    pub rcpts: Vec<(RcptTo, R)>,
    pub started: Instant,
}

/// Where the bytes of a message go while it arrives. Any error fails the
/// whole transaction (a temporary failure for the client): a message is
/// accepted whole or not at all.
/// End-of-data checks read the message again through [`Content`].
pub trait Sink: Content + Send {
    /// Appends message bytes (network form, dot-unstuffed).
    fn push(&mut self, bytes: &[u8]) -> io::Result<()>;
    /// Header fields the end-of-data checks added (whole CRLF-terminated
    /// fields), to go above the message; called once, after every check
    /// accepted and before `finish`. A sink that cannot keep them fails
    /// the transaction (the default: no check of its handler adds any).
    fn prepend(&mut self, _fields: &[u8]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this sink cannot add header fields",
        ))
    }
    /// Makes the end-of-data checks' changes ([`crate::edit`]); called
    /// once, after every check accepted and before `prepend`. A sink that
    /// cannot fails the transaction (the default).
    fn edit(&mut self, _edits: &[crate::edit::Edit]) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "this sink cannot change the message",
        ))
    }
    /// Throws the message away.
    fn abort(self);
}

/// A reply that will be known later (a copy being written).
pub type ReplyFuture = Pin<Box<dyn Future<Output = Reply> + Send>>;

/// A program on the core. See the module header.
pub trait Handler: Send + Sync {
    /// What the handler keeps about an accepted recipient.
    type Rcpt: Send + Sync;
    /// Where an accepted message goes while it arrives.
    type Sink: Sink;

    fn dialect(&self) -> Dialect;
    /// The greeting's text after the code (`mx.example ESMTP facteur`).
    fn greeting(&self) -> String;
    /// Our name, first word of the EHLO/LHLO reply.
    fn hostname(&self) -> &str;
    /// The limits a new session takes (it keeps them to its end, even if
    /// a configuration reload changes them).
    fn limits(&self) -> Arc<Limits>;
    /// Extension keywords besides the core's (PIPELINING, SIZE, 8BITMIME,
    /// SMTPUTF8, ENHANCEDSTATUSCODES, CHUNKING, STARTTLS, AUTH).
    fn extensions(&self, _s: &SessionInfo) -> Vec<String> {
        Vec::new()
    }
    /// The TLS configuration when STARTTLS may be offered.
    fn tls(&self) -> Option<Arc<rustls::ServerConfig>> {
        None
    }
    /// The logins, when AUTH may be offered to this session now.
    fn logins(&self, _s: &SessionInfo) -> Option<&Arc<facteur_auth::Logins>> {
        None
    }
    /// Whether MAIL needs a login first (submission).
    fn requires_auth(&self, _s: &SessionInfo) -> bool {
        false
    }
    /// The checks run at each stage after the handler's own (see
    /// [`Check`]).
    fn checks(&self) -> &[Arc<dyn Check>] {
        &[]
    }
    /// The pregreet test for this session (postscreen's model), asked
    /// after the connect checks accepted: how long to watch the client
    /// after a `220-` teaser, before the rest of the greeting; `None` (the
    /// default) = no test, a plain greeting.
    fn pregreet(&self, _s: &SessionInfo) -> impl Future<Output = Option<Duration>> + Send {
        std::future::ready(None)
    }
    /// After the pregreet test ([`SessionInfo::early_talker`] says how
    /// it went): `Accept` greets; `Reject` greets and then refuses every
    /// command but QUIT with its reply; `Disconnect` sends its reply and
    /// closes.
    fn pregreet_done(&self, _s: &SessionInfo) -> crate::check::Verdict {
        crate::check::Verdict::Accept
    }
    /// Normalises a sender (`""` is the null sender and never gets here)
    /// or refuses it; by default, any address facteur-mail accepts, as is.
    fn normalize_sender(&self, address: &str) -> Result<String, Reply> {
        facteur_mail::Address::parse(address)
            .map(|_| address.to_string())
            .map_err(|e| Reply::new(501, (5, 1, 7), format!("Bad sender address: {e}")))
    }
    /// Normalises a recipient or refuses it; by default as senders.
    fn normalize_recipient(&self, address: &str) -> Result<String, Reply> {
        facteur_mail::Address::parse(address)
            .map(|_| address.to_string())
            .map_err(|e| Reply::new(501, (5, 1, 3), format!("Bad recipient address: {e}")))
    }
    /// MAIL: may this sender start a transaction? (Syntax, size and the
    /// session's state are checked already.)
    fn mail(
        &self,
        s: &SessionInfo,
        from: &MailFrom,
    ) -> impl Future<Output = Result<(), Reply>> + Send;
    /// RCPT: the recipient's fate. `Ok` carries what to keep and the
    /// positive reply.
    fn rcpt(
        &self,
        s: &SessionInfo,
        txn: &Txn<Self::Rcpt>,
        to: &RcptTo,
    ) -> impl Future<Output = Result<(Self::Rcpt, Reply), Reply>> + Send;
    /// Opens the sink at DATA or the first BDAT chunk.
    fn open(&self, s: &SessionInfo, txn: &Txn<Self::Rcpt>) -> Result<Self::Sink, Reply>;
    /// The message is whole and every check passed: make it durable. SMTP:
    /// one reply; LMTP: one per recipient, in order, each sent as soon as
    /// it is known. Nothing positive may be answered before the bytes are
    /// on disk.
    fn finish(
        &self,
        s: &SessionInfo,
        txn: Txn<Self::Rcpt>,
        sink: Self::Sink,
        size: u64,
    ) -> impl Future<Output = Vec<ReplyFuture>> + Send;
}
