//! Listeners for facteur-smtpd: binds the MX, submission and submissions
//! addresses from `[smtpd]` (or takes the sockets systemd passed under the
//! names `mx`, `submission`, `submissions`) and serves them through the
//! shared accept loop (facteur_daemon::accept: the total and per-address
//! connection limits — a refused client gets `421 4.7.0` —, the implicit
//! TLS handshake on submissions, a clean shutdown). Each connection is a
//! session of the SMTP core with the listener's [`Listener`] handler. On
//! SIGHUP the configuration is read again: `[smtpd]`'s limits and policies
//! and the TLS certificate apply to the sessions that start after it
//! (`[trust]` needs a restart).

use crate::handler::Listener;
use crate::{Context, Mode};
use facteur_config::Config;
use facteur_daemon::accept;
use facteur_smtp_codec::Reply;
use std::sync::Arc;

/// What a reload cannot change: the listeners and the connection limits
/// (the accept loop holds them), and where mail goes.
const FIXED: &[facteur_daemon::reload::Fixed] = &[
    ("smtpd.mx", |c| format!("{:?}", c.smtpd.mx)),
    ("smtpd.submission", |c| format!("{:?}", c.smtpd.submission)),
    ("smtpd.submissions", |c| {
        format!("{:?}", c.smtpd.submissions)
    }),
    ("smtpd.max_connections", |c| {
        c.smtpd.max_connections.to_string()
    }),
    ("smtpd.max_connections_per_ip", |c| {
        c.smtpd.max_connections_per_ip.to_string()
    }),
    ("qmgr.socket", |c| format!("{:?}", c.qmgr_socket())),
    // The resolver, the bounds and the policy of the checks.
    ("trust", |c| format!("{:?}", c.trust)),
];

/// Runs facteur-smtpd until a shutdown signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&cfg)?);
    // Socket activation: sockets the service manager passed under a
    // listener's name replace the configured addresses of that listener.
    let listeners = accept::bind_listeners(
        &[
            (Mode::Mx, false, Mode::Mx.as_str(), &cfg.smtpd.mx),
            (
                Mode::Submission,
                false,
                Mode::Submission.as_str(),
                &cfg.smtpd.submission,
            ),
            (
                Mode::Submissions,
                true,
                Mode::Submissions.as_str(),
                &cfg.smtpd.submissions,
            ),
        ],
        "smtpd.mx, smtpd.submission or smtpd.submissions",
    )
    .await?;
    accept::publish(&cfg.paths.run_dir, "facteur-smtpd", &listeners);
    let names: Vec<&str> = listeners.iter().map(|b| b.name).collect();
    crate::metrics::register(&ctx, &names);
    let live = Arc::clone(&ctx);
    accept::ready("facteur-smtpd", &cfg, ctx.tls.clone(), FIXED, move |new| {
        live.cfg.set(new.smtpd.clone())
    })?;
    serve(ctx, listeners, facteur_daemon::shutdown_signal()).await
}

/// Serves the listeners until `shutdown` resolves.
pub async fn serve(
    ctx: Arc<Context>,
    listeners: Vec<accept::Bound<Mode>>,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let policy = accept::Policy {
        daemon: "facteur-smtpd",
        max_connections: ctx.cfg.get().max_connections,
        max_connections_per_ip: ctx.cfg.get().max_connections_per_ip,
        limits: Arc::clone(&ctx.limits),
        tls: ctx.tls.clone(),
        refusal: |why| Reply::new(421, (4, 7, 0), why).to_bytes(),
    };
    let handlers: Vec<(Mode, Arc<Listener>)> = [Mode::Mx, Mode::Submission, Mode::Submissions]
        .into_iter()
        .map(|m| (m, Arc::new(Listener::new(Arc::clone(&ctx), m))))
        .collect();
    accept::serve(
        policy,
        listeners,
        shutdown,
        move |mode, conn, peer, stop| {
            let h = handlers
                .iter()
                .find(|(m, _)| *m == mode)
                .map(|(_, h)| Arc::clone(h));
            async move {
                if let Some(h) = h {
                    facteur_smtp_server::serve(h, conn, peer, mode.as_str(), stop).await;
                }
            }
        },
    )
    .await
}
