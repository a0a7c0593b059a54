//! Listeners for facteur-managesieved: `managesieved.listen` (STARTTLS
//! offered) and `managesieved.listen_tls`, or the sockets systemd passed
//! under the names `sieve` and `sieves`, served by facteur-access. A client
//! refused for load gets `BYE (TRYLATER)`.

use crate::{Context, session};
use facteur_access::Daemon;
use facteur_config::Config;
use facteur_managesieve_proto::Response;
use std::sync::Arc;

/// Runs facteur-managesieved until a shutdown signal.
pub async fn run(cfg: Config) -> anyhow::Result<()> {
    let ctx = Arc::new(Context::from_config(&cfg)?);
    facteur_access::metrics::register(
        facteur_managesieve_proto::Command::NAMES,
        &["ok", "no", "bye"],
    );
    let refusal = |why: &str| {
        let mut out = Vec::new();
        Response::bye(why).code("TRYLATER").write_to(&mut out);
        out
    };
    let apply = |ctx: &Context, new: &Config| {
        ctx.cfg.set(new.managesieved.clone());
        ctx.sieve.set(new.sieve.clone());
    };
    facteur_access::run(
        Daemon::Managesieved,
        &cfg,
        ctx,
        refusal,
        apply,
        session::serve,
    )
    .await
}
