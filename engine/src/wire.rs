//! The client wire format of ticks: JSON text inside WebSocket frames, encoded once.
//!
//! Server-to-client WebSocket frames are never masked, so a frame is the same bytes for every
//! recipient. We therefore encode a tick into a *complete* frame (header + JSON) once, and
//! every subscriber's outbox holds a reference-counted slice of it. The JSON is written by hand
//! with `itoa` and the fixed-point formatter: no intermediate `serde` value, no float
//! formatting, one allocation per tick.
//!
//! Field names are part of the public protocol (`docs/protocol.md`).

use bytes::Bytes;

use crate::book::{Level, TopOfBook};
use crate::domain::{Instrument, Nanos, Price, Qty, Side};
use crate::tick::{BookLevels, FeedState, TickHeader};

/// Room reserved in front of a payload for the longest WebSocket frame header.
const MAX_HEADER: usize = 10;

/// WebSocket opcodes used by the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Opcode {
    Text = 0x1,
    Binary = 0x2,
    Close = 0x8,
    Ping = 0x9,
    Pong = 0xA,
}

/// A buffer that becomes one WebSocket frame without copying its payload.
pub struct FrameBuf {
    buf: Vec<u8>,
}

impl FrameBuf {
    /// An empty frame buffer with room for about `payload_hint` bytes of payload.
    pub fn with_capacity(payload_hint: usize) -> Self {
        let mut buf = Vec::with_capacity(MAX_HEADER + payload_hint);
        buf.extend_from_slice(&[0; MAX_HEADER]);
        FrameBuf { buf }
    }

    /// The payload written so far.
    pub fn payload(&self) -> &[u8] {
        &self.buf[MAX_HEADER..]
    }

    /// Mutable access to the payload bytes (append only in practice).
    pub fn vec(&mut self) -> &mut Vec<u8> {
        &mut self.buf
    }

    /// Writes the header in front of the payload and returns the finished frame.
    pub fn finish(self, opcode: Opcode) -> Bytes {
        self.finish_with_first_byte(0x80 | opcode as u8)
    }

    /// Like [`FrameBuf::finish`], marking the payload as compressed (RSV1, RFC 7692).
    pub fn finish_with_rsv1(self, opcode: Opcode) -> Bytes {
        self.finish_with_first_byte(0x80 | 0x40 | opcode as u8)
    }

    fn finish_with_first_byte(mut self, first: u8) -> Bytes {
        let len = self.buf.len() - MAX_HEADER;
        let mut header = [0u8; MAX_HEADER];
        header[0] = first; // FIN, RSV bits, opcode
        let hlen = if len < 126 {
            header[1] = len as u8;
            2
        } else if len <= u16::MAX as usize {
            header[1] = 126;
            header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
            4
        } else {
            header[1] = 127;
            header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
            10
        };
        let start = MAX_HEADER - hlen;
        self.buf[start..MAX_HEADER].copy_from_slice(&header[..hlen]);
        Bytes::from(self.buf).slice(start..)
    }
}

/// The payload of a complete, unmasked frame built by this module.
pub fn frame_payload(frame: &[u8]) -> &[u8] {
    match frame[1] & 0x7f {
        126 => &frame[4..],
        127 => &frame[10..],
        _ => &frame[2..],
    }
}

/// Frames an arbitrary payload (acks, errors, pongs, pings, closes).
pub fn frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let mut f = FrameBuf::with_capacity(payload.len());
    f.vec().extend_from_slice(payload);
    f.finish(opcode)
}

/// A close frame with a status code and a reason (truncated to the 123 bytes allowed).
pub fn close_frame(code: u16, reason: &str) -> Bytes {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = Vec::with_capacity(2 + end);
    payload.extend_from_slice(&code.to_be_bytes());
    payload.extend_from_slice(&reason.as_bytes()[..end]);
    frame(Opcode::Close, &payload)
}

/// Encodes ticks of one instrument. Holds nothing but references; cheap to create.
pub struct TickEncoder<'a> {
    pub instrument: &'a Instrument,
    /// The replay these ticks belong to: written as `"replay":"<tag>"` after the symbol, so a
    /// client tells a private replay of a symbol from its live stream. `None` for live data.
    pub tag: Option<&'a str>,
}

impl<'a> TickEncoder<'a> {
    /// An encoder for `instrument`.
    pub fn new(instrument: &'a Instrument) -> Self {
        TickEncoder {
            instrument,
            tag: None,
        }
    }

    /// An encoder whose messages carry `"replay":"<tag>"` (tags need no JSON escaping: the
    /// server makes them from letters and digits).
    pub fn tagged(instrument: &'a Instrument, tag: Option<&'a str>) -> Self {
        TickEncoder { instrument, tag }
    }

    fn tag(&self, out: &mut Vec<u8>) {
        if let Some(t) = self.tag {
            out.extend_from_slice(b",\"replay\":\"");
            out.extend_from_slice(t.as_bytes());
            out.push(b'"');
        }
    }

    fn head(&self, out: &mut Vec<u8>, kind: &str, h: &TickHeader) {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.as_bytes());
        out.extend_from_slice(b"\",\"symbol\":\"");
        // Symbol names are validated to need no JSON escaping.
        out.extend_from_slice(self.instrument.symbol.as_bytes());
        out.push(b'"');
        self.tag(out);
        out.extend_from_slice(b",\"seq\":");
        push_int(out, h.seq.0 as i64);
        out.extend_from_slice(b",\"chan_seq\":");
        push_int(out, h.chan_seq.0 as i64);
        out.extend_from_slice(b",\"ts\":");
        push_int(out, h.ts.0);
        out.extend_from_slice(b",\"recv_ts\":");
        push_int(out, h.recv_ts.0);
    }

    fn price(&self, out: &mut Vec<u8>, p: Price) {
        out.push(b'"');
        p.write(out, self.instrument.price_scale);
        out.push(b'"');
    }

    fn qty(&self, out: &mut Vec<u8>, q: Qty) {
        out.push(b'"');
        q.write(out, self.instrument.size_scale);
        out.push(b'"');
    }

    fn side_of_quote(&self, out: &mut Vec<u8>, name: &str, level: Option<Level>) {
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"\":");
        match level {
            Some(l) => self.price(out, l.price),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b"_size\":");
        match level {
            Some(l) => self.qty(out, l.qty),
            None => out.extend_from_slice(b"null"),
        }
    }

    /// `{"type":"quote",...}` as a text frame.
    pub fn quote(&self, h: &TickHeader, top: &TopOfBook) -> Bytes {
        let mut f = FrameBuf::with_capacity(192);
        let out = f.vec();
        self.head(out, "quote", h);
        self.side_of_quote(out, "bid", top.bid);
        self.side_of_quote(out, "ask", top.ask);
        out.push(b'}');
        f.finish(Opcode::Text)
    }

    /// `{"type":"trade",...}` as a text frame.
    pub fn trade(&self, h: &TickHeader, price: Price, qty: Qty, aggressor: Option<Side>) -> Bytes {
        let mut f = FrameBuf::with_capacity(192);
        let out = f.vec();
        self.head(out, "trade", h);
        out.extend_from_slice(b",\"price\":");
        self.price(out, price);
        out.extend_from_slice(b",\"size\":");
        self.qty(out, qty);
        out.extend_from_slice(b",\"side\":");
        match aggressor {
            Some(s) => {
                out.push(b'"');
                out.extend_from_slice(s.as_str().as_bytes());
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        f.finish(Opcode::Text)
    }

    /// `{"type":"book","snapshot":true,...}` with at most `depth` levels per side.
    ///
    /// Every book message is a complete ladder at the subscriber's depth, so `snapshot` is
    /// always `true` and a client simply replaces what it shows.
    pub fn book(&self, h: &TickHeader, levels: &BookLevels, depth: usize) -> Bytes {
        let n = levels.bids.len().min(depth) + levels.asks.len().min(depth);
        let mut f = FrameBuf::with_capacity(160 + n * 32);
        let out = f.vec();
        self.head(out, "book", h);
        out.extend_from_slice(b",\"snapshot\":true,\"depth\":");
        push_int(out, depth as i64);
        out.extend_from_slice(b",\"bids\":");
        self.ladder(out, &levels.bids, depth);
        out.extend_from_slice(b",\"asks\":");
        self.ladder(out, &levels.asks, depth);
        out.push(b'}');
        f.finish(Opcode::Text)
    }

    fn ladder(&self, out: &mut Vec<u8>, levels: &[Level], depth: usize) {
        out.push(b'[');
        for (i, l) in levels.iter().take(depth).enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.push(b'[');
            self.price(out, l.price);
            out.push(b',');
            self.qty(out, l.qty);
            out.push(b']');
        }
        out.push(b']');
    }

    /// `{"type":"status",...}` as a text frame.
    pub fn status(&self, ts: Nanos, state: FeedState, reason: &str) -> Bytes {
        let mut f = FrameBuf::with_capacity(96 + reason.len());
        let out = f.vec();
        out.extend_from_slice(b"{\"type\":\"status\",\"symbol\":\"");
        out.extend_from_slice(self.instrument.symbol.as_bytes());
        out.push(b'"');
        self.tag(out);
        out.extend_from_slice(b",\"state\":\"");
        out.extend_from_slice(state.as_str().as_bytes());
        out.extend_from_slice(b"\",\"ts\":");
        push_int(out, ts.0);
        out.extend_from_slice(b",\"reason\":");
        push_json_str(out, reason);
        out.push(b'}');
        f.finish(Opcode::Text)
    }
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
}

/// Encodes a tick's message in any [`Encoding`]; `depth` applies to book ticks.
pub fn encode_tick(
    instrument: &Instrument,
    header: &TickHeader,
    body: &crate::tick::TickBody,
    enc: crate::tick::Encoding,
    depth: usize,
) -> Bytes {
    encode_tick_tagged(instrument, None, header, body, enc, depth)
}

/// [`encode_tick`] for a replay's ticks: every message carries `"replay":"<tag>"`.
pub fn encode_tick_tagged(
    instrument: &Instrument,
    tag: Option<&str>,
    header: &TickHeader,
    body: &crate::tick::TickBody,
    enc: crate::tick::Encoding,
    depth: usize,
) -> Bytes {
    use crate::tick::TickBody;
    let plain = if enc.msgpack {
        let m = crate::msgpack::MsgPackEncoder::tagged(instrument, tag);
        match body {
            TickBody::Quote(top) => m.quote(header, top),
            TickBody::Trade {
                price,
                qty,
                aggressor,
            } => m.trade(header, *price, *qty, *aggressor),
            TickBody::Book(levels) => m.book(header, levels, depth),
            TickBody::Status { state, reason } => m.status(header.ts, *state, reason),
        }
    } else {
        let j = TickEncoder::tagged(instrument, tag);
        match body {
            TickBody::Quote(top) => j.quote(header, top),
            TickBody::Trade {
                price,
                qty,
                aggressor,
            } => j.trade(header, *price, *qty, *aggressor),
            TickBody::Book(levels) => j.book(header, levels, depth),
            TickBody::Status { state, reason } => j.status(header.ts, *state, reason),
        }
    };
    if enc.deflate {
        compress_frame(&plain)
    } else {
        plain
    }
}

/// The permessage-deflate variant of an already encoded (plain) frame, same opcode: the
/// compressed variants are always made from the plain ones, never by encoding again.
pub fn compress_frame(plain: &Bytes) -> Bytes {
    let op = if plain[0] & 0x0f == Opcode::Binary as u8 {
        Opcode::Binary
    } else {
        Opcode::Text
    };
    crate::deflate::deflate_frame(op, frame_payload(plain))
}

/// Appends `s` as a JSON string literal with the escapes JSON requires.
pub fn push_json_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes());
            }
            c => {
                let mut b = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Scale, Seq, SymbolId};

    fn ins() -> Instrument {
        Instrument {
            symbol: "SYM0001".into(),
            venue: "synthetic".into(),
            price_scale: Scale::new(2),
            size_scale: Scale::new(0),
        }
    }

    fn header() -> TickHeader {
        TickHeader {
            symbol: SymbolId(1),
            seq: Seq(42),
            chan_seq: Seq(7),
            ts: Nanos(1),
            recv_ts: Nanos(2),
        }
    }

    fn payload(frame: &Bytes) -> &str {
        let len = frame[1] as usize & 0x7f;
        let start = match len {
            126 => 4,
            127 => 10,
            _ => 2,
        };
        std::str::from_utf8(&frame[start..]).unwrap()
    }

    #[test]
    fn quote_is_exact_json() {
        let i = ins();
        let top = TopOfBook {
            bid: Some(Level {
                price: Price(10125),
                qty: Qty(300),
            }),
            ask: None,
        };
        let f = TickEncoder::new(&i).quote(&header(), &top);
        assert_eq!(f[0], 0x81);
        assert_eq!(
            payload(&f),
            r#"{"type":"quote","symbol":"SYM0001","seq":42,"chan_seq":7,"ts":1,"recv_ts":2,"bid":"101.25","bid_size":"300","ask":null,"ask_size":null}"#
        );
    }

    #[test]
    fn long_frames_use_extended_length() {
        let big = vec![b'x'; 70_000];
        let f = frame(Opcode::Binary, &big);
        assert_eq!(f[1], 127);
        assert_eq!(f.len(), 70_010);
        let mid = vec![b'x'; 300];
        let f = frame(Opcode::Text, &mid);
        assert_eq!(&f[1..4], &[126, 1, 44]);
    }

    #[test]
    fn close_frame_truncates_reason() {
        let f = close_frame(1008, &"é".repeat(100));
        assert_eq!(f[0], 0x88);
        assert!(f[1] as usize <= 125);
        assert_eq!(&f[2..4], &1008u16.to_be_bytes());
    }

    #[test]
    fn status_escapes_reason() {
        let i = ins();
        let f = TickEncoder::new(&i).status(Nanos(5), FeedState::Stale, "a \"b\"\n");
        assert_eq!(
            payload(&f),
            r#"{"type":"status","symbol":"SYM0001","state":"stale","ts":5,"reason":"a \"b\"\n"}"#
        );
    }
}
