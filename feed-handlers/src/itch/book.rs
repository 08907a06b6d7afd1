//! The L3 (order-by-order) book of an ITCH day, aggregated on the fly into L2 and top of book.
//!
//! Every order of the day lives in one open-addressing hash table keyed by order reference
//! number ([`OrderMap`]): a lookup is a mask and (almost always) one cache line, which is
//! what makes tens of millions of messages per second possible. Each stock (indexed
//! by its locate code) has two price-level vectors sorted with the best price last, like the
//! engine's `L2Book`, holding the aggregated shares per price; an order event changes exactly
//! the level of its price, and its [`Effect`] says which levels and what they hold now.
//!
//! The book validates what it is told: executing or cancelling an unknown order, more shares
//! than the order has, or adding a reference twice are [`BookError`]s and leave the book
//! unchanged, so a corrupt or lost message is reported and skipped instead of silently
//! corrupting aggregates.

use super::parser::{ItchSide, Message};

mod order_map;
pub use order_map::{Order, OrderMap, MAX_ORDER_REF};

/// Asks the CPU to start loading the cache line at `p`.
#[inline(always)]
fn prefetch_ptr<T>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch is only a hint; it never faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        _mm_prefetch::<_MM_HINT_T0>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// One aggregated price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub price: u32,
    pub shares: u64,
}

/// Best bid and ask of a stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Top {
    pub bid: Option<Level>,
    pub ask: Option<Level>,
}

/// Aggregated levels of one side, best last. `BIDS` fixes the ordering at compile time
/// (bids ascending, asks descending) so the searches carry no runtime side test.
#[derive(Debug, Clone, Default)]
struct Side<const BIDS: bool> {
    levels: Vec<Level>,
}

impl<const BIDS: bool> Side<BIDS> {
    /// Whether `a` is a better price than `b` on this side.
    #[inline(always)]
    fn better(a: u32, b: u32) -> bool {
        if BIDS {
            a > b
        } else {
            a < b
        }
    }

    /// Index of `price`, searching from the top of the book where most activity is.
    #[inline]
    fn find(&self, price: u32) -> Result<usize, usize> {
        let levels = &self.levels;
        // Most events touch one of the best few levels: scan those, then binary search.
        let mut i = levels.len();
        for _ in 0..4 {
            if i == 0 {
                return Err(0);
            }
            let p = levels[i - 1].price;
            if p == price {
                return Ok(i - 1);
            }
            if Self::better(price, p) {
                return Err(i);
            }
            i -= 1;
        }
        levels[..i].binary_search_by(|l| {
            if l.price == price {
                std::cmp::Ordering::Equal
            } else if Self::better(price, l.price) {
                std::cmp::Ordering::Less
            } else {
                std::cmp::Ordering::Greater
            }
        })
    }

    /// Adds shares at `price`; returns the level's shares after.
    #[inline]
    fn add(&mut self, price: u32, shares: u32) -> u64 {
        match self.find(price) {
            Ok(i) => {
                self.levels[i].shares += shares as u64;
                self.levels[i].shares
            }
            Err(i) => {
                let level = Level {
                    price,
                    shares: shares as u64,
                };
                self.levels.insert(i, level);
                level.shares
            }
        }
    }

    /// Removes shares the book knows are there (the order map vouches for them); returns
    /// the level's shares after (0: the level is gone).
    #[inline]
    fn remove(&mut self, price: u32, shares: u32) -> u64 {
        let Ok(i) = self.find(price) else {
            return 0;
        };
        let l = &mut self.levels[i];
        l.shares = l.shares.saturating_sub(shares as u64);
        let left = l.shares;
        if left == 0 {
            self.levels.remove(i);
        }
        left
    }
}

/// Both sides of one stock.
#[derive(Debug, Clone, Default)]
pub struct StockBook {
    bids: Side<true>,
    asks: Side<false>,
    /// The symbol from the stock directory, if seen.
    pub symbol: Option<[u8; 8]>,
}

impl StockBook {
    /// Adds shares; the level as it is after.
    #[inline]
    fn add(&mut self, side: ItchSide, price: u32, shares: u32) -> ChangedLevel {
        let shares = match side {
            ItchSide::Buy => self.bids.add(price, shares),
            ItchSide::Sell => self.asks.add(price, shares),
        };
        ChangedLevel {
            side,
            price,
            shares,
        }
    }

    /// Removes shares; the level as it is after.
    #[inline]
    fn remove(&mut self, side: ItchSide, price: u32, shares: u32) -> ChangedLevel {
        let shares = match side {
            ItchSide::Buy => self.bids.remove(price, shares),
            ItchSide::Sell => self.asks.remove(price, shares),
        };
        ChangedLevel {
            side,
            price,
            shares,
        }
    }

    /// Best bid and ask.
    #[inline]
    pub fn top(&self) -> Top {
        Top {
            bid: self.bids.levels.last().copied(),
            ask: self.asks.levels.last().copied(),
        }
    }

    /// Aggregated shares resting at `price` on `side` (0 when the level is gone).
    #[inline]
    pub fn shares_at(&self, side: ItchSide, price: u32) -> u64 {
        let found = match side {
            ItchSide::Buy => self.bids.find(price).ok().map(|i| self.bids.levels[i]),
            ItchSide::Sell => self.asks.find(price).ok().map(|i| self.asks.levels[i]),
        };
        found.map_or(0, |l| l.shares)
    }

    /// Levels of a side from the best outwards.
    pub fn levels(&self, side: ItchSide) -> impl Iterator<Item = &Level> + '_ {
        match side {
            ItchSide::Buy => self.bids.levels.iter().rev(),
            ItchSide::Sell => self.asks.levels.iter().rev(),
        }
    }
}

/// A message the book could not apply; the book is unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum BookError {
    #[error("unknown order reference {0}")]
    UnknownOrder(u64),
    #[error("order reference {0} is already live")]
    DuplicateOrder(u64),
    #[error("order reference {0} is beyond the supported {MAX_ORDER_REF}")]
    OrderRefOutOfRange(u64),
    #[error("order {order_ref} has {has} shares, message removes {removes}")]
    TooManyShares {
        order_ref: u64,
        has: u32,
        removes: u32,
    },
}

/// A trade print produced by a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Print {
    pub locate: u16,
    pub price: u32,
    pub shares: u64,
}

/// A price level a message changed, as it is after the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChangedLevel {
    pub side: ItchSide,
    pub price: u32,
    /// Aggregated shares left at the price (0: the level is gone).
    pub shares: u64,
}

/// What a message did: which stock's book it touched (if any) and the trade it printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Effect {
    pub book: Option<u16>,
    pub print: Option<Print>,
    /// The price levels of `book` the message changed, with their size after it: one, or
    /// two for a cancel-replace to another price. Exactly what an L2 consumer needs, handed
    /// over so that it does not search the levels again.
    pub levels: [Option<ChangedLevel>; 2],
}

/// The whole day's L3 book. See the module documentation.
#[derive(Debug, Clone)]
pub struct L3Book {
    orders: OrderMap,
    stocks: Vec<StockBook>,
}

impl Default for L3Book {
    fn default() -> Self {
        Self::new()
    }
}

impl L3Book {
    /// An empty book.
    pub fn new() -> Self {
        Self::with_capacity(1 << 16)
    }

    /// An empty book expecting about `orders` live orders at peak.
    pub fn with_capacity(orders: usize) -> Self {
        L3Book {
            orders: OrderMap::with_capacity(orders),
            stocks: Vec::new(),
        }
    }

    /// The book of a stock by locate code.
    pub fn stock(&self, locate: u16) -> Option<&StockBook> {
        self.stocks.get(locate as usize)
    }

    /// Top of book of a stock (empty for an unknown locate).
    #[inline]
    pub fn top(&self, locate: u16) -> Top {
        self.stock(locate).map(StockBook::top).unwrap_or_default()
    }

    /// The live order with this reference.
    pub fn order(&self, order_ref: u64) -> Option<Order> {
        self.orders.get(order_ref)
    }

    /// Starts loading the order slot(s) a not-yet-applied message will need (see
    /// [`OrderMap::prefetch`]). Does nothing for messages without an order reference.
    #[inline(always)]
    pub fn prefetch(&self, body: &[u8]) {
        let key_at = |at: usize| {
            body.get(at..at + 8)
                .map(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")))
        };
        match body.first() {
            Some(b'A' | b'F' | b'E' | b'C' | b'X' | b'D') => {
                if let Some(k) = key_at(11) {
                    self.orders.prefetch(k);
                }
            }
            Some(b'U') => {
                if let (Some(old), Some(new)) = (key_at(11), key_at(19)) {
                    self.orders.prefetch(old);
                    self.orders.prefetch(new);
                }
            }
            _ => {}
        }
    }

    /// Starts loading the best levels of the stock a not-yet-applied message belongs to.
    /// Needs the stock's entry itself, so [`super::replay`] calls it closer to the message
    /// than [`L3Book::prefetch`].
    #[inline(always)]
    pub fn prefetch_levels(&self, body: &[u8]) {
        let Some(locate) = body.get(1..3).map(|b| u16::from_be_bytes([b[0], b[1]])) else {
            return;
        };
        if let Some(s) = self.stocks.get(locate as usize) {
            for levels in [&s.bids.levels, &s.asks.levels] {
                if let Some(top) = levels.len().checked_sub(1) {
                    prefetch_ptr(levels.as_ptr().wrapping_add(top));
                    prefetch_ptr(levels.as_ptr().wrapping_add(top.saturating_sub(4)));
                }
            }
        }
    }

    /// Live orders.
    pub fn live_orders(&self) -> usize {
        self.orders.len()
    }

    #[inline]
    fn stock_mut(&mut self, locate: u16) -> &mut StockBook {
        let i = locate as usize;
        if i >= self.stocks.len() {
            self.stocks.resize_with(i + 1, StockBook::default);
        }
        &mut self.stocks[i]
    }

    /// Applies one message. Always inlined: it is the body of [`super::replay`]'s loop, and
    /// left to the optimizer it stayed a call in some callers (30% slower there).
    #[inline(always)]
    pub fn apply(&mut self, msg: &Message<'_>) -> Result<Effect, BookError> {
        match *msg {
            Message::AddOrder {
                header,
                order_ref,
                side,
                shares,
                price,
                ..
            } => {
                let order = Order {
                    locate: header.locate,
                    side,
                    price,
                    shares,
                };
                if order_ref > MAX_ORDER_REF {
                    return Err(BookError::OrderRefOutOfRange(order_ref));
                }
                if !self.orders.insert(order_ref, order) {
                    return Err(BookError::DuplicateOrder(order_ref));
                }
                let level = self.stock_mut(header.locate).add(side, price, shares);
                Ok(Effect {
                    book: Some(header.locate),
                    print: None,
                    levels: [Some(level), None],
                })
            }
            Message::OrderExecuted {
                order_ref, shares, ..
            } => self.reduce(order_ref, shares, None),
            Message::OrderExecutedWithPrice {
                order_ref,
                shares,
                printable,
                price,
                ..
            } => self.reduce(order_ref, shares, Some((printable, price))),
            Message::OrderCancel {
                order_ref, shares, ..
            } => self
                .reduce(order_ref, shares, Some((false, 0)))
                .map(|e| Effect { print: None, ..e }),
            Message::OrderDelete { order_ref, .. } => {
                let o = self
                    .orders
                    .remove(order_ref)
                    .ok_or(BookError::UnknownOrder(order_ref))?;
                let level = self.stock_mut(o.locate).remove(o.side, o.price, o.shares);
                Ok(Effect {
                    book: Some(o.locate),
                    print: None,
                    levels: [Some(level), None],
                })
            }
            Message::OrderReplace {
                original_ref,
                new_ref,
                shares,
                price,
                ..
            } => {
                if new_ref > MAX_ORDER_REF {
                    return Err(BookError::OrderRefOutOfRange(new_ref));
                }
                if self.orders.get(new_ref).is_some() && new_ref != original_ref {
                    return Err(BookError::DuplicateOrder(new_ref));
                }
                let o = self
                    .orders
                    .remove(original_ref)
                    .ok_or(BookError::UnknownOrder(original_ref))?;
                let book = self.stock_mut(o.locate);
                let old = book.remove(o.side, o.price, o.shares);
                let new = book.add(o.side, price, shares);
                self.orders.insert(new_ref, Order { price, shares, ..o });
                let levels = if price == o.price {
                    [Some(new), None]
                } else {
                    [Some(old), Some(new)]
                };
                Ok(Effect {
                    book: Some(o.locate),
                    print: None,
                    levels,
                })
            }
            Message::Trade {
                header,
                shares,
                price,
                ..
            } => Ok(Effect {
                book: None,
                print: Some(Print {
                    locate: header.locate,
                    price,
                    shares: shares as u64,
                }),
                levels: [None, None],
            }),
            Message::CrossTrade {
                header,
                shares,
                price,
                ..
            } => Ok(Effect {
                book: None,
                print: (shares > 0).then_some(Print {
                    locate: header.locate,
                    price,
                    shares,
                }),
                levels: [None, None],
            }),
            Message::StockDirectory { header, stock, .. } => {
                self.stock_mut(header.locate).symbol = Some(*stock);
                Ok(Effect::default())
            }
            Message::SystemEvent { .. } | Message::BrokenTrade { .. } | Message::Other { .. } => {
                Ok(Effect::default())
            }
        }
    }

    /// Removes `shares` from an order (execution or cancel); the order leaves the book when
    /// none remain. `with_price` is `(printable, price)` for executions at another price.
    #[inline(always)]
    fn reduce(
        &mut self,
        order_ref: u64,
        shares: u32,
        with_price: Option<(bool, u32)>,
    ) -> Result<Effect, BookError> {
        let i = self
            .orders
            .find(order_ref)
            .ok_or(BookError::UnknownOrder(order_ref))?;
        let order = self.orders.at(i);
        if shares > order.shares {
            return Err(BookError::TooManyShares {
                order_ref,
                has: order.shares,
                removes: shares,
            });
        }
        if shares == order.shares {
            self.orders.remove(order_ref);
        } else {
            self.orders.reduce_at(i, shares);
        }
        let level = self
            .stock_mut(order.locate)
            .remove(order.side, order.price, shares);
        let print = match with_price {
            None => Some(order.price),
            Some((true, price)) => Some(price),
            Some((false, _)) => None,
        };
        Ok(Effect {
            book: Some(order.locate),
            print: print.map(|price| Print {
                locate: order.locate,
                price,
                shares: shares as u64,
            }),
            levels: [Some(level), None],
        })
    }
}
