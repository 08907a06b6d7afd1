//! The session actor: one per WebSocket client.
//!
//! It owns what the client asked for: it reads and validates the client's frames, applies
//! subscriptions through the worker's [`Router`](tickwire_engine::fanout::Router), replies
//! (acks, pongs, errors) through the session's outbox, and enforces the per-session limits.
//! Market data does not pass through the actor's mailbox at all: the router writes it
//! straight into the outbox and the transport drains it (see `transport.rs`). When the actor
//! stops, its subscriptions are removed so nothing is routed to a dead session.

use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;

use tickwire_engine::domain::{Nanos, SymbolId, SymbolTable};
use tickwire_engine::fanout::{CloseReason, Hub, SubscribeSpec};
use tickwire_engine::tick::ChannelSet;
use tickwire_engine::wire::{frame, Opcode};

use crate::protocol::{self, ErrorCode, Request, RequestError};
use crate::transport::SessionShared;
use crate::worker::Worker;
use crate::ws::{Inbound, InboundError, Negotiated};

/// Default book depth when a subscribe names none.
pub const DEFAULT_DEPTH: u8 = 10;

/// See the module documentation.
pub struct Session {
    shared: Rc<SessionShared>,
    worker: Rc<Worker>,
    symbols: std::sync::Arc<SymbolTable>,
    hub: std::sync::Arc<Hub>,
    negotiated: Negotiated,
    subscribed: Vec<SymbolId>,
    peer: String,
}

impl Session {
    pub fn new(
        shared: Rc<SessionShared>,
        worker: Rc<Worker>,
        symbols: std::sync::Arc<SymbolTable>,
        hub: std::sync::Arc<Hub>,
        negotiated: Negotiated,
        peer: String,
    ) -> Self {
        Session {
            shared,
            worker,
            symbols,
            hub,
            negotiated,
            subscribed: Vec::new(),
            peer,
        }
    }

    fn send(&self, frame: Bytes) {
        self.shared.outbox.borrow_mut().push_event(frame);
    }

    fn close(&self, reason: CloseReason) {
        self.shared.outbox.borrow_mut().close(reason);
    }

    fn reply_error(&self, err: &RequestError) {
        self.worker.metrics.request_errors.inc();
        tracing::debug!(session = self.shared.id, peer = %self.peer, code = ?err.code, message = %err.message, "request refused");
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
                let mut router = self.worker.router.borrow_mut();
                for s in ids {
                    router.subscribe(self.shared.id, &self.shared.outbox, s, spec);
                    if !self.subscribed.contains(&s) {
                        self.subscribed.push(s);
                    }
                }
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
                    let mut router = self.worker.router.borrow_mut();
                    for s in ids {
                        if router.unsubscribe(self.shared.id, s, channels).is_empty() {
                            self.subscribed.retain(|x| *x != s);
                        }
                    }
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
        tracing::debug!(session = self.shared.id, peer = %self.peer, "session opened");
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        let mut router = self.worker.router.borrow_mut();
        for s in self.subscribed.drain(..) {
            router.unsubscribe(self.shared.id, s, ChannelSet(0xff));
        }
        drop(router);
        self.hub.remove_session_encoding(self.negotiated.encoding());
        self.worker.metrics.sessions_active.dec();
        let reason = self.shared.outbox.borrow().closing().map(|r| r.reason);
        tracing::debug!(session = self.shared.id, peer = %self.peer, reason, "session closed");
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
                tracing::info!(session = self.shared.id, peer = %self.peer, error = %err, "closing on protocol error");
                self.close(reason);
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}
