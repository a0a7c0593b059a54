//! Listeners for facteur-imapd: `imapd.listen` (clear text with STARTTLS)
//! and `imapd.listen_tls` (implicit TLS), or the sockets systemd passed
//! under the names `imap` and `imaps`, served by facteur-access (connection
//! limits, implicit TLS, the certificate reloaded on SIGHUP, clean
//! shutdown). A client refused for load gets `* BYE [UNAVAILABLE]`.

use crate::{Context, session};
use facteur_access::Daemon;
use facteur_config::Config;
use std::sync::Arc;

/// Runs facteur-imapd until a shutdown signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&cfg)?);
    facteur_access::metrics::register(crate::session::COMMAND_NAMES, &["ok", "no", "bad"]);
    let refusal = |why: &str| format!("* BYE [UNAVAILABLE] {why}\r\n").into_bytes();
    let apply = |ctx: &Context, new: &Config| ctx.cfg.set(new.imapd.clone());
    facteur_access::run(Daemon::Imapd, &cfg, ctx, refusal, apply, session::serve).await
}
