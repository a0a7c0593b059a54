//! The `[trust]` section: mail authentication. The shared part (the
//! authserv-id of our `Authentication-Results`, the nameservers and query
//! time-out of authentication lookups) serves both directions; `[trust.
//! incoming]` is the verification of mail from strangers in facteur-smtpd
//! (iprev, SPF, DKIM, ARC, DMARC) and its policy, with overrides per
//! listener (`[trust.incoming.listeners.mx]`) and per recipient domain
//! (`[trust.incoming.domains."example.org"]`). Outgoing signing adds its
//! own sub-section beside `incoming`.
//!
//! Checked at load ([`check`]): listener names, domain names, limits within
//! range. Every key is documented in `etc/facteur.toml`.

use crate::units::{ByteSize, Seconds};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;

/// What a verdict does to a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Deliver it as usual (the results are still written into it).
    None,
    /// Deliver it with the spam mark: lmtpd files it into Junk.
    Quarantine,
    /// Refuse it at the end of data (`550 5.7.1`).
    Reject,
}

/// What a temporary DNS failure during DMARC evaluation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TempAction {
    /// Deliver it as if the domain had no DMARC policy.
    Accept,
    /// `451 4.7.5`: the sender tries again later.
    Defer,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Trust {
    /// The authserv-id of our `Authentication-Results` (RFC 8601 §2.5);
    /// "" = the host name. Fields claiming it that arrive from outside are
    /// removed.
    pub authserv_id: String,
    /// Nameservers for authentication lookups, "ip:port"; empty = the
    /// system's /etc/resolv.conf.
    pub dns_servers: Vec<SocketAddr>,
    /// Time one DNS query may take (each of its two attempts).
    pub dns_timeout: Seconds,
    pub incoming: Incoming,
    pub outgoing: Outgoing,
}

/// DKIM signing of our own mail (`[trust.outgoing]`): facteur-qmgr signs
/// as a message leaves for another server, with the keys that `facteurctl
/// dkim` keeps under `<state_dir>/dkim`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Outgoing {
    /// Sign mail from domains that have keys (no keys: nothing to sign).
    pub sign: bool,
    /// `facteurctl dkim rotate`: how long the new selector is published
    /// before it signs (DNS caches must see it first).
    pub rotation_delay: Seconds,
    /// `facteurctl dkim rotate`: how long a replaced selector stays
    /// published after the new one starts signing (mail in transit, and
    /// retried, still verifies), before it is retired.
    pub retire_after: Seconds,
    /// Messages signed at once (each is read whole into memory); 0 = the
    /// number of CPU cores.
    pub max_parallel: u32,
}

impl Default for Outgoing {
    fn default() -> Self {
        Outgoing {
            sign: true,
            rotation_delay: Seconds(2 * 86_400),
            retire_after: Seconds(7 * 86_400),
            max_parallel: 0,
        }
    }
}

impl Default for Trust {
    fn default() -> Self {
        Trust {
            authserv_id: String::new(),
            dns_servers: Vec::new(),
            dns_timeout: Seconds(5),
            incoming: Incoming::default(),
            outgoing: Outgoing::default(),
        }
    }
}

/// Verification of incoming mail, and its policy (the defaults; see
/// [`PolicyOverride`] for what listeners and domains may change).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Incoming {
    /// Run the checks at all (clients that logged in and `mynetworks` are
    /// never checked). By default they run on the MX listener only: on
    /// submission every message comes from a login, and the lookups of
    /// connect and HELO would be spent for nothing; a listener's
    /// `enabled = true` turns them on there.
    pub enabled: bool,
    /// Time each check may take with all its DNS lookups (iprev, SPF of
    /// HELO, SPF of MAIL FROM, DKIM, ARC, DMARC, each on its own).
    pub check_timeout: Seconds,
    /// DNS lookups one check may make (SPF has its own limit of 10 on
    /// top, RFC 7208 §4.6.4).
    pub max_lookups: u32,
    /// DKIM signatures verified per message; later ones are not looked at.
    pub max_signatures: u32,
    /// Memory all sessions together may hold for messages being verified
    /// (DKIM needs the whole message); a message waits for its turn, up
    /// to `check_timeout`.
    pub verify_memory: ByteSize,
    /// ARC sealers (domains) whose passing chain overrides a DMARC
    /// failure (RFC 8617 §7.2: forwarders and lists the administrator
    /// trusts).
    pub trusted_arc_sealers: Vec<String>,
    /// DMARC `p=reject` with a failing message.
    pub dmarc_reject: Action,
    /// DMARC `p=quarantine` with a failing message.
    pub dmarc_quarantine: Action,
    /// DMARC evaluation hit a temporary DNS failure.
    pub dmarc_temperror: TempAction,
    /// SPF `fail` (`-all`) of the envelope sender with no passing DKIM
    /// signature.
    pub spf_fail: Action,
    /// Per listener (`mx`, `submission`, `submissions`).
    pub listeners: BTreeMap<String, PolicyOverride>,
    /// Per recipient domain; a message for several domains gets the
    /// mildest of their decisions (one reply per message in SMTP).
    pub domains: BTreeMap<String, PolicyOverride>,
}

impl Default for Incoming {
    fn default() -> Self {
        Incoming {
            enabled: true,
            check_timeout: Seconds(15),
            max_lookups: 30,
            max_signatures: 10,
            verify_memory: ByteSize(256 << 20),
            trusted_arc_sealers: Vec::new(),
            dmarc_reject: Action::Reject,
            dmarc_quarantine: Action::Quarantine,
            dmarc_temperror: TempAction::Defer,
            spf_fail: Action::Quarantine,
            listeners: BTreeMap::new(),
            domains: BTreeMap::new(),
        }
    }
}

/// What a listener or a domain may change; unset keys keep the defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyOverride {
    /// Listeners only: run the checks on this listener.
    pub enabled: Option<bool>,
    pub dmarc_reject: Option<Action>,
    pub dmarc_quarantine: Option<Action>,
    pub dmarc_temperror: Option<TempAction>,
    pub spf_fail: Option<Action>,
}

/// The policy in force: the defaults with overrides applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub dmarc_reject: Action,
    pub dmarc_quarantine: Action,
    pub dmarc_temperror: TempAction,
    pub spf_fail: Action,
}

impl Incoming {
    /// The default policy.
    pub fn policy(&self) -> Policy {
        Policy {
            dmarc_reject: self.dmarc_reject,
            dmarc_quarantine: self.dmarc_quarantine,
            dmarc_temperror: self.dmarc_temperror,
            spf_fail: self.spf_fail,
        }
    }

    /// Whether the checks run on `listener`: its own `enabled`, else
    /// `enabled` for the MX listener and no for the others.
    pub fn enabled_on(&self, listener: &str) -> bool {
        self.enabled
            && self
                .listeners
                .get(listener)
                .and_then(|o| o.enabled)
                .unwrap_or(listener == "mx")
    }

    /// The policy for a message on `listener` to a recipient in `domain`
    /// (the domain's keys over the listener's over the defaults).
    pub fn policy_for(&self, listener: &str, domain: &str) -> Policy {
        let mut p = self.policy();
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        for o in [self.listeners.get(listener), self.domains.get(&domain)]
            .into_iter()
            .flatten()
        {
            p.dmarc_reject = o.dmarc_reject.unwrap_or(p.dmarc_reject);
            p.dmarc_quarantine = o.dmarc_quarantine.unwrap_or(p.dmarc_quarantine);
            p.dmarc_temperror = o.dmarc_temperror.unwrap_or(p.dmarc_temperror);
            p.spf_fail = o.spf_fail.unwrap_or(p.spf_fail);
        }
        p
    }
}

/// Listener names a `[trust.incoming.listeners.NAME]` may have.
const LISTENERS: [&str; 3] = ["mx", "submission", "submissions"];

/// Checks what types alone cannot: `(key, reason)` on error.
pub fn check(t: &Trust) -> Result<(), (String, String)> {
    if !t.authserv_id.is_empty() {
        facteur_mail::normalize_domain(&t.authserv_id).map_err(|e| {
            (
                "trust.authserv_id".to_string(),
                format!("{:?}: {e}", t.authserv_id),
            )
        })?;
    }
    let i = &t.incoming;
    for (key, v, min, max) in [
        ("trust.dns_timeout", t.dns_timeout.0, 1, 60),
        ("trust.incoming.check_timeout", i.check_timeout.0, 1, 300),
        ("trust.incoming.max_lookups", i.max_lookups as u64, 1, 1000),
        (
            "trust.incoming.max_signatures",
            i.max_signatures as u64,
            1,
            100,
        ),
        (
            "trust.outgoing.max_parallel",
            t.outgoing.max_parallel as u64,
            0,
            1024,
        ),
        (
            "trust.outgoing.retire_after",
            t.outgoing.retire_after.0,
            0,
            10 * 365 * 86_400,
        ),
        (
            "trust.outgoing.rotation_delay",
            t.outgoing.rotation_delay.0,
            0,
            365 * 86_400,
        ),
        (
            "trust.incoming.verify_memory",
            i.verify_memory.0,
            1 << 20,
            u64::MAX,
        ),
    ] {
        if v < min || v > max {
            return Err((key.into(), format!("{v} is outside {min}..={max}")));
        }
    }
    for name in i.listeners.keys() {
        if !LISTENERS.contains(&name.as_str()) {
            return Err((
                format!("trust.incoming.listeners.{name}"),
                format!(
                    "no such listener (expected one of {})",
                    LISTENERS.join(", ")
                ),
            ));
        }
    }
    for (dom, o) in &i.domains {
        if facteur_mail::normalize_domain(dom).is_err() || dom.to_ascii_lowercase() != *dom {
            return Err((
                format!("trust.incoming.domains.{dom:?}"),
                "expected a domain name in lower case such as \"example.org\"".into(),
            ));
        }
        if o.enabled.is_some() {
            return Err((
                format!("trust.incoming.domains.{dom:?}.enabled"),
                "only listeners can turn the checks off".into(),
            ));
        }
    }
    for (n, d) in i.trusted_arc_sealers.iter().enumerate() {
        if facteur_mail::normalize_domain(d).is_err() {
            return Err((
                format!("trust.incoming.trusted_arc_sealers[{n}]"),
                format!("{d:?} is not a domain name"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_overrides() {
        let c = crate::Config::parse(
            "[trust]\ndns_servers = [\"127.0.0.1:5353\"]\n\
             [trust.incoming]\nspf_fail = \"reject\"\n\
             [trust.incoming.listeners.mx]\ndmarc_reject = \"quarantine\"\n\
             [trust.incoming.listeners.submission]\nenabled = false\n\
             [trust.incoming.domains.\"lenient.test\"]\ndmarc_reject = \"none\"\n",
            "t",
        )
        .unwrap();
        let i = &c.trust.incoming;
        assert_eq!(c.trust.dns_servers.len(), 1);
        assert!(i.enabled_on("mx") && !i.enabled_on("submission"));
        let d = crate::Config::parse("", "t").unwrap().trust.incoming;
        assert!(d.enabled_on("mx") && !d.enabled_on("submissions"));
        let on = crate::Config::parse(
            "[trust.incoming.listeners.submissions]\nenabled = true\n",
            "t",
        )
        .unwrap()
        .trust
        .incoming;
        assert!(on.enabled_on("submissions"));
        let off = crate::Config::parse(
            "[trust.incoming]\nenabled = false\n[trust.incoming.listeners.mx]\nenabled = true\n",
            "t",
        )
        .unwrap()
        .trust
        .incoming;
        assert!(!off.enabled_on("mx"));
        let p = i.policy_for("mx", "example.test");
        assert_eq!(p.dmarc_reject, Action::Quarantine);
        assert_eq!(p.spf_fail, Action::Reject);
        assert_eq!(p.dmarc_temperror, TempAction::Defer);
        assert_eq!(
            i.policy_for("mx", "Lenient.Test.").dmarc_reject,
            Action::None
        );
        assert_eq!(
            i.policy_for("submissions", "x.test").dmarc_reject,
            Action::Reject
        );
        let d = crate::Config::parse("", "t").unwrap().trust;
        assert_eq!(d.incoming.policy().dmarc_quarantine, Action::Quarantine);
        assert_eq!(d.incoming.policy().spf_fail, Action::Quarantine);
        assert!(Action::None < Action::Quarantine && Action::Quarantine < Action::Reject);
    }

    #[test]
    fn refusals_name_the_key() {
        let key = |t: &str| crate::Config::parse(t, "t").unwrap_err().key;
        assert_eq!(
            key("[trust.incoming.listeners.lmtp]\nspf_fail = \"reject\"\n").as_deref(),
            Some("trust.incoming.listeners.lmtp")
        );
        assert_eq!(
            key("[trust.incoming.domains.\"a b\"]\nspf_fail = \"reject\"\n").as_deref(),
            Some("trust.incoming.domains.\"a b\"")
        );
        assert_eq!(
            key("[trust.incoming.domains.\"a.test\"]\nenabled = false\n").as_deref(),
            Some("trust.incoming.domains.\"a.test\".enabled")
        );
        assert_eq!(
            key("[trust.incoming]\ncheck_timeout = 0\n").as_deref(),
            Some("trust.incoming.check_timeout")
        );
        assert_eq!(
            key("[trust]\nauthserv_id = \"not a name\"\n").as_deref(),
            Some("trust.authserv_id")
        );
        assert!(key("[trust.incoming]\nspf_fail = \"bounce\"\n").is_some());
    }
}
