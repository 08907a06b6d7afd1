//! L2 book: apply one upstream message's level changes and compute the coalesced tick.
//!
//! Target (core issue): median ≤ 50 ns per update.

use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use tickwire_benches::synthetic_book_workload;
use tickwire_engine::book::Coalescer;
use tickwire_engine::fanout::MAX_DEPTH;

fn book_update(c: &mut Criterion) {
    const N: usize = 100_000;
    let (initial, batches) = synthetic_book_workload(N);
    let mut g = c.benchmark_group("book");
    g.throughput(Throughput::Elements(1));
    g.bench_function("apply_and_coalesce", |b| {
        b.iter_custom(|iters| {
            // Replays the simulator's own sequence from its starting book, restarting from a
            // fresh copy (outside the timed part) when the sequence runs out.
            let mut book = initial.clone();
            let mut coalescer = Coalescer::new();
            let mut total = Duration::ZERO;
            let mut i = 0u64;
            while i < iters {
                let chunk = ((iters - i) as usize).min(N);
                let t = Instant::now();
                for batch in &batches[..chunk] {
                    for ch in batch {
                        coalescer.apply(&mut book, ch.side, ch.price, ch.qty);
                    }
                    std::hint::black_box(coalescer.finish(&book, MAX_DEPTH));
                }
                total += t.elapsed();
                i += chunk as u64;
                book = initial.clone();
                coalescer.reset();
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, book_update);
tickwire_benches::bench_main!(benches);
