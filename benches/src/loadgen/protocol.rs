//! The documented Tickwire client protocol, and nothing more: building `subscribe` requests and
//! parsing server frames (one JSON object, or a JSON array of objects when the server batches)
//! with simd-json into the few fields the generator measures.
//!
//! A market-data message carries what the generator measures (`type`, `symbol`, `seq`,
//! `chan_seq`, `recv_ts`) before its body, and a ten-level book body is three quarters of its
//! bytes and forty strings. So a single-object frame is first *scanned*: its top-level keys
//! are read in order, other values skipped, and the scan stops once a quote, trade or book has
//! all its measured fields (the frame must still end in `}`). Anything the scan does not
//! expect (escapes, arrays of messages, other message types, another shape) goes to
//! simd-json, and so does one frame in [`VALIDATE_EVERY`], fully parsed and validated, so a
//! server sending malformed JSON is still counted.

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

/// One single-object frame in this many is parsed in full by simd-json even when the scan
/// could read it.
pub const VALIDATE_EVERY: u32 = 16;

/// Reusable parse state for one connection: the frame copy (padded as simd-json wants it, so
/// it need not copy again), simd-json's scratch buffers and the tape allocation.
pub struct Parser {
    input: Vec<u8>,
    buffers: simd_json::Buffers,
    tape: Tape<'static>,
    frames: u32,
    /// Frames parsed by simd-json (validated), and read by the scan.
    pub full_parses: u64,
    pub scans: u64,
}

impl Default for Parser {
    fn default() -> Self {
        Self {
            input: Vec::new(),
            buffers: simd_json::Buffers::new(512),
            tape: Tape::null(),
            frames: 0,
            full_parses: 0,
            scans: 0,
        }
    }
}

/// Reads the measured fields of one JSON object frame without building it; `None` when the
/// frame is not what the scan expects (the caller then parses it with simd-json).
pub fn scan_object(b: &[u8]) -> Option<WireMsg<'_>> {
    if b.first() != Some(&b'{') || b.iter().rev().find(|c| !c.is_ascii_whitespace()) != Some(&b'}')
    {
        return None;
    }
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
    let mut at = 1;
    let ws = |at: &mut usize| {
        while b.get(*at).is_some_and(|c| c.is_ascii_whitespace()) {
            *at += 1;
        }
    };
    let mut market = false;
    loop {
        ws(&mut at);
        if b.get(at) == Some(&b'}') {
            break;
        }
        let key = plain_bytes(b, &mut at)?;
        ws(&mut at);
        if b.get(at) != Some(&b':') {
            return None;
        }
        at += 1;
        ws(&mut at);
        match key {
            b"type" => {
                let ty = plain_bytes(b, &mut at)?;
                m.ty = Cow::Borrowed(match ty {
                    b"quote" => "quote",
                    b"trade" => "trade",
                    b"book" => "book",
                    // Control messages are rare: let simd-json read them whole.
                    _ => return None,
                });
                market = true;
            }
            b"symbol" => {
                let sym = plain_bytes(b, &mut at)?;
                m.symbol = Some(Cow::Borrowed(std::str::from_utf8(sym).ok()?));
            }
            b"seq" => m.seq = Some(integer(b, &mut at)? as u64),
            b"chan_seq" => m.chan_seq = Some(integer(b, &mut at)? as u64),
            b"recv_ts" => m.recv_ts = Some(integer(b, &mut at)?),
            _ => skip_value(b, &mut at)?,
        }
        if market
            && m.symbol.is_some()
            && m.seq.is_some()
            && m.chan_seq.is_some()
            && m.recv_ts.is_some()
        {
            return Some(m);
        }
        ws(&mut at);
        match b.get(at) {
            Some(b',') => at += 1,
            Some(b'}') => break,
            _ => return None,
        }
    }
    // The whole object was read without finding every measured field: simd-json decides.
    None
}

/// The bytes of a string without escapes at `at` (which must be its opening quote).
#[inline]
fn plain_bytes<'a>(b: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    if b.get(*at) != Some(&b'"') {
        return None;
    }
    let start = *at + 1;
    let len = b[start..].iter().position(|&c| c == b'"' || c == b'\\')?;
    if b[start + len] != b'"' {
        return None;
    }
    *at = start + len + 1;
    Some(&b[start..start + len])
}

/// A JSON integer (no fraction or exponent) at `at`.
fn integer(b: &[u8], at: &mut usize) -> Option<i64> {
    let neg = b.get(*at) == Some(&b'-');
    let mut i = *at + neg as usize;
    let start = i;
    let mut v: i64 = 0;
    while let Some(&c) = b.get(i) {
        if !c.is_ascii_digit() {
            break;
        }
        v = v.checked_mul(10)?.checked_add((c - b'0') as i64)?;
        i += 1;
    }
    if i == start || matches!(b.get(i), Some(b'.' | b'e' | b'E')) {
        return None;
    }
    *at = i;
    Some(if neg { -v } else { v })
}

/// Skips any JSON value at `at` (strings with escapes, nested arrays and objects).
fn skip_value(b: &[u8], at: &mut usize) -> Option<()> {
    let mut i = *at;
    match *b.get(i)? {
        b'"' => i = end_of_string(b, i)?,
        b'[' | b'{' => {
            let mut depth = 0usize;
            loop {
                match *b.get(i)? {
                    b'"' => {
                        i = end_of_string(b, i)?;
                        continue;
                    }
                    b'[' | b'{' => depth += 1,
                    b']' | b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            i += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
        }
        _ => {
            // A number, `true`, `false` or `null`.
            while let Some(&c) = b.get(i) {
                if matches!(c, b',' | b'}' | b']') || c.is_ascii_whitespace() {
                    break;
                }
                i += 1;
            }
            if i == *at {
                return None;
            }
        }
    }
    *at = i;
    Some(())
}

/// The index just past the string that opens at `i`.
fn end_of_string(b: &[u8], mut i: usize) -> Option<usize> {
    i += 1;
    loop {
        i += b.get(i..)?.iter().position(|&c| c == b'"' || c == b'\\')?;
        if b[i] == b'\\' {
            i += 2;
        } else {
            return Some(i + 1);
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
        frame: &'p [u8],
        mut f: impl FnMut(WireMsg<'p>),
    ) -> Result<(), ParseError> {
        self.frames = self.frames.wrapping_add(1);
        if !self.frames.is_multiple_of(VALIDATE_EVERY) {
            if let Some(m) = scan_object(frame) {
                self.scans += 1;
                f(m);
                return Ok(());
            }
        }
        self.full_parses += 1;
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
    fn the_scan_reads_what_simd_json_reads_and_declines_the_rest() {
        let book = r#"{"type":"book","symbol":"SYM0001","seq":44,"chan_seq":21,"ts":1,"recv_ts":-5,"snapshot":true,"depth":2,"bids":[["101.25","300"],["101.24","1"]],"asks":[["101.27","120"]]}"#;
        let m = scan_object(book.as_bytes()).expect("scanned");
        assert_eq!(
            (m.kind(), m.symbol.as_deref()),
            (Kind::Book, Some("SYM0001"))
        );
        assert_eq!(
            (m.seq, m.chan_seq, m.recv_ts),
            (Some(44), Some(21), Some(-5))
        );
        // Measured fields after nested values and escaped strings are found too.
        let late = r#"{"type":"trade","x":{"a":["]","\"}"]},"note":"q\"uote","symbol":"S","seq":1,"chan_seq":2,"recv_ts":3}"#;
        let m = scan_object(late.as_bytes()).expect("scanned");
        assert_eq!((m.symbol.as_deref(), m.recv_ts), (Some("S"), Some(3)));
        for declined in [
            // control messages, batches, truncation, escapes in measured strings, floats
            r#"{"type":"subscribed","id":1}"#,
            r#"[{"type":"quote","symbol":"S","seq":1,"chan_seq":1,"recv_ts":1}]"#,
            r#"{"type":"quote","symbol":"S","seq":1,"chan_seq":1,"recv_ts":1"#,
            r#"{"type":"quote","symbol":"S\u0041","seq":1,"chan_seq":1,"recv_ts":1}"#,
            r#"{"type":"quote","symbol":"S","seq":1.5,"chan_seq":1,"recv_ts":1}"#,
            r#"{"type":"quote","symbol":"S","seq":1}"#,
            r#"{"type":"quote","symbol":"S" junk,"seq":1,"chan_seq":1,"recv_ts":1}"#,
        ] {
            assert!(scan_object(declined.as_bytes()).is_none(), "{declined}");
        }
    }

    #[test]
    fn a_malformed_body_is_caught_by_the_validating_sample() {
        // The scan stops at the measured fields; what follows is checked by the full parse
        // every VALIDATE_EVERY frames.
        let bad = br#"{"type":"quote","symbol":"S","seq":1,"chan_seq":1,"recv_ts":1,"bid": junk}"#;
        let mut p = Parser::default();
        let errors = (0..VALIDATE_EVERY * 4)
            .filter(|_| p.parse(bad, |_| {}).is_err())
            .count();
        assert_eq!(errors, 4);
    }

    #[test]
    fn scanned_and_parsed_frames_agree() {
        let frames = [
            r#"{"type":"quote","symbol":"SYM0001","seq":42,"chan_seq":7,"ts":1,"recv_ts":1700000000000000000,"bid":"101.25","bid_size":"300","ask":null,"ask_size":null}"#,
            r#"{"type":"trade","symbol":"B","seq":2,"chan_seq":1,"ts":9,"recv_ts":6,"price":"1","size":"1","side":"buy"}"#,
        ];
        for f in frames {
            let mut p = Parser::default();
            let mut scanned = Vec::new();
            p.parse(f.as_bytes(), |m| {
                scanned.push((
                    m.kind(),
                    m.symbol.map(|s| s.into_owned()),
                    m.seq,
                    m.chan_seq,
                    m.recv_ts,
                ))
            })
            .unwrap();
            assert_eq!(p.scans, 1);
            assert_eq!(scanned, collect(f), "{f}");
        }
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
