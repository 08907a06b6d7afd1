//! # tickwire-engine
//!
//! The market-data core of Tickwire, independent of any transport or venue:
//!
//! * [`domain`]: fixed-point [`Price`](domain::Price)/[`Qty`](domain::Qty) with per-instrument
//!   [`Scale`](domain::Scale), interned [`SymbolId`](domain::SymbolId)s, [`Seq`](domain::Seq),
//!   nanosecond [`Nanos`](domain::Nanos).
//! * [`event`]: normalized events that adapters produce.
//! * [`book`]: the L2 order book and the coalescing of changes into ticks.
//! * [`tick`] and [`wire`]: what is published, and its client wire encoding (done once);
//!   [`deflate`]: its permessage-deflate variant, also done once for all recipients;
//!   [`batch`]: several pending frames of a session as one message, without re-encoding;
//!   [`msgpack`]: the binary encoding of the same messages.
//! * [`adapter`]: the trait every upstream implements.
//! * [`actors`]: the supervision tree (feed handlers, book actors).
//! * [`fanout`]: the lock-free publish path from book actors to client sessions.

pub mod actors;
pub mod adapter;
pub mod batch;
pub mod book;
pub mod deflate;
pub mod domain;
pub mod event;
pub mod fanout;
pub mod msgpack;
pub mod tick;
pub mod wire;

pub use actors::{Engine, EngineConfig, EngineError};
pub use adapter::{FeedAdapter, FeedCommand, FeedError, FeedIo};
