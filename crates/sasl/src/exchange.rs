//! One authentication exchange, whatever the mechanism: a state machine
//! fed with client responses and with the caller's answers (stored SCRAM
//! keys, password checks), answering each with a [`Step`].
//!
//! ```text
//!   PLAIN   start(ir?) ─ Challenge("") ─ step(msg) ─ Verify ─ verified(ok) ─ Success | Failure
//!   LOGIN   start(ir?) ─ Challenge("Username:") ─ step(user) ─ Challenge("Password:")
//!                      ─ step(pw) ─ Verify ─ verified(ok) ─ Success | Failure
//!   SCRAM   start(ir?) ─ Challenge("") ─ step(client-first) ─ NeedCredentials
//!                      ─ credentials(keys?) ─ Challenge(server-first)
//!                      ─ step(client-final) ─ Success{v=...} | Failure(Credentials)
//! ```
//!
//! An initial response stands for the answer to the first, empty challenge
//! (RFC 4422 §5); for LOGIN it is the user name. After `Success` or
//! `Failure` the exchange is over: any further call gives
//! `Failure(OutOfOrder)`.

use crate::keys::{ScramCredentials, Secret};
use crate::plain::{parse_login_field, parse_plain};
use crate::scram::{self, ClientFirst, Pending};
use crate::{Failure, MAX_RESPONSE, Mechanism, Step};

enum State {
    /// PLAIN: waiting for the message.
    Plain,
    /// LOGIN: waiting for the user name.
    LoginUser,
    /// LOGIN: waiting for the password.
    LoginPassword {
        user: String,
    },
    /// PLAIN, LOGIN: `Verify` was returned.
    Verifying {
        user: String,
    },
    /// SCRAM: waiting for client-first.
    ScramFirst,
    /// SCRAM: `NeedCredentials` was returned.
    ScramKeys(Box<ClientFirst>),
    /// SCRAM: server-first was sent.
    ScramFinal(Box<Pending>),
    Done,
}

/// See the module documentation.
pub struct Exchange {
    mechanism: Mechanism,
    state: State,
    secret: Secret,
    /// The server's nonce part; fresh and random unless a test sets it.
    server_nonce: Option<String>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("mechanism", &self.mechanism)
            .finish_non_exhaustive()
    }
}

impl Exchange {
    /// Starts an exchange of `mechanism`, with the client's initial
    /// response if it sent one (already base64-decoded). `secret` keys the
    /// fake SCRAM salts of unknown users.
    pub fn start(
        mechanism: Mechanism,
        initial: Option<&[u8]>,
        secret: &Secret,
    ) -> (Exchange, Step) {
        Self::start_inner(mechanism, initial, secret, None)
    }

    /// [`Exchange::start`] with a fixed SCRAM server nonce: for tests and
    /// fuzzing only; a real server nonce must be fresh and unpredictable.
    pub fn start_with_nonce(
        mechanism: Mechanism,
        initial: Option<&[u8]>,
        secret: &Secret,
        server_nonce: &str,
    ) -> (Exchange, Step) {
        Self::start_inner(mechanism, initial, secret, Some(server_nonce.to_owned()))
    }

    fn start_inner(
        mechanism: Mechanism,
        initial: Option<&[u8]>,
        secret: &Secret,
        server_nonce: Option<String>,
    ) -> (Exchange, Step) {
        let state = match mechanism {
            Mechanism::Plain => State::Plain,
            Mechanism::Login => State::LoginUser,
            Mechanism::ScramSha256 => State::ScramFirst,
        };
        let mut ex = Exchange {
            mechanism,
            state,
            secret: secret.clone(),
            server_nonce,
        };
        let step = match initial {
            Some(ir) => ex.step(ir),
            None if mechanism == Mechanism::Login => Step::Challenge(b"Username:".to_vec()),
            None => Step::Challenge(Vec::new()),
        };
        (ex, step)
    }

    /// The mechanism of this exchange.
    pub fn mechanism(&self) -> Mechanism {
        self.mechanism
    }

    /// Whether the exchange is over (it gave `Success` or `Failure`).
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn fail(&mut self, why: Failure) -> Step {
        self.state = State::Done;
        Step::Failure(why)
    }

    /// The client's answer to the last challenge, base64-decoded.
    pub fn step(&mut self, response: &[u8]) -> Step {
        if response.len() > MAX_RESPONSE {
            return self.fail(Failure::TooLong);
        }
        match std::mem::replace(&mut self.state, State::Done) {
            State::Plain => match parse_plain(response) {
                Ok((user, password)) => {
                    self.state = State::Verifying { user: user.clone() };
                    Step::Verify { user, password }
                }
                Err(e) => self.fail(e),
            },
            State::LoginUser => match parse_login_field(response) {
                Ok(user) => {
                    self.state = State::LoginPassword { user };
                    Step::Challenge(b"Password:".to_vec())
                }
                Err(e) => self.fail(e),
            },
            State::LoginPassword { user } => match parse_login_field(response) {
                Ok(password) => {
                    self.state = State::Verifying { user: user.clone() };
                    Step::Verify { user, password }
                }
                Err(e) => self.fail(e),
            },
            State::ScramFirst => match scram::client_first(response) {
                Ok(first) => {
                    let user = first.user.clone();
                    self.state = State::ScramKeys(Box::new(first));
                    Step::NeedCredentials { user }
                }
                Err(e) => self.fail(e),
            },
            State::ScramFinal(pending) => match scram::client_final(&pending, response) {
                Ok((user, v)) => Step::Success {
                    user,
                    final_data: Some(v),
                },
                Err(e) => self.fail(e),
            },
            State::Verifying { .. } | State::ScramKeys(_) | State::Done => {
                self.fail(Failure::OutOfOrder)
            }
        }
    }

    /// SCRAM: the stored keys of the user [`Step::NeedCredentials`] named,
    /// or `None` (unknown user, no keys stored). Either way the answer is
    /// server-first: with `None`, a fake salt derived from the name, and
    /// the exchange fails after client-final as for a wrong password.
    pub fn credentials(&mut self, keys: Option<&ScramCredentials>) -> Step {
        let State::ScramKeys(first) = std::mem::replace(&mut self.state, State::Done) else {
            return self.fail(Failure::OutOfOrder);
        };
        let fake;
        let (keys, real) = match keys {
            Some(k) => (k, true),
            None => {
                fake = self.secret.fake(&first.user);
                (&fake, false)
            }
        };
        let nonce = self.server_nonce.clone().unwrap_or_else(|| {
            // 18 random bytes: 24 base64 characters, no ','.
            crate::encode(&rand::random::<[u8; 18]>())
        });
        let (msg, pending) = scram::server_first(*first, keys, real, &nonce);
        self.state = State::ScramFinal(Box::new(pending));
        Step::Challenge(msg)
    }

    /// PLAIN, LOGIN: whether the password of [`Step::Verify`] is right.
    pub fn verified(&mut self, ok: bool) -> Step {
        let State::Verifying { user } = std::mem::replace(&mut self.state, State::Done) else {
            return self.fail(Failure::OutOfOrder);
        };
        if ok {
            Step::Success {
                user,
                final_data: None,
            }
        } else {
            Step::Failure(Failure::Credentials)
        }
    }

    /// The client cancelled (`*`).
    pub fn cancel(&mut self) -> Step {
        self.fail(Failure::Cancelled)
    }
}

#[cfg(test)]
#[path = "exchange_tests.rs"]
mod tests;
