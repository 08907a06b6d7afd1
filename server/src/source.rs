//! Where the server's market data comes from: a local [`Engine`] (`tickwire serve`,
//! `tickwire engine`) or a hub fed from NATS (`tickwire gateway`).
//!
//! Sessions only ever need a [`Hub`] and the instrument table; readiness, metrics and the
//! admin routes also ask about feeds and books. [`MarketSource`] is exactly that surface, with
//! the method names of [`Engine`], so `app.rs` reads the same whichever source it serves.

use std::sync::Arc;

use tickwire_engine::actors::book::BookStats;
use tickwire_engine::actors::FeedInfo;
use tickwire_engine::domain::{SymbolId, SymbolTable};
use tickwire_engine::fanout::Hub;
use tickwire_engine::{Engine, EngineError};

/// What the HTTP and WebSocket layer needs from the market-data side.
pub trait MarketSource: Send + Sync + 'static {
    /// The hub sessions subscribe through.
    fn hub(&self) -> &Arc<Hub>;

    /// The instruments served.
    fn symbols(&self) -> &Arc<SymbolTable> {
        self.hub().symbols()
    }

    /// Counters of the local book actors (all zero where there are none).
    fn book_stats(&self) -> &Arc<BookStats>;

    /// Every local feed with its symbols and event count (none on a gateway).
    fn feeds(&self) -> Box<dyn Iterator<Item = FeedInfo<'_>> + '_>;

    /// Reasons to be not ready besides the feeds' state (a gateway cut off from NATS).
    fn extra_not_ready(&self) -> Vec<String> {
        Vec::new()
    }

    /// Extra counters for `GET /stats` (the cluster side of an engine or a gateway).
    fn stats_json(&self) -> Option<serde_json::Value> {
        None
    }

    /// Makes the named feed's session fail (drills and tests).
    fn inject_feed_fault(&self, feed: &str, reason: &str) -> Result<(), EngineError>;

    /// Makes a symbol's book actor fail and restart (drills and tests).
    fn inject_book_fault(&self, symbol: SymbolId);
}

impl MarketSource for Engine {
    fn hub(&self) -> &Arc<Hub> {
        Engine::hub(self)
    }

    fn book_stats(&self) -> &Arc<BookStats> {
        Engine::book_stats(self)
    }

    fn feeds(&self) -> Box<dyn Iterator<Item = FeedInfo<'_>> + '_> {
        Box::new(Engine::feeds(self))
    }

    fn inject_feed_fault(&self, feed: &str, reason: &str) -> Result<(), EngineError> {
        Engine::inject_feed_fault(self, feed, reason)
    }

    fn inject_book_fault(&self, symbol: SymbolId) {
        Engine::inject_book_fault(self, symbol)
    }
}
