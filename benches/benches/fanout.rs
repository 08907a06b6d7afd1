//! In-process fan-out: one tick published by a book actor and delivered into the outboxes
//! of 1,000 subscribed sessions (hub queue push, worker-side drain, one outbox offer and
//! one waker per session).
//!
//! Target (core issue): ≤ 20 µs per update for 1,000 subscribers (≤ 20 ns each).

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, BenchmarkId, Criterion, Throughput};
use tickwire_engine::book::{Level, TopOfBook};
use tickwire_engine::domain::{Instrument, Nanos, Price, Qty, Scale, Seq, SymbolId, SymbolTable};
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

fn quote_tick(ins: &Instrument, seq: u64) -> Arc<Tick> {
    let header = TickHeader {
        symbol: SymbolId(0),
        seq: Seq(seq),
        chan_seq: Seq(seq),
        ts: Nanos(seq as i64),
        recv_ts: Nanos(seq as i64),
    };
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
        let mut ticks: Vec<Arc<Tick>> = (1..=1024).map(|s| quote_tick(&ins, s)).collect();
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
                                *t = quote_tick(&ins, base + 1 + k as u64);
                            }
                            next = 0;
                        }
                        let tick = ticks[next].clone();
                        next += 1;
                        let t = Instant::now();
                        hub.publish(tick);
                        hub.try_recv_batch(worker, &mut batch, 16);
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

criterion_group!(benches, fanout);
tickwire_benches::bench_main!(benches);
