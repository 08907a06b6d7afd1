//! A seeded generator of valid ITCH 5.0 days, with its own ground truth.
//!
//! No real ITCH file is available here, so tests and benchmarks run on generated days. The
//! flow is shaped like a real session: system events, a stock directory (plus trading-action
//! messages the book ignores), then order flow over many stocks with skewed activity (a few
//! names dominate, as on a real day), orders placed a few ticks around a random-walking mid,
//! executions hitting the best levels, partial cancels, deletes and cancel-replaces, hidden
//! (`P`) and cross (`Q`) trades, and the closing system events.
//!
//! The ground truth is computed by a deliberately simple, independent model (ordered maps
//! per side, a standard hash map of orders): after every message it records the touched
//! stock's best bid/ask and any trade print, which the real parser and [`super::L3Book`] must
//! reproduce exactly.
//!
//! [`generate_day`] (in `day.rs`) drives the same generator through a whole session and cuts
//! it into packets: the bundled replay day and the replay benchmarks are made that way.

use std::collections::{BTreeMap, HashMap};

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use super::book::{Level, Print, Top};
use super::parser::ItchSide;

mod day;
pub use day::{default_tickers, generate_day, DayConfig, GeneratedSession, Packet};

/// What to generate.
#[derive(Debug, Clone)]
pub struct GenConfig {
    pub seed: u64,
    pub stocks: u16,
    /// Order-flow messages (the fixed opening and closing messages come on top).
    pub messages: usize,
    /// Record the ground truth (costs memory; benchmarks turn it off).
    pub truth: bool,
}

impl Default for GenConfig {
    fn default() -> Self {
        GenConfig {
            seed: 5,
            stocks: 500,
            messages: 1_000_000,
            truth: true,
        }
    }
}

/// The expected outcome of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Truth {
    /// The stock whose book the message touched, with its top afterwards.
    pub book: Option<(u16, Top)>,
    pub print: Option<Print>,
}

/// A generated day.
#[derive(Debug, Clone, Default)]
pub struct GeneratedDay {
    /// The length-prefixed stream.
    pub bytes: Vec<u8>,
    /// Number of messages in `bytes`.
    pub messages: usize,
    /// One entry per message (empty if not requested).
    pub truth: Vec<Truth>,
    /// Final aggregated levels per locate (index 0 unused), best first, from the model.
    pub final_levels: Vec<(Vec<Level>, Vec<Level>)>,
}

/// Resting orders per stock beyond which new adds give way to deletes.
const MAX_LIVE_PER_STOCK: usize = 400;

/// How far back in a stock's order list "recent" reaches.
const RECENT: u64 = 16;

/// One tick: $0.01 in ITCH's 1/10,000 dollar prices.
const TICK: u32 = 100;

struct GenOrder {
    stock: usize,
    side: ItchSide,
    price: u32,
    shares: u32,
    /// Position in the stock's `live` list, for O(1) removal.
    slot: usize,
}

#[derive(Default)]
struct GenStock {
    mid: u32,
    live: Vec<u64>,
    bids: BTreeMap<u32, u64>,
    asks: BTreeMap<u32, u64>,
}

impl GenStock {
    fn top(&self) -> Top {
        let lvl = |(p, s): (&u32, &u64)| Level {
            price: *p,
            shares: *s,
        };
        Top {
            bid: self.bids.iter().next_back().map(lvl),
            ask: self.asks.iter().next().map(lvl),
        }
    }

    fn side(&mut self, side: ItchSide) -> &mut BTreeMap<u32, u64> {
        match side {
            ItchSide::Buy => &mut self.bids,
            ItchSide::Sell => &mut self.asks,
        }
    }
}

struct Gen {
    rng: Xoshiro256PlusPlus,
    out: GeneratedDay,
    keep_truth: bool,
    stocks: Vec<GenStock>,
    orders: HashMap<u64, GenOrder>,
    next_ref: u64,
    next_match: u64,
    clock: u64,
    tracking: u16,
    /// Stock names by locate - 1 (a day with tickers); `S0001`-style when empty.
    names: Vec<[u8; 8]>,
    /// The caller sets `clock` before each message (a day with an activity profile).
    manual_clock: bool,
}

/// Generates a day. Deterministic for a given config.
pub fn generate(cfg: &GenConfig) -> GeneratedDay {
    let mut g = Gen {
        rng: Xoshiro256PlusPlus::seed_from_u64(cfg.seed),
        out: GeneratedDay::default(),
        keep_truth: cfg.truth,
        stocks: Vec::new(),
        orders: HashMap::new(),
        next_ref: 1,
        next_match: 1,
        // 04:00 in ns since midnight.
        clock: 4 * 3600 * 1_000_000_000,
        tracking: 0,
        names: Vec::new(),
        manual_clock: false,
    };
    g.out.bytes.reserve(cfg.messages * 36);
    let n = cfg.stocks.max(1) as usize;
    g.system(b'O');
    g.system(b'S');
    g.stocks.push(GenStock::default()); // locate 0 is market-wide
    for i in 0..n {
        let mid = (5 + g.below(400) as u32) * 10_000;
        g.stocks.push(GenStock {
            mid,
            ..GenStock::default()
        });
        g.directory(i + 1);
        g.trading_action(i + 1);
    }
    g.system(b'Q');
    for _ in 0..cfg.messages {
        g.step(n);
    }
    g.system(b'M');
    g.system(b'E');
    g.system(b'C');
    g.out.final_levels = g
        .stocks
        .iter()
        .map(|s| {
            let lv = |(p, q): (&u32, &u64)| Level {
                price: *p,
                shares: *q,
            };
            (
                s.bids.iter().rev().map(lv).collect(),
                s.asks.iter().map(lv).collect(),
            )
        })
        .collect();
    g.out
}

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        self.rng.next_u64() % n.max(1)
    }

    fn header(&mut self, kind: u8, len: usize, locate: u16) {
        if !self.manual_clock {
            self.clock += 1 + self.below(2_000);
        }
        self.tracking = self.tracking.wrapping_add(1);
        let b = &mut self.out.bytes;
        b.extend_from_slice(&(len as u16).to_be_bytes());
        b.push(kind);
        b.extend_from_slice(&locate.to_be_bytes());
        b.extend_from_slice(&self.tracking.to_be_bytes());
        b.extend_from_slice(&self.clock.to_be_bytes()[2..]);
        self.out.messages += 1;
    }

    fn truth(&mut self, book: Option<usize>, print: Option<Print>) {
        if self.keep_truth {
            let book = book.map(|s| (s as u16, self.stocks[s].top()));
            self.out.truth.push(Truth { book, print });
        }
    }

    fn system(&mut self, code: u8) {
        self.header(b'S', 12, 0);
        self.out.bytes.push(code);
        self.truth(None, None);
    }

    fn symbol(&self, locate: usize) -> [u8; 8] {
        if let Some(n) = self.names.get(locate.wrapping_sub(1)) {
            return *n;
        }
        let mut s = *b"        ";
        let name = format!("S{locate:04}");
        s[..name.len()].copy_from_slice(name.as_bytes());
        s
    }

    fn directory(&mut self, locate: usize) {
        self.header(b'R', 39, locate as u16);
        let name = self.symbol(locate);
        let b = &mut self.out.bytes;
        b.extend_from_slice(&name);
        b.extend_from_slice(b"QN"); // market category, financial status
        b.extend_from_slice(&100u32.to_be_bytes()); // round lot
        b.extend_from_slice(b"NC Z"); // round lots only, classification, subtype (2)
        b.extend_from_slice(b"PNN1N"); // authenticity, SSR, IPO, LULD tier, ETP
        b.extend_from_slice(&0u32.to_be_bytes()); // ETP leverage
        b.push(b'N'); // inverse
        self.truth(None, None);
    }

    fn trading_action(&mut self, locate: usize) {
        self.header(b'H', 25, locate as u16);
        let name = self.symbol(locate);
        let b = &mut self.out.bytes;
        b.extend_from_slice(&name);
        b.extend_from_slice(b"T ");
        b.extend_from_slice(b"    ");
        self.truth(None, None);
    }

    fn step(&mut self, n: usize) {
        // Skewed activity: squaring a uniform variate favours low locates.
        let u = self.below(1 << 16) as f64 / 65536.0;
        let stock = 1 + ((u * u) * n as f64) as usize % n;
        self.step_on(stock);
    }

    fn step_on(&mut self, stock: usize) {
        if self.below(8) == 0 {
            // Random-walk the mid by a tick.
            let m = self.stocks[stock].mid;
            self.stocks[stock].mid = if self.below(2) == 0 {
                m + TICK
            } else {
                m.saturating_sub(TICK).max(10 * TICK)
            };
        }
        let live = self.stocks[stock].live.len();
        let roll = self.below(100);
        if live < 4 || (roll < 38 && live < MAX_LIVE_PER_STOCK) {
            let mpid = self.below(9) == 0;
            self.add(stock, mpid);
            return;
        }
        if roll < 38 {
            // A full book: participants pull orders rather than the book growing forever.
            return self.delete(stock);
        }
        match roll {
            38..=49 => self.execute(stock, false),
            50..=51 => self.execute(stock, true),
            52..=61 => self.cancel(stock),
            62..=83 => self.delete(stock),
            84..=96 => self.replace(stock),
            97..=98 => self.hidden_trade(stock),
            _ => self.cross(stock),
        }
    }

    /// A price for a new order on `side`, a few ticks behind the mid and never crossing the
    /// opposite best.
    fn price_for(&mut self, stock: usize, side: ItchSide) -> u32 {
        let away = TICK * (1 + (self.below(64) * self.below(64) / 256) as u32);
        let s = &self.stocks[stock];
        match side {
            ItchSide::Buy => {
                let p = s.mid.saturating_sub(away).max(TICK);
                match s.asks.keys().next() {
                    Some(&a) if p >= a => a.saturating_sub(TICK).max(1),
                    _ => p,
                }
            }
            ItchSide::Sell => {
                let p = s.mid + away;
                match s.bids.keys().next_back() {
                    Some(&b) if p <= b => b + TICK,
                    _ => p,
                }
            }
        }
    }

    fn shares(&mut self) -> u32 {
        if self.below(5) == 0 {
            1 + self.below(99) as u32 // odd lot
        } else {
            100 * (1 + self.below(10) as u32)
        }
    }

    fn rest(&mut self, order_ref: u64, stock: usize, side: ItchSide, price: u32, shares: u32) {
        let s = &mut self.stocks[stock];
        *s.side(side).entry(price).or_insert(0) += shares as u64;
        s.live.push(order_ref);
        let slot = s.live.len() - 1;
        self.orders.insert(
            order_ref,
            GenOrder {
                stock,
                side,
                price,
                shares,
                slot,
            },
        );
    }

    fn unrest(&mut self, order_ref: u64, shares: u32) {
        let o = self.orders.get_mut(&order_ref).expect("generator order");
        o.shares -= shares;
        let (stock, side, price, left, slot) = (o.stock, o.side, o.price, o.shares, o.slot);
        let s = &mut self.stocks[stock];
        let lvl = s.side(side).get_mut(&price).expect("level of a live order");
        *lvl -= shares as u64;
        if *lvl == 0 {
            s.side(side).remove(&price);
        }
        if left == 0 {
            self.orders.remove(&order_ref);
            let s = &mut self.stocks[stock];
            s.live.swap_remove(slot);
            if let Some(&moved) = s.live.get(slot) {
                self.orders.get_mut(&moved).expect("live order").slot = slot;
            }
        }
    }

    fn add(&mut self, stock: usize, mpid: bool) {
        let side = if self.below(2) == 0 {
            ItchSide::Buy
        } else {
            ItchSide::Sell
        };
        let price = self.price_for(stock, side);
        let shares = self.shares();
        let order_ref = self.next_ref;
        self.next_ref += 1 + self.below(3); // references are increasing, not dense
        let (kind, len) = if mpid { (b'F', 40) } else { (b'A', 36) };
        self.header(kind, len, stock as u16);
        let name = self.symbol(stock);
        let b = &mut self.out.bytes;
        b.extend_from_slice(&order_ref.to_be_bytes());
        b.push(if side == ItchSide::Buy { b'B' } else { b'S' });
        b.extend_from_slice(&shares.to_be_bytes());
        b.extend_from_slice(&name);
        b.extend_from_slice(&price.to_be_bytes());
        if mpid {
            b.extend_from_slice(b"GSCO");
        }
        self.rest(order_ref, stock, side, price, shares);
        self.truth(Some(stock), None);
    }

    /// A live order to cancel, delete or replace. Like on a real day, most of these target
    /// recently entered orders (quotes re-priced within moments); the rest hit any order.
    fn random_live(&mut self, stock: usize) -> u64 {
        let n = self.stocks[stock].live.len() as u64;
        let back = if self.below(4) != 0 {
            self.below(n.min(RECENT))
        } else {
            self.below(n)
        };
        self.stocks[stock].live[(n - 1 - back) as usize]
    }

    /// An order at the best price of a random side (executions hit the top of the book).
    fn best_order(&mut self, stock: usize) -> u64 {
        let side = if self.below(2) == 0 {
            ItchSide::Buy
        } else {
            ItchSide::Sell
        };
        let s = &self.stocks[stock];
        let best = match side {
            ItchSide::Buy => s.bids.keys().next_back(),
            ItchSide::Sell => s.asks.keys().next(),
        };
        let found = best.and_then(|&p| {
            s.live.iter().copied().find(|r| {
                let o = &self.orders[r];
                o.side == side && o.price == p
            })
        });
        match found {
            Some(r) => r,
            None => self.random_live(stock),
        }
    }

    fn execute(&mut self, stock: usize, with_price: bool) {
        let order_ref = self.best_order(stock);
        let (has, price) = {
            let o = &self.orders[&order_ref];
            (o.shares, o.price)
        };
        let shares = if self.below(2) == 0 {
            has
        } else {
            1 + self.below(has as u64) as u32
        };
        let match_number = self.next_match;
        self.next_match += 1;
        let exec_price = price
            + if with_price {
                self.below(3) as u32 * TICK
            } else {
                0
            };
        let printable = !with_price || self.below(4) != 0;
        if with_price {
            self.header(b'C', 36, stock as u16);
        } else {
            self.header(b'E', 31, stock as u16);
        }
        let b = &mut self.out.bytes;
        b.extend_from_slice(&order_ref.to_be_bytes());
        b.extend_from_slice(&shares.to_be_bytes());
        b.extend_from_slice(&match_number.to_be_bytes());
        if with_price {
            b.push(if printable { b'Y' } else { b'N' });
            b.extend_from_slice(&exec_price.to_be_bytes());
        }
        self.unrest(order_ref, shares);
        let print = printable.then_some(Print {
            locate: stock as u16,
            price: exec_price,
            shares: shares as u64,
        });
        self.truth(Some(stock), print);
    }

    fn cancel(&mut self, stock: usize) {
        let order_ref = self.random_live(stock);
        let has = self.orders[&order_ref].shares;
        if has < 2 {
            return self.delete_ref(stock, order_ref);
        }
        let shares = 1 + self.below(has as u64 - 1) as u32;
        self.header(b'X', 23, stock as u16);
        let b = &mut self.out.bytes;
        b.extend_from_slice(&order_ref.to_be_bytes());
        b.extend_from_slice(&shares.to_be_bytes());
        self.unrest(order_ref, shares);
        self.truth(Some(stock), None);
    }

    fn delete(&mut self, stock: usize) {
        let order_ref = self.random_live(stock);
        self.delete_ref(stock, order_ref);
    }

    fn delete_ref(&mut self, stock: usize, order_ref: u64) {
        self.header(b'D', 19, stock as u16);
        self.out.bytes.extend_from_slice(&order_ref.to_be_bytes());
        let has = self.orders[&order_ref].shares;
        self.unrest(order_ref, has);
        self.truth(Some(stock), None);
    }

    fn replace(&mut self, stock: usize) {
        let original = self.random_live(stock);
        let (side, has) = {
            let o = &self.orders[&original];
            (o.side, o.shares)
        };
        self.unrest(original, has);
        let price = self.price_for(stock, side);
        let shares = self.shares();
        let new_ref = self.next_ref;
        self.next_ref += 1;
        self.header(b'U', 35, stock as u16);
        let b = &mut self.out.bytes;
        b.extend_from_slice(&original.to_be_bytes());
        b.extend_from_slice(&new_ref.to_be_bytes());
        b.extend_from_slice(&shares.to_be_bytes());
        b.extend_from_slice(&price.to_be_bytes());
        self.rest(new_ref, stock, side, price, shares);
        self.truth(Some(stock), None);
    }

    fn hidden_trade(&mut self, stock: usize) {
        let price = self.stocks[stock].mid;
        let shares = self.shares();
        let match_number = self.next_match;
        self.next_match += 1;
        self.header(b'P', 44, stock as u16);
        let name = self.symbol(stock);
        let b = &mut self.out.bytes;
        b.extend_from_slice(&0u64.to_be_bytes()); // order reference: 0 for hidden orders
        b.push(b'B');
        b.extend_from_slice(&shares.to_be_bytes());
        b.extend_from_slice(&name);
        b.extend_from_slice(&price.to_be_bytes());
        b.extend_from_slice(&match_number.to_be_bytes());
        self.truth(
            None,
            Some(Print {
                locate: stock as u16,
                price,
                shares: shares as u64,
            }),
        );
    }

    fn cross(&mut self, stock: usize) {
        let price = self.stocks[stock].mid;
        let shares = self.below(5_000);
        let match_number = self.next_match;
        self.next_match += 1;
        self.header(b'Q', 40, stock as u16);
        let name = self.symbol(stock);
        let b = &mut self.out.bytes;
        b.extend_from_slice(&shares.to_be_bytes());
        b.extend_from_slice(&name);
        b.extend_from_slice(&price.to_be_bytes());
        b.extend_from_slice(&match_number.to_be_bytes());
        b.push(b'H');
        let print = (shares > 0).then_some(Print {
            locate: stock as u16,
            price,
            shares,
        });
        self.truth(None, print);
    }
}
