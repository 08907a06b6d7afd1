//! Normalized feed events: what every adapter produces, whatever its venue speaks.
//!
//! One [`FeedEvent`] corresponds to one upstream message for one symbol. Book changes inside
//! one message travel together ([`FeedEvent::Delta`]) so the book actor can apply them
//! atomically and publish a single coalesced tick for them.

use smallvec::SmallVec;

use crate::domain::{Nanos, Price, Qty, Side, SymbolId};

/// Identity and timing shared by every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventMeta {
    pub symbol: SymbolId,
    /// When the event happened at the venue (exchange time), ns since the epoch.
    pub ts: Nanos,
    /// When our feed handler received the message carrying it, ns since the epoch.
    pub recv_ts: Nanos,
}

/// A change of one price level; a zero `qty` deletes the level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LevelUpdate {
    pub side: Side,
    pub price: Price,
    pub qty: Qty,
}

/// A normalized market-data event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedEvent {
    /// The complete book as the venue sees it now; replaces whatever the book held and
    /// (re)establishes the symbol as live.
    Snapshot {
        meta: EventMeta,
        bids: Vec<(Price, Qty)>,
        asks: Vec<(Price, Qty)>,
    },
    /// Level changes carried by one upstream message, applied atomically.
    Delta {
        meta: EventMeta,
        changes: SmallVec<[LevelUpdate; 4]>,
    },
    /// A trade print.
    Trade {
        meta: EventMeta,
        price: Price,
        qty: Qty,
        /// The aggressor side, when the venue says.
        aggressor: Option<Side>,
    },
}

impl FeedEvent {
    /// The event's identity and timing.
    pub fn meta(&self) -> &EventMeta {
        match self {
            FeedEvent::Snapshot { meta, .. }
            | FeedEvent::Delta { meta, .. }
            | FeedEvent::Trade { meta, .. } => meta,
        }
    }
}
