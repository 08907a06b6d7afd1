//! The book actor: one per symbol, owning that symbol's order book.
//!
//! It applies the normalized events of its symbol, coalesces each upstream message into at
//! most one quote and one book tick, stamps the per-symbol sequence numbers, encodes the
//! ticks once, and publishes them to the [`Hub`].
//!
//! It runs under an actix [`Supervisor`](actix::Supervisor). A failure while applying an event
//! (a panic in book code, an injected fault) stops the actor; the supervisor restarts it, and
//! [`restarting`](actix::Supervised::restarting) throws the book away, tells subscribers the
//! symbol is stale and asks the feed handler for a fresh snapshot. Sequence numbers survive
//! the restart, so clients see them keep increasing.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use smallvec::SmallVec;

use crate::adapter::FeedCommand;
use crate::book::{Coalescer, L2Book, Level};
use crate::domain::{Instrument, Nanos, Seq, SymbolId};
use crate::event::FeedEvent;
use crate::fanout::router::MAX_DEPTH;
use crate::fanout::Hub;
use crate::tick::{BookLevels, Channel, Encoding, FeedState, Tick, TickBody, TickHeader};
use crate::wire::{compress_frame, encode_tick_tagged, TickEncoder};

/// Apply one normalized event.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ApplyEvent(pub FeedEvent);

/// The upstream of this symbol changed state (sent by the feed handler).
#[derive(Message, Clone)]
#[rtype(result = "()")]
pub struct UpstreamState {
    pub state: FeedState,
    pub reason: Arc<str>,
}

/// Discard the book and wait for a snapshot (the feed handler dropped events).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ForceResync {
    pub reason: &'static str,
}

/// Answered once everything sent to the actor before it has been applied and published
/// (see [`crate::adapter::FeedIo::barrier`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Barrier;

/// Stop for good: forget the feed handler so the engine's actors can all go away (see
/// [`crate::Engine::shutdown`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Detach;

/// Make the actor fail as if its book code had panicked (fault injection).
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectBookFault;

/// Where a restarted book asks for its snapshot.
#[derive(Message)]
#[rtype(result = "()")]
pub struct RequestSnapshot(pub FeedCommand);

/// Counters shared by all book actors of an engine.
#[derive(Debug, Default)]
pub struct BookStats {
    pub events: AtomicU64,
    pub ticks: AtomicU64,
    pub restarts: AtomicU64,
    pub dropped_unsynced: AtomicU64,
    pub crossed: AtomicU64,
}

/// See the module documentation.
pub struct BookActor {
    symbol: SymbolId,
    instrument: Instrument,
    hub: Arc<Hub>,
    feed: Option<Recipient<RequestSnapshot>>,
    book: L2Book,
    coalescer: Coalescer,
    seq: Seq,
    chan_seq: [Seq; 3],
    state: FeedState,
    ever_live: bool,
    synced: bool,
    in_flight: Arc<AtomicUsize>,
    stats: Arc<BookStats>,
}

impl BookActor {
    pub(crate) fn new(
        symbol: SymbolId,
        hub: Arc<Hub>,
        in_flight: Arc<AtomicUsize>,
        stats: Arc<BookStats>,
    ) -> Self {
        BookActor {
            symbol,
            instrument: hub.symbols().get(symbol).clone(),
            hub,
            feed: None,
            book: L2Book::new(),
            coalescer: Coalescer::new(),
            seq: Seq(0),
            chan_seq: [Seq(0); 3],
            state: FeedState::Stale,
            ever_live: false,
            synced: false,
            in_flight,
            stats,
        }
    }

    /// Starts `seq` and every `chan_seq` at `base` (see `EngineConfig::seq_base`).
    pub(crate) fn with_seq_base(mut self, base: u64) -> Self {
        self.seq = Seq(base);
        self.chan_seq = [Seq(base); 3];
        self
    }

    fn header(&mut self, channel: Channel, ts: Nanos, recv_ts: Nanos) -> TickHeader {
        self.seq = self.seq.next();
        let c = &mut self.chan_seq[channel as usize];
        *c = c.next();
        TickHeader {
            symbol: self.symbol,
            seq: self.seq,
            chan_seq: *c,
            ts,
            recv_ts,
        }
    }

    /// The JSON encoder of this book's ticks, tagged when the hub belongs to a replay.
    fn encoder(&self) -> TickEncoder<'_> {
        TickEncoder::tagged(&self.instrument, self.hub.tag())
    }

    fn publish(&self, header: TickHeader, body: TickBody, json: bytes::Bytes) {
        self.hub.publish(self.tick(header, body, json));
    }

    /// A tick with its frames in every encoding some session uses.
    fn tick(&self, header: TickHeader, body: TickBody, json: bytes::Bytes) -> Arc<Tick> {
        self.stats.ticks.fetch_add(1, Ordering::Relaxed);
        let mut frames: [bytes::Bytes; Encoding::COUNT] = Default::default();
        if !json.is_empty() {
            // Every other encoding some session uses is made here, once for all of them;
            // compressed variants come from the plain ones, so nothing is encoded twice.
            let wants = |msgpack, deflate| self.hub.wants_encoding(Encoding { msgpack, deflate });
            if wants(false, true) {
                frames[1] = compress_frame(&json);
            }
            if wants(true, false) || wants(true, true) {
                let plain = Encoding {
                    msgpack: true,
                    deflate: false,
                };
                let mp = encode_tick_tagged(
                    &self.instrument,
                    self.hub.tag(),
                    &header,
                    &body,
                    plain,
                    MAX_DEPTH,
                );
                if wants(true, true) {
                    frames[3] = compress_frame(&mp);
                }
                frames[2] = mp;
            }
        }
        frames[0] = json;
        Arc::new(Tick {
            header,
            body,
            frames,
        })
    }

    fn set_state(&mut self, state: FeedState, reason: &str) {
        if self.state == state {
            return;
        }
        self.state = state;
        if self.ever_live {
            tracing::info!(symbol = %self.instrument.symbol, state = state.as_str(), reason, "book state");
        } else {
            // The first snapshot of every book at start-up is routine.
            tracing::debug!(symbol = %self.instrument.symbol, state = state.as_str(), reason, "book state");
            self.ever_live = state == FeedState::Live;
        }
        let ts = Nanos::now();
        let frame = self.encoder().status(ts, state, reason);
        let header = TickHeader {
            symbol: self.symbol,
            seq: self.seq,
            chan_seq: Seq(0),
            ts,
            recv_ts: ts,
        };
        self.publish(
            header,
            TickBody::Status {
                state,
                reason: reason.into(),
            },
            frame,
        );
    }

    /// Publishes the coalesced result of the changes applied since the last call.
    fn publish_changes(&mut self, ts: Nanos, recv_ts: Nanos) {
        if self.book.is_crossed() {
            // Venues do occasionally publish a transiently crossed book; we pass it on (it
            // is what the venue says) but count it.
            self.stats.crossed.fetch_add(1, Ordering::Relaxed);
        }
        let out = self.coalescer.finish(&self.book, MAX_DEPTH);
        // Published together: the quote and the book of one upstream message reach each
        // worker in one wake-up (see `Hub::publish_all`).
        let mut ticks: SmallVec<[Arc<Tick>; 2]> = SmallVec::new();
        if let Some(top) = out.quote {
            let h = self.header(Channel::Quote, ts, recv_ts);
            let frame = self.encoder().quote(&h, &top);
            ticks.push(self.tick(h, TickBody::Quote(top), frame));
        }
        if out.depth_changed {
            let h = self.header(Channel::Book, ts, recv_ts);
            let levels = BookLevels {
                bids: top_levels(&self.book, crate::domain::Side::Buy),
                asks: top_levels(&self.book, crate::domain::Side::Sell),
            };
            ticks.push(self.tick(h, TickBody::Book(levels), bytes::Bytes::new()));
        }
        self.hub.publish_all(ticks);
    }

    fn apply(&mut self, event: FeedEvent) {
        self.stats.events.fetch_add(1, Ordering::Relaxed);
        match event {
            FeedEvent::Snapshot { meta, bids, asks } => {
                let lv = |(price, qty)| Level { price, qty };
                self.book
                    .replace(bids.into_iter().map(lv), asks.into_iter().map(lv));
                self.coalescer.touch_all();
                self.synced = true;
                // `live` first, so a client knows the snapshot that follows is current.
                self.set_state(FeedState::Live, "snapshot");
                self.publish_changes(meta.ts, meta.recv_ts);
            }
            FeedEvent::Delta { meta, changes } => {
                if !self.synced {
                    self.stats.dropped_unsynced.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                for c in &changes {
                    self.coalescer.apply(&mut self.book, c.side, c.price, c.qty);
                }
                self.publish_changes(meta.ts, meta.recv_ts);
            }
            FeedEvent::Trade {
                meta,
                price,
                qty,
                aggressor,
            } => {
                let h = self.header(Channel::Trade, meta.ts, meta.recv_ts);
                let frame = self.encoder().trade(&h, price, qty, aggressor);
                self.publish(
                    h,
                    TickBody::Trade {
                        price,
                        qty,
                        aggressor,
                    },
                    frame,
                );
            }
        }
    }

    fn resync(&mut self, reason: &str) {
        self.book.clear();
        self.coalescer.reset();
        self.synced = false;
        self.set_state(FeedState::Stale, reason);
        if let Some(feed) = &self.feed {
            feed.do_send(RequestSnapshot(FeedCommand::Resync(self.symbol)));
        }
    }
}

fn top_levels(book: &L2Book, side: crate::domain::Side) -> Vec<Level> {
    book.levels(side).take(MAX_DEPTH).copied().collect()
}

impl Actor for BookActor {
    type Context = Context<Self>;
}

impl Supervised for BookActor {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.stats.restarts.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(symbol = %self.instrument.symbol, "book actor restarted; resynchronizing");
        self.resync("book restarted");
    }
}

impl Handler<ApplyEvent> for BookActor {
    type Result = ();

    fn handle(&mut self, msg: ApplyEvent, ctx: &mut Context<Self>) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        if catch_unwind(AssertUnwindSafe(|| self.apply(msg.0))).is_err() {
            tracing::error!(symbol = %self.instrument.symbol, "book update panicked; restarting book actor");
            ctx.stop();
        }
    }
}

impl Handler<UpstreamState> for BookActor {
    type Result = ();

    fn handle(&mut self, msg: UpstreamState, _ctx: &mut Context<Self>) {
        if msg.state == FeedState::Stale {
            // The next session starts with a snapshot; until then nothing is trustworthy.
            self.synced = false;
            self.coalescer.reset();
        }
        self.set_state(msg.state, &msg.reason);
    }
}

impl Handler<ForceResync> for BookActor {
    type Result = ();

    fn handle(&mut self, msg: ForceResync, _ctx: &mut Context<Self>) {
        // The feed handler already queued the snapshot request with its adapter.
        let feed = self.feed.take();
        self.resync(msg.reason);
        self.feed = feed;
    }
}

impl Handler<InjectBookFault> for BookActor {
    type Result = ();

    fn handle(&mut self, _msg: InjectBookFault, ctx: &mut Context<Self>) {
        tracing::warn!(symbol = %self.instrument.symbol, "injected book fault");
        ctx.stop();
    }
}

impl Handler<Barrier> for BookActor {
    type Result = ();

    fn handle(&mut self, _msg: Barrier, _ctx: &mut Context<Self>) {}
}

impl Handler<Detach> for BookActor {
    type Result = ();

    fn handle(&mut self, _msg: Detach, _ctx: &mut Context<Self>) {
        self.feed = None;
    }
}

/// Tells a book where to request snapshots (set once its feed handler exists).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetFeed(pub Recipient<RequestSnapshot>);

impl Handler<SetFeed> for BookActor {
    type Result = ();

    fn handle(&mut self, msg: SetFeed, _ctx: &mut Context<Self>) {
        self.feed = Some(msg.0);
    }
}
