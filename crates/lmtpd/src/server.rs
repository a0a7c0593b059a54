//! The listeners of facteur-lmtpd: the Unix socket (or the one systemd
//! passed as `lmtp`) and the TCP addresses of `[lmtpd] listen`, served
//! through the shared accept loop (facteur_daemon::accept: the connection
//! limit, a clean shutdown that lets sessions finish their transaction for
//! up to 30 s; the socket file is removed at exit unless systemd owns it).
//! Each connection is a session of the SMTP core, LMTP dialect, with the
//! [`Lmtp`] handler. SIGHUP reads the configuration again: `[lmtpd]`'s
//! limits and `over_quota` apply to the sessions that start after it.

use crate::Context;
use crate::handler::Lmtp;
use facteur_config::Config;
use facteur_daemon::{Listener, accept, systemd};
use facteur_smtp_codec::Reply;
use std::sync::Arc;
use tracing::warn;

/// What a reload cannot change: the listeners and the connection limit.
const FIXED: &[facteur_daemon::reload::Fixed] = &[
    ("lmtpd.socket", |c| format!("{:?}", c.lmtp_socket())),
    ("lmtpd.socket_mode", |c| c.lmtp_socket_mode().to_string()),
    ("lmtpd.listen", |c| format!("{:?}", c.lmtpd.listen)),
    ("lmtpd.max_connections", |c| {
        c.lmtpd.max_connections.to_string()
    }),
];

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
    let live = Arc::clone(&ctx);
    facteur_daemon::reload::on_hangup("facteur-lmtpd", cfg.clone(), None, FIXED, move |new| {
        live.reload(new)
    })?;
    systemd::ready();
    serve(
        ctx,
        listeners,
        cfg.lmtpd.max_connections,
        Some(cfg.paths.run_dir.clone()),
        facteur_daemon::shutdown_signal(),
    )
    .await
}

/// Serves `listeners` until `shutdown` resolves; with a `run_dir`, the
/// TCP addresses are published there first ([`accept::publish`]).
pub async fn serve(
    ctx: Arc<Context>,
    listeners: Vec<Listener>,
    max_connections: u32,
    run_dir: Option<std::path::PathBuf>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let policy = accept::Policy {
        daemon: "facteur-lmtpd",
        max_connections,
        // LMTP clients are MTAs on this machine or a trusted network: the
        // total is the only limit.
        max_connections_per_ip: max_connections,
        limits: Arc::new(facteur_daemon::limits::Limits::default()),
        tls: facteur_daemon::tls::TlsState::default(),
        refusal: |why| Reply::new(421, (4, 3, 2), why).to_bytes(),
    };
    let listeners: Vec<_> = listeners
        .into_iter()
        .map(|listener| accept::Bound {
            tag: (),
            name: "lmtp",
            tls: false,
            listener,
        })
        .collect();
    if let Some(run_dir) = &run_dir {
        accept::publish(run_dir, "facteur-lmtpd", &listeners);
    }
    crate::metrics::register();
    let handler = Arc::new(Lmtp::new(ctx));
    accept::serve(policy, listeners, shutdown, move |(), conn, peer, stop| {
        let h = Arc::clone(&handler);
        async move { facteur_smtp_server::serve(h, conn, peer, "lmtp", stop).await }
    })
    .await
}
