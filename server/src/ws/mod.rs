//! The WebSocket layer: handshake negotiation, the inbound frame decoder, and (in
//! `crate::transport`) the outbound body.
//!
//! Why not actix-ws end to end: its outbound path copies every message into a per-connection
//! encoder behind a channel (so backpressure is invisible to conflation and each client pays
//! for encoding), and its inbound decoder (actix-http's codec) rejects any frame with RSV1
//! set, which makes permessage-deflate (RFC 7692) impossible. We keep actix-web for HTTP and
//! routing, actix-http's handshake (the accept key) and actix for the session actors, and own
//! the frame layer: it is small, and it is where bandwidth and backpressure are decided.

pub mod handshake;
pub mod inbound;
pub mod outbound;

pub use handshake::{negotiate, Accepted, Negotiated};
pub use inbound::{Inbound, InboundDecoder, InboundError};
pub use outbound::Outbound;
