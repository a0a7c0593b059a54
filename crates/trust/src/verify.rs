//! The checks: iprev of the client, SPF of the HELO and MAIL FROM
//! identities, and at the end of data DKIM, ARC and DMARC of the message —
//! each a method of [`Resolver`] that runs mail-auth under the check's
//! bounds (a time-out and a [`Budget`] of lookups) and answers in this
//! crate's types ([`crate::outcome`]). A check that runs out of time or of
//! lookups is a `temperror`, never a hang; bad input is a result, never a
//! panic.
//!
//! Local rules on top of mail-auth:
//! - DKIM: at most `max_signatures` signatures are verified (the others
//!   are counted, not looked at); `rsa-sha1` signatures fail (RFC 8301
//!   §3.1); RSA keys under 1024 bits fail (RFC 8301 §3.2: ring refuses
//!   them); a body hash that does not match is `fail` (RFC 6376 §6.1.3
//!   calls it PERMFAIL), not mail-auth's `neutral`.
//! - DMARC is evaluated for every domain of a `From:` with several (RFC
//!   7489 §6.6.1 lets the receiver choose; taking the strictest keeps a
//!   second author from hiding a forged first), at most
//!   [`MAX_FROM_DOMAINS`]; a `rsa-sha1` pass does not count for it.
//! - ARC results are `none`, `pass` or `fail` (RFC 8617 §4.4); the
//!   newest seal's domain is kept so the policy can trust a sealer.

use crate::outcome::{Arc as ArcResult, Dkim, Dmarc, DmarcPolicy, Iprev, MessageResults, Outcome};
use crate::outcome::{Spf, SpfIdentity};
use crate::resolver::{Budget, Resolver, with_budget};
use mail_auth::common::crypto::Algorithm;
use mail_auth::dkim::DkimError;
use mail_auth::dmarc::Policy;
use mail_auth::dmarc::verify::DmarcParameters;
use mail_auth::spf::verify::SpfParameters;
use mail_auth::{
    AuthenticatedMessage, DkimOutput, DkimResult, DmarcResult, Error, IprevResult, Parameters,
    SpfOutput, SpfResult,
};
use std::future::Future;
use std::net::IpAddr;
use std::time::Duration;

/// `From:` domains DMARC is evaluated for; a message with more gets a
/// DMARC failure of its own (quarantine).
pub const MAX_FROM_DOMAINS: usize = 5;

/// What the end-of-data checks need from the earlier stages.
#[derive(Debug, Clone, Copy)]
pub struct Envelope<'a> {
    pub ip: IpAddr,
    pub helo: &'a str,
    /// The envelope sender, "" for the null sender.
    pub sender: &'a str,
    /// SPF of the sender (or of the HELO name for the null sender), when
    /// the check ran.
    pub spf: Option<&'a Spf>,
}

const TIMED_OUT: &str = "the check timed out";

/// Runs `f` within `d`; `None` when it took too long.
async fn bounded<T>(d: Duration, f: impl Future<Output = T>) -> Option<T> {
    tokio::time::timeout(d, f).await.ok()
}

/// Whether `d` is a domain SPF can be evaluated for (RFC 7208 §4.3): at
/// least two labels of 1 to 63 characters, 253 in all, no IP literal.
fn multi_label_domain(d: &str) -> bool {
    let d = d.strip_suffix('.').unwrap_or(d);
    d.len() <= 253
        && d.contains('.')
        && d.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.chars()
                    .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        })
}

/// A DNS name from the network as we show it: lower case, no trailing
/// dot, only LDH characters and `_` (anything else is not a host name).
fn clean_name(n: &str) -> Option<String> {
    let n = n.trim_end_matches('.').to_ascii_lowercase();
    let ok = !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_');
    ok.then_some(n)
}

fn algorithm(a: Algorithm) -> &'static str {
    match a {
        Algorithm::RsaSha1 => "rsa-sha1",
        Algorithm::RsaSha256 => "rsa-sha256",
        Algorithm::Ed25519Sha256 => "ed25519-sha256",
    }
}

/// Our words for mail-auth's errors (they go into `reason=` and logs).
fn reason(e: &Error) -> String {
    match e {
        Error::Dkim(DkimError::FailedBodyHashMatch) => "body hash did not verify".into(),
        Error::Crypto(_) => "signature did not verify".into(),
        Error::Dns(mail_auth::DnsError::RecordNotFound(_)) => "no key or record in DNS".into(),
        Error::Dns(mail_auth::DnsError::Resolver(r)) if r == crate::resolver::BUDGET_SPENT => {
            r.clone()
        }
        Error::Dns(mail_auth::DnsError::Resolver(_)) => "temporary DNS failure".into(),
        e => e.to_string().to_ascii_lowercase(),
    }
}

fn spf_outcome(r: SpfResult) -> Outcome {
    match r {
        SpfResult::Pass => Outcome::Pass,
        SpfResult::Fail => Outcome::Fail,
        SpfResult::SoftFail => Outcome::SoftFail,
        SpfResult::Neutral => Outcome::Neutral,
        SpfResult::TempError => Outcome::TempError,
        SpfResult::PermError => Outcome::PermError,
        SpfResult::None => Outcome::None,
    }
}

fn spf_result(o: Outcome) -> SpfResult {
    match o {
        Outcome::Pass => SpfResult::Pass,
        Outcome::Fail => SpfResult::Fail,
        Outcome::SoftFail => SpfResult::SoftFail,
        Outcome::Neutral => SpfResult::Neutral,
        Outcome::TempError => SpfResult::TempError,
        Outcome::PermError => SpfResult::PermError,
        Outcome::None => SpfResult::None,
    }
}

/// A DKIM (or ARC) result in our words.
fn dkim_outcome(r: &DkimResult) -> (Outcome, Option<String>) {
    match r {
        DkimResult::Pass => (Outcome::Pass, None),
        DkimResult::Neutral(e @ Error::Dkim(DkimError::FailedBodyHashMatch)) => {
            (Outcome::Fail, Some(reason(e)))
        }
        DkimResult::Neutral(e) => (Outcome::Neutral, Some(reason(e))),
        DkimResult::Fail(e) => (Outcome::Fail, Some(reason(e))),
        DkimResult::PermError(e) => (Outcome::PermError, Some(reason(e))),
        DkimResult::TempError(e) => (Outcome::TempError, Some(reason(e))),
        DkimResult::None => (Outcome::None, None),
    }
}

fn base64_prefix(b: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in b.chunks(3).take(2) {
        let n = c
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &x)| n | (x as u32) << (16 - 8 * i));
        for i in 0..=c.len() {
            out.push(A[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
    }
    out
}

fn temp(e: &str) -> Error {
    Error::Dns(mail_auth::DnsError::Resolver(e.into()))
}

impl Resolver {
    /// iprev (RFC 8601 §3): the PTR names of `ip`, and whether one of them
    /// (the first two are tried) has `ip` among its addresses.
    pub async fn iprev(&self, ip: IpAddr) -> Iprev {
        let budget = self.budget();
        let check = async {
            let out = self
                .authenticator()
                .verify_iprev(with_budget(Parameters::new(ip), &budget))
                .await;
            let name = match (&out.result, &out.ptr) {
                (IprevResult::Pass, Some(ptr)) => self.verified_name(ip, ptr, &budget).await,
                _ => None,
            };
            (out.result, name)
        };
        let Some((result, name)) = bounded(self.limits.check_timeout, check).await else {
            return Iprev {
                outcome: Outcome::TempError,
                ip,
                name: None,
                reason: Some(TIMED_OUT.into()),
            };
        };
        let (outcome, why) = match &result {
            IprevResult::Pass if name.is_some() => (Outcome::Pass, None),
            IprevResult::Pass => (Outcome::Fail, Some("bad PTR name".into())),
            IprevResult::Fail(_) => (
                Outcome::Fail,
                Some("PTR name does not resolve to the address".into()),
            ),
            IprevResult::TempError(e) => (Outcome::TempError, Some(reason(e))),
            IprevResult::PermError(e) => (Outcome::PermError, Some(reason(e))),
            IprevResult::None => (Outcome::None, None),
        };
        Iprev {
            outcome,
            ip,
            name,
            reason: why,
        }
    }

    /// Which of the PTR names (the first two, as mail-auth tries) has `ip`
    /// among its addresses: the answers are in the resolver's cache.
    async fn verified_name(&self, ip: IpAddr, ptr: &[Box<str>], budget: &Budget) -> Option<String> {
        for host in ptr.iter().take(2) {
            let Some(name) = clean_name(host) else {
                continue;
            };
            let fq = format!("{name}.");
            let a = self.authenticator();
            let found = match ip {
                IpAddr::V4(v4) => a
                    .ipv4_lookup(fq.as_str(), Some(budget))
                    .await
                    .is_ok_and(|r| r.rrset.contains(&v4)),
                IpAddr::V6(v6) => a
                    .ipv6_lookup(fq.as_str(), Some(budget))
                    .await
                    .is_ok_and(|r| r.rrset.contains(&v6)),
            };
            if found {
                return Some(name);
            }
        }
        None
    }

    /// SPF of the HELO identity (RFC 7208 §2.3); `host` is our name (the
    /// `%{r}` macro).
    pub async fn spf_helo(&self, ip: IpAddr, helo: &str, host: &str) -> Spf {
        let p = SpfParameters::verify_ehlo(ip, helo, host);
        self.spf(p, SpfIdentity::Helo, ip, helo, "", helo).await
    }

    /// SPF of the MAIL FROM identity (RFC 7208 §2.4; the null sender is
    /// `postmaster@` the HELO name).
    pub async fn spf_mail_from(&self, ip: IpAddr, helo: &str, host: &str, sender: &str) -> Spf {
        let domain = sender.rsplit_once('@').map_or(helo, |(_, d)| d);
        let p = SpfParameters::verify_mail_from(ip, helo, host, sender);
        self.spf(p, SpfIdentity::MailFrom, ip, helo, sender, domain)
            .await
    }

    async fn spf(
        &self,
        p: SpfParameters<'_>,
        identity: SpfIdentity,
        ip: IpAddr,
        helo: &str,
        sender: &str,
        domain: &str,
    ) -> Spf {
        let spf = |outcome, why: Option<&str>| Spf {
            outcome,
            identity,
            ip,
            helo: helo.to_string(),
            sender: sender.to_string(),
            domain: domain.to_ascii_lowercase(),
            reason: why.map(str::to_string),
        };
        // RFC 7208 §4.3: a malformed or single-label domain (an address
        // literal as HELO, §2.3) is "none", without a lookup.
        if !multi_label_domain(domain) {
            return spf(Outcome::None, Some("not a domain name"));
        }
        let budget = self.budget();
        let check = self
            .authenticator()
            .verify_spf(with_budget(Parameters::new(p), &budget));
        let (outcome, why) = match bounded(self.limits.check_timeout, check).await {
            Some(out) => {
                let o = spf_outcome(out.result());
                let why = match o {
                    Outcome::TempError if budget.exhausted() => {
                        Some(crate::resolver::BUDGET_SPENT.to_string())
                    }
                    Outcome::TempError => Some("temporary DNS failure".into()),
                    Outcome::PermError => Some("bad SPF record, or too many lookups".into()),
                    _ => None,
                };
                (o, why)
            }
            None => (Outcome::TempError, Some(TIMED_OUT.into())),
        };
        spf(outcome, why.as_deref())
    }

    /// DKIM, ARC and DMARC of a whole message (network form).
    pub async fn verify_message(&self, raw: &[u8], env: &Envelope<'_>) -> MessageResults {
        let none_arc = ArcResult {
            outcome: Outcome::None,
            instances: 0,
            sealer: None,
            reason: None,
        };
        let Some(mut msg) = AuthenticatedMessage::parse(raw) else {
            return MessageResults {
                dkim: Vec::new(),
                dkim_skipped: 0,
                arc: none_arc,
                dmarc: no_dmarc(""),
            };
        };
        let max = self.limits.max_signatures;
        let dkim_skipped = msg.dkim_headers.len().saturating_sub(max);
        msg.dkim_headers.truncate(max);
        let budget = self.budget();
        let outputs = self.dkim_outputs(&msg, &budget).await;
        // Verified signatures first, then those that could not be parsed
        // (no lookup, but each a line of Authentication-Results), up to the
        // same cap. mail-auth drops some unparsable ones (bad base64,
        // missing tags) silently: they are reported here too.
        let unparsed = msg
            .errors
            .iter()
            .filter(|e| e.name.eq_ignore_ascii_case(b"DKIM-Signature"))
            .filter(|e| !matches!(e.header, Error::Dkim(_)))
            .map(|e| Dkim {
                outcome: Outcome::Neutral,
                domain: String::new(),
                selector: String::new(),
                identity: String::new(),
                algorithm: "",
                b: String::new(),
                reason: Some(format!("bad signature: {}", reason(&e.header))),
            });
        let dkim = outputs
            .iter()
            .filter(|o| o.signature().is_some())
            .chain(outputs.iter().filter(|o| o.signature().is_none()))
            .map(dkim_of)
            .chain(unparsed)
            .take(max)
            .collect::<Vec<_>>();
        let arc = self.arc(&msg).await;
        let dmarc = self.dmarc(&msg, &outputs, env).await;
        MessageResults {
            dkim,
            dkim_skipped,
            arc,
            dmarc,
        }
    }

    /// mail-auth's DKIM outputs, with our rules applied (rsa-sha1 fails).
    async fn dkim_outputs<'x>(
        &self,
        msg: &'x AuthenticatedMessage<'x>,
        budget: &'x Budget,
    ) -> Vec<DkimOutput<'x>> {
        let check = self
            .authenticator()
            .verify_dkim(with_budget(Parameters::new(msg), budget));
        let Some(outputs) = bounded(self.limits.check_timeout, check).await else {
            return msg
                .dkim_headers
                .iter()
                .map(|h| DkimOutput::temp_err(temp(TIMED_OUT)).with_signature(&h.header))
                .collect();
        };
        outputs
            .into_iter()
            .filter_map(|o| match o.signature() {
                Some(s) if o.result() == &DkimResult::Pass && s.a == Algorithm::RsaSha1 => {
                    // The same signature, borrowed from the message (the
                    // output's borrow is too short to build a new one).
                    let s = msg
                        .dkim_headers
                        .iter()
                        .map(|h| &h.header)
                        .find(|h| *h == s)?;
                    Some(
                        DkimOutput::fail(Error::Dkim(DkimError::UnsupportedAlgorithm))
                            .with_signature(s),
                    )
                }
                _ => Some(o),
            })
            .collect()
    }

    async fn arc(&self, msg: &AuthenticatedMessage<'_>) -> ArcResult {
        let instances = msg.ams_headers.len().max(msg.as_headers.len());
        let sealer = msg
            .as_headers
            .iter()
            .max_by_key(|h| h.header.i)
            .and_then(|h| clean_name(&h.header.d));
        if instances == 0 && !msg.has_arc_errors {
            return ArcResult {
                outcome: Outcome::None,
                instances,
                sealer,
                reason: None,
            };
        }
        let budget = self.budget();
        let check = self
            .authenticator()
            .verify_arc(with_budget(Parameters::new(msg), &budget));
        let (outcome, why) = match bounded(self.limits.check_timeout, check).await {
            Some(out) => match dkim_outcome(out.result()) {
                (Outcome::Pass, _) => (Outcome::Pass, None),
                (Outcome::None, _) => (Outcome::None, None),
                (_, why) => (Outcome::Fail, why),
            },
            None => (Outcome::Fail, Some(TIMED_OUT.into())),
        };
        ArcResult {
            outcome,
            instances,
            sealer,
            reason: why,
        }
    }

    async fn dmarc(
        &self,
        msg: &AuthenticatedMessage<'_>,
        dkim: &[DkimOutput<'_>],
        env: &Envelope<'_>,
    ) -> Dmarc {
        let mut domains: Vec<&str> = Vec::new();
        for f in &msg.from {
            if let Some((_, d)) = f.rsplit_once('@')
                && !domains.contains(&d)
            {
                domains.push(d);
            }
        }
        if domains.len() > MAX_FROM_DOMAINS {
            return Dmarc {
                outcome: Outcome::Fail,
                from_domain: domains[0].to_string(),
                policy: DmarcPolicy::Quarantine,
                record: false,
                reason: Some(format!("more than {MAX_FROM_DOMAINS} From: domains")),
            };
        }
        let mail_from_domain = env.sender.rsplit_once('@').map_or(env.helo, |(_, d)| d);
        let spf = match env.spf {
            Some(s) => SpfOutput::new(s.domain.clone()).with_result(spf_result(s.outcome)),
            None => SpfOutput::new(mail_from_domain.to_string()),
        };
        let mut worst: Option<Dmarc> = None;
        for d in domains {
            // One author domain at a time (mail-auth skips messages whose
            // From: has several).
            let mut one = msg.clone();
            one.from
                .retain(|f| f.rsplit_once('@').is_some_and(|(_, x)| x == d));
            let r = self.dmarc_one(&one, dkim, mail_from_domain, &spf, d).await;
            if worst.as_ref().is_none_or(|w| severity(&r) > severity(w)) {
                worst = Some(r);
            }
        }
        worst.unwrap_or_else(|| no_dmarc(""))
    }

    async fn dmarc_one(
        &self,
        msg: &AuthenticatedMessage<'_>,
        dkim: &[DkimOutput<'_>],
        mail_from_domain: &str,
        spf: &SpfOutput,
        from_domain: &str,
    ) -> Dmarc {
        let budget = self.budget();
        let params = DmarcParameters::new(msg, dkim, mail_from_domain, spf);
        let check = self
            .authenticator()
            .verify_dmarc(with_budget(Parameters::new(params), &budget));
        let Some(out) = bounded(self.limits.check_timeout, check).await else {
            return Dmarc {
                outcome: Outcome::TempError,
                from_domain: from_domain.to_string(),
                policy: DmarcPolicy::None,
                record: false,
                reason: Some(TIMED_OUT.into()),
            };
        };
        let (outcome, why) = match out.result() {
            DmarcResult::Pass => (Outcome::Pass, None),
            DmarcResult::Fail(_) => (Outcome::Fail, Some("no aligned SPF or DKIM pass".into())),
            DmarcResult::TempError(e) => (Outcome::TempError, Some(reason(&e))),
            DmarcResult::PermError(e) => (Outcome::PermError, Some(reason(&e))),
            DmarcResult::None => (Outcome::None, None),
        };
        Dmarc {
            outcome,
            from_domain: from_domain.to_string(),
            policy: match out.policy() {
                Policy::Reject => DmarcPolicy::Reject,
                Policy::Quarantine => DmarcPolicy::Quarantine,
                Policy::None | Policy::Unspecified => DmarcPolicy::None,
            },
            record: out.dmarc_record().is_some(),
            reason: why,
        }
    }
}

/// How bad a DMARC result is, to keep the worst of several From domains.
fn severity(d: &Dmarc) -> u8 {
    let policy = match d.policy {
        DmarcPolicy::None => 0,
        DmarcPolicy::Quarantine => 1,
        DmarcPolicy::Reject => 2,
    };
    match d.outcome {
        Outcome::Fail => 10 + policy,
        Outcome::TempError => 5 + policy,
        Outcome::PermError => 2,
        Outcome::Pass => 1,
        _ => 0,
    }
}

fn no_dmarc(domain: &str) -> Dmarc {
    Dmarc {
        outcome: Outcome::None,
        from_domain: domain.to_string(),
        policy: DmarcPolicy::None,
        record: false,
        reason: None,
    }
}

fn dkim_of(o: &DkimOutput<'_>) -> Dkim {
    let (mut outcome, mut why) = dkim_outcome(o.result());
    let s = o.signature();
    if let (Some(s), DkimResult::Fail(Error::Dkim(DkimError::UnsupportedAlgorithm))) =
        (s, o.result())
        && s.a == Algorithm::RsaSha1
    {
        outcome = Outcome::Fail;
        why = Some("rsa-sha1 is not accepted (RFC 8301)".into());
    }
    Dkim {
        outcome,
        domain: s.map(|s| s.d.to_ascii_lowercase()).unwrap_or_default(),
        selector: s.map(|s| s.s.clone()).unwrap_or_default(),
        identity: s.map(|s| s.i.clone()).unwrap_or_default(),
        algorithm: s.map(|s| algorithm(s.a)).unwrap_or(""),
        b: s.map(|s| base64_prefix(&s.b)).unwrap_or_default(),
        reason: why,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_prefixes() {
        assert_eq!(
            clean_name("Mail.Example.ORG.").as_deref(),
            Some("mail.example.org")
        );
        assert_eq!(clean_name("a b.test"), None);
        assert_eq!(clean_name("x\\000.test"), None);
        assert_eq!(clean_name("."), None);
        assert_eq!(base64_prefix(b"\x00\x10\x83\x10\x51\x87"), "ABCDEFGH");
        assert_eq!(base64_prefix(b"hello world"), "aGVsbG8g");
        assert_eq!(base64_prefix(b"h"), "aA");
    }
}
