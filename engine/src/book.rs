//! The L2 price-level order book and its coalescing of changes into ticks.
//!
//! Each side is a `Vec` of levels sorted so that the *best* price is at the end: bids
//! ascending, asks descending. Almost all market activity happens at or near the top, so an
//! insert or delete there moves only a few elements, the best level is a plain `last()`, and a
//! lookup is a binary search over contiguous memory. No tree, no per-level allocation.
//!
//! [`Coalescer`] turns a batch of level changes (one upstream message) into at most one quote
//! tick and one depth tick: subscribers see the state after the whole message, never the
//! intermediate states inside it.

use crate::domain::{Price, Qty, Side};

/// One price level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Level {
    pub price: Price,
    pub qty: Qty,
}

/// Best bid and ask with their sizes; `None` when a side is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TopOfBook {
    pub bid: Option<Level>,
    pub ask: Option<Level>,
}

/// An L2 book: aggregated size per price on each side.
#[derive(Debug, Clone, Default)]
pub struct L2Book {
    bids: Vec<Level>,
    asks: Vec<Level>,
}

impl L2Book {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the size at `price` on `side`; a zero size removes the level.
    ///
    /// Returns the distance from the top of the book of the level that changed (0 = best),
    /// or `None` when nothing changed (deleting an absent level, or setting the same size).
    #[inline]
    pub fn apply(&mut self, side: Side, price: Price, qty: Qty) -> Option<usize> {
        let levels = self.side_mut(side);
        let found = match side {
            Side::Buy => levels.binary_search_by(|l| l.price.cmp(&price)),
            Side::Sell => levels.binary_search_by(|l| price.cmp(&l.price)),
        };
        let len = levels.len();
        match found {
            Ok(i) => {
                if qty.0 <= 0 {
                    levels.remove(i);
                } else if levels[i].qty == qty {
                    return None;
                } else {
                    levels[i].qty = qty;
                }
                Some(len - 1 - i)
            }
            Err(i) => {
                if qty.0 <= 0 {
                    return None;
                }
                levels.insert(i, Level { price, qty });
                Some(len - i)
            }
        }
    }

    /// Replaces both sides. Levels may come in any order; zero sizes are dropped and a
    /// repeated price keeps its last size.
    pub fn replace(
        &mut self,
        bids: impl IntoIterator<Item = Level>,
        asks: impl IntoIterator<Item = Level>,
    ) {
        self.bids.clear();
        self.asks.clear();
        self.bids.extend(bids.into_iter().filter(|l| l.qty.0 > 0));
        self.asks.extend(asks.into_iter().filter(|l| l.qty.0 > 0));
        // Stable sorts so that, after dedup, the last occurrence of a price wins.
        self.bids.sort_by_key(|l| l.price);
        self.asks.sort_by_key(|l| std::cmp::Reverse(l.price));
        dedup_keep_last(&mut self.bids);
        dedup_keep_last(&mut self.asks);
    }

    /// Removes every level.
    pub fn clear(&mut self) {
        self.bids.clear();
        self.asks.clear();
    }

    /// Best bid and ask.
    #[inline]
    pub fn top(&self) -> TopOfBook {
        TopOfBook {
            bid: self.bids.last().copied(),
            ask: self.asks.last().copied(),
        }
    }

    /// Levels of one side from the best outwards.
    pub fn levels(&self, side: Side) -> impl ExactSizeIterator<Item = &Level> + '_ {
        self.side(side).iter().rev()
    }

    /// Number of levels on a side.
    pub fn depth(&self, side: Side) -> usize {
        self.side(side).len()
    }

    /// Whether the best bid is at or above the best ask: a book that must not be published.
    pub fn is_crossed(&self) -> bool {
        match (self.bids.last(), self.asks.last()) {
            (Some(b), Some(a)) => b.price >= a.price,
            _ => false,
        }
    }

    /// Removes levels beyond `depth` on both sides (venues that maintain a bounded book).
    pub fn truncate(&mut self, depth: usize) {
        for levels in [&mut self.bids, &mut self.asks] {
            let excess = levels.len().saturating_sub(depth);
            levels.drain(..excess);
        }
    }

    fn side(&self, side: Side) -> &Vec<Level> {
        match side {
            Side::Buy => &self.bids,
            Side::Sell => &self.asks,
        }
    }

    fn side_mut(&mut self, side: Side) -> &mut Vec<Level> {
        match side {
            Side::Buy => &mut self.bids,
            Side::Sell => &mut self.asks,
        }
    }
}

fn dedup_keep_last(levels: &mut Vec<Level>) {
    // After a stable sort equal prices are adjacent in arrival order; keep the last one.
    let mut out = 0;
    for i in 0..levels.len() {
        if i + 1 < levels.len() && levels[i + 1].price == levels[i].price {
            continue;
        }
        levels[out] = levels[i];
        out += 1;
    }
    levels.truncate(out);
}

/// What one batch of changes means for subscribers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Coalesced {
    /// The top of book changed: publish a quote with this value.
    pub quote: Option<TopOfBook>,
    /// A level within the published depth changed: publish the book.
    pub depth_changed: bool,
}

/// Folds the level changes of one upstream message into at most one quote and one book tick.
#[derive(Debug, Clone, Default)]
pub struct Coalescer {
    last_top: TopOfBook,
    shallowest_change: Option<usize>,
}

impl Coalescer {
    /// A coalescer that has published nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one change to `book`, remembering how deep it reached.
    #[inline]
    pub fn apply(&mut self, book: &mut L2Book, side: Side, price: Price, qty: Qty) {
        if let Some(at) = book.apply(side, price, qty) {
            self.shallowest_change = Some(self.shallowest_change.map_or(at, |d| d.min(at)));
        }
    }

    /// Marks the whole book as changed (after a snapshot).
    pub fn touch_all(&mut self) {
        self.shallowest_change = Some(0);
    }

    /// Ends the batch: what to publish given that clients see `publish_depth` levels.
    #[inline]
    pub fn finish(&mut self, book: &L2Book, publish_depth: usize) -> Coalesced {
        let top = book.top();
        let quote = if top != self.last_top {
            self.last_top = top;
            Some(top)
        } else {
            None
        };
        let depth_changed = self
            .shallowest_change
            .take()
            .is_some_and(|d| d < publish_depth);
        Coalesced {
            quote,
            depth_changed,
        }
    }

    /// Forgets the last published top (the next batch publishes a quote).
    pub fn reset(&mut self) {
        *self = Self::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lv(p: i64, q: i64) -> Level {
        Level {
            price: Price(p),
            qty: Qty(q),
        }
    }

    fn side_vec(book: &L2Book, side: Side) -> Vec<(i64, i64)> {
        book.levels(side).map(|l| (l.price.0, l.qty.0)).collect()
    }

    #[test]
    fn keeps_both_sides_sorted_best_first() {
        let mut b = L2Book::new();
        for p in [100, 102, 101] {
            b.apply(Side::Buy, Price(p), Qty(1));
        }
        for p in [105, 103, 104] {
            b.apply(Side::Sell, Price(p), Qty(1));
        }
        assert_eq!(side_vec(&b, Side::Buy), vec![(102, 1), (101, 1), (100, 1)]);
        assert_eq!(side_vec(&b, Side::Sell), vec![(103, 1), (104, 1), (105, 1)]);
        assert_eq!(b.top().bid, Some(lv(102, 1)));
        assert_eq!(b.top().ask, Some(lv(103, 1)));
        assert!(!b.is_crossed());
    }

    #[test]
    fn apply_reports_depth_of_change() {
        let mut b = L2Book::new();
        assert_eq!(b.apply(Side::Buy, Price(100), Qty(1)), Some(0));
        assert_eq!(b.apply(Side::Buy, Price(99), Qty(1)), Some(1));
        assert_eq!(b.apply(Side::Buy, Price(101), Qty(1)), Some(0));
        assert_eq!(b.apply(Side::Buy, Price(99), Qty(5)), Some(2));
        assert_eq!(b.apply(Side::Buy, Price(99), Qty(5)), None, "same size");
        assert_eq!(b.apply(Side::Buy, Price(98), Qty(0)), None, "absent delete");
        assert_eq!(b.apply(Side::Buy, Price(101), Qty(0)), Some(0));
        assert_eq!(b.top().bid, Some(lv(100, 1)));
    }

    #[test]
    fn replace_sorts_dedups_and_drops_zero() {
        let mut b = L2Book::new();
        b.replace(
            [lv(1, 1), lv(3, 1), lv(2, 1), lv(3, 7), lv(4, 0)],
            [lv(9, 1), lv(8, 2)],
        );
        assert_eq!(side_vec(&b, Side::Buy), vec![(3, 7), (2, 1), (1, 1)]);
        assert_eq!(side_vec(&b, Side::Sell), vec![(8, 2), (9, 1)]);
        b.truncate(1);
        assert_eq!(side_vec(&b, Side::Buy), vec![(3, 7)]);
        assert_eq!(side_vec(&b, Side::Sell), vec![(8, 2)]);
    }

    #[test]
    fn coalescer_publishes_once_per_batch() {
        let mut b = L2Book::new();
        let mut c = Coalescer::new();
        c.apply(&mut b, Side::Buy, Price(100), Qty(1));
        c.apply(&mut b, Side::Buy, Price(101), Qty(1));
        c.apply(&mut b, Side::Sell, Price(103), Qty(2));
        let out = c.finish(&b, 10);
        assert_eq!(
            out.quote,
            Some(TopOfBook {
                bid: Some(lv(101, 1)),
                ask: Some(lv(103, 2))
            })
        );
        assert!(out.depth_changed);
        // A change below the top but within depth: book only.
        c.apply(&mut b, Side::Buy, Price(100), Qty(9));
        let out = c.finish(&b, 10);
        assert_eq!(out.quote, None);
        assert!(out.depth_changed);
        // A change deeper than the published depth: nothing.
        c.apply(&mut b, Side::Buy, Price(50), Qty(9));
        assert_eq!(c.finish(&b, 2), Coalesced::default());
    }

    #[test]
    fn crossed_book_is_detected() {
        let mut b = L2Book::new();
        b.apply(Side::Buy, Price(105), Qty(1));
        b.apply(Side::Sell, Price(104), Qty(1));
        assert!(b.is_crossed());
    }
}
