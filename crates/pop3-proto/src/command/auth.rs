//! AUTH (RFC 5034): `AUTH mechanism [initial-response]`. The mechanism is a
//! SASL name (at most 20 characters by RFC 4422, we allow 40), upper-cased
//! here; the initial response is kept as text (base64, `=` standing for an
//! empty one, RFC 5034 §4). `AUTH` alone asks for the list of mechanisms
//! (RFC 1734 clients do this).
//!
//! The mechanisms themselves, the decoding of initial and later responses
//! (`*` cancels) and the rule for the authorization identity are
//! facteur-sasl's, shared with IMAP and SMTP.

use super::{Command, MAX_ARG, ParseError};

pub(super) fn auth(rest: &[u8]) -> Result<Command, ParseError> {
    let words: Vec<&[u8]> = rest
        .split(|&b| b == b' ')
        .filter(|w| !w.is_empty())
        .collect();
    let word = |w: &[u8], max: usize| -> Result<String, ParseError> {
        if w.len() > max {
            return Err(ParseError::ArgumentTooLong("AUTH"));
        }
        if !w.iter().all(u8::is_ascii_graphic) {
            return Err(ParseError::InvalidArgument("AUTH"));
        }
        // Checked: ASCII graphic bytes are UTF-8.
        Ok(String::from_utf8_lossy(w).into_owned())
    };
    match words.as_slice() {
        [] => Ok(Command::Auth {
            mechanism: None,
            initial: None,
        }),
        [m] => Ok(Command::Auth {
            mechanism: Some(word(m, MAX_ARG)?.to_ascii_uppercase()),
            initial: None,
        }),
        [m, ir] => Ok(Command::Auth {
            mechanism: Some(word(m, MAX_ARG)?.to_ascii_uppercase()),
            initial: Some(word(ir, usize::MAX)?),
        }),
        _ => Err(ParseError::TooManyArguments("AUTH")),
    }
}
