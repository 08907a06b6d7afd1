//! `tickwire record`: tap a venue's live adapter session and write every raw message, with
//! its receive time, into a recording (`tickwire_feeds::recording`). Ctrl-C, SIGTERM,
//! `--duration-s` or an idle upstream (`--until-idle-ms`) finish the file cleanly.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

#[derive(Args)]
pub(crate) struct RecordArgs {
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

pub(crate) fn run(args: RecordArgs) -> anyhow::Result<()> {
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
        // Messages recorded so far, with their rate: a spinner on a terminal, log lines
        // otherwise.
        let progress = tickwire_feeds::progress::Progress::new("record", 0);
        loop {
            tokio::select! {
                _ = &mut sessions => break,
                _ = &mut deadline => break,
                _ = tokio::signal::ctrl_c() => break,
                _ = term.recv() => break,
                _ = flush.tick() => {
                    recorder.poll()?;
                    progress.set(recorder.records());
                }
            }
        }
        progress.finish();
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
