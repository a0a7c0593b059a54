//! facteur-trust: mail authentication. Incoming: iprev of the client, SPF
//! of the HELO and MAIL FROM identities, DKIM, ARC and DMARC of the
//! message, the policy that turns them into a decision, and the header
//! fields that carry them (`Authentication-Results`, `Received-SPF`, the
//! spam mark). facteur-smtpd wires the checks into the SMTP core's stages
//! (`crates/smtpd/src/trust.rs`); facteur-lmtpd files spam-marked mail into
//! Junk. Outgoing work (DKIM signing, DNS record checks) shares the
//! resolver setup and the `[trust]` section.
//!
//! Layout:
//! - [`resolver`]: [`Resolver`], mail-auth's authenticator on a hickory
//!   resolver built from `[trust]`, with the bounds of every check
//!   ([`Limits`]) and the per-check lookup [`Budget`];
//! - [`verify`]: the checks (`iprev`, `spf_helo`, `spf_mail_from`,
//!   `verify_message` for DKIM + ARC + DMARC) as methods of [`Resolver`];
//! - [`outcome`]: their results, in our own types;
//! - [`policy`]: [`decide`] (DMARC reject / quarantine, SPF `-all`, the
//!   temporary-failure rule) and [`mildest`] across recipient domains;
//! - [`results`]: `Authentication-Results` and `Received-SPF` formatting;
//! - [`sign`]: DKIM signing of our own mail as it leaves (facteur-qmgr),
//!   with the keys of facteur-dkim's store;
//! - [`header`]: the header parsers we own (fields, the authserv-id of an
//!   `Authentication-Results`), forged-field removal and the spam mark;
//! - [`Incoming`] (here): what smtpd holds — the resolver, the policy of
//!   `[trust.incoming]`, our authserv-id, and the memory budget of
//!   messages being verified.
//!
//! Invariants:
//! - Every check is bounded: mail-auth's limits (SPF: 10 DNS-costing
//!   lookups and 20 s; ARC: 50 sets), at most `max_signatures` DKIM
//!   signatures, at most `max_lookups` lookups per check, and
//!   `check_timeout` per check. Running out is a `temperror`, never a hang.
//! - Bad input (messages, signatures, DNS answers) is a result, never a
//!   panic; memory for whole messages is bounded by `verify_memory` across
//!   all sessions ([`Incoming::reserve`]).
//! - Values from the network never leave a header field we write
//!   ([`results`] quotes or drops what could).
//!
//! Standards: RFC 7208 (SPF) and §9.1 (`Received-SPF`), RFC 6376 (DKIM),
//! RFC 8301 (no `rsa-sha1`, RSA keys of 1024 bits at least), RFC 8463
//! (Ed25519), RFC 7489 (DMARC; mail-auth follows its revision's tree walk),
//! RFC 8617 (ARC), RFC 8601 (`Authentication-Results`, iprev §3, removal of
//! forged results §5).
//!
//! Security: this crate decides whose mail is believed. Results are only
//! written for clients that are checked (smtpd skips logged-in users and
//! `mynetworks`), and smtpd removes, from mail of checked clients,
//! `Authentication-Results` claiming our authserv-id and the spam mark, so
//! what lmtpd and users see under our name is ours. A check never trusts a
//! note of an earlier stage about another identity (smtpd compares the
//! HELO name and the sender).

pub mod header;
pub mod outcome;
pub mod policy;
pub mod resolver;
pub mod results;
pub mod sign;
pub mod verify;

pub use outcome::{Dkim, Dmarc, DmarcPolicy, Iprev, MessageResults, Outcome, Spf, SpfIdentity};
pub use policy::{Decision, decide, mildest};
pub use resolver::{Budget, Limits, Resolver, ResolverError};
pub use verify::Envelope;

use facteur_config::Config;
use facteur_config::trust::{Incoming as IncomingConfig, Policy};
use std::sync::Arc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What smtpd holds for the incoming checks.
#[derive(Debug)]
pub struct Incoming {
    pub resolver: Resolver,
    /// Our authserv-id (RFC 8601 §2.5).
    pub authserv_id: String,
    /// Our host name (SPF's `%{r}`, `Received-SPF`'s receiver).
    pub hostname: String,
    cfg: IncomingConfig,
    /// Kibibytes of messages being verified, across all sessions.
    memory: Arc<Semaphore>,
    memory_kib: u64,
}

/// Memory held for one message being verified; given back when dropped.
#[derive(Debug)]
pub struct MemoryPermit(#[allow(dead_code)] OwnedSemaphorePermit);

impl Incoming {
    pub fn new(
        resolver: Resolver,
        authserv_id: String,
        hostname: String,
        cfg: IncomingConfig,
    ) -> Incoming {
        let memory_kib = cfg.verify_memory.0.div_ceil(1024).min(u32::MAX as u64);
        Incoming {
            resolver,
            authserv_id,
            hostname,
            memory: Arc::new(Semaphore::new(memory_kib as usize)),
            memory_kib,
            cfg,
        }
    }

    /// From the whole configuration (`[trust]`, the host name).
    pub fn from_config(cfg: &Config) -> Result<Incoming, ResolverError> {
        Ok(Incoming::new(
            Resolver::from_config(&cfg.trust)?,
            cfg.authserv_id(),
            cfg.hostname(),
            cfg.trust.incoming.clone(),
        ))
    }

    /// Whether the checks run on `listener`.
    pub fn enabled_on(&self, listener: &str) -> bool {
        self.cfg.enabled_on(listener)
    }

    /// The decision for a message on `listener` whose recipients are in
    /// `domains`: each domain's policy applied, the mildest result kept.
    pub fn decide<'a>(
        &self,
        listener: &str,
        domains: impl IntoIterator<Item = &'a str>,
        spf: Option<&Spf>,
        m: &MessageResults,
    ) -> Decision {
        let mut domains: Vec<&str> = domains.into_iter().collect();
        domains.sort_unstable();
        domains.dedup();
        if domains.is_empty() {
            domains.push("");
        }
        mildest(domains.into_iter().map(|d| {
            let p: Policy = self.cfg.policy_for(listener, d);
            decide(&p, spf, m, &self.cfg.trusted_arc_sealers)
        }))
    }

    /// Holds memory for a message of `bytes` being verified, waiting for
    /// other sessions' messages up to the check time-out; `None` when it
    /// does not come (or the message is larger than the whole budget).
    pub async fn reserve(&self, bytes: u64) -> Option<MemoryPermit> {
        let kib = bytes.div_ceil(1024).max(1);
        if kib > self.memory_kib {
            return None;
        }
        let want = Arc::clone(&self.memory).acquire_many_owned(kib as u32);
        match tokio::time::timeout(self.resolver.limits.check_timeout, want).await {
            Ok(Ok(p)) => Some(MemoryPermit(p)),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests;
