//! `tickwire engine`: the cluster's engine role. Feeds and book actors as in `serve`, plus
//! the NATS publisher (`tickwire_server::cluster::engine_role`); with `--lease`, one of an
//! active/standby pair. It serves HTTP (health, readiness, metrics) and local WebSocket
//! clients on its listen address like `serve`.

use anyhow::Context as _;
use clap::Args;

use tickwire_engine::domain::Nanos;
use tickwire_engine::Engine;
use tickwire_server::app;
use tickwire_server::cluster::engine_role::ClusterEngine;
use tickwire_server::config::{FileConfig, ServerConfig};
use tickwire_server::reload::Reloader;

use super::serve::{build_adapter, engine_config, ServeArgs};

/// Flags of the `[cluster]` table, shared by `engine` and `gateway`.
#[derive(Args, Clone, Default)]
pub(crate) struct ClusterArgs {
    /// NATS server URL(s), comma-separated [default: nats://127.0.0.1:4222]. Key:
    /// cluster.nats_url.
    #[arg(long)]
    nats_url: Option<String>,
    /// First token of every NATS subject [default: md]. Key: cluster.subject_prefix.
    #[arg(long)]
    subject_prefix: Option<String>,
    /// Engine: its name in heartbeats and the lease [default: engine-<pid>]. Key:
    /// cluster.engine_id.
    #[arg(long)]
    engine_id: Option<String>,
    /// Engine: publish only while holding the lease in NATS JetStream (run two for an
    /// active/standby pair; nats-server needs -js). Key: cluster.lease.
    #[arg(long)]
    lease: bool,
    /// Engine: milliseconds without renewal after which a standby takes the lease over
    /// [default: 2000]. Key: cluster.lease_ttl_ms.
    #[arg(long)]
    lease_ttl_ms: Option<u64>,
    /// Engine: milliseconds between periodic snapshots of every symbol [default: 1000].
    /// Key: cluster.snapshot_interval_ms.
    #[arg(long)]
    snapshot_interval_ms: Option<u64>,
    /// Engine: milliseconds between heartbeats [default: 200]. Key:
    /// cluster.heartbeat_interval_ms.
    #[arg(long)]
    heartbeat_interval_ms: Option<u64>,
    /// Gateway: milliseconds without an active engine's heartbeat before its symbols are
    /// marked stale [default: 1000]. Key: cluster.engine_timeout_ms.
    #[arg(long)]
    engine_timeout_ms: Option<u64>,
}

impl ClusterArgs {
    pub(crate) fn apply(&self, c: &mut FileConfig) {
        fn set<T: Clone>(to: &mut T, from: &Option<T>) {
            if let Some(v) = from {
                *to = v.clone();
            }
        }
        let k = &mut c.cluster;
        set(&mut k.nats_url, &self.nats_url);
        set(&mut k.subject_prefix, &self.subject_prefix);
        set(&mut k.engine_id, &self.engine_id);
        set(&mut k.lease_ttl_ms, &self.lease_ttl_ms);
        set(&mut k.snapshot_interval_ms, &self.snapshot_interval_ms);
        set(&mut k.heartbeat_interval_ms, &self.heartbeat_interval_ms);
        set(&mut k.engine_timeout_ms, &self.engine_timeout_ms);
        if self.lease {
            k.lease = true;
        }
    }
}

/// The flags of a cluster role (`engine`, `gateway`): `serve`'s, plus the `[cluster]` ones.
#[derive(Args, Clone, Default)]
pub(crate) struct ClusterRoleArgs {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

impl ClusterRoleArgs {
    /// Resolves the configuration (file, environment, flags), builds the reloader that
    /// resolves it again on SIGHUP, and starts logging.
    pub(crate) fn start(
        &self,
        log_json: bool,
    ) -> anyhow::Result<(ServerConfig, std::sync::Arc<Reloader>)> {
        let (config, notes) = self.serve.resolve_with(|c| self.cluster.apply(c))?;
        let again = self.clone();
        let reloader = Reloader::new(Box::new(move || {
            Ok(again.serve.resolve_with(|c| again.cluster.apply(c))?.0)
        }));
        super::logging::init(log_json || config.log_json);
        for n in notes {
            tracing::warn!("{n}");
        }
        Ok((config, reloader))
    }
}

pub(crate) type EngineArgs = ClusterRoleArgs;

pub(crate) fn run(args: EngineArgs, log_json: bool) -> anyhow::Result<()> {
    let (config, reloader) = args.start(log_json)?;
    let system = actix_rt::System::new();
    system.block_on(async move {
        let adapter = build_adapter(&config.feed, None)?;
        let mut sizing = engine_config(&config);
        // One more hub queue: the publisher's.
        sizing.server_workers += 1;
        // seq keeps increasing across restarts and takeovers: start at the time (µs).
        sizing.seq_base = (Nanos::now().get() / 1_000) as u64;
        let engine = Engine::start(vec![adapter], sizing).context("starting the engine")?;
        let cluster =
            ClusterEngine::start(engine, &config.cluster).context("starting the publisher")?;
        app::serve(config, cluster, reloader).await
    })
}
