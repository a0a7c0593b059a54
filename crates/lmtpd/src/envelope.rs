//! RCPT of an LMTP transaction: the recipient resolved through the
//! directory (aliases, details after the recipient delimiter, catch-all)
//! before answering, so an unknown address is refused at once with
//! `550 5.1.1` (RFC 2033 §4.2: the reply to RCPT says whether this
//! recipient can be delivered to).

use crate::Context;
use crate::deliver::LocalTarget;
use facteur_directory::{ResolveError, Target};
use facteur_mail::Address;
use facteur_smtp_codec::Reply;
use std::sync::Arc;

/// RCPT TO: resolves the recipient to the mailboxes it reaches, or refuses
/// it. `queue_id` is the sending qmgr's, for the logs ("" if none).
pub async fn rcpt(
    ctx: &Arc<Context>,
    queue_id: &str,
    address: &str,
) -> Result<(Vec<LocalTarget>, Reply), Reply> {
    let addr = Address::parse(address)
        .map_err(|e| Reply::new(501, (5, 1, 3), format!("Bad recipient address: {e}")))?;
    let c = Arc::clone(ctx);
    let a = addr.clone();
    let resolved =
        tokio::task::spawn_blocking(move || resolve_final(c.directory.as_ref(), &a, &c.delimiters))
            .await;
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

/// Resolves a recipient the way the last hop must: an address that names a
/// user (with or without a detail) is that user's mailbox, whatever aliases
/// say. The sending MTA — facteur-qmgr, or Postfix with its virtual alias
/// maps — has already expanded aliases; expanding again would deliver twice
/// with "keep a copy" aliases (`alice -> alice, bob`) or refuse alice's copy
/// when the alias also forwards elsewhere. Addresses that are not users are
/// resolved through the directory (aliases, catch-all), so that an MTA that
/// does no expansion still reaches the right mailboxes.
pub fn resolve_final(
    dir: &dyn facteur_directory::Directory,
    addr: &Address,
    delimiters: &str,
) -> Result<Vec<Target>, ResolveError> {
    if let Some(user) = dir.get_user(&addr.key())? {
        return Ok(vec![Target::Local { user, detail: None }]);
    }
    let (base, detail) = addr.split_detail(delimiters);
    if detail.is_some()
        && let Some(user) = dir.get_user(&base.key())?
    {
        return Ok(vec![Target::Local { user, detail }]);
    }
    facteur_directory::resolve(dir, addr, delimiters)
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
