//! Batching: a client of `tickwire.json.batch` gets several pending updates in one frame (a
//! JSON array), within the configured window, with nothing lost or reordered; a client of the
//! default protocol never sees an array.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{subscribe, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

async fn connect(server: &Server, protocol: Option<&str>) -> (common::Client, Option<String>) {
    let mut req = server.url().into_client_request().unwrap();
    if let Some(p) = protocol {
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", p.parse().unwrap());
    }
    let (ws, resp) = tokio_tungstenite::connect_async(req)
        .await
        .expect("connect");
    let chosen = resp
        .headers()
        .get("Sec-WebSocket-Protocol")
        .map(|v| v.to_str().unwrap().to_string());
    (common::Client { ws }, chosen)
}

/// Frames received in `window`, each as the list of messages it carried.
async fn frames(c: &mut common::Client, window: Duration) -> Vec<Vec<Value>> {
    let end = tokio::time::Instant::now() + window;
    let mut out = Vec::new();
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, c.ws.next()).await {
        if let Message::Text(t) = m {
            match serde_json::from_str::<Value>(&t).unwrap() {
                Value::Array(items) => out.push(items),
                v => out.push(vec![v]),
            }
        }
    }
    out
}

#[tokio::test]
async fn batches_within_the_window_without_losing_or_reordering() {
    let server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "5",
        "--rate",
        "5000",
        "--batch-window-us",
        "5000",
    ]);
    let syms = ["SYM0000", "SYM0001", "SYM0002", "SYM0003", "SYM0004"];
    let (mut batched, chosen) = connect(&server, Some("tickwire.json.batch")).await;
    assert_eq!(chosen.as_deref(), Some("tickwire.json.batch"));
    let (mut single, chosen) = connect(&server, Some("tickwire.json")).await;
    assert_eq!(chosen.as_deref(), Some("tickwire.json"));
    let sub = subscribe(1, &syms, &["quote", "trade", "book"]).to_string();
    batched.ws.send(Message::text(sub.clone())).await.unwrap();
    single.ws.send(Message::text(sub)).await.unwrap();
    let window = Duration::from_secs(2);
    let (b, s) = tokio::join!(frames(&mut batched, window), frames(&mut single, window));

    assert!(
        s.iter().all(|f| f.len() == 1),
        "default protocol never batches"
    );
    let messages: Vec<&Value> = b.iter().flatten().collect();
    assert!(messages.len() > 5_000, "only {} messages", messages.len());
    // With a 5 ms window, at most ~1 frame per 5 ms (plus the reply frames at the start).
    assert!(
        b.len() < 2 * 200 + 20,
        "{} frames for {} messages: not batched",
        b.len(),
        messages.len()
    );
    assert!(
        b.iter().any(|f| f.len() > 10),
        "some frames carry many updates"
    );
    // Nothing lost or reordered: per-symbol seq increases, trades have no gap.
    let mut last_seq: HashMap<String, u64> = HashMap::new();
    let mut last_trade: HashMap<String, u64> = HashMap::new();
    for m in messages.iter().filter(|m| m["seq"].is_u64()) {
        let sym = m["symbol"].as_str().unwrap().to_string();
        let seq = m["seq"].as_u64().unwrap();
        if let Some(p) = last_seq.insert(sym.clone(), seq) {
            assert!(seq > p, "{sym}: seq {seq} after {p}");
        }
        if m["type"] == "trade" {
            let cs = m["chan_seq"].as_u64().unwrap();
            if let Some(p) = last_trade.insert(sym.clone(), cs) {
                assert_eq!(cs, p + 1, "{sym}: trade gap");
            }
        }
    }
}
