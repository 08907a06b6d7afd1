//! `tickwire exchange-sim`: play a recorded venue feed over a real WebSocket (and Binance
//! REST snapshots), with injected faults: the stand-in for an exchange in tests and demos.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

#[derive(Args)]
pub(crate) struct ExchangeSimArgs {
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

pub(crate) fn run(args: ExchangeSimArgs) -> anyhow::Result<()> {
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
