//! The actor supervision tree: feed handlers and per-symbol book actors.
//!
//! See [`engine`] for the shape of the tree and `docs/architecture.md` for the whole path.

pub mod book;
pub mod engine;
pub mod feed;

pub use engine::{Engine, EngineConfig, EngineError, EngineThreads, FeedInfo};
pub use feed::Backoff;
