//! `tickwire config check FILE`: validate a configuration file (with the `TICKWIRE_*`
//! environment applied) and print the effective settings.

use std::path::PathBuf;

use clap::Subcommand;

use tickwire_server::config::FileConfig;

#[derive(Subcommand)]
pub(crate) enum ConfigCommand {
    /// Check a configuration file (with the TICKWIRE_* environment applied) and print the
    /// resulting settings; exits non-zero naming the bad key.
    Check {
        /// The TOML file.
        file: PathBuf,
    },
}

/// Runs a `config` subcommand.
pub(crate) fn run(cmd: ConfigCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigCommand::Check { file } => {
            let loaded = FileConfig::load(Some(&file), std::env::vars())?;
            for n in &loaded.notes {
                eprintln!("note: {n}");
            }
            println!("# {}: ok; effective settings:", file.display());
            let mut shown = loaded.config;
            shown.auth = shown.auth.redacted();
            print!("{}", toml::to_string(&shown)?);
            Ok(())
        }
    }
}
