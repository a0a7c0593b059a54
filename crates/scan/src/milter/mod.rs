//! Milters (Sendmail's mail filter protocol, version 6), so that
//! clamav-milter, spamass-milter, OpenDKIM and their kind plug into
//! facteur-smtpd as they do into Postfix: [`codec`] reads and writes the
//! packets (pure), [`session`] holds one conversation.

pub mod codec;
pub mod session;

pub use session::{Decision, EndOfMessage, Session};
