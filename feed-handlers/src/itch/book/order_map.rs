//! The order table of the L3 book: every resting order of the day by reference number.
//!
//! Kept apart from the book because it is a data structure with its own invariants (linear
//! probing, backward-shift deletion, packed 16-byte slots) and its own test; the book only
//! inserts, looks up, removes and prefetches.

use super::prefetch_ptr;
use crate::itch::parser::ItchSide;

/// A resting order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Order {
    pub locate: u16,
    pub side: ItchSide,
    pub price: u32,
    pub shares: u32,
}

/// Open-addressing (linear probing, backward-shift deletion) map from order reference to
/// [`Order`]. See the module documentation.
///
/// A slot is 16 bytes (reference, locate and side packed in one word, then price and
/// shares), so four fit in a cache line and none straddles two: a lookup costs one line.
/// The slot of a reference is the reference itself modulo the table size: ITCH assigns
/// references in increasing order through the day, so this spreads them without collisions
/// and keeps the most recently added orders (the ones most likely to be executed or
/// cancelled next) in neighbouring, still-cached lines. A multiplicative hash would scatter
/// them and make nearly every lookup a cache miss.
#[derive(Debug, Clone)]
pub struct OrderMap {
    slots: Vec<Slot>,
    len: usize,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    /// Bits 0..47: order reference; 47..63: stock locate; 63: sell side.
    word: u64,
    price: u32,
    shares: u32,
}

/// Bits of the packed word holding the reference.
const KEY_BITS: u32 = 47;
const KEY_MASK: u64 = (1 << KEY_BITS) - 1;

/// Largest reference the map can hold (2^47 - 2): far beyond any ITCH day's count.
pub const MAX_ORDER_REF: u64 = KEY_MASK - 1;

/// An empty slot's word; its reference bits (all ones) are never a valid reference.
const EMPTY: u64 = u64::MAX;

const EMPTY_SLOT: Slot = Slot {
    word: EMPTY,
    price: 0,
    shares: 0,
};

impl Slot {
    #[inline(always)]
    fn key(&self) -> u64 {
        self.word & KEY_MASK
    }

    #[inline(always)]
    fn pack(key: u64, order: &Order) -> Slot {
        let sell = matches!(order.side, ItchSide::Sell) as u64;
        Slot {
            word: key | (order.locate as u64) << KEY_BITS | sell << 63,
            price: order.price,
            shares: order.shares,
        }
    }

    #[inline(always)]
    fn order(&self) -> Order {
        Order {
            locate: (self.word >> KEY_BITS) as u16,
            side: if self.word >> 63 == 1 {
                ItchSide::Sell
            } else {
                ItchSide::Buy
            },
            price: self.price,
            shares: self.shares,
        }
    }
}

impl OrderMap {
    /// A map sized for about `capacity` live orders before it first grows.
    pub fn with_capacity(capacity: usize) -> Self {
        let slots = (capacity.max(8) * 2).next_power_of_two();
        OrderMap {
            slots: vec![EMPTY_SLOT; slots],
            len: 0,
        }
    }

    /// Live orders.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no order is live.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    #[inline(always)]
    fn home(&self, key: u64) -> usize {
        key as usize & self.mask()
    }

    /// The slot of `key`, so that a lookup followed by an in-place change ([`Self::at`],
    /// [`Self::reduce_at`]) probes once.
    #[inline(always)]
    pub(super) fn find(&self, key: u64) -> Option<usize> {
        if key > MAX_ORDER_REF {
            return None;
        }
        let mask = self.mask();
        let mut i = self.home(key);
        loop {
            let w = self.slots[i].word;
            if w == EMPTY {
                return None;
            }
            if w & KEY_MASK == key {
                return Some(i);
            }
            i = (i + 1) & mask;
        }
    }

    /// The order with this reference.
    #[inline]
    pub fn get(&self, key: u64) -> Option<Order> {
        self.find(key).map(|i| self.slots[i].order())
    }

    /// Inserts a new order; `false` (and no change) if the reference is live already or is
    /// beyond [`MAX_ORDER_REF`].
    #[inline(always)]
    pub fn insert(&mut self, key: u64, order: Order) -> bool {
        if key > MAX_ORDER_REF {
            return false;
        }
        if (self.len + 1) * 2 > self.slots.len() {
            self.grow();
        }
        let mask = self.mask();
        let mut i = self.home(key);
        loop {
            let w = self.slots[i].word;
            if w == EMPTY {
                self.slots[i] = Slot::pack(key, &order);
                self.len += 1;
                return true;
            }
            if w & KEY_MASK == key {
                return false;
            }
            i = (i + 1) & mask;
        }
    }

    /// Removes and returns an order.
    #[inline(always)]
    pub fn remove(&mut self, key: u64) -> Option<Order> {
        let mut hole = self.find(key)?;
        let removed = self.slots[hole].order();
        let mask = self.mask();
        // Backward-shift: pull later members of the probe run into the hole so lookups never
        // need tombstones.
        let mut i = (hole + 1) & mask;
        loop {
            let slot = self.slots[i];
            if slot.word == EMPTY {
                break;
            }
            let home = self.home(slot.key());
            // Move the slot if its home is not in the cyclic range (hole, i].
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.slots[hole] = slot;
                hole = i;
            }
            i = (i + 1) & mask;
        }
        self.slots[hole] = EMPTY_SLOT;
        self.len -= 1;
        Some(removed)
    }

    /// Hints the CPU to start loading the slot of `key`. The table is far larger than the
    /// caches, so [`super::replay`] calls this a few messages ahead of applying them: the
    /// lookup then finds its line already in flight instead of stalling on memory.
    #[inline(always)]
    pub fn prefetch(&self, key: u64) {
        prefetch_ptr(self.slots.as_ptr().wrapping_add(self.home(key)));
    }

    /// The order in slot `i` (from [`Self::find`]).
    #[inline(always)]
    pub(super) fn at(&self, i: usize) -> Order {
        self.slots[i].order()
    }

    /// Takes `shares` off the order in slot `i` (from [`Self::find`]), which keeps some.
    #[inline(always)]
    pub(super) fn reduce_at(&mut self, i: usize, shares: u32) {
        self.slots[i].shares -= shares;
    }

    fn grow(&mut self) {
        let old = std::mem::take(&mut self.slots);
        *self = OrderMap::with_capacity(old.len());
        for s in old {
            if s.word != EMPTY {
                self.insert(s.key(), s.order());
            }
        }
    }
}

#[cfg(test)]
mod tests;
