//! The scheduler: when to look at the queue, and how many messages to
//! deliver at once.
//!
//! Offers [`run`] (the daemon: context from the configuration, wake-up
//! socket, until SIGTERM/SIGINT), [`serve`] (the loop, given a context, a
//! bound socket and a shutdown future: what tests drive) and
//! [`bind_wakeup`].
//!
//! The loop scans the whole queue at start, every `scan_interval`, when
//! the earliest deferred message falls due, and after a delivery queued a
//! bounce or a control request: a full scan (blocking file work, off the
//! async threads) picks up maildrop/ and incoming/, moves due files from
//! deferred/ to active/, and lists active/. A datagram on the wake-up
//! socket (any content: it is only a hint) runs a pickup scan: maildrop/
//! and incoming/ only, so that each new message does not read every
//! deferred file (a queue of thousands deferred during an outage would
//! make every arrival cost thousands of reads). Each active message not
//! already in flight gets a task, and at most `lmtp_concurrency` tasks
//! deliver at once (a semaphore).
//!
//! Control socket (`facteurctl queue`, `docs/qmgr-control.md`): requests
//! are handed to this loop and run between scans (never during one); a
//! request about a message being delivered waits until that attempt ends.
//!
//! Shutdown: stop scanning and starting deliveries, wait up to
//! `shutdown_grace` for deliveries in flight, then drop the rest (their
//! files stay in active/ with the in-progress mark; see `queue.rs`).
//!
//! Security: the wake-up socket is mode 0666 like Postfix's public pickup
//! socket — the sendmail command runs as any local user — and a datagram
//! carries no data we use, so a flood costs at most extra scans. The
//! control socket is mode 0600 (the daemon's user and root), one request
//! line of at most 4 KiB per connection, read with a time-out.

use crate::Context;
use crate::queue;
use crate::schedule::now;
use facteur_config::Config;
use facteur_spool::QueueName;
use facteur_spool::control;
use std::collections::{HashMap, HashSet};
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{UnixDatagram, UnixListener};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{debug, error, info, warn};

/// Runs facteur-qmgr until a shutdown signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&cfg)?);
    let sock = bind_wakeup(&ctx.socket)
        .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", ctx.socket.display()))?;
    // SIGHUP (systemctl reload): the relayhost credentials are read again.
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let c = Arc::clone(&ctx);
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            let c = Arc::clone(&c);
            let _ = tokio::task::spawn_blocking(move || c.remote.reload_credentials()).await;
        }
    });
    facteur_daemon::systemd::ready();
    serve(ctx, sock, facteur_daemon::shutdown_signal()).await
}

/// Binds the wake-up datagram socket at `path` (mode 0666), replacing a
/// stale socket file; refuses a non-socket, or a socket someone is bound to.
pub fn bind_wakeup(path: &Path) -> io::Result<UnixDatagram> {
    if let Some(dir) = path.parent() {
        facteur_util::create_dir_all_mode(dir, 0o755)?;
    }
    facteur_daemon::remove_stale_socket(path, || {
        std::os::unix::net::UnixDatagram::unbound().is_ok_and(|p| p.connect(path).is_ok())
    })?;
    let s = UnixDatagram::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
    Ok(s)
}

/// A control request and where its answer goes.
struct Request {
    op: control::Op,
    reply: tokio::sync::oneshot::Sender<Result<Vec<String>, String>>,
}

/// Binds the control socket (mode 0600), replacing a stale one (bound
/// after the wake-up socket, which proved no other qmgr runs).
fn bind_control(path: &Path) -> io::Result<UnixListener> {
    facteur_daemon::remove_stale_socket(path, || false)?;
    let l = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Accepts control connections: one request line each, bounded in size
/// and time, handed to the scheduler loop.
async fn accept_control(l: UnixListener, tx: tokio::sync::mpsc::Sender<Request>) {
    loop {
        let Ok((stream, _)) = l.accept().await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let tx = tx.clone();
        tokio::spawn(async move {
            use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
            let (r, mut w) = stream.into_split();
            let mut line = String::new();
            let mut r = tokio::io::BufReader::new(r.take(4096));
            let read = tokio::time::timeout(Duration::from_secs(10), r.read_line(&mut line)).await;
            let res = match read {
                Ok(Ok(_)) => match control::parse_request(line.trim()) {
                    Ok(op) => {
                        let (otx, orx) = tokio::sync::oneshot::channel();
                        if tx.send(Request { op, reply: otx }).await.is_err() {
                            Err("qmgr is shutting down".to_string())
                        } else {
                            orx.await
                                .unwrap_or_else(|_| Err("qmgr is shutting down".into()))
                        }
                    }
                    Err(e) => Err(e),
                },
                _ => Err("no request".into()),
            };
            let _ = w.write_all(control::answer(&res).as_bytes()).await;
        });
    }
}

/// Runs one control request between scans (never during one).
async fn run_control(ctx: &Arc<Context>, req: Request) {
    if matches!(req.op, control::Op::Flush(_)) {
        ctx.remote.clear_backoff(None);
    }
    let c = Arc::clone(ctx);
    let op = req.op.clone();
    let res = tokio::task::spawn_blocking(move || control::apply(&c.spool, &op))
        .await
        .unwrap_or_else(|e| Err(format!("internal error: {e}")));
    match &res {
        Ok(lines) => {
            for l in lines {
                let id = l.split(':').next().unwrap_or("");
                info!(queue_id = %id, op = %req.op.to_line(), result = %l, "queue command");
            }
        }
        Err(e) => warn!(op = %req.op.to_line(), error = %e, "queue command refused"),
    }
    let _ = req.reply.send(res);
}

/// What a scan found.
#[derive(Debug, Default)]
struct Scan {
    active: Vec<String>,
    /// The earliest next attempt among files left in deferred/.
    next_due: Option<i64>,
}

/// Picks up maildrop/ and incoming/; returns the messages that reached
/// active/. Blocking.
fn pickup_scan(ctx: &Context) -> Vec<String> {
    let mut picked = Vec::new();
    for q in [QueueName::Maildrop, QueueName::Incoming] {
        match ctx.spool.list(q) {
            Ok(ids) => {
                for id in ids {
                    if queue::pickup(ctx, q, &id) {
                        picked.push(id);
                    }
                }
            }
            Err(e) => error!(queue = q.as_str(), error = %e, "cannot list the queue"),
        }
    }
    picked
}

/// One pass over the queue directories. Blocking.
fn scan(ctx: &Context) -> Scan {
    pickup_scan(ctx);
    let t = now();
    let mut next_due: Option<i64> = None;
    match ctx.spool.list(QueueName::Deferred) {
        Ok(ids) => {
            for id in ids {
                if let Some(n) = queue::check_deferred(ctx, &id, t) {
                    next_due = Some(next_due.map_or(n, |d| d.min(n)));
                }
            }
        }
        Err(e) => error!(queue = "deferred", error = %e, "cannot list the queue"),
    }
    let active = ctx.spool.list(QueueName::Active).unwrap_or_else(|e| {
        error!(queue = "active", error = %e, "cannot list the queue");
        Vec::new()
    });
    Scan { active, next_due }
}

/// The time until unix second `at`, from now.
fn until(at: i64) -> Duration {
    Duration::from_secs(u64::try_from(at.saturating_sub(now())).unwrap_or(0))
}

/// How often the spool is swept of what crashes left, and how old such a
/// file must be (no writer keeps a temporary file open for a day).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
const SWEEP_AGE: Duration = Duration::from_secs(24 * 3600);

/// Runs the scheduler until `shutdown` resolves.
pub async fn serve(
    ctx: Arc<Context>,
    wake: UnixDatagram,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    info!(socket = %ctx.socket.display(), lmtp = %ctx.lmtp, "facteur-qmgr started");
    let (ctl_tx, mut ctl_rx) = tokio::sync::mpsc::channel::<Request>(16);
    let ctl_listener = bind_control(&ctx.control_socket)
        .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", ctx.control_socket.display()))?;
    let ctl_task = tokio::spawn(accept_control(ctl_listener, ctl_tx));
    let mut held_ops: HashMap<String, Request> = HashMap::new();
    // Start-up: what the previous run left in active/.
    {
        let c = Arc::clone(&ctx);
        tokio::task::spawn_blocking(move || {
            let t = now();
            for id in c.spool.list(QueueName::Active).unwrap_or_default() {
                queue::recover_active(&c, &id, t);
            }
        })
        .await?;
    }
    let limit = Arc::new(Semaphore::new(ctx.lmtp_concurrency));
    let mut inflight: HashSet<String> = HashSet::new();
    let mut task_ids: HashMap<tokio::task::Id, String> = HashMap::new();
    let mut tasks: JoinSet<(String, queue::AttemptResult)> = JoinSet::new();
    // A full scan (deferred/ and active/ too) or only a pickup scan.
    let mut scan_now = true;
    let mut pickup_now = false;
    let mut deadline = tokio::time::Instant::now();
    let mut next_sweep = tokio::time::Instant::now();
    let mut buf = [0u8; 64];
    tokio::pin!(shutdown);
    loop {
        if scan_now || pickup_now {
            let full = scan_now;
            scan_now = false;
            pickup_now = false;
            if full && tokio::time::Instant::now() >= next_sweep {
                // What crashes left behind (temporary files, orphan state
                // files), at start-up and then every hour.
                next_sweep = tokio::time::Instant::now() + SWEEP_EVERY;
                let c = Arc::clone(&ctx);
                tokio::task::spawn_blocking(move || {
                    let n = c.spool.sweep(SWEEP_AGE);
                    if n > 0 {
                        info!(
                            removed = n,
                            "removed files left by crashes (older than a day) from the spool"
                        );
                    }
                });
            }
            let c = Arc::clone(&ctx);
            let found = tokio::task::spawn_blocking(move || {
                if full {
                    scan(&c)
                } else {
                    Scan {
                        active: pickup_scan(&c),
                        next_due: None,
                    }
                }
            })
            .await
            .unwrap_or_else(|e| {
                error!(error = %e, "queue scan failed");
                Scan::default()
            });
            for id in found.active {
                if !inflight.insert(id.clone()) {
                    continue;
                }
                let c = Arc::clone(&ctx);
                let l = Arc::clone(&limit);
                let key = id.clone();
                let h = tasks.spawn(async move {
                    let Ok(_permit) = l.acquire_owned().await else {
                        return (id, queue::AttemptResult::default());
                    };
                    let r = queue::attempt(c, id.clone()).await;
                    (id, r)
                });
                task_ids.insert(h.id(), key);
            }
            if full {
                let mut wait = ctx.scan_interval;
                if let Some(n) = found.next_due {
                    wait = wait.min(until(n));
                }
                deadline = tokio::time::Instant::now() + wait;
                debug!(in_flight = inflight.len(), next_scan_in = ?wait, "queue scanned");
            }
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => scan_now = true,
            r = wake.recv(&mut buf) => {
                if let Err(e) = r {
                    warn!(error = %e, "wake-up socket");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Many hints are one hint.
                while wake.try_recv(&mut buf).is_ok() {}
                pickup_now = true;
            }
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                match done {
                    Ok((tid, (id, r))) => {
                        task_ids.remove(&tid);
                        inflight.remove(&id);
                        if let Some(req) = held_ops.remove(&id) {
                            run_control(&ctx, req).await;
                            scan_now = true;
                        }
                        if r.rescan {
                            scan_now = true;
                        } else if let Some(n) = r.next_attempt {
                            deadline = deadline.min(tokio::time::Instant::now() + until(n));
                        }
                    }
                    Err(e) => {
                        // A panic in a delivery task is a bug; its message
                        // stays in active/ and is retried at the next scan.
                        let id = task_ids.remove(&e.id()).unwrap_or_default();
                        error!(queue_id = %id, error = %e, "delivery task failed");
                        inflight.remove(&id);
                        scan_now = true;
                    }
                }
            }
            Some(req) = ctl_rx.recv() => {
                match req.op.id() {
                    Some(id) if inflight.contains(id) && !matches!(req.op, control::Op::Flush(_)) => {
                        // Applied when the attempt in progress has recorded
                        // its results (see control.rs).
                        info!(queue_id = %id, op = %req.op.to_line(), "waiting for the delivery in progress");
                        if let Some(old) = held_ops.insert(id.to_string(), req) {
                            let _ = old.reply.send(Err("superseded by a newer request".into()));
                        }
                    }
                    _ => {
                        run_control(&ctx, req).await;
                        scan_now = true;
                    }
                }
            }
            _ = &mut shutdown => break,
        }
    }
    ctl_task.abort();
    let _ = std::fs::remove_file(&ctx.control_socket);
    info!(in_flight = inflight.len(), "facteur-qmgr shutting down");
    limit.close();
    let grace = ctx.shutdown_grace;
    if tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} })
        .await
        .is_err()
    {
        warn!(
            "deliveries still running after the grace period were cut off; they are retried at the next start"
        );
    }
    tasks.abort_all();
    drop(wake);
    let _ = std::fs::remove_file(&ctx.socket);
    info!("facteur-qmgr stopped");
    Ok(())
}
