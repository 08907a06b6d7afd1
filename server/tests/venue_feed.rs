//! Venue feeds end to end, all real processes and sockets: `tickwire exchange-sim` plays a
//! recorded exchange feed over WebSocket, `tickwire serve --feed VENUE` consumes it, and a
//! WebSocket client of the server gets normalized books that equal an offline
//! `tickwire inspect` of the same file, through an injected disconnect (stale, then live).
//! Also measures what permessage-deflate saves on the recorded Coinbase feed.

mod common;

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{subscribe, Client, Raw, Server};
use serde_json::Value;

fn feed(name: &str) -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/real-feeds"
    ))
    .join(name);
    assert!(p.is_file(), "recorded feed {} is missing", p.display());
    p
}

struct Sim(Child, u16);

impl Drop for Sim {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_sim(file: &PathBuf, extra: &[&str]) -> Sim {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .arg("exchange-sim")
        .arg(file)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start exchange-sim");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "simulator did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    Sim(child, port)
}

/// The final top-`depth` book of every symbol according to `tickwire inspect`.
fn offline_books(adapter: &str, file: &PathBuf, depth: usize) -> HashMap<String, (Value, Value)> {
    let out = Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .args([
            "inspect",
            "--adapter",
            adapter,
            "--book-depth",
            &depth.to_string(),
        ])
        .arg(file)
        .stderr(Stdio::null())
        .output()
        .expect("run inspect");
    assert!(out.status.success());
    let mut books = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        if let (Some(sym), Some(book)) = (v["symbol"].as_str(), v.get("book")) {
            books.insert(
                sym.to_string(),
                (book["bids"].clone(), book["asks"].clone()),
            );
        }
    }
    books
}

const KRAKEN: [&str; 4] = ["XMR/USD", "WAVES/EUR", "ETH/CHF", "SC/EUR"];

#[tokio::test]
async fn kraken_through_simulator_and_server_matches_offline_books_after_a_disconnect() {
    let file = feed("kraken-2021-04-17-book.raw");
    let expected = offline_books("kraken", &file, 10);
    assert_eq!(expected.len(), 4);
    let sim = start_sim(&file, &["--pace-ms", "1", "--disconnect-after", "1200"]);
    let url = format!("ws://127.0.0.1:{}/ws", sim.1);
    let server = Server::start(&[
        "--feed",
        "kraken",
        "--feed-url",
        &url,
        "--instruments",
        &KRAKEN.join(","),
        "--feed-backoff-ms",
        "200",
    ]);
    let mut c = Client::connect(&server).await;
    c.send(subscribe(1, &KRAKEN, &["quote", "book"])).await;
    // Read until the replayed day is over (no message for 3 s).
    let mut msgs = Vec::new();
    let start = Instant::now();
    while let Some(m) = c.recv(Duration::from_secs(3)).await {
        msgs.push(m);
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "feed never went quiet"
        );
    }
    for sym in KRAKEN {
        let states: Vec<&str> = msgs
            .iter()
            .filter(|m| m["type"] == "status" && m["symbol"] == sym)
            .map(|m| m["state"].as_str().unwrap())
            .collect();
        let stale = states
            .iter()
            .position(|s| *s == "stale")
            .unwrap_or_else(|| panic!("{sym}: never stale: {states:?}"));
        assert!(
            states[stale..].contains(&"live"),
            "{sym}: never live again: {states:?}"
        );
        let last_book = msgs
            .iter()
            .rev()
            .find(|m| m["type"] == "book" && m["symbol"] == sym)
            .unwrap_or_else(|| panic!("{sym}: no book"));
        let (bids, asks) = &expected[sym];
        assert_eq!(&last_book["bids"], bids, "{sym}: bids differ from offline");
        assert_eq!(&last_book["asks"], asks, "{sym}: asks differ from offline");
        let last_quote = msgs
            .iter()
            .rev()
            .find(|m| m["type"] == "quote" && m["symbol"] == sym)
            .unwrap();
        assert_eq!(last_quote["bid"], bids[0][0]);
        assert_eq!(last_quote["ask"], asks[0][0]);
    }
}

const COINBASE: [&str; 10] = [
    "SKL-USD", "SKL-BTC", "BAND-GBP", "NMR-EUR", "BAND-BTC", "YFI-BTC", "DASH-BTC", "NU-GBP",
    "CRV-EUR", "SKL-GBP",
];

/// Reads a raw connection until it is quiet for `quiet`; returns (wire bytes, updates).
/// Compressed messages are inflated as the negotiation says: each on its own, or with one
/// window over the whole connection (server context takeover).
fn drain(raw: &mut Raw, quiet: Duration) -> (usize, usize) {
    let keep_window = !raw.response_head.contains("server_no_context_takeover");
    raw.s.set_read_timeout(Some(quiet)).unwrap();
    let (mut bytes, mut updates) = (0, 0);
    let mut inflater = flate2::Decompress::new(false);
    loop {
        let mut h = [0u8; 2];
        if std::io::Read::read_exact(&mut raw.s, &mut h).is_err() {
            return (bytes, updates);
        }
        let (first, payload) = raw.finish_frame(h);
        bytes += 2 + payload.len() + if payload.len() >= 126 { 2 } else { 0 };
        if first & 0x0f != 0x1 {
            continue; // pings and the like
        }
        let text = if first & 0x40 != 0 {
            let mut input = payload.clone();
            input.extend_from_slice(&[0, 0, 0xff, 0xff]);
            if !keep_window {
                inflater.reset(false);
            }
            let mut out = Vec::with_capacity(1 << 20);
            inflater
                .decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
                .unwrap();
            out
        } else {
            payload
        };
        let v: Value = serde_json::from_slice(&text).unwrap();
        if v["chan_seq"].is_u64() {
            updates += 1;
        }
    }
}

#[test]
fn coinbase_replay_bytes_per_update_with_and_without_compression() {
    let file = feed("coinbase-2021-04-17-level2-ticker-matches.raw");
    // No compression; every message compressed on its own (the client asked for
    // server_no_context_takeover); and what browsers offer by default, which lets the client
    // share a compression window with every client of the same stream.
    let modes = [
        ("uncompressed", None),
        (
            "per-message",
            Some("permessage-deflate; client_max_window_bits; server_no_context_takeover"),
        ),
        (
            "shared window",
            Some("permessage-deflate; client_max_window_bits"),
        ),
    ];
    let mut per_update = Vec::new();
    for (name, offer) in modes {
        let sim = start_sim(&file, &["--pace-ms", "1"]);
        let url = format!("ws://127.0.0.1:{}/ws", sim.1);
        let server = Server::start(&[
            "--feed",
            "coinbase",
            "--feed-url",
            &url,
            "--instruments",
            &COINBASE.join(","),
        ]);
        let mut raw = Raw::connect(server.port, offer);
        if offer.is_some() {
            assert!(raw.response_head.contains("permessage-deflate"), "{name}");
        }
        let sub = subscribe(1, &COINBASE, &["quote", "trade", "book"]).to_string();
        raw.send_frame(0x81, sub.as_bytes());
        let (bytes, updates) = drain(&mut raw, Duration::from_secs(3));
        assert!(updates > 5_000, "{name}: only {updates} updates");
        per_update.push(bytes as f64 / updates as f64);
        eprintln!(
            "coinbase replay, {name}: {updates} updates, {bytes} bytes on the wire, {:.1} B/update",
            bytes as f64 / updates as f64
        );
    }
    let independent = per_update[0] / per_update[1];
    let shared = per_update[0] / per_update[2];
    eprintln!("compression saves {independent:.2}x per message on its own, {shared:.2}x with a shared window");
    // Each message on its own was measured at 2.48x: small messages carry their own Huffman
    // tables and find repeats only within themselves (see docs/benchmarks.md).
    assert!(
        independent >= 2.3,
        "per-message compression saved only {independent:.2}x"
    );
    // The bandwidth issue asks for at least 3x.
    assert!(
        shared >= 3.0,
        "shared-window compression saved only {shared:.2}x"
    );
}
