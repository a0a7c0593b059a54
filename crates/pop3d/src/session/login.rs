//! The AUTHORIZATION state (RFC 1939 §4, §7): USER and PASS, AUTH PLAIN
//! (RFC 5034, RFC 4616), then opening the maildrop.
//!
//! Security: before TLS (and outside the loopback exception) every login
//! command is refused with `-ERR [AUTH]` before its argument is looked at.
//! The password is checked by the directory in a blocking task (unknown users
//! cost as much as known ones); a failure is answered `-ERR [AUTH]` only
//! after a pause, and repeated failures per address or per user add a pause
//! before the next check (facteur_daemon::limits). USER never says whether a user exists.
//! Passwords are never logged.

use super::{Flow, Session, State, blocking};
use crate::maildrop::{Maildrop, OpenError};
use facteur_pop3_proto::{Command, RespCode, Response, SaslResponse, write_continuation};
use std::io;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tracing::{info, warn};

const NO_CLEARTEXT: &str =
    "Plaintext authentication disallowed on non-secure connections: use STLS first";

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    pub(super) async fn authorization(&mut self, cmd: Command) -> io::Result<Flow> {
        let is_login = matches!(
            cmd,
            Command::User(_) | Command::Pass(_) | Command::Auth { .. }
        );
        if is_login && !self.login_allowed() {
            self.state = State::Authorization { user: None };
            self.error(Response::err_code(RespCode::Auth, NO_CLEARTEXT));
            return Ok(Flow::Continue);
        }
        match cmd {
            Command::User(name) => {
                self.state = State::Authorization { user: Some(name) };
                self.reply(&Response::ok("Send PASS"));
            }
            Command::Pass(pass) => {
                let user = match &mut self.state {
                    State::Authorization { user } => user.take(),
                    State::Transaction(_) => None,
                };
                match user {
                    Some(u) => self.login(u, pass).await?,
                    None => self.error(Response::err("Send USER first")),
                }
            }
            Command::Auth { mechanism, initial } => {
                self.state = State::Authorization { user: None };
                self.auth(mechanism, initial).await?;
            }
            c => self.error(Response::err(format!(
                "{} is not allowed before login",
                c.name()
            ))),
        }
        Ok(Flow::Continue)
    }

    async fn auth(&mut self, mechanism: Option<String>, initial: Option<String>) -> io::Result<()> {
        let Some(mechanism) = mechanism else {
            // RFC 1734 habit: AUTH alone lists the mechanisms.
            self.reply(&Response::ok("Supported mechanisms follow"));
            facteur_pop3_proto::write_multiline(self.io.out(), ["PLAIN"]);
            return Ok(());
        };
        if mechanism != "PLAIN" {
            self.error(Response::err("Unsupported authentication mechanism"));
            return Ok(());
        }
        let text = match initial {
            Some(t) => t,
            None => {
                write_continuation(self.io.out(), b"");
                match self.read_line().await? {
                    Some(Ok(l)) => String::from_utf8_lossy(&l).into_owned(),
                    Some(Err(())) => {
                        self.error(Response::err("Line too long"));
                        return Ok(());
                    }
                    None => return Ok(()),
                }
            }
        };
        let creds = match facteur_pop3_proto::decode_sasl_response(&text) {
            Some(SaslResponse::Cancel) => {
                self.error(Response::err("Authentication cancelled"));
                return Ok(());
            }
            Some(SaslResponse::Data(d)) => facteur_pop3_proto::parse_plain(&d),
            None => None,
        };
        match creds {
            Some((user, pass)) => self.login(user, pass).await,
            None => {
                self.error(Response::err("Cannot decode the credentials"));
                Ok(())
            }
        }
    }

    /// Checks the credentials, then locks and opens the maildrop.
    async fn login(&mut self, login: String, pass: String) -> io::Result<()> {
        let limits = Arc::clone(&self.ctx.limits);
        let pause = limits.login_delay(self.ip, &login, self.ctx.auth_delay);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
        let ctx = Arc::clone(&self.ctx);
        let name = login.clone();
        let user = blocking(move || {
            ctx.logins
                .authenticate(ctx.directory.as_ref(), &name, &pass)
        })
        .await?;
        let user = match user {
            Ok(Some(u)) => u,
            Ok(None) => {
                limits.failed(self.ip, &login);
                warn!(user = %login, "authentication failed");
                tokio::time::sleep(self.ctx.auth_delay).await;
                self.error(Response::err_code(RespCode::Auth, "Authentication failed"));
                return Ok(());
            }
            Err(e) => {
                warn!(user = %login, error = %e, "directory error during login");
                self.reply(&Response::err_code(
                    RespCode::SysTemp,
                    "Temporary failure, try again later",
                ));
                return Ok(());
            }
        };
        limits.succeeded(&login);
        let ctx = Arc::clone(&self.ctx);
        let address = user.address.clone();
        let opened = blocking(move || Maildrop::open(&ctx.store, &address)).await?;
        match opened {
            Ok(md) => {
                let (n, octets) = md.stat();
                info!(user = %user.address, messages = n, octets, "logged in");
                self.state = State::Transaction(Some(Box::new(md)));
                self.reply(&Response::ok(format!(
                    "Logged in, {n} messages ({octets} octets)"
                )));
            }
            Err(OpenError::InUse) => {
                info!(user = %user.address, "maildrop in use by another POP3 session");
                self.reply(&Response::err_code(
                    RespCode::InUse,
                    "Mailbox is locked by another POP3 session",
                ));
            }
            Err(e) => {
                warn!(user = %user.address, error = %e, "cannot open the maildrop");
                self.reply(&Response::err_code(
                    RespCode::SysTemp,
                    "Cannot open the mailbox, try again later",
                ));
            }
        }
        Ok(())
    }
}
