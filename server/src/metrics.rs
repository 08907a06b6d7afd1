//! Process-wide counters of the server, and their export as Prometheus text (`GET /metrics`)
//! and as JSON (`GET /stats`).
//!
//! This module owns every number the server reports about itself. The hot paths never take
//! a lock or allocate to count:
//!
//! * Per-message counts (frames and bytes out by channel, conflated and throttled updates)
//!   are plain `Cell`s in each session's [`SessionShared`](crate::transport::SessionShared),
//!   bumped by the transport on the worker thread that owns the session. The worker's sweep
//!   (every `sweep_interval`, 100 ms by default) moves the deltas into the global atomics
//!   here, so a scrape is at most one sweep behind.
//! * Per-session events (connect, disconnect, subscription changes) touch one relaxed atomic.
//! * The latency histogram is sampled: one data frame in `latency_sample_every` (per
//!   session) has its `recv_ts` read back from the encoded frame and one bucket incremented.
//!
//! At scrape time [`Snapshot`] reads everything (including engine counters and the feed
//! state of every symbol) and is encoded by the `prometheus-client` crate's Prometheus text
//! encoder, so the exposition format is the library's, not ours.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: u64) {
        if n != 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn dec(&self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: i64) {
        if n != 0 {
            self.0.fetch_add(n, Ordering::Relaxed);
        }
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// Why a session ended (the `reason` label of `tickwire_disconnects_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisconnectReason {
    /// The client sent a close frame.
    ClientClose,
    /// Closed 1008: the client could not keep up.
    SlowConsumer,
    /// Closed for exceeding a request rate limit (no rate limit exists yet: always 0).
    RateLimit,
    /// Closed for failing authentication (no authentication yet: always 0).
    Auth,
    /// Protocol errors, oversized messages, connections that dropped without a close.
    Error,
    /// Closed 4000: the client stopped answering pings.
    Heartbeat,
    /// Closed 1001 because the server is shutting down.
    Shutdown,
}

impl DisconnectReason {
    pub const ALL: [DisconnectReason; 7] = [
        DisconnectReason::ClientClose,
        DisconnectReason::SlowConsumer,
        DisconnectReason::RateLimit,
        DisconnectReason::Auth,
        DisconnectReason::Error,
        DisconnectReason::Heartbeat,
        DisconnectReason::Shutdown,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::ClientClose => "client_close",
            DisconnectReason::SlowConsumer => "slow_consumer",
            DisconnectReason::RateLimit => "rate_limit",
            DisconnectReason::Auth => "auth",
            DisconnectReason::Error => "error",
            DisconnectReason::Heartbeat => "heartbeat",
            DisconnectReason::Shutdown => "shutdown",
        }
    }
}

/// What an outbound frame carries (the `channel` label of the per-channel output counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum OutClass {
    Quote = 0,
    Trade = 1,
    Book = 2,
    /// Feed status (live/stale) messages.
    Status = 3,
    /// Replies to requests: acks, errors, pongs.
    Reply = 4,
    /// WebSocket control frames: ping, pong, close.
    Control = 5,
    /// Compressed (permessage-deflate) or MessagePack frames: their channel is not sniffed
    /// from the bytes, so they are counted here rather than guessed.
    Encoded = 6,
}

/// Number of [`OutClass`] values.
pub const OUT_CLASSES: usize = 7;

impl OutClass {
    pub const ALL: [OutClass; OUT_CLASSES] = [
        OutClass::Quote,
        OutClass::Trade,
        OutClass::Book,
        OutClass::Status,
        OutClass::Reply,
        OutClass::Control,
        OutClass::Encoded,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            OutClass::Quote => "quote",
            OutClass::Trade => "trade",
            OutClass::Book => "book",
            OutClass::Status => "status",
            OutClass::Reply => "reply",
            OutClass::Control => "control",
            OutClass::Encoded => "encoded",
        }
    }

    /// Classifies an encoded server frame by its opcode and the start of its JSON payload
    /// (`{"type":"quote",...`): a few byte comparisons, no parsing.
    #[inline]
    pub fn of_frame(frame: &[u8]) -> OutClass {
        let Some(&b0) = frame.first() else {
            return OutClass::Control;
        };
        if b0 & 0x08 != 0 {
            return OutClass::Control;
        }
        if b0 & 0x40 != 0 || b0 & 0x0f == 0x2 {
            return OutClass::Encoded;
        }
        let payload = payload_of(frame);
        let Some(rest) = payload.strip_prefix(b"{\"type\":\"") else {
            return OutClass::Reply;
        };
        match rest.first() {
            Some(b'q') if rest.starts_with(b"quote\"") => OutClass::Quote,
            Some(b't') if rest.starts_with(b"trade\"") => OutClass::Trade,
            Some(b'b') if rest.starts_with(b"book\"") => OutClass::Book,
            Some(b's') if rest.starts_with(b"status\"") => OutClass::Status,
            _ => OutClass::Reply,
        }
    }

    /// Whether frames of this class carry a `recv_ts` worth sampling for latency.
    pub const fn is_market_data(self) -> bool {
        matches!(self, OutClass::Quote | OutClass::Trade | OutClass::Book)
    }
}

/// The payload of an unmasked server frame.
fn payload_of(frame: &[u8]) -> &[u8] {
    let Some(&b1) = frame.get(1) else {
        return &[];
    };
    let start = match b1 & 0x7f {
        126 => 4,
        127 => 10,
        _ => 2,
    };
    frame.get(start..).unwrap_or(&[])
}

/// Reads `"recv_ts":N` from the start of an encoded market-data frame (it is in the fixed
/// header every tick starts with, within the first ~100 bytes).
pub fn recv_ts_of_frame(frame: &[u8]) -> Option<i64> {
    const KEY: &[u8] = b"\"recv_ts\":";
    let payload = payload_of(frame);
    let head = &payload[..payload.len().min(160)];
    let at = head.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let mut v: i64 = 0;
    let mut any = false;
    for &b in &head[at..] {
        if !b.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add((b - b'0') as i64)?;
        any = true;
    }
    any.then_some(v)
}

/// Upper bounds (seconds) of the internal-latency histogram buckets.
pub const LATENCY_BUCKETS: [f64; 14] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0,
];

/// A lock-free histogram: one atomic per bucket (non-cumulative), plus sum and count.
#[derive(Debug, Default)]
pub struct AtomicHistogram {
    buckets: [AtomicU64; LATENCY_BUCKETS.len() + 1],
    sum_ns: AtomicU64,
    count: AtomicU64,
}

impl AtomicHistogram {
    /// Records one observation in nanoseconds.
    pub fn observe_ns(&self, ns: u64) {
        let secs = ns as f64 / 1e9;
        let i = LATENCY_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    /// Sum (seconds), count and per-bucket (not cumulative) counts, as
    /// `prometheus-client`'s encoder wants them (it accumulates). The count is the sum of
    /// the buckets read, so the exposition is consistent even while observations land.
    pub fn read(&self) -> (f64, u64, Vec<(f64, u64)>) {
        let mut total = 0;
        let mut out = Vec::with_capacity(LATENCY_BUCKETS.len() + 1);
        for (i, b) in self.buckets.iter().enumerate() {
            let n = b.load(Ordering::Relaxed);
            total += n;
            let le = LATENCY_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
            out.push((le, n));
        }
        let sum = self.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        (sum, total, out)
    }
}

/// The server's counters.
#[derive(Debug)]
pub struct Metrics {
    pub sessions_active: Gauge,
    pub sessions_opened: Counter,
    pub slow_consumer_closes: Counter,
    pub heartbeat_closes: Counter,
    pub protocol_closes: Counter,
    pub request_errors: Counter,
    /// Indexed by `DisconnectReason as usize`.
    pub disconnects: [Counter; 7],
    /// Active (session, symbol, channel) subscriptions, indexed by `Channel as usize`.
    pub subscriptions: [Gauge; 3],
    /// Frames out, indexed by `OutClass as usize`.
    pub frames_out: [Counter; OUT_CLASSES],
    pub bytes_out: [Counter; OUT_CLASSES],
    pub conflated: Counter,
    pub throttled: Counter,
    /// Worker-queue overflows that made a router re-offer the last values.
    pub router_resyncs: Counter,
    pub latency: AtomicHistogram,
    /// One market-data frame in this many (per session) is sampled for latency.
    pub latency_sample_every: u32,
    /// Set when a graceful shutdown starts.
    pub draining: AtomicBool,
    /// Checksum failures of venue books (no adapter checks checksums yet: always 0).
    pub checksum_failures: Counter,
    /// Replay sessions running (replay does not exist yet: always 0).
    pub replay_sessions: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new(64)
    }
}

impl Metrics {
    pub fn new(latency_sample_every: u32) -> Self {
        Metrics {
            sessions_active: Gauge::default(),
            sessions_opened: Counter::default(),
            slow_consumer_closes: Counter::default(),
            heartbeat_closes: Counter::default(),
            protocol_closes: Counter::default(),
            request_errors: Counter::default(),
            disconnects: Default::default(),
            subscriptions: Default::default(),
            frames_out: Default::default(),
            bytes_out: Default::default(),
            conflated: Counter::default(),
            throttled: Counter::default(),
            router_resyncs: Counter::default(),
            latency: AtomicHistogram::default(),
            latency_sample_every: latency_sample_every.max(1),
            draining: AtomicBool::new(false),
            checksum_failures: Counter::default(),
            replay_sessions: Gauge::default(),
        }
    }

    pub fn disconnect(&self, reason: DisconnectReason) {
        self.disconnects[reason as usize].inc();
    }

    /// A JSON object of every counter, for `GET /stats`.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "sessions_active": self.sessions_active.get(),
            "sessions_opened": self.sessions_opened.get(),
            "slow_consumer_closes": self.slow_consumer_closes.get(),
            "heartbeat_closes": self.heartbeat_closes.get(),
            "protocol_closes": self.protocol_closes.get(),
            "request_errors": self.request_errors.get(),
            "conflated": self.conflated.get(),
            "throttled": self.throttled.get(),
        });
        for r in DisconnectReason::ALL {
            v[format!("disconnects_{}", r.as_str())] = self.disconnects[r as usize].get().into();
        }
        v
    }
}

/// Feed state of one feed at scrape time.
#[derive(Debug, Clone)]
pub struct FeedSnapshot {
    pub name: String,
    pub events: u64,
    pub symbols: usize,
    pub live: usize,
    pub stale: usize,
    /// Symbols whose book never published a status (no snapshot yet).
    pub pending: usize,
}

/// Process figures read from `/proc/self` (Linux); `None` elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessSnapshot {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: u64,
    pub open_fds: u64,
}

impl ProcessSnapshot {
    /// Reads the current process's figures. CPU time is in clock ticks of `USER_HZ`, which
    /// is 100 on every Linux architecture the server is built for.
    pub fn read() -> Option<ProcessSnapshot> {
        const USER_HZ: f64 = 100.0;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name (which may contain spaces).
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): utime is field 14, stime 15, threads 20, vsize 23.
        let num = |i: usize| f.get(i - 3).and_then(|s| s.parse::<u64>().ok());
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())?;
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        Some(ProcessSnapshot {
            cpu_seconds: (num(14)? + num(15)?) as f64 / USER_HZ,
            resident_bytes: rss_kib * 1024,
            virtual_bytes: num(23)?,
            threads: num(20)?,
            open_fds,
        })
    }
}

/// Everything a scrape reports, read once and then encoded.
#[derive(Debug)]
pub struct Snapshot {
    pub sessions_active: i64,
    pub connects: u64,
    pub disconnects: Vec<(&'static str, u64)>,
    pub subscriptions: Vec<(&'static str, i64)>,
    pub frames_out: Vec<(&'static str, u64)>,
    pub bytes_out: Vec<(&'static str, u64)>,
    pub conflated: u64,
    pub throttled: u64,
    pub request_errors: u64,
    pub feeds: Vec<FeedSnapshot>,
    pub router_resyncs: u64,
    pub worker_queue_overflows: u64,
    pub book_restarts: u64,
    pub book_events_dropped: u64,
    pub checksum_failures: u64,
    pub books: u64,
    pub ticks_published: u64,
    pub replay_sessions: i64,
    pub latency: (f64, u64, Vec<(f64, u64)>),
    pub draining: bool,
    pub process: Option<ProcessSnapshot>,
}

impl Snapshot {
    /// The server's own counters; the caller fills in the engine's.
    pub fn of(m: &Metrics) -> Snapshot {
        Snapshot {
            sessions_active: m.sessions_active.get(),
            connects: m.sessions_opened.get(),
            disconnects: DisconnectReason::ALL
                .iter()
                .map(|r| (r.as_str(), m.disconnects[*r as usize].get()))
                .collect(),
            subscriptions: tickwire_engine::tick::Channel::ALL
                .iter()
                .map(|c| (c.as_str(), m.subscriptions[*c as usize].get()))
                .collect(),
            frames_out: OutClass::ALL
                .iter()
                .map(|c| (c.as_str(), m.frames_out[*c as usize].get()))
                .collect(),
            bytes_out: OutClass::ALL
                .iter()
                .map(|c| (c.as_str(), m.bytes_out[*c as usize].get()))
                .collect(),
            conflated: m.conflated.get(),
            throttled: m.throttled.get(),
            request_errors: m.request_errors.get(),
            feeds: Vec::new(),
            router_resyncs: m.router_resyncs.get(),
            worker_queue_overflows: 0,
            book_restarts: 0,
            book_events_dropped: 0,
            checksum_failures: m.checksum_failures.get(),
            books: 0,
            ticks_published: 0,
            replay_sessions: m.replay_sessions.get(),
            latency: m.latency.read(),
            draining: m.draining.load(Ordering::Relaxed),
            process: ProcessSnapshot::read(),
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of this snapshot.
    pub fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Content type of [`Snapshot::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge<V>(e: &mut DescriptorEncoder, name: &str, help: &str, v: V) -> std::fmt::Result
where
    V: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug + Send + Sync,
{
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn labelled_counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(impl AsRef<str>, u64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (l, v) in values {
        let labels = [(label, l.as_ref())];
        let c = ConstCounter::new(*v);
        c.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn labelled_gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(impl AsRef<str>, i64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (l, v) in values {
        let labels = [(label, l.as_ref())];
        let g = ConstGauge::new(*v);
        g.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut e;
        gauge(
            e,
            "tickwire_sessions_active",
            "WebSocket sessions open now (one per connection).",
            self.sessions_active,
        )?;
        counter(
            e,
            "tickwire_connects",
            "WebSocket connections accepted.",
            self.connects,
        )?;
        labelled_counter(
            e,
            "tickwire_disconnects",
            "Sessions ended, by reason.",
            "reason",
            &self.disconnects,
        )?;
        labelled_gauge(
            e,
            "tickwire_subscriptions",
            "Active (session, symbol, channel) subscriptions, by channel.",
            "channel",
            &self.subscriptions,
        )?;
        labelled_counter(
            e,
            "tickwire_messages_out",
            "Frames handed to client sockets, by channel (reply: acks/errors/pongs; control: ping/pong/close).",
            "channel",
            &self.frames_out,
        )?;
        labelled_counter(
            e,
            "tickwire_bytes_out",
            "Bytes (WebSocket frames) handed to client sockets, by channel.",
            "channel",
            &self.bytes_out,
        )?;
        counter(
            e,
            "tickwire_conflated_updates",
            "Quote/book updates replaced by a newer one before they were sent (client behind).",
            self.conflated,
        )?;
        counter(
            e,
            "tickwire_throttled_updates",
            "Quote/book updates replaced while waiting for the client's throttle interval.",
            self.throttled,
        )?;
        counter(
            e,
            "tickwire_request_errors",
            "Client requests refused with an error reply.",
            self.request_errors,
        )?;
        let feed_events: Vec<(&str, u64)> = self
            .feeds
            .iter()
            .map(|f| (f.name.as_str(), f.events))
            .collect();
        labelled_counter(
            e,
            "tickwire_feed_messages_in",
            "Normalized events received from each feed adapter.",
            "feed",
            &feed_events,
        )?;
        let feed_live: Vec<(&str, i64)> = self
            .feeds
            .iter()
            .map(|f| (f.name.as_str(), (f.live == f.symbols) as i64))
            .collect();
        labelled_gauge(
            e,
            "tickwire_feed_live",
            "1 when every symbol of the feed is live (book synced), else 0.",
            "feed",
            &feed_live,
        )?;
        {
            let mut m = e.encode_descriptor(
                "tickwire_feed_symbols",
                "Symbols of each feed by state (pending: no snapshot yet).",
                None,
                MetricType::Gauge,
            )?;
            for f in &self.feeds {
                for (state, n) in [("live", f.live), ("stale", f.stale), ("pending", f.pending)] {
                    let labels = [("feed", f.name.as_str()), ("state", state)];
                    ConstGauge::new(n as i64).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        labelled_counter(
            e,
            "tickwire_resyncs",
            "Resynchronizations: worker_queue (a server worker's tick queue overflowed and its sessions were re-offered the last values), book_restart (a book actor restarted and asked for a snapshot).",
            "kind",
            &[
                ("worker_queue", self.router_resyncs),
                ("book_restart", self.book_restarts),
            ],
        )?;
        counter(
            e,
            "tickwire_worker_queue_overflows",
            "Ticks lost to a full server-worker queue (followed by a resync).",
            self.worker_queue_overflows,
        )?;
        counter(
            e,
            "tickwire_book_events_dropped",
            "Feed events dropped by books waiting for a snapshot.",
            self.book_events_dropped,
        )?;
        counter(
            e,
            "tickwire_checksum_failures",
            "Venue book checksum mismatches (no adapter verifies checksums yet).",
            self.checksum_failures,
        )?;
        gauge(
            e,
            "tickwire_books",
            "Order books (one per symbol).",
            self.books as i64,
        )?;
        counter(
            e,
            "tickwire_ticks_published",
            "Ticks published by book actors to the fan-out hub.",
            self.ticks_published,
        )?;
        gauge(
            e,
            "tickwire_replay_sessions",
            "Replay sessions running (replay does not exist yet).",
            self.replay_sessions,
        )?;
        gauge(
            e,
            "tickwire_draining",
            "1 while a graceful shutdown is in progress.",
            self.draining as i64,
        )?;
        {
            let (sum, count, buckets) = &self.latency;
            let m = e.encode_descriptor(
                "tickwire_internal_latency_seconds",
                "Time from a tick's recv_ts to its frame being handed to the client socket (sampled).",
                None,
                MetricType::Histogram,
            )?;
            let mut m = m;
            m.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
        }
        if let Some(p) = self.process {
            let c = ConstCounter::new(p.cpu_seconds);
            c.encode(e.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time of the process.",
                None,
                c.metric_type(),
            )?)?;
            gauge(
                e,
                "process_resident_memory_bytes",
                "Resident memory of the process.",
                p.resident_bytes as i64,
            )?;
            gauge(
                e,
                "process_virtual_memory_bytes",
                "Virtual memory of the process.",
                p.virtual_bytes as i64,
            )?;
            gauge(e, "process_threads", "OS threads.", p.threads as i64)?;
            gauge(
                e,
                "process_open_fds",
                "Open file descriptors.",
                p.open_fds as i64,
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tickwire_engine::wire::{frame, Opcode};

    #[test]
    fn classifies_frames_by_type() {
        let f = |s: &str| frame(Opcode::Text, s.as_bytes());
        assert_eq!(
            OutClass::of_frame(&f(r#"{"type":"quote","recv_ts":5}"#)),
            OutClass::Quote
        );
        assert_eq!(
            OutClass::of_frame(&f(r#"{"type":"trade"}"#)),
            OutClass::Trade
        );
        assert_eq!(OutClass::of_frame(&f(r#"{"type":"book"}"#)), OutClass::Book);
        assert_eq!(
            OutClass::of_frame(&f(r#"{"type":"status"}"#)),
            OutClass::Status
        );
        assert_eq!(
            OutClass::of_frame(&f(r#"{"type":"subscribed"}"#)),
            OutClass::Reply
        );
        assert_eq!(
            OutClass::of_frame(&frame(Opcode::Ping, b"")),
            OutClass::Control
        );
        let long = format!(
            r#"{{"type":"book","recv_ts":77,"pad":"{}"}}"#,
            "x".repeat(300)
        );
        assert_eq!(OutClass::of_frame(&f(&long)), OutClass::Book);
        assert_eq!(recv_ts_of_frame(&f(&long)), Some(77));
        assert_eq!(recv_ts_of_frame(&f(r#"{"type":"book"}"#)), None);
    }

    #[test]
    fn histogram_buckets_hold_their_own_counts() {
        let h = AtomicHistogram::default();
        h.observe_ns(10_000); // 10 µs: first bucket
        h.observe_ns(3_000_000); // 3 ms: 5 ms bucket
        h.observe_ns(5_000_000_000); // 5 s: +Inf
        let (sum, count, b) = h.read();
        assert_eq!(count, 3);
        assert!((sum - 5.00301).abs() < 1e-9);
        assert_eq!(b[0], (0.000_05, 1));
        assert_eq!(b[6], (0.005, 1));
        assert_eq!(b.last().unwrap(), &(f64::INFINITY, 1));
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 3);
        // Encoded, the buckets are cumulative and +Inf equals the count.
        let mut snap = Snapshot::of(&Metrics::default());
        snap.latency = h.read();
        let text = snap.encode();
        assert!(text.contains("tickwire_internal_latency_seconds_bucket{le=\"0.005\"} 2\n"));
        assert!(text.contains("tickwire_internal_latency_seconds_bucket{le=\"+Inf\"} 3\n"));
        assert!(text.contains("tickwire_internal_latency_seconds_count 3\n"));
    }
}
