//! The accept loop every daemon shares (smtpd, lmtpd, imapd, pop3d):
//! listeners on TCP and Unix sockets, the total and per-address connection
//! limits, the implicit-TLS handshake, and a clean shutdown.
//!
//! Offers [`bind_listeners`] (configured addresses, or the sockets systemd
//! passed under the listener's name) and [`serve`]. A client over a limit is
//! sent the daemon's refusal line and closed; on TLS listeners the handshake
//! runs (30 s at most) before the session sees the stream. At shutdown the
//! listeners close, sessions see the stop signal (and end at their next
//! idle point), and `serve` waits up to 30 s for them. Per-address limits
//! apply to TCP clients; a Unix socket's clients are local processes,
//! counted only against the total.
//!
//! A share of the slots is kept for light users: once fewer than a tenth
//! of the slots are free ([`reserve`]), an address that already holds
//! [`HEAVY`] connections or more is refused, so a few addresses that open
//! all they may (slow clients, a flood) cannot fill the server: a client
//! from anywhere else still gets in.

use crate::conn::Conn;
use crate::limits::Limits;
use crate::{Listener, Peer, Stream, systemd, tls::TlsState};
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::{Semaphore, watch};
use tracing::{error, info, warn};

/// A bound listener: what it is for (`tag`, the daemon's own type), its
/// name (the one systemd passes its sockets under: `mx`, `imaps`, ...) and
/// whether it speaks implicit TLS.
#[derive(Debug)]
pub struct Bound<T> {
    pub tag: T,
    pub name: &'static str,
    pub tls: bool,
    pub listener: Listener,
}

/// What [`bind_listeners`] binds: a tag, implicit TLS or not, the name
/// systemd passes its sockets under, and the configured addresses.
pub type Group<'a, T> = (T, bool, &'static str, &'a [SocketAddr]);

/// Writes `run_dir/<daemon>.listen`: one line per TCP listener, its name
/// and the address it listens on (`mx 127.0.0.1:2525`). A configured port
/// 0 asks the system for a free port; this file says which it gave (tests
/// and `facteurctl` read it). Written atomically; a failure is logged, not
/// fatal.
pub fn publish<T>(run_dir: &Path, daemon: &str, listeners: &[Bound<T>]) {
    let text: String = listeners
        .iter()
        .filter_map(|b| b.listener.local_addr().map(|a| format!("{} {a}\n", b.name)))
        .collect();
    let path = run_dir.join(format!("{daemon}.listen"));
    if let Err(e) = facteur_util::write_atomic(&path, text.as_bytes(), 0o644) {
        warn!(path = %path.display(), error = %e, "cannot write the list of listeners");
    }
}

/// Binds the groups. Sockets passed by socket activation under a group's
/// name replace its addresses. With no listener at all it fails, naming the
/// config `keys` to set.
pub async fn bind_listeners<T: Copy>(
    groups: &[Group<'_, T>],
    keys: &str,
) -> anyhow::Result<Vec<Bound<T>>> {
    let mut listeners = Vec::new();
    for &(tag, tls, name, addrs) in groups {
        let inherited = systemd::inherited_tcp(name)?;
        if !inherited.is_empty() {
            for l in inherited {
                listeners.push(Bound {
                    tag,
                    name,
                    tls,
                    listener: Listener::from_inherited_tcp(l)?,
                });
            }
            continue;
        }
        for a in addrs {
            let listener = Listener::bind_tcp(*a)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen on {a}: {e}"))?;
            listeners.push(Bound {
                tag,
                name,
                tls,
                listener,
            });
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

/// The daemon is about to serve: the configuration (with the TLS
/// certificate) is reloaded on every SIGHUP from now on
/// ([`crate::reload::on_hangup`]: `apply` takes what may change, `fixed`
/// names what needs a restart), and systemd hears that we are ready.
pub fn ready<F>(
    daemon: &'static str,
    cfg: &facteur_config::Config,
    tls: TlsState,
    fixed: &'static [crate::reload::Fixed],
    apply: F,
) -> std::io::Result<()>
where
    F: Fn(&facteur_config::Config) + Send + Sync + 'static,
{
    crate::reload::on_hangup(daemon, cfg.clone(), Some(tls), fixed, apply)?;
    systemd::ready();
    Ok(())
}

/// Connections an address holds before it counts as heavy.
pub const HEAVY: u32 = 2;

/// Slots kept for light users out of `max`: a tenth (none below 10).
pub fn reserve(max: u32) -> usize {
    (max / 10) as usize
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
/// accepted connection (its TLS already up on implicit-TLS listeners) with
/// its listener's tag.
pub async fn serve<T, F, Fut>(
    policy: Policy,
    listeners: Vec<Bound<T>>,
    shutdown: impl Future<Output = ()>,
    session: F,
) -> anyhow::Result<()>
where
    T: Copy + Send + Sync + 'static,
    F: Fn(T, Conn<Stream>, Peer, watch::Receiver<bool>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let limit = Arc::new(Semaphore::new(policy.max_connections as usize));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for Bound {
        tag,
        name,
        tls: implicit_tls,
        listener: l,
    } in listeners
    {
        let counted = Arc::new(crate::metrics::ListenerMetrics::new(name));
        info!(
            listen = %l.describe(),
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
                counted.accepted.add(1);
                let counted = Arc::clone(&counted);
                let policy = policy.clone();
                let stop = stop.clone();
                let session = session.clone();
                let permit = Arc::clone(&limit).try_acquire_owned();
                let crowded = limit.available_permits() < reserve(policy.max_connections);
                sessions.spawn(async move {
                    let Ok(_permit) = permit else {
                        counted.refused("too_many");
                        refuse(stream, &policy, "Too many connections, try again later").await;
                        return;
                    };
                    if let Some(ip) = peer.ip()
                        && crowded
                        && policy.limits.connections(ip) >= HEAVY
                    {
                        info!(peer = %ip, "server crowded: the slots left are for other addresses");
                        counted.refused("crowded");
                        refuse(stream, &policy, "Too many connections, try again later").await;
                        return;
                    }
                    let _slot = match peer.ip() {
                        Some(ip) => {
                            match policy.limits.connect(ip, policy.max_connections_per_ip) {
                                Some(slot) => Some(slot),
                                None => {
                                    info!(peer = %ip, "too many connections from this address");
                                    counted.refused("per_address");
                                    refuse(
                                        stream,
                                        &policy,
                                        "Too many connections from your address",
                                    )
                                    .await;
                                    return;
                                }
                            }
                        }
                        None => None,
                    };
                    let _active = crate::metrics::Active::new(&counted.active);
                    if !implicit_tls {
                        return session(tag, Conn::Plain(stream), peer, stop).await;
                    }
                    // Boxed, and over before the session starts: a
                    // connection's task is sized for its largest state all
                    // its life, and a handshake's (or a TLS stream held
                    // across the session's await) is kilobytes.
                    let Some(conn) = Box::pin(handshake(&policy, stream, &peer)).await else {
                        return;
                    };
                    session(tag, conn, peer, stop).await
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

/// The TLS handshake of an implicit-TLS connection, within 30 seconds;
/// None (logged) when it fails.
async fn handshake(policy: &Policy, stream: Stream, peer: &Peer) -> Option<Conn<Stream>> {
    let acceptor = tokio_rustls::TlsAcceptor::from(policy.tls.get()?);
    match tokio::time::timeout(Duration::from_secs(30), acceptor.accept(stream)).await {
        Ok(Ok(t)) => {
            let conn = Conn::Tls(Box::new(t));
            crate::metrics::tls_session(conn.tls_version().unwrap_or("other"));
            Some(conn)
        }
        Ok(Err(e)) => {
            info!(peer = %peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            info!(peer = %peer, "TLS handshake timed out");
            None
        }
    }
}

/// Refuses a connection in clear text. On a TLS listener the client will
/// not understand it, but it closes the connection either way.
async fn refuse(mut stream: Stream, policy: &Policy, why: &str) {
    let _ = stream.write_all(&(policy.refusal)(why)).await;
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// Connects from `src` and reads the first line the server sends.
    async fn first_line(addr: SocketAddr, src: &str) -> (tokio::net::TcpStream, String) {
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind(format!("{src}:0").parse().unwrap()).unwrap();
        let mut s = sock.connect(addr).await.unwrap();
        let mut buf = vec![0u8; 200];
        let n = s.read(&mut buf).await.unwrap();
        (s, String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    #[tokio::test]
    async fn heavy_addresses_cannot_take_the_last_slots() {
        let listener = Listener::bind_tcp("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let policy = Policy {
            daemon: "test",
            max_connections: 10,
            max_connections_per_ip: 10,
            limits: Arc::new(Limits::default()),
            tls: TlsState::default(),
            refusal: |why| format!("no {why}\r\n").into_bytes(),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(
            policy,
            vec![Bound {
                tag: (),
                name: "test",
                tls: false,
                listener,
            }],
            async {
                let _ = stop_rx.await;
            },
            |(), mut conn: Conn<Stream>, _peer, mut stop: watch::Receiver<bool>| async move {
                use tokio::io::AsyncWriteExt;
                let _ = conn.write_all(b"hi\r\n").await;
                let mut buf = [0u8; 16];
                tokio::select! {
                    _ = conn.read(&mut buf) => {}
                    _ = stop.changed() => {}
                }
            },
        ));
        // One address takes all it may but the reserved tenth.
        let mut held = Vec::new();
        for _ in 0..9 {
            let (s, l) = first_line(addr, "127.0.0.2").await;
            assert_eq!(l, "hi\r\n");
            held.push(s);
        }
        let (_s, l) = first_line(addr, "127.0.0.2").await;
        assert!(l.starts_with("no "), "{l:?}");
        // Another address still gets in.
        let (_t, l) = first_line(addr, "127.0.0.3").await;
        assert_eq!(l, "hi\r\n");
        drop(held);
        let _ = stop_tx.send(());
        server.await.unwrap().unwrap();
    }
}
