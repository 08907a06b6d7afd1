//! # tickwire-feeds
//!
//! Feed adapters: each turns one upstream (a venue's live feed, a recording, a simulator)
//! into the engine's normalized events by implementing
//! [`FeedAdapter`](tickwire_engine::FeedAdapter).
//!
//! * [`synthetic`]: a deterministic, seeded market simulator for demos, tests and benchmarks,
//!   paced by [`pacing`]'s sub-millisecond ticker.
//! * [`venues`]: sans-IO decoders for Coinbase, Binance, Kraken and OKX.
//! * [`live`]: live WebSocket adapters around those decoders, and the exchange simulator;
//!   [`failover`]: two lines of one venue (A/B feeds) arbitrated into one.
//! * [`itch`]: NASDAQ TotalView-ITCH 5.0 parser, L3 book and a seeded stream generator.
//! * [`rawfile`]: the recorded-feed line format; [`inspect`]: running a recording through an
//!   adapter and books for people writing adapters.
//! * [`recording`]: Tickwire's own recording format (compressed, indexed, crash-safe) for
//!   recording and replaying market days; [`replay`]: serving recordings through the
//!   engine (paced, seekable, looping) and reading them as normalized events.

pub mod failover;
pub mod inspect;
pub mod itch;
pub mod live;
pub mod pacing;
pub mod progress;
pub mod rawfile;
pub mod recording;
pub mod replay;
pub mod synthetic;
pub mod venues;

pub use synthetic::{SyntheticAdapter, SyntheticConfig, SyntheticMarket};
