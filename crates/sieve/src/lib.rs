//! Sieve, the mail filtering language (RFC 5228), with the extensions mail
//! users and their clients rely on: our own interpreter, pure code with no
//! I/O.
//!
//! Why our own: no permissively licensed Sieve interpreter exists in Rust
//! (sieve-rs is AGPL-3.0, which facteur's `MIT OR Apache-2.0` cannot take;
//! the other crates parse only the base language). Dovecot's Pigeonhole is
//! the reference we measure against: its test suite runs on this crate in
//! CI (crates/sieve-testsuite, tests/e2e/test_pigeonhole.py), and so does a
//! comparison of both interpreters' actions (test_sieve_differential.py).
//!
//! Layout:
//! - [`lex`] and [`parse`]: text to a generic command tree (RFC 5228 §8).
//! - [`compile`]: `require`, each command's and test's arguments checked,
//!   the tree typed into [`ir`]; errors carry line and column.
//! - [`strings`]: encoded-character and variable templates.
//! - [`run`]: the interpreter: one script against one message and its
//!   envelope, giving a list of [`Action`]s, never side effects. What needs
//!   the world (does a mailbox exist, was this message seen before, another
//!   script for `include`, the clock) is asked of a [`Host`].
//!
//! Invariants and limits: compiling is linear in the script (nesting cut at
//! [`parse::MAX_NESTING`]); a run is bounded in steps ([`Limits`]), in
//! actions, in redirects, in include depth, in the size of every variable
//! and in regex size, so a hostile script costs bounded time and memory.
//! Nothing panics on any script or message.
//!
//! Standards: RFC 5228 (base), 3894 (copy), 5429 (reject, ereject), 5232
//! (imap4flags), 5229 (variables), 5231 (relational), 5233 (subaddress),
//! 5173 (body), 5230 and 6131 (vacation, vacation-seconds), 5260 (date,
//! index), 5490 (mailbox), 6609 (include), 5293 (editheader), 7352
//! (duplicate), 5463 (ihave), 8579 (special-use), 5183 (environment),
//! draft-ietf-sieve-regex-01 (regex), 4790 and 5051 (comparators).

pub mod compile;
pub mod ir;
pub mod lex;
pub mod parse;
pub mod run;
pub mod strings;

use std::collections::BTreeSet;

pub use compile::{CustomExtension, Options};
pub use run::{
    Action, EditHeaderPolicy, Envelope, Host, Limits, Outcome, RunError, VacationOptions,
    redirect::RedirectSender,
};

/// A compile error, at a line and column of the script.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {col}: {message}")]
pub struct CompileError {
    pub line: u32,
    pub col: u32,
    pub message: String,
}

impl CompileError {
    pub fn new(pos: lex::Pos, message: impl Into<String>) -> CompileError {
        CompileError {
            line: pos.line,
            col: pos.col,
            message: message.into(),
        }
    }

    pub fn pos(&self) -> lex::Pos {
        lex::Pos {
            line: self.line,
            col: self.col,
        }
    }
}

/// A compiled script.
#[derive(Debug, Clone)]
pub struct Script {
    pub(crate) cmds: Vec<ir::Cmd>,
    /// The extensions the script requires.
    pub extensions: BTreeSet<String>,
}

impl Script {
    /// Compile a script's text. All errors found are returned (at most
    /// [`compile::MAX_ERRORS`]).
    pub fn compile(text: &str, opts: &Options) -> Result<Script, Vec<CompileError>> {
        let tree = parse::parse_all(text)?;
        let (cmds, extensions) = compile::compile(&tree, opts)?;
        Ok(Script { cmds, extensions })
    }

    /// Compile, and on validation errors give also the script as far as
    /// it compiled (its commands in error left out: never to run, only to
    /// be checked further, e.g. by [`check_includes`], so that all of a
    /// script's mistakes are said at once). None after syntax errors.
    pub fn compile_partial(
        text: &str,
        opts: &Options,
    ) -> Result<Script, (Option<Script>, Vec<CompileError>)> {
        let tree = parse::parse_all(text).map_err(|e| (None, e))?;
        let (cmds, extensions, errors) = compile::compile_all(&tree, opts);
        let script = Script { cmds, extensions };
        if errors.is_empty() {
            Ok(script)
        } else {
            Err((Some(script), errors))
        }
    }

    /// Compile from bytes: scripts must be UTF-8 (RFC 5228 §2.2).
    pub fn compile_bytes(bytes: &[u8], opts: &Options) -> Result<Script, Vec<CompileError>> {
        match std::str::from_utf8(bytes) {
            Ok(s) => Script::compile(s, opts),
            Err(e) => {
                let before = &bytes[..e.valid_up_to()];
                let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
                Err(vec![CompileError {
                    line: u32::try_from(line).unwrap_or(u32::MAX),
                    col: 1,
                    message: "the script is not valid UTF-8".into(),
                }])
            }
        }
    }

    pub fn commands(&self) -> &[ir::Cmd] {
        &self.cmds
    }
}

/// Compile an included script's text for [`check_includes`] (None: there
/// is none), its errors as one line.
pub fn compile_included(text: Option<Vec<u8>>, opts: &Options) -> Result<Option<Script>, String> {
    match text {
        Some(t) => Script::compile_bytes(&t, opts).map(Some).map_err(|e| {
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        }),
        None => Ok(None),
    }
}

/// How [`check_includes`] loads an included script: (`:global`, name) to
/// the compiled script, None when there is none, or why it failed.
pub type IncludeLoader<'a> = dyn FnMut(bool, &str) -> Result<Option<Script>, String> + 'a;

/// One `include` of a script: (`:global`, name, `:optional`).
pub type IncludeRef = (bool, String, bool);

impl Script {
    /// The scripts this one includes, in order (RFC 6609), wherever the
    /// include commands are.
    pub fn includes(&self) -> Vec<IncludeRef> {
        fn walk(cmds: &[ir::Cmd], out: &mut Vec<IncludeRef>) {
            for c in cmds {
                match c {
                    ir::Cmd::Include {
                        global,
                        name,
                        optional,
                        ..
                    } => out.push((*global, name.clone(), *optional)),
                    ir::Cmd::If {
                        branches,
                        otherwise,
                    } => {
                        for (_, b) in branches {
                            walk(b, out);
                        }
                        if let Some(b) = otherwise {
                            walk(b, out);
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.cmds, &mut out);
        out
    }
}

/// Check the include graph of `script` before it is used (what a script
/// editor, ManageSieve's PUTSCRIPT and `facteurctl sieve put` want to
/// know): every script it includes, directly or not, can be loaded and
/// compiles (`load` returns None for a missing one, which only an
/// `:optional` include may be), no script includes itself through any
/// chain, at most `max_includes` distinct scripts are involved and the
/// nesting is at most `max_depth` deep. The errors, in the order found.
pub fn check_includes(
    script: &Script,
    load: &mut IncludeLoader<'_>,
    max_depth: usize,
    max_includes: usize,
) -> Vec<String> {
    struct Walk<'l> {
        load: &'l mut IncludeLoader<'l>,
        stack: Vec<(bool, String)>,
        seen: BTreeSet<(bool, String)>,
        done: std::collections::BTreeMap<(bool, String), bool>,
        errors: Vec<String>,
        max_depth: usize,
        max_includes: usize,
    }
    impl Walk<'_> {
        /// False when something below `script` is wrong; each level of
        /// the chain then says which include failed.
        fn visit(&mut self, script: &Script) -> bool {
            let mut ok = true;
            for (global, name, optional) in script.includes() {
                if self.errors.len() >= compile::MAX_ERRORS {
                    return false;
                }
                let key = (global, name.clone());
                if self.stack.contains(&key) {
                    self.errors
                        .push(format!("circular include of script \"{name}\""));
                    ok = false;
                    continue;
                }
                if self.stack.len() + 1 > self.max_depth {
                    self.errors.push(format!(
                        "include of script \"{name}\" nests more than {} levels deep",
                        self.max_depth
                    ));
                    ok = false;
                    continue;
                }
                let first = self.seen.insert(key.clone());
                if first && self.seen.len() > self.max_includes {
                    self.errors
                        .push(format!("more than {} scripts included", self.max_includes));
                    ok = false;
                    continue;
                }
                // a script checked already (through another include) is not
                // walked again: an include graph of shared scripts costs its
                // size, not the number of its paths
                if let Some(&inner_ok) = self.done.get(&key) {
                    if !inner_ok {
                        self.errors
                            .push(format!("failed to include script \"{name}\""));
                        ok = false;
                    }
                    continue;
                }
                match (self.load)(global, &name) {
                    Ok(Some(inner)) => {
                        self.stack.push(key.clone());
                        let inner_ok = self.visit(&inner);
                        self.stack.pop();
                        self.done.insert(key, inner_ok);
                        if !inner_ok {
                            self.errors
                                .push(format!("failed to include script \"{name}\""));
                            ok = false;
                        }
                    }
                    Ok(None) if optional => {}
                    Ok(None) => {
                        self.errors
                            .push(format!("included script \"{name}\" does not exist"));
                        ok = false;
                    }
                    Err(e) => {
                        self.errors.push(format!("included script \"{name}\": {e}"));
                        ok = false;
                    }
                }
            }
            ok
        }
    }
    let mut w = Walk {
        load,
        stack: Vec::new(),
        seen: BTreeSet::new(),
        done: std::collections::BTreeMap::new(),
        errors: Vec::new(),
        max_depth,
        max_includes,
    };
    let _ = w.visit(script);
    w.errors
}
