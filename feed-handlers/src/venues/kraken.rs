//! Kraken WebSocket API v1: `book`, `trade` and `ticker` channels.
//!
//! Channel messages are JSON arrays `[channelID, payload..., channelName, pair]`; the decoder
//! reads the channel name and pair from the tail of the array, so it needs no state from the
//! subscription acks. Book channels are named `book-<depth>`: the decoder keeps each book
//! trimmed to that depth, because Kraken does not send deletes for levels pushed out of the
//! subscribed depth, and reports the trimmed levels as deletes so the engine's book agrees.
//!
//! Every book update carries `c`, Kraken's CRC32 over the top 10 levels of *its* strings, so
//! the decoder keeps a [`StrBook`] per pair. The checksum is verified after the whole message
//! has been applied; on mismatch the decoder emits [`Decoded::Resync`] and drops the pair's
//! updates until the next snapshot (a live adapter resubscribes to get one). The republish
//! flag `"r"` (4th element of a level) marks a level re-sent after a depth change; it is
//! applied like any other update.

use simd_json::prelude::*;
use simd_json::BorrowedValue as Value;
use smallvec::SmallVec;
use tickwire_engine::domain::{Nanos, Side, SymbolId};
use tickwire_engine::event::{EventMeta, FeedEvent, LevelUpdate};

use super::json::{self, str_at};
use super::strbook::StrBook;
use super::{
    parse_secs, price, qty, DecodeError, DecodeStats, Decoded, QuoteSide, ResyncReason,
    SampleScales, SymbolRegistry, VenueDecoder, VenueQuote,
};

/// Levels that enter Kraken's book checksum, per side.
const CHECKSUM_LEVELS: usize = 10;

#[derive(Debug, Default)]
struct PairBook {
    book: StrBook,
    depth: usize,
    /// A snapshot has been applied and no check failed since.
    live: bool,
}

/// Kraken v1 decoder. See the module documentation.
pub struct KrakenDecoder {
    registry: SymbolRegistry,
    books: Vec<PairBook>,
    stats: DecodeStats,
    buffers: simd_json::Buffers,
    scratch: Vec<u8>,
}

/// One parsed level of an update, before it is applied.
struct PendingLevel<'a> {
    side: Side,
    px: &'a str,
    sz: &'a str,
}

impl KrakenDecoder {
    /// A decoder resolving pairs through `registry`.
    pub fn new(registry: SymbolRegistry) -> Self {
        KrakenDecoder {
            registry,
            books: Vec::new(),
            stats: DecodeStats::default(),
            buffers: simd_json::Buffers::default(),
            scratch: Vec::with_capacity(512),
        }
    }

    fn book_mut(&mut self, id: SymbolId) -> &mut PairBook {
        if self.books.len() <= id.index() {
            self.books.resize_with(id.index() + 1, PairBook::default);
        }
        &mut self.books[id.index()]
    }

    /// Kraken's checksum of a book: see the README rule (top 10 asks then bids, strings with
    /// the decimal point and leading zeros removed).
    fn checksum(book: &StrBook, scratch: &mut Vec<u8>) -> u32 {
        scratch.clear();
        for side in [Side::Sell, Side::Buy] {
            for l in book.levels(side).take(CHECKSUM_LEVELS) {
                push_stripped(scratch, &l.px);
                push_stripped(scratch, &l.sz);
            }
        }
        crc32fast::hash(scratch)
    }
}

/// Appends a decimal string without its point and leading zeros.
fn push_stripped(out: &mut Vec<u8>, s: &[u8]) {
    let start = out.len();
    for &c in s {
        if c == b'.' || (c == b'0' && out.len() == start) {
            continue;
        }
        out.push(c);
    }
}

impl VenueDecoder for KrakenDecoder {
    fn venue(&self) -> &'static str {
        "kraken"
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

impl KrakenDecoder {
    fn dispatch(
        &mut self,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        if v.is_object() {
            return self.event(v);
        }
        let arr = v.as_array().ok_or(DecodeError::Field("message"))?;
        let n = arr.len();
        if n < 4 {
            return Err(DecodeError::Field("channel message"));
        }
        let channel = str_at(arr, n - 2, "channelName")?;
        let pair = str_at(arr, n - 1, "pair")?;
        let body = &arr[1..n - 2];
        if let Some(depth) = channel.strip_prefix("book-") {
            let depth: usize = depth
                .parse()
                .map_err(|_| DecodeError::Field("channelName depth"))?;
            self.book(pair, depth, body, recv_ts, out)
        } else if channel == "trade" {
            self.trades(pair, body, recv_ts, out)
        } else if channel == "ticker" {
            self.ticker(pair, body, recv_ts, out)
        } else {
            // spread, ohlc and own-order channels carry nothing the engine publishes.
            self.stats.control += 1;
            Ok(())
        }
    }

    fn event(&mut self, v: &Value<'_>) -> Result<(), DecodeError> {
        let event = json::str_field(v, "event")?;
        let failed = v.get("status").and_then(|s| s.as_str()) == Some("error");
        if event == "error" || failed {
            let msg = v
                .get("errorMessage")
                .and_then(|m| m.as_str())
                .unwrap_or(event);
            return Err(DecodeError::Venue(msg.chars().take(200).collect()));
        }
        self.stats.control += 1;
        Ok(())
    }

    fn book(
        &mut self,
        pair: &str,
        depth: usize,
        body: &[Value<'_>],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let first = body.first().ok_or(DecodeError::Field("book payload"))?;
        if first.get("as").is_some() || first.get("bs").is_some() {
            return self.snapshot(pair, depth, first, recv_ts, out);
        }
        // A pair without a snapshot yet is not in the registry: the update is simply early.
        let live = |id: &SymbolId| self.books.get(id.index()).is_some_and(|b| b.live);
        let Some(id) = self.registry.lookup(pair).filter(live) else {
            self.stats.dropped_awaiting_snapshot += 1;
            return Ok(());
        };
        let (ps, ss) = self.registry.scales(id);

        // Parse the whole message before touching the book, so a bad level cannot leave a
        // half-applied update behind.
        let mut pending: SmallVec<[PendingLevel<'_>; 8]> = SmallVec::new();
        let mut checksum: Option<&str> = None;
        let mut ts = Nanos(0);
        for part in body {
            for (key, side) in [("a", Side::Sell), ("b", Side::Buy)] {
                let Some(levels) = part.get(key) else {
                    continue;
                };
                let levels = levels.as_array().ok_or(DecodeError::Field("levels"))?;
                for l in levels {
                    let l = l.as_array().ok_or(DecodeError::Field("level"))?;
                    let px = str_at(l, 0, "level price")?;
                    let sz = str_at(l, 1, "level volume")?;
                    if let Some(t) = l.get(2).and_then(|t| t.as_str()).and_then(parse_secs) {
                        ts = ts.max(t);
                    }
                    pending.push(PendingLevel { side, px, sz });
                }
            }
            if let Some(c) = part.get("c") {
                checksum = Some(c.as_str().ok_or(DecodeError::Field("c"))?);
            }
        }
        let mut changes: SmallVec<[LevelUpdate; 4]> = SmallVec::new();
        for p in &pending {
            let parsed = price("level price", p.px, ps)
                .and_then(|pr| Ok((pr, qty("level volume", p.sz, ss)?)));
            match parsed {
                Ok((price, qty)) => changes.push(LevelUpdate {
                    side: p.side,
                    price,
                    qty,
                }),
                Err(e) => {
                    self.book_mut(id).live = false;
                    out.push(Decoded::Resync {
                        symbol: id,
                        reason: ResyncReason::BadBookMessage,
                    });
                    return Err(e);
                }
            }
        }
        let book = self.book_mut(id);
        for (c, p) in changes.iter().zip(&pending) {
            book.book.set(c.side, c.price, c.qty, p.px, p.sz);
        }
        let depth = book.depth;
        book.book.truncate(depth, |side, price| {
            changes.push(LevelUpdate {
                side,
                price,
                qty: tickwire_engine::domain::Qty::ZERO,
            })
        });
        let meta = EventMeta {
            symbol: id,
            ts: if ts.0 == 0 { recv_ts } else { ts },
            recv_ts,
        };
        out.push(Decoded::Event(FeedEvent::Delta { meta, changes }));
        if let Some(c) = checksum {
            let Ok(expected) = c.parse::<u32>() else {
                self.books[id.index()].live = false;
                out.push(Decoded::Resync {
                    symbol: id,
                    reason: ResyncReason::BadBookMessage,
                });
                return Err(DecodeError::Field("c"));
            };
            let computed = Self::checksum(&self.books[id.index()].book, &mut self.scratch);
            if computed == expected {
                self.stats.checksums_verified += 1;
            } else {
                self.stats.checksums_failed += 1;
                tracing::warn!(
                    venue = "kraken",
                    pair,
                    expected,
                    computed,
                    "checksum mismatch"
                );
                self.books[id.index()].live = false;
                out.push(Decoded::Resync {
                    symbol: id,
                    reason: ResyncReason::ChecksumMismatch {
                        expected: expected as i64,
                        computed: computed as i64,
                    },
                });
            }
        }
        Ok(())
    }

    fn snapshot(
        &mut self,
        pair: &str,
        depth: usize,
        body: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let asks = body.get("as").and_then(|a| a.as_array());
        let bids = body.get("bs").and_then(|a| a.as_array());
        let sides = [(Side::Sell, asks), (Side::Buy, bids)];
        let id = self.registry.resolve(pair, || {
            let mut s = SampleScales::default();
            for l in sides.iter().filter_map(|(_, l)| *l).flatten() {
                if let Ok((px, sz)) = json::level_strs(l) {
                    s.price(px);
                    s.size(sz);
                }
            }
            s
        })?;
        let (ps, ss) = self.registry.scales(id);
        let mut fresh = StrBook::default();
        let mut ts = Nanos(0);
        for (side, levels) in sides {
            for l in levels.into_iter().flatten() {
                let la = l.as_array().ok_or(DecodeError::Field("level"))?;
                let px = str_at(la, 0, "level price")?;
                let sz = str_at(la, 1, "level volume")?;
                if let Some(t) = la.get(2).and_then(|t| t.as_str()).and_then(parse_secs) {
                    ts = ts.max(t);
                }
                fresh.set(
                    side,
                    price("level price", px, ps)?,
                    qty("level volume", sz, ss)?,
                    px,
                    sz,
                );
            }
        }
        fresh.truncate(depth, |_, _| {});
        let bids = fresh.levels(Side::Buy).map(|l| l.pair()).collect();
        let asks = fresh.levels(Side::Sell).map(|l| l.pair()).collect();
        let book = self.book_mut(id);
        book.book = fresh;
        book.depth = depth;
        book.live = true;
        out.push(Decoded::Event(FeedEvent::Snapshot {
            meta: EventMeta {
                symbol: id,
                ts: if ts.0 == 0 { recv_ts } else { ts },
                recv_ts,
            },
            bids,
            asks,
        }));
        Ok(())
    }

    fn trades(
        &mut self,
        pair: &str,
        body: &[Value<'_>],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let trades = body
            .first()
            .and_then(|t| t.as_array())
            .ok_or(DecodeError::Field("trades"))?;
        let id = self.registry.resolve(pair, || {
            let mut s = SampleScales::default();
            for t in trades {
                if let Ok((px, sz)) = json::level_strs(t) {
                    s.price(px);
                    s.size(sz);
                }
            }
            s
        })?;
        let (ps, ss) = self.registry.scales(id);
        for t in trades {
            let t = t.as_array().ok_or(DecodeError::Field("trade"))?;
            let price = price("trade price", str_at(t, 0, "trade price")?, ps)?;
            let qty = qty("trade volume", str_at(t, 1, "trade volume")?, ss)?;
            let ts = str_at(t, 2, "trade time")
                .ok()
                .and_then(parse_secs)
                .unwrap_or(recv_ts);
            let aggressor = match str_at(t, 3, "trade side")? {
                "b" => Some(Side::Buy),
                "s" => Some(Side::Sell),
                _ => None,
            };
            out.push(Decoded::Event(FeedEvent::Trade {
                meta: EventMeta {
                    symbol: id,
                    ts,
                    recv_ts,
                },
                price,
                qty,
                aggressor,
            }));
        }
        Ok(())
    }

    fn ticker(
        &mut self,
        pair: &str,
        body: &[Value<'_>],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let t = body.first().ok_or(DecodeError::Field("ticker"))?;
        // [price, whole lot volume, lot volume]
        let side_strs = |key: &'static str| -> Result<(&str, &str), DecodeError> {
            let a = t
                .get(key)
                .and_then(|a| a.as_array())
                .ok_or(DecodeError::Field(key))?;
            Ok((str_at(a, 0, key)?, str_at(a, 2, key)?))
        };
        let (bpx, bsz) = side_strs("b")?;
        let (apx, asz) = side_strs("a")?;
        let id = self.registry.resolve(pair, || {
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
                qty: Some(qty("b", bsz, ss)?),
            }),
            ask: Some(QuoteSide {
                price: price("a", apx, ps)?,
                qty: Some(qty("a", asz, ss)?),
            }),
        }));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stripping_follows_krakens_rule() {
        let mut out = Vec::new();
        push_stripped(&mut out, b"0.05005");
        push_stripped(&mut out, b"0.00000500");
        assert_eq!(out, b"5005500");
    }

    #[test]
    fn checksum_mismatch_requests_resync_and_drops_until_snapshot() {
        let mut d = KrakenDecoder::new(SymbolRegistry::inferred("kraken"));
        let mut out = Vec::new();
        let mut snap =
            br#"[1,{"as":[["2.0","1.0","1.5"]],"bs":[["1.0","1.0","1.5"]]},"book-10","A/B"]"#
                .to_vec();
        d.decode(&mut snap, Nanos(1), &mut out).unwrap();
        let mut upd = br#"[1,{"a":[["2.0","2.0","1.6"]],"c":"1"},"book-10","A/B"]"#.to_vec();
        d.decode(&mut upd, Nanos(2), &mut out).unwrap();
        assert_eq!(d.stats().checksums_failed, 1);
        assert!(matches!(out.last(), Some(Decoded::Resync { .. })));
        let mut upd = br#"[1,{"a":[["2.0","3.0","1.7"]],"c":"1"},"book-10","A/B"]"#.to_vec();
        d.decode(&mut upd, Nanos(3), &mut out).unwrap();
        assert_eq!(d.stats().dropped_awaiting_snapshot, 1);
    }

    #[test]
    fn trims_to_subscribed_depth_and_reports_dropped_levels() {
        let mut d = KrakenDecoder::new(SymbolRegistry::inferred("kraken"));
        let mut out = Vec::new();
        let mut snap =
            br#"[1,{"as":[["2.0","1.0","1.5"]],"bs":[["1.0","1.0","1.5"]]},"book-1","A/B"]"#
                .to_vec();
        d.decode(&mut snap, Nanos(1), &mut out).unwrap();
        let mut upd = br#"[1,{"b":[["1.5","1.0","1.6"]]},"book-1","A/B"]"#.to_vec();
        d.decode(&mut upd, Nanos(2), &mut out).unwrap();
        let Some(Decoded::Event(FeedEvent::Delta { changes, .. })) = out.last() else {
            panic!("expected a delta, got {out:?}");
        };
        assert_eq!(changes.len(), 2);
        assert_eq!(changes[1].qty.0, 0, "the old best bid fell out of depth 1");
        assert_eq!(changes[1].price.0, 100_000_000);
    }
}
