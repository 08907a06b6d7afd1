//! Opening handshake: accept key, subprotocol, and permessage-deflate negotiation.
//!
//! We accept a `permessage-deflate` offer whenever we can honour it, and always answer with
//! `client_no_context_takeover` (each client message is inflated on its own, so no
//! per-connection window is kept). When the client leaves the server's context to us (it
//! did not ask for `server_no_context_takeover`), we keep it: the connection may then share
//! a compression window with the other clients of the same stream
//! (`tickwire_engine::fanout::streams`); otherwise, or with shared streams turned off, we
//! answer `server_no_context_takeover` too and every message is compressed on its own (one
//! compressed frame then serves every subscriber; see `tickwire_engine::deflate`). An offer
//! that limits our window below 15 bits is declined (we would have to compress per
//! connection); the next offer, or no compression, is used instead, as RFC 7692 allows.

use actix_http::header::{SEC_WEBSOCKET_EXTENSIONS, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL};
use actix_http::ws::{hash_key, verify_handshake, HandshakeError};
use actix_http::RequestHead;

/// The subprotocol of the JSON encoding, one object per frame (the default; also used when
/// no subprotocol is offered).
pub const JSON_PROTOCOL: &str = "tickwire.json";

/// JSON where a frame may also hold an array of objects: the server batches several pending
/// updates into one frame and one write.
pub const JSON_BATCH_PROTOCOL: &str = "tickwire.json.batch";

/// The same messages as MessagePack maps in binary frames, one per frame.
pub const MSGPACK_PROTOCOL: &str = "tickwire.msgpack";

/// MessagePack where a frame may also hold an array of messages (batching).
pub const MSGPACK_BATCH_PROTOCOL: &str = "tickwire.msgpack.batch";

/// What the handshake settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Negotiated {
    /// permessage-deflate is on for this connection.
    pub deflate: bool,
    /// The server kept its compression context (no `server_no_context_takeover`): the
    /// connection may follow a shared compression stream.
    pub context_takeover: bool,
    /// The client accepts batched frames (arrays of messages).
    pub batch: bool,
    /// Messages are MessagePack binary frames instead of JSON text.
    pub msgpack: bool,
}

impl Negotiated {
    /// The engine-side encoding of this connection's frames.
    pub fn encoding(&self) -> tickwire_engine::tick::Encoding {
        tickwire_engine::tick::Encoding {
            msgpack: self.msgpack,
            deflate: self.deflate,
        }
    }
}

/// The response header value when permessage-deflate is accepted without context
/// takeover: every message compressed on its own.
pub const DEFLATE_RESPONSE: &str =
    "permessage-deflate; server_no_context_takeover; client_no_context_takeover";

/// The response header value when the server keeps its compression context.
pub const DEFLATE_CONTEXT_RESPONSE: &str = "permessage-deflate; client_no_context_takeover";

/// An accepted opening handshake: what was settled, and the 101 response that says so.
#[derive(Debug, Clone)]
pub struct Accepted {
    pub negotiated: Negotiated,
    /// `Sec-WebSocket-Accept`.
    accept: [u8; 28],
    /// The chosen subprotocol, if the client offered one we speak.
    protocol: Option<&'static str>,
}

impl Accepted {
    /// The `101 Switching Protocols` response, as bytes for the socket.
    pub fn response(&self) -> bytes::Bytes {
        let mut r = Vec::with_capacity(256);
        r.extend_from_slice(
            b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\nsec-websocket-accept: ",
        );
        r.extend_from_slice(&self.accept);
        if let Some(p) = self.protocol {
            r.extend_from_slice(b"\r\nsec-websocket-protocol: ");
            r.extend_from_slice(p.as_bytes());
        }
        if self.negotiated.deflate {
            r.extend_from_slice(b"\r\nsec-websocket-extensions: ");
            r.extend_from_slice(if self.negotiated.context_takeover {
                DEFLATE_CONTEXT_RESPONSE.as_bytes()
            } else {
                DEFLATE_RESPONSE.as_bytes()
            });
        }
        r.extend_from_slice(b"\r\n\r\n");
        r.into()
    }
}

/// Validates the upgrade request and settles subprotocol and compression. `allow_context`
/// permits keeping the server's compression context when the client leaves it to us.
pub fn negotiate(
    req: &RequestHead,
    allow_deflate: bool,
    allow_context: bool,
) -> Result<Accepted, HandshakeError> {
    verify_handshake(req)?;
    let key = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .ok_or(HandshakeError::BadWebsocketKey)?;
    let accept = hash_key(key.as_bytes());
    // The first offer we can honour wins (RFC 7692 §5: offers are in preference order).
    let offer = req
        .headers()
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find(|o| acceptable_deflate_offer(o))
        .filter(|_| allow_deflate);
    let deflate = offer.is_some();
    let context_takeover = allow_context && offer.is_some_and(|o| !asks_no_server_context(o));
    // The first offered subprotocol we speak wins, as RFC 6455 leaves the choice to us.
    let chosen = req
        .headers()
        .get_all(SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .find_map(|p| {
            [
                JSON_PROTOCOL,
                JSON_BATCH_PROTOCOL,
                MSGPACK_PROTOCOL,
                MSGPACK_BATCH_PROTOCOL,
            ]
            .into_iter()
            .find(|known| *known == p)
        });
    Ok(Accepted {
        negotiated: Negotiated {
            deflate,
            context_takeover,
            batch: matches!(chosen, Some(JSON_BATCH_PROTOCOL | MSGPACK_BATCH_PROTOCOL)),
            msgpack: matches!(chosen, Some(MSGPACK_PROTOCOL | MSGPACK_BATCH_PROTOCOL)),
        },
        accept,
        protocol: chosen,
    })
}

/// Whether an (acceptable) offer asks the server not to keep its compression context.
fn asks_no_server_context(offer: &str) -> bool {
    offer
        .split(';')
        .skip(1)
        .any(|p| p.trim() == "server_no_context_takeover")
}

/// Whether one offer (`permessage-deflate; param; param=value`) can be accepted as we answer.
pub fn acceptable_deflate_offer(offer: &str) -> bool {
    let mut parts = offer.split(';').map(str::trim);
    if parts.next() != Some("permessage-deflate") {
        return false;
    }
    let mut seen: Vec<&str> = Vec::new();
    for p in parts {
        let (name, value) = match p.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
            None => (p, None),
        };
        if seen.contains(&name) {
            return false; // RFC 7692 §7: duplicate parameters make the offer invalid
        }
        seen.push(name);
        let ok = match (name, value) {
            ("server_no_context_takeover" | "client_no_context_takeover", None) => true,
            // Our window is fixed at 15 bits; a smaller limit would need per-client state.
            ("server_max_window_bits", Some(v)) => v == "15",
            ("client_max_window_bits", None) => true,
            ("client_max_window_bits", Some(v)) => {
                matches!(v.parse::<u8>(), Ok(8..=15))
            }
            _ => false,
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::acceptable_deflate_offer as ok;

    #[test]
    fn accepts_what_browsers_and_libraries_send() {
        assert!(ok("permessage-deflate"));
        assert!(ok(" permessage-deflate; client_max_window_bits"));
        assert!(ok(
            "permessage-deflate; client_max_window_bits=12; server_no_context_takeover"
        ));
        assert!(ok("permessage-deflate; server_max_window_bits=15"));
        assert!(ok("permessage-deflate; client_max_window_bits=\"10\""));
    }

    #[test]
    fn keeps_the_server_context_only_when_the_client_leaves_it_to_us() {
        use super::asks_no_server_context as no_ctx;
        assert!(!no_ctx("permessage-deflate; client_max_window_bits"));
        assert!(!no_ctx("permessage-deflate; server_max_window_bits=15"));
        assert!(no_ctx(
            "permessage-deflate; client_max_window_bits; server_no_context_takeover"
        ));
        assert!(no_ctx("permessage-deflate;server_no_context_takeover"));
    }

    #[test]
    fn declines_what_it_cannot_honour() {
        assert!(!ok("x-webkit-deflate-frame"));
        assert!(!ok("permessage-deflate; server_max_window_bits=10"));
        assert!(!ok("permessage-deflate; server_max_window_bits"));
        assert!(!ok("permessage-deflate; client_max_window_bits=7"));
        assert!(!ok("permessage-deflate; unknown_param"));
        assert!(!ok(
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
        ));
        assert!(!ok("permessage-deflate; server_no_context_takeover=1"));
    }
}
