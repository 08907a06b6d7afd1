//! Per-worker state: the router and the registry of this worker's sessions.
//!
//! actix-web runs each worker on its own single-threaded runtime; every session lives on the
//! worker that accepted its connection. The first connection on a worker creates its
//! [`Worker`]: it claims one of the hub's worker queues, spawns the router loop that drains
//! that queue, and spawns the *sweep*, one timer per worker (not per session) that sends
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
//! each (10,000 sessions pinged every 15 s were 670 extra writes a second, each stalling the
//! worker's deliveries for its duration); a ping no data has carried out by the session's
//! next visit is sent on its own then, one `sweep_interval` late at most.
//!
//! The sweep runs on the same thread as the router, so while it runs no tick is delivered.
//! It therefore visits the sessions a few at a time: they are kept in [`SWEEP_SLICES`]
//! slices, and each pass over all of them (once per `sweep_interval`) is cut into as many
//! steps as keep a step near [`SESSIONS_PER_STEP`] sessions (touching a session's cold
//! state costs a few hundred nanoseconds: a pass over 10,000 sessions at once stalled
//! delivery for milliseconds, and a tenth of them still for hundreds of microseconds).
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
                next_session: Cell::new(0),
                index,
                reported_resyncs: Cell::new(0),
                reported_streams: Cell::new(StreamStats::default()),
                drain_started: Cell::new(None),
            });
            actix_rt::spawn(Router::run(router));
            actix_rt::spawn(sweep(Rc::downgrade(&worker)));
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
        self.sessions.borrow_mut()[slice_of(s.id)].insert(s.id, s);
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

/// The sweep slice of session `id` (ids count per worker above their low 6 bits).
fn slice_of(id: u64) -> usize {
    ((id >> 6) % SWEEP_SLICES as u64) as usize
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

async fn sweep(worker: std::rc::Weak<Worker>) {
    let ping = frame(Opcode::Ping, b"");
    let mut slice = 0;
    loop {
        let (interval, steps) = match worker.upgrade() {
            Some(w) => {
                let interval = w.limits.sweep_interval;
                (interval, steps_per_pass(w.session_count(), interval))
            }
            None => return,
        };
        tokio::time::sleep(interval / steps as u32).await;
        let Some(w) = worker.upgrade() else { return };
        for _ in 0..SWEEP_SLICES / steps {
            slice = (slice + 1) % SWEEP_SLICES;
            if slice == 0 {
                report_worker_counters(&w);
            }
            sweep_slice(&w, slice, &ping);
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

/// One slice of the sweep: counters, drain, slow consumers, heartbeats and close deadlines
/// of the sessions in `slice`.
fn sweep_slice(w: &Worker, slice: usize, ping: &bytes::Bytes) {
    let now = Instant::now();
    let limits = &w.limits;
    // Connections that are gone leave the registry; their actors have stopped too.
    w.sessions.borrow_mut()[slice].retain(|_, s| {
        s.flush_counters();
        s.body_alive.get()
    });
    let draining = w.metrics.draining.load(Ordering::Relaxed);
    if draining && w.drain_started.get().is_none() {
        w.drain_started.set(Some(now));
        tracing::info!(
            worker = w.index,
            sessions = w.session_count(),
            "draining: closing sessions 1001 once their output is flushed"
        );
    }
    let flush_over = w
        .drain_started
        .get()
        .is_some_and(|t| now.duration_since(t) >= limits.shutdown_flush);
    for s in w.sessions.borrow()[slice].values() {
        let mut outbox = s.outbox.borrow_mut();
        // A ping queued at the previous visit that no data write has carried out yet.
        outbox.wake_if_pending();
        outbox.release_idle_memory();
        if outbox.closing().is_none() {
            if draining && (outbox.queued_bytes() == 0 || flush_over) {
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
                Some(deadline) if now >= deadline && s.body_alive.get() => {
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
        }
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
}
