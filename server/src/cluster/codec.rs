//! The engine → gateway wire: a compact binary encoding of the normalized tick.
//!
//! Not the client JSON frames: the gateway decodes each message back into the same
//! [`TickHeader`] and [`TickBody`] the book actors made and encodes client frames itself,
//! once per tick, exactly as a book actor does ([`build_tick`]), so the gateway's routers,
//! outboxes, encodings, throttling and conflation work unchanged.
//!
//! Every message starts with a fixed 52-byte header, little-endian:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 1 | version (1) |
//! | 1 | 1 | kind: 1 quote, 2 trade, 3 book, 4 status, 5 snapshot |
//! | 2 | 2 | flags (0) |
//! | 4 | 4 | epoch of the publishing engine (its lease revision, or start time) |
//! | 8 | 4 | symbol id (index in the instrument list of `md.ctl.instruments`) |
//! | 12 | 8 | seq (per symbol; for a snapshot: the last seq it covers) |
//! | 20 | 8 | chan_seq (per symbol and channel) |
//! | 28 | 8 | ts (ns since the epoch) |
//! | 36 | 8 | recv_ts (ns, when the feed handler received it) |
//! | 44 | 8 | sent_ts (ns, when the engine's publisher encoded it: measures the hop) |
//!
//! Bodies: quote `u8` presence bits (1 bid, 2 ask) then price and size mantissas (`i64`) of
//! each present side; trade price, size (`i64`) and aggressor (`u8`: 0 none, 1 buy, 2
//! sell); book `u16` bid count, `u16` ask count, then (price, size) pairs best first; status
//! `u8` state (0 live, 1 stale), `u16` length and the UTF-8 reason; snapshot `u8` count and
//! that many `u32`-length-prefixed tick messages (status, quote, book). Prices and sizes stay
//! fixed-point mantissas: no float anywhere.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};

use tickwire_engine::book::{Level, TopOfBook};
use tickwire_engine::domain::{Instrument, Nanos, Price, Qty, Seq, Side, SymbolId};
use tickwire_engine::fanout::router::MAX_DEPTH;
use tickwire_engine::fanout::Hub;
use tickwire_engine::tick::{BookLevels, Encoding, FeedState, Tick, TickBody, TickHeader};
use tickwire_engine::wire::{compress_frame, encode_tick};

/// Version byte of this encoding.
pub const VERSION: u8 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 52;

const KIND_QUOTE: u8 = 1;
const KIND_TRADE: u8 = 2;
const KIND_BOOK: u8 = 3;
const KIND_STATUS: u8 = 4;
const KIND_SNAPSHOT: u8 = 5;

/// A message that cannot be decoded. The gateway counts it and drops the message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("message truncated")]
    Truncated,
    #[error("unsupported version {0}")]
    Version(u8),
    #[error("unknown message kind {0}")]
    Kind(u8),
    #[error("invalid field: {0}")]
    Field(&'static str),
    #[error("{0} trailing bytes")]
    Trailing(usize),
}

/// One decoded tick with what the engine's publisher added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireTick {
    pub epoch: u32,
    pub sent_ts: Nanos,
    pub header: TickHeader,
    pub body: TickBody,
}

/// A decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireMessage {
    Tick(WireTick),
    /// The state of one symbol: `items` are its status, quote and book (those it has), and
    /// `as_of` the last `seq` the snapshot covers.
    Snapshot {
        epoch: u32,
        symbol: SymbolId,
        as_of: Seq,
        items: Vec<WireTick>,
    },
}

fn put_header(out: &mut BytesMut, kind: u8, epoch: u32, h: &TickHeader, sent_ts: Nanos) {
    out.put_u8(VERSION);
    out.put_u8(kind);
    out.put_u16_le(0);
    out.put_u32_le(epoch);
    out.put_u32_le(h.symbol.0);
    out.put_u64_le(h.seq.0);
    out.put_u64_le(h.chan_seq.0);
    out.put_i64_le(h.ts.0);
    out.put_i64_le(h.recv_ts.0);
    out.put_i64_le(sent_ts.0);
}

fn put_level(out: &mut BytesMut, l: &Level) {
    out.put_i64_le(l.price.0);
    out.put_i64_le(l.qty.0);
}

/// Appends the encoding of one tick to `out`.
pub fn encode_tick_into(
    out: &mut BytesMut,
    epoch: u32,
    sent_ts: Nanos,
    h: &TickHeader,
    body: &TickBody,
) {
    match body {
        TickBody::Quote(top) => {
            out.reserve(HEADER_LEN + 33);
            put_header(out, KIND_QUOTE, epoch, h, sent_ts);
            out.put_u8(top.bid.is_some() as u8 | (top.ask.is_some() as u8) << 1);
            for l in [top.bid, top.ask].iter().flatten() {
                put_level(out, l);
            }
        }
        TickBody::Trade {
            price,
            qty,
            aggressor,
        } => {
            out.reserve(HEADER_LEN + 17);
            put_header(out, KIND_TRADE, epoch, h, sent_ts);
            out.put_i64_le(price.0);
            out.put_i64_le(qty.0);
            out.put_u8(match aggressor {
                None => 0,
                Some(Side::Buy) => 1,
                Some(Side::Sell) => 2,
            });
        }
        TickBody::Book(levels) => {
            let (bids, asks) = (
                &levels.bids[..levels.bids.len().min(MAX_DEPTH)],
                &levels.asks[..levels.asks.len().min(MAX_DEPTH)],
            );
            out.reserve(HEADER_LEN + 4 + 16 * (bids.len() + asks.len()));
            put_header(out, KIND_BOOK, epoch, h, sent_ts);
            out.put_u16_le(bids.len() as u16);
            out.put_u16_le(asks.len() as u16);
            for l in bids.iter().chain(asks) {
                put_level(out, l);
            }
        }
        TickBody::Status { state, reason } => {
            let reason = &reason.as_bytes()[..reason.len().min(u16::MAX as usize)];
            out.reserve(HEADER_LEN + 3 + reason.len());
            put_header(out, KIND_STATUS, epoch, h, sent_ts);
            out.put_u8(match state {
                FeedState::Live => 0,
                FeedState::Stale => 1,
            });
            out.put_u16_le(reason.len() as u16);
            out.put_slice(reason);
        }
    }
}

/// One tick as a message.
pub fn encode(epoch: u32, sent_ts: Nanos, tick: &Tick) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + 64);
    encode_tick_into(&mut out, epoch, sent_ts, &tick.header, &tick.body);
    out.freeze()
}

/// A snapshot message of `symbol` covering up to `as_of`, holding `items` in order.
pub fn encode_snapshot(
    epoch: u32,
    sent_ts: Nanos,
    symbol: SymbolId,
    as_of: Seq,
    items: &[&Tick],
) -> Bytes {
    let mut out = BytesMut::with_capacity(HEADER_LEN + 1 + 1024);
    let h = TickHeader {
        symbol,
        seq: as_of,
        chan_seq: Seq(0),
        ts: sent_ts,
        recv_ts: sent_ts,
    };
    put_header(&mut out, KIND_SNAPSHOT, epoch, &h, sent_ts);
    out.put_u8(items.len() as u8);
    let mut item = BytesMut::new();
    for t in items {
        item.clear();
        encode_tick_into(&mut item, epoch, sent_ts, &t.header, &t.body);
        out.put_u32_le(item.len() as u32);
        out.put_slice(&item);
    }
    out.freeze()
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError::Truncated);
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, CodecError> {
        Ok(u16::from_le_bytes(
            self.take(2)?.try_into().expect("2 bytes"),
        ))
    }
    fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_le_bytes(
            self.take(8)?.try_into().expect("8 bytes"),
        ))
    }
    fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(self.u64()? as i64)
    }
    fn level(&mut self) -> Result<Level, CodecError> {
        Ok(Level {
            price: Price(self.i64()?),
            qty: Qty(self.i64()?),
        })
    }
}

struct Head {
    kind: u8,
    epoch: u32,
    header: TickHeader,
    sent_ts: Nanos,
}

fn read_head(r: &mut Reader<'_>) -> Result<Head, CodecError> {
    let version = r.u8()?;
    if version != VERSION {
        return Err(CodecError::Version(version));
    }
    let kind = r.u8()?;
    let _flags = r.u16()?;
    let epoch = r.u32()?;
    let header = TickHeader {
        symbol: SymbolId(r.u32()?),
        seq: Seq(r.u64()?),
        chan_seq: Seq(r.u64()?),
        ts: Nanos(r.i64()?),
        recv_ts: Nanos(r.i64()?),
    };
    let sent_ts = Nanos(r.i64()?);
    Ok(Head {
        kind,
        epoch,
        header,
        sent_ts,
    })
}

fn read_body(kind: u8, r: &mut Reader<'_>) -> Result<TickBody, CodecError> {
    Ok(match kind {
        KIND_QUOTE => {
            let present = r.u8()?;
            if present > 3 {
                return Err(CodecError::Field("quote sides"));
            }
            let bid = (present & 1 != 0).then(|| r.level()).transpose()?;
            let ask = (present & 2 != 0).then(|| r.level()).transpose()?;
            TickBody::Quote(TopOfBook { bid, ask })
        }
        KIND_TRADE => {
            let price = Price(r.i64()?);
            let qty = Qty(r.i64()?);
            let aggressor = match r.u8()? {
                0 => None,
                1 => Some(Side::Buy),
                2 => Some(Side::Sell),
                _ => return Err(CodecError::Field("aggressor")),
            };
            TickBody::Trade {
                price,
                qty,
                aggressor,
            }
        }
        KIND_BOOK => {
            let (nb, na) = (r.u16()? as usize, r.u16()? as usize);
            if nb > MAX_DEPTH || na > MAX_DEPTH {
                return Err(CodecError::Field("book depth"));
            }
            let bids = (0..nb).map(|_| r.level()).collect::<Result<_, _>>()?;
            let asks = (0..na).map(|_| r.level()).collect::<Result<_, _>>()?;
            TickBody::Book(BookLevels { bids, asks })
        }
        KIND_STATUS => {
            let state = match r.u8()? {
                0 => FeedState::Live,
                1 => FeedState::Stale,
                _ => return Err(CodecError::Field("status state")),
            };
            let len = r.u16()? as usize;
            let reason =
                std::str::from_utf8(r.take(len)?).map_err(|_| CodecError::Field("reason"))?;
            TickBody::Status {
                state,
                reason: reason.into(),
            }
        }
        other => return Err(CodecError::Kind(other)),
    })
}

fn read_tick(r: &mut Reader<'_>) -> Result<WireTick, CodecError> {
    let head = read_head(r)?;
    let body = read_body(head.kind, r)?;
    Ok(WireTick {
        epoch: head.epoch,
        sent_ts: head.sent_ts,
        header: head.header,
        body,
    })
}

/// Decodes one message; the whole buffer must be consumed.
pub fn decode(buf: &[u8]) -> Result<WireMessage, CodecError> {
    let mut r = Reader { buf };
    let head = read_head(&mut r)?;
    let msg = if head.kind == KIND_SNAPSHOT {
        let n = r.u8()? as usize;
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.u32()? as usize;
            let mut item = Reader { buf: r.take(len)? };
            let t = read_tick(&mut item)?;
            if !item.buf.is_empty() {
                return Err(CodecError::Trailing(item.buf.len()));
            }
            if t.header.symbol != head.header.symbol {
                return Err(CodecError::Field("snapshot item symbol"));
            }
            items.push(t);
        }
        WireMessage::Snapshot {
            epoch: head.epoch,
            symbol: head.header.symbol,
            as_of: head.header.seq,
            items,
        }
    } else {
        let body = read_body(head.kind, &mut r)?;
        WireMessage::Tick(WireTick {
            epoch: head.epoch,
            sent_ts: head.sent_ts,
            header: head.header,
            body,
        })
    };
    if !r.buf.is_empty() {
        return Err(CodecError::Trailing(r.buf.len()));
    }
    Ok(msg)
}

/// Makes the tick a book actor would have published for `header` and `body`: the client
/// frames of quote, trade and status ticks in every encoding some session of `hub` uses,
/// encoded once here (book ticks are encoded per depth by the routers).
pub fn build_tick(hub: &Hub, instrument: &Instrument, header: TickHeader, body: TickBody) -> Tick {
    let mut frames: [Bytes; Encoding::COUNT] = Default::default();
    if !body.is_book() {
        let json = encode_tick(instrument, &header, &body, Encoding::JSON, MAX_DEPTH);
        let wants = |msgpack, deflate| hub.wants_encoding(Encoding { msgpack, deflate });
        if wants(false, true) {
            frames[1] = compress_frame(&json);
        }
        if wants(true, false) || wants(true, true) {
            let plain = Encoding {
                msgpack: true,
                deflate: false,
            };
            let mp = encode_tick(instrument, &header, &body, plain, MAX_DEPTH);
            if wants(true, true) {
                frames[3] = compress_frame(&mp);
            }
            frames[2] = mp;
        }
        frames[0] = json;
    }
    Tick {
        header,
        body,
        frames,
    }
}

/// [`build_tick`] behind an `Arc`, ready for [`Hub::publish`].
pub fn build_shared(
    hub: &Hub,
    instrument: &Instrument,
    header: TickHeader,
    body: TickBody,
) -> Arc<Tick> {
    Arc::new(build_tick(hub, instrument, header, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(seq: u64) -> TickHeader {
        TickHeader {
            symbol: SymbolId(7),
            seq: Seq(seq),
            chan_seq: Seq(seq / 2),
            ts: Nanos(1_700_000_000_000_000_001),
            recv_ts: Nanos(1_700_000_000_000_000_002),
        }
    }

    fn tick(seq: u64, body: TickBody) -> Tick {
        Tick {
            header: header(seq),
            body,
            frames: Default::default(),
        }
    }

    fn lv(p: i64, q: i64) -> Level {
        Level {
            price: Price(p),
            qty: Qty(q),
        }
    }

    fn bodies() -> Vec<TickBody> {
        vec![
            TickBody::Quote(TopOfBook {
                bid: Some(lv(10125, 300)),
                ask: Some(lv(-10127, i64::MAX)),
            }),
            TickBody::Quote(TopOfBook {
                bid: None,
                ask: Some(lv(5, 1)),
            }),
            TickBody::Quote(TopOfBook::default()),
            TickBody::Trade {
                price: Price(99),
                qty: Qty(1),
                aggressor: Some(Side::Sell),
            },
            TickBody::Trade {
                price: Price(99),
                qty: Qty(1),
                aggressor: None,
            },
            TickBody::Book(BookLevels {
                bids: (0..50).map(|i| lv(1000 - i, i + 1)).collect(),
                asks: vec![lv(1001, 7)],
            }),
            TickBody::Book(BookLevels::default()),
            TickBody::Status {
                state: FeedState::Stale,
                reason: "feed down: \"A\" line lost é".into(),
            },
        ]
    }

    #[test]
    fn every_tick_kind_round_trips() {
        for (i, body) in bodies().into_iter().enumerate() {
            let t = tick(40 + i as u64, body);
            let bytes = encode(9, Nanos(123), &t);
            let WireMessage::Tick(w) = decode(&bytes).unwrap() else {
                panic!("not a tick")
            };
            assert_eq!(w.epoch, 9);
            assert_eq!(w.sent_ts, Nanos(123));
            assert_eq!(w.header, t.header);
            assert_eq!(w.body, t.body);
        }
    }

    #[test]
    fn a_quote_is_compact() {
        let t = tick(1, bodies().remove(0));
        assert_eq!(encode(1, Nanos(0), &t).len(), HEADER_LEN + 1 + 32);
    }

    #[test]
    fn snapshots_round_trip() {
        let ticks: Vec<Tick> = bodies()
            .into_iter()
            .enumerate()
            .map(|(i, b)| tick(i as u64, b))
            .collect();
        let items: Vec<&Tick> = [7, 0, 5].iter().map(|&i| &ticks[i]).collect();
        let bytes = encode_snapshot(3, Nanos(5), SymbolId(7), Seq(77), &items);
        let WireMessage::Snapshot {
            epoch,
            symbol,
            as_of,
            items: got,
        } = decode(&bytes).unwrap()
        else {
            panic!("not a snapshot")
        };
        assert_eq!((epoch, symbol, as_of), (3, SymbolId(7), Seq(77)));
        let bodies: Vec<&TickBody> = got.iter().map(|w| &w.body).collect();
        assert_eq!(bodies, [&ticks[7].body, &ticks[0].body, &ticks[5].body]);
    }

    #[test]
    fn malformed_messages_are_refused_with_a_reason() {
        let good = encode(1, Nanos(0), &tick(1, bodies().remove(0)));
        assert_eq!(decode(&good[..10]), Err(CodecError::Truncated));
        assert_eq!(decode(&good[..good.len() - 1]), Err(CodecError::Truncated));
        let mut v = good.to_vec();
        v.push(0);
        assert_eq!(decode(&v), Err(CodecError::Trailing(1)));
        let mut v = good.to_vec();
        v[0] = 2;
        assert_eq!(decode(&v), Err(CodecError::Version(2)));
        let mut v = good.to_vec();
        v[1] = 9;
        assert_eq!(decode(&v), Err(CodecError::Kind(9)));
        let mut v = good.to_vec();
        v[HEADER_LEN] = 4;
        assert_eq!(decode(&v), Err(CodecError::Field("quote sides")));
        let book = encode(1, Nanos(0), &tick(1, bodies().remove(5)));
        let mut v = book.to_vec();
        v[HEADER_LEN] = 51;
        assert_eq!(decode(&v), Err(CodecError::Field("book depth")));
        assert_eq!(decode(b""), Err(CodecError::Truncated));
    }
}
