//! The accept loop: binds the Unix socket (or takes the one systemd passed
//! as `lmtp`) and the TCP listeners from the configuration, serves each connection in its own task under a connection
//! limit, and shuts down cleanly on SIGTERM/SIGINT (stops accepting, lets
//! sessions finish their transaction for up to 30 s, removes the socket).

use crate::Context;
use crate::session;
use facteur_config::Config;
use facteur_daemon::{Listener, systemd};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Semaphore, watch};
use tracing::{error, info, warn};

/// Runs facteur-lmtpd until a shutdown signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&cfg)?);
    let mut listeners = Vec::new();
    // Socket activation: the socket systemd passed as "lmtp" replaces the
    // configured Unix socket (and is left in place at exit).
    for l in systemd::inherited_unix("lmtp")? {
        listeners.push(Listener::from_inherited_unix(l)?);
    }
    if listeners.is_empty() {
        let sock = cfg.lmtp_socket();
        if let Some(dir) = sock.parent() {
            facteur_util::create_dir_all_mode(dir, 0o755)
                .map_err(|e| anyhow::anyhow!("cannot create {}: {e}", dir.display()))?;
        }
        listeners.push(
            Listener::bind_unix(&sock, cfg.lmtp_socket_mode())
                .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", sock.display()))?,
        );
    }
    for addr in &cfg.lmtpd.listen {
        listeners.push(
            Listener::bind_tcp(*addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {addr}: {e}"))?,
        );
    }
    for name in systemd::unclaimed() {
        warn!(
            name,
            "ignoring a socket passed by the service manager under an unknown name"
        );
    }
    facteur_daemon::ignore_hangup("facteur-lmtpd")?;
    systemd::ready();
    serve(
        ctx,
        listeners,
        cfg.lmtpd.max_connections as usize,
        facteur_daemon::shutdown_signal(),
    )
    .await
}

/// Serves `listeners` until `shutdown` resolves.
pub async fn serve(
    ctx: Arc<Context>,
    listeners: Vec<Listener>,
    max_connections: usize,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let limit = Arc::new(Semaphore::new(max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners {
        info!(listen = %l.describe(), "facteur-lmtpd listening");
        let ctx = Arc::clone(&ctx);
        let limit = Arc::clone(&limit);
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            loop {
                let permit = tokio::select! {
                    p = Arc::clone(&limit).acquire_owned() => match p { Ok(p) => p, Err(_) => break },
                    _ = stop.changed() => break,
                };
                let accepted = tokio::select! {
                    a = l.accept() => a,
                    _ = stop.changed() => break,
                };
                match accepted {
                    Ok((stream, peer)) => {
                        let ctx = Arc::clone(&ctx);
                        let stop = stop.clone();
                        sessions.spawn(async move {
                            session::serve(ctx, stream, peer, stop).await;
                            drop(permit);
                        });
                    }
                    Err(e) => {
                        // EMFILE and the like: back off instead of spinning.
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
                while sessions.try_join_next().is_some() {}
            }
            drop(l);
            let _ = tokio::time::timeout(Duration::from_secs(30), async { while sessions.join_next().await.is_some() {} }).await;
        });
    }
    shutdown.await;
    info!("facteur-lmtpd shutting down");
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            error!(error = %e, "listener task failed");
        }
    }
    info!("facteur-lmtpd stopped");
    Ok(())
}
