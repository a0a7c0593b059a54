//! LHLO, MAIL and RCPT: the envelope of an LMTP transaction.
//!
//! RCPT resolves the recipient through the directory (aliases, details after
//! the recipient delimiter, catch-all) before answering, so an unknown
//! address is refused at once with `550 5.1.1` (RFC 2033 §4.2: the reply to
//! RCPT says whether this recipient can be delivered to).

use crate::Context;
use crate::deliver::{LocalTarget, Rcpt};
use facteur_directory::{ResolveError, Target};
use facteur_mail::Address;
use facteur_smtp_codec::Reply;
use smtp_proto::{MailFrom, RcptTo};
use std::sync::Arc;
use std::time::Instant;

/// One transaction: from MAIL to the end of DATA / BDAT LAST (or RSET).
#[derive(Debug)]
pub struct Transaction {
    pub id: String,
    pub sender: String,
    pub rcpts: Vec<Rcpt>,
    pub started: Instant,
    /// BDAT: the chunks received so far, their line-ending check, and
    /// whether a chunk already failed (the rest of the message is skipped).
    pub bdat_body: facteur_daemon::body::Body,
    pub bdat_check: facteur_smtp_codec::LineEndingCheck,
    pub bdat_failed: bool,
}

/// The LHLO reply: the extensions we offer.
pub fn lhlo_reply(ctx: &Context) -> Reply {
    Reply::multi(
        250,
        vec![
            ctx.hostname.clone(),
            "PIPELINING".into(),
            "ENHANCEDSTATUSCODES".into(),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            format!("SIZE {}", ctx.limits.max_message_size),
            "CHUNKING".into(),
        ],
    )
}

/// MAIL FROM. Returns the new transaction or the refusal.
pub fn mail(ctx: &Context, from: &MailFrom<String>) -> Result<Transaction, Reply> {
    if !from.address.is_empty() {
        Address::parse(&from.address)
            .map_err(|e| Reply::new(501, (5, 1, 7), format!("Bad sender address: {e}")))?;
    }
    if from.size as u64 > ctx.limits.max_message_size {
        return Err(Reply::new(
            552,
            (5, 3, 4),
            "Message size exceeds fixed maximum message size",
        ));
    }
    Ok(Transaction {
        id: facteur_util::new_id(),
        sender: from.address.clone(),
        rcpts: Vec::new(),
        started: Instant::now(),
        bdat_body: Default::default(),
        bdat_check: Default::default(),
        bdat_failed: false,
    })
}

/// RCPT TO: resolves the recipient; on success adds it to the transaction.
pub async fn rcpt(ctx: &Arc<Context>, txn: &mut Transaction, to: &RcptTo<String>) -> Reply {
    if txn.rcpts.len() >= ctx.limits.max_recipients {
        return Reply::new(452, (4, 5, 3), "Too many recipients");
    }
    let addr = match Address::parse(&to.address) {
        Ok(a) => a,
        Err(e) => return Reply::new(501, (5, 1, 3), format!("Bad recipient address: {e}")),
    };
    let c = Arc::clone(ctx);
    let a = addr.clone();
    let resolved =
        tokio::task::spawn_blocking(move || resolve_final(c.directory.as_ref(), &a, &c.delimiters))
            .await;
    let shown = addr.to_string();
    match resolved {
        Err(_) => Reply::new(451, (4, 3, 0), "Internal error resolving the recipient"),
        Ok(Err(ResolveError::UnknownUser | ResolveError::NotLocal)) => {
            Reply::new(550, (5, 1, 1), format!("<{shown}>: no such user here"))
        }
        Ok(Err(ResolveError::Loop | ResolveError::TooDeep(_))) => Reply::new(
            550,
            (5, 4, 6),
            format!("<{shown}>: alias loop or alias chain too deep"),
        ),
        Ok(Err(ResolveError::Directory(e))) => {
            tracing::warn!(tx = %txn.id, rcpt = %shown, error = %e, "directory lookup failed");
            Reply::new(
                451,
                (4, 3, 0),
                "Directory temporarily unavailable, try again later",
            )
        }
        Ok(Ok(targets)) => {
            if targets.iter().any(|t| matches!(t, Target::External(_))) {
                return Reply::new(
                    550,
                    (5, 3, 0),
                    format!(
                        "<{shown}>: forwards to an external address; lmtpd delivers locally only, send it through the queue manager"
                    ),
                );
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
                return Reply::new(550, (5, 1, 1), format!("<{shown}>: no such user here"));
            }
            txn.rcpts.push(Rcpt {
                address: shown.clone(),
                targets,
            });
            Reply::new(250, (2, 1, 5), format!("<{shown}> OK"))
        }
    }
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
