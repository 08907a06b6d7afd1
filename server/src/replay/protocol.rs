//! The replay part of the client protocol: `replay` and its controls, and the messages a
//! replay sends (`replay_started`, acknowledgements, `replay_end`). Reference:
//! `docs/protocol.md#replay`.
//!
//! Times are RFC 3339 strings or integers of nanoseconds since the epoch; speeds are
//! numbers (`10`, `0.5`) or `"max"` (a string `"10"` is accepted too).

use bytes::Bytes;
use serde::Serialize;
use simd_json::prelude::*;
use simd_json::BorrowedValue;

use tickwire_engine::fanout::MAX_DEPTH;
use tickwire_engine::tick::{Channel, ChannelSet};
use tickwire_feeds::replay::{parse_time, Speed};

use crate::protocol::{reply_frame, ErrorCode, RequestError, RequestId, RequestLimits};

/// A validated replay request.
#[derive(Debug, Clone, PartialEq)]
pub enum ReplayRequest {
    Start(StartReplay),
    Control {
        id: Option<RequestId>,
        replay: String,
        control: Control,
    },
}

/// `{"op":"replay",...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct StartReplay {
    pub id: Option<RequestId>,
    pub dataset: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub speed: Speed,
    /// Default: every symbol of the dataset.
    pub symbols: Option<Vec<String>>,
    pub channels: ChannelSet,
    pub depth: Option<u8>,
    pub throttle_ms: Option<u32>,
}

/// What a control asks.
#[derive(Debug, Clone, PartialEq)]
pub enum Control {
    Pause,
    Resume,
    Seek(i64),
    Speed(Speed),
    Stop,
}

impl Control {
    /// The op's name.
    pub fn op(&self) -> &'static str {
        match self {
            Control::Pause => "replay_pause",
            Control::Resume => "replay_resume",
            Control::Seek(_) => "replay_seek",
            Control::Speed(_) => "replay_speed",
            Control::Stop => "replay_stop",
        }
    }
}

const START_FIELDS: &[&str] = &[
    "op",
    "id",
    "dataset",
    "from",
    "to",
    "speed",
    "symbols",
    "channels",
    "depth",
    "throttle_ms",
];

/// A time field: RFC 3339 or integer ns.
pub fn time_value(v: &BorrowedValue, field: &str) -> Result<i64, String> {
    if let Some(i) = v.as_i64() {
        return Ok(i);
    }
    match v.as_str() {
        Some(s) => parse_time(s).map_err(|e| format!("{field}: {e}")),
        None => Err(format!(
            "{field} must be an RFC 3339 string or integer nanoseconds since the epoch"
        )),
    }
}

/// A speed field: a number or `"max"`.
pub fn speed_value(v: &BorrowedValue) -> Result<Speed, String> {
    if v.is_number() {
        return Speed::factor(v.cast_f64().unwrap_or(f64::NAN));
    }
    match v.as_str() {
        Some(s) => Speed::parse(s),
        None => Err("speed must be a number greater than 0 or \"max\"".into()),
    }
}

/// Parses `op` (`replay` or `replay_*`) from a request object.
pub fn parse(
    op: &str,
    obj: &simd_json::borrowed::Object<'_>,
    id: Option<RequestId>,
) -> Result<ReplayRequest, RequestError> {
    let bad = |msg: String| RequestError::new(id.clone(), ErrorCode::BadRequest, msg);
    let control_fields: &[&str] = match op {
        "replay" => START_FIELDS,
        "replay_pause" | "replay_resume" | "replay_stop" => &["op", "id", "replay"],
        "replay_seek" => &["op", "id", "replay", "to"],
        "replay_speed" => &["op", "id", "replay", "speed"],
        other => {
            return Err(RequestError::new(
                id,
                ErrorCode::UnknownOp,
                format!("unknown op {other:?}; replay ops are replay, replay_pause, replay_resume, replay_seek, replay_speed, replay_stop"),
            ))
        }
    };
    if let Some(k) = obj.keys().find(|k| !control_fields.contains(&k.as_ref())) {
        return Err(bad(format!("unknown field {:?} for op {op:?}", k.as_ref())));
    }
    if op != "replay" {
        let replay = obj
            .get("replay")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad("missing field \"replay\" (the id from replay_started)".into()))?
            .to_string();
        let control = match op {
            "replay_pause" => Control::Pause,
            "replay_resume" => Control::Resume,
            "replay_stop" => Control::Stop,
            "replay_seek" => {
                let v = obj
                    .get("to")
                    .ok_or_else(|| bad("missing field \"to\"".into()))?;
                Control::Seek(time_value(v, "to").map_err(bad)?)
            }
            _ => {
                let v = obj
                    .get("speed")
                    .ok_or_else(|| bad("missing field \"speed\"".into()))?;
                Control::Speed(speed_value(v).map_err(bad)?)
            }
        };
        return Ok(ReplayRequest::Control {
            id,
            replay,
            control,
        });
    }
    let dataset = obj
        .get("dataset")
        .and_then(|v| v.as_str())
        .ok_or_else(|| bad("missing field \"dataset\" (see GET /datasets)".into()))?
        .to_string();
    let time = |k: &str| -> Result<Option<i64>, RequestError> {
        match obj.get(k) {
            None => Ok(None),
            Some(v) if v.is_null() => Ok(None),
            Some(v) => time_value(v, k).map(Some).map_err(bad),
        }
    };
    let (from, to) = (time("from")?, time("to")?);
    let speed = match obj.get("speed") {
        None => Speed::Factor(1.0),
        Some(v) => speed_value(v).map_err(bad)?,
    };
    let symbols = match obj.get("symbols") {
        None => None,
        Some(v) => Some(crate::protocol::parse_symbols(
            Some(v),
            &RequestLimits::default(),
            &id,
        )?),
    };
    let channels = match obj.get("channels") {
        None => Channel::ALL.into_iter().collect(),
        Some(v) => crate::protocol::parse_channels(Some(v), &id)?,
    };
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
            Some(t) if t <= 60_000 => Some(t as u32),
            _ => return Err(bad("throttle_ms must be an integer from 0 to 60000".into())),
        },
    };
    Ok(ReplayRequest::Start(StartReplay {
        id,
        dataset,
        from,
        to,
        speed,
        symbols,
        channels,
        depth,
        throttle_ms,
    }))
}

/// A speed as sent back: a number, or `"max"`.
#[derive(Serialize)]
#[serde(untagged)]
pub enum SpeedOut {
    Factor(f64),
    Max(&'static str),
}

impl From<Speed> for SpeedOut {
    fn from(s: Speed) -> Self {
        match s {
            Speed::Factor(f) => SpeedOut::Factor(f),
            Speed::Max => SpeedOut::Max("max"),
        }
    }
}

/// `{"type":"replay_started",...}`.
#[derive(Serialize)]
pub struct Started<'a> {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub id: &'a Option<RequestId>,
    pub replay: &'a str,
    pub dataset: &'a str,
    pub from: i64,
    pub to: i64,
    pub speed: SpeedOut,
    pub symbols: &'a [String],
    pub channels: Vec<&'static str>,
    /// The recording was not closed cleanly or has damaged blocks.
    pub damaged: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// An acknowledgement or event of a running replay.
#[derive(Serialize)]
pub struct Event<'a> {
    #[serde(rename = "type")]
    pub kind: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a RequestId>,
    pub replay: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub speed: Option<SpeedOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
}

/// Encodes any replay message in the session's encoding.
pub fn frame<T: Serialize>(v: &T, msgpack: bool) -> Bytes {
    reply_frame(v, msgpack)
}
