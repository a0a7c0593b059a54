//! Listeners and connection limits for facteur-smtpd: binds the MX,
//! submission and submissions addresses from `[smtpd]` (or takes the sockets
//! systemd passed under the names `mx`, `submission`, `submissions`),
//! enforces the total
//! and per-address connection limits (a refused client gets `421 4.7.0`),
//! does the implicit TLS handshake on submissions, reloads the TLS
//! certificate on SIGHUP, and shuts down cleanly on SIGTERM/SIGINT.

use crate::policy::Rates;
use crate::{Context, Mode, session};
use facteur_config::Config;
use facteur_daemon::conn::Conn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::{error, info, warn};

/// Runs facteur-smtpd until a shutdown signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&cfg)?);
    // Socket activation: sockets the service manager passed under a
    // listener's name replace the configured addresses of that listener.
    let listeners = facteur_daemon::accept::bind_listeners(
        &[
            (Mode::Mx, Mode::Mx.as_str(), &cfg.smtpd.mx),
            (
                Mode::Submission,
                Mode::Submission.as_str(),
                &cfg.smtpd.submission,
            ),
            (
                Mode::Submissions,
                Mode::Submissions.as_str(),
                &cfg.smtpd.submissions,
            ),
        ],
        "smtpd.mx, smtpd.submission or smtpd.submissions",
    )
    .await?;
    facteur_daemon::accept::ready(ctx.tls.clone(), &cfg.tls)?;
    serve(ctx, listeners, facteur_daemon::shutdown_signal()).await
}

/// Serves the listeners until `shutdown` resolves.
pub async fn serve(
    ctx: Arc<Context>,
    listeners: Vec<(Mode, TcpListener)>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let limit = Arc::new(Semaphore::new(ctx.cfg.max_connections as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (mode, l) in listeners {
        info!(listen = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(), listener = mode.as_str(), "facteur-smtpd listening");
        let ctx = Arc::clone(&ctx);
        let limit = Arc::clone(&limit);
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let mut sessions = tokio::task::JoinSet::new();
            loop {
                let accepted = tokio::select! {
                    a = l.accept() => a,
                    _ = stop.changed() => break,
                };
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let ctx = Arc::clone(&ctx);
                let stop = stop.clone();
                let permit = Arc::clone(&limit).try_acquire_owned();
                sessions.spawn(async move {
                    let Ok(_permit) = permit else {
                        refuse(stream, "Too many connections, try again later").await;
                        return;
                    };
                    let Some(_slot) = Rates::connect(&ctx, peer.ip()) else {
                        info!(peer = %peer.ip(), "too many connections from this address");
                        refuse(stream, "Too many connections from your address").await;
                        return;
                    };
                    handle(ctx, mode, stream, peer, stop).await;
                });
                while sessions.try_join_next().is_some() {}
            }
            drop(l);
            let _ = tokio::time::timeout(Duration::from_secs(30), async {
                while sessions.join_next().await.is_some() {}
            })
            .await;
        });
    }
    shutdown.await;
    info!("facteur-smtpd shutting down");
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            error!(error = %e, "listener task failed");
        }
    }
    Ok(())
}

async fn refuse(mut stream: TcpStream, why: &str) {
    let r = facteur_smtp_codec::Reply::new(421, (4, 7, 0), why);
    let _ = stream.write_all(&r.to_bytes()).await;
}

async fn handle(
    ctx: Arc<Context>,
    mode: Mode,
    stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    if mode == Mode::Submissions {
        let Some(tls) = ctx.tls.get() else { return };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await {
            Ok(Ok(t)) => session::serve(ctx, mode, Conn::Tls(Box::new(t)), peer.ip(), stop).await,
            Ok(Err(e)) => info!(peer = %peer.ip(), error = %e, "TLS handshake failed"),
            Err(_) => info!(peer = %peer.ip(), "TLS handshake timed out"),
        }
    } else {
        session::serve(ctx, mode, Conn::Plain(stream), peer.ip(), stop).await
    }
}
