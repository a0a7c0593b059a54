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
//!
//! Junk filing: a message whose header section carries the spam mark
//! (`X-Spam: Yes`, facteur_trust::header — smtpd writes it on mail its
//! policy quarantines, rspamd writes the same) goes into the user's junk
//! folder instead of INBOX: the folder with the `\Junk` role (RFC 6154),
//! `Junk` by default, created with that role when the user has none. Only
//! the first [`MARK_SCAN`] bytes are looked at. Until Sieve exists this is
//! the only rule; a failure to make the folder delivers into INBOX (the
//! mark stays in the message) rather than failing the delivery.

use crate::Context;
use facteur_config::OverQuota;
use facteur_daemon::body::Body;
use facteur_directory::UserRecord;
use facteur_smtp_codec::Reply;
use facteur_store::{Delivered, Quota, SpecialUse, StoreError};
use std::io::Read;
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

/// Bytes of the message's start searched for the spam mark.
pub const MARK_SCAN: usize = 64 * 1024;

/// The junk folder's name when the user has none with the `\Junk` role.
pub const JUNK: &str = "Junk";

/// Whether the header section of `body` (its first [`MARK_SCAN`] bytes)
/// carries the spam mark. Reads in small steps, up to the header's end.
pub fn has_spam_mark(body: &Body) -> bool {
    let mut head = Vec::new();
    let Ok(r) = body.read_from_start() else {
        return false;
    };
    let mut r = r.take(MARK_SCAN as u64);
    let mut buf = [0u8; 4096];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                // Look for the header end only around the new bytes.
                let from = head.len().saturating_sub(3);
                head.extend_from_slice(&buf[..n]);
                if head.starts_with(b"\r\n") || memfind(&head[from..], b"\r\n\r\n") {
                    break;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    facteur_trust::header::has_spam_mark(&head)
}

fn memfind(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Delivers one copy into the user's junk folder, making it when missing
/// (see the module header); returns the copy and the folder's name.
fn deliver_junk(
    ctx: &Context,
    user: &UserRecord,
    reader: &mut dyn FnMut() -> Box<dyn Read + Send>,
    quota: Quota,
) -> Result<(Delivered, String), StoreError> {
    let address = &user.address;
    // The common case: a folder named Junk exists.
    match ctx.store.deliver(address, Some(JUNK), &mut reader(), quota) {
        Err(StoreError::NoSuchMailbox(_)) => {}
        r => return r.map(|d| (d, JUNK.to_string())),
    }
    let found = ctx
        .store
        .open_user(address, Quota::default())
        .and_then(|us| {
            let named = us
                .list_mailboxes()?
                .into_iter()
                .find(|m| m.special_use == Some(SpecialUse::Junk))
                .map(|m| m.name);
            match named {
                Some(n) => Ok(n),
                None => {
                    match us.create_mailbox(JUNK, Some(SpecialUse::Junk)) {
                        Ok(()) | Err(StoreError::MailboxExists(_)) => {}
                        Err(e) => return Err(e),
                    }
                    us.subscribe(JUNK, true)?;
                    info!(user = %address, folder = JUNK, "junk folder created");
                    Ok(JUNK.to_string())
                }
            }
        });
    match found {
        Ok(folder) => ctx
            .store
            .deliver(address, Some(&folder), &mut reader(), quota)
            .map(|d| (d, folder)),
        Err(e) => {
            warn!(user = %address, error = %e, "no junk folder: delivered into INBOX");
            ctx.store
                .deliver(address, None, &mut reader(), quota)
                .map(|d| (d, "INBOX".to_string()))
        }
    }
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
    let junk = has_spam_mark(body);
    for t in &rcpt.targets {
        let started = Instant::now();
        let prefix = format!(
            "Return-Path: <{sender}>\r\nDelivered-To: {}\r\n",
            t.delivered_to
        )
        .into_bytes();
        let quota = Quota {
            bytes: t.user.quota_bytes,
            messages: t.user.quota_messages,
        };
        let settings = ctx.sieve.get();
        let sources = crate::sieve::scripts_for(
            &ctx.store,
            &ctx.sieve_cache,
            &settings,
            &t.user.address,
            queue_id,
        );
        if !sources.is_empty() {
            let f = Filtered {
                ctx,
                queue_id,
                sender,
                rcpt,
                target: t,
                settings: &settings,
                quota,
                junk,
            };
            match f.deliver(&sources, body, prefix) {
                Ok(folders) => {
                    let ms = started.elapsed().as_millis() as u64;
                    info!(queue_id, from = %sender, to = %rcpt.address, mailbox = %t.user.address, folders = %folders.join(","), size = body.len(), duration_ms = ms, result = "250 2.0.0 delivered", "delivered (sieve)");
                }
                Err(reply) => {
                    failure = match failure {
                        Some(f) if f.is_transient() || !reply.is_transient() => Some(f),
                        _ => Some(reply),
                    };
                }
            }
            continue;
        }
        let result = if junk {
            let mut reader = || Box::new(body.reader(prefix.clone())) as Box<dyn Read + Send>;
            deliver_junk(ctx, &t.user, &mut reader, quota)
        } else {
            let mut reader = body.reader(prefix);
            ctx.store
                .deliver(&t.user.address, None, &mut reader, quota)
                .map(|d| (d, "INBOX".to_string()))
        };
        let ms = started.elapsed().as_millis() as u64;
        match result {
            Ok((d, folder)) => {
                info!(queue_id, from = %sender, to = %rcpt.address, mailbox = %t.user.address, folder = %folder, file = %d.path.display(), size = d.size, duration_ms = ms, result = "250 2.0.0 delivered", "delivered");
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

/// How much of a message the scripts read, so that memory per delivery
/// stays bounded whatever senders send: the whole message up to
/// [`SIEVE_READ_BODY`] when a script reads bodies or edits the header
/// (`body`, `editheader`), else up to [`SIEVE_READ_HEADER`] (the header is
/// all the other tests see; `size` is told the real size). Of a larger
/// message the scripts see the start; the actions store and send the whole
/// message from the body (header edits of such a message are dropped, with
/// a warning).
pub const SIEVE_READ_BODY: u64 = 4 * 1024 * 1024;
pub const SIEVE_READ_HEADER: u64 = 256 * 1024;

/// One mailbox's delivery through its Sieve scripts.
struct Filtered<'a> {
    ctx: &'a Context,
    queue_id: &'a str,
    sender: &'a str,
    rcpt: &'a Rcpt,
    target: &'a LocalTarget,
    settings: &'a crate::sieve::Settings,
    quota: Quota,
    junk: bool,
}

impl Filtered<'_> {
    /// The folders stored into, or the recipient's failure reply.
    fn deliver(
        &self,
        sources: &[crate::sieve::Source],
        body: &Arc<Body>,
        prefix: Vec<u8>,
    ) -> Result<Vec<String>, Reply> {
        use crate::sieve::exec::{Delivery, DeliveryHost, Done, Verdict};
        let ctx = self.ctx;
        let user = &self.target.user.address;
        let size = prefix.len() as u64 + body.len();
        let whole = sources.iter().any(|s| {
            s.script
                .as_ref()
                .is_ok_and(|s| s.extensions.contains("body") || s.extensions.contains("editheader"))
        });
        let cap = if whole {
            SIEVE_READ_BODY
        } else {
            SIEVE_READ_HEADER
        };
        let mut message = Vec::with_capacity(size.min(cap) as usize);
        let read = body
            .reader(prefix.clone())
            .take(cap)
            .read_to_end(&mut message);
        if let Err(e) = read {
            warn!(queue_id = self.queue_id, user = %user, error = %e, "cannot read the message for sieve");
            return Err(Reply::new(
                451,
                (4, 3, 0),
                "Local error in delivery, try again later",
            ));
        }
        let mut addresses = vec![
            user.clone(),
            self.rcpt.address.clone(),
            self.target.delivered_to.clone(),
        ];
        addresses.dedup();
        let mut host = DeliveryHost::new(
            &ctx.store,
            ctx.sieve_state.as_ref(),
            &ctx.sieve_cache,
            self.settings,
            user,
            &ctx.hostname,
            addresses,
        );
        let envelope = facteur_sieve::Envelope {
            from: self.sender.to_string(),
            to: self.rcpt.address.clone(),
            orig_to: Some(self.target.delivered_to.clone()),
            auth: None,
        };
        let delivery = Delivery {
            store: &ctx.store,
            state: ctx.sieve_state.as_ref(),
            outbox: &ctx.outbox,
            settings: self.settings,
            queue_id: self.queue_id,
            sender: self.sender,
            user,
            quota: self.quota,
            delivered_to: &self.target.delivered_to,
            junk: self.junk,
            hostname: &ctx.hostname,
            envelope: envelope.clone(),
        };
        let outcome = match crate::sieve::exec::run(&mut host, sources, &message, size, envelope) {
            Verdict::Filtered(o) => o,
            Verdict::Failed(why) => {
                warn!(queue_id = self.queue_id, user = %user, error = %why, "sieve failed: message kept in INBOX");
                Box::new(facteur_sieve::Outcome::keep_only())
            }
        };
        let delivered_to = format!("Delivered-To: {}\r\n", self.target.delivered_to).into_bytes();
        let stored = || Box::new(body.reader(prefix.clone())) as Box<dyn Read + Send>;
        let sent = || Box::new(body.reader(delivered_to.clone())) as Box<dyn Read + Send>;
        let original = crate::sieve::exec::Original {
            seen: &message,
            complete: size <= cap,
            eight_bit: !message.is_ascii(),
            stored: &stored,
            sent: &sent,
        };
        match delivery.carry_out(&outcome, &original) {
            Done::Stored(f) => Ok(f),
            Done::Rejected(r) => Err(r),
            Done::Failed(e) => Err(store_error_reply(ctx, &e, &self.rcpt.address)),
        }
    }
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
