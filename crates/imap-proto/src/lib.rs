//! facteur's IMAP codec: pure code, no I/O.
//!
//! - [`types`]: the command tree ([`Tagged`], [`Command`], ...).
//! - [`parse_command`]: bytes of one complete command (lines joined by CRLF,
//!   literals inline) to a [`Tagged`], or a [`ParseError`] saying why (with
//!   the tag when there is one, for `tag BAD message`). One file per command
//!   group under `parse/`. APPEND stops at its message literal's
//!   announcement so the session can stream the message.
//! - [`literal_at_end`]: whether a command line ends with a literal
//!   announcement (`{n}`, `{n+}`, `~{n}`), so the session knows to read the
//!   literal's octets (after a `+` continuation for the synchronising form).
//! - [`seq`]: [`SequenceSet::contains`] and [`SequenceSet::ranges`] (`*`,
//!   reversed ranges, empty mailboxes).
//! - [`section_label`]: the name a FETCH response gives an item
//!   (`BODY.PEEK[1]<0.10>` answers as `BODY[1]<0>`).
//! - [`encode`]: response syntax (strings, literals, flag lists, dates, sets).
//! - [`utf7`]: modified UTF-7 mailbox names (RFC 3501 §5.1.3), strict.
//!
//! Invariants: nothing here panics on any input; parsing is linear in the
//! input, allocates in proportion to it (a literal's announced length is
//! never used to reserve memory) and recurses only for SEARCH keys, to
//! [`MAX_SEARCH_DEPTH`]. Strings in the command tree are valid UTF-8.
//!
//! Standards: RFC 9051 (IMAP4rev2), RFC 3501 (IMAP4rev1) and the extensions
//! listed in `parse/mod.rs`.
//!
//! Security: every byte parsed here comes from a peer, possibly before
//! authentication; errors are values for the peer, never panics.
//!
//! We write our own rather than use imap-codec: facteur needs IMAP4rev2,
//! CONDSTORE/QRESYNC, and APPEND literals streamed to disk instead of held
//! in memory, which imap-codec (alpha, rev1 only) does not offer.

pub mod encode;
mod frame;
mod label;
mod parse;
pub mod seq;
pub mod types;
pub mod utf7;

pub use frame::literal_at_end;
pub use label::section_label;
pub use parse::{MAX_SEARCH_DEPTH, ParseError, append_next, parse_command, parse_imap_url};
pub use types::*;
