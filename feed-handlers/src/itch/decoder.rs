//! ITCH 5.0 as a [`VenueDecoder`]: packets of ITCH messages in, normalized L2 events out.
//!
//! The engine's books are L2 (price levels), ITCH is L3 (orders), so the decoder keeps the
//! day's [`L3Book`] and, after each message, reads back the aggregated size of exactly the
//! levels the message changed ([`Effect::levels`]): an add, execution, cancel or delete
//! becomes a one-level [`FeedEvent::Delta`], a cancel-replace to another price a two-level
//! one, and every printable execution, hidden (`P`) and cross (`Q`) trade a
//! [`FeedEvent::Trade`] whose aggressor is the opposite side of the resting order. A stock
//! directory (`R`) message registers the stock (4 price decimals, whole shares) and emits
//! its empty opening [`FeedEvent::Snapshot`], so the book is live from the start of the day.
//!
//! The payload of one call is what one packet carries: one or more length-prefixed messages
//! (the layout of NASDAQ's files and of a MoldUDP64 packet's message blocks), which is how
//! recordings store ITCH. ITCH timestamps count nanoseconds since midnight (US Eastern
//! time); `midnight_ns` turns them into nanoseconds since the epoch.
//!
//! Bad messages are counted and reported (the first one per packet as the call's error)
//! and skipped; the rest of the packet is still applied.

use smallvec::SmallVec;
use tickwire_engine::domain::{Instrument, Nanos, Price, Qty, Side, SymbolId};
use tickwire_engine::event::{EventMeta, FeedEvent, LevelUpdate};

use super::book::{Effect, L3Book};
use super::parser::{parse, Frames, ItchSide, Message};
use super::{PRICE_SCALE, SIZE_SCALE};
use crate::venues::{DecodeError, DecodeStats, Decoded, SymbolRegistry, VenueDecoder};

/// See the module documentation.
pub struct ItchDecoder {
    book: L3Book,
    registry: SymbolRegistry,
    /// Stock locate code → registry id.
    by_locate: Vec<Option<SymbolId>>,
    midnight_ns: i64,
    stats: DecodeStats,
    /// ITCH messages seen (a packet may hold several).
    pub itch_messages: u64,
}

fn side(s: ItchSide) -> Side {
    match s {
        ItchSide::Buy => Side::Buy,
        ItchSide::Sell => Side::Sell,
    }
}

impl ItchDecoder {
    /// A decoder for a day whose midnight (the origin of ITCH timestamps) is `midnight_ns`
    /// since the epoch.
    pub fn new(midnight_ns: i64) -> Self {
        ItchDecoder {
            book: L3Book::with_capacity(1 << 16),
            registry: SymbolRegistry::inferred("itch"),
            by_locate: Vec::new(),
            midnight_ns,
            stats: DecodeStats::default(),
            itch_messages: 0,
        }
    }

    /// Sets the day's midnight (from a recording's header).
    pub fn set_midnight(&mut self, midnight_ns: i64) {
        self.midnight_ns = midnight_ns;
    }

    /// The L3 book of the day so far.
    pub fn book(&self) -> &L3Book {
        &self.book
    }

    #[inline]
    fn symbol_of(&self, locate: u16) -> Option<SymbolId> {
        self.by_locate.get(locate as usize).copied().flatten()
    }

    #[inline]
    fn on_message(
        &mut self,
        msg: &Message<'_>,
        effect: Effect,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) {
        let ts = Nanos(self.midnight_ns + msg.header().timestamp as i64);
        if let Message::StockDirectory { header, stock, .. } = msg {
            let name = String::from_utf8_lossy(&stock[..]).trim_end().to_string();
            if !tickwire_engine::domain::instrument::is_valid_symbol_name(&name) {
                return;
            }
            let id = self.registry.register(Instrument {
                symbol: name,
                venue: "itch".into(),
                price_scale: PRICE_SCALE,
                size_scale: SIZE_SCALE,
            });
            let i = header.locate as usize;
            if self.by_locate.len() <= i {
                self.by_locate.resize(i + 1, None);
            }
            self.by_locate[i] = Some(id);
            out.push(Decoded::Event(FeedEvent::Snapshot {
                meta: EventMeta {
                    symbol: id,
                    ts,
                    recv_ts,
                },
                bids: Vec::new(),
                asks: Vec::new(),
            }));
            return;
        }
        if let Some(locate) = effect.book {
            if let (Some(symbol), Some(stock)) = (self.symbol_of(locate), self.book.stock(locate)) {
                let mut changes: SmallVec<[LevelUpdate; 4]> = SmallVec::new();
                for (s, price) in effect.levels.into_iter().flatten() {
                    changes.push(LevelUpdate {
                        side: side(s),
                        price: Price(price as i64),
                        qty: Qty(stock.shares_at(s, price) as i64),
                    });
                }
                if !changes.is_empty() {
                    out.push(Decoded::Event(FeedEvent::Delta {
                        meta: EventMeta {
                            symbol,
                            ts,
                            recv_ts,
                        },
                        changes,
                    }));
                }
            }
        }
        if let Some(p) = effect.print {
            let Some(symbol) = self.symbol_of(p.locate) else {
                return;
            };
            // The resting side is known for executions and hidden trades; the aggressor is
            // the other one. Crosses have none.
            let resting = match msg {
                Message::Trade { side, .. } => Some(*side),
                Message::CrossTrade { .. } => None,
                _ => effect.levels[0].map(|(s, _)| s),
            };
            out.push(Decoded::Event(FeedEvent::Trade {
                meta: EventMeta {
                    symbol,
                    ts,
                    recv_ts,
                },
                price: Price(p.price as i64),
                qty: Qty(p.shares as i64),
                aggressor: resting.map(|s| side(s).opposite()),
            }));
        }
    }
}

impl VenueDecoder for ItchDecoder {
    fn venue(&self) -> &'static str {
        "itch"
    }

    fn handle(
        &mut self,
        payload: &mut [u8],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let mut first_error = None;
        for frame in Frames::new(payload) {
            let frame = match frame {
                Ok(f) => f,
                Err(t) => {
                    first_error.get_or_insert(DecodeError::Unexpected(t.to_string()));
                    break;
                }
            };
            self.itch_messages += 1;
            let msg = match parse(frame.body) {
                Ok(m) => m,
                Err(e) => {
                    first_error.get_or_insert(DecodeError::Unexpected(e.to_string()));
                    continue;
                }
            };
            match self.book.apply(&msg) {
                Ok(effect) => self.on_message(&msg, effect, recv_ts, out),
                Err(e) => {
                    first_error.get_or_insert(DecodeError::Unexpected(e.to_string()));
                }
            }
        }
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Counts ITCH messages, not packets, as `messages` (what throughput is quoted in).
    fn decode(
        &mut self,
        payload: &mut [u8],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let (before, seen) = (out.len(), self.itch_messages);
        let result = self.handle(payload, recv_ts, out);
        self.count(before, out, &result);
        self.stats.messages = self.stats.messages - 1 + (self.itch_messages - seen);
        result
    }

    fn registry(&self) -> &SymbolRegistry {
        &self.registry
    }

    fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut DecodeStats {
        &mut self.stats
    }
}
