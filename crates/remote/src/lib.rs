//! facteur-remote: remote delivery, the road from facteur-qmgr to the
//! world's MX hosts and relayhosts. Everything about getting one queued
//! message to one destination over SMTP lives here; the queue (what to
//! deliver when, what to record) stays in qmgr, the protocol in
//! `facteur-smtp-client`.
//!
//! Layout:
//! - [`dns`]: the [`dns::Dns`] trait (MX, A/AAAA, TXT), the hickory-resolver
//!   implementation, and [`dns::route`] (MX order, null MX, implicit MX);
//! - [`tls`]: the rustls client configurations of the TLS policies;
//! - [`mta_sts`]: MTA-STS (RFC 8461) policies, fetched and cached;
//! - [`settings`]: what `[qmgr]` says (relayhost, destinations, policies,
//!   time-outs, limits) and the relayhost credentials file;
//! - [`deliver`]: one message to one destination — the route, the hosts
//!   tried in turn, the policy checks, AUTH, the connection cache,
//!   concurrency limits and the destination backoff ([`Remote`] holds that
//!   state).
//!
//! Invariants: nothing here touches the spool; the message comes in as an
//! envelope and an opener of its bytes, and the caller (qmgr's `queue.rs`)
//! records each [`Outcome`] durably before acting on it. In-memory state
//! (cached connections, destination backoff, MTA-STS policies) is only an
//! optimisation: a restart loses none of the queue's truth.
//!
//! Standards: RFC 5321 (§5.1 MX), RFC 7505 (null MX), RFC 8461 (MTA-STS),
//! RFC 3207 and RFC 7435 (STARTTLS, opportunistic TLS), RFC 4954 (AUTH),
//! RFC 1870, RFC 3030, RFC 3461, RFC 6152, RFC 6531 (what a peer must offer
//! for a message to go).
//!
//! Security: peer input is bounded (replies) and time-limited (every
//! stage); certificate checks are relaxed only for the policies that say
//! so (`tls.rs`); credentials go only over TLS and only to the relayhost
//! they are for; the password file is refused when others can read it;
//! MTA-STS fetches are bounded in size and time and follow no redirect.

pub mod deliver;
pub mod dns;
pub mod mta_sts;
pub mod settings;
pub mod tls;

pub use deliver::{Message, Outcome, Remote, SetupError};
pub use settings::{Dest, Settings};

#[cfg(test)]
mod tests;
