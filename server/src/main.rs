//! `tickwire`: the command-line entry point.
//!
//! `tickwire` alone serves the default market on 127.0.0.1:8080; `tickwire serve --help`
//! lists every setting. Settings come from, lowest first: built-in defaults, the
//! `--config` TOML file, `TICKWIRE_*` environment variables, command-line flags
//! (`tickwire_server::config` owns the file layout and its validation). The subcommands
//! live in `cli/`, one file each.

mod cli;

use tickwire_server::config::ConfigError;

fn main() -> anyhow::Result<()> {
    match cli::run() {
        Err(e) if e.is::<ConfigError>() => {
            // A configuration mistake is the operator's, not a bug: no backtrace.
            eprintln!("error: {e}");
            std::process::exit(2);
        }
        other => other,
    }
}
