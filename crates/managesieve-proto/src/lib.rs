//! ManageSieve (RFC 5804) as a pure codec: no I/O.
//!
//! A command arrives as one or more lines: a line that ends with a literal
//! announcement (`{12+}` or `{12}`) is followed by that many octets, then
//! the rest of the command on the next line. [`Receiver`] is fed the lines
//! and the literals, one after the other, and answers what it needs next
//! ([`Need`]); once a command is whole, [`parse`] turns its tokens into a
//! [`Command`]. [`Response`] and the writers below produce what the server
//! sends.
//!
//! Bounds: a literal may be at most the receiver's `max_literal` octets
//! (the largest script accepted; a larger one is refused before a byte of
//! it is read, the session skips it), a command at most [`MAX_TOKENS`]
//! tokens. Quoted strings hold no CR, LF or NUL (RFC 5804 §4). Nothing
//! here panics on any input.

use thiserror::Error;

/// Most tokens in one command (the longest, RENAMESCRIPT, has 3).
pub const MAX_TOKENS: usize = 8;
/// Longest command line, octets (literals not counted).
pub const MAX_LINE: usize = 8 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// An atom (a command name, NIL...), as written.
    Atom(String),
    /// A quoted string or a literal's octets.
    Str(Vec<u8>),
    Number(u64),
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum Error {
    #[error("{0}")]
    Syntax(&'static str),
    /// A literal over the limit: the session must skip `size` octets then
    /// the rest of the line.
    #[error("literal too big ({size} octets, at most {max})")]
    TooBig { size: u64, max: usize, sync: bool },
}

/// What the receiver needs next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Need {
    /// A literal of this many octets; `sync`: `{n}` (the client waits for
    /// a go-ahead), else `{n+}`.
    Literal { size: usize, sync: bool },
    /// The command is whole.
    Done(Vec<Token>),
}

/// Assembles one command from its lines and literals.
#[derive(Debug)]
pub struct Receiver {
    tokens: Vec<Token>,
    max_literal: usize,
}

fn is_atom_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'=' | b'*')
}

impl Receiver {
    pub fn new(max_literal: usize) -> Receiver {
        Receiver {
            tokens: Vec::new(),
            max_literal,
        }
    }

    /// Forget a half-received command (after an error).
    pub fn reset(&mut self) {
        self.tokens.clear();
    }

    fn push(&mut self, t: Token) -> Result<(), Error> {
        if self.tokens.len() >= MAX_TOKENS {
            return Err(Error::Syntax("too many arguments"));
        }
        self.tokens.push(t);
        Ok(())
    }

    /// One line, its line end removed.
    pub fn line(&mut self, line: &[u8]) -> Result<Need, Error> {
        let mut i = 0;
        loop {
            while i < line.len() && line[i] == b' ' {
                i += 1;
            }
            if i >= line.len() {
                if self.tokens.is_empty() {
                    return Err(Error::Syntax("empty command"));
                }
                return Ok(Need::Done(std::mem::take(&mut self.tokens)));
            }
            match line[i] {
                b'"' => {
                    i += 1;
                    let mut s = Vec::new();
                    loop {
                        match line.get(i) {
                            None => return Err(Error::Syntax("unterminated quoted string")),
                            Some(b'"') => {
                                i += 1;
                                break;
                            }
                            Some(b'\\') => match line.get(i + 1) {
                                Some(c @ (b'"' | b'\\')) => {
                                    s.push(*c);
                                    i += 2;
                                }
                                _ => return Err(Error::Syntax("bad escape in quoted string")),
                            },
                            Some(0) => return Err(Error::Syntax("NUL in quoted string")),
                            Some(c) => {
                                s.push(*c);
                                i += 1;
                            }
                        }
                    }
                    self.push(Token::Str(s))?;
                }
                b'{' => {
                    let close = line[i..].iter().position(|&b| b == b'}').map(|p| p + i);
                    let Some(close) = close else {
                        return Err(Error::Syntax("bad literal"));
                    };
                    if close + 1 != line.len() {
                        return Err(Error::Syntax("a literal must end the line"));
                    }
                    let inner = &line[i + 1..close];
                    let (digits, sync) = match inner.strip_suffix(b"+") {
                        Some(d) => (d, false),
                        None => (inner, true),
                    };
                    if digits.is_empty()
                        || digits.len() > 19
                        || !digits.iter().all(u8::is_ascii_digit)
                    {
                        return Err(Error::Syntax("bad literal size"));
                    }
                    let size: u64 = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .ok_or(Error::Syntax("bad literal size"))?;
                    if size > self.max_literal as u64 {
                        self.tokens.clear();
                        return Err(Error::TooBig {
                            size,
                            max: self.max_literal,
                            sync,
                        });
                    }
                    if self.tokens.len() >= MAX_TOKENS {
                        return Err(Error::Syntax("too many arguments"));
                    }
                    return Ok(Need::Literal {
                        size: size as usize,
                        sync,
                    });
                }
                c if c.is_ascii_digit() => {
                    let start = i;
                    while i < line.len() && line[i].is_ascii_digit() {
                        i += 1;
                    }
                    if i < line.len() && line[i] != b' ' {
                        return Err(Error::Syntax("bad number"));
                    }
                    let n = std::str::from_utf8(&line[start..i])
                        .ok()
                        .and_then(|d| d.parse().ok())
                        .ok_or(Error::Syntax("number too large"))?;
                    self.push(Token::Number(n))?;
                }
                c if is_atom_char(c) => {
                    let start = i;
                    while i < line.len() && is_atom_char(line[i]) {
                        i += 1;
                    }
                    if i < line.len() && line[i] != b' ' {
                        return Err(Error::Syntax("bad character in command"));
                    }
                    let a = String::from_utf8_lossy(&line[start..i]).into_owned();
                    self.push(Token::Atom(a))?;
                }
                _ => return Err(Error::Syntax("bad character in command")),
            }
        }
    }

    /// The octets of the literal asked for.
    pub fn literal(&mut self, data: Vec<u8>) {
        self.tokens.push(Token::Str(data));
    }
}

/// The commands (RFC 5804 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Authenticate {
        mechanism: String,
        initial: Option<Vec<u8>>,
    },
    StartTls,
    Logout,
    Capability,
    HaveSpace {
        name: String,
        size: u64,
    },
    PutScript {
        name: String,
        script: Vec<u8>,
    },
    ListScripts,
    SetActive {
        name: String,
    },
    GetScript {
        name: String,
    },
    DeleteScript {
        name: String,
    },
    RenameScript {
        old: String,
        new: String,
    },
    CheckScript {
        script: Vec<u8>,
    },
    Noop {
        tag: Option<Vec<u8>>,
    },
    Unauthenticate,
}

impl Command {
    /// Every name [`Command::name`] gives (metrics register them).
    pub const NAMES: &'static [&'static str] = &[
        "AUTHENTICATE",
        "STARTTLS",
        "LOGOUT",
        "CAPABILITY",
        "HAVESPACE",
        "PUTSCRIPT",
        "LISTSCRIPTS",
        "SETACTIVE",
        "GETSCRIPT",
        "DELETESCRIPT",
        "RENAMESCRIPT",
        "CHECKSCRIPT",
        "NOOP",
        "UNAUTHENTICATE",
    ];

    /// The keyword, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Authenticate { .. } => "AUTHENTICATE",
            Command::StartTls => "STARTTLS",
            Command::Logout => "LOGOUT",
            Command::Capability => "CAPABILITY",
            Command::HaveSpace { .. } => "HAVESPACE",
            Command::PutScript { .. } => "PUTSCRIPT",
            Command::ListScripts => "LISTSCRIPTS",
            Command::SetActive { .. } => "SETACTIVE",
            Command::GetScript { .. } => "GETSCRIPT",
            Command::DeleteScript { .. } => "DELETESCRIPT",
            Command::RenameScript { .. } => "RENAMESCRIPT",
            Command::CheckScript { .. } => "CHECKSCRIPT",
            Command::Noop { .. } => "NOOP",
            Command::Unauthenticate => "UNAUTHENTICATE",
        }
    }
}

fn string(t: Option<&Token>) -> Result<Vec<u8>, Error> {
    match t {
        Some(Token::Str(s)) => Ok(s.clone()),
        _ => Err(Error::Syntax("a string argument is expected")),
    }
}

/// A script name: UTF-8 (RFC 5804 §1.6).
fn name(t: Option<&Token>) -> Result<String, Error> {
    String::from_utf8(string(t)?).map_err(|_| Error::Syntax("script names are UTF-8"))
}

/// A whole command from its tokens.
pub fn parse(tokens: &[Token]) -> Result<Command, Error> {
    let Some(Token::Atom(verb)) = tokens.first() else {
        return Err(Error::Syntax("a command name is expected"));
    };
    let args = &tokens[1..];
    let count = |n: usize| {
        if args.len() == n {
            Ok(())
        } else {
            Err(Error::Syntax("wrong number of arguments"))
        }
    };
    let cmd = match verb.to_ascii_uppercase().as_str() {
        "AUTHENTICATE" => {
            if args.is_empty() || args.len() > 2 {
                return Err(Error::Syntax("wrong number of arguments"));
            }
            let mechanism = String::from_utf8(string(args.first())?)
                .map_err(|_| Error::Syntax("bad mechanism name"))?;
            let initial = match args.get(1) {
                Some(_) => Some(string(args.get(1))?),
                None => None,
            };
            Command::Authenticate { mechanism, initial }
        }
        "STARTTLS" => {
            count(0)?;
            Command::StartTls
        }
        "LOGOUT" => {
            count(0)?;
            Command::Logout
        }
        "CAPABILITY" => {
            count(0)?;
            Command::Capability
        }
        "HAVESPACE" => {
            count(2)?;
            let Some(Token::Number(size)) = args.get(1) else {
                return Err(Error::Syntax("a number is expected"));
            };
            Command::HaveSpace {
                name: name(args.first())?,
                size: *size,
            }
        }
        "PUTSCRIPT" => {
            count(2)?;
            Command::PutScript {
                name: name(args.first())?,
                script: string(args.get(1))?,
            }
        }
        "LISTSCRIPTS" => {
            count(0)?;
            Command::ListScripts
        }
        "SETACTIVE" => {
            count(1)?;
            Command::SetActive {
                name: name(args.first())?,
            }
        }
        "GETSCRIPT" => {
            count(1)?;
            Command::GetScript {
                name: name(args.first())?,
            }
        }
        "DELETESCRIPT" => {
            count(1)?;
            Command::DeleteScript {
                name: name(args.first())?,
            }
        }
        "RENAMESCRIPT" => {
            count(2)?;
            Command::RenameScript {
                old: name(args.first())?,
                new: name(args.get(1))?,
            }
        }
        "CHECKSCRIPT" => {
            count(1)?;
            Command::CheckScript {
                script: string(args.first())?,
            }
        }
        "NOOP" => {
            if args.len() > 1 {
                return Err(Error::Syntax("wrong number of arguments"));
            }
            let tag = match args.first() {
                Some(_) => Some(string(args.first())?),
                None => None,
            };
            Command::Noop { tag }
        }
        "UNAUTHENTICATE" => {
            count(0)?;
            Command::Unauthenticate
        }
        _ => return Err(Error::Syntax("unknown command")),
    };
    Ok(cmd)
}

/// Append `s` as a string: quoted when it can be, else a literal.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    let quotable = s.len() <= 1024 && !s.iter().any(|&b| matches!(b, b'\r' | b'\n' | 0));
    if quotable {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
        out.extend_from_slice(s);
    }
}

/// A final response (RFC 5804 §1.3): OK, NO or BYE, an optional response
/// code, an optional human-readable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub kind: &'static str,
    pub code: Option<String>,
    pub text: String,
}

impl Response {
    pub fn ok(text: impl Into<String>) -> Response {
        Response {
            kind: "OK",
            code: None,
            text: text.into(),
        }
    }

    pub fn no(text: impl Into<String>) -> Response {
        Response {
            kind: "NO",
            code: None,
            text: text.into(),
        }
    }

    pub fn bye(text: impl Into<String>) -> Response {
        Response {
            kind: "BYE",
            code: None,
            text: text.into(),
        }
    }

    pub fn code(mut self, code: impl Into<String>) -> Response {
        self.code = Some(code.into());
        self
    }

    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.kind.as_bytes());
        if let Some(c) = &self.code {
            out.extend_from_slice(b" (");
            out.extend_from_slice(c.as_bytes());
            out.push(b')');
        }
        if !self.text.is_empty() {
            out.push(b' ');
            write_string(out, self.text.as_bytes());
        }
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed `input` split into lines and literals as a session would.
    fn receive(input: &[u8]) -> Result<Vec<Token>, Error> {
        let mut r = Receiver::new(100);
        let mut rest = input;
        loop {
            let end = rest.windows(2).position(|w| w == b"\r\n").expect("a line");
            let line = &rest[..end];
            rest = &rest[end + 2..];
            match r.line(line)? {
                Need::Done(t) => return Ok(t),
                Need::Literal { size, .. } => {
                    r.literal(rest[..size].to_vec());
                    rest = &rest[size..];
                }
            }
        }
    }

    #[test]
    fn commands() {
        let t = receive(b"PUTSCRIPT \"main\" {9+}\r\nkeep;\r\n\r\n\r\n").expect("parses");
        assert_eq!(
            parse(&t),
            Ok(Command::PutScript {
                name: "main".into(),
                script: b"keep;\r\n\r\n".to_vec()
            })
        );
        let t = receive(b"havespace \"a\\\"b\" 1024\r\n").expect("parses");
        assert_eq!(
            parse(&t),
            Ok(Command::HaveSpace {
                name: "a\"b".into(),
                size: 1024
            })
        );
        let t = receive(b"RENAMESCRIPT {1+}\r\na {1}\r\nb\r\n").expect("parses");
        assert_eq!(
            parse(&t),
            Ok(Command::RenameScript {
                old: "a".into(),
                new: "b".into()
            })
        );
        let t = receive(b"Authenticate \"PLAIN\" \"AGEAYg==\"\r\n").expect("parses");
        assert_eq!(
            parse(&t),
            Ok(Command::Authenticate {
                mechanism: "PLAIN".into(),
                initial: Some(b"AGEAYg==".to_vec())
            })
        );
        assert_eq!(
            parse(&receive(b"NOOP\r\n").expect("ok")),
            Ok(Command::Noop { tag: None })
        );
        assert!(parse(&receive(b"FROB\r\n").expect("tokens")).is_err());
        assert!(parse(&receive(b"GETSCRIPT\r\n").expect("tokens")).is_err());
        assert!(parse(&receive(b"LOGOUT x\r\n").expect("tokens")).is_err());
    }

    #[test]
    fn bad_input() {
        let mut r = Receiver::new(100);
        assert!(matches!(
            r.line(b"PUTSCRIPT \"x\" {101+}"),
            Err(Error::TooBig { size: 101, .. })
        ));
        assert!(r.line(b"X \"open").is_err());
        r.reset();
        assert!(r.line(b"X \"a\\b\"").is_err());
        r.reset();
        assert!(r.line(b"X {5+} y").is_err());
        r.reset();
        assert!(r.line(b"X {99999999999999999999+}").is_err());
        r.reset();
        assert!(r.line(b"").is_err());
        r.reset();
        assert!(r.line(b"A B C D E F G H I").is_err());
        r.reset();
        assert!(r.line(b"X (").is_err());
    }

    #[test]
    fn responses() {
        let mut out = Vec::new();
        Response::no("no such script")
            .code("NONEXISTENT")
            .write_to(&mut out);
        Response::ok("").write_to(&mut out);
        write_string(&mut out, b"two\r\nlines");
        assert_eq!(
            out,
            b"NO (NONEXISTENT) \"no such script\"\r\nOK\r\n{10}\r\ntwo\r\nlines"
        );
    }
}
