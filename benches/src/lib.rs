//! Tickwire benchmarking support.
//!
//! `loadgen` owns the WebSocket load generator behind the `tickwire-loadgen` binary: it talks
//! only the documented client protocol, so it can measure any server that speaks it (a
//! Tickwire deployment or the Node `ws` baseline in `benches/baselines/node-ws`).

pub mod loadgen;
