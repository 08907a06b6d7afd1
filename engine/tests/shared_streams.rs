//! Shared compression streams, end to end through a router: whatever sessions join, leave,
//! fall behind or change their subscriptions, every session's frames, decoded in order by one
//! inflater that keeps its window (as a browser does with context takeover), give exactly
//! the messages an uncompressed session of the same subscriptions would read.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;

use bytes::Bytes;
use flate2::{Decompress, FlushDecompress};
use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;

use tickwire_engine::book::{Level, TopOfBook};
use tickwire_engine::domain::{
    Instrument, Nanos, Price, Qty, Scale, Seq, Side, SymbolId, SymbolTable,
};
use tickwire_engine::fanout::{
    Hub, Outbox, OutboxLimits, Router, SharedOutbox, StreamConfig, StreamSpec, SubscribeSpec,
};
use tickwire_engine::tick::{
    BookLevels, Channel, ChannelSet, Encoding, FeedState, Tick, TickBody, TickHeader,
};
use tickwire_engine::wire::{compress_frame, frame_payload, TickEncoder};

const SYMBOLS: usize = 3;

fn instruments() -> Vec<Instrument> {
    (0..SYMBOLS)
        .map(|i| Instrument {
            symbol: format!("SYM{i:04}"),
            venue: "test".into(),
            price_scale: Scale::new(2),
            size_scale: Scale::new(0),
        })
        .collect()
}

/// Makes ticks as book actors do: per-symbol seq and chan_seq, JSON frames plus their
/// independently compressed variants (book ladders are left to the router).
struct Market {
    rng: Xoshiro256PlusPlus,
    ins: Vec<Instrument>,
    seq: Vec<u64>,
    chan: Vec<[u64; 3]>,
}

impl Market {
    fn tick(&mut self) -> Arc<Tick> {
        let s = (self.rng.next_u32() as usize) % SYMBOLS;
        let r = self.rng.next_u32();
        let p = 10_000 + (r % 50) as i64;
        let channel = match r % 10 {
            0..=3 => Channel::Quote,
            4..=7 => Channel::Book,
            _ => Channel::Trade,
        };
        self.seq[s] += 1;
        self.chan[s][channel as usize] += 1;
        let header = TickHeader {
            symbol: SymbolId(s as u32),
            seq: Seq(self.seq[s]),
            chan_seq: Seq(self.chan[s][channel as usize]),
            ts: Nanos(self.seq[s] as i64 * 1000),
            recv_ts: Nanos(self.seq[s] as i64 * 1000 + 7),
        };
        let enc = TickEncoder::new(&self.ins[s]);
        let lv = |price: i64, qty: i64| Level {
            price: Price(price),
            qty: Qty(qty),
        };
        let (body, json) = match channel {
            Channel::Quote => {
                let top = TopOfBook {
                    bid: Some(lv(p, 100 + (r % 7) as i64)),
                    ask: Some(lv(p + 2, 300)),
                };
                let f = enc.quote(&header, &top);
                (TickBody::Quote(top), f)
            }
            Channel::Book => {
                let levels = BookLevels {
                    bids: (0..8).map(|i| lv(p - i, 10 * (i + 1))).collect(),
                    asks: (0..8).map(|i| lv(p + 2 + i, 20 * (i + 1))).collect(),
                };
                (TickBody::Book(levels), Bytes::new())
            }
            Channel::Trade => {
                let f = enc.trade(&header, Price(p), Qty(5), Some(Side::Buy));
                (
                    TickBody::Trade {
                        price: Price(p),
                        qty: Qty(5),
                        aggressor: Some(Side::Buy),
                    },
                    f,
                )
            }
        };
        let deflated = if json.is_empty() {
            Bytes::new()
        } else {
            compress_frame(&json)
        };
        Arc::new(Tick {
            header,
            body,
            frames: [json, deflated, Bytes::new(), Bytes::new()],
        })
    }
}

/// A client that negotiated context takeover: one inflater over its whole connection.
struct Client {
    inflater: Decompress,
    /// Last chan_seq per (symbol, channel type).
    last: HashMap<(String, String), u64>,
    messages: u64,
    compressed: u64,
}

impl Client {
    fn new() -> Self {
        Client {
            inflater: Decompress::new(false),
            last: HashMap::new(),
            messages: 0,
            compressed: 0,
        }
    }

    fn read(&mut self, frame: &[u8], who: usize) {
        let payload = frame_payload(frame);
        let text = if frame[0] & 0x40 != 0 {
            self.compressed += 1;
            let mut input = payload.to_vec();
            input.extend_from_slice(&[0, 0, 0xff, 0xff]);
            let mut out = Vec::with_capacity(64 * 1024);
            let start = self.inflater.total_in();
            self.inflater
                .decompress_vec(&input, &mut out, FlushDecompress::Sync)
                .unwrap_or_else(|e| panic!("session {who}: undecodable frame: {e}"));
            assert_eq!(
                (self.inflater.total_in() - start) as usize,
                input.len(),
                "session {who}: frame not fully consumed"
            );
            out
        } else {
            payload.to_vec()
        };
        let v: serde_json::Value = serde_json::from_slice(&text).unwrap_or_else(|e| {
            panic!(
                "session {who}: corrupt message {:?}: {e}",
                String::from_utf8_lossy(&text)
            )
        });
        self.messages += 1;
        let kind = v["type"].as_str().unwrap().to_string();
        if kind == "status" {
            return;
        }
        let key = (v["symbol"].as_str().unwrap().to_string(), kind.clone());
        let cs = v["chan_seq"].as_u64().unwrap();
        if let Some(prev) = self.last.insert(key.clone(), cs) {
            assert!(cs > prev, "session {who}: {key:?} went from {prev} to {cs}");
        }
        if kind == "book" {
            assert_eq!(v["depth"].as_u64(), Some(5), "session {who}: depth");
        }
    }
}

struct Sess {
    outbox: SharedOutbox,
    client: Client,
    /// Reads this many frames per round (0: stalled for a while).
    pace: usize,
    symbols: Vec<u32>,
}

fn spec_of(symbols: &[u32], channels: ChannelSet) -> StreamSpec {
    let mut s: Vec<_> = symbols
        .iter()
        .map(|&i| (SymbolId(i), channels, 5u8))
        .collect();
    s.sort_by_key(|x| x.0);
    StreamSpec {
        msgpack: false,
        symbols: s,
    }
}

#[test]
fn every_session_decodes_its_stream_whatever_happens() {
    let table = SymbolTable::new(instruments()).unwrap();
    let hub = Hub::new(table.clone(), 1, 1 << 16);
    let worker = hub.claim_worker();
    let mut router = Router::with_streams(
        hub.clone(),
        worker,
        StreamConfig {
            max_groups: 3,
            level: 6,
            demote_bytes: 16 << 10,
        },
    );
    let mut market = Market {
        rng: Xoshiro256PlusPlus::seed_from_u64(11),
        ins: instruments(),
        seq: vec![0; SYMBOLS],
        chan: vec![[0; 3]; SYMBOLS],
    };
    let all: ChannelSet = Channel::ALL.into_iter().collect();
    let enc = Encoding {
        msgpack: false,
        deflate: true,
    };
    let sub_spec = SubscribeSpec {
        channels: all,
        depth: 5,
        throttle: None,
        encoding: enc,
    };
    let mut sessions: Vec<Sess> = Vec::new();
    let waker = Waker::noop();
    let subscribe = |router: &mut Router, id: usize, s: &mut Sess, add: &[u32]| {
        router.leave_stream(id as u64);
        for &sym in add {
            router.subscribe(id as u64, &s.outbox, SymbolId(sym), sub_spec);
            if !s.symbols.contains(&sym) {
                s.symbols.push(sym);
            }
        }
        router.set_stream_spec(id as u64, &s.outbox, Some(spec_of(&s.symbols, all)));
    };
    // Four sessions with the same subscriptions, one with another, one slow reader.
    for (i, (syms, pace)) in [
        (vec![0, 1], 1000),
        (vec![0, 1], 1000),
        (vec![0, 1], 3),
        (vec![0, 1], 1000),
        (vec![2], 1000),
        (vec![0, 1], 1000),
    ]
    .into_iter()
    .enumerate()
    {
        let mut s = Sess {
            outbox: Rc::new(RefCell::new(Outbox::new(OutboxLimits {
                max_queued_bytes: 64 << 20,
            }))),
            client: Client::new(),
            pace,
            symbols: Vec::new(),
        };
        subscribe(&mut router, i, &mut s, &syms);
        sessions.push(s);
    }
    let mut batch = Vec::new();
    for round in 0..400 {
        for _ in 0..20 {
            hub.publish(market.tick());
        }
        if round % 97 == 5 {
            // A status goes to every subscriber of the symbol.
            let ins = &market.ins[0];
            let ts = Nanos(1);
            let frame = TickEncoder::new(ins).status(ts, FeedState::Live, "snapshot");
            let header = TickHeader {
                symbol: SymbolId(0),
                seq: Seq(market.seq[0]),
                chan_seq: Seq(0),
                ts,
                recv_ts: ts,
            };
            let deflated = compress_frame(&frame);
            hub.publish(Arc::new(Tick {
                header,
                body: TickBody::Status {
                    state: FeedState::Live,
                    reason: "snapshot".into(),
                },
                frames: [frame, deflated, Bytes::new(), Bytes::new()],
            }));
        }
        hub.take_ready(worker, &mut batch, usize::MAX);
        for t in batch.drain(..) {
            router.dispatch(&t, None);
        }
        match round {
            // Session 4 widens its subscription mid-stream: it leaves its group first.
            120 => subscribe(&mut router, 4, &mut sessions[4], &[0]),
            // Session 1 drops a symbol.
            200 => {
                router.leave_stream(1);
                router.unsubscribe(1, SymbolId(1), all);
                sessions[1].symbols.retain(|&s| s != 1);
                router.set_stream_spec(1, &sessions[1].outbox, Some(spec_of(&[0], all)));
            }
            // The slow reader catches up.
            300 => sessions[2].pace = 1_000_000,
            _ => {}
        }
        for (i, s) in sessions.iter_mut().enumerate() {
            for _ in 0..s.pace {
                let Some(f) = s.outbox.borrow_mut().next_frame(waker) else {
                    break;
                };
                s.client.read(&f, i);
            }
        }
        if round % 10 == 0 {
            router.maintain_streams();
        }
    }
    let stats = router.stream_stats();
    eprintln!("{stats:?}");
    for (i, s) in sessions.iter().enumerate() {
        eprintln!(
            "session {i}: {} messages, {} compressed",
            s.client.messages, s.client.compressed
        );
        assert!(s.client.messages > 500, "session {i} got too little");
    }
    assert!(stats.frames > 0, "no shared frames were made");
    assert!(stats.joins >= 6, "{stats:?}");
    assert!(
        stats.demotions >= 1,
        "the slow reader was never demoted: {stats:?}"
    );
    // The slow reader rejoined after it caught up.
    assert!(stats.members >= 5, "{stats:?}");
}
