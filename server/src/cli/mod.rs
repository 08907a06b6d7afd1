//! The `tickwire` command line: one file per subcommand.
//!
//! | subcommand | file |
//! |---|---|
//! | `serve` (also `tickwire` alone) | [`serve`] |
//! | `engine` (cluster: feeds and books, publishing to NATS) | [`engine`] |
//! | `gateway` (cluster: WebSocket clients, fed from NATS) | [`gateway`] |
//! | `config check` | [`config`] |
//! | `exchange-sim` | [`exchange_sim`] |
//! | `record` | [`record`] |
//! | `inspect` | [`inspect`] |
//! | `generate-day` | [`generate_day`] |
//!
//! Every subcommand logs through [`logging`]; configuration mistakes exit with status 2 and
//! no backtrace (see `main.rs`).

mod config;
mod engine;
mod exchange_sim;
mod gateway;
mod generate_day;
mod inspect;
mod logging;
mod record;
mod serve;

use clap::{Parser, Subcommand};

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
    Serve(Box<serve::ServeArgs>),
    /// Cluster role: run the feeds and books and publish ticks, snapshots and status to
    /// NATS (see docs/deployment.md); also serves local clients like `serve`.
    Engine(Box<engine::EngineArgs>),
    /// Cluster role: serve WebSocket clients from NATS, subscribed only to the symbols
    /// they want (see docs/deployment.md).
    Gateway(Box<gateway::GatewayArgs>),
    /// Work with configuration files.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Play a recorded venue feed over a real WebSocket (and Binance REST snapshots), with
    /// optional injected faults: the stand-in for an exchange in tests and demos.
    ExchangeSim(exchange_sim::ExchangeSimArgs),
    /// Record a venue feed's raw messages, with receive timestamps, into a recording file
    /// (see docs/recording-format.md); Ctrl-C or SIGTERM finishes the file.
    Record(record::RecordArgs),
    /// Run recorded feed files through an adapter and books; print normalized events as JSON
    /// lines and a summary (messages, events, checksums, gaps, resyncs, errors).
    Inspect(inspect::InspectArgs),
    /// Write a generated NASDAQ-style ITCH 5.0 trading day as a recording (how the bundled
    /// day in replay-data/ is made; deterministic for a seed).
    GenerateDay(generate_day::GenerateDayArgs),
}

/// Parses the command line and runs the chosen subcommand.
pub fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let json = cli.log_json;
    match cli.command {
        None => serve::run(serve::ServeArgs::default(), json),
        Some(Command::Serve(a)) => serve::run(*a, json),
        Some(Command::Engine(a)) => engine::run(*a, json),
        Some(Command::Gateway(a)) => gateway::run(*a, json),
        Some(Command::Config(c)) => config::run(c),
        Some(Command::Inspect(a)) => {
            logging::init(json);
            inspect::run(a)
        }
        Some(Command::Record(a)) => {
            logging::init(json);
            record::run(a)
        }
        Some(Command::GenerateDay(a)) => {
            logging::init(json);
            generate_day::run(a)
        }
        Some(Command::ExchangeSim(a)) => {
            logging::init(json);
            exchange_sim::run(a)
        }
    }
}
