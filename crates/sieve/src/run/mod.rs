//! The interpreter: one compiled script against one message and envelope.
//!
//! A run gives an [`Outcome`] (the actions to take, in order, and whether
//! the implicit keep stands) or a [`RunError`] (the caller then keeps the
//! message in INBOX: RFC 5228 §2.10.6, a script never loses mail). The run
//! itself changes nothing: what it needs from the world it asks the
//! [`Host`], which may answer from state (mailboxes, duplicate and vacation
//! records) but records nothing until the caller has carried the actions
//! out.
//!
//! Bounds: every command and test executed, and every value compared,
//! counts against [`Limits::max_steps`]; actions, redirects and include
//! depth have their own limits; variable values are cut at
//! [`crate::strings::MAX_VALUE`].

pub mod actions;
pub mod address;
pub mod date;
mod eval;
pub mod matching;
pub mod message;
pub mod redirect;
pub mod reject;
pub mod vacation;
pub(crate) mod vars;

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

pub use actions::{Action, Outcome};

use crate::Script;
use crate::ir::{Cmd, Custom, FlagOp};
use crate::strings::Template;
use message::MessageView;

/// The SMTP envelope of the delivery.
#[derive(Debug, Clone, Default)]
pub struct Envelope {
    /// MAIL FROM, empty for the null reverse-path.
    pub from: String,
    /// The RCPT TO this delivery is for (after alias expansion: the final
    /// recipient).
    pub to: String,
    /// The recipient as the sender wrote it, when known.
    pub orig_to: Option<String>,
    /// The authenticated submitter, when any.
    pub auth: Option<String>,
}

/// Variables a run holds by default (and a script may declare).
pub const MAX_VARIABLES: usize = 255;

/// Bounds on one run.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_steps: u64,
    pub max_actions: usize,
    pub max_redirects: usize,
    pub max_include_depth: usize,
    pub max_includes: usize,
    pub max_variables: usize,
    /// Longest value a variable holds (bytes; longer values are cut at a
    /// character boundary), at most [`crate::strings::MAX_VALUE`].
    pub max_variable_size: usize,
    /// Header fields the site keeps from editheader (beside Received and
    /// Auto-Submitted, always): lower-case names.
    pub editheader: EditHeaderPolicy,
    /// How the site shapes vacation replies.
    pub vacation: VacationOptions,
}

/// The site's vacation settings (Pigeonhole's `sieve_vacation_*` of the
/// same names). The defaults are RFC 5230's behaviour.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VacationOptions {
    /// The reply's subject when the script gives none and the message has
    /// no Subject.
    pub default_subject: String,
    /// The reply's subject when the script gives none: `%$` or
    /// `%{subject}` stands for the message's.
    pub default_subject_template: String,
    /// A longer reply subject is cut (with `…`).
    pub max_subject_codepoints: usize,
    /// The original recipient (before aliases) counts as the user's.
    pub use_original_recipient: bool,
    /// Reply whether or not the message names one of the user's addresses.
    pub dont_check_recipient: bool,
    /// The reply's envelope sender is the recipient, not `<>`.
    pub send_from_recipient: bool,
    /// The reply's To: is the message's From (or Sender) even when it is
    /// not the envelope sender.
    pub to_header_ignore_envelope: bool,
}

impl Default for VacationOptions {
    fn default() -> Self {
        VacationOptions {
            default_subject: "Automated reply".into(),
            default_subject_template: "Auto: %$".into(),
            max_subject_codepoints: 256,
            use_original_recipient: false,
            dont_check_recipient: false,
            send_from_recipient: false,
            to_header_ignore_envelope: false,
        }
    }
}

/// What the site forbids editheader (Pigeonhole's
/// `sieve_editheader_protected`, `_forbid_add`, `_forbid_delete`).
/// `Subject` cannot be protected: scripts may always change it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EditHeaderPolicy {
    /// Neither added nor deleted.
    pub protected: Vec<String>,
    pub forbid_add: Vec<String>,
    pub forbid_delete: Vec<String>,
    /// Longest value addheader may add (bytes; 0: no limit).
    pub max_header_size: usize,
}

impl EditHeaderPolicy {
    /// From space-separated lists of field names; invalid names and
    /// `subject` are left out.
    pub fn from_lists(protected: &str, forbid_add: &str, forbid_delete: &str) -> EditHeaderPolicy {
        let names = |s: &str| {
            s.split_whitespace()
                .filter(|n| {
                    crate::compile::valid_header_name(n) && !n.eq_ignore_ascii_case("subject")
                })
                .map(str::to_ascii_lowercase)
                .collect()
        };
        EditHeaderPolicy {
            protected: names(protected),
            forbid_add: names(forbid_add),
            forbid_delete: names(forbid_delete),
            max_header_size: 0,
        }
    }
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_steps: 1_000_000,
            max_actions: 32,
            max_redirects: 4,
            max_include_depth: 10,
            max_includes: 255,
            max_variables: MAX_VARIABLES,
            max_variable_size: crate::strings::MAX_VALUE,
            editheader: EditHeaderPolicy::default(),
            vacation: VacationOptions::default(),
        }
    }
}

/// Why a run stopped without an outcome.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct RunError {
    pub line: u32,
    pub message: String,
}

/// What the interpreter asks of the world. Every method has a default
/// that suits a host without that feature.
pub trait Host {
    /// Does the mailbox exist (mailbox extension)?
    fn mailbox_exists(&mut self, _name: &str) -> bool {
        false
    }
    /// Does `mailbox` (or, with None, any mailbox) have all these
    /// special-use flags?
    fn special_use_exists(&mut self, _mailbox: Option<&str>, _uses: &[String]) -> bool {
        false
    }
    /// Was a message with this id seen for this handle within `period`
    /// seconds (duplicate extension)? `last`: the period counts from the
    /// last time it was seen rather than the first. The host records the
    /// id only when the delivery succeeds.
    fn duplicate_seen(&mut self, _handle: &str, _id: &str, _period: u64, _last: bool) -> bool {
        false
    }
    /// Was a vacation reply sent to `sender` for `handle` within `period`
    /// seconds?
    fn vacation_sent(&mut self, _sender: &str, _handle: &str, _period: u64) -> bool {
        false
    }
    /// The compiled script `include` names.
    fn include(&mut self, _global: bool, _name: &str) -> Result<Option<Arc<Script>>, String> {
        Err("include is not available here".into())
    }
    /// An environment item (RFC 5183): domain, host, location, name,
    /// phase, remote-host, remote-ip, version, and the host's own.
    fn environment(&mut self, _name: &str) -> Option<String> {
        None
    }
    /// Now, seconds since the epoch.
    fn now(&mut self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
    }
    /// The local zone, minutes east of UTC.
    fn local_offset(&mut self) -> i32 {
        0
    }
    /// The user's own addresses (vacation answers only mail sent to one of
    /// them, and never mail from one of them).
    fn user_addresses(&mut self) -> Vec<String> {
        Vec::new()
    }
    /// The host name, for Message-IDs of generated replies.
    fn hostname(&mut self) -> String {
        "localhost".into()
    }
    /// The default and bounds of vacation's period, seconds.
    fn vacation_period(&mut self) -> (u64, u64, u64) {
        (7 * 86_400, 86_400, 90 * 86_400)
    }
    /// A host command (Cmd::Custom).
    fn custom_command(&mut self, _rt: &mut Runtime<'_>, c: &Custom) -> Result<Flow, RunError> {
        Err(RunError {
            line: c.line,
            message: format!("unknown command {}", c.name),
        })
    }
    /// A host test (Test::Custom).
    fn custom_test(&mut self, _rt: &mut Runtime<'_>, c: &Custom) -> Result<bool, RunError> {
        Err(RunError {
            line: c.line,
            message: format!("unknown test {}", c.name),
        })
    }
}

/// How a block ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    Stop,
    Return,
}

/// The variables of one script (include gives each script its own).
#[derive(Debug, Default)]
pub(crate) struct Scope {
    pub vars: HashMap<String, String>,
    pub globals: BTreeSet<String>,
    pub matches: Vec<String>,
    pub requires_variables: bool,
    pub line: u32,
}

/// The state of a run, open to host commands (the test suite's).
#[derive(Debug)]
pub struct Runtime<'m> {
    pub message: MessageView<'m>,
    pub envelope: Envelope,
    pub limits: Limits,
    pub(crate) scopes: Vec<Scope>,
    pub(crate) globals: HashMap<String, String>,
    /// imap4flags' internal variable, as a space-separated list.
    pub(crate) flags: Vec<String>,
    pub(crate) out: Outcome,
    pub(crate) steps: u64,
    pub(crate) included_once: BTreeSet<(bool, String)>,
    pub(crate) includes: usize,
    pub(crate) regex_cache: HashMap<String, regex::Regex>,
    /// Namespaced variables the host provides (`env.*`, `tst.*`).
    pub namespaces: HashMap<(String, String), String>,
    pub(crate) env_loaded: bool,
    /// The characters that separate user and detail (subaddress); `+` by
    /// default, the site's `recipient_delimiter`.
    pub detail_separators: String,
    /// What went wrong without stopping the run (a regex made at run time
    /// that does not compile), for the host's log.
    pub warnings: Vec<String>,
}

impl<'m> Runtime<'m> {
    pub fn new(message: &'m [u8], envelope: Envelope, limits: Limits) -> Runtime<'m> {
        Runtime::with_message(Cow::Borrowed(message), envelope, limits)
    }

    pub fn with_message(message: Cow<'m, [u8]>, envelope: Envelope, limits: Limits) -> Runtime<'m> {
        Runtime {
            message: MessageView::new(message),
            envelope,
            limits,
            scopes: Vec::new(),
            globals: HashMap::new(),
            flags: Vec::new(),
            out: Outcome::new(),
            steps: 0,
            included_once: BTreeSet::new(),
            includes: 0,
            regex_cache: HashMap::new(),
            namespaces: HashMap::new(),
            env_loaded: false,
            detail_separators: address::DETAIL_SEPARATOR.to_string(),
            warnings: Vec::new(),
        }
    }

    pub(crate) fn line(&self) -> u32 {
        self.scopes.last().map_or(0, |s| s.line)
    }

    pub(crate) fn fail(&self, message: impl Into<String>) -> RunError {
        RunError {
            line: self.line(),
            message: message.into(),
        }
    }

    pub(crate) fn step(&mut self, n: u64) -> Result<(), RunError> {
        self.steps += n;
        if self.steps > self.limits.max_steps {
            return Err(self.fail("the script ran too long"));
        }
        Ok(())
    }

    /// Run `script` from the top in a new variable scope (the main script,
    /// or an included one).
    pub fn run_script(&mut self, host: &mut dyn Host, script: &Script) -> Result<Flow, RunError> {
        if self.scopes.len() > self.limits.max_include_depth {
            return Err(self.fail("includes nested too deeply"));
        }
        // only scripts that can read them (${env.*} needs the extension)
        if !self.env_loaded && script.extensions.contains("environment") {
            self.env_loaded = true;
            for item in eval::ENVIRONMENT_ITEMS {
                if let Some(v) = host.environment(item) {
                    self.namespaces
                        .insert(("env".into(), (*item).to_string()), v);
                }
            }
        }
        self.scopes.push(Scope {
            requires_variables: script.extensions.contains("variables"),
            ..Scope::default()
        });
        let r = self.exec_block(host, &script.cmds);
        self.scopes.pop();
        r
    }

    /// The outcome so far.
    pub fn outcome(&self) -> &Outcome {
        &self.out
    }

    /// Replace the outcome (a host running another script and adopting its
    /// result, as the test suite's `test_script_run` does).
    pub fn set_outcome(&mut self, out: Outcome) {
        self.out = out;
    }

    /// Add another run's actions after these (`:append_result`).
    pub fn append_outcome(&mut self, other: Outcome) {
        self.out.implicit_keep &= other.implicit_keep;
        self.out.discarded |= other.discarded;
        // The earlier result was executed already (Pigeonhole's
        // multiscript): what repeats it is merged, a second reject is
        // dropped rather than an error, a keep takes the place of a
        // fileinto "INBOX".
        for a in other.actions {
            actions::merge_executed(&mut self.out.actions, a);
        }
        self.out.duplicates.extend(other.duplicates);
        if other.edited_message.is_some() {
            self.out.edited_message = other.edited_message;
        }
    }

    /// Does any value match any key, as a test with match type `m` would
    /// find (for host tests that match like the base ones)?
    pub fn match_strings(
        &mut self,
        m: &crate::ir::Match,
        values: &[String],
        keys: &[Template],
    ) -> Result<bool, RunError> {
        self.match_values(m, values, keys)
    }

    /// imap4flags' internal variable (the flags a keep or fileinto without
    /// `:flags` stores with).
    pub fn flags(&self) -> &[String] {
        &self.flags
    }

    pub fn set_flags(&mut self, flags: Vec<String>) {
        self.flags = flags;
    }

    /// Forget the actions so far (the test suite's `test_result_reset`).
    pub fn reset_outcome(&mut self) {
        self.out = Outcome::new();
        self.flags.clear();
    }

    /// Finish: add the implicit keep if it stands, and the edited message.
    pub fn finish(mut self) -> Outcome {
        self.close_outcome();
        self.out
    }

    /// Add the implicit keep (once) and the edited message to the outcome.
    pub fn close_outcome(&mut self) {
        if self.out.implicit_keep && !self.out.closed {
            let flags = self.flags.clone();
            self.out.implicit_keep_flags = flags;
        }
        self.out.closed = true;
        self.out.edited_message = self.message.render();
    }

    pub fn exec_block(&mut self, host: &mut dyn Host, cmds: &[Cmd]) -> Result<Flow, RunError> {
        for cmd in cmds {
            self.step(1)?;
            let flow = self.exec(host, cmd)?;
            if flow != Flow::Continue {
                return Ok(flow);
            }
        }
        Ok(Flow::Continue)
    }

    fn exec(&mut self, host: &mut dyn Host, cmd: &Cmd) -> Result<Flow, RunError> {
        match cmd {
            Cmd::If {
                branches,
                otherwise,
            } => {
                for (test, block) in branches {
                    if self.eval(host, test)? {
                        return self.exec_block(host, block);
                    }
                }
                if let Some(block) = otherwise {
                    return self.exec_block(host, block);
                }
            }
            Cmd::Stop => return Ok(Flow::Stop),
            Cmd::Return => return Ok(Flow::Return),
            Cmd::Keep { flags } => {
                let flags = match flags {
                    Some(l) => self.flag_list(l),
                    None => self.flags.clone(),
                };
                let msg = self.snapshot();
                self.add_action(Action::Keep {
                    flags,
                    message: msg,
                })?;
            }
            Cmd::Discard => self.add_action(Action::Discard)?,
            Cmd::FileInto {
                mailbox,
                copy,
                create,
                flags,
                special_use,
            } => {
                let mailbox = self.expand(mailbox);
                // a name made at run time from bytes that were not UTF-8,
                // or with controls, names no folder
                if mailbox.is_empty() || mailbox.chars().any(|c| c == '\u{fffd}' || c.is_control())
                {
                    return Err(self.fail(format!(
                        "fileinto: invalid folder name \"{}\"",
                        mailbox.escape_debug()
                    )));
                }
                let flags = match flags {
                    Some(l) => self.flag_list(l),
                    None => self.flags.clone(),
                };
                let special_use = special_use.as_ref().map(|s| self.expand(s));
                let msg = self.snapshot();
                self.add_action(Action::FileInto {
                    mailbox,
                    flags,
                    create: *create,
                    special_use,
                    copy: *copy,
                    message: msg,
                })?;
            }
            Cmd::Redirect { address, copy } => {
                let address = self.expand(address);
                let Some(addr) = address::parse_mailbox(&address) else {
                    return Err(self.fail(format!("redirect: invalid address \"{address}\"")));
                };
                let msg = self.snapshot();
                self.add_action(Action::Redirect {
                    address: addr,
                    copy: *copy,
                    message: msg,
                })?;
            }
            Cmd::Reject { reason, extended } => {
                let reason = self.expand(reason);
                self.add_action(Action::Reject {
                    reason,
                    extended: *extended,
                })?;
            }
            Cmd::Vacation(v) => self.vacation(host, v)?,
            Cmd::Flags { op, var, flags } => {
                let new = self.flag_list(flags);
                let current = match var {
                    Some(v) => {
                        let name = self.expand(v).to_ascii_lowercase();
                        split_flags(&self.get_var(&name))
                    }
                    None => self.flags.clone(),
                };
                let result = match op {
                    FlagOp::Set => normalize_flags(new),
                    FlagOp::Add => normalize_flags(current.into_iter().chain(new).collect()),
                    FlagOp::Remove => current
                        .into_iter()
                        .filter(|f| !new.iter().any(|n| n.eq_ignore_ascii_case(f)))
                        .collect(),
                };
                match var {
                    Some(v) => {
                        let name = self.expand(v).to_ascii_lowercase();
                        self.set_var(&name, result.join(" "))?;
                    }
                    None => self.flags = result,
                }
            }
            Cmd::Set { name, value, mods } => {
                let v = self.expand(value);
                let mut v = vars::apply_modifiers(v, mods);
                if mods.quote_wildcard || mods.quote_regex {
                    // cut to the size limit here, never inside an escape
                    // pair (a lone `\` at the end would escape nothing)
                    v = vars::bound_escaped(v, self.limits.max_variable_size);
                }
                self.set_var(name, v)?;
            }
            Cmd::AddHeader { last, name, value } => {
                let name = self.expand(name);
                let value = self.expand(value);
                self.add_header(&name, &value, *last)?;
            }
            Cmd::DeleteHeader {
                index,
                m,
                name,
                patterns,
            } => {
                self.delete_header(*index, m, name, patterns.as_deref())?;
            }
            Cmd::Include {
                global,
                once,
                optional,
                name,
            } => {
                return self.include(host, *global, *once, *optional, name);
            }
            Cmd::Global(names) => {
                if let Some(s) = self.scopes.last_mut() {
                    s.globals.extend(names.iter().cloned());
                }
            }
            Cmd::Error(msg) => {
                let m = self.expand(msg);
                return Err(self.fail(m));
            }
            Cmd::Custom(c) => return host.custom_command(self, c),
        }
        Ok(Flow::Continue)
    }

    fn include(
        &mut self,
        host: &mut dyn Host,
        global: bool,
        once: bool,
        optional: bool,
        name: &str,
    ) -> Result<Flow, RunError> {
        let key = (global, name.to_string());
        if once && self.included_once.contains(&key) {
            return Ok(Flow::Continue);
        }
        self.includes += 1;
        if self.includes > self.limits.max_includes {
            return Err(self.fail("too many includes"));
        }
        let script = match host.include(global, name) {
            Ok(Some(s)) => s,
            Ok(None) if optional => return Ok(Flow::Continue),
            Ok(None) => return Err(self.fail(format!("included script \"{name}\" does not exist"))),
            Err(e) => return Err(self.fail(format!("include \"{name}\": {e}"))),
        };
        self.included_once.insert(key);
        match self.run_script(host, &script)? {
            Flow::Stop => Ok(Flow::Stop),
            _ => Ok(Flow::Continue),
        }
    }

    /// The message version an action carries: None when the header was
    /// never edited.
    fn snapshot(&mut self) -> Option<usize> {
        if self.message.version == 0 {
            return None;
        }
        if self.out.message_versions.last().map(|(v, _)| *v) != Some(self.message.version) {
            let m = self.message.render().unwrap_or_default();
            self.out.message_versions.push((self.message.version, m));
        }
        Some(self.out.message_versions.len() - 1)
    }

    /// A flag list argument expanded: split at blanks, duplicates removed.
    fn flag_list(&mut self, list: &[Template]) -> Vec<String> {
        let mut all = Vec::new();
        for t in list {
            all.extend(split_flags(&self.expand(t)));
        }
        normalize_flags(all)
    }
}

/// Split a flag list string at blanks.
pub fn split_flags(s: &str) -> Vec<String> {
    s.split_ascii_whitespace().map(str::to_string).collect()
}

/// Remove duplicate flags (ignoring case, the first spelling kept).
pub fn normalize_flags(flags: Vec<String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(flags.len());
    for f in flags {
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&f)) {
            out.push(f);
        }
    }
    out
}

/// Compile-and-run convenience: the outcome of `script` on `message`.
pub fn run(
    script: &Script,
    message: &[u8],
    envelope: Envelope,
    host: &mut dyn Host,
    limits: Limits,
) -> Result<Outcome, RunError> {
    let mut rt = Runtime::new(message, envelope, limits);
    rt.run_script(host, script)?;
    Ok(rt.finish())
}
