//! One client's bounded outbound buffer, with conflation and throttling.
//!
//! The outbox is the *only* place a session's pending output waits (the transport pulls from
//! it when the socket can take more), so backpressure shows up here and nowhere else:
//!
//! * Quote and book updates go through **slots**, one per (symbol, channel). A newer value
//!   replaces an unsent older one in place (conflation): a client that falls behind gets the
//!   latest state, never a queue of stale ones, and the slot count is bounded by its
//!   subscriptions.
//! * Trades, statuses and replies are **events**: they are queued in order and never
//!   dropped. Their bytes count against the session's limit; past it the client is a slow
//!   consumer and is closed (1008), which is also what bounds memory.
//! * A throttled slot holds its latest value until its interval has passed, then sends it:
//!   at most one update per interval, always the newest.
//!
//! Everything here runs on the server worker thread that owns the session; no locks.

use std::collections::VecDeque;
use std::task::Waker;
use std::time::{Duration, Instant};

use bytes::Bytes;

/// Queue capacity (entries) an outbox keeps once it has drained.
const IDLE_QUEUE_CAPACITY: usize = 16;

/// Index of a conflation slot within one outbox.
pub type SlotId = u32;

/// Limits applied to one outbox.
#[derive(Debug, Clone, Copy)]
pub struct OutboxLimits {
    /// Queued bytes beyond which the client is a slow consumer.
    pub max_queued_bytes: usize,
}

/// Why a session is being closed by the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    pub code: u16,
    pub reason: &'static str,
}

impl CloseReason {
    /// 1008: the client could not keep up.
    pub const SLOW_CONSUMER: CloseReason = CloseReason {
        code: 1008,
        reason: "slow consumer",
    };
    /// 1001: the server is shutting down.
    pub const GOING_AWAY: CloseReason = CloseReason {
        code: 1001,
        reason: "going away",
    };
    /// 4000: the client stopped answering pings.
    pub const HEARTBEAT_TIMEOUT: CloseReason = CloseReason {
        code: 4000,
        reason: "heartbeat timeout",
    };
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    Frame,
    /// A slot's value, valid while the slot's generation still matches.
    Slot(SlotId, u32),
}

/// A conflation slot, touched for every tick it receives: kept to 48 bytes. (Aligning it to
/// a 64-byte line, so that none straddles two, measured slower: see `fanout/saturated_round`
/// in docs/benchmarks.md.)
#[derive(Debug, Default)]
struct Slot {
    value: Option<Bytes>,
    /// `chan_seq` of `value`, or of the last value sent when `value` is `None`.
    seq: u64,
    /// Bumped whenever queued entries of this slot become obsolete.
    gen: u32,
    /// An `Entry::Slot` with the current generation is in the queue.
    queued: bool,
    /// Waiting in `deferred` for its throttle interval.
    deferred: bool,
    in_use: bool,
    /// Has an entry in `Outbox::throttles`.
    throttled: bool,
}

const _: () = assert!(std::mem::size_of::<Slot>() == 48);

/// Throttle state of a slot; only throttled slots pay for it.
#[derive(Debug, Clone, Copy)]
struct Throttle {
    interval: Duration,
    next_due: Option<Instant>,
}

/// Counters an outbox keeps about itself (read by metrics and tests).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct OutboxStats {
    /// Updates replaced before they were sent (backpressure conflation).
    pub conflated: u64,
    /// Updates replaced while waiting for a throttle interval.
    pub throttled: u64,
    /// Frames handed to the transport.
    pub frames_sent: u64,
    /// Bytes handed to the transport.
    pub bytes_sent: u64,
}

/// A session's pending output. See the module docs.
///
/// `repr(C)` keeps the fields every offer touches together at the front.
#[derive(Debug)]
#[repr(C)]
pub struct Outbox {
    // Hot: read or written by every offer.
    slots: Vec<Slot>,
    entries: VecDeque<Entry>,
    queued_bytes: usize,
    limits: OutboxLimits,
    waker: Option<Waker>,
    /// The transport has been woken and has not yet come back for more.
    notified: bool,
    closing: Option<CloseReason>,
    // Colder: events, throttling, bookkeeping.
    frames: VecDeque<Bytes>,
    throttles: Vec<Throttle>,
    free_slots: Vec<SlotId>,
    deferred: Vec<SlotId>,
    /// Obsolete `Entry::Slot`s still in `entries` (skipped when reached).
    stale_entries: usize,
    close_sent: bool,
    /// Set when the queue was fully drained since the last sweep; see [`Outbox::sweep_lag`].
    drained: bool,
    behind_since: Option<Instant>,
    stats: OutboxStats,
}

/// What [`Outbox::offer`] or [`Outbox::push_event`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    /// Queued; the transport has been woken.
    Queued,
    /// Replaced an unsent value (conflated or throttled).
    Replaced,
    /// Older than what the slot already had; ignored.
    Stale,
    /// The session is closing; ignored.
    Closed,
    /// The byte limit was exceeded: the outbox is now closing as a slow consumer.
    Overflow,
}

impl Outbox {
    /// An empty outbox. Allocates nothing until used.
    pub fn new(limits: OutboxLimits) -> Self {
        Outbox {
            slots: Vec::new(),
            entries: VecDeque::new(),
            queued_bytes: 0,
            limits,
            waker: None,
            notified: false,
            closing: None,
            frames: VecDeque::new(),
            throttles: Vec::new(),
            free_slots: Vec::new(),
            deferred: Vec::new(),
            stale_entries: 0,
            close_sent: false,
            drained: true,
            behind_since: None,
            stats: OutboxStats::default(),
        }
    }

    /// Allocates a conflation slot, optionally throttled to one update per `throttle`.
    pub fn alloc_slot(&mut self, throttle: Option<Duration>) -> SlotId {
        let id = match self.free_slots.pop() {
            Some(id) => id,
            None => {
                // Grow by doubling from one: most sessions hold a few slots, and the default
                // first allocation (four 64-byte slots) would be most of an idle session.
                if self.slots.len() == self.slots.capacity() {
                    self.slots.reserve_exact(self.slots.len().max(1));
                }
                self.slots.push(Slot::default());
                (self.slots.len() - 1) as SlotId
            }
        };
        if self.throttles.len() < self.slots.len() {
            self.throttles
                .reserve_exact(self.slots.capacity() - self.throttles.len());
            self.throttles.resize(
                self.slots.len(),
                Throttle {
                    interval: Duration::ZERO,
                    next_due: None,
                },
            );
        }
        let slot = &mut self.slots[id as usize];
        *slot = Slot {
            in_use: true,
            gen: slot.gen.wrapping_add(1),
            ..Slot::default()
        };
        self.set_throttle(id, throttle);
        id
    }

    /// Changes a slot's throttle interval.
    pub fn set_throttle(&mut self, id: SlotId, throttle: Option<Duration>) {
        if let Some(slot) = self.slots.get_mut(id as usize) {
            slot.throttled = throttle.is_some();
            self.throttles[id as usize] = Throttle {
                interval: throttle.unwrap_or_default(),
                next_due: None,
            };
        }
    }

    /// Releases a slot; an unsent value in it is dropped.
    pub fn free_slot(&mut self, id: SlotId) {
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return;
        };
        if !slot.in_use {
            return;
        }
        if let Some(v) = slot.value.take() {
            self.queued_bytes -= v.len();
        }
        slot.in_use = false;
        if slot.queued {
            slot.queued = false;
            slot.gen = slot.gen.wrapping_add(1);
            self.stale_entries += 1;
        }
        if slot.deferred {
            slot.deferred = false;
            self.deferred.retain(|d| *d != id);
        }
        // A queued entry may still point here; it is skipped when it finds no value.
        self.free_slots.push(id);
    }

    /// Offers the latest value of a conflated stream. `seq` orders values of the slot:
    /// anything not newer than what the slot holds or has sent is ignored.
    #[inline]
    pub fn offer(&mut self, id: SlotId, seq: u64, frame: &Bytes, now: Option<Instant>) -> Offer {
        if self.closing.is_some() {
            return Offer::Closed;
        }
        let Some(slot) = self.slots.get_mut(id as usize) else {
            return Offer::Stale;
        };
        if !slot.in_use || (seq <= slot.seq && slot.seq != 0) {
            return Offer::Stale;
        }
        slot.seq = seq;
        let len = frame.len();
        let replaced = match slot.value.replace(frame.clone()) {
            Some(old) => {
                self.queued_bytes -= old.len();
                true
            }
            None => false,
        };
        self.queued_bytes += len;
        if replaced {
            if slot.deferred {
                self.stats.throttled += 1;
                return Offer::Replaced;
            }
            self.stats.conflated += 1;
            if slot.queued {
                // The newer value takes its place at the back, so that what is sent stays
                // in the order it was published (per-symbol `seq` never goes backwards).
                slot.gen = slot.gen.wrapping_add(1);
                self.entries.push_back(Entry::Slot(id, slot.gen));
                self.stale_entries += 1;
                self.compact_if_needed();
            }
            return Offer::Replaced;
        }
        if slot.throttled {
            let now = now.unwrap_or_else(Instant::now);
            let t = &mut self.throttles[id as usize];
            match t.next_due {
                Some(due) if due > now => {
                    slot.deferred = true;
                    self.deferred.push(id);
                    // The transport re-arms its timer for the earliest deferred slot.
                    self.wake();
                    return Offer::Queued;
                }
                _ => t.next_due = Some(now + t.interval),
            }
        }
        if !slot.queued {
            slot.queued = true;
            self.entries.push_back(Entry::Slot(id, slot.gen));
        }
        self.wake();
        if self.queued_bytes > self.limits.max_queued_bytes {
            self.close(CloseReason::SLOW_CONSUMER);
            return Offer::Overflow;
        }
        Offer::Queued
    }

    /// Queues an event frame (trade, status, reply) that must not be conflated.
    #[inline]
    pub fn push_event(&mut self, frame: Bytes) -> Offer {
        let offer = self.piggyback(frame);
        if offer == Offer::Queued {
            self.wake();
        }
        offer
    }

    /// Queues an event frame without waking the transport: it leaves with the session's next
    /// write, so a busy session pays no system call of its own for it. For frames that may
    /// wait (heartbeat pings); the owner calls [`wake_if_pending`](Self::wake_if_pending)
    /// later so it also leaves when no other output comes.
    #[inline]
    pub fn piggyback(&mut self, frame: Bytes) -> Offer {
        if self.closing.is_some() {
            return Offer::Closed;
        }
        self.queued_bytes += frame.len();
        self.frames.push_back(frame);
        self.entries.push_back(Entry::Frame);
        if self.queued_bytes > self.limits.max_queued_bytes {
            // Closing wakes the transport, which then sends the close frame.
            self.close(CloseReason::SLOW_CONSUMER);
            return Offer::Overflow;
        }
        Offer::Queued
    }

    /// Wakes the transport if anything waits to be sent (piggybacked frames included).
    pub fn wake_if_pending(&mut self) {
        if self.has_pending() {
            self.wake();
        }
    }

    /// Starts closing: pending output is discarded and only the close frame remains to send.
    /// The first reason wins.
    pub fn close(&mut self, reason: CloseReason) {
        if self.closing.is_some() {
            return;
        }
        self.closing = Some(reason);
        self.entries = VecDeque::new();
        self.frames = VecDeque::new();
        self.deferred = Vec::new();
        self.stale_entries = 0;
        for slot in &mut self.slots {
            slot.value = None;
            slot.queued = false;
            slot.deferred = false;
            slot.gen = slot.gen.wrapping_add(1);
        }
        self.queued_bytes = 0;
        self.wake();
    }

    /// The reason the outbox is closing, if it is.
    pub fn closing(&self) -> Option<&CloseReason> {
        self.closing.as_ref()
    }

    /// Whether the close frame has been handed to the transport.
    pub fn close_sent(&self) -> bool {
        self.close_sent
    }

    /// Moves throttled values whose interval has passed into the queue; returns the earliest
    /// time a still-deferred value becomes due.
    pub fn release_due(&mut self, now: Instant) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let mut i = 0;
        while i < self.deferred.len() {
            let id = self.deferred[i];
            let slot = &mut self.slots[id as usize];
            let t = &mut self.throttles[id as usize];
            let due = t.next_due.unwrap_or(now);
            if due <= now {
                slot.deferred = false;
                t.next_due = Some(now + t.interval);
                if !slot.queued && slot.value.is_some() {
                    slot.queued = true;
                    self.entries.push_back(Entry::Slot(id, slot.gen));
                }
                self.deferred.swap_remove(i);
            } else {
                earliest = Some(earliest.map_or(due, |e| e.min(due)));
                i += 1;
            }
        }
        earliest
    }

    /// Whether anything may be ready to send (a cheap over-approximation).
    pub fn has_pending(&self) -> bool {
        !self.entries.is_empty() || self.closing.is_some()
    }

    /// Whether throttled values are waiting.
    pub fn has_deferred(&self) -> bool {
        !self.deferred.is_empty()
    }

    /// Takes the next frame to send, remembering `waker` if there is none.
    ///
    /// Returns `None` when nothing is ready. After the close frame has been returned, the
    /// outbox yields nothing more.
    pub fn next_frame(&mut self, waker: &Waker) -> Option<Bytes> {
        while let Some(entry) = self.entries.pop_front() {
            let frame = match entry {
                Entry::Frame => self.frames.pop_front(),
                Entry::Slot(id, gen) => {
                    let slot = &mut self.slots[id as usize];
                    if slot.gen != gen {
                        self.stale_entries -= 1;
                        continue;
                    }
                    slot.queued = false;
                    slot.value.take()
                }
            };
            if let Some(f) = frame {
                self.queued_bytes -= f.len();
                self.stats.frames_sent += 1;
                self.stats.bytes_sent += f.len() as u64;
                return Some(f);
            }
        }
        self.drained = true;
        if let Some(reason) = &self.closing {
            if !self.close_sent {
                self.close_sent = true;
                return Some(crate::wire::close_frame(reason.code, reason.reason));
            }
            return None;
        }
        match &self.waker {
            Some(w) if w.will_wake(waker) => {}
            _ => self.waker = Some(waker.clone()),
        }
        self.notified = false;
        None
    }

    /// Gives back the queue memory a burst (or a shared-stream member catching up) grew,
    /// once the queue is empty, keeping what an idle session needs.
    ///
    /// The owner calls it now and then (the server's sweep), not on every drain: a busy
    /// session empties and refills its queues with every write, and shrinking them each
    /// time cost a reallocation and a copy per write (4-5 % of a saturated worker in W2).
    pub fn release_idle_memory(&mut self) {
        if !self.entries.is_empty() {
            return;
        }
        if self.frames.capacity() > IDLE_QUEUE_CAPACITY {
            self.frames.shrink_to(IDLE_QUEUE_CAPACITY);
        }
        if self.entries.capacity() > IDLE_QUEUE_CAPACITY {
            self.entries.shrink_to(IDLE_QUEUE_CAPACITY);
        }
    }

    /// Whether the close frame is out and nothing more will come.
    pub fn finished(&self) -> bool {
        self.close_sent
    }

    /// Called periodically by the owner's sweep: returns how long the client has continuously
    /// had output waiting that it did not take. A queue drained since the previous sweep
    /// counts as keeping up.
    pub fn sweep_lag(&mut self, now: Instant) -> Duration {
        if self.entries.is_empty() {
            self.behind_since = None;
            self.drained = false;
            return Duration::ZERO;
        }
        if std::mem::take(&mut self.drained) {
            // It took everything since the last sweep; what waits now is new.
            self.behind_since = Some(now);
            return Duration::ZERO;
        }
        let since = *self.behind_since.get_or_insert(now);
        now.saturating_duration_since(since)
    }

    /// Bytes waiting to be sent.
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// The outbox's counters.
    pub fn stats(&self) -> OutboxStats {
        self.stats
    }

    /// Drops obsolete entries once they outnumber the live ones, so a conflating client's
    /// queue stays proportional to its subscriptions and pending events.
    fn compact_if_needed(&mut self) {
        if self.stale_entries < 64 || self.stale_entries * 2 < self.entries.len() {
            return;
        }
        let slots = &self.slots;
        self.entries.retain(|e| match *e {
            Entry::Frame => true,
            Entry::Slot(id, gen) => slots[id as usize].gen == gen,
        });
        self.stale_entries = 0;
    }

    /// Number of queued entries (events and slot references), for tests and metrics.
    pub fn queued_entries(&self) -> usize {
        self.entries.len()
    }

    /// Wakes the transport once per drain cycle; the waker stays registered, so a busy
    /// session costs one wake per batch of ticks, not one per tick.
    #[inline]
    fn wake(&mut self) {
        if !self.notified {
            if let Some(w) = &self.waker {
                w.wake_by_ref();
                self.notified = true;
            }
        }
    }
}

#[cfg(test)]
mod tests;
