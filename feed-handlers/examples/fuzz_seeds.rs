//! Writes the seed corpora of every fuzz target of `server/fuzz` into a directory (under
//! `target/`, never committed): client requests and upgrade inputs like the tests',
//! WebSocket frames, runs of recorded real venue messages split from the recorded feeds, and
//! generated ITCH days. An example of this crate (not a binary of the fuzz crate) because it
//! needs no instrumentation and the test build compiles it anyway; `server/fuzz/run.sh`
//! calls it.
//!
//! Usage: `cargo run --release -p tickwire-feeds --example fuzz_seeds -- OUT_DIR
//! REAL_FEEDS_DIR`.

use std::path::{Path, PathBuf};

use tickwire_feeds::itch::{generate, Frames, GenConfig};

fn write(dir: &Path, target: &str, name: &str, data: &[u8]) {
    let d = dir.join(target);
    std::fs::create_dir_all(&d).expect("create corpus directory");
    std::fs::write(d.join(name), data).expect("write seed");
}

fn masked(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut f = vec![first];
    match payload.len() {
        n if n < 126 => f.push(0x80 | n as u8),
        n => {
            f.push(0x80 | 126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    f
}

const REQUESTS: &[&str] = &[
    r#"{"op":"subscribe","id":1,"symbols":["SYM0001","SYM0002"],"channels":["quote","trade","book"],"depth":10,"throttle_ms":0}"#,
    r#"{"op":"unsubscribe","id":2,"symbols":["SYM0001"],"channels":["quote"]}"#,
    r#"{"op":"ping","id":3}"#,
    r#"{"op":"ping","id":"s-4"}"#,
    r#"{"op":"subscribe","id":5,"symbols":["SYM0001"],"channels":["book"],"depth":50,"throttle_ms":60000}"#,
    r#"{"op":"subscribe","id":{"a":1},"symbols":["SYM0001"],"channels":["quote"]}"#,
    r#"{"op":"dance","id":2}"#,
    r#"{"op":"subscribe","id":9,"symbols":["SYM0001"],"channels":[]}"#,
    r#"[]"#,
    r#"not json"#,
];

const UPGRADES: &[&str] = &[
    "/ws?ticket={T}",
    "/ws?ticket={T}\nOrigin: https://app.example.com",
    "/ws?ticket={T}\nOrigin: https://evil.example",
    "/ws?ticket={T}&ticket={T}",
    "/ws?ticket=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\nHost: 127.0.0.1:8080\nOrigin: http://127.0.0.1:8080",
    "/ws?x=1&ticket=%41%41\nOrigin: null",
    "/ws\nAuthorization: Bearer fuzz-key-0123456789abcdef0123456789abcdef",
    "/ws\nAuthorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJmdXp6IiwiZXhwIjo5OTk5OTk5OTk5fQ.c2lnbmF0dXJl",
    "/ws\nAuthorization: Basic YWxpY2U6eA==\nOrigin: https://a.example.org",
];

fn main() {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(
        args.next()
            .expect("usage: fuzz_seeds OUT_DIR REAL_FEEDS_DIR"),
    );
    let feeds = PathBuf::from(
        args.next()
            .expect("usage: fuzz_seeds OUT_DIR REAL_FEEDS_DIR"),
    );

    for (i, r) in REQUESTS.iter().enumerate() {
        write(&out, "client_request", &format!("req-{i}"), r.as_bytes());
    }
    for (i, u) in UPGRADES.iter().enumerate() {
        write(&out, "ticket_admission", &format!("up-{i}"), u.as_bytes());
    }

    // WebSocket frames: a text message, a fragmented one, control frames, a compressed
    // message; the first byte is the target's control byte (chunk size, deflate).
    let sub = REQUESTS[0].as_bytes();
    let mut fragmented = masked(0x01, &sub[..20]);
    fragmented.extend(masked(0x09, b"ping"));
    fragmented.extend(masked(0x80, &sub[20..]));
    let compressed = masked(0xC1, &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]);
    let seeds: Vec<(u8, Vec<u8>)> = vec![
        (0x3f, masked(0x81, sub)),
        (0x00, fragmented),
        (
            0x07,
            [
                masked(0x89, b""),
                masked(0x8A, b"x"),
                masked(0x88, &[0x03, 0xe8]),
            ]
            .concat(),
        ),
        (0x7f, compressed),
        (0x10, masked(0x82, &[0u8; 300])),
    ];
    for (i, (control, frames)) in seeds.into_iter().enumerate() {
        let mut s = vec![control];
        s.extend(frames);
        write(&out, "ws_inbound", &format!("frames-{i}"), &s);
    }

    // Runs of 32 real messages; each file's head (subscriptions, snapshots) is one seed.
    let files: &[(&str, &[&str])] = &[
        (
            "coinbase",
            &["coinbase-2021-04-17-level2-ticker-matches.raw"],
        ),
        (
            "binance",
            &[
                "binance-2021-10-12-rest-snapshots.raw",
                "binance-2021-10-12-depth-bookticker-aggtrade-kline.raw",
            ],
        ),
        (
            "kraken",
            &[
                "kraken-2021-04-17-book.raw",
                "kraken-2021-04-17-trade.raw",
                "kraken-2021-04-17-ticker.raw",
            ],
        ),
        ("okx", &["okx-2022-05-13-books-tickers-trades.raw"]),
    ];
    const RUN: usize = 32;
    const MAX_SEEDS: usize = 300;
    for (venue, names) in files {
        let target = format!("venue_{venue}");
        let mut n = 0;
        for name in *names {
            let path = feeds.join(name);
            let text = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let lines: Vec<&[u8]> = text.split(|&c| c == b'\n').collect();
            let step = (lines.len() / RUN / MAX_SEEDS).max(1) * RUN;
            for (k, start) in (0..lines.len()).step_by(step).enumerate() {
                if k >= MAX_SEEDS {
                    break;
                }
                let run = lines[start..(start + RUN).min(lines.len())].join(&b'\n');
                write(&out, &target, &format!("{name}-{start}"), &run);
                n += 1;
            }
        }
        eprintln!("{target}: {n} seeds");
    }

    // Generated ITCH days, cut at frame boundaries.
    for seed in 0..4 {
        let day = generate(&GenConfig {
            seed,
            stocks: 3,
            messages: 4_000,
            truth: false,
        });
        let mut start = 0;
        let mut count = 0;
        for f in Frames::new(&day.bytes).flatten() {
            count += 1;
            if count % 250 == 0 {
                let end = f.offset;
                write(
                    &out,
                    "itch_book",
                    &format!("day{seed}-{start}"),
                    &day.bytes[start..end],
                );
                start = end;
            }
        }
    }
}
