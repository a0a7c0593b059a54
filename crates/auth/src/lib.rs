//! facteur-auth: the login of a protocol session, written once for smtpd,
//! imapd and pop3d.
//!
//! Offers [`Logins`] (what the sessions of a daemon share: the directory,
//! the cache of verified passwords, the SCRAM secret, the slow-down of
//! failed logins) with two ways in:
//! - [`Logins::sasl`] drives a facteur-sasl exchange (PLAIN, LOGIN,
//!   SCRAM-SHA-256) over the protocol's [`Channel`] — how a challenge goes
//!   out (`+ ` in IMAP and POP3, `334 ` in SMTP) and a response line comes
//!   back — and looks users up or checks passwords in the directory;
//! - [`Logins::password`] checks a user name and password given by a
//!   command (IMAP LOGIN, POP3 USER/PASS).
//!
//! Both end in an [`Outcome`]; the session turns it into its reply.
//!
//! ```text
//!   let logins = Arc::clone(&ctx.logins);
//!   match logins.sasl(ip, &mut session, mechanism, initial.as_deref()).await? {
//!       Outcome::Success(user) => /* logged in as user.address */,
//!       Outcome::Failed => /* "authentication failed" (already paused, counted, logged) */,
//!       Outcome::Refused(why) => /* a protocol error: why says what (cancelled, bad base64...) */,
//!       Outcome::Unavailable => /* temporary failure: the directory failed */,
//!       Outcome::Closed => /* the client went away mid-exchange: end the session */,
//!   }
//! ```
//!
//! Invariants (the same for every protocol and mechanism):
//! - before a password or SCRAM record is looked at, the session waits the
//!   pause `facteur_daemon::limits::Limits::login_delay` asks for (recent
//!   failures from the address or for the user);
//! - a wrong password, an unknown user, a wrong SCRAM proof and a SCRAM
//!   login of a user without keys all give [`Outcome::Failed`], after the
//!   same base pause, counted the same way, logged with the same line
//!   (`authentication failed`, fields `user` and `mechanism`);
//! - a success clears the user's failure count.
//!
//! Security: passwords, keys and proofs are never logged; unknown users
//! cost the same work as known ones (the directory's dummy hash for
//! PLAIN/LOGIN, fake salts for SCRAM).

use facteur_daemon::limits::Limits;
use facteur_directory::{Directory, DirectoryError, LoginCache, UserRecord};
use facteur_sasl::{Exchange, Failure, Mechanism, Response, ScramCredentials, Secret, Step};
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// What the client sent back after a challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// A response line, without its line ending.
    Line(Vec<u8>),
    /// A line over the protocol's limit (it was skipped).
    TooLong,
    /// End of input, time-out or shutdown.
    Closed,
}

/// The protocol side of an exchange.
// Sessions are generic over their stream and not always `Send`; the
// futures are awaited in place, so the `Send` bound that the lint asks
// public async traits to spell out would only get in the way.
#[allow(async_fn_in_trait)]
pub trait Channel {
    /// Sends a challenge (raw bytes; the protocol base64-encodes them into
    /// its continuation line), flushes, and reads the client's answer.
    async fn challenge(&mut self, data: &[u8]) -> io::Result<Answer>;
}

/// How a login ended.
#[derive(Debug)]
pub enum Outcome {
    /// Logged in as this user.
    Success(UserRecord),
    /// Wrong credentials (any kind): already paused, counted and logged.
    Failed,
    /// A protocol error: cancelled, not base64, too long, malformed, an
    /// authorization identity of another user, channel binding required.
    Refused(Failure),
    /// The directory failed (logged): a temporary failure.
    Unavailable,
    /// The client went away during the exchange.
    Closed,
}

/// See the crate documentation.
pub struct Logins {
    directory: Arc<dyn Directory>,
    cache: LoginCache,
    secret: Secret,
    limits: Arc<Limits>,
    delay: Duration,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logins")
            .field("delay", &self.delay)
            .finish_non_exhaustive()
    }
}

/// The mechanism field of log lines about a command login.
const PASSWORD: &str = "password";

impl Logins {
    /// The base pause after a failed login, in the daemons (it grows with
    /// repeated failures, see `facteur_daemon::limits`).
    pub const DELAY: Duration = Duration::from_millis(1500);

    /// `delay` is the base pause after a failed login. Reads the
    /// directory's SCRAM secret.
    pub fn new(
        directory: &Arc<dyn Directory>,
        cache: LoginCache,
        limits: &Arc<Limits>,
        delay: Duration,
    ) -> Result<Arc<Self>, DirectoryError> {
        let secret = Secret::from_slice(&directory.scram_secret()?);
        Ok(Arc::new(Logins {
            directory: Arc::clone(directory),
            cache,
            secret,
            limits: Arc::clone(limits),
            delay,
        }))
    }

    /// A daemon's: the password cache of `directory.login_cache_seconds`,
    /// the pause [`Logins::DELAY`].
    pub fn for_daemon(
        cfg: &facteur_config::Config,
        directory: &Arc<dyn Directory>,
        limits: &Arc<Limits>,
    ) -> Result<Arc<Self>, DirectoryError> {
        let cache = LoginCache::from_seconds(cfg.directory.login_cache_seconds);
        Self::new(directory, cache, limits, Self::DELAY)
    }

    /// For tests of the daemons: no password cache, a 10 ms pause.
    pub fn for_tests(
        directory: &Arc<dyn Directory>,
        limits: &Arc<Limits>,
    ) -> Result<Arc<Self>, DirectoryError> {
        Self::new(
            directory,
            LoginCache::disabled(),
            limits,
            Duration::from_millis(10),
        )
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.directory
    }

    /// A user name and password from a command (IMAP LOGIN, POP3 PASS).
    pub async fn password(self: &Arc<Self>, ip: IpAddr, login: &str, password: &str) -> Outcome {
        self.pause(ip, login).await;
        match self.check(login, password).await {
            Ok(Some(user)) => self.succeeded(login, user),
            Ok(None) => self.failed(ip, login, PASSWORD).await,
            Err(()) => Outcome::Unavailable,
        }
    }

    /// Runs one SASL exchange of `mechanism`, with the client's initial
    /// response if any (already base64-decoded), over `chan`. `Err` only
    /// for an I/O error of the channel.
    pub async fn sasl<C: Channel>(
        self: &Arc<Self>,
        ip: IpAddr,
        chan: &mut C,
        mechanism: Mechanism,
        initial: Option<&[u8]>,
    ) -> io::Result<Outcome> {
        let (mut ex, mut step) = Exchange::start(mechanism, initial, &self.secret);
        // The login being tried, and its record once the directory gave it.
        let mut login = String::new();
        let mut record = None;
        loop {
            step = match step {
                Step::Challenge(data) => match read(chan, &data).await? {
                    Ok(Response::Cancel) => ex.cancel(),
                    Ok(Response::Data(d)) => ex.step(&d),
                    Err(outcome) => return Ok(outcome),
                },
                Step::NeedCredentials { user } => {
                    self.pause(ip, &user).await;
                    login = user;
                    let Ok(found) = self.lookup(&login).await else {
                        return Ok(Outcome::Unavailable);
                    };
                    let keys = found.as_ref().and_then(|u| {
                        let k = ScramCredentials::parse(u.scram.as_deref()?);
                        if k.is_none() {
                            warn!(user = %u.address, "stored SCRAM keys unreadable: set the password again");
                        }
                        k
                    });
                    record = found;
                    ex.credentials(keys.as_ref())
                }
                Step::Verify { user, password } => {
                    self.pause(ip, &user).await;
                    login = user;
                    match self.check(&login, &password).await {
                        Ok(found) => {
                            let ok = found.is_some();
                            record = found;
                            ex.verified(ok)
                        }
                        Err(()) => return Ok(Outcome::Unavailable),
                    }
                }
                Step::Success { final_data, .. } => {
                    if let Some(data) = final_data {
                        // Sent as a last challenge; the answer must be empty.
                        match read(chan, &data).await? {
                            Ok(Response::Data(d)) if d.is_empty() => {}
                            Ok(Response::Cancel) => {
                                return Ok(Outcome::Refused(Failure::Cancelled));
                            }
                            Ok(Response::Data(_)) => {
                                return Ok(Outcome::Refused(Failure::Malformed("final response")));
                            }
                            Err(outcome) => return Ok(outcome),
                        }
                    }
                    // Success comes only after the directory gave the record.
                    let Some(user) = record.take() else {
                        return Ok(Outcome::Refused(Failure::OutOfOrder));
                    };
                    return Ok(self.succeeded(&login, user));
                }
                Step::Failure(Failure::Credentials) => {
                    return Ok(self.failed(ip, &login, mechanism.name()).await);
                }
                Step::Failure(why) => return Ok(Outcome::Refused(why)),
            };
        }
    }

    /// The pause before a login is checked (recent failures).
    async fn pause(&self, ip: IpAddr, login: &str) {
        let pause = self.limits.login_delay(ip, login, self.delay);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }

    fn succeeded(&self, login: &str, user: UserRecord) -> Outcome {
        self.limits.succeeded(login);
        Outcome::Success(user)
    }

    /// The one way a login fails: counted, logged, then the pause.
    async fn failed(&self, ip: IpAddr, login: &str, mechanism: &str) -> Outcome {
        self.limits.failed(ip, login);
        warn!(user = %login, mechanism = %mechanism, "authentication failed");
        tokio::time::sleep(self.delay).await;
        Outcome::Failed
    }

    /// The password check, off the async threads; `Err` (logged) when the
    /// directory fails.
    async fn check(
        self: &Arc<Self>,
        login: &str,
        password: &str,
    ) -> Result<Option<UserRecord>, ()> {
        let me = Arc::clone(self);
        let (name, pw) = (login.to_owned(), password.to_owned());
        let r = tokio::task::spawn_blocking(move || {
            me.cache.authenticate(me.directory.as_ref(), &name, &pw)
        })
        .await;
        self.settle(login, r)
    }

    /// The user's record, for SCRAM; a name that is not an address is an
    /// unknown user.
    async fn lookup(self: &Arc<Self>, login: &str) -> Result<Option<UserRecord>, ()> {
        let me = Arc::clone(self);
        let name = login.to_owned();
        let r = tokio::task::spawn_blocking(move || match me.directory.get_user(&name) {
            Err(DirectoryError::InvalidAddress(_)) => Ok(None),
            other => other,
        })
        .await;
        self.settle(login, r)
    }

    fn settle(
        &self,
        login: &str,
        r: Result<Result<Option<UserRecord>, DirectoryError>, tokio::task::JoinError>,
    ) -> Result<Option<UserRecord>, ()> {
        match r {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => {
                warn!(user = %login, error = %e, "directory error during login");
                Err(())
            }
            Err(e) => {
                warn!(user = %login, error = %e, "login task failed");
                Err(())
            }
        }
    }
}

/// Sends a challenge and decodes the answer; `Err` is how the exchange
/// ends when the answer is not a response.
async fn read<C: Channel>(chan: &mut C, data: &[u8]) -> io::Result<Result<Response, Outcome>> {
    Ok(match chan.challenge(data).await? {
        Answer::Line(l) => facteur_sasl::decode_response(&l).map_err(Outcome::Refused),
        Answer::TooLong => Err(Outcome::Refused(Failure::TooLong)),
        Answer::Closed => Err(Outcome::Closed),
    })
}

#[cfg(test)]
mod tests;
