//! Process-wide counters of the server (exported over HTTP by `GET /stats`).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
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
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// The server's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    pub sessions_active: Gauge,
    pub sessions_opened: Counter,
    pub slow_consumer_closes: Counter,
    pub heartbeat_closes: Counter,
    pub protocol_closes: Counter,
    pub request_errors: Counter,
}

impl Metrics {
    /// A JSON object of every counter, for `GET /stats`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "sessions_active": self.sessions_active.get(),
            "sessions_opened": self.sessions_opened.get(),
            "slow_consumer_closes": self.slow_consumer_closes.get(),
            "heartbeat_closes": self.heartbeat_closes.get(),
            "protocol_closes": self.protocol_closes.get(),
            "request_errors": self.request_errors.get(),
        })
    }
}
