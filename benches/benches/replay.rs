//! Full-speed replay through adapter and books: `ReplaySource` (recording read, k-way
//! merge, the venue's own decoder) plus the replay's L2 books (`LocalBooks`, the same book
//! code as the engine's book actors), on one thread, with the recordings' blocks
//! decompressed ahead on a second one (as a served replay does; see `ReplaySource`).
//!
//! * `replay/coinbase-json`: the recorded Coinbase feed (level2, ticker, matches) converted
//!   to a recording and repeated 10x (99,500 JSON messages). Target >= 1 M msgs/s.
//! * `replay/itch`: a generated ITCH 5.0 day (`generate_day`, 2 M order-flow messages in
//!   MoldUDP64-style packets) as a recording; throughput in ITCH messages. Target >= 10 M
//!   msgs/s.
//!
//! The inputs are built before timing (the ITCH day takes ~30 s: it is compressed at zstd
//! level 19, as the bundled day is).

use std::hint::black_box;
use std::path::PathBuf;

use criterion::{criterion_group, Criterion, Throughput};
use tickwire_engine::domain::Instrument;
use tickwire_feeds::itch::generator::{generate_day, DayConfig};
use tickwire_feeds::recording::{Header, Reader, RecordKind, StreamKind, Writer, WriterOptions};
use tickwire_feeds::replay::{learn_instruments, LocalBooks, ReplaySource};
use tickwire_feeds::venues::Decoded;

fn tmp(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "tickwire-bench-replay-{}-{name}",
        std::process::id()
    ))
}

/// The Coinbase real feed, repeated `times` with increasing timestamps, as a recording.
fn coinbase_recording(times: usize) -> (PathBuf, u64) {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/real-feeds/coinbase-2021-04-17-level2-ticker-matches.raw"
    );
    let text =
        std::fs::read(path).unwrap_or_else(|e| panic!("recorded feed {path} is required: {e}"));
    let mut msgs: Vec<(i64, Vec<u8>)> = Vec::new();
    for line in text.split(|&b| b == b'\n') {
        if let Ok(Some(l)) = tickwire_feeds::recording::convert::parse_line(line) {
            if l.kind == RecordKind::Received {
                msgs.push((l.ts, l.payload.to_vec()));
            }
        }
    }
    let out = tmp("coinbase.twrec");
    let header = Header {
        adapter: "coinbase".into(),
        venue: "coinbase".into(),
        ..Header::default()
    };
    let mut w = Writer::create(&out, &header, WriterOptions::default()).unwrap();
    let s = w
        .add_stream(0, StreamKind::WebSocket, "wss://ws-feed")
        .unwrap();
    let span = msgs.last().unwrap().0 - msgs[0].0 + 1;
    let mut n = 0;
    for rep in 0..times {
        for (ts, p) in &msgs {
            w.append(ts + rep as i64 * span, s, RecordKind::Received, p)
                .unwrap();
            n += 1;
        }
    }
    w.finish().unwrap();
    (out, n)
}

/// Replays the whole recording; the instruments are learned once beforehand, as a server
/// does per dataset.
fn run(path: &PathBuf, instruments: &[Instrument]) -> (u64, u64) {
    let mut src = ReplaySource::with_instruments(
        vec![Reader::open(path).unwrap()],
        vec![instruments.to_vec()],
    )
    .unwrap();
    let mut books = LocalBooks::new(src.instruments().len());
    let mut events = 0u64;
    while let Some(step) = src.step(None) {
        for d in step.decoded {
            if let Decoded::Event(ev) = d {
                books.apply(ev);
                events += 1;
            }
        }
    }
    (src.decoder(0).stats().messages, events)
}

fn benches(c: &mut Criterion) {
    let (coinbase, n) = coinbase_recording(10);
    let ins = learn_instruments(&Reader::open(&coinbase).unwrap()).unwrap();
    let (messages, _) = run(&coinbase, &ins);
    assert!(messages >= n - 10, "{messages} of {n}");
    let mut g = c.benchmark_group("replay");
    g.throughput(Throughput::Elements(messages));
    g.sample_size(20);
    g.bench_function("coinbase-json", |b| {
        b.iter(|| black_box(run(&coinbase, &ins)))
    });

    let day = generate_day(&DayConfig {
        messages: 2_000_000,
        ..DayConfig::default()
    });
    let itch = tmp("itch.twrec");
    day.write_recording(&itch, 0, Vec::new()).unwrap();
    let ins = learn_instruments(&Reader::open(&itch).unwrap()).unwrap();
    let (messages, _) = run(&itch, &ins);
    assert_eq!(messages, day.messages as u64);
    g.throughput(Throughput::Elements(messages));
    g.bench_function("itch", |b| b.iter(|| black_box(run(&itch, &ins))));
    g.finish();
    let _ = std::fs::remove_file(coinbase);
    let _ = std::fs::remove_file(itch);
}

criterion_group!(replay_benches, benches);
tickwire_benches::bench_main!(replay_benches);
