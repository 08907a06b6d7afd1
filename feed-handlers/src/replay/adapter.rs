//! [`ReplayAdapter`]: recordings served through the engine as if they were a live feed.
//!
//! The adapter drives a [`ReplaySource`] at a [`Speed`]: each record waits for its deadline
//! on the [`ReplayClock`] ([`super::timer`] sleeps with sub-millisecond precision), is
//! decoded by its venue's decoder, and its events go to the book actors exactly as a live
//! session's would, so clients see what they would have seen live. `ts` stays the recorded
//! event time; `recv_ts` is the moment the replay emitted the event (so the server's
//! latency metrics and the load generator keep measuring the server).
//!
//! * **Range**: `from` fast-forwards (decodes without emitting, keeping [`LocalBooks`]) and
//!   then hands every book a snapshot of its state at that time; `to` ends the pass.
//! * **Loop**: at the end the pass starts again from `from` with fresh decoders: every
//!   book is marked stale and gets a fresh snapshot, and sequence numbers keep increasing
//!   (the book actors live on).
//! * **Controls** (per-client replays): pause, resume, seek, speed and stop arrive on a
//!   channel ([`ReplayControl`]); each is acknowledged through a [`NoticeSink`] only after
//!   [`FeedIo::barrier`], i.e. after everything emitted before it has reached the hub, so
//!   an acknowledged pause means no further data of this replay.
//! * **Flow control**: at full speed the adapter waits (instead of emitting) while a book
//!   actor has [`BOOK_BACKLOG`] events queued or the downstream says it is busy
//!   ([`ReplayOptions::backpressure`]): a full-speed replay follows its consumer's pace
//!   rather than overflowing queues (which would resynchronize books) or being closed as a
//!   slow consumer.
//! * **Damage**: a damaged block of a recording marks that recording's symbols stale
//!   (`recording damaged`) until the recording's next snapshot of each; the rest goes on.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt as _;
use tickwire_engine::domain::{Instrument, Nanos, SymbolId};
use tickwire_engine::event::FeedEvent;
use tickwire_engine::{FeedAdapter, FeedCommand, FeedError, FeedIo};
use tokio::sync::mpsc;

use super::books::LocalBooks;
use super::clock::{ReplayClock, Speed};
use super::source::{ReplaySource, StepError};
use super::timer::{sleep_until, EARLY};
use crate::live::RawTap;
use crate::venues::Decoded;

/// Events a book actor may have queued before a full-speed replay waits for it.
pub const BOOK_BACKLOG: usize = 256;

/// Records between two looks at commands and flow control at full speed.
const CHECK_EVERY: u32 = 64;

/// A command to a running replay.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayCommand {
    Pause,
    Resume,
    /// Jump to this time (ns since the epoch); books get snapshots of that moment.
    Seek(i64),
    Speed(Speed),
    Stop,
}

/// What a replay reports, each after everything emitted before it has reached the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Paused {
        at: i64,
    },
    Resumed {
        at: i64,
    },
    Seeked {
        to: i64,
    },
    SpeedChanged {
        speed: Speed,
    },
    /// The range is done (`looping`: and starts again).
    Ended {
        at: i64,
        looping: bool,
    },
    /// A damaged block was skipped.
    Damaged {
        message: String,
    },
    Stopped,
}

/// Receives notices (called on the replay's thread).
pub type NoticeSink = Arc<dyn Fn(Notice) + Send + Sync>;

/// The sending side of a replay's commands.
#[derive(Clone)]
pub struct ReplayControl {
    tx: mpsc::UnboundedSender<ReplayCommand>,
}

impl ReplayControl {
    /// A control and the receiver to put into [`ReplayOptions::commands`].
    pub fn new() -> (ReplayControl, mpsc::UnboundedReceiver<ReplayCommand>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (ReplayControl { tx }, rx)
    }

    /// Sends a command; `false` if the replay is gone.
    pub fn send(&self, c: ReplayCommand) -> bool {
        self.tx.send(c).is_ok()
    }
}

/// Where a replay is, for progress display (updated every few records).
#[derive(Debug, Default)]
pub struct Progress {
    /// Receive time of the last record emitted.
    pub position: AtomicI64,
    /// Records emitted so far.
    pub records: AtomicU64,
    /// Passes completed (loops).
    pub passes: AtomicU64,
}

/// Settings of a [`ReplayAdapter`].
pub struct ReplayOptions {
    /// Feed name shown to clients (`venue` of the instruments stays the recording's).
    pub name: String,
    pub speed: Speed,
    /// Start here (ns since the epoch); default: the first record.
    pub from: Option<i64>,
    /// End after this time; default: the last record.
    pub to: Option<i64>,
    pub looping: bool,
    /// Only these symbols (names) are replayed; default: all.
    pub symbols: Option<Vec<String>>,
    /// Re-records every raw record as it is replayed.
    pub tap: Option<Arc<dyn RawTap>>,
    /// Commands (per-client replays). Without them the replay ends at the end of its range
    /// (unless it loops).
    pub commands: Option<mpsc::UnboundedReceiver<ReplayCommand>>,
    pub notices: Option<NoticeSink>,
    /// Whether the consumer is behind: the replay waits while this says so.
    pub backpressure: Option<Arc<dyn Fn() -> bool + Send + Sync>>,
    pub progress: Option<Arc<Progress>>,
    /// When set, the first session waits for a permit here before emitting anything (the
    /// server subscribes a private replay's router first, so no tick goes unrouted).
    pub gate: Option<Arc<tokio::sync::Semaphore>>,
}

impl ReplayOptions {
    /// Plays everything once at `speed`.
    pub fn new(speed: Speed) -> Self {
        ReplayOptions {
            name: "replay".into(),
            speed,
            from: None,
            to: None,
            looping: false,
            symbols: None,
            tap: None,
            commands: None,
            notices: None,
            backpressure: None,
            progress: None,
            gate: None,
        }
    }
}

/// See the module documentation.
pub struct ReplayAdapter {
    source: ReplaySource,
    opts: ReplayOptions,
    books: LocalBooks,
    /// Replay symbol id → whether it is replayed.
    wanted: Vec<bool>,
    /// Replay symbol id → engine id (set at the start of a session).
    engine: Vec<Option<SymbolId>>,
    clock: ReplayClock,
    paused: bool,
    /// Receive time of the last record emitted or skipped.
    position: i64,
    ended: bool,
}

enum Flow {
    Go,
    Stop,
}

impl ReplayAdapter {
    /// A replay of `source` with `opts`.
    pub fn new(mut source: ReplaySource, opts: ReplayOptions) -> Self {
        source.set_restamp(true);
        let n = source.instruments().len();
        let wanted = match &opts.symbols {
            None => vec![true; n],
            Some(list) => {
                let mut w = vec![false; n];
                for s in list {
                    if let Some(id) = source.lookup(s) {
                        w[id.index()] = true;
                    }
                }
                w
            }
        };
        ReplayAdapter {
            books: LocalBooks::new(n),
            clock: ReplayClock::new(opts.speed),
            wanted,
            engine: vec![None; n],
            source,
            opts,
            paused: false,
            position: i64::MIN,
            ended: false,
        }
    }

    /// The source (for counters).
    pub fn source(&self) -> &ReplaySource {
        &self.source
    }

    fn notify(&self, n: Notice) {
        if let Some(s) = &self.opts.notices {
            s(n);
        }
    }

    async fn notify_after_barrier(&self, io: &FeedIo, n: Notice) {
        if self.opts.notices.is_some() {
            io.barrier().await;
            self.notify(n);
        }
    }

    fn emit(&mut self, io: &mut FeedIo, ev: FeedEvent) {
        let global = ev.meta().symbol;
        if let Some(Some(id)) = self.engine.get(global.index()).copied() {
            let mut ev = ev;
            set_symbol(&mut ev, id);
            io.emit(ev);
        }
    }

    /// Moves to `t`: decodes without emitting up to it (from the start when `t` is behind
    /// the current position), then gives every replayed book its state at `t`.
    fn seek(&mut self, t: Option<i64>, io: &mut FeedIo) -> Result<(), FeedError> {
        // Forward from here when the target is ahead; otherwise from the start (the
        // decoders' state cannot go back).
        let restart = match (t, self.source.peek_ts()) {
            (Some(t), Some(_)) => t < self.position,
            _ => true,
        };
        if restart {
            self.source
                .reset()
                .map_err(|e| FeedError::Protocol(e.to_string()))?;
            self.books.reset();
            self.position = i64::MIN;
        }
        self.ended = false;
        self.clock.rebase();
        let Some(t) = t else {
            if restart && self.position == i64::MIN {
                // From the very start: the recording's own snapshots follow; until each
                // arrives, the book holds an older state and must say so.
                self.mark_all_stale(io, "replay restarting");
            }
            return Ok(());
        };
        while let Some(ts) = self.source.peek_ts() {
            if ts >= t && ts != i64::MIN {
                break;
            }
            let Some(step) = self.source.step(None) else {
                break;
            };
            if step.ts != i64::MIN {
                self.position = step.ts;
            }
            let damaged = matches!(step.error, Some(StepError::Damaged { .. }));
            let source = step.source;
            for d in step.decoded {
                if let Decoded::Event(ev) = d {
                    self.books.apply(ev);
                }
            }
            if damaged {
                self.taint_file(source);
            }
        }
        self.position = self.position.max(t);
        tracing::debug!(feed = %self.opts.name, t, restart, next = ?self.source.peek_ts(), "replay seek");
        let now = Nanos::now();
        for i in 0..self.wanted.len() {
            let id = SymbolId(i as u32);
            if !self.wanted[i] {
                continue;
            }
            match self.books.snapshot(id, Nanos(t), now) {
                Some(snap) => self.emit(io, snap),
                None => {
                    if let Some(Some(e)) = self.engine.get(i).copied() {
                        io.mark_stale(e, "replay: no book at this time yet");
                    }
                }
            }
        }
        Ok(())
    }

    fn mark_all_stale(&self, io: &mut FeedIo, reason: &'static str) {
        for e in self.engine.iter().flatten() {
            io.mark_stale(*e, reason);
        }
    }

    fn taint_file(&mut self, source: usize) {
        for i in 0..self.wanted.len() {
            let id = SymbolId(i as u32);
            if self.source.file_of(id) == source {
                self.books.taint(id);
            }
        }
    }

    /// Answers an engine resync request from the replay's own book.
    fn resync(&mut self, engine_id: SymbolId, io: &mut FeedIo) {
        let Some(i) = self.engine.iter().position(|e| *e == Some(engine_id)) else {
            return;
        };
        let ts = Nanos(self.position.max(0));
        if let Some(snap) = self.books.snapshot(SymbolId(i as u32), ts, Nanos::now()) {
            self.emit(io, snap);
        }
    }

    async fn apply(&mut self, cmd: ReplayCommand, io: &mut FeedIo) -> Result<Flow, FeedError> {
        match cmd {
            ReplayCommand::Pause => {
                self.paused = true;
                self.notify_after_barrier(io, Notice::Paused { at: self.position })
                    .await;
            }
            ReplayCommand::Resume => {
                self.paused = false;
                self.clock.rebase();
                self.notify_after_barrier(io, Notice::Resumed { at: self.position })
                    .await;
            }
            ReplayCommand::Seek(t) => {
                self.seek(Some(t), io)?;
                self.notify_after_barrier(io, Notice::Seeked { to: t })
                    .await;
            }
            ReplayCommand::Speed(s) => {
                self.clock.set_speed(s);
                self.notify_after_barrier(io, Notice::SpeedChanged { speed: s })
                    .await;
            }
            ReplayCommand::Stop => {
                self.notify_after_barrier(io, Notice::Stopped).await;
                return Ok(Flow::Stop);
            }
        }
        Ok(Flow::Go)
    }

    /// Waits for a command (replay or engine); `None` when there will be none.
    async fn next_command(&mut self, io: &mut FeedIo) -> Result<Option<ReplayCommand>, FeedError> {
        loop {
            let control = async {
                match self.opts.commands.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                c = control => {
                    return Ok(Some(c.unwrap_or(ReplayCommand::Stop)));
                }
                c = io.next_command() => {
                    let FeedCommand::Resync(s) = c?;
                    self.resync(s, io);
                }
            }
        }
    }

    /// Handles whatever commands are waiting, without blocking.
    async fn poll_commands(&mut self, io: &mut FeedIo) -> Result<Flow, FeedError> {
        while let Some(FeedCommand::Resync(s)) = io.try_command()? {
            self.resync(s, io);
        }
        loop {
            let cmd = match self.opts.commands.as_mut().map(|rx| rx.try_recv()) {
                Some(Ok(c)) => c,
                Some(Err(mpsc::error::TryRecvError::Disconnected)) => ReplayCommand::Stop,
                _ => return Ok(Flow::Go),
            };
            if let Flow::Stop = self.apply(cmd, io).await? {
                return Ok(Flow::Stop);
            }
        }
    }

    /// Waits while the books or the consumer are behind (full speed only, in practice).
    async fn flow_control(&mut self, io: &mut FeedIo) -> Result<Flow, FeedError> {
        loop {
            let books_busy = self
                .engine
                .iter()
                .flatten()
                .any(|e| io.backlog(*e) >= BOOK_BACKLOG);
            let downstream_busy = self.opts.backpressure.as_ref().is_some_and(|b| b());
            if !books_busy && !downstream_busy {
                return Ok(Flow::Go);
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
            if let Flow::Stop = self.poll_commands(io).await? {
                return Ok(Flow::Stop);
            }
            if self.paused {
                return Ok(Flow::Go);
            }
        }
    }

    async fn session(&mut self, io: &mut FeedIo) -> Result<(), FeedError> {
        if let Some(gate) = self.opts.gate.take() {
            if let Ok(p) = gate.acquire().await {
                p.forget();
            }
        }
        for (i, ins) in self.source.instruments().iter().enumerate() {
            self.engine[i] = if self.wanted[i] {
                io.symbol(&ins.symbol)
            } else {
                None
            };
        }
        let from = self.opts.from;
        self.seek(from, io)?;
        let to = self.opts.to.unwrap_or(i64::MAX);
        let mut since_check = 0u32;
        loop {
            if self.paused || self.ended {
                match self.next_command(io).await? {
                    None => return Ok(()),
                    Some(c) => {
                        if let Flow::Stop = self.apply(c, io).await? {
                            return Ok(());
                        }
                    }
                }
                continue;
            }
            since_check += 1;
            if since_check >= CHECK_EVERY {
                since_check = 0;
                if let Flow::Stop = self.poll_commands(io).await? {
                    return Ok(());
                }
                if let Flow::Stop = self.flow_control(io).await? {
                    return Ok(());
                }
                if self.clock.speed() == Speed::Max {
                    // Let the feed arbiter's other tasks (and commands) in.
                    tokio::task::yield_now().await;
                }
                if self.paused {
                    continue;
                }
            }
            let next = self.source.peek_ts().filter(|ts| *ts <= to);
            let Some(ts) = next else {
                if let Some(p) = &self.opts.progress {
                    p.passes.fetch_add(1, Ordering::Relaxed);
                }
                self.notify_after_barrier(
                    io,
                    Notice::Ended {
                        at: self.position,
                        looping: self.opts.looping,
                    },
                )
                .await;
                if self.opts.looping {
                    tracing::info!(feed = %self.opts.name, "replay pass done; starting again");
                    self.seek(from, io)?;
                    continue;
                }
                if self.opts.commands.is_none() {
                    return Ok(());
                }
                self.ended = true;
                continue;
            };
            if ts != i64::MIN {
                if let Some(deadline) = self.clock.deadline(ts) {
                    if deadline > Instant::now() + EARLY {
                        let control = async {
                            match self.opts.commands.as_mut() {
                                Some(rx) => rx.recv().await,
                                None => std::future::pending().await,
                            }
                        };
                        tokio::select! {
                            _ = sleep_until(deadline) => {}
                            c = control => {
                                let c = c.unwrap_or(ReplayCommand::Stop);
                                if let Flow::Stop = self.apply(c, io).await? {
                                    return Ok(());
                                }
                                continue;
                            }
                            c = io.next_command() => {
                                let FeedCommand::Resync(s) = c?;
                                self.resync(s, io);
                                continue;
                            }
                        }
                    }
                }
            }
            self.play_one(io);
        }
    }

    /// Decodes and emits the next record.
    #[inline]
    fn play_one(&mut self, io: &mut FeedIo) {
        let tap = self.opts.tap.clone();
        let Some(step) = self.source.step(tap.as_deref()) else {
            return;
        };
        let (ts, source) = (step.ts, step.source);
        let mut damaged = None;
        match &step.error {
            Some(StepError::Damaged { error, .. }) => damaged = Some(error.clone()),
            Some(StepError::Decode(e)) => {
                tracing::debug!(feed = %self.opts.name, error = %e, "undecodable recorded message");
            }
            None => {}
        }
        // The step borrows the source; take the events out first.
        let mut events: smallvec::SmallVec<[FeedEvent; 4]> = smallvec::SmallVec::new();
        let mut stale: smallvec::SmallVec<[SymbolId; 2]> = smallvec::SmallVec::new();
        for d in step.decoded {
            match d {
                Decoded::Event(ev) => {
                    if self.wanted[ev.meta().symbol.index()] {
                        events.push(ev.clone());
                    }
                }
                Decoded::Resync { symbol, .. } => stale.push(*symbol),
                Decoded::Quote(_) => {}
            }
        }
        if ts != i64::MIN {
            self.position = ts;
        }
        for ev in events {
            self.books.apply(&ev);
            self.emit(io, ev);
        }
        for s in stale {
            // The decoder drops this book's updates until the recording's next snapshot.
            self.books.taint(s);
            if let Some(Some(e)) = self.engine.get(s.index()).copied() {
                io.mark_stale(e, "recorded feed lost sync (checksum or sequence)");
            }
        }
        if let Some(error) = damaged {
            tracing::warn!(feed = %self.opts.name, %error, "recording damaged; its books are stale until their next snapshot");
            self.taint_file(source);
            for i in 0..self.wanted.len() {
                if self.source.file_of(SymbolId(i as u32)) == source {
                    if let Some(Some(e)) = self.engine.get(i).copied() {
                        io.mark_stale(e, "recording damaged");
                    }
                }
            }
            self.notify(Notice::Damaged { message: error });
        }
        if let Some(p) = &self.opts.progress {
            p.records.fetch_add(1, Ordering::Relaxed);
            p.position.store(self.position, Ordering::Relaxed);
        }
    }
}

fn set_symbol(ev: &mut FeedEvent, id: SymbolId) {
    match ev {
        FeedEvent::Snapshot { meta, .. }
        | FeedEvent::Delta { meta, .. }
        | FeedEvent::Trade { meta, .. } => meta.symbol = id,
    }
}

impl FeedAdapter for ReplayAdapter {
    fn name(&self) -> &str {
        &self.opts.name
    }

    fn instruments(&self) -> Vec<Instrument> {
        self.source
            .instruments()
            .iter()
            .zip(&self.wanted)
            .filter(|(_, w)| **w)
            .map(|(i, _)| i.clone())
            .collect()
    }

    fn run<'a>(&'a mut self, io: &'a mut FeedIo) -> LocalBoxFuture<'a, Result<(), FeedError>> {
        self.session(io).boxed_local()
    }
}
