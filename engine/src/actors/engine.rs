//! Builds and owns the supervision tree.
//!
//! ```text
//!            Engine (this struct, on the system arbiter)
//!             ├── feed arbiter ── Supervisor ── FeedHandler (one per adapter)
//!             └── book arbiters (N shards) ── Supervisor ── BookActor (one per symbol)
//! ```
//!
//! Book actors are spread round-robin over a few arbiters (threads), so books of different
//! symbols update in parallel while each book is single-threaded and lock-free. Feed handlers
//! share one arbiter: their work is I/O and parsing, and keeping them off the book threads
//! keeps a slow upstream from delaying books.

use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::Arc;

use actix::prelude::*;

use crate::actors::book::{BookActor, BookStats, Detach, InjectBookFault, SetFeed};
use crate::actors::feed::{Backoff, DetachFeed, FeedHandler, InjectFeedFault};
use crate::adapter::{BookHandle, FeedAdapter};
use crate::domain::{SymbolId, SymbolTable, SymbolTableError};
use crate::fanout::hub::DEFAULT_WORKER_QUEUE;
use crate::fanout::Hub;

/// Engine sizing.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Threads the book actors are sharded over.
    pub book_threads: usize,
    /// Server workers that will drain the hub (one queue each).
    pub server_workers: usize,
    /// Capacity of each worker's tick queue.
    pub worker_queue: usize,
    /// Feed restart backoff.
    pub backoff: Backoff,
    /// Where every symbol's `seq` and `chan_seq` start (0 for a single process). A cluster
    /// engine starts them at its start time in microseconds, so that they keep increasing
    /// for gateways and their clients when the engine is restarted.
    pub seq_base: u64,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            book_threads: 2,
            server_workers: 1,
            worker_queue: DEFAULT_WORKER_QUEUE,
            backoff: Backoff::default(),
            seq_base: 0,
        }
    }
}

/// Errors starting an engine.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("instrument table: {0}")]
    Symbols(#[from] SymbolTableError),
    #[error("no feed configured")]
    NoFeed,
    #[error("unknown feed {0:?}")]
    UnknownFeed(String),
}

struct FeedEntry {
    name: String,
    addr: Addr<FeedHandler>,
    symbols: Vec<SymbolId>,
    events: Arc<AtomicU64>,
}

/// What the engine tells about one running feed (for metrics and readiness).
pub struct FeedInfo<'a> {
    /// The adapter's name.
    pub name: &'a str,
    /// The symbols this feed publishes.
    pub symbols: &'a [SymbolId],
    /// Events the feed has emitted to books since the engine started.
    pub events: u64,
}

/// Threads an engine's actors run on when they are not its own: a replay's private engine
/// shares a small pool with every other replay instead of starting threads per client.
#[derive(Clone)]
pub struct EngineThreads {
    /// Book actors are spread round-robin over these.
    pub books: Vec<ArbiterHandle>,
    /// Where the feed handlers run.
    pub feed: ArbiterHandle,
}

/// A running engine: feeds, books and the hub they publish to.
pub struct Engine {
    hub: Arc<Hub>,
    books: Arc<[BookHandle]>,
    feeds: Vec<FeedEntry>,
    book_stats: Arc<BookStats>,
    _arbiters: Vec<Arbiter>,
}

impl Engine {
    /// Starts feed handlers for `adapters` and a book actor per instrument. Must be called
    /// from within an actix system.
    pub fn start(
        adapters: Vec<Box<dyn FeedAdapter>>,
        config: EngineConfig,
    ) -> Result<Engine, EngineError> {
        let books: Vec<Arbiter> = (0..config.book_threads.max(1))
            .map(|_| Arbiter::new())
            .collect();
        let feed = Arbiter::new();
        let threads = EngineThreads {
            books: books.iter().map(Arbiter::handle).collect(),
            feed: feed.handle(),
        };
        let mut owned = books;
        owned.push(feed);
        Engine::build(adapters, config, threads, owned, None)
    }

    /// Like [`Engine::start`], on threads that outlive it (see [`EngineThreads`]), with a
    /// hub whose messages all carry `"replay":"<tag>"` when `tag` is given. Stop it with
    /// [`Engine::shutdown`].
    pub fn start_on(
        adapters: Vec<Box<dyn FeedAdapter>>,
        config: EngineConfig,
        threads: EngineThreads,
        tag: Option<Arc<str>>,
    ) -> Result<Engine, EngineError> {
        Engine::build(adapters, config, threads, Vec::new(), tag)
    }

    fn build(
        adapters: Vec<Box<dyn FeedAdapter>>,
        config: EngineConfig,
        threads: EngineThreads,
        owned: Vec<Arbiter>,
        tag: Option<Arc<str>>,
    ) -> Result<Engine, EngineError> {
        if adapters.is_empty() {
            return Err(EngineError::NoFeed);
        }
        let mut instruments = Vec::new();
        let mut ranges = Vec::new();
        for a in &adapters {
            let start = instruments.len();
            instruments.extend(a.instruments());
            ranges.push(start..instruments.len());
        }
        let symbols = SymbolTable::new(instruments)?;
        let hub = Hub::new_tagged(
            symbols.clone(),
            config.server_workers.max(1),
            config.worker_queue,
            tag,
        );
        let book_stats = Arc::new(BookStats::default());

        let books: Arc<[BookHandle]> = symbols
            .iter()
            .map(|(id, _)| {
                let arbiter = &threads.books[id.index() % threads.books.len()];
                let in_flight = Arc::new(AtomicUsize::new(0));
                let (hub, flight, stats) = (hub.clone(), in_flight.clone(), book_stats.clone());
                let seq_base = config.seq_base;
                let addr = Supervisor::start_in_arbiter(arbiter, move |_| {
                    BookActor::new(id, hub, flight, stats).with_seq_base(seq_base)
                });
                BookHandle { addr, in_flight }
            })
            .collect();

        let mut feeds = Vec::new();
        for (adapter, range) in adapters.into_iter().zip(ranges) {
            let name = adapter.name().to_string();
            let ids: Vec<SymbolId> = range.map(|i| SymbolId(i as u32)).collect();
            let (syms, bks, backoff) = (symbols.clone(), books.clone(), config.backoff);
            let ids_for_actor = ids.clone();
            let events = Arc::new(AtomicU64::new(0));
            let events_for_actor = events.clone();
            let addr = Supervisor::start_in_arbiter(&threads.feed, move |_| {
                FeedHandler::new(
                    adapter,
                    syms,
                    ids_for_actor,
                    bks,
                    backoff,
                    events_for_actor.clone(),
                )
            });
            for id in &ids {
                books[id.index()]
                    .addr
                    .do_send(SetFeed(addr.clone().recipient()));
            }
            feeds.push(FeedEntry {
                name,
                addr,
                symbols: ids,
                events,
            });
        }
        Ok(Engine {
            hub,
            books,
            feeds,
            book_stats,
            _arbiters: owned,
        })
    }

    /// Stops the engine's actors for good: feed sessions end, and once the last address is
    /// gone (this engine's, which this consumes) feed handlers and book actors stop instead
    /// of being restarted by their supervisors. For engines on shared threads
    /// ([`Engine::start_on`]); an engine with its own threads stops with them.
    pub fn shutdown(self) {
        for f in &self.feeds {
            f.addr.do_send(DetachFeed);
        }
        for b in self.books.iter() {
            b.addr.do_send(Detach);
        }
    }

    /// The hub sessions subscribe through.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The instruments served.
    pub fn symbols(&self) -> &Arc<SymbolTable> {
        self.hub.symbols()
    }

    /// Counters of the book actors.
    pub fn book_stats(&self) -> &Arc<BookStats> {
        &self.book_stats
    }

    /// Names of the running feeds.
    pub fn feed_names(&self) -> impl Iterator<Item = &str> {
        self.feeds.iter().map(|f| f.name.as_str())
    }

    /// Every running feed with its symbols and event count.
    pub fn feeds(&self) -> impl Iterator<Item = FeedInfo<'_>> {
        self.feeds.iter().map(|f| FeedInfo {
            name: &f.name,
            symbols: &f.symbols,
            events: f.events.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// Makes the named feed's session fail (operations drills and tests).
    pub fn inject_feed_fault(&self, feed: &str, reason: &str) -> Result<(), EngineError> {
        let f = self
            .feeds
            .iter()
            .find(|f| f.name == feed)
            .ok_or_else(|| EngineError::UnknownFeed(feed.to_string()))?;
        f.addr.do_send(InjectFeedFault(reason.to_string()));
        Ok(())
    }

    /// Makes a symbol's book actor fail and restart (operations drills and tests).
    pub fn inject_book_fault(&self, symbol: SymbolId) {
        if let Some(b) = self.books.get(symbol.index()) {
            b.addr.do_send(InjectBookFault);
        }
    }
}
