//! The listening socket and what every accepted connection goes through.
//!
//! We assemble the server from its parts instead of using `actix_web::HttpServer`, because
//! `HttpServer` gives no way to take a WebSocket connection away from actix-http:
//!
//! ```text
//! actix-server (accept, one single-threaded runtime per worker)
//!   └─ TCP setup: TCP_NODELAY, send buffer size
//!       └─ [TLS handshake, when configured: `crate::net::tls`]
//!           └─ actix-http HTTP/1.1 dispatcher
//!               ├─ ordinary request → actix-web `App` (every HTTP route, `crate::app::routes`)
//!               └─ `Upgrade: websocket` → `crate::net::upgrade` → our own `Connection`
//! ```
//!
//! HTTP and WebSocket share the port; with TLS configured, the port speaks only TLS.

use std::net::SocketAddr;
use std::time::Duration;

use actix_codec::Framed;
use actix_http::error::DispatchError;
use actix_http::{h1, Request};
use actix_service::{fn_service, map_config, ServiceFactory, ServiceFactoryExt};
use actix_web::dev::AppConfig;
use actix_web::{web, App};
use tokio::net::TcpStream;

use crate::app::{routes, AppState};
use crate::config::ServerConfig;
use crate::net::tls::TlsAcceptor;
use crate::net::upgrade::upgrade;
use crate::transport::WsStream;

/// A bound, running server.
pub struct Listening {
    pub server: actix_server::Server,
    pub addr: SocketAddr,
    /// `ws` or `wss`.
    pub ws_scheme: &'static str,
}

/// Binds `config.listen` and starts the workers.
pub fn start(
    config: &ServerConfig,
    state: web::Data<AppState>,
    tls: Option<TlsAcceptor>,
) -> std::io::Result<Listening> {
    let listener = bind(config.listen, 4096)?;
    let addr = listener.local_addr()?;
    let send_buffer = config.session.socket_send_buffer;
    // Longest wait for a request head and for a TLS handshake: the slowloris bound
    // (`limits.handshake_timeout_ms`, see docs/security.md).
    let request_timeout = config.security.handshake_timeout;
    let builder = actix_server::Server::build()
        .workers(config.workers)
        // We handle the signals ourselves: actix's own graceful stop would wait for
        // WebSocket connections that never end by themselves.
        .disable_signals()
        .shutdown_timeout(config.drain_timeout.as_secs().max(1));
    let ws_scheme = if tls.is_some() { "wss" } else { "ws" };
    let builder = match tls {
        None => builder.listen("tickwire", listener, move || {
            fn_service(move |tcp: TcpStream| {
                prepare_tcp(&tcp, send_buffer);
                let peer = tcp.peer_addr().ok();
                std::future::ready(Ok::<_, DispatchError>((tcp, peer)))
            })
            .and_then(http_service::<TcpStream>(
                state.clone(),
                addr,
                false,
                request_timeout,
            ))
        })?,
        Some(tls) => builder.listen("tickwire-tls", listener, move || {
            let tls = tls.clone();
            fn_service(move |tcp: TcpStream| {
                let tls = tls.clone();
                async move {
                    prepare_tcp(&tcp, send_buffer);
                    let peer = tcp.peer_addr().ok();
                    let stream = tls.accept(tcp, peer, request_timeout).await?;
                    Ok::<_, DispatchError>((stream, peer))
                }
            })
            .and_then(http_service(state.clone(), addr, true, request_timeout))
        })?,
    };
    Ok(Listening {
        server: builder.run(),
        addr,
        ws_scheme,
    })
}

/// The HTTP/1.1 service of one worker: actix-web's `App` for requests, [`upgrade`] for
/// WebSocket upgrades.
fn http_service<T: WsStream>(
    state: web::Data<AppState>,
    addr: SocketAddr,
    secure: bool,
    request_timeout: Duration,
) -> impl ServiceFactory<
    (T, Option<SocketAddr>),
    Config = (),
    Response = (),
    Error = DispatchError,
    InitError = (),
> {
    let security = web::Data::new(state.security.clone());
    let app = App::new()
        .app_data(state.clone())
        .app_data(security)
        .configure(routes);
    let builder = actix_http::HttpServiceBuilder::default()
        .client_request_timeout(request_timeout)
        .local_addr(addr);
    let builder = if secure { builder.secure() } else { builder };
    builder
        .upgrade(fn_service(
            move |(req, framed): (Request, Framed<T, h1::Codec>)| {
                upgrade(req, framed, state.clone())
            },
        ))
        .h1(map_config(app, move |_| {
            // What `HttpServer` passes: scheme and host for `ConnectionInfo`.
            AppConfig::__priv_test_new(secure, addr.to_string(), addr)
        }))
        .map_err(|e| {
            tracing::debug!(error = %e, "HTTP connection error");
            e
        })
        .map_init_err(|_| ())
}

/// Per-connection socket options.
fn prepare_tcp(tcp: &TcpStream, send_buffer: usize) {
    // Ticks are small and latency-bound: never wait to coalesce segments.
    let _ = tcp.set_nodelay(true);
    let _ = socket2::SockRef::from(tcp).set_send_buffer_size(send_buffer);
}

/// A non-blocking listening socket with `SO_REUSEADDR` and the given backlog.
fn bind(addr: SocketAddr, backlog: i32) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}
