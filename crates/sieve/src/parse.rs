//! The Sieve grammar (RFC 5228 §8.2) over the lexer's tokens: commands with
//! their arguments, tests and blocks, as a generic tree. What a command
//! means and which arguments it takes is the compiler's business
//! ([`crate::compile`]); this only knows the shape.
//!
//! Nesting (blocks, test lists, `not not ...`) is cut at [`MAX_NESTING`]
//! so a hostile script cannot exhaust the stack.

use crate::CompileError;
use crate::lex::{Pos, Token};

/// Deepest nesting of blocks and tests.
pub const MAX_NESTING: usize = 64;

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
            match self.peek() {
                None if !in_block => return Ok(out),
                Some(Token::RBrace) if in_block => return Ok(out),
                Some(Token::Ident(_)) => out.push(self.command(depth)?),
                None => return Err(self.unexpected("'}' to close the block")),
                _ => return Err(self.unexpected("a command")),
            }
        }
    }

    fn command(&mut self, depth: usize) -> Result<Command, CompileError> {
        let pos = self.pos();
        let Some(Token::Ident(name)) = self.take() else {
            return Err(CompileError::new(pos, "expected a command"));
        };
        let (args, tests, test_list) = self.arguments(depth)?;
        let block = match self.take() {
            Some(Token::Semicolon) => None,
            Some(Token::LBrace) => {
                if depth >= MAX_NESTING {
                    return Err(CompileError::new(pos, "blocks nested too deeply"));
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
        depth: usize,
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
            args.push(Argument { arg, pos });
        }
        let mut tests = Vec::new();
        let mut test_list = false;
        match self.peek() {
            Some(Token::Ident(_)) => tests.push(self.test(depth + 1)?),
            Some(Token::LParen) => {
                self.i += 1;
                test_list = true;
                loop {
                    tests.push(self.test(depth + 1)?);
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
        if depth >= MAX_NESTING {
            return Err(CompileError::new(pos, "tests nested too deeply"));
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
    let toks = crate::lex::tokens(script)?;
    let last = script.rsplit('\n').next().unwrap_or_default();
    let end = Pos {
        line: u32::try_from(script.matches('\n').count() + 1).unwrap_or(u32::MAX),
        col: u32::try_from(last.chars().count() + 1).unwrap_or(u32::MAX),
    };
    let mut p = Parser { toks, i: 0, end };
    p.commands(0, false)
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
}
