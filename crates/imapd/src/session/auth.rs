//! Not-authenticated state and session options: CAPABILITY's list,
//! STARTTLS (RFC 9051 §6.2.1), LOGIN (§6.2.3), AUTHENTICATE PLAIN (§6.2.2,
//! RFC 4616, SASL-IR RFC 4959), ENABLE (RFC 5161).
//!
//! Security: before TLS (outside the loopback exception) LOGIN and
//! AUTHENTICATE are refused before their arguments are looked at, and
//! LOGINDISABLED is advertised. Passwords are checked by the directory
//! (unknown users cost as much as known ones); a failure is answered only
//! after a pause, and repeated failures per address or per user add a pause
//! before the next check. Passwords are never logged.

use super::{Flow, Session, User, blocking};
use base64::Engine;
use facteur_daemon::lineio::Input;
use facteur_store::Quota;
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    fn login_allowed(&self) -> bool {
        self.io.stream.is_tls()
            || (self.ctx.cfg.allow_plaintext_auth_on_loopback && self.ip.is_loopback())
    }

    /// The CAPABILITY list for the current state.
    pub(crate) fn capabilities(&self) -> String {
        let mut c = String::from("IMAP4rev1 IMAP4rev2");
        if self.user.is_none() {
            if !self.io.stream.is_tls() && self.ctx.tls.get().is_some() {
                c.push_str(" STARTTLS");
            }
            if self.login_allowed() {
                c.push_str(" AUTH=PLAIN SASL-IR");
            } else {
                c.push_str(" LOGINDISABLED");
            }
        }
        c.push_str(
            " LITERAL+ ID ENABLE IDLE NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN \
             SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS ESEARCH SEARCHRES \
             CONDSTORE QRESYNC QUOTA QUOTA=RES-STORAGE QUOTA=RES-MESSAGE STATUS=SIZE \
             BINARY UTF8=ACCEPT",
        );
        c.push_str(&format!(" APPENDLIMIT={}", self.ctx.cfg.max_append_size.0));
        c
    }

    pub(super) async fn starttls(&mut self, tag: &str) -> io::Result<Flow> {
        if self.io.stream.is_tls() {
            self.bad(Some(tag), "TLS is already active");
            return Ok(Flow::Continue);
        }
        if self.user.is_some() {
            self.bad(Some(tag), "STARTTLS is only allowed before login");
            return Ok(Flow::Continue);
        }
        let Some(tls) = self.ctx.tls.get() else {
            self.no(tag, "TLS is not available");
            return Ok(Flow::Continue);
        };
        self.ok(tag, "Begin TLS negotiation now");
        if self.io.start_tls(tls).await? {
            Ok(Flow::Continue)
        } else {
            Ok(Flow::Close)
        }
    }

    pub(super) async fn login(
        &mut self,
        tag: &str,
        user: String,
        pass: String,
    ) -> io::Result<Flow> {
        if self.user.is_some() {
            self.bad(Some(tag), "Already logged in");
            return Ok(Flow::Continue);
        }
        if !self.login_allowed() {
            self.no(
                tag,
                "[PRIVACYREQUIRED] Plaintext login disallowed: use STARTTLS first",
            );
            self.errors += 1;
            return Ok(Flow::Continue);
        }
        self.check_login(tag, user, pass).await
    }

    pub(super) async fn authenticate(
        &mut self,
        tag: &str,
        mechanism: String,
        initial: Option<Vec<u8>>,
    ) -> io::Result<Flow> {
        if self.user.is_some() {
            self.bad(Some(tag), "Already logged in");
            return Ok(Flow::Continue);
        }
        if !self.login_allowed() {
            self.no(
                tag,
                "[PRIVACYREQUIRED] Authentication disallowed before STARTTLS",
            );
            self.errors += 1;
            return Ok(Flow::Continue);
        }
        if !mechanism.eq_ignore_ascii_case("PLAIN") {
            self.no(tag, "[CANNOT] Unsupported authentication mechanism");
            self.errors += 1;
            return Ok(Flow::Continue);
        }
        let data = match initial {
            Some(d) => d,
            None => {
                self.io.write(b"+ \r\n");
                let line = match self.io.next_line(false).await? {
                    Input::Line(l) => l,
                    Input::TooLong => {
                        self.bad(Some(tag), "Response too long");
                        return Ok(Flow::Continue);
                    }
                    Input::Eof | Input::Timeout | Input::Stop => return Ok(Flow::Close),
                };
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if text == "*" {
                    self.bad(Some(tag), "Authentication cancelled");
                    return Ok(Flow::Continue);
                }
                match base64::engine::general_purpose::STANDARD.decode(text.as_bytes()) {
                    Ok(d) => d,
                    Err(_) => {
                        self.bad(Some(tag), "Invalid base64");
                        return Ok(Flow::Continue);
                    }
                }
            }
        };
        match parse_plain(&data) {
            Some((user, pass)) => self.check_login(tag, user, pass).await,
            None => {
                self.no(tag, "[AUTHENTICATIONFAILED] Malformed PLAIN credentials");
                self.errors += 1;
                Ok(Flow::Continue)
            }
        }
    }

    async fn check_login(&mut self, tag: &str, login: String, pass: String) -> io::Result<Flow> {
        let limits = Arc::clone(&self.ctx.limits);
        let pause = limits.login_delay(self.ip, &login, self.ctx.auth_delay);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let ctx = Arc::clone(&self.ctx);
        let name = login.clone();
        let checked = tokio::task::spawn_blocking(move || {
            ctx.logins
                .authenticate(ctx.directory.as_ref(), &name, &pass)
        })
        .await
        .map_err(|e| io::Error::other(format!("login task failed: {e}")))?;
        let record = match checked {
            Ok(Some(u)) => u,
            Ok(None) => {
                limits.failed(self.ip, &login);
                warn!(user = %login, "authentication failed");
                tokio::time::sleep(self.ctx.auth_delay).await;
                self.no(tag, "[AUTHENTICATIONFAILED] Authentication failed");
                self.errors += 1;
                return Ok(Flow::Continue);
            }
            Err(e) => {
                warn!(user = %login, error = %e, "directory error during login");
                self.no(tag, "[UNAVAILABLE] Temporary failure, try again later");
                return Ok(Flow::Continue);
            }
        };
        limits.succeeded(&login);
        let quota = Quota {
            bytes: record.quota_bytes,
            messages: record.quota_messages,
        };
        let ctx = Arc::clone(&self.ctx);
        let address = record.address.clone();
        match blocking(|| ctx.user_store(&address, quota)) {
            Ok(store) => {
                info!(user = %record.address, "logged in");
                self.user = Some(User {
                    address: record.address,
                    store,
                    quota,
                });
                self.io.set_timeout(self.ctx.cfg.timeout.duration());
                let caps = self.capabilities();
                self.ok(tag, &format!("[CAPABILITY {caps}] Logged in"));
            }
            Err(e) => {
                warn!(user = %record.address, error = %e, "cannot open the mail store");
                self.no(
                    tag,
                    "[UNAVAILABLE] Cannot open the mailbox, try again later",
                );
            }
        }
        Ok(Flow::Continue)
    }

    pub(super) fn enable(&mut self, tag: &str, caps: Vec<String>) -> io::Result<Flow> {
        let mut enabled = Vec::new();
        for c in caps {
            let on = match c.to_ascii_uppercase().as_str() {
                "IMAP4REV2" => {
                    let new = !self.rev2;
                    self.rev2 = true;
                    self.utf8 = true;
                    new
                }
                "UTF8=ACCEPT" => {
                    let new = !self.utf8;
                    self.utf8 = true;
                    new
                }
                "CONDSTORE" => {
                    let new = !self.condstore;
                    self.condstore = true;
                    new
                }
                "QRESYNC" => {
                    let new = !self.qresync;
                    self.qresync = true;
                    self.condstore = true;
                    new
                }
                _ => false,
            };
            if on {
                enabled.push(c);
            }
        }
        if !enabled.is_empty() {
            self.io
                .write(format!("* ENABLED {}\r\n", enabled.join(" ")).as_bytes());
        }
        self.ok(tag, "ENABLE completed");
        Ok(Flow::Continue)
    }
}

/// SASL PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`. An authzid
/// other than the login itself is refused (no proxy logins).
fn parse_plain(data: &[u8]) -> Option<(String, String)> {
    let mut parts = data.split(|&b| b == 0);
    let authz = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let pass = std::str::from_utf8(parts.next()?).ok()?;
    if parts.next().is_some() || user.is_empty() {
        return None;
    }
    if !authz.is_empty() && authz != user.as_bytes() {
        return None;
    }
    Some((user.to_string(), pass.to_string()))
}
