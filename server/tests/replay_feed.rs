//! `tickwire serve --replay FILE... --speed S [--from T --to T] [--loop]` through the real
//! binary and a real WebSocket client: what clients see is what the recording held (the
//! final books equal the books of decoding the recording directly), several venues merge,
//! a loop restarts with fresh snapshots while `seq` keeps increasing, bad arguments are
//! refused clearly, and the bundled day is what `tickwire` alone serves.

mod common;

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::{msg_type, recording_of, temp_dir, Client, Server};
use serde_json::{json, Value};
use tickwire_engine::domain::decimal::parse_mantissa;
use tickwire_engine::domain::{Scale, Side, SymbolId};
use tickwire_feeds::recording::Reader;
use tickwire_feeds::replay::{LocalBooks, ReplaySource};
use tickwire_feeds::venues::Decoded;

const KRAKEN: &[&str] = &["XMR/USD", "WAVES/EUR", "ETH/CHF", "SC/EUR"];

/// Both sides of a book as (price, size) mantissas, best first.
type Ladders = (Vec<(i64, i64)>, Vec<(i64, i64)>);

/// Top `depth` levels of every book after decoding the whole recording in-process.
fn final_books(path: &std::path::Path, depth: usize) -> HashMap<String, Ladders> {
    let mut src = ReplaySource::open(vec![Reader::open(path).unwrap()]).unwrap();
    let mut books = LocalBooks::new(src.instruments().len());
    while let Some(step) = src.step(None) {
        for d in step.decoded {
            if let Decoded::Event(ev) = d {
                books.apply(ev);
            }
        }
    }
    src.instruments()
        .iter()
        .enumerate()
        .map(|(i, ins)| {
            let b = books.book(SymbolId(i as u32)).unwrap();
            let side = |s| {
                b.levels(s)
                    .take(depth)
                    .map(|l| (l.price.0, l.qty.0))
                    .collect()
            };
            (ins.symbol.clone(), (side(Side::Buy), side(Side::Sell)))
        })
        .collect()
}

fn ladder(v: &Value, ps: Scale, ss: Scale) -> Vec<(i64, i64)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            let p = parse_mantissa(l[0].as_str().unwrap().as_bytes(), ps).unwrap();
            let q = parse_mantissa(l[1].as_str().unwrap().as_bytes(), ss).unwrap();
            (p, q)
        })
        .collect()
}

fn scales(server: &Server) -> HashMap<String, (Scale, Scale)> {
    let v: Value = serde_json::from_str(&server.get("/symbols")).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["symbol"].as_str().unwrap().to_string(),
                (
                    Scale::new(s["price_scale"].as_u64().unwrap() as u8),
                    Scale::new(s["size_scale"].as_u64().unwrap() as u8),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_recording_ends_with_the_books_it_recorded() {
    let dir = temp_dir("replay-feed");
    let rec = recording_of(
        "kraken-2021-04-17-book.raw",
        "kraken",
        KRAKEN,
        &dir.join("k.twrec"),
    );
    let want = final_books(&rec, 10);
    let server = Server::start(&["--replay", rec.to_str().unwrap(), "--speed", "10"]);
    let scales = scales(&server);
    assert_eq!(scales.len(), 4, "{scales:?}");
    let mut c = Client::connect(&server).await;
    c.send(json!({"op":"subscribe","id":1,"symbols":KRAKEN,"channels":["book","quote","trade"],"depth":10}))
        .await;
    let mut last_book: HashMap<String, Value> = HashMap::new();
    let mut ended = 0;
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    while ended < KRAKEN.len() {
        let m = c
            .recv(Duration::from_secs(20))
            .await
            .expect("replay ended without every symbol going stale");
        let sym = m["symbol"].as_str().unwrap_or_default().to_string();
        if let Some(seq) = m["seq"].as_u64() {
            let prev = last_seq.insert(sym.clone(), seq).unwrap_or(0);
            assert!(seq > prev, "{sym}: seq {seq} after {prev}");
            assert!(
                m["replay"].is_null(),
                "the served feed is not a private replay"
            );
        }
        match msg_type(&m) {
            "book" => {
                last_book.insert(sym, m);
            }
            "status" if m["state"] == "stale" && m["reason"] == "feed ended" => ended += 1,
            _ => {}
        }
    }
    for s in KRAKEN {
        let (ps, ss) = scales[*s];
        let b = &last_book[*s];
        let got = (ladder(&b["bids"], ps, ss), ladder(&b["asks"], ps, ss));
        assert_eq!(got, want[*s], "{s}: final book");
        assert!(!got.0.is_empty() && !got.1.is_empty(), "{s}: empty book");
    }
    eprintln!(
        "kraken replayed at 10x: final books of {} symbols identical",
        KRAKEN.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_venues_merge_and_a_loop_restarts_with_fresh_snapshots() {
    let dir = temp_dir("replay-merge");
    let k = recording_of(
        "kraken-2021-04-17-book.raw",
        "kraken",
        KRAKEN,
        &dir.join("k.twrec"),
    );
    let o = recording_of(
        "okx-2022-05-13-books-tickers-trades.raw",
        "okx",
        &["BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"],
        &dir.join("o.twrec"),
    );
    let server = Server::start(&[
        "--replay",
        k.to_str().unwrap(),
        o.to_str().unwrap(),
        "--speed",
        "max",
        "--loop",
    ]);
    let symbols: Value = serde_json::from_str(&server.get("/symbols")).unwrap();
    let venues: Vec<&str> = symbols
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["venue"].as_str().unwrap())
        .collect();
    assert_eq!(
        venues.iter().filter(|v| **v == "kraken").count(),
        4,
        "{symbols}"
    );
    assert_eq!(
        venues.iter().filter(|v| **v == "okx").count(),
        3,
        "{symbols}"
    );
    let mut c = Client::connect(&server).await;
    c.send(json!({"op":"subscribe","id":1,"symbols":["XMR/USD","BTC-USDT"],"channels":["quote","trade"]}))
        .await;
    let mut restarts: HashMap<String, u32> = HashMap::new();
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while restarts.values().filter(|n| **n >= 2).count() < 2 {
        assert!(
            tokio::time::Instant::now() < end,
            "no loop restarts: {restarts:?}"
        );
        let m = c.recv(Duration::from_secs(10)).await.expect("message");
        let sym = m["symbol"].as_str().unwrap_or_default().to_string();
        if let Some(seq) = m["seq"].as_u64() {
            let prev = last_seq.insert(sym.clone(), seq).unwrap_or(0);
            assert!(
                seq > prev,
                "{sym}: seq {seq} after {prev} (must keep increasing across loops)"
            );
        }
        if msg_type(&m) == "status" && m["reason"] == "replay restarting" {
            *restarts.entry(sym).or_default() += 1;
        }
    }
    eprintln!("looping replay of two venues: restarts {restarts:?}, seq increasing");
}

fn serve_fails(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .args(args)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_replay_arguments_are_refused_clearly() {
    let dir = temp_dir("replay-args");
    let rec = recording_of(
        "kraken-2021-04-17-book.raw",
        "kraken",
        KRAKEN,
        &dir.join("k.twrec"),
    );
    let rec = rec.to_str().unwrap();
    let (code, err) = serve_fails(&["--replay", rec, "--from", "2030-01-01T00:00:00Z"]);
    assert_ne!(code, Some(0));
    assert!(err.contains("outside the recordings"), "{err}");
    let (code, err) = serve_fails(&[
        "--replay",
        rec,
        "--from",
        "2021-04-17T16:49:00Z",
        "--to",
        "2021-04-17T16:48:00Z",
    ]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`replay.to`"), "{err}");
    let (code, err) = serve_fails(&["--replay", rec, "--speed", "warp"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("`replay.speed`"), "{err}");
    let (code, err) = serve_fails(&["--replay", dir.join("missing.twrec").to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(err.contains("missing.twrec"), "{err}");
    let junk = dir.join("junk.twrec");
    std::fs::write(&junk, b"definitely not a recording, just text\n").unwrap();
    let (code, err) = serve_fails(&["--replay", junk.to_str().unwrap()]);
    assert_ne!(code, Some(0));
    assert!(err.contains("not a tickwire recording"), "{err}");
    let (code, err) = serve_fails(&["--symbols", "5"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--feed synthetic"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tickwire_alone_serves_the_bundled_day_from_the_open() {
    let server = Server::start(&[]);
    let symbols: Value = serde_json::from_str(&server.get("/symbols")).unwrap();
    let names: Vec<&str> = symbols
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["symbol"].as_str().unwrap())
        .collect();
    assert!(names.len() >= 30 && names.contains(&"AAPL"), "{names:?}");
    let mut c = Client::connect(&server).await;
    c.send(json!({"op":"subscribe","id":1,"symbols":["AAPL","MSFT","NVDA"],"channels":["quote","book","trade"]}))
        .await;
    let q = c
        .recv_until(Duration::from_secs(10), |m| {
            m["type"] == "quote" && !m["bid"].is_null()
        })
        .await;
    // 2025-06-16 between the 09:30 open and the 16:00 close, US Eastern (UTC-4).
    let ts = q["ts"].as_i64().unwrap();
    let open = tickwire_feeds::replay::parse_time("2025-06-16T13:30:00Z").unwrap();
    let close = tickwire_feeds::replay::parse_time("2025-06-16T20:00:00Z").unwrap();
    assert!((open..close).contains(&ts), "{q}");
    let bid: f64 = q["bid"].as_str().unwrap().parse().unwrap();
    let ask: f64 = q["ask"].as_str().unwrap().parse().unwrap();
    assert!(bid < ask, "{q}");
    assert_eq!(
        q["bid"].as_str().unwrap().split('.').nth(1).map(str::len),
        Some(4),
        "{q}"
    );
    // Trading goes on: more updates keep coming at 1x.
    let more = c.collect_for(Duration::from_secs(2)).await;
    assert!(more.len() >= 3, "only {} messages in 2 s", more.len());
}
