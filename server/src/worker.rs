//! Per-worker state: the router and the registry of this worker's sessions.
//!
//! actix-web runs each worker on its own single-threaded runtime; every session lives on the
//! worker that accepted its connection. The first connection on a worker creates its
//! [`Worker`]: it claims one of the hub's worker queues, spawns the router loop that drains
//! that queue, and spawns the *sweep*, two timers per worker (not one per session) that send
//! heartbeats, closes slow consumers and silent clients, and cuts connections whose close
//! did not complete in time.
//!
//! The sweep is also where per-session counters reach the global metrics (see
//! `metrics.rs`), where idle sessions give back the queue memory a burst grew, and where a
//! graceful shutdown closes sessions: once the server is draining, each session is closed
//! 1001 "going away" as soon as its queued output has been written (or after
//! `shutdown_flush`, whichever is first).
//!
//! Pings ride along with the session's next data write instead of costing a system call
//! each: a ping no data has carried out by the session's next visit by the pass over every
//! session is sent on its own then, one [`idle_period`] late at most. 10,000 sessions are
//! pinged 667 times a second at the default 15 s; sent on their own, each of those writes
//! stalls the worker's deliveries for its duration.
//!
//! The sweep runs on the same thread as the router, so while it runs no tick is delivered.
//! It therefore visits as few sessions as it can, a few at a time, in two passes:
//!
//! * **Flagged sessions, every `sweep_interval`.** A connection flags its session whenever
//!   it runs (it wrote, read, or ended), and a visit keeps a session flagged while it has
//!   output waiting, a blocked socket, or a close in progress. These are the sessions whose
//!   counters, lag, memory and close deadline can have changed.
//! * **Every session, once per [`idle_period`]** (at most a second): the only things that
//!   happen to a session with nothing in flight are a ping falling due, a client going
//!   silent for too long and a shutdown, none of which needs a visit every 100 ms.
//!
//! Each pass is cut into steps of about [`SESSIONS_PER_STEP`] sessions (touching a session's
//! cold state costs a few hundred nanoseconds: a pass over 10,000 sessions at once stalled
//! delivery for milliseconds). Before the two passes, a worker with 10,000 sessions visited
//! all of them every 100 ms, 100,000 visits a second, most of them to sessions with nothing
//! to do; a tick that arrived during a step waited for it (W3's p99 dropped by 50-70 µs in
//! runs without pings in the window, docs/benchmarks.md).
//!
//! A worker with few sessions wakes once per pass; one with 10,000 once a millisecond.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tickwire_engine::fanout::{CloseReason, Hub, Router, StreamStats};
use tickwire_engine::wire::{frame, Opcode};

use crate::config::SessionLimits;
use crate::metrics::Metrics;
use crate::transport::SessionShared;

thread_local! {
    static CURRENT: RefCell<Option<Rc<Worker>>> = const { RefCell::new(None) };
}

/// See the module documentation.
pub struct Worker {
    pub router: Rc<RefCell<Router>>,
    pub limits: Arc<SessionLimits>,
    pub metrics: Arc<Metrics>,
    /// The sessions by id, in [`SWEEP_SLICES`] slices (by the id's per-worker counter).
    sessions: RefCell<Vec<HashMap<u64, Rc<SessionShared>>>>,
    /// Sessions flagged since the flagged pass last took this list (see the module docs).
    flagged: RefCell<Vec<Rc<SessionShared>>>,
    next_session: Cell<u64>,
    index: usize,
    /// Router resyncs already added to the global metrics.
    reported_resyncs: Cell<u64>,
    /// Shared-stream counters already added to the global metrics.
    reported_streams: Cell<StreamStats>,
    /// When this worker first saw the server draining.
    drain_started: Cell<Option<Instant>>,
}

impl Worker {
    /// This thread's worker, created on first use.
    pub fn current(
        hub: &Arc<Hub>,
        limits: &Arc<SessionLimits>,
        metrics: &Arc<Metrics>,
    ) -> Rc<Worker> {
        CURRENT.with(|cell| {
            if let Some(w) = cell.borrow().as_ref() {
                return w.clone();
            }
            let index = hub.claim_worker();
            let router = Rc::new(RefCell::new(Router::with_streams(
                hub.clone(),
                index,
                limits.shared_streams,
            )));
            let worker = Rc::new(Worker {
                router: router.clone(),
                limits: limits.clone(),
                metrics: metrics.clone(),
                sessions: RefCell::new((0..SWEEP_SLICES).map(|_| HashMap::new()).collect()),
                flagged: RefCell::new(Vec::new()),
                next_session: Cell::new(0),
                index,
                reported_resyncs: Cell::new(0),
                reported_streams: Cell::new(StreamStats::default()),
                drain_started: Cell::new(None),
            });
            actix_rt::spawn(Router::run(router));
            actix_rt::spawn(sweep_flagged(Rc::downgrade(&worker)));
            actix_rt::spawn(sweep_all(Rc::downgrade(&worker)));
            tracing::debug!(worker = index, "server worker attached to hub");
            *cell.borrow_mut() = Some(worker.clone());
            worker
        })
    }

    /// A new session id, unique across workers.
    pub fn next_session_id(&self) -> u64 {
        let n = self.next_session.get();
        self.next_session.set(n + 1);
        (n << 6) | self.index as u64
    }

    /// Registers a session with the sweep.
    pub fn add_session(&self, s: Rc<SessionShared>) {
        self.flag(&s);
        self.sessions.borrow_mut()[slice_of(s.id)].insert(s.id, s);
    }

    /// Asks the sweep to visit `s` at its next flagged pass: its connection ran, so its
    /// counters, output or state may have changed. Cheap when already flagged.
    #[inline]
    pub fn flag(&self, s: &Rc<SessionShared>) {
        if !s.flagged.replace(true) {
            self.flagged.borrow_mut().push(s.clone());
        }
    }

    /// Number of sessions on this worker.
    pub fn session_count(&self) -> usize {
        self.sessions
            .borrow()
            .iter()
            .map(HashMap::len)
            .sum::<usize>()
    }
}

/// Into how many slices the sweep divides a worker's sessions (see the module docs).
pub const SWEEP_SLICES: usize = 100;

/// About how many sessions one sweep step visits.
const SESSIONS_PER_STEP: usize = 64;

/// The divisors of [`SWEEP_SLICES`]: the step counts a pass can be cut into.
const STEP_COUNTS: [usize; 9] = [1, 2, 4, 5, 10, 20, 25, 50, 100];

/// The longest the pass over every session may take.
const MAX_IDLE_PERIOD: Duration = Duration::from_secs(1);

/// The sweep slice of session `id` (ids count per worker above their low 6 bits).
fn slice_of(id: u64) -> usize {
    ((id >> 6) % SWEEP_SLICES as u64) as usize
}

/// How often the pass over every session comes round: a tenth of the ping interval or the
/// client timeout, whichever is shorter, so pings and timeouts stay that precise; at most
/// [`MAX_IDLE_PERIOD`], never more often than `sweep_interval`.
pub fn idle_period(limits: &SessionLimits) -> Duration {
    (limits.ping_interval.min(limits.client_timeout) / 10)
        .min(MAX_IDLE_PERIOD)
        .max(limits.sweep_interval)
}

/// Steps per pass for `sessions` sessions: enough to keep each near [`SESSIONS_PER_STEP`],
/// but no step shorter than a millisecond (the timer's resolution).
fn steps_per_pass(sessions: usize, interval: Duration) -> usize {
    let wanted = sessions.div_ceil(SESSIONS_PER_STEP);
    let timer_max = interval.as_millis().max(1) as usize;
    let fits = |k: &usize| *k <= timer_max;
    let at_most = STEP_COUNTS.iter().copied().filter(fits).max().unwrap_or(1);
    STEP_COUNTS
        .iter()
        .copied()
        .find(|k| *k >= wanted)
        .unwrap_or(SWEEP_SLICES)
        .min(at_most)
}

/// The pass over flagged sessions, every `sweep_interval`; also reports the worker's
/// counters and starts a graceful shutdown's closes.
async fn sweep_flagged(worker: std::rc::Weak<Worker>) {
    let ping = frame(Opcode::Ping, b"");
    loop {
        let Some(interval) = worker.upgrade().map(|w| w.limits.sweep_interval) else {
            return;
        };
        let pass_start = tokio::time::Instant::now();
        let due = {
            let Some(w) = worker.upgrade() else { return };
            report_worker_counters(&w);
            notice_draining(&w);
            w.flagged.take()
        };
        let steps = steps_per_pass(due.len(), interval);
        let per_step = due.len().div_ceil(steps).max(1);
        let mut chunks = due.chunks(per_step);
        for step in 1..=steps {
            if let Some(chunk) = chunks.next() {
                let Some(w) = worker.upgrade() else { return };
                let now = Instant::now();
                // One add per step, not per visit: a step is already a batch.
                w.metrics.sweep_visits_flagged.add(chunk.len() as u64);
                for s in chunk {
                    match visit(&w, s, now, &ping) {
                        Visited::InFlight => w.flagged.borrow_mut().push(s.clone()),
                        Visited::Quiet => s.flagged.set(false),
                        Visited::Gone => {
                            s.flagged.set(false);
                            w.sessions.borrow_mut()[slice_of(s.id)].remove(&s.id);
                        }
                    }
                }
            }
            tokio::time::sleep_until(pass_start + interval * step as u32 / steps as u32).await;
        }
    }
}

/// The pass over every session, once per [`idle_period`], a few slices a step. Flagged
/// sessions are left to [`sweep_flagged`]; a visit that finds a session with something in
/// flight (output waiting, a close) flags it.
async fn sweep_all(worker: std::rc::Weak<Worker>) {
    let ping = frame(Opcode::Ping, b"");
    let mut slice = 0;
    loop {
        let (period, steps) = match worker.upgrade() {
            Some(w) => {
                let period = idle_period(&w.limits);
                (period, steps_per_pass(w.session_count(), period))
            }
            None => return,
        };
        tokio::time::sleep(period / steps as u32).await;
        let Some(w) = worker.upgrade() else { return };
        for _ in 0..SWEEP_SLICES / steps {
            slice = (slice + 1) % SWEEP_SLICES;
            visit_slice(&w, slice, &ping);
        }
    }
}

/// Moves the router's and the shared streams' counters into the global metrics (once per
/// `sweep_interval`).
fn report_worker_counters(w: &Worker) {
    let resyncs = w.router.borrow().stats().resyncs;
    w.metrics
        .router_resyncs
        .add(resyncs - w.reported_resyncs.replace(resyncs));
    let streams = {
        let mut router = w.router.borrow_mut();
        router.maintain_streams();
        router.stream_stats()
    };
    let was = w.reported_streams.replace(streams);
    let m = &w.metrics;
    m.shared_streams
        .add(streams.groups as i64 - was.groups as i64);
    m.shared_stream_members
        .add(streams.members as i64 - was.members as i64);
    m.shared_stream_demotions
        .add(streams.demotions - was.demotions);
    m.shared_stream_frames.add(streams.frames - was.frames);
}

/// The first time this worker sees the server draining, flags every session, so the
/// flagged pass closes each once its output is flushed.
fn notice_draining(w: &Worker) {
    if !w.metrics.draining.load(Ordering::Relaxed) || w.drain_started.get().is_some() {
        return;
    }
    w.drain_started.set(Some(Instant::now()));
    tracing::info!(
        worker = w.index,
        sessions = w.session_count(),
        "draining: closing sessions 1001 once their output is flushed"
    );
    for slice in w.sessions.borrow().iter() {
        for s in slice.values() {
            w.flag(s);
        }
    }
}

/// Visits the sessions of one slice that are not flagged.
fn visit_slice(w: &Worker, slice: usize, ping: &bytes::Bytes) {
    let now = Instant::now();
    let mut gone = Vec::new();
    let mut in_flight = Vec::new();
    let mut visits = 0;
    for s in w.sessions.borrow()[slice].values() {
        if s.flagged.get() {
            continue;
        }
        visits += 1;
        match visit(w, s, now, ping) {
            Visited::InFlight => in_flight.push(s.clone()),
            Visited::Quiet => {}
            Visited::Gone => gone.push(s.id),
        }
    }
    let mut sessions = w.sessions.borrow_mut();
    for id in gone {
        sessions[slice].remove(&id);
    }
    drop(sessions);
    w.metrics.sweep_visits_all.add(visits);
    for s in &in_flight {
        w.flag(s);
    }
}

/// What a visit found.
enum Visited {
    /// Output waiting, a blocked socket or a close in progress: visit again next pass.
    InFlight,
    /// Nothing in flight.
    Quiet,
    /// The connection is gone (its actor has stopped too): the session leaves the registry.
    Gone,
}

/// One visit: counters, memory, drain, slow consumer, heartbeat, ping and close deadline.
fn visit(w: &Worker, s: &SessionShared, now: Instant, ping: &bytes::Bytes) -> Visited {
    s.flush_counters();
    if !s.body_alive.get() {
        return Visited::Gone;
    }
    let limits = &w.limits;
    let draining = w.drain_started.get();
    let flush_over = draining.is_some_and(|t| now.duration_since(t) >= limits.shutdown_flush);
    let mut outbox = s.outbox.borrow_mut();
    // Output waiting, a ping queued at an earlier visit included: a ping waits for data to
    // carry it until the session's next visit, then leaves on its own.
    let pending = outbox.has_pending();
    outbox.wake_if_pending();
    outbox.release_idle_memory();
    if outbox.closing().is_none() {
        if draining.is_some() && (outbox.queued_bytes() == 0 || flush_over) {
            outbox.close(CloseReason::GOING_AWAY);
        } else if outbox.sweep_lag(now) > limits.max_lag {
            outbox.close(CloseReason::SLOW_CONSUMER);
        } else if now.duration_since(s.last_seen.get()) > limits.client_timeout {
            outbox.close(CloseReason::HEARTBEAT_TIMEOUT);
        } else if now.duration_since(s.last_ping.get()) >= limits.ping_interval {
            s.last_ping.set(now);
            outbox.piggyback(ping.clone());
        }
    }
    if let Some(reason) = outbox.closing() {
        match s.close_deadline.get() {
            None => {
                if reason.code == CloseReason::SLOW_CONSUMER.code {
                    w.metrics.slow_consumer_closes.inc();
                    tracing::info!(parent: &s.span, "closing slow consumer");
                } else if reason.code == CloseReason::HEARTBEAT_TIMEOUT.code {
                    w.metrics.heartbeat_closes.inc();
                    tracing::info!(parent: &s.span, "closing silent client");
                }
                s.close_deadline.set(Some(now + limits.close_grace));
            }
            Some(deadline) if now >= deadline => {
                tracing::info!(
                    parent: &s.span,
                    code = reason.code,
                    "close did not complete; cutting connection"
                );
                s.cut();
                s.close_deadline.set(Some(now + limits.close_grace));
            }
            _ => {}
        }
        return Visited::InFlight;
    }
    // A ping queued just now does not count: it may wait for data until the next pass over
    // every session.
    if pending || s.write_blocked.get() || draining.is_some() {
        Visited::InFlight
    } else {
        Visited::Quiet
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_keep_visits_small_without_outrunning_the_timer() {
        let pass = Duration::from_millis(100);
        assert_eq!(steps_per_pass(0, pass), 1);
        assert_eq!(steps_per_pass(64, pass), 1);
        assert_eq!(steps_per_pass(65, pass), 2);
        assert_eq!(
            steps_per_pass(5_000, pass),
            100,
            "79 wanted: the next divisor"
        );
        assert_eq!(steps_per_pass(1_000_000, pass), 100);
        // A 10 ms pass allows ten 1 ms steps at most.
        assert_eq!(steps_per_pass(5_000, Duration::from_millis(10)), 10);
        assert_eq!(steps_per_pass(100, Duration::from_millis(10)), 2);
        for k in STEP_COUNTS {
            assert_eq!(SWEEP_SLICES % k, 0, "{k} divides the slices");
        }
    }

    #[test]
    fn every_session_is_visited_often_enough_for_pings_and_timeouts() {
        let limits = |ping, timeout, sweep| SessionLimits {
            ping_interval: Duration::from_millis(ping),
            client_timeout: Duration::from_millis(timeout),
            sweep_interval: Duration::from_millis(sweep),
            ..SessionLimits::default()
        };
        let ms = |d: Duration| d.as_millis();
        // Defaults (15 s pings, 45 s timeout): once a second.
        assert_eq!(ms(idle_period(&SessionLimits::default())), 1000);
        // A tenth of the shorter of the two.
        assert_eq!(ms(idle_period(&limits(5_000, 3_000, 100))), 300);
        // Never more often than the sweep interval.
        assert_eq!(ms(idle_period(&limits(200, 1_000, 100))), 100);
        assert_eq!(ms(idle_period(&limits(60_000, 60_000, 2_000))), 2000);
    }
}
