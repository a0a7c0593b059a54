//! From the parse tree to the compiled script ([`crate::ir`]): `require`
//! and the extensions it enables, each command's and test's tags and
//! positional arguments, the rules between commands (`require` first,
//! `elsif`/`else` after `if`, what needs which extension), and the strings
//! turned into templates.
//!
//! Errors are collected (up to [`MAX_ERRORS`]) rather than stopping at the
//! first, as an editor wants them; each has the line and column of the
//! command, test or argument it is about.

mod args;
mod commands;
mod tests;

pub use tests::{DATE_PARTS, valid_header_name};

use std::collections::BTreeSet;

use crate::CompileError;
use crate::ir::Cmd;
use crate::lex::Pos;
use crate::parse;

/// More errors than this and compilation stops.
pub const MAX_ERRORS: usize = 20;

/// The extensions this interpreter knows (RFC names, lower case).
pub const EXTENSIONS: &[&str] = &[
    "body",
    "comparator-i;ascii-casemap",
    "comparator-i;ascii-numeric",
    "comparator-i;octet",
    "comparator-i;unicode-casemap",
    "copy",
    "date",
    "duplicate",
    "editheader",
    "encoded-character",
    "envelope",
    "environment",
    "ereject",
    "fileinto",
    "ihave",
    "imap4flags",
    "include",
    "index",
    "mailbox",
    "regex",
    "reject",
    "relational",
    "special-use",
    "subaddress",
    "vacation",
    "vacation-seconds",
    "variables",
];

/// Why addheader may not add `value`: a NUL (no header can carry it), or
/// more than `max` bytes (0: no limit). Other control characters are
/// let through (encoded when the field is written).
pub fn bad_header_value(value: &str, max: usize) -> Option<String> {
    if let Some(i) = value.find('\0') {
        let shown: String = value[..i].chars().take(40).collect();
        return Some(format!(
            "the value \"{shown}\" is invalid: it contains a NUL character"
        ));
    }
    if max > 0 && value.len() > max {
        return Some(format!(
            "the value is too long ({} bytes, the limit is {max})",
            value.len()
        ));
    }
    None
}

/// What the host lets a script use.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extensions turned off (by name); everything in [`EXTENSIONS`] else.
    pub disabled: Vec<String>,
    /// A host extension (the test suite's `vnd.dovecot.testsuite`): its
    /// name and the commands and tests it adds, all passed through as
    /// [`crate::ir::Cmd::Custom`] / [`crate::ir::Test::Custom`].
    pub custom: Option<CustomExtension>,
    /// Largest `:days`/`:seconds` period vacation accepts, and the
    /// smallest; values outside are clamped (RFC 5230 §4.1).
    pub vacation_min_period: u64,
    pub vacation_max_period: u64,
    /// Longest value addheader may add (bytes; 0: no limit), checked here
    /// for a constant and at run time for one built from variables.
    pub editheader_max_header_size: usize,
}

#[derive(Debug, Clone, Default)]
pub struct CustomExtension {
    pub names: Vec<String>,
    pub commands: Vec<String>,
    pub tests: Vec<String>,
    /// Names of the extension's variable namespaces (`tst` for `${tst.name}`).
    pub namespaces: Vec<String>,
}

impl Options {
    /// Every extension but `disabled` (names in any case: a site's
    /// `[sieve] disabled_extensions`).
    pub fn disabling(disabled: &[String]) -> Options {
        Options {
            disabled: disabled.iter().map(|e| e.to_ascii_lowercase()).collect(),
            ..Options::default()
        }
    }

    pub fn knows(&self, ext: &str) -> bool {
        let ext = ext.to_ascii_lowercase();
        (EXTENSIONS.contains(&ext.as_str()) && !self.disabled.iter().any(|d| d == &ext))
            || self
                .custom
                .as_ref()
                .is_some_and(|c| c.names.iter().any(|n| n == &ext))
    }
}

pub(crate) struct Compiler<'o> {
    pub opts: &'o Options,
    /// Extensions required so far (lower case).
    pub exts: BTreeSet<String>,
    pub errors: Vec<CompileError>,
    /// Names of the variables declared `global` (include, RFC 6609).
    pub globals: BTreeSet<String>,
    /// Unknown command and test names already reported.
    pub unknown_names: BTreeSet<String>,
    /// The variables `set` declares.
    pub declared: BTreeSet<String>,
}

impl Compiler<'_> {
    pub fn has(&self, ext: &str) -> bool {
        self.exts.contains(ext)
    }

    pub fn error(&mut self, pos: Pos, msg: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(CompileError::new(pos, msg));
        }
    }

    /// A special-use attribute (RFC 6154's use-attr: a backslash and an
    /// atom), checked when the script writes it as a constant.
    pub fn check_special_use(&mut self, what: &str, flag: &str, pos: Pos) {
        let atom = |c: char| {
            c.is_ascii_graphic() && !matches!(c, '(' | ')' | '{' | '%' | '*' | '"' | '\\' | ']')
        };
        let ok = flag
            .strip_prefix('\\')
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(atom));
        if !ok {
            self.error(pos, format!("{what}: invalid special-use flag \"{flag}\""));
        }
    }

    /// `require` arguments: every name must be known.
    fn require(&mut self, cmd: &parse::Command) {
        let names = match cmd.args.as_slice() {
            [
                parse::Argument {
                    arg: parse::Arg::Strings { values, .. },
                    ..
                },
            ] if cmd.tests.is_empty() && cmd.block.is_none() => values.clone(),
            _ => {
                self.error(cmd.pos, "require takes one string list");
                return;
            }
        };
        for name in names {
            let lower = name.to_ascii_lowercase();
            if self.opts.knows(&lower) {
                self.exts.insert(lower);
                if name.eq_ignore_ascii_case("vacation-seconds") {
                    self.exts.insert("vacation".into());
                }
            } else {
                self.error(cmd.pos, format!("unsupported extension \"{name}\""));
            }
        }
    }

    /// A block of commands (the script, or an if's block).
    pub fn block(&mut self, cmds: &[parse::Command], top: bool) -> Vec<Cmd> {
        let mut out: Vec<Cmd> = Vec::new();
        let mut requires_allowed = top;
        // after an elsif without an if, the rest of its chain is not
        // reported again
        let mut orphan_chain = false;
        for cmd in cmds {
            if self.errors.len() >= MAX_ERRORS {
                break;
            }
            let name = cmd.name.to_ascii_lowercase();
            if name == "require" {
                if requires_allowed {
                    self.require(cmd);
                } else {
                    self.error(cmd.pos, "require must come before any other command");
                }
                continue;
            }
            requires_allowed = false;
            if name == "elsif" || name == "else" {
                let Some(Cmd::If {
                    branches,
                    otherwise,
                }) = out.last_mut()
                else {
                    if !orphan_chain {
                        self.error(cmd.pos, format!("{name} without a preceding if"));
                    }
                    orphan_chain = name == "elsif";
                    continue;
                };
                if otherwise.is_some() {
                    self.error(cmd.pos, format!("{name} after else"));
                    continue;
                }
                let Some(block) = &cmd.block else {
                    self.error(cmd.pos, format!("{name} needs a block"));
                    continue;
                };
                if name == "else" {
                    let body = self.block(block, false);
                    if !cmd.args.is_empty() || !cmd.tests.is_empty() {
                        self.error(cmd.pos, "else takes no arguments");
                    }
                    *otherwise = Some(body);
                } else {
                    let test = self.single_test(cmd);
                    let body = self.guarded_block(&test, block);
                    branches.push((test, body));
                }
                continue;
            }
            orphan_chain = false;
            if let Some(c) = self.command(cmd, &name) {
                out.push(c);
            }
        }
        out
    }

    /// The block of an if/elsif branch. Under a false `ihave` (RFC 5463
    /// §4) the block may use commands this interpreter does not know: it is
    /// not compiled, and it never runs.
    pub fn guarded_block(&mut self, test: &crate::ir::Test, block: &[parse::Command]) -> Vec<Cmd> {
        if matches!(test, crate::ir::Test::Ihave(false)) {
            return Vec::new();
        }
        self.block(block, false)
    }

    /// The one test of `if`/`elsif`.
    fn single_test(&mut self, cmd: &parse::Command) -> crate::ir::Test {
        if !cmd.args.is_empty() {
            self.error(cmd.pos, format!("{} takes a test, not arguments", cmd.name));
        }
        match cmd.tests.as_slice() {
            [t] if !cmd.test_list => self.test(t),
            _ => {
                self.error(cmd.pos, format!("{} needs exactly one test", cmd.name));
                crate::ir::Test::False
            }
        }
    }
}

/// Compile a parsed script.
pub(crate) fn compile(
    cmds: &[parse::Command],
    opts: &Options,
) -> Result<(Vec<Cmd>, BTreeSet<String>), Vec<CompileError>> {
    let (out, exts, errors) = compile_all(cmds, opts);
    if errors.is_empty() {
        Ok((out, exts))
    } else {
        Err(errors)
    }
}

/// Compile a parsed script as far as it goes: the commands that compiled
/// (those in error left out), the extensions required, and the errors.
pub(crate) fn compile_all(
    cmds: &[parse::Command],
    opts: &Options,
) -> (Vec<Cmd>, BTreeSet<String>, Vec<CompileError>) {
    let mut c = Compiler {
        opts,
        exts: BTreeSet::new(),
        errors: Vec::new(),
        globals: BTreeSet::new(),
        unknown_names: BTreeSet::new(),
        declared: BTreeSet::new(),
    };
    let out = c.block(cmds, true);
    (out, c.exts, c.errors)
}
