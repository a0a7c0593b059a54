//! facteur-smtp-server: the one SMTP/LMTP server core. facteur-smtpd (the
//! MX and submission listeners), facteur-lmtpd (the local delivery agent)
//! and `sendmail -bs` are each a [`Handler`] on it; the protocol itself is
//! written once, here.
//!
//! Layout:
//! - [`handler`]: the [`Handler`] trait (where recipients and messages go,
//!   and a program's own policy), [`SessionInfo`], [`Txn`], [`Sink`];
//! - [`check`]: the hook points for judgment ([`Check`]: connect, HELO,
//!   MAIL, RCPT, end of data), where SPF, DNSBLs, greylisting and scanners
//!   plug in; the session's [`Notes`] (what a check learned for a later
//!   stage) and the header fields end-of-data checks add above the message
//!   ([`Message::add_header`], written by [`Sink::prepend`]);
//! - `session`: the state machine (greeting, EHLO/HELO/LHLO, MAIL, RCPT,
//!   RSET, NOOP, VRFY, HELP, QUIT, STARTTLS, limits, time-outs), generic
//!   over the stream; `data`: DATA and BDAT into the sink, end-of-data
//!   checks, the replies; `auth`: AUTH, the exchange of facteur-auth's
//!   login driver (SCRAM-SHA-256, PLAIN, LOGIN) in SMTP's words.
//!
//! Needs facteur-smtp-codec (commands, replies, the DATA receiver) and
//! facteur-daemon (the line I/O, TLS connections).
//!
//! Invariants:
//! - Nothing positive is said about a message before the handler's
//!   `finish` made it durable; a message is whole or refused (any failure
//!   to store a byte fails the transaction with a 4xx).
//! - The bytes of DATA and BDAT are never taken for commands: DATA ends
//!   only at `<CRLF>.<CRLF>`; a BDAT chunk is consumed even when refused;
//!   a BDAT whose size cannot be read closes the connection.
//! - Memory per session is bounded: command lines by the line limit,
//!   messages by the sink (lmtpd's `facteur_daemon::body` spills to disk
//!   past 1 MiB).
//! - Bad input never panics; it gets a reply, and past `max_errors` the
//!   connection is closed.
//!
//! Standards: RFC 5321 (SMTP), RFC 2033 (LMTP), RFC 3030 (CHUNKING,
//! BINARYMIME), RFC 2920 (PIPELINING), RFC 1870 (SIZE), RFC 6152
//! (8BITMIME), RFC 6531 (SMTPUTF8), RFC 3461 (DSN parameters), RFC 3207
//! (STARTTLS), RFC 4954 (AUTH), RFC 4616 (PLAIN), RFC 7677 (SCRAM-SHA-256),
//! RFC 2034/3463 (enhanced status codes).
//!
//! Security: STARTTLS drops whatever was pipelined before the handshake
//! (CVE-2011-0411 class); a bare CR or LF in a message is refused unless
//! the handler repairs line endings (SMTP smuggling, CVE-2023-51764
//! class); AUTH only where the handler allows it.

mod auth;
pub mod check;
mod data;
pub mod edit;
pub mod handler;
pub mod metrics;
mod session;

pub use check::{Check, CheckFuture, Content, MAX_ADDED_HEADERS, Message, Notes, Verdict};
pub use data::write_failure;
pub use handler::{
    BareLineEndings, Dialect, Handler, Limits, Peer, ReplyFuture, SessionInfo, Sink, Txn,
};
pub use session::serve;

#[cfg(test)]
mod tests;
