//! Remote delivery: facteur's outbound SMTP client.
//!
//! Layout:
//! - [`dns`]: the [`dns::Dns`] trait (MX, A/AAAA), the hickory-resolver
//!   implementation, and [`dns::route`] (MX order, null MX, implicit MX);
//! - [`session`]: one SMTP connection (EHLO, STARTTLS, AUTH, PIPELINING,
//!   SIZE, 8BITMIME, SMTPUTF8, DSN, CHUNKING), per-recipient results;
//! - [`tls`]: the rustls client configurations of the TLS policies;
//! - [`mta_sts`]: MTA-STS (RFC 8461) policies, fetched and cached;
//! - [`deliver`]: one message to one destination — the route, the hosts
//!   tried in turn, the policy checks, the connection cache, concurrency
//!   limits and the destination backoff ([`Remote`] holds that state).
//!
//! Invariants: nothing here touches the spool; the caller (`queue.rs`)
//! records each outcome durably before acting on it. In-memory state
//! (cached connections, destination backoff) is only an optimisation: a
//! restart loses none of the queue's truth.
//!
//! Standards: RFC 5321, RFC 1870, RFC 2920, RFC 3030, RFC 3207, RFC 3461,
//! RFC 4954, RFC 6152, RFC 6531, RFC 7505, RFC 8461.
//!
//! Security: peer input is bounded (replies) and time-limited (every stage);
//! credentials go only over TLS and only to the relayhost they are for; the
//! password file is refused when others can read it.

pub mod deliver;
pub mod dns;
pub mod mta_sts;
pub mod session;
pub mod tls;

pub use deliver::{Message, Outcome, Remote};

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
mod tests;
