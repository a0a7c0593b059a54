//! The spool lane: the work of the queue manager that walks a queue
//! directory or moves files no delivery owns, cut into bounded batches.
//!
//! Offers the blocking steps the scheduler (`scheduler.rs`) runs one at a
//! time, off the async threads: [`pickup`] (maildrop/ and incoming/ →
//! active/), [`recover`] (start-up: what a previous qmgr left in
//! active/), [`deferred`] (a scan: due messages from deferred/ to
//! active/; a flush: all of them), [`list_active`] (what a scan finds in
//! active/), [`control`] (one queue operation of `facteurctl queue`) and
//! [`list_deferred`] (the listing a flush starts from).
//!
//! Each walk lists its directory once, when it starts, then visits at most
//! [`BATCH`] files, or as many as [`BATCH_TIME`] allows, per step; between
//! steps the scheduler answers control requests, picks up new mail and
//! starts deliveries. So no queue of any size holds the scheduler for
//! longer than one step (a flush of 50,000 deferred messages used to run
//! in one piece, fsyncing two directories per message, for minutes).
//!
//! Invariants: one step at a time (the scheduler starts the next when the
//! last has returned), so control operations and walks never race each
//! other; a walk hands over only messages it moved into active/ (or found
//! there at start-up), and never touches a message the scheduler has
//! handed to a delivery. Files that vanished since the listing (delivered,
//! held, deleted) are skipped silently.
//!
//! Durability: the moves here are the queue manager's routine renames
//! (`Spool::relocate`, no fsync; see its documentation): a crash leaves each
//! file in one of the two directories, both of which qmgr looks at again.
//! A flush writes nothing else: a flushed message keeps its
//! `next_attempt`, so after a crash in the middle of a flush the messages
//! not yet tried return to deferred/ at start-up and wait for their
//! schedule (the flush is a request, not a state: run it again).

use crate::Context;
use crate::queue::{self, Deferred, Recovered};
use crate::schedule::now;
use facteur_spool::control::{self, Op};
use facteur_spool::{QueueName, SpoolError};
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tracing::{debug, error};

/// At most this many files per step...
pub const BATCH: usize = 256;
/// ...and no new file once a step has run this long.
pub const BATCH_TIME: Duration = Duration::from_millis(50);

/// The files a walk has still to visit, listed when it started (`None`:
/// not listed yet, done by its first step).
#[derive(Debug)]
pub struct Walk<T> {
    pub ids: Option<VecDeque<T>>,
}

// Not derived: that would ask `T: Default`.
impl<T> Default for Walk<T> {
    fn default() -> Self {
        Walk { ids: None }
    }
}

impl<T> Walk<T> {
    /// Listed, and nothing left.
    pub fn finished(&self) -> bool {
        self.ids.as_ref().is_some_and(VecDeque::is_empty)
    }
}

/// Visits files from the front of `items` until the step's budget is spent.
fn step<T>(items: &mut VecDeque<T>, started: Instant, mut visit: impl FnMut(T)) {
    for _ in 0..BATCH {
        let Some(x) = items.pop_front() else { break };
        visit(x);
        if started.elapsed() >= BATCH_TIME {
            break;
        }
    }
}

fn list(ctx: &Context, q: QueueName) -> Vec<String> {
    ctx.spool.list(q).unwrap_or_else(|e| {
        error!(queue = q.as_str(), error = %e, "cannot list the queue");
        Vec::new()
    })
}

/// One step of a pickup: maildrop/ and incoming/ → active/. Returns the
/// messages that reached active/.
pub fn pickup(ctx: &Context, walk: &mut Walk<(QueueName, String)>) -> Vec<String> {
    let started = Instant::now();
    let ids = walk.ids.get_or_insert_with(|| {
        [QueueName::Maildrop, QueueName::Incoming]
            .into_iter()
            .flat_map(|q| list(ctx, q).into_iter().map(move |id| (q, id)))
            .collect()
    });
    let mut ready = Vec::new();
    step(ids, started, |(q, id)| {
        if queue::pickup(ctx, q, &id) {
            ready.push(id);
        }
    });
    ready
}

/// What start-up recovery found in active/.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub found: usize,
    /// Left in active/ and handed to the scheduler.
    pub tried_now: usize,
    /// ...of which never tried (a first attempt may have been under way).
    pub first_attempts: usize,
    /// ...of which a retry was in progress (each warned).
    pub in_progress: usize,
    /// Tried already and not due: back to deferred/.
    pub to_deferred: usize,
    /// Gone meanwhile or corrupt.
    pub gone: usize,
}

/// Start-up recovery of active/, a step.
#[derive(Debug, Default)]
pub struct Recovery {
    pub walk: Walk<String>,
    pub tally: Tally,
    pub now: i64,
    pub started: Option<Instant>,
}

/// One step of start-up recovery; returns the messages to try now.
pub fn recover(ctx: &Context, r: &mut Recovery) -> Vec<String> {
    let started = Instant::now();
    let mut ready = Vec::new();
    let Some(ids) = &mut r.walk.ids else {
        // The listing is the whole first step: it must come before any
        // pickup moves new files into active/.
        let ids: VecDeque<String> = list(ctx, QueueName::Active).into();
        r.tally.found = ids.len();
        r.now = now();
        r.started = Some(started);
        r.walk.ids = Some(ids);
        return ready;
    };
    let (t, now) = (&mut r.tally, r.now);
    step(ids, started, |id| {
        match queue::recover_active(ctx, &id, now) {
            Recovered::TryNow { first, marked } => {
                t.tried_now += 1;
                t.first_attempts += usize::from(first);
                t.in_progress += usize::from(marked);
                ready.push(id);
            }
            Recovered::ToDeferred => t.to_deferred += 1,
            Recovered::Gone => t.gone += 1,
        }
    });
    ready
}

/// A walk over deferred/: a scan (due messages to active/) or a flush
/// (all of them).
#[derive(Debug, Default)]
pub struct DeferredWalk {
    pub walk: Walk<String>,
    pub flush: bool,
    /// The time due-ness is judged at (the listing's).
    pub now: i64,
    /// The earliest next attempt among the files left in deferred/.
    pub next_due: Option<i64>,
    /// How many it listed and moved.
    pub listed: usize,
    pub moved: usize,
    pub started: Option<Instant>,
}

impl DeferredWalk {
    /// A flush of `ids` (from [`list_deferred`]).
    pub fn flush(ids: VecDeque<String>) -> DeferredWalk {
        DeferredWalk {
            listed: ids.len(),
            walk: Walk { ids: Some(ids) },
            flush: true,
            now: now(),
            started: Some(Instant::now()),
            ..DeferredWalk::default()
        }
    }
}

/// One step of a walk over deferred/; returns the messages it moved to
/// active/.
pub fn deferred(ctx: &Context, w: &mut DeferredWalk) -> Vec<String> {
    let started = Instant::now();
    if w.walk.ids.is_none() {
        let ids: VecDeque<String> = list(ctx, QueueName::Deferred).into();
        w.listed = ids.len();
        w.now = now();
        w.started = Some(started);
        w.walk.ids = Some(ids);
    }
    let mut ready = Vec::new();
    let (flush, now, next_due) = (w.flush, w.now, &mut w.next_due);
    if let Some(ids) = &mut w.walk.ids {
        step(ids, started, |id| {
            if flush {
                match ctx
                    .spool
                    .relocate(&id, QueueName::Deferred, QueueName::Active)
                {
                    Ok(()) => {
                        debug!(queue_id = %id, "flushed: moved to active/");
                        ready.push(id);
                    }
                    Err(SpoolError::NotFound(_)) => {}
                    Err(e) => {
                        error!(queue_id = %id, error = %e, "cannot move the file to active/")
                    }
                }
                return;
            }
            match queue::check_deferred(ctx, &id, now) {
                Deferred::Moved => ready.push(id),
                Deferred::Later(n) => *next_due = Some(next_due.map_or(n, |d| d.min(n))),
                Deferred::Skipped => {}
            }
        });
    }
    w.moved += ready.len();
    ready
}

/// Everything in active/ (the end of a scan: a message whose attempt
/// could not record its result stays there and is tried again).
pub fn list_active(ctx: &Context) -> Vec<String> {
    list(ctx, QueueName::Active)
}

/// The listing a flush of deferred/ starts from.
pub fn list_deferred(ctx: &Context) -> Result<VecDeque<String>, String> {
    ctx.spool
        .list(QueueName::Deferred)
        .map(Into::into)
        .map_err(|e| format!("deferred/: {e}"))
}

/// What a control operation did.
#[derive(Debug)]
pub struct Applied {
    pub result: Result<Vec<String>, String>,
    /// The message is in active/ after the operation...
    pub in_active: bool,
    /// ...and was not before (a flush of one deferred message).
    pub moved_in: bool,
}

/// Runs one operation of `facteurctl queue` on one message (a flush of
/// all of deferred/ is a walk instead: [`list_deferred`], [`deferred`]).
pub fn control(ctx: &Context, op: &Op) -> Applied {
    // What pickup kept for the message's first attempt may be about to
    // change (prefetch.rs).
    if let Some(id) = op.id() {
        ctx.prefetch.forget(id);
    }
    let in_active = |id: Option<&str>| {
        id.is_some_and(|id| {
            std::fs::symlink_metadata(ctx.spool.dir(QueueName::Active).join(id)).is_ok()
        })
    };
    let before = in_active(op.id());
    let result = control::apply(&ctx.spool, op);
    let after = in_active(op.id());
    Applied {
        result,
        in_active: after,
        moved_in: after && !before,
    }
}
