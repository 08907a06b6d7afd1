//! HTTP wiring: routes, connection setup and the WebSocket upgrade.
//!
//! | route | what |
//! |---|---|
//! | `GET /` , `/app.js`, `/tickwire.js`, `/style.css` | the trading UI and the JS client library |
//! | `GET /ws` | WebSocket upgrade (handled by `crate::net::upgrade`); one `Session` actor per connection |
//! | `GET /symbols` | instruments served (symbol, venue, price and size scale) |
//! | `GET /healthz` | process alive |
//! | `GET /readyz` | 200 when every feed is live and every book synced; 503 with reasons |
//! | `GET /metrics` | Prometheus text exposition (see `metrics.rs`) |
//! | `GET /stats` | counters as JSON |
//! | `POST /auth/ticket`, `GET /auth/status` | upgrade tickets (see `security/`) |
//! | `POST /admin/reload` | re-read the configuration and apply what can change (see `reload.rs`); loopback clients, or the admin key |
//! | `POST /admin/fault/feed/{name}`, `POST /admin/fault/book/{symbol}` | fault injection, only with `--enable-fault-injection` |
//!
//! [`serve`] also owns the process lifecycle: on SIGTERM or SIGINT it stops accepting,
//! lets every worker close its sessions 1001 after a final flush, waits for them to go
//! (at most the configured drain time) and returns, so the process exits 0.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Serialize;

use tickwire_engine::domain::Scale;
use tickwire_engine::tick::{FeedState, TickBody};

pub use crate::source::MarketSource;

use crate::config::{ServerConfig, SessionLimits};
use crate::metrics::{FeedSnapshot, Metrics, Snapshot};
use crate::net::listener;
use crate::net::tls::{self, TlsAcceptor};
use crate::reload::Reloader;
use crate::security::Security;
use crate::ws;

/// Shared by every worker.
pub struct AppState {
    /// A local engine, or a gateway's hub fed from NATS.
    pub engine: Box<dyn MarketSource>,
    pub limits: Arc<SessionLimits>,
    pub metrics: Arc<Metrics>,
    pub fault_injection: bool,
    pub reloader: Arc<Reloader>,
    pub security: Arc<Security>,
}

/// `GET /ws` without `Upgrade: websocket` (upgrades never reach the `App`; see
/// `crate::net`): refused with the handshake's reason.
async fn ws_without_upgrade(req: HttpRequest) -> HttpResponse {
    match ws::negotiate(req.head(), false, false) {
        Err(e) => HttpResponse::BadRequest().body(e.to_string()),
        Ok(_) => HttpResponse::BadRequest().body("WebSocket upgrade expected\n"),
    }
}

#[derive(Serialize)]
struct SymbolInfo<'a> {
    symbol: &'a str,
    venue: &'a str,
    price_scale: Scale,
    size_scale: Scale,
}

async fn symbols(state: web::Data<AppState>) -> HttpResponse {
    let list: Vec<SymbolInfo> = state
        .engine
        .symbols()
        .iter()
        .map(|(_, i)| SymbolInfo {
            symbol: &i.symbol,
            venue: &i.venue,
            price_scale: i.price_scale,
            size_scale: i.size_scale,
        })
        .collect();
    HttpResponse::Ok().json(list)
}

async fn stats(state: web::Data<AppState>) -> HttpResponse {
    let hub = &state.engine.hub().stats;
    let books = state.engine.book_stats();
    let mut v = state.metrics.to_json();
    v["ticks_published"] = hub.published.load(Ordering::Relaxed).into();
    v["worker_queue_overflows"] = hub.worker_overflows.load(Ordering::Relaxed).into();
    v["book_events"] = books.events.load(Ordering::Relaxed).into();
    v["book_restarts"] = books.restarts.load(Ordering::Relaxed).into();
    if let Some(cluster) = state.engine.stats_json() {
        v["cluster"] = cluster;
    }
    HttpResponse::Ok().json(v)
}

/// Feed state of every feed, from the last status each book published.
pub fn feed_snapshots(engine: &dyn MarketSource) -> Vec<FeedSnapshot> {
    let hub = engine.hub();
    engine
        .feeds()
        .map(|f| {
            let (mut live, mut stale, mut pending) = (0, 0, 0);
            for s in f.symbols {
                match hub.last_values(*s).status.as_deref().map(|t| &t.body) {
                    Some(TickBody::Status {
                        state: FeedState::Live,
                        ..
                    }) => live += 1,
                    Some(_) => stale += 1,
                    None => pending += 1,
                }
            }
            FeedSnapshot {
                name: f.name.to_string(),
                events: f.events,
                symbols: f.symbols.len(),
                live,
                stale,
                pending,
            }
        })
        .collect()
}

async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let mut snap = Snapshot::of(&state.metrics);
    let hub = &state.engine.hub().stats;
    let books = state.engine.book_stats();
    snap.feeds = feed_snapshots(state.engine.as_ref());
    snap.worker_queue_overflows = hub.worker_overflows.load(Ordering::Relaxed);
    snap.ticks_published = hub.published.load(Ordering::Relaxed);
    snap.book_restarts = books.restarts.load(Ordering::Relaxed);
    snap.book_events_dropped = books.dropped_unsynced.load(Ordering::Relaxed);
    snap.books = state.engine.symbols().len() as u64;
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(snap.encode())
}

/// Why the server is not ready; empty when it is.
pub fn not_ready_reasons(engine: &dyn MarketSource, metrics: &Metrics) -> Vec<String> {
    let mut reasons = Vec::new();
    if metrics.draining.load(Ordering::Relaxed) {
        reasons.push("shutting down".to_string());
    }
    reasons.extend(engine.extra_not_ready());
    for f in feed_snapshots(engine) {
        if f.pending > 0 {
            reasons.push(format!(
                "feed {}: {} of {} books not synced yet (no snapshot)",
                f.name, f.pending, f.symbols
            ));
        }
        if f.stale > 0 {
            reasons.push(format!(
                "feed {}: {} of {} symbols stale",
                f.name, f.stale, f.symbols
            ));
        }
    }
    reasons
}

async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let reasons = not_ready_reasons(state.engine.as_ref(), &state.metrics);
    if reasons.is_empty() {
        HttpResponse::Ok().json(serde_json::json!({"ready": true, "reasons": []}))
    } else {
        HttpResponse::ServiceUnavailable()
            .json(serde_json::json!({"ready": false, "reasons": reasons}))
    }
}

async fn admin_reload(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if let Err(refused) = state
        .security
        .authorize_admin(req.headers(), req.peer_addr())
    {
        return crate::security::http::admin_refusal(refused);
    }
    let reloader = state.reloader.clone();
    match web::block(move || reloader.reload()).await {
        Ok(report) if report.ok => HttpResponse::Ok().json(report),
        Ok(report) => HttpResponse::UnprocessableEntity().json(report),
        Err(e) => HttpResponse::InternalServerError().body(format!("{e}\n")),
    }
}

async fn fault_feed(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> HttpResponse {
    if !state.fault_injection {
        return HttpResponse::NotFound().finish();
    }
    if let Err(refused) = state
        .security
        .authorize_admin(req.headers(), req.peer_addr())
    {
        return crate::security::http::admin_refusal(refused);
    }
    match state
        .engine
        .inject_feed_fault(&name, "injected by admin request")
    {
        Ok(()) => HttpResponse::Accepted().body("fault injected\n"),
        Err(e) => HttpResponse::NotFound().body(format!("{e}\n")),
    }
}

async fn fault_book(
    req: HttpRequest,
    state: web::Data<AppState>,
    symbol: web::Path<String>,
) -> HttpResponse {
    if !state.fault_injection {
        return HttpResponse::NotFound().finish();
    }
    if let Err(refused) = state
        .security
        .authorize_admin(req.headers(), req.peer_addr())
    {
        return crate::security::http::admin_refusal(refused);
    }
    match state.engine.symbols().lookup(&symbol) {
        Some(id) => {
            state.engine.inject_book_fault(id);
            HttpResponse::Accepted().body("fault injected\n")
        }
        None => HttpResponse::NotFound().body("unknown symbol\n"),
    }
}

/// Registers every route on an actix `App`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/ws", web::get().to(ws_without_upgrade))
        .route("/symbols", web::get().to(symbols))
        .route("/stats", web::get().to(stats))
        .route("/metrics", web::get().to(metrics))
        .route("/healthz", web::get().to(|| async { "ok\n" }))
        .route("/readyz", web::get().to(readyz))
        .route("/admin/reload", web::post().to(admin_reload))
        .route("/admin/fault/feed/{name}", web::post().to(fault_feed))
        .route("/admin/fault/book/{symbol}", web::post().to(fault_book))
        .configure(crate::replay::http::routes)
        .configure(crate::security::http::routes)
        .configure(crate::web::routes);
}

/// Serves `engine` (a local [`Engine`](tickwire_engine::Engine) or a gateway's source)
/// until the server stops: on SIGTERM/SIGINT it drains (see the module documentation) and
/// returns `Ok`; on SIGHUP it reloads through `reloader`. Runs inside an actix system.
pub async fn serve(
    config: ServerConfig,
    engine: impl MarketSource,
    reloader: Arc<Reloader>,
) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(config.latency_sample_every));
    crate::replay::service::install(&config.replay, metrics.clone());
    let security = Security::new(config.security.clone(), metrics.clone());
    security.log_startup(config.listen);
    let hooked = security.clone();
    reloader.register(
        "security",
        Box::new(move |c| hooked.reload(c.security.clone())),
    );
    let state = web::Data::new(AppState {
        engine: Box::new(engine),
        limits: Arc::new(config.session.clone()),
        metrics: metrics.clone(),
        fault_injection: config.fault_injection,
        reloader: reloader.clone(),
        security: security.clone(),
    });
    let tls = match &config.tls {
        Some(files) => {
            let acceptor = TlsAcceptor::new(files, metrics.clone())?;
            let store = acceptor.store().clone();
            let serving = files.clone();
            reloader.register(
                "tls",
                Box::new(move |new| tls::reload_into(&store, new.tls.as_ref(), &serving)),
            );
            Some(acceptor)
        }
        None => None,
    };
    actix_rt::spawn(reloader.listen_for_sighup());
    let listening = listener::start(&config, state, tls)?;
    let (addr, scheme) = (listening.addr, listening.ws_scheme);
    tracing::info!(%addr, "listening; WebSocket at {scheme}://{addr}/ws");
    let server = listening.server;
    let handle = server.handle();
    let drain_timeout = config.drain_timeout;
    actix_rt::spawn(async move {
        let signal = shutdown_signal().await;
        let started = Instant::now();
        tracing::info!(
            signal,
            sessions = metrics.sessions_active.get(),
            drain_ms = drain_timeout.as_millis() as u64,
            "shutting down: no new connections; closing sessions 1001"
        );
        handle.pause().await;
        metrics.draining.store(true, Ordering::Relaxed);
        let deadline = started + drain_timeout;
        while metrics.sessions_active.get() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let left = metrics.sessions_active.get();
        if left > 0 {
            tracing::warn!(
                sessions = left,
                "drain time over; dropping the remaining connections"
            );
        } else {
            tracing::info!(
                elapsed_ms = started.elapsed().as_millis() as u64,
                "every session closed"
            );
        }
        handle.stop(false).await;
    });
    server.await?;
    tracing::info!("stopped");
    Ok(())
}

/// Waits for SIGTERM or SIGINT and names it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return std::future::pending().await;
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        r = tokio::signal::ctrl_c() => {
            if let Err(e) = r {
                tracing::error!(error = %e, "cannot listen for SIGINT");
                std::future::pending::<()>().await;
            }
            "SIGINT"
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use futures_util::future::LocalBoxFuture;
    use futures_util::FutureExt as _;
    use tickwire_engine::domain::Instrument;
    use tickwire_engine::{Engine, EngineConfig, FeedAdapter, FeedError, FeedIo};
    use tickwire_feeds::{SyntheticAdapter, SyntheticConfig};

    use super::*;

    /// The synthetic feed, held back until the test opens the gate: the state "engine up,
    /// no snapshot yet" lasts as long as the test needs.
    struct Gated {
        inner: SyntheticAdapter,
        gate: Arc<tokio::sync::Semaphore>,
    }

    impl FeedAdapter for Gated {
        fn name(&self) -> &str {
            self.inner.name()
        }
        fn instruments(&self) -> Vec<Instrument> {
            self.inner.instruments()
        }
        fn run<'a>(&'a mut self, io: &'a mut FeedIo) -> LocalBoxFuture<'a, Result<(), FeedError>> {
            let gate = self.gate.clone();
            async move {
                let _open = gate.acquire().await.expect("gate");
                self.inner.run(io).await
            }
            .boxed_local()
        }
    }

    #[test]
    fn not_ready_until_every_book_has_its_snapshot() {
        actix_rt::System::new().block_on(async {
            let gate = Arc::new(tokio::sync::Semaphore::new(0));
            let adapter = Gated {
                inner: SyntheticAdapter::new(SyntheticConfig {
                    symbols: 4,
                    rate: 100.0,
                    ..SyntheticConfig::default()
                }),
                gate: gate.clone(),
            };
            let engine = Engine::start(vec![Box::new(adapter)], EngineConfig::default()).unwrap();
            let metrics = Metrics::default();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let reasons = not_ready_reasons(&engine, &metrics);
            assert_eq!(
                reasons,
                vec!["feed synthetic: 4 of 4 books not synced yet (no snapshot)".to_string()]
            );
            gate.add_permits(1);
            let end = Instant::now() + Duration::from_secs(10);
            while !not_ready_reasons(&engine, &metrics).is_empty() {
                assert!(Instant::now() < end, "never ready");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let f = &feed_snapshots(&engine)[0];
            assert_eq!((f.live, f.stale, f.pending), (4, 0, 0));
            metrics.draining.store(true, Ordering::Relaxed);
            assert_eq!(not_ready_reasons(&engine, &metrics), vec!["shutting down"]);
        });
    }
}
