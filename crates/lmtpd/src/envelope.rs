//! RCPT of an LMTP transaction: the recipient resolved through the
//! directory as the last hop must (`Hop::Deliver`: an address naming a user
//! is that mailbox; others go through aliases, details, catch-all) before
//! answering, so an unknown address is refused at once with
//! `550 5.1.1` (RFC 2033 §4.2: the reply to RCPT says whether this
//! recipient can be delivered to).

use crate::Context;
use crate::deliver::LocalTarget;
use facteur_directory::{Hop, ResolveError, Target};
use facteur_mail::Address;
use facteur_smtp_codec::Reply;
use std::sync::Arc;

/// The mailboxes `a` reaches, as the last hop resolves it.
fn resolve(ctx: &Context, a: &Address) -> Result<Vec<Target>, ResolveError> {
    facteur_directory::resolve_for(ctx.directory.as_ref(), a, &ctx.delimiters, Hop::Deliver)
}

/// RCPT TO: resolves the recipient to the mailboxes it reaches, or refuses
/// it. `queue_id` is the sending qmgr's, for the logs ("" if none).
pub async fn rcpt(
    ctx: &Arc<Context>,
    queue_id: &str,
    address: &str,
) -> Result<(Vec<LocalTarget>, Reply), Reply> {
    let addr = Address::parse(address)
        .map_err(|e| Reply::new(501, (5, 1, 3), format!("Bad recipient address: {e}")))?;
    // On this thread when no lookup has to wait, else on a blocking one.
    let quick = facteur_directory::without_waiting(|| resolve(ctx, &addr));
    let resolved = match quick {
        Some(r) => Ok(r),
        None => {
            let (c, a) = (Arc::clone(ctx), addr.clone());
            tokio::task::spawn_blocking(move || resolve(&c, &a)).await
        }
    };
    let shown = addr.to_string();
    let targets = match resolved {
        Err(_) => {
            return Err(Reply::new(
                451,
                (4, 3, 0),
                "Internal error resolving the recipient",
            ));
        }
        Ok(Err(ResolveError::UnknownUser | ResolveError::NotLocal)) => {
            return Err(Reply::new(
                550,
                (5, 1, 1),
                format!("<{shown}>: no such user here"),
            ));
        }
        Ok(Err(ResolveError::Loop | ResolveError::TooDeep(_))) => {
            return Err(Reply::new(
                550,
                (5, 4, 6),
                format!("<{shown}>: alias loop or alias chain too deep"),
            ));
        }
        Ok(Err(ResolveError::Directory(e))) => {
            tracing::warn!(queue_id, rcpt = %shown, error = %e, "directory lookup failed");
            return Err(Reply::new(
                451,
                (4, 3, 0),
                "Directory temporarily unavailable, try again later",
            ));
        }
        Ok(Ok(targets)) => targets,
    };
    if targets.iter().any(|t| matches!(t, Target::External(_))) {
        return Err(Reply::new(
            550,
            (5, 3, 0),
            format!(
                "<{shown}>: forwards to an external address; lmtpd delivers locally only, send it through the queue manager"
            ),
        ));
    }
    let targets: Vec<LocalTarget> = targets
        .into_iter()
        .filter_map(|t| match t {
            Target::Local { user, detail } => {
                let delivered_to = match &detail {
                    Some(d) => user
                        .address
                        .split_once('@')
                        .map(|(l, dom)| format!("{l}{}{d}@{dom}", delimiter_in(&addr, d)))
                        .unwrap_or_else(|| user.address.clone()),
                    None => user.address.clone(),
                };
                Some(LocalTarget { user, delivered_to })
            }
            Target::External(_) => None,
        })
        .collect();
    if targets.is_empty() {
        return Err(Reply::new(
            550,
            (5, 1, 1),
            format!("<{shown}>: no such user here"),
        ));
    }
    Ok((targets, Reply::new(250, (2, 1, 5), format!("<{shown}> OK"))))
}

/// The delimiter character that preceded `detail` in the recipient's local
/// part (so `Delivered-To:` shows the address as it was written).
fn delimiter_in(addr: &Address, detail: &str) -> char {
    let local = addr.local();
    local
        .len()
        .checked_sub(detail.len() + 1)
        .and_then(|i| local[i..].chars().next())
        .unwrap_or('+')
}
