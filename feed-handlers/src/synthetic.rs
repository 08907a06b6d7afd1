//! A deterministic, seeded market simulator and the adapter that serves it.
//!
//! [`SyntheticMarket`] is the "exchange": N instruments named `SYM0000`, `SYM0001`, … each with
//! a realistic L2 book (a few dozen levels per side, sparse prices, lot-sized quantities) that
//! evolves through the kinds of events a real venue shows: size changes at the touch, new
//! levels improving the price, cancels of the best level, trades that eat into the touch, and
//! quieter changes deeper in the book. The same seed always yields the same event sequence;
//! only the wall-clock pacing depends on the rate.
//!
//! Every [`SyntheticMarket::step`] changes the top of book of exactly one instrument (plus,
//! sometimes, a trade and deeper changes), so `--rate R` means exactly R quote updates per
//! second summed over all symbols, as benchmarks and other servers count them.
//!
//! [`SyntheticAdapter`] plays the market through the engine: snapshots first, then steps at the
//! configured rate; the market keeps its state across sessions, like an exchange does while a
//! feed handler reconnects.

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use smallvec::SmallVec;

use tickwire_engine::domain::{Instrument, Nanos, Price, Qty, Scale, Side, SymbolId};
use tickwire_engine::event::{EventMeta, FeedEvent, LevelUpdate};
use tickwire_engine::{FeedAdapter, FeedCommand, FeedError, FeedIo};

use crate::pacing::Ticker;

/// Settings of the simulated market.
#[derive(Debug, Clone)]
pub struct SyntheticConfig {
    /// Number of instruments.
    pub symbols: usize,
    /// Top-of-book changes per second, summed over all instruments.
    pub rate: f64,
    /// Seed of the event sequence.
    pub seed: u64,
    /// Levels per side.
    pub depth: usize,
    /// Venue name shown to clients.
    pub venue: String,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            symbols: 100,
            rate: 1_000.0,
            seed: 1,
            depth: 25,
            venue: "synthetic".into(),
        }
    }
}

/// One side of a book as (price, size) pairs, best first.
pub type Ladder = Vec<(Price, Qty)>;

/// One simulated book: both sides best first, as mantissas.
#[derive(Debug, Clone)]
struct SimBook {
    bids: Vec<(i64, i64)>,
    asks: Vec<(i64, i64)>,
    lot: i64,
}

/// The simulated exchange. See the module documentation.
#[derive(Debug, Clone)]
pub struct SyntheticMarket {
    rng: Xoshiro256PlusPlus,
    books: Vec<SimBook>,
    instruments: Vec<Instrument>,
    depth: usize,
}

/// The name of synthetic instrument `i`.
pub fn symbol_name(i: usize) -> String {
    format!("SYM{i:04}")
}

impl SyntheticMarket {
    /// A market in its opening state.
    pub fn new(cfg: &SyntheticConfig) -> Self {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(cfg.seed);
        let depth = cfg.depth.max(5);
        let mut books = Vec::with_capacity(cfg.symbols);
        let mut instruments = Vec::with_capacity(cfg.symbols);
        for i in 0..cfg.symbols {
            // Every fourth instrument looks like a crypto pair: sub-unit prices with four
            // decimals and fractional sizes; the rest like equities in cents and whole lots.
            let crypto = i % 4 == 3;
            let (price_scale, size_scale, mid, lot) = if crypto {
                (4, 3, 5_000 + (rng.next_u64() % 45_000) as i64, 1_000)
            } else {
                (2, 0, 1_000 + (rng.next_u64() % 49_000) as i64, 100)
            };
            let mut book = SimBook {
                bids: Vec::with_capacity(depth + 2),
                asks: Vec::with_capacity(depth + 2),
                lot,
            };
            let (mut b, mut a) = (mid - 1, mid + 1);
            for _ in 0..depth {
                book.bids
                    .push((b, lot * (1 + (rng.next_u64() % 50) as i64)));
                book.asks
                    .push((a, lot * (1 + (rng.next_u64() % 50) as i64)));
                b -= 1 + (rng.next_u64() % 3) as i64;
                a += 1 + (rng.next_u64() % 3) as i64;
            }
            books.push(book);
            instruments.push(Instrument {
                symbol: symbol_name(i),
                venue: cfg.venue.clone(),
                price_scale: Scale::new(price_scale),
                size_scale: Scale::new(size_scale),
            });
        }
        SyntheticMarket {
            rng,
            books,
            instruments,
            depth,
        }
    }

    /// The instruments, in id order.
    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    /// The current book of instrument `i`, best first.
    pub fn snapshot(&self, i: usize) -> (Ladder, Ladder) {
        let conv = |v: &Vec<(i64, i64)>| v.iter().map(|&(p, q)| (Price(p), Qty(q))).collect();
        (conv(&self.books[i].bids), conv(&self.books[i].asks))
    }

    fn rand(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n
    }

    /// Advances the market by one top-of-book change of one instrument and appends what the
    /// venue would publish: a delta changing the touch (with a trade when one happened), and
    /// sometimes a deeper change. `meta` supplies the timestamps; its symbol is overwritten.
    pub fn step(&mut self, meta: EventMeta, out: &mut Vec<FeedEvent>) {
        let i = self.rand(self.books.len() as u64) as usize;
        let meta = EventMeta {
            symbol: SymbolId(i as u32),
            ..meta
        };
        let side = if self.rand(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let spread = self.books[i].asks[0].0 - self.books[i].bids[0].0;
        let roll = self.rand(100);
        let mut changes: SmallVec<[LevelUpdate; 4]> = SmallVec::new();
        if spread > 6 || (roll < 15 && spread > 1) {
            self.improve(i, side, &mut changes);
        } else if roll < 55 {
            self.resize_top(i, side, &mut changes);
        } else if roll < 70 && self.books[i].bids.len() > 5 && self.books[i].asks.len() > 5 {
            self.cancel_top(i, side, &mut changes);
        } else {
            // A market order of the opposite side hits this side's best level.
            let (price, qty) = self.trade(i, side, &mut changes);
            out.push(FeedEvent::Trade {
                meta,
                price: Price(price),
                qty: Qty(qty),
                aggressor: Some(side.opposite()),
            });
        }
        out.push(FeedEvent::Delta { meta, changes });
        if self.rand(2) == 0 {
            let mut deep: SmallVec<[LevelUpdate; 4]> = SmallVec::new();
            self.resize_deep(i, &mut deep);
            if !deep.is_empty() {
                out.push(FeedEvent::Delta {
                    meta,
                    changes: deep,
                });
            }
        }
    }

    fn side_mut(&mut self, i: usize, side: Side) -> &mut Vec<(i64, i64)> {
        match side {
            Side::Buy => &mut self.books[i].bids,
            Side::Sell => &mut self.books[i].asks,
        }
    }

    fn new_size(&mut self, i: usize, not: i64) -> i64 {
        let lot = self.books[i].lot;
        loop {
            let q = lot * (1 + self.rand(50) as i64);
            if q != not {
                return q;
            }
        }
    }

    fn resize_top(&mut self, i: usize, side: Side, out: &mut SmallVec<[LevelUpdate; 4]>) {
        let old = self.side_mut(i, side)[0];
        let q = self.new_size(i, old.1);
        self.side_mut(i, side)[0].1 = q;
        out.push(level(side, old.0, q));
    }

    fn improve(&mut self, i: usize, side: Side, out: &mut SmallVec<[LevelUpdate; 4]>) {
        let (bid, ask) = (self.books[i].bids[0].0, self.books[i].asks[0].0);
        let gap = ask - bid - 1; // free ticks inside the spread
        let step = 1 + self.rand(gap.clamp(1, 3) as u64) as i64;
        let price = match side {
            Side::Buy => bid + step,
            Side::Sell => ask - step,
        };
        let q = self.new_size(i, 0);
        self.side_mut(i, side).insert(0, (price, q));
        out.push(level(side, price, q));
        self.trim(i, side, out);
    }

    fn cancel_top(&mut self, i: usize, side: Side, out: &mut SmallVec<[LevelUpdate; 4]>) {
        let (price, _) = self.side_mut(i, side).remove(0);
        out.push(level(side, price, 0));
        self.refill(i, side, out);
    }

    fn trade(&mut self, i: usize, side: Side, out: &mut SmallVec<[LevelUpdate; 4]>) -> (i64, i64) {
        let lot = self.books[i].lot;
        let (price, size) = self.side_mut(i, side)[0];
        let lots = size / lot;
        let take = lot * (1 + self.rand(lots.max(1) as u64) as i64);
        if take >= size && self.side_mut(i, side).len() > 5 {
            self.side_mut(i, side).remove(0);
            out.push(level(side, price, 0));
            self.refill(i, side, out);
            (price, size)
        } else {
            let take = take.min(size - 1).max(1);
            self.side_mut(i, side)[0].1 = size - take;
            out.push(level(side, price, size - take));
            (price, take)
        }
    }

    fn resize_deep(&mut self, i: usize, out: &mut SmallVec<[LevelUpdate; 4]>) {
        let side = if self.rand(2) == 0 {
            Side::Buy
        } else {
            Side::Sell
        };
        let len = self.side_mut(i, side).len();
        if len < 2 {
            return;
        }
        let at = 1 + self.rand(len as u64 - 1) as usize;
        let old = self.side_mut(i, side)[at];
        let q = self.new_size(i, old.1);
        self.side_mut(i, side)[at].1 = q;
        out.push(level(side, old.0, q));
    }

    /// Adds a level beyond the far end so the side keeps its depth.
    fn refill(&mut self, i: usize, side: Side, out: &mut SmallVec<[LevelUpdate; 4]>) {
        while self.side_mut(i, side).len() < self.depth {
            let gap = 1 + self.rand(3) as i64;
            let last = self.side_mut(i, side).last().map(|l| l.0).unwrap_or(1_000);
            let price = match side {
                Side::Buy => (last - gap).max(1),
                Side::Sell => last + gap,
            };
            if price == last {
                break;
            }
            let q = self.new_size(i, 0);
            self.side_mut(i, side).push((price, q));
            out.push(level(side, price, q));
        }
    }

    /// Drops the level beyond the far end after an insert, keeping the depth fixed.
    fn trim(&mut self, i: usize, side: Side, out: &mut SmallVec<[LevelUpdate; 4]>) {
        let depth = self.depth;
        if self.side_mut(i, side).len() > depth {
            if let Some((price, _)) = self.side_mut(i, side).pop() {
                out.push(level(side, price, 0));
            }
        }
    }
}

fn level(side: Side, price: i64, qty: i64) -> LevelUpdate {
    LevelUpdate {
        side,
        price: Price(price),
        qty: Qty(qty),
    }
}

/// The synthetic market as a feed adapter.
pub struct SyntheticAdapter {
    config: SyntheticConfig,
    market: SyntheticMarket,
}

impl SyntheticAdapter {
    /// An adapter serving a fresh market with `config`.
    pub fn new(config: SyntheticConfig) -> Self {
        let market = SyntheticMarket::new(&config);
        SyntheticAdapter { config, market }
    }

    fn map_symbol(&self, io: &FeedIo, local: SymbolId) -> Option<SymbolId> {
        io.symbol(&self.market.instruments()[local.index()].symbol)
    }

    async fn session(&mut self, io: &mut FeedIo) -> Result<(), FeedError> {
        // Engine ids may differ from our local indexes when several feeds run together.
        let ids: Vec<SymbolId> = (0..self.market.instruments().len())
            .map(|i| self.map_symbol(io, SymbolId(i as u32)))
            .collect::<Option<_>>()
            .ok_or_else(|| FeedError::Protocol("instrument missing from engine".into()))?;
        for (local, id) in ids.iter().enumerate() {
            self.emit_snapshot_as(io, local, *id);
        }
        let rate = self.config.rate.max(0.0);
        let mut done: u64 = 0;
        // Never burst more than 10 ms worth of events after a stall: the simulated exchange
        // drops the backlog instead of flooding, as pacing is part of what it simulates.
        let max_burst = ((rate / 100.0) as u64).max(1);
        // A precise tick (see `pacing`): tokio's millisecond timer wheel sent 3 % of the events
        // back to back with the one before at 1,000/s, a burst the rate never asked for.
        let mut ticker = pacing_period(rate).map(Ticker::new).transpose()?;
        let mut events = Vec::with_capacity(64);
        loop {
            tokio::select! {
                cmd = io.next_command() => match cmd? {
                    FeedCommand::Resync(symbol) => {
                        if let Some(local) = ids.iter().position(|s| *s == symbol) {
                            self.emit_snapshot_as(io, local, symbol);
                        }
                    }
                },
                // At rate 0 there is no ticker: the feed only answers resyncs.
                (periods, period) = async {
                    match ticker.as_mut() {
                        Some(t) => (t.tick().await, t.period()),
                        None => std::future::pending().await,
                    }
                } => {
                    // Events due are counted from the periods elapsed, not from when the
                    // thread happened to wake: at 1,000/s every period carries one event.
                    let due = (periods? as f64 * period.as_secs_f64() * rate).round() as u64;
                    if due > done + max_burst {
                        done = due - max_burst;
                    }
                    while done < due {
                        let now = Nanos::now();
                        let meta = EventMeta { symbol: SymbolId(0), ts: now, recv_ts: now };
                        self.market.step(meta, &mut events);
                        for mut ev in events.drain(..) {
                            remap(&mut ev, &ids);
                            io.emit(ev);
                        }
                        done += 1;
                    }
                }
            }
        }
    }

    fn emit_snapshot_as(&self, io: &mut FeedIo, local: usize, id: SymbolId) {
        let now = Nanos::now();
        let (bids, asks) = self.market.snapshot(local);
        io.emit(FeedEvent::Snapshot {
            meta: EventMeta {
                symbol: id,
                ts: now,
                recv_ts: now,
            },
            bids,
            asks,
        });
    }
}

/// The synthetic feed's pacing period for `rate` events a second: one event per period when
/// events are sparser than one a millisecond (so an idle or slow feed does not wake a
/// thousand times a second), 1 ms otherwise, at most 1 s; none at rate 0.
fn pacing_period(rate: f64) -> Option<Duration> {
    (rate.is_finite() && rate > 0.0)
        .then(|| Duration::from_secs_f64((1.0 / rate).clamp(0.001, 1.0)))
}

fn remap(ev: &mut FeedEvent, ids: &[SymbolId]) {
    let meta = match ev {
        FeedEvent::Snapshot { meta, .. }
        | FeedEvent::Delta { meta, .. }
        | FeedEvent::Trade { meta, .. } => meta,
    };
    meta.symbol = ids[meta.symbol.index()];
}

impl FeedAdapter for SyntheticAdapter {
    fn name(&self) -> &str {
        &self.config.venue
    }

    fn instruments(&self) -> Vec<Instrument> {
        self.market.instruments().to_vec()
    }

    fn run<'a>(&'a mut self, io: &'a mut FeedIo) -> LocalBoxFuture<'a, Result<(), FeedError>> {
        self.session(io).boxed_local()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwire_engine::book::{Coalescer, L2Book, Level};

    #[test]
    fn pacing_follows_the_rate() {
        let ms = Duration::from_millis;
        // Sparse feeds wake once per event, dense ones once a millisecond.
        assert_eq!(pacing_period(10.0), Some(ms(100)));
        assert_eq!(pacing_period(1_000.0), Some(ms(1)));
        assert_eq!(pacing_period(20_000.0), Some(ms(1)));
        assert_eq!(pacing_period(0.1), Some(ms(1_000)));
        // No ticker at all when there is nothing to send.
        assert_eq!(pacing_period(0.0), None);
        assert_eq!(pacing_period(f64::NAN), None);
    }

    fn run_steps(seed: u64, steps: usize) -> Vec<FeedEvent> {
        let cfg = SyntheticConfig {
            symbols: 8,
            seed,
            ..SyntheticConfig::default()
        };
        let mut m = SyntheticMarket::new(&cfg);
        let mut out = Vec::new();
        for _ in 0..steps {
            m.step(
                EventMeta {
                    symbol: SymbolId(0),
                    ts: Nanos(0),
                    recv_ts: Nanos(0),
                },
                &mut out,
            );
        }
        out
    }

    #[test]
    fn same_seed_same_market() {
        assert_eq!(run_steps(7, 2_000), run_steps(7, 2_000));
        assert_ne!(run_steps(7, 2_000), run_steps(8, 2_000));
    }

    /// Replays the simulator's events into engine books and checks the promise behind
    /// `--rate`: every step changes exactly one top of book, books never cross, and the
    /// books equal the simulator's own state at the end.
    #[test]
    fn every_step_is_exactly_one_quote_and_books_stay_sane() {
        let cfg = SyntheticConfig {
            symbols: 8,
            seed: 3,
            ..SyntheticConfig::default()
        };
        let mut m = SyntheticMarket::new(&cfg);
        let mut books: Vec<(L2Book, Coalescer)> = (0..8)
            .map(|i| {
                let (b, a) = m.snapshot(i);
                let lv = |(price, qty)| Level { price, qty };
                let mut book = L2Book::new();
                book.replace(b.into_iter().map(lv), a.into_iter().map(lv));
                let mut c = Coalescer::new();
                c.finish(&book, 50);
                (book, c)
            })
            .collect();
        let (mut quotes, mut trades, mut out) = (0, 0, Vec::new());
        let steps = 20_000;
        for _ in 0..steps {
            out.clear();
            m.step(
                EventMeta {
                    symbol: SymbolId(0),
                    ts: Nanos(0),
                    recv_ts: Nanos(0),
                },
                &mut out,
            );
            for ev in &out {
                match ev {
                    FeedEvent::Delta { meta, changes } => {
                        let (book, c) = &mut books[meta.symbol.index()];
                        for ch in changes {
                            c.apply(book, ch.side, ch.price, ch.qty);
                        }
                        quotes += c.finish(book, 50).quote.is_some() as usize;
                        assert!(!book.is_crossed(), "book crossed");
                        assert!(book.depth(Side::Buy) >= 5 && book.depth(Side::Sell) >= 5);
                    }
                    FeedEvent::Trade { qty, .. } => {
                        assert!(qty.0 > 0);
                        trades += 1;
                    }
                    FeedEvent::Snapshot { .. } => panic!("no snapshots mid-stream"),
                }
            }
        }
        assert_eq!(quotes, steps, "one top-of-book change per step");
        assert!(
            trades > steps / 10 && trades < steps / 2,
            "trades: {trades}"
        );
        for (i, (book, _)) in books.iter().enumerate() {
            let (b, a) = m.snapshot(i);
            let got_b: Vec<_> = book.levels(Side::Buy).map(|l| (l.price, l.qty)).collect();
            let got_a: Vec<_> = book.levels(Side::Sell).map(|l| (l.price, l.qty)).collect();
            assert_eq!(got_b, b);
            assert_eq!(got_a, a);
        }
    }

    #[test]
    fn instruments_have_mixed_scales() {
        let m = SyntheticMarket::new(&SyntheticConfig::default());
        assert_eq!(m.instruments()[0].symbol, "SYM0000");
        assert_eq!(m.instruments()[3].price_scale, Scale::new(4));
        assert_eq!(m.instruments()[1].price_scale, Scale::new(2));
    }
}
