//! Log output of every command: `tracing` to stderr (stdout stays clean for commands that
//! print data), human-readable on a terminal, JSON lines with `--log-json`, levels from
//! `RUST_LOG`.

pub(crate) fn init(json: bool) {
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
