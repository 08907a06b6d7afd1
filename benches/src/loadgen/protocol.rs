//! The documented Tickwire client protocol, and nothing more: building `subscribe` requests and
//! parsing server frames (one JSON object, or a JSON array of objects when the server batches)
//! with simd-json into the few fields the generator measures.

use simd_json::prelude::*;
use simd_json::tape::Tape;
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
#[derive(Debug)]
pub struct WireMsg<'a> {
    pub ty: Cow<'a, str>,
    pub symbol: Option<Cow<'a, str>>,
    pub seq: Option<u64>,
    pub chan_seq: Option<u64>,
    pub recv_ts: Option<i64>,
    pub id: Option<u64>,
    pub code: Option<Cow<'a, str>>,
    pub message: Option<Cow<'a, str>>,
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

/// Reusable parse state for one connection: the frame copy (padded as simd-json wants it, so
/// it need not copy again), simd-json's scratch buffers and the tape allocation.
pub struct Parser {
    input: Vec<u8>,
    buffers: simd_json::Buffers,
    tape: Tape<'static>,
}

impl Default for Parser {
    fn default() -> Self {
        Self {
            input: Vec::new(),
            buffers: simd_json::Buffers::new(512),
            tape: Tape::null(),
        }
    }
}

/// A frame that is neither a JSON object nor an array of objects with a `type`.
#[derive(Debug, thiserror::Error)]
#[error("malformed server frame: {0}")]
pub struct ParseError(String);

fn msg_of<'a>(o: &simd_json::tape::Object<'_, 'a>) -> Result<WireMsg<'a>, ParseError> {
    let mut m = WireMsg {
        ty: Cow::Borrowed(""),
        symbol: None,
        seq: None,
        chan_seq: None,
        recv_ts: None,
        id: None,
        code: None,
        message: None,
        state: None,
    };
    let mut has_type = false;
    // One pass over the keys; nested values (book ladders) are skipped by the tape.
    for (k, v) in o.iter() {
        let s = || v.into_string().map(Cow::Borrowed);
        match k {
            "type" => {
                if let Some(t) = s() {
                    m.ty = t;
                    has_type = true;
                }
            }
            "symbol" => m.symbol = s(),
            "seq" => m.seq = v.as_u64(),
            "chan_seq" => m.chan_seq = v.as_u64(),
            "recv_ts" => m.recv_ts = v.as_i64(),
            "id" => m.id = v.as_u64(),
            "code" => m.code = s(),
            "message" => m.message = s(),
            "state" => m.state = s(),
            _ => {}
        }
    }
    if !has_type {
        return Err(ParseError("message without a string `type`".into()));
    }
    Ok(m)
}

impl Parser {
    /// Parses one text frame with simd-json and calls `f` for each message in it (one object,
    /// or each object of a batched array). Strings borrow from the parser's copy of the frame.
    pub fn parse<'p>(
        &'p mut self,
        frame: &[u8],
        mut f: impl FnMut(WireMsg<'p>),
    ) -> Result<(), ParseError> {
        let len = frame.len();
        self.input.clear();
        self.input.extend_from_slice(frame);
        self.input.resize(len + simd_json::INPUT_PADDING, 0);
        let mut tape: Tape<'p> = std::mem::replace(&mut self.tape, Tape::null()).reset();
        let res = simd_json::fill_tape_padded(&mut self.input, len, &mut self.buffers, &mut tape)
            .map_err(|e| ParseError(e.to_string()))
            .and_then(|()| {
                let v = tape.as_value();
                if let Some(o) = v.as_object() {
                    f(msg_of(&o)?);
                } else if let Some(a) = v.as_array() {
                    for item in a.iter() {
                        let o = item
                            .as_object()
                            .ok_or_else(|| ParseError("array element is not an object".into()))?;
                        f(msg_of(&o)?);
                    }
                } else {
                    return Err(ParseError("not a JSON object or array".into()));
                }
                Ok(())
            });
        self.tape = tape.reset();
        res
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
        let mut out = Vec::new();
        Parser::default()
            .parse(s.as_bytes(), |m| {
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
        let mut p = Parser::default();
        assert!(p.parse(b"hello", |_| {}).is_err());
        assert!(p.parse(b"{\"symbol\":\"x\"}", |_| {}).is_err());
        assert!(p.parse(b"[1,2]", |_| {}).is_err());
        assert!(p.parse(b"{\"type\":\"quote\"", |_| {}).is_err());
        // The parser is reusable after errors.
        let mut n = 0;
        p.parse(b"{\"type\":\"pong\",\"id\":3}", |m| {
            assert_eq!(m.id, Some(3));
            n += 1
        })
        .unwrap();
        assert_eq!(n, 1);
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
