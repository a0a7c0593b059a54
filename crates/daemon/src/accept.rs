//! The accept loop every TCP daemon shares (pop3d, imapd): listeners, the
//! total and per-address connection limits, the implicit-TLS handshake, and
//! a clean shutdown.
//!
//! Offers [`bind_listeners`] (configured addresses, or the sockets systemd
//! passed under the listener's name) and [`serve`]. A client over a limit is
//! sent the daemon's refusal line and closed; on TLS listeners the handshake
//! runs (30 s at most) before the session sees the stream. At shutdown the
//! listeners close, sessions see the stop signal (and end at their next
//! idle point), and `serve` waits up to 30 s for them.

use crate::conn::Conn;
use crate::limits::Limits;
use crate::{systemd, tls::TlsState};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tracing::{error, info, warn};

/// A listener and whether it speaks implicit TLS.
pub type Listeners = Vec<(bool, TcpListener)>;

/// Binds `(tag, systemd name, addresses)` groups (the tag says what the
/// listener is: implicit TLS or not, MX or submission). Sockets passed by
/// socket activation under a group's name replace its addresses. With no
/// listener at all it fails, naming the config `keys` to set.
pub async fn bind_listeners<T: Copy>(
    groups: &[(T, &str, &[SocketAddr])],
    keys: &str,
) -> anyhow::Result<Vec<(T, TcpListener)>> {
    let mut listeners = Vec::new();
    for &(tag, name, addrs) in groups {
        let inherited = systemd::inherited_tcp(name)?;
        if !inherited.is_empty() {
            for l in inherited {
                l.set_nonblocking(true)?;
                listeners.push((tag, TcpListener::from_std(l)?));
            }
            continue;
        }
        for a in addrs {
            let l = TcpListener::bind(a)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {a}: {e}"))?;
            listeners.push((tag, l));
        }
    }
    for name in systemd::unclaimed() {
        warn!(
            name,
            "ignoring a socket passed by the service manager under an unknown name"
        );
    }
    if listeners.is_empty() {
        anyhow::bail!("no listener configured: set {keys}");
    }
    Ok(listeners)
}

/// The daemon is about to serve: the certificate is reloaded on every
/// SIGHUP from now on, and systemd hears that we are ready.
pub fn ready(tls: TlsState, cfg: &facteur_config::Tls) -> std::io::Result<()> {
    reload_tls_on_hangup(tls, cfg.cert.clone(), cfg.key.clone())?;
    systemd::ready();
    Ok(())
}

/// Limits and words for [`serve`].
#[derive(Clone)]
pub struct Policy {
    /// The daemon's name, for logs.
    pub daemon: &'static str,
    pub max_connections: u32,
    pub max_connections_per_ip: u32,
    pub limits: Arc<Limits>,
    pub tls: TlsState,
    /// The line sent to a client refused for load (`-ERR [SYS/TEMP] ...`,
    /// `* BYE ...`); gets the reason appended, then CRLF.
    pub refusal: fn(&str) -> Vec<u8>,
}

/// Serves `listeners` until `shutdown` resolves; `session` runs each
/// accepted connection (its TLS already up on implicit-TLS listeners).
pub async fn serve<F, Fut>(
    policy: Policy,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
    session: F,
) -> anyhow::Result<()>
where
    F: Fn(Conn<TcpStream>, SocketAddr, watch::Receiver<bool>) -> Fut
        + Clone
        + Send
        + Sync
        + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(policy.max_connections as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for (implicit_tls, l) in listeners {
        info!(
            listen = %l.local_addr().map(|a| a.to_string()).unwrap_or_default(),
            tls = implicit_tls,
            "{} listening", policy.daemon
        );
        let policy = policy.clone();
        let limit = Arc::clone(&limit);
        let mut stop = stop_rx.clone();
        let session = session.clone();
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
                let policy = policy.clone();
                let stop = stop.clone();
                let session = session.clone();
                let permit = Arc::clone(&limit).try_acquire_owned();
                sessions.spawn(async move {
                    let Ok(_permit) = permit else {
                        refuse(stream, &policy, "Too many connections, try again later").await;
                        return;
                    };
                    let Some(_slot) = policy
                        .limits
                        .connect(peer.ip(), policy.max_connections_per_ip)
                    else {
                        info!(peer = %peer.ip(), "too many connections from this address");
                        refuse(stream, &policy, "Too many connections from your address").await;
                        return;
                    };
                    if !implicit_tls {
                        return session(Conn::Plain(stream), peer, stop).await;
                    }
                    let Some(tls) = policy.tls.get() else { return };
                    let acceptor = tokio_rustls::TlsAcceptor::from(tls);
                    match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(t)) => session(Conn::Tls(Box::new(t)), peer, stop).await,
                        Ok(Err(e)) => info!(peer = %peer.ip(), error = %e, "TLS handshake failed"),
                        Err(_) => info!(peer = %peer.ip(), "TLS handshake timed out"),
                    }
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
    info!("{} shutting down", policy.daemon);
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
async fn refuse(mut stream: TcpStream, policy: &Policy, why: &str) {
    let _ = stream.write_all(&(policy.refusal)(why)).await;
}

/// Reloads the TLS certificate into `tls` on every SIGHUP, keeping the
/// previous one when the new files do not load.
pub fn reload_tls_on_hangup(
    tls: TlsState,
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
) -> std::io::Result<()> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            match crate::tls::load(&cert, &key) {
                Ok(t) => {
                    tls.set(Some(t));
                    info!("TLS certificate reloaded");
                }
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "TLS reload failed; keeping the previous certificate")
                }
            }
        }
    });
    Ok(())
}
