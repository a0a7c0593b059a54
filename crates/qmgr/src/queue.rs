//! The delivery state machine of one queue file.
//!
//! Offers the steps the scheduler runs: [`pickup`] (maildrop/ or
//! incoming/ → recipients resolved → active/), [`check_deferred`]
//! (deferred/ → active/ when due), [`recover_active`] (start-up: what a
//! previous qmgr left in active/) — each for one file, run by the spool
//! lane (`lane.rs`) — and [`attempt`] (one delivery attempt of a message
//! in active/, then deferred/ or removal, and the bounce: a task of its
//! own, `scheduler.rs`).
//!
//! Life of a message (Postfix's incoming → active → deferred, with the
//! schedule in the file itself):
//!
//! ```text
//! maildrop/, incoming/ --resolve, rewrite--> active/ --attempt--> removed (all final, DSN sent)
//!                                               ^          \----> deferred/ (some left; next_attempt)
//!                                               \---- due ----------/
//! ```
//!
//! Invariants:
//! - Resolution happens while the file is in maildrop/ or incoming/, and is
//!   recorded (`rewrite_recipients`) before the move to active/; a file in
//!   active/ or deferred/ is resolved. A crash between the two re-resolves,
//!   which yields the same set (resolution of final mailboxes is idempotent
//!   up to de-duplication).
//! - Before connecting to the LMTP server or an SMTP peer (remote
//!   recipients, grouped by destination domain, `smtp/`), the recipients about to be tried
//!   are marked "attempt in progress" in the file; right after the replies are
//!   read, their outcome, `attempts + 1` and `next_attempt` are written
//!   (`Spool::update`, fsynced) before anything else. A kill -9 in between
//!   leaves the mark: the next qmgr warns that a duplicate may follow (the
//!   only window where one is possible), and tries again.
//! - A message leaves the queue only when every recipient is final, and
//!   only after its DSN (if any) is committed to incoming/. A crash between
//!   the two may send the DSN twice, never lose it.
//! - Anything unreadable goes to corrupt/ with a log line.
//!
//! Every log event carries `queue_id`.

use crate::Context;
use crate::dkim;
use crate::dsn;
use crate::lmtp;
use crate::prefetch::{Locality, Read};
use crate::resolve;
use crate::schedule::now;
use crate::srs;
use crate::submitter;
use facteur_mail::dsn::{BodyType, RcptStatus};
use facteur_remote::{Message, Outcome};
use facteur_smtp_client::Opener;
use facteur_spool::{Envelope, QueueName, Recipient, Spool, SpoolError};
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use tracing::{debug, error, info, warn};

/// The mark put in front of `last_reply` while an attempt is in progress.
pub const IN_PROGRESS: &str = "[attempt in progress] ";

/// The largest message an attempt reads with its queue file and holds in
/// memory (one chunk of the client's stream): at most this much per
/// attempt in progress.
const HELD_MAX: u64 = 64 * 1024;

/// Runs a blocking spool operation off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, SpoolError> + Send + 'static,
) -> Result<T, SpoolError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(SpoolError::Io(std::io::Error::other(e.to_string()))))
}

/// Whether `address` is in one of our domains (an address literal never
/// is). Blocking: a directory lookup.
fn is_local(ctx: &Context, address: &str) -> Result<bool, String> {
    let domain = address.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
    if domain.starts_with('[') {
        return Ok(false);
    }
    ctx.directory
        .is_local_domain(domain)
        .map_err(|e| e.to_string())
}

/// Which of `env`'s recipients are local (`None` for a final one).
/// Blocking: directory lookups, in one read of the directory.
fn locality(ctx: &Context, env: &Envelope) -> Locality {
    facteur_directory::read_together(ctx.directory.as_ref(), || {
        env.recipients
            .iter()
            .map(|r| (!r.status.is_final()).then(|| is_local(ctx, &r.address)))
            .collect()
    })
}

/// Moves an unreadable file to corrupt/, with a log line.
fn to_corrupt(spool: &Spool, q: QueueName, id: &str, why: &SpoolError) {
    error!(queue_id = %id, queue = q.as_str(), error = %why, "unreadable queue file, moving it to corrupt/");
    if let Err(e) = spool.move_to(id, q, QueueName::Corrupt) {
        error!(queue_id = %id, error = %e, "cannot move the file to corrupt/");
    }
}

/// maildrop/ or incoming/ → resolve recipients → active/. Returns whether
/// the message reached active/. A file from maildrop/ first moves to
/// incoming/, out of its writer's reach, and its origin records are
/// replaced by what its owner says (`submitter.rs`).
pub fn pickup(ctx: &Context, q: QueueName, id: &str) -> bool {
    let spool = &ctx.spool;
    let from_maildrop = q == QueueName::Maildrop;
    let q = if from_maildrop {
        match spool.relocate(id, QueueName::Maildrop, QueueName::Incoming) {
            Ok(()) => QueueName::Incoming,
            Err(SpoolError::NotFound(_)) => return false,
            Err(e) => {
                error!(queue_id = %id, error = %e, "cannot move the file from maildrop/ to incoming/");
                return false;
            }
        }
    } else {
        q
    };
    // A new message's read is kept for its first attempt (prefetch.rs):
    // its bytes too when small, read from the file already open.
    let keep = ctx.prefetch.has_room(HELD_MAX as usize);
    let read = if keep {
        spool.read_small(q, id, HELD_MAX)
    } else {
        spool.read(q, id).map(|f| (f, None))
    };
    let (qf, held) = match read {
        Ok(f) => f,
        Err(SpoolError::NotFound(_)) => return false,
        Err(e @ (SpoolError::Corrupt(_) | SpoolError::Incomplete(_))) => {
            // The spool renames only complete files into queue directories,
            // so an incomplete one here is damaged, not in progress.
            to_corrupt(spool, q, id, &e);
            return false;
        }
        Err(e) => {
            warn!(queue_id = %id, error = %e, "cannot read queue file; will retry");
            return false;
        }
    };
    let message_size = qf.message_size;
    let mut env = qf.envelope;
    // incoming/ is ours alone: the owner seen now is the writer's.
    let owner = match std::fs::symlink_metadata(&qf.path) {
        Ok(m) => m.uid(),
        Err(e) => {
            warn!(queue_id = %id, error = %e, "cannot read the queue file's owner; will retry");
            return false;
        }
    };
    let mut origin_changed = false;
    if from_maildrop || submitter::untrusted_owner(owner, nix::unistd::geteuid().as_raw()) {
        let user = submitter::user_name(owner);
        origin_changed = submitter::apply_owner(&mut env, user);
        if origin_changed {
            info!(queue_id = %id, uid = owner, user = env.local_user.as_deref().unwrap_or(""), "origin records of a local user's file replaced by its owner");
        }
    }
    info!(
        queue_id = %id,
        from = %format!("<{}>", env.sender),
        size = qf.message_size,
        nrcpt = env.recipients.len(),
        queue = if from_maildrop { "maildrop" } else { q.as_str() },
        user = env.local_user.as_deref().unwrap_or(""),
        "picked up"
    );
    let mut lists_changed = false;
    if let Some(lists) = &ctx.lists {
        match crate::lists::take(ctx, lists, q, id, &mut env) {
            Ok(c) => lists_changed = c,
            Err(e) => {
                warn!(queue_id = %id, error = %e, "mailing list step failed; will retry");
                return false;
            }
        }
    }
    let srs = ctx.srs.as_ref().map(|s| (s, now().div_euclid(86_400)));
    // The expansion and, for the kept read below, which recipients are
    // local: one read of the directory. That read is kept only when the
    // recipients stay as they are, so asking about these is enough.
    let (exp, local) = facteur_directory::read_together(ctx.directory.as_ref(), || {
        let exp = resolve::expand(ctx.directory.as_ref(), &env, &ctx.delimiters, srs);
        let local = (keep && exp.as_ref().is_ok_and(|x| !x.changed)).then(|| locality(ctx, &env));
        (exp, local)
    });
    let exp = match exp {
        Ok(x) => x,
        Err(e) => {
            warn!(queue_id = %id, error = %e, "directory unavailable, recipient resolution postponed");
            return false;
        }
    };
    // A recipient that stays as it was (a plain mailbox) gets no line
    // here: its delivery line names it.
    for (orig, fin) in exp.events.iter().filter(|(o, f)| o != f) {
        info!(queue_id = %id, orig = %orig, to = %fin, "resolved");
    }
    for a in &exp.warnings {
        warn!(queue_id = %id, rcpt = %a, "this mailbox address is also an alias source; the LMTP server may expand it again");
    }
    let rewritten = exp.changed || origin_changed || lists_changed;
    if rewritten {
        let new = Envelope {
            recipients: exp.recipients,
            ..env
        };
        if let Err(e) = spool.rewrite_recipients(q, id, &new) {
            error!(queue_id = %id, error = %e, "cannot record the resolved recipients; will retry");
            return false;
        }
        env = new;
    }
    match spool.relocate(id, q, QueueName::Active) {
        Ok(()) => {
            // Only a file left as it was read: a rewritten one is read
            // again by its attempt, as the spool wrote it.
            if let Some(local) = local.filter(|_| !rewritten) {
                let qf = facteur_spool::QueueFile {
                    queue: QueueName::Active,
                    envelope: env,
                    message_size,
                    path: spool.dir(QueueName::Active).join(id),
                };
                ctx.prefetch.put(id.to_string(), Read { qf, local, held });
            }
            true
        }
        Err(e) => {
            error!(queue_id = %id, error = %e, "cannot move the file to active/");
            false
        }
    }
}

/// What [`check_deferred`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deferred {
    /// Due (or expired): now in active/.
    Moved,
    /// Not due before this unix second.
    Later(i64),
    /// Gone, unreadable (will be read again) or moved to corrupt/.
    Skipped,
}

/// deferred/: moves the file to active/ when due (or expired).
pub fn check_deferred(ctx: &Context, id: &str, now: i64) -> Deferred {
    match ctx.spool.read(QueueName::Deferred, id) {
        Ok(qf) => {
            let env = &qf.envelope;
            if env.next_attempt > now && !ctx.schedule.get().expired(env.arrival, now) {
                return Deferred::Later(env.next_attempt);
            }
            match ctx
                .spool
                .relocate(id, QueueName::Deferred, QueueName::Active)
            {
                Ok(()) => Deferred::Moved,
                Err(SpoolError::NotFound(_)) => Deferred::Skipped,
                Err(e) => {
                    error!(queue_id = %id, error = %e, "cannot move the file to active/");
                    Deferred::Skipped
                }
            }
        }
        Err(SpoolError::NotFound(_)) => Deferred::Skipped,
        Err(e @ (SpoolError::Corrupt(_) | SpoolError::Incomplete(_))) => {
            to_corrupt(&ctx.spool, QueueName::Deferred, id, &e);
            Deferred::Skipped
        }
        Err(e) => {
            warn!(queue_id = %id, error = %e, "cannot read queue file; will retry");
            Deferred::Skipped
        }
    }
}

/// What [`recover_active`] did with a file a previous qmgr left in active/.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovered {
    /// Stays in active/, to be tried now. `first`: never tried (its first
    /// attempt may have been under way: first attempts are not marked);
    /// `marked`: a retry was in progress (warned).
    TryNow { first: bool, marked: bool },
    /// Tried already and not due: back in deferred/.
    ToDeferred,
    /// Gone meanwhile, or moved to corrupt/.
    Gone,
}

/// Start-up: a file found in active/ was being handled by a previous qmgr.
/// Puts it back in deferred/ when it had been tried and is not due yet (a
/// stop between update and move); otherwise it stays, to be tried now.
/// Logs one line per message at debug level only (a queue of 50,000 must
/// not log 50,000 lines at every start: the caller logs a summary), except
/// a warning for a retry that was in progress (at most the concurrency
/// limit of them: the only messages a duplicate may follow for certain).
pub fn recover_active(ctx: &Context, id: &str, now: i64) -> Recovered {
    let qf = match ctx.spool.read(QueueName::Active, id) {
        Ok(f) => f,
        Err(SpoolError::NotFound(_)) => return Recovered::Gone,
        Err(e @ (SpoolError::Corrupt(_) | SpoolError::Incomplete(_))) => {
            to_corrupt(&ctx.spool, QueueName::Active, id, &e);
            return Recovered::Gone;
        }
        Err(e) => {
            // The attempt reads it again (and says why if it still fails).
            warn!(queue_id = %id, error = %e, "cannot read queue file");
            return Recovered::TryNow {
                first: false,
                marked: false,
            };
        }
    };
    let env = &qf.envelope;
    let marked: Vec<&str> = env
        .recipients
        .iter()
        .filter(|r| !r.status.is_final() && in_progress(r))
        .map(|r| r.address.as_str())
        .collect();
    let pending = env.recipients.iter().any(|r| !r.status.is_final());
    let first = env.attempts == 0 && pending;
    if first {
        // First attempts are not marked (see `attempt`).
        debug!(
            queue_id = %id,
            "picked up before qmgr stopped; tried now (if its first attempt was under way, a duplicate delivery may follow)"
        );
    }
    if !marked.is_empty() {
        warn!(
            queue_id = %id,
            rcpts = %marked.join(","),
            "a delivery attempt was in progress when qmgr stopped; the recipients are retried and a duplicate delivery may follow"
        );
    }
    if pending && env.attempts > 0 && env.next_attempt > now && marked.is_empty() {
        match ctx
            .spool
            .relocate(id, QueueName::Active, QueueName::Deferred)
        {
            Ok(()) => {
                debug!(queue_id = %id, next_in = env.next_attempt - now, "left in active/ before qmgr stopped, not due: back to deferred/");
                return Recovered::ToDeferred;
            }
            Err(SpoolError::NotFound(_)) => return Recovered::Gone,
            Err(e) => error!(queue_id = %id, error = %e, "cannot move the file to deferred/"),
        }
    }
    if !first && marked.is_empty() {
        debug!(queue_id = %id, "left in active/ before qmgr stopped; tried now");
    }
    Recovered::TryNow {
        first,
        marked: !marked.is_empty(),
    }
}

fn in_progress(r: &Recipient) -> bool {
    r.last_reply
        .as_deref()
        .is_some_and(|l| l.starts_with(IN_PROGRESS))
}

fn strip_in_progress(r: &mut Recipient) {
    if let Some(l) = &r.last_reply
        && let Some(rest) = l.strip_prefix(IN_PROGRESS)
    {
        r.last_reply = (!rest.is_empty()).then(|| rest.to_string());
    }
}

/// What an attempt left for the scheduler.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttemptResult {
    /// The message was deferred until then.
    pub next_attempt: Option<i64>,
    /// A new file was queued (a DSN): scan incoming/ soon.
    pub rescan: bool,
}

/// One delivery attempt of the message `id` in active/.
pub async fn attempt(ctx: Arc<Context>, id: String) -> AttemptResult {
    // The queue file, which of its recipients are local, and a small
    // message itself: what pickup kept of a new message, or one trip to
    // the blocking threads for all three.
    let read = match ctx.prefetch.take(&id) {
        Some(r) => Ok(r),
        None => {
            let c = Arc::clone(&ctx);
            let i = id.clone();
            blocking(move || {
                let (qf, held) = c.spool.read_small(QueueName::Active, &i, HELD_MAX)?;
                let local = locality(&c, &qf.envelope);
                Ok(Read { qf, local, held })
            })
            .await
        }
    };
    let Read { qf, local, held } = match read {
        Ok(f) => f,
        Err(SpoolError::NotFound(_)) => return AttemptResult::default(),
        Err(e @ (SpoolError::Corrupt(_) | SpoolError::Incomplete(_))) => {
            to_corrupt(&ctx.spool, QueueName::Active, &id, &e);
            return AttemptResult::default();
        }
        Err(e) => {
            warn!(queue_id = %id, error = %e, "cannot read queue file; will retry");
            return AttemptResult::default();
        }
    };
    let mut env = qf.envelope;
    for r in &mut env.recipients {
        strip_in_progress(r);
    }
    let todo: Vec<usize> = (0..env.recipients.len())
        .filter(|&i| !env.recipients[i].status.is_final())
        .collect();
    let started = now();

    if !todo.is_empty() && ctx.schedule.get().expired(env.arrival, started) {
        for &i in &todo {
            let r = &mut env.recipients[i];
            let last = r.last_reply.take().unwrap_or_else(|| "none".into());
            r.status = RcptStatus::Bounced;
            r.last_reply = Some(format!(
                "4.4.7 message expired after {} seconds in the queue; last reply: {last}",
                started.saturating_sub(env.arrival)
            ));
            info!(queue_id = %id, rcpt = %r.address, status = "bounced", reply = %r.last_reply.as_deref().unwrap_or(""), "expired");
        }
        if !save(&ctx, &id, &env).await {
            return AttemptResult::default();
        }
    } else if !todo.is_empty() {
        let mut lmtp = Vec::new();
        let mut remote: Vec<usize> = Vec::new();
        for &i in &todo {
            let r = &mut env.recipients[i];
            match local.get(i).and_then(Option::as_ref) {
                Some(Ok(true)) => lmtp.push(i),
                Some(Ok(false)) => remote.push(i),
                Some(Err(e)) => {
                    r.status = RcptStatus::Deferred;
                    r.last_reply = Some(format!("4.3.0 directory unavailable: {e}"));
                    warn!(queue_id = %id, rcpt = %r.address, error = %e, "deferred: directory unavailable");
                }
                None => {
                    r.status = RcptStatus::Deferred;
                    r.last_reply = Some("4.3.0 internal error".into());
                }
            }
        }
        if env.attempts > 0 && (!lmtp.is_empty() || !remote.is_empty()) {
            // A retry: mark the attempt, durably, so a restart knows a
            // duplicate is possible and retries at once instead of waiting
            // for `next_attempt`. A first attempt is not marked (one
            // fdatasync per message saved): a restart finds it in active/
            // with `attempts == 0` and retries it at once anyway.
            let mut marked = env.clone();
            for &i in lmtp.iter().chain(&remote) {
                let r = &mut marked.recipients[i];
                r.last_reply = Some(format!(
                    "{IN_PROGRESS}{}",
                    r.last_reply.as_deref().unwrap_or("")
                ));
            }
            if !save(&ctx, &id, &marked).await {
                return AttemptResult::default();
            }
        }
        // The message's bytes: those read with the queue file, or the file
        // opened again for each transaction.
        let held: Option<Arc<[u8]>> = held.map(Into::into);
        let open: Opener = match &held {
            Some(m) => {
                let m = Arc::clone(m);
                Arc::new(move || {
                    Ok(Box::new(std::io::Cursor::new(Arc::clone(&m)))
                        as Box<dyn std::io::Read + Send>)
                })
            }
            None => {
                let (spool, i) = (ctx.spool.clone(), id.clone());
                Arc::new(move || {
                    spool
                        .open_message(QueueName::Active, &i)
                        .map_err(std::io::Error::other)
                })
            }
        };
        let source = lmtp::Source {
            open: open.clone(),
            held,
        };
        if !lmtp.is_empty() {
            let target = ctx.lmtp.clone();
            lmtp::deliver_and_record(&ctx, &target, &id, &mut env, &lmtp, &source).await;
        }
        // Remote recipients, one destination domain at a time.
        let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
        for &i in &remote {
            let a = &env.recipients[i].address;
            let d = a
                .rsplit_once('@')
                .map(|(_, d)| d)
                .unwrap_or("")
                .to_ascii_lowercase();
            match groups.iter_mut().find(|(g, _)| *g == d) {
                Some((_, v)) => v.push(i),
                None => groups.push((d, vec![i])),
            }
        }
        // Signed once for all destinations (see dkim.rs).
        let signature = if groups.is_empty() {
            Vec::new()
        } else {
            dkim::fields(&ctx, &id, &env).await
        };
        let size = qf.message_size + signature.len() as u64;
        let open = dkim::signed_opener(&open, signature);
        // A stranger's message forwarded elsewhere leaves under our name.
        let rewritten = if groups.is_empty() {
            None
        } else {
            srs::rewritten(&ctx, &id, &env).await
        };
        for (domain, which) in groups {
            let started = std::time::Instant::now();
            // A domain handed to another LMTP server: the message as it is
            // (no signature, no SRS: it stays on this side).
            if let Some(target) = ctx.transports.get(&domain) {
                lmtp::deliver_and_record(&ctx, target, &id, &mut env, &which, &source).await;
                continue;
            }
            let outcomes = ctx
                .remote
                .deliver(
                    Message {
                        id: &id,
                        env: rewritten.as_ref().unwrap_or(&env),
                        size,
                        open: &open,
                    },
                    &domain,
                    &which,
                )
                .await;
            crate::metrics::duration("remote", started.elapsed());
            let dest = ctx.remote.destination(&domain).key;
            for (&i, o) in which.iter().zip(outcomes) {
                let (status, text) = match o {
                    Outcome::Reply(r) if r.code / 100 == 2 => {
                        (RcptStatus::Delivered, r.to_string())
                    }
                    Outcome::Reply(r) if r.code / 100 == 5 => (RcptStatus::Bounced, r.to_string()),
                    Outcome::Reply(r) => (RcptStatus::Deferred, r.to_string()),
                    Outcome::Temp(t) => (RcptStatus::Deferred, t),
                    Outcome::Perm(t) => (RcptStatus::Bounced, t),
                };
                record(&id, &mut env.recipients[i], status, text, &dest, "remote");
            }
        }
        env.attempts = env.attempts.saturating_add(1);
        let done = now();
        env.next_attempt = ctx.schedule.get().next_attempt(done, env.attempts);
        if env.recipients.iter().all(|r| r.status.is_final()) {
            // Every recipient is final: `finish` queues the DSN if one is
            // due (fsynced) and removes the message, and saves this state
            // only if it cannot. Not saving first spares an fdatasync per
            // message; a crash in between retries the message (a
            // duplicate, never a loss), as Postfix does.
            return finish(&ctx, &id, &env, false).await;
        }
        // Durable before anything else: this is what makes a delivery count.
        if !save(&ctx, &id, &env).await {
            return AttemptResult::default();
        }
    }

    if env.recipients.iter().all(|r| r.status.is_final()) {
        return finish(&ctx, &id, &env, true).await;
    }
    let rescan = delay_notice(&ctx, &id, &mut env).await;
    let c = Arc::clone(&ctx);
    let i = id.clone();
    match blocking(move || c.spool.relocate(&i, QueueName::Active, QueueName::Deferred)).await {
        Ok(()) => {
            info!(queue_id = %id, attempts = env.attempts, next_in = env.next_attempt - now(), "moved to deferred/");
        }
        Err(e) => error!(queue_id = %id, error = %e, "cannot move the file to deferred/"),
    }
    AttemptResult {
        next_attempt: Some(env.next_attempt),
        rescan,
    }
}

/// Sends the "delayed" notice once, when the message has waited
/// `delay_warning`: the DSN is committed first, then `delay_notified` is
/// recorded (a crash between the two may send it twice, never lose it).
/// Returns whether a DSN was queued.
async fn delay_notice(ctx: &Arc<Context>, id: &str, env: &mut Envelope) -> bool {
    let t = now();
    let delay_warning = *ctx.delay_warning.get();
    let warn_after = i64::try_from(delay_warning).unwrap_or(i64::MAX);
    if delay_warning == 0
        || env.delay_notified
        || t.saturating_sub(env.arrival) < warn_after
        || dsn::reported_delayed(env).is_empty()
    {
        return false;
    }
    let until = env
        .arrival
        .saturating_add(i64::try_from(ctx.schedule.get().max_lifetime).unwrap_or(i64::MAX));
    let c = Arc::clone(ctx);
    let (i, e) = (id.to_string(), env.clone());
    let queued = match blocking(move || queue_dsn(&c, &i, &e, Some(until))).await {
        Ok(Some(new_id)) => {
            info!(queue_id = %id, notice_id = %new_id, to = %env.sender, "delay notice created");
            crate::metrics::dsn("delay");
            info!(queue_id = %new_id, orig_id = %id, "delay notice for {id}");
            true
        }
        Ok(None) => false,
        Err(e) => {
            error!(queue_id = %id, error = %e, "cannot create the delay notice; will retry");
            return false;
        }
    };
    env.delay_notified = true;
    save(ctx, id, env).await;
    queued
}

/// Sets a recipient's outcome, with its log line.
pub(crate) fn record(
    id: &str,
    r: &mut Recipient,
    status: RcptStatus,
    text: String,
    relay: &str,
    class: &str,
) {
    r.status = status;
    let word = match status {
        RcptStatus::Delivered => "delivered",
        RcptStatus::Bounced => "bounced",
        _ => "deferred",
    };
    crate::metrics::delivery(class, word);
    info!(queue_id = %id, rcpt = %r.address, status = word, relay = %relay, reply = ?text, "{word}");
    r.last_reply = Some(text);
}

/// `Spool::update` in active/; logs and returns false on failure.
async fn save(ctx: &Arc<Context>, id: &str, env: &Envelope) -> bool {
    let c = Arc::clone(ctx);
    let (i, e) = (id.to_string(), env.clone());
    match blocking(move || c.spool.update(QueueName::Active, &i, &e)).await {
        Ok(()) => true,
        Err(e) => {
            error!(queue_id = %id, error = %e, "cannot record the delivery state; the message stays in active/ and will be retried (a duplicate may follow)");
            false
        }
    }
}

/// Every recipient is final: the DSN if one is due, then removal. When
/// `saved` is false, `env` is saved if the message has to stay (so a retry
/// does not deliver again).
async fn finish(ctx: &Arc<Context>, id: &str, env: &Envelope, saved: bool) -> AttemptResult {
    let mut rescan = false;
    let bounced = env
        .recipients
        .iter()
        .any(|r| r.status == RcptStatus::Bounced);
    if env.sender.is_empty() && bounced {
        info!(queue_id = %id, "null sender: no bounce for the failed recipients");
    }
    if !dsn::reported(env).is_empty() {
        let c = Arc::clone(ctx);
        let (i, e) = (id.to_string(), env.clone());
        match blocking(move || queue_dsn(&c, &i, &e, None)).await {
            Ok(Some(new_id)) => {
                info!(queue_id = %id, bounce_id = %new_id, to = %env.sender, "bounce created");
                crate::metrics::dsn("bounce");
                info!(queue_id = %new_id, orig_id = %id, "bounce for {id}");
                rescan = true;
            }
            Ok(None) => {}
            Err(e) => {
                error!(queue_id = %id, error = %e, "cannot create the bounce; the message stays in active/ and will be retried");
                if !saved {
                    save(ctx, id, env).await;
                }
                return AttemptResult::default();
            }
        }
    }
    let c = Arc::clone(ctx);
    let i = id.to_string();
    match blocking(move || c.spool.discard(QueueName::Active, &i)).await {
        Ok(()) => info!(queue_id = %id, "removed"),
        Err(e) => {
            error!(queue_id = %id, error = %e, "cannot remove the queue file");
            if !saved {
                save(ctx, id, env).await;
            }
        }
    }
    AttemptResult {
        next_attempt: None,
        rescan,
    }
}

/// Builds the DSN for `env` (a "delayed" notice when `retry_until` is
/// given) and commits it to incoming/. Blocking.
fn queue_dsn(
    ctx: &Context,
    id: &str,
    env: &Envelope,
    retry_until: Option<i64>,
) -> Result<Option<String>, SpoolError> {
    let qf = ctx.spool.read(QueueName::Active, id)?;
    let msg = ctx.spool.open_message(QueueName::Active, id)?;
    // A delay notice returns the header only: the message is still queued.
    let ret = if retry_until.is_some() {
        Some(facteur_mail::dsn::Ret::Hdrs)
    } else {
        env.ret
    };
    let original = dsn::read_original(msg, ret, qf.message_size)?;
    let unique = format!("{id}.{}", now());
    let dctx = dsn::DsnContext {
        hostname: &ctx.hostname,
        queue_id: id,
        now: now(),
        unique: &unique,
    };
    let built = match retry_until {
        Some(u) => dsn::build_delayed(&dctx, env, original, u),
        None => dsn::build(&dctx, env, original),
    };
    let Some(bytes) = built else {
        return Ok(None);
    };
    let bounce = Envelope {
        sender: String::new(),
        recipients: vec![Recipient::new(env.sender.clone())],
        body: BodyType::EightBitMime,
        smtputf8: env.smtputf8,
        protocol: Some("qmgr-dsn".into()),
        arrival: now(),
        ..Envelope::default()
    };
    let mut w = ctx.spool.create(QueueName::Incoming, &bounce)?;
    if let Err(e) = w.write_all(&bytes) {
        w.abort();
        return Err(e.into());
    }
    w.commit().map(Some)
}
