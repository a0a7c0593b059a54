//! facteur-qmgr: the queue manager. It owns the queue.
//!
//! It picks up what the sendmail command left in `maildrop/` and what smtpd
//! left in `incoming/`, resolves each recipient through the directory
//! (aliases, `+` details, catch-all), delivers local mail over LMTP to
//! facteur-lmtpd (or any LMTP server), retries temporary failures with
//! exponential backoff, and returns failures to the sender as RFC 3464
//! delivery status notifications (and "delayed" notices). Remote mail goes
//! over SMTP to each domain's MX or to a relayhost (`facteur-remote`). The
//! protocol of both is `facteur-smtp-client`'s; LMTP transactions carry the
//! message's queue id (`XQUEUEID`) when the server offers it, so one grep
//! of the queue id follows the message into lmtpd's log.
//!
//! Layout (one concern per file):
//! - [`server`]: the scheduler loop — wake-up socket, timer, shutdown;
//! - [`scheduler`]: its state — what waits ([`ready`]: new mail and the
//!   backlog, in turn), what is delivered (the concurrency limit), what
//!   the spool lane does next, when to scan;
//! - [`lane`]: the work that walks queue directories (pickup, start-up
//!   recovery, scans and flushes of deferred/, control operations), in
//!   bounded steps beside deliveries, so no queue size stalls qmgr;
//! - [`queue`]: the state machine of one queue file (pickup, attempt,
//!   deferral, removal) and its durability rules;
//! - [`lists`]: mailing lists at pickup, before aliases;
//! - [`resolve`](mod@resolve): recipient expansion, pure over the directory;
//! - [`submitter`]: who submitted a file a local user wrote (its owner,
//!   not its claims);
//! - [`lmtp`]: local delivery over LMTP (the target, the pooled
//!   connections of `facteur-smtp-client`'s LMTP dialect);
//! - [`schedule`]: backoff and expiry; [`dsn`]: bounce messages; [`dkim`]:
//!   DKIM signatures on mail that leaves; [`srs`]: the sender of forwarded
//!   mail rewritten as it leaves;
//! - remote delivery (DNS, MTA-STS, TLS policies, relayhosts, connection
//!   cache, destination backoff) is the `facteur-remote` crate
//!   ([`Context::remote`]);
//! - the control socket of `facteurctl queue` is served by [`control`];
//!   its protocol and the queue operations it runs (also usable on the
//!   spool with qmgr down) are `facteur_spool::control`.
//!
//! Invariants (details in `queue.rs`): the spool is the only state; every
//! decision (resolved recipients, per-recipient status, attempts, next
//! attempt) is written to the queue file, fsynced, before it is acted on
//! (a flush of deferred/ is a request, not a decision: it moves files and
//! writes nothing, `lane.rs`); a kill -9 at any moment leaves each message delivered exactly once or
//! still queued, except for a duplicate in the short window between the
//! LMTP server's 250 and our update, which the next start-up logs.
//! Wake-ups on the datagram socket are hints only; the queue directories
//! are scanned at start and every `scan_interval`. The scheduler loop never
//! waits for file work: a control request is answered within a second and
//! new mail is delivered whatever the size of the queue (a flush of 50,000
//! deferred messages, 55,000 left in active/ at a restart).
//!
//! Standards: RFC 2033 (LMTP), RFC 5321, RFC 2920 (PIPELINING), RFC 3461
//! (DSN parameters), RFC 3464 (DSN format), RFC 3463 (status codes),
//! RFC 6522 (multipart/report), RFC 3834 (Auto-Submitted).
//!
//! Security: qmgr never writes a mailbox; it talks to its own LMTP server,
//! the spool, and (remote delivery) SMTP servers on the Internet, whose
//! input is bounded and time-limited. Peer replies are bounded and
//! sanitised before they reach logs, queue files or bounces. A bounce never
//! goes to the null sender, so bounces cannot loop. Files in `maildrop/`
//! are written by any local user: their addresses are checked by the
//! queue-file reader (no control characters) and again by the client's
//! formatter, and their origin records are replaced by what the file's
//! owner says ([`submitter`]).

pub mod control;
pub mod dkim;
pub mod dsn;
pub mod lane;
pub mod lists;
pub mod lmtp;
pub mod metrics;
pub mod prefetch;
pub mod queue;
pub mod ready;
pub mod resolve;
pub mod schedule;
pub mod scheduler;
pub mod server;
pub mod srs;
pub mod submitter;
pub mod unsubscribe;

use facteur_config::Config;
use facteur_directory::Directory;
use facteur_remote::Remote;
use facteur_smtp_client::{Pool, Timeouts};
use facteur_spool::Spool;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use server::{bind_wakeup, run, serve};

/// The lists' tables, or `None` with a log line.
fn open_lists(cfg: &Config) -> Option<facteur_lists::ListStore> {
    facteur_lists::ListStore::open(&cfg.directory.path)
        .inspect_err(|e| tracing::warn!(error = %e, "mailing lists unavailable"))
        .ok()
}

/// Everything the queue manager needs, built once from the configuration.
pub struct Context {
    pub spool: Spool,
    pub directory: Arc<dyn Directory>,
    /// `directory.recipient_delimiter`.
    pub delimiters: String,
    pub hostname: String,
    /// Backoff and expiry; a reload (SIGHUP) replaces it.
    pub schedule: facteur_daemon::reload::Live<schedule::Schedule>,
    pub lmtp: lmtp::LmtpTarget,
    /// Open LMTP connections between deliveries.
    pub lmtp_pool: Pool<facteur_daemon::Stream>,
    /// Of the LMTP connections.
    pub timeouts: Timeouts,
    /// Messages delivered at once.
    pub lmtp_concurrency: usize,
    pub lmtp_max_recipients: usize,
    pub scan_interval: Duration,
    /// How long a shutdown waits for deliveries in flight.
    pub shutdown_grace: Duration,
    /// The wake-up socket.
    pub socket: PathBuf,
    /// The control socket (`facteurctl queue ...`).
    pub control_socket: PathBuf,
    /// Remote delivery (SMTP).
    pub remote: Remote,
    /// Seconds before a "delayed" DSN (0: never); a reload replaces it.
    pub delay_warning: facteur_daemon::reload::Live<u64>,
    /// DKIM signing of mail that leaves (`[trust.outgoing]`); `None`: off.
    pub dkim: Option<dkim::Dkim>,
    /// `[srs]`: the sender of a stranger's forwarded message is rewritten
    /// as it leaves, and bounces to rewritten senders are resolved back
    /// (`resolve.rs`); `None`: off.
    pub srs: Option<facteur_mail::srs::Srs>,
    /// `smtpd.mynetworks`: what they relay is ours ([`Context::is_ours`]).
    pub mynetworks: Vec<facteur_config::IpNet>,
    /// The mailing lists (in the directory's database); `None` when their
    /// tables cannot be opened (logged; lists then are unknown addresses).
    pub lists: Option<facteur_lists::ListStore>,
    /// `[lists] unsubscribe_url` ("": one copy for all members).
    pub lists_unsubscribe: String,
    /// Domains handed to another LMTP server (`[qmgr.destinations."d"]
    /// lmtp`): a list manager, another store. Read at start.
    pub transports: std::collections::BTreeMap<String, lmtp::LmtpTarget>,
    /// Pickup's reads of new messages, kept for their first attempt.
    pub prefetch: prefetch::Prefetch,
}

impl Context {
    /// Whether a message is ours (we vouch for it: DKIM-signed, never
    /// SRS-rewritten): from a login, from sendmail, our own notices
    /// (`facteur_trust::sign::is_ours`), or relayed for a client of
    /// `mynetworks` (the web application on this host, the office
    /// printer). Anything else came from a stranger through the MX.
    pub fn is_ours(&self, env: &facteur_spool::Envelope) -> bool {
        facteur_trust::sign::is_ours(
            env.auth_user.as_deref(),
            env.local_user.as_deref(),
            env.protocol.as_deref(),
        ) || env
            .client_addr
            .as_deref()
            .and_then(|a| a.parse::<std::net::IpAddr>().ok())
            .is_some_and(|ip| self.mynetworks.iter().any(|n| n.contains(ip)))
    }

    /// Takes what a reload may change: the schedule, the "delayed" notice
    /// and remote delivery's settings and credentials.
    pub fn reload(&self, cfg: &Config) {
        self.schedule
            .set(schedule::Schedule::from_config(&cfg.qmgr));
        self.delay_warning.set(cfg.qmgr.delay_warning.0);
        self.remote.reload(cfg);
    }

    /// Opens the spool (creating its directories) and the directory.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Context> {
        let spool = Spool::open(&cfg.paths.spool_dir)
            .map_err(|e| anyhow::anyhow!("spool {}: {e}", cfg.paths.spool_dir.display()))?;
        let directory: Arc<dyn Directory> = facteur_directory::open(cfg)?;
        let q = &cfg.qmgr;
        Ok(Context {
            spool,
            directory,
            delimiters: cfg.directory.recipient_delimiter.clone(),
            hostname: cfg.hostname(),
            schedule: facteur_daemon::reload::Live::new(schedule::Schedule::from_config(q)),
            lmtp: lmtp::LmtpTarget::from_config(cfg),
            lmtp_pool: Pool::new((q.lmtp_concurrency as usize).max(1), lmtp::POOL_IDLE),
            timeouts: Timeouts::lmtp(),
            lmtp_concurrency: (q.lmtp_concurrency as usize).max(1),
            lmtp_max_recipients: (q.lmtp_max_recipients as usize).max(1),
            scan_interval: q.scan_interval.duration().max(Duration::from_secs(1)),
            shutdown_grace: Duration::from_secs(60),
            socket: cfg.qmgr_socket(),
            control_socket: cfg.qmgr_control_socket(),
            remote: Remote::from_config(cfg)?,
            delay_warning: facteur_daemon::reload::Live::new(q.delay_warning.0),
            dkim: dkim::Dkim::from_config(cfg),
            srs: facteur_daemon::srs(cfg)?,
            mynetworks: cfg.smtpd.mynetworks.clone(),
            lists: open_lists(cfg),
            lists_unsubscribe: cfg.lists.unsubscribe_url.trim().to_string(),
            transports: q
                .destinations
                .iter()
                .filter_map(|(d, dest)| {
                    let a = dest.lmtp_target()?.ok()?;
                    Some((d.to_ascii_lowercase(), lmtp::LmtpTarget::from_addr(&a)))
                })
                .collect(),
            prefetch: prefetch::Prefetch::default(),
        })
    }
}
