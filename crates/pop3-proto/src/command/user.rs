//! USER and PASS (RFC 1939 §7): the clear-text login, two commands.
//!
//! USER takes one name: printable, no spaces, no control characters, UTF-8,
//! at most [`MAX_USER`] octets (names are mail addresses, so RFC 1939's 40
//! octets is too short). PASS takes the rest of the line verbatim, spaces
//! included (RFC 1939 §7 allows this), as UTF-8 without control characters.
//!
//! Security: whether a clear-text password may be sent at all (only over TLS,
//! or on loopback when configured) is decided by the server before it looks
//! at the password; the parser never logs or keeps it.

use super::{Command, ParseError};

/// The longest user name accepted (an address: 64 + 1 + 255 is the SMTP
/// maximum, 255 is plenty in practice and what Dovecot allows).
pub const MAX_USER: usize = 255;

pub(super) fn user(rest: &[u8]) -> Result<Command, ParseError> {
    let words: Vec<&[u8]> = rest
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        [] => Err(ParseError::MissingArgument("USER")),
        [name] => {
            if name.len() > MAX_USER {
                return Err(ParseError::ArgumentTooLong("USER"));
            }
            let s = std::str::from_utf8(name).map_err(|_| ParseError::InvalidArgument("USER"))?;
            if s.chars().any(char::is_control) {
                return Err(ParseError::InvalidArgument("USER"));
            }
            Ok(Command::User(s.to_owned()))
        }
        _ => Err(ParseError::TooManyArguments("USER")),
    }
}

pub(super) fn pass(rest: &[u8]) -> Result<Command, ParseError> {
    if rest.is_empty() {
        return Err(ParseError::MissingArgument("PASS"));
    }
    let s = std::str::from_utf8(rest).map_err(|_| ParseError::InvalidArgument("PASS"))?;
    if s.chars().any(char::is_control) {
        return Err(ParseError::InvalidArgument("PASS"));
    }
    Ok(Command::Pass(s.to_owned()))
}
