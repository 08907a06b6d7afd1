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
}

impl Session {
    pub fn new(
        shared: Rc<SessionShared>,
        worker: Rc<Worker>,
        symbols: std::sync::Arc<SymbolTable>,
        hub: std::sync::Arc<Hub>,
        negotiated: Negotiated,
    ) -> Self {
        Session {
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

    /// Who this session belongs to: replay limits count per user. "anonymous" until
    /// authentication sets it.
    fn user(&self) -> &str {
        "anonymous"
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
                if self.subscribed.len() + new > limits.max_symbols_per_session {
                    return self.reply_error(&RequestError::new(
                        id,
                        ErrorCode::LimitExceeded,
                        format!(
                            "at most {} symbols per session",
                            limits.max_symbols_per_session
                        ),
                    ));
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

    fn started(&mut self, _ctx: &mut Context<Self>) {
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
            Some(r) if r.code == CloseReason::SLOW_CONSUMER.code => DisconnectReason::SlowConsumer,
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
        self.shared.last_seen.set(Instant::now());
        match msg {
            Ok(Inbound::Text(text)) => self.handle_text(&text),
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
