//! Acceptance 1 and 2 of the core issue: snapshots then updates with increasing sequence
//! numbers, exact unsubscribe, idempotent subscribe, and many clients each receiving only
//! what they asked for.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use common::{msg_type, subscribe, Client, Server};
use serde_json::{json, Value};

const SYMS: [&str; 3] = ["SYM0001", "SYM0002", "SYM0003"];

/// Checks per-symbol `seq` strictly increases and per-(symbol, channel) trade `chan_seq`
/// has no gap.
fn check_sequences(msgs: &[Value]) {
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    let mut last_trade: HashMap<String, u64> = HashMap::new();
    for m in msgs {
        let t = msg_type(m);
        if !["quote", "trade", "book"].contains(&t) {
            continue;
        }
        let sym = m["symbol"].as_str().unwrap().to_string();
        let seq = m["seq"].as_u64().unwrap();
        if let Some(prev) = last_seq.insert(sym.clone(), seq) {
            assert!(seq > prev, "{sym}: seq {seq} after {prev}");
        }
        if t == "trade" {
            let cs = m["chan_seq"].as_u64().unwrap();
            if let Some(prev) = last_trade.insert(sym.clone(), cs) {
                assert_eq!(cs, prev + 1, "{sym}: trade gap {prev} -> {cs}");
            }
        }
    }
}

#[tokio::test]
async fn snapshots_then_updates_and_exact_unsubscribe() {
    let server = Server::start(&["--feed", "synthetic", "--symbols", "10", "--rate", "3000"]);
    let mut c = Client::connect(&server).await;
    c.send(subscribe(1, &SYMS, &["quote", "trade", "book"]))
        .await;
    let ack = c.recv(Duration::from_secs(5)).await.expect("ack");
    assert_eq!(ack["type"], "subscribed");
    assert_eq!(ack["id"], 1);
    assert_eq!(ack["symbols"], json!(SYMS));

    // First data per symbol: a quote and a book snapshot at the default depth of 10.
    let first = c.collect_for(Duration::from_millis(200)).await;
    for s in SYMS {
        let book = first
            .iter()
            .find(|m| m["type"] == "book" && m["symbol"] == s)
            .unwrap_or_else(|| panic!("book snapshot for {s}"));
        assert_eq!(book["snapshot"], true);
        assert_eq!(book["bids"].as_array().unwrap().len(), 10);
        assert_eq!(book["asks"].as_array().unwrap().len(), 10);
        let best_bid: f64 = book["bids"][0][0].as_str().unwrap().parse().unwrap();
        let best_ask: f64 = book["asks"][0][0].as_str().unwrap().parse().unwrap();
        assert!(best_bid < best_ask, "{s}: crossed snapshot");
        assert!(first
            .iter()
            .any(|m| m["type"] == "quote" && m["symbol"] == s));
    }

    let mut msgs = first;
    msgs.extend(c.collect_for(Duration::from_secs(2)).await);
    check_sequences(&msgs);
    for s in SYMS {
        for ch in ["quote", "trade", "book"] {
            assert!(
                msgs.iter().any(|m| m["type"] == ch && m["symbol"] == s),
                "no {ch} for {s}"
            );
        }
    }
    assert!(msgs
        .iter()
        .all(|m| m["symbol"].as_str().is_none_or(|s| SYMS.contains(&s))));

    // Subscribing again is idempotent: no duplicated stream (sequences stay increasing).
    c.send(subscribe(2, &SYMS[..1], &["quote", "trade", "book"]))
        .await;
    let again = c.collect_for(Duration::from_millis(800)).await;
    check_sequences(&again);

    // Unsubscribe exactly SYM0001 quotes and all of SYM0002.
    c.send(json!({"op":"unsubscribe","id":3,"symbols":["SYM0001"],"channels":["quote"]}))
        .await;
    c.send(json!({"op":"unsubscribe","id":4,"symbols":["SYM0002"],"channels":["quote","trade","book"]}))
        .await;
    let mut after = Vec::new();
    let mut acks = 0;
    while acks < 2 {
        let m = c.recv(Duration::from_secs(5)).await.expect("message");
        if m["type"] == "unsubscribed" {
            acks += 1;
        }
    }
    after.extend(c.collect_for(Duration::from_secs(2)).await);
    assert!(!after
        .iter()
        .any(|m| m["symbol"] == "SYM0001" && m["type"] == "quote"));
    assert!(!after.iter().any(|m| m["symbol"] == "SYM0002"));
    for (s, ch) in [
        ("SYM0001", "trade"),
        ("SYM0001", "book"),
        ("SYM0003", "quote"),
    ] {
        assert!(
            after.iter().any(|m| m["symbol"] == s && m["type"] == ch),
            "{s} {ch} should still flow"
        );
    }
}

#[tokio::test]
async fn two_hundred_clients_get_only_their_subscriptions() {
    let server = Server::start(&["--feed", "synthetic", "--symbols", "40", "--rate", "4000"]);
    let channel_sets: [&[&str]; 4] = [&["quote"], &["trade"], &["book"], &["quote", "trade"]];
    let mut tasks = Vec::new();
    for i in 0..200usize {
        let url = server.url();
        tasks.push(tokio::spawn(async move {
            let (ws, _) = tokio_tungstenite::connect_async(url)
                .await
                .expect("connect");
            let mut c = Client { ws };
            let symbols: Vec<String> = (0..3)
                .map(|k| format!("SYM{:04}", (i * 7 + k * 13) % 40))
                .collect();
            let sym_refs: Vec<&str> = symbols.iter().map(String::as_str).collect();
            let channels = channel_sets[i % 4];
            c.send(subscribe(i as i64, &sym_refs, channels)).await;
            let msgs = c.collect_for(Duration::from_secs(3)).await;
            (symbols, channels, msgs)
        }));
    }
    for t in tasks {
        let (symbols, channels, msgs) = t.await.expect("client task");
        let wanted: HashSet<&str> = symbols.iter().map(String::as_str).collect();
        let mut got_data = 0;
        for m in &msgs {
            match msg_type(m) {
                "subscribed" => continue,
                "status" => assert!(wanted.contains(m["symbol"].as_str().unwrap())),
                t @ ("quote" | "trade" | "book") => {
                    assert!(channels.contains(&t), "unsubscribed channel {t}");
                    assert!(
                        wanted.contains(m["symbol"].as_str().unwrap()),
                        "unsubscribed symbol"
                    );
                    got_data += 1;
                }
                other => panic!("unexpected message {other}: {m}"),
            }
        }
        assert!(
            got_data > 0,
            "a client got no data for {symbols:?} {channels:?}"
        );
        check_sequences(&msgs);
    }
}
