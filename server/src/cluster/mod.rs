//! Scale-out over NATS: one binary, three roles.
//!
//! * `tickwire serve`: one process, in-process channels, no NATS (the default).
//! * `tickwire engine` ([`engine_role`]): feed handlers and book actors as in `serve`, plus a
//!   publisher that puts every tick, periodic snapshots and heartbeats on NATS and answers
//!   snapshot and instrument requests. With a lease ([`lease`]) several engines run warm and
//!   only the holder publishes.
//! * `tickwire gateway` ([`gateway`]): no feeds and no books; a [`Hub`](tickwire_engine::fanout::Hub)
//!   fed from NATS, subscribed only to the symbols its clients want, serving WebSocket
//!   clients with the same routers, outboxes and limits as `serve`.
//!
//! [`subjects`] names the NATS subjects, [`codec`] is the binary tick encoding between
//! engine and gateway. `docs/deployment.md` describes the topologies and the failure
//! behaviour; `docs/architecture.md` the data path.

pub mod codec;
pub mod engine_role;
mod follower;
pub mod gateway;
pub mod lease;
pub mod subjects;

use std::time::Duration;

/// Cluster settings shared by the engine and gateway roles (`[cluster]` in the file).
#[derive(Debug, Clone)]
pub struct ClusterSettings {
    /// NATS server URL(s), comma-separated.
    pub nats_url: String,
    /// First token of every subject (default `md`).
    pub subject_prefix: String,
    /// Name of this engine in heartbeats and the lease.
    pub engine_id: String,
    /// Engine: publish only while holding the lease (active/standby pairs).
    pub lease: bool,
    /// JetStream key-value bucket of the lease.
    pub lease_bucket: String,
    /// A lease not renewed for this long is taken over by a standby.
    pub lease_ttl: Duration,
    /// Engine: how often every symbol's snapshot is published.
    pub snapshot_interval: Duration,
    /// Engine: how often the active engine says it is alive.
    pub heartbeat_interval: Duration,
    /// Gateway: with no heartbeat for this long, its symbols are marked stale.
    pub engine_timeout: Duration,
    /// Engine: capacity of the publisher's tick queue (ticks; overflow is answered with
    /// snapshots, never with growth).
    pub publish_queue: usize,
}

impl Default for ClusterSettings {
    fn default() -> Self {
        ClusterSettings {
            nats_url: "nats://127.0.0.1:4222".into(),
            subject_prefix: subjects::DEFAULT_PREFIX.into(),
            engine_id: default_engine_id(),
            lease: false,
            lease_bucket: "tickwire_lease".into(),
            lease_ttl: Duration::from_millis(2000),
            snapshot_interval: Duration::from_millis(1000),
            heartbeat_interval: Duration::from_millis(200),
            engine_timeout: Duration::from_millis(1000),
            publish_queue: 1 << 16,
        }
    }
}

/// `engine-<pid>`: unique on one machine; set `cluster.engine_id` across machines.
pub fn default_engine_id() -> String {
    format!("engine-{}", std::process::id())
}

/// Connects to NATS (`url` may list several servers, comma-separated: the client moves
/// between them), retrying forever (also on the first attempt), and reports connection
/// changes to `on_event`.
pub(crate) async fn connect(
    url: &str,
    name: &str,
    on_event: impl Fn(async_nats::Event) + Send + Sync + 'static,
) -> Result<async_nats::Client, String> {
    let servers = url
        .split(',')
        .map(|u| u.trim().parse::<async_nats::ServerAddr>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{url}: {e}"))?;
    let on_event = std::sync::Arc::new(on_event);
    async_nats::ConnectOptions::new()
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        // A restarted nats-server is back within a second or two; do not wait 4 s for it.
        .reconnect_delay_callback(|attempts| Duration::from_millis((50 * attempts as u64).min(500)))
        .request_timeout(Some(Duration::from_millis(1000)))
        .event_callback(move |event| {
            let on_event = on_event.clone();
            async move { on_event(event) }
        })
        .connect(servers)
        .await
        .map_err(|e| e.to_string())
}
