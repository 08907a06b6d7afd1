//! A/B feed lines: two upstream sessions of the same venue, arbitrated by sequence number.
//!
//! Exchanges publish the same market data on redundant lines so that losing one loses
//! nothing. [`ArbitratedAdapter`] connects to both lines at once, reads every raw message of
//! each, and passes each message to a single venue decoder **once**: the first line to
//! deliver it wins, the copy from the other line is dropped. A line that fails reconnects on
//! its own with a backoff while the other carries on; the session fails (and the engine's
//! supervisor marks the symbols stale and restarts it) only when both lines are down, or
//! when the decoder itself asks for a resync.
//!
//! Arbitration happens on the raw message, before decoding, as exchanges' line handlers do:
//! a cheap key extraction ([`MessageKey`]) per message and line, one decode per message. The
//! key is the venue's own sequence where the venue has one. Coinbase (the venue supported
//! today, [`ARBITRATED_VENUES`]):
//!
//! * `ticker` and `match` carry the product's `sequence` (a ticker repeats the sequence of
//!   the match it follows, so each is its own stream): a message is new when its sequence
//!   is above the highest passed for that stream;
//! * `l2update` carries no sequence in this API version, only the exchange's `time`; the key
//!   is (`time`, ordinal among the product's updates with that same time on this line),
//!   compared the same way. Both lines carry the product's updates in the same order, so
//!   the keys agree between lines;
//! * `snapshot` and `last_match` (each connection's replay of the product's last trade,
//!   older than the live stream) pass once per product per session (the first line's); a
//!   line that reconnects mid-session sends new ones, which are dropped, since the book
//!   already follows the other line's stream and the keys of what follows tell old from new;
//! * `subscriptions`, `heartbeat` are line-local and dropped.
//!
//! A line joins a product's stream only once it is seen to overlap what was passed; until
//! then its newer messages wait in a bounded buffer ([`Arbitrated`]), so a line that runs
//! ahead of the other loses nothing when the other dies, and takes the lead as soon as the
//! two overlap. Each line's health (up, down, messages that won) is logged when it changes.

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use tickwire_engine::adapter::{FeedAdapter, FeedCommand, FeedError, FeedIo};
use tickwire_engine::domain::{Instrument, Nanos, SymbolId};
use tickwire_engine::event::FeedEvent;

use crate::live::{LiveConfig, Venue};
use crate::venues::{parse_rfc3339, Decoded};

/// Venues whose messages [`MessageKey`] can arbitrate.
pub const ARBITRATED_VENUES: [&str; 1] = ["coinbase"];

/// Whether A/B lines of `venue` can be arbitrated.
pub fn supports(venue: &str) -> bool {
    ARBITRATED_VENUES.contains(&venue)
}

/// What arbitration needs to know about one raw message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MessageKey {
    /// Ordered by the venue's sequence within `product`.
    Sequenced { product: String, seq: u64 },
    /// A book update ordered by exchange time (ns) and ordinal within that time.
    Timed {
        product: String,
        time: i64,
        ordinal: u32,
    },
    /// Sent once per connection (a book snapshot, Coinbase's `last_match`): passes once
    /// per product per session, from the first line.
    Once { product: String, what: &'static str },
    /// Line-local (subscription acks, heartbeats): dropped.
    Control,
    /// Not understood here: passed, so the decoder counts and reports it.
    Unknown,
}

#[derive(serde::Deserialize)]
struct CoinbaseFields<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<&'a str>,
    #[serde(borrow)]
    product_id: Option<&'a str>,
    sequence: Option<u64>,
    #[serde(borrow)]
    time: Option<&'a str>,
}

/// Keys of one line: the ordinal counters of timed updates are per line.
#[derive(Default)]
pub struct LineKeys {
    last_time: HashMap<String, (i64, u32)>,
}

impl LineKeys {
    /// The key of a Coinbase message received on this line.
    pub fn coinbase(&mut self, payload: &[u8]) -> MessageKey {
        let Ok(f) = serde_json::from_slice::<CoinbaseFields<'_>>(payload) else {
            return MessageKey::Unknown;
        };
        let product = f.product_id.map(str::to_string);
        match (f.kind, product) {
            (Some("subscriptions" | "heartbeat"), _) => MessageKey::Control,
            (Some("snapshot"), Some(product)) => MessageKey::Once {
                product,
                what: "snapshot",
            },
            // The connection's replay of the product's last trade: older than the ticker
            // before it, so not ordered by sequence with the live stream.
            (Some("last_match"), Some(product)) => MessageKey::Once {
                product,
                what: "last_match",
            },
            // A ticker carries the sequence of the match it follows: one stream each.
            (Some(kind @ ("ticker" | "match")), Some(product)) => match f.sequence {
                Some(seq) => MessageKey::Sequenced {
                    product: format!("{product}#{kind}"),
                    seq,
                },
                None => MessageKey::Unknown,
            },
            (Some("l2update"), Some(product)) => {
                let Some(time) = f.time.and_then(parse_rfc3339) else {
                    return MessageKey::Unknown;
                };
                let entry = self
                    .last_time
                    .entry(product.clone())
                    .or_insert((i64::MIN, 0));
                let ordinal = if entry.0 == time.get() {
                    entry.1 + 1
                } else {
                    0
                };
                *entry = (time.get(), ordinal);
                MessageKey::Timed {
                    product,
                    time: time.get(),
                    ordinal,
                }
            }
            _ => MessageKey::Unknown,
        }
    }
}

/// What the arbiter decided about one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// New: decode it.
    Pass,
    /// Already passed from the other line (or line-local): drop it.
    Duplicate,
    /// Newer than what was passed, from a line not yet seen to overlap the passed stream
    /// while the other line is: drop it, the other line delivers it.
    HeldBack,
    /// Newer than what was passed, from a line not seen to overlap, and no other line can
    /// deliver it: there may be a hole before it, so the book must be rebuilt.
    Orphan,
}

/// The arbiter's memory of what it passed, per product, and which line follows what.
///
/// A line *joins* a product once it is seen to overlap the passed stream (it delivers a
/// message already passed, or the product's first message or snapshot); only a joined line
/// may pass new messages of the product. A TCP line loses messages only by dying, so a
/// joined line's stream is complete. A line that reconnects starts unjoined: its first
/// messages may come from after a hole (it resumes at the exchange's current position while
/// the other line may lag), so they wait for the other line until the two overlap.
#[derive(Default)]
pub struct Arbiter {
    seq: HashMap<String, u64>,
    timed: HashMap<String, (i64, u32)>,
    once: HashMap<(String, &'static str), bool>,
    joined: [HashMap<String, bool>; 2],
    /// Messages passed, dropped as duplicates, held back.
    pub passed: u64,
    pub duplicates: u64,
    pub held_back: u64,
}

impl Arbiter {
    /// Line `line` went down: it must overlap again before it passes anything.
    pub fn line_down(&mut self, line: usize) {
        self.joined[line].clear();
    }

    /// Decides about a message with `key` from `line`; `other_up` says whether the other
    /// line is connected.
    pub fn admit(&mut self, line: usize, key: &MessageKey, other_up: bool) -> Verdict {
        let verdict = self.decide(line, key, other_up);
        match verdict {
            Verdict::Pass | Verdict::Orphan => self.passed += 1,
            Verdict::Duplicate => self.duplicates += 1,
            Verdict::HeldBack => self.held_back += 1,
        }
        verdict
    }

    fn decide(&mut self, line: usize, key: &MessageKey, other_up: bool) -> Verdict {
        let (product, newer) = match key {
            MessageKey::Control => return Verdict::Duplicate,
            MessageKey::Unknown => return Verdict::Pass,
            MessageKey::Once { product, what } => {
                let seen = self.once.entry((product.clone(), what)).or_default();
                if std::mem::replace(seen, true) {
                    return Verdict::Duplicate;
                }
                if *what == "snapshot" {
                    self.joined[line].insert(product.clone(), true);
                }
                return Verdict::Pass;
            }
            MessageKey::Sequenced { product, seq } => {
                let newer = self.seq.get(product).map(|last| *seq > *last);
                (product, newer)
            }
            MessageKey::Timed {
                product,
                time,
                ordinal,
            } => {
                let newer = self
                    .timed
                    .get(product)
                    .map(|last| (*time, *ordinal) > *last);
                (product, newer)
            }
        };
        let joined = self.joined[line].get(product).copied().unwrap_or(false);
        let other_joined = other_up && self.joined[1 - line].get(product).copied().unwrap_or(false);
        let verdict = match newer {
            Some(false) => {
                self.joined[line].insert(product.clone(), true);
                return Verdict::Duplicate;
            }
            // The product's first message of this kind: nothing to overlap yet.
            None if !other_joined => Verdict::Pass,
            None | Some(true) if joined => Verdict::Pass,
            _ if other_joined => return Verdict::HeldBack,
            _ => Verdict::Orphan,
        };
        self.joined[line].insert(product.clone(), true);
        match key {
            MessageKey::Sequenced { seq, .. } => {
                self.seq.insert(product.clone(), *seq);
            }
            MessageKey::Timed { time, ordinal, .. } => {
                self.timed.insert(product.clone(), (*time, *ordinal));
            }
            _ => {}
        }
        verdict
    }
}

impl MessageKey {
    /// The ordered stream this key belongs to (a product's book updates, tickers or
    /// matches), for sequenced and timed keys.
    pub fn stream(&self) -> Option<&str> {
        match self {
            MessageKey::Sequenced { product, .. } | MessageKey::Timed { product, .. } => {
                Some(product)
            }
            _ => None,
        }
    }
}

impl Arbiter {
    /// Whether a message with `key` has been passed already (its key is at or below what
    /// was passed on its stream).
    pub fn covers(&self, key: &MessageKey) -> bool {
        match key {
            MessageKey::Sequenced { product, seq } => {
                self.seq.get(product).is_some_and(|l| seq <= l)
            }
            MessageKey::Timed {
                product,
                time,
                ordinal,
            } => self
                .timed
                .get(product)
                .is_some_and(|l| (*time, *ordinal) <= *l),
            _ => false,
        }
    }
}

/// Most messages a line may hold back while it is ahead of the other; beyond, it forgets
/// them and must overlap again.
pub const HELD_BACK_LIMIT: usize = 1 << 16;

/// An [`Arbiter`] with the messages held back from a line that runs ahead of the other.
///
/// A line that is ahead on a stream it has not yet joined cannot pass its messages (there
/// may be a hole before them), but it must not lose them either: should the other line die
/// just then, they are the only copies. They wait here, in order. As soon as the other line
/// passes a message that this line also holds, the two overlap: the held copies up to there
/// are duplicates, and the rest are the continuation, passed at once (the faster line
/// leads from then on).
pub struct Arbitrated<P> {
    pub arbiter: Arbiter,
    held: [std::collections::VecDeque<(MessageKey, P)>; 2],
}

impl<P> Default for Arbitrated<P> {
    fn default() -> Self {
        Arbitrated {
            arbiter: Arbiter::default(),
            held: Default::default(),
        }
    }
}

impl<P> Arbitrated<P> {
    /// Line `line` went down.
    pub fn line_down(&mut self, line: usize) {
        self.arbiter.line_down(line);
        self.held[line].clear();
    }

    /// Offers a message from `line`; appends to `out` what is to be decoded now, in order.
    /// `Err` with the key when the line would continue a stream alone without overlapping
    /// it (see [`Verdict::Orphan`]).
    pub fn offer(
        &mut self,
        line: usize,
        key: MessageKey,
        payload: P,
        other_up: bool,
        out: &mut Vec<P>,
    ) -> Result<(), MessageKey> {
        match self.arbiter.admit(line, &key, other_up) {
            Verdict::Pass => {
                out.push(payload);
                self.release(1 - line, &key, out);
                Ok(())
            }
            Verdict::Duplicate => Ok(()),
            Verdict::HeldBack => {
                if self.held[line].len() >= HELD_BACK_LIMIT {
                    self.held[line].clear();
                }
                self.held[line].push_back((key, payload));
                Ok(())
            }
            Verdict::Orphan => Err(key),
        }
    }

    /// After a pass on `passed`'s stream: the messages `line` holds on that stream.
    fn release(&mut self, line: usize, passed: &MessageKey, out: &mut Vec<P>) {
        let Some(stream) = passed.stream() else {
            return;
        };
        if !self.held[line]
            .iter()
            .any(|(k, _)| k.stream() == Some(stream))
        {
            return;
        }
        let mut overlapped = false;
        let mut kept = std::collections::VecDeque::with_capacity(self.held[line].len());
        for (k, p) in std::mem::take(&mut self.held[line]) {
            if k.stream() != Some(stream) {
                kept.push_back((k, p));
            } else if self.arbiter.covers(&k) {
                overlapped = true;
            } else if overlapped {
                self.arbiter.joined[line].insert(stream.to_string(), true);
                if self.arbiter.admit(line, &k, true) == Verdict::Pass {
                    out.push(p);
                }
            } else {
                kept.push_back((k, p));
            }
        }
        self.held[line] = kept;
    }
}

/// Two lines of one venue as one feed. See the module documentation.
pub struct ArbitratedAdapter {
    config: LiveConfig,
    urls: [String; 2],
}

impl ArbitratedAdapter {
    /// Line A is `config.ws_url`, line B `url_b`.
    pub fn new(config: LiveConfig, url_b: String) -> Self {
        let urls = [config.ws_url.clone(), url_b];
        ArbitratedAdapter { config, urls }
    }
}

enum LineEvent {
    Up,
    Message(Vec<u8>, Nanos),
    Down(String),
}

const LINE_NAMES: [&str; 2] = ["A", "B"];

/// One line: connect, subscribe, forward every message; reconnect with a backoff.
async fn line(
    index: usize,
    url: String,
    subscriptions: Vec<String>,
    connect_timeout: Duration,
    tx: mpsc::Sender<(usize, LineEvent)>,
) {
    let mut failures = 0u32;
    loop {
        let session = async {
            let (mut ws, _) =
                tokio::time::timeout(connect_timeout, tokio_tungstenite::connect_async(&url))
                    .await
                    .map_err(|_| "connect timed out".to_string())?
                    .map_err(|e| e.to_string())?;
            for s in &subscriptions {
                ws.send(Message::Text(s.clone().into()))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            if tx.send((index, LineEvent::Up)).await.is_err() {
                return Ok(());
            }
            failures = 0;
            loop {
                let payload = match ws.next().await {
                    None => return Err("closed by upstream".to_string()),
                    Some(Err(e)) => return Err(e.to_string()),
                    Some(Ok(Message::Text(t))) => t.as_bytes().to_vec(),
                    Some(Ok(Message::Binary(b))) => b.to_vec(),
                    Some(Ok(Message::Close(c))) => return Err(format!("close frame {c:?}")),
                    Some(Ok(_)) => {
                        ws.flush().await.map_err(|e| e.to_string())?;
                        continue;
                    }
                };
                if tx
                    .send((index, LineEvent::Message(payload, Nanos::now())))
                    .await
                    .is_err()
                {
                    return Ok(());
                }
            }
        };
        let result: Result<(), String> = session.await;
        match result {
            Ok(()) => return,
            Err(e) => {
                if tx.send((index, LineEvent::Down(e))).await.is_err() {
                    return;
                }
            }
        }
        failures = failures.saturating_add(1);
        let backoff = Duration::from_millis((100u64 << failures.min(6)).min(5_000));
        tokio::time::sleep(backoff).await;
    }
}

impl ArbitratedAdapter {
    async fn session(&mut self, io: &mut FeedIo) -> Result<(), FeedError> {
        let cfg = &self.config;
        if cfg.venue != Venue::Coinbase {
            return Err(FeedError::Protocol(format!(
                "A/B arbitration does not support {}",
                cfg.venue.name()
            )));
        }
        let engine_ids: Vec<Option<SymbolId>> = cfg
            .instruments
            .iter()
            .map(|i| io.symbol(&i.symbol))
            .collect();
        let mut decoder = cfg.decoder();
        let (tx, mut rx) = mpsc::channel(8192);
        let subscriptions = cfg.subscriptions();
        let lines = futures_util::future::join(
            line(
                0,
                self.urls[0].clone(),
                subscriptions.clone(),
                cfg.connect_timeout,
                tx.clone(),
            ),
            line(
                1,
                self.urls[1].clone(),
                subscriptions,
                cfg.connect_timeout,
                tx,
            ),
        );
        tokio::pin!(lines);
        let mut keys = [LineKeys::default(), LineKeys::default()];
        let mut up = [false; 2];
        let mut tried = [false; 2];
        let mut won = [0u64; 2];
        let mut arbiter: Arbitrated<(Vec<u8>, Nanos)> = Arbitrated::default();
        let mut ready = Vec::new();
        let mut out = Vec::new();
        loop {
            let (index, event) = tokio::select! {
                ev = rx.recv() => match ev {
                    Some(ev) => ev,
                    None => return Err(FeedError::Disconnected("both lines ended".into())),
                },
                cmd = io.next_command() => {
                    let FeedCommand::Resync(symbol) = cmd?;
                    return Err(FeedError::Protocol(format!(
                        "resync of symbol {} requested: starting a fresh session", symbol.0
                    )));
                }
                _ = &mut lines => return Err(FeedError::Disconnected("lines ended".into())),
            };
            match event {
                LineEvent::Up => {
                    up[index] = true;
                    tried[index] = true;
                    tracing::info!(feed = %cfg.name, line = LINE_NAMES[index], url = %self.urls[index], "feed line up");
                }
                LineEvent::Down(reason) => {
                    tried[index] = true;
                    if up[index] {
                        tracing::warn!(feed = %cfg.name, line = LINE_NAMES[index], %reason, won = won[index], "feed line down; the other line carries on");
                    }
                    up[index] = false;
                    arbiter.line_down(index);
                    if !up[0] && !up[1] && tried[0] && tried[1] {
                        return Err(FeedError::Disconnected(format!(
                            "both lines down (last: line {}: {reason})",
                            LINE_NAMES[index]
                        )));
                    }
                }
                LineEvent::Message(payload, recv_ts) => {
                    let key = keys[index].coinbase(&payload);
                    ready.clear();
                    if let Err(key) =
                        arbiter.offer(index, key, (payload, recv_ts), up[1 - index], &mut ready)
                    {
                        tracing::warn!(feed = %cfg.name, line = LINE_NAMES[index], ?key, "line continues alone without overlap");
                        return Err(FeedError::Protocol(format!(
                            "line {} continues alone without overlapping the passed stream; rebuilding from snapshots",
                            LINE_NAMES[index]
                        )));
                    }
                    won[index] += ready.len() as u64;
                    for (mut payload, recv_ts) in ready.drain(..) {
                        out.clear();
                        if let Err(e) = decoder.decode(&mut payload, recv_ts, &mut out) {
                            tracing::warn!(feed = %cfg.name, error = %e, "undecodable message");
                        }
                        for d in out.drain(..) {
                            match d {
                                Decoded::Event(mut ev) => {
                                    let id = ev.meta().symbol;
                                    let Some(Some(engine_id)) = engine_ids.get(id.index()).copied()
                                    else {
                                        continue;
                                    };
                                    set_symbol(&mut ev, engine_id);
                                    io.emit(ev);
                                }
                                Decoded::Quote(_) => {}
                                Decoded::Resync { reason, .. } => {
                                    return Err(FeedError::Protocol(format!(
                                        "book resync: {reason}"
                                    )));
                                }
                            }
                        }
                    }
                }
            }
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

impl FeedAdapter for ArbitratedAdapter {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn instruments(&self) -> Vec<Instrument> {
        self.config.instruments.clone()
    }

    fn run<'a>(&'a mut self, io: &'a mut FeedIo) -> LocalBoxFuture<'a, Result<(), FeedError>> {
        Box::pin(self.session(io))
    }
}

#[cfg(test)]
mod tests;
