//! facteur-screen: the judgment facteur-smtpd passes on strangers before
//! their mail is read — allow and deny lists ([`access`]), the pregreet
//! test's memory, DNS block and allow lists ([`dnsbl`]), HELO checks
//! ([`helo`]) and greylisting ([`greylist`], state in [`db`]) — and the
//! [`Counters`] of every decision, which the metrics export.
//!
//! This crate decides; facteur-smtpd asks it at the SMTP core's hook points
//! (its `screen` check) and turns the answers into replies. Configured by
//! `[screen]` (facteur_config::screen). Clients that logged in or are in
//! `smtpd.mynetworks` are never asked about: the caller skips them.

pub mod access;
pub mod db;
pub mod dnsbl;
pub mod greylist;
pub mod helo;

use access::{AccessLists, Entries, Listed};
use db::{Db, GreyOutcome};
use dnsbl::DnsLists;
use facteur_config::Config;
use facteur_config::screen::PregreetAction;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;

/// Counts of decisions by (check, result); every pair a daemon can count
/// is there from the start, at zero (a series that appears only after its
/// first event breaks alerting).
#[derive(Debug, Default)]
pub struct Counters(Mutex<BTreeMap<(String, String), u64>>);

impl Counters {
    /// Counters for `lists`, every known pair at zero.
    pub fn new(lists: &[facteur_config::screen::DnsList]) -> Counters {
        let c = Counters::default();
        let known: &[(&str, &[&str])] = &[
            (
                "connect",
                &["allowlisted", "denied", "listed", "trusted", "neutral"],
            ),
            ("pregreet", &["pass", "early_talker"]),
            ("helo", &["refused"]),
            ("fcrdns", &["refused"]),
            ("sender", &["allowlisted", "denied"]),
            ("recipient_rate", &["refused"]),
            (
                "greylist",
                &[
                    "deferred",
                    "passed",
                    "client_allowlisted",
                    "domain_allowlisted",
                    "skipped",
                    "unavailable",
                ],
            ),
        ];
        for (check, results) in known {
            for r in *results {
                c.add_n(check, r, 0);
            }
        }
        for l in lists {
            for r in ["listed", "error"] {
                c.add_n(&format!("dns_list:{}", l.zone), r, 0);
            }
        }
        c
    }

    /// Makes (check, result) known, at zero.
    pub fn register(&self, check: &str, result: &str) {
        self.add_n(check, result, 0);
    }

    pub fn add(&self, check: &str, result: &str) {
        self.add_n(check, result, 1);
    }

    fn add_n(&self, check: &str, result: &str, n: u64) {
        if let Ok(mut m) = self.0.lock() {
            *m.entry((check.to_string(), result.to_string()))
                .or_default() += n;
        }
    }

    pub fn get(&self, check: &str, result: &str) -> u64 {
        self.0
            .lock()
            .ok()
            .and_then(|m| m.get(&(check.to_string(), result.to_string())).copied())
            .unwrap_or(0)
    }

    /// Every (check, result, count).
    pub fn snapshot(&self) -> Vec<(String, String, u64)> {
        self.0
            .lock()
            .map(|m| {
                m.iter()
                    .map(|((c, r), n)| (c.clone(), r.clone(), *n))
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// What the connect stage makes of a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientVerdict {
    /// On the allow list: no further screening.
    Allowlisted,
    /// On the deny list.
    Denied,
    /// The DNS lists' weights reach the threshold: `blamed` is the list
    /// to name in the refusal.
    Listed {
        blamed: String,
        score: i32,
    },
    /// The DNS allow lists vouch for it: no greylisting.
    Trusted {
        score: i32,
    },
    Neutral {
        score: i32,
    },
}

impl ClientVerdict {
    /// No greylisting, no pregreet test.
    pub fn spared(&self) -> bool {
        matches!(
            self,
            ClientVerdict::Allowlisted | ClientVerdict::Trusted { .. }
        )
    }
}

/// The screen of one daemon.
pub struct Screen {
    pub cfg: facteur_config::Screen,
    pub access: AccessLists,
    dns: Option<DnsLists>,
    db: Db,
    pub counters: Counters,
    /// The clock (Unix seconds); tests set their own.
    pub clock: fn() -> i64,
}

fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Screen {
    /// From `[screen]` (and `[trust] dns_servers` when it names none).
    /// Opens the state database; must be called within a Tokio runtime.
    pub fn from_config(cfg: &Config) -> Result<Screen, String> {
        let s = &cfg.screen;
        let dns = if s.dns_lists.is_empty() {
            None
        } else {
            let servers = if s.dns_servers.is_empty() {
                &cfg.trust.dns_servers
            } else {
                &s.dns_servers
            };
            Some(DnsLists::new(
                s.dns_lists.clone(),
                servers,
                s.dns_lists_timeout.duration(),
                s.dns_lists_min_ttl.duration(),
                s.dns_lists_max_ttl.duration(),
            )?)
        };
        let dir = cfg.paths.state_dir.join("screen");
        let db = Db::open(&dir.join("screen.sqlite"), s.greylist.clone())
            .map_err(|e| format!("{}: {e}", dir.join("screen.sqlite").display()))?;
        Ok(Screen {
            access: AccessLists::new(
                Entries::from_config(&s.allow, &s.deny),
                access::file_path(&cfg.paths.state_dir),
            ),
            counters: Counters::new(&s.dns_lists),
            cfg: s.clone(),
            dns,
            db,
            clock: system_clock,
        })
    }

    /// The connect stage: allow and deny lists, then the DNS lists.
    pub async fn client(&self, ip: IpAddr) -> ClientVerdict {
        let v = self.judge_client(ip).await;
        let result = match &v {
            ClientVerdict::Allowlisted => "allowlisted",
            ClientVerdict::Denied => "denied",
            ClientVerdict::Listed { .. } => "listed",
            ClientVerdict::Trusted { .. } => "trusted",
            ClientVerdict::Neutral { .. } => "neutral",
        };
        self.counters.add("connect", result);
        v
    }

    async fn judge_client(&self, ip: IpAddr) -> ClientVerdict {
        match self.access.current().client(ip) {
            Some((Listed::Allow, _)) => return ClientVerdict::Allowlisted,
            Some((Listed::Deny, _)) => return ClientVerdict::Denied,
            None => {}
        }
        let Some(dns) = &self.dns else {
            return ClientVerdict::Neutral { score: 0 };
        };
        let (score, answers) = dns.check(ip).await;
        for (l, a) in dns.lists.iter().zip(&answers) {
            match a {
                dnsbl::ListAnswer::Listed(codes) => {
                    self.counters.add(&format!("dns_list:{}", l.zone), "listed");
                    tracing::info!(client = %ip, list = l.zone, answer = ?codes, weight = l.weight, "DNS list hit");
                }
                dnsbl::ListAnswer::Error(e) => {
                    self.counters.add(&format!("dns_list:{}", l.zone), "error");
                    tracing::warn!(client = %ip, list = l.zone, error = e, "DNS list not counted");
                }
                dnsbl::ListAnswer::NotListed => {}
            }
        }
        if score.total >= self.cfg.dns_lists_threshold {
            let blamed = score
                .blamed(&dns.lists)
                .unwrap_or("the DNS lists")
                .to_string();
            ClientVerdict::Listed {
                blamed,
                score: score.total,
            }
        } else if score.total <= self.cfg.dns_lists_trust_threshold {
            ClientVerdict::Trusted { score: score.total }
        } else {
            ClientVerdict::Neutral { score: score.total }
        }
    }

    /// Whether a client must wait for the pregreet test: the test is on,
    /// and the client did not pass it lately.
    pub async fn pregreet_due(&self, ip: IpAddr) -> bool {
        if self.cfg.pregreet_wait.0 == 0 {
            return false;
        }
        if matches!(self.access.current().client(ip), Some((Listed::Allow, _))) {
            return false;
        }
        !self.db.pregreet_known(ip.to_string(), (self.clock)()).await
    }

    /// Records how the pregreet test went; what becomes of an early
    /// talker.
    pub fn pregreet_result(&self, ip: IpAddr, early_talker: bool) -> PregreetAction {
        if early_talker {
            self.counters.add("pregreet", "early_talker");
            self.cfg.pregreet_action
        } else {
            self.counters.add("pregreet", "pass");
            self.remember_pass(ip);
            PregreetAction::Ignore
        }
    }

    /// Remembers a client as having passed the pregreet test (also for a
    /// client the DNS allow lists vouch for).
    pub fn remember_pass(&self, ip: IpAddr) {
        let until = (self.clock)() + self.cfg.pregreet_pass_ttl.0 as i64;
        self.db.pregreet_pass(ip.to_string(), until);
    }

    /// The HELO checks, when on.
    pub fn helo(&self, name: &str, ip: IpAddr, ours: &[String]) -> Result<(), &'static str> {
        if !self.cfg.helo_checks {
            return Ok(());
        }
        let r = helo::check(name, ip, ours);
        if r.is_err() {
            self.counters.add("helo", "refused");
        }
        r
    }

    /// The lists' word on an address (a sender or a recipient).
    pub fn address(&self, addr: &str) -> Option<Listed> {
        self.access.current().address(addr).map(|(l, _)| l)
    }

    /// Greylisting's verdict on one recipient (counted). `spf_domain`: the
    /// sender's domain when SPF authorized the client.
    pub async fn greylist(
        &self,
        ip: IpAddr,
        sender: &str,
        rcpt: &str,
        spf_domain: Option<String>,
    ) -> GreyOutcome {
        let t = greylist::Triplet::new(ip, sender, rcpt);
        let spf_domain = spf_domain.filter(|_| self.cfg.greylist.skip_spf_pass);
        let out = self.db.greylist(t, spf_domain, (self.clock)()).await;
        let result = match &out {
            GreyOutcome::Passed { .. } => "passed",
            GreyOutcome::ClientAllowlisted => "client_allowlisted",
            GreyOutcome::DomainAllowlisted => "domain_allowlisted",
            GreyOutcome::Defer(_) => "deferred",
            GreyOutcome::Unavailable => "unavailable",
        };
        self.counters.add("greylist", result);
        out
    }
}
