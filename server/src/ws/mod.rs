//! The WebSocket layer: handshake negotiation, the inbound frame decoder and the outbound
//! framing (throttle release, batching); `crate::transport` runs them on a connection.
//!
//! Why not actix-ws end to end: its outbound path copies every message into a per-connection
//! encoder behind a channel (so backpressure is invisible to conflation and each client pays
//! for encoding), and its inbound decoder (actix-http's codec) rejects any frame with RSV1
//! set, which makes permessage-deflate (RFC 7692) impossible. We keep actix-web for HTTP and
//! routing, actix-http's handshake helpers (key check, accept key) and actix for the session
//! actors, and own the frame layer and, past the upgrade, the connection itself (see
//! `crate::net`): it is small, and it is where bandwidth, backpressure and per-connection
//! memory are decided.

pub mod handshake;
pub mod inbound;
pub mod outbound;

pub use handshake::{negotiate, Accepted, Negotiated};
pub use inbound::{Inbound, InboundDecoder, InboundError};
pub use outbound::Outbound;
