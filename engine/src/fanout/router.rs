//! The worker-local half of the fan-out: from one worker's tick queue to its sessions.
//!
//! Each server worker thread owns one `Router`. It knows which of *its* sessions subscribed to
//! what, takes the ticks the [`Hub`] queued for this worker, and offers each one to the
//! outboxes of the local subscribers: a reference-count increment and a queue push per
//! subscriber, no allocation, no lock, no cross-thread traffic. Book ticks are encoded here,
//! once per distinct depth requested on this worker.
//!
//! Subscribing also goes through the router, so that the snapshot a new subscriber gets and
//! the updates that follow are ordered by `chan_seq` (older values are ignored by the slot).
//!
//! Sessions that share a compression stream ([`super::streams`]) get each message as the
//! group's frame, queued in order, instead of through their conflation slots; a member that
//! falls behind or would receive a different message than its group is demoted back to the
//! slots on the spot.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::hub::Hub;
use super::outbox::{Offer, Outbox, SlotId};
use super::streams::{self, SharedStreams, StreamConfig, StreamRoute, StreamSpec, StreamStats};
use crate::domain::SymbolId;
use crate::tick::{Channel, ChannelSet, Encoding, FeedState, Tick, TickBody};
use crate::wire::{compress_frame, encode_tick_tagged};

/// A session's outbox as shared between its session, its transport and the router.
pub type SharedOutbox = Rc<RefCell<Outbox>>;

/// Identifies a session within a worker.
pub type SessionId = u64;

/// Largest book depth a client may ask for.
pub const MAX_DEPTH: usize = 50;

/// What a subscribe request asks for on one symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeSpec {
    pub channels: ChannelSet,
    /// Book levels per side, 1..=[`MAX_DEPTH`].
    pub depth: u8,
    /// At most one quote/book update per this interval, or unthrottled.
    pub throttle: Option<Duration>,
    /// The session's encoding (JSON or MessagePack, compressed or not).
    pub encoding: Encoding,
}

struct Subscriber {
    session: SessionId,
    outbox: SharedOutbox,
    channels: ChannelSet,
    quote_slot: Option<SlotId>,
    book_slot: Option<SlotId>,
    depth: u8,
    encoding: Encoding,
    /// Per channel: ticks with a `seq` at or below this predate the snapshot the session got
    /// when it subscribed (they may still sit in this worker's queue) and are skipped.
    start_seq: [u64; 3],
    /// The session's shared-stream membership (the same cell in all its entries).
    route: Rc<StreamRoute>,
}

impl Subscriber {
    #[inline]
    fn wants(&self, channel: Channel, seq: u64) -> bool {
        self.channels.contains(channel) && seq > self.start_seq[channel as usize]
    }
}

/// Counters of one router (single-threaded, read by metrics).
#[derive(Debug, Default, Clone, Copy)]
pub struct RouterStats {
    /// Frames offered to outboxes (before conflation).
    pub offered: u64,
    /// Sessions found to be slow consumers by overflowing their outbox.
    pub overflow_closes: u64,
    /// Times this worker's queue overflowed and sessions were resynchronized.
    pub resyncs: u64,
}

/// See the module documentation.
pub struct Router {
    hub: Arc<Hub>,
    worker: usize,
    by_symbol: Vec<Vec<Subscriber>>,
    book_cache: Vec<BookFrames>,
    streams: SharedStreams,
    stats: RouterStats,
    /// Ticks taken from the hub, being dispatched (kept for its allocation).
    batch: Vec<Arc<Tick>>,
    /// Ticks were lost to a full queue: resynchronize once the queue is drained.
    resync_pending: bool,
}

/// Most ticks dispatched in one go.
const DISPATCH_BATCH: usize = 1024;

/// A book tick encoded at one depth, in each encoding some subscriber here needs.
struct BookFrames {
    depth: u8,
    frames: [Option<Bytes>; Encoding::COUNT],
}

impl BookFrames {
    /// The frame in `enc`, made once: a compressed variant from the cached plain one.
    fn get(
        &mut self,
        enc: Encoding,
        tick: &Tick,
        instrument: &crate::domain::Instrument,
        tag: Option<&str>,
    ) -> Bytes {
        if let Some(f) = &self.frames[enc.index()] {
            return f.clone();
        }
        let f = if enc.deflate {
            let plain = Encoding {
                deflate: false,
                ..enc
            };
            compress_frame(&self.get(plain, tick, instrument, tag))
        } else {
            encode_tick_tagged(
                instrument,
                tag,
                &tick.header,
                &tick.body,
                enc,
                self.depth as usize,
            )
        };
        self.frames[enc.index()] = Some(f.clone());
        f
    }
}

/// The frame of a quote, trade or status tick in `enc`; encoded here only when the tick was
/// published before any session used `enc` (rare).
fn tick_frame(
    tick: &Tick,
    enc: Encoding,
    instrument: &crate::domain::Instrument,
    tag: Option<&str>,
) -> Bytes {
    match tick.frame(enc) {
        Some(f) => f.clone(),
        None => encode_tick_tagged(instrument, tag, &tick.header, &tick.body, enc, MAX_DEPTH),
    }
}

impl Router {
    /// A router for worker `worker` of `hub`, with the default shared-stream settings.
    pub fn new(hub: Arc<Hub>, worker: usize) -> Self {
        Router::with_streams(hub, worker, StreamConfig::default())
    }

    /// A router for worker `worker` of `hub` with the given shared-stream settings.
    pub fn with_streams(hub: Arc<Hub>, worker: usize, streams: StreamConfig) -> Self {
        let n = hub.symbols().len();
        Router {
            hub,
            worker,
            by_symbol: (0..n).map(|_| Vec::new()).collect(),
            book_cache: Vec::new(),
            streams: SharedStreams::new(streams),
            stats: RouterStats::default(),
            batch: Vec::with_capacity(DISPATCH_BATCH),
            resync_pending: false,
        }
    }

    /// Counters of this worker's shared compression streams.
    pub fn stream_stats(&self) -> StreamStats {
        self.streams.stats()
    }

    /// The shared-stream settings of this worker.
    pub fn stream_config(&self) -> StreamConfig {
        self.streams.config()
    }

    /// Declares what `session` receives from now on, for sharing a compression stream
    /// (`None`: it must get independent frames). Call it after every change of the
    /// session's subscriptions, and [`Router::leave_stream`] before one.
    pub fn set_stream_spec(
        &mut self,
        session: SessionId,
        outbox: &SharedOutbox,
        spec: Option<StreamSpec>,
    ) {
        self.streams.route(session, outbox);
        self.streams.set_spec(session, spec);
    }

    /// Takes `session` out of its compression stream, so that it may receive frames that
    /// are not the stream's (snapshots of a new subscription).
    pub fn leave_stream(&mut self, session: SessionId) {
        self.streams.leave(session);
    }

    /// Forgets everything about `session` kept for shared streams (it ended).
    pub fn remove_session(&mut self, session: SessionId) {
        self.streams.remove(session);
    }

    /// Lets caught-up sessions (re)join their compression stream; the worker's sweep calls
    /// this.
    pub fn maintain_streams(&mut self) {
        self.streams.maintain();
    }

    /// The hub this router drains.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// This router's counters.
    pub fn stats(&self) -> RouterStats {
        self.stats
    }

    /// Number of local subscribers of `symbol`.
    pub fn subscriber_count(&self, symbol: SymbolId) -> usize {
        self.by_symbol[symbol.index()].len()
    }

    /// Adds channels of `symbol` for a session and queues their current state (quote, book,
    /// and the status when the symbol is stale). Already subscribed channels stay as they
    /// are, except that a new depth or throttle takes effect (with a fresh book snapshot for
    /// a new depth). Returns the channels the session now has on `symbol`.
    pub fn subscribe(
        &mut self,
        session: SessionId,
        outbox: &SharedOutbox,
        symbol: SymbolId,
        spec: SubscribeSpec,
    ) -> ChannelSet {
        let depth = spec.depth.clamp(1, MAX_DEPTH as u8);
        let list = &mut self.by_symbol[symbol.index()];
        let first_local = list.is_empty();
        let idx = match list.iter().position(|s| s.session == session) {
            Some(i) => i,
            None => {
                list.push(Subscriber {
                    session,
                    outbox: outbox.clone(),
                    channels: ChannelSet::EMPTY,
                    quote_slot: None,
                    book_slot: None,
                    depth,
                    encoding: spec.encoding,
                    start_seq: [0; 3],
                    route: self.streams.route(session, outbox),
                });
                list.len() - 1
            }
        };
        let last = if first_local {
            self.hub.add_interest(symbol, self.worker)
        } else {
            self.hub.last_values(symbol)
        };
        let sub = &mut self.by_symbol[symbol.index()][idx];
        let added = spec.channels.without(sub.channels);
        let depth_changed = sub.depth != depth;
        let snapshot_seq = [&last.quote, &last.book, &last.status]
            .into_iter()
            .flatten()
            .map(|t| t.header.seq.0)
            .max()
            .unwrap_or(0);
        for ch in added.iter() {
            sub.start_seq[ch as usize] = snapshot_seq;
        }
        sub.channels = sub.channels.union(spec.channels);
        sub.depth = depth;
        let mut ob = outbox.borrow_mut();
        for ch in [Channel::Quote, Channel::Book] {
            if !spec.channels.contains(ch) {
                continue;
            }
            let slot = match ch {
                Channel::Quote => &mut sub.quote_slot,
                _ => &mut sub.book_slot,
            };
            match *slot {
                Some(id) => ob.set_throttle(id, spec.throttle),
                None => *slot = Some(ob.alloc_slot(spec.throttle)),
            }
        }
        let instrument = self.hub.symbols().get(symbol);
        let encoding = sub.encoding;
        let tag = self.hub.tag();
        let snapshot_frame = |t: &Tick| tick_frame(t, encoding, instrument, tag);
        if added.contains(Channel::Quote) {
            if let (Some(t), Some(id)) = (&last.quote, sub.quote_slot) {
                ob.offer(id, t.header.chan_seq.0, &snapshot_frame(t), None);
            }
        }
        if added.contains(Channel::Book) || (depth_changed && sub.channels.contains(Channel::Book))
        {
            if let (Some(t), Some(id)) = (&last.book, sub.book_slot) {
                if t.body.is_book() {
                    let frame = encode_tick_tagged(
                        instrument,
                        tag,
                        &t.header,
                        &t.body,
                        encoding,
                        depth as usize,
                    );
                    // A depth change re-sends the same chan_seq; let it through.
                    ob.free_slot(id);
                    let id = ob.alloc_slot(spec.throttle);
                    sub.book_slot = Some(id);
                    ob.offer(id, t.header.chan_seq.0, &frame, None);
                }
            }
        }
        if !added.is_empty() {
            if let Some(t) = last.status.as_ref().filter(|t| is_stale(t)) {
                ob.push_event(snapshot_frame(t));
            }
        }
        sub.channels
    }

    /// Removes channels of `symbol` from a session; unknown or absent ones are ignored.
    /// Returns the channels the session still has on `symbol`.
    pub fn unsubscribe(
        &mut self,
        session: SessionId,
        symbol: SymbolId,
        channels: ChannelSet,
    ) -> ChannelSet {
        let list = &mut self.by_symbol[symbol.index()];
        let Some(i) = list.iter().position(|s| s.session == session) else {
            return ChannelSet::EMPTY;
        };
        let sub = &mut list[i];
        sub.channels = sub.channels.without(channels);
        {
            let mut ob = sub.outbox.borrow_mut();
            if !sub.channels.contains(Channel::Quote) {
                if let Some(id) = sub.quote_slot.take() {
                    ob.free_slot(id);
                }
            }
            if !sub.channels.contains(Channel::Book) {
                if let Some(id) = sub.book_slot.take() {
                    ob.free_slot(id);
                }
            }
        }
        let remaining = sub.channels;
        if remaining.is_empty() {
            list.swap_remove(i);
            if list.is_empty() {
                self.hub.remove_interest(symbol, self.worker);
            }
        }
        remaining
    }

    /// Offers one tick to every local subscriber of its symbol.
    pub fn dispatch(&mut self, tick: &Tick, now: Option<Instant>) {
        let symbol = tick.header.symbol;
        let subs = &self.by_symbol[symbol.index()];
        if subs.is_empty() {
            return;
        }
        let seq = tick.header.chan_seq.0;
        let symbol_seq = tick.header.seq.0;
        let instrument = self.hub.symbols().get(symbol);
        self.streams.begin_tick();
        let tag = self.hub.tag();
        match &tick.body {
            TickBody::Quote(_) => {
                for s in subs {
                    if let Some(g) = s.route.group() {
                        if s.wants(Channel::Quote, symbol_seq) {
                            let frame = self.streams.frame(g, || {
                                tick_frame(tick, streams::plain(s.encoding), instrument, tag)
                            });
                            self.stats.offered += 1;
                            let r = push_member(&mut self.streams, s, g, frame);
                            self.stats.overflow_closes += (r == Offer::Overflow) as u64;
                            continue;
                        }
                        // Its group gets a message it must not: it cannot stay.
                        self.streams.demote(&s.route, g);
                    }
                    let Some(id) = s.quote_slot.filter(|_| s.wants(Channel::Quote, symbol_seq))
                    else {
                        continue;
                    };
                    self.stats.offered += 1;
                    let r = match tick.frame(s.encoding) {
                        Some(f) => s.outbox.borrow_mut().offer(id, seq, f, now),
                        None => {
                            let f = tick_frame(tick, s.encoding, instrument, tag);
                            s.outbox.borrow_mut().offer(id, seq, &f, now)
                        }
                    };
                    self.stats.overflow_closes += (r == Offer::Overflow) as u64;
                }
            }
            TickBody::Trade { .. } | TickBody::Status { .. } => {
                // Status goes to every subscriber of the symbol, trades to trade subscribers.
                let status = !matches!(tick.body, TickBody::Trade { .. });
                for s in subs {
                    let wanted = status || s.wants(Channel::Trade, symbol_seq);
                    if let Some(g) = s.route.group() {
                        if wanted {
                            let frame = self.streams.frame(g, || {
                                tick_frame(tick, streams::plain(s.encoding), instrument, tag)
                            });
                            self.stats.offered += 1;
                            let r = push_member(&mut self.streams, s, g, frame);
                            self.stats.overflow_closes += (r == Offer::Overflow) as u64;
                            continue;
                        }
                        self.streams.demote(&s.route, g);
                    }
                    if !wanted {
                        continue;
                    }
                    self.stats.offered += 1;
                    let frame = tick_frame(tick, s.encoding, instrument, tag);
                    let r = s.outbox.borrow_mut().push_event(frame);
                    self.stats.overflow_closes += (r == Offer::Overflow) as u64;
                }
            }
            TickBody::Book(_) => {
                self.book_cache.clear();
                for s in subs {
                    let wanted = s.wants(Channel::Book, symbol_seq);
                    if let Some(g) = s.route.group() {
                        if wanted {
                            let at = book_frames_at(&mut self.book_cache, s.depth);
                            let cache = &mut self.book_cache[at];
                            let frame = self.streams.frame(g, || {
                                cache.get(streams::plain(s.encoding), tick, instrument, tag)
                            });
                            self.stats.offered += 1;
                            let r = push_member(&mut self.streams, s, g, frame);
                            self.stats.overflow_closes += (r == Offer::Overflow) as u64;
                            continue;
                        }
                        self.streams.demote(&s.route, g);
                    }
                    let Some(id) = s.book_slot.filter(|_| wanted) else {
                        continue;
                    };
                    let at = book_frames_at(&mut self.book_cache, s.depth);
                    let frame = self.book_cache[at].get(s.encoding, tick, instrument, tag);
                    self.stats.offered += 1;
                    let r = s.outbox.borrow_mut().offer(id, seq, &frame, now);
                    self.stats.overflow_closes += (r == Offer::Overflow) as u64;
                }
            }
        }
    }

    /// Re-offers the last quote and book of every subscribed symbol, after ticks were lost
    /// to a full worker queue. Conflated streams converge to the current state; trades that
    /// were lost show as a `chan_seq` gap.
    pub fn resync_all(&mut self) {
        self.stats.resyncs += 1;
        // Members lost the same ticks, but the last values are conflation's business: let
        // the slots take them (and ignore what is not newer); members rejoin later.
        self.streams.leave_all();
        for i in 0..self.by_symbol.len() {
            if self.by_symbol[i].is_empty() {
                continue;
            }
            let last = self.hub.last_values(SymbolId(i as u32));
            for t in [&last.quote, &last.book].into_iter().flatten() {
                self.dispatch(t, None);
            }
        }
    }

    /// Dispatches up to `max` of the ticks queued for this worker right now, without
    /// waiting; returns how many it took. After a queue overflow, resynchronizes once the
    /// queue is drained.
    pub fn dispatch_ready(&mut self, max: usize) -> usize {
        let mut batch = std::mem::take(&mut self.batch);
        self.resync_pending |= self.hub.take_ready(self.worker, &mut batch, max);
        let taken = batch.len();
        if taken > 0 {
            let now = Instant::now();
            for t in batch.drain(..) {
                self.dispatch(&t, Some(now));
            }
        }
        self.batch = batch;
        if self.resync_pending && (taken < max || self.hub.queue_is_empty(self.worker)) {
            // Once the queue is drained, not before: the last values are newer than anything
            // still queued, and sending them while older ticks wait behind would make `seq`
            // go backwards.
            tracing::warn!(
                worker = self.worker,
                "worker tick queue overflowed; resynchronizing"
            );
            self.resync_all();
            self.resync_pending = false;
        }
        taken
    }

    /// Dispatches what is queued for this worker now, on behalf of a session about to write.
    ///
    /// On a saturated worker the router's task waits its turn behind every connection that
    /// has output, so a tick queued just after the router ran waited a whole round (~10 ms
    /// with 1,000 busy sessions) before it reached any outbox, and then part of another
    /// before its session wrote it. Connections call this before they take from their
    /// outbox, so each write carries the newest ticks and a tick waits for at most one
    /// write. A cheap check when the queue is empty; does nothing if the router is busy
    /// (it is then the caller up the stack).
    #[inline]
    pub fn dispatch_ready_for_writer(router: &RefCell<Router>) {
        let Ok(mut r) = router.try_borrow_mut() else {
            return;
        };
        if !r.hub.queue_is_empty(r.worker) {
            r.dispatch_ready(DISPATCH_BATCH);
        }
    }

    /// Runs the router: waits for ticks queued for this worker and dispatches them, forever.
    /// Spawn it once per worker thread on that thread's local executor.
    pub async fn run(router: Rc<RefCell<Router>>) {
        // Full batches dispatched before the sessions get the thread back. Dispatching is
        // cheap next to writing, and a tick dispatched late is work wasted (conflation
        // would have replaced it): with one batch per turn, a saturated worker whose 1,000
        // sessions take ~25 ms a round could fall behind its queue for good (W2 did, one run
        // in six, ending in a second of lag and an overflowed queue).
        const BATCHES_PER_TURN: u32 = 4;
        let (hub, worker) = {
            let r = router.borrow();
            (r.hub.clone(), r.worker)
        };
        let mut full_batches = 0;
        loop {
            hub.wait_ready(worker).await;
            let full = router.borrow_mut().dispatch_ready(DISPATCH_BATCH) == DISPATCH_BATCH;
            full_batches = if full { full_batches + 1 } else { 0 };
            if full_batches == BATCHES_PER_TURN {
                // Let sessions write before taking the next batch.
                full_batches = 0;
                tokio::task::yield_now().await;
            }
        }
    }
}

/// Queues a group frame for member `s` of group `g`, demoting it if it fell behind.
#[inline]
fn push_member(streams: &mut SharedStreams, s: &Subscriber, g: u32, frame: Bytes) -> Offer {
    let mut ob = s.outbox.borrow_mut();
    let r = ob.push_event(frame);
    streams.demote_if_behind(&s.route, g, ob.queued_bytes());
    r
}

/// The index of the book frames cached for `depth`, added if missing.
fn book_frames_at(cache: &mut Vec<BookFrames>, depth: u8) -> usize {
    match cache.iter().position(|b| b.depth == depth) {
        Some(at) => at,
        None => {
            cache.push(BookFrames {
                depth,
                frames: Default::default(),
            });
            cache.len() - 1
        }
    }
}

fn is_stale(t: &Tick) -> bool {
    matches!(
        t.body,
        TickBody::Status {
            state: FeedState::Stale,
            ..
        }
    )
}
