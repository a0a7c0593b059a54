//! Each daemon's metrics endpoint (`[metrics] listen`, facteur-metrics):
//! started by [`crate::entry::main`] before the daemon runs, so every
//! daemon has one the same way. The address it got is written to
//! `run_dir/<daemon>.metrics` (`metrics 127.0.0.1:PORT`), as the
//! listeners are to `<daemon>.listen`.

use facteur_config::Config;
use tracing::{info, warn};

/// Registers `facteur_build_info` and, when configured, binds and serves
/// the endpoint. A port that cannot be bound stops the daemon (as any
/// listener's would).
pub async fn start(daemon: &'static str, cfg: &Config) -> anyhow::Result<()> {
    facteur_metrics::build_info(daemon, env!("CARGO_PKG_VERSION"), facteur_metrics::REVISION);
    let Some(addr) = cfg.metrics.address_of(daemon) else {
        return Ok(());
    };
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| anyhow::anyhow!("metrics: cannot listen on {addr}: {e}"))?;
    let local = l.local_addr()?;
    let path = cfg.paths.run_dir.join(format!("{daemon}.metrics"));
    if let Err(e) =
        facteur_util::write_atomic(&path, format!("metrics {local}\n").as_bytes(), 0o644)
    {
        warn!(path = %path.display(), error = %e, "cannot write the metrics address");
    }
    info!(listen = %local, "metrics endpoint");
    tokio::spawn(facteur_metrics::serve(l, facteur_metrics::global()));
    Ok(())
}

/// The accept loop's series of one listener, registered at zero.
pub struct ListenerMetrics {
    pub accepted: std::sync::Arc<facteur_metrics::Series>,
    pub active: std::sync::Arc<facteur_metrics::Series>,
    refused: std::sync::Arc<facteur_metrics::Family>,
    name: &'static str,
}

/// Why the accept loop refused a connection.
pub const REFUSALS: &[&str] = &["too_many", "crowded", "per_address"];

impl ListenerMetrics {
    pub fn new(listener: &'static str) -> ListenerMetrics {
        let r = facteur_metrics::global();
        let accepted = r
            .counter(
                "facteur_connections_total",
                "Connections accepted, per listener.",
                &["listener"],
            )
            .with(&[listener]);
        let active = r
            .gauge(
                "facteur_sessions_active",
                "Sessions in progress, per listener.",
                &["listener"],
            )
            .with(&[listener]);
        let refused = r.counter(
            "facteur_connections_refused_total",
            "Connections refused before the session (connection limits), per listener and reason.",
            &["listener", "reason"],
        );
        for why in REFUSALS {
            refused.register(&[listener, why]);
        }
        tls_versions();
        ListenerMetrics {
            accepted,
            active,
            refused,
            name: listener,
        }
    }

    pub fn refused(&self, reason: &str) {
        self.refused.inc(&[self.name, reason]);
    }
}

fn tls_family() -> std::sync::Arc<facteur_metrics::Family> {
    facteur_metrics::global().counter(
        "facteur_tls_sessions_total",
        "TLS handshakes completed (implicit TLS and STARTTLS), per protocol version.",
        &["version"],
    )
}

fn tls_versions() {
    let f = tls_family();
    for v in ["TLSv1.2", "TLSv1.3"] {
        f.register(&[v]);
    }
}

/// A TLS handshake completed with `version` ("TLSv1.3").
pub fn tls_session(version: &str) {
    tls_family().inc(&[version]);
}

/// A session in progress: counted in `facteur_sessions_active` until
/// dropped.
pub struct Active(std::sync::Arc<facteur_metrics::Series>);

impl Active {
    pub fn new(s: &std::sync::Arc<facteur_metrics::Series>) -> Active {
        s.shift(1);
        Active(std::sync::Arc::clone(s))
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.shift(-1);
    }
}
