//! The scheduler loop: events in, work out.
//!
//! Offers [`run`] (the daemon: context from the configuration, wake-up
//! socket, until SIGTERM/SIGINT), [`serve`] (the loop, given a context, a
//! bound socket and a shutdown future: what tests drive) and
//! [`bind_wakeup`].
//!
//! The loop waits for the next event — a delivery ended, a step of the
//! spool lane returned, a control request came (`control.rs`), a datagram
//! on the wake-up socket, the scan timer, shutdown — hands it to the
//! [`Scheduler`] (`scheduler.rs`), which starts the next lane step and the
//! deliveries that slots allow. The loop itself never waits for file work:
//! whatever the size of the queue, a control request is answered, new
//! mail is picked up and deliveries go on.
//!
//! When it looks at the queue: at start (recovery of active/, a pickup, a
//! full scan), a pickup (maildrop/ and incoming/ only, so that an arrival
//! does not read every deferred file) for each wake-up datagram (any
//! content: only a hint), after a delivery queued a bounce, and after a
//! control request released or requeued a message; a full scan (pickup,
//! the due messages of deferred/, then the list of active/) every
//! `scan_interval` and when the earliest deferred message falls due.
//!
//! Shutdown: stop the lane and new deliveries, answer waiting control
//! requests that qmgr stops, wait up to `shutdown_grace` for deliveries in
//! flight, then drop the rest (their files stay in active/ with the
//! in-progress mark; see `queue.rs`).
//!
//! Security: the wake-up socket is mode 0666 like Postfix's public pickup
//! socket — the sendmail command runs as any local user — and a datagram
//! carries no data we use, so a flood costs at most extra pickups (many
//! hints during one pickup are one more pickup). The control socket is
//! mode 0600 (`control.rs`).

use crate::Context;
use crate::control;
use crate::scheduler::{Scheduler, Tasks};
use facteur_config::Config;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::UnixDatagram;
use tracing::{info, warn};

/// What a reload cannot change: the sockets, where local mail goes, the
/// concurrency limits, the resolver and the CA file, MTA-STS.
const FIXED: &[facteur_daemon::reload::Fixed] = &[
    ("qmgr.socket", |c| format!("{:?}", c.qmgr_socket())),
    ("qmgr.lmtp", |c| c.qmgr.lmtp.clone()),
    ("qmgr.lmtp_concurrency", |c| {
        c.qmgr.lmtp_concurrency.to_string()
    }),
    ("qmgr.lmtp_max_recipients", |c| {
        c.qmgr.lmtp_max_recipients.to_string()
    }),
    ("qmgr.scan_interval", |c| {
        format!("{:?}", c.qmgr.scan_interval)
    }),
    ("qmgr.smtp_concurrency", |c| {
        c.qmgr.smtp_concurrency.to_string()
    }),
    ("qmgr.smtp_destination_concurrency", |c| {
        c.qmgr.smtp_destination_concurrency.to_string()
    }),
    ("qmgr.dns_servers", |c| format!("{:?}", c.qmgr.dns_servers)),
    ("qmgr.tls_ca_file", |c| format!("{:?}", c.qmgr.tls_ca_file)),
    ("qmgr.mta_sts", |c| c.qmgr.mta_sts.to_string()),
];

/// Runs facteur-qmgr until a shutdown signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&cfg)?);
    crate::metrics::register(&ctx.spool);
    if let Some(addr) = cfg.lists.unsubscribe_listen {
        let l = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("[lists] unsubscribe_listen {addr}: {e}"))?;
        info!(listen = %l.local_addr()?, "one-click list unsubscription served");
        let c = Arc::clone(&ctx);
        tokio::spawn(facteur_metrics::serve_with(
            l,
            Arc::new(move |head: &[u8]| match &c.lists {
                Some(s) => crate::unsubscribe::answer(s, head),
                None => facteur_metrics::response(
                    "503 Service Unavailable",
                    "text/plain",
                    "lists unavailable\n",
                    false,
                ),
            }),
        ));
    }
    let sock = bind_wakeup(&ctx.socket)
        .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", ctx.socket.display()))?;
    // SIGHUP (systemctl reload): the configuration is read again.
    let c = Arc::clone(&ctx);
    facteur_daemon::reload::on_hangup("facteur-qmgr", cfg.clone(), None, FIXED, move |new| {
        c.reload(new)
    })?;
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

/// Runs the scheduler until `shutdown` resolves.
pub async fn serve(
    ctx: Arc<Context>,
    wake: UnixDatagram,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    info!(socket = %ctx.socket.display(), lmtp = %ctx.lmtp, "facteur-qmgr started");
    let (ctl_tx, mut ctl_rx) = tokio::sync::mpsc::channel::<control::Request>(16);
    let ctl_listener = control::bind(&ctx.control_socket)
        .map_err(|e| anyhow::anyhow!("cannot bind {}: {e}", ctx.control_socket.display()))?;
    let ctl_task = tokio::spawn(control::accept(
        ctl_listener,
        ctl_tx,
        Arc::clone(&ctx.directory),
    ));
    let (lane_tx, mut lane_rx) = tokio::sync::mpsc::unbounded_channel();
    let mut s = Scheduler::new(Arc::clone(&ctx), lane_tx);
    let mut tasks = Tasks::new();
    let mut buf = [0u8; 64];
    tokio::pin!(shutdown);
    loop {
        s.pump(&mut tasks);
        tokio::select! {
            _ = tokio::time::sleep_until(s.deadline) => s.timer(),
            r = wake.recv(&mut buf) => {
                if let Err(e) = r {
                    warn!(error = %e, "wake-up socket");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                // Many hints are one hint.
                while wake.try_recv(&mut buf).is_ok() {}
                s.want_pickup();
            }
            Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => s.attempt_done(done),
            Some(done) = lane_rx.recv() => s.lane_done(done),
            Some(req) = ctl_rx.recv() => s.request(req),
            _ = &mut shutdown => break,
        }
    }
    ctl_task.abort();
    s.stop();
    let _ = std::fs::remove_file(&ctx.control_socket);
    info!(
        in_flight = s.in_flight(),
        waiting = s.waiting(),
        "facteur-qmgr shutting down"
    );
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
