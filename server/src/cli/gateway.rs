//! `tickwire gateway`: the cluster's gateway role. No feeds, no books: WebSocket clients
//! served from a hub fed from NATS (`tickwire_server::cluster::gateway`), with the same
//! sessions, limits, health and metrics as `serve`.

use anyhow::Context as _;

use tickwire_engine::fanout::hub::DEFAULT_WORKER_QUEUE;
use tickwire_server::app;
use tickwire_server::cluster::gateway::Gateway;

use super::engine::ClusterRoleArgs;

pub(crate) type GatewayArgs = ClusterRoleArgs;

pub(crate) fn run(args: GatewayArgs, log_json: bool) -> anyhow::Result<()> {
    let (config, reloader) = args.start(log_json)?;
    let system = actix_rt::System::new();
    system.block_on(async move {
        let name = format!("tickwire gateway {}", config.listen);
        let gateway = Gateway::start(&config.cluster, &name, config.workers, DEFAULT_WORKER_QUEUE)
            .context("starting the gateway")?;
        app::serve(config, gateway, reloader).await
    })
}
