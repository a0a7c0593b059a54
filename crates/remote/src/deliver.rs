//! One message to one destination: which hosts, which policy, which
//! connection; and the state shared by all remote deliveries ([`Remote`]):
//! concurrency limits, the destination backoff and the connection cache.
//!
//! A destination is a domain (MX delivery) or a relayhost (`[qmgr]
//! relayhost`, or `[qmgr.destinations."domain"] relayhost`); its key names
//! it in logs, limits, backoff and the cache.
//!
//! [`Remote::deliver`]: the route (MX by preference, null MX, implicit MX),
//! then each host and each of its addresses in turn until one gives a
//! usable session — a connect failure, a time-out, a 4xx/5xx greeting or
//! EHLO, a failed TLS handshake or a missing STARTTLS under `encrypt` or
//! `verify` all move on to the next one. Under `may` a failed STARTTLS is
//! followed by a second connection to the same address without TLS. Then the checks that make a
//! message undeliverable to this peer (SIZE, SMTPUTF8, BINARYMIME), AUTH
//! for a relayhost with credentials, and the transactions (at most
//! `smtp_max_recipients` recipients each). One [`Outcome`] per recipient.
//!
//! Connection cache: after a clean transaction the session is kept for
//! `smtp_connection_reuse_time`; the next message to the same destination
//! takes it, checks it with RSET, and uses it (several messages per
//! connection). A cached session is closed (QUIT) when its time is up.
//!
//! MTA-STS (`qmgr.mta_sts`): for MX delivery without a TLS policy of its
//! own, a domain's `enforce` policy keeps only the MX hosts it lists and
//! makes TLS `verify` (see `mta_sts.rs`); `testing` only logs.
//!
//! Backoff: a destination where no host could be reached
//! `smtp_destination_failures` times in a row is not tried for
//! `smtp_destination_backoff`; its messages are deferred without a
//! connection. `facteurctl queue flush` clears it.

use crate::dns::{self, Dns, HickoryDns, Route};
use crate::mta_sts::{Mode, MtaSts, Policy};
use crate::settings::{Credentials, Dest, Settings, load_credentials};
use crate::tls::TlsClients;
use facteur_config::{Config, TlsPolicy};
use facteur_mail::dsn::{BodyType, Ret};
use facteur_smtp_client::{BoxIo, Connection, Dialect, Opener, Pool, Txn, TxnRcpt, open_source};
use facteur_smtp_codec::Reply;
use facteur_smtp_codec::client::{Body, MailParams};
use facteur_spool::Envelope;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;
use tracing::{debug, info, warn};

/// What became of one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The peer's own reply (2xx delivered, 4xx deferred, 5xx bounced).
    Reply(Reply),
    /// Our own diagnosis, temporary (`4.x.x text`).
    Temp(String),
    /// Our own diagnosis, permanent (`5xx 5.x.x text`): bounce.
    Perm(String),
}

/// The message a delivery is about.
#[derive(Clone, Copy)]
pub struct Message<'a> {
    /// Its queue id (logs).
    pub id: &'a str,
    pub env: &'a Envelope,
    /// Bytes, network form (for SIZE).
    pub size: u64,
    /// Opens the bytes again for each transaction.
    pub open: &'a Opener,
}

impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("id", &self.id)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    until: Option<Instant>,
}

/// The state of remote delivery, shared by every delivery task.
pub struct Remote {
    pub dns: Arc<dyn Dns>,
    tls: TlsClients,
    /// What `[qmgr]` says; replaced on SIGHUP ([`Remote::reload`]): a
    /// delivery that started keeps the settings it took.
    settings: std::sync::RwLock<Arc<Settings>>,
    /// relayhost → (user, password); `Err` says why the file was refused.
    /// Read again on SIGHUP ([`Remote::reload`]).
    creds: std::sync::RwLock<Arc<Credentials>>,
    /// The file they come from (`qmgr.relay_password_file`; empty: none).
    creds_file: std::sync::RwLock<PathBuf>,
    total: Arc<Semaphore>,
    per_dest_max: usize,
    per_dest: Mutex<HashMap<String, Arc<Semaphore>>>,
    health: Mutex<HashMap<String, Health>>,
    /// Connections kept for `smtp_connection_reuse_time`, per destination.
    pool: Pool<BoxIo>,
    /// MTA-STS, when `qmgr.mta_sts` is on.
    pub sts: Option<MtaSts>,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("settings", &self.settings())
            .finish_non_exhaustive()
    }
}

impl Remote {
    /// From the configuration: the resolver, TLS, credentials.
    pub fn from_config(cfg: &Config) -> Result<Remote, SetupError> {
        let q = &cfg.qmgr;
        let dns = HickoryDns::new(&q.dns_servers).map_err(|e| SetupError::Dns(e.to_string()))?;
        let tls = TlsClients::new(&q.tls_ca_file).map_err(|e| SetupError::Tls(e.to_string()))?;
        let creds = load_credentials(&q.relay_password_file);
        if let Err(e) = &creds {
            warn!(error = %e, "relayhost credentials not used");
        }
        let sts = if q.mta_sts {
            match tls.config(TlsPolicy::Verify) {
                Ok(Some(v)) => Some(MtaSts::new(
                    v,
                    q.mta_sts_https_port,
                    q.smtp_command_timeout
                        .duration()
                        .min(Duration::from_secs(60)),
                )),
                Ok(None) | Err(_) => {
                    warn!(ca_file = %q.tls_ca_file.display(), "MTA-STS is off: the CA file is unusable");
                    None
                }
            }
        } else {
            None
        };
        let mut r = Remote::new(
            Arc::new(dns),
            tls,
            Settings::from_config(cfg),
            creds,
            q.smtp_concurrency as usize,
            q.smtp_destination_concurrency as usize,
        );
        r.sts = sts;
        r.creds_file = std::sync::RwLock::new(q.relay_password_file.clone());
        Ok(r)
    }

    /// The settings now.
    pub fn settings(&self) -> Arc<Settings> {
        Arc::clone(&self.settings.read().unwrap_or_else(|p| p.into_inner()))
    }

    /// Takes what `[qmgr]` now says (SIGHUP): the relayhost, destinations,
    /// TLS policies, time-outs and limits apply to deliveries that start
    /// after it; the credentials file is read again (a changed password is
    /// used from the next connection on; a file now refused — bad mode,
    /// bad line — makes relayhost deliveries wait, as at start).
    pub fn reload(&self, cfg: &Config) {
        *self.settings.write().unwrap_or_else(|p| p.into_inner()) =
            Arc::new(Settings::from_config(cfg));
        *self.creds_file.write().unwrap_or_else(|p| p.into_inner()) =
            cfg.qmgr.relay_password_file.clone();
        self.reload_credentials();
    }

    /// Reads the relayhost credentials file again.
    pub fn reload_credentials(&self) {
        let file = self
            .creds_file
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let creds = load_credentials(&file);
        match &creds {
            Ok(c) => {
                info!(file = %file.display(), relayhosts = c.len(), "relayhost credentials read again")
            }
            Err(e) => warn!(error = %e, "relayhost credentials not used"),
        }
        *self.creds.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(creds);
    }

    pub fn new(
        dns: Arc<dyn Dns>,
        tls: TlsClients,
        settings: Settings,
        creds: Credentials,
        total: usize,
        per_dest: usize,
    ) -> Remote {
        let reuse = settings.reuse;
        Remote {
            dns,
            tls,
            settings: std::sync::RwLock::new(Arc::new(settings)),
            creds: std::sync::RwLock::new(Arc::new(creds)),
            creds_file: std::sync::RwLock::new(PathBuf::new()),
            total: Arc::new(Semaphore::new(total.max(1))),
            per_dest_max: per_dest.max(1),
            per_dest: Mutex::new(HashMap::new()),
            health: Mutex::new(HashMap::new()),
            pool: Pool::new(usize::MAX, reuse),
            sts: None,
        }
    }

    /// Where mail for `domain` goes.
    pub fn destination(&self, domain: &str) -> Dest {
        self.settings().destination(domain)
    }

    /// Forgets the backoff of one destination key, or of all.
    pub fn clear_backoff(&self, key: Option<&str>) {
        if let Ok(mut h) = self.health.lock() {
            match key {
                Some(k) => {
                    h.remove(k);
                }
                None => h.clear(),
            }
        }
    }

    fn backed_off(&self, key: &str) -> Option<String> {
        let h = self.health.lock().ok()?;
        let e = h.get(key)?;
        let until = e.until?;
        let left = until.checked_duration_since(Instant::now())?;
        Some(format!(
            "4.4.1 destination {key} not tried: {} failed attempts in a row, backed off for {}s more",
            e.failures,
            left.as_secs()
        ))
    }

    fn record_health(&self, key: &str, ok: bool) {
        let Ok(mut h) = self.health.lock() else {
            return;
        };
        if ok {
            h.remove(key);
            return;
        }
        let e = h.entry(key.to_string()).or_default();
        e.failures = e.failures.saturating_add(1);
        let settings = self.settings();
        if e.failures >= settings.failure_limit {
            e.until = Some(Instant::now() + settings.backoff);
        }
    }

    fn dest_semaphore(&self, key: &str) -> Arc<Semaphore> {
        let mut m = self
            .per_dest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(
            m.entry(key.to_string())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_dest_max))),
        )
    }

    /// Delivers `msg` to its recipients `which`, all in `domain`. One
    /// outcome per recipient.
    pub async fn deliver(&self, msg: Message<'_>, domain: &str, which: &[usize]) -> Vec<Outcome> {
        let Message {
            id,
            env,
            size,
            open,
        } = msg;
        let mut dest = self.destination(domain);
        let all = |o: Outcome| vec![o; which.len()];
        if let Some(t) = self.backed_off(&dest.key) {
            return all(Outcome::Temp(t));
        }
        // MTA-STS (RFC 8461 §4): only for MX delivery without a policy of
        // the administrator's own for this domain.
        let sts = match &self.sts {
            Some(m) if dest.relay.is_none() && dest.mx && !dest.explicit_tls => m
                .policy(self.dns.as_ref(), id, domain)
                .await
                .filter(|p| p.mode != Mode::None),
            _ => None,
        };
        if sts.as_ref().is_some_and(|p| p.mode == Mode::Enforce) {
            dest.policy = TlsPolicy::Verify;
            // Cached connections were made without the policy's checks.
            dest.key = format!("{}+mta-sts", dest.key);
        }
        let _total = self.total.acquire().await;
        let sem = self.dest_semaphore(&dest.key);
        let _dest_permit = sem.acquire().await;

        let mut session = None;
        while let Some(mut s) = self.pool.take(&dest.key) {
            match s.rset().await {
                Ok(()) => {
                    info!(queue_id = %id, dest = %dest.key, "reusing a cached connection");
                    session = Some((s, "(cached)".to_string()));
                    break;
                }
                Err(e) => {
                    info!(queue_id = %id, dest = %dest.key, error = %e, "cached connection unusable, opening a new one")
                }
            }
        }
        let (mut session, peer) = match session {
            Some(x) => x,
            None => match self.connect(id, &dest, sts.as_ref()).await {
                Ok(x) => {
                    self.record_health(&dest.key, true);
                    x
                }
                Err(Fail::Perm(t)) => return all(Outcome::Perm(t)),
                Err(Fail::Temp(t, counts)) => {
                    if counts {
                        self.record_health(&dest.key, false);
                    }
                    return all(Outcome::Temp(t));
                }
            },
        };

        // What makes the message undeliverable to this peer (RFC 1870,
        // RFC 6531 §3.2, RFC 3030 §3).
        let x = &session.ext;
        let refusal = if !x.fits(size) {
            Some(format!(
                "552 5.3.4 message size {size} exceeds the limit of {} of {peer}",
                x.size.unwrap_or(0)
            ))
        } else if env.smtputf8 && !x.smtputf8 {
            Some(format!(
                "553 5.6.7 SMTPUTF8 is required, but was not offered by host {peer}"
            ))
        } else if env.body == BodyType::BinaryMime && !(x.binary_mime && x.chunking) {
            Some(format!(
                "554 5.6.3 BINARYMIME is required, but was not offered by host {peer}"
            ))
        } else {
            None
        };
        if let Some(t) = refusal {
            info!(queue_id = %id, dest = %dest.key, relay = %peer, reply = %t, "not sent");
            self.pool.put(&dest.key, session);
            return all(Outcome::Perm(t));
        }

        let params = MailParams {
            size: x.size.map(|_| size),
            body: match env.body {
                BodyType::SevenBit => None,
                BodyType::EightBitMime if x.eight_bit_mime => Some(Body::EightBitMime),
                // No 8BITMIME: sent as is, as Postfix does by default
                // (RFC 6152 §3 would convert; nearly every server takes it).
                BodyType::EightBitMime => None,
                BodyType::BinaryMime => Some(Body::BinaryMime),
            },
            smtputf8: env.smtputf8 && x.smtputf8,
            ret_hdrs: if x.dsn {
                env.ret.map(|r| r == Ret::Hdrs)
            } else {
                None
            },
            envid: if x.dsn { env.envid.as_deref() } else { None },
            // Set by the client for a server that offers it.
            queue_id: None,
        };
        let mut out = Vec::with_capacity(which.len());
        let mut broken = None;
        for batch in which.chunks(self.settings().max_recipients) {
            let rcpts: Vec<TxnRcpt> = batch
                .iter()
                .map(|&i| {
                    let r = &env.recipients[i];
                    TxnRcpt {
                        address: r.address.clone(),
                        notify: r.notify.is_given().then(|| r.notify.to_string()),
                        orcpt: r.orcpt.clone(),
                    }
                })
                .collect();
            let message = match open_source(open).await {
                Ok(m) => m,
                Err(e) => {
                    broken = Some(format!("4.3.0 cannot read the queued message: {e}"));
                    break;
                }
            };
            let txn = Txn {
                sender: &env.sender,
                params: params.clone(),
                rcpts: &rcpts,
                queue_id: Some(id),
            };
            let (replies, dead) = session.send(&txn, message).await.per_recipient();
            out.extend(replies.into_iter().map(|r| match r {
                Ok(r) => Outcome::Reply(r),
                Err(t) => Outcome::Temp(t),
            }));
            if let Some(t) = dead {
                warn!(queue_id = %id, dest = %dest.key, relay = %peer, error = %t, "SMTP connection failed");
                broken = Some(t);
                break;
            }
        }
        match broken {
            Some(t) => {
                while out.len() < which.len() {
                    out.push(Outcome::Temp(t.clone()));
                }
            }
            None => self.pool.put(&dest.key, session),
        }
        out
    }

    /// Tries each host and address of the destination until one gives a
    /// session ready for MAIL (TLS and AUTH done as the policy says).
    async fn connect(
        &self,
        id: &str,
        dest: &Dest,
        sts: Option<&Policy>,
    ) -> Result<(Connection<BoxIo>, String), Fail> {
        let mut hosts = match dns::route(self.dns.as_ref(), &dest.host, dest.mx).await {
            Route::Hosts(h) => h,
            Route::Refused(t) => return Err(Fail::Perm(t)),
            Route::Later(t) => return Err(Fail::Temp(t, false)),
        };
        if let Some(p) = sts {
            for h in hosts.iter().filter(|h| !p.allows(h)) {
                warn!(queue_id = %id, dest = %dest.key, host = %h, mode = ?p.mode, "MX host not listed in the MTA-STS policy");
            }
            if p.mode == Mode::Enforce {
                hosts.retain(|h| p.allows(h));
                if hosts.is_empty() {
                    return Err(Fail::Temp(
                        format!(
                            "4.7.5 MTA-STS policy of {} (enforce) lists none of its MX hosts",
                            dest.host
                        ),
                        false,
                    ));
                }
            }
        }
        let mut last = format!("4.4.1 no host of {} could be reached", dest.key);
        for host in hosts {
            let addrs = match dns::host_addrs(self.dns.as_ref(), &host).await {
                Ok(a) => a,
                Err(t) => {
                    debug!(queue_id = %id, host = %host, error = %t, "no address");
                    last = t;
                    continue;
                }
            };
            for ip in addrs {
                let peer = format!("{host}[{ip}]:{}", dest.port);
                match self.open(dest, &host, SocketAddr::new(ip, dest.port)).await {
                    Ok(s) => {
                        info!(queue_id = %id, dest = %dest.key, relay = %peer, tls = s.tls, "connected");
                        return Ok((s, peer));
                    }
                    Err(t) => {
                        info!(queue_id = %id, dest = %dest.key, relay = %peer, error = %t, "host failed, trying the next one");
                        last = format!("{t} ({peer})");
                    }
                }
            }
        }
        Err(Fail::Temp(last, true))
    }

    /// One address: connect, greeting, EHLO, STARTTLS, AUTH. Under the
    /// opportunistic policy (`may`), a STARTTLS that fails (refused, or a
    /// handshake that breaks) is followed by a second connection in clear
    /// text, as Postfix does: TLS that cannot be had must not keep the
    /// mail from a peer that takes it without.
    async fn open(
        &self,
        dest: &Dest,
        host: &str,
        addr: SocketAddr,
    ) -> Result<Connection<BoxIo>, String> {
        match self.open_once(dest, host, addr, true).await {
            Err(Open::TlsFailed(e)) if dest.policy == TlsPolicy::May => {
                info!(dest = %dest.key, relay = %addr, error = %e, "STARTTLS failed; trying again without TLS");
                self.open_once(dest, host, addr, false)
                    .await
                    .map_err(Open::text)
            }
            r => r.map_err(Open::text),
        }
    }

    async fn open_once(
        &self,
        dest: &Dest,
        host: &str,
        addr: SocketAddr,
        use_tls: bool,
    ) -> Result<Connection<BoxIo>, Open> {
        let settings = self.settings();
        let t = settings.timeouts;
        let tcp = tokio::time::timeout(t.connect, tokio::net::TcpStream::connect(addr))
            .await
            .map_err(|_| "4.4.1 connect timed out".to_string())?
            .map_err(|e| format!("4.4.1 cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let io: BoxIo = Box::new(tcp);
        let mut s = Connection::start(io, Dialect::Smtp, &settings.helo_name, t)
            .await
            .map_err(|e| e.as_reply_text())?;
        let cfg = self
            .tls
            .config(dest.policy)
            .map_err(|e| format!("4.7.5 TLS policy verify impossible, CA file unusable: {e}"))?
            .filter(|_| use_tls);
        if let Some(cfg) = cfg {
            if s.ext.starttls {
                // The name checked under `verify`: the MX host (or the
                // relayhost) name, never what the peer says it is.
                let name = host.trim_start_matches('[').trim_end_matches(']');
                s = s
                    .starttls(cfg, name)
                    .await
                    .map_err(|e| Open::TlsFailed(e.as_reply_text()))?;
            } else if matches!(dest.policy, TlsPolicy::Encrypt | TlsPolicy::Verify) {
                drop(tokio::spawn(s.quit()));
                return Err(Open::Other(format!(
                    "4.7.4 TLS is required (policy {}), but was not offered by host {host}",
                    dest.policy.as_str()
                )));
            }
        }
        let creds = Arc::clone(&self.creds.read().unwrap_or_else(|p| p.into_inner()));
        if dest.relay.is_some()
            && let Err(e) = &*creds
        {
            // Never fall back to sending unauthenticated (the relay would
            // refuse with a 5xx and the mail would bounce): defer, and say
            // why, until the administrator fixes the file.
            drop(tokio::spawn(s.quit()));
            return Err(Open::Other(format!(
                "4.7.0 relayhost credentials unusable: {e}"
            )));
        }
        if let Some(relay) = &dest.relay
            && let Ok(creds) = &*creds
            && let Some((user, pass)) = creds.get(relay)
        {
            if !s.tls {
                drop(tokio::spawn(s.quit()));
                return Err(Open::Other(format!(
                    "4.7.0 not sending the credentials for {relay} without TLS (tls_policy none, or no STARTTLS)"
                )));
            }
            s.auth(user, pass).await.map_err(|e| e.as_reply_text())?;
        }
        Ok(s)
    }
}

/// Why one connection attempt failed.
enum Open {
    /// STARTTLS was refused or its handshake failed.
    TlsFailed(String),
    Other(String),
}

impl Open {
    fn text(self) -> String {
        match self {
            Open::TlsFailed(t) | Open::Other(t) => t,
        }
    }
}

impl From<String> for Open {
    fn from(t: String) -> Open {
        Open::Other(t)
    }
}

/// Why remote delivery could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("DNS resolver: {0}")]
    Dns(String),
    #[error("TLS client configuration: {0}")]
    Tls(String),
}

enum Fail {
    Perm(String),
    /// The text, and whether it counts against the destination's health.
    Temp(String, bool),
}
