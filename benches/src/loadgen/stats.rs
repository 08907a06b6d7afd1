//! Measurement state: per-worker counters and HDR latency histograms, per-connection sequence
//! tracking, and their merging into run totals.
//!
//! Sequence rules (from the protocol): `seq` is per symbol across channels and must strictly
//! increase; `chan_seq` is per (symbol, channel). A `trade` chan_seq jump is a real gap (trades
//! are events and must not be dropped); a `quote`/`book` chan_seq jump is conflation (the
//! server skipped superseded states). Both are counted per channel, never hidden. The first
//! message of each (symbol, channel) on a connection only sets the baseline: it is not checked
//! for a jump and its latency is not recorded, because it replays state (a snapshot) whose
//! `recv_ts` may be old.

use super::protocol::{Kind, WireMsg};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Highest latency the histograms track (ns): one hour.
pub const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("valid histogram bounds")
}

/// Additive counters. Used for whole-run totals, measurement-window totals and 1 s intervals.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct Counters {
    /// Market-data messages per channel (quote, trade, book).
    pub msgs: [u64; 3],
    /// WebSocket text frames received (a batched frame holds several messages).
    pub frames: u64,
    /// Payload bytes of those frames.
    pub bytes: u64,
    /// Missing chan_seq values per channel (trade: gaps; quote/book: conflated updates).
    pub chan_missing: [u64; 3],
    /// Number of jumps (events) behind `chan_missing`.
    pub chan_jumps: [u64; 3],
    /// chan_seq that went backwards or repeated, per channel (a protocol violation).
    pub chan_regressions: [u64; 3],
    /// `seq` that did not strictly increase for a symbol (a protocol violation).
    pub seq_regressions: u64,
    pub status_msgs: u64,
    pub pongs: u64,
    pub error_msgs: u64,
    pub subscribed_acks: u64,
    pub other_msgs: u64,
    pub parse_errors: u64,
    /// Messages whose `recv_ts` was after the receive time (clock problem); recorded as 0.
    pub negative_latency: u64,
    /// Messages without `recv_ts` or `symbol` on a market-data channel.
    pub missing_fields: u64,
    /// Nanoseconds the generator spent handling what its reads returned (read, parse,
    /// account): its real work, which its CPU figure hides when it busy-polls.
    #[serde(default)]
    pub handling_ns: u64,
}

impl Counters {
    pub fn merge(&mut self, o: &Counters) {
        for c in 0..3 {
            self.msgs[c] += o.msgs[c];
            self.chan_missing[c] += o.chan_missing[c];
            self.chan_jumps[c] += o.chan_jumps[c];
            self.chan_regressions[c] += o.chan_regressions[c];
        }
        self.frames += o.frames;
        self.bytes += o.bytes;
        self.seq_regressions += o.seq_regressions;
        self.status_msgs += o.status_msgs;
        self.pongs += o.pongs;
        self.error_msgs += o.error_msgs;
        self.subscribed_acks += o.subscribed_acks;
        self.other_msgs += o.other_msgs;
        self.parse_errors += o.parse_errors;
        self.negative_latency += o.negative_latency;
        self.missing_fields += o.missing_fields;
        self.handling_ns += o.handling_ns;
    }

    pub fn market_msgs(&self) -> u64 {
        self.msgs.iter().sum()
    }
}

/// Connection outcomes.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct ConnStats {
    pub attempted: u64,
    pub connected: u64,
    pub connect_failed: u64,
    /// Connections whose every subscribe request was acknowledged.
    pub fully_subscribed: u64,
    /// Close codes received in server close frames ("1008", ...), with counts.
    pub close_codes: BTreeMap<String, u64>,
    /// Close reasons received (e.g. "slow consumer"), with counts.
    pub close_reasons: BTreeMap<String, u64>,
    /// Why connections ended before the generator closed them ("close 1008", "eof",
    /// "io error", ...), with counts. Connect failures are keyed "connect: <error>".
    pub disconnects: BTreeMap<String, u64>,
    /// Stalled clients the server closed: TCP FIN/RST seen while stalled, or a close frame,
    /// EOF or reset when they read again.
    pub stalled_closed_by_server: u64,
    /// Seconds from run start to each stalled client's observed close (an upper bound when
    /// it was only seen on reading again).
    pub stalled_close_times_s: Vec<f64>,
    /// First few `error` messages the server sent, verbatim fields.
    pub server_errors: Vec<String>,
}

impl ConnStats {
    pub fn merge(&mut self, o: &ConnStats) {
        self.attempted += o.attempted;
        self.connected += o.connected;
        self.connect_failed += o.connect_failed;
        self.fully_subscribed += o.fully_subscribed;
        for (k, v) in &o.close_codes {
            *self.close_codes.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.close_reasons {
            *self.close_reasons.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &o.disconnects {
            *self.disconnects.entry(k.clone()).or_default() += v;
        }
        self.stalled_closed_by_server += o.stalled_closed_by_server;
        self.stalled_close_times_s
            .extend_from_slice(&o.stalled_close_times_s);
        for e in &o.server_errors {
            if self.server_errors.len() < 10 {
                self.server_errors.push(e.clone());
            }
        }
    }

    pub fn disconnect(&mut self, why: impl Into<String>) {
        *self.disconnects.entry(why.into()).or_default() += 1;
    }
}

/// Everything one worker thread measures. Shared by its client tasks behind a mutex that only
/// the coordinator contends for, once per second.
pub struct WorkerStats {
    /// Whole run (connect, warm-up, measurement).
    pub run: Counters,
    /// Measurement window only.
    pub window: Counters,
    /// Since the last interval snapshot (measurement window only).
    pub interval: Counters,
    pub latency: Histogram<u64>,
    pub interval_latency: Histogram<u64>,
    /// Healthy clients' connection outcomes.
    pub conns: ConnStats,
    /// Stalled clients' connection outcomes.
    pub stalled: ConnStats,
}

impl Default for WorkerStats {
    fn default() -> Self {
        Self {
            run: Counters::default(),
            window: Counters::default(),
            interval: Counters::default(),
            latency: new_histogram(),
            interval_latency: new_histogram(),
            conns: ConnStats::default(),
            stalled: ConnStats::default(),
        }
    }
}

/// A per-frame accumulator: a client task parses a frame into this without holding the lock,
/// then folds it into [`WorkerStats`] in one locked step.
#[derive(Default)]
pub struct FrameDelta {
    pub c: Counters,
    /// Latencies (ns) of this frame's measurable messages.
    pub latencies: Vec<u64>,
}

impl FrameDelta {
    pub fn clear(&mut self) {
        self.c = Counters::default();
        self.latencies.clear();
    }
}

impl WorkerStats {
    /// Folds a frame's delta in. `measuring` selects whether it counts towards the window.
    pub fn apply(&mut self, d: &FrameDelta, measuring: bool) {
        self.run.merge(&d.c);
        if measuring {
            self.window.merge(&d.c);
            self.interval.merge(&d.c);
            for &l in &d.latencies {
                let l = l.clamp(1, MAX_LATENCY_NS);
                self.latency.record(l).expect("clamped into bounds");
                self.interval_latency
                    .record(l)
                    .expect("clamped into bounds");
            }
        }
    }
}

#[derive(Default, Clone, Copy)]
struct SymState {
    last_seq: Option<u64>,
    chan: [Option<u64>; 3],
}

/// FNV-1a: symbol names are short, and SipHash's resistance to chosen keys buys nothing
/// against the server under test while costing a good part of the per-message budget.
#[derive(Default, Clone, Copy)]
pub struct Fnv(u64);

impl std::hash::Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h ^= b as u64;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvBuild = std::hash::BuildHasherDefault<Fnv>;

/// Per-connection `seq` / `chan_seq` tracking.
#[derive(Default)]
pub struct SeqTracker {
    syms: HashMap<Box<str>, SymState, FnvBuild>,
}

impl SeqTracker {
    /// Accounts one parsed message received at `now_ns` (ns since the Unix epoch).
    pub fn observe(&mut self, m: &WireMsg<'_>, now_ns: i64, d: &mut FrameDelta) {
        let kind = m.kind();
        let Some(ch) = kind.channel() else {
            match kind {
                Kind::Status => d.c.status_msgs += 1,
                Kind::Pong => d.c.pongs += 1,
                Kind::Error => d.c.error_msgs += 1,
                Kind::Subscribed => d.c.subscribed_acks += 1,
                _ => d.c.other_msgs += 1,
            }
            return;
        };
        d.c.msgs[ch] += 1;
        let Some(sym) = m.symbol.as_deref() else {
            d.c.missing_fields += 1;
            return;
        };
        let st = match self.syms.get_mut(sym) {
            Some(s) => s,
            None => self.syms.entry(sym.into()).or_default(),
        };
        if let Some(seq) = m.seq {
            if let Some(last) = st.last_seq {
                if seq <= last {
                    d.c.seq_regressions += 1;
                }
            }
            st.last_seq = Some(st.last_seq.map_or(seq, |l| l.max(seq)));
        }
        let first = st.chan[ch].is_none();
        if let Some(cs) = m.chan_seq {
            if let Some(prev) = st.chan[ch] {
                if cs > prev + 1 {
                    d.c.chan_missing[ch] += cs - prev - 1;
                    d.c.chan_jumps[ch] += 1;
                } else if cs <= prev {
                    d.c.chan_regressions[ch] += 1;
                }
                st.chan[ch] = Some(prev.max(cs));
            } else {
                st.chan[ch] = Some(cs);
            }
        } else if first {
            // No chan_seq on this server: still mark the channel as seen for latency.
            st.chan[ch] = Some(0);
        }
        match m.recv_ts {
            Some(ts) if !first => {
                let lat = now_ns - ts;
                if lat < 0 {
                    d.c.negative_latency += 1;
                    d.latencies.push(0);
                } else {
                    d.latencies.push(lat as u64);
                }
            }
            Some(_) => {}
            None => d.c.missing_fields += 1,
        }
    }
}

/// Percentiles of a histogram, in microseconds.
#[derive(Debug, Clone, Default, Serialize, serde::Deserialize)]
pub struct LatencySummary {
    pub count: u64,
    pub min_us: f64,
    pub mean_us: f64,
    pub p50_us: f64,
    pub p90_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub p9999_us: f64,
    pub max_us: f64,
}

impl LatencySummary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let us = |ns: u64| ns as f64 / 1000.0;
        Self {
            count: h.len(),
            min_us: us(h.min()),
            mean_us: h.mean() / 1000.0,
            p50_us: us(h.value_at_quantile(0.5)),
            p90_us: us(h.value_at_quantile(0.9)),
            p99_us: us(h.value_at_quantile(0.99)),
            p999_us: us(h.value_at_quantile(0.999)),
            p9999_us: us(h.value_at_quantile(0.9999)),
            max_us: us(h.max()),
        }
    }
}

/// HDR-style percentile distribution: (percentile, latency µs) points at quantiles
/// 0, 0.5, 0.75, 0.875, ... up to the max, for plotting on a log "1/(1-p)" axis.
pub fn percentile_distribution(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    let mut out = Vec::new();
    if h.is_empty() {
        return out;
    }
    // Quantiles 1 - 2^(-i/5): five points per halving of the remaining tail, until fewer
    // than one sample is left in it.
    for i in 0.. {
        let q = 1.0 - 0.5f64.powf(i as f64 / 5.0);
        if (1.0 - q) * (h.len() as f64) < 1.0 || q >= 0.999_999_9 {
            break;
        }
        out.push((q * 100.0, h.value_at_quantile(q) as f64 / 1000.0));
    }
    out.push((100.0, h.max() as f64 / 1000.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::protocol::Parser;

    fn feed(t: &mut SeqTracker, d: &mut FrameDelta, json: &str, now: i64) {
        Parser::default()
            .parse(json.as_bytes(), |m| t.observe(&m, now, d))
            .unwrap();
    }

    #[test]
    fn trade_gap_and_quote_conflation_are_separate() {
        let mut t = SeqTracker::default();
        let mut d = FrameDelta::default();
        let q = |s: u64, cs: u64| {
            format!(r#"{{"type":"quote","symbol":"A","seq":{s},"chan_seq":{cs},"recv_ts":100}}"#)
        };
        let tr = |s: u64, cs: u64| {
            format!(r#"{{"type":"trade","symbol":"A","seq":{s},"chan_seq":{cs},"recv_ts":100}}"#)
        };
        feed(&mut t, &mut d, &q(1, 1), 150);
        feed(&mut t, &mut d, &tr(2, 1), 150);
        feed(&mut t, &mut d, &q(3, 2), 150);
        feed(&mut t, &mut d, &q(6, 5), 150); // 2 quotes conflated
        feed(&mut t, &mut d, &tr(7, 3), 150); // 1 trade missing
        feed(&mut t, &mut d, &tr(7, 4), 150); // seq repeated
        assert_eq!(d.c.msgs, [3, 3, 0]);
        assert_eq!(d.c.chan_missing, [2, 1, 0]);
        assert_eq!(d.c.chan_jumps, [1, 1, 0]);
        assert_eq!(d.c.seq_regressions, 1);
        // First quote and first trade set the baseline: 4 latencies of 50 ns.
        assert_eq!(d.latencies, vec![50; 4]);
    }

    #[test]
    fn percentiles_and_distribution() {
        let mut h = new_histogram();
        for v in 1..=10_000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = LatencySummary::of(&h);
        assert!((s.p50_us - 5000.0).abs() < 10.0, "{s:?}");
        assert!((s.p99_us - 9900.0).abs() < 20.0, "{s:?}");
        let dist = percentile_distribution(&h);
        assert!(dist.len() > 5);
        assert!(dist.windows(2).all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1));
        assert_eq!(dist.last().unwrap().0, 100.0);
    }
}
