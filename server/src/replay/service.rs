//! What every replay of the process shares: the dataset catalog, the limits, and the small
//! pool of threads (actix arbiters) the replays' feed handlers and book actors run on, so a
//! replay costs actors, not threads, and heavy replay work stays off the server workers.
//!
//! It is installed once by `app::serve` and found by sessions and HTTP handlers through
//! [`get`], which keeps the session and app wiring untouched by replay details.

use std::sync::{Arc, OnceLock};

use actix::Arbiter;
use tickwire_engine::actors::EngineThreads;

use super::catalog::Catalog;
use super::limits::ReplayLimits;
use crate::config::ReplaySettings;
use crate::metrics::Metrics;

/// See the module documentation.
pub struct ReplayService {
    pub catalog: Catalog,
    pub limits: Arc<ReplayLimits>,
    pub metrics: Arc<Metrics>,
    threads: usize,
    pool: OnceLock<(Vec<Arbiter>, EngineThreads)>,
}

static SERVICE: OnceLock<Arc<ReplayService>> = OnceLock::new();

impl ReplayService {
    /// The pool's threads, started on first use.
    pub fn threads(&self) -> EngineThreads {
        self.pool
            .get_or_init(|| {
                let arbiters: Vec<Arbiter> =
                    (0..self.threads.max(1)).map(|_| Arbiter::new()).collect();
                let handles: Vec<_> = arbiters.iter().map(Arbiter::handle).collect();
                let threads = EngineThreads {
                    feed: handles[0].clone(),
                    books: handles,
                };
                (arbiters, threads)
            })
            .1
            .clone()
    }
}

/// Installs the process's replay service (the first call wins).
pub fn install(settings: &ReplaySettings, metrics: Arc<Metrics>) -> Arc<ReplayService> {
    SERVICE
        .get_or_init(|| {
            Arc::new(ReplayService {
                catalog: Catalog::load(settings.datasets_dir.as_deref()),
                limits: ReplayLimits::new(
                    settings.max_per_user,
                    settings.max_total,
                    metrics.clone(),
                ),
                metrics,
                threads: settings.threads,
                pool: OnceLock::new(),
            })
        })
        .clone()
}

/// The installed service, if any.
pub fn get() -> Option<Arc<ReplayService>> {
    SERVICE.get().cloned()
}
