//! `tickwire`: the command-line entry point.
//!
//! `tickwire` alone serves the default market on 127.0.0.1:8080; `tickwire serve --help`
//! lists every setting. Settings come from, lowest first: built-in defaults, the
//! `--config` TOML file, `TICKWIRE_*` environment variables, command-line flags
//! (`config.rs` owns the file layout and its validation). `tickwire config check FILE`
//! validates a file without starting anything.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

use tickwire_engine::actors::Backoff;
use tickwire_engine::{Engine, EngineConfig};
use tickwire_feeds::{SyntheticAdapter, SyntheticConfig};
use tickwire_server::app;
use tickwire_server::config::{ConfigError, FeedChoice, FileConfig, ServerConfig};

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
    Serve(Box<ServeArgs>),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Play a recorded venue feed over a real WebSocket (and Binance REST snapshots), with
    /// optional injected faults: the stand-in for an exchange in tests and demos.
    ExchangeSim(ExchangeSimArgs),
    /// Record a venue feed's raw messages, with receive timestamps, into a recording file
    /// (see docs/recording-format.md); Ctrl-C or SIGTERM finishes the file.
    Record(RecordArgs),
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
    files: Vec<PathBuf>,
}

#[derive(Args)]
struct RecordArgs {
    /// Venue: coinbase, binance, kraken or okx.
    #[arg(long, value_parser = ["coinbase", "binance", "kraken", "okx"])]
    feed: String,
    /// The venue's WebSocket URL (or `tickwire exchange-sim`'s).
    #[arg(long)]
    feed_url: String,
    /// Binance: base URL of the REST depth snapshots.
    #[arg(long)]
    rest_url: Option<String>,
    /// Venue symbols to subscribe to, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    instruments: Vec<String>,
    /// The recording file to write.
    #[arg(long)]
    out: PathBuf,
    /// Stop after this many seconds.
    #[arg(long)]
    duration_s: Option<u64>,
    /// Stop when the upstream is silent this long, or ends, instead of reconnecting.
    #[arg(long)]
    until_idle_ms: Option<u64>,
}

/// A session sink for the recorder: the adapter's decoding still runs (it drives Binance
/// snapshot fetches), its events are only counted.
struct CountingIo {
    names: Vec<String>,
    events: u64,
}

impl tickwire_feeds::live::SessionIo for CountingIo {
    fn symbol(&self, name: &str) -> Option<tickwire_engine::domain::SymbolId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| tickwire_engine::domain::SymbolId(i as u32))
    }
    fn emit(&mut self, _event: tickwire_engine::event::FeedEvent) {
        self.events += 1;
    }
    fn next_command(
        &mut self,
    ) -> futures_util::future::LocalBoxFuture<
        '_,
        Result<tickwire_engine::FeedCommand, tickwire_engine::FeedError>,
    > {
        Box::pin(std::future::pending())
    }
}

fn record(args: RecordArgs) -> anyhow::Result<()> {
    use std::sync::Arc;
    use tickwire_engine::domain::{Instrument, Nanos, Scale};
    use tickwire_feeds::live::{LiveConfig, Session, Venue};
    use tickwire_feeds::recording::{Header, Recorder};
    let venue = match args.feed.as_str() {
        "coinbase" => Venue::Coinbase,
        "binance" => Venue::Binance,
        "kraken" => Venue::Kraken,
        _ => Venue::Okx,
    };
    let header = Header {
        adapter: args.feed.clone(),
        venue: args.feed.clone(),
        symbols: args.instruments.clone(),
        start_ns: Nanos::now().0,
        metadata: vec![
            ("url".into(), args.feed_url.clone()),
            (
                "recorder".into(),
                format!("tickwire {}", env!("CARGO_PKG_VERSION")),
            ),
        ],
    };
    let recorder = Arc::new(
        Recorder::create(&args.out, &header)
            .with_context(|| format!("creating {}", args.out.display()))?,
    );
    let instruments = args
        .instruments
        .iter()
        .map(|s| Instrument {
            symbol: s.clone(),
            venue: args.feed.clone(),
            // The decoders verify checksums while recording; 8 places fit every venue here.
            price_scale: Scale::new(8),
            size_scale: Scale::new(8),
        })
        .collect();
    let mut cfg = LiveConfig::new(venue, &args.feed_url, instruments);
    cfg.rest_url = args.rest_url.clone();
    cfg.tap = Some(recorder.clone());
    if let Some(ms) = args.until_idle_ms {
        cfg.idle_timeout = Duration::from_millis(ms);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let mut io = CountingIo {
            names: args.instruments.clone(),
            events: 0,
        };
        let sessions = async {
            loop {
                let mut session = Session::new(&cfg);
                let ended = session.run(&mut io).await;
                tracing::info!(result = ?ended, records = recorder.records(), "upstream session ended");
                if args.until_idle_ms.is_some() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        tokio::pin!(sessions);
        let deadline = tokio::time::sleep(Duration::from_secs(args.duration_s.unwrap_or(u64::MAX / 4)));
        tokio::pin!(deadline);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        let mut flush = tokio::time::interval(Duration::from_millis(200));
        loop {
            tokio::select! {
                _ = &mut sessions => break,
                _ = &mut deadline => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = flush.tick() => recorder.poll()?,
            }
        }
        anyhow::Ok(())
    })?;
    let summary = recorder.finish()?;
    tracing::info!(
        records = summary.records,
        blocks = summary.blocks,
        file_bytes = summary.file_bytes,
        out = %args.out.display(),
        "recording finished"
    );
    Ok(())
}

#[derive(Args)]
struct ExchangeSimArgs {
    /// The recorded stream to play (line format of recorded feeds).
    file: PathBuf,
    /// Binance: the recorded REST depth snapshots to serve at /api/v3/depth.
    #[arg(long)]
    rest_file: Option<PathBuf>,
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

/// The adapter for the configured feed.
fn build_adapter(feed: &FeedChoice) -> anyhow::Result<Box<dyn tickwire_engine::FeedAdapter>> {
    match feed {
        FeedChoice::Synthetic {
            symbols,
            rate,
            seed,
        } => {
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

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file (with the TICKWIRE_* environment applied) and print the
    /// resulting settings; exits non-zero naming the bad key.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

/// Settings of `tickwire serve`. Each one is also a key of the configuration file and an
/// environment variable (see docs/operations.md); a flag given here wins over both.
#[derive(Args, Clone, Default)]
struct ServeArgs {
    /// TOML configuration file (see docs/tickwire.example.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:8080]. Key: listen.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Upstream feed: the synthetic market or a venue's live feed [default: synthetic].
    /// Key: feed.kind.
    #[arg(long, value_parser = ["synthetic", "coinbase", "binance", "kraken", "okx"])]
    feed: Option<String>,
    /// Venue feeds: WebSocket URL of the venue (or of `tickwire exchange-sim`). Key:
    /// feed.url.
    #[arg(long)]
    feed_url: Option<String>,
    /// Binance: base URL of the REST depth snapshots. Key: feed.rest_url.
    #[arg(long)]
    rest_url: Option<String>,
    /// Venue feeds: comma-separated venue symbols to subscribe to. Key: feed.instruments.
    #[arg(long, value_delimiter = ',')]
    instruments: Option<Vec<String>>,
    /// Venue feeds: decimal places kept for prices; more are refused, never rounded
    /// [default: 8]. Key: feed.price_scale.
    #[arg(long)]
    price_scale: Option<u8>,
    /// Venue feeds: decimal places kept for sizes [default: 8]. Key: feed.size_scale.
    #[arg(long)]
    size_scale: Option<u8>,
    /// Synthetic feed: number of symbols (SYM0000, SYM0001, ...) [default: 100]. Key:
    /// feed.symbols.
    #[arg(long)]
    symbols: Option<usize>,
    /// Synthetic feed: top-of-book changes per second, summed over all symbols [default:
    /// 1000]. Key: feed.rate.
    #[arg(long)]
    rate: Option<f64>,
    /// Synthetic feed: seed of the event sequence [default: 1]. Key: feed.seed.
    #[arg(long)]
    seed: Option<u64>,
    /// HTTP/WebSocket worker threads [default: 2]. Key: workers.
    #[arg(long)]
    workers: Option<usize>,
    /// Threads the book actors are sharded over [default: 1]. Key: book_threads.
    #[arg(long)]
    book_threads: Option<usize>,
    /// Bytes a client may have waiting before it is closed as a slow consumer [default:
    /// 4194304]. Key: session.max_queued_bytes.
    #[arg(long)]
    max_queued_bytes: Option<usize>,
    /// Milliseconds a client may stay behind before it is closed as a slow consumer
    /// [default: 5000]. Key: session.max_lag_ms.
    #[arg(long)]
    slow_consumer_lag_ms: Option<u64>,
    /// Milliseconds a close frame may take before the connection is cut [default: 10000].
    /// Key: session.close_grace_ms.
    #[arg(long)]
    close_grace_ms: Option<u64>,
    /// Milliseconds between server pings [default: 15000]. Key: session.ping_interval_ms.
    #[arg(long)]
    ping_interval_ms: Option<u64>,
    /// Milliseconds of client silence before it is closed [default: 45000]. Key:
    /// session.client_timeout_ms.
    #[arg(long)]
    client_timeout_ms: Option<u64>,
    /// Largest client message in bytes (larger: close 1009) [default: 65536]. Key:
    /// session.max_message_bytes.
    #[arg(long)]
    max_message_bytes: Option<usize>,
    /// Milliseconds before a failed feed's first restart (doubling up to 10 s) [default:
    /// 100]. Key: feed.backoff_ms.
    #[arg(long)]
    feed_backoff_ms: Option<u64>,
    /// On SIGTERM/SIGINT, milliseconds to wait for clients to take their close 1001 before
    /// exiting [default: 10000]. Key: shutdown.drain_ms.
    #[arg(long)]
    drain_ms: Option<u64>,
    /// Batching clients (subprotocols *.batch): microseconds the first pending update may
    /// wait for others to share its frame [default: 0]. Key: session.batch_window_us.
    #[arg(long)]
    batch_window_us: Option<u64>,
    /// Refuse permessage-deflate even when clients offer it. Key:
    /// session.permessage_deflate = false.
    #[arg(long)]
    no_permessage_deflate: bool,
    /// Enable POST /admin/fault/... (drills and tests only). Key: enable_fault_injection.
    #[arg(long)]
    enable_fault_injection: bool,
}

impl ServeArgs {
    /// Puts the flags that were given on top of `c`.
    fn apply(&self, c: &mut FileConfig) {
        fn set<T: Clone>(to: &mut T, from: &Option<T>) {
            if let Some(v) = from {
                *to = v.clone();
            }
        }
        if let Some(l) = self.listen {
            c.listen = l.to_string();
        }
        set(&mut c.feed.kind, &self.feed);
        set(&mut c.feed.symbols, &self.symbols);
        set(&mut c.feed.rate, &self.rate);
        set(&mut c.feed.seed, &self.seed);
        set(&mut c.feed.backoff_ms, &self.feed_backoff_ms);
        set(&mut c.feed.url, &self.feed_url);
        set(&mut c.feed.rest_url, &self.rest_url);
        set(&mut c.feed.instruments, &self.instruments);
        set(&mut c.feed.price_scale, &self.price_scale);
        set(&mut c.feed.size_scale, &self.size_scale);
        set(&mut c.workers, &self.workers);
        set(&mut c.book_threads, &self.book_threads);
        let s = &mut c.session;
        set(&mut s.max_queued_bytes, &self.max_queued_bytes);
        set(&mut s.max_lag_ms, &self.slow_consumer_lag_ms);
        set(&mut s.close_grace_ms, &self.close_grace_ms);
        set(&mut s.ping_interval_ms, &self.ping_interval_ms);
        set(&mut s.client_timeout_ms, &self.client_timeout_ms);
        set(&mut s.max_message_bytes, &self.max_message_bytes);
        set(&mut s.batch_window_us, &self.batch_window_us);
        if self.no_permessage_deflate {
            s.permessage_deflate = false;
        }
        set(&mut c.shutdown.drain_ms, &self.drain_ms);
        if self.enable_fault_injection {
            c.enable_fault_injection = true;
        }
    }

    /// File, then environment, then flags; validated. Also returns notes to log.
    fn resolve(&self) -> anyhow::Result<(ServerConfig, Vec<String>)> {
        let loaded = FileConfig::load(self.config.as_deref(), std::env::vars())?;
        let mut c = loaded.config;
        self.apply(&mut c);
        c.validate("command line")?;
        Ok((c.to_server_config(), loaded.notes))
    }
}

fn init_logging(json: bool) {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr so that commands printing data (inspect) keep stdout clean.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().with_current_span(true).init();
    } else {
        // Colours only for a person at a terminal, not in journald or a log file.
        builder.with_ansi(std::io::stderr().is_terminal()).init();
    }
}

fn main() -> anyhow::Result<()> {
    match run() {
        Err(e) if e.is::<ConfigError>() => {
            // A configuration mistake is the operator's, not a bug: no backtrace.
            eprintln!("error: {e}");
            std::process::exit(2);
        }
        other => other,
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Serve(a)) => *a,
        Some(Command::Config(ConfigCommand::Check { file })) => {
            let loaded = FileConfig::load(Some(&file), std::env::vars())?;
            for n in &loaded.notes {
                eprintln!("note: {n}");
            }
            println!("# {}: ok; effective settings:", file.display());
            print!("{}", toml::to_string(&loaded.config)?);
            return Ok(());
        }
        Some(Command::Inspect(a)) => {
            init_logging(cli.log_json);
            return inspect(a);
        }
        Some(Command::Record(a)) => {
            init_logging(cli.log_json);
            return record(a);
        }
        Some(Command::ExchangeSim(a)) => {
            init_logging(cli.log_json);
            return exchange_sim(a);
        }
        None => ServeArgs::default(),
    };
    let (config, notes) = args.resolve()?;
    init_logging(cli.log_json || config.log_json);
    for n in notes {
        tracing::warn!("{n}");
    }
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
