//! SRS as a message leaves (`[srs]`, `facteur_mail::srs`): a stranger's
//! message that an alias forwards to another domain leaves with an
//! envelope sender of ours, so the destination's SPF check sees this server
//! sending for its own domain (the original sender's SPF record does not
//! list us), and a bounce comes back to us; `resolve.rs` sends it on to
//! the original sender.
//!
//! Not rewritten: our own mail ([`Context::is_ours`]: it is sent for our
//! domains, which list us), the null sender (bounces), senders in our own
//! domains, and a sender whose SRS form would be longer than a local part
//! may be (it leaves as it is; its SPF may fail at the destination).

use crate::Context;
use crate::schedule::now;
use facteur_spool::Envelope;
use std::sync::Arc;
use tracing::{info, warn};

/// The envelope to send `env` with, when its sender is rewritten.
pub async fn rewritten(ctx: &Arc<Context>, id: &str, env: &Envelope) -> Option<Envelope> {
    let srs = ctx.srs.as_ref()?;
    if env.sender.is_empty() || ctx.is_ours(env) || srs.is_ours(&env.sender) {
        return None;
    }
    let domain = env.sender.rsplit_once('@')?.1.to_ascii_lowercase();
    let c = Arc::clone(ctx);
    match tokio::task::spawn_blocking(move || c.directory.is_local_domain(&domain)).await {
        Ok(Ok(true)) => return None,
        Ok(Ok(false)) => {}
        Ok(Err(e)) => {
            warn!(queue_id = %id, error = %e, "directory unavailable: the sender's domain is taken as not ours")
        }
        Err(_) => return None,
    }
    let Some(sender) = srs.forward(&env.sender, now().div_euclid(86_400)) else {
        warn!(queue_id = %id, from = %env.sender, "sender too long to rewrite (SRS): it leaves as it is");
        return None;
    };
    info!(queue_id = %id, from = %env.sender, srs = %sender, "sender rewritten (SRS)");
    Some(Envelope {
        sender,
        ..env.clone()
    })
}
