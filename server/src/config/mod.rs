//! Server settings: listen address, feed choice, the per-session limits, shutdown and
//! metrics settings, and where they come from.
//!
//! [`ServerConfig`] is what the server runs with; every field has a default that works for
//! a local run. [`FileConfig`] (in `file.rs`) is the same settings as the TOML file lays them
//! out: it is loaded from the file, overridden by `TICKWIRE_*` environment variables
//! ([`FileConfig::load`]) and then by command-line flags (`main.rs`), and validated, with
//! every error naming its key ([`ConfigError`]).

mod file;
mod validate;

pub use file::*;

use std::net::SocketAddr;
use std::time::Duration;

use tickwire_engine::fanout::StreamConfig;

use crate::protocol::RequestLimits;
use crate::security::SecurityConfig;

/// Which upstream feeds the engine runs.
#[derive(Debug, Clone)]
pub enum FeedChoice {
    /// The deterministic synthetic market.
    Synthetic {
        symbols: usize,
        rate: f64,
        seed: u64,
    },
    /// Recorded market days served as the feed (`tickwire serve --replay`): several files
    /// merge in time order. No file: the bundled day embedded in the binary.
    Replay(ReplayFeed),
    /// A venue's live WebSocket feed (or the exchange simulator playing a recording).
    Live {
        /// `coinbase`, `binance`, `kraken` or `okx`.
        venue: String,
        ws_url: String,
        /// Binance: base URL of the REST depth snapshots.
        rest_url: Option<String>,
        /// A second line of the same venue (A/B feeds), arbitrated by sequence number.
        ws_url_b: Option<String>,
        /// Venue symbols to subscribe to (`BTC-USD`, `XMR/USD`, `NKNUSDT`, ...).
        instruments: Vec<String>,
        price_scale: u8,
        size_scale: u8,
    },
}

/// What `FeedChoice::Replay` plays.
#[derive(Debug, Clone)]
pub struct ReplayFeed {
    /// Recordings; empty for the bundled day.
    pub files: Vec<std::path::PathBuf>,
    pub speed: tickwire_feeds::replay::Speed,
    /// ns since the epoch.
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub looping: bool,
}

/// Replays clients ask for (per-client WebSocket replays and `GET /replay`).
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    /// Where datasets (recordings) are found; the bundled day is always one.
    pub datasets_dir: Option<std::path::PathBuf>,
    /// Concurrent replays of one user.
    pub max_per_user: usize,
    /// Concurrent replays of the whole server.
    pub max_total: usize,
    /// Threads the replays' feed handlers and book actors share.
    pub threads: usize,
}

impl Default for ReplaySettings {
    fn default() -> Self {
        ReplaySettings {
            datasets_dir: Some("replay-data".into()),
            max_per_user: 4,
            max_total: 64,
            threads: 2,
        }
    }
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
    /// How often each worker visits its busy sessions (lag, close deadlines, counters); every
    /// session is visited for heartbeats once per `crate::worker::idle_period`.
    pub sweep_interval: Duration,
    /// Accept permessage-deflate (RFC 7692) when a client offers it.
    pub permessage_deflate: bool,
    /// For clients of `tickwire.json.batch`: how long the first pending update may wait for
    /// others to share its frame (the latency bound of batching; 0 batches only what is
    /// already pending).
    pub batch_window: Duration,
    /// During a graceful shutdown, how long a session's queued output may take to leave
    /// before it is closed 1001 anyway.
    pub shutdown_flush: Duration,
    /// Compression windows shared by the clients of identical streams (see
    /// `tickwire_engine::fanout::streams`); `max_groups == 0` compresses every message on
    /// its own.
    pub shared_streams: StreamConfig,
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
            permessage_deflate: true,
            batch_window: Duration::ZERO,
            shutdown_flush: Duration::from_millis(1000),
            shared_streams: StreamConfig::default(),
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
    /// Serve HTTPS and WSS with this certificate and key (PEM); plain HTTP and WS when
    /// `None`.
    pub tls: Option<crate::net::tls::TlsFiles>,
    /// Per-client and HTTP replays.
    pub replay: ReplaySettings,
    /// Authentication, entitlements, origins and abuse limits (`security/`).
    pub security: SecurityConfig,
    /// NATS and the engine/gateway roles (unused by `serve`).
    pub cluster: crate::cluster::ClusterSettings,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: "127.0.0.1:8080".parse().expect("valid default address"),
            workers: 2,
            book_threads: 1,
            feed: FeedChoice::Replay(ReplayFeed {
                files: Vec::new(),
                speed: tickwire_feeds::replay::Speed::Factor(1.0),
                from: None,
                to: None,
                looping: true,
            }),
            session: SessionLimits::default(),
            fault_injection: false,
            feed_backoff: Duration::from_millis(100),
            drain_timeout: Duration::from_secs(10),
            latency_sample_every: 64,
            log_json: false,
            tls: None,
            replay: ReplaySettings::default(),
            security: SecurityConfig::default(),
            cluster: crate::cluster::ClusterSettings::default(),
        }
    }
}
