//! The cross-thread half of the fan-out: from book actors to server workers.
//!
//! Book actors run on their own threads; client sessions live on the server's worker threads.
//! A naive design sends one message per subscriber per tick across threads. Instead the hub
//! keeps, per symbol, a bitmask of the *workers* that have at least one subscriber, and one
//! bounded lock-free queue ([`crossbeam_queue::ArrayQueue`]) per worker. Publishing a tick is
//! therefore one `Arc` clone and one queue push per interested worker, whatever the number of
//! sessions; the worker's [`Router`](super::router::Router) then fans out locally, on its
//! own thread, without locks.
//!
//! The hub also keeps the last quote, book and status of every symbol in
//! [`arc_swap::ArcSwapOption`]s, read without locking by a session that subscribes and needs
//! the current state immediately.
//!
//! A worker whose queue is full (it cannot keep up with the whole market) loses ticks; this is
//! counted in [`HubStats::worker_overflows`] and the worker's sessions are marked so that
//! they resynchronize from the last values. Queues never grow without bound.
//!
//! A hub fed from elsewhere than local book actors (a cluster gateway fed from NATS) needs
//! to know which symbols anyone wants: [`Hub::set_interest_hook`] registers a callback told
//! when a symbol gains its first interested worker and when it loses its last one.

use std::future::poll_fn;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::Poll;

use arc_swap::ArcSwapOption;
use atomic_waker::AtomicWaker;
use crossbeam_queue::ArrayQueue;

use crate::domain::{SymbolId, SymbolTable};
use crate::tick::{Encoding, Tick, TickBody};

/// Most server workers one hub can serve (one bit each in a `u64`).
pub const MAX_WORKERS: usize = 64;

/// Default capacity of each worker's tick queue.
pub const DEFAULT_WORKER_QUEUE: usize = 1 << 16;

/// Per-symbol shared state.
#[derive(Default)]
pub struct SymbolSlot {
    interest: AtomicU64,
    last_quote: ArcSwapOption<Tick>,
    last_book: ArcSwapOption<Tick>,
    last_status: ArcSwapOption<Tick>,
}

/// One worker's inbound queue and wake-up.
pub struct WorkerInbox {
    queue: ArrayQueue<Arc<Tick>>,
    waker: AtomicWaker,
    scheduled: AtomicBool,
    overflowed: AtomicBool,
}

/// Counters of the hub.
#[derive(Default)]
pub struct HubStats {
    /// Ticks published.
    pub published: AtomicU64,
    /// Ticks dropped because a worker queue was full.
    pub worker_overflows: AtomicU64,
}

/// See the module documentation.
pub struct Hub {
    symbols: Arc<SymbolTable>,
    slots: Box<[SymbolSlot]>,
    workers: Box<[WorkerInbox]>,
    next_worker: AtomicUsize,
    sessions_by_encoding: [AtomicUsize; Encoding::COUNT],
    /// Set for a replay's private hub: every message published through it carries it.
    tag: Option<Arc<str>>,
    interest_hook: OnceLock<InterestHook>,
    /// Counters.
    pub stats: HubStats,
}

/// Told `(symbol, true)` when a symbol gains its first interested worker and
/// `(symbol, false)` when it loses its last; runs on the worker thread that changed it, so
/// it must be quick and must not block.
pub type InterestHook = Box<dyn Fn(SymbolId, bool) + Send + Sync>;

/// The last published values of a symbol.
#[derive(Clone, Default)]
pub struct LastValues {
    pub quote: Option<Arc<Tick>>,
    pub book: Option<Arc<Tick>>,
    pub status: Option<Arc<Tick>>,
}

impl Hub {
    /// A hub for `symbols` serving up to `workers` server workers.
    pub fn new(symbols: Arc<SymbolTable>, workers: usize, queue_capacity: usize) -> Arc<Hub> {
        Hub::new_tagged(symbols, workers, queue_capacity, None)
    }

    /// A hub whose messages all carry `"replay":"<tag>"` (a client's private replay).
    pub fn new_tagged(
        symbols: Arc<SymbolTable>,
        workers: usize,
        queue_capacity: usize,
        tag: Option<Arc<str>>,
    ) -> Arc<Hub> {
        assert!(
            (1..=MAX_WORKERS).contains(&workers),
            "1..=64 workers supported"
        );
        let slots = (0..symbols.len()).map(|_| SymbolSlot::default()).collect();
        let workers = (0..workers)
            .map(|_| WorkerInbox {
                queue: ArrayQueue::new(queue_capacity),
                waker: AtomicWaker::new(),
                scheduled: AtomicBool::new(false),
                overflowed: AtomicBool::new(false),
            })
            .collect();
        Arc::new(Hub {
            symbols,
            slots,
            workers,
            next_worker: AtomicUsize::new(0),
            sessions_by_encoding: Default::default(),
            tag,
            interest_hook: OnceLock::new(),
            stats: HubStats::default(),
        })
    }

    /// Registers the hook told about first and last interest in a symbol (see
    /// [`InterestHook`]). Only one hook can be set; a second call returns it back.
    pub fn set_interest_hook(&self, hook: InterestHook) -> Result<(), InterestHook> {
        self.interest_hook.set(hook)
    }

    /// Whether any worker has subscribers of `symbol`.
    pub fn has_interest(&self, symbol: SymbolId) -> bool {
        self.slots[symbol.index()].interest.load(Ordering::Relaxed) != 0
    }

    /// The instruments served.
    pub fn symbols(&self) -> &Arc<SymbolTable> {
        &self.symbols
    }

    /// The replay tag of a private hub (see [`Hub::new_tagged`]).
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// Ticks waiting in `worker`'s queue.
    pub fn queued(&self, worker: usize) -> usize {
        self.workers.get(worker).map_or(0, |w| w.queue.len())
    }

    /// The fullest worker queue's length: what a full-speed replay watches so it never
    /// makes a queue overflow.
    pub fn max_queued(&self) -> usize {
        self.workers
            .iter()
            .map(|w| w.queue.len())
            .max()
            .unwrap_or(0)
    }

    /// Counts a session using `enc`; while any does, book actors publish ticks in that
    /// encoding too (encoded once, shared by all of them).
    pub fn add_session_encoding(&self, enc: Encoding) {
        self.sessions_by_encoding[enc.index()].fetch_add(1, Ordering::Relaxed);
    }

    /// Uncounts a session added with [`Hub::add_session_encoding`].
    pub fn remove_session_encoding(&self, enc: Encoding) {
        self.sessions_by_encoding[enc.index()].fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether ticks should be published in `enc` (plain JSON always is).
    pub fn wants_encoding(&self, enc: Encoding) -> bool {
        enc == Encoding::JSON || self.sessions_by_encoding[enc.index()].load(Ordering::Relaxed) > 0
    }

    /// Claims the next worker index; each server worker thread calls this once.
    ///
    /// # Panics
    /// If more workers claim than the hub was built for.
    pub fn claim_worker(&self) -> usize {
        let w = self.next_worker.fetch_add(1, Ordering::Relaxed);
        assert!(
            w < self.workers.len(),
            "more server workers than the hub was sized for"
        );
        w
    }

    /// Publishes a tick to every worker with subscribers of its symbol.
    pub fn publish(&self, tick: Arc<Tick>) {
        let woken = self.enqueue(tick);
        self.wake(woken);
    }

    /// Publishes several ticks (what one upstream message produced: a quote and a book,
    /// say), waking each interested worker once, after all of them are queued. The worker's
    /// router then takes them in one batch, and each session writes them with one system
    /// call; woken per tick, a worker on the same core as the publisher would preempt it and
    /// deliver the quote alone before the book tick is even queued.
    pub fn publish_all(&self, ticks: impl IntoIterator<Item = Arc<Tick>>) {
        let mut woken = 0;
        for tick in ticks {
            woken |= self.enqueue(tick);
        }
        self.wake(woken);
    }

    /// Stores the tick's last value and queues it for every interested worker; returns the
    /// mask of those workers, to be woken.
    fn enqueue(&self, tick: Arc<Tick>) -> u64 {
        let slot = &self.slots[tick.header.symbol.index()];
        match tick.body {
            TickBody::Quote(_) => slot.last_quote.store(Some(tick.clone())),
            TickBody::Book(_) => slot.last_book.store(Some(tick.clone())),
            TickBody::Status { .. } => slot.last_status.store(Some(tick.clone())),
            TickBody::Trade { .. } => {}
        }
        self.stats.published.fetch_add(1, Ordering::Relaxed);
        // Pairs with the fence in `add_interest`: either we see the new subscriber's bit, or
        // it sees the value we just stored.
        fence(Ordering::SeqCst);
        let interested = slot.interest.load(Ordering::Relaxed);
        let mut mask = interested;
        while mask != 0 {
            let w = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            self.push_to(w, tick.clone());
        }
        interested
    }

    fn push_to(&self, worker: usize, tick: Arc<Tick>) {
        let inbox = &self.workers[worker];
        if inbox.queue.push(tick).is_err() {
            self.stats.worker_overflows.fetch_add(1, Ordering::Relaxed);
            inbox.overflowed.store(true, Ordering::Release);
        }
    }

    /// Wakes the routers of the workers in `mask` (once per batch: `scheduled` stays set
    /// until the router has looked at its queue).
    fn wake(&self, mut mask: u64) {
        while mask != 0 {
            let w = mask.trailing_zeros() as usize;
            mask &= mask - 1;
            let inbox = &self.workers[w];
            if !inbox.scheduled.swap(true, Ordering::AcqRel) {
                inbox.waker.wake();
            }
        }
    }

    /// Marks `worker` as having subscribers of `symbol` and returns the symbol's last values,
    /// read after the mark so no tick falls between the two.
    pub fn add_interest(&self, symbol: SymbolId, worker: usize) -> LastValues {
        let slot = &self.slots[symbol.index()];
        let before = slot.interest.fetch_or(1 << worker, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if before == 0 {
            if let Some(hook) = self.interest_hook.get() {
                hook(symbol, true);
            }
        }
        self.last_values(symbol)
    }

    /// Clears `worker`'s interest in `symbol`.
    pub fn remove_interest(&self, symbol: SymbolId, worker: usize) {
        let bit = 1 << worker;
        let before = self.slots[symbol.index()]
            .interest
            .fetch_and(!bit, Ordering::Relaxed);
        if before == bit {
            if let Some(hook) = self.interest_hook.get() {
                hook(symbol, false);
            }
        }
    }

    /// The last published values of `symbol`.
    pub fn last_values(&self, symbol: SymbolId) -> LastValues {
        let slot = &self.slots[symbol.index()];
        LastValues {
            quote: slot.last_quote.load_full(),
            book: slot.last_book.load_full(),
            status: slot.last_status.load_full(),
        }
    }

    /// Waits until `worker`'s queue has ticks, then drains up to `max` of them into `out`.
    /// Returns whether ticks were lost to overflow since the last call.
    pub async fn recv_batch(&self, worker: usize, out: &mut Vec<Arc<Tick>>, max: usize) -> bool {
        self.wait_ready(worker).await;
        self.take_ready(worker, out, max)
    }

    /// Waits until `worker`'s queue has ticks (the publishers wake the waiting task).
    pub async fn wait_ready(&self, worker: usize) {
        let inbox = &self.workers[worker];
        poll_fn(|cx| {
            inbox.waker.register(cx.waker());
            inbox.scheduled.store(false, Ordering::Release);
            if inbox.queue.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await;
    }

    /// Drains up to `max` of `worker`'s queued ticks into `out` without waiting. Returns
    /// whether ticks were lost to overflow since the last call (as [`recv_batch`] does).
    ///
    /// [`recv_batch`]: Self::recv_batch
    pub fn take_ready(&self, worker: usize, out: &mut Vec<Arc<Tick>>, max: usize) -> bool {
        let inbox = &self.workers[worker];
        while out.len() < max {
            match inbox.queue.pop() {
                Some(t) => out.push(t),
                None => break,
            }
        }
        inbox.overflowed.swap(false, Ordering::AcqRel)
    }

    /// Whether `worker`'s queue holds no tick right now.
    pub fn queue_is_empty(&self, worker: usize) -> bool {
        self.workers[worker].queue.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Instrument, Scale};
    use parking_lot::Mutex;

    #[test]
    fn the_interest_hook_hears_first_and_last_interest_across_workers() {
        let ins = |s: &str| Instrument {
            symbol: s.into(),
            venue: "v".into(),
            price_scale: Scale::new(2),
            size_scale: Scale::new(0),
        };
        let symbols = SymbolTable::new(vec![ins("A"), ins("B")]).unwrap();
        let hub = Hub::new(symbols, 2, 16);
        let heard = Arc::new(Mutex::new(Vec::new()));
        let sink = heard.clone();
        assert!(hub
            .set_interest_hook(Box::new(move |s, on| sink.lock().push((s.0, on))))
            .is_ok());
        assert!(hub.set_interest_hook(Box::new(|_, _| {})).is_err());
        let (a, b) = (SymbolId(0), SymbolId(1));
        hub.add_interest(a, 0);
        hub.add_interest(a, 1);
        hub.add_interest(b, 1);
        assert!(hub.has_interest(a) && hub.has_interest(b));
        hub.remove_interest(a, 0);
        assert!(hub.has_interest(a));
        hub.remove_interest(a, 1);
        hub.remove_interest(b, 1);
        // Removing what is not there says nothing.
        hub.remove_interest(b, 0);
        assert!(!hub.has_interest(a) && !hub.has_interest(b));
        assert_eq!(
            *heard.lock(),
            [(0, true), (1, true), (0, false), (1, false)]
        );
    }
}
