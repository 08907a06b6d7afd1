//! `tickwire generate-day`: write a generated NASDAQ-style ITCH 5.0 trading day as a
//! recording (`tickwire_feeds::itch::generator::generate_day`). The bundled day in
//! `replay-data/` is made with this command (its README names the exact arguments);
//! the output is deterministic for a seed.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;

#[derive(Args)]
pub(crate) struct GenerateDayArgs {
    /// The recording to write.
    #[arg(long)]
    out: PathBuf,
    /// Seed of the day's order flow.
    #[arg(long, default_value_t = 20250616)]
    seed: u64,
    /// Order-flow messages of continuous trading.
    #[arg(long, default_value_t = 1_000_000)]
    messages: usize,
    /// The trading date (its ITCH timestamps count from midnight US Eastern time, taken as
    /// UTC-4, daylight saving time).
    #[arg(long, default_value = "2025-06-16")]
    date: String,
}

pub(crate) fn run(args: GenerateDayArgs) -> anyhow::Result<()> {
    use tickwire_feeds::itch::generator::{generate_day, DayConfig};
    let midnight = tickwire_feeds::replay::parse_time(&format!("{}T04:00:00Z", args.date))
        .map_err(|e| anyhow::anyhow!("--date {}: {e}", args.date))?;
    let cfg = DayConfig {
        seed: args.seed,
        messages: args.messages,
        ..DayConfig::default()
    };
    let day = generate_day(&cfg);
    let command = format!(
        "tickwire generate-day --out {} --seed {} --messages {} --date {}",
        args.out
            .file_name()
            .map_or_else(String::new, |f| f.to_string_lossy().into_owned()),
        args.seed,
        args.messages,
        args.date
    );
    let summary = day
        .write_recording(
            &args.out,
            midnight,
            vec![
                ("generator".into(), command),
                (
                    tickwire_feeds::replay::source::SESSION_OPEN_KEY.into(),
                    (midnight + 34_200_000_000_000).to_string(),
                ),
                (
                    "description".into(),
                    "generated NASDAQ-style ITCH 5.0 day, not real market data".into(),
                ),
            ],
        )
        .with_context(|| format!("writing {}", args.out.display()))?;
    tracing::info!(
        out = %args.out.display(),
        messages = day.messages,
        packets = day.packets.len(),
        file_bytes = summary.file_bytes,
        "day written"
    );
    Ok(())
}
