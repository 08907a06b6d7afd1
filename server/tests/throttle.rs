//! Acceptance 3 of the core issue: a throttled subscription gets at most one quote per
//! interval per symbol, and what it gets is the latest state, never a stale one.

mod common;

use std::time::Duration;

use common::{Client, Server};
use serde_json::{json, Value};

fn quotes(msgs: &[Value]) -> Vec<&Value> {
    msgs.iter().filter(|m| m["type"] == "quote").collect()
}

#[tokio::test]
async fn throttle_limits_rate_and_delivers_the_latest_state() {
    // Two symbols at 400 quotes/s in total: SYM0000 changes ~200 times a second.
    let server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "2",
        "--rate",
        "400",
        "--enable-fault-injection",
        "--feed-backoff-ms",
        "2000",
    ]);
    let mut throttled = Client::connect(&server).await;
    let mut full = Client::connect(&server).await;
    throttled
        .send(json!({"op":"subscribe","id":1,"symbols":["SYM0000"],"channels":["quote"],"throttle_ms":100}))
        .await;
    full.send(json!({"op":"subscribe","id":1,"symbols":["SYM0000"],"channels":["quote"]}))
        .await;
    let window = Duration::from_secs(3);
    let (a, b) = tokio::join!(throttled.collect_for(window), full.collect_for(window));
    let (qa, qb) = (quotes(&a), quotes(&b));
    assert!(
        qb.len() > 300,
        "unthrottled client saw only {} quotes",
        qb.len()
    );
    // At most one per 100 ms, plus the snapshot sent at subscribe time.
    assert!(
        qa.len() <= 31 + 1,
        "throttled client got {} quotes in 3 s",
        qa.len()
    );
    assert!(
        qa.len() >= 20,
        "throttle starved the client: {} quotes",
        qa.len()
    );
    // Each throttled quote skips ahead: it is the newest value, not a queue of old ones.
    let seqs: Vec<u64> = qa.iter().map(|q| q["chan_seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] > w[0]));
    let mean_step = (seqs[seqs.len() - 1] - seqs[0]) as f64 / (seqs.len() - 1) as f64;
    assert!(
        mean_step > 5.0,
        "throttled quotes are not conflated: step {mean_step}"
    );

    // Freeze the market: the feed fails and stays down for 2 s. The last quote the
    // throttled client receives must be the book's final top, as the full client saw it.
    server.post("/admin/fault/feed/synthetic");
    let window = Duration::from_millis(1200);
    let (a2, b2) = tokio::join!(throttled.collect_for(window), full.collect_for(window));
    let before = |first: Vec<Value>, second: Vec<Value>, state: &str| -> Vec<Value> {
        let mut all = first;
        all.extend(second);
        let cut = all
            .iter()
            .position(|m| m["type"] == "status" && m["state"] == state)
            .unwrap_or_else(|| panic!("no {state} status"));
        all.truncate(cut);
        all
    };
    let full_before_outage = before(b, b2, "stale");
    let last_full = full_before_outage
        .iter()
        .rev()
        .find(|m| m["type"] == "quote")
        .expect("a quote before the outage");
    let mut throttled_all = a;
    throttled_all.extend(a2);
    assert!(
        !throttled_all
            .iter()
            .any(|m| m["type"] == "status" && m["state"] == "live"),
        "the feed came back too early for this check"
    );
    let last_throttled = throttled_all
        .iter()
        .rev()
        .find(|m| m["type"] == "quote")
        .expect("throttled quote");
    assert_eq!(
        last_throttled, last_full,
        "throttled client was left with a stale quote"
    );
}
