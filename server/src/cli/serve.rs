//! `tickwire serve` (also what `tickwire` alone runs): its settings as flags, layered over
//! the configuration file and the environment (`tickwire_server::config` owns the file
//! layout and validation), the feed they select, and the start of engine and server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

use tickwire_engine::actors::Backoff;
use tickwire_engine::{Engine, EngineConfig};
use tickwire_feeds::{SyntheticAdapter, SyntheticConfig};
use tickwire_server::app;
use tickwire_server::config::{FeedChoice, FileConfig, ServerConfig};
use tickwire_server::reload::Reloader;

/// Settings of `tickwire serve`. Each one is also a key of the configuration file and an
/// environment variable (see docs/operations.md); a flag given here wins over both.
#[derive(Args, Clone, Default)]
pub(crate) struct ServeArgs {
    /// TOML configuration file (see docs/tickwire.example.toml).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address and port to listen on [default: 127.0.0.1:8080]. Key: listen.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Upstream feed: a replay of recordings (by default the bundled market day), the
    /// synthetic market, or a venue's live feed [default: replay]. Key: feed.kind.
    #[arg(long, value_parser = ["replay", "synthetic", "coinbase", "binance", "kraken", "okx"])]
    feed: Option<String>,
    /// Serve these recordings as the feed (several merge in time order); implies
    /// --feed replay. Without it, the replay feed is the bundled day. Key: replay.files.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    replay: Option<Vec<PathBuf>>,
    /// Replay speed: 1 (as recorded), 10, 0.5, ... or max [default: 1]. Key: replay.speed.
    #[arg(long)]
    speed: Option<String>,
    /// Replay from this time (RFC 3339 or ns since the epoch). Key: replay.from.
    #[arg(long)]
    from: Option<String>,
    /// Replay up to this time (RFC 3339 or ns since the epoch). Key: replay.to.
    #[arg(long)]
    to: Option<String>,
    /// Start the replay again when it ends. --replay FILE plays once unless this is given;
    /// the bundled day loops by default. Key: replay.loop.
    #[arg(long = "loop")]
    looping: bool,
    /// Directory of the datasets clients may replay [default: replay-data]. Key:
    /// replay.datasets_dir.
    #[arg(long)]
    datasets_dir: Option<String>,
    /// Record the raw upstream of the served feed (a venue or a replay) into this
    /// recording while serving; a graceful shutdown finishes the file.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// Venue feeds: WebSocket URL of the venue (or of `tickwire exchange-sim`). Key:
    /// feed.url.
    #[arg(long)]
    feed_url: Option<String>,
    /// Venue feeds: WebSocket URL of a second line of the same venue (A/B feeds,
    /// arbitrated by sequence number; Coinbase). Key: feed.url_b.
    #[arg(long)]
    feed_url_b: Option<String>,
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
    /// Serve HTTPS and WSS with this PEM certificate chain (needs --tls-key). Key:
    /// tls.cert_file.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<String>,
    /// PEM private key of the TLS certificate. Key: tls.key_file.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<String>,
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
        if let Some(files) = &self.replay {
            c.feed.kind = "replay".into();
            c.replay.files = files.iter().map(|f| f.display().to_string()).collect();
            // A file given on the command line plays once unless --loop says otherwise.
            c.replay.looping = self.looping;
        } else if self.looping {
            c.replay.looping = true;
        }
        set(&mut c.replay.speed, &self.speed);
        set(&mut c.replay.from, &self.from);
        set(&mut c.replay.to, &self.to);
        set(&mut c.replay.datasets_dir, &self.datasets_dir);
        set(&mut c.feed.symbols, &self.symbols);
        set(&mut c.feed.rate, &self.rate);
        set(&mut c.feed.seed, &self.seed);
        set(&mut c.feed.backoff_ms, &self.feed_backoff_ms);
        set(&mut c.feed.url, &self.feed_url);
        set(&mut c.feed.url_b, &self.feed_url_b);
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
        set(&mut c.tls.cert_file, &self.tls_cert);
        set(&mut c.tls.key_file, &self.tls_key);
        if self.enable_fault_injection {
            c.enable_fault_injection = true;
        }
    }

    /// File, then environment, then flags; validated. Also returns notes to log.
    pub(crate) fn resolve(&self) -> anyhow::Result<(ServerConfig, Vec<String>)> {
        self.resolve_with(|_| {})
    }

    /// Like [`ServeArgs::resolve`], with a subcommand's own flags put on top by `extra`.
    pub(crate) fn resolve_with(
        &self,
        extra: impl FnOnce(&mut FileConfig),
    ) -> anyhow::Result<(ServerConfig, Vec<String>)> {
        let loaded = FileConfig::load(self.config.as_deref(), std::env::vars())?;
        let mut c = loaded.config;
        self.apply(&mut c);
        extra(&mut c);
        let synthetic_flags = self.symbols.is_some() || self.rate.is_some() || self.seed.is_some();
        if synthetic_flags && c.feed.kind != "synthetic" {
            return Err(tickwire_server::config::ConfigError::Invalid {
                origin: "command line".into(),
                key: "feed.kind".into(),
                message: format!(
                    "--symbols, --rate and --seed set up the synthetic market, but the feed is {:?}; add --feed synthetic",
                    c.feed.kind
                ),
            }
            .into());
        }
        let replay_flags = self.speed.is_some() || self.from.is_some() || self.to.is_some();
        if replay_flags && c.feed.kind != "replay" {
            return Err(tickwire_server::config::ConfigError::Invalid {
                origin: "command line".into(),
                key: "feed.kind".into(),
                message: format!(
                    "--speed, --from and --to apply to a replay, but the feed is {:?}",
                    c.feed.kind
                ),
            }
            .into());
        }
        c.validate("command line")?;
        Ok((c.to_server_config(), loaded.notes))
    }
}

/// The adapter for the configured feed; `tap` (from `--record`) sees its raw upstream.
pub(crate) fn build_adapter(
    feed: &FeedChoice,
    tap: Option<std::sync::Arc<dyn tickwire_feeds::live::RawTap>>,
) -> anyhow::Result<Box<dyn tickwire_engine::FeedAdapter>> {
    match feed {
        FeedChoice::Replay(r) => tickwire_server::replay::feed::build_with(r, tap),
        FeedChoice::Synthetic { .. } if tap.is_some() => anyhow::bail!(
            "--record needs a venue or replay feed: the synthetic market has no raw upstream to record"
        ),
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
            ws_url_b,
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
            cfg.tap = tap;
            if let Some(b) = ws_url_b {
                tracing::info!(venue, line_a = %ws_url, line_b = %b, "starting live feed on A/B lines");
                return Ok(Box::new(tickwire_feeds::failover::ArbitratedAdapter::new(
                    cfg,
                    b.clone(),
                )));
            }
            tracing::info!(venue, url = %ws_url, "starting live feed");
            Ok(Box::new(LiveAdapter::new(cfg)))
        }
    }
}

/// Runs the server until it is stopped (SIGTERM/SIGINT drain it; see `app::serve`).
pub(crate) fn run(args: ServeArgs, log_json: bool) -> anyhow::Result<()> {
    let (config, notes) = args.resolve()?;
    // A reload resolves the same layers again: the file and environment as they are now,
    // under the flags given at start-up.
    let reload_args = args.clone();
    let reloader = Reloader::new(Box::new(move || Ok(reload_args.resolve()?.0)));
    super::logging::init(log_json || config.log_json);
    for n in notes {
        tracing::warn!("{n}");
    }
    let recorder = match &args.record {
        Some(path) => Some(std::sync::Arc::new(
            tickwire_server::replay::record::create(path, &config.feed)
                .with_context(|| format!("creating recording {}", path.display()))?,
        )),
        None => None,
    };
    let tap = recorder
        .clone()
        .map(|r| r as std::sync::Arc<dyn tickwire_feeds::live::RawTap>);
    let system = actix_rt::System::new();
    let served = system.block_on(async move {
        if let Some(r) = &recorder {
            tickwire_server::replay::record::spawn_flusher(r.clone());
        }
        let adapter = build_adapter(&config.feed, tap)?;
        let engine =
            Engine::start(vec![adapter], engine_config(&config)).context("starting the engine")?;
        tickwire_server::replay::feed::attach_hub(engine.hub().clone());
        app::serve(config, engine, reloader).await
    });
    if let Some(path) = &args.record {
        // Finished after the server has stopped, so the file holds every message received
        // until then, with its index and trailer.
        let r = tickwire_server::replay::record::finish(path);
        served.and(r)
    } else {
        served
    }
}

/// The engine sizing `config` asks for.
pub(crate) fn engine_config(config: &ServerConfig) -> EngineConfig {
    EngineConfig {
        book_threads: config.book_threads,
        server_workers: config.workers,
        backoff: Backoff {
            initial: config.feed_backoff,
            max: config.feed_backoff.max(Duration::from_secs(10)),
            ..Backoff::default()
        },
        ..EngineConfig::default()
    }
}
