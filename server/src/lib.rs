//! # tickwire-server
//!
//! The network edge of Tickwire: actix-web HTTP routes and WebSocket client sessions on top
//! of the engine's fan-out.
//!
//! * [`app`]: routes and server start-up.
//! * [`session`]: the per-client session actor (requests, subscriptions, limits).
//! * [`net`]: the listener, TLS, and the WebSocket upgrade that takes connections away
//!   from actix-http.
//! * [`transport`]: a WebSocket connection after its handshake (writes the outbox, reads
//!   client frames).
//! * [`worker`]: per-worker router and the sweep (heartbeats, slow consumers, metric
//!   deltas, closing sessions during a graceful shutdown).
//! * [`ws`]: WebSocket handshake negotiation, the inbound frame decoder, outbound framing
//!   and batching.
//! * [`protocol`]: client requests and replies.
//! * [`web`]: the embedded trading UI and JS client library.
//! * [`config`]: every setting, the TOML file layout, environment overrides, validation.
//! * [`metrics`]: counters, the latency histogram, and the Prometheus and JSON exports.
//! * [`reload`]: applying a changed configuration on SIGHUP or `POST /admin/reload`.
//! * [`security`]: tickets, users and entitlements, origin checks, connection and rate
//!   limits.
//! * [`source`]: what the server serves from: a local engine or a gateway's NATS-fed hub.
//! * [`cluster`]: scale-out over NATS: the engine role's publisher, the gateway, the lease.

pub mod app;
pub mod cluster;
pub mod config;
pub mod metrics;
pub mod net;
pub mod protocol;
pub mod reload;
pub mod replay;
pub mod security;
pub mod session;
pub mod source;
pub mod transport;
pub mod web;
pub mod worker;
pub mod ws;
