//! `tickwire`: the command-line entry point.
//!
//! `tickwire` alone serves the default market on 127.0.0.1:8080; `tickwire serve --help`
//! lists every setting.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use tickwire_engine::actors::Backoff;
use tickwire_engine::{Engine, EngineConfig};
use tickwire_feeds::{SyntheticAdapter, SyntheticConfig};
use tickwire_server::app;
use tickwire_server::config::{FeedChoice, ServerConfig};

#[derive(Parser)]
#[command(
    name = "tickwire",
    version,
    about = "Actor-based market-data feed engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Log as JSON lines instead of human-readable text.
    #[arg(long, global = true)]
    log_json: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve(ServeArgs),
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Upstream feed.
    #[arg(long, default_value = "synthetic", value_parser = ["synthetic"])]
    feed: String,
    /// Synthetic feed: number of symbols (SYM0000, SYM0001, ...).
    #[arg(long, default_value_t = 100)]
    symbols: usize,
    /// Synthetic feed: top-of-book changes per second, summed over all symbols.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// Synthetic feed: seed of the event sequence.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// HTTP/WebSocket worker threads.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Threads the book actors are sharded over.
    #[arg(long, default_value_t = 1)]
    book_threads: usize,
    /// Bytes a client may have waiting before it is closed as a slow consumer.
    #[arg(long, default_value_t = 4 << 20)]
    max_queued_bytes: usize,
    /// Milliseconds a client may stay behind before it is closed as a slow consumer.
    #[arg(long, default_value_t = 5000)]
    slow_consumer_lag_ms: u64,
    /// Milliseconds a close frame may take before the connection is cut.
    #[arg(long, default_value_t = 10000)]
    close_grace_ms: u64,
    /// Milliseconds between server pings.
    #[arg(long, default_value_t = 15000)]
    ping_interval_ms: u64,
    /// Milliseconds of client silence before it is closed.
    #[arg(long, default_value_t = 45000)]
    client_timeout_ms: u64,
    /// Largest client message in bytes (larger: close 1009).
    #[arg(long, default_value_t = 64 << 10)]
    max_message_bytes: usize,
    /// Milliseconds before a failed feed's first restart (doubling up to 10 s).
    #[arg(long, default_value_t = 100)]
    feed_backoff_ms: u64,
    /// Batching clients (subprotocol tickwire.json.batch): microseconds the first pending
    /// update may wait for others to share its frame (0: batch only what is pending).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    batch_window_us: u64,
    /// Refuse permessage-deflate even when clients offer it.
    #[arg(long)]
    no_permessage_deflate: bool,
    /// Enable POST /admin/fault/... (drills and tests only).
    #[arg(long)]
    enable_fault_injection: bool,
}

impl Default for ServeArgs {
    fn default() -> Self {
        let cli = Cli::parse_from(["tickwire", "serve"]);
        match cli.command {
            Some(Command::Serve(a)) => a,
            None => unreachable!("serve was given"),
        }
    }
}

impl ServeArgs {
    fn into_config(self) -> ServerConfig {
        let mut c = ServerConfig {
            listen: self.listen,
            workers: self.workers.max(1),
            book_threads: self.book_threads.max(1),
            feed: FeedChoice::Synthetic {
                symbols: self.symbols,
                rate: self.rate,
                seed: self.seed,
            },
            fault_injection: self.enable_fault_injection,
            feed_backoff: Duration::from_millis(self.feed_backoff_ms),
            ..ServerConfig::default()
        };
        let s = &mut c.session;
        s.max_queued_bytes = self.max_queued_bytes;
        s.max_lag = Duration::from_millis(self.slow_consumer_lag_ms);
        s.close_grace = Duration::from_millis(self.close_grace_ms);
        s.ping_interval = Duration::from_millis(self.ping_interval_ms);
        s.client_timeout = Duration::from_millis(self.client_timeout_ms);
        s.max_message_bytes = self.max_message_bytes;
        s.permessage_deflate = !self.no_permessage_deflate;
        s.batch_window = Duration::from_micros(self.batch_window_us);
        c
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_logging(cli.log_json);
    let args = match cli.command {
        Some(Command::Serve(a)) => a,
        None => ServeArgs::default(),
    };
    let config = args.into_config();
    let system = actix_rt::System::new();
    system.block_on(async move {
        let FeedChoice::Synthetic {
            symbols,
            rate,
            seed,
        } = config.feed;
        anyhow::ensure!(symbols > 0, "--symbols must be at least 1");
        anyhow::ensure!(
            rate >= 0.0 && rate.is_finite(),
            "--rate must be a non-negative number"
        );
        let adapter = SyntheticAdapter::new(SyntheticConfig {
            symbols,
            rate,
            seed,
            ..SyntheticConfig::default()
        });
        tracing::info!(symbols, rate, seed, "starting synthetic feed");
        let engine = Engine::start(
            vec![Box::new(adapter)],
            EngineConfig {
                book_threads: config.book_threads,
                server_workers: config.workers,
                backoff: Backoff {
                    initial: config.feed_backoff,
                    max: config.feed_backoff.max(Duration::from_secs(10)),
                    ..Backoff::default()
                },
                ..EngineConfig::default()
            },
        )
        .context("starting the engine")?;
        app::serve(config, engine).await
    })
}
