//! # tickwire-feeds
//!
//! Feed adapters: each turns one upstream (a venue's live feed, a recording, a simulator)
//! into the engine's normalized events by implementing
//! [`FeedAdapter`](tickwire_engine::FeedAdapter).
//!
//! * [`synthetic`]: a deterministic, seeded market simulator for demos, tests and benchmarks.

pub mod synthetic;

pub use synthetic::{SyntheticAdapter, SyntheticConfig, SyntheticMarket};
pub mod recording;
