//! The binary client encoding: the same messages as the JSON protocol, as MessagePack maps.
//!
//! Field names and value types mirror the JSON encoding exactly (decimal strings for prices
//! and sizes, integers for sequence numbers and nanosecond timestamps, `nil` for null), so a
//! client can switch encodings without changing anything but its decoder. Like the JSON
//! frames, each message is encoded once, as a complete binary WebSocket frame, and shared by
//! every subscriber that negotiated `tickwire.msgpack`.

use bytes::Bytes;
use rmp::encode;

use crate::book::{Level, TopOfBook};
use crate::domain::{Instrument, Nanos, Price, Qty, Side};
use crate::tick::{BookLevels, FeedState, TickHeader};
use crate::wire::{FrameBuf, Opcode};

/// Encodes ticks of one instrument as MessagePack frames.
pub struct MsgPackEncoder<'a> {
    pub instrument: &'a Instrument,
    /// See [`crate::wire::TickEncoder::tag`]: adds a `replay` entry to every map.
    pub tag: Option<&'a str>,
}

// Writing into a Vec<u8> cannot fail.
fn str(out: &mut Vec<u8>, s: &str) {
    encode::write_str(out, s).expect("write to Vec");
}
fn int(out: &mut Vec<u8>, v: i64) {
    encode::write_sint(out, v).expect("write to Vec");
}
fn uint(out: &mut Vec<u8>, v: u64) {
    encode::write_uint(out, v).expect("write to Vec");
}
fn map(out: &mut Vec<u8>, n: u32) {
    encode::write_map_len(out, n).expect("write to Vec");
}
fn array(out: &mut Vec<u8>, n: u32) {
    encode::write_array_len(out, n).expect("write to Vec");
}
fn nil(out: &mut Vec<u8>) {
    encode::write_nil(out).expect("write to Vec");
}

impl<'a> MsgPackEncoder<'a> {
    /// An encoder for `instrument`.
    pub fn new(instrument: &'a Instrument) -> Self {
        MsgPackEncoder {
            instrument,
            tag: None,
        }
    }

    /// An encoder whose maps carry `replay: <tag>`.
    pub fn tagged(instrument: &'a Instrument, tag: Option<&'a str>) -> Self {
        MsgPackEncoder { instrument, tag }
    }

    /// Declares a map of `n` entries, plus the `replay` entry when tagged (written here).
    fn map_tagged(&self, out: &mut Vec<u8>, n: u32) {
        map(out, n + self.tag.is_some() as u32);
        if let Some(t) = self.tag {
            str(out, "replay");
            str(out, t);
        }
    }

    fn decimal(&self, out: &mut Vec<u8>, mantissa: i64, price: bool) {
        let mut s = Vec::with_capacity(24);
        let scale = if price {
            self.instrument.price_scale
        } else {
            self.instrument.size_scale
        };
        crate::domain::decimal::write_mantissa(&mut s, mantissa, scale);
        encode::write_str_len(out, s.len() as u32).expect("write to Vec");
        out.extend_from_slice(&s);
    }

    /// Writes the 6 common fields; the caller declared the map length.
    fn head(&self, out: &mut Vec<u8>, kind: &str, h: &TickHeader) {
        str(out, "type");
        str(out, kind);
        str(out, "symbol");
        str(out, &self.instrument.symbol);
        str(out, "seq");
        uint(out, h.seq.0);
        str(out, "chan_seq");
        uint(out, h.chan_seq.0);
        str(out, "ts");
        int(out, h.ts.0);
        str(out, "recv_ts");
        int(out, h.recv_ts.0);
    }

    fn level_fields(&self, out: &mut Vec<u8>, name: &str, level: Option<Level>) {
        str(out, name);
        match level {
            Some(l) => self.decimal(out, l.price.0, true),
            None => nil(out),
        }
        str(out, &format!("{name}_size"));
        match level {
            Some(l) => self.decimal(out, l.qty.0, false),
            None => nil(out),
        }
    }

    /// A `quote` message.
    pub fn quote(&self, h: &TickHeader, top: &TopOfBook) -> Bytes {
        let mut f = FrameBuf::with_capacity(128);
        let out = f.vec();
        self.map_tagged(out, 10);
        self.head(out, "quote", h);
        self.level_fields(out, "bid", top.bid);
        self.level_fields(out, "ask", top.ask);
        f.finish(Opcode::Binary)
    }

    /// A `trade` message.
    pub fn trade(&self, h: &TickHeader, price: Price, qty: Qty, aggressor: Option<Side>) -> Bytes {
        let mut f = FrameBuf::with_capacity(128);
        let out = f.vec();
        self.map_tagged(out, 9);
        self.head(out, "trade", h);
        str(out, "price");
        self.decimal(out, price.0, true);
        str(out, "size");
        self.decimal(out, qty.0, false);
        str(out, "side");
        match aggressor {
            Some(s) => str(out, s.as_str()),
            None => nil(out),
        }
        f.finish(Opcode::Binary)
    }

    /// A `book` message with at most `depth` levels per side.
    pub fn book(&self, h: &TickHeader, levels: &BookLevels, depth: usize) -> Bytes {
        let mut f = FrameBuf::with_capacity(128 + 2 * depth * 24);
        let out = f.vec();
        self.map_tagged(out, 10);
        self.head(out, "book", h);
        str(out, "snapshot");
        encode::write_bool(out, true).expect("write to Vec");
        str(out, "depth");
        uint(out, depth as u64);
        for (name, side) in [("bids", &levels.bids), ("asks", &levels.asks)] {
            str(out, name);
            let n = side.len().min(depth);
            array(out, n as u32);
            for l in &side[..n] {
                array(out, 2);
                self.decimal(out, l.price.0, true);
                self.decimal(out, l.qty.0, false);
            }
        }
        f.finish(Opcode::Binary)
    }

    /// A `status` message.
    pub fn status(&self, ts: Nanos, state: FeedState, reason: &str) -> Bytes {
        let mut f = FrameBuf::with_capacity(64 + reason.len());
        let out = f.vec();
        self.map_tagged(out, 5);
        str(out, "type");
        str(out, "status");
        str(out, "symbol");
        str(out, &self.instrument.symbol);
        str(out, "state");
        str(out, state.as_str());
        str(out, "ts");
        int(out, ts.0);
        str(out, "reason");
        str(out, reason);
        f.finish(Opcode::Binary)
    }
}
