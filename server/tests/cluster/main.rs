//! Cluster acceptance tests: `tickwire engine` and `tickwire gateway` over a real
//! nats-server (and haproxy), against `tickwire serve` on the same feed.

mod failover;
mod haproxy;
mod malformed;
mod nats_restart;
mod serve_equivalence;
mod support;
