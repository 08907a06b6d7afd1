//! # tickwire-server
//!
//! The network edge of Tickwire: actix-web HTTP routes and WebSocket client sessions on top
//! of the engine's fan-out.
//!
//! * [`app`]: routes and server start-up.
//! * [`session`]: the per-client session actor (requests, subscriptions, limits).
//! * [`transport`]: the outbound WebSocket body that drains a session's outbox.
//! * [`worker`]: per-worker router and the sweep (heartbeats, slow consumers, metric
//!   deltas, closing sessions during a graceful shutdown).
//! * [`ws`]: WebSocket handshake negotiation and the inbound frame decoder.
//! * [`protocol`]: client requests and replies.
//! * [`web`]: the embedded trading UI and JS client library.
//! * [`config`]: every setting, the TOML file layout, environment overrides, validation.
//! * [`metrics`]: counters, the latency histogram, and the Prometheus and JSON exports.
//! * [`reload`]: applying a changed configuration on SIGHUP or `POST /admin/reload`.
//! * [`source`]: what the server serves from: a local engine or a gateway's NATS-fed hub.
//! * [`cluster`]: scale-out over NATS: the engine role's publisher, the gateway, the lease.

pub mod app;
pub mod cluster;
pub mod config;
pub mod metrics;
pub mod protocol;
pub mod reload;
pub mod session;
pub mod source;
pub mod transport;
pub mod web;
pub mod worker;
pub mod ws;
