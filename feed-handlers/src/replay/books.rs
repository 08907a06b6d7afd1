//! The replay's own copy of every book, kept beside the engine's.
//!
//! A replay that starts at a time, or seeks, cannot send the recording's raw messages from
//! that point on: the books would miss everything before. So the replay decodes from the
//! start of the recording (or its current position) without emitting, keeping these books,
//! and then gives each book actor a [`FeedEvent::Snapshot`] of the state at that time. The
//! same books answer a book actor's resync request mid-replay.

use tickwire_engine::book::{L2Book, Level};
use tickwire_engine::domain::{Nanos, Price, Qty, Side, SymbolId};
use tickwire_engine::event::{EventMeta, FeedEvent};

/// See the module documentation. Indexed by the replay's symbol ids.
#[derive(Default)]
pub struct LocalBooks {
    books: Vec<L2Book>,
    synced: Vec<bool>,
    /// A damaged block went by: the book is wrong until the recording's next snapshot.
    tainted: Vec<bool>,
}

impl LocalBooks {
    /// Books for `n` symbols, all unsynced.
    pub fn new(n: usize) -> Self {
        LocalBooks {
            books: (0..n).map(|_| L2Book::new()).collect(),
            synced: vec![false; n],
            tainted: vec![false; n],
        }
    }

    /// Forgets everything (a replay restarting from the beginning).
    pub fn reset(&mut self) {
        for b in &mut self.books {
            b.clear();
        }
        self.synced.fill(false);
        self.tainted.fill(false);
    }

    /// Applies an event as the engine's book actor would.
    #[inline]
    pub fn apply(&mut self, ev: &FeedEvent) {
        let i = ev.meta().symbol.index();
        let Some(book) = self.books.get_mut(i) else {
            return;
        };
        match ev {
            FeedEvent::Snapshot { bids, asks, .. } => {
                let lv = |&(price, qty): &(Price, Qty)| Level { price, qty };
                book.replace(bids.iter().map(lv), asks.iter().map(lv));
                self.synced[i] = true;
                self.tainted[i] = false;
            }
            FeedEvent::Delta { changes, .. } => {
                if self.synced[i] {
                    for c in changes {
                        book.apply(c.side, c.price, c.qty);
                    }
                }
            }
            FeedEvent::Trade { .. } => {}
        }
    }

    /// Marks a symbol's book as unreliable until its next snapshot.
    pub fn taint(&mut self, symbol: SymbolId) {
        if let Some(t) = self.tainted.get_mut(symbol.index()) {
            *t = true;
        }
    }

    /// Whether the book can be handed out as a snapshot.
    pub fn usable(&self, symbol: SymbolId) -> bool {
        let i = symbol.index();
        self.synced.get(i).copied().unwrap_or(false) && !self.tainted[i]
    }

    /// The book of `symbol` as a snapshot event, if usable.
    pub fn snapshot(&self, symbol: SymbolId, ts: Nanos, recv_ts: Nanos) -> Option<FeedEvent> {
        if !self.usable(symbol) {
            return None;
        }
        let book = &self.books[symbol.index()];
        let side = |s| book.levels(s).map(|l| (l.price, l.qty)).collect();
        Some(FeedEvent::Snapshot {
            meta: EventMeta {
                symbol,
                ts,
                recv_ts,
            },
            bids: side(Side::Buy),
            asks: side(Side::Sell),
        })
    }

    /// The book of a symbol.
    pub fn book(&self, symbol: SymbolId) -> Option<&L2Book> {
        self.books.get(symbol.index())
    }
}
