//! Binance spot: `depthUpdate` diffs chained onto a REST `/api/v3/depth` snapshot, plus
//! `bookTicker` and `aggTrade`; `kline` is understood and ignored.
//!
//! The book follows Binance's documented procedure for a local order book:
//! 1. buffer diffs from the stream while the snapshot is fetched;
//! 2. drop every diff whose final update id `u` is `<= lastUpdateId` of the snapshot;
//! 3. the first diff applied must satisfy `U <= lastUpdateId + 1 <= u`;
//! 4. from then on each diff's `U` must equal the previous diff's `u + 1`.
//!
//! Any break of the chain is a [`ResyncReason::SequenceGap`]: the decoder emits
//! [`Decoded::Resync`], keeps buffering diffs, and resumes at the next snapshot
//! ([`VenueDecoder::decode_http`]), which a live adapter fetches on that signal. Diffs are parsed
//! on arrival (so malformed ones are reported where they occur) and buffered parsed.

use std::collections::VecDeque;

use simd_json::prelude::*;
use simd_json::BorrowedValue as Value;
use smallvec::SmallVec;
use tickwire_engine::domain::{Nanos, Side, SymbolId};
use tickwire_engine::event::{EventMeta, FeedEvent, LevelUpdate};

use super::json::{self, str_field, u64_field};
use super::{
    price, qty, DecodeError, DecodeStats, Decoded, QuoteSide, ResyncReason, SampleScales,
    SymbolRegistry, VenueDecoder, VenueQuote,
};

/// Diffs kept per symbol while waiting for a snapshot; older ones are discarded (the snapshot
/// that eventually arrives will be newer than them anyway).
const MAX_BUFFERED_DIFFS: usize = 4096;

#[derive(Debug, Clone)]
struct Diff {
    first: u64,
    last: u64,
    meta: EventMeta,
    changes: SmallVec<[LevelUpdate; 4]>,
}

#[derive(Debug)]
enum Sync {
    AwaitingSnapshot(VecDeque<Diff>),
    Live {
        last: u64,
        /// No diff applied since the snapshot: the first-diff rule applies.
        fresh: bool,
    },
}

impl Default for Sync {
    fn default() -> Self {
        Sync::AwaitingSnapshot(VecDeque::new())
    }
}

/// Binance spot decoder. See the module documentation.
pub struct BinanceDecoder {
    registry: SymbolRegistry,
    sync: Vec<Sync>,
    stats: DecodeStats,
    buffers: simd_json::Buffers,
}

impl BinanceDecoder {
    /// A decoder resolving symbols through `registry`.
    pub fn new(registry: SymbolRegistry) -> Self {
        BinanceDecoder {
            registry,
            sync: Vec::new(),
            stats: DecodeStats::default(),
            buffers: simd_json::Buffers::default(),
        }
    }

    fn sync_mut(&mut self, id: SymbolId) -> &mut Sync {
        if self.sync.len() <= id.index() {
            self.sync.resize_with(id.index() + 1, Sync::default);
        }
        &mut self.sync[id.index()]
    }

    /// Whether a symbol's book is chained to a snapshot.
    pub fn is_live(&self, id: SymbolId) -> bool {
        matches!(self.sync.get(id.index()), Some(Sync::Live { .. }))
    }

    /// Applies (or buffers, or rejects) one parsed diff.
    fn on_diff(&mut self, id: SymbolId, diff: Diff, out: &mut Vec<Decoded>) {
        let sync = self.sync_mut(id);
        match sync {
            Sync::AwaitingSnapshot(buf) => {
                if buf.len() == MAX_BUFFERED_DIFFS {
                    buf.pop_front();
                }
                buf.push_back(diff);
                self.stats.dropped_awaiting_snapshot += 1;
            }
            Sync::Live { last, fresh } => {
                if diff.last <= *last {
                    // Older than what the book already holds (rule 2).
                    return;
                }
                let chained = if *fresh {
                    diff.first <= last.saturating_add(1)
                } else {
                    diff.first == last.saturating_add(1)
                };
                if !chained {
                    let reason = ResyncReason::SequenceGap {
                        expected: last.saturating_add(1),
                        got: diff.first,
                    };
                    tracing::warn!(venue = "binance", symbol = id.0, %reason, "diff chain broken");
                    *sync = Sync::AwaitingSnapshot(VecDeque::from([diff]));
                    self.stats.sequence_gaps += 1;
                    self.stats.dropped_awaiting_snapshot += 1;
                    out.push(Decoded::Resync { symbol: id, reason });
                    return;
                }
                *last = diff.last;
                *fresh = false;
                out.push(Decoded::Event(FeedEvent::Delta {
                    meta: diff.meta,
                    changes: diff.changes,
                }));
            }
        }
    }
}

impl VenueDecoder for BinanceDecoder {
    fn venue(&self) -> &'static str {
        "binance"
    }

    fn handle(
        &mut self,
        payload: &mut [u8],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let mut buffers = std::mem::take(&mut self.buffers);
        let result =
            json::parse(payload, &mut buffers).and_then(|v| self.dispatch(&v, recv_ts, out));
        self.buffers = buffers;
        result
    }

    /// A REST depth snapshot; the symbol comes from the URL's `symbol=` parameter.
    fn handle_http(
        &mut self,
        url: &str,
        payload: &mut [u8],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let symbol = url
            .split(['?', '&'])
            .find_map(|kv| kv.strip_prefix("symbol="))
            .ok_or(DecodeError::Field("symbol= in snapshot URL"))?;
        let mut buffers = std::mem::take(&mut self.buffers);
        let result = json::parse(payload, &mut buffers)
            .and_then(|v| self.snapshot(symbol, &v, recv_ts, out));
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

impl BinanceDecoder {
    fn dispatch(
        &mut self,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        // Combined streams wrap each event as {"stream": ..., "data": {...}}.
        let data = v.get("data").unwrap_or(v);
        if !data.is_object() {
            return Err(DecodeError::Field("data"));
        }
        if let Some(msg) = data.get("msg").and_then(|m| m.as_str()) {
            return Err(DecodeError::Venue(msg.chars().take(200).collect()));
        }
        match data.get("e").and_then(|e| e.as_str()) {
            Some("depthUpdate") => self.depth_update(data, recv_ts, out),
            Some("aggTrade") | Some("trade") => self.trade(data, recv_ts, out),
            Some("kline") => {
                self.stats.control += 1;
                Ok(())
            }
            Some(other) => Err(DecodeError::Unexpected(format!(
                "event {:?}",
                other.chars().take(40).collect::<String>()
            ))),
            // bookTicker has no "e"; subscription acks are {"result":null,"id":n}.
            None if data.get("b").is_some() && data.get("A").is_some() => {
                self.book_ticker(data, recv_ts, out)
            }
            None if data.get("id").is_some() => {
                self.stats.control += 1;
                Ok(())
            }
            None => Err(DecodeError::Unexpected("object without event type".into())),
        }
    }

    fn depth_update(
        &mut self,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let symbol = str_field(v, "s")?;
        let bids = json::array_field(v, "b")?;
        let asks = json::array_field(v, "a")?;
        let first = u64_field(v, "U")?;
        let last = u64_field(v, "u")?;
        if first > last {
            return Err(DecodeError::Unexpected(format!("U {first} > u {last}")));
        }
        let id = self.registry.resolve(symbol, || sample(bids, asks))?;
        let (ps, ss) = self.registry.scales(id);
        let mut changes = SmallVec::new();
        for (side, levels) in [(Side::Buy, bids), (Side::Sell, asks)] {
            for l in levels {
                let (px, sz) = json::level_strs(l)?;
                changes.push(LevelUpdate {
                    side,
                    price: price("level price", px, ps)?,
                    qty: qty("level size", sz, ss)?,
                });
            }
        }
        let ts = v
            .get("E")
            .and_then(|e| e.as_i64())
            .and_then(super::millis)
            .unwrap_or(recv_ts);
        let diff = Diff {
            first,
            last,
            meta: EventMeta {
                symbol: id,
                ts,
                recv_ts,
            },
            changes,
        };
        self.on_diff(id, diff, out);
        Ok(())
    }

    fn snapshot(
        &mut self,
        symbol: &str,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let last_update_id = u64_field(v, "lastUpdateId")?;
        let bids = json::array_field(v, "bids")?;
        let asks = json::array_field(v, "asks")?;
        let id = self.registry.resolve(symbol, || sample(bids, asks))?;
        let (ps, ss) = self.registry.scales(id);
        let levels = |side: &[Value<'_>]| -> Result<Vec<_>, DecodeError> {
            side.iter()
                .map(|l| {
                    let (px, sz) = json::level_strs(l)?;
                    Ok((price("level price", px, ps)?, qty("level size", sz, ss)?))
                })
                .collect()
        };
        let bids = levels(bids)?;
        let asks = levels(asks)?;
        out.push(Decoded::Event(FeedEvent::Snapshot {
            meta: EventMeta {
                symbol: id,
                ts: recv_ts,
                recv_ts,
            },
            bids,
            asks,
        }));
        let buffered = match std::mem::replace(
            self.sync_mut(id),
            Sync::Live {
                last: last_update_id,
                fresh: true,
            },
        ) {
            Sync::AwaitingSnapshot(buf) => buf,
            Sync::Live { .. } => VecDeque::new(),
        };
        for diff in buffered {
            self.on_diff(id, diff, out);
        }
        Ok(())
    }

    fn trade(
        &mut self,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let symbol = str_field(v, "s")?;
        let px = str_field(v, "p")?;
        let sz = str_field(v, "q")?;
        let id = self.registry.resolve(symbol, || {
            let mut s = SampleScales::default();
            s.price(px);
            s.size(sz);
            s
        })?;
        let (ps, ss) = self.registry.scales(id);
        // `m`: the buyer was the maker, so the seller was the aggressor.
        let aggressor =
            v.get("m")
                .and_then(|m| m.as_bool())
                .map(|m| if m { Side::Sell } else { Side::Buy });
        let ts = v
            .get("T")
            .and_then(|t| t.as_i64())
            .and_then(super::millis)
            .unwrap_or(recv_ts);
        out.push(Decoded::Event(FeedEvent::Trade {
            meta: EventMeta {
                symbol: id,
                ts,
                recv_ts,
            },
            price: price("p", px, ps)?,
            qty: qty("q", sz, ss)?,
            aggressor,
        }));
        Ok(())
    }

    fn book_ticker(
        &mut self,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let symbol = str_field(v, "s")?;
        let (bpx, bsz) = (str_field(v, "b")?, str_field(v, "B")?);
        let (apx, asz) = (str_field(v, "a")?, str_field(v, "A")?);
        let id = self.registry.resolve(symbol, || {
            let mut s = SampleScales::default();
            s.price(bpx);
            s.price(apx);
            s.size(bsz);
            s.size(asz);
            s
        })?;
        let (ps, ss) = self.registry.scales(id);
        out.push(Decoded::Quote(VenueQuote {
            meta: EventMeta {
                symbol: id,
                ts: recv_ts,
                recv_ts,
            },
            bid: Some(QuoteSide {
                price: price("b", bpx, ps)?,
                qty: Some(qty("B", bsz, ss)?),
            }),
            ask: Some(QuoteSide {
                price: price("a", apx, ps)?,
                qty: Some(qty("A", asz, ss)?),
            }),
        }));
        Ok(())
    }
}

fn sample(bids: &[Value<'_>], asks: &[Value<'_>]) -> SampleScales {
    let mut s = SampleScales::default();
    for l in bids.iter().chain(asks) {
        if let Ok((px, sz)) = json::level_strs(l) {
            s.price(px);
            s.size(sz);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn diff(d: &mut BinanceDecoder, first: u64, last: u64, out: &mut Vec<Decoded>) {
        let mut m = format!(
            r#"{{"e":"depthUpdate","E":1,"s":"XY","U":{first},"u":{last},"b":[["1.0","2.0"]],"a":[]}}"#
        )
        .into_bytes();
        d.decode(&mut m, Nanos(0), out).unwrap();
    }

    #[test]
    fn follows_the_documented_sync_procedure() {
        let mut d = BinanceDecoder::new(SymbolRegistry::inferred("binance"));
        let mut out = Vec::new();
        diff(&mut d, 1, 5, &mut out); // older than the snapshot: dropped
        diff(&mut d, 6, 12, &mut out); // straddles lastUpdateId + 1 = 11: first applied
        diff(&mut d, 13, 13, &mut out);
        assert!(out.is_empty(), "nothing before the snapshot");
        let mut snap = br#"{"lastUpdateId":10,"bids":[["1.0","1.0"]],"asks":[]}"#.to_vec();
        d.decode_http(
            "https://x/api/v3/depth?symbol=XY&limit=5",
            &mut snap,
            Nanos(0),
            &mut out,
        )
        .unwrap();
        assert_eq!(out.len(), 3, "snapshot + two chained diffs: {out:?}");
        diff(&mut d, 15, 16, &mut out); // 14 is missing
        assert_eq!(d.stats().sequence_gaps, 1);
        assert!(matches!(
            out.last(),
            Some(Decoded::Resync {
                reason: ResyncReason::SequenceGap {
                    expected: 14,
                    got: 15
                },
                ..
            })
        ));
        assert!(!d.is_live(SymbolId(0)));
    }
}
