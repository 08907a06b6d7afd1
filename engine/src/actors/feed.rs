//! The feed-handler actor: drives one [`FeedAdapter`] under supervision.
//!
//! The actor runs the adapter's session as a future on its own arbiter. When the session
//! fails, the actor marks all of the adapter's symbols stale (their book actors publish
//! `status: stale`) and stops; its actix [`Supervisor`](actix::Supervisor) restarts it, and
//! the next session begins after an exponential backoff. A session that stayed up for a
//! while resets the backoff. The new session's snapshots bring the books back to live.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::sync::mpsc;

use crate::actors::book::{RequestSnapshot, UpstreamState};
use crate::adapter::{BookHandle, Control, FeedAdapter, FeedIo};
use crate::domain::{SymbolId, SymbolTable};
use crate::tick::FeedState;

/// Backoff policy of a feed handler.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    /// A session that lasted this long resets the backoff.
    pub healthy_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            healthy_after: Duration::from_secs(10),
        }
    }
}

impl Backoff {
    /// Delay before attempt number `failures` (0 = first start).
    pub fn delay(&self, failures: u32) -> Duration {
        if failures == 0 {
            return Duration::ZERO;
        }
        let exp = self.initial.saturating_mul(1 << (failures - 1).min(16));
        exp.min(self.max)
    }
}

/// Inject a fault into the running session (it ends with an error).
#[derive(Message)]
#[rtype(result = "()")]
pub struct InjectFeedFault(pub String);

/// See the module documentation.
pub struct FeedHandler {
    name: String,
    adapter: Option<Box<dyn FeedAdapter>>,
    io: Option<FeedIo>,
    control: mpsc::Sender<Control>,
    symbols_of_feed: Vec<SymbolId>,
    books: Arc<[BookHandle]>,
    backoff: Backoff,
    failures: u32,
    session_started: Option<Instant>,
    session: Option<SpawnHandle>,
    /// Set by [`DetachFeed`]: never start a session again.
    detached: bool,
}

impl FeedHandler {
    pub(crate) fn new(
        adapter: Box<dyn FeedAdapter>,
        symbols: Arc<SymbolTable>,
        symbols_of_feed: Vec<SymbolId>,
        books: Arc<[BookHandle]>,
        backoff: Backoff,
        events: Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(1024);
        FeedHandler {
            name: adapter.name().to_string(),
            adapter: Some(adapter),
            io: Some(FeedIo::new(symbols, books.clone(), rx, events)),
            control: tx,
            symbols_of_feed,
            books,
            backoff,
            failures: 0,
            session_started: None,
            session: None,
            detached: false,
        }
    }

    fn tell_books(&self, state: FeedState, reason: &str) {
        let msg = UpstreamState {
            state,
            reason: reason.into(),
        };
        for s in &self.symbols_of_feed {
            self.books[s.index()].addr.do_send(msg.clone());
        }
    }

    fn start_session(&mut self, ctx: &mut Context<Self>) {
        if self.detached {
            return;
        }
        let (Some(mut adapter), Some(mut io)) = (self.adapter.take(), self.io.take()) else {
            return;
        };
        self.session_started = Some(Instant::now());
        tracing::info!(feed = %self.name, attempt = self.failures, "feed session starting");
        let session = async move {
            let result = adapter.run(&mut io).await;
            (adapter, io, result)
        };
        self.session = Some(ctx.spawn(session.into_actor(self).map(
            |(adapter, io, result), act, ctx| {
                act.adapter = Some(adapter);
                act.io = Some(io);
                match result {
                    Ok(()) => {
                        tracing::info!(feed = %act.name, "feed ended");
                        act.tell_books(FeedState::Stale, "feed ended");
                    }
                    Err(err) => {
                        tracing::warn!(feed = %act.name, error = %err, "feed session failed");
                        act.tell_books(FeedState::Stale, &format!("feed down: {err}"));
                        if act
                            .session_started
                            .is_some_and(|t| t.elapsed() >= act.backoff.healthy_after)
                        {
                            act.failures = 0;
                        }
                        ctx.stop();
                    }
                }
            },
        )));
    }
}

impl Actor for FeedHandler {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let delay = self.backoff.delay(self.failures);
        if delay.is_zero() {
            self.start_session(ctx);
        } else {
            tracing::info!(feed = %self.name, delay_ms = delay.as_millis() as u64, "feed restart after backoff");
            ctx.run_later(delay, |act, ctx| act.start_session(ctx));
        }
    }
}

impl Supervised for FeedHandler {
    fn restarting(&mut self, _ctx: &mut Context<Self>) {
        self.failures = self.failures.saturating_add(1);
    }
}

impl Handler<RequestSnapshot> for FeedHandler {
    type Result = ();

    fn handle(&mut self, msg: RequestSnapshot, _ctx: &mut Context<Self>) {
        // A full queue means many resyncs are already pending; the session will send them.
        let _ = self.control.try_send(Control::Command(msg.0));
    }
}

/// End the session for good and let go of the book actors (see [`crate::Engine::shutdown`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct DetachFeed;

impl Handler<DetachFeed> for FeedHandler {
    type Result = ();

    fn handle(&mut self, _msg: DetachFeed, ctx: &mut Context<Self>) {
        self.detached = true;
        // Dropping the session future drops the adapter and its FeedIo (and their book
        // addresses) with it.
        if let Some(h) = self.session.take() {
            ctx.cancel_future(h);
        }
        self.adapter = None;
        self.io = None;
        self.books = Arc::from(Vec::new());
        self.symbols_of_feed.clear();
    }
}

impl Handler<InjectFeedFault> for FeedHandler {
    type Result = ();

    fn handle(&mut self, msg: InjectFeedFault, _ctx: &mut Context<Self>) {
        tracing::warn!(feed = %self.name, reason = %msg.0, "injecting feed fault");
        let _ = self.control.try_send(Control::Fail(msg.0));
    }
}
