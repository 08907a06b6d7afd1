//! Per-client replays: `{"op":"replay",...}` gives a session its own private replay.
//!
//! Each replay is a private engine (feed handler running a [`ReplayAdapter`], one book actor
//! per replayed symbol) on the shared replay threads, publishing into a private, tagged
//! [`Hub`]: every message of the replay carries `"replay":"<id>"`, so a symbol can be live
//! and replayed on one connection. A private [`Router`] task on the session's own worker
//! thread drains that hub into the session's existing outbox, so throttling, conflation,
//! batching, compression and MessagePack work unchanged.
//!
//! Controls go to the adapter over a channel; its notices (sent after a book barrier) come
//! back through a queue, each tagged with the hub's publish count at that moment, and the
//! router task sends the acknowledgement only after it has routed every tick published
//! before it. So `replay_paused` means: nothing more of this replay follows.
//!
//! Flow control: when the session's outbox holds more than [`HIGH_WATER`] bytes the task
//! raises a flag that the adapter's backpressure check reads, and lowers it once the
//! outbox has drained completely; a full-speed replay thus follows its client's pace and
//! is never closed as a slow consumer.
//!
//! A replay ends with `replay_end` (its range is done) or `replay_stopped`, or with its
//! session; then its engine is shut down, its router entries freed and its limit slot
//! returned.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tickwire_engine::domain::SymbolId;
use tickwire_engine::fanout::{Hub, Router, SubscribeSpec};
use tickwire_engine::tick::{ChannelSet, Encoding};
use tickwire_engine::{Engine, EngineConfig};
use tickwire_feeds::replay::{
    Notice, ReplayAdapter, ReplayCommand, ReplayControl, ReplayOptions, ReplaySource, Speed,
};

use super::limits::Permit;
use super::protocol::{self, Control, Event, ReplayRequest, StartReplay, Started};
use crate::protocol::{ErrorCode, RequestError, RequestId};
use crate::transport::SessionShared;

/// Outbox bytes beyond which a replay waits for its client.
pub const HIGH_WATER: usize = 256 << 10;

struct NoticeQueue {
    q: Mutex<VecDeque<(u64, Notice)>>,
    notify: tokio::sync::Notify,
}

struct Running {
    engine: Engine,
    task: Option<tokio::task::JoinHandle<()>>,
    router: Rc<RefCell<Router>>,
    symbols: Vec<SymbolId>,
    hub: Arc<Hub>,
    encoding: Encoding,
    _permit: Permit,
}

struct Active {
    id: String,
    session: u64,
    control: ReplayControl,
    first: i64,
    last: i64,
    running: RefCell<Option<Running>>,
    /// Request ids of sent controls, answered in order.
    pending: RefCell<VecDeque<Option<RequestId>>>,
}

impl Active {
    fn teardown(&self, from_task: bool) {
        let Some(mut r) = self.running.borrow_mut().take() else {
            return;
        };
        if let Some(t) = r.task.take() {
            if !from_task {
                t.abort();
            }
        }
        let mut router = r.router.borrow_mut();
        for s in &r.symbols {
            router.unsubscribe(self.session, *s, ChannelSet(0xff));
        }
        drop(router);
        r.hub.remove_session_encoding(r.encoding);
        r.engine.shutdown();
        tracing::debug!(replay = %self.id, "replay torn down");
    }

    fn finished(&self) -> bool {
        self.running.borrow().is_none()
    }
}

/// The replays of one session.
#[derive(Default)]
pub struct SessionReplays {
    next: u32,
    active: Vec<Rc<Active>>,
}

fn err(id: &Option<RequestId>, code: ErrorCode, msg: impl Into<String>) -> RequestError {
    RequestError::new(id.clone(), code, msg)
}

fn fmt_time(t: i64) -> String {
    tickwire_feeds::replay::format_rfc3339(t)
}

impl SessionReplays {
    /// Handles a replay request of the session.
    pub fn handle(
        &mut self,
        req: ReplayRequest,
        shared: &Rc<SessionShared>,
        encoding: Encoding,
        user: &str,
    ) -> Result<(), RequestError> {
        self.active.retain(|a| !a.finished());
        match req {
            ReplayRequest::Start(s) => self.start(s, shared, encoding, user),
            ReplayRequest::Control {
                id,
                replay,
                control,
            } => {
                let Some(a) = self.active.iter().find(|a| a.id == replay) else {
                    return Err(err(
                        &id,
                        ErrorCode::UnknownReplay,
                        format!("no running replay {replay:?} in this session (it may have ended)"),
                    ));
                };
                let cmd = match control {
                    Control::Pause => ReplayCommand::Pause,
                    Control::Resume => ReplayCommand::Resume,
                    Control::Stop => ReplayCommand::Stop,
                    Control::Speed(s) => ReplayCommand::Speed(s),
                    Control::Seek(t) => {
                        if t < a.first || t > a.last {
                            return Err(err(
                                &id,
                                ErrorCode::BadRange,
                                format!(
                                    "seek to {} is outside the dataset ({} to {})",
                                    fmt_time(t),
                                    fmt_time(a.first),
                                    fmt_time(a.last)
                                ),
                            ));
                        }
                        ReplayCommand::Seek(t)
                    }
                };
                a.pending.borrow_mut().push_back(id.clone());
                if !a.control.send(cmd) {
                    a.pending.borrow_mut().pop_back();
                    return Err(err(
                        &id,
                        ErrorCode::UnknownReplay,
                        format!("replay {replay:?} has ended"),
                    ));
                }
                Ok(())
            }
        }
    }

    /// Whether a replay of this session may still send frames.
    pub fn any_running(&self) -> bool {
        self.active.iter().any(|a| !a.finished())
    }

    /// Stops every replay (the session is ending).
    pub fn stop_all(&mut self) {
        for a in self.active.drain(..) {
            a.teardown(false);
        }
    }

    fn start(
        &mut self,
        req: StartReplay,
        shared: &Rc<SessionShared>,
        encoding: Encoding,
        user: &str,
    ) -> Result<(), RequestError> {
        let id = &req.id;
        let service = super::service::get()
            .ok_or_else(|| err(id, ErrorCode::DatasetUnavailable, "replays are not enabled"))?;
        let ds = service.catalog.get(&req.dataset).ok_or_else(|| {
            err(
                id,
                ErrorCode::UnknownDataset,
                format!("unknown dataset {:?}; see GET /datasets", req.dataset),
            )
        })?;
        let reader = ds.reader.as_ref().map_err(|e| {
            err(
                id,
                ErrorCode::DatasetUnavailable,
                format!("dataset {:?} cannot be read: {e}", req.dataset),
            )
        })?;
        let instruments = ds.instruments().map_err(|e| {
            err(
                id,
                ErrorCode::DatasetUnavailable,
                format!("dataset {:?} cannot be read: {e}", req.dataset),
            )
        })?;
        let (first, last) = reader.time_range().ok_or_else(|| {
            err(
                id,
                ErrorCode::DatasetUnavailable,
                format!("dataset {:?} holds no records", req.dataset),
            )
        })?;
        let default_from = tickwire_feeds::replay::source::session_open(reader)
            .filter(|t| (first..=last).contains(t));
        let from = req.from.or(default_from);
        let (lo, hi) = (from.unwrap_or(first), req.to.unwrap_or(last));
        if lo > hi {
            return Err(err(
                id,
                ErrorCode::BadRange,
                format!("from ({}) is after to ({})", fmt_time(lo), fmt_time(hi)),
            ));
        }
        if lo > last || hi < first {
            return Err(err(
                id,
                ErrorCode::BadRange,
                format!(
                    "{} to {} is outside the dataset ({} to {})",
                    fmt_time(lo),
                    fmt_time(hi),
                    fmt_time(first),
                    fmt_time(last)
                ),
            ));
        }
        let all: Vec<String> = instruments.iter().map(|i| i.symbol.clone()).collect();
        let symbols = match &req.symbols {
            None => all.clone(),
            Some(list) => {
                let unknown: Vec<String> =
                    list.iter().filter(|s| !all.contains(s)).cloned().collect();
                if !unknown.is_empty() {
                    let mut e = err(
                        id,
                        ErrorCode::UnknownSymbol,
                        format!(
                            "not in dataset {:?}: {}; see GET /datasets",
                            req.dataset,
                            unknown
                                .iter()
                                .take(5)
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    );
                    e.symbols = unknown;
                    return Err(e);
                }
                list.clone()
            }
        };
        let permit = service
            .limits
            .acquire(user)
            .map_err(|m| err(id, ErrorCode::LimitExceeded, m))?;
        let source =
            ReplaySource::with_instruments(vec![reader.clone()], vec![(*instruments).clone()])
                .map_err(|e| err(id, ErrorCode::DatasetUnavailable, e.to_string()))?;
        self.next += 1;
        let tag = format!("r{}", self.next);
        let (control, commands) = ReplayControl::new();
        let hub_cell: Arc<OnceLock<Arc<Hub>>> = Arc::new(OnceLock::new());
        let notices = Arc::new(NoticeQueue {
            q: Mutex::new(VecDeque::new()),
            notify: tokio::sync::Notify::new(),
        });
        let busy = Arc::new(AtomicBool::new(false));
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let mut opts = ReplayOptions::new(req.speed);
        opts.name = format!("replay {tag}");
        opts.from = from;
        opts.to = req.to;
        opts.symbols = Some(symbols.clone());
        opts.commands = Some(commands);
        opts.gate = Some(gate.clone());
        {
            let (hub_cell, notices) = (hub_cell.clone(), notices.clone());
            opts.notices = Some(Arc::new(move |n| {
                let published = hub_cell
                    .get()
                    .map_or(0, |h| h.stats.published.load(Ordering::SeqCst));
                notices
                    .q
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_back((published, n));
                notices.notify.notify_one();
            }));
        }
        {
            let (hub_cell, busy) = (hub_cell.clone(), busy.clone());
            opts.backpressure = Some(Arc::new(move || {
                busy.load(Ordering::Relaxed) || hub_cell.get().is_some_and(|h| h.queued(0) > 4096)
            }));
        }
        let adapter = ReplayAdapter::new(source, opts);
        let engine = Engine::start_on(
            vec![Box::new(adapter)],
            EngineConfig {
                server_workers: 1,
                worker_queue: 1 << 14,
                ..EngineConfig::default()
            },
            service.threads(),
            Some(Arc::from(tag.as_str())),
        )
        .map_err(|e| err(id, ErrorCode::DatasetUnavailable, e.to_string()))?;
        let hub = engine.hub().clone();
        let _ = hub_cell.set(hub.clone());
        hub.add_session_encoding(encoding);
        let router = Rc::new(RefCell::new(Router::new(hub.clone(), 0)));
        let spec = SubscribeSpec {
            channels: req.channels,
            depth: req.depth.unwrap_or(crate::session::DEFAULT_DEPTH),
            throttle: req
                .throttle_ms
                .filter(|t| *t > 0)
                .map(|t| Duration::from_millis(t as u64)),
            encoding,
        };
        let mut ids = Vec::new();
        for s in &symbols {
            if let Some(sid) = engine.symbols().lookup(s) {
                router
                    .borrow_mut()
                    .subscribe(shared.id, &shared.outbox, sid, spec);
                ids.push(sid);
            }
        }
        let started = Started {
            kind: "replay_started",
            id,
            replay: &tag,
            dataset: &req.dataset,
            from: lo,
            to: hi,
            speed: req.speed.into(),
            symbols: &symbols,
            channels: req.channels.iter().map(|c| c.as_str()).collect(),
            damaged: ds.damaged(),
            warning: ds.warning(),
        };
        shared
            .outbox
            .borrow_mut()
            .push_event(protocol::frame(&started, encoding.msgpack));
        tracing::info!(parent: &shared.span, replay = %tag, dataset = %req.dataset, speed = %req.speed,
            from = lo, to = hi, symbols = symbols.len(), "replay started");
        let active = Rc::new(Active {
            id: tag,
            session: shared.id,
            control,
            first,
            last,
            running: RefCell::new(None),
            pending: RefCell::new(VecDeque::new()),
        });
        let task = actix_rt::spawn(route(
            active.clone(),
            shared.clone(),
            hub.clone(),
            router.clone(),
            notices,
            busy,
            encoding.msgpack,
        ));
        *active.running.borrow_mut() = Some(Running {
            engine,
            task: Some(task),
            router,
            symbols: ids,
            hub,
            encoding,
            _permit: permit,
        });
        gate.add_permits(1);
        self.active.push(active);
        Ok(())
    }
}

/// Sends one notice to the client; `true` when the replay is over.
fn send_notice(a: &Active, shared: &SessionShared, n: Notice, msgpack: bool) -> bool {
    let mut id = None;
    let take_id = || a.pending.borrow_mut().pop_front().flatten();
    let (kind, at, speed, message, done) = match &n {
        Notice::Paused { at } => ("replay_paused", Some(*at), None, None, false),
        Notice::Resumed { at } => ("replay_resumed", Some(*at), None, None, false),
        Notice::Seeked { to } => ("replay_seeked", Some(*to), None, None, false),
        Notice::SpeedChanged { speed } => ("replay_speed_set", None, Some(*speed), None, false),
        Notice::Stopped => ("replay_stopped", None, None, None, true),
        Notice::Ended { at, .. } => ("replay_end", Some(*at), None, None, true),
        Notice::Damaged { message } => {
            ("replay_warning", None, None, Some(message.as_str()), false)
        }
    };
    if !matches!(n, Notice::Ended { .. } | Notice::Damaged { .. }) {
        id = take_id();
    }
    let ev = Event {
        kind,
        id: id.as_ref(),
        replay: &a.id,
        at,
        speed: speed.map(|s: Speed| s.into()),
        message,
    };
    shared
        .outbox
        .borrow_mut()
        .push_event(protocol::frame(&ev, msgpack));
    if done {
        tracing::info!(parent: &shared.span, replay = %a.id, kind, "replay over");
    }
    done
}

async fn route(
    active: Rc<Active>,
    shared: Rc<SessionShared>,
    hub: Arc<Hub>,
    router: Rc<RefCell<Router>>,
    notices: Arc<NoticeQueue>,
    busy: Arc<AtomicBool>,
    msgpack: bool,
) {
    const BATCH: usize = 1024;
    let mut batch = Vec::with_capacity(BATCH);
    let mut routed = 0u64;
    loop {
        let waiting = busy.load(Ordering::Relaxed);
        tokio::select! {
            _ = hub.recv_batch(0, &mut batch, BATCH) => {}
            _ = notices.notify.notified() => {}
            _ = tokio::time::sleep(Duration::from_millis(1)), if waiting => {}
        }
        hub.take_ready(0, &mut batch, BATCH);
        if !batch.is_empty() {
            let mut r = router.borrow_mut();
            let now = Instant::now();
            routed += batch.len() as u64;
            for t in batch.drain(..) {
                r.dispatch(&t, Some(now));
            }
        }
        let lost = hub.stats.worker_overflows.load(Ordering::Relaxed);
        loop {
            let next = {
                let mut q = notices.q.lock().unwrap_or_else(|e| e.into_inner());
                match q.front() {
                    Some((before, _)) if *before <= routed + lost => q.pop_front(),
                    _ => None,
                }
            };
            let Some((_, n)) = next else { break };
            if send_notice(&active, &shared, n, msgpack) {
                active.teardown(true);
                return;
            }
        }
        let (queued, closing) = {
            let o = shared.outbox.borrow();
            (o.queued_bytes(), o.closing().is_some())
        };
        if closing {
            active.teardown(true);
            return;
        }
        if queued > HIGH_WATER {
            busy.store(true, Ordering::Relaxed);
        } else if queued == 0 {
            busy.store(false, Ordering::Relaxed);
        }
        if batch.capacity() > BATCH * 4 {
            batch.shrink_to(BATCH);
        }
    }
}
