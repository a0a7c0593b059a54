//! The Sieve lexer (RFC 5228 §8.1): identifiers, tags, numbers with their
//! K/M/G quantifiers, quoted strings, multi-line strings (`text:` ...
//! `.`), the punctuation `[ ] ( ) { } , ;`, and both kinds of comments.
//!
//! Input is the script as UTF-8 text (RFC 5228 §2.2: scripts are UTF-8;
//! the caller refuses anything else). Line ends may be CRLF or bare LF, as
//! scripts edited on any system arrive. Every token carries the line and
//! column where it starts, for error messages. Never panics; the output is
//! at most one token per input byte.

use crate::CompileError;

/// A position in the script: line and column, both from 1 (columns count
/// characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: u32,
    pub col: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Token {
    /// An identifier, as written (names compare ignoring case).
    Ident(String),
    /// `:name`, without the colon.
    Tag(String),
    Number(u64),
    /// A quoted or multi-line string, escapes and dot-stuffing undone.
    Str(String),
    LBracket,
    RBracket,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    Semicolon,
    /// Characters no token starts with (said as an error when met; the
    /// parser then skips the command they are in).
    Bad,
}

/// The longest identifier or tag name (longer ones are an error).
pub const MAX_IDENTIFIER: usize = 32;

impl Token {
    pub fn describe(&self) -> String {
        match self {
            Token::Ident(s) => format!("identifier '{s}'"),
            Token::Tag(s) => format!("tag ':{s}'"),
            Token::Number(n) => format!("number {n}"),
            Token::Str(_) => "string".into(),
            Token::LBracket => "'['".into(),
            Token::RBracket => "']'".into(),
            Token::LParen => "'('".into(),
            Token::RParen => "')'".into(),
            Token::LBrace => "'{'".into(),
            Token::RBrace => "'}'".into(),
            Token::Comma => "','".into(),
            Token::Semicolon => "';'".into(),
            Token::Bad => "unexpected characters".into(),
        }
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    line: u32,
    col: u32,
    /// Errors after which lexing goes on.
    soft: Vec<CompileError>,
}

fn err(pos: Pos, msg: impl Into<String>) -> CompileError {
    CompileError::new(pos, msg)
}

impl Lexer<'_> {
    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            col: self.col,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn bump(&mut self) -> Option<u8> {
        let c = *self.s.get(self.i)?;
        self.i += 1;
        if c == b'\n' {
            self.line += 1;
            self.col = 1;
        } else if c & 0xC0 != 0x80 {
            // count characters, not UTF-8 continuation bytes
            self.col += 1;
        }
        Some(c)
    }

    fn rest(&self) -> &[u8] {
        &self.s[self.i..]
    }

    /// Skip white space and comments.
    fn skip(&mut self) -> Result<(), CompileError> {
        loop {
            match self.peek() {
                Some(b' ' | b'\t' | b'\r' | b'\n') => {
                    self.bump();
                }
                Some(b'#') => {
                    while let Some(c) = self.bump() {
                        if c == b'\n' {
                            break;
                        }
                    }
                }
                Some(b'/') if self.rest().starts_with(b"/*") => {
                    let start = self.pos();
                    self.bump();
                    self.bump();
                    loop {
                        if self.rest().starts_with(b"*/") {
                            self.bump();
                            self.bump();
                            break;
                        }
                        if self.bump().is_none() {
                            return Err(err(start, "unterminated comment"));
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    fn ident(&mut self) -> String {
        let start = self.i;
        let pos = self.pos();
        while matches!(self.peek(), Some(c) if c.is_ascii_alphanumeric() || c == b'_') {
            self.bump();
        }
        let id = String::from_utf8_lossy(&self.s[start..self.i]).into_owned();
        if id.len() > MAX_IDENTIFIER {
            let shown: String = id.chars().take(MAX_IDENTIFIER).collect();
            self.soft.push(err(
                pos,
                format!("identifier '{shown}...' too long (at most {MAX_IDENTIFIER} characters)"),
            ));
        }
        id
    }

    fn number(&mut self, pos: Pos) -> Result<u64, CompileError> {
        let mut n: Option<u64> = Some(0);
        while let Some(c @ b'0'..=b'9') = self.peek() {
            self.bump();
            n = n
                .and_then(|n| n.checked_mul(10))
                .and_then(|n| n.checked_add(u64::from(c - b'0')));
        }
        let shift = match self.peek() {
            Some(b'K' | b'k') => 10,
            Some(b'M' | b'm') => 20,
            Some(b'G' | b'g') => 30,
            _ => 0,
        };
        if shift > 0 {
            self.bump();
            n = n.and_then(|n| n.checked_mul(1 << shift));
        }
        let n = n.unwrap_or_else(|| {
            // said, and read as the largest so that parsing goes on
            self.soft.push(err(
                pos,
                format!("number too large (the largest is {})", u64::MAX),
            ));
            u64::MAX
        });
        if matches!(self.peek(), Some(c) if c.is_ascii_alphabetic() || c == b'_') {
            return Err(err(pos, "invalid number"));
        }
        Ok(n)
    }

    fn quoted(&mut self, pos: Pos) -> Result<String, CompileError> {
        self.bump(); // the opening quote
        let mut out = Vec::new();
        loop {
            match self.bump() {
                None => return Err(err(pos, "unterminated string")),
                Some(b'"') => break,
                // RFC 5228 §2.4.2: `\"` and `\\` are the escapes; any other
                // backslash is dropped and the next character kept.
                Some(b'\\') => match self.bump() {
                    Some(c) => out.push(c),
                    None => return Err(err(pos, "unterminated string")),
                },
                // a line break inside the string is a CRLF in its value,
                // whatever the script's line ends
                Some(b'\n') if out.last() != Some(&b'\r') => out.extend_from_slice(b"\r\n"),
                Some(c) => out.push(c),
            }
        }
        String::from_utf8(out).map_err(|_| err(pos, "string is not valid UTF-8"))
    }

    /// After `text:`: blanks, then a comment or the line end, then lines up
    /// to one holding a lone dot. A line starting with a dot has it doubled
    /// (RFC 5228 §2.4.2). Lines end with CRLF in the value whatever the
    /// script's line ends (as in quoted strings: mail's line end).
    fn multiline(&mut self, pos: Pos) -> Result<String, CompileError> {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.bump();
        }
        match self.peek() {
            Some(b'#') => {
                while let Some(c) = self.bump() {
                    if c == b'\n' {
                        break;
                    }
                }
            }
            Some(b'\r') if self.rest().starts_with(b"\r\n") => {
                self.bump();
                self.bump();
            }
            Some(b'\n') => {
                self.bump();
            }
            _ => return Err(err(pos, "text: must be followed by a line end")),
        }
        let mut out = Vec::new();
        loop {
            if self.i >= self.s.len() {
                return Err(err(pos, "unterminated multi-line string"));
            }
            let line_start = self.i;
            while let Some(c) = self.bump() {
                if c == b'\n' {
                    break;
                }
            }
            let whole = &self.s[line_start..self.i];
            let had_eol = whole.ends_with(b"\n");
            let mut line = whole.strip_suffix(b"\n").unwrap_or(whole);
            line = line.strip_suffix(b"\r").unwrap_or(line);
            if line == b"." {
                break;
            }
            if !had_eol {
                return Err(err(pos, "unterminated multi-line string"));
            }
            // dot-stuffing undone; every line ends with CRLF
            let line = if line.starts_with(b"..") {
                &line[1..]
            } else {
                line
            };
            out.extend_from_slice(line);
            out.extend_from_slice(b"\r\n");
        }
        String::from_utf8(out).map_err(|_| err(pos, "string is not valid UTF-8"))
    }

    fn next(&mut self) -> Result<Option<(Token, Pos)>, CompileError> {
        self.skip()?;
        let pos = self.pos();
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let punct = match c {
            b'[' => Some(Token::LBracket),
            b']' => Some(Token::RBracket),
            b'(' => Some(Token::LParen),
            b')' => Some(Token::RParen),
            b'{' => Some(Token::LBrace),
            b'}' => Some(Token::RBrace),
            b',' => Some(Token::Comma),
            b';' => Some(Token::Semicolon),
            _ => None,
        };
        if let Some(t) = punct {
            self.bump();
            return Ok(Some((t, pos)));
        }
        let tok = match c {
            b'"' => Token::Str(self.quoted(pos)?),
            b'0'..=b'9' => Token::Number(self.number(pos)?),
            b':' => {
                self.bump();
                if !matches!(self.peek(), Some(c) if c.is_ascii_alphabetic() || c == b'_') {
                    return Err(err(pos, "':' must be followed by a tag name"));
                }
                Token::Tag(self.ident())
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let id = self.ident();
                if id.eq_ignore_ascii_case("text") && self.peek() == Some(b':') {
                    self.bump();
                    Token::Str(self.multiline(pos)?)
                } else {
                    Token::Ident(id)
                }
            }
            _ => {
                let ch = String::from_utf8_lossy(&self.rest()[..self.rest().len().min(4)])
                    .chars()
                    .next()
                    .unwrap_or('?');
                self.soft.push(err(
                    pos,
                    format!("unexpected character(s) starting with '{ch}'"),
                ));
                // the whole run, one error
                while let Some(c) = self.peek() {
                    let starts_token = c.is_ascii_alphanumeric()
                        || b" \t\r\n[](){},;:\"#_".contains(&c)
                        || self.rest().starts_with(b"/*");
                    if starts_token {
                        break;
                    }
                    self.bump();
                }
                Token::Bad
            }
        };
        Ok(Some((tok, pos)))
    }
}

/// The script's tokens, or the first lexical error.
pub fn tokens(script: &str) -> Result<Vec<(Token, Pos)>, CompileError> {
    let (toks, mut errors) = tokens_all(script);
    if errors.is_empty() {
        Ok(toks)
    } else {
        Err(errors.swap_remove(0))
    }
}

/// The script's tokens and every lexical error: after most the lexer
/// goes on (a number too large, an identifier too long, stray characters
/// as a [`Token::Bad`]); an unterminated string or comment ends the
/// tokens.
pub fn tokens_all(script: &str) -> (Vec<(Token, Pos)>, Vec<CompileError>) {
    let mut lx = Lexer {
        s: script.as_bytes(),
        i: 0,
        line: 1,
        col: 1,
        soft: Vec::new(),
    };
    let mut out = Vec::new();
    let mut fatal = None;
    loop {
        match lx.next() {
            Ok(Some(t)) => out.push(t),
            Ok(None) => break,
            Err(e) => {
                fatal = Some(e);
                break;
            }
        }
    }
    let mut errors = lx.soft;
    errors.extend(fatal);
    (out, errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Token> {
        tokens(s)
            .expect("lexes")
            .into_iter()
            .map(|(t, _)| t)
            .collect()
    }

    #[test]
    fn basics() {
        use Token::*;
        assert_eq!(
            toks("if size :over 100K { discard; } # c\n/* b\n */ [\"a\",\"b\\\"c\\q\"]"),
            vec![
                Ident("if".into()),
                Ident("size".into()),
                Tag("over".into()),
                Number(102_400),
                LBrace,
                Ident("discard".into()),
                Semicolon,
                RBrace,
                LBracket,
                Str("a".into()),
                Comma,
                Str("b\"cq".into()),
                RBracket,
            ]
        );
        assert_eq!(
            toks("1g 2m 0"),
            vec![Number(1 << 30), Number(2 << 20), Number(0)]
        );
    }

    #[test]
    fn multiline() {
        let t = toks("text: # comment\nline one\n..dot\n.\n;");
        assert_eq!(
            t,
            vec![Token::Str("line one\r\n.dot\r\n".into()), Token::Semicolon]
        );
        let t = toks("TEXT:  \r\nx\r\n.\r\n");
        assert_eq!(t, vec![Token::Str("x\r\n".into())]);
    }

    #[test]
    fn errors_have_positions() {
        let e = tokens("keep;\n  \"open").expect_err("unterminated");
        assert_eq!((e.line, e.col), (2, 3));
        assert!(tokens("/* never closed").is_err());
        assert!(tokens("text: x\n").is_err());
        assert!(tokens("text:\nno end\n").is_err());
        assert!(tokens("99999999999999999999").is_err());
        assert!(tokens("12x").is_err());
        assert!(tokens(": x").is_err());
        assert!(tokens("@").is_err());
        let e = tokens("\"é\" @").expect_err("bad char");
        assert_eq!(e.col, 5);
    }

    #[test]
    fn lexing_goes_on_after_most_errors() {
        let long = "a".repeat(MAX_IDENTIFIER + 1);
        let (t, e) = tokens_all(&format!(
            "size :over 99999999999999999999 $$ {long}; x 40000000000G;"
        ));
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].message.contains("number too large"));
        assert!(e[1].message.contains("unexpected character"));
        assert!(e[2].message.contains("too long"));
        assert_eq!(t[2].0, Token::Number(u64::MAX));
        assert_eq!(t[3].0, Token::Bad);
        assert_eq!(t.last().map(|t| &t.0), Some(&Token::Semicolon));
        // an unterminated string ends the tokens
        let (t, e) = tokens_all("keep; \"open");
        assert_eq!((t.len(), e.len()), (2, 1));
    }
}
