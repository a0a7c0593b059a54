//! Local delivery: how qmgr hands a message to facteur-lmtpd (or any LMTP
//! server, RFC 2033) with the outbound client's LMTP dialect.
//!
//! Offers [`LmtpTarget`] (where: `unix:/path` or `inet:host:port`, from
//! `[qmgr] lmtp`) and [`deliver`] (one message to some of its local
//! recipients: a pooled connection or a new one, transactions of at most
//! `lmtp_max_recipients` recipients, one outcome per recipient).
//!
//! The message's queue id goes along as `XQUEUEID=` when the server offers
//! it (facteur-lmtpd does), so lmtpd's log lines about the delivery carry
//! the same `queue_id` as qmgr's.
//!
//! Guarantees (the client's): an outcome is `Ok(reply)` only when the
//! server said it; otherwise `Err(text)`, a temporary failure the caller
//! defers (the recipient may have been delivered: a duplicate is the worst
//! case). Addresses go through the codec's checked formatter, as in SMTP.

use crate::Context;
use facteur_mail::dsn::{BodyType, RcptStatus};
use facteur_smtp_client::{
    Connection, Dialect, MessageSource, Opener, Txn, TxnRcpt, in_memory, open_source,
};
use facteur_smtp_codec::Reply;
use facteur_smtp_codec::client::{Body, MailParams};
use facteur_spool::Envelope;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// The pool key of the one LMTP target.
const POOL_KEY: &str = "lmtp";

/// How long a pooled LMTP connection may wait for its next message (well
/// inside lmtpd's idle time-out).
pub const POOL_IDLE: Duration = Duration::from_secs(20);

/// The message of a local delivery: held in memory when small (read with
/// its queue file, queue.rs), so a transaction needs no blocking thread to
/// read it; else opened for each transaction.
#[derive(Clone)]
pub struct Source {
    pub open: Opener,
    pub held: Option<Arc<[u8]>>,
}

impl Source {
    async fn start(&self) -> io::Result<MessageSource> {
        match &self.held {
            Some(m) => Ok(in_memory(m)),
            None => open_source(&self.open).await,
        }
    }
}

/// Where LMTP goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LmtpTarget {
    Unix(PathBuf),
    /// `host:port`, resolved at connect time.
    Inet(String),
}

impl LmtpTarget {
    /// From `[qmgr] lmtp`: "" means this configuration's lmtpd socket.
    pub fn from_config(cfg: &facteur_config::Config) -> LmtpTarget {
        let s = cfg.qmgr.lmtp.as_str();
        if let Some(p) = s.strip_prefix("unix:") {
            LmtpTarget::Unix(PathBuf::from(p))
        } else if let Some(a) = s.strip_prefix("inet:") {
            LmtpTarget::Inet(a.to_string())
        } else {
            // "" (the config check refuses anything else).
            LmtpTarget::Unix(cfg.lmtp_socket())
        }
    }

    /// Connects, within `timeout`.
    pub async fn connect(&self, timeout: Duration) -> io::Result<facteur_daemon::Stream> {
        let fut = async {
            match self {
                LmtpTarget::Unix(p) => Ok(facteur_daemon::Stream::Unix(
                    tokio::net::UnixStream::connect(p).await?,
                )),
                LmtpTarget::Inet(a) => {
                    let s = tokio::net::TcpStream::connect(a.as_str()).await?;
                    let _ = s.set_nodelay(true);
                    Ok(facteur_daemon::Stream::Tcp(s))
                }
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    }
}

impl std::fmt::Display for LmtpTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LmtpTarget::Unix(p) => write!(f, "unix:{}", p.display()),
            LmtpTarget::Inet(a) => write!(f, "inet:{a}"),
        }
    }
}

impl LmtpTarget {
    /// From a destination's checked `lmtp` address.
    pub fn from_addr(a: &facteur_config::LmtpAddr) -> LmtpTarget {
        match a {
            facteur_config::LmtpAddr::Unix(p) => LmtpTarget::Unix(p.clone()),
            facteur_config::LmtpAddr::Inet(h) => LmtpTarget::Inet(h.clone()),
        }
    }
}

/// The pool key of a target: lmtpd's, or the target itself.
fn pool_key(ctx: &Context, target: &LmtpTarget) -> String {
    if *target == ctx.lmtp {
        POOL_KEY.to_string()
    } else {
        target.to_string()
    }
}

/// A pooled connection (and true), or a new one. A pooled one is not
/// asked for RSET first: its last transaction ended cleanly, and one the
/// server has closed since fails its next transaction before any reply,
/// which `deliver` then runs again on a new connection. That spares a
/// round trip per message.
async fn connection(
    ctx: &Context,
    target: &LmtpTarget,
) -> Result<(Connection<facteur_daemon::Stream>, bool), String> {
    match ctx.lmtp_pool.take(&pool_key(ctx, target)) {
        Some(c) => Ok((c, true)),
        None => new_connection(ctx, target).await.map(|c| (c, false)),
    }
}

/// A new connection to `target`, greeted.
async fn new_connection(
    ctx: &Context,
    target: &LmtpTarget,
) -> Result<Connection<facteur_daemon::Stream>, String> {
    let stream = target
        .connect(ctx.timeouts.connect)
        .await
        .map_err(|e| format!("4.4.1 cannot connect to {target}: {e}"))?;
    Connection::start(stream, Dialect::Lmtp, &ctx.hostname, ctx.timeouts)
        .await
        .map_err(|e| e.as_reply_text())
}

/// Delivers to `which` over LMTP at `target` and records each outcome in
/// `env` (logged and counted as local deliveries).
pub async fn deliver_and_record(
    ctx: &Arc<Context>,
    target: &LmtpTarget,
    id: &str,
    env: &mut Envelope,
    which: &[usize],
    message: &Source,
) {
    let started = std::time::Instant::now();
    let outcomes = deliver(ctx, target, id, env, which, message).await;
    crate::metrics::duration("local", started.elapsed());
    let relay = target.to_string();
    for (&i, outcome) in which.iter().zip(outcomes) {
        let (status, text) = status(outcome);
        crate::queue::record(id, &mut env.recipients[i], status, text, &relay, "local");
    }
}

/// A recipient's state after an LMTP outcome: 2xx delivered, 5xx bounced,
/// anything else (4xx, no reply) deferred.
pub fn status(outcome: Result<Reply, String>) -> (RcptStatus, String) {
    match outcome {
        Ok(reply) if reply.code / 100 == 2 => (RcptStatus::Delivered, reply.to_string()),
        Ok(reply) if reply.code / 100 == 5 => (RcptStatus::Bounced, reply.to_string()),
        Ok(reply) => (RcptStatus::Deferred, reply.to_string()),
        Err(text) => (RcptStatus::Deferred, text),
    }
}

/// Delivers the message `id` to its recipients `which` over LMTP. One
/// outcome per recipient: the server's reply, or the reason there is none
/// (treated as temporary).
pub async fn deliver(
    ctx: &Arc<Context>,
    target: &LmtpTarget,
    id: &str,
    env: &Envelope,
    which: &[usize],
    message: &Source,
) -> Vec<Result<Reply, String>> {
    let mut out: Vec<Result<Reply, String>> = Vec::with_capacity(which.len());
    let fail_all = |out: &mut Vec<Result<Reply, String>>, text: String| {
        while out.len() < which.len() {
            out.push(Err(text.clone()));
        }
    };
    let (mut client, mut pooled) = match connection(ctx, target).await {
        Ok(c) => c,
        Err(t) => {
            fail_all(&mut out, t);
            return out;
        }
    };
    let params = MailParams {
        body: (env.body != BodyType::SevenBit && client.ext.eight_bit_mime)
            .then_some(Body::EightBitMime),
        smtputf8: env.smtputf8 && client.ext.smtputf8,
        ..MailParams::default()
    };
    for batch in which.chunks(ctx.lmtp_max_recipients.max(1)) {
        let rcpts: Vec<TxnRcpt> = batch
            .iter()
            .map(|&i| TxnRcpt::new(env.recipients[i].address.clone()))
            .collect();
        let txn = Txn {
            sender: &env.sender,
            params: params.clone(),
            rcpts: &rcpts,
            queue_id: Some(id),
        };
        let outcome = loop {
            let source = match message.start().await {
                Ok(m) => m,
                Err(e) => {
                    fail_all(
                        &mut out,
                        format!("4.3.0 cannot read the queued message: {e}"),
                    );
                    return out;
                }
            };
            let outcome = client.send(&txn, source).await;
            if !(pooled && outcome.unheard) {
                break outcome;
            }
            // A pooled connection the server had closed (a restart): the
            // message was not sent; once more on a new connection.
            pooled = false;
            client = match new_connection(ctx, target).await {
                Ok(c) => c,
                Err(t) => {
                    fail_all(&mut out, t);
                    return out;
                }
            };
        };
        pooled = false;
        let (replies, broken) = outcome.per_recipient();
        out.extend(replies);
        if let Some(t) = broken {
            warn!(queue_id = %id, relay = %target, error = %t, "LMTP connection failed");
            fail_all(&mut out, t);
            return out;
        }
    }
    ctx.lmtp_pool.put(&pool_key(ctx, target), client);
    out
}
