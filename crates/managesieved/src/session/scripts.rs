//! The commands on a logged-in user's scripts (RFC 5804 §2.3-§2.12):
//! HAVESPACE, PUTSCRIPT, CHECKSCRIPT, LISTSCRIPTS, SETACTIVE, GETSCRIPT,
//! DELETESCRIPT, RENAMESCRIPT.
//!
//! A script is compiled before it is stored (PUTSCRIPT) or judged
//! (CHECKSCRIPT), with the extensions `[sieve]` allows, and its includes
//! are checked (present, compiling, no cycle): a script lmtpd could not run
//! is never stored. Names follow facteur-store's rules (UTF-8, no `/`, no
//! control characters, not starting with a dot).

use super::{Session, blocking};
use facteur_directory::UserRecord;
use facteur_managesieve_proto::{self as proto, Command, Response};
use facteur_sieve::{Options, Script};
use facteur_store::StoreError;
use facteur_store::sieve::ScriptLimits;
use std::io;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn options(&self) -> Options {
        Options::disabling(&self.sieve.disabled_extensions)
    }

    fn limits(&self) -> ScriptLimits {
        ScriptLimits {
            max_scripts: self.sieve.max_scripts as usize,
            max_size: self.max_script(),
        }
    }

    /// The store's answer as a response.
    fn store_error(&mut self, e: &StoreError) {
        let r = match e {
            StoreError::NoSuchScript(n) => {
                Response::no(format!("No script named {n}")).code("NONEXISTENT")
            }
            StoreError::ScriptExists(n) => {
                Response::no(format!("A script named {n} exists")).code("ALREADYEXISTS")
            }
            StoreError::InvalidName(n) => Response::no(format!("Invalid script name {n:?}")),
            StoreError::Limit(why) if why.contains("active") => {
                Response::no(why.clone()).code("ACTIVE")
            }
            StoreError::Limit(why) if why.contains("scripts per user") => {
                Response::no(why.clone()).code("QUOTA/MAXSCRIPTS")
            }
            StoreError::Limit(why) => Response::no(why.clone()).code("QUOTA/MAXSIZE"),
            other => {
                warn!(error = %other, "script store failed");
                Response::no("Temporary failure, try again later").code("TRYLATER")
            }
        };
        self.error(r);
    }

    /// Compile `text` and check its includes against `user`'s scripts:
    /// the errors, one per line, or None.
    async fn check(
        &mut self,
        user: &UserRecord,
        name: Option<&str>,
        text: &[u8],
    ) -> io::Result<Option<String>> {
        let opts = self.options();
        let script = match Script::compile_bytes(text, &opts) {
            Ok(s) => s,
            Err(errors) => {
                let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
                return Ok(Some(lines.join("\r\n")));
            }
        };
        let store = self.ctx.store.clone();
        let address = user.address.clone();
        let global_dir = self.sieve.global_dir.clone();
        let (name, text) = (name.map(str::to_string), text.to_vec());
        blocking(move || {
            let scripts = store.scripts(&address).ok()?;
            let mut load = |global: bool, n: &str| -> Result<Option<Script>, String> {
                let found = if !global && name.as_deref() == Some(n) {
                    Some(text.clone())
                } else {
                    scripts
                        .include_text(global_dir.as_deref(), global, n)
                        .map_err(|e| e.to_string())?
                };
                facteur_sieve::compile_included(found, &opts)
            };
            let errors = facteur_sieve::check_includes(&script, &mut load, 10, 255);
            (!errors.is_empty()).then(|| errors.join("\r\n"))
        })
        .await
    }

    pub(super) async fn scripts(&mut self, user: &UserRecord, cmd: Command) -> io::Result<()> {
        let store = self.ctx.store.clone();
        let address = user.address.clone();
        let limits = self.limits();
        let scripts = match store.scripts(&address) {
            Ok(s) => s,
            Err(e) => {
                self.store_error(&e);
                return Ok(());
            }
        };
        match cmd {
            Command::HaveSpace { name, size } => {
                let size = usize::try_from(size).unwrap_or(usize::MAX);
                let r = blocking(move || scripts.have_space(&name, size, limits)).await?;
                match r {
                    Ok(()) => self.reply(&Response::ok("Putscript would succeed")),
                    Err(e) => self.store_error(&e),
                }
            }
            Command::CheckScript { script } => match self.check(user, None, &script).await? {
                None => self.reply(&Response::ok("Script is valid")),
                Some(errors) => self.error(Response::no(errors)),
            },
            Command::PutScript { name, script } => {
                if let Some(errors) = self.check(user, Some(&name), &script).await? {
                    self.error(Response::no(errors));
                    return Ok(());
                }
                let size = script.len();
                let n = name.clone();
                let r = blocking(move || scripts.put(&n, &script, limits)).await?;
                match r {
                    Ok(()) => {
                        info!(user = %address, script = %name, size, "script stored");
                        self.reply(&Response::ok("Script stored"));
                    }
                    Err(e) => self.store_error(&e),
                }
            }
            Command::ListScripts => {
                let r = blocking(move || scripts.list()).await?;
                match r {
                    Ok(list) => {
                        for (name, active) in list {
                            proto::write_string(self.io.out(), name.as_bytes());
                            if active {
                                self.io.out().extend_from_slice(b" ACTIVE");
                            }
                            self.io.out().extend_from_slice(b"\r\n");
                        }
                        self.reply(&Response::ok("Listscripts completed"));
                    }
                    Err(e) => self.store_error(&e),
                }
            }
            Command::SetActive { name } => {
                let n = name.clone();
                let r = blocking(move || scripts.activate((!n.is_empty()).then_some(n.as_str())))
                    .await?;
                match r {
                    Ok(()) => {
                        info!(user = %address, script = %name, "active script set");
                        self.reply(&Response::ok(if name.is_empty() {
                            "No script active"
                        } else {
                            "Script activated"
                        }));
                    }
                    Err(e) => self.store_error(&e),
                }
            }
            Command::GetScript { name } => {
                let n = name.clone();
                let r = blocking(move || scripts.get(&n)).await?;
                match r {
                    Ok(Some(text)) => {
                        let out = self.io.out();
                        out.extend_from_slice(format!("{{{}}}\r\n", text.len()).as_bytes());
                        out.extend_from_slice(&text);
                        out.extend_from_slice(b"\r\n");
                        self.reply(&Response::ok("Getscript completed"));
                    }
                    Ok(None) => self.store_error(&StoreError::NoSuchScript(name)),
                    Err(e) => self.store_error(&e),
                }
            }
            Command::DeleteScript { name } => {
                let n = name.clone();
                let r = blocking(move || scripts.delete(&n)).await?;
                match r {
                    Ok(()) => {
                        info!(user = %address, script = %name, "script deleted");
                        self.reply(&Response::ok("Script deleted"));
                    }
                    Err(e) => self.store_error(&e),
                }
            }
            Command::RenameScript { old, new } => {
                let r = blocking(move || scripts.rename(&old, &new)).await?;
                match r {
                    Ok(()) => self.reply(&Response::ok("Script renamed")),
                    Err(e) => self.store_error(&e),
                }
            }
            _ => self.error(Response::no("Not allowed now")),
        }
        Ok(())
    }
}
