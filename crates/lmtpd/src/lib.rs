//! facteur-lmtpd: the local delivery agent, an LMTP server (RFC 2033).
//!
//! Whatever speaks LMTP can deliver here — facteur-qmgr, or a third-party MTA
//! such as Postfix (`virtual_transport = lmtp:unix:/run/facteur/lmtp.sock`).
//! For each recipient it resolves the address through the directory (aliases,
//! `+` details, catch-all), and after the message it writes one copy per
//! recipient into the Maildir store, answering per recipient. A message
//! carrying the spam mark (smtpd's quarantine) is filed into the user's
//! Junk folder ([`deliver`]).
//!
//! Layout: [`server`] binds the listeners and serves them through the shared
//! accept loop; the protocol is the SMTP core's (facteur-smtp-server, LMTP
//! dialect), and [`handler`] is lmtpd on it; [`envelope`] resolves RCPT;
//! [`deliver`] writes the copies; the message is held with bounded memory
//! in a `facteur_daemon::body::Body`.
//!
//! Invariants:
//! - A recipient's 250 after DATA/BDAT LAST is written only after its copy is
//!   fsynced and renamed into `new/` (and `new/` fsynced) by the store. A
//!   SIGKILL at any moment loses no acknowledged message and leaves no
//!   partial file visible to readers (partial files live only in `tmp/`).
//! - Memory per connection is bounded: command lines by `max_line_length`,
//!   message bodies spill to an unlinked temporary file past 1 MiB.
//! - Bad input never panics; it gets a reply (or a timeout) and, past
//!   `max_errors`, the connection is closed.
//!
//! Standards: RFC 2033 (LMTP), RFC 5321, RFC 3030 (CHUNKING), RFC 2920
//! (PIPELINING), RFC 6531/6152 (SMTPUTF8, 8BITMIME), RFC 1870 (SIZE),
//! RFC 3463 (enhanced status codes).
//!
//! Security: LMTP has no authentication; listen on a Unix socket with a
//! restrictive mode, or on loopback/trusted networks only.

pub mod deliver;
pub mod envelope;
pub mod handler;
pub mod metrics;
pub mod server;
pub mod sieve;

use facteur_config::{Config, OverQuota};
use facteur_directory::Directory;
use facteur_store::Store;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use server::run;

/// Limits of one connection.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_size: u64,
    pub max_recipients: usize,
    pub max_line_length: usize,
    pub timeout: Duration,
    pub max_errors: u32,
}

impl Limits {
    pub fn from_config(l: &facteur_config::Lmtpd) -> Limits {
        Limits {
            max_message_size: l.max_message_size.0,
            max_recipients: l.max_recipients as usize,
            max_line_length: l.max_line_length as usize,
            timeout: l.timeout.duration(),
            max_errors: l.max_errors,
        }
    }
}

/// Everything a session needs, shared by all sessions.
pub struct Context {
    pub hostname: String,
    pub directory: Arc<dyn Directory>,
    pub store: Arc<Store>,
    pub delimiters: String,
    /// A reload (SIGHUP) replaces these; sessions that start after it
    /// take them.
    pub limits: facteur_daemon::reload::Live<Limits>,
    pub over_quota: facteur_daemon::reload::Live<OverQuota>,
    /// Where large bodies spill (unlinked files).
    pub tmp_dir: PathBuf,
    /// Sieve: the settings (reloadable), compiled scripts, the vacation
    /// and duplicate records (None when the database cannot be opened:
    /// then nothing is remembered and a warning was logged), and the
    /// spool where redirects and replies are queued.
    pub sieve: facteur_daemon::reload::Live<sieve::Settings>,
    pub sieve_cache: sieve::Cache,
    pub sieve_state: Option<sieve::state::State>,
    pub outbox: sieve::exec::Outbox,
}

impl Context {
    /// Builds the context from the configuration: opens the directory and the
    /// store, creates the temporary directory.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Context> {
        let hostname = cfg.hostname();
        let directory: Arc<dyn Directory> = facteur_directory::open(cfg)?;
        let store = Arc::new(Store::new(facteur_store::StoreConfig {
            root: cfg.store.mail_root.clone(),
            hostname: hostname.clone(),
        }));
        let tmp_dir = cfg.paths.state_dir.join("tmp");
        facteur_util::create_dir_all_mode(&tmp_dir, 0o700)
            .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", tmp_dir.display()))?;
        let state_path = cfg.paths.state_dir.join("sieve-state.sqlite");
        let sieve_state = match sieve::state::State::open(&state_path) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(path = %state_path.display(), error = %e, "sieve state database unavailable: vacation and duplicate records off");
                None
            }
        };
        Ok(Context {
            sieve: facteur_daemon::reload::Live::new(sieve::Settings::from_config(&cfg.sieve)),
            sieve_cache: sieve::Cache::default(),
            sieve_state,
            outbox: sieve::exec::Outbox {
                spool_dir: cfg.paths.spool_dir.clone(),
                qmgr_socket: cfg.qmgr_socket(),
            },
            hostname,
            directory,
            store,
            delimiters: cfg.directory.recipient_delimiter.clone(),
            limits: facteur_daemon::reload::Live::new(Limits::from_config(&cfg.lmtpd)),
            over_quota: facteur_daemon::reload::Live::new(cfg.lmtpd.over_quota),
            tmp_dir,
        })
    }

    /// Takes what a reload may change from `cfg`.
    pub fn reload(&self, cfg: &Config) {
        self.limits.set(Limits::from_config(&cfg.lmtpd));
        self.over_quota.set(cfg.lmtpd.over_quota);
        self.sieve.set(sieve::Settings::from_config(&cfg.sieve));
    }
}
