//! NASDAQ TotalView-ITCH 5.0: zero-copy parser, L3 order book, and a seeded generator.
//!
//! * [`parser`] frames a length-prefixed byte stream (a buffer or a memory-mapped file) and
//!   reads each message's fields in place.
//! * [`book`] keeps every order of the day and aggregates them per stock into price levels,
//!   giving L2 depth and top of book after every message.
//! * [`generator`] produces valid days with their own ground truth, since no real ITCH file
//!   is available here.
//! * [`decoder`] turns ITCH packets into the engine's normalized L2 events (the adapter
//!   that lets ITCH recordings be served and replayed).
//!
//! [`replay`] ties parser and book together and reports every bad message with its byte
//! offset instead of stopping. ITCH prices are in 1/10,000 dollars, so the engine's price
//! scale for ITCH instruments is [`PRICE_SCALE`] and sizes are whole shares.

pub mod book;
pub mod decoder;
pub mod generator;
pub mod parser;

pub use book::{BookError, ChangedLevel, Effect, L3Book, Level, Print, Top};
pub use decoder::ItchDecoder;
pub use generator::{generate, GenConfig, GeneratedDay, Truth};
pub use parser::{map_file, parse, Frames, ItchError, ItchSide, Message, Truncated};

use tickwire_engine::domain::{Price, Qty, Scale};

/// Decimal places of ITCH prices.
pub const PRICE_SCALE: Scale = Scale::new(4);
/// Decimal places of ITCH share counts.
pub const SIZE_SCALE: Scale = Scale::new(0);

/// An ITCH level as the engine's fixed-point pair.
pub fn to_engine(level: &Level) -> (Price, Qty) {
    (Price(level.price as i64), Qty(level.shares as i64))
}

/// Why a message in a stream was skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("message at byte {offset}: {error}")]
    Parse { offset: usize, error: ItchError },
    #[error("message at byte {offset}: {error}")]
    Book { offset: usize, error: BookError },
    #[error(transparent)]
    Truncated(#[from] Truncated),
}

/// How many messages ahead [`replay`] prefetches order slots: enough to cover a memory
/// round trip at a few tens of nanoseconds per message.
const PREFETCH_DISTANCE: usize = 16;

/// How many messages ahead [`replay`] prefetches the touched stock's best levels.
const LEVELS_PREFETCH_DISTANCE: usize = 3;

/// Counters of a [`replay`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayStats {
    /// Complete frames read.
    pub messages: u64,
    /// Messages applied to the book.
    pub applied: u64,
    /// Messages skipped (parse or book errors) plus a truncated tail.
    pub errors: u64,
    /// Trade prints.
    pub prints: u64,
}

/// Parses every frame of `bytes` into `book`, calling `each` with each applied message's
/// index (counting all complete frames), effect and the book after it, and `bad` with each
/// skipped message.
#[inline]
pub fn replay(
    bytes: &[u8],
    book: &mut L3Book,
    mut each: impl FnMut(usize, &Message<'_>, Effect, &L3Book),
    mut bad: impl FnMut(usize, StreamError),
) -> ReplayStats {
    let mut stats = ReplayStats::default();
    // A second cursor runs PREFETCH_DISTANCE frames ahead, warming the order slots those
    // messages will touch (the order table does not fit in cache).
    let mut ahead = Frames::new(bytes);
    let mut near = Frames::new(bytes);
    for _ in 0..PREFETCH_DISTANCE {
        if let Some(Ok(f)) = ahead.next() {
            book.prefetch(f.body);
        }
    }
    for _ in 0..LEVELS_PREFETCH_DISTANCE {
        near.next();
    }
    for (index, frame) in Frames::new(bytes).enumerate() {
        if let Some(Ok(f)) = ahead.next() {
            book.prefetch(f.body);
        }
        if let Some(Ok(f)) = near.next() {
            book.prefetch_levels(f.body);
        }
        let frame = match frame {
            Ok(f) => f,
            Err(t) => {
                stats.errors += 1;
                tracing::warn!(offset = t.offset, needed = t.needed, "truncated ITCH frame");
                bad(index, t.into());
                break;
            }
        };
        stats.messages += 1;
        let msg = match parse(frame.body) {
            Ok(m) => m,
            Err(error) => {
                stats.errors += 1;
                bad(
                    index,
                    StreamError::Parse {
                        offset: frame.offset,
                        error,
                    },
                );
                continue;
            }
        };
        match book.apply(&msg) {
            Ok(effect) => {
                stats.applied += 1;
                stats.prints += effect.print.is_some() as u64;
                each(index, &msg, effect, book);
            }
            Err(error) => {
                stats.errors += 1;
                bad(
                    index,
                    StreamError::Book {
                        offset: frame.offset,
                        error,
                    },
                );
            }
        }
    }
    stats
}
