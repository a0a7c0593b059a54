//! facteur-fetchd: the mail collector. Logs in to remote POP3 and IMAP
//! accounts (a provider's mailbox, an old server) and brings their mail
//! into facteur's queue, for one local mailbox or, "multidrop", for the
//! local recipients the messages name.
//!
//! Layout: [`store`] (the accounts and what was taken, in
//! `<state_dir>/fetchd.sqlite`), [`conn`] (blocking line I/O, TLS),
//! [`pop3`] and [`imap`] (the two client dialects), [`run_account`] (one
//! run of one account), [`recipients`] (multidrop), [`server`] (the daemon:
//! accounts due, a few at a time, backoff).
//!
//! Guarantees, in this order for each message: fetched; written into
//! `incoming/` with a `Received:` field naming the source, fsynced and
//! committed (qmgr then delivers it: aliases, Sieve, statistics apply);
//! recorded as taken (fsynced); only then, for an account that deletes,
//! marked for deletion on the server (POP3 DELE, applied at QUIT; IMAP
//! \Deleted and EXPUNGE after the batch). A crash anywhere loses nothing;
//! at most the messages between their commit and their record are taken
//! again. Mail enters as a stranger's (not DKIM-signed by us, SRS applies
//! when it is forwarded).
//!
//! Security: certificate checks are on unless an account says
//! `--insecure` (logged at each run); passwords live only in the 0600
//! database and are never logged; every read is bounded (lines, literals,
//! `[fetchd] max_message_size`) and timed out.

pub mod conn;
pub mod imap;
pub mod pop3;
pub mod recipients;
pub mod server;
pub mod store;

use facteur_directory::Directory;
use facteur_spool::{Envelope, QueueName, Recipient, Spool};
use std::io::Write;
use std::sync::Arc;
use std::time::Duration;
use store::{Account, Outcome, Protocol, Store, Tls};
use tracing::{info, warn};

#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the server said: {0}")]
    Remote(String),
    #[error("login refused: {0}")]
    LoginRefused(String),
    #[error("cannot queue a message: {0}")]
    Queue(String),
    #[error(transparent)]
    Store(#[from] store::StoreError),
}

/// What a run needs besides the account.
pub struct RunCtx {
    pub spool: Spool,
    pub directory: Arc<dyn Directory>,
    pub hostname: String,
    pub tls: facteur_remote::tls::TlsClients,
    pub timeout: Duration,
    pub max_message_size: u64,
    /// qmgr's wake-up socket, told after a run that fetched something.
    pub qmgr_socket: std::path::PathBuf,
}

impl RunCtx {
    pub fn from_config(cfg: &facteur_config::Config) -> anyhow::Result<RunCtx> {
        Ok(RunCtx {
            spool: Spool::open(&cfg.paths.spool_dir)?,
            directory: facteur_directory::open(cfg)?,
            hostname: cfg.hostname(),
            tls: facteur_remote::tls::TlsClients::new(&cfg.fetchd.ca_file)?,
            timeout: cfg.fetchd.timeout.duration(),
            max_message_size: cfg.fetchd.max_message_size.0,
            qmgr_socket: cfg.qmgr_socket(),
        })
    }
}

/// What one run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub fetched: usize,
    pub deleted: usize,
    pub too_big: usize,
    pub uidvalidity_changes: usize,
    /// Stopped at the account's maximum with messages left.
    pub more: bool,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} fetched, {} deleted remotely",
            self.fetched, self.deleted
        )?;
        if self.too_big > 0 {
            write!(f, ", {} too big (left on the server)", self.too_big)?;
        }
        if self.uidvalidity_changes > 0 {
            write!(
                f,
                ", UIDVALIDITY changed in {} folders",
                self.uidvalidity_changes
            )?;
        }
        Ok(())
    }
}

/// Runs `id` now if no other run holds it: connects, fetches, records the
/// outcome and schedules the next run. `Ok(None)`: another run holds it.
pub fn run_now(
    ctx: &RunCtx,
    store: &Store,
    id: i64,
) -> Result<Option<Result<Report, FetchError>>, FetchError> {
    let now = facteur_util::date::now_unix();
    let lease = now + ctx.timeout.as_secs() as i64 * 4 + 3600;
    if !store.claim(id, now, lease, std::process::id())? {
        return Ok(None);
    }
    let acct = store.get(id)?;
    let res = run_account(ctx, store, &acct);
    let outcome = match &res {
        Ok(r) if r.more => Outcome::More(r.to_string()),
        Ok(r) => Outcome::Done(r.to_string()),
        Err(FetchError::LoginRefused(m)) => Outcome::LoginRefused(m.clone()),
        Err(e) => Outcome::Failed(e.to_string()),
    };
    match &res {
        Ok(r) if r.fetched > 0 => {
            facteur_spool::wake_qmgr(&ctx.qmgr_socket);
            info!(account = id, remote = %acct.label(), "{r}")
        }
        Ok(r) => info!(account = id, remote = %acct.label(), "{r}"),
        Err(e) => warn!(account = id, remote = %acct.label(), error = %e, "fetch failed"),
    }
    store.finish(id, facteur_util::date::now_unix(), &outcome)?;
    Ok(Some(res))
}

/// One run of one account (see the module for the order of things).
pub fn run_account(ctx: &RunCtx, store: &Store, a: &Account) -> Result<Report, FetchError> {
    let tls_cfg = if a.tls == Tls::None {
        None
    } else {
        let policy = if a.insecure {
            warn!(account = a.id, remote = %a.label(), "certificate not checked (--insecure)");
            facteur_config::TlsPolicy::Encrypt
        } else {
            facteur_config::TlsPolicy::Verify
        };
        ctx.tls.config(policy).map_err(FetchError::Remote)?
    };
    let implicit = (a.tls == Tls::Implicit).then(|| tls_cfg.clone()).flatten();
    let starttls = (a.tls == Tls::StartTls).then_some(tls_cfg).flatten();
    let c = conn::Conn::connect(&a.host, a.port, ctx.timeout, implicit)?;
    match a.protocol {
        Protocol::Pop3 => run_pop3(
            ctx,
            store,
            a,
            pop3::Pop3::open(c, starttls, &a.login, &a.password)?,
        ),
        Protocol::Imap => run_imap(
            ctx,
            store,
            a,
            imap::Imap::open(c, starttls, &a.login, &a.password)?,
        ),
    }
}

fn run_pop3(
    ctx: &RunCtx,
    store: &Store,
    a: &Account,
    mut p: pop3::Pop3,
) -> Result<Report, FetchError> {
    let mut report = Report::default();
    let list = p.uidl()?;
    let present: std::collections::HashSet<String> = list.iter().map(|(_, u)| u.clone()).collect();
    store.prune(a.id, "", "", &present)?;
    let seen = store.seen(a.id, "", "")?;
    for (n, uidl) in list {
        if report.fetched + report.too_big >= a.max_per_run as usize {
            // (all + keep starts again from the first each run: never "more")
            report.more = a.new_only || !a.keep;
            break;
        }
        let taken = seen.contains(&uidl);
        if !(taken && a.new_only) {
            match p.retr(n, ctx.max_message_size)? {
                Some(msg) => {
                    let id = inject(ctx, a, "POP3", &msg)?;
                    store.record(a.id, "", "", &uidl)?;
                    info!(queue_id = %id, account = a.id, remote = %a.label(), uidl = %uidl, "fetched");
                    report.fetched += 1;
                }
                None => {
                    warn!(account = a.id, remote = %a.label(), uidl = %uidl, "message larger than [fetchd] max_message_size left on the server");
                    report.too_big += 1;
                    continue;
                }
            }
        }
        if !a.keep {
            p.dele(n)?;
            report.deleted += 1;
        }
    }
    p.quit()?;
    Ok(report)
}

fn run_imap(
    ctx: &RunCtx,
    store: &Store,
    a: &Account,
    mut i: imap::Imap,
) -> Result<Report, FetchError> {
    let mut report = Report::default();
    let folders = if a.folders.is_empty() {
        vec!["INBOX".to_string()]
    } else {
        a.folders.clone()
    };
    for folder in &folders {
        let uv = i.select(folder)?;
        if store.uidvalidity_changed(a.id, folder, &uv)? {
            warn!(account = a.id, remote = %a.label(), folder = %folder, uidvalidity = %uv, "UIDVALIDITY changed: every message of the folder counts as new");
            report.uidvalidity_changes += 1;
        }
        let uids = i.uids()?;
        let present = uids.iter().map(u32::to_string).collect();
        store.prune(a.id, folder, &uv, &present)?;
        let seen = store.seen(a.id, folder, &uv)?;
        let mut delete = Vec::new();
        for uid in uids {
            if report.fetched + report.too_big >= a.max_per_run as usize {
                // (all + keep starts again from the first each run: never "more")
                report.more = a.new_only || !a.keep;
                break;
            }
            let key = uid.to_string();
            if !(seen.contains(&key) && a.new_only) {
                match i.fetch(uid, ctx.max_message_size)? {
                    Some(msg) => {
                        let id = inject(ctx, a, "IMAP", &msg)?;
                        store.record(a.id, folder, &uv, &key)?;
                        info!(queue_id = %id, account = a.id, remote = %a.label(), folder = %folder, uid, "fetched");
                        report.fetched += 1;
                    }
                    None => {
                        warn!(account = a.id, remote = %a.label(), folder = %folder, uid, "message too big or gone; left on the server");
                        report.too_big += 1;
                        continue;
                    }
                }
            }
            if !a.keep {
                delete.push(uid);
            }
        }
        i.delete(&delete)?;
        report.deleted += delete.len();
    }
    i.logout()?;
    Ok(report)
}

/// Writes a fetched message into incoming/ (committed, fsynced); its id.
fn inject(ctx: &RunCtx, a: &Account, with: &str, msg: &[u8]) -> Result<String, FetchError> {
    let rcpts = if a.multidrop {
        recipients::multidrop(msg, ctx.directory.as_ref(), &a.local_user, &a.login)
    } else {
        vec![a.local_user.clone()]
    };
    let sender = recipients::return_path(msg).unwrap_or_default();
    let env = Envelope {
        sender,
        recipients: rcpts.iter().map(|r| Recipient::new(r.clone())).collect(),
        body: if msg.is_ascii() {
            facteur_mail::dsn::BodyType::SevenBit
        } else {
            facteur_mail::dsn::BodyType::EightBitMime
        },
        protocol: Some(format!("fetchd-{}", with.to_ascii_lowercase())),
        client_name: Some(a.host.clone()),
        arrival: facteur_util::date::now_unix(),
        ..Envelope::default()
    };
    let q = |e: &dyn std::fmt::Display| FetchError::Queue(e.to_string());
    let mut w = ctx
        .spool
        .create(QueueName::Incoming, &env)
        .map_err(|e| q(&e))?;
    let for_clause = match rcpts.as_slice() {
        [one] => format!("\r\n\tfor <{one}>"),
        _ => String::new(),
    };
    let received = format!(
        "Received: from {host} ({login}@{host}:{port})\r\n\tby {me} (facteur-fetchd) with {with} id {id}{for_clause};\r\n\t{date}\r\n",
        host = a.host,
        login = a.login.replace(['\r', '\n', '(', ')'], ""),
        port = a.port,
        me = ctx.hostname,
        id = w.queue_id(),
        date = facteur_util::date::rfc5322(facteur_util::date::now_unix()),
    );
    let written = w
        .write_all(received.as_bytes())
        .and_then(|()| w.write_all(msg));
    if let Err(e) = written {
        w.abort();
        return Err(q(&e));
    }
    w.commit().map_err(|e| q(&e))
}
