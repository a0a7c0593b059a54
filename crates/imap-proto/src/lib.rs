//! facteur's IMAP codec: pure code, no I/O.
//!
//! - [`types`]: the command tree ([`Tagged`], [`Command`], ...).
//! - [`parse_command`]: bytes of one complete command (lines joined by CRLF,
//!   literals inline) to a [`Tagged`], or a [`ParseError`] saying why.
//! - [`literal_at_end`]: whether a command line ends with a literal
//!   announcement (`{n}`, `{n+}`, `~{n}`), so the session knows to read the
//!   literal's octets (after a `+` continuation for the synchronising form).
//! - [`encode`]: response syntax (strings, literals, flag lists, dates, sets).
//! - [`utf7`]: modified UTF-7 mailbox names (RFC 3501 §5.1.3).
//!
//! We write our own rather than use imap-codec: facteur needs IMAP4rev2,
//! CONDSTORE/QRESYNC, and APPEND literals streamed to disk instead of held
//! in memory, which imap-codec (alpha, rev1 only) does not offer.

pub mod encode;
pub mod types;

pub use types::*;
