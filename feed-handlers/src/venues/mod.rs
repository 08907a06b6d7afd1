//! Sans-IO decoders for the crypto venues: raw message bytes in, normalized events out.
//!
//! A decoder owns everything that can be decided from the bytes alone: parsing (simd-json),
//! symbol interning, per-symbol book state needed to verify the venue's checksums or sequence
//! numbers, and the decision that a symbol must be resynchronized. It owns no socket, no
//! clock and no task, so the same code runs under a live WebSocket adapter, a recorded file
//! ([`crate::inspect`]), a test and a benchmark.
//!
//! # Scales
//! Each symbol gets a fixed price and size [`Scale`] the first time the decoder sees it:
//! `max(DEFAULT_SCALE, decimal places seen in that first message)`. Eight places is the
//! documented precision of all four venues' spot products (one satoshi), and Kraken and
//! Binance pad their strings to that width anyway; the observation covers the rare product
//! quoted with more places. An `i64` mantissa at scale 8 still holds values up to 9.2e10,
//! far beyond any price or size on these venues. A later value with more places than the
//! symbol's scale is a [`DecodeError::Number`] (never a silent rounding), and for book data it
//! also triggers a resync, since the book would otherwise miss a change. Callers that know
//! their instruments (a live adapter) configure the scales up front with
//! [`SymbolRegistry::fixed`].

pub mod binance;
pub mod coinbase;
mod json;
pub mod kraken;
pub mod okx;
mod strbook;

use std::collections::HashMap;
use std::fmt;

use tickwire_engine::domain::decimal::{parse_mantissa, DecimalError};
use tickwire_engine::domain::instrument::is_valid_symbol_name;
use tickwire_engine::domain::{Instrument, Nanos, Price, Qty, Scale, SymbolId};
use tickwire_engine::event::{EventMeta, FeedEvent};

pub use binance::BinanceDecoder;
pub use coinbase::CoinbaseDecoder;
pub use kraken::KrakenDecoder;
pub use okx::OkxDecoder;

/// Scale used for a symbol unless its first message shows more decimal places.
pub const DEFAULT_SCALE: u8 = 8;

/// One side of a venue's best bid/offer message (`ticker`, `bookTicker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuoteSide {
    pub price: Price,
    /// Some venues' tickers carry no size.
    pub qty: Option<Qty>,
}

/// A best bid/offer published by the venue itself (not derived from our book). The engine
/// derives quotes from its books, so these are not [`FeedEvent`]s; they serve inspection and
/// cross-checks against the book.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VenueQuote {
    pub meta: EventMeta,
    pub bid: Option<QuoteSide>,
    pub ask: Option<QuoteSide>,
}

/// Why a decoder gave up on a symbol's book until a fresh snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResyncReason {
    /// The venue's checksum disagrees with ours.
    ChecksumMismatch { expected: i64, computed: i64 },
    /// A sequence number was skipped or went backwards.
    SequenceGap { expected: u64, got: u64 },
    /// A book message could not be decoded, so the book may have missed a change.
    BadBookMessage,
}

impl fmt::Display for ResyncReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResyncReason::ChecksumMismatch { expected, computed } => {
                write!(f, "checksum mismatch: venue {expected}, ours {computed}")
            }
            ResyncReason::SequenceGap { expected, got } => {
                write!(f, "sequence gap: expected {expected}, got {got}")
            }
            ResyncReason::BadBookMessage => f.write_str("undecodable book message"),
        }
    }
}

/// What a decoder produces from one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decoded {
    /// A normalized event for the engine.
    Event(FeedEvent),
    /// The venue's own best bid/offer.
    Quote(VenueQuote),
    /// The symbol's book is no longer trustworthy: the adapter must fetch or request a new
    /// snapshot. The decoder drops the symbol's book updates until that snapshot arrives.
    Resync {
        symbol: SymbolId,
        reason: ResyncReason,
    },
}

/// A message the decoder could not use. Never fatal: the caller counts it and carries on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("invalid JSON: {0}")]
    Json(String),
    #[error("missing or mistyped field `{0}`")]
    Field(&'static str),
    #[error("bad number in `{field}` ({text:?}): {source}")]
    Number {
        field: &'static str,
        text: String,
        source: DecimalError,
    },
    #[error("unknown symbol {0:?}")]
    UnknownSymbol(String),
    #[error("unknown channel id {0}")]
    UnknownChannel(i64),
    #[error("unexpected message: {0}")]
    Unexpected(String),
    #[error("venue reported an error: {0}")]
    Venue(String),
}

/// Counters every decoder keeps; [`crate::inspect`] prints them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DecodeStats {
    /// Messages handed to the decoder (including REST snapshots).
    pub messages: u64,
    /// Normalized events produced (snapshots, deltas, trades).
    pub events: u64,
    /// Venue quotes produced.
    pub quotes: u64,
    /// Control messages (acks, heartbeats, status) understood and not turned into events.
    pub control: u64,
    /// Venue checksums that matched our book.
    pub checksums_verified: u64,
    /// Venue checksums that did not.
    pub checksums_failed: u64,
    /// Broken sequence chains.
    pub sequence_gaps: u64,
    /// Resyncs requested.
    pub resyncs: u64,
    /// Messages rejected with a [`DecodeError`].
    pub parse_errors: u64,
    /// Book messages dropped because their symbol awaits a snapshot.
    pub dropped_awaiting_snapshot: u64,
}

/// A sans-IO venue decoder. See the module documentation.
pub trait VenueDecoder {
    /// The venue's short name (`"kraken"`).
    fn venue(&self) -> &'static str;

    /// Decodes one message received over the venue's stream. `payload` is parsed in place
    /// (simd-json), so it is left scrambled.
    fn handle(
        &mut self,
        payload: &mut [u8],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError>;

    /// Decodes one HTTP response (a REST snapshot). Venues without REST snapshots ignore it.
    fn handle_http(
        &mut self,
        _url: &str,
        _payload: &mut [u8],
        _recv_ts: Nanos,
        _out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        Ok(())
    }

    /// The symbols seen or configured so far.
    fn registry(&self) -> &SymbolRegistry;

    /// Counters.
    fn stats(&self) -> &DecodeStats;

    /// Counters, for [`VenueDecoder::decode`].
    fn stats_mut(&mut self) -> &mut DecodeStats;

    /// [`VenueDecoder::handle`] plus bookkeeping: counts the message, its outputs and errors.
    fn decode(
        &mut self,
        payload: &mut [u8],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let before = out.len();
        let result = self.handle(payload, recv_ts, out);
        self.count(before, out, &result);
        result
    }

    /// [`VenueDecoder::handle_http`] plus bookkeeping.
    fn decode_http(
        &mut self,
        url: &str,
        payload: &mut [u8],
        recv_ts: Nanos,
        out: &mut Vec<Decoded>,
    ) -> Result<(), DecodeError> {
        let before = out.len();
        let result = self.handle_http(url, payload, recv_ts, out);
        self.count(before, out, &result);
        result
    }

    #[doc(hidden)]
    fn count(&mut self, before: usize, out: &[Decoded], result: &Result<(), DecodeError>) {
        let stats = self.stats_mut();
        stats.messages += 1;
        if result.is_err() {
            stats.parse_errors += 1;
        }
        for d in out.get(before..).unwrap_or_default() {
            match d {
                Decoded::Event(_) => stats.events += 1,
                Decoded::Quote(_) => stats.quotes += 1,
                Decoded::Resync { .. } => stats.resyncs += 1,
            }
        }
    }
}

/// Builds the decoder for an adapter name: `coinbase`, `binance`, `kraken`, `okx`, or `itch`
/// (ITCH 5.0 packets; see [`crate::itch::ItchDecoder`]).
pub fn decoder_for(venue: &str) -> Option<Box<dyn VenueDecoder + Send>> {
    Some(match venue {
        "itch" => Box::new(crate::itch::ItchDecoder::new(0)),
        "coinbase" => Box::new(CoinbaseDecoder::new(SymbolRegistry::inferred("coinbase"))),
        "binance" => Box::new(BinanceDecoder::new(SymbolRegistry::inferred("binance"))),
        "kraken" => Box::new(KrakenDecoder::new(SymbolRegistry::inferred("kraken"))),
        "okx" => Box::new(OkxDecoder::new(SymbolRegistry::inferred("okx"))),
        _ => return None,
    })
}

/// The venue names [`decoder_for`] knows (it also knows `itch`).
pub const VENUES: [&str; 4] = ["coinbase", "binance", "kraken", "okx"];

/// Symbol name → [`SymbolId`] and scales, for one decoder.
#[derive(Debug, Clone)]
pub struct SymbolRegistry {
    venue: String,
    instruments: Vec<Instrument>,
    by_name: HashMap<String, SymbolId>,
    /// Configured registries reject symbols they were not given.
    fixed: bool,
}

impl SymbolRegistry {
    /// A registry that learns symbols from the traffic, inferring scales (module docs).
    pub fn inferred(venue: &str) -> Self {
        SymbolRegistry {
            venue: venue.to_string(),
            instruments: Vec::new(),
            by_name: HashMap::new(),
            fixed: false,
        }
    }

    /// A registry of exactly these instruments; others are [`DecodeError::UnknownSymbol`].
    pub fn fixed(venue: &str, instruments: Vec<Instrument>) -> Self {
        let mut reg = Self::inferred(venue);
        for ins in instruments {
            let id = SymbolId(reg.instruments.len() as u32);
            reg.by_name.insert(ins.symbol.clone(), id);
            reg.instruments.push(ins);
        }
        reg.fixed = true;
        reg
    }

    /// The id of a known symbol.
    pub fn lookup(&self, name: &str) -> Option<SymbolId> {
        self.by_name.get(name).copied()
    }

    /// The id of `name`, registering it with the scales implied by `sample` (the decimal
    /// strings of the message that introduces it) when it is new and the registry learns.
    pub fn resolve(
        &mut self,
        name: &str,
        sample: impl FnOnce() -> SampleScales,
    ) -> Result<SymbolId, DecodeError> {
        if let Some(id) = self.by_name.get(name) {
            return Ok(*id);
        }
        if self.fixed || !is_valid_symbol_name(name) {
            return Err(DecodeError::UnknownSymbol(name.chars().take(64).collect()));
        }
        let s = sample();
        let id = SymbolId(self.instruments.len() as u32);
        self.instruments.push(Instrument {
            symbol: name.to_string(),
            venue: self.venue.clone(),
            price_scale: Scale::new(s.price.clamp(DEFAULT_SCALE, MAX_INFERRED)),
            size_scale: Scale::new(s.size.clamp(DEFAULT_SCALE, MAX_INFERRED)),
        });
        self.by_name.insert(name.to_string(), id);
        Ok(id)
    }

    /// Registers an instrument whose scales the venue defines (ITCH: 4 price decimals, whole
    /// shares), or returns the id it already has.
    pub fn register(&mut self, instrument: Instrument) -> SymbolId {
        if let Some(id) = self.by_name.get(&instrument.symbol) {
            return *id;
        }
        let id = SymbolId(self.instruments.len() as u32);
        self.by_name.insert(instrument.symbol.clone(), id);
        self.instruments.push(instrument);
        id
    }

    /// The instrument behind an id issued by this registry.
    pub fn get(&self, id: SymbolId) -> Option<&Instrument> {
        self.instruments.get(id.index())
    }

    /// Price and size scales of a symbol (defaults for an unknown id).
    pub fn scales(&self, id: SymbolId) -> (Scale, Scale) {
        self.get(id).map_or(
            (Scale::new(DEFAULT_SCALE), Scale::new(DEFAULT_SCALE)),
            |i| (i.price_scale, i.size_scale),
        )
    }

    /// All instruments in id order.
    pub fn instruments(&self) -> &[Instrument] {
        &self.instruments
    }

    /// Number of symbols.
    pub fn len(&self) -> usize {
        self.instruments.len()
    }

    /// Whether no symbol is known.
    pub fn is_empty(&self) -> bool {
        self.instruments.is_empty()
    }
}

/// Largest inferred scale: leaves 10 integer digits in an `i64`.
const MAX_INFERRED: u8 = 9;

/// Decimal places observed in a symbol's first message.
#[derive(Debug, Clone, Copy, Default)]
pub struct SampleScales {
    pub price: u8,
    pub size: u8,
}

impl SampleScales {
    /// Widens to cover a price string.
    pub fn price(&mut self, s: &str) {
        self.price = self.price.max(decimal_places(s));
    }

    /// Widens to cover a size string.
    pub fn size(&mut self, s: &str) {
        self.size = self.size.max(decimal_places(s));
    }
}

/// Digits after the decimal point (trailing zeros count: venues pad to their precision).
pub fn decimal_places(s: &str) -> u8 {
    s.find('.')
        .map_or(0, |p| (s.len() - p - 1).min(u8::MAX as usize) as u8)
}

/// Parses a price string at `scale`, naming the field on error.
pub(crate) fn price(field: &'static str, s: &str, scale: Scale) -> Result<Price, DecodeError> {
    parse_mantissa(s.as_bytes(), scale)
        .map(Price)
        .map_err(|source| number_error(field, s, source))
}

/// Parses a size string at `scale`; sizes are never negative.
pub(crate) fn qty(field: &'static str, s: &str, scale: Scale) -> Result<Qty, DecodeError> {
    let q = parse_mantissa(s.as_bytes(), scale).map_err(|source| number_error(field, s, source))?;
    if q < 0 {
        return Err(number_error(field, s, DecimalError::InvalidChar));
    }
    Ok(Qty(q))
}

fn number_error(field: &'static str, s: &str, source: DecimalError) -> DecodeError {
    DecodeError::Number {
        field,
        text: s.chars().take(40).collect(),
        source,
    }
}

/// Unix milliseconds as nanoseconds; `None` when out of range (hostile input).
pub fn millis(ms: i64) -> Option<Nanos> {
    ms.checked_mul(1_000_000).map(Nanos)
}

/// Parses decimal seconds (`"1618678133.162950"`) into nanoseconds without `f64` rounding.
pub fn parse_secs(s: &str) -> Option<Nanos> {
    parse_mantissa(s.as_bytes(), Scale::new(9)).ok().map(Nanos)
}

/// Parses an RFC 3339 UTC timestamp as Coinbase sends it (`2021-04-17T16:43:37.075687Z`).
pub fn parse_rfc3339(s: &str) -> Option<Nanos> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let mut v = 0i64;
        for &c in b.get(r)? {
            if !c.is_ascii_digit() {
                return None;
            }
            v = v * 10 + (c - b'0') as i64;
        }
        Some(v)
    };
    let (y, mo, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, sec) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut nanos = 0i64;
    let mut i = 19;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let mut places = 0;
        while let Some(c) = b.get(i).filter(|c| c.is_ascii_digit()) {
            if places < 9 {
                nanos = nanos * 10 + (c - b'0') as i64;
                places += 1;
            }
            i += 1;
        }
        nanos *= 10i64.pow(9 - places);
    }
    if b.get(i) != Some(&b'Z') || i + 1 != b.len() {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    let secs = days * 86_400 + h * 3600 + mi * 60 + sec;
    // Years past 2262 do not fit in i64 nanoseconds.
    secs.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos))
        .map(Nanos)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_matches_known_epoch_values() {
        assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(Nanos(0)));
        // 2021-04-17T16:43:37Z is 1618677817 s since the epoch.
        assert_eq!(
            parse_rfc3339("2021-04-17T16:43:37.075687Z"),
            Some(Nanos(1_618_677_817_075_687_000))
        );
        assert_eq!(parse_rfc3339("2021-04-17T16:43:37.0756Z x"), None);
        assert_eq!(parse_rfc3339("2021-13-17T16:43:37Z"), None);
    }

    #[test]
    fn seconds_keep_every_digit() {
        assert_eq!(
            parse_secs("1618678133.162950"),
            Some(Nanos(1_618_678_133_162_950_000))
        );
        assert_eq!(parse_secs("x"), None);
    }

    #[test]
    fn inferred_scale_is_at_least_default_and_covers_the_sample() {
        let mut reg = SymbolRegistry::inferred("t");
        let id = reg
            .resolve("A-B", || SampleScales { price: 2, size: 9 })
            .unwrap();
        assert_eq!(reg.scales(id), (Scale::new(8), Scale::new(9)));
        assert!(reg.resolve("A\"B", SampleScales::default).is_err());
        let fixed = &mut SymbolRegistry::fixed("t", vec![]);
        assert!(fixed.resolve("A-B", SampleScales::default).is_err());
    }
}
