//! `tickwire-loadgen`: the WebSocket load generator's command line.
//!
//! - `run`: run a scenario (TOML file and/or flags) and write the summary, JSON and plots;
//! - `idle`: hold C connected, subscribed, idle clients for T seconds and report the server's
//!   RSS per connection;
//! - `server-args`: print the `--symbols/--rate/--seed` a scenario's server must be started with;
//! - `report`: combine result JSON files into a comparison table and side-by-side plots.

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use std::path::{Path, PathBuf};
use tickwire_benches::loadgen::config::{Pattern, Scenario};
use tickwire_benches::loadgen::plot;
use tickwire_benches::loadgen::report::{
    check_targets, comparison_table, spread_table, summary, targets_table, RunResult,
};
use tickwire_benches::loadgen::runner::{run, RunOptions};

#[derive(Parser)]
#[command(
    version,
    about = "WebSocket load generator for Tickwire-protocol servers"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a scenario and write its summary, JSON result and plots.
    Run {
        #[command(flatten)]
        o: Overrides,
        #[command(flatten)]
        out: Output,
    },
    /// Hold idle subscribed clients and report server RSS per connection.
    Idle {
        #[command(flatten)]
        o: Overrides,
        /// Seconds to hold the clients after they are all connected.
        #[arg(long, default_value_t = 20.0)]
        hold: f64,
        #[command(flatten)]
        out: Output,
    },
    /// Print the server arguments (`--feed synthetic --symbols N --rate R --seed S --listen
    /// ADDR`) of a scenario.
    ServerArgs {
        #[arg(long)]
        scenario: PathBuf,
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: String,
    },
    /// Combine result JSON files into a comparison table and plots (grouped by scenario).
    Report {
        /// Output directory.
        #[arg(long)]
        out: PathBuf,
        results: Vec<PathBuf>,
    },
}

#[derive(Args)]
struct Overrides {
    /// Scenario TOML file; flags below override its fields.
    #[arg(long)]
    scenario: Option<PathBuf>,
    #[arg(long)]
    url: Option<String>,
    #[arg(long)]
    clients: Option<u32>,
    #[arg(long)]
    stalled: Option<u32>,
    /// Symbols the server serves (N); symbols are SYM0000.. SYM{N-1}.
    #[arg(long)]
    symbols: Option<u32>,
    #[arg(long)]
    symbols_per_client: Option<u32>,
    #[arg(long, value_enum)]
    pattern: Option<PatternArg>,
    #[arg(long)]
    channels: Option<String>,
    #[arg(long)]
    connect_rate: Option<u32>,
    #[arg(long)]
    warmup: Option<f64>,
    #[arg(long)]
    duration: Option<f64>,
    #[arg(long)]
    threads: Option<u32>,
    /// Poll sockets without sleeping (see the scenario's `busy_poll`).
    #[arg(long)]
    busy_poll: bool,
    #[arg(long)]
    source_addrs: Option<u32>,
    /// Server pid for RSS/CPU (default: the process listening on the URL's port).
    #[arg(long)]
    server_pid: Option<u32>,
    /// Name of the server under test in outputs.
    #[arg(long, default_value = "server")]
    label: String,
}

#[derive(Args)]
struct Output {
    /// Directory for `<scenario>-<label>.{json,txt}` and plots.
    #[arg(long)]
    out: Option<PathBuf>,
    #[arg(long)]
    no_plots: bool,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PatternArg {
    FixedSlice,
    All,
    Zipf,
}

impl Overrides {
    fn scenario(&self) -> Result<Scenario> {
        let mut s = match &self.scenario {
            Some(p) => Scenario::from_file(p)?,
            None => Scenario::default(),
        };
        macro_rules! set {
            ($f:ident, $v:expr) => {
                if let Some(v) = $v {
                    s.$f = v;
                }
            };
        }
        set!(url, self.url.clone());
        set!(clients, self.clients);
        set!(stalled_clients, self.stalled);
        set!(symbols_per_client, self.symbols_per_client);
        set!(connect_rate, self.connect_rate);
        set!(warmup_s, self.warmup);
        set!(duration_s, self.duration);
        set!(threads, self.threads);
        set!(source_addrs, self.source_addrs);
        if self.busy_poll {
            s.busy_poll = true;
        }
        if let Some(n) = self.symbols {
            s.server.symbols = n;
        }
        if let Some(p) = self.pattern {
            s.pattern = match p {
                PatternArg::FixedSlice => Pattern::FixedSlice,
                PatternArg::All => Pattern::All,
                PatternArg::Zipf => Pattern::Zipf,
            };
        }
        if let Some(c) = &self.channels {
            s.channels = c.split(',').map(|c| c.trim().to_string()).collect();
        }
        s.validate()?;
        Ok(s)
    }
}

fn write_outputs(r: &RunResult, out: &Output) -> Result<()> {
    let text = summary(r);
    println!("{text}");
    println!("{}", comparison_table(std::slice::from_ref(r)));
    if let Some(dir) = &out.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let stem = format!("{}-{}", r.scenario.name, r.label);
        let json = dir.join(format!("{stem}.json"));
        std::fs::write(&json, serde_json::to_vec_pretty(r)?)
            .with_context(|| format!("writing {}", json.display()))?;
        std::fs::write(dir.join(format!("{stem}.txt")), &text)?;
        if !out.no_plots {
            let title = format!("{} — {}", r.scenario.name, r.label);
            plot::latency_distribution(
                &[r],
                &dir.join(format!("{stem}-latency")),
                &format!("{title}: latency percentiles"),
            )?;
            plot::timeseries(
                &[r],
                &dir.join(format!("{stem}-timeseries")),
                &format!("{title}: throughput and p99 per second"),
            )?;
        }
        eprintln!("wrote {}", json.display());
    }
    Ok(())
}

fn report(out: &Path, files: &[PathBuf]) -> Result<()> {
    if files.is_empty() {
        bail!("no result files given");
    }
    let mut runs: Vec<RunResult> = Vec::new();
    for f in files {
        let bytes = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
        runs.push(
            serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", f.display()))?,
        );
    }
    runs.sort_by(|a, b| {
        a.scenario
            .name
            .cmp(&b.scenario.name)
            .then(a.label.cmp(&b.label))
    });
    std::fs::create_dir_all(out)?;
    let table = comparison_table(&runs);
    let mut md = String::from("# Load generator results\n\n");
    md.push_str(&table);
    let spread = spread_table(&runs);
    if let Some(spread) = &spread {
        md.push_str("\n## Spread over repeated runs\n\nmedian (min-max)\n\n");
        md.push_str(spread);
    }
    let checks = check_targets(&runs);
    let targets = targets_table(&checks);
    if !checks.is_empty() {
        md.push_str("\n## Targets\n\n");
        md.push_str(&targets);
    }
    md.push('\n');
    let mut names: Vec<String> = runs.iter().map(|r| r.scenario.name.clone()).collect();
    names.dedup();
    for name in &names {
        let group: Vec<&RunResult> = runs.iter().filter(|r| &r.scenario.name == name).collect();
        plot::latency_distribution(
            &group,
            &out.join(format!("{name}-latency")),
            &format!("{name}: latency percentiles"),
        )?;
        plot::timeseries(
            &group,
            &out.join(format!("{name}-timeseries")),
            &format!("{name}: throughput and p99 per second"),
        )?;
        md.push_str(&format!(
            "\n## {name}\n\n![latency]({name}-latency.svg)\n\n![throughput and p99]({name}-timeseries.svg)\n\n```\n"
        ));
        for r in &group {
            md.push_str(&summary(r));
            md.push('\n');
        }
        md.push_str("```\n");
    }
    std::fs::write(out.join("summary.md"), &md)?;
    println!("{table}");
    if let Some(spread) = &spread {
        println!("spread over repeated runs, median (min-max):\n{spread}");
    }
    if !checks.is_empty() {
        println!("{targets}");
    }
    eprintln!("wrote {}", out.join("summary.md").display());
    Ok(())
}

/// A run where no client connected measured nothing: fail so scripts notice.
fn ensure_connected(r: &RunResult) -> Result<()> {
    if r.conns.connected == 0 {
        bail!(
            "no client connected to {}: {:?}",
            r.scenario.url,
            r.conns.disconnects
        );
    }
    Ok(())
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Run { o, out } => {
            let sc = o.scenario()?;
            let r = run(&RunOptions {
                scenario: sc,
                label: o.label.clone(),
                server_pid: o.server_pid,
                progress: !out.quiet,
            })?;
            write_outputs(&r, &out)?;
            ensure_connected(&r)?;
        }
        Cmd::Idle { o, hold, out } => {
            let mut sc = o.scenario()?;
            if o.scenario.is_none() {
                sc.name = "idle".into();
            }
            sc.duration_s = hold;
            if o.warmup.is_none() {
                sc.warmup_s = 2.0;
            }
            let r = run(&RunOptions {
                scenario: sc,
                label: o.label.clone(),
                server_pid: o.server_pid,
                progress: !out.quiet,
            })?;
            write_outputs(&r, &out)?;
            ensure_connected(&r)?;
            match &r.server {
                Some(sv) => println!(
                    "IDLE: {} clients open, server RSS {} KiB before connecting -> {} KiB after {:.0} s hold (peak {} KiB): {} KiB per connection",
                    r.open_at_end,
                    sv.baseline_rss_kib,
                    sv.end_rss_kib,
                    r.measured_s,
                    sv.peak_rss_kib,
                    sv.kib_per_connection.map_or("-".into(), |v| format!("{v:.2}"))
                ),
                None => bail!("server process not found: pass --server-pid"),
            }
        }
        Cmd::ServerArgs { scenario, listen } => {
            let s = Scenario::from_file(&scenario)?;
            println!("{}", s.server_args(&listen));
        }
        Cmd::Report { out, results } => report(&out, &results)?,
    }
    Ok(())
}
