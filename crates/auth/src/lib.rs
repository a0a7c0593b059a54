//! facteur-auth: the login of a protocol session, written once for smtpd,
//! imapd and pop3d (and ManageSieve to come), with what protects it: the
//! slow-down of failed logins and the bound on password hashing.
//!
//! Offers [`Logins`] (what the sessions of a daemon share: the directory,
//! the cache of verified passwords, the SCRAM secret, the [`Penalty`] of
//! failed logins, the hash [`Limiter`]) with two ways in:
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
//!       Outcome::Unavailable => /* temporary failure: the directory failed, or too many checks wait */,
//!       Outcome::Closed => /* the client went away mid-exchange: end the session */,
//!   }
//! ```
//!
//! Layout: `lib.rs` (the driver), [`penalty`] (the slow-down policy),
//! [`limiter`] (the hash slots and their queues), [`net`] (addresses,
//! networks, queue keys).
//!
//! The policy, the same for every protocol and mechanism (the numbers are
//! `[auth]` in facteur.toml; [`penalty`] has the rules in full):
//! - before a password or SCRAM record is looked at, an attempt waits what
//!   [`Penalty::admit`] says: nothing at first; after failures from its
//!   address `base × 2^(n − 1)` (1.5 s, 3 s, 6 s... at most
//!   `auth.max_delay`, 30 s), also after failures of its network (/24,
//!   /64) beyond a grace, and, for a user attacked from many networks, at
//!   addresses where that user never logged in. Parallel attempts are
//!   spaced by the wait; one that would wait longer than `max_delay` is
//!   refused (it fails as below, without a check);
//! - an address where the user logged in before is never slowed by
//!   others' failures against that user: the real user is not locked out;
//! - a password hash (argon2id: 19 MiB, tens of milliseconds of CPU) runs
//!   only with a [`Limiter`] permit: `auth.max_parallel_hashes` at once
//!   per process, waiting work queued per client and served round-robin,
//!   at most `auth.max_queued_per_address` waiting per client and
//!   `auth.max_queued` in all (beyond: [`Outcome::Unavailable`], a
//!   temporary failure after the base pause, not counted as a failure:
//!   a burst of logins is no evidence of guessing); each permit
//!   hashes in a working memory kept for it
//!   ([`facteur_directory::password::Scratch`]), so hashing costs at most
//!   `max_parallel_hashes × 19 MiB`. A login the password cache answers
//!   (no hash) needs no permit. SCRAM needs none: its keys are stored;
//! - a wrong password, an unknown user (checked against a dummy hash: the
//!   same time and memory), a wrong SCRAM proof, a SCRAM login of a user
//!   without keys and a refused attempt all give [`Outcome::Failed`] after
//!   the same base pause, logged with the same line (`authentication
//!   failed`, fields `user` and `mechanism`; a refusal adds `reason`);
//! - a success forgives the user's failures from that address and makes
//!   the address trusted for the user.
//!
//! Security: passwords, keys and proofs are never logged; unknown users
//! cost the same work as known ones (the directory's dummy hash for
//! PLAIN/LOGIN, fake salts for SCRAM).

pub mod limiter;
pub mod net;
pub mod penalty;

pub use limiter::{Busy, Limiter, Permit, Sizes};
pub use penalty::{Admission, Penalty, Policy};

use facteur_directory::password::Scratch;
use facteur_directory::{Check, Directory, DirectoryError, LoginCache, UserRecord};
use facteur_sasl::{Exchange, Failure, Mechanism, Response, ScramCredentials, Secret, Step};
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{debug, warn};

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
    /// The directory failed, or the password checks waiting are at their
    /// limit (logged): a temporary failure.
    Unavailable,
    /// The client went away during the exchange.
    Closed,
}

/// How a daemon limits its logins: `[auth]` of facteur.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub policy: Policy,
    pub sizes: Sizes,
}

impl Settings {
    /// From the configuration's `[auth]`.
    pub fn from_config(a: &facteur_config::Auth) -> Self {
        let slots = match a.max_parallel_hashes {
            0 => Sizes::default_slots(),
            n => n as usize,
        };
        Settings {
            policy: Policy {
                base: Logins::DELAY,
                max_delay: a.max_delay.duration(),
                forget_after: a.forget_failures_after.duration(),
                trust_for: a.trust_logins_for.duration(),
            },
            sizes: Sizes {
                slots,
                per_client: a.max_queued_per_address as usize,
                total: a.max_queued as usize,
            },
        }
    }

    /// The defaults with a base pause of `base` (tests of the daemons).
    pub fn with_base(base: Duration) -> Self {
        let mut s = Self::from_config(&facteur_config::Auth::default());
        s.policy.base = base;
        s.policy.max_delay = s.policy.max_delay.min(base * 20);
        s
    }
}

/// See the crate documentation.
pub struct Logins {
    directory: Arc<dyn Directory>,
    cache: LoginCache,
    secret: Secret,
    penalty: Penalty,
    limiter: Arc<Limiter>,
    /// Argon2 working memory, one per permit at most, kept between hashes.
    scratches: Mutex<Vec<Scratch>>,
}

impl std::fmt::Debug for Logins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Logins")
            .field("policy", self.penalty.policy())
            .field("sizes", &self.limiter.sizes())
            .finish_non_exhaustive()
    }
}

/// The mechanism field of log lines about a command login.
const PASSWORD: &str = "password";

/// `facteur_logins_total{mechanism, result}`: `password` for a command
/// login (IMAP LOGIN, POP3 USER/PASS), else the SASL mechanism; `success`,
/// `failure` (wrong credentials), `refused` (too many attempts), `busy`
/// (no room to check a hash now).
fn logins() -> Arc<facteur_metrics::Family> {
    facteur_metrics::global().counter(
        "facteur_logins_total",
        "Logins by mechanism and result.",
        &["mechanism", "result"],
    )
}

fn count(mechanism: &str, result: &str) {
    logins().inc(&[mechanism, result]);
}

/// Why a check did not give an answer.
enum Stop {
    /// The limiter refused the hash.
    Busy,
    /// The directory failed (logged).
    Unavailable,
}

impl Logins {
    /// The base pause after a failed login, in the daemons (attempts after
    /// failures wait more, see [`penalty`]).
    pub const DELAY: Duration = Duration::from_millis(1500);

    /// Logins against `directory`, limited by `settings`. Reads the
    /// directory's SCRAM secret.
    pub fn new(
        directory: &Arc<dyn Directory>,
        cache: LoginCache,
        settings: Settings,
    ) -> Result<Arc<Self>, DirectoryError> {
        let secret = Secret::from_slice(&directory.scram_secret()?);
        let f = logins();
        for m in [PASSWORD, "PLAIN", "LOGIN", "SCRAM-SHA-256"] {
            for r in ["success", "failure", "refused", "busy"] {
                f.register(&[m, r]);
            }
        }
        Ok(Arc::new(Logins {
            directory: Arc::clone(directory),
            cache,
            secret,
            penalty: Penalty::new(settings.policy),
            limiter: Limiter::new(settings.sizes),
            scratches: Mutex::new(Vec::new()),
        }))
    }

    /// A daemon's: the password cache of `directory.login_cache_seconds`,
    /// the limits of `[auth]`, the pause [`Logins::DELAY`].
    pub fn for_daemon(
        cfg: &facteur_config::Config,
        directory: &Arc<dyn Directory>,
    ) -> Result<Arc<Self>, DirectoryError> {
        let cache = LoginCache::from_seconds(cfg.directory.login_cache_seconds);
        Self::new(directory, cache, Settings::from_config(&cfg.auth))
    }

    /// For tests of the daemons: no password cache, a 10 ms pause.
    pub fn for_tests(directory: &Arc<dyn Directory>) -> Result<Arc<Self>, DirectoryError> {
        Self::new(
            directory,
            LoginCache::disabled(),
            Settings::with_base(Duration::from_millis(10)),
        )
    }

    /// The directory.
    pub fn directory(&self) -> &Arc<dyn Directory> {
        &self.directory
    }

    /// The slow-down of failed logins.
    pub fn penalty(&self) -> &Penalty {
        &self.penalty
    }

    /// The hash limiter.
    pub fn limiter(&self) -> &Arc<Limiter> {
        &self.limiter
    }

    /// A user name and password from a command (IMAP LOGIN, POP3 PASS).
    pub async fn password(self: &Arc<Self>, ip: IpAddr, login: &str, password: &str) -> Outcome {
        if !self.pause(ip, login).await {
            return self.refused(ip, login, PASSWORD, "too many attempts").await;
        }
        match self.check(ip, login, password).await {
            Ok(Some(user)) => self.succeeded(ip, login, user, PASSWORD),
            Ok(None) => self.failed(ip, login, PASSWORD).await,
            Err(Stop::Busy) => self.busy(login, PASSWORD).await,
            Err(Stop::Unavailable) => Outcome::Unavailable,
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
        let name = mechanism.name();
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
                    if !self.pause(ip, &user).await {
                        return Ok(self.refused(ip, &user, name, "too many attempts").await);
                    }
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
                    if !self.pause(ip, &user).await {
                        return Ok(self.refused(ip, &user, name, "too many attempts").await);
                    }
                    login = user;
                    match self.check(ip, &login, &password).await {
                        Ok(found) => {
                            let ok = found.is_some();
                            record = found;
                            ex.verified(ok)
                        }
                        Err(Stop::Busy) => return Ok(self.busy(&login, name).await),
                        Err(Stop::Unavailable) => return Ok(Outcome::Unavailable),
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
                    return Ok(self.succeeded(ip, &login, user, name));
                }
                Step::Failure(Failure::Credentials) => {
                    return Ok(self.failed(ip, &login, name).await);
                }
                Step::Failure(why) => return Ok(Outcome::Refused(why)),
            };
        }
    }

    /// The wait before a login is checked (recent failures); `false` when
    /// the attempt is refused instead.
    async fn pause(&self, ip: IpAddr, login: &str) -> bool {
        match self.penalty.admit(ip, login) {
            Admission::Wait(d) if d.is_zero() => true,
            Admission::Wait(d) => {
                debug!(user = %login, wait_ms = d.as_millis() as u64, "login slowed down by recent failures");
                tokio::time::sleep(d).await;
                true
            }
            Admission::Refused => false,
        }
    }

    fn succeeded(&self, ip: IpAddr, login: &str, user: UserRecord, mechanism: &str) -> Outcome {
        count(mechanism, "success");
        self.penalty.succeeded(ip, login);
        Outcome::Success(user)
    }

    /// The one way wrong credentials end: counted, logged, then the pause.
    async fn failed(&self, ip: IpAddr, login: &str, mechanism: &str) -> Outcome {
        count(mechanism, "failure");
        self.penalty.failed(ip, Some(login));
        warn!(user = %login, mechanism = %mechanism, "authentication failed");
        tokio::time::sleep(self.penalty.policy().base).await;
        Outcome::Failed
    }

    /// An attempt refused before its credentials were checked: it ends as
    /// a failure does, counted for the address only.
    async fn refused(&self, ip: IpAddr, login: &str, mechanism: &str, reason: &str) -> Outcome {
        count(mechanism, "refused");
        self.penalty.failed(ip, None);
        warn!(user = %login, mechanism = %mechanism, reason, "authentication failed");
        tokio::time::sleep(self.penalty.policy().base).await;
        Outcome::Failed
    }

    /// A check the hash limiter had no room for: a temporary failure, not
    /// counted against the address. Load is no evidence of guessing: 50
    /// clients of an office behind one NAT address logging in at once
    /// after a restart are told to retry (`NO [UNAVAILABLE]`, `454`,
    /// `-ERR [SYS/TEMP]`), never locked out by the penalty (and a client
    /// does not take a temporary failure for a wrong password and ask its
    /// user for it again). The flood itself costs no hash.
    async fn busy(&self, login: &str, mechanism: &str) -> Outcome {
        count(mechanism, "busy");
        warn!(user = %login, mechanism = %mechanism, "authentication deferred: too many password checks waiting");
        tokio::time::sleep(self.penalty.policy().base).await;
        Outcome::Unavailable
    }

    /// The password check: the directory and the cache, then (when the
    /// cache cannot answer) the hash under a limiter permit, off the async
    /// threads.
    async fn check(
        self: &Arc<Self>,
        ip: IpAddr,
        login: &str,
        password: &str,
    ) -> Result<Option<UserRecord>, Stop> {
        let me = Arc::clone(self);
        let (name, pw) = (login.to_owned(), password.to_owned());
        let r = tokio::task::spawn_blocking(move || {
            me.cache.prepare(me.directory.as_ref(), &name, &pw)
        })
        .await;
        let pending = match self.settle(login, r)? {
            Check::Known(user) => return Ok(Some(user)),
            Check::Verify(p) => p,
        };
        let permit = self.limiter.acquire(ip).await.map_err(|Busy| Stop::Busy)?;
        let me = Arc::clone(self);
        let r = tokio::task::spawn_blocking(move || {
            // The permit is held until the hash is over, even if the
            // session stops waiting for it.
            let mut scratch = me.take_scratch();
            let verified = me.cache.verify(pending, &mut scratch);
            me.put_scratch(scratch);
            drop(permit);
            Ok(verified)
        })
        .await;
        self.settle(login, r)
    }

    fn take_scratch(&self) -> Scratch {
        let mut pool = self.scratches.lock().unwrap_or_else(|p| p.into_inner());
        pool.pop().unwrap_or_default()
    }

    fn put_scratch(&self, s: Scratch) {
        let mut pool = self.scratches.lock().unwrap_or_else(|p| p.into_inner());
        if pool.len() < self.limiter.sizes().slots {
            pool.push(s);
        }
    }

    /// The user's record, for SCRAM; a name that is not an address is an
    /// unknown user.
    async fn lookup(self: &Arc<Self>, login: &str) -> Result<Option<UserRecord>, Stop> {
        let me = Arc::clone(self);
        let name = login.to_owned();
        let r = tokio::task::spawn_blocking(move || {
            facteur_directory::lookup_login(me.directory.as_ref(), &name)
        })
        .await;
        self.settle(login, r)
    }

    fn settle<T>(
        &self,
        login: &str,
        r: Result<Result<T, DirectoryError>, tokio::task::JoinError>,
    ) -> Result<T, Stop> {
        match r {
            Ok(Ok(found)) => Ok(found),
            Ok(Err(e)) => {
                warn!(user = %login, error = %e, "directory error during login");
                Err(Stop::Unavailable)
            }
            Err(e) => {
                warn!(user = %login, error = %e, "login task failed");
                Err(Stop::Unavailable)
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
