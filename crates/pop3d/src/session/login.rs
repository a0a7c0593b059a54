//! The AUTHORIZATION state (RFC 1939 §4, §7): USER and PASS, AUTH (RFC
//! 5034) with SCRAM-SHA-256, PLAIN and LOGIN (facteur-sasl, driven against
//! the directory by facteur-auth), then opening the maildrop.
//!
//! SCRAM's server-final (`v=...`) goes out as a last `+` continuation,
//! answered by an empty line, before `+OK` (RFC 5034 §4 has no success
//! data).
//!
//! Security: before TLS (and outside the loopback exception) every login
//! command, AUTH with any mechanism included, is refused with `-ERR [AUTH]`
//! before its argument is looked at, and CAPA lists neither USER nor SASL.
//! SCRAM would not reveal the password, but it is held to the same rule as
//! PLAIN (one rule; RFC 7677 §4 recommends TLS). Wrong credentials of any
//! kind (wrong password, unknown user, wrong SCRAM proof, a user without
//! SCRAM keys) get the same `-ERR [AUTH]` after the same pauses
//! (facteur-auth). USER never says whether a user exists. Passwords are
//! never logged.

use super::{Flow, Session, State, blocking};
use crate::maildrop::{Maildrop, OpenError};
use facteur_auth::{Answer, Channel, Outcome};
use facteur_pop3_proto::{Command, RespCode, Response, write_continuation};
use facteur_sasl::{Failure, Mechanism};
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
            facteur_pop3_proto::write_multiline(self.io.out(), Mechanism::ALL.map(Mechanism::name));
            return Ok(());
        };
        let Some(mechanism) = Mechanism::from_name(&mechanism) else {
            self.error(Response::err("Unsupported authentication mechanism"));
            return Ok(());
        };
        let initial = match initial.map(|t| facteur_sasl::decode_initial(t.as_bytes())) {
            None => None,
            Some(Ok(d)) => Some(d),
            Some(Err(_)) => {
                self.error(Response::err("Cannot decode the credentials"));
                return Ok(());
            }
        };
        let logins = Arc::clone(&self.ctx.logins);
        let outcome = logins
            .sasl(self.ip, self, mechanism, initial.as_deref())
            .await?;
        self.open(outcome).await
    }

    /// Checks a USER/PASS login, then opens the maildrop.
    async fn login(&mut self, login: String, pass: String) -> io::Result<()> {
        let logins = Arc::clone(&self.ctx.logins);
        let outcome = logins.password(self.ip, &login, &pass).await;
        self.open(outcome).await
    }

    /// Answers a login; on success locks and opens the maildrop.
    async fn open(&mut self, outcome: Outcome) -> io::Result<()> {
        let user = match outcome {
            Outcome::Success(u) => u,
            Outcome::Failed => {
                self.error(Response::err_code(RespCode::Auth, "Authentication failed"));
                return Ok(());
            }
            Outcome::Refused(Failure::Cancelled) => {
                self.error(Response::err("Authentication cancelled"));
                return Ok(());
            }
            Outcome::Refused(Failure::Base64 | Failure::TooLong) => {
                self.error(Response::err("Cannot decode the credentials"));
                return Ok(());
            }
            Outcome::Refused(why) => {
                self.error(Response::err(why.sentence()));
                return Ok(());
            }
            Outcome::Unavailable => {
                self.reply(&Response::err_code(
                    RespCode::SysTemp,
                    "Temporary failure, try again later",
                ));
                return Ok(());
            }
            // The session ends at its next read.
            Outcome::Closed => return Ok(()),
        };
        let ctx = Arc::clone(&self.ctx);
        let address = user.address.clone();
        let opened = blocking(move || Maildrop::open(&ctx.store, &address)).await?;
        match opened {
            Ok(md) => {
                let (n, octets) = md.stat();
                info!(user = %user.address, messages = n, octets, "logged in");
                // The login phase's hard end is lifted (see `serve`).
                self.io.set_deadline(None);
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

/// POP3's side of a SASL exchange (RFC 5034 §4): a challenge is `+ ` and
/// base64 text, the answer one line.
impl<S: AsyncRead + AsyncWrite + Unpin> Channel for Session<S> {
    async fn challenge(&mut self, data: &[u8]) -> io::Result<Answer> {
        write_continuation(self.io.out(), data);
        Ok(match self.read_line().await? {
            Some(Ok(l)) => Answer::Line(l),
            Some(Err(())) => Answer::TooLong,
            None => Answer::Closed,
        })
    }
}
