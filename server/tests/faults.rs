//! Acceptance 5 of the core issue: injected feed and book faults make subscribers see
//! `stale` then `live`, books resynchronize, and the server keeps running.

mod common;

use std::time::Duration;

use common::{subscribe, Client, Server};
use serde_json::Value;

fn is_status(m: &Value, state: &str) -> bool {
    m["type"] == "status" && m["state"] == state
}

#[tokio::test]
async fn feed_fault_goes_stale_then_live_and_books_resync() {
    let mut server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "5",
        "--rate",
        "1000",
        "--enable-fault-injection",
        "--feed-backoff-ms",
        "300",
    ]);
    let mut c = Client::connect(&server).await;
    c.send(subscribe(
        1,
        &["SYM0001", "SYM0002"],
        &["quote", "book", "trade"],
    ))
    .await;
    c.collect_for(Duration::from_millis(500)).await;

    for round in 0..2 {
        server.post("/admin/fault/feed/synthetic");
        let msgs = c.collect_for(Duration::from_secs(2)).await;
        for sym in ["SYM0001", "SYM0002"] {
            let of_sym = |m: &&Value| m["symbol"] == sym;
            let stale = msgs
                .iter()
                .position(|m| is_status(m, "stale") && of_sym(&m))
                .unwrap_or_else(|| panic!("round {round}: no stale status for {sym}"));
            assert!(msgs[stale]["reason"]
                .as_str()
                .unwrap()
                .contains("feed down"));
            let live = stale
                + msgs[stale..]
                    .iter()
                    .position(|m| is_status(m, "live") && of_sym(&m))
                    .unwrap_or_else(|| panic!("round {round}: {sym} never live again"));
            // Nothing but statuses between stale and live: no data from a dead feed.
            assert!(msgs[stale..live]
                .iter()
                .filter(of_sym)
                .all(|m| m["type"] == "status"));
            // After going live the book is re-sent, and quotes follow it.
            let after: Vec<&Value> = msgs[live..].iter().filter(of_sym).collect();
            let book = after
                .iter()
                .position(|m| m["type"] == "book")
                .unwrap_or_else(|| panic!("round {round}: no book for {sym} after live"));
            // The snapshot republishes the top too (quote first, then the book, same message):
            // both must describe the same book.
            let book_seq = after[book]["seq"].as_u64().unwrap();
            let quote = after
                .iter()
                .find(|m| m["type"] == "quote" && m["seq"].as_u64() == Some(book_seq - 1))
                .unwrap_or_else(|| {
                    panic!("round {round}: no quote published with the snapshot of {sym}")
                });
            assert_eq!(quote["bid"], after[book]["bids"][0][0]);
            assert_eq!(quote["ask"], after[book]["asks"][0][0]);
            let bid: f64 = quote["bid"].as_str().unwrap().parse().unwrap();
            let ask: f64 = quote["ask"].as_str().unwrap().parse().unwrap();
            assert!(bid < ask);
        }
    }
    assert!(server.is_running());
    assert!(server.get("/healthz").contains("ok"));
}

#[tokio::test]
async fn book_fault_restarts_only_that_book() {
    let mut server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "5",
        "--rate",
        "1000",
        "--enable-fault-injection",
    ]);
    let mut c = Client::connect(&server).await;
    c.send(subscribe(1, &["SYM0001", "SYM0002"], &["quote", "book"]))
        .await;
    c.collect_for(Duration::from_millis(300)).await;
    server.post("/admin/fault/book/SYM0001");
    let msgs = c.collect_for(Duration::from_secs(2)).await;
    let stale = msgs
        .iter()
        .position(|m| is_status(m, "stale"))
        .expect("stale status after the book fault");
    assert_eq!(msgs[stale]["symbol"], "SYM0001");
    assert_eq!(msgs[stale]["reason"], "book restarted");
    let live = msgs[stale..]
        .iter()
        .position(|m| is_status(m, "live"))
        .expect("live again after the snapshot")
        + stale;
    assert!(msgs[live..]
        .iter()
        .any(|m| m["type"] == "book" && m["symbol"] == "SYM0001"));
    assert!(
        !msgs
            .iter()
            .any(|m| m["type"] == "status" && m["symbol"] == "SYM0002"),
        "other books are not disturbed"
    );
    let stats = server.stats();
    assert_eq!(stats["book_restarts"], 1);
    assert!(server.is_running());
}
