//! The load generator: scenario configuration, WebSocket clients, measurement, reporting.
//!
//! Layout (each module's own docs say what it owns):
//! - [`config`]: scenarios (TOML + CLI overrides) and symbol-selection patterns;
//! - [`protocol`]: the documented JSON protocol — subscribe requests out, simd-json parsing in;
//! - [`stats`]: per-worker measurement state (HDR latency, counters, gap/conflation tracking);
//! - [`client`]: one WebSocket client (healthy or stalled) and its connect path;
//! - [`ws`]: the lean WebSocket connection the clients read through;
//! - [`procstat`]: `/proc` sampling of the server and of the generator itself, rlimits;
//! - [`runner`]: worker threads, connection pacing, warm-up/measurement phases, progress line;
//! - [`report`]: the result model, JSON output and the summary tables;
//! - [`plot`]: SVG and PNG plots of a run (or several runs side by side).

pub mod client;
pub mod config;
pub mod plot;
pub mod procstat;
pub mod protocol;
pub mod report;
pub mod runner;
pub mod stats;
pub mod ws;
