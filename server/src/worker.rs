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
//! `metrics.rs`), and where a graceful shutdown closes sessions: once the server is
//! draining, each session is closed 1001 "going away" as soon as its queued output has been
//! written (or after `shutdown_flush`, whichever is first).
//!
//! Pings ride along with the session's next data write instead of costing a system call
//! each (10,000 sessions pinged every 15 s were 670 extra writes a second, each stalling the
//! worker's deliveries for its duration); a ping no data has carried out by the session's
//! next visit is sent on its own then, one `sweep_interval` late at most.
//!
//! The sweep runs on the same thread as the router, so while it runs no tick is delivered.
//! It therefore visits the sessions in [`SWEEP_SLICES`] slices, one slice per
//! `sweep_interval / SWEEP_SLICES`: every session is still seen once per `sweep_interval`,
//! but a worker with 10,000 sessions stops delivering for a tenth of the time at once
//! (touching a session's cold state costs a few hundred nanoseconds, which one pass over
//! every session made into milliseconds of delivery stall ten times a second).

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

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
pub const SWEEP_SLICES: usize = 10;

/// The sweep slice of session `id` (ids count per worker above their low 6 bits).
fn slice_of(id: u64) -> usize {
    ((id >> 6) % SWEEP_SLICES as u64) as usize
}

async fn sweep(worker: std::rc::Weak<Worker>) {
    let period = match worker.upgrade() {
        Some(w) => w.limits.sweep_interval / SWEEP_SLICES as u32,
        None => return,
    };
    let mut timer = tokio::time::interval(period);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ping = frame(Opcode::Ping, b"");
    let mut slice = 0;
    loop {
        timer.tick().await;
        let Some(w) = worker.upgrade() else { return };
        slice = (slice + 1) % SWEEP_SLICES;
        if slice == 0 {
            report_worker_counters(&w);
        }
        sweep_slice(&w, slice, &ping);
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
