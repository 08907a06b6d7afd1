//! The WebSocket upgrade: where a connection leaves actix-http.
//!
//! actix-http calls [`upgrade`] with a request that asks to switch to WebSocket
//! (`Upgrade: websocket`) and the connection's `Framed` transport. We validate the handshake,
//! take the socket, the bytes the client already sent past its request head, and any
//! response actix-http had not finished writing, and drop the rest of actix-http's
//! connection state (its read and write buffers, codec and timers). The session actor is
//! created as before and the connection runs on [`Connection`]; this function returns at
//! once, so the HTTP dispatcher and its task are freed.
//!
//! A request that cannot be upgraded gets a complete HTTP error response here and the
//! connection is closed: 400 with the reason for a bad handshake, 404 for any path but `/ws`,
//! and security's answer (401 ticket, 403 Origin, 429/503 connection caps, JSON bodies; see
//! `crate::security`) for a request that may not open a session. [`accept`] makes all of
//! these decisions; the session keeps the admission (user, entitlements, rate limiter,
//! connection slots) for its whole life.

use std::cell::RefCell;
use std::rc::Rc;

use actix::prelude::*;

use actix_codec::Framed;
use actix_http::{h1, Request};
use actix_web::web;
use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use tickwire_engine::fanout::{Outbox, OutboxLimits};

use crate::app::AppState;
use actix_web::HttpMessage as _;

use crate::security::{Admission, Refusal, UpgradeRequest};
use crate::session::Session;
use crate::transport::{Connection, InboxStream, SessionShared, WsStream};
use crate::worker::Worker;
use crate::ws::{self, InboundDecoder, Outbound};

/// The path WebSocket clients connect to.
pub const WS_PATH: &str = "/ws";

/// Why an upgrade request was refused: the response sent.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub reason: &'static str,
    pub content_type: &'static str,
    /// Further headers (`WWW-Authenticate`, `Retry-After`).
    pub headers: Vec<(&'static str, &'static str)>,
    pub body: String,
}

impl Refused {
    fn text(status: u16, reason: &'static str, body: String) -> Refused {
        Refused {
            status,
            reason,
            content_type: "text/plain; charset=utf-8",
            headers: Vec::new(),
            body,
        }
    }

    /// The answer to an upgrade that security refused (401, 403, 429, 503; JSON body).
    fn of(r: &Refusal) -> Refused {
        let status = r.status();
        let headers = match status.as_u16() {
            401 => vec![("www-authenticate", "Bearer realm=\"tickwire\"")],
            429 | 503 => vec![("retry-after", "1")],
            _ => Vec::new(),
        };
        Refused {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Refused"),
            content_type: "application/json",
            headers,
            body: r.body().to_string(),
        }
    }
}

/// Handles one upgrade request; see the module documentation.
pub async fn upgrade<T: WsStream>(
    req: Request,
    framed: Framed<T, h1::Codec>,
    state: web::Data<AppState>,
) -> Result<(), actix_http::Error> {
    let (accepted, admission) = match accept(&req, &state) {
        Ok(a) => a,
        Err(refused) => {
            tracing::debug!(status = refused.status, path = %req.path(), body = %refused.body, "upgrade refused");
            let io = framed.into_parts().io;
            if let Err(e) = send_refusal(io, &refused).await {
                tracing::debug!(error = %e, "could not send the refusal");
            }
            return Ok(());
        }
    };
    let parts = framed.into_parts();
    let limits = &state.limits;
    let negotiated = accepted.negotiated;
    let worker = Worker::current(state.engine.hub(), &state.limits, &state.metrics);
    let id = worker.next_session_id();
    let peer = req.peer_addr().map(|a| a.to_string()).unwrap_or_default();
    let span = tracing::info_span!("session", session = id, peer = %peer, user = %admission.user());
    let shared = Rc::new(SessionShared::new(
        id,
        Rc::new(RefCell::new(Outbox::new(OutboxLimits {
            max_queued_bytes: limits.max_queued_bytes,
        }))),
        Some(parts.io.tcp_fd()),
        span,
        state.metrics.clone(),
    ));
    let symbols = state.engine.symbols().clone();
    let hub = state.engine.hub().clone();
    let inbox = InboxStream(shared.clone());
    let session_shared = shared.clone();
    let session_worker = worker.clone();
    Session::create(move |ctx| {
        ctx.add_stream(inbox);
        Session::new(
            session_shared,
            session_worker,
            symbols,
            hub,
            negotiated,
            admission,
        )
    });
    let mut first: Vec<Bytes> = Vec::with_capacity(2);
    if !parts.write_buf.is_empty() {
        // A pipelined response before this request that actix-http had not written yet.
        first.push(parts.write_buf.freeze());
    }
    first.push(accepted.response());
    let connection = Connection::new(
        parts.io,
        shared,
        worker,
        InboundDecoder::new(limits.max_message_bytes, negotiated.deflate),
        Outbound::new(negotiated.batch.then_some(limits.batch_window)),
        first,
        &parts.read_buf,
    );
    actix_rt::spawn(connection);
    Ok(())
}

/// Writes a refusal as a complete HTTP response and closes the connection.
async fn send_refusal<T: WsStream>(mut io: T, refused: &Refused) -> std::io::Result<()> {
    let mut response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: {}\r\ncontent-length: {}\r\nconnection: close\r\n",
        refused.status,
        refused.reason,
        refused.content_type,
        refused.body.len(),
    );
    for (name, value) in &refused.headers {
        response.push_str(&format!("{name}: {value}\r\n"));
    }
    response.push_str("\r\n");
    response.push_str(&refused.body);
    io.write_all(response.as_bytes()).await?;
    io.shutdown().await
}

/// Decides whether the request becomes a WebSocket session: the path, the handshake, then
/// security's admission (Origin, connection caps, ticket, the user's caps).
fn accept(req: &Request, state: &AppState) -> Result<(ws::Accepted, Admission), Refused> {
    if req.path() != WS_PATH {
        return Err(Refused::text(
            404,
            "Not Found",
            format!("WebSocket sessions are served at {WS_PATH}\n"),
        ));
    }
    let accepted = ws::negotiate(
        req.head(),
        state.limits.permessage_deflate,
        state.limits.shared_streams.max_groups > 0,
    )
    .map_err(|e| Refused::text(400, "Bad Request", e.to_string()))?;
    let target = req.uri().path_and_query().map_or("", |p| p.as_str());
    let admission = state
        .security
        .admit(&UpgradeRequest {
            target,
            headers: req.headers(),
            peer: req.peer_addr(),
        })
        .map_err(|r| Refused::of(&r))?;
    Ok((accepted, admission))
}
