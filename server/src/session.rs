//! The session actor: one per WebSocket client.
//!
//! It owns what the client asked for: it reads and validates the client's frames, applies
//! subscriptions through the worker's [`Router`](tickwire_engine::fanout::Router), replies
//! (acks, pongs, errors) through the session's outbox, and enforces the per-session limits.
//! Market data does not pass through the actor's mailbox at all: the router writes it
//! straight into the outbox and the transport drains it (see `transport.rs`). When the actor
//! stops, its subscriptions are removed so nothing is routed to a dead session.
//!
//! Every session event is logged inside the session's span (`session`, `peer`, `user`) and
//! counted: connects, disconnects by reason, and active subscriptions by channel.
//!
//! The session's [`Admission`] (from `security/`) carries the user's entitlements, checked
//! on every subscribe, the message rate limiter, checked on every frame, and the connection
//! slots, released when the actor goes. A reload that changes the user's entitlements
//! arrives as an [`AccessChanged`] message: streams no longer allowed are removed and
//! announced to the client.

use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

use tickwire_engine::domain::{Nanos, SymbolId, SymbolTable};
use tickwire_engine::fanout::{CloseReason, Hub, StreamSpec, SubscribeSpec};
use tickwire_engine::tick::{Channel, ChannelSet};
use tickwire_engine::wire::{frame, Opcode};

use crate::metrics::DisconnectReason;
use crate::protocol::{self, ErrorCode, Request, RequestError};
use crate::security::rate::Verdict;
use crate::security::{AccessChanged, Admission, ACCESS_REVOKED, IDLE_TIMEOUT, RATE_LIMITED};
use crate::transport::SessionShared;
use crate::worker::Worker;
use crate::ws::{Inbound, InboundError, Negotiated};

/// Default book depth when a subscribe names none.
pub const DEFAULT_DEPTH: u8 = 10;

/// A session's subscription of one symbol, as far as its messages depend on it.
#[derive(Debug, Clone, Copy, Default)]
struct Held {
    channels: ChannelSet,
    depth: u8,
    /// Some subscribe of this symbol asked for a throttle: its messages depend on timing.
    throttled: bool,
}

/// See the module documentation.
pub struct Session {
    shared: Rc<SessionShared>,
    worker: Rc<Worker>,
    symbols: std::sync::Arc<SymbolTable>,
    hub: std::sync::Arc<Hub>,
    negotiated: Negotiated,
    subscribed: Vec<SymbolId>,
    /// What is held per subscribed symbol: for the subscription gauges and for finding the
    /// sessions that receive identical streams (shared compression).
    channels: std::collections::HashMap<SymbolId, Held>,
    /// The client sent a close frame.
    client_closed: bool,
    /// Private replays this session asked for.
    replays: crate::replay::session::SessionReplays,
    /// Who the client is and what it may do (see `security/`).
    admission: Admission,
    /// When the client last sent a request, for the idle timeout.
    last_request: Instant,
    idle_timer: Option<SpawnHandle>,
}

impl Session {
    pub fn new(
        shared: Rc<SessionShared>,
        worker: Rc<Worker>,
        symbols: std::sync::Arc<SymbolTable>,
        hub: std::sync::Arc<Hub>,
        negotiated: Negotiated,
        admission: Admission,
    ) -> Self {
        Session {
            admission,
            last_request: Instant::now(),
            idle_timer: None,
            shared,
            worker,
            symbols,
            hub,
            negotiated,
            subscribed: Vec::new(),
            channels: std::collections::HashMap::new(),
            client_closed: false,
            replays: Default::default(),
        }
    }

    /// Who this session belongs to (replay limits count per user); "anonymous" when
    /// authentication is off.
    fn user(&self) -> &str {
        self.admission.user()
    }

    /// Records that `symbol`'s channels went from what we had to `now` (gauges by channel);
    /// `request` is the subscribe that did it, if one did.
    fn track_channels(
        &mut self,
        symbol: SymbolId,
        now: ChannelSet,
        request: Option<&SubscribeSpec>,
    ) {
        let before = if now.is_empty() {
            self.channels.remove(&symbol).unwrap_or_default()
        } else {
            let old = self.channels.get(&symbol).copied();
            let held = Held {
                channels: now,
                depth: request.map_or(old.map_or(DEFAULT_DEPTH, |o| o.depth), |r| r.depth),
                throttled: old.is_some_and(|o| o.throttled)
                    || request.is_some_and(|r| r.throttle.is_some()),
            };
            self.channels.insert(symbol, held).unwrap_or_default()
        }
        .channels;
        let gauges = &self.worker.metrics.subscriptions;
        for c in Channel::ALL {
            match (before.contains(c), now.contains(c)) {
                (false, true) => gauges[c as usize].inc(),
                (true, false) => gauges[c as usize].dec(),
                _ => {}
            }
        }
    }

    /// What this session receives, for sharing a compression window with the sessions that
    /// receive the same (`None` when it cannot: no context takeover, batching, throttles).
    fn stream_spec(&self) -> Option<StreamSpec> {
        let n = &self.negotiated;
        if !(n.deflate && n.context_takeover) || n.batch || self.replays.any_running() {
            return None;
        }
        let mut symbols = Vec::with_capacity(self.channels.len());
        for (s, h) in &self.channels {
            if h.throttled {
                return None;
            }
            let depth = if h.channels.contains(Channel::Book) {
                h.depth.clamp(1, tickwire_engine::fanout::MAX_DEPTH as u8)
            } else {
                0
            };
            symbols.push((*s, h.channels, depth));
        }
        symbols.sort_unstable_by_key(|x| x.0);
        Some(StreamSpec {
            msgpack: n.msgpack,
            symbols,
        })
    }

    fn send(&self, frame: Bytes) {
        self.shared.outbox.borrow_mut().push_event(frame);
    }

    fn close(&self, reason: CloseReason) {
        self.shared.outbox.borrow_mut().close(reason);
    }

    fn reply_error(&self, err: &RequestError) {
        self.worker.metrics.request_errors.inc();
        tracing::debug!(parent: &self.shared.span, code = ?err.code, message = %err.message, "request refused");
        self.send(protocol::error(err, self.negotiated.msgpack));
    }

    fn handle_text(&mut self, text: &str) {
        self.last_request = Instant::now();
        let limits = &self.worker.limits;
        let req = match protocol::parse_request(text, &limits.request) {
            Ok(r) => r,
            Err(e) => return self.reply_error(&e),
        };
        match req {
            Request::Ping { id } => self.send(protocol::pong(
                &id,
                Nanos::now().get(),
                self.negotiated.msgpack,
            )),
            Request::Subscribe {
                id,
                symbols,
                channels,
                depth,
                throttle_ms,
            } => {
                let ids = match self.resolve(&id, &symbols) {
                    Ok(ids) => ids,
                    Err(e) => return self.reply_error(&e),
                };
                let new = ids.iter().filter(|s| !self.subscribed.contains(s)).count();
                if let Err(e) = self.admission.access().check_subscribe(
                    &id,
                    &symbols,
                    channels,
                    self.subscribed.len() + new,
                    limits.max_symbols_per_session,
                ) {
                    return self.reply_error(&e);
                }
                let spec = SubscribeSpec {
                    channels,
                    depth: depth.unwrap_or(DEFAULT_DEPTH),
                    throttle: throttle_ms
                        .filter(|t| *t > 0)
                        .map(|t| Duration::from_millis(t as u64)),
                    encoding: self.negotiated.encoding(),
                };
                // The ack goes first so the client sees it before the snapshots.
                self.send(protocol::ack(
                    "subscribed",
                    &id,
                    &symbols,
                    channels,
                    self.negotiated.msgpack,
                ));
                let worker = self.worker.clone();
                let mut router = worker.router.borrow_mut();
                // The snapshots that follow are not part of any shared stream.
                router.leave_stream(self.shared.id);
                for s in ids {
                    let now = router.subscribe(self.shared.id, &self.shared.outbox, s, spec);
                    self.track_channels(s, now, Some(&spec));
                    if !self.subscribed.contains(&s) {
                        self.subscribed.push(s);
                    }
                }
                router.set_stream_spec(self.shared.id, &self.shared.outbox, self.stream_spec());
            }
            Request::Replay(r) => {
                let (shared, enc) = (self.shared.clone(), self.negotiated.encoding());
                let user = self.user().to_string();
                // A replay's frames are compressed on their own: they must not land between
                // the frames of a shared compression window.
                self.worker.router.borrow_mut().leave_stream(self.shared.id);
                if let Err(e) = self.replays.handle(r, &shared, enc, &user) {
                    self.reply_error(&e);
                }
                let spec = self.stream_spec();
                self.worker.router.borrow_mut().set_stream_spec(
                    self.shared.id,
                    &self.shared.outbox,
                    spec,
                );
            }
            Request::Unsubscribe {
                id,
                symbols,
                channels,
            } => {
                let ids = match self.resolve(&id, &symbols) {
                    Ok(ids) => ids,
                    Err(e) => return self.reply_error(&e),
                };
                {
                    let worker = self.worker.clone();
                    let mut router = worker.router.borrow_mut();
                    router.leave_stream(self.shared.id);
                    for s in ids {
                        let left = router.unsubscribe(self.shared.id, s, channels);
                        self.track_channels(s, left, None);
                        if left.is_empty() {
                            self.subscribed.retain(|x| *x != s);
                        }
                    }
                    router.set_stream_spec(self.shared.id, &self.shared.outbox, self.stream_spec());
                }
                self.send(protocol::ack(
                    "unsubscribed",
                    &id,
                    &symbols,
                    channels,
                    self.negotiated.msgpack,
                ));
            }
        }
    }

    /// Removes `streams` (symbol, channels) and tells the client why, one `unsubscribed`
    /// message per distinct channel set.
    fn revoke(&mut self, streams: Vec<(SymbolId, ChannelSet)>, reason: &str) {
        let mut groups: Vec<(ChannelSet, Vec<String>)> = Vec::new();
        let worker = self.worker.clone();
        let mut router = worker.router.borrow_mut();
        router.leave_stream(self.shared.id);
        for (s, lose) in streams {
            let left = router.unsubscribe(self.shared.id, s, lose);
            self.track_channels(s, left, None);
            if left.is_empty() {
                self.subscribed.retain(|x| *x != s);
            }
            self.admission
                .metrics()
                .revoked_streams
                .add(lose.iter().count() as u64);
            let name = self.symbols.get(s).symbol.clone();
            match groups.iter_mut().find(|(c, _)| *c == lose) {
                Some((_, names)) => names.push(name),
                None => groups.push((lose, vec![name])),
            }
        }
        router.set_stream_spec(self.shared.id, &self.shared.outbox, self.stream_spec());
        drop(router);
        for (channels, names) in groups {
            tracing::info!(parent: &self.shared.span, symbols = names.len(), channels = ?channels, reason, "streams revoked");
            self.send(protocol::revoked(
                &names,
                channels,
                reason,
                self.negotiated.msgpack,
            ));
        }
    }

    /// Closes the session after `limits.idle_timeout_ms` without subscriptions or requests.
    /// One timer, armed only while the session holds nothing.
    fn arm_idle_timer(&mut self, ctx: &mut Context<Self>) {
        let Some(timeout) = self.admission.idle_timeout else {
            return;
        };
        if self.idle_timer.is_some() || !self.subscribed.is_empty() {
            return;
        }
        let due = (self.last_request + timeout).saturating_duration_since(Instant::now());
        self.idle_timer = Some(ctx.run_later(due, move |act, ctx| {
            act.idle_timer = None;
            if !act.subscribed.is_empty() {
                return;
            }
            if act.last_request.elapsed() >= timeout {
                tracing::info!(parent: &act.shared.span, "closing idle session");
                act.close(IDLE_TIMEOUT);
                ctx.stop();
            } else {
                act.arm_idle_timer(ctx);
            }
        }));
    }

    /// Maps names to ids; all must be known, or nothing is applied.
    fn resolve(
        &self,
        id: &Option<protocol::RequestId>,
        names: &[String],
    ) -> Result<Vec<SymbolId>, RequestError> {
        let mut ids = Vec::with_capacity(names.len());
        let mut unknown = Vec::new();
        for n in names {
            match self.symbols.lookup(n) {
                Some(s) => ids.push(s),
                None => unknown.push(n.clone()),
            }
        }
        if unknown.is_empty() {
            return Ok(ids);
        }
        let shown: Vec<&str> = unknown.iter().take(5).map(String::as_str).collect();
        let mut err = RequestError::new(
            id.clone(),
            ErrorCode::UnknownSymbol,
            format!("unknown symbol(s): {}; see GET /symbols", shown.join(", ")),
        );
        err.symbols = unknown;
        Err(err)
    }
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        self.admission
            .attach(self.shared.id, ctx.address().recipient());
        self.arm_idle_timer(ctx);
        self.hub.add_session_encoding(self.negotiated.encoding());
        self.worker.add_session(self.shared.clone());
        self.worker.metrics.sessions_active.inc();
        self.worker.metrics.sessions_opened.inc();
        tracing::info!(parent: &self.shared.span, "session opened");
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.replays.stop_all();
        let mut router = self.worker.router.borrow_mut();
        router.remove_session(self.shared.id);
        for s in self.subscribed.drain(..) {
            router.unsubscribe(self.shared.id, s, ChannelSet(0xff));
        }
        drop(router);
        self.hub.remove_session_encoding(self.negotiated.encoding());
        let metrics = &self.worker.metrics;
        for (_, held) in self.channels.drain() {
            for c in held.channels.iter() {
                metrics.subscriptions[c as usize].dec();
            }
        }
        metrics.sessions_active.dec();
        let closing = self.shared.outbox.borrow().closing().cloned();
        let why = match &closing {
            // Only set when the client's close came first.
            _ if self.client_closed => DisconnectReason::ClientClose,
            Some(r) if *r == CloseReason::SLOW_CONSUMER => DisconnectReason::SlowConsumer,
            Some(r) if *r == RATE_LIMITED => DisconnectReason::RateLimit,
            Some(r) if *r == ACCESS_REVOKED => DisconnectReason::Auth,
            Some(r) if *r == IDLE_TIMEOUT => DisconnectReason::Idle,
            Some(r) if r.code == CloseReason::HEARTBEAT_TIMEOUT.code => DisconnectReason::Heartbeat,
            Some(r) if r.code == CloseReason::GOING_AWAY.code => DisconnectReason::Shutdown,
            // A protocol error, or a connection that dropped without a close frame.
            _ => DisconnectReason::Error,
        };
        metrics.disconnect(why);
        tracing::info!(
            parent: &self.shared.span,
            reason = why.as_str(),
            code = closing.as_ref().map(|r| r.code),
            "session closed"
        );
        // The worker's sweep cuts the connection if this close frame cannot get out.
        self.close(CloseReason {
            code: 1000,
            reason: "",
        });
    }
}

impl StreamHandler<Result<Inbound, InboundError>> for Session {
    fn handle(&mut self, msg: Result<Inbound, InboundError>, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.shared.last_seen.set(now);
        if matches!(msg, Ok(ref m) if !matches!(m, Inbound::Close(_))) {
            match self.admission.rate.check(now) {
                Verdict::Pass => {}
                Verdict::Drop { reply } => {
                    self.admission.metrics().rate_limited_messages.inc();
                    if reply {
                        self.reply_error(&RequestError::new(
                            None,
                            ErrorCode::RateLimited,
                            "too many messages: this one and others were dropped; slow down or be disconnected",
                        ));
                    }
                    return;
                }
                Verdict::Close => {
                    self.admission.metrics().rate_limited_messages.inc();
                    tracing::info!(parent: &self.shared.span, "closing: rate limit ignored");
                    self.close(RATE_LIMITED);
                    ctx.stop();
                    return;
                }
            }
        }
        match msg {
            Ok(Inbound::Text(text)) => {
                self.handle_text(&text);
                self.arm_idle_timer(ctx);
            }
            Ok(Inbound::Binary(_)) => self.reply_error(&RequestError::new(
                None,
                ErrorCode::Unsupported,
                "binary frames are not supported; send JSON text frames",
            )),
            Ok(Inbound::Ping(payload)) => self.send(frame(Opcode::Pong, &payload)),
            Ok(Inbound::Pong) => {}
            Ok(Inbound::Close(reason)) => {
                self.client_closed = self.shared.outbox.borrow().closing().is_none();
                let code = reason.map(|(code, _)| code).unwrap_or(1000);
                // Echo the client's code, as RFC 6455 asks, then end.
                let code = if matches!(code, 1000..=1003 | 1007..=1011 | 3000..=4999) {
                    code
                } else {
                    1000
                };
                self.close(CloseReason { code, reason: "" });
                ctx.stop();
            }
            Err(err) => {
                self.worker.metrics.protocol_closes.inc();
                let reason = CloseReason {
                    code: err.close_code(),
                    reason: err.close_reason(),
                };
                tracing::info!(parent: &self.shared.span, error = %err, "closing on protocol error");
                self.close(reason);
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

impl Handler<AccessChanged> for Session {
    type Result = ();

    fn handle(&mut self, msg: AccessChanged, ctx: &mut Context<Self>) {
        match msg.0 {
            None => {
                tracing::info!(parent: &self.shared.span, "user removed by reload; closing");
                self.close(ACCESS_REVOKED);
                ctx.stop();
            }
            Some(access) => {
                let lose = access.revocations(
                    self.channels.iter().map(|(s, h)| (s, &h.channels)),
                    &self.symbols,
                );
                self.admission.set_access(access);
                if !lose.is_empty() {
                    self.revoke(lose, "not_entitled");
                    self.arm_idle_timer(ctx);
                }
            }
        }
    }
}
