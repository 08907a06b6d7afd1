//! OKX v5 public WebSocket: `books` (snapshot + update), `tickers`, `trades`.
//!
//! Every `books` message, snapshot included, carries `checksum`: a *signed* CRC32 over the
//! top 25 levels interleaved bid/ask using the venue's own strings. The decoder keeps a
//! [`StrBook`] per instrument to recompute it after applying each message; on mismatch it
//! emits [`Decoded::Resync`] and drops the instrument's updates until the next snapshot (a
//! live adapter resubscribes the channel to get one). Newer OKX versions also send
//! `seqId`/`prevSeqId`; when present they are chain-checked as well. A level size of `"0"`
//! deletes the level. `trades` carry the taker's side, which is the aggressor.

use simd_json::prelude::*;
use simd_json::BorrowedValue as Value;
use smallvec::SmallVec;
use tickwire_engine::domain::{Nanos, Side, SymbolId};
use tickwire_engine::event::{EventMeta, FeedEvent, LevelUpdate};

use super::json::{self, str_field};
use super::strbook::StrBook;
use super::{
    price, qty, DecodeError, DecodeStats, Decoded, QuoteSide, ResyncReason, SampleScales,
    SymbolRegistry, VenueDecoder, VenueQuote,
};

/// Levels per side in OKX's checksum.
const CHECKSUM_LEVELS: usize = 25;

#[derive(Debug, Default)]
struct InstBook {
    book: StrBook,
    live: bool,
    last_seq: Option<i64>,
}

/// OKX v5 decoder. See the module documentation.
pub struct OkxDecoder {
    registry: SymbolRegistry,
    books: Vec<InstBook>,
    stats: DecodeStats,
    buffers: simd_json::Buffers,
    scratch: Vec<u8>,
}

impl OkxDecoder {
    /// A decoder resolving instruments through `registry`.
    pub fn new(registry: SymbolRegistry) -> Self {
        OkxDecoder {
            registry,
            books: Vec::new(),
            stats: DecodeStats::default(),
            buffers: simd_json::Buffers::default(),
            scratch: Vec::with_capacity(2048),
        }
    }

    fn book_mut(&mut self, id: SymbolId) -> &mut InstBook {
        if self.books.len() <= id.index() {
            self.books.resize_with(id.index() + 1, InstBook::default);
        }
        &mut self.books[id.index()]
    }

    /// OKX's checksum: `bid_px:bid_sz:ask_px:ask_sz:...` over the top 25 levels, continuing
    /// with the longer side alone, as a signed CRC32.
    fn checksum(book: &StrBook, scratch: &mut Vec<u8>) -> i32 {
        scratch.clear();
        let mut bids = book.levels(Side::Buy).take(CHECKSUM_LEVELS);
        let mut asks = book.levels(Side::Sell).take(CHECKSUM_LEVELS);
        loop {
            let (b, a) = (bids.next(), asks.next());
            if b.is_none() && a.is_none() {
                break;
            }
            for l in [b, a].into_iter().flatten() {
                if !scratch.is_empty() {
                    scratch.push(b':');
                }
                scratch.extend_from_slice(&l.px);
                scratch.push(b':');
                scratch.extend_from_slice(&l.sz);
            }
        }
        crc32fast::hash(scratch) as i32
    }
}

impl VenueDecoder for OkxDecoder {
    fn venue(&self) -> &'static str {
        "okx"
    }

    fn handle(
        &mut self,
        payload: &mut [u8],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        // OKX answers the text "ping" with "pong"; neither is JSON.
        if payload == b"pong" {
            self.stats.control += 1;
            return Ok(());
        }
        let mut buffers = std::mem::take(&mut self.buffers);
        let result =
            json::parse(payload, &mut buffers).and_then(|v| self.dispatch(&v, recv_ts, out));
        self.buffers = buffers;
        result
    }

    fn registry(&self) -> &SymbolRegistry {
        &self.registry
    }

    fn stats(&self) -> &DecodeStats {
        &self.stats
    }

    fn stats_mut(&mut self) -> &mut DecodeStats {
        &mut self.stats
    }
}

fn ms_field(v: &Value<'_>, key: &str) -> Option<Nanos> {
    v.get(key)
        .and_then(|t| t.as_str())
        .and_then(|t| t.parse::<i64>().ok())
        .and_then(|ms| ms.checked_mul(1_000_000))
        .map(Nanos)
}

impl OkxDecoder {
    fn dispatch(
        &mut self,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        if let Some(event) = v.get("event").and_then(|e| e.as_str()) {
            if event == "error" {
                let msg = v.get("msg").and_then(|m| m.as_str()).unwrap_or("error");
                return Err(DecodeError::Venue(msg.chars().take(200).collect()));
            }
            self.stats.control += 1;
            return Ok(());
        }
        let arg = v.get("arg").ok_or(DecodeError::Field("arg"))?;
        let channel = str_field(arg, "channel")?;
        let inst = str_field(arg, "instId")?;
        let data = json::array_field(v, "data")?;
        match channel {
            "books" | "books5" | "books50-l2-tbt" | "books-l2-tbt" => {
                let action = v
                    .get("action")
                    .and_then(|a| a.as_str())
                    .unwrap_or("snapshot");
                for d in data {
                    self.book(inst, action == "snapshot", d, recv_ts, out)?;
                }
                Ok(())
            }
            "trades" => data
                .iter()
                .try_for_each(|d| self.trade(inst, d, recv_ts, out)),
            "tickers" => data
                .iter()
                .try_for_each(|d| self.ticker(inst, d, recv_ts, out)),
            _ => {
                self.stats.control += 1;
                Ok(())
            }
        }
    }

    fn book(
        &mut self,
        inst: &str,
        snapshot: bool,
        d: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let bids = json::array_field(d, "bids")?;
        let asks = json::array_field(d, "asks")?;
        let id = if snapshot {
            self.registry.resolve(inst, || {
                let mut s = SampleScales::default();
                for l in bids.iter().chain(asks) {
                    if let Ok((px, sz)) = json::level_strs(l) {
                        s.price(px);
                        s.size(sz);
                    }
                }
                s
            })?
        } else {
            let live = |id: &SymbolId| self.books.get(id.index()).is_some_and(|b| b.live);
            let Some(id) = self.registry.lookup(inst).filter(live) else {
                self.stats.dropped_awaiting_snapshot += 1;
                return Ok(());
            };
            id
        };
        let (ps, ss) = self.registry.scales(id);
        let ts = ms_field(d, "ts").unwrap_or(recv_ts);
        let meta = EventMeta {
            symbol: id,
            ts,
            recv_ts,
        };

        // Parse everything before touching the book: a bad level must not half-apply.
        let mut levels: SmallVec<[(LevelUpdate, &str, &str); 8]> = SmallVec::new();
        let parsed = (|| {
            for (side, side_levels) in [(Side::Buy, bids), (Side::Sell, asks)] {
                for l in side_levels {
                    let (px, sz) = json::level_strs(l)?;
                    let update = LevelUpdate {
                        side,
                        price: price("level price", px, ps)?,
                        qty: qty("level size", sz, ss)?,
                    };
                    levels.push((update, px, sz));
                }
            }
            Ok::<_, DecodeError>(())
        })();
        if let Err(e) = parsed {
            self.book_mut(id).live = false;
            out.push(Decoded::Resync {
                symbol: id,
                reason: ResyncReason::BadBookMessage,
            });
            return Err(e);
        }

        let seq = d.get("seqId").and_then(|s| s.as_i64());
        let prev = d.get("prevSeqId").and_then(|s| s.as_i64());
        let book = self.book_mut(id);
        if !snapshot {
            if let (Some(prev), Some(last)) = (prev, book.last_seq) {
                if prev != last {
                    book.live = false;
                    self.stats.sequence_gaps += 1;
                    out.push(Decoded::Resync {
                        symbol: id,
                        reason: ResyncReason::SequenceGap {
                            expected: last as u64,
                            got: prev as u64,
                        },
                    });
                    return Ok(());
                }
            }
        } else {
            book.book.clear();
        }
        book.last_seq = seq.or(book.last_seq);
        for (u, px, sz) in &levels {
            book.book.set(u.side, u.price, u.qty, px, sz);
        }
        book.live = true;
        if snapshot {
            let bids = book.book.levels(Side::Buy).map(|l| l.pair()).collect();
            let asks = book.book.levels(Side::Sell).map(|l| l.pair()).collect();
            out.push(Decoded::Event(FeedEvent::Snapshot { meta, bids, asks }));
        } else {
            let changes = levels.iter().map(|(u, _, _)| *u).collect();
            out.push(Decoded::Event(FeedEvent::Delta { meta, changes }));
        }
        if let Some(expected) = d.get("checksum") {
            let expected = expected.as_i64().ok_or(DecodeError::Field("checksum"))?;
            let computed = Self::checksum(&self.books[id.index()].book, &mut self.scratch);
            if i64::from(computed) == expected {
                self.stats.checksums_verified += 1;
            } else {
                self.stats.checksums_failed += 1;
                tracing::warn!(venue = "okx", inst, expected, computed, "checksum mismatch");
                self.books[id.index()].live = false;
                out.push(Decoded::Resync {
                    symbol: id,
                    reason: ResyncReason::ChecksumMismatch {
                        expected,
                        computed: computed.into(),
                    },
                });
            }
        }
        Ok(())
    }

    fn trade(
        &mut self,
        inst: &str,
        d: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let px = str_field(d, "px")?;
        let sz = str_field(d, "sz")?;
        let id = self.registry.resolve(inst, || {
            let mut s = SampleScales::default();
            s.price(px);
            s.size(sz);
            s
        })?;
        let (ps, ss) = self.registry.scales(id);
        let aggressor = match d.get("side").and_then(|s| s.as_str()) {
            Some("buy") => Some(Side::Buy),
            Some("sell") => Some(Side::Sell),
            _ => None,
        };
        out.push(Decoded::Event(FeedEvent::Trade {
            meta: EventMeta {
                symbol: id,
                ts: ms_field(d, "ts").unwrap_or(recv_ts),
                recv_ts,
            },
            price: price("px", px, ps)?,
            qty: qty("sz", sz, ss)?,
            aggressor,
        }));
        Ok(())
    }

    fn ticker(
        &mut self,
        inst: &str,
        d: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let text = |k: &'static str| d.get(k).and_then(|x| x.as_str()).filter(|s| !s.is_empty());
        let (bpx, bsz, apx, asz) = (text("bidPx"), text("bidSz"), text("askPx"), text("askSz"));
        let id = self.registry.resolve(inst, || {
            let mut s = SampleScales::default();
            bpx.into_iter().chain(apx).for_each(|p| s.price(p));
            bsz.into_iter().chain(asz).for_each(|z| s.size(z));
            s
        })?;
        let (ps, ss) = self.registry.scales(id);
        let side = |px: Option<&str>, sz: Option<&str>, f: &'static str| {
            px.map(|px| {
                Ok::<_, DecodeError>(QuoteSide {
                    price: price(f, px, ps)?,
                    qty: sz.map(|s| qty(f, s, ss)).transpose()?,
                })
            })
            .transpose()
        };
        out.push(Decoded::Quote(VenueQuote {
            meta: EventMeta {
                symbol: id,
                ts: ms_field(d, "ts").unwrap_or(recv_ts),
                recv_ts,
            },
            bid: side(bpx, bsz, "bidPx")?,
            ask: side(apx, asz, "askPx")?,
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksum_interleaves_and_continues_with_the_longer_side() {
        let mut b = StrBook::default();
        let s = tickwire_engine::domain::Scale::new(1);
        let p = |x: &str| price("p", x, s).unwrap();
        let q = |x: &str| qty("q", x, s).unwrap();
        b.set(Side::Buy, p("3.0"), q("1"), "3.0", "1");
        b.set(Side::Buy, p("2.0"), q("2"), "2.0", "2");
        b.set(Side::Sell, p("4.0"), q("5"), "4.0", "5");
        let mut scratch = Vec::new();
        let got = OkxDecoder::checksum(&b, &mut scratch);
        assert_eq!(scratch, b"3.0:1:4.0:5:2.0:2");
        assert_eq!(got, crc32fast::hash(b"3.0:1:4.0:5:2.0:2") as i32);
    }
}
