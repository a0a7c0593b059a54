//! facteur-smtp-codec: the pure SMTP/LMTP codec shared by facteur-lmtpd,
//! facteur-smtpd and the queue manager's client.
//!
//! Layout:
//! - [`command`]: one framed line (framing is `facteur_util::line`) to a
//!   [`Command`] with our own types: the paths of MAIL/RCPT, their ESMTP
//!   parameters (SIZE, BODY, SMTPUTF8, DSN, XQUEUEID), BDAT sizes that never
//!   wrap; parse errors mapped to the replies RFC 5321 asks for.
//! - [`data`]: the DATA receiver (ours: see its header for why), which ends
//!   only at `<CRLF>.<CRLF>`, removes dot-stuffing, and reports bare CR or LF
//!   and oversize messages without buffering them.
//! - [`reply`]: replies with enhanced status codes, single and multi-line,
//!   and the bounded parser of a peer's replies (`reply::parse`: every line's
//!   code checked, hard bounds on line length and count).
//! - [`client`]: what a client needs: the EHLO/LHLO keywords
//!   ([`Extensions`]), the one checked formatter of MAIL/RCPT lines with
//!   their ESMTP parameters (SIZE, BODY, SMTPUTF8, DSN xtext, XQUEUEID) —
//!   an address with a control character, a space or a bracket is never
//!   written —, and dot-stuffing across chunk boundaries (`DotStuffer`).
//!
//! No I/O anywhere: every function takes bytes and returns values, so the
//! codec is tested from transcripts split at every byte, and fuzzed
//! (`fuzz/fuzz_targets/smtp_codec.rs`, `smtp_reply.rs`).
//!
//! Standards: RFC 5321 (SMTP), RFC 2033 (LMTP), RFC 3030 (CHUNKING),
//! RFC 2034/3463 (enhanced status codes), RFC 2920 (PIPELINING), RFC 3461
//! (DSN parameters), RFC 1870 (SIZE), RFC 6531 (SMTPUTF8).
//!
//! Security: the data receiver is the SMTP-smuggling boundary (the
//! CVE-2023-51764 class): `\n.\n`, `\r.\r`, `\n.\r\n` and `\r\n.\n` never end
//! a message.

pub mod client;
pub mod command;
pub mod data;
pub mod reply;

pub use client::Extensions;
pub use command::{Command, MailFrom, RcptTo, parse_command};
pub use data::{DataOutcome, DataReceiver, LineEndingCheck};
pub use reply::Reply;
