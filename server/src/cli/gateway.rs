//! `tickwire gateway`: the cluster's gateway role. No feeds, no books: WebSocket clients
//! served from a hub fed from NATS (`tickwire_server::cluster::gateway`), with the same
//! sessions, limits, health and metrics as `serve`.

use anyhow::Context as _;
use clap::Args;

use tickwire_engine::fanout::hub::DEFAULT_WORKER_QUEUE;
use tickwire_server::app;
use tickwire_server::cluster::gateway::Gateway;
use tickwire_server::reload::Reloader;

use super::engine::ClusterArgs;
use super::serve::ServeArgs;

#[derive(Args, Clone, Default)]
pub(crate) struct GatewayArgs {
    #[command(flatten)]
    serve: ServeArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub(crate) fn run(args: GatewayArgs, log_json: bool) -> anyhow::Result<()> {
    let (config, notes) = args.serve.resolve_with(|c| args.cluster.apply(c))?;
    let reload_args = args.clone();
    let reloader = Reloader::new(Box::new(move || {
        Ok(reload_args
            .serve
            .resolve_with(|c| reload_args.cluster.apply(c))?
            .0)
    }));
    super::logging::init(log_json || config.log_json);
    for n in notes {
        tracing::warn!("{n}");
    }
    let system = actix_rt::System::new();
    system.block_on(async move {
        let name = format!("tickwire gateway {}", config.listen);
        let gateway = Gateway::start(&config.cluster, &name, config.workers, DEFAULT_WORKER_QUEUE)
            .context("starting the gateway")?;
        app::serve(config, gateway, reloader).await
    })
}
