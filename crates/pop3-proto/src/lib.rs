//! facteur-pop3-proto: the POP3 codec, pure code with no I/O.
//!
//! Offers what a POP3 server needs between the socket and its state machine:
//!
//! ```text
//!   (lines)       framed by facteur-daemon's LineIo (the shared framer);
//!                 MAX_LINE below is the POP3 limit
//!   command.rs    Command and parse_command: keyword dispatch, shared
//!                 argument rules; one file per command family below
//!   command/user.rs   USER, PASS (RFC 1939 §7)
//!   command/auth.rs   AUTH (RFC 5034); the mechanisms are facteur-sasl's
//!   command/msgno.rs  LIST, RETR, DELE, TOP, UIDL arguments (RFC 1939 §5, §7)
//!   response.rs   +OK / -ERR lines with RESP-CODES (RFC 2449 §8, RFC 3206),
//!                 multi-line responses, CAPA (RFC 2449 §5), SASL challenges
//!   stuff.rs      DotStuffer: streams a CRLF message as a multi-line
//!                 response body (RFC 1939 §3), chunk by chunk, counting the
//!                 octets it sends, or only counting them
//!   top.rs        TopLimiter: which prefix of a message TOP sends
//! ```
//!
//! Invariants: parsing never panics and never allocates more than the line
//! it was given; the framer holds at most `max` bytes of an unfinished line;
//! every response line is CRLF-terminated and never contains CR or LF from
//! its text; a stuffed message never contains a line `.` before its
//! terminator, and its reported size is exactly the octets written between
//! the status line and the terminating `.CRLF`.
//!
//! Standards: RFC 1939 (POP3), RFC 2449 (CAPA, RESP-CODES, PIPELINING),
//! RFC 3206 (SYS and AUTH response codes), RFC 2595 (STLS), RFC 5034 (SASL
//! AUTH).
//!
//! Security: everything here parses bytes from unauthenticated peers. Errors
//! are values for the peer (`-ERR`), never panics; limits bound memory.

mod command;
mod response;
mod stuff;
mod top;

pub use command::{Command, ParseError, parse_command};

pub use response::{Capa, RespCode, Response, write_continuation, write_multiline};
pub use stuff::DotStuffer;
pub use top::TopLimiter;

/// The longest command line accepted, line ending included. RFC 2449 §4
/// limits commands to 255 octets; SASL responses (RFC 5034 §4) may be longer
/// (a PLAIN response with a long password), so the limit is more generous.
pub const MAX_LINE: usize = 1024;
