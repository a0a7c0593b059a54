//! The commands that name a message: LIST [msg], RETR msg, DELE msg,
//! TOP msg n, UIDL [msg] (RFC 1939 §5, §7).
//!
//! A message number is decimal digits only (no sign), at least 1, at most
//! `u32::MAX`; whether such a message exists (or is marked as deleted) is
//! the server's answer, not the parser's. TOP's line count is any
//! non-negative number that fits in 64 bits. A number too large is an
//! error, never wrapped or saturated (issue 14: a front end that reads it
//! otherwise must not see another command than we do).

use super::{Command, ParseError, args};

fn number(a: &[u8]) -> Option<u64> {
    if a.is_empty() || !a.iter().all(u8::is_ascii_digit) {
        return None;
    }
    a.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

fn msgno(a: &[u8], cmd: &'static str) -> Result<u32, ParseError> {
    number(a)
        .filter(|&n| n >= 1)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or(ParseError::InvalidArgument(cmd))
}

/// One optional message number.
fn optional(rest: &[u8], cmd: &'static str) -> Result<Option<u32>, ParseError> {
    match args(rest, cmd)?.as_slice() {
        [] => Ok(None),
        [a] => Ok(Some(msgno(a, cmd)?)),
        _ => Err(ParseError::TooManyArguments(cmd)),
    }
}

/// One required message number.
fn required(rest: &[u8], cmd: &'static str) -> Result<u32, ParseError> {
    optional(rest, cmd)?.ok_or(ParseError::MissingArgument(cmd))
}

pub(super) fn list(rest: &[u8]) -> Result<Command, ParseError> {
    Ok(Command::List(optional(rest, "LIST")?))
}

pub(super) fn uidl(rest: &[u8]) -> Result<Command, ParseError> {
    Ok(Command::Uidl(optional(rest, "UIDL")?))
}

pub(super) fn retr(rest: &[u8]) -> Result<Command, ParseError> {
    Ok(Command::Retr(required(rest, "RETR")?))
}

pub(super) fn dele(rest: &[u8]) -> Result<Command, ParseError> {
    Ok(Command::Dele(required(rest, "DELE")?))
}

pub(super) fn top(rest: &[u8]) -> Result<Command, ParseError> {
    match args(rest, "TOP")?.as_slice() {
        [m, n] => Ok(Command::Top {
            msg: msgno(m, "TOP")?,
            lines: number(n).ok_or(ParseError::InvalidArgument("TOP"))?,
        }),
        [] | [_] => Err(ParseError::MissingArgument("TOP")),
        _ => Err(ParseError::TooManyArguments("TOP")),
    }
}
