//! Writing one copy of the message per recipient into the store, and the
//! per-recipient replies (RFC 2033 §4.2).
//!
//! Each copy starts with `Return-Path:` (the envelope sender) and
//! `Delivered-To:` (the mailbox it was delivered to), then the message byte
//! for byte; the store converts CRLF to LF on disk, reversibly. The store
//! returns only after the file is fsynced and renamed into `new/`, and only
//! then is the reply produced: a 250 is never ahead of the disk.
//!
//! Copies are written concurrently (one blocking task per recipient); the
//! session sends the replies in recipient order, each as soon as it is ready.

use crate::Context;
use facteur_config::OverQuota;
use facteur_daemon::body::Body;
use facteur_directory::UserRecord;
use facteur_smtp_codec::Reply;
use facteur_store::{Quota, StoreError};
use std::sync::Arc;
use std::time::Instant;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// A mailbox a recipient resolved to.
#[derive(Debug, Clone)]
pub struct LocalTarget {
    pub user: UserRecord,
    /// What `Delivered-To:` says.
    pub delivered_to: String,
}

/// An accepted recipient (one RCPT), with the mailboxes it reaches.
#[derive(Debug, Clone)]
pub struct Rcpt {
    pub address: String,
    pub targets: Vec<LocalTarget>,
}

/// Starts the deliveries; the handles are in recipient order.
pub fn start(
    ctx: &Arc<Context>,
    queue_id: &str,
    sender: &str,
    rcpts: &[Rcpt],
    body: &Arc<Body>,
) -> Vec<JoinHandle<Reply>> {
    rcpts
        .iter()
        .map(|r| {
            let ctx = Arc::clone(ctx);
            let (queue_id, sender, rcpt, body) = (
                queue_id.to_string(),
                sender.to_string(),
                r.clone(),
                Arc::clone(body),
            );
            tokio::task::spawn_blocking(move || {
                deliver_rcpt(&ctx, &queue_id, &sender, &rcpt, &body)
            })
        })
        .collect()
}

/// Delivers to every mailbox of one recipient. The reply is 250 when all
/// copies are on disk, else the first failure (a temporary one before a
/// permanent one, so that the sender retries rather than bounces).
fn deliver_rcpt(
    ctx: &Context,
    queue_id: &str,
    sender: &str,
    rcpt: &Rcpt,
    body: &Arc<Body>,
) -> Reply {
    let mut failure: Option<Reply> = None;
    for t in &rcpt.targets {
        let started = Instant::now();
        let prefix = format!(
            "Return-Path: <{sender}>\r\nDelivered-To: {}\r\n",
            t.delivered_to
        )
        .into_bytes();
        let mut reader = body.reader(prefix);
        let quota = Quota {
            bytes: t.user.quota_bytes,
            messages: t.user.quota_messages,
        };
        let result = ctx.store.deliver(&t.user.address, None, &mut reader, quota);
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok(d) => {
                info!(queue_id, from = %sender, to = %rcpt.address, mailbox = %t.user.address, file = %d.path.display(), size = d.size, duration_ms = ms, result = "250 2.0.0 delivered", "delivered");
            }
            Err(e) => {
                let reply = store_error_reply(ctx, &e, &rcpt.address);
                warn!(queue_id, from = %sender, to = %rcpt.address, mailbox = %t.user.address, size = body.len(), duration_ms = ms, result = %reply, error = %e, "not delivered");
                failure = match failure {
                    Some(f) if f.is_transient() || !reply.is_transient() => Some(f),
                    _ => Some(reply),
                };
            }
        }
    }
    failure.unwrap_or_else(|| {
        Reply::new(
            250,
            (2, 0, 0),
            format!("<{}> Saved as {queue_id}", rcpt.address),
        )
    })
}

/// Maps a store failure to the reply the sender should act on.
pub fn store_error_reply(ctx: &Context, e: &StoreError, rcpt: &str) -> Reply {
    match e {
        StoreError::OverQuota => match *ctx.over_quota.get() {
            OverQuota::Reject => {
                Reply::new(552, (5, 2, 2), format!("<{rcpt}>: mailbox is over quota"))
            }
            OverQuota::Defer => Reply::new(
                452,
                (4, 2, 2),
                format!("<{rcpt}>: mailbox is over quota, try again later"),
            ),
        },
        StoreError::InvalidUser(_) => {
            Reply::new(550, (5, 1, 1), format!("<{rcpt}>: mailbox unavailable"))
        }
        StoreError::Io(io) if io.raw_os_error() == Some(28) => {
            // ENOSPC
            Reply::new(
                452,
                (4, 3, 1),
                "Insufficient system storage, try again later",
            )
        }
        StoreError::Io(io) if io.raw_os_error() == Some(122) => {
            // EDQUOT: the file system's own quota
            Reply::new(
                452,
                (4, 2, 2),
                format!("<{rcpt}>: mailbox is over quota, try again later"),
            )
        }
        _ => Reply::new(451, (4, 3, 0), "Local error in delivery, try again later"),
    }
}
