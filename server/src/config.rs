//! Server settings: listen address, feed choice and the per-session limits.
//!
//! Every field has a default that works for a local run; the command line (`main.rs`)
//! overrides them.

use std::net::SocketAddr;
use std::time::Duration;

use crate::protocol::RequestLimits;

/// Which upstream feeds the engine runs.
#[derive(Debug, Clone)]
pub enum FeedChoice {
    /// The deterministic synthetic market.
    Synthetic {
        symbols: usize,
        rate: f64,
        seed: u64,
    },
}

/// Limits and timers of client sessions.
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// Bytes a session may have waiting before it is closed as a slow consumer.
    pub max_queued_bytes: usize,
    /// How long a session may continuously have output waiting before it is closed as a
    /// slow consumer.
    pub max_lag: Duration,
    /// After closing a session, how long its close frame may take to leave before the TCP
    /// connection is cut.
    pub close_grace: Duration,
    /// Interval of server pings.
    pub ping_interval: Duration,
    /// A client silent (no frame, no pong) for this long is closed.
    pub client_timeout: Duration,
    /// Largest accepted client frame/message.
    pub max_message_bytes: usize,
    /// Most symbols one session may have subscribed.
    pub max_symbols_per_session: usize,
    /// Request validation limits.
    pub request: RequestLimits,
    /// Kernel send buffer of each client socket; small so that a stalled client shows up in
    /// the session's outbox (where it is conflated and bounded) instead of in megabytes of
    /// kernel memory.
    pub socket_send_buffer: usize,
    /// How often each worker checks its sessions for lag, heartbeat and close deadlines.
    pub sweep_interval: Duration,
    /// During a graceful shutdown, how long a session's queued output may take to leave
    /// before it is closed 1001 anyway.
    pub shutdown_flush: Duration,
}

impl Default for SessionLimits {
    fn default() -> Self {
        SessionLimits {
            max_queued_bytes: 4 << 20,
            max_lag: Duration::from_secs(5),
            close_grace: Duration::from_secs(10),
            ping_interval: Duration::from_secs(15),
            client_timeout: Duration::from_secs(45),
            max_message_bytes: 64 << 10,
            max_symbols_per_session: 2_000,
            request: RequestLimits::default(),
            socket_send_buffer: 64 << 10,
            sweep_interval: Duration::from_millis(100),
            shutdown_flush: Duration::from_millis(1000),
        }
    }
}

/// Everything `tickwire serve` needs.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub workers: usize,
    pub book_threads: usize,
    pub feed: FeedChoice,
    pub session: SessionLimits,
    /// Enables `POST /admin/fault/...` (drills and tests).
    pub fault_injection: bool,
    /// Delay before a failed feed's first restart.
    pub feed_backoff: Duration,
    /// On SIGTERM/SIGINT, the longest wait for sessions to close before exiting.
    pub drain_timeout: Duration,
    /// One market-data frame in this many (per session) is sampled for the latency
    /// histogram.
    pub latency_sample_every: u32,
    /// Log as JSON lines.
    pub log_json: bool,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            workers: 2,
            book_threads: 1,
            feed: FeedChoice::Synthetic {
                symbols: 100,
                rate: 1_000.0,
                seed: 1,
            },
            session: SessionLimits::default(),
            fault_injection: false,
            feed_backoff: Duration::from_millis(100),
            drain_timeout: Duration::from_secs(10),
            latency_sample_every: 64,
            log_json: false,
        }
    }
}
