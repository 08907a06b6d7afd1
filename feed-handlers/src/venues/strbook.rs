//! A price-level book that also keeps each level's price and size *strings as received*.
//!
//! Kraken's and OKX's checksums are computed over the venue's own decimal strings (trailing
//! zeros and all), which a fixed-point book cannot reproduce. The decoders of those venues
//! keep this book next to the engine's: the mantissas order and locate levels, the strings
//! feed the checksum. Layout follows [`tickwire_engine::book::L2Book`]: each side sorted with
//! the best level last, so top-of-book work touches the end of a contiguous vector.

use smallvec::SmallVec;
use tickwire_engine::domain::{Price, Qty, Side};

/// A decimal string as the venue sent it; inline up to 24 bytes, which covers every price
/// and size these venues send.
pub(crate) type RawNum = SmallVec<[u8; 24]>;

/// One level with its venue strings.
#[derive(Debug, Clone)]
pub(crate) struct RawLevel {
    pub price: Price,
    pub qty: Qty,
    pub px: RawNum,
    pub sz: RawNum,
}

/// See the module documentation.
#[derive(Debug, Clone, Default)]
pub(crate) struct StrBook {
    bids: Vec<RawLevel>,
    asks: Vec<RawLevel>,
}

impl StrBook {
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    /// Sets a level; `qty == 0` removes it. Returns whether the book changed.
    pub fn set(&mut self, side: Side, price: Price, qty: Qty, px: &str, sz: &str) -> bool {
        let levels = match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        };
        let found = match side {
            Side::Buy => levels.binary_search_by(|l| l.price.cmp(&price)),
            Side::Sell => levels.binary_search_by(|l| price.cmp(&l.price)),
        };
        match (found, qty.0 > 0) {
            (Ok(i), false) => {
                levels.remove(i);
                true
            }
            (Ok(i), true) => {
                let l = &mut levels[i];
                l.qty = qty;
                l.px = RawNum::from_slice(px.as_bytes());
                l.sz = RawNum::from_slice(sz.as_bytes());
                true
            }
            (Err(_), false) => false,
            (Err(i), true) => {
                levels.insert(
                    i,
                    RawLevel {
                        price,
                        qty,
                        px: RawNum::from_slice(px.as_bytes()),
                        sz: RawNum::from_slice(sz.as_bytes()),
                    },
                );
                true
            }
        }
    }

    /// Levels of one side, best first.
    pub fn levels(&self, side: Side) -> impl Iterator<Item = &RawLevel> + '_ {
        match side {
            Side::Buy => self.bids.iter().rev(),
            Side::Sell => self.asks.iter().rev(),
        }
    }

    /// Drops levels beyond `depth` on both sides, reporting each dropped price.
    pub fn truncate(&mut self, depth: usize, mut dropped: impl FnMut(Side, Price)) {
        for (side, levels) in [(Side::Buy, &mut self.bids), (Side::Sell, &mut self.asks)] {
            let excess = levels.len().saturating_sub(depth);
            for l in levels.drain(..excess) {
                dropped(side, l.price);
            }
        }
    }
}

impl RawLevel {
    /// The level as the engine's `(price, qty)` pair.
    pub fn pair(&self) -> (Price, Qty) {
        (self.price, self.qty)
    }
}
