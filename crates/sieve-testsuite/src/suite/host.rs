//! The test suite's commands and tests (`test`, `test_set`,
//! `test_script_*`, `test_result_*`, `test_message`, `test_error`, ...) as
//! a [`Host`] of the interpreter, and the world the scripts under test see
//! (folders, includes, environment, vacation settings).

use std::sync::Arc;

use facteur_sieve::ir::Custom;
use facteur_sieve::run::{Flow, Runtime};
use facteur_sieve::{Action, Host, Outcome, RunError, Script};

use super::{FAIL, Suite, TestResult, args, duration, first_string};

impl Host for Suite {
    fn mailbox_exists(&mut self, name: &str) -> bool {
        self.folder_exists(name)
    }

    fn duplicate_seen(&mut self, handle: &str, id: &str, _period: u64, _last: bool) -> bool {
        self.duplicates
            .contains(&(handle.to_string(), id.to_string()))
    }

    fn include(&mut self, global: bool, name: &str) -> Result<Option<Arc<Script>>, String> {
        let dir = if global {
            self.dir.join("included-global")
        } else {
            self.include_dir.clone()
        };
        let path = dir.join(format!("{name}.sieve"));
        facteur_sieve::compile_included(std::fs::read(&path).ok(), &self.script_options())
            .map(|s| s.map(Arc::new))
    }

    fn environment(&mut self, name: &str) -> Option<String> {
        Some(match name {
            "domain" => "example.com".into(),
            "host" => "host.example.com".into(),
            // the test suite's own environment is a message store
            "location" => "MS".into(),
            "name" => "facteur".into(),
            "phase" => "during".into(),
            "version" => "0.1".into(),
            _ => return None,
        })
    }

    fn user_addresses(&mut self) -> Vec<String> {
        self.config
            .get("sieve_user_email")
            .cloned()
            .into_iter()
            .collect()
    }

    fn vacation_period(&mut self) -> (u64, u64, u64) {
        let get = |k: &str, d: u64| self.config.get(k).and_then(|v| duration(v)).unwrap_or(d);
        (
            get("sieve_vacation_default_period", 7 * 86_400),
            get("sieve_vacation_min_period", 86_400),
            get("sieve_vacation_max_period", 90 * 86_400),
        )
    }

    fn custom_command(&mut self, rt: &mut Runtime<'_>, c: &Custom) -> Result<Flow, RunError> {
        let p = args::parse(&c.args);
        match c.name.as_str() {
            "test" => {
                let name = first_string(rt, &p, 0);
                if self.in_test {
                    return Err(RunError {
                        line: c.line,
                        message: "test inside a test".into(),
                    });
                }
                self.in_test = true;
                self.unsupported.clear();
                let r = match &c.block {
                    Some(b) => rt.exec_block(self, b),
                    None => Ok(Flow::Continue),
                };
                self.in_test = false;
                let res = match r {
                    Ok(_) => TestResult::Passed,
                    Err(e) => {
                        let why = match e.message.strip_prefix(FAIL) {
                            Some(why) => why.to_string(),
                            None => {
                                // a run-time error of the test file itself ends the file
                                if self.unsupported.is_empty() {
                                    return Err(e);
                                }
                                e.message
                            }
                        };
                        if self.unsupported.is_empty() {
                            TestResult::Failed(why)
                        } else {
                            let list: Vec<String> = self.unsupported.iter().cloned().collect();
                            TestResult::Skipped(format!("needs {}", list.join(", ")))
                        }
                    }
                };
                self.tests.push((name, res));
                Ok(Flow::Continue)
            }
            "test_fail" => {
                let why = first_string(rt, &p, 0);
                Err(Self::fail(c.line, format!("{why} (line {})", c.line)))
            }
            "test_set" => {
                let what = first_string(rt, &p, 0).to_ascii_lowercase();
                let value = first_string(rt, &p, 1);
                // an invalid path is the null sender / no recipient
                let addr = |v: &str| facteur_sieve::run::address::parse_path(v).unwrap_or_default();
                match what.as_str() {
                    "message" => Self::set_message(rt, value.into_bytes()),
                    "envelope.from" => rt.envelope.from = addr(&value),
                    "envelope.to" => {
                        rt.envelope.to = addr(&value);
                        rt.envelope.orig_to = Some(addr(&value));
                    }
                    "envelope.orig_to" => rt.envelope.orig_to = Some(addr(&value)),
                    "envelope.auth" => rt.envelope.auth = Some(value),
                    other => {
                        return Err(Self::fail(
                            c.line,
                            format!("test_set: unknown item {other}"),
                        ));
                    }
                }
                Ok(Flow::Continue)
            }
            "test_result_reset" => {
                self.reset_result(rt);
                self.outbox.clear();
                Ok(Flow::Continue)
            }
            "test_result_print" | "test_config_reload" | "test_imap_metadata_set" => {
                Ok(Flow::Continue)
            }
            "test_config_set" => {
                let k = first_string(rt, &p, 0);
                let v = first_string(rt, &p, 1);
                if k == "recipient_delimiter" {
                    rt.detail_separators = v.clone();
                }
                self.config.insert(k, v);
                rt.limits = self.limits();
                Ok(Flow::Continue)
            }
            "test_config_unset" => {
                let k = first_string(rt, &p, 0);
                self.config.remove(&k);
                Ok(Flow::Continue)
            }
            "test_mailbox_create" => {
                let name = first_string(rt, &p, 0);
                self.created.insert(Self::folder_key(&name));
                Ok(Flow::Continue)
            }
            "test_message" => {
                if self.select_message(rt, &p) {
                    Ok(Flow::Continue)
                } else {
                    Err(Self::fail(c.line, "no such message (test_message)"))
                }
            }
            "test_binary_save" | "test_binary_load" => {
                if self.binary(rt, &p, c.name == "test_binary_save") {
                    Ok(Flow::Continue)
                } else {
                    Err(Self::fail(c.line, format!("{} failed", c.name)))
                }
            }
            other => Err(RunError {
                line: c.line,
                message: format!("unknown command {other}"),
            }),
        }
    }

    fn custom_test(&mut self, rt: &mut Runtime<'_>, c: &Custom) -> Result<bool, RunError> {
        let p = args::parse(&c.args);
        Ok(match c.name.as_str() {
            "test_script_compile" => {
                let rel = first_string(rt, &p, 0);
                self.compile(&rel)
            }
            "test_script_run" => self.run_compiled(rt, p.has("append_result")),
            "test_multiscript" => {
                let names: Vec<String> =
                    p.strings(0).map(|l| rt.expand_list(l)).unwrap_or_default();
                let msg = rt.message.raw().to_vec();
                let env = rt.envelope.clone();
                let mut sub = Runtime::new(&msg, env.clone(), self.limits());
                let mut ok = true;
                for n in &names {
                    if !self.compile(n) {
                        ok = false;
                        break;
                    }
                    let Some((s, _)) = self.compiled.clone() else {
                        break;
                    };
                    if let Err(e) = sub.run_script(self, &s) {
                        self.errors.push(e.message);
                        ok = false;
                        break;
                    }
                    let o = sub.outcome();
                    if !(o.implicit_keep
                        || o.actions.iter().any(|a| matches!(a, Action::Keep { .. })))
                    {
                        break;
                    }
                }
                let flags = sub.flags().to_vec();
                let mut out = sub.finish();
                if !ok {
                    out = Outcome::keep_only();
                }
                let executed = self.carry_out(&out, 0, false, &msg, &env, &flags);
                ok && executed
            }
            "test_result_execute" => self.execute(rt),
            "test_result_action" => {
                let names: Vec<String> = rt
                    .outcome()
                    .actions
                    .iter()
                    .map(|a| match a {
                        Action::FileInto { .. } => "store".to_string(),
                        other => other.name().to_string(),
                    })
                    .collect();
                let values = match p.number("index") {
                    Some(i) if i > 0 => names.get(i as usize - 1).cloned().into_iter().collect(),
                    _ => names,
                };
                let keys = p.strings(0).cloned().unwrap_or_default();
                rt.match_strings(&p.matcher_octet(), &values, &keys)?
            }
            "test_error" => {
                let values = match p.number("index") {
                    Some(i) if i > 0 => self
                        .errors
                        .get(i as usize - 1)
                        .cloned()
                        .into_iter()
                        .collect(),
                    _ => self.errors.clone(),
                };
                let keys = p.strings(0).cloned().unwrap_or_default();
                rt.match_strings(&p.matcher_octet(), &values, &keys)?
            }
            "test_message" => self.select_message(rt, &p),
            "test_binary_save" | "test_binary_load" => {
                self.binary(rt, &p, c.name == "test_binary_save")
            }
            "test_mailbox_create" => {
                let name = first_string(rt, &p, 0);
                self.created.insert(Self::folder_key(&name));
                true
            }
            "test_imap_metadata_set" => false,
            other => {
                return Err(RunError {
                    line: c.line,
                    message: format!("unknown test {other}"),
                });
            }
        })
    }
}
