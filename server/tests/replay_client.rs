//! Per-client replays over the WebSocket (issue 4, acceptance 4 and 5) and the HTTP replay,
//! through the real binary with real clients: two clients run different replays beside
//! their live subscriptions; pause, seek and speed are acknowledged (and in effect) within
//! 50 ms; each replay ends with `replay_end`; every bad request gets a clear error and the
//! session goes on; a full-speed replay follows a slow client instead of being closed.

mod common;

use std::time::{Duration, Instant};

use common::{msg_type, recording_of, temp_dir, Client, Server};
use serde_json::{json, Value};

const KRAKEN: &[&str] = &["XMR/USD", "WAVES/EUR", "ETH/CHF", "SC/EUR"];

/// A datasets directory: kraken, okx, coinbase, a truncated coinbase and a junk file.
fn datasets() -> std::path::PathBuf {
    let dir = temp_dir("replay-datasets");
    recording_of(
        "kraken-2021-04-17-book.raw",
        "kraken",
        KRAKEN,
        &dir.join("kraken.twrec"),
    );
    recording_of(
        "okx-2022-05-13-books-tickers-trades.raw",
        "okx",
        &["BTC-USD-220527", "UNI-USD-SWAP", "BTC-USDT"],
        &dir.join("okx.twrec"),
    );
    let cb = recording_of(
        "coinbase-2021-04-17-level2-ticker-matches.raw",
        "coinbase",
        &[],
        &dir.join("coinbase.twrec"),
    );
    // A recorder killed mid-block: the first 60% of the file, no index or trailer.
    let bytes = std::fs::read(&cb).unwrap();
    std::fs::write(dir.join("truncated.twrec"), &bytes[..bytes.len() * 6 / 10]).unwrap();
    std::fs::write(dir.join("junk.twrec"), b"this is not a recording at all").unwrap();
    dir
}

fn start(dir: &std::path::Path, extra: &[&str]) -> Server {
    let mut args = vec![
        "--feed",
        "synthetic",
        "--symbols",
        "4",
        "--rate",
        "200",
        "--datasets-dir",
        dir.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    Server::start_env(
        &args,
        &[
            ("TICKWIRE_REPLAY__MAX_PER_USER", "3"),
            ("TICKWIRE_REPLAY__MAX_TOTAL", "3"),
        ],
    )
}

/// Receives until `pred`; returns the match and the replay messages seen on the way.
async fn until(
    c: &mut Client,
    within: Duration,
    pred: impl Fn(&Value) -> bool,
) -> (Value, Vec<Value>) {
    let end = tokio::time::Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        let m = c
            .recv(left)
            .await
            .unwrap_or_else(|| panic!("no match within {within:?}; saw {:?}", seen.last()));
        if pred(&m) {
            return (m, seen);
        }
        seen.push(m);
    }
}

/// The body of a chunked HTTP/1.1 response.
fn ndjson(server: &Server, path: &str) -> Vec<Value> {
    let raw = server.raw_get(path);
    let (head, mut rest) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let mut body = String::new();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        loop {
            let (size, after) = rest.split_once("\r\n").unwrap();
            let n = usize::from_str_radix(size.trim(), 16).unwrap();
            if n == 0 {
                break;
            }
            body.push_str(&after[..n]);
            rest = &after[n + 2..];
        }
    } else {
        body.push_str(rest);
    }
    body.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn is_replay_data(m: &Value, replay: &str) -> bool {
    m["replay"] == replay && matches!(msg_type(m), "quote" | "book" | "trade" | "status")
}

/// What `tickwire inspect` prints for a recording, without its summary line.
fn inspect_lines(recording: &std::path::Path, adapter: &str) -> Vec<Value> {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .args(["inspect", "--adapter", adapter])
        .arg(recording)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["type"] != "summary")
        .collect()
}

/// Sends a control and returns how long its acknowledgement took.
async fn control(
    c: &mut Client,
    op: &str,
    replay: &str,
    extra: Value,
    ack: &str,
) -> (Duration, Value, Vec<Value>) {
    let mut req = json!({"op": op, "id": op, "replay": replay});
    for (k, v) in extra.as_object().unwrap() {
        req[k] = v.clone();
    }
    let sent = Instant::now();
    c.send(req).await;
    let (m, seen) = until(c, Duration::from_secs(5), |m| {
        msg_type(m) == ack || msg_type(m) == "error"
    })
    .await;
    assert_eq!(msg_type(&m), ack, "{op}: {m}");
    assert_eq!(m["id"], op, "{m}");
    (sent.elapsed(), m, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_clients_replay_beside_live_data_with_controls_in_effect_within_50_ms() {
    let dir = datasets();
    let server = start(&dir, &[]);
    let mut a = Client::connect(&server).await;
    let mut b = Client::connect(&server).await;
    for (c, sym) in [(&mut a, "SYM0000"), (&mut b, "SYM0001")] {
        c.send(json!({"op":"subscribe","id":"live","symbols":[sym],"channels":["quote"]}))
            .await;
    }
    a.send(json!({"op":"replay","id":"ra","dataset":"kraken","speed":1,"symbols":["XMR/USD","ETH/CHF"],"channels":["quote","book","trade"]})).await;
    b.send(
        json!({"op":"replay","id":"rb","dataset":"okx","speed":10,"channels":["quote","trade"]}),
    )
    .await;
    let (sa, _) = until(&mut a, Duration::from_secs(5), |m| {
        msg_type(m) == "replay_started"
    })
    .await;
    let (sb, _) = until(&mut b, Duration::from_secs(5), |m| {
        msg_type(m) == "replay_started"
    })
    .await;
    let (ra, rb) = (
        sa["replay"].as_str().unwrap().to_string(),
        sb["replay"].as_str().unwrap().to_string(),
    );
    assert_eq!(sa["id"], "ra");
    assert_eq!(sa["dataset"], "kraken");
    // Replay data and live data side by side on each connection.
    let (_, seen) = until(&mut a, Duration::from_secs(5), |m| {
        is_replay_data(m, &ra) && msg_type(m) == "book" && m["symbol"] == "XMR/USD"
    })
    .await;
    let (live, _) = until(&mut a, Duration::from_secs(5), |m| {
        m["symbol"] == "SYM0000" && m["replay"].is_null()
    })
    .await;
    assert_eq!(msg_type(&live), "quote");
    assert!(seen
        .iter()
        .all(|m| m["replay"].is_null() || m["replay"] == ra.as_str()));
    until(&mut b, Duration::from_secs(5), |m| is_replay_data(m, &rb)).await;

    let mut timings = Vec::new();
    a.collect_for(Duration::from_millis(1500)).await;
    // Pause: acknowledged fast; after the ack no more replay data, while live data goes on.
    let (t, ack, _) = control(&mut a, "replay_pause", &ra, json!({}), "replay_paused").await;
    timings.push(("pause", t));
    let paused_at = ack["at"].as_i64().unwrap();
    let during = a.collect_for(Duration::from_millis(400)).await;
    assert!(
        !during.iter().any(|m| is_replay_data(m, &ra)),
        "replay data after replay_paused"
    );
    assert!(
        during.iter().any(|m| m["symbol"] == "SYM0000"),
        "live data stopped during the pause"
    );
    let (t, _, _) = control(&mut a, "replay_resume", &ra, json!({}), "replay_resumed").await;
    timings.push(("resume", t));
    // Seek back to the start: books come as snapshots of that moment.
    let start = sa["from"].as_i64().unwrap();
    // Back to a moment when XMR/USD already had its book (it arrived over a second before
    // the pause).
    let target = paused_at - 300_000_000;
    assert!(target > start, "{start} {paused_at}");
    let (t, _, _) = control(
        &mut a,
        "replay_seek",
        &ra,
        json!({"to": target}),
        "replay_seeked",
    )
    .await;
    timings.push(("seek", t));
    let (book, _) = until(&mut a, Duration::from_secs(5), |m| {
        is_replay_data(m, &ra) && msg_type(m) == "book" && m["symbol"] == "XMR/USD"
    })
    .await;
    // The state at the target (or a moment later, if the next update already replaced it in
    // the conflating slot): not before it, and well before where the replay was.
    let ts = book["ts"].as_i64().unwrap();
    assert!(
        (target..target + 250_000_000).contains(&ts),
        "first book after the seek at {target}: {book}"
    );
    // Speed: faster replay, then let it run out.
    let (t, ack, _) = control(
        &mut a,
        "replay_speed",
        &ra,
        json!({"speed": "max"}),
        "replay_speed_set",
    )
    .await;
    assert_eq!(ack["speed"], "max");
    timings.push(("speed", t));
    for (name, t) in &timings {
        eprintln!("replay_{name} acknowledged after {t:?}");
        assert!(*t <= Duration::from_millis(50), "{name} took {t:?}");
    }
    let (end_a, _) = until(&mut a, Duration::from_secs(30), |m| {
        msg_type(m) == "replay_end"
    })
    .await;
    let (end_b, _) = until(&mut b, Duration::from_secs(30), |m| {
        msg_type(m) == "replay_end"
    })
    .await;
    assert_eq!(end_a["replay"], ra.as_str());
    assert_eq!(end_b["replay"], rb.as_str());
    // Live data still flows after the replays, and the replay slots are free again.
    until(&mut a, Duration::from_secs(5), |m| m["symbol"] == "SYM0000").await;
    let m = server.get("/metrics");
    assert!(
        m.contains("tickwire_replay_sessions 0"),
        "{}",
        m.lines()
            .filter(|l| l.contains("replay"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    // A control for a replay that ended is refused clearly.
    a.send(json!({"op":"replay_pause","id":9,"replay":ra}))
        .await;
    let (e, _) = until(&mut a, Duration::from_secs(5), |m| msg_type(m) == "error").await;
    assert_eq!(e["code"], "unknown_replay", "{e}");
}

async fn error_for(c: &mut Client, req: Value) -> Value {
    c.send(req).await;
    let (m, _) = until(c, Duration::from_secs(5), |m| {
        matches!(msg_type(m), "error" | "replay_started")
    })
    .await;
    assert_eq!(msg_type(&m), "error", "expected an error: {m}");
    m
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_replays_get_clear_errors_and_nothing_else_breaks() {
    let dir = datasets();
    let server = start(&dir, &[]);
    let mut c = Client::connect(&server).await;
    c.send(json!({"op":"subscribe","id":0,"symbols":["SYM0002"],"channels":["quote"]}))
        .await;
    let cases = [
        (
            json!({"op":"replay","id":1,"dataset":"nope"}),
            "unknown_dataset",
        ),
        (
            json!({"op":"replay","id":2,"dataset":"junk"}),
            "dataset_unavailable",
        ),
        (
            json!({"op":"replay","id":3,"dataset":"kraken","from":"2021-04-17T16:49:20Z","to":"2021-04-17T16:49:00Z"}),
            "bad_range",
        ),
        (
            json!({"op":"replay","id":4,"dataset":"kraken","from":"2030-01-01T00:00:00Z"}),
            "bad_range",
        ),
        (
            json!({"op":"replay","id":5,"dataset":"kraken","to":1}),
            "bad_range",
        ),
        (
            json!({"op":"replay","id":6,"dataset":"kraken","speed":0}),
            "bad_request",
        ),
        (
            json!({"op":"replay","id":7,"dataset":"kraken","speed":"warp"}),
            "bad_request",
        ),
        (
            json!({"op":"replay","id":8,"dataset":"kraken","from":"last tuesday"}),
            "bad_request",
        ),
        (
            json!({"op":"replay","id":9,"dataset":"kraken","symbols":["XMR/USD","AAPL"]}),
            "unknown_symbol",
        ),
        (
            json!({"op":"replay","id":10,"dataset":"kraken","bogus":1}),
            "bad_request",
        ),
        (
            json!({"op":"replay_pause","id":11,"replay":"r99"}),
            "unknown_replay",
        ),
        (
            json!({"op":"replay_rewind","id":12,"replay":"r1"}),
            "unknown_op",
        ),
    ];
    for (req, code) in cases {
        let e = error_for(&mut c, req.clone()).await;
        assert_eq!(e["code"], code, "{req} -> {e}");
        assert!(!e["message"].as_str().unwrap().is_empty());
        assert_eq!(e["id"], req["id"]);
    }
    // A truncated recording replays what is readable, and says so.
    c.send(json!({"op":"replay","id":"t","dataset":"truncated","speed":"max"}))
        .await;
    let (s, _) = until(&mut c, Duration::from_secs(5), |m| {
        msg_type(m) == "replay_started" || msg_type(m) == "error"
    })
    .await;
    assert_eq!(msg_type(&s), "replay_started", "{s}");
    assert_eq!(s["damaged"], true);
    assert!(
        s["warning"]
            .as_str()
            .unwrap()
            .contains("not closed cleanly"),
        "{s}"
    );
    let r = s["replay"].as_str().unwrap().to_string();
    let (_, seen) = until(&mut c, Duration::from_secs(30), |m| {
        msg_type(m) == "replay_end" && m["replay"] == r.as_str()
    })
    .await;
    // Quotes and books may be conflated on the way (the replay runs at full speed), trades
    // never: every trade readable from the damaged file arrives, as `inspect` reads them.
    let trades = |m: &&Value| msg_type(m) == "trade";
    let got = seen
        .iter()
        .filter(|m| is_replay_data(m, &r))
        .filter(trades)
        .count();
    let want = inspect_lines(&dir.join("truncated.twrec"), "coinbase")
        .iter()
        .filter(trades)
        .count();
    assert!(want > 10, "the readable part holds only {want} trades");
    assert_eq!(got, want, "trades replayed from the truncated dataset");
    for kind in ["quote", "book"] {
        assert!(
            seen.iter()
                .any(|m| is_replay_data(m, &r) && msg_type(m) == kind),
            "no {kind} from the truncated dataset"
        );
    }
    // Too many at once: three slots, the fourth is refused.
    let mut ids = Vec::new();
    for i in 0..3 {
        c.send(json!({"op":"replay","id":i,"dataset":"kraken","speed":0.01,"symbols":["XMR/USD"]}))
            .await;
        let (m, _) = until(&mut c, Duration::from_secs(5), |m| {
            matches!(msg_type(m), "replay_started" | "error")
        })
        .await;
        assert_eq!(msg_type(&m), "replay_started", "{m}");
        ids.push(m["replay"].as_str().unwrap().to_string());
    }
    let mut other = Client::connect(&server).await;
    let e = error_for(&mut other, json!({"op":"replay","id":"x","dataset":"okx"})).await;
    assert_eq!(e["code"], "limit_exceeded", "{e}");
    let e = error_for(
        &mut c,
        json!({"op":"replay_seek","id":"s","replay":ids[0],"to":"2030-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(e["code"], "bad_range", "{e}");
    // Stopping one frees a slot.
    c.send(json!({"op":"replay_stop","id":"stop","replay":ids[0]}))
        .await;
    until(&mut c, Duration::from_secs(5), |m| {
        msg_type(m) == "replay_stopped"
    })
    .await;
    other
        .send(json!({"op":"replay","id":"x","dataset":"okx","speed":"max"}))
        .await;
    let (m, _) = until(&mut other, Duration::from_secs(5), |m| {
        matches!(msg_type(m), "replay_started" | "error")
    })
    .await;
    assert_eq!(msg_type(&m), "replay_started", "{m}");
    // The session is fine: pings answer, live data flows.
    c.send(json!({"op":"ping","id":"p"})).await;
    until(&mut c, Duration::from_secs(5), |m| msg_type(m) == "pong").await;
    until(&mut c, Duration::from_secs(5), |m| {
        m["symbol"] == "SYM0002" && m["replay"].is_null()
    })
    .await;
    // Closing the session ends its replays and frees their slots.
    drop(c);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let m = server.get("/metrics");
        if m.contains("tickwire_replay_sessions 0") || m.contains("tickwire_replay_sessions 1\n") {
            break;
        }
        assert!(
            Instant::now() < end,
            "replays of a closed session still running"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_speed_replay_follows_a_slow_client_instead_of_closing_it() {
    let dir = datasets();
    let server = start(
        &dir,
        &[
            "--slow-consumer-lag-ms",
            "3000",
            "--max-queued-bytes",
            "2000000",
        ],
    );
    let mut c = Client::connect(&server).await;
    c.send(json!({"op":"replay","id":1,"dataset":"coinbase","speed":"max","channels":["trade","book"],"depth":50})).await;
    let mut trades = std::collections::HashMap::<String, u64>::new();
    let mut n = 0u64;
    let started = Instant::now();
    loop {
        let m = c
            .recv(Duration::from_secs(30))
            .await
            .expect("closed or silent: the replay did not follow the client's pace");
        n += 1;
        if n.is_multiple_of(20) {
            // A client slower than the replay could go.
            tokio::time::sleep(Duration::from_millis(30)).await;
        }
        if msg_type(&m) == "trade" {
            let s = m["symbol"].as_str().unwrap().to_string();
            let cs = m["chan_seq"].as_u64().unwrap();
            let prev = trades.insert(s.clone(), cs).unwrap_or(0);
            assert_eq!(cs, prev + 1, "{s}: trade lost");
        }
        if msg_type(&m) == "replay_end" {
            break;
        }
    }
    eprintln!(
        "full-speed replay to a slow client: {n} messages in {:?}, {} trade streams gapless",
        started.elapsed(),
        trades.len()
    );
    assert!(!trades.is_empty());
}

#[test]
fn http_lists_datasets_and_streams_the_same_events_as_inspect() {
    let dir = datasets();
    let server = start(&dir, &[]);
    let list: Value = serde_json::from_str(&server.get("/datasets")).unwrap();
    let by = |n: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == n)
            .cloned()
            .unwrap_or_else(|| panic!("{n} not in {list}"))
    };
    let k = by("kraken");
    assert_eq!(k["adapter"], "kraken");
    assert_eq!(k["symbols"].as_array().unwrap().len(), 4, "{k}");
    assert!(k["from"].as_i64().unwrap() < k["to"].as_i64().unwrap());
    assert!(k["from_time"].as_str().unwrap().starts_with("2021-04-17T"));
    assert_eq!(k["damaged"], false);
    assert_eq!(by("truncated")["damaged"], true);
    assert!(by("junk")["error"].as_str().is_some());
    assert_eq!(by("nasdaq-2025-06-16")["adapter"], "itch");

    let got = ndjson(&server, "/replay?dataset=kraken");
    let want = inspect_lines(&dir.join("kraken.twrec"), "kraken");
    assert!(want.len() > 1000);
    assert_eq!(got.len(), want.len());
    assert!(got == want, "GET /replay differs from inspect");
    let only = ndjson(&server, "/replay?dataset=kraken&symbols=XMR/USD");
    assert!(!only.is_empty() && only.iter().all(|v| v["symbol"] == "XMR/USD"));
    for (q, status, code) in [
        ("/replay?dataset=nope", "404", "unknown_dataset"),
        ("/replay", "400", "bad_request"),
        (
            "/replay?dataset=kraken&from=2021-04-17T16:49:20Z&to=2021-04-17T16:49:00Z",
            "400",
            "bad_range",
        ),
        ("/replay?dataset=kraken&speed=warp", "400", "bad_request"),
        (
            "/replay?dataset=kraken&symbols=AAPL",
            "400",
            "unknown_symbol",
        ),
        ("/replay?dataset=kraken&bogus=1", "400", "bad_request"),
        ("/replay?dataset=junk", "422", "dataset_unavailable"),
    ] {
        let r = server.raw_get(q);
        assert!(r.starts_with(&format!("HTTP/1.1 {status}")), "{q}: {r}");
        assert!(r.contains(&format!("\"error\":\"{code}\"")), "{q}: {r}");
    }
}
