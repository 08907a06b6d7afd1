//! Full-speed replay throughput by wall clock and CPU time, for a quick look on a shared
//! machine (the criterion bench `replay` is the reference): replays a generated ITCH day and
//! the Coinbase real feed (x10) through `ReplaySource` and `LocalBooks`, five runs each.
//!
//! Two CPU figures, because a large compressed recording is decompressed on a read-ahead
//! thread: the replaying thread's own CPU time (what the thread that decodes and applies
//! spends) and the whole process's (read-ahead included, the honest cost in cores).
//!
//! `cargo run --release -p tickwire-benches --bin replay-throughput [-- itch|itch-stored|coinbase-json]`
//! (a name runs only that recording, e.g. under a profiler).

use std::path::PathBuf;
use std::time::Instant;

use tickwire_feeds::itch::generator::{generate_day, DayConfig};
use tickwire_feeds::recording::{Header, Reader, RecordKind, StreamKind, Writer, WriterOptions};
use tickwire_feeds::replay::{learn_instruments, LocalBooks, ReplaySource};
use tickwire_feeds::venues::Decoded;

/// CPU time of a clock (`CLOCK_THREAD_CPUTIME_ID` or `CLOCK_PROCESS_CPUTIME_ID`), ns.
fn cpu_ns(clock: libc::clockid_t) -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec.
    unsafe { libc::clock_gettime(clock, &mut t) };
    t.tv_sec as u64 * 1_000_000_000 + t.tv_nsec as u64
}

fn measure(name: &str, path: &PathBuf) {
    let reader = Reader::open(path).unwrap();
    let ins = learn_instruments(&reader).unwrap();
    for _ in 0..5 {
        let w = Instant::now();
        let thread = cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID);
        let process = cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID);
        let mut src =
            ReplaySource::with_instruments(vec![reader.clone()], vec![ins.clone()]).unwrap();
        let mut books = LocalBooks::new(src.instruments().len());
        while let Some(step) = src.step(None) {
            for d in step.decoded {
                if let Decoded::Event(ev) = d {
                    books.apply(ev);
                }
            }
        }
        let src_messages = src.decoder(0).stats().messages;
        drop(src); // ends a read-ahead thread, whose CPU time counts
        let n = src_messages as f64;
        let wall = w.elapsed().as_secs_f64();
        let thread = (cpu_ns(libc::CLOCK_THREAD_CPUTIME_ID) - thread) as f64 / 1e9;
        let process = (cpu_ns(libc::CLOCK_PROCESS_CPUTIME_ID) - process) as f64 / 1e9;
        println!(
            "{name}: {n} messages, {:.2} M msgs/s wall, {:.2} M msgs/s by the replaying \
             thread's CPU time, {:.2} M msgs/s by process CPU time",
            n / wall / 1e6,
            n / thread / 1e6,
            n / process / 1e6
        );
    }
}

/// Whether the command line asks for recording `name` (no argument: all of them).
fn wanted(name: &str) -> bool {
    match std::env::args().nth(1) {
        None => true,
        Some(only) => only == name,
    }
}

fn main() {
    let dir = std::env::temp_dir();
    // Generating and compressing the day takes a while; it is kept between runs.
    let itch = dir.join("tickwire-replay-throughput-itch-2m.twrec");
    if Reader::open(&itch).is_err() {
        let day = generate_day(&DayConfig {
            messages: 2_000_000,
            ..DayConfig::default()
        });
        day.write_recording(&itch, 0, Vec::new()).unwrap();
    }
    if wanted("itch") {
        measure("itch", &itch);
    }
    // The same day stored uncompressed: what the decoder and books cost without zstd.
    let raw = dir.join("tickwire-replay-throughput-itch-2m-stored.twrec");
    if Reader::open(&raw).is_err() {
        let r = Reader::open(&itch).unwrap();
        let mut w = Writer::create(
            &raw,
            r.header(),
            WriterOptions {
                zstd_level: 0,
                ..WriterOptions::default()
            },
        )
        .unwrap();
        let s = w
            .add_stream(0, StreamKind::Socket, "moldudp64://itch")
            .unwrap();
        for rec in r.cursor() {
            let rec = rec.unwrap();
            w.append(rec.ts, s, rec.kind, &rec.payload).unwrap();
        }
        w.finish().unwrap();
    }
    if wanted("itch-stored") {
        measure("itch-stored", &raw);
    }
    if !wanted("coinbase-json") {
        return;
    }

    let src = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/real-feeds/coinbase-2021-04-17-level2-ticker-matches.raw"
    );
    let text = std::fs::read(src).expect("the recorded Coinbase feed");
    let cb = dir.join(format!("replay-throughput-cb-{}.twrec", std::process::id()));
    let header = Header {
        adapter: "coinbase".into(),
        venue: "coinbase".into(),
        ..Header::default()
    };
    let mut w = Writer::create(&cb, &header, WriterOptions::default()).unwrap();
    let s = w
        .add_stream(0, StreamKind::WebSocket, "wss://ws-feed")
        .unwrap();
    let msgs: Vec<(i64, Vec<u8>)> = text
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            tickwire_feeds::recording::convert::parse_line(l)
                .ok()
                .flatten()
        })
        .filter(|l| l.kind == RecordKind::Received)
        .map(|l| (l.ts, l.payload.to_vec()))
        .collect();
    let span = msgs.last().unwrap().0 - msgs[0].0 + 1;
    for rep in 0..10 {
        for (ts, p) in &msgs {
            w.append(ts + rep * span, s, RecordKind::Received, p)
                .unwrap();
        }
    }
    w.finish().unwrap();
    measure("coinbase-json", &cb);
    let _ = std::fs::remove_file(&cb);
}
