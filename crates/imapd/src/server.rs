//! Listeners for facteur-imapd: binds `imapd.listen` (clear text with
//! STARTTLS) and `imapd.listen_tls` (implicit TLS), or takes the sockets
//! systemd passed under the names `imap` and `imaps`, and serves them through
//! the shared accept loop (facteur_daemon::accept: connection limits — a
//! refused client gets `* BYE` —, implicit TLS, clean shutdown). The
//! certificate is reloaded on SIGHUP.

use crate::{Context, session};
use facteur_config::Config;
use facteur_daemon::accept;
use std::sync::Arc;

/// A reload (SIGHUP) takes a new TLS certificate; `[imapd]` is read at
/// start only.
const FIXED: &[facteur_daemon::reload::Fixed] = &[("imapd", |c| format!("{:?}", c.imapd))];

/// Runs facteur-imapd until a shutdown signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&cfg)?);
    let listeners = accept::bind_listeners(
        &[
            ((), false, "imap", &cfg.imapd.listen),
            ((), true, "imaps", &cfg.imapd.listen_tls),
        ],
        "imapd.listen or imapd.listen_tls",
    )
    .await?;
    accept::publish(&cfg.paths.run_dir, "facteur-imapd", &listeners);
    accept::ready("facteur-imapd", &cfg, ctx.tls.clone(), FIXED, |_| {})?;
    serve(ctx, listeners, facteur_daemon::shutdown_signal()).await
}

/// Serves the listeners until `shutdown` resolves.
pub async fn serve(
    ctx: Arc<Context>,
    listeners: Vec<accept::Bound<()>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let policy = accept::Policy {
        daemon: "facteur-imapd",
        max_connections: ctx.cfg.max_connections,
        max_connections_per_ip: ctx.cfg.max_connections_per_ip,
        limits: Arc::clone(&ctx.limits),
        tls: ctx.tls.clone(),
        refusal: |why| format!("* BYE [UNAVAILABLE] {why}\r\n").into_bytes(),
    };
    accept::serve(policy, listeners, shutdown, move |(), conn, peer, stop| {
        let ctx = Arc::clone(&ctx);
        let ip = peer.ip().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        async move { session::serve(ctx, conn, ip, stop).await }
    })
    .await
}
