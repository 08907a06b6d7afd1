//! Encoding ticks into complete WebSocket frames (done once per tick, shared by all
//! subscribers).

use criterion::{criterion_group, Criterion};
use tickwire_engine::book::{Level, TopOfBook};
use tickwire_engine::domain::{Instrument, Nanos, Price, Qty, Scale, Seq, Side, SymbolId};
use tickwire_engine::tick::{BookLevels, TickHeader};
use tickwire_engine::wire::TickEncoder;

fn encode(c: &mut Criterion) {
    let ins = Instrument {
        symbol: "SYM0001".into(),
        venue: "bench".into(),
        price_scale: Scale::new(2),
        size_scale: Scale::new(0),
    };
    let enc = TickEncoder::new(&ins);
    let h = TickHeader {
        symbol: SymbolId(1),
        seq: Seq(123_456),
        chan_seq: Seq(45_678),
        ts: Nanos(1_795_000_000_123_456_789),
        recv_ts: Nanos(1_795_000_000_123_457_000),
    };
    let top = TopOfBook {
        bid: Some(Level {
            price: Price(10_125),
            qty: Qty(300),
        }),
        ask: Some(Level {
            price: Price(10_127),
            qty: Qty(120),
        }),
    };
    let levels = BookLevels {
        bids: (0..50)
            .map(|i| Level {
                price: Price(10_125 - i),
                qty: Qty(100 + i),
            })
            .collect(),
        asks: (0..50)
            .map(|i| Level {
                price: Price(10_127 + i),
                qty: Qty(100 + i),
            })
            .collect(),
    };
    let mut g = c.benchmark_group("encode");
    g.bench_function("quote", |b| b.iter(|| enc.quote(&h, &top)));
    g.bench_function("trade", |b| {
        b.iter(|| enc.trade(&h, Price(10_126), Qty(50), Some(Side::Buy)))
    });
    g.bench_function("book_depth_10", |b| b.iter(|| enc.book(&h, &levels, 10)));
    g.finish();
}

criterion_group!(benches, encode);
tickwire_benches::bench_main!(benches);
