//! The documented Tickwire client protocol, and nothing more: building `subscribe` requests and
//! parsing server frames (one JSON object, or a JSON array of objects when the server batches)
//! with simd-json into the few fields the generator measures.

use serde::Deserialize;
use std::borrow::Cow;

/// Message kinds the generator distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Quote,
    Trade,
    Book,
    Subscribed,
    Status,
    Pong,
    Error,
    Other,
}

impl Kind {
    /// Index of the market-data channel (quote 0, trade 1, book 2), `None` for control frames.
    pub fn channel(self) -> Option<usize> {
        match self {
            Kind::Quote => Some(0),
            Kind::Trade => Some(1),
            Kind::Book => Some(2),
            _ => None,
        }
    }
}

/// Channel names by index, matching [`Kind::channel`].
pub const CHANNELS: [&str; 3] = ["quote", "trade", "book"];

/// The measured fields of one server message. Strings borrow from the frame buffer.
#[derive(Debug, Deserialize)]
pub struct WireMsg<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    #[serde(default, borrow)]
    pub symbol: Option<Cow<'a, str>>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default)]
    pub chan_seq: Option<u64>,
    #[serde(default)]
    pub recv_ts: Option<i64>,
    #[serde(default)]
    pub id: Option<u64>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub message: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub state: Option<Cow<'a, str>>,
}

impl WireMsg<'_> {
    pub fn kind(&self) -> Kind {
        match self.ty.as_ref() {
            "quote" => Kind::Quote,
            "trade" => Kind::Trade,
            "book" => Kind::Book,
            "subscribed" => Kind::Subscribed,
            "status" => Kind::Status,
            "pong" => Kind::Pong,
            "error" => Kind::Error,
            _ => Kind::Other,
        }
    }
}

/// Reusable parse state for one connection (simd-json scratch buffers).
#[derive(Default)]
pub struct Parser {
    buffers: Option<simd_json::Buffers>,
}

/// A frame that is neither a JSON object nor an array of objects with a `type`.
#[derive(Debug, thiserror::Error)]
#[error("malformed server frame: {0}")]
pub struct ParseError(String);

impl Parser {
    /// Parses one text frame in place (`frame` is clobbered) and calls `f` for each message.
    pub fn parse<'a>(
        &mut self,
        frame: &'a mut [u8],
        mut f: impl FnMut(WireMsg<'a>),
    ) -> Result<(), ParseError> {
        let buffers = self
            .buffers
            .get_or_insert_with(|| simd_json::Buffers::new(frame.len().max(256)));
        let first = frame.iter().find(|b| !b.is_ascii_whitespace()).copied();
        match first {
            Some(b'[') => {
                let msgs: Vec<WireMsg<'a>> =
                    simd_json::serde::from_slice_with_buffers(frame, buffers)
                        .map_err(|e| ParseError(e.to_string()))?;
                msgs.into_iter().for_each(f);
            }
            Some(b'{') => {
                let m: WireMsg<'a> = simd_json::serde::from_slice_with_buffers(frame, buffers)
                    .map_err(|e| ParseError(e.to_string()))?;
                f(m);
            }
            _ => return Err(ParseError("not a JSON object or array".into())),
        }
        Ok(())
    }
}

/// A `subscribe` request, serialized as the protocol documents it.
pub fn subscribe_request(
    id: u64,
    symbols: &[String],
    channels: &[String],
    depth: u32,
    throttle_ms: u32,
) -> String {
    serde_json::json!({
        "op": "subscribe",
        "id": id,
        "symbols": symbols,
        "channels": channels,
        "depth": depth,
        "throttle_ms": throttle_ms,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (kind, symbol, seq, chan_seq, recv_ts) of each parsed message.
    type Seen = (Kind, Option<String>, Option<u64>, Option<u64>, Option<i64>);

    fn collect(s: &str) -> Vec<Seen> {
        let mut buf = s.as_bytes().to_vec();
        let mut out = Vec::new();
        Parser::default()
            .parse(&mut buf, |m| {
                out.push((
                    m.kind(),
                    m.symbol.as_deref().map(str::to_string),
                    m.seq,
                    m.chan_seq,
                    m.recv_ts,
                ))
            })
            .unwrap();
        out
    }

    #[test]
    fn parses_single_object_with_extra_fields() {
        let v = collect(
            r#"{"type":"quote","symbol":"SYM0001","seq":42,"chan_seq":7,"ts":1,"recv_ts":1700000000000000000,"bid":"101.25","bid_size":"300","ask":"101.27","ask_size":"120"}"#,
        );
        assert_eq!(
            v,
            vec![(
                Kind::Quote,
                Some("SYM0001".into()),
                Some(42),
                Some(7),
                Some(1_700_000_000_000_000_000)
            )]
        );
    }

    #[test]
    fn parses_batched_array_and_nested_book() {
        let v = collect(
            r#"[{"type":"book","symbol":"S\u0041","seq":1,"chan_seq":1,"recv_ts":5,"snapshot":true,"depth":2,"bids":[["1.0","2"],["0.9","1"]],"asks":[]},{"type":"trade","symbol":"B","seq":2,"chan_seq":1,"recv_ts":6,"price":"1","size":"1","side":"buy"},{"type":"status","symbol":"B","state":"stale"}]"#,
        );
        assert_eq!(v.len(), 3);
        assert_eq!(v[0].0, Kind::Book);
        assert_eq!(v[0].1.as_deref(), Some("SA"));
        assert_eq!(v[1].0, Kind::Trade);
        assert_eq!(v[2].0, Kind::Status);
        assert_eq!(v[2].2, None);
    }

    #[test]
    fn rejects_garbage() {
        let mut buf = b"hello".to_vec();
        assert!(Parser::default().parse(&mut buf, |_| {}).is_err());
        let mut buf = b"{\"symbol\":\"x\"}".to_vec();
        assert!(Parser::default().parse(&mut buf, |_| {}).is_err());
    }

    #[test]
    fn subscribe_request_is_the_documented_shape() {
        let s = subscribe_request(1, &["SYM0001".into()], &["quote".into()], 10, 0);
        let v: serde_json::Value = serde_json::from_str(&s).unwrap();
        assert_eq!(v["op"], "subscribe");
        assert_eq!(v["symbols"][0], "SYM0001");
        assert_eq!(v["channels"][0], "quote");
        assert_eq!(v["depth"], 10);
        assert_eq!(v["throttle_ms"], 0);
    }
}
