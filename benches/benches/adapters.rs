//! Adapter hot paths, one core each:
//!
//! * `itch/parse+l3`: frame + parse + L3 book update over a generated ITCH 5.0 day
//!   (target >= 16 M msgs/s).
//! * `coinbase/l2update+book`: simd-json decode of the recorded Coinbase `l2update`
//!   messages + engine `L2Book` update (target >= 1 M msgs/s). Each message is copied into a
//!   scratch buffer first because simd-json parses in place; a live adapter parses its
//!   WebSocket frame buffer the same way.
//!
//! Each bench runs twice: `wall/...` with criterion's wall clock and `cpu/...` with this
//! thread's CPU time (Linux `/proc/thread-self/schedstat`). The targets are per core; on a
//! shared machine the wall clock also counts the time other processes hold the core, which
//! CPU time excludes.

use std::hint::black_box;

use criterion::measurement::{Measurement, ValueFormatter, WallTime};
use criterion::{criterion_group, Criterion, Throughput};
use tickwire_engine::book::{L2Book, Level};
use tickwire_engine::domain::Nanos;
use tickwire_engine::event::FeedEvent;
use tickwire_feeds::itch::{generate, replay, GenConfig, L3Book};
use tickwire_feeds::rawfile::{parse_line, RawReader, RecordKind};
use tickwire_feeds::venues::{CoinbaseDecoder, Decoded, SymbolRegistry, VenueDecoder};

fn itch<M: Measurement>(c: &mut Criterion<M>, label: &str) {
    let day = generate(&GenConfig {
        seed: 1,
        stocks: 1000,
        messages: 4_000_000,
        truth: false,
    });
    let mut g = c.benchmark_group(format!("{label}/itch"));
    g.throughput(Throughput::Elements(day.messages as u64));
    g.sample_size(20);
    g.bench_function("parse+l3", |b| {
        // The book is built inside the timed routine: initializing its order table costs
        // about 1% of a run, and criterion's batched setup measured ~30% slower here.
        b.iter(|| {
            let mut book = L3Book::with_capacity(1 << 20);
            let stats = replay(
                &day.bytes,
                &mut book,
                |_, _, e, _| {
                    black_box(e);
                },
                |_, _| {},
            );
            assert_eq!(stats.errors, 0);
            black_box(book.top(1))
        })
    });
    g.finish();
}

fn coinbase<M: Measurement>(c: &mut Criterion<M>, label: &str) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/real-feeds/coinbase-2021-04-17-level2-ticker-matches.raw"
    );
    let mut reader =
        RawReader::open(path).unwrap_or_else(|e| panic!("recorded feed {path} is required: {e}"));
    let mut snapshots = Vec::new();
    let mut updates = Vec::new();
    while let Some((_, line)) = reader.next_line().unwrap() {
        let Ok(Some(r)) = parse_line(line) else {
            continue;
        };
        if r.kind != RecordKind::Received {
            continue;
        }
        if r.payload.starts_with(br#"{"type":"snapshot""#) {
            snapshots.push(r.payload.to_vec());
        } else if r.payload.starts_with(br#"{"type":"l2update""#) {
            updates.push(r.payload.to_vec());
        }
    }
    assert!(updates.len() > 9000, "{} l2updates", updates.len());

    let mut decoder = CoinbaseDecoder::new(SymbolRegistry::inferred("coinbase"));
    let mut books: Vec<L2Book> = Vec::new();
    let mut out = Vec::new();
    for s in &snapshots {
        decoder.decode(&mut s.clone(), Nanos(0), &mut out).unwrap();
    }
    for d in out.drain(..) {
        if let Decoded::Event(FeedEvent::Snapshot { meta, bids, asks }) = d {
            books.resize_with(books.len().max(meta.symbol.index() + 1), L2Book::new);
            let lv = |&(price, qty): &(_, _)| Level { price, qty };
            books[meta.symbol.index()].replace(bids.iter().map(lv), asks.iter().map(lv));
        }
    }
    let mut scratch = Vec::with_capacity(4096);
    let mut g = c.benchmark_group(format!("{label}/coinbase"));
    g.throughput(Throughput::Elements(updates.len() as u64));
    g.bench_function("l2update+book", |b| {
        b.iter(|| {
            for u in &updates {
                scratch.clear();
                scratch.extend_from_slice(u);
                out.clear();
                decoder.decode(&mut scratch, Nanos(0), &mut out).unwrap();
                for d in &out {
                    if let Decoded::Event(FeedEvent::Delta { meta, changes }) = d {
                        let book = &mut books[meta.symbol.index()];
                        for ch in changes {
                            book.apply(ch.side, ch.price, ch.qty);
                        }
                    }
                }
            }
            black_box(books[0].top())
        })
    });
    g.finish();
}

/// This thread's CPU time in nanoseconds.
fn thread_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .expect("thread CPU time needs Linux /proc/thread-self/schedstat")
}

/// Criterion measurement of thread CPU time, reported like wall time (nanoseconds).
struct ThreadCpuTime;

static WALL: WallTime = WallTime;

impl Measurement for ThreadCpuTime {
    type Intermediate = u64;
    type Value = u64;

    fn start(&self) -> u64 {
        thread_cpu_ns()
    }

    fn end(&self, start: u64) -> u64 {
        thread_cpu_ns().saturating_sub(start)
    }

    fn add(&self, a: &u64, b: &u64) -> u64 {
        a + b
    }

    fn zero(&self) -> u64 {
        0
    }

    fn to_f64(&self, v: &u64) -> f64 {
        *v as f64
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        WALL.formatter()
    }
}

fn wall(c: &mut Criterion) {
    itch(c, "wall");
    coinbase(c, "wall");
}

fn cpu(c: &mut Criterion<ThreadCpuTime>) {
    itch(c, "cpu");
    coinbase(c, "cpu");
}

criterion_group!(wall_benches, wall);
criterion_group! {
    name = cpu_benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = cpu
}
tickwire_benches::bench_main!(wall_benches, cpu_benches);
