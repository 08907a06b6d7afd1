//! The engine role's publisher: from the engine's hub to NATS.
//!
//! The publisher is one more consumer of the engine's [`Hub`]: it claims a worker queue of
//! its own (bounded, lock-free, like a server worker's) with interest in every symbol, so
//! book actors never wait for it or for NATS. On its own thread and tokio runtime it:
//!
//! * encodes every tick once ([`codec`]) and publishes it on
//!   `md.<venue>.<symbol>.<channel>` (subjects precomputed per symbol);
//! * keeps, per symbol, the last quote, book and status it *sent* and the last `seq`, so a
//!   snapshot it answers (`md.snap.<venue>.<symbol>`) or publishes periodically
//!   (`md.<venue>.<symbol>.snap`) is exactly consistent with its position in the stream;
//! * answers `md.ctl.instruments` with the instrument list, and publishes a heartbeat on
//!   `md.ctl.heartbeat` every `heartbeat_interval`.
//!
//! Overflow of its queue (NATS or this thread cannot keep up) is counted and answered with a
//! snapshot of every symbol; while NATS is unreachable ticks are dropped (counted) and a full
//! set of snapshots follows the reconnection. Nothing grows without bound.
//!
//! With `cluster.lease` the engine publishes only while it holds the lease ([`lease`]); as
//! a standby it drains and tracks the stream all the same (so it is warm), and on taking over
//! it publishes every symbol's snapshot at once.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::Subject;
use futures_util::StreamExt;
use tokio::sync::watch;

use tickwire_engine::actors::book::BookStats;
use tickwire_engine::actors::FeedInfo;
use tickwire_engine::domain::{Nanos, Seq, SymbolId, SymbolTable};
use tickwire_engine::fanout::Hub;
use tickwire_engine::tick::{Tick, TickBody};
use tickwire_engine::{Engine, EngineError};

use super::codec;
use super::lease::{self, Role};
use super::subjects::{Stream, Subjects};
use super::ClusterSettings;
use crate::source::MarketSource;

/// Counters of the publisher (in `GET /stats` under `cluster`).
#[derive(Debug, Default)]
pub struct PublisherStats {
    pub published: AtomicU64,
    pub dropped_disconnected: AtomicU64,
    pub queue_overflows: AtomicU64,
    pub snapshots_served: AtomicU64,
    pub snapshots_published: AtomicU64,
    pub bad_requests: AtomicU64,
}

/// State shared between the publisher thread and the HTTP side.
pub struct EngineShared {
    pub engine_id: String,
    pub stats: PublisherStats,
    pub connected: AtomicBool,
    /// 0 while standby, else the epoch + 1.
    active_epoch: AtomicU64,
}

impl EngineShared {
    /// The current role.
    pub fn role(&self) -> Role {
        match self.active_epoch.load(Ordering::Relaxed) {
            0 => Role::Standby,
            e => Role::Active {
                epoch: (e - 1) as u32,
            },
        }
    }
}

/// An engine with its NATS publisher: what `tickwire engine` serves.
pub struct ClusterEngine {
    pub engine: Engine,
    pub shared: Arc<EngineShared>,
}

impl ClusterEngine {
    /// Starts the publisher for `engine`. The engine must have been built with one hub
    /// worker more than the server uses (the publisher claims it here, before any server
    /// worker does).
    pub fn start(engine: Engine, settings: &ClusterSettings) -> anyhow::Result<ClusterEngine> {
        let shared = start_publisher(engine.hub(), settings)?;
        Ok(ClusterEngine { engine, shared })
    }
}

/// Starts the publisher on its own thread, draining a worker queue of `hub` it claims here
/// (the hub must have one worker queue more than its server uses). Also what the hop
/// benchmark drives directly.
pub fn start_publisher(
    hub: &Arc<Hub>,
    settings: &ClusterSettings,
) -> anyhow::Result<Arc<EngineShared>> {
    let hub = hub.clone();
    let worker = hub.claim_worker();
    for (id, _) in hub.symbols().iter() {
        hub.add_interest(id, worker);
    }
    let shared = Arc::new(EngineShared {
        engine_id: settings.engine_id.clone(),
        stats: PublisherStats::default(),
        connected: AtomicBool::new(false),
        active_epoch: AtomicU64::new(0),
    });
    let (settings, thread_shared) = (settings.clone(), shared.clone());
    std::thread::Builder::new()
        .name("cluster-publisher".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("publisher runtime");
            rt.block_on(run(settings, hub, worker, thread_shared));
        })?;
    Ok(shared)
}

/// What the publisher last sent of one symbol.
#[derive(Default)]
struct Sent {
    quote: Option<Arc<Tick>>,
    book: Option<Arc<Tick>>,
    status: Option<Arc<Tick>>,
    seq: u64,
}

impl Sent {
    /// What the hub holds for `symbol` now: the publisher claims its queue after the engine
    /// has started, and what the books published before that (the feed's first `status:
    /// live` above all) reaches it only this way. Without it a snapshot could lack the
    /// status, and gateways would never tell their clients `live` again after an outage.
    fn from_hub(hub: &Hub, symbol: SymbolId) -> Sent {
        let last = hub.last_values(symbol);
        let mut sent = Sent::default();
        for t in [last.status, last.quote, last.book].iter().flatten() {
            sent.record(t);
        }
        sent
    }

    /// Keeps the newest tick of each kind (a tick queued before [`Sent::from_hub`] read the
    /// hub may come after it).
    fn record(&mut self, t: &Arc<Tick>) {
        self.seq = self.seq.max(t.header.seq.0);
        let slot = match t.body {
            TickBody::Quote(_) => &mut self.quote,
            TickBody::Book(_) => &mut self.book,
            TickBody::Status { .. } => &mut self.status,
            TickBody::Trade { .. } => return,
        };
        // A status carries the seq of the data before it: equal is newer.
        if slot
            .as_ref()
            .is_none_or(|held| held.header.seq <= t.header.seq)
        {
            *slot = Some(t.clone());
        }
    }

    fn snapshot(&self, epoch: u32, symbol: SymbolId) -> bytes::Bytes {
        let items: Vec<&Tick> = [&self.status, &self.quote, &self.book]
            .into_iter()
            .flatten()
            .map(|t| t.as_ref())
            .collect();
        codec::encode_snapshot(epoch, Nanos::now(), symbol, Seq(self.seq), &items)
    }
}

fn stream_of(body: &TickBody) -> usize {
    match body {
        TickBody::Quote(_) => 0,
        TickBody::Trade { .. } => 1,
        TickBody::Book(_) => 2,
        TickBody::Status { .. } => 3,
    }
}

const STREAMS: [Stream; 5] = [
    Stream::Quote,
    Stream::Trade,
    Stream::Book,
    Stream::Status,
    Stream::Snap,
];

/// The JSON instrument list answered on `md.ctl.instruments`.
pub fn instruments_json(symbols: &SymbolTable) -> Vec<u8> {
    let list: Vec<_> = symbols.iter().map(|(_, i)| i).collect();
    serde_json::to_vec(&list).expect("instruments serialize")
}

struct Publisher {
    client: async_nats::Client,
    subjects: Subjects,
    hub: Arc<Hub>,
    shared: Arc<EngineShared>,
    by_symbol: Vec<[Subject; 5]>,
    sent: Vec<Sent>,
    epoch: Option<u32>,
}

impl Publisher {
    fn can_publish(&self) -> bool {
        self.epoch.is_some() && self.shared.connected.load(Ordering::Relaxed)
    }

    async fn publish_all_snapshots(&self) {
        let Some(epoch) = self.epoch else { return };
        for (i, sent) in self.sent.iter().enumerate() {
            if sent.seq == 0 && sent.status.is_none() {
                continue;
            }
            let payload = sent.snapshot(epoch, SymbolId(i as u32));
            if self
                .client
                .publish(self.by_symbol[i][4].clone(), payload)
                .await
                .is_ok()
            {
                self.shared
                    .stats
                    .snapshots_published
                    .fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    async fn answer_snapshot(&self, msg: async_nats::Message) {
        let Some(reply) = msg.reply else { return };
        let symbol = self
            .subjects
            .parse_snapshot_request(&msg.subject)
            .and_then(|(_, symbol)| self.hub.symbols().lookup(&symbol));
        let (Some(epoch), Some(symbol)) = (self.epoch, symbol) else {
            self.shared
                .stats
                .bad_requests
                .fetch_add(1, Ordering::Relaxed);
            // An empty reply says "no such symbol here" at once instead of a timeout.
            let _ = self.client.publish(reply, bytes::Bytes::new()).await;
            return;
        };
        let payload = self.sent[symbol.index()].snapshot(epoch, symbol);
        if self.client.publish(reply, payload).await.is_ok() {
            self.shared
                .stats
                .snapshots_served
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn heartbeat(&self) {
        let role = match self.epoch {
            Some(_) => "active",
            None => "standby",
        };
        let body = serde_json::json!({
            "engine": self.shared.engine_id,
            "role": role,
            "epoch": self.epoch,
            "symbols": self.sent.len(),
            "ts": Nanos::now().get(),
        });
        let _ = self
            .client
            .publish(self.subjects.heartbeat(), body.to_string().into())
            .await;
    }
}

async fn run(settings: ClusterSettings, hub: Arc<Hub>, worker: usize, shared: Arc<EngineShared>) {
    let subjects = Subjects::new(&settings.subject_prefix);
    let (events_tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let name = format!("tickwire {}", settings.engine_id);
    let client = match super::connect(&settings.nats_url, &name, move |e| {
        let _ = events_tx.send(e);
    })
    .await
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, url = %settings.nats_url, "cannot use the NATS URL; not publishing");
            return;
        }
    };
    let symbols = hub.symbols().clone();
    let by_symbol = symbols
        .iter()
        .map(|(_, ins)| {
            let base = subjects.symbol_base(&ins.venue, &ins.symbol);
            STREAMS.map(|s| Subject::from(subjects.tick(&base, s)))
        })
        .collect();
    let instruments = bytes::Bytes::from(instruments_json(&symbols));
    let (role_tx, mut role_rx) = watch::channel(Role::Standby);
    if settings.lease {
        tokio::spawn(lease::run(
            client.clone(),
            settings.lease_bucket.clone(),
            settings.engine_id.clone(),
            settings.lease_ttl,
            role_tx,
        ));
    } else {
        // Alone: always active; the start time orders epochs across restarts.
        let epoch = (Nanos::now().get() / 1_000_000_000) as u32;
        role_tx.send_replace(Role::Active { epoch });
    }
    let mut p = Publisher {
        client: client.clone(),
        subjects,
        hub: hub.clone(),
        shared: shared.clone(),
        by_symbol,
        sent: symbols
            .iter()
            .map(|(id, _)| Sent::from_hub(&hub, id))
            .collect(),
        epoch: None,
    };
    let mut instrument_requests = loop {
        match client.subscribe(p.subjects.instruments()).await {
            Ok(s) => break s,
            Err(e) => {
                tracing::warn!(error = %e, "subscribe failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let mut snapshot_requests: Option<async_nats::Subscriber> = None;
    let mut heartbeat = tokio::time::interval(settings.heartbeat_interval);
    let mut periodic = tokio::time::interval(settings.snapshot_interval);
    periodic.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut batch = Vec::with_capacity(1024);
    let mut resync = false;
    let mut role_changed = true;
    tracing::info!(engine = %settings.engine_id, lease = settings.lease, url = %settings.nats_url, "cluster publisher started");
    loop {
        if role_changed {
            role_changed = false;
            let role = *role_rx.borrow_and_update();
            match role {
                Role::Active { epoch } => {
                    p.epoch = Some(epoch);
                    shared
                        .active_epoch
                        .store(epoch as u64 + 1, Ordering::Relaxed);
                    snapshot_requests = client.subscribe(p.subjects.snapshot_requests()).await.ok();
                    tracing::info!(epoch, "publishing as the active engine");
                    resync = true;
                }
                Role::Standby => {
                    p.epoch = None;
                    shared.active_epoch.store(0, Ordering::Relaxed);
                    snapshot_requests = None;
                    tracing::info!("standby: tracking the stream, publishing nothing");
                }
            }
        }
        if resync && p.can_publish() {
            resync = false;
            p.publish_all_snapshots().await;
        }
        tokio::select! {
            biased;
            changed = role_rx.changed() => {
                if changed.is_ok() {
                    role_changed = true;
                }
            }
            Some(event) = events.recv() => match event {
                async_nats::Event::Connected => {
                    tracing::info!("NATS connected");
                    shared.connected.store(true, Ordering::Relaxed);
                    resync = true;
                }
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS connection lost; dropping ticks until it is back");
                    shared.connected.store(false, Ordering::Relaxed);
                }
                other => tracing::debug!(event = %other, "NATS event"),
            },
            overflowed = hub.recv_batch(worker, &mut batch, 1024) => {
                let publishing = p.can_publish();
                let epoch = p.epoch.unwrap_or(0);
                let sent_ts = Nanos::now();
                for t in batch.drain(..) {
                    let i = t.header.symbol.index();
                    p.sent[i].record(&t);
                    if publishing {
                        let subject = p.by_symbol[i][stream_of(&t.body)].clone();
                        if client.publish(subject, codec::encode(epoch, sent_ts, &t)).await.is_ok() {
                            shared.stats.published.fetch_add(1, Ordering::Relaxed);
                        }
                    } else if p.epoch.is_some() {
                        shared.stats.dropped_disconnected.fetch_add(1, Ordering::Relaxed);
                    }
                }
                if overflowed {
                    shared.stats.queue_overflows.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!("publisher queue overflowed; publishing every snapshot");
                    resync = true;
                }
            }
            Some(req) = next_request(&mut snapshot_requests) => p.answer_snapshot(req).await,
            Some(req) = instrument_requests.next() => {
                if let Some(reply) = req.reply {
                    let _ = client.publish(reply, instruments.clone()).await;
                }
            }
            _ = heartbeat.tick() => {
                if shared.connected.load(Ordering::Relaxed) {
                    p.heartbeat().await;
                }
            }
            _ = periodic.tick() => {
                if p.can_publish() {
                    p.publish_all_snapshots().await;
                }
            }
        }
    }
}

async fn next_request(sub: &mut Option<async_nats::Subscriber>) -> Option<async_nats::Message> {
    match sub {
        Some(s) => s.next().await,
        None => std::future::pending().await,
    }
}

impl MarketSource for ClusterEngine {
    fn hub(&self) -> &Arc<Hub> {
        self.engine.hub()
    }

    fn book_stats(&self) -> &Arc<BookStats> {
        self.engine.book_stats()
    }

    fn feeds(&self) -> Box<dyn Iterator<Item = FeedInfo<'_>> + '_> {
        Box::new(self.engine.feeds())
    }

    fn extra_not_ready(&self) -> Vec<String> {
        if self.shared.connected.load(Ordering::Relaxed) {
            Vec::new()
        } else {
            vec!["nats: not connected".to_string()]
        }
    }

    fn stats_json(&self) -> Option<serde_json::Value> {
        let s = &self.shared.stats;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let (role, epoch) = match self.shared.role() {
            Role::Active { epoch } => ("active", Some(epoch)),
            Role::Standby => ("standby", None),
        };
        Some(serde_json::json!({
            "role": role,
            "engine": self.shared.engine_id,
            "epoch": epoch,
            "nats_connected": self.shared.connected.load(Ordering::Relaxed),
            "published": load(&s.published),
            "dropped_disconnected": load(&s.dropped_disconnected),
            "queue_overflows": load(&s.queue_overflows),
            "snapshots_served": load(&s.snapshots_served),
            "snapshots_published": load(&s.snapshots_published),
            "bad_requests": load(&s.bad_requests),
        }))
    }

    fn inject_feed_fault(&self, feed: &str, reason: &str) -> Result<(), EngineError> {
        self.engine.inject_feed_fault(feed, reason)
    }

    fn inject_book_fault(&self, symbol: SymbolId) {
        self.engine.inject_book_fault(symbol)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwire_engine::tick::{FeedState, TickHeader};

    fn tick(seq: u64, body: TickBody) -> Arc<Tick> {
        Arc::new(Tick {
            header: TickHeader {
                symbol: SymbolId(0),
                seq: Seq(seq),
                chan_seq: Seq(seq),
                ts: Nanos(1),
                recv_ts: Nanos(1),
            },
            body,
            frames: Default::default(),
        })
    }

    fn status(seq: u64, state: FeedState) -> Arc<Tick> {
        tick(
            seq,
            TickBody::Status {
                state,
                reason: "".into(),
            },
        )
    }

    /// The feed state of the status the record holds.
    fn held_state(sent: &Sent) -> Option<FeedState> {
        match sent.status.as_deref()?.body {
            TickBody::Status { state, .. } => Some(state),
            _ => None,
        }
    }

    #[test]
    fn the_record_starts_from_what_the_hub_already_holds() {
        use tickwire_engine::domain::{Instrument, Scale};
        let symbols = SymbolTable::new(vec![Instrument {
            symbol: "A".into(),
            venue: "v".into(),
            price_scale: Scale::new(2),
            size_scale: Scale::new(0),
        }])
        .unwrap();
        let hub = Hub::new(symbols, 1, 16);
        // The feed's first status, published before any publisher claimed a queue.
        hub.publish(status(0, FeedState::Live));
        let sent = Sent::from_hub(&hub, SymbolId(0));
        assert_eq!(held_state(&sent), Some(FeedState::Live));
    }

    #[test]
    fn a_late_older_tick_does_not_replace_a_newer_one() {
        let mut sent = Sent::default();
        sent.record(&status(5, FeedState::Stale));
        sent.record(&status(3, FeedState::Live));
        assert_eq!(held_state(&sent), Some(FeedState::Stale));
        // A status after the data it follows carries the same seq, and is the newer.
        sent.record(&status(5, FeedState::Live));
        assert_eq!(held_state(&sent), Some(FeedState::Live));
        assert_eq!(sent.seq, 5);
    }
}
