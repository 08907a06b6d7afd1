//! ITCH 5.0 as a [`VenueDecoder`]: packets of ITCH messages in, normalized L2 events out.
//!
//! The engine's books are L2 (price levels), ITCH is L3 (orders), so the decoder keeps the
//! day's [`L3Book`], which reports the aggregated size of exactly the levels each message
//! changed ([`Effect::levels`]): an add, execution, cancel or delete
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
//!
//! It is the inner loop of a full-speed ITCH replay (10 M messages/s), hence its shape: a
//! packet's order slots are prefetched before its messages are applied, events are built
//! in place in the output vector (`push_in_place`), and [`ItchDecoder::decode_packet`]
//! reads the payload where it lies instead of needing a writable copy.

use smallvec::SmallVec;
use tickwire_engine::domain::{Instrument, Nanos, Price, Qty, Side, SymbolId};
use tickwire_engine::event::{EventMeta, FeedEvent, LevelUpdate};

use super::book::{ChangedLevel, Effect, L3Book};
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

    /// [`VenueDecoder::decode`] on a payload it only reads, so that a replay can hand over
    /// the recording's bytes where they lie instead of a writable copy.
    #[inline]
    pub fn decode_packet(
        &mut self,
        payload: &[u8],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let before = out.len();
        let (messages, result) = self.apply_packet(payload, recv_ts, out);
        // Every output of this decoder is an event: no pass over them to count.
        let stats = &mut self.stats;
        stats.messages += messages;
        stats.events += (out.len() - before) as u64;
        stats.parse_errors += result.is_err() as u64;
        result
    }

    /// Applies every message of a packet, pushing its events. Returns the ITCH messages in
    /// the packet and the first error met.
    #[inline]
    fn apply_packet(
        &mut self,
        payload: &[u8],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> (u64, Result<(), DecodeError>) {
        let mut first_error = None;
        let mut messages = 0;
        self.prefetch_orders(payload);
        for frame in Frames::new(payload) {
            let frame = match frame {
                Ok(f) => f,
                Err(t) => {
                    first_error.get_or_insert(DecodeError::Unexpected(t.to_string()));
                    break;
                }
            };
            messages += 1;
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
        self.itch_messages += messages;
        (messages, first_error.map_or(Ok(()), Err))
    }

    /// Starts loading the order slots every message of the packet will touch, so that the
    /// packet's lookups miss the cache together rather than one after another.
    #[inline]
    fn prefetch_orders(&self, payload: &[u8]) {
        for frame in Frames::new(payload).map_while(Result::ok) {
            self.book.prefetch(frame.body);
        }
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
            self.on_stock_directory(header.locate, stock, ts, recv_ts, out);
            return;
        }
        if let Some(locate) = effect.book {
            if let Some(symbol) = self.symbol_of(locate) {
                let meta = EventMeta {
                    symbol,
                    ts,
                    recv_ts,
                };
                if effect.levels[0].is_some() {
                    push_in_place(out, || {
                        Decoded::Event(FeedEvent::Delta {
                            meta,
                            changes: changes(effect.levels),
                        })
                    });
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
                _ => effect.levels[0].map(|l| l.side),
            };
            push_in_place(out, || {
                Decoded::Event(FeedEvent::Trade {
                    meta: EventMeta {
                        symbol,
                        ts,
                        recv_ts,
                    },
                    price: Price(p.price as i64),
                    qty: Qty(p.shares as i64),
                    aggressor: resting.map(|s| side(s).opposite()),
                })
            });
        }
    }

    /// A stock directory message registers the stock and opens its (empty) book.
    #[cold]
    fn on_stock_directory(
        &mut self,
        locate: u16,
        stock: &[u8; 8],
        ts: Nanos,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) {
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
        let i = locate as usize;
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
    }
}

/// Appends the event `make` builds, constructed directly in `out`'s buffer. `Vec::push`
/// assembles a value this large (136 bytes) on the stack field by field and then copies it
/// with wide loads, which stall on store forwarding: that copy was ~8% of a full-speed
/// replay. Reserving first leaves nothing between building and storing.
#[inline(always)]
fn push_in_place(out: &mut Vec<Decoded>, make: impl FnOnce() -> Decoded) {
    out.reserve(1);
    let len = out.len();
    out.spare_capacity_mut()[0].write(make());
    // SAFETY: the element at `len` is within capacity and was just initialised.
    unsafe { out.set_len(len + 1) };
}

/// The L2 changes of the levels a message changed (the first is always there), in one
/// expression rather than pushed one by one, so that it too is built in place.
#[inline(always)]
fn changes(levels: [Option<ChangedLevel>; 2]) -> SmallVec<[LevelUpdate; 4]> {
    let update = |l: ChangedLevel| LevelUpdate {
        side: side(l.side),
        price: Price(l.price as i64),
        qty: Qty(l.shares as i64),
    };
    let (a, b, len) = match levels {
        [Some(a), Some(b)] => (update(a), update(b), 2),
        [Some(a), None] | [None, Some(a)] => (update(a), update(a), 1),
        [None, None] => unreachable!("a delta changes at least one level"),
    };
    SmallVec::from_buf_and_len([a, b, a, a], len)
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
        self.apply_packet(payload, recv_ts, out).1
    }

    /// Counts ITCH messages, not packets, as `messages` (what throughput is quoted in).
    #[inline]
    fn decode(
        &mut self,
        payload: &mut [u8],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        self.decode_packet(payload, recv_ts, out)
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
