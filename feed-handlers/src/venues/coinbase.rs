//! Coinbase Exchange (formerly Coinbase Pro) WebSocket feed: `level2`, `ticker`, `matches`.
//!
//! `snapshot` replaces a product's book, `l2update` carries `[side, price, size]` changes
//! (size `"0"` deletes) applied as one atomic delta, `match`/`last_match` are trades whose
//! `side` is the *maker's*, so the aggressor is the opposite side, and `ticker` is the venue's
//! own best bid/ask ([`Decoded::Quote`]). The level2 channel of this API version carries no
//! sequence numbers, so there is nothing to chain-check on the book; `match` sequence numbers
//! are shared with all other message types of the product's full feed, so gaps between
//! matches are expected and not reported.
//!
//! This is the hot path of the Coinbase benchmark: the decoder reuses simd-json's buffers and
//! avoids allocating per level.

use simd_json::prelude::*;
use simd_json::BorrowedValue as Value;
use smallvec::SmallVec;
use tickwire_engine::domain::{Nanos, Side, SymbolId};
use tickwire_engine::event::{EventMeta, FeedEvent, LevelUpdate};

use super::json::{self, str_at, str_field};
use super::{
    parse_rfc3339, price, qty, DecodeError, DecodeStats, Decoded, QuoteSide, SampleScales,
    SymbolRegistry, VenueDecoder, VenueQuote,
};

/// Coinbase decoder. See the module documentation.
pub struct CoinbaseDecoder {
    registry: SymbolRegistry,
    /// Per symbol: a snapshot has been seen, so `l2update`s are meaningful.
    live: Vec<bool>,
    stats: DecodeStats,
    buffers: simd_json::Buffers,
}

impl CoinbaseDecoder {
    /// A decoder resolving products through `registry`.
    pub fn new(registry: SymbolRegistry) -> Self {
        CoinbaseDecoder {
            registry,
            live: Vec::new(),
            stats: DecodeStats::default(),
            buffers: simd_json::Buffers::new(4096),
        }
    }

    fn set_live(&mut self, id: SymbolId, live: bool) {
        if self.live.len() <= id.index() {
            self.live.resize(id.index() + 1, false);
        }
        self.live[id.index()] = live;
    }

    fn is_live(&self, id: SymbolId) -> bool {
        self.live.get(id.index()).copied().unwrap_or(false)
    }
}

fn side_of(s: &str) -> Result<Side, DecodeError> {
    match s {
        "buy" => Ok(Side::Buy),
        "sell" => Ok(Side::Sell),
        _ => Err(DecodeError::Field("side")),
    }
}

impl VenueDecoder for CoinbaseDecoder {
    fn venue(&self) -> &'static str {
        "coinbase"
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

impl CoinbaseDecoder {
    fn dispatch(
        &mut self,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        match str_field(v, "type")? {
            "l2update" => self.l2update(v, recv_ts, out),
            "snapshot" => self.snapshot(v, recv_ts, out),
            "match" | "last_match" => self.trade(v, recv_ts, out),
            "ticker" => self.ticker(v, recv_ts, out),
            "subscriptions" | "heartbeat" | "status" => {
                self.stats.control += 1;
                Ok(())
            }
            "error" => {
                let msg = v.get("message").and_then(|m| m.as_str()).unwrap_or("error");
                Err(DecodeError::Venue(msg.chars().take(200).collect()))
            }
            other => Err(DecodeError::Unexpected(format!(
                "message type {:?}",
                other.chars().take(40).collect::<String>()
            ))),
        }
    }

    fn l2update(
        &mut self,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let product = str_field(v, "product_id")?;
        // A product without a snapshot yet is not in the registry: the update is simply early.
        let Some(id) = self.registry.lookup(product).filter(|id| self.is_live(*id)) else {
            self.stats.dropped_awaiting_snapshot += 1;
            return Ok(());
        };
        let (ps, ss) = self.registry.scales(id);
        let parsed = (|| {
            let mut changes: SmallVec<[LevelUpdate; 4]> = SmallVec::new();
            for c in json::array_field(v, "changes")? {
                let c = c.as_array().ok_or(DecodeError::Field("change"))?;
                changes.push(LevelUpdate {
                    side: side_of(str_at(c, 0, "change side")?)?,
                    price: price("change price", str_at(c, 1, "change price")?, ps)?,
                    qty: qty("change size", str_at(c, 2, "change size")?, ss)?,
                });
            }
            Ok(changes)
        })();
        let changes = match parsed {
            Ok(c) => c,
            Err(e) => {
                // The book may now miss a change: only a new snapshot can repair it.
                self.set_live(id, false);
                out.push(Decoded::Resync {
                    symbol: id,
                    reason: super::ResyncReason::BadBookMessage,
                });
                return Err(e);
            }
        };
        let ts = v
            .get("time")
            .and_then(|t| t.as_str())
            .and_then(parse_rfc3339)
            .unwrap_or(recv_ts);
        out.push(Decoded::Event(FeedEvent::Delta {
            meta: EventMeta {
                symbol: id,
                ts,
                recv_ts,
            },
            changes,
        }));
        Ok(())
    }

    fn snapshot(
        &mut self,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let product = str_field(v, "product_id")?;
        let bids = json::array_field(v, "bids")?;
        let asks = json::array_field(v, "asks")?;
        let id = self.registry.resolve(product, || {
            let mut s = SampleScales::default();
            for l in bids.iter().chain(asks) {
                if let Ok((px, sz)) = json::level_strs(l) {
                    s.price(px);
                    s.size(sz);
                }
            }
            s
        })?;
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
        self.set_live(id, true);
        out.push(Decoded::Event(FeedEvent::Snapshot {
            meta: EventMeta {
                symbol: id,
                ts: recv_ts,
                recv_ts,
            },
            bids,
            asks,
        }));
        Ok(())
    }

    fn trade(
        &mut self,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let product = str_field(v, "product_id")?;
        let px = str_field(v, "price")?;
        let sz = str_field(v, "size")?;
        let id = self.registry.resolve(product, || {
            let mut s = SampleScales::default();
            s.price(px);
            s.size(sz);
            s
        })?;
        let (ps, ss) = self.registry.scales(id);
        let maker = side_of(str_field(v, "side")?)?;
        let aggressor = maker.opposite();
        out.push(Decoded::Event(FeedEvent::Trade {
            meta: EventMeta {
                symbol: id,
                ts: v
                    .get("time")
                    .and_then(|t| t.as_str())
                    .and_then(parse_rfc3339)
                    .unwrap_or(recv_ts),
                recv_ts,
            },
            price: price("price", px, ps)?,
            qty: qty("size", sz, ss)?,
            aggressor: Some(aggressor),
        }));
        Ok(())
    }

    fn ticker(
        &mut self,
        v: &Value<'_>,
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let product = str_field(v, "product_id")?;
        let bid = str_field(v, "best_bid")?;
        let ask = str_field(v, "best_ask")?;
        let id = self.registry.resolve(product, || {
            let mut s = SampleScales::default();
            s.price(bid);
            s.price(ask);
            s
        })?;
        let (ps, ss) = self.registry.scales(id);
        // Newer API versions add sizes; use them when present.
        let size = |key: &'static str| -> Result<Option<_>, DecodeError> {
            v.get(key)
                .and_then(|s| s.as_str())
                .map(|s| qty(key, s, ss))
                .transpose()
        };
        out.push(Decoded::Quote(VenueQuote {
            meta: EventMeta {
                symbol: id,
                ts: v
                    .get("time")
                    .and_then(|t| t.as_str())
                    .and_then(parse_rfc3339)
                    .unwrap_or(recv_ts),
                recv_ts,
            },
            bid: Some(QuoteSide {
                price: price("best_bid", bid, ps)?,
                qty: size("best_bid_size")?,
            }),
            ask: Some(QuoteSide {
                price: price("best_ask", ask, ps)?,
                qty: size("best_ask_size")?,
            }),
        }));
        Ok(())
    }
}
