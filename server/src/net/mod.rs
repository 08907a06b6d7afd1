//! The network edge below HTTP: the listening socket, TLS, and the WebSocket upgrade.
//!
//! actix-http serves HTTP/1.1 and actix-web the routes; a WebSocket connection is taken away
//! from actix-http at the upgrade and runs on `crate::transport::Connection`, which keeps no
//! per-connection read or write buffer. See `listener.rs` for the service stack and
//! `docs/architecture.md` ("The WebSocket layer") for why.
//!
//! * [`listener`]: binding, the per-connection service stack, worker set-up.
//! * [`tls`]: rustls configuration, certificate loading and reloading.
//! * [`upgrade`]: the handshake and the hand-over to our transport.

pub mod listener;
pub mod tls;
pub mod upgrade;
