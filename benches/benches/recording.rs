//! Recording format: write and read throughput of a realistic JSON stream (the Coinbase
//! real feed, repeated with shifted timestamps) and of ITCH-sized binary messages.
//!
//! Targets (issue 4): the full replay path must sustain >= 1 M JSON and >= 10 M ITCH
//! messages/s through adapters and books, so reading must be far faster than that.
//! Run: `cargo bench -p tickwire-benches --bench recording`.
//!
//! On a shared machine wall-clock throughput mostly measures the neighbours; set
//! `TICKWIRE_BENCH_CPU_TIME=1` to time by this thread's CPU time instead (Linux, from
//! `/proc/thread-self/schedstat`, kernel time included; elsewhere it falls back to wall time).

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion, Throughput};
use tickwire_feeds::recording::convert::parse_line;
use tickwire_feeds::recording::{
    Header, Merge, Reader, RecordKind, StreamKind, Writer, WriterOptions,
};

const COINBASE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/real-feeds/coinbase-2021-04-17-level2-ticker-matches.raw"
);
const REPEAT: i64 = 10;

type Msg = (i64, RecordKind, Vec<u8>);

/// The Coinbase file's messages repeated `REPEAT` times, each copy shifted after the previous.
fn coinbase_stream() -> Vec<Msg> {
    let text = std::fs::read(COINBASE).expect("../shared/real-feeds is needed for this bench");
    let one: Vec<Msg> = text
        .split(|&b| b == b'\n')
        .filter_map(|l| parse_line(l).unwrap())
        .map(|l| (l.ts, l.kind, l.payload.to_vec()))
        .collect();
    let span = one.last().unwrap().0 - one[0].0 + 1_000_000;
    (0..REPEAT)
        .flat_map(|k| {
            one.iter()
                .map(move |(ts, kind, p)| (ts + k * span, *kind, p.clone()))
        })
        .collect()
}

/// ITCH 5.0-sized binary messages (add order 36 B, executed 31 B, delete 19 B, replace 35 B)
/// with plausible field variation, one every 200 ns.
fn itch_stream(n: usize) -> Vec<Msg> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (tag, len) = match x % 10 {
                0..=4 => (b'A', 36),
                5..=6 => (b'E', 31),
                7..=8 => (b'D', 19),
                _ => (b'U', 35),
            };
            let mut m = vec![0u8; len];
            m[0] = tag;
            m[1..3].copy_from_slice(&((x >> 8) as u16 % 8000).to_be_bytes());
            m[5..11].copy_from_slice(&(i as u64 * 200).to_be_bytes()[2..]);
            m[11..19].copy_from_slice(&(1_000_000 + i as u64).to_be_bytes());
            for (j, b) in m[19..].iter_mut().enumerate() {
                *b = (x >> (j % 8 * 8)) as u8;
            }
            (
                1_700_000_000_000_000_000 + i as i64 * 200,
                RecordKind::Received,
                m,
            )
        })
        .collect()
}

fn write(path: &Path, msgs: &[Msg], kind: StreamKind) -> u64 {
    let h = Header {
        adapter: "bench".into(),
        venue: "bench".into(),
        ..Header::default()
    };
    let mut w = Writer::create(path, &h, WriterOptions::default()).unwrap();
    let s = w
        .add_stream(msgs[0].0, kind, "wss://bench.invalid")
        .unwrap();
    for (ts, k, p) in msgs {
        w.append(*ts, s, *k, p).unwrap();
    }
    w.finish().unwrap().file_bytes
}

fn read_all(r: &Reader) -> u64 {
    let mut c = r.cursor();
    let mut n = 0u64;
    while let Some(rec) = c.next_ref() {
        n += black_box(rec.unwrap().payload.len()) as u64 & 1;
        n += 1;
    }
    n
}

/// Nanoseconds this thread has spent on a CPU, if the OS tells us.
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split(' ').next()?.parse().ok()
}

/// Runs `f` `iters` times; returns wall time, or CPU time with `TICKWIRE_BENCH_CPU_TIME` set.
fn timed<R>(iters: u64, mut f: impl FnMut() -> R) -> Duration {
    let cpu = std::env::var_os("TICKWIRE_BENCH_CPU_TIME").is_some();
    let (w0, c0) = (Instant::now(), thread_cpu_ns());
    for _ in 0..iters {
        black_box(f());
    }
    match (cpu, c0, thread_cpu_ns()) {
        (true, Some(a), Some(b)) => Duration::from_nanos(b - a),
        _ => w0.elapsed(),
    }
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("tickwire-bench-{}-{name}", std::process::id()))
}

fn bench(c: &mut Criterion) {
    for (name, msgs, kind) in [
        ("json_coinbase", coinbase_stream(), StreamKind::WebSocket),
        ("itch_synthetic", itch_stream(2_000_000), StreamKind::Socket),
    ] {
        let bytes: u64 = msgs.iter().map(|m| m.2.len() as u64).sum();
        let path = scratch(name);
        let file_bytes = write(&path, &msgs, kind);
        eprintln!(
            "{name}: {} messages, {:.1} payload bytes/message, {bytes} payload bytes -> {file_bytes} file bytes (ratio {:.2})",
            msgs.len(),
            bytes as f64 / msgs.len() as f64,
            bytes as f64 / file_bytes as f64
        );
        let reader = Reader::open(&path).unwrap();
        for (unit, n, tp) in [
            (
                "msgs",
                msgs.len() as u64,
                Throughput::Elements as fn(u64) -> Throughput,
            ),
            ("bytes", bytes, Throughput::Bytes),
        ] {
            let mut g = c.benchmark_group(format!("recording/{name}/{unit}"));
            g.sample_size(10);
            g.throughput(tp(n));
            g.bench_function("write", |b| {
                b.iter_custom(|it| timed(it, || write(&path.with_extension("w"), &msgs, kind)))
            });
            g.bench_function("read", |b| {
                b.iter_custom(|it| timed(it, || read_all(&reader)))
            });
            // Two inputs merged: twice the messages per iteration.
            g.throughput(tp(2 * n));
            g.bench_function("merge2_read", |b| {
                b.iter_custom(|it| {
                    timed(it, || {
                        let mut m = Merge::new(vec![reader.cursor(), reader.cursor()]);
                        let mut n = 0u64;
                        while let Some(r) = m.next_ref() {
                            n += black_box(r.unwrap().record.ts) as u64 & 1;
                            n += 1;
                        }
                        n
                    })
                })
            });
            g.finish();
        }
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(path.with_extension("w"));
    }
}

criterion_group!(benches, bench);
tickwire_benches::bench_main!(benches);
