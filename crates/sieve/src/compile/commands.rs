//! Compiling commands: control (RFC 5228 §3), actions (§4) and the
//! commands extensions add.

use super::Compiler;
use super::args::{Groups, TagArg};
use crate::ir::{Cmd, FlagOp, Modifiers, Vacation};
use crate::parse;

fn no_tags(_: &str) -> Option<(TagArg, Option<&'static str>)> {
    None
}

impl Compiler<'_> {
    fn needs_cmd(&mut self, ext: &str, pos: crate::lex::Pos, name: &str) -> bool {
        if self.has(ext) {
            return true;
        }
        self.error(pos, format!("unknown command '{name}' (require \"{ext}\")"));
        false
    }

    /// Says what is wrong with a command given tests or a block it does
    /// not take (the tests first: a block after them is not said again).
    fn no_block(&mut self, cmd: &parse::Command, what: &str) {
        if let Some(t) = cmd.tests.first() {
            self.stray_test(what, t, cmd.pos);
        } else if cmd.block.is_some() {
            self.error(
                cmd.pos,
                format!("the {what} command takes no block, but one is given"),
            );
        }
    }

    /// A test after the arguments of a command or test that takes none:
    /// said as the typo it most likely is (a tag without its colon, a
    /// semicolon left out before the next command) or as it is.
    pub fn stray_test(&mut self, what: &str, t: &parse::Test, pos: crate::lex::Pos) {
        let name = t.name.to_ascii_lowercase();
        let noun = self.noun(what);
        let msg = if super::args::is_tag_name(&name) {
            format!("missing colon ':' before ':{name}' tag in the {what} {noun}")
        } else if super::tests::TESTS.contains(&name.as_str()) {
            format!("the {what} {noun} accepts no sub-tests, but some are specified")
        } else {
            format!("missing semicolon ';' after the {what} {noun}")
        };
        self.error(pos, msg);
    }

    pub fn command(&mut self, cmd: &parse::Command, name: &str) -> Option<Cmd> {
        let what = name;
        let pos = cmd.pos;
        let custom = self.opts.custom.as_ref().is_some_and(|c| {
            c.commands.iter().any(|n| n == what) && c.names.iter().any(|n| self.has(n))
        });
        if custom {
            let block = cmd.block.as_ref().map(|b| self.block(b, false));
            return Some(Cmd::Custom(Box::new(self.custom(
                cmd.name.clone(),
                &cmd.args,
                &cmd.tests,
                block,
                pos,
            ))));
        }
        if what == "if" {
            let Some(block) = &cmd.block else {
                self.error(pos, "the if command requires a block, but none is given");
                // its test is checked all the same
                let _ = self.single_test(cmd);
                return None;
            };
            let test = self.single_test(cmd);
            let body = self.guarded_block(&test, block);
            return Some(Cmd::If {
                branches: vec![(test, body)],
                otherwise: None,
            });
        }
        if super::tests::TESTS.contains(&what) {
            self.error(pos, format!("cannot use test '{}' as a command", cmd.name));
            return None;
        }
        if !KNOWN.contains(&what) {
            // once per name, as an unknown name is usually one mistake
            if self.unknown_names.insert(what.to_string()) {
                self.error(pos, format!("unknown command '{}'", cmd.name));
            }
            return None;
        }
        if !cmd.tests.is_empty() || cmd.block.is_some() {
            // its arguments are checked all the same, and said first
            let bare = parse::Command {
                tests: Vec::new(),
                block: None,
                ..cmd.clone()
            };
            let _ = self.command(&bare, name);
            self.no_block(cmd, what);
            return None;
        }
        let copy_tag = |ext_copy: bool| {
            move |n: &str| match n {
                "copy" if ext_copy => Some((TagArg::None, None)),
                _ => None,
            }
        };
        let has_copy = self.has("copy");
        let has_flags = self.has("imap4flags");
        Some(match what {
            "stop" | "discard" | "return" => {
                let s = self.scan(what, &cmd.args, Groups::default(), &no_tags)?;
                self.arity(what, &s, 0, pos);
                match what {
                    "stop" => Cmd::Stop,
                    "discard" => Cmd::Discard,
                    _ => {
                        if !self.needs_cmd("include", pos, what) {
                            return None;
                        }
                        Cmd::Return
                    }
                }
            }
            "keep" => {
                let own =
                    move |n: &str| (n == "flags" && has_flags).then_some((TagArg::List, None));
                let mut s = self.scan(what, &cmd.args, Groups::default(), &own)?;
                let flags = match s.take("flags") {
                    Some(t) => Some(self.list_arg(what, t.arg, t.pos)?),
                    None => None,
                };
                self.arity(what, &s, 0, pos);
                Cmd::Keep { flags }
            }
            "fileinto" => {
                if !self.needs_cmd("fileinto", pos, what) {
                    return None;
                }
                let has_create = self.has("mailbox");
                let has_su = self.has("special-use");
                let own = move |n: &str| match n {
                    "copy" if has_copy => Some((TagArg::None, None)),
                    "flags" if has_flags => Some((TagArg::List, None)),
                    "create" if has_create => Some((TagArg::None, None)),
                    "specialuse" if has_su => Some((TagArg::String, None)),
                    _ => None,
                };
                let mut s = self.scan(what, &cmd.args, Groups::default(), &own)?;
                let copy = s.flag("copy");
                let create = s.flag("create");
                let flags = match s.take("flags") {
                    Some(t) => Some(self.list_arg(what, t.arg, t.pos)?),
                    None => None,
                };
                let special_use = match s.take("specialuse") {
                    Some(t) => Some(self.tag_string(what, &t)?),
                    None => None,
                };
                if !self.arity(what, &s, 1, pos) {
                    return None;
                }
                let mailbox = self.string_arg(what, Some(s.positional[0]), pos)?;
                match mailbox.as_literal() {
                    Some("") => self.error(pos, "fileinto: empty mailbox name"),
                    // octets that were not UTF-8 (encoded-character)
                    Some(m) if m.contains('\u{FFFD}') => {
                        self.error(pos, "fileinto: the mailbox name is not valid UTF-8")
                    }
                    _ => {}
                }
                if let Some(u) = special_use.as_ref().and_then(|u| u.as_literal()) {
                    self.check_special_use(what, u, pos);
                }
                Cmd::FileInto {
                    mailbox,
                    copy,
                    create,
                    flags,
                    special_use,
                }
            }
            "redirect" => {
                let mut s = self.scan(what, &cmd.args, Groups::default(), &copy_tag(has_copy))?;
                let copy = s.flag("copy");
                if !self.arity(what, &s, 1, pos) {
                    return None;
                }
                let address = self.string_arg(what, Some(s.positional[0]), pos)?;
                // a constant address is checked now: one address, its local
                // part in ASCII (SMTP without SMTPUTF8)
                if let Some(a) = address.as_literal()
                    && !crate::run::address::parse_mailbox(a)
                        .is_some_and(|m| m.rsplit_once('@').is_some_and(|(l, _)| l.is_ascii()))
                {
                    self.error(pos, format!("redirect: invalid address \"{a}\""));
                }
                Cmd::Redirect { address, copy }
            }
            "reject" | "ereject" => {
                if !self.needs_cmd(what, pos, what) {
                    return None;
                }
                let s = self.scan(what, &cmd.args, Groups::default(), &no_tags)?;
                if !self.arity(what, &s, 1, pos) {
                    return None;
                }
                let reason = self.string_arg(what, Some(s.positional[0]), pos)?;
                Cmd::Reject {
                    reason,
                    extended: what == "ereject",
                }
            }
            "vacation" => {
                if !self.needs_cmd("vacation", pos, what) {
                    return None;
                }
                let seconds = self.has("vacation-seconds");
                let own = move |n: &str| match n {
                    "days" => Some((TagArg::Number, None)),
                    "seconds" if seconds => Some((TagArg::Number, None)),
                    "subject" | "from" | "handle" => Some((TagArg::String, None)),
                    "addresses" => Some((TagArg::List, None)),
                    "mime" => Some((TagArg::None, None)),
                    _ => None,
                };
                let mut s = self.scan(what, &cmd.args, Groups::default(), &own)?;
                let days = s.take("days").map(|t| Self::tag_number(&t));
                let secs = s.take("seconds").map(|t| Self::tag_number(&t));
                if days.is_some() && secs.is_some() {
                    self.error(pos, "vacation: :days and :seconds together");
                    return None;
                }
                let period = days.map(|d| d.saturating_mul(86_400)).or(secs);
                let mut tag =
                    |c: &mut Self, n: &str| s.take(n).and_then(|t| c.tag_string(what, &t));
                let subject = tag(self, "subject");
                let from = tag(self, "from");
                let handle = tag(self, "handle");
                let addresses = match s.take("addresses") {
                    Some(t) => self.list_arg(what, t.arg, t.pos)?,
                    None => Vec::new(),
                };
                let mime = s.flag("mime");
                if !self.arity(what, &s, 1, pos) {
                    return None;
                }
                let reason = self.string_arg(what, Some(s.positional[0]), pos)?;
                if let Some(f) = from.as_ref().and_then(|f| f.as_literal())
                    && crate::run::address::parse_one(f).is_none()
                {
                    self.error(pos, format!("vacation: invalid :from address \"{f}\""));
                }
                Cmd::Vacation(Box::new(Vacation {
                    period,
                    subject,
                    from,
                    addresses,
                    mime,
                    handle,
                    reason,
                }))
            }
            "setflag" | "addflag" | "removeflag" => {
                if !self.needs_cmd("imap4flags", pos, what) {
                    return None;
                }
                let s = self.scan(what, &cmd.args, Groups::default(), &no_tags)?;
                let op = match what {
                    "setflag" => FlagOp::Set,
                    "addflag" => FlagOp::Add,
                    _ => FlagOp::Remove,
                };
                match s.positional.len() {
                    1 => Cmd::Flags {
                        op,
                        var: None,
                        flags: self.list_arg(what, Some(s.positional[0]), pos)?,
                    },
                    2 => {
                        let var = self.string_arg(what, Some(s.positional[0]), pos)?;
                        self.check_var_names(std::slice::from_ref(&var), pos);
                        let flags = self.list_arg(what, Some(s.positional[1]), pos)?;
                        Cmd::Flags {
                            op,
                            var: Some(var),
                            flags,
                        }
                    }
                    _ => {
                        self.arity(what, &s, 2, pos);
                        return None;
                    }
                }
            }
            "set" => {
                if !self.needs_cmd("variables", pos, what) {
                    return None;
                }
                let has_regex = self.has("regex");
                let own = move |n: &str| match n {
                    "lower" | "upper" | "lowerfirst" | "upperfirst" | "quotewildcard"
                    | "length" => Some((TagArg::None, None)),
                    "quoteregex" if has_regex => Some((TagArg::None, None)),
                    _ => None,
                };
                let mut s = self.scan(what, &cmd.args, Groups::default(), &own)?;
                let lower = s.flag("lower");
                let upper = s.flag("upper");
                let lf = s.flag("lowerfirst");
                let uf = s.flag("upperfirst");
                let qw = s.flag("quotewildcard");
                let qr = s.flag("quoteregex");
                if (lower && upper) || (lf && uf) || (qw && qr) {
                    self.error(pos, "set: two modifiers of the same precedence");
                    return None;
                }
                let mods = Modifiers {
                    case: if lower {
                        1
                    } else if upper {
                        2
                    } else {
                        0
                    },
                    first: if lf {
                        1
                    } else if uf {
                        2
                    } else {
                        0
                    },
                    quote_wildcard: qw,
                    quote_regex: qr,
                    length: s.flag("length"),
                    encode_url: false,
                };
                if !self.arity(what, &s, 2, pos) {
                    return None;
                }
                let name = self.string_arg(what, Some(s.positional[0]), pos)?;
                let value = self.string_arg(what, Some(s.positional[1]), pos)?;
                let Some(n) = name.as_literal() else {
                    self.error(pos, "set: the variable name cannot contain variables");
                    return None;
                };
                let global_ns = self.has("include")
                    && n.len() > 7
                    && n[..7].eq_ignore_ascii_case("global.")
                    && crate::strings::valid_var_name(&n[7..]);
                if !crate::strings::valid_var_name(n) && !global_ns {
                    self.error(pos, format!("set: invalid variable name \"{n}\""));
                    return None;
                }
                // the run's bound on variables, said when the script
                // already declares more (once)
                let lower = n.to_ascii_lowercase();
                if !self.declared.contains(&lower) {
                    self.declared.insert(lower);
                    if self.declared.len() == crate::run::MAX_VARIABLES + 1 {
                        self.error(
                            pos,
                            format!(
                                "set: the variable \"{n}\" is one more than a script may declare ({})",
                                crate::run::MAX_VARIABLES
                            ),
                        );
                    }
                }
                Cmd::Set {
                    name: n.to_ascii_lowercase(),
                    value,
                    mods,
                }
            }
            "addheader" => {
                if !self.needs_cmd("editheader", pos, what) {
                    return None;
                }
                let own = |n: &str| (n == "last").then_some((TagArg::None, None));
                let mut s = self.scan(what, &cmd.args, Groups::default(), &own)?;
                let last = s.flag("last");
                if !self.arity(what, &s, 2, pos) {
                    return None;
                }
                let name = self.string_arg(what, Some(s.positional[0]), pos)?;
                let value = self.string_arg(what, Some(s.positional[1]), pos)?;
                if let Some(n) = name.as_literal()
                    && !super::tests::valid_header_name(n)
                {
                    self.error(pos, format!("addheader: the field name \"{n}\" is invalid"));
                }
                if let Some(v) = value.as_literal()
                    && let Some(why) =
                        super::bad_header_value(v, self.opts.editheader_max_header_size)
                {
                    self.error(pos, format!("addheader: {why}"));
                }
                Cmd::AddHeader { last, name, value }
            }
            "deleteheader" => {
                if !self.needs_cmd("editheader", pos, what) {
                    return None;
                }
                // deleteheader has its own :index and :last (RFC 5293 §5),
                // the index extension is not needed for them
                let groups = Groups {
                    matching: true,
                    address: false,
                    index: false,
                };
                let own = |n: &str| match n {
                    "index" => Some((TagArg::Number, None)),
                    "last" => Some((TagArg::None, None)),
                    _ => None,
                };
                let mut s = self.scan(what, &cmd.args, groups, &own)?;
                let m = self.matcher(what, &mut s)?;
                let index = self.index(what, &mut s)?;
                let (name, patterns) = match s.positional.len() {
                    1 => (self.string_arg(what, Some(s.positional[0]), pos)?, None),
                    2 => (
                        self.string_arg(what, Some(s.positional[0]), pos)?,
                        Some(self.list_arg(what, Some(s.positional[1]), pos)?),
                    ),
                    _ => {
                        self.arity(what, &s, 2, pos);
                        return None;
                    }
                };
                if let Some(n) = name.as_literal()
                    && !super::tests::valid_header_name(n)
                {
                    self.error(
                        pos,
                        format!("deleteheader: the field name \"{n}\" is invalid"),
                    );
                }
                if let Some(p) = &patterns {
                    self.check_regex_keys(&m, p, pos);
                }
                Cmd::DeleteHeader {
                    index,
                    m,
                    name,
                    patterns,
                }
            }
            "include" => {
                if !self.needs_cmd("include", pos, what) {
                    return None;
                }
                let own = |n: &str| match n {
                    "personal" | "global" | "once" | "optional" => Some((TagArg::None, None)),
                    _ => None,
                };
                let mut s = self.scan(what, &cmd.args, Groups::default(), &own)?;
                let personal = s.flag("personal");
                let global = s.flag("global");
                if personal && global {
                    self.error(pos, "include: :personal and :global together");
                    return None;
                }
                let once = s.flag("once");
                let optional = s.flag("optional");
                if !self.arity(what, &s, 1, pos) {
                    return None;
                }
                let name = self.string_arg(what, Some(s.positional[0]), pos)?;
                let Some(n) = name.as_literal() else {
                    self.error(pos, "include: the script name cannot contain variables");
                    return None;
                };
                // RFC 5804 §1.6's script names: no controls, no line or
                // paragraph separators; and no path
                if n.is_empty()
                    || n.contains('/')
                    || n.chars()
                        .any(|c| c.is_control() || c == '\u{2028}' || c == '\u{2029}')
                {
                    self.error(pos, format!("include: invalid script name \"{n}\""));
                    return None;
                }
                Cmd::Include {
                    global,
                    once,
                    optional,
                    name: n.to_string(),
                }
            }
            "global" => {
                if !self.needs_cmd("include", pos, what) || !self.needs_cmd("variables", pos, what)
                {
                    return None;
                }
                let s = self.scan(what, &cmd.args, Groups::default(), &no_tags)?;
                if !self.arity(what, &s, 1, pos) {
                    return None;
                }
                let names = self.list_arg(what, Some(s.positional[0]), pos)?;
                self.check_var_names(&names, pos);
                let names: Vec<String> = names
                    .iter()
                    .filter_map(|n| n.as_literal().map(str::to_ascii_lowercase))
                    .collect();
                self.globals.extend(names.iter().cloned());
                Cmd::Global(names)
            }
            "error" => {
                if !self.needs_cmd("ihave", pos, what) {
                    return None;
                }
                let s = self.scan(what, &cmd.args, Groups::default(), &no_tags)?;
                if !self.arity(what, &s, 1, pos) {
                    return None;
                }
                Cmd::Error(self.string_arg(what, Some(s.positional[0]), pos)?)
            }
            _ => {
                self.error(pos, format!("unknown command '{}'", cmd.name));
                return None;
            }
        })
    }
}

/// The commands [`Compiler::command`] knows (beside `if` and the custom
/// extension's), whatever the script requires.
pub const KNOWN: &[&str] = &[
    "stop",
    "discard",
    "return",
    "keep",
    "fileinto",
    "redirect",
    "reject",
    "ereject",
    "vacation",
    "setflag",
    "addflag",
    "removeflag",
    "set",
    "addheader",
    "deleteheader",
    "include",
    "global",
    "error",
];
