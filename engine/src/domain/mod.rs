//! Domain types shared by every part of Tickwire: fixed-point numbers, instruments, time.
//!
//! These types say what the market *is*; how it is written on a wire lives in
//! [`crate::wire`] and in the adapters, so the two can change independently.

pub mod decimal;
pub mod instrument;
pub mod time;

pub use decimal::{DecimalError, Price, Qty, Scale};
pub use instrument::{Instrument, SymbolId, SymbolTable, SymbolTableError};
pub use time::{Nanos, Seq};

/// Which side of the book, or which side the aggressor of a trade was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Bids; for a trade, the buyer lifted the offer.
    Buy,
    /// Asks; for a trade, the seller hit the bid.
    Sell,
}

impl Side {
    /// The other side (a trade's aggressor is opposite the resting order it hit).
    pub const fn opposite(self) -> Side {
        match self {
            Side::Buy => Side::Sell,
            Side::Sell => Side::Buy,
        }
    }

    /// The wire name (`"buy"` / `"sell"`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
        }
    }
}
