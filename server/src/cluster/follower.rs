//! One followed symbol of a gateway: its task, from NATS messages to hub ticks.
//!
//! [`follow`] runs for as long as the gateway's clients want the symbol. It decodes each
//! message into the tick a book actor would have made and publishes it into the hub; a jump
//! in the data `seq` is a gap, after which the task holds ticks back, requests a snapshot
//! and publishes, in `seq` order, only what is newer than what the hub has, so clients never
//! see `seq` go backwards. The gateway's main loop ([`super::gateway`]) owns the
//! subscriptions and tells each task when to resynchronize or to mark its symbol stale.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use async_nats::Subject;
use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::mpsc;

use tickwire_engine::domain::{Instrument, Nanos, Seq, SymbolId};
use tickwire_engine::fanout::Hub;
use tickwire_engine::tick::{FeedState, TickBody, TickHeader};

use super::codec::{self, WireMessage, WireTick};
use super::gateway::{Cmd, Ctx, GatewayShared, GatewayStats};

/// Ticks a resynchronizing symbol holds back while its snapshot is on the way; beyond that
/// the oldest are dropped (the snapshot covers them).
const RESYNC_BUFFER: usize = 4096;

/// Publishes a gateway-made `status: stale` for `symbol` unless it is stale already.
pub(super) fn mark_stale(
    hub: &Hub,
    shared: &GatewayShared,
    symbol: SymbolId,
    reason: &'static str,
) {
    let last = hub.last_values(symbol);
    if let Some(TickBody::Status {
        state: FeedState::Stale,
        ..
    }) = last.status.as_deref().map(|t| &t.body)
    {
        return;
    }
    let seq = [&last.quote, &last.book, &last.status]
        .into_iter()
        .flatten()
        .map(|t| t.header.seq.0)
        .max();
    // Nothing was ever published: nobody has values to distrust.
    let Some(seq) = seq else { return };
    publish_status(hub, shared, symbol, seq, reason);
}

/// Publishes a gateway-made `status: stale` carrying `seq`.
fn publish_status(
    hub: &Hub,
    shared: &GatewayShared,
    symbol: SymbolId,
    seq: u64,
    reason: &'static str,
) {
    let now = Nanos::now();
    let header = TickHeader {
        symbol,
        seq: Seq(seq),
        chan_seq: Seq(0),
        ts: now,
        recv_ts: now,
    };
    let body = TickBody::Status {
        state: FeedState::Stale,
        reason: reason.into(),
    };
    let instrument = hub.symbols().get(symbol);
    hub.publish(codec::build_shared(hub, instrument, header, body));
    shared.stats.stale_marks.fetch_add(1, Ordering::Relaxed);
}

type Reply = Pin<Box<dyn Future<Output = Result<async_nats::Message, String>> + Send>>;

/// One followed symbol's state; see the module documentation.
struct Follower {
    symbol: SymbolId,
    instrument: Instrument,
    request: Subject,
    ctx: Arc<Ctx>,
    /// Applied a snapshot since the last gap, resync or subscription.
    synced: bool,
    held: VecDeque<WireTick>,
    /// Highest data `seq` published into the hub.
    last_seq: u64,
    epoch: u32,
    pending: Option<Reply>,
    retry_at: Option<tokio::time::Instant>,
    failures: u32,
}

pub(super) async fn follow(
    symbol: SymbolId,
    instrument: Instrument,
    request: Subject,
    mut sub: async_nats::Subscriber,
    mut commands: mpsc::Receiver<Cmd>,
    ctx: Arc<Ctx>,
) {
    let mut f = Follower {
        symbol,
        instrument,
        request,
        ctx,
        synced: false,
        held: VecDeque::new(),
        last_seq: 0,
        epoch: 0,
        pending: None,
        retry_at: None,
        failures: 0,
    };
    f.request_snapshot();
    loop {
        tokio::select! {
            // The subscription first: a snapshot reply must not overtake the ticks the
            // engine sent before it.
            biased;
            msg = sub.next() => match msg {
                Some(m) => f.on_message(&m.payload),
                None => return,
            },
            cmd = commands.recv() => match cmd {
                Some(Cmd::Resync) => {
                    // Follow the epoch the gateway now follows (it may be lower than before).
                    f.epoch = f.ctx.shared.epoch.load(Ordering::Relaxed) as u32;
                    f.resync();
                }
                Some(Cmd::Stale(reason)) => {
                    f.synced = false;
                    mark_stale(&f.ctx.hub, &f.ctx.shared, f.symbol, reason);
                }
                None => return,
            },
            reply = wait_reply(&mut f.pending) => {
                f.pending = None;
                f.on_reply(reply);
            }
            _ = wait_until(f.retry_at) => {
                f.retry_at = None;
                f.request_snapshot();
            }
        }
    }
}

async fn wait_reply(pending: &mut Option<Reply>) -> Result<async_nats::Message, String> {
    match pending {
        Some(p) => p.await,
        None => std::future::pending().await,
    }
}

async fn wait_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

impl Follower {
    fn stats(&self) -> &GatewayStats {
        &self.ctx.shared.stats
    }

    fn request_snapshot(&mut self) {
        if self.pending.is_some() {
            return;
        }
        self.stats()
            .snapshots_requested
            .fetch_add(1, Ordering::Relaxed);
        let (client, subject) = (self.ctx.client.clone(), self.request.clone());
        self.pending = Some(Box::pin(async move {
            client
                .request(subject, Bytes::new())
                .await
                .map_err(|e| e.to_string())
        }));
    }

    fn resync(&mut self) {
        self.synced = false;
        self.retry_at = None;
        self.request_snapshot();
    }

    fn on_reply(&mut self, reply: Result<async_nats::Message, String>) {
        let failed = match reply {
            Ok(m) if m.payload.is_empty() => Some("the engine does not know the symbol".into()),
            Ok(m) => match codec::decode(&m.payload) {
                Ok(WireMessage::Snapshot {
                    epoch,
                    symbol,
                    as_of,
                    items,
                }) if symbol == self.symbol => {
                    self.failures = 0;
                    self.apply_snapshot(epoch, as_of.0, items);
                    None
                }
                Ok(_) => Some("reply is not this symbol's snapshot".to_string()),
                Err(e) => Some(e.to_string()),
            },
            Err(e) => Some(e),
        };
        if let Some(why) = failed {
            self.stats()
                .snapshot_failures
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(symbol = %self.instrument.symbol, error = %why, "snapshot request failed; retrying");
            self.failures += 1;
            if self.ctx.hub.last_values(self.symbol).status.is_none() {
                // A subscriber is waiting for a first value that no engine provides: say so.
                publish_status(
                    &self.ctx.hub,
                    &self.ctx.shared,
                    self.symbol,
                    0,
                    "upstream lost: no snapshot from an engine",
                );
            }
            let backoff = Duration::from_millis((100u64 << self.failures.min(4)).min(1000));
            if !self.synced {
                self.retry_at = Some(tokio::time::Instant::now() + backoff);
            }
        }
    }

    fn on_message(&mut self, payload: &[u8]) {
        self.stats().received.fetch_add(1, Ordering::Relaxed);
        match codec::decode(payload) {
            Ok(WireMessage::Tick(t)) if t.header.symbol == self.symbol => self.on_tick(t),
            Ok(WireMessage::Snapshot {
                epoch,
                symbol,
                as_of,
                items,
            }) if symbol == self.symbol => self.apply_snapshot(epoch, as_of.0, items),
            Ok(_) => {
                self.stats().decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(symbol = %self.instrument.symbol, "message for another symbol on this subject; dropped");
            }
            Err(e) => {
                self.stats().decode_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(symbol = %self.instrument.symbol, error = %e, "undecodable message; dropped");
            }
        }
    }

    /// Accepts `epoch`; false when it is older than what this symbol follows (fenced).
    fn accept_epoch(&mut self, epoch: u32) -> bool {
        if epoch < self.epoch {
            self.stats().fenced.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if epoch > self.epoch {
            if self.epoch != 0 {
                // A new engine: take its snapshot before trusting its stream.
                self.synced = false;
                self.request_snapshot();
            }
            self.epoch = epoch;
        }
        true
    }

    fn on_tick(&mut self, t: WireTick) {
        if !self.accept_epoch(t.epoch) {
            return;
        }
        if !self.synced {
            if self.held.len() == RESYNC_BUFFER {
                self.held.pop_front();
            }
            self.held.push_back(t);
            return;
        }
        let seq = t.header.seq.0;
        let is_status = matches!(t.body, TickBody::Status { .. });
        // Data ticks advance seq by one; a status carries the seq of the last data tick.
        let expected = if is_status {
            self.last_seq
        } else {
            self.last_seq + 1
        };
        if seq < expected || (is_status && seq < self.last_seq) {
            return;
        }
        if seq > expected {
            self.stats().gaps.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(symbol = %self.instrument.symbol, expected, got = seq, "seq gap; resynchronizing");
            self.synced = false;
            self.held.push_back(t);
            self.request_snapshot();
            return;
        }
        if !is_status {
            self.last_seq = seq;
        }
        self.publish(t.header, t.body);
    }

    fn publish(&self, header: TickHeader, body: TickBody) {
        let hub = &self.ctx.hub;
        hub.publish(codec::build_shared(hub, &self.instrument, header, body));
        self.stats().published.fetch_add(1, Ordering::Relaxed);
    }

    fn apply_snapshot(&mut self, epoch: u32, as_of: u64, items: Vec<WireTick>) {
        if !self.accept_epoch(epoch) {
            return;
        }
        if as_of < self.last_seq && !self.synced && epoch == self.epoch && self.held.is_empty() {
            // A new engine numbering below the old one (see docs/deployment.md): follow it.
            self.stats().seq_regressions.fetch_add(1, Ordering::Relaxed);
            self.last_seq = 0;
        }
        let last = self.ctx.hub.last_values(self.symbol);
        let mut data = Vec::new();
        for item in items {
            match &item.body {
                TickBody::Status { state, .. } => {
                    let shown = last.status.as_deref().map(|t| &t.body);
                    let differs = match shown {
                        Some(TickBody::Status { state: s, .. }) => s != state,
                        _ => *state == FeedState::Stale,
                    };
                    if differs {
                        let header = TickHeader {
                            seq: Seq(self.last_seq),
                            ..item.header
                        };
                        self.publish(header, item.body);
                    }
                }
                _ => data.push(item),
            }
        }
        if self.synced && as_of <= self.last_seq {
            // In step already (a periodic snapshot): nothing newer in it.
            return;
        }
        data.extend(
            self.held
                .iter()
                .filter(|t| t.header.seq.0 <= as_of)
                .cloned(),
        );
        data.retain(|t| t.header.seq.0 > self.last_seq);
        data.sort_by_key(|t| t.header.seq.0);
        data.dedup_by_key(|t| t.header.seq.0);
        for t in data {
            if !matches!(t.body, TickBody::Status { .. }) {
                self.last_seq = self.last_seq.max(t.header.seq.0);
            }
            self.publish(t.header, t.body);
        }
        self.last_seq = self.last_seq.max(as_of);
        self.synced = true;
        self.retry_at = None;
        self.stats()
            .snapshots_applied
            .fetch_add(1, Ordering::Relaxed);
        let later: Vec<WireTick> = self
            .held
            .drain(..)
            .filter(|t| t.header.seq.0 > as_of)
            .collect();
        for t in later {
            self.on_tick(t);
        }
    }
}
