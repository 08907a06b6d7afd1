//! The gateway role: a hub fed from NATS instead of local book actors.
//!
//! At start the gateway asks `md.ctl.instruments` for the instrument list (retrying until an
//! engine answers) and builds the same [`SymbolTable`] and [`Hub`] a `serve` process has, so
//! sessions, routers, outboxes, throttling, conflation and slow-consumer handling run
//! unchanged. Then, on its own thread and tokio runtime:
//!
//! * **Interest**: the hub's interest hook marks a symbol when it gains its first or loses
//!   its last subscriber on any worker (a bounded queue, one entry per symbol at most). For a
//!   wanted symbol the gateway subscribes to `md.<venue>.<symbol>.*` and runs one task for it;
//!   when nobody wants it any more the subscription is dropped and the symbol's last values
//!   are marked stale (a later subscriber sees them as old until the next snapshot).
//! * **Per-symbol task** ([`super::follower`]): decodes each message ([`super::codec`]) into
//!   the tick a book actor would have made ([`super::codec::build_tick`]) and publishes it
//!   into the hub. `seq` counts every data tick of a symbol, so a jump is a gap: the task
//!   then buffers what follows and requests the snapshot (`md.snap.<venue>.<symbol>`,
//!   request/reply), and on a fresh subscription too.
//!   A snapshot covers everything up to its `as_of` seq; its quote and book, merged in `seq`
//!   order with the buffered ticks, are published only where newer than what the hub has,
//!   so clients never see `seq` go backwards. The subscription is polled before the reply,
//!   and both arrive on one connection in the order the engine sent them, so no tick the
//!   snapshot does not cover is lost. Periodic snapshots (`md.<venue>.<symbol>.snap`) repair
//!   the same way without a request.
//! * **Liveness**: the active engine's heartbeat (`md.ctl.heartbeat`) is watched. With none
//!   for `cluster.engine_timeout`, or when the NATS connection drops, every followed symbol
//!   is marked stale (clients get `status: stale`); when the connection or an engine (the
//!   same or a new epoch) is back, every followed symbol is resynchronized from a snapshot
//!   and clients get `status: live` and fresh values. Messages of an older epoch than the
//!   newest seen are dropped while that newer engine is alive (fencing an engine that lost
//!   its lease). A subscriber waiting for a symbol no engine can give a snapshot of is told
//!   `stale` rather than left waiting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::{Client, Subject};
use bytes::Bytes;
use crossbeam_queue::ArrayQueue;
use futures_util::StreamExt;
use tokio::sync::{mpsc, Notify};

use tickwire_engine::actors::book::BookStats;
use tickwire_engine::actors::FeedInfo;
use tickwire_engine::domain::{Instrument, Nanos, Scale, SymbolId, SymbolTable};
use tickwire_engine::fanout::Hub;
use tickwire_engine::EngineError;

use super::follower::{follow, mark_stale};
use super::subjects::Subjects;
use super::ClusterSettings;
use crate::source::MarketSource;

/// Counters of the gateway (in `GET /stats` under `cluster`).
#[derive(Debug, Default)]
pub struct GatewayStats {
    pub received: AtomicU64,
    pub published: AtomicU64,
    pub decode_errors: AtomicU64,
    pub gaps: AtomicU64,
    pub snapshots_requested: AtomicU64,
    pub snapshots_applied: AtomicU64,
    pub snapshot_failures: AtomicU64,
    pub fenced: AtomicU64,
    pub stale_marks: AtomicU64,
    pub seq_regressions: AtomicU64,
    pub subscribes: AtomicU64,
    pub unsubscribes: AtomicU64,
}

/// State shared by the gateway thread and the HTTP side.
pub struct GatewayShared {
    pub stats: GatewayStats,
    pub connected: AtomicBool,
    pub engine_down: AtomicBool,
    /// When the last active heartbeat arrived (ns since the epoch).
    pub last_heartbeat: AtomicI64,
    pub epoch: AtomicU64,
    pub followed: AtomicUsize,
    engine_timeout: Duration,
}

/// A gateway's market-data source: what `tickwire gateway` serves.
pub struct Gateway {
    hub: Arc<Hub>,
    book_stats: Arc<BookStats>,
    pub shared: Arc<GatewayShared>,
}

#[derive(serde::Deserialize)]
struct InstrumentWire {
    symbol: String,
    venue: String,
    price_scale: u8,
    size_scale: u8,
}

/// Parses the engine's instrument list.
pub fn parse_instruments(body: &[u8]) -> Result<Vec<Instrument>, String> {
    let list: Vec<InstrumentWire> =
        serde_json::from_slice(body).map_err(|e| format!("instrument list: {e}"))?;
    list.into_iter()
        .map(|i| {
            if i.price_scale > 18 || i.size_scale > 18 {
                return Err(format!("instrument {}: scale out of range", i.symbol));
            }
            Ok(Instrument {
                symbol: i.symbol,
                venue: i.venue,
                price_scale: Scale::new(i.price_scale),
                size_scale: Scale::new(i.size_scale),
            })
        })
        .collect()
}

impl Gateway {
    /// Connects to NATS, waits for an engine's instrument list, builds the hub for
    /// `workers` server workers, and starts following interest. Blocks until the
    /// instrument list has arrived.
    pub fn start(
        settings: &ClusterSettings,
        name: &str,
        workers: usize,
        queue_capacity: usize,
    ) -> anyhow::Result<Gateway> {
        let shared = Arc::new(GatewayShared {
            stats: GatewayStats::default(),
            connected: AtomicBool::new(false),
            engine_down: AtomicBool::new(false),
            last_heartbeat: AtomicI64::new(Nanos::now().get()),
            epoch: AtomicU64::new(0),
            followed: AtomicUsize::new(0),
            engine_timeout: settings.engine_timeout,
        });
        let (hub_tx, hub_rx) = std::sync::mpsc::channel();
        let (settings, thread_shared) = (settings.clone(), shared.clone());
        let name = name.to_string();
        std::thread::Builder::new()
            .name("cluster-gateway".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("gateway runtime");
                rt.block_on(run(
                    settings,
                    name,
                    workers,
                    queue_capacity,
                    thread_shared,
                    hub_tx,
                ));
            })?;
        let hub = hub_rx
            .recv()
            .map_err(|_| anyhow::anyhow!("the gateway's NATS thread ended before it started"))??;
        Ok(Gateway {
            hub,
            book_stats: Arc::new(BookStats::default()),
            shared,
        })
    }
}

/// Commands from the gateway's main loop to one symbol's task.
#[derive(Debug, Clone, Copy)]
pub(super) enum Cmd {
    /// Request a snapshot and hold ticks back until it is applied.
    Resync,
    /// Tell clients the symbol is stale (the connection or the engine is gone).
    Stale(&'static str),
}

struct Followed {
    commands: mpsc::Sender<Cmd>,
    task: tokio::task::JoinHandle<()>,
}

/// Everything a symbol task needs, shared.
pub(super) struct Ctx {
    pub(super) hub: Arc<Hub>,
    pub(super) client: Client,
    pub(super) shared: Arc<GatewayShared>,
}

type Hook = (Vec<AtomicBool>, ArrayQueue<SymbolId>, Notify);

async fn run(
    settings: ClusterSettings,
    name: String,
    workers: usize,
    queue_capacity: usize,
    shared: Arc<GatewayShared>,
    hub_tx: std::sync::mpsc::Sender<anyhow::Result<Arc<Hub>>>,
) {
    let subjects = Subjects::new(&settings.subject_prefix);
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let client = match super::connect(&settings.nats_url, &name, move |e| {
        let _ = events_tx.send(e);
    })
    .await
    {
        Ok(c) => c,
        Err(e) => {
            let _ = hub_tx.send(Err(anyhow::anyhow!("NATS {}: {e}", settings.nats_url)));
            return;
        }
    };
    let instruments = loop {
        match client
            .request(subjects.instruments(), Bytes::new())
            .await
            .map_err(|e| e.to_string())
            .and_then(|m| parse_instruments(&m.payload))
        {
            Ok(list) => break list,
            Err(e) => {
                tracing::warn!(error = %e, "no instrument list from an engine yet; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    };
    let symbols = match SymbolTable::new(instruments) {
        Ok(s) => s,
        Err(e) => {
            let _ = hub_tx.send(Err(anyhow::anyhow!("engine's instrument list: {e}")));
            return;
        }
    };
    let hub = Hub::new(symbols.clone(), workers.max(1), queue_capacity);
    let hook: Arc<Hook> = Arc::new((
        (0..symbols.len()).map(|_| AtomicBool::new(false)).collect(),
        ArrayQueue::new(symbols.len().max(1)),
        Notify::new(),
    ));
    let for_hook = hook.clone();
    let _ = hub.set_interest_hook(Box::new(move |symbol, _| {
        let (dirty, queue, notify) = &*for_hook;
        if !dirty[symbol.index()].swap(true, Ordering::AcqRel) {
            // Cannot fail: at most one entry per symbol, and the queue holds them all.
            let _ = queue.push(symbol);
        }
        notify.notify_one();
    }));
    shared.connected.store(true, Ordering::Relaxed);
    tracing::info!(symbols = symbols.len(), url = %settings.nats_url, "gateway: instrument list received");
    if hub_tx.send(Ok(hub.clone())).is_err() {
        return;
    }
    let ctx = Arc::new(Ctx {
        hub: hub.clone(),
        client: client.clone(),
        shared: shared.clone(),
    });
    let mut heartbeats = loop {
        match client.subscribe(subjects.heartbeat()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "subscribe failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut followed: HashMap<SymbolId, Followed> = HashMap::new();
    let mut watchdog = tokio::time::interval(Duration::from_millis(50));
    let broadcast = |followed: &HashMap<SymbolId, Followed>, cmd: Cmd| {
        for f in followed.values() {
            // A full queue already holds a command that leads to the same place.
            let _ = f.commands.try_send(cmd);
        }
    };
    loop {
        tokio::select! {
            _ = hook.2.notified() => {
                while let Some(symbol) = hook.1.pop() {
                    hook.0[symbol.index()].store(false, Ordering::Release);
                    let wanted = hub.has_interest(symbol);
                    if wanted && !followed.contains_key(&symbol) {
                        let ins = symbols.get(symbol).clone();
                        match client.subscribe(subjects.symbol_wildcard(&ins.venue, &ins.symbol)).await {
                            Ok(sub) => {
                                shared.stats.subscribes.fetch_add(1, Ordering::Relaxed);
                                let (tx, rx) = mpsc::channel(4);
                                let request = Subject::from(subjects.snapshot_request(&ins.venue, &ins.symbol));
                                let task = tokio::spawn(follow(symbol, ins, request, sub, rx, ctx.clone()));
                                followed.insert(symbol, Followed { commands: tx, task });
                                tracing::debug!(symbol = %symbols.get(symbol).symbol, "following upstream");
                            }
                            Err(e) => {
                                tracing::warn!(error = %e, "subscribe failed; will retry");
                                hook.0[symbol.index()].store(true, Ordering::Release);
                                let _ = hook.1.push(symbol);
                            }
                        }
                    } else if !wanted {
                        if let Some(f) = followed.remove(&symbol) {
                            // Dropping the subscriber unsubscribes in NATS.
                            f.task.abort();
                            shared.stats.unsubscribes.fetch_add(1, Ordering::Relaxed);
                            mark_stale(&hub, &shared, symbol, "no subscribers here; upstream not followed");
                            tracing::debug!(symbol = %symbols.get(symbol).symbol, "no longer following upstream");
                        }
                    }
                }
                shared.followed.store(followed.len(), Ordering::Relaxed);
            }
            Some(event) = events.recv() => match event {
                async_nats::Event::Connected => {
                    let was = shared.connected.swap(true, Ordering::Relaxed);
                    shared.last_heartbeat.store(Nanos::now().get(), Ordering::Relaxed);
                    tracing::info!("NATS connected");
                    if !was {
                        broadcast(&followed, Cmd::Resync);
                    }
                }
                async_nats::Event::Disconnected => {
                    shared.connected.store(false, Ordering::Relaxed);
                    tracing::warn!("NATS connection lost; symbols stale until it is back");
                    broadcast(&followed, Cmd::Stale("upstream lost: NATS connection down"));
                }
                async_nats::Event::SlowConsumer(sid) => {
                    tracing::warn!(sid, "NATS slow consumer: messages dropped; gaps will resync");
                }
                other => tracing::debug!(event = %other, "NATS event"),
            },
            Some(msg) = heartbeats.next() => {
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&msg.payload) else {
                    shared.stats.decode_errors.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                if v["role"] != "active" {
                    continue;
                }
                let epoch = v["epoch"].as_u64().unwrap_or(0);
                let known = shared.epoch.load(Ordering::Relaxed);
                // An older epoch is fenced while the newer engine is alive; once that one
                // is gone, whoever is active now is followed (an engine without a lease,
                // numbered by its start time, replacing one that held a lease).
                if epoch < known && !shared.engine_down.load(Ordering::Relaxed) {
                    shared.stats.fenced.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                shared.last_heartbeat.store(Nanos::now().get(), Ordering::Relaxed);
                shared.epoch.store(epoch, Ordering::Relaxed);
                let was_down = shared.engine_down.swap(false, Ordering::Relaxed);
                if was_down || (known != 0 && epoch != known) {
                    tracing::info!(epoch, engine = %v["engine"], "active engine heard; resynchronizing");
                    broadcast(&followed, Cmd::Resync);
                }
            }
            _ = watchdog.tick() => {
                let age = Nanos::now().get() - shared.last_heartbeat.load(Ordering::Relaxed);
                if shared.connected.load(Ordering::Relaxed)
                    && age > settings.engine_timeout.as_nanos() as i64
                    && !shared.engine_down.swap(true, Ordering::Relaxed)
                {
                    tracing::warn!(silent_ms = age / 1_000_000, "no active engine; symbols stale");
                    broadcast(&followed, Cmd::Stale("upstream lost: no active engine"));
                }
            }
        }
    }
}

impl MarketSource for Gateway {
    fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    fn book_stats(&self) -> &Arc<BookStats> {
        &self.book_stats
    }

    fn feeds(&self) -> Box<dyn Iterator<Item = FeedInfo<'_>> + '_> {
        Box::new(std::iter::empty())
    }

    fn extra_not_ready(&self) -> Vec<String> {
        let s = &self.shared;
        let mut reasons = Vec::new();
        if !s.connected.load(Ordering::Relaxed) {
            reasons.push("nats: not connected".to_string());
        } else if s.engine_down.load(Ordering::Relaxed) {
            reasons.push(format!(
                "no active engine heard for more than {} ms",
                s.engine_timeout.as_millis()
            ));
        }
        reasons
    }

    fn stats_json(&self) -> Option<serde_json::Value> {
        let s = &self.shared;
        let st = &s.stats;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        Some(serde_json::json!({
            "role": "gateway",
            "nats_connected": s.connected.load(Ordering::Relaxed),
            "engine_down": s.engine_down.load(Ordering::Relaxed),
            "epoch": s.epoch.load(Ordering::Relaxed),
            "followed_symbols": s.followed.load(Ordering::Relaxed),
            "received": load(&st.received),
            "published": load(&st.published),
            "decode_errors": load(&st.decode_errors),
            "gaps": load(&st.gaps),
            "snapshots_requested": load(&st.snapshots_requested),
            "snapshots_applied": load(&st.snapshots_applied),
            "snapshot_failures": load(&st.snapshot_failures),
            "fenced": load(&st.fenced),
            "stale_marks": load(&st.stale_marks),
            "seq_regressions": load(&st.seq_regressions),
            "subscribes": load(&st.subscribes),
            "unsubscribes": load(&st.unsubscribes),
        }))
    }

    fn inject_feed_fault(&self, feed: &str, _reason: &str) -> Result<(), EngineError> {
        Err(EngineError::UnknownFeed(format!(
            "{feed} (a gateway runs no feeds)"
        )))
    }

    fn inject_book_fault(&self, _symbol: SymbolId) {}
}
