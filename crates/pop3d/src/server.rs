//! Listeners for facteur-pop3d: `pop3d.listen` (clear text with STLS) and
//! `pop3d.listen_tls` (implicit TLS), or the sockets systemd passed under
//! the names `pop3` and `pop3s`, served by facteur-access (connection
//! limits, implicit TLS, the certificate reloaded on SIGHUP, clean
//! shutdown in which sessions are told and nothing is deleted for them).
//! A client refused for load gets `-ERR [SYS/TEMP]`.

use crate::{Context, session};
use facteur_access::Daemon;
use facteur_config::Config;
use facteur_pop3_proto::{RespCode, Response};
use std::sync::Arc;

/// Runs facteur-pop3d until a shutdown signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&cfg)?);
    facteur_access::metrics::register(facteur_pop3_proto::Command::NAMES, &["ok", "err"]);
    let refusal = |why: &str| Response::err_code(RespCode::SysTemp, why).to_bytes();
    let apply = |ctx: &Context, new: &Config| ctx.cfg.set(new.pop3d.clone());
    facteur_access::run(Daemon::Pop3d, &cfg, ctx, refusal, apply, session::serve).await
}
