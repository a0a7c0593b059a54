//! What each check found, in our own types: the result words of RFC 8601
//! §2.7 ([`Outcome`]) and, per method, what `Authentication-Results`
//! reports and the policy decides on. mail-auth's types stay inside
//! [`verify`](crate::verify), so callers (smtpd's checks, lmtpd, tests)
//! never depend on its version.

use std::net::IpAddr;

/// A method's result (RFC 8601 §2.7; iprev §2.7.3, SPF RFC 7208 §2.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Nothing to check (no signature, no record).
    None,
    Pass,
    Fail,
    /// SPF `~all`.
    SoftFail,
    /// SPF `?all`; DKIM: a signature that could not be processed.
    Neutral,
    /// A DNS failure or time-out: ask again later.
    TempError,
    /// A broken record or signature.
    PermError,
}

impl Outcome {
    /// The result word of `Authentication-Results`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::None => "none",
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::SoftFail => "softfail",
            Outcome::Neutral => "neutral",
            Outcome::TempError => "temperror",
            Outcome::PermError => "permerror",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// iprev / forward-confirmed reverse DNS of the client (RFC 8601 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iprev {
    pub outcome: Outcome,
    pub ip: IpAddr,
    /// The client's name, only when verified (a PTR name whose addresses
    /// include `ip`): what `Received:` may show.
    pub name: Option<String>,
    pub reason: Option<String>,
}

/// Which SPF identity was checked (RFC 7208 §2.3, §2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpfIdentity {
    Helo,
    MailFrom,
}

/// An SPF result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spf {
    pub outcome: Outcome,
    pub identity: SpfIdentity,
    pub ip: IpAddr,
    /// The HELO/EHLO name.
    pub helo: String,
    /// The envelope sender ("" for the null sender and for HELO).
    pub sender: String,
    /// The domain whose record was evaluated.
    pub domain: String,
    pub reason: Option<String>,
}

/// One DKIM signature's result (RFC 6376 §6.1; RFC 8301: `rsa-sha1` and
/// RSA keys under 1024 bits fail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dkim {
    pub outcome: Outcome,
    /// `d=`, `s=`, `i=` and `a=` of the signature ("" when it could not be
    /// parsed).
    pub domain: String,
    pub selector: String,
    pub identity: String,
    pub algorithm: &'static str,
    /// The first 8 characters of `b=` in base64 (RFC 6008), to tell
    /// signatures of one domain apart.
    pub b: String,
    pub reason: Option<String>,
}

/// The ARC chain's result (RFC 8617 §5.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arc {
    pub outcome: Outcome,
    /// ARC sets in the message.
    pub instances: usize,
    /// `d=` of the newest ARC-Seal: who vouches for the chain.
    pub sealer: Option<String>,
    pub reason: Option<String>,
}

/// The DMARC policy a domain publishes (after `sp=`/`np=` and `t=y`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmarcPolicy {
    None,
    Quarantine,
    Reject,
}

impl DmarcPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DmarcPolicy::None => "none",
            DmarcPolicy::Quarantine => "quarantine",
            DmarcPolicy::Reject => "reject",
        }
    }
}

/// The DMARC result (RFC 7489 §3.1 alignment, §6.6 evaluation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dmarc {
    pub outcome: Outcome,
    /// The RFC 5322.From domain ("" when the message has none, or several).
    pub from_domain: String,
    pub policy: DmarcPolicy,
    /// A DMARC record was found (a temporary error before one was found
    /// leaves the policy unknown).
    pub record: bool,
    pub reason: Option<String>,
}

/// Everything the end of data found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageResults {
    pub dkim: Vec<Dkim>,
    /// DKIM signatures past `max_signatures`, not looked at.
    pub dkim_skipped: usize,
    pub arc: Arc,
    pub dmarc: Dmarc,
}

impl MessageResults {
    /// Whether some DKIM signature passed (whatever its domain).
    pub fn dkim_pass(&self) -> bool {
        self.dkim.iter().any(|d| d.outcome == Outcome::Pass)
    }
}
