//! POP3 commands: the keyword dispatch and the argument rules they share.
//!
//! Offers [`parse_command`], which turns one command line (without CRLF)
//! into a [`Command`] or a [`ParseError`] whose text is fit for `-ERR`.
//! Keywords are case-insensitive (RFC 1939 §3); arguments are separated by
//! spaces and are at most 40 octets each, except the PASS argument (the rest
//! of the line: RFC 1939 §7 lets passwords hold spaces) and SASL initial
//! responses (RFC 5034 §4). Which commands are allowed in which state is the
//! server's business, not the parser's.
//!
//! The per-command argument parsers live in `command/`: `user.rs` (USER,
//! PASS), `auth.rs` (AUTH and SASL), `msgno.rs` (LIST, RETR, DELE, TOP,
//! UIDL).

pub mod auth;
mod msgno;
pub(crate) mod user;

/// A parsed command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `USER name` (RFC 1939 §7).
    User(String),
    /// `PASS string` (RFC 1939 §7); the rest of the line, spaces included.
    Pass(String),
    /// `AUTH [mechanism [initial-response]]` (RFC 5034). Without a mechanism
    /// the client asks for the list of mechanisms (the RFC 1734 habit many
    /// clients keep). `initial` is the base64 text as sent (`=` for empty).
    Auth {
        mechanism: Option<String>,
        initial: Option<String>,
    },
    Stat,
    /// `LIST [msg]`.
    List(Option<u32>),
    Retr(u32),
    Dele(u32),
    Noop,
    Rset,
    Quit,
    /// `TOP msg n`: any `n` that fits in 64 bits.
    Top {
        msg: u32,
        lines: u64,
    },
    /// `UIDL [msg]`.
    Uidl(Option<u32>),
    Capa,
    Stls,
}

impl Command {
    /// Every name [`Command::name`] gives (metrics register them).
    pub const NAMES: &'static [&'static str] = &[
        "USER", "PASS", "AUTH", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "QUIT", "TOP",
        "UIDL", "CAPA", "STLS",
    ];

    /// The keyword, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::User(_) => "USER",
            Command::Pass(_) => "PASS",
            Command::Auth { .. } => "AUTH",
            Command::Stat => "STAT",
            Command::List(_) => "LIST",
            Command::Retr(_) => "RETR",
            Command::Dele(_) => "DELE",
            Command::Noop => "NOOP",
            Command::Rset => "RSET",
            Command::Quit => "QUIT",
            Command::Top { .. } => "TOP",
            Command::Uidl(_) => "UIDL",
            Command::Capa => "CAPA",
            Command::Stls => "STLS",
        }
    }
}

/// Why a line is not a command; the text goes back to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty command")]
    Empty,
    #[error("unknown command")]
    Unknown,
    #[error("{0}: too many arguments")]
    TooManyArguments(&'static str),
    #[error("{0}: argument missing")]
    MissingArgument(&'static str),
    #[error("{0}: invalid argument")]
    InvalidArgument(&'static str),
    #[error("{0}: argument too long")]
    ArgumentTooLong(&'static str),
}

/// RFC 1939 §3: arguments may be up to 40 characters long.
pub(crate) const MAX_ARG: usize = 40;

/// Parses one command line (without its CRLF).
pub fn parse_command(line: &[u8]) -> Result<Command, ParseError> {
    let (keyword, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &line[line.len()..]),
    };
    if keyword.is_empty() {
        return Err(if line.iter().all(|&b| b == b' ') {
            ParseError::Empty
        } else {
            ParseError::Unknown
        });
    }
    if keyword.len() > 4 {
        return Err(ParseError::Unknown);
    }
    let mut kw = [0u8; 4];
    kw[..keyword.len()].copy_from_slice(keyword);
    kw.make_ascii_uppercase();
    match &kw[..keyword.len()] {
        b"USER" => user::user(rest),
        b"PASS" => user::pass(rest),
        b"AUTH" => auth::auth(rest),
        b"STAT" => none(rest, "STAT", Command::Stat),
        b"LIST" => msgno::list(rest),
        b"RETR" => msgno::retr(rest),
        b"DELE" => msgno::dele(rest),
        b"NOOP" => none(rest, "NOOP", Command::Noop),
        b"RSET" => none(rest, "RSET", Command::Rset),
        b"QUIT" => none(rest, "QUIT", Command::Quit),
        b"TOP" => msgno::top(rest),
        b"UIDL" => msgno::uidl(rest),
        b"CAPA" => none(rest, "CAPA", Command::Capa),
        b"STLS" => none(rest, "STLS", Command::Stls),
        _ => Err(ParseError::Unknown),
    }
}

/// The arguments of `rest`: split on spaces (runs of spaces count as one,
/// trailing spaces are ignored), each a printable ASCII word of at most
/// [`MAX_ARG`] octets.
pub(crate) fn args<'a>(rest: &'a [u8], cmd: &'static str) -> Result<Vec<&'a [u8]>, ParseError> {
    let mut out = Vec::new();
    for a in rest.split(|&b| b == b' ').filter(|a| !a.is_empty()) {
        if a.len() > MAX_ARG {
            return Err(ParseError::ArgumentTooLong(cmd));
        }
        if !a.iter().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::InvalidArgument(cmd));
        }
        if out.len() == 2 {
            return Err(ParseError::TooManyArguments(cmd));
        }
        out.push(a);
    }
    Ok(out)
}

/// A command without arguments.
fn none(rest: &[u8], cmd: &'static str, c: Command) -> Result<Command, ParseError> {
    if args(rest, cmd)?.is_empty() {
        Ok(c)
    } else {
        Err(ParseError::TooManyArguments(cmd))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use ParseError as E;

    #[test]
    fn table() {
        let cases: &[(&[u8], Result<Command, ParseError>)] = &[
            (b"STAT", Ok(Command::Stat)),
            (b"stat", Ok(Command::Stat)),
            (b"StAt ", Ok(Command::Stat)),
            (b"NOOP", Ok(Command::Noop)),
            (b"RSET", Ok(Command::Rset)),
            (b"QUIT", Ok(Command::Quit)),
            (b"CAPA", Ok(Command::Capa)),
            (b"STLS", Ok(Command::Stls)),
            (b"STAT 1", Err(E::TooManyArguments("STAT"))),
            (b"QUIT now", Err(E::TooManyArguments("QUIT"))),
            (b"", Err(E::Empty)),
            (b"   ", Err(E::Empty)),
            (b" STAT", Err(E::Unknown)),
            (
                b"APOP mrose c4c9334bac560ecc979e58001b3e22fb",
                Err(E::Unknown),
            ),
            (b"XTND XMIT", Err(E::Unknown)),
            (b"STATS", Err(E::Unknown)),
            (b"ST", Err(E::Unknown)),
            (b"\xff\xfe", Err(E::Unknown)),
            (b"LIST", Ok(Command::List(None))),
            (b"LIST 2", Ok(Command::List(Some(2)))),
            (b"list  2 ", Ok(Command::List(Some(2)))),
            (b"LIST 1 2", Err(E::TooManyArguments("LIST"))),
            (b"LIST 0", Err(E::InvalidArgument("LIST"))),
            (b"LIST -1", Err(E::InvalidArgument("LIST"))),
            (b"LIST +1", Err(E::InvalidArgument("LIST"))),
            (b"LIST x", Err(E::InvalidArgument("LIST"))),
            (b"LIST 4294967295", Ok(Command::List(Some(u32::MAX)))),
            (b"LIST 4294967296", Err(E::InvalidArgument("LIST"))),
            (b"LIST 007", Ok(Command::List(Some(7)))),
            (b"RETR 1", Ok(Command::Retr(1))),
            (b"RETR", Err(E::MissingArgument("RETR"))),
            (b"RETR 1 2", Err(E::TooManyArguments("RETR"))),
            (b"DELE 3", Ok(Command::Dele(3))),
            (b"DELE", Err(E::MissingArgument("DELE"))),
            (b"TOP 1 0", Ok(Command::Top { msg: 1, lines: 0 })),
            (b"top 1 10", Ok(Command::Top { msg: 1, lines: 10 })),
            (
                b"TOP 1 18446744073709551615",
                Ok(Command::Top {
                    msg: 1,
                    lines: u64::MAX,
                }),
            ),
            (
                b"TOP 1 18446744073709551616",
                Err(E::InvalidArgument("TOP")),
            ),
            (
                b"TOP 1 99999999999999999999999999",
                Err(E::InvalidArgument("TOP")),
            ),
            (b"TOP 4294967296 1", Err(E::InvalidArgument("TOP"))),
            (b"RETR 000000000000000000000000000001", Ok(Command::Retr(1))),
            (
                b"RETR 99999999999999999999",
                Err(E::InvalidArgument("RETR")),
            ),
            (
                b"DELE 9999999999999999999999999999999999999999",
                Err(E::InvalidArgument("DELE")),
            ),
            (b"TOP 1", Err(E::MissingArgument("TOP"))),
            (b"TOP", Err(E::MissingArgument("TOP"))),
            (b"TOP 1 -1", Err(E::InvalidArgument("TOP"))),
            (b"TOP 1 2 3", Err(E::TooManyArguments("TOP"))),
            (b"UIDL", Ok(Command::Uidl(None))),
            (b"UIDL 9", Ok(Command::Uidl(Some(9)))),
            (
                b"USER alice@example.test",
                Ok(Command::User("alice@example.test".into())),
            ),
            (b"user Alice", Ok(Command::User("Alice".into()))),
            (b"USER", Err(E::MissingArgument("USER"))),
            (b"USER a b", Err(E::TooManyArguments("USER"))),
            (b"USER a\x00b", Err(E::InvalidArgument("USER"))),
            (b"PASS secret", Ok(Command::Pass("secret".into()))),
            (b"PASS two words ", Ok(Command::Pass("two words ".into()))),
            (b"PASS caf\xc3\xa9", Ok(Command::Pass("caf\u{e9}".into()))),
            (b"PASS", Err(E::MissingArgument("PASS"))),
            (b"PASS \xff", Err(E::InvalidArgument("PASS"))),
            (b"PASS a\x00b", Err(E::InvalidArgument("PASS"))),
            (
                b"AUTH",
                Ok(Command::Auth {
                    mechanism: None,
                    initial: None,
                }),
            ),
            (
                b"AUTH plain",
                Ok(Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: None,
                }),
            ),
            (
                b"AUTH PLAIN AGFsaWNlAHB3",
                Ok(Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: Some("AGFsaWNlAHB3".into()),
                }),
            ),
            (
                b"AUTH PLAIN =",
                Ok(Command::Auth {
                    mechanism: Some("PLAIN".into()),
                    initial: Some("=".into()),
                }),
            ),
            (b"AUTH PLAIN a b", Err(E::TooManyArguments("AUTH"))),
            (b"AUTH PL\x01IN", Err(E::InvalidArgument("AUTH"))),
        ];
        for (line, want) in cases {
            assert_eq!(
                &parse_command(line),
                want,
                "{:?}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn long_arguments() {
        let long = format!("LIST {}", "1".repeat(MAX_ARG + 1));
        assert_eq!(
            parse_command(long.as_bytes()),
            Err(E::ArgumentTooLong("LIST"))
        );
        // User names are addresses, often longer than RFC 1939's 40 octets.
        let addr = format!("USER {}@example.test", "a".repeat(60));
        assert!(matches!(
            parse_command(addr.as_bytes()),
            Ok(Command::User(_))
        ));
        let huge = format!("USER {}", "a".repeat(user::MAX_USER + 1));
        assert_eq!(
            parse_command(huge.as_bytes()),
            Err(E::ArgumentTooLong("USER"))
        );
        // SASL initial responses are not limited to 40 octets.
        let ir = format!("AUTH PLAIN {}", "QUFB".repeat(100));
        assert!(matches!(
            parse_command(ir.as_bytes()),
            Ok(Command::Auth { .. })
        ));
        let mech = format!("AUTH {}", "X".repeat(MAX_ARG + 1));
        assert_eq!(
            parse_command(mech.as_bytes()),
            Err(E::ArgumentTooLong("AUTH"))
        );
    }

    #[test]
    fn never_panics_on_any_short_input() {
        let alphabet: &[u8] = b"ST AUPLI1\x00\xff";
        let mut line = Vec::new();
        for a in alphabet {
            for b in alphabet {
                for c in alphabet {
                    for d in alphabet {
                        line.clear();
                        line.extend_from_slice(&[*a, *b, *c, *d, b' ', *a]);
                        let _ = parse_command(&line);
                    }
                }
            }
        }
    }
}
