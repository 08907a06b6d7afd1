//! In-process fan-out.
//!
//! * `fanout/one_tick_to_subscribers`: one tick published by a book actor and delivered into
//!   the outboxes of 1,000 (10,000) subscribed sessions that keep up (hub queue push,
//!   worker-side drain, one outbox offer and one waker per session). Target (core issue):
//!   ≤ 20 µs per update for 1,000 subscribers (≤ 20 ns each).
//! * `fanout/saturated_round`: the shape of W2 when the worker cannot keep up: 1,000
//!   sessions × 10 of 100 symbols, a round's worth of quotes (conflated) and trades (queued)
//!   dispatched to outboxes that are not in the cache, then every outbox drained as its
//!   write would. Timed per offer; the cache is flushed between rounds (outside the timing),
//!   as the kernel's socket work does between a worker's rounds.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tickwire_engine::book::{Level, TopOfBook};
use tickwire_engine::domain::{
    Instrument, Nanos, Price, Qty, Scale, Seq, Side, SymbolId, SymbolTable,
};
use tickwire_engine::fanout::{Hub, Outbox, OutboxLimits, Router, SharedOutbox, SubscribeSpec};
use tickwire_engine::tick::{Channel, ChannelSet, Encoding, Tick, TickBody, TickHeader};
use tickwire_engine::wire::TickEncoder;

/// Counts wake-ups, standing in for a transport task waiting on its outbox.
struct CountingWake(AtomicUsize);

impl Wake for CountingWake {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A tick header of `symbol` with `seq` as its sequence numbers and timestamps.
fn header(symbol: u32, seq: u64) -> TickHeader {
    TickHeader {
        symbol: SymbolId(symbol),
        seq: Seq(seq),
        chan_seq: Seq(seq),
        ts: Nanos(seq as i64),
        recv_ts: Nanos(seq as i64),
    }
}

/// A quote of `symbol`, pre-encoded like the book actor's.
fn quote_tick(ins: &Instrument, symbol: u32, seq: u64) -> Arc<Tick> {
    let header = header(symbol, seq);
    let top = TopOfBook {
        bid: Some(Level {
            price: Price(10_125 + (seq % 7) as i64),
            qty: Qty(300),
        }),
        ask: Some(Level {
            price: Price(10_127 + (seq % 7) as i64),
            qty: Qty(120),
        }),
    };
    let frame = TickEncoder::new(ins).quote(&header, &top);
    Arc::new(Tick {
        header,
        body: TickBody::Quote(top),
        frames: [frame, Bytes::new(), Bytes::new(), Bytes::new()],
    })
}

fn fanout(c: &mut Criterion) {
    let ins = Instrument {
        symbol: "SYM0000".into(),
        venue: "bench".into(),
        price_scale: Scale::new(2),
        size_scale: Scale::new(0),
    };
    let table = SymbolTable::new(vec![ins.clone()]).unwrap();
    let mut g = c.benchmark_group("fanout");
    for subscribers in [1_000usize, 10_000] {
        let hub = Hub::new(table.clone(), 1, 1 << 16);
        let worker = hub.claim_worker();
        let mut router = Router::new(hub.clone(), worker);
        let wake = Arc::new(CountingWake(AtomicUsize::new(0)));
        let waker = Waker::from(wake.clone());
        let outboxes: Vec<SharedOutbox> = (0..subscribers)
            .map(|i| {
                let ob = Rc::new(RefCell::new(Outbox::new(OutboxLimits {
                    max_queued_bytes: 1 << 20,
                })));
                let spec = SubscribeSpec {
                    channels: [Channel::Quote].into_iter().collect::<ChannelSet>(),
                    depth: 10,
                    throttle: None,
                    encoding: Encoding::JSON,
                };
                router.subscribe(i as u64, &ob, SymbolId(0), spec);
                ob
            })
            .collect();
        let mut ticks: Vec<Arc<Tick>> = (1..=1024).map(|s| quote_tick(&ins, 0, s)).collect();
        let mut batch = Vec::with_capacity(16);
        let mut next = 0usize;
        g.throughput(Throughput::Elements(subscribers as u64));
        g.bench_with_input(
            BenchmarkId::new("one_tick_to_subscribers", subscribers),
            &subscribers,
            |b, _| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // Each subscriber's transport is idle and waiting (as a keeping-up client is).
                        for ob in &outboxes {
                            while ob.borrow_mut().next_frame(&waker).is_some() {}
                        }
                        if next == ticks.len() {
                            // Fresh sequence numbers for the next round (outside the timing).
                            let base = ticks[ticks.len() - 1].header.seq.0;
                            for (k, t) in ticks.iter_mut().enumerate() {
                                *t = quote_tick(&ins, 0, base + 1 + k as u64);
                            }
                            next = 0;
                        }
                        let tick = ticks[next].clone();
                        next += 1;
                        let t = Instant::now();
                        hub.publish(tick);
                        hub.take_ready(worker, &mut batch, 16);
                        for t in batch.drain(..) {
                            router.dispatch(&t, None);
                        }
                        total += t.elapsed();
                    }
                    total
                })
            },
        );
    }
    g.finish();
}

/// A trade of `symbol`, pre-encoded like the book actor's.
fn trade_tick(ins: &Instrument, symbol: u32, seq: u64) -> Arc<Tick> {
    let header = header(symbol, seq);
    let (price, qty, side) = (Price(10_126), Qty(25), Some(Side::Buy));
    let frame = TickEncoder::new(ins).trade(&header, price, qty, side);
    Arc::new(Tick {
        header,
        body: TickBody::Trade {
            price,
            qty,
            aggressor: side,
        },
        frames: [frame, Bytes::new(), Bytes::new(), Bytes::new()],
    })
}

fn saturated_round(c: &mut Criterion) {
    const SYMBOLS: u32 = 100;
    const SESSIONS: usize = 1_000;
    const PER_SESSION: u32 = 10;
    // About one W2 round (~12 ms at 20,000 quote updates/s): 240 quotes and 80 trades.
    const QUOTES: u64 = 240;
    const TRADES: u64 = 80;
    let instruments: Vec<Instrument> = (0..SYMBOLS)
        .map(|i| Instrument {
            symbol: format!("SYM{i:04}"),
            venue: "bench".into(),
            price_scale: Scale::new(2),
            size_scale: Scale::new(0),
        })
        .collect();
    let table = SymbolTable::new(instruments.clone()).unwrap();
    let hub = Hub::new(table, 1, 1 << 16);
    let worker = hub.claim_worker();
    let mut router = Router::new(hub.clone(), worker);
    let outboxes: Vec<SharedOutbox> = (0..SESSIONS)
        .map(|i| {
            let ob = Rc::new(RefCell::new(Outbox::new(OutboxLimits {
                max_queued_bytes: 4 << 20,
            })));
            for k in 0..PER_SESSION {
                let symbol = (i as u32 * PER_SESSION + k) % SYMBOLS;
                let spec = SubscribeSpec {
                    channels: [Channel::Quote, Channel::Trade]
                        .into_iter()
                        .collect::<ChannelSet>(),
                    depth: 10,
                    throttle: None,
                    encoding: Encoding::JSON,
                };
                router.subscribe(i as u64, &ob, SymbolId(symbol), spec);
            }
            ob
        })
        .collect();
    let waker = Waker::from(Arc::new(CountingWake(AtomicUsize::new(0))));
    // Larger than the last-level cache: walking it evicts the outboxes.
    let mut flush = vec![0u8; 32 << 20];
    let mut seq = 0u64;
    let offers = (QUOTES + TRADES) * (SESSIONS as u64 * PER_SESSION as u64 / SYMBOLS as u64);
    let mut g = c.benchmark_group("fanout");
    g.throughput(Throughput::Elements(offers));
    g.bench_function("saturated_round", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let ticks: Vec<Arc<Tick>> = (0..QUOTES + TRADES)
                    .map(|k| {
                        seq += 1;
                        let symbol = (seq % SYMBOLS as u64) as u32;
                        let ins = &instruments[symbol as usize];
                        if k % 4 == 3 {
                            trade_tick(ins, symbol, seq)
                        } else {
                            quote_tick(ins, symbol, seq)
                        }
                    })
                    .collect();
                for (i, byte) in flush.iter_mut().enumerate().step_by(64) {
                    *byte = byte.wrapping_add(i as u8);
                }
                let t = Instant::now();
                for tick in &ticks {
                    router.dispatch(tick, None);
                }
                for ob in &outboxes {
                    while ob.borrow_mut().next_frame(&waker).is_some() {}
                }
                total += t.elapsed();
            }
            std::hint::black_box(&flush);
            total
        })
    });
    g.finish();
}

criterion_group!(benches, fanout, saturated_round);
tickwire_benches::bench_main!(benches);
