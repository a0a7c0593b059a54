//! The Sieve grammar (RFC 5228 §8.2) over the lexer's tokens: commands with
//! their arguments, tests and blocks, as a generic tree. What a command
//! means and which arguments it takes is the compiler's business
//! ([`crate::compile`]); this only knows the shape.
//!
//! Nesting is cut at [`MAX_NESTING`] blocks and as many tests (test
//! lists, `not not ...`), and a command takes at most [`MAX_ARGUMENTS`]
//! arguments, so a hostile script cannot exhaust the stack.
//!
//! A syntax error does not end the parse: it is recorded, the rest of the
//! command it is in is skipped (to its `;`, past its block, or up to the
//! `}` that closes the block around it), and parsing goes on, so that a
//! script's author sees all its mistakes at once.

use crate::CompileError;
use crate::lex::{Pos, Token};

/// Deepest nesting of blocks, and of tests.
pub const MAX_NESTING: usize = 32;

/// Most arguments of one command or test.
pub const MAX_ARGUMENTS: usize = 32;

#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    Tag(String),
    Number(u64),
    /// A single string (`list == false`) or a string list in brackets.
    Strings {
        values: Vec<String>,
        list: bool,
    },
}

#[derive(Debug, Clone)]
pub struct Argument {
    pub arg: Arg,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct Test {
    pub name: String,
    pub args: Vec<Argument>,
    pub tests: Vec<Test>,
    /// The tests were written as a parenthesised list.
    pub test_list: bool,
    pub pos: Pos,
}

#[derive(Debug, Clone)]
pub struct Command {
    pub name: String,
    pub args: Vec<Argument>,
    pub tests: Vec<Test>,
    pub test_list: bool,
    pub block: Option<Vec<Command>>,
    pub pos: Pos,
}

struct Parser {
    toks: Vec<(Token, Pos)>,
    i: usize,
    end: Pos,
    /// Errors recorded and recovered from.
    errors: Vec<CompileError>,
    /// The end of the script came inside a block (said once).
    unclosed: bool,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i).map(|(t, _)| t)
    }

    fn pos(&self) -> Pos {
        self.toks.get(self.i).map_or(self.end, |(_, p)| *p)
    }

    fn unexpected(&self, what: &str) -> CompileError {
        let found = self
            .peek()
            .map_or_else(|| "end of script".to_string(), Token::describe);
        CompileError::new(self.pos(), format!("expected {what}, found {found}"))
    }

    fn take(&mut self) -> Option<Token> {
        let t = self.toks.get(self.i).map(|(t, _)| t.clone());
        self.i += 1;
        t
    }

    fn commands(&mut self, depth: usize, in_block: bool) -> Result<Vec<Command>, CompileError> {
        let mut out = Vec::new();
        loop {
            let r = match self.peek() {
                None if !in_block => return Ok(out),
                Some(Token::RBrace) if in_block => return Ok(out),
                // a `}` too many at the top: said, and passed
                Some(Token::RBrace) => {
                    self.errors.push(self.unexpected("a command"));
                    self.i += 1;
                    continue;
                }
                Some(Token::Ident(_)) => self.command(depth),
                // the script ends inside blocks: said once, not once a level
                None => {
                    if !self.unclosed {
                        self.unclosed = true;
                        self.errors.push(self.unexpected("'}' to close the block"));
                    }
                    return Ok(out);
                }
                _ => Err(self.unexpected("a command")),
            };
            match r {
                Ok(c) => out.push(c),
                Err(e) => {
                    self.errors.push(e);
                    self.skip_command();
                }
            }
        }
    }

    /// After an error: skip the rest of the command it is in (to its `;`,
    /// past its block), stopping before a `}` that closes the enclosing
    /// block. Brackets opened before the error and closed after it are
    /// passed over.
    fn skip_command(&mut self) {
        let mut depth = 0usize;
        let mut braces = 0usize;
        while let Some(t) = self.peek() {
            match t {
                Token::LParen | Token::LBracket => depth += 1,
                Token::RParen | Token::RBracket => depth = depth.saturating_sub(1),
                Token::LBrace => braces += 1,
                Token::RBrace if braces == 0 => return,
                Token::RBrace => {
                    braces -= 1;
                    if braces == 0 {
                        self.i += 1;
                        return;
                    }
                }
                Token::Semicolon if braces == 0 && depth == 0 => {
                    self.i += 1;
                    return;
                }
                _ => {}
            }
            self.i += 1;
        }
    }

    /// Skip a block whose `{` was just taken, through its `}`.
    fn skip_block(&mut self) {
        let mut braces = 1usize;
        while let Some(t) = self.take() {
            match t {
                Token::LBrace => braces += 1,
                Token::RBrace => {
                    braces -= 1;
                    if braces == 0 {
                        return;
                    }
                }
                _ => {}
            }
        }
    }

    fn command(&mut self, depth: usize) -> Result<Command, CompileError> {
        let pos = self.pos();
        let Some(Token::Ident(name)) = self.take() else {
            return Err(CompileError::new(pos, "expected a command"));
        };
        let (args, tests, test_list) = self.arguments(0)?;
        let block = match self.take() {
            Some(Token::Semicolon) => None,
            Some(Token::LBrace) => {
                if depth >= MAX_NESTING {
                    // said once for the block, which is passed over whole
                    self.errors.push(CompileError::new(
                        pos,
                        format!("blocks nested deeper than {MAX_NESTING} levels"),
                    ));
                    self.skip_block();
                    return Ok(Command {
                        name,
                        args,
                        tests,
                        test_list,
                        block: None,
                        pos,
                    });
                }
                let block = self.commands(depth + 1, true)?;
                self.i += 1; // the closing brace
                Some(block)
            }
            _ => {
                self.i -= 1;
                return Err(self.unexpected("';' or '{' after the command's arguments"));
            }
        };
        Ok(Command {
            name,
            args,
            tests,
            test_list,
            block,
            pos,
        })
    }

    #[allow(clippy::type_complexity)]
    fn arguments(
        &mut self,
        test_depth: usize,
    ) -> Result<(Vec<Argument>, Vec<Test>, bool), CompileError> {
        let mut args = Vec::new();
        loop {
            let pos = self.pos();
            let arg = match self.peek() {
                Some(Token::Tag(_)) => match self.take() {
                    Some(Token::Tag(t)) => Arg::Tag(t),
                    _ => unreachable!("peeked a tag"),
                },
                Some(Token::Number(n)) => {
                    let n = *n;
                    self.i += 1;
                    Arg::Number(n)
                }
                Some(Token::Str(_)) => match self.take() {
                    Some(Token::Str(s)) => Arg::Strings {
                        values: vec![s],
                        list: false,
                    },
                    _ => unreachable!("peeked a string"),
                },
                Some(Token::LBracket) => {
                    self.i += 1;
                    Arg::Strings {
                        values: self.string_list()?,
                        list: true,
                    }
                }
                _ => break,
            };
            if args.len() == MAX_ARGUMENTS {
                self.errors.push(CompileError::new(
                    pos,
                    format!("more than {MAX_ARGUMENTS} arguments"),
                ));
            }
            args.push(Argument { arg, pos });
        }
        let mut tests = Vec::new();
        let mut test_list = false;
        match self.peek() {
            Some(Token::Ident(_)) => tests.push(self.test(test_depth + 1)?),
            Some(Token::LParen) => {
                self.i += 1;
                test_list = true;
                loop {
                    tests.push(self.test(test_depth + 1)?);
                    match self.take() {
                        Some(Token::Comma) => {}
                        Some(Token::RParen) => break,
                        _ => {
                            self.i -= 1;
                            return Err(self.unexpected("',' or ')' in the test list"));
                        }
                    }
                }
            }
            _ => {}
        }
        Ok((args, tests, test_list))
    }

    fn string_list(&mut self) -> Result<Vec<String>, CompileError> {
        let mut out = Vec::new();
        loop {
            match self.take() {
                Some(Token::Str(s)) => out.push(s),
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected("a string in the list"));
                }
            }
            match self.take() {
                Some(Token::Comma) => {}
                Some(Token::RBracket) => return Ok(out),
                _ => {
                    self.i -= 1;
                    return Err(self.unexpected("',' or ']' in the string list"));
                }
            }
        }
    }

    fn test(&mut self, depth: usize) -> Result<Test, CompileError> {
        let pos = self.pos();
        if depth > MAX_NESTING {
            return Err(CompileError::new(
                pos,
                format!("tests nested deeper than {MAX_NESTING} levels"),
            ));
        }
        let Some(Token::Ident(name)) = self.take() else {
            self.i -= 1;
            return Err(self.unexpected("a test"));
        };
        let (args, tests, test_list) = self.arguments(depth)?;
        Ok(Test {
            name,
            args,
            tests,
            test_list,
            pos,
        })
    }
}

/// Parse a whole script into its commands.
pub fn parse(script: &str) -> Result<Vec<Command>, CompileError> {
    parse_all(script).map_err(|mut e| e.swap_remove(0))
}

/// Parse a whole script into its commands, or give every lexical and
/// syntax error found (in the order of the script).
pub fn parse_all(script: &str) -> Result<Vec<Command>, Vec<CompileError>> {
    let (toks, lex_errors) = crate::lex::tokens_all(script);
    let last = script.rsplit('\n').next().unwrap_or_default();
    let end = Pos {
        line: u32::try_from(script.matches('\n').count() + 1).unwrap_or(u32::MAX),
        col: u32::try_from(last.chars().count() + 1).unwrap_or(u32::MAX),
    };
    let mut p = Parser {
        toks,
        i: 0,
        end,
        errors: Vec::new(),
        unclosed: false,
    };
    let cmds = p.commands(0, false);
    let mut errors = lex_errors;
    errors.append(&mut p.errors);
    match cmds {
        Ok(c) if errors.is_empty() => return Ok(c),
        Ok(_) => {}
        Err(e) => errors.push(e),
    }
    errors.sort_by_key(|e| (e.line, e.col));
    errors.truncate(crate::compile::MAX_ERRORS);
    Err(errors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let cmds = parse(
            "require [\"fileinto\"];\nif anyof (header :contains \"subject\" \"x\", not exists \"y\") {\n fileinto \"a\"; } elsif true { stop; } else { keep; }",
        )
        .expect("parses");
        assert_eq!(cmds.len(), 4);
        assert_eq!(cmds[0].name, "require");
        assert!(
            matches!(&cmds[0].args[0].arg, Arg::Strings { values, list: true } if values == &["fileinto"])
        );
        let t = &cmds[1].tests[0];
        assert_eq!(t.name, "anyof");
        assert!(t.test_list);
        assert_eq!(t.tests.len(), 2);
        assert_eq!(t.tests[1].tests[0].name, "exists");
        assert_eq!(cmds[1].block.as_ref().map(Vec::len), Some(1));
        assert_eq!(cmds[2].name, "elsif");
        assert_eq!(cmds[3].pos, Pos { line: 3, col: 39 });
    }

    #[test]
    fn errors() {
        for (src, line, col) in [
            ("keep", 1, 5),
            ("keep }", 1, 6),
            ("if true { keep;", 1, 16),
            ("fileinto [\"a\" \"b\"];", 1, 15),
            ("if anyof() {}", 1, 10),
            ("\"x\";", 1, 1),
        ] {
            let e = parse(src).expect_err(src);
            assert_eq!((e.line, e.col), (line, col), "{src}: {e}");
        }
        let deep = "if ".to_string() + &"not ".repeat(100) + "true {}";
        assert!(parse(&deep).is_err());
        let deep = "if true {".repeat(100) + &"}".repeat(100);
        assert!(parse(&deep).is_err());
    }

    #[test]
    fn every_error_is_said_and_the_rest_is_read() {
        let script = "if true {\n keep\n}\nif true { keep, keep }\nfrop $$$;\nif anyof(true,) { stop; }\nstop;\n";
        let e = parse_all(script).expect_err("errors");
        let lines: Vec<u32> = e.iter().map(|e| e.line).collect();
        assert_eq!(lines, [3, 4, 5, 5, 6], "{e:?}");
        // a block too deep is said once and passed over whole
        let deep = "if true {".repeat(40) + "stop;" + &"}".repeat(40) + " keep; ]";
        let e = parse_all(&deep).expect_err("too deep");
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(e[0].message.contains("nested deeper"));
        // a script ending inside blocks: one error
        let e = parse_all("if true { if true { if true { keep;").expect_err("unclosed");
        assert_eq!(e.len(), 1, "{e:?}");
        // errors are bounded
        let many = "frop $;".repeat(1000);
        assert_eq!(
            parse_all(&many).expect_err("many").len(),
            crate::compile::MAX_ERRORS
        );
    }
}
