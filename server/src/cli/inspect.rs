//! `tickwire inspect`: run recorded feeds through an adapter and books, print the
//! normalized events as JSON lines and a summary (the pipeline is
//! `tickwire_feeds::inspect`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

#[derive(Args)]
pub(crate) struct InspectArgs {
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

pub(crate) fn run(args: InspectArgs) -> anyhow::Result<()> {
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
