//! Client requests and server replies: the session-level part of the wire protocol.
//!
//! Market data (quotes, trades, books, statuses) is encoded by the engine
//! ([`tickwire_engine::wire`]); this module owns what a client *says* and what the server
//! answers to it. Every request is validated completely before anything is applied, and
//! every way it can be wrong maps to one [`ErrorCode`] with a message that names the field.
//! The reference is `docs/protocol.md`.

use std::fmt;

use bytes::Bytes;
use serde::Serialize;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use tickwire_engine::fanout::MAX_DEPTH;
use tickwire_engine::tick::{Channel, ChannelSet};
use tickwire_engine::wire::{frame, Opcode};

/// Limits on a single request.
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// Most symbols one subscribe/unsubscribe may name.
    pub max_symbols_per_request: usize,
    /// Longest throttle interval accepted.
    pub max_throttle_ms: u32,
}

impl Default for RequestLimits {
    fn default() -> Self {
        RequestLimits {
            max_symbols_per_request: 1_000,
            max_throttle_ms: 60_000,
        }
    }
}

/// A request id, echoed back verbatim in the reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum RequestId {
    Int(i64),
    Str(String),
}

/// A validated client request.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    Subscribe {
        id: Option<RequestId>,
        symbols: Vec<String>,
        channels: ChannelSet,
        depth: Option<u8>,
        throttle_ms: Option<u32>,
    },
    Unsubscribe {
        id: Option<RequestId>,
        symbols: Vec<String>,
        channels: ChannelSet,
    },
    Ping {
        id: Option<RequestId>,
    },
    /// `replay` and its controls (`replay_pause`, ...): see `crate::replay::protocol`.
    Replay(crate::replay::protocol::ReplayRequest),
}

/// The machine-readable reason of an `error` reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Not JSON, not an object, a missing field, a wrong type or value.
    BadRequest,
    /// `op` is not one the server knows.
    UnknownOp,
    /// A channel name is not `quote`, `trade` or `book`.
    UnknownChannel,
    /// A symbol is not served.
    UnknownSymbol,
    /// Too many symbols in one request or in the session.
    LimitExceeded,
    /// A binary frame where JSON text is expected.
    Unsupported,
    /// A replay names a dataset the server does not have (see `GET /datasets`).
    UnknownDataset,
    /// The dataset exists but cannot be read (its header is damaged).
    DatasetUnavailable,
    /// A replay's time range is inverted or outside the dataset.
    BadRange,
    /// A replay control names a replay this session does not have (or that ended).
    UnknownReplay,
    /// The user may not see a requested symbol or channel.
    NotEntitled,
    /// The session sends faster than its rate limit; the message was dropped.
    RateLimited,
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestError {
    pub id: Option<RequestId>,
    pub code: ErrorCode,
    pub message: String,
    /// The offending symbols, for `unknown_symbol`.
    pub symbols: Vec<String>,
}

impl RequestError {
    pub fn new(id: Option<RequestId>, code: ErrorCode, message: impl Into<String>) -> Self {
        RequestError {
            id,
            code,
            message: message.into(),
            symbols: Vec::new(),
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

const SUBSCRIBE_FIELDS: &[&str] = &["op", "id", "symbols", "channels", "depth", "throttle_ms"];
const UNSUBSCRIBE_FIELDS: &[&str] = &["op", "id", "symbols", "channels"];
const PING_FIELDS: &[&str] = &["op", "id"];

/// Parses and validates one text frame.
pub fn parse_request(text: &str, limits: &RequestLimits) -> Result<Request, RequestError> {
    let mut buf = text.as_bytes().to_vec();
    let value = simd_json::to_borrowed_value(&mut buf).map_err(|e| {
        RequestError::new(None, ErrorCode::BadRequest, format!("invalid JSON: {e}"))
    })?;
    let Some(obj) = value.as_object() else {
        return Err(RequestError::new(
            None,
            ErrorCode::BadRequest,
            "a request must be a JSON object",
        ));
    };
    let id = match obj.get("id") {
        None | Some(BorrowedValue::Static(simd_json::StaticNode::Null)) => None,
        Some(v) => {
            if let Some(i) = v.as_i64() {
                Some(RequestId::Int(i))
            } else if let Some(s) = v.as_str() {
                Some(RequestId::Str(s.to_string()))
            } else {
                return Err(RequestError::new(
                    None,
                    ErrorCode::BadRequest,
                    "id must be an integer or a string",
                ));
            }
        }
    };
    let bad = |msg: String| RequestError::new(id.clone(), ErrorCode::BadRequest, msg);
    let op = match obj.get("op") {
        None => return Err(bad("missing field \"op\"".into())),
        Some(v) => v
            .as_str()
            .ok_or_else(|| bad("op must be a string".into()))?,
    };
    if op == "replay" || op.starts_with("replay_") {
        return crate::replay::protocol::parse(op, obj, id).map(Request::Replay);
    }
    let allowed = match op {
        "subscribe" => SUBSCRIBE_FIELDS,
        "unsubscribe" => UNSUBSCRIBE_FIELDS,
        "ping" => PING_FIELDS,
        other => {
            return Err(RequestError::new(
                id,
                ErrorCode::UnknownOp,
                format!("unknown op {other:?}; expected subscribe, unsubscribe, ping, replay or a replay control (replay_pause, replay_resume, replay_seek, replay_speed, replay_stop)"),
            ))
        }
    };
    if let Some(k) = obj.keys().find(|k| !allowed.contains(&k.as_ref())) {
        return Err(bad(format!("unknown field {:?} for op {op:?}", k.as_ref())));
    }
    if op == "ping" {
        return Ok(Request::Ping { id });
    }
    let symbols = parse_symbols(obj.get("symbols"), limits, &id)?;
    let channels = parse_channels(obj.get("channels"), &id)?;
    if op == "unsubscribe" {
        return Ok(Request::Unsubscribe {
            id,
            symbols,
            channels,
        });
    }
    let depth = match obj.get("depth") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(d) if (1..=MAX_DEPTH as u64).contains(&d) => Some(d as u8),
            _ => {
                return Err(bad(format!(
                    "depth must be an integer from 1 to {MAX_DEPTH}"
                )))
            }
        },
    };
    let throttle_ms = match obj.get("throttle_ms") {
        None => None,
        Some(v) => match v.as_u64() {
            Some(t) if t <= limits.max_throttle_ms as u64 => Some(t as u32),
            _ => {
                return Err(bad(format!(
                    "throttle_ms must be an integer from 0 to {}",
                    limits.max_throttle_ms
                )))
            }
        },
    };
    Ok(Request::Subscribe {
        id,
        symbols,
        channels,
        depth,
        throttle_ms,
    })
}

pub(crate) fn parse_symbols(
    v: Option<&BorrowedValue>,
    limits: &RequestLimits,
    id: &Option<RequestId>,
) -> Result<Vec<String>, RequestError> {
    let bad = |msg: &str| RequestError::new(id.clone(), ErrorCode::BadRequest, msg);
    let arr = v
        .ok_or_else(|| bad("missing field \"symbols\""))?
        .as_array()
        .ok_or_else(|| bad("symbols must be an array of strings"))?;
    if arr.is_empty() {
        return Err(bad("symbols must not be empty"));
    }
    if arr.len() > limits.max_symbols_per_request {
        return Err(RequestError::new(
            id.clone(),
            ErrorCode::LimitExceeded,
            format!(
                "at most {} symbols per request",
                limits.max_symbols_per_request
            ),
        ));
    }
    let mut out: Vec<String> = Vec::with_capacity(arr.len());
    for s in arr {
        let s = s
            .as_str()
            .ok_or_else(|| bad("symbols must be an array of strings"))?;
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
    }
    Ok(out)
}

pub(crate) fn parse_channels(
    v: Option<&BorrowedValue>,
    id: &Option<RequestId>,
) -> Result<ChannelSet, RequestError> {
    let bad = |msg: &str| RequestError::new(id.clone(), ErrorCode::BadRequest, msg);
    let arr = v
        .ok_or_else(|| bad("missing field \"channels\""))?
        .as_array()
        .ok_or_else(|| bad("channels must be an array of strings"))?;
    if arr.is_empty() {
        return Err(bad("channels must not be empty"));
    }
    let mut set = ChannelSet::EMPTY;
    for c in arr {
        let name = c
            .as_str()
            .ok_or_else(|| bad("channels must be an array of strings"))?;
        let ch = Channel::parse(name).ok_or_else(|| {
            RequestError::new(
                id.clone(),
                ErrorCode::UnknownChannel,
                format!("unknown channel {name:?}; expected quote, trade or book"),
            )
        })?;
        set.insert(ch);
    }
    Ok(set)
}

/// Encodes a reply as the session's encoding: a JSON text frame, or a MessagePack map (same
/// field names) in a binary frame.
pub(crate) fn reply_frame<T: Serialize>(value: &T, msgpack: bool) -> Bytes {
    // Serializing our own reply types cannot fail.
    if msgpack {
        let payload = rmp_serde::to_vec_named(value).unwrap_or_default();
        frame(Opcode::Binary, &payload)
    } else {
        let payload = serde_json::to_vec(value).unwrap_or_default();
        frame(Opcode::Text, &payload)
    }
}

#[derive(Serialize)]
struct Ack<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a Option<RequestId>,
    symbols: &'a [String],
    channels: Vec<&'static str>,
}

/// `{"type":"subscribed"|"unsubscribed",...}`.
pub fn ack(
    kind: &str,
    id: &Option<RequestId>,
    symbols: &[String],
    channels: ChannelSet,
    msgpack: bool,
) -> Bytes {
    reply_frame(
        &Ack {
            kind,
            id,
            symbols,
            channels: channels.iter().map(Channel::as_str).collect(),
        },
        msgpack,
    )
}

/// `{"type":"unsubscribed","id":null,...,"reason":..}`: streams the server removed on its
/// own (entitlements changed on reload), so the client's view of its subscriptions stays
/// right even if it ignores `reason`.
pub fn revoked(symbols: &[String], channels: ChannelSet, reason: &str, msgpack: bool) -> Bytes {
    #[derive(Serialize)]
    struct Revoked<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: Option<RequestId>,
        symbols: &'a [String],
        channels: Vec<&'static str>,
        reason: &'a str,
    }
    reply_frame(
        &Revoked {
            kind: "unsubscribed",
            id: None,
            symbols,
            channels: channels.iter().map(Channel::as_str).collect(),
            reason,
        },
        msgpack,
    )
}

/// `{"type":"pong","id":..,"ts":..}`.
pub fn pong(id: &Option<RequestId>, ts: i64, msgpack: bool) -> Bytes {
    #[derive(Serialize)]
    struct Pong<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: &'a Option<RequestId>,
        ts: i64,
    }
    reply_frame(
        &Pong {
            kind: "pong",
            id,
            ts,
        },
        msgpack,
    )
}

/// `{"type":"error",...}`.
pub fn error(err: &RequestError, msgpack: bool) -> Bytes {
    #[derive(Serialize)]
    struct Error<'a> {
        #[serde(rename = "type")]
        kind: &'static str,
        id: &'a Option<RequestId>,
        code: ErrorCode,
        message: &'a str,
        #[serde(skip_serializing_if = "<[String]>::is_empty")]
        symbols: &'a [String],
    }
    reply_frame(
        &Error {
            kind: "error",
            id: &err.id,
            code: err.code,
            message: &err.message,
            symbols: &err.symbols,
        },
        msgpack,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Request, RequestError> {
        parse_request(s, &RequestLimits::default())
    }

    #[test]
    fn parses_subscribe() {
        let r = parse(r#"{"op":"subscribe","id":1,"symbols":["A","B","A"],"channels":["quote","book"],"depth":10,"throttle_ms":100}"#).unwrap();
        assert_eq!(
            r,
            Request::Subscribe {
                id: Some(RequestId::Int(1)),
                symbols: vec!["A".into(), "B".into()],
                channels: [Channel::Quote, Channel::Book].into_iter().collect(),
                depth: Some(10),
                throttle_ms: Some(100),
            }
        );
    }

    #[test]
    fn keeps_id_on_errors() {
        let e =
            parse(r#"{"op":"subscribe","id":"x","symbols":[],"channels":["quote"]}"#).unwrap_err();
        assert_eq!(e.id, Some(RequestId::Str("x".into())));
        assert_eq!(e.code, ErrorCode::BadRequest);
    }
}
