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
    /// Play a recorded venue feed over a real WebSocket (and Binance REST snapshots), with
    /// optional injected faults: the stand-in for an exchange in tests and demos.
    ExchangeSim(ExchangeSimArgs),
    /// Run recorded feed files through an adapter and books; print normalized events as JSON
    /// lines and a summary (messages, events, checksums, gaps, resyncs, errors).
    Inspect(InspectArgs),
}

#[derive(Args)]
struct InspectArgs {
    /// Adapter that decodes the files: coinbase, binance, kraken, okx or itch.
    #[arg(long)]
    adapter: String,
    /// Also print the top N levels of the book after every update.
    #[arg(long)]
    book_depth: Option<usize>,
    /// Recorded files (the line format of recorded feeds; binary ITCH for itch). Several
    /// files are merged by timestamp, e.g. a Binance stream and its REST snapshots.
    #[arg(required = true)]
    files: Vec<std::path::PathBuf>,
}

#[derive(Args)]
struct ExchangeSimArgs {
    /// The recorded stream to play (line format of recorded feeds).
    file: std::path::PathBuf,
    /// Binance: the recorded REST depth snapshots to serve at /api/v3/depth.
    #[arg(long)]
    rest_file: Option<std::path::PathBuf>,
    /// Address to listen on; the feed is at ws://ADDR/ws.
    #[arg(long, default_value = "127.0.0.1:9443")]
    listen: SocketAddr,
    /// Milliseconds between messages.
    #[arg(long)]
    pace_ms: Option<u64>,
    /// First connection: never send message number N.
    #[arg(long)]
    drop_message: Option<usize>,
    /// First connection: send a garbage frame before message number N.
    #[arg(long)]
    garbage_before: Option<usize>,
    /// First connection: cut the TCP connection after N messages.
    #[arg(long)]
    disconnect_after: Option<usize>,
}

fn exchange_sim(args: ExchangeSimArgs) -> anyhow::Result<()> {
    use tickwire_feeds::live::simulator::{self, Faults, SimConfig};
    let mut cfg = SimConfig::from_recordings(&args.file, args.rest_file.as_deref())
        .with_context(|| format!("reading {}", args.file.display()))?;
    cfg.pace = args.pace_ms.map(Duration::from_millis);
    cfg.faults = Faults {
        drop_message: args.drop_message,
        garbage_before: args.garbage_before,
        disconnect_after: args.disconnect_after,
    };
    let messages = cfg.messages.len();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let sim = simulator::start_on(cfg, args.listen).await?;
        tracing::info!(url = %sim.ws_url(), rest = %sim.rest_url(), messages, "exchange simulator listening");
        tokio::signal::ctrl_c().await?;
        Ok(())
    })
}

fn inspect(args: InspectArgs) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let summary =
        tickwire_feeds::inspect::run_files(&args.adapter, &args.files, args.book_depth, &mut out)
            .with_context(|| format!("inspecting with the {} adapter", args.adapter))?;
    std::io::Write::flush(&mut out)?;
    tracing::info!(
        messages = summary.messages,
        events = summary.events,
        errors = summary.parse_errors,
        "inspect finished"
    );
    Ok(())
}

#[derive(Args, Clone)]
struct ServeArgs {
    /// Address and port to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Upstream feed: the synthetic market, or a venue's live feed (see --feed-url).
    #[arg(long, default_value = "synthetic", value_parser = ["synthetic", "coinbase", "binance", "kraken", "okx"])]
    feed: String,
    /// Venue feeds: WebSocket URL of the venue (or of `tickwire exchange-sim`).
    #[arg(long, required_if_eq_any = [("feed", "coinbase"), ("feed", "binance"), ("feed", "kraken"), ("feed", "okx")])]
    feed_url: Option<String>,
    /// Binance: base URL of the REST depth snapshots.
    #[arg(long)]
    rest_url: Option<String>,
    /// Venue feeds: comma-separated venue symbols to subscribe to.
    #[arg(long, value_delimiter = ',', required_if_eq_any = [("feed", "coinbase"), ("feed", "binance"), ("feed", "kraken"), ("feed", "okx")])]
    instruments: Vec<String>,
    /// Venue feeds: decimal places kept for prices (values with more are refused, never rounded).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(0..=18))]
    price_scale: u8,
    /// Venue feeds: decimal places kept for sizes.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u8).range(0..=18))]
    size_scale: u8,
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
            _ => unreachable!("serve was given"),
        }
    }
}

impl ServeArgs {
    fn into_config(self) -> ServerConfig {
        let mut c = ServerConfig {
            listen: self.listen,
            workers: self.workers.max(1),
            book_threads: self.book_threads.max(1),
            feed: if self.feed == "synthetic" {
                FeedChoice::Synthetic {
                    symbols: self.symbols,
                    rate: self.rate,
                    seed: self.seed,
                }
            } else {
                FeedChoice::Live {
                    venue: self.feed.clone(),
                    ws_url: self.feed_url.clone().unwrap_or_default(),
                    rest_url: self.rest_url.clone(),
                    instruments: self.instruments.clone(),
                    price_scale: self.price_scale,
                    size_scale: self.size_scale,
                }
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

/// The adapter for the configured feed.
fn build_adapter(feed: &FeedChoice) -> anyhow::Result<Box<dyn tickwire_engine::FeedAdapter>> {
    match feed {
        FeedChoice::Synthetic {
            symbols,
            rate,
            seed,
        } => {
            anyhow::ensure!(*symbols > 0, "--symbols must be at least 1");
            anyhow::ensure!(
                *rate >= 0.0 && rate.is_finite(),
                "--rate must be a non-negative number"
            );
            tracing::info!(symbols, rate, seed, "starting synthetic feed");
            Ok(Box::new(SyntheticAdapter::new(SyntheticConfig {
                symbols: *symbols,
                rate: *rate,
                seed: *seed,
                ..SyntheticConfig::default()
            })))
        }
        FeedChoice::Live {
            venue,
            ws_url,
            rest_url,
            instruments,
            price_scale,
            size_scale,
        } => {
            use tickwire_engine::domain::{Instrument, Scale};
            use tickwire_feeds::live::{LiveAdapter, LiveConfig, Venue};
            let v = match venue.as_str() {
                "coinbase" => Venue::Coinbase,
                "binance" => Venue::Binance,
                "kraken" => Venue::Kraken,
                "okx" => Venue::Okx,
                other => anyhow::bail!("unknown feed {other:?}"),
            };
            anyhow::ensure!(
                !instruments.is_empty(),
                "--instruments must name at least one symbol"
            );
            let instruments = instruments
                .iter()
                .map(|s| Instrument {
                    symbol: s.clone(),
                    venue: venue.clone(),
                    price_scale: Scale::new(*price_scale),
                    size_scale: Scale::new(*size_scale),
                })
                .collect();
            let mut cfg = LiveConfig::new(v, ws_url, instruments);
            cfg.rest_url = rest_url.clone();
            tracing::info!(venue, url = %ws_url, "starting live feed");
            Ok(Box::new(LiveAdapter::new(cfg)))
        }
    }
}

fn init_logging(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr so that commands printing data (inspect) keep stdout clean.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
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
        Some(Command::Inspect(a)) => return inspect(a),
        Some(Command::ExchangeSim(a)) => return exchange_sim(a),
        None => ServeArgs::default(),
    };
    let config = args.into_config();
    let system = actix_rt::System::new();
    system.block_on(async move {
        let adapter = build_adapter(&config.feed)?;
        let engine = Engine::start(
            vec![adapter],
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
