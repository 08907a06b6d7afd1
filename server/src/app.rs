//! HTTP wiring: routes, connection setup and the WebSocket upgrade.
//!
//! | route | what |
//! |---|---|
//! | `GET /` , `/app.js`, `/tickwire.js`, `/style.css` | the trading UI and the JS client library |
//! | `GET /ws` | WebSocket upgrade; one [`Session`] actor per connection |
//! | `GET /symbols` | instruments served (symbol, venue, price and size scale) |
//! | `GET /healthz` | process alive |
//! | `GET /stats` | counters as JSON |
//! | `POST /admin/fault/feed/{name}`, `POST /admin/fault/book/{symbol}` | fault injection, only with `--enable-fault-injection` |

use std::cell::{Cell, RefCell};
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use serde::Serialize;

use tickwire_engine::domain::Scale;
use tickwire_engine::fanout::{Outbox, OutboxLimits};
use tickwire_engine::Engine;

use crate::config::{ServerConfig, SessionLimits};
use crate::metrics::Metrics;
use crate::session::Session;
use crate::transport::{SessionShared, WsBody};
use crate::worker::Worker;
use crate::ws;

/// Shared by every worker.
pub struct AppState {
    pub engine: Engine,
    pub limits: Arc<SessionLimits>,
    pub metrics: Arc<Metrics>,
    pub fault_injection: bool,
}

/// The raw socket of a connection, captured at accept time.
#[derive(Clone, Copy)]
struct ConnFd(RawFd);

async fn ws_upgrade(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> actix_web::Result<HttpResponse> {
    let limits = &state.limits;
    let (mut response, negotiated) = ws::negotiate(&req, limits.permessage_deflate)
        .map_err(|e| actix_web::error::ErrorBadRequest(e.to_string()))?;
    let worker = Worker::current(state.engine.hub(), &state.limits, &state.metrics);
    let now = Instant::now();
    let shared = Rc::new(SessionShared {
        id: worker.next_session_id(),
        outbox: Rc::new(RefCell::new(Outbox::new(OutboxLimits {
            max_queued_bytes: limits.max_queued_bytes,
        }))),
        last_seen: Cell::new(now),
        last_ping: Cell::new(now),
        body_alive: Cell::new(true),
        fd: req.conn_data::<ConnFd>().map(|c| c.0),
        close_deadline: Cell::new(None),
    });
    let inbound = ws::InboundStream::new(
        payload.into_inner(),
        limits.max_message_bytes,
        negotiated.deflate,
    );
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let symbols = state.engine.symbols().clone();
    let session_shared = shared.clone();
    let hub = state.engine.hub().clone();
    Session::create(move |ctx| {
        ctx.add_stream(inbound);
        Session::new(session_shared, worker, symbols, hub, negotiated, peer)
    });
    let batch_window = negotiated.batch.then_some(limits.batch_window);
    let response = response.message_body(WsBody::new(shared, batch_window))?;
    Ok(HttpResponse::from(response.map_into_boxed_body()))
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
    HttpResponse::Ok().json(v)
}

async fn fault_feed(state: web::Data<AppState>, name: web::Path<String>) -> HttpResponse {
    if !state.fault_injection {
        return HttpResponse::NotFound().finish();
    }
    match state
        .engine
        .inject_feed_fault(&name, "injected by admin request")
    {
        Ok(()) => HttpResponse::Accepted().body("fault injected\n"),
        Err(e) => HttpResponse::NotFound().body(format!("{e}\n")),
    }
}

async fn fault_book(state: web::Data<AppState>, symbol: web::Path<String>) -> HttpResponse {
    if !state.fault_injection {
        return HttpResponse::NotFound().finish();
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
    cfg.route("/ws", web::get().to(ws_upgrade))
        .route("/symbols", web::get().to(symbols))
        .route("/stats", web::get().to(stats))
        .route("/healthz", web::get().to(|| async { "ok\n" }))
        .route("/admin/fault/feed/{name}", web::post().to(fault_feed))
        .route("/admin/fault/book/{symbol}", web::post().to(fault_book))
        .configure(crate::web::routes);
}

/// Starts the engine and serves until the server stops. Runs inside an actix system.
pub async fn serve(config: ServerConfig, engine: Engine) -> anyhow::Result<()> {
    let state = web::Data::new(AppState {
        engine,
        limits: Arc::new(config.session.clone()),
        metrics: Arc::new(Metrics::default()),
        fault_injection: config.fault_injection,
    });
    let send_buffer = config.session.socket_send_buffer;
    let server = HttpServer::new(move || App::new().app_data(state.clone()).configure(routes))
        .workers(config.workers)
        .backlog(4096)
        .on_connect(move |conn, ext| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                // Ticks are small and latency-bound: never wait to coalesce segments.
                let _ = tcp.set_nodelay(true);
                let _ = socket2::SockRef::from(tcp).set_send_buffer_size(send_buffer);
                ext.insert(ConnFd(tcp.as_raw_fd()));
            }
        })
        .bind(config.listen)?;
    for addr in server.addrs() {
        tracing::info!(%addr, "listening; WebSocket at ws://{addr}/ws");
    }
    server.run().await?;
    Ok(())
}
