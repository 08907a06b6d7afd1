//! The contract between an upstream feed and the engine.
//!
//! A [`FeedAdapter`] owns everything venue-specific: how to connect (a WebSocket, a TCP
//! session, a recorded file, a simulator), what to subscribe to, how to parse the venue's
//! messages, how to verify its sequence numbers and checksums, and how to fetch a snapshot.
//! It turns all of that into normalized [`FeedEvent`]s through a [`FeedIo`].
//!
//! The engine owns everything else: one supervised feed-handler actor drives the adapter,
//! restarts a failed [`FeedAdapter::run`] with exponential backoff, marks the adapter's symbols
//! stale meanwhile, and routes events to the per-symbol book actors.
//!
//! The trait lives in the engine (not in `feed-handlers`) because the engine drives it; the
//! `feed-handlers` crate implements it for each venue.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Addr;
use futures_util::future::LocalBoxFuture;
use tokio::sync::mpsc;

use crate::actors::book::{ApplyEvent, Barrier, BookActor, ForceResync};
use crate::domain::{Instrument, SymbolId, SymbolTable};
use crate::event::FeedEvent;

/// Why an upstream session ended abnormally. The supervisor logs it and restarts the session.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error("upstream connection failed: {0}")]
    Connect(String),
    #[error("upstream disconnected: {0}")]
    Disconnected(String),
    #[error("upstream protocol error: {0}")]
    Protocol(String),
    #[error("fault injected: {0}")]
    Injected(String),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// A request from the engine to a running adapter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeedCommand {
    /// Send a fresh snapshot of this symbol (its book actor restarted or lost events).
    Resync(SymbolId),
}

/// Control messages the engine sends to the feed handler; faults are handled by [`FeedIo`].
#[derive(Debug, Clone)]
pub(crate) enum Control {
    Command(FeedCommand),
    Fail(String),
}

/// An upstream market-data source. See the module documentation.
pub trait FeedAdapter: Send + 'static {
    /// The name of this feed instance (also the venue shown to clients).
    fn name(&self) -> &str;

    /// The instruments this adapter publishes. Called once, before the first run.
    fn instruments(&self) -> Vec<Instrument>;

    /// Runs one upstream session: connect, subscribe, and emit events until the upstream
    /// ends (`Ok`, e.g. a file was fully read) or fails (`Err`, the supervisor restarts it
    /// after a backoff). Every session must start by emitting a
    /// [`FeedEvent::Snapshot`] for each symbol it will update; until then the symbol's book
    /// is not live. The adapter must also serve [`FeedIo::next_command`] requests.
    fn run<'a>(&'a mut self, io: &'a mut FeedIo) -> LocalBoxFuture<'a, Result<(), FeedError>>;
}

/// Mailbox bound of a book actor, in events; beyond it the feed handler drops events for
/// that symbol and resynchronizes it instead of queueing without bound.
pub const BOOK_MAILBOX_LIMIT: usize = 8192;

/// Where a feed handler sends one symbol's events.
#[derive(Clone)]
pub struct BookHandle {
    pub(crate) addr: Addr<BookActor>,
    pub(crate) in_flight: Arc<AtomicUsize>,
}

/// The adapter's side of the feed handler: symbol lookup, event emission, commands.
pub struct FeedIo {
    symbols: Arc<SymbolTable>,
    books: Arc<[BookHandle]>,
    control: mpsc::Receiver<Control>,
    pending_resyncs: Vec<SymbolId>,
    /// Events emitted in this session.
    pub events: u64,
    /// Events dropped because a book actor was overloaded.
    pub dropped: u64,
    /// Events emitted over every session of this feed (read by metrics).
    total: Arc<AtomicU64>,
}

impl FeedIo {
    pub(crate) fn new(
        symbols: Arc<SymbolTable>,
        books: Arc<[BookHandle]>,
        control: mpsc::Receiver<Control>,
        total: Arc<AtomicU64>,
    ) -> Self {
        FeedIo {
            total,
            symbols,
            books,
            control,
            pending_resyncs: Vec::new(),
            events: 0,
            dropped: 0,
        }
    }

    /// Looks up a symbol by name.
    pub fn symbol(&self, name: &str) -> Option<SymbolId> {
        self.symbols.lookup(name)
    }

    /// The engine's instruments.
    pub fn symbols(&self) -> &Arc<SymbolTable> {
        &self.symbols
    }

    /// Sends an event to its symbol's book actor. Never blocks: if that book is overloaded,
    /// the event is dropped, the book discards further deltas until a snapshot, and a
    /// [`FeedCommand::Resync`] for the symbol is queued for the adapter.
    pub fn emit(&mut self, event: FeedEvent) {
        let symbol = event.meta().symbol;
        let Some(book) = self.books.get(symbol.index()) else {
            return;
        };
        if book.in_flight.load(Ordering::Relaxed) >= BOOK_MAILBOX_LIMIT
            && !matches!(event, FeedEvent::Snapshot { .. })
        {
            self.dropped += 1;
            if !self.pending_resyncs.contains(&symbol) {
                self.pending_resyncs.push(symbol);
                book.addr.do_send(ForceResync {
                    reason: "book overloaded",
                });
            }
            return;
        }
        book.in_flight.fetch_add(1, Ordering::Relaxed);
        book.addr.do_send(ApplyEvent(event));
        self.events += 1;
        // One uncontended relaxed add: only this feed's thread writes it.
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Events sent to `symbol`'s book actor and not yet taken up by it. Replays at full
    /// speed keep this low (waiting instead of emitting) so their books are never
    /// overloaded and resynchronized.
    pub fn backlog(&self, symbol: SymbolId) -> usize {
        self.books
            .get(symbol.index())
            .map_or(0, |b| b.in_flight.load(Ordering::Relaxed))
    }

    /// Tells `symbol`'s book that it can no longer be trusted: it publishes `status: stale`,
    /// drops deltas until a snapshot, and asks this adapter for one
    /// ([`FeedCommand::Resync`]). For adapters that learn of a gap without reconnecting
    /// (a replay whose recording has a damaged block).
    pub fn mark_stale(&mut self, symbol: SymbolId, reason: &'static str) {
        if let Some(book) = self.books.get(symbol.index()) {
            book.addr.do_send(ForceResync { reason });
        }
    }

    /// Resolves once every book actor has handled everything emitted before the call, so all
    /// of their ticks are in the hub. Replays use it to order their acknowledgements after
    /// the data that precedes them.
    pub async fn barrier(&self) {
        let pending: Vec<_> = self.books.iter().map(|b| b.addr.send(Barrier)).collect();
        for p in pending {
            // A stopped book has nothing left to publish either.
            let _ = p.await;
        }
    }

    /// Waits for the next command. Adapters poll this alongside their upstream (e.g. in a
    /// `tokio::select!`). Returns `Err` when the engine injects a fault, which the adapter
    /// should propagate to end its session.
    pub async fn next_command(&mut self) -> Result<FeedCommand, FeedError> {
        if let Some(s) = self.pending_resyncs.pop() {
            return Ok(FeedCommand::Resync(s));
        }
        match self.control.recv().await {
            Some(Control::Command(c)) => Ok(c),
            Some(Control::Fail(why)) => Err(FeedError::Injected(why)),
            // The engine is shutting down: nothing more will come.
            None => std::future::pending().await,
        }
    }

    /// Non-blocking variant of [`FeedIo::next_command`].
    pub fn try_command(&mut self) -> Result<Option<FeedCommand>, FeedError> {
        if let Some(s) = self.pending_resyncs.pop() {
            return Ok(Some(FeedCommand::Resync(s)));
        }
        match self.control.try_recv() {
            Ok(Control::Command(c)) => Ok(Some(c)),
            Ok(Control::Fail(why)) => Err(FeedError::Injected(why)),
            Err(_) => Ok(None),
        }
    }
}
