//! The scheduler's state: which messages wait for a delivery slot, which
//! are being delivered, what the spool lane does next, and when to scan.
//!
//! Offers [`Scheduler`], driven by the loop of `server.rs`: each event
//! (a delivery ended, a lane step returned, a control request, a wake-up,
//! the timer) updates it, then [`Scheduler::pump`] starts the next lane
//! step and as many deliveries as slots allow. Nothing here blocks or
//! waits: file work runs on the lane (`lane.rs`, one bounded step at a
//! time, off the async threads), deliveries run as tasks (`queue.rs`).
//!
//! The lane's order, when it is free:
//! 1. the listing of active/ at start-up (before any pickup adds to it);
//! 2. control requests, first come first served (each waits for at most
//!    one step, so it is answered within a second at any queue size);
//! 3. a pickup step (new mail, unless [`NEW_MAX`] messages already wait);
//! 4. a step of start-up recovery;
//! 5. a step of the walk over deferred/ (a scan or a flush), only while
//!    fewer than [`BACKLOG_MAX`] backlog messages wait: a flush moves
//!    messages to active/ as fast as they are delivered, not all at once;
//! 6. the listing of active/ that ends a scan (after recovery).
//!
//! Deliveries: at most `lmtp_concurrency` at once; slots go to new mail
//! and to the backlog in turn (`ready.rs`).
//!
//! Control requests and deliveries never touch one message at once: a
//! request about a message being delivered is held until the attempt has
//! recorded its results (a newer one replaces it); a message whose
//! request waits on the lane is set aside ("parked") instead of being
//! delivered, and comes back if it is still in active/ after the request.

use crate::Context;
use crate::control::Request;
use crate::lane::{self, Applied, DeferredWalk, Recovery, Walk};
use crate::queue::{self, AttemptResult};
use crate::ready::{Line, Ready};
use crate::schedule::now;
use facteur_spool::QueueName;
use facteur_spool::control::Op;
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinSet};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

/// Backlog messages waiting for a slot above which deferred/ is not walked.
pub const BACKLOG_MAX: usize = 1024;
/// New messages waiting for a slot above which pickup pauses (incoming/
/// holds the rest; Postfix's `qmgr_message_active_limit` in spirit).
pub const NEW_MAX: usize = 10_000;

/// How often the spool is swept of what crashes left, and how old such a
/// file must be (no writer keeps a temporary file open for a day).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);
const SWEEP_AGE: Duration = Duration::from_secs(24 * 3600);

/// What a lane step returns.
#[derive(Debug)]
pub enum Done {
    Control(Request, Applied),
    FlushListed(Request, Result<VecDeque<String>, String>),
    Pickup(Walk<(QueueName, String)>, Vec<String>),
    Recover(Recovery, Vec<String>),
    Deferred(DeferredWalk, Vec<String>),
    Active(Vec<String>),
}

/// Which step runs (to clean up after a step that panicked).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Control(Option<String>),
    Pickup,
    Recover,
    Deferred,
    Active,
}

pub type Tasks = JoinSet<(String, AttemptResult)>;
pub type LaneResult = Result<Done, JoinError>;

pub struct Scheduler {
    ctx: Arc<Context>,
    ready: Ready,
    inflight: HashSet<String>,
    task_ids: HashMap<tokio::task::Id, String>,
    /// Requests about a message being delivered, for when its attempt ends.
    held: HashMap<String, Request>,
    /// Messages with requests waiting on (or running in) the lane.
    busy: HashMap<String, usize>,
    /// Ready messages set aside while a request about them waits.
    parked: HashSet<String>,
    controls: VecDeque<Request>,
    /// Some: a pickup is wanted (not listed yet) or under way.
    pickup: Option<Walk<(QueueName, String)>>,
    /// A wake-up came during a pickup: list again after it.
    pickup_again: bool,
    recovery: Option<Recovery>,
    deferred: Option<DeferredWalk>,
    /// A scan wants the listing of active/ once its walk is done.
    list_active: bool,
    running: Option<Step>,
    lane_tx: mpsc::UnboundedSender<LaneResult>,
    /// When the next full scan is due.
    pub deadline: Instant,
    /// The earliest next attempt deliveries reported during a walk.
    earliest: Option<i64>,
    next_sweep: Instant,
    stopping: bool,
}

/// The time until unix second `at`, from now.
fn until(at: i64) -> Duration {
    Duration::from_secs(u64::try_from(at.saturating_sub(now())).unwrap_or(0))
}

impl Scheduler {
    /// A scheduler about to start: recovery of active/, a pickup and a
    /// full scan are due. Lane steps report on `lane_tx`.
    pub fn new(ctx: Arc<Context>, lane_tx: mpsc::UnboundedSender<LaneResult>) -> Scheduler {
        let ctx_scan_interval = ctx.scan_interval;
        let mut s = Scheduler {
            ctx,
            ready: Ready::default(),
            inflight: HashSet::new(),
            task_ids: HashMap::new(),
            held: HashMap::new(),
            busy: HashMap::new(),
            parked: HashSet::new(),
            controls: VecDeque::new(),
            pickup: None,
            pickup_again: false,
            recovery: Some(Recovery::default()),
            deferred: None,
            list_active: false,
            running: None,
            lane_tx,
            // The start-up scan is the first; then every `scan_interval`.
            deadline: Instant::now() + ctx_scan_interval,
            earliest: None,
            next_sweep: Instant::now(),
            stopping: false,
        };
        s.full_scan();
        s
    }

    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    pub fn waiting(&self) -> usize {
        self.ready.len() + self.parked.len()
    }

    /// A wake-up: new mail in maildrop/ or incoming/.
    pub fn want_pickup(&mut self) {
        let under_way = self.running == Some(Step::Pickup)
            || self.pickup.as_ref().is_some_and(|w| w.ids.is_some());
        if under_way {
            self.pickup_again = true;
        } else if self.pickup.is_none() {
            self.pickup = Some(Walk::default());
        }
    }

    /// The timer: a full scan (pickup, deferred/, then active/).
    pub fn timer(&mut self) {
        // Until the scan's walk ends and says when the next one is due.
        self.deadline = Instant::now() + self.ctx.scan_interval;
        self.full_scan();
    }

    fn full_scan(&mut self) {
        self.want_pickup();
        if Instant::now() >= self.next_sweep {
            // What crashes left behind (temporary files, orphan state
            // files), at start-up and then every hour; touches no queue file.
            self.next_sweep = Instant::now() + SWEEP_EVERY;
            let c = Arc::clone(&self.ctx);
            tokio::task::spawn_blocking(move || {
                let n = c.spool.sweep(SWEEP_AGE);
                if n > 0 {
                    info!(
                        removed = n,
                        "removed files left by crashes (older than a day) from the spool"
                    );
                }
            });
        }
        if self.deferred.is_none() && self.running != Some(Step::Deferred) {
            self.deferred = Some(DeferredWalk::default());
        }
        self.list_active = true;
    }

    /// Starts the next lane step if the lane is free, then deliveries.
    pub fn pump(&mut self, tasks: &mut Tasks) {
        if self.running.is_none() && !self.stopping {
            self.start_step();
        }
        self.dispatch(tasks);
    }

    fn run(&mut self, step: Step, job: impl FnOnce(&Context) -> Done + Send + 'static) {
        self.running = Some(step);
        let (ctx, tx) = (Arc::clone(&self.ctx), self.lane_tx.clone());
        tokio::spawn(async move {
            let done = tokio::task::spawn_blocking(move || job(&ctx)).await;
            let _ = tx.send(done);
        });
    }

    fn start_step(&mut self) {
        if self.recovery.as_ref().is_some_and(|r| r.walk.ids.is_none()) {
            return self.recover_step();
        }
        if let Some(req) = self.controls.pop_front() {
            if matches!(req.op, Op::Flush(_)) {
                self.ctx.remote.clear_backoff(None);
            }
            if req.op == Op::Flush(None) {
                return self.run(Step::Control(None), move |c| {
                    let ids = lane::list_deferred(c);
                    Done::FlushListed(req, ids)
                });
            }
            let id = req.op.id().map(str::to_string);
            return self.run(Step::Control(id), move |c| {
                let applied = lane::control(c, &req.op);
                Done::Control(req, applied)
            });
        }
        if self.ready.new_len() < NEW_MAX
            && let Some(mut w) = self.pickup.take()
        {
            return self.run(Step::Pickup, move |c| {
                let ready = lane::pickup(c, &mut w);
                Done::Pickup(w, ready)
            });
        }
        if self.recovery.is_some() {
            return self.recover_step();
        }
        if self.ready.backlog_len() < BACKLOG_MAX
            && let Some(mut w) = self.deferred.take()
        {
            return self.run(Step::Deferred, move |c| {
                let ready = lane::deferred(c, &mut w);
                Done::Deferred(w, ready)
            });
        }
        if self.list_active && self.deferred.is_none() {
            self.list_active = false;
            self.run(Step::Active, |c| Done::Active(lane::list_active(c)));
        }
    }

    fn recover_step(&mut self) {
        if let Some(mut r) = self.recovery.take() {
            self.run(Step::Recover, move |c| {
                let ready = lane::recover(c, &mut r);
                Done::Recover(r, ready)
            });
        }
    }

    /// Starts deliveries while slots are free.
    fn dispatch(&mut self, tasks: &mut Tasks) {
        while !self.stopping && self.inflight.len() < self.ctx.lmtp_concurrency {
            let Some(id) = self.ready.pop() else { break };
            if self.busy.contains_key(&id) {
                self.parked.insert(id);
                continue;
            }
            self.inflight.insert(id.clone());
            let (c, key) = (Arc::clone(&self.ctx), id.clone());
            let h = tasks.spawn(async move {
                let r = queue::attempt(c, id.clone()).await;
                (id, r)
            });
            self.task_ids.insert(h.id(), key);
        }
    }

    /// Queues `id` for delivery unless it is already known.
    fn make_ready(&mut self, id: String, line: Line) {
        if !self.inflight.contains(&id) && !self.parked.contains(&id) {
            self.ready.push(id, line);
        }
    }

    /// A delivery task ended.
    pub fn attempt_done(
        &mut self,
        done: Result<(tokio::task::Id, (String, AttemptResult)), JoinError>,
    ) {
        let (id, r) = match done {
            Ok((tid, (id, r))) => {
                self.task_ids.remove(&tid);
                (id, r)
            }
            Err(e) => {
                // A panic in a delivery task is a bug; its message stays
                // in active/ and is retried after the next scan.
                let id = self.task_ids.remove(&e.id()).unwrap_or_default();
                error!(queue_id = %id, error = %e, "delivery task failed");
                self.inflight.remove(&id);
                self.full_scan();
                return;
            }
        };
        self.inflight.remove(&id);
        if let Some(req) = self.held.remove(&id) {
            self.enqueue(req);
        }
        if r.rescan {
            self.want_pickup();
        }
        if let Some(n) = r.next_attempt {
            self.earliest = Some(self.earliest.map_or(n, |e| e.min(n)));
            self.deadline = self.deadline.min(Instant::now() + until(n));
        }
    }

    /// A control request arrived.
    pub fn request(&mut self, req: Request) {
        match req.op.id() {
            Some(id) if self.inflight.contains(id) && !matches!(req.op, Op::Flush(_)) => {
                // Applied when the attempt in progress has recorded its
                // results (see facteur_spool::control).
                info!(queue_id = %id, op = %req.op.to_line(), "waiting for the delivery in progress");
                if let Some(old) = self.held.insert(id.to_string(), req) {
                    let _ = old.reply.send(Err("superseded by a newer request".into()));
                }
            }
            _ => self.enqueue(req),
        }
    }

    fn enqueue(&mut self, req: Request) {
        if let Some(id) = req.op.id() {
            *self.busy.entry(id.to_string()).or_default() += 1;
        }
        self.controls.push_back(req);
    }

    /// A request about `id` left the lane.
    fn unbusy(&mut self, id: &str, applied: Option<&Applied>) {
        if let Some(n) = self.busy.get_mut(id) {
            *n -= 1;
            if *n > 0 {
                return;
            }
            self.busy.remove(id);
        }
        let was_parked = self.parked.remove(id);
        let in_active = applied.is_none_or(|a| a.in_active);
        if (was_parked && in_active) || applied.is_some_and(|a| a.moved_in) {
            self.make_ready(id.to_string(), Line::New);
        }
    }

    /// A lane step returned.
    pub fn lane_done(&mut self, done: LaneResult) {
        let step = self.running.take();
        let done = match done {
            Ok(d) => d,
            Err(e) => return self.lane_failed(step, &e),
        };
        match done {
            Done::Control(req, applied) => self.control_done(req, applied),
            Done::FlushListed(req, ids) => self.flush_started(req, ids),
            Done::Pickup(w, ready) => {
                for id in ready {
                    self.make_ready(id, Line::New);
                }
                if !w.finished() {
                    self.pickup = Some(w);
                } else if std::mem::take(&mut self.pickup_again) {
                    self.pickup = Some(Walk::default());
                }
            }
            Done::Recover(r, ready) => {
                for id in ready {
                    self.make_ready(id, Line::Backlog);
                }
                if r.walk.finished() {
                    recovered(&r);
                } else {
                    self.recovery = Some(r);
                }
            }
            Done::Deferred(w, ready) => {
                for id in ready {
                    self.make_ready(id, Line::Backlog);
                }
                if w.walk.finished() {
                    self.walk_ended(&w);
                } else {
                    self.deferred = Some(w);
                }
            }
            Done::Active(ids) => {
                // Known ones are skipped (`make_ready`, `Ready::push`).
                for id in ids {
                    self.make_ready(id, Line::Backlog);
                }
            }
        }
    }

    fn lane_failed(&mut self, step: Option<Step>, e: &JoinError) {
        // A bug. What the step carried is lost: recovery and a walk end
        // (the next scan lists active/ and deferred/ again), a request
        // goes unanswered ("qmgr is shutting down" to its client).
        error!(error = %e, step = ?step, "queue work failed");
        match step {
            Some(Step::Control(Some(id))) => self.unbusy(&id, None),
            Some(Step::Deferred) => self.deadline = Instant::now() + self.ctx.scan_interval,
            Some(Step::Recover) => self.list_active = true,
            _ => {}
        }
    }

    fn control_done(&mut self, req: Request, applied: Applied) {
        match &applied.result {
            Ok(lines) => {
                for l in lines {
                    let id = l.split(':').next().unwrap_or("");
                    info!(queue_id = %id, op = %req.op.to_line(), result = %l, "queue command");
                }
                if matches!(req.op, Op::Release(_) | Op::Requeue(_)) {
                    self.want_pickup();
                }
            }
            Err(e) => warn!(op = %req.op.to_line(), error = %e, "queue command refused"),
        }
        if let Some(id) = req.op.id() {
            self.unbusy(id, Some(&applied));
        }
        let _ = req.reply.send(applied.result);
    }

    fn flush_started(&mut self, req: Request, ids: Result<VecDeque<String>, String>) {
        let res = ids.map(|ids| {
            let n = ids.len();
            info!(
                op = "FLUSH",
                messages = n,
                "queue command: flush of deferred/ started"
            );
            if n == 0 {
                return vec!["nothing deferred".to_string()];
            }
            // Replaces a scan's walk under way: the flush visits all.
            self.deferred = Some(DeferredWalk::flush(ids));
            vec![format!(
                "flushing {n} deferred message{}: moved to active/ as delivery slots free up, beside new mail",
                if n == 1 { "" } else { "s" }
            )]
        });
        if let Err(e) = &res {
            warn!(op = "FLUSH", error = %e, "queue command refused");
        }
        let _ = req.reply.send(res);
    }

    /// A walk over deferred/ ended: when is the next scan due?
    fn walk_ended(&mut self, w: &DeferredWalk) {
        let secs = w.started.map(|t| t.elapsed().as_secs_f64()).unwrap_or(0.0);
        if w.flush {
            info!(
                listed = w.listed,
                moved = w.moved,
                secs = format!("{secs:.1}"),
                "flush of deferred/ done: every listed message moved to active/"
            );
        }
        let mut due = w.next_due;
        if let Some(e) = self.earliest.take() {
            due = Some(due.map_or(e, |d| d.min(e)));
        }
        let mut wait = self.ctx.scan_interval;
        if let Some(n) = due {
            wait = wait.min(until(n));
        }
        self.deadline = Instant::now() + wait;
        debug!(listed = w.listed, moved = w.moved, in_flight = self.inflight.len(), waiting = self.ready.len(), next_scan_in = ?wait, "deferred/ walked");
    }

    /// Shutdown: no more steps or deliveries; requests waiting are
    /// answered that qmgr stops (by dropping them).
    pub fn stop(&mut self) {
        self.stopping = true;
        self.controls.clear();
        self.held.clear();
    }
}

/// The one line start-up recovery logs (one per message at debug level
/// only: a queue of 50,000 messages in active/ logged 50,000 lines at
/// every start).
fn recovered(r: &Recovery) {
    let t = &r.tally;
    let secs = format!(
        "{:.1}",
        r.started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0)
    );
    if t.found == 0 {
        info!(found = 0, "start-up: active/ was empty");
        return;
    }
    let duplicates = if t.first_attempts + t.in_progress > 0 {
        format!(
            "; {} never tried and {} retries in progress: if one was being delivered when qmgr stopped, a duplicate delivery may follow (queue ids at debug level; retries warned each)",
            t.first_attempts, t.in_progress
        )
    } else {
        String::new()
    };
    info!(
        found = t.found,
        tried_now = t.tried_now,
        never_tried = t.first_attempts,
        in_progress = t.in_progress,
        to_deferred = t.to_deferred,
        gone = t.gone,
        secs,
        "start-up: {} messages found in active/: {} tried now, {} returned to deferred/ (tried, not due){duplicates}",
        t.found,
        t.tried_now,
        t.to_deferred
    );
}
