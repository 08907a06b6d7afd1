//! Whole trading days for recordings and replay: the message generator of the parent
//! module driven through a NASDAQ-style session (open, U-shaped intraday activity, close)
//! and cut into MoldUDP64-sized packets with receive times, the unit a recording stores.

use std::collections::HashMap;

use rand_core::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

use super::{Gen, GenStock, GeneratedDay};

/// A trading session to generate with [`generate_day`]: a NASDAQ-style day of well-known
/// looking tickers with a U-shaped intraday activity profile.
#[derive(Debug, Clone)]
pub struct DayConfig {
    pub seed: u64,
    /// Order-flow messages of continuous trading (opening and closing messages on top).
    pub messages: usize,
    /// (ticker, opening price in ITCH's 1/10,000 dollars).
    pub tickers: Vec<(String, u32)>,
}

impl Default for DayConfig {
    fn default() -> Self {
        DayConfig {
            seed: 20250616,
            messages: 1_000_000,
            tickers: default_tickers(),
        }
    }
}

/// Forty tickers of a NASDAQ-100-like list with round, plausible opening prices. The day is
/// generated: neither the prices nor the flow are real.
pub fn default_tickers() -> Vec<(String, u32)> {
    const T: &[(&str, u32)] = &[
        ("AAPL", 196),
        ("MSFT", 474),
        ("NVDA", 142),
        ("AMZN", 216),
        ("GOOGL", 176),
        ("META", 702),
        ("TSLA", 329),
        ("AVGO", 252),
        ("COST", 1003),
        ("NFLX", 1226),
        ("AMD", 118),
        ("PEP", 131),
        ("ADBE", 395),
        ("CSCO", 65),
        ("INTC", 21),
        ("QCOM", 155),
        ("TXN", 195),
        ("AMAT", 174),
        ("INTU", 741),
        ("ISRG", 529),
        ("BKNG", 5563),
        ("MU", 117),
        ("LRCX", 88),
        ("ADI", 228),
        ("PYPL", 73),
        ("SBUX", 91),
        ("MDLZ", 67),
        ("GILD", 110),
        ("REGN", 531),
        ("VRTX", 447),
        ("PANW", 194),
        ("SNPS", 476),
        ("CDNS", 293),
        ("MRVL", 63),
        ("ORLY", 1358),
        ("ABNB", 135),
        ("CRWD", 478),
        ("FTNT", 104),
        ("MELI", 2477),
        ("ASML", 767),
    ];
    T.iter().map(|(s, p)| (s.to_string(), p * 10_000)).collect()
}

/// A group of messages sent together, as one MoldUDP64 packet carries several: the unit a
/// recording stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// When the packet was received, ns since midnight (a little after its last message's
    /// ITCH timestamp).
    pub recv: u64,
    /// Byte range in [`GeneratedSession::bytes`] (length-prefixed messages).
    pub start: usize,
    pub end: usize,
}

/// A generated day cut into packets.
#[derive(Debug, Clone, Default)]
pub struct GeneratedSession {
    pub bytes: Vec<u8>,
    pub packets: Vec<Packet>,
    pub messages: usize,
    pub tickers: Vec<String>,
}

const NS: u64 = 1_000_000_000;

fn at(h: u64, m: u64, s: u64) -> u64 {
    (h * 3600 + m * 60 + s) * NS
}

/// Relative activity at `x` (0 = open, 1 = close): busy open, quiet lunch, busier close.
fn activity(x: f64) -> f64 {
    0.4 + 2.0 * (-12.0 * x).exp() + 1.0 * (-15.0 * (1.0 - x)).exp()
}

/// Most bytes of messages in one packet (an Ethernet frame's worth, as MoldUDP64 does).
const PACKET_BYTES: usize = 1400;

/// Generates a trading day: system events and the stock directory at 09:25, books built in
/// the minute before the 09:30 open, continuous trading until 16:00 in bursts of related
/// messages (a re-quote, a sweep) whose rate follows a U-shaped intraday profile, a closing
/// cross per stock, and the end-of-day events. Deterministic for a config.
pub fn generate_day(cfg: &DayConfig) -> GeneratedSession {
    let n = cfg.tickers.len().max(1);
    let mut names = Vec::with_capacity(n);
    for (t, _) in &cfg.tickers {
        let mut s = *b"        ";
        let b = t.as_bytes();
        s[..b.len().min(8)].copy_from_slice(&b[..b.len().min(8)]);
        names.push(s);
    }
    let mut g = Gen {
        rng: Xoshiro256PlusPlus::seed_from_u64(cfg.seed),
        out: GeneratedDay::default(),
        keep_truth: false,
        stocks: Vec::new(),
        orders: HashMap::new(),
        next_ref: 1,
        next_match: 1,
        clock: at(9, 25, 0),
        tracking: 0,
        names,
        manual_clock: true,
    };
    g.out.bytes.reserve(cfg.messages * 34);
    let mut packets = Vec::new();
    let mut start = 0;
    let cut = |g: &mut Gen, packets: &mut Vec<Packet>, start: &mut usize| {
        if g.out.bytes.len() > *start {
            let latency = 25_000 + g.below(15_000);
            packets.push(Packet {
                recv: g.clock + latency,
                start: *start,
                end: g.out.bytes.len(),
            });
            *start = g.out.bytes.len();
        }
    };
    g.system(b'O');
    g.system(b'S');
    g.stocks.push(GenStock::default());
    for i in 0..n {
        g.stocks.push(GenStock {
            mid: cfg.tickers.get(i).map_or(1_000_000, |t| t.1),
            ..GenStock::default()
        });
        g.clock += 1_000;
        g.directory(i + 1);
        g.trading_action(i + 1);
        if g.out.bytes.len() - start > PACKET_BYTES {
            cut(&mut g, &mut packets, &mut start);
        }
    }
    cut(&mut g, &mut packets, &mut start);
    // The minute before the open: every book gets its first few dozen orders.
    let pre = at(9, 29, 0);
    for round in 0..48u64 {
        for s in 1..=n {
            g.clock = pre + (round * n as u64 + s as u64) * (60 * NS / (48 * n as u64 + 1));
            let mpid = g.below(9) == 0;
            g.add(s, mpid);
        }
        cut(&mut g, &mut packets, &mut start);
    }
    g.clock = at(9, 30, 0);
    g.system(b'Q');
    cut(&mut g, &mut packets, &mut start);
    // Continuous trading: bursts at a rate following `activity`.
    let (open, close) = (at(9, 30, 0) as f64, at(16, 0, 0) as f64);
    let span = close - open;
    const MEAN_BURST: f64 = 2.6;
    let mean_activity = 0.4 + 2.0 / 12.0 + 1.0 / 15.0;
    let bursts_per_ns = cfg.messages as f64 / MEAN_BURST / span;
    let mut t = open;
    let mut made = 0;
    while made < cfg.messages {
        let x = ((t - open) / span).clamp(0.0, 1.0);
        let rate = bursts_per_ns * activity(x) / mean_activity;
        let u = (g.below(1 << 30) as f64 + 1.0) / (1u64 << 30) as f64;
        t += -u.ln() / rate;
        if t >= close {
            // The Poisson process ran out of day a little early; the day ends anyway.
            break;
        }
        g.clock = (t as u64).max(g.clock + 1);
        let u = g.below(1 << 16) as f64 / 65536.0;
        let stock = 1 + ((u * u) * n as f64) as usize % n;
        let mut k = 1;
        while k < 12 && g.below(100) < 58 {
            k += 1;
        }
        for _ in 0..k.min(cfg.messages - made) {
            g.step_on(stock);
            made += 1;
            g.clock += 300 + g.below(2_700);
            if g.out.bytes.len() - start > PACKET_BYTES {
                cut(&mut g, &mut packets, &mut start);
            }
        }
        cut(&mut g, &mut packets, &mut start);
    }
    g.clock = g.clock.max(at(16, 0, 0));
    g.system(b'M');
    for s in 1..=n {
        g.clock += 2_000;
        g.cross(s);
    }
    cut(&mut g, &mut packets, &mut start);
    g.clock = g.clock.max(at(16, 5, 0));
    g.system(b'E');
    g.system(b'C');
    cut(&mut g, &mut packets, &mut start);
    GeneratedSession {
        messages: g.out.messages,
        bytes: g.out.bytes,
        packets,
        tickers: cfg.tickers.iter().map(|t| t.0.clone()).collect(),
    }
}

impl GeneratedSession {
    /// Writes the day as a Tickwire recording: adapter `itch`, one raw-socket stream, one
    /// record per packet received at `midnight_ns + packet.recv`.
    pub fn write_recording(
        &self,
        path: impl AsRef<std::path::Path>,
        midnight_ns: i64,
        metadata: Vec<(String, String)>,
    ) -> Result<crate::recording::WriterSummary, crate::recording::RecordingError> {
        use crate::recording::{Header, RecordKind, StreamKind, Writer, WriterOptions};
        let first = self.packets.first().map_or(0, |p| p.recv as i64);
        let mut meta = vec![(
            crate::replay::source::ITCH_MIDNIGHT_KEY.to_string(),
            midnight_ns.to_string(),
        )];
        meta.extend(metadata);
        let header = Header {
            adapter: "itch".into(),
            venue: "nasdaq-sim".into(),
            symbols: self.tickers.clone(),
            start_ns: midnight_ns + first,
            metadata: meta,
        };
        let mut w = Writer::create(
            path,
            &header,
            WriterOptions {
                // A bundled day is read more than written: compress harder.
                zstd_level: 19,
                block_bytes: 256 << 10,
                ..WriterOptions::default()
            },
        )?;
        let stream = w.add_stream(midnight_ns + first, StreamKind::Socket, "moldudp64://itch")?;
        for p in &self.packets {
            w.append(
                midnight_ns + p.recv as i64,
                stream,
                RecordKind::Received,
                &self.bytes[p.start..p.end],
            )?;
        }
        w.finish()
    }
}
