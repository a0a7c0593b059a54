//! Listeners for facteur-pop3d: binds `pop3d.listen` (clear text with STLS)
//! and `pop3d.listen_tls` (implicit TLS), or takes the sockets systemd
//! passed under the names `pop3` and `pop3s`, and serves them through the
//! shared accept loop (facteur_daemon::accept: connection limits, a refused
//! client gets `-ERR [SYS/TEMP]`, implicit TLS, clean shutdown in which
//! sessions are told and nothing is deleted for them). The certificate is
//! reloaded on SIGHUP.

use crate::{Context, session};
use facteur_config::Config;
use facteur_daemon::accept;
use facteur_pop3_proto::{RespCode, Response};
use std::sync::Arc;

/// A reload (SIGHUP) takes a new TLS certificate; `[pop3d]` is read at
/// start only.
const FIXED: &[facteur_daemon::reload::Fixed] = &[("pop3d", |c| format!("{:?}", c.pop3d))];

/// Runs facteur-pop3d until a shutdown signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&cfg)?);
    let listeners = accept::bind_listeners(
        &[
            ((), false, "pop3", &cfg.pop3d.listen),
            ((), true, "pop3s", &cfg.pop3d.listen_tls),
        ],
        "pop3d.listen or pop3d.listen_tls",
    )
    .await?;
    accept::publish(&cfg.paths.run_dir, "facteur-pop3d", &listeners);
    accept::ready("facteur-pop3d", &cfg, ctx.tls.clone(), FIXED, |_| {})?;
    serve(ctx, listeners, facteur_daemon::shutdown_signal()).await
}

/// Serves the listeners until `shutdown` resolves.
pub async fn serve(
    ctx: Arc<Context>,
    listeners: Vec<accept::Bound<()>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let policy = accept::Policy {
        daemon: "facteur-pop3d",
        max_connections: ctx.cfg.max_connections,
        max_connections_per_ip: ctx.cfg.max_connections_per_ip,
        limits: Arc::clone(&ctx.limits),
        tls: ctx.tls.clone(),
        refusal: |why| Response::err_code(RespCode::SysTemp, why).to_bytes(),
    };
    accept::serve(policy, listeners, shutdown, move |(), conn, peer, stop| {
        let ctx = Arc::clone(&ctx);
        let ip = peer.ip().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED.into());
        async move { session::serve(ctx, conn, ip, stop).await }
    })
    .await
}
