//! Our implementation of Pigeonhole's `vnd.dovecot.testsuite` extension,
//! the language its `.svtest` files are written in: `test "name" {...}`
//! blocks, `test_fail`, `test_set` (the message and envelope under test),
//! `test_script_compile` / `test_script_run` / `test_result_*` (compile
//! another script, run it, inspect and carry out its result),
//! `test_message` (make a message the result sent or stored the one under
//! test), `test_error`, `test_config_*`, `test_mailbox_create`,
//! `test_binary_*`. Written from the test files' use of them and the
//! extension's documented behaviour; nothing of Pigeonhole's code.
//!
//! Carrying out a result ("execute") is simulated in memory: stores append
//! to folders here, redirects and vacation replies go to an outbox, and a
//! reject sends the sender a notice from the postmaster (what the MTA's
//! bounce does in a real delivery).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use facteur_sieve::ir::CustomArg;
use facteur_sieve::run::Runtime;
use facteur_sieve::{
    Action, CustomExtension, Envelope, Limits, Options, Outcome, RunError, Script,
};

use crate::args;

mod host;

/// The marker of a `test_fail` travelling up as a run error.
const FAIL: &str = "\u{0}test_fail: ";

pub enum FileResult {
    /// The file needs an extension we do not have.
    Skipped(String),
    /// The file itself did not compile or failed outside a test.
    Broken(String),
    /// Each test block: its name and its result.
    Ran(Vec<(String, TestResult)>),
}

/// One test block's result.
#[derive(Debug, Clone, PartialEq)]
pub enum TestResult {
    Passed,
    Failed(String),
    /// Failed, but it used an extension we do not have.
    Skipped(String),
}

const COMMANDS: &[&str] = &[
    "test",
    "test_fail",
    "test_set",
    "test_result_reset",
    "test_result_print",
    "test_config_set",
    "test_config_unset",
    "test_config_reload",
    "test_mailbox_create",
    "test_message",
    "test_binary_load",
    "test_binary_save",
    "test_imap_metadata_set",
];

const TESTS: &[&str] = &[
    "test_script_compile",
    "test_script_run",
    "test_multiscript",
    "test_result_execute",
    "test_result_action",
    "test_error",
    "test_message",
    "test_binary_load",
    "test_binary_save",
    "test_mailbox_create",
    "test_imap_metadata_set",
];

fn suite_options() -> Options {
    Options {
        custom: Some(CustomExtension {
            names: vec!["vnd.dovecot.testsuite".into()],
            commands: COMMANDS.iter().map(|s| s.to_string()).collect(),
            tests: TESTS.iter().map(|s| s.to_string()).collect(),
            namespaces: vec!["tst".into()],
        }),
        ..Options::default()
    }
}

const DEFAULT_MESSAGE: &[u8] =
    b"From: sender@example.com\r\nTo: recipient@example.org\r\nSubject: Frop!\r\n\r\nFriep!\r\n";

fn default_envelope() -> Envelope {
    Envelope {
        from: "sender@example.com".into(),
        to: "recipient@example.org".into(),
        orig_to: Some("recipient@example.org".into()),
        auth: Some(user()),
    }
}

/// A duration setting as Pigeonhole writes them (`1s`, `2m`, `1d`, `30`).
fn duration(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    Some(match unit.trim() {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => return None,
    })
}

/// A stored message and its flags.
type Stored = (Vec<u8>, Vec<String>);

pub struct Suite {
    dir: PathBuf,
    compiled: Option<(Arc<Script>, PathBuf)>,
    errors: Vec<String>,
    binaries: HashMap<String, (Arc<Script>, PathBuf)>,
    /// Stored messages per folder (INBOX spelled so), with their flags.
    folders: BTreeMap<String, Vec<Stored>>,
    created: BTreeSet<String>,
    /// (envelope from, envelope to, message)
    outbox: Vec<(String, String, Vec<u8>)>,
    config: HashMap<String, String>,
    pub tests: Vec<(String, TestResult)>,
    in_test: bool,
    duplicates: BTreeSet<(String, String)>,
    /// Actions of the shared result already carried out (a second
    /// test_result_execute performs only the new ones), and whether its
    /// implicit keep was.
    executed: usize,
    kept: bool,
    /// Extensions a compiled script asked for that we do not have.
    pub unsupported: BTreeSet<String>,
    /// The directory personal includes come from (the compiled script's).
    include_dir: PathBuf,
}

impl Suite {
    fn new(dir: &Path) -> Suite {
        Suite {
            dir: dir.to_path_buf(),
            compiled: None,
            errors: Vec::new(),
            binaries: HashMap::new(),
            folders: BTreeMap::new(),
            created: BTreeSet::new(),
            outbox: Vec::new(),
            config: HashMap::new(),
            tests: Vec::new(),
            in_test: false,
            duplicates: BTreeSet::new(),
            executed: 0,
            kept: false,
            unsupported: BTreeSet::new(),
            include_dir: dir.join("included"),
        }
    }

    fn script_options(&self) -> Options {
        // the scripts a test compiles may use the test suite too
        Options {
            editheader_max_header_size: self.max_header_size(),
            ..suite_options()
        }
    }

    /// sieve_editheader_max_header_size (Pigeonhole's default 2048 when
    /// unset or empty).
    fn max_header_size(&self) -> usize {
        self.config
            .get("sieve_editheader_max_header_size")
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(2048)
    }

    fn limits(&self) -> Limits {
        let mut l = Limits::default();
        if let Some(n) = self
            .config
            .get("sieve_max_actions")
            .and_then(|v| v.parse().ok())
        {
            l.max_actions = n;
        }
        if let Some(n) = self
            .config
            .get("sieve_max_redirects")
            .and_then(|v| v.parse().ok())
        {
            l.max_redirects = n;
        }
        if let Some(n) = self
            .config
            .get("sieve_variables_max_variable_size")
            .and_then(|v| v.parse::<usize>().ok())
        {
            l.max_variable_size = n.min(facteur_sieve::strings::MAX_VALUE);
        }
        let get = |k: &str| self.config.get(k).map(String::as_str).unwrap_or("");
        let yes = |k: &str| matches!(get(k), "yes" | "true" | "on");
        let v = &mut l.vacation;
        if let Some(s) = self
            .config
            .get("sieve_vacation_default_subject")
            .filter(|s| !s.is_empty())
        {
            v.default_subject = s.clone();
        }
        if let Some(s) = self
            .config
            .get("sieve_vacation_default_subject_template")
            .filter(|s| !s.is_empty())
        {
            v.default_subject_template = s.clone();
        }
        if let Some(n) = self
            .config
            .get("sieve_vacation_max_subject_codepoints")
            .and_then(|n| n.parse().ok())
        {
            v.max_subject_codepoints = n;
        }
        v.use_original_recipient = yes("sieve_vacation_use_original_recipient");
        v.dont_check_recipient = yes("sieve_vacation_dont_check_recipient");
        v.send_from_recipient = yes("sieve_vacation_send_from_recipient");
        v.to_header_ignore_envelope = yes("sieve_vacation_to_header_ignore_envelope");
        l.editheader = facteur_sieve::EditHeaderPolicy {
            max_header_size: self.max_header_size(),
            ..facteur_sieve::EditHeaderPolicy::from_lists(
                get("sieve_editheader_protected"),
                get("sieve_editheader_forbid_add"),
                get("sieve_editheader_forbid_delete"),
            )
        };
        l
    }

    fn fail(line: u32, why: impl Into<String>) -> RunError {
        RunError {
            line,
            message: format!("{FAIL}{}", why.into()),
        }
    }

    /// `test_script_compile`: errors as bare texts, then Pigeonhole's
    /// summary line ("parse failed" / "validation failed").
    fn compile(&mut self, rel: &str) -> bool {
        let path = self.dir.join(rel);
        self.errors.clear();
        let text = match std::fs::read(&path) {
            Ok(t) => t,
            Err(_) => {
                self.errors.push("script not found".into());
                return false;
            }
        };
        let parsed = std::str::from_utf8(&text)
            .map_err(|_| "the script is not valid UTF-8".to_string())
            .map_err(|e| vec![e])
            .and_then(|t| {
                facteur_sieve::parse::parse_all(t)
                    .map_err(|es| es.into_iter().map(|e| e.message).collect())
            });
        let tree = match parsed {
            Ok(t) => t,
            Err(es) => {
                self.errors.extend(es);
                self.errors.push("parse failed".into());
                return false;
            }
        };
        let text = String::from_utf8_lossy(&text).into_owned();
        let (get, personal, global) = (
            |c: &HashMap<String, String>, k: &str, d: usize| {
                c.get(k).and_then(|v| v.parse().ok()).unwrap_or(d)
            },
            self.include_dir.clone(),
            self.dir.join("included-global"),
        );
        // includes are resolved when compiling, as Pigeonhole does
        let (depth, count) = (
            get(&self.config, "sieve_include_max_nesting_depth", 10),
            get(&self.config, "sieve_include_max_includes", 255),
        );
        let opts = self.script_options();
        let mut load = |g: bool, name: &str| -> Result<Option<Script>, String> {
            let dir = if g { &global } else { &personal };
            let text = std::fs::read(dir.join(format!("{name}.sieve"))).ok();
            facteur_sieve::compile_included(text, &opts)
        };
        // a script asking `ihave` for an extension not offered: a test
        // that then fails needs that extension (it is skipped, not failed)
        let mut asked = Vec::new();
        ihave_names(&tree, &mut asked);
        self.unsupported
            .extend(asked.into_iter().filter(|n| !opts.knows(n)));
        match Script::compile_partial(&text, &opts) {
            Ok(s) => {
                let errs = facteur_sieve::check_includes(&s, &mut load, depth, count);
                if !errs.is_empty() {
                    self.errors = errs;
                    self.errors.push("validation failed".into());
                    return false;
                }
                self.compiled = Some((Arc::new(s), path));
                true
            }
            Err((partial, errs)) => {
                // what compiled is checked for its includes too
                let mut errs: Vec<String> = errs.iter().map(|e| e.message.clone()).collect();
                if let Some(p) = partial {
                    errs.extend(facteur_sieve::check_includes(&p, &mut load, depth, count));
                }
                for e in &errs {
                    if let Some(x) = e.strip_prefix("unsupported extension ") {
                        self.unsupported.insert(x.trim_matches('"').to_string());
                    }
                }
                self.errors = errs;
                self.errors.push("validation failed".into());
                false
            }
        }
    }

    /// INBOX, and the `INBOX.` prefix of its children, in any case (the
    /// test suite's store has INBOX as its namespace's root).
    fn folder_key(name: &str) -> String {
        if name.eq_ignore_ascii_case("inbox") {
            "INBOX".into()
        } else if name.len() > 6 && name[..6].eq_ignore_ascii_case("inbox.") {
            format!("INBOX.{}", &name[6..])
        } else {
            name.to_string()
        }
    }

    fn folder_exists(&self, name: &str) -> bool {
        let k = Self::folder_key(name);
        k == "INBOX" || self.created.contains(&k)
    }

    /// One store, as a delivery does it: into an existing folder (or one
    /// `:create` makes).
    fn store(
        &mut self,
        folder: &str,
        create: bool,
        message: Vec<u8>,
        flags: Vec<String>,
    ) -> Result<(), String> {
        let k = Self::folder_key(folder);
        // what a Maildir store refuses: empty levels, `/`, controls, and
        // text that was not UTF-8
        if k.split('.').any(str::is_empty)
            || k.contains(['/', '\u{fffd}'])
            || k.chars().any(char::is_control)
        {
            return Err(format!(
                "fileinto action: failed to store into mailbox '{folder}': invalid mailbox name"
            ));
        }
        if !self.folder_exists(&k) {
            if !create {
                return Err(format!(
                    "fileinto action: failed to store into mailbox '{folder}': Mailbox doesn't exist: {folder}"
                ));
            }
            self.created.insert(k.clone());
        }
        self.folders.entry(k).or_default().push((message, flags));
        Ok(())
    }

    /// The message a redirect sends (the fields lmtpd prepends, then the
    /// stored form) and its envelope sender, as `sieve_user_email` and
    /// `sieve_redirect_envelope_from` say; None for a loop.
    fn redirected(&self, env: &Envelope, message: &[u8]) -> Option<(String, Vec<u8>)> {
        use facteur_sieve::run::redirect;
        let user = self.config.get("sieve_user_email").map(String::as_str);
        if redirect::loops(message, env, user) {
            return None;
        }
        let policy = self
            .config
            .get("sieve_redirect_envelope_from")
            .and_then(|s| facteur_sieve::RedirectSender::parse(s).ok())
            .unwrap_or_default();
        let from = policy.envelope_from(env, user, "postmaster@example.com");
        let mut out = redirect::prepended_fields(env, user).into_bytes();
        out.extend_from_slice(message);
        Some((from, out))
    }

    /// Carry out the actions of `out` from `from` on (a second execute of
    /// one result performs only what was added since), then the implicit
    /// keep. False when an action failed (its error is in the log; the
    /// implicit keep then stores the message in INBOX).
    fn carry_out(
        &mut self,
        out: &Outcome,
        from: usize,
        already_kept: bool,
        original: &[u8],
        env: &Envelope,
        flags: &[String],
    ) -> bool {
        let mut ok = true;
        let msg_for = |v: Option<usize>| out.message_for(v, original).to_vec();
        for a in out.actions.iter().skip(from) {
            let r = match a {
                Action::Keep { message, flags, .. } => {
                    self.store("INBOX", true, msg_for(*message), flags.clone())
                }
                Action::FileInto {
                    mailbox,
                    message,
                    flags,
                    create,
                    ..
                } => self.store(mailbox, *create, msg_for(*message), flags.clone()),
                Action::Redirect {
                    address, message, ..
                } => {
                    // a loop is not sent; the implicit keep stands
                    if let Some((from, m)) = self.redirected(env, &msg_for(*message)) {
                        self.outbox.push((from, address.clone(), m));
                    }
                    Ok(())
                }
                Action::Vacation(v) => {
                    if v.skip.is_none() {
                        self.outbox.push((
                            v.envelope_from.clone(),
                            v.to.clone(),
                            v.message.clone(),
                        ));
                    }
                    Ok(())
                }
                Action::Reject { reason, .. } => {
                    // the notice lmtpd sends, from the test environment's
                    // postmaster
                    let notice =
                        facteur_sieve::run::reject::mdn(&facteur_sieve::run::reject::Rejected {
                            message: original,
                            recipient: &env.to,
                            sender: &env.from,
                            reason,
                            from: "Postmaster <postmaster@example.com>",
                            hostname: "example.com",
                            now: 1_700_000_000,
                            token: "testsuite",
                        });
                    if let Some(n) = notice {
                        self.outbox.push((String::new(), env.from.clone(), n));
                    }
                    Ok(())
                }
                Action::Discard => Ok(()),
            };
            if let Err(e) = r {
                self.errors.push(e);
                ok = false;
            }
        }
        if (out.implicit_keep || !ok) && !already_kept {
            let m = out
                .edited_message
                .clone()
                .unwrap_or_else(|| original.to_vec());
            let _ = self.store("INBOX", true, m, flags.to_vec());
        }
        for d in &out.duplicates {
            self.duplicates.insert((d.handle.clone(), d.id.clone()));
        }
        ok
    }

    /// `test_result_execute`: the shared result.
    fn execute(&mut self, rt: &mut Runtime<'_>) -> bool {
        self.errors.clear();
        rt.close_outcome();
        let out: Outcome = rt.outcome().clone();
        let original = rt.message.raw().to_vec();
        let env = rt.envelope.clone();
        let flags = out.implicit_keep_flags.clone();
        let from = self.executed.min(out.actions.len());
        let ok = self.carry_out(&out, from, self.kept, &original, &env, &flags);
        self.executed = out.actions.len();
        self.kept |= out.implicit_keep || !ok;
        ok
    }

    fn reset_result(&mut self, rt: &mut Runtime<'_>) {
        rt.reset_outcome();
        self.executed = 0;
        self.kept = false;
    }

    fn run_compiled(&mut self, rt: &mut Runtime<'_>, append: bool) -> bool {
        self.errors.clear();
        let Some((script, _)) = self.compiled.clone() else {
            self.errors
                .push("testsuite: trying to run script, but no script compiled yet".into());
            return false;
        };
        let uses_suite = script.extensions.contains("vnd.dovecot.testsuite");
        if !append {
            self.reset_result(rt);
        }
        let msg = rt.message.raw().to_vec();
        let mut sub = Runtime::new(&msg, rt.envelope.clone(), self.limits());
        sub.detail_separators = rt.detail_separators.clone();
        sub.set_flags(rt.flags().to_vec());
        sub.namespaces = rt.namespaces.clone();
        let r = sub.run_script(self, &script);
        self.errors.append(&mut sub.warnings);
        match r {
            Ok(_) => {
                let out = sub.finish();
                if append {
                    rt.append_outcome(out);
                } else {
                    rt.set_outcome(out);
                }
                true
            }
            Err(e) => {
                self.errors.push(e.message);
                uses_suite
            }
        }
    }

    /// The envelope a message implies (Pigeonhole's test suite rule):
    /// recipient from Envelope-To or To, sender from Return-Path, Sender
    /// or From.
    fn derive_envelope(rt: &mut Runtime<'_>) {
        let first = |rt: &mut Runtime<'_>, names: &[&str]| {
            for n in names {
                let fields: Vec<_> = rt.message.named(n);
                if let Some(a) = fields
                    .iter()
                    .flat_map(|f| f.addresses().iter().cloned())
                    .next()
                {
                    return Some(a);
                }
            }
            None
        };
        let to =
            first(rt, &["envelope-to", "to"]).unwrap_or_else(|| "recipient@example.com".into());
        let from = first(rt, &["return-path", "sender", "from"])
            .unwrap_or_else(|| "sender@example.com".into());
        rt.envelope = Envelope {
            from,
            orig_to: Some(to.clone()),
            to,
            auth: Some(user()),
        };
    }

    fn set_message(rt: &mut Runtime<'_>, bytes: Vec<u8>) {
        // the test files write messages with LF line ends
        let mut crlf = Vec::with_capacity(bytes.len() + 64);
        let mut prev = 0u8;
        for b in bytes {
            if b == b'\n' && prev != b'\r' {
                crlf.push(b'\r');
            }
            crlf.push(b);
            prev = b;
        }
        rt.message.replace(crlf);
        Self::derive_envelope(rt);
    }

    /// `test_message :smtp N` / `:folder NAME N`: make that message the one
    /// under test.
    fn select_message(&mut self, rt: &mut Runtime<'_>, p: &args::Parsed) -> bool {
        let n = p.positional_number(0).unwrap_or(0) as usize;
        if p.has("smtp") {
            match self.outbox.get(n).cloned() {
                Some((from, to, m)) => {
                    rt.message.replace(m);
                    rt.envelope = Envelope {
                        from,
                        orig_to: Some(to.clone()),
                        to,
                        auth: Some(user()),
                    };
                    true
                }
                None => false,
            }
        } else if p.has("folder") {
            let folder = match p.tag("folder") {
                Some(CustomArg::Strings(l)) => l.first().map(|t| rt.expand(t)).unwrap_or_default(),
                _ => String::new(),
            };
            match self
                .folders
                .get(&Self::folder_key(&folder))
                .and_then(|f| f.get(n))
                .cloned()
            {
                Some((m, flags)) => {
                    rt.message.replace(m);
                    Self::derive_envelope(rt);
                    rt.set_flags(flags);
                    true
                }
                None => false,
            }
        } else {
            false
        }
    }
}

/// The user the test suite runs as (Pigeonhole: $USER).
fn user() -> String {
    std::env::var("USER").unwrap_or_else(|_| "user".into())
}

fn first_string(rt: &Runtime<'_>, p: &args::Parsed, i: usize) -> String {
    p.strings(i)
        .and_then(|l| l.first())
        .map(|t| rt.expand(t))
        .unwrap_or_default()
}

impl Suite {
    fn binary(&mut self, rt: &Runtime<'_>, p: &args::Parsed, save: bool) -> bool {
        let name = first_string(rt, p, 0);
        if save {
            match &self.compiled {
                Some(s) => {
                    self.binaries.insert(name, s.clone());
                    true
                }
                None => false,
            }
        } else {
            match self.binaries.get(&name) {
                Some(s) => {
                    self.compiled = Some(s.clone());
                    true
                }
                None => false,
            }
        }
    }
}

/// Run one `.svtest` file.
/// The errors compiling `path` as test_script_compile does (with the
/// suite's extensions and includes beside it), one per line: for
/// comparing with Pigeonhole's `sievec` when a count differs.
pub fn compile_errors(path: &Path) -> Vec<String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut suite = Suite::new(dir);
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    if suite.compile(&name.unwrap_or_default()) {
        Vec::new()
    } else {
        suite.errors.clone()
    }
}

pub fn run_file(path: &Path) -> FileResult {
    let text = match std::fs::read(path) {
        Ok(t) => t,
        Err(e) => return FileResult::Broken(e.to_string()),
    };
    let script = match Script::compile_bytes(&text, &suite_options()) {
        Ok(s) => s,
        Err(errs) => {
            if let Some(u) = errs
                .iter()
                .find(|e| e.message.starts_with("unsupported extension"))
            {
                return FileResult::Skipped(u.message.clone());
            }
            let all: Vec<String> = errs.iter().map(ToString::to_string).collect();
            return FileResult::Broken(format!("does not compile: {}", all.join("; ")));
        }
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut suite = Suite::new(dir);
    let mut rt = Runtime::new(DEFAULT_MESSAGE, default_envelope(), Limits::default());
    let mut path_value = dir.display().to_string();
    path_value.push('/');
    rt.namespaces
        .insert(("tst".into(), "path".into()), path_value);
    let r = rt.run_script(&mut suite, &script);
    if let Err(e) = r {
        let why = e
            .message
            .strip_prefix(FAIL)
            .map_or(e.message.clone(), str::to_string);
        if suite.tests.is_empty() {
            return FileResult::Broken(format!("line {}: {why}", e.line));
        }
        suite.tests.push((
            "(test file aborted)".into(),
            TestResult::Failed(format!("line {}: {why}", e.line)),
        ));
    }
    if !suite.tests.is_empty()
        && suite
            .tests
            .iter()
            .all(|t| matches!(t.1, TestResult::Skipped(_)))
    {
        return FileResult::Skipped(match &suite.tests[0].1 {
            TestResult::Skipped(w) => w.clone(),
            _ => String::new(),
        });
    }
    FileResult::Ran(suite.tests)
}

/// The extensions the `ihave` tests of a parsed script ask for.
fn ihave_names(cmds: &[facteur_sieve::parse::Command], out: &mut Vec<String>) {
    use facteur_sieve::parse::{Arg, Test};
    fn in_test(t: &Test, out: &mut Vec<String>) {
        if t.name.eq_ignore_ascii_case("ihave") {
            for a in &t.args {
                if let Arg::Strings { values, .. } = &a.arg {
                    out.extend(values.iter().map(|v| v.to_ascii_lowercase()));
                }
            }
        }
        for s in &t.tests {
            in_test(s, out);
        }
    }
    for c in cmds {
        for t in &c.tests {
            in_test(t, out);
        }
        if let Some(b) = &c.block {
            ihave_names(b, out);
        }
    }
}
