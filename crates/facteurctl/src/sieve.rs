//! `facteurctl sieve`: users' Sieve scripts (list, get, put, activate,
//! deactivate, delete, rename), and two tools for whoever writes rules:
//! `check` (compile, with line and column of each error) and `test` (the
//! actions a script would take on a message, taken by nothing).

use std::io::Read;
use std::path::Path;

use anyhow::{Context as _, bail};
use facteur_config::Config;
use facteur_sieve::{Action, Envelope, Host, Limits, Options, Outcome, Script};
use facteur_store::Store;
use facteur_store::sieve::ScriptLimits;

use crate::cli::SieveAction;

fn store(cfg: &Config) -> Store {
    crate::admin::open_store(cfg)
}

/// The per-user script limits of `[sieve]`.
pub fn limits(cfg: &Config) -> ScriptLimits {
    ScriptLimits {
        max_scripts: cfg.sieve.max_scripts as usize,
        max_size: usize::try_from(cfg.sieve.max_script_size.0).unwrap_or(usize::MAX),
    }
}

fn options(cfg: &Config) -> Options {
    Options::disabling(&cfg.sieve.disabled_extensions)
}

/// The script's text from FILE, or standard input for `-`.
fn read_source(file: &Path) -> anyhow::Result<Vec<u8>> {
    if file == Path::new("-") {
        let mut v = Vec::new();
        std::io::stdin().read_to_end(&mut v)?;
        Ok(v)
    } else {
        std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))
    }
}

/// Compile or print every error; true when it compiles.
fn check_text(label: &str, text: &[u8], opts: &Options) -> bool {
    match Script::compile_bytes(text, opts) {
        Ok(_) => true,
        Err(errors) => {
            for e in errors {
                eprintln!("{label}: {e}");
            }
            false
        }
    }
}

/// Runs a `sieve` command (user commands need the store owner's rights,
/// `check` and `test` nothing).
pub fn run(cfg: Option<&Config>, action: SieveAction) -> anyhow::Result<u8> {
    let opts = cfg.map(options).unwrap_or_default();
    let need = || cfg.context("this command needs the configuration");
    match action {
        SieveAction::Check { file } => {
            let text = read_source(&file)?;
            if check_text(&file.display().to_string(), &text, &opts) {
                println!("{}: ok", file.display());
                Ok(0)
            } else {
                Ok(1)
            }
        }
        SieveAction::Test {
            file,
            message,
            from,
            to,
        } => {
            let text = read_source(&file)?;
            let script = match Script::compile_bytes(&text, &opts) {
                Ok(s) => s,
                Err(errors) => {
                    for e in errors {
                        eprintln!("{}: {e}", file.display());
                    }
                    return Ok(1);
                }
            };
            let msg = std::fs::read(&message)
                .with_context(|| format!("cannot read {}", message.display()))?;
            let env = Envelope {
                from: from.unwrap_or_default(),
                to: to.unwrap_or_else(|| "user@example.test".into()),
                orig_to: None,
                auth: None,
            };
            let mut host = TestHost;
            match facteur_sieve::run::run(&script, &msg, env, &mut host, Limits::default()) {
                Ok(out) => {
                    print!("{}", describe(&out));
                    Ok(0)
                }
                Err(e) => {
                    println!("error: {e}");
                    println!("the message would be kept in INBOX");
                    Ok(1)
                }
            }
        }
        SieveAction::List { user } => {
            let sc = store(need()?).scripts(&user)?;
            for (name, active) in sc.list()? {
                println!("{name}{}", if active { " (active)" } else { "" });
            }
            Ok(0)
        }
        SieveAction::Get { user, name } => {
            let sc = store(need()?).scripts(&user)?;
            match sc.get(&name)? {
                Some(t) => {
                    use std::io::Write;
                    std::io::stdout().write_all(&t)?;
                    Ok(0)
                }
                None => bail!("{user} has no script named {name}"),
            }
        }
        SieveAction::Put {
            user,
            name,
            file,
            activate,
        } => {
            let cfg = need()?;
            let text = read_source(&file)?;
            if !check_text(&name, &text, &opts) {
                return Ok(1);
            }
            let sc = store(cfg).scripts(&user)?;
            // its includes too: present (or :optional), compiling, no cycle
            if let Ok(script) = Script::compile_bytes(&text, &opts) {
                let global_dir = cfg.sieve.global_dir.clone();
                let mut load = |global: bool, n: &str| -> Result<Option<Script>, String> {
                    let text = if !global && n == name {
                        Some(text.clone())
                    } else {
                        sc.include_text(global_dir.as_deref(), global, n)
                            .map_err(|e| e.to_string())?
                    };
                    facteur_sieve::compile_included(text, &opts)
                };
                let errors = facteur_sieve::check_includes(&script, &mut load, 10, 255);
                if !errors.is_empty() {
                    for e in errors {
                        eprintln!("{name}: {e}");
                    }
                    return Ok(1);
                }
            }
            sc.put(&name, &text, limits(cfg))?;
            if activate {
                sc.activate(Some(&name))?;
            }
            println!(
                "{user}: script {name} stored{}",
                if activate { " and active" } else { "" }
            );
            Ok(0)
        }
        SieveAction::Activate { user, name } => {
            store(need()?).scripts(&user)?.activate(Some(&name))?;
            println!("{user}: {name} is the active script");
            Ok(0)
        }
        SieveAction::Deactivate { user } => {
            store(need()?).scripts(&user)?.activate(None)?;
            println!("{user}: no active script");
            Ok(0)
        }
        SieveAction::Delete { user, name } => {
            store(need()?).scripts(&user)?.delete(&name)?;
            println!("{user}: script {name} deleted");
            Ok(0)
        }
        SieveAction::Rename { user, from, to } => {
            store(need()?).scripts(&user)?.rename(&from, &to)?;
            println!("{user}: script {from} renamed {to}");
            Ok(0)
        }
    }
}

/// `sieve test` answers "no" to every question about the world (no folder
/// exists, nothing was seen or answered before).
struct TestHost;
impl Host for TestHost {}

fn flags(f: &[String]) -> String {
    if f.is_empty() {
        String::new()
    } else {
        format!(" flags {}", f.join(" "))
    }
}

/// The outcome as the lines `sieve test` prints.
pub fn describe(out: &Outcome) -> String {
    let mut s = String::new();
    for a in &out.actions {
        match a {
            Action::Keep { flags: f, .. } => s.push_str(&format!("keep (INBOX){}\n", flags(f))),
            Action::FileInto {
                mailbox,
                flags: f,
                create,
                copy,
                special_use,
                ..
            } => s.push_str(&format!(
                "fileinto \"{mailbox}\"{}{}{}{}\n",
                flags(f),
                if *create { " (create)" } else { "" },
                if *copy { " (copy)" } else { "" },
                special_use
                    .as_ref()
                    .map(|u| format!(" (special-use {u})"))
                    .unwrap_or_default()
            )),
            Action::Redirect { address, copy, .. } => s.push_str(&format!(
                "redirect to {address}{}\n",
                if *copy { " (copy)" } else { "" }
            )),
            Action::Reject { reason, extended } => s.push_str(&format!(
                "{} \"{}\"\n",
                if *extended { "ereject" } else { "reject" },
                reason.escape_debug()
            )),
            Action::Discard => s.push_str("discard\n"),
            Action::Vacation(v) => {
                let what = match &v.skip {
                    None => "would be sent".to_string(),
                    Some(why) => format!("not sent: {why}"),
                };
                s.push_str(&format!(
                    "vacation reply to {} from {} ({what})\n",
                    v.to, v.from
                ));
            }
        }
    }
    if out.implicit_keep {
        s.push_str(&format!(
            "implicit keep (INBOX){}\n",
            flags(&out.implicit_keep_flags)
        ));
    }
    if out.edited_message.is_some() {
        s.push_str("header edited\n");
    }
    s
}
