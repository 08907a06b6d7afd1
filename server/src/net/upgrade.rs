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
//! connection is closed: 400 with the reason for a bad handshake, 404 for any path but `/ws`.
//! Checks that decide whether a request may open a session (origin, tickets, per-client
//! limits) belong in [`accept`], which sees the whole request and answers with a [`Refused`].

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
use crate::session::Session;
use crate::transport::{Connection, InboxStream, SessionShared, WsStream};
use crate::worker::Worker;
use crate::ws::{self, InboundDecoder, Outbound};

/// The path WebSocket clients connect to.
pub const WS_PATH: &str = "/ws";

/// Why an upgrade request was refused: status and body of the response sent.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub reason: &'static str,
    pub body: String,
}

/// Handles one upgrade request; see the module documentation.
pub async fn upgrade<T: WsStream>(
    req: Request,
    framed: Framed<T, h1::Codec>,
    state: web::Data<AppState>,
) -> Result<(), actix_http::Error> {
    let accepted = match accept(&req, &state) {
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
    // No authentication yet: `user` is a field so that log queries need not change later.
    let span = tracing::info_span!("session", session = id, peer = %peer, user = "anonymous");
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
    Session::create(move |ctx| {
        ctx.add_stream(inbox);
        Session::new(session_shared, worker, symbols, hub, negotiated)
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
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        refused.status,
        refused.reason,
        refused.body.len(),
        refused.body
    );
    io.write_all(response.as_bytes()).await?;
    io.shutdown().await
}

/// Decides whether the request becomes a WebSocket session.
fn accept(req: &Request, state: &AppState) -> Result<ws::Accepted, Refused> {
    if req.path() != WS_PATH {
        return Err(Refused {
            status: 404,
            reason: "Not Found",
            body: format!("WebSocket sessions are served at {WS_PATH}\n"),
        });
    }
    ws::negotiate(
        req.head(),
        state.limits.permessage_deflate,
        state.limits.shared_streams.max_groups > 0,
    )
    .map_err(|e| Refused {
        status: 400,
        reason: "Bad Request",
        body: e.to_string(),
    })
}
