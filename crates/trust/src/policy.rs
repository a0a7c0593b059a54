//! What the results do to a message: [`decide`] applies a [`Policy`]
//! (`[trust.incoming]`, with the listener's and the recipient domain's
//! overrides) to what the checks found.
//!
//! The rules (defaults in parentheses):
//! - DMARC fails and the domain says `p=reject` → `dmarc_reject`
//!   (reject: `550 5.7.1`); `p=quarantine` → `dmarc_quarantine`
//!   (quarantine: delivered with the spam mark, filed into Junk); `p=none`
//!   → nothing. A passing ARC chain sealed by a trusted sealer
//!   (`trusted_arc_sealers`) overrides the failure (RFC 8617 §7.2: a list
//!   or forwarder that broke the signature and said what it saw).
//! - DMARC could not be evaluated for a temporary DNS failure and the
//!   policy is not known to be `none` → `dmarc_temperror` (defer:
//!   `451 4.7.5`; the sender tries again).
//! - SPF `fail` (`-all`) for the envelope sender (the HELO name for the
//!   null sender) and no DKIM signature passed → `spf_fail` (quarantine).
//! - Nothing is decided on a DKIM failure alone, nor on iprev.
//!
//! When several rules apply the most severe wins; when a message has
//! recipients in domains with different policies, [`mildest`] picks the
//! decision for the message (SMTP gives one answer per message).

use crate::outcome::{DmarcPolicy, MessageResults, Outcome, Spf};
pub use facteur_config::trust::{Action, Policy, TempAction};

/// What to do with a message, with the reason (for the reply and logs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Accept,
    /// Deliver with the spam mark.
    Quarantine(String),
    /// `451 4.7.5`.
    Defer(String),
    /// `550 5.7.1`.
    Reject(String),
}

impl Decision {
    fn severity(&self) -> u8 {
        match self {
            Decision::Accept => 0,
            Decision::Quarantine(_) => 1,
            Decision::Defer(_) => 2,
            Decision::Reject(_) => 3,
        }
    }

    fn of(action: Action, why: String) -> Decision {
        match action {
            Action::None => Decision::Accept,
            Action::Quarantine => Decision::Quarantine(why),
            Action::Reject => Decision::Reject(why),
        }
    }

    /// The more severe of two decisions (the first on a tie).
    pub fn worst(self, other: Decision) -> Decision {
        if other.severity() > self.severity() {
            other
        } else {
            self
        }
    }
}

/// The mildest of several decisions (the first on a tie); `Accept` for
/// none.
pub fn mildest(ds: impl IntoIterator<Item = Decision>) -> Decision {
    ds.into_iter()
        .reduce(|a, b| if b.severity() < a.severity() { b } else { a })
        .unwrap_or(Decision::Accept)
}

/// The decision for a message: `spf` is the envelope sender's result
/// (the HELO name's for the null sender), `m` the end of data's, and
/// `trusted_sealers` the ARC sealers whose passing chain overrides DMARC.
pub fn decide(
    p: &Policy,
    spf: Option<&Spf>,
    m: &MessageResults,
    trusted_sealers: &[String],
) -> Decision {
    let mut d = Decision::Accept;
    let dm = &m.dmarc;
    let from = &dm.from_domain;
    if dm.outcome == Outcome::Fail {
        let arc_vouches = m.arc.outcome == Outcome::Pass
            && m.arc.sealer.as_ref().is_some_and(|s| {
                trusted_sealers
                    .iter()
                    .any(|t| t.trim_end_matches('.').eq_ignore_ascii_case(s))
            });
        let action = match dm.policy {
            DmarcPolicy::Reject => p.dmarc_reject,
            DmarcPolicy::Quarantine => p.dmarc_quarantine,
            DmarcPolicy::None => Action::None,
        };
        if !arc_vouches {
            d = d.worst(Decision::of(
                action,
                format!(
                    "DMARC policy of {from} ({}) says the message is not from it",
                    dm.policy.as_str()
                ),
            ));
        }
    }
    let policy_may_matter = !dm.record || dm.policy != DmarcPolicy::None;
    if dm.outcome == Outcome::TempError
        && policy_may_matter
        && p.dmarc_temperror == TempAction::Defer
    {
        d = d.worst(Decision::Defer(format!(
            "DMARC of {from} cannot be checked now (DNS), try again later"
        )));
    }
    if let Some(s) = spf
        && s.outcome == Outcome::Fail
        && !m.dkim_pass()
    {
        d = d.worst(Decision::of(
            p.spf_fail,
            format!("SPF of {} does not permit {}", s.domain, s.ip),
        ));
    }
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::{Arc, Dkim, Dmarc, SpfIdentity};

    fn policy() -> Policy {
        facteur_config::trust::Incoming::default().policy()
    }

    fn results(dmarc: Outcome, policy: DmarcPolicy, dkim: Outcome) -> MessageResults {
        MessageResults {
            dkim: vec![Dkim {
                outcome: dkim,
                domain: "d.test".into(),
                selector: "s".into(),
                identity: String::new(),
                algorithm: "rsa-sha256",
                b: "x".into(),
                reason: None,
            }],
            dkim_skipped: 0,
            arc: Arc {
                outcome: Outcome::None,
                instances: 0,
                sealer: None,
                reason: None,
            },
            dmarc: Dmarc {
                outcome: dmarc,
                from_domain: "bank.test".into(),
                policy,
                record: dmarc != Outcome::None,
                reason: None,
            },
        }
    }

    fn spf(outcome: Outcome) -> Spf {
        Spf {
            outcome,
            identity: SpfIdentity::MailFrom,
            ip: "192.0.2.1".parse().unwrap(),
            helo: "h.test".into(),
            sender: "a@bank.test".into(),
            domain: "bank.test".into(),
            reason: None,
        }
    }

    #[test]
    fn the_defaults() {
        let p = policy();
        use DmarcPolicy as P;
        use Outcome as O;
        let d = |m: &MessageResults, s: Option<&Spf>| decide(&p, s, m, &[]);
        assert!(matches!(
            d(&results(O::Fail, P::Reject, O::Fail), None),
            Decision::Reject(_)
        ));
        assert!(matches!(
            d(&results(O::Fail, P::Quarantine, O::Fail), None),
            Decision::Quarantine(_)
        ));
        assert_eq!(
            d(&results(O::Fail, P::None, O::Fail), None),
            Decision::Accept
        );
        assert_eq!(
            d(&results(O::Pass, P::Reject, O::Pass), None),
            Decision::Accept
        );
        // A temporary failure defers unless the policy is known to be none.
        let mut unknown = results(O::TempError, P::None, O::None);
        unknown.dmarc.record = false;
        assert!(matches!(d(&unknown, None), Decision::Defer(_)));
        assert!(matches!(
            d(&results(O::TempError, P::Reject, O::TempError), None),
            Decision::Defer(_)
        ));
        let mut known_none = results(O::TempError, P::None, O::TempError);
        known_none.dmarc.record = true;
        assert_eq!(d(&known_none, None), Decision::Accept);
        // SPF -all without a DKIM pass: quarantine; with one: nothing.
        let fail = spf(O::Fail);
        assert!(matches!(
            d(&results(O::None, P::None, O::Fail), Some(&fail)),
            Decision::Quarantine(_)
        ));
        assert_eq!(
            d(&results(O::None, P::None, O::Pass), Some(&fail)),
            Decision::Accept
        );
        // DKIM failing alone decides nothing.
        assert_eq!(
            d(&results(O::None, P::None, O::Fail), Some(&spf(O::SoftFail))),
            Decision::Accept
        );
    }

    #[test]
    fn overrides_sealers_and_several_domains() {
        let mut p = policy();
        p.spf_fail = Action::Reject;
        p.dmarc_reject = Action::Quarantine;
        let mut m = results(Outcome::Fail, DmarcPolicy::Reject, Outcome::Fail);
        assert!(matches!(decide(&p, None, &m, &[]), Decision::Quarantine(_)));
        assert!(matches!(
            decide(&p, Some(&spf(Outcome::Fail)), &m, &[]),
            Decision::Reject(_)
        ));
        m.arc.outcome = Outcome::Pass;
        m.arc.sealer = Some("lists.test".into());
        assert_eq!(
            decide(&p, None, &m, &["Lists.Test.".into()]),
            Decision::Accept
        );
        assert!(matches!(
            decide(&p, None, &m, &["other.test".into()]),
            Decision::Quarantine(_)
        ));
        let r = Decision::Reject("r".into());
        let q = Decision::Quarantine("q".into());
        assert_eq!(
            mildest([r.clone(), q.clone(), Decision::Defer("d".into())]),
            q
        );
        assert_eq!(mildest([r.clone()]), r);
        assert_eq!(mildest([]), Decision::Accept);
    }
}
