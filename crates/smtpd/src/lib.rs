//! facteur-smtpd: the SMTP server (RFC 5321).
//!
//! Three kinds of listener (`[smtpd]`): **MX** (port 25: mail for local
//! domains from anyone, relaying only for `mynetworks`, no AUTH),
//! **submission** (587: STARTTLS, then AUTH before MAIL) and **submissions**
//! (465: implicit TLS, then AUTH). Accepted mail is written durably into
//! `spool/incoming` and the queue manager is woken (a hint only).
//!
//! Layout: [`server`] binds listeners and serves them through the shared
//! accept loop (facteur_daemon::accept: connection limits, implicit TLS);
//! the protocol is the SMTP core's (facteur-smtp-server), and
//! [`handler`] is smtpd on it: AUTH on submission, the queue file as the
//! message sink; [`policy`] decides relaying, recipients, sender ownership
//! and message rates (a check at the core's MAIL hook); [`message`]
//! receives the message into a queue file with the headers we add;
//! [`trust`] is mail authentication (iprev, SPF, DKIM, ARC, DMARC of
//! facteur-trust) as a check at every stage, for clients that are neither
//! logged in nor in `mynetworks`.
//!
//! Invariants:
//! - 250 after DATA/BDAT LAST only after the queue file is committed (fsynced
//!   and renamed, directory fsynced).
//! - Never an open relay: without AUTH, a client outside `mynetworks` can only
//!   send to local domains; source routes, `%`, `!` and quoted `@` hacks are
//!   refused (see [`policy`]).
//! - DATA ends only at `<CRLF>.<CRLF>`; a bare CR or LF makes the message
//!   refused (SMTP smuggling, CVE-2023-51764 class).
//! - After STARTTLS, anything the client sent before the handshake is thrown
//!   away (CVE-2011-0411 class). AUTH is never offered in clear text (except
//!   to loopback clients when configured).
//!
//! Standards: RFC 5321, 3207 (STARTTLS), 4954 (AUTH), 4616 (PLAIN), 3030
//! (CHUNKING), 2920 (PIPELINING), 1870 (SIZE), 6152 (8BITMIME), 6531
//! (SMTPUTF8), 3461 (DSN), 2034/3463 (enhanced codes), 3848 (Received
//! protocol names), 5322 (Date, Message-ID).

pub mod handler;
pub mod message;
pub mod metrics;
pub mod milter;
pub mod policy;
pub mod scan;
pub mod screen;
pub mod server;
pub mod trust;

use facteur_config::Config;
use facteur_directory::Directory;
use facteur_spool::Spool;
use std::path::PathBuf;
use std::sync::Arc;

pub use server::run;

/// Which listener a connection came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Mx,
    Submission,
    Submissions,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Mx => "mx",
            Mode::Submission => "submission",
            Mode::Submissions => "submissions",
        }
    }
}

/// Everything sessions share.
pub struct Context {
    pub hostname: String,
    pub directory: Arc<dyn Directory>,
    /// The mailing lists, whose addresses RCPT accepts (qmgr acts on
    /// them); `None` when their tables cannot be opened (logged).
    pub lists: Option<Arc<facteur_lists::ListStore>>,
    /// Domains qmgr hands to another LMTP server (`[qmgr.destinations."d"]
    /// lmtp`), lower-case: accepted from anyone, that server checks the
    /// recipients.
    pub lmtp_domains: std::collections::HashSet<String>,
    /// AUTH: the login driver (SASL mechanisms, the password cache of
    /// `directory.login_cache_seconds`, the slow-down of failures and the
    /// bound on password hashes of `[auth]`).
    pub logins: Arc<facteur_auth::Logins>,
    pub spool: Spool,
    pub delimiters: String,
    /// `[smtpd]`; a reload (SIGHUP) replaces it: limits, `mynetworks` and
    /// the policies apply to the sessions that start after it.
    pub cfg: facteur_daemon::reload::Live<facteur_config::Smtpd>,
    pub tls: facteur_daemon::tls::TlsState,
    pub qmgr_socket: PathBuf,
    /// Message rates per client address.
    pub rates: policy::Rates,
    /// Recipient rates per client address (`[screen]`).
    pub rcpt_rates: policy::Rates,
    /// `[screen]`: `None` when no listener of this daemon is screened.
    pub screen: Option<Arc<facteur_screen::Screen>>,
    /// The resolver of FCrDNS, when `[screen] require_fcrdns`.
    pub fcrdns: Option<facteur_trust::Resolver>,
    /// `[scan]`: the content scanners.
    pub scan: facteur_config::Scan,
    /// The scanners' verdicts and errors, counted.
    pub scan_counters: facteur_screen::Counters,
    /// Connections per client address (the accept loop's).
    pub limits: Arc<facteur_daemon::limits::Limits>,
    /// `[trust.incoming]`: the resolver and policy of the checks; `None`
    /// when no listener runs them.
    pub trust: Option<Arc<facteur_trust::Incoming>>,
    /// `[srs]`: bounces to our rewritten senders are accepted (and sent on
    /// by qmgr to the original sender); `None` when off.
    pub srs: Option<facteur_mail::srs::Srs>,
}

impl Context {
    pub fn from_config(cfg: &Config) -> anyhow::Result<Context> {
        let directory: Arc<dyn Directory> = facteur_directory::open(cfg)?;
        let limits = Arc::new(facteur_daemon::limits::Limits::default());
        let spool = Spool::open(&cfg.paths.spool_dir)
            .map_err(|e| anyhow::anyhow!("spool {}: {e}", cfg.paths.spool_dir.display()))?;
        let tls = facteur_daemon::tls::initial(
            &cfg.tls,
            (!cfg.smtpd.submissions.is_empty()).then_some("the submissions listener"),
        )?;
        let i = &cfg.trust.incoming;
        let any_checks = [Mode::Mx, Mode::Submission, Mode::Submissions]
            .iter()
            .any(|m| i.enabled_on(m.as_str()));
        let trust = if any_checks {
            let t = facteur_trust::Incoming::from_config(cfg)
                .map_err(|e| anyhow::anyhow!("trust: {e}"))?;
            Some(Arc::new(t))
        } else {
            None
        };
        let listening = |m: Mode| match m {
            Mode::Mx => !cfg.smtpd.mx.is_empty(),
            Mode::Submission => !cfg.smtpd.submission.is_empty(),
            Mode::Submissions => !cfg.smtpd.submissions.is_empty(),
        };
        let screened = [Mode::Mx, Mode::Submission, Mode::Submissions]
            .into_iter()
            .any(|m| listening(m) && cfg.screen.screens(m.as_str()));
        let screen = if screened {
            Some(Arc::new(
                facteur_screen::Screen::from_config(cfg)
                    .map_err(|e| anyhow::anyhow!("screen: {e}"))?,
            ))
        } else {
            None
        };
        let fcrdns = match (&screen, &trust) {
            (Some(_), Some(t)) if !cfg.screen.require_fcrdns.is_empty() => Some(t.resolver.clone()),
            (Some(_), None) if !cfg.screen.require_fcrdns.is_empty() => Some(
                facteur_trust::Resolver::from_config(&cfg.trust)
                    .map_err(|e| anyhow::anyhow!("screen: {e}"))?,
            ),
            _ => None,
        };
        Ok(Context {
            scan: cfg.scan.clone(),
            scan_counters: scan_counters(&cfg.scan),
            screen,
            fcrdns,
            rcpt_rates: policy::Rates::default(),
            trust,
            logins: facteur_auth::Logins::for_daemon(cfg, &directory)?,
            hostname: cfg.hostname(),
            directory,
            spool,
            delimiters: cfg.directory.recipient_delimiter.clone(),
            cfg: facteur_daemon::reload::Live::new(cfg.smtpd.clone()),
            tls,
            qmgr_socket: cfg.qmgr_socket(),
            rates: policy::Rates::default(),
            limits,
            srs: facteur_daemon::srs(cfg)?,
            lmtp_domains: cfg
                .qmgr
                .destinations
                .iter()
                .filter(|(_, d)| matches!(d.lmtp_target(), Some(Ok(_))))
                .map(|(d, _)| d.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            lists: facteur_lists::ListStore::open(&cfg.directory.path)
                .inspect_err(|e| tracing::warn!(error = %e, "mailing lists unavailable"))
                .ok()
                .map(Arc::new),
        })
    }
}

/// The scanners' counters, every pair at zero.
pub fn scan_counters(scan: &facteur_config::Scan) -> facteur_screen::Counters {
    let c = facteur_screen::Counters::default();
    if scan.rspamd.enabled {
        for r in [
            "no action",
            "greylist",
            "add header",
            "rewrite subject",
            "soft reject",
            "reject",
            "skipped",
            "error",
        ] {
            c.register("rspamd", r);
        }
    }
    if scan.clamav.enabled {
        for r in ["clean", "virus", "skipped", "error"] {
            c.register("clamav", r);
        }
    }
    for m in &scan.milters {
        for r in ["accept", "reject", "error"] {
            c.register(&format!("milter:{}", m.name), r);
        }
    }
    c
}
