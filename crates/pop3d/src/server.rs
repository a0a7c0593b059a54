//! Listeners and connection limits for facteur-pop3d: binds `pop3d.listen`
//! (clear text with STLS) and `pop3d.listen_tls` (implicit TLS), or takes
//! the sockets systemd passed under the names `pop3` and `pop3s`, enforces
//! the total and per-address connection limits (a refused client gets
//! `-ERR [SYS/TEMP]`), does the TLS handshake on the TLS listeners, reloads
//! the certificate on SIGHUP, and shuts down cleanly on SIGTERM/SIGINT
//! (sessions are told, and nothing is deleted for them).

use crate::{Context, session};
use facteur_config::Config;
use facteur_daemon::conn::Conn;
use facteur_daemon::{systemd, tls};
use facteur_pop3_proto::{RespCode, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::{error, info, warn};

/// Runs facteur-pop3d until a shutdown signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&cfg)?);
    let mut listeners = Vec::new();
    for (implicit_tls, name, addrs) in [
        (false, "pop3", &cfg.pop3d.listen),
        (true, "pop3s", &cfg.pop3d.listen_tls),
    ] {
        // Socket activation: sockets the service manager passed under the
        // listener's name replace the configured addresses of that listener.
        let inherited = systemd::inherited_tcp(name)?;
        if !inherited.is_empty() {
            for l in inherited {
                l.set_nonblocking(true)?;
                listeners.push((implicit_tls, TcpListener::from_std(l)?));
            }
            continue;
        }
        for a in addrs {
            let l = TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {a}: {e}"))?;
            listeners.push((implicit_tls, l));
        }
    }
    for name in systemd::unclaimed() {
        warn!(
            name,
            "ignoring a socket passed by the service manager under an unknown name"
        );
    }
    if listeners.is_empty() {
        anyhow::bail!("no listener configured: set pop3d.listen or pop3d.listen_tls");
    }
    {
        let ctx = Arc::clone(&ctx);
        let (cert, key) = (cfg.tls.cert.clone(), cfg.tls.key.clone());
        let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
        tokio::spawn(async move {
            while hup.recv().await.is_some() {
                match tls::load(&cert, &key) {
                    Ok(t) => {
                        ctx.tls.set(Some(t));
                        info!("TLS certificate reloaded");
                    }
                    Err(e) => {
                        warn!(error = %format!("{e:#}"), "TLS reload failed; keeping the previous certificate")
                    }
                }
            }
        });
    }
    systemd::ready();
    serve(ctx, listeners, facteur_daemon::shutdown_signal()).await
}

/// Serves the listeners (`true`: implicit TLS) until `shutdown` resolves.
pub async fn serve(
    ctx: Arc<Context>,
    listeners: Vec<(bool, TcpListener)>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let limit = Arc::new(Semaphore::new(ctx.cfg.max_connections as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (implicit_tls, l) in listeners {
        info!(
            listen = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            tls = implicit_tls,
            "facteur-pop3d listening"
        );
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
                    let Some(_slot) = ctx
                        .limits
                        .connect(peer.ip(), ctx.cfg.max_connections_per_ip)
                    else {
                        info!(peer = %peer.ip(), "too many connections from this address");
                        refuse(stream, "Too many connections from your address").await;
                        return;
                    };
                    handle(ctx, implicit_tls, stream, peer, stop).await;
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
    info!("facteur-pop3d shutting down");
    let _ = stop_tx.send(true);
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            error!(error = %e, "listener task failed");
        }
    }
    Ok(())
}

/// Refuses a connection in clear text. On a TLS listener the client will
/// not understand it, but it closes the connection either way.
async fn refuse(mut stream: TcpStream, why: &str) {
    let r = Response::err_code(RespCode::SysTemp, why);
    let _ = stream.write_all(&r.to_bytes()).await;
}

async fn handle(
    ctx: Arc<Context>,
    implicit_tls: bool,
    stream: TcpStream,
    peer: SocketAddr,
    stop: watch::Receiver<bool>,
) {
    if implicit_tls {
        let Some(tls) = ctx.tls.get() else { return };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await {
            Ok(Ok(t)) => session::serve(ctx, Conn::Tls(Box::new(t)), peer.ip(), stop).await,
            Ok(Err(e)) => info!(peer = %peer.ip(), error = %e, "TLS handshake failed"),
            Err(_) => info!(peer = %peer.ip(), "TLS handshake timed out"),
        }
    } else {
        session::serve(ctx, Conn::Plain(stream), peer.ip(), stop).await
    }
}
