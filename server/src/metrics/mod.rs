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

//!
//! * [`frames`]: what an outbound frame is (its channel, its `recv_ts`), read from its bytes.
//! * [`export`]: the scrape-time snapshot and its Prometheus and JSON encodings.
//! * [`security`]: refused upgrades, ticket requests, rate limiting, revocations.

mod export;
mod frames;
mod security;

pub use export::*;
pub use frames::*;
pub use security::*;

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

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
    /// Closed 1008 "rate limited": the client kept sending faster than its limit.
    RateLimit,
    /// Closed 4003 "access revoked": a reload removed the session's user.
    Auth,
    /// Closed 4002 "idle timeout": no subscription and no request for too long.
    Idle,
    /// Protocol errors, oversized messages, connections that dropped without a close.
    Error,
    /// Closed 4000: the client stopped answering pings.
    Heartbeat,
    /// Closed 1001 because the server is shutting down.
    Shutdown,
}

impl DisconnectReason {
    pub const ALL: [DisconnectReason; 8] = [
        DisconnectReason::ClientClose,
        DisconnectReason::SlowConsumer,
        DisconnectReason::RateLimit,
        DisconnectReason::Auth,
        DisconnectReason::Idle,
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
            DisconnectReason::Idle => "idle",
            DisconnectReason::Error => "error",
            DisconnectReason::Heartbeat => "heartbeat",
            DisconnectReason::Shutdown => "shutdown",
        }
    }
}

/// Why a TLS connection failed before its first request (the `reason` label of
/// `tickwire_tls_handshake_failures_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The client spoke plain text (HTTP, ws://) to the TLS port.
    Plaintext,
    /// The handshake failed (protocol error, no common version or ALPN, closed early).
    Handshake,
    /// No handshake within the request timeout.
    Timeout,
}

impl TlsFailure {
    pub const ALL: [TlsFailure; 3] = [
        TlsFailure::Plaintext,
        TlsFailure::Handshake,
        TlsFailure::Timeout,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            TlsFailure::Plaintext => "plaintext",
            TlsFailure::Handshake => "handshake",
            TlsFailure::Timeout => "timeout",
        }
    }
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
    pub disconnects: [Counter; DisconnectReason::ALL.len()],
    /// Active (session, symbol, channel) subscriptions, indexed by `Channel as usize`.
    pub subscriptions: [Gauge; 3],
    /// Frames out, indexed by `OutClass as usize`.
    pub frames_out: [Counter; OUT_CLASSES],
    pub bytes_out: [Counter; OUT_CLASSES],
    pub conflated: Counter,
    pub throttled: Counter,
    /// Worker-queue overflows that made a router re-offer the last values.
    pub router_resyncs: Counter,
    /// Session visits by the workers' sweeps: of flagged sessions (every
    /// `sweep_interval`) and by the slower pass over every session.
    pub sweep_visits_flagged: Counter,
    pub sweep_visits_all: Counter,
    pub latency: AtomicHistogram,
    /// One market-data frame in this many (per session) is sampled for latency.
    pub latency_sample_every: u32,
    /// Set when a graceful shutdown starts.
    pub draining: AtomicBool,
    /// Checksum failures of venue books (no adapter checks checksums yet: always 0).
    pub checksum_failures: Counter,
    /// Replays running (per-client WebSocket replays and `GET /replay` streams).
    pub replay_sessions: Gauge,
    /// Compression windows shared by clients of identical streams, now.
    pub shared_streams: Gauge,
    /// Sessions following a shared compression window, now.
    pub shared_stream_members: Gauge,
    /// Sessions that fell behind and left their shared window for independent frames.
    pub shared_stream_demotions: Counter,
    /// Messages compressed in a shared window (once per window, whatever its size).
    pub shared_stream_frames: Counter,
    /// Failed TLS connections, indexed by `TlsFailure as usize`.
    pub tls_failures: [Counter; 3],
    /// Replays started since the process started.
    pub replays_started: Counter,
    /// Replays refused by the per-user or total limit.
    pub replays_refused: Counter,
    pub security: SecurityCounters,
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
            sweep_visits_flagged: Counter::default(),
            sweep_visits_all: Counter::default(),
            latency: AtomicHistogram::default(),
            latency_sample_every: latency_sample_every.max(1),
            draining: AtomicBool::new(false),
            checksum_failures: Counter::default(),
            replay_sessions: Gauge::default(),
            shared_streams: Gauge::default(),
            shared_stream_members: Gauge::default(),
            shared_stream_demotions: Counter::default(),
            shared_stream_frames: Counter::default(),
            tls_failures: Default::default(),
            replays_started: Counter::default(),
            replays_refused: Counter::default(),
            security: SecurityCounters::default(),
        }
    }

    pub fn tls_failure(&self, why: TlsFailure) {
        self.tls_failures[why as usize].inc();
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
            "shared_streams": self.shared_streams.get(),
            "shared_stream_members": self.shared_stream_members.get(),
            "shared_stream_demotions": self.shared_stream_demotions.get(),
            "shared_stream_frames": self.shared_stream_frames.get(),
            "sweep_visits_flagged": self.sweep_visits_flagged.get(),
            "sweep_visits_all": self.sweep_visits_all.get(),
        });
        for r in DisconnectReason::ALL {
            v[format!("disconnects_{}", r.as_str())] = self.disconnects[r as usize].get().into();
        }
        for f in TlsFailure::ALL {
            v[format!("tls_failures_{}", f.as_str())] = self.tls_failures[f as usize].get().into();
        }
        for r in UpgradeRefusal::ALL {
            v[format!("upgrades_refused_{}", r.as_str())] =
                self.security.upgrades_refused[r as usize].get().into();
        }
        for o in TicketOutcome::ALL {
            v[format!("ticket_requests_{}", o.as_str())] =
                self.security.ticket_requests[o as usize].get().into();
        }
        v["rate_limited_messages"] = self.security.rate_limited_messages.get().into();
        v["revoked_streams"] = self.security.revoked_streams.get().into();
        v["admin_refused"] = self.security.admin_refused.get().into();
        v
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
