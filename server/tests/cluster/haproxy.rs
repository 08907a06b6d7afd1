//! Acceptance 2: HAProxy in front of two gateways. Kill (or drain) one gateway: its clients
//! reconnect through HAProxy to the other and resume with a snapshot; the other gateway's
//! clients see no gap.
//!
//! Two kinds of clients: the real client library (`server/web/tickwire.js`, under Node with
//! the `ws` package from `server/tests/cluster/js/`), and Rust clients doing what it does on
//! a lost connection: reconnect (to the same URL, here HAProxy's) after a short backoff,
//! resubscribe, and take the first quote and book as the new state (a snapshot), treating
//! the reconnect as a gap.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::support::*;

/// What one reconnecting client saw: per connection, the messages.
type Log = Arc<Mutex<Vec<Vec<Value>>>>;

async fn reconnecting_client(url: String, log: Log, stop: Arc<std::sync::atomic::AtomicBool>) {
    use std::sync::atomic::Ordering;
    while !stop.load(Ordering::Relaxed) {
        let Some(mut c) = Client::try_connect(&url).await else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        c.subscribe(&["SYM0001", "SYM0002"], &["quote", "trade", "book"])
            .await;
        log.lock().unwrap().push(Vec::new());
        loop {
            if stop.load(Ordering::Relaxed) {
                return;
            }
            use futures_util::StreamExt;
            use tokio_tungstenite::tungstenite::Message;
            match tokio::time::timeout(Duration::from_millis(200), c.ws.next()).await {
                // Quiet for a moment: still connected.
                Err(_) => continue,
                Ok(Some(Ok(Message::Text(t)))) => log
                    .lock()
                    .unwrap()
                    .last_mut()
                    .unwrap()
                    .push(serde_json::from_str(&t).expect("server JSON")),
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => break,
                Ok(Some(Ok(_))) => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The library under Node, printing its events; see `js/client.mjs`.
struct JsClient {
    child: Child,
    events: Arc<Mutex<Vec<Value>>>,
}

impl JsClient {
    fn start(url: &str) -> JsClient {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cluster/js");
        assert!(
            dir.join("node_modules/ws").is_dir(),
            "the ws package is missing: npm ci --prefix {} (.ci/test.sh does)",
            dir.display()
        );
        let mut child = Command::new("node")
            .arg(dir.join("client.mjs"))
            .args([url, "SYM0001,SYM0002"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node (install nodejs) runs the client library");
        let events = Arc::new(Mutex::new(Vec::new()));
        let (stdout, sink) = (child.stdout.take().unwrap(), events.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    sink.lock().unwrap().push(v);
                }
            }
        });
        JsClient { child, events }
    }

    fn stop(mut self) -> Vec<Value> {
        drop(self.child.stdin.take());
        let _ = self.child.wait();
        std::thread::sleep(Duration::from_millis(50));
        let events = self.events.lock().unwrap().clone();
        events
    }
}

/// Checks one library client; returns whether it moved to the other gateway.
fn check_js_client(events: &[Value], who: &str) -> bool {
    let opened: Vec<usize> = events
        .iter()
        .enumerate()
        .filter(|(_, e)| e["ev"] == "state" && e["state"] == "open")
        .map(|(i, _)| i)
        .collect();
    let msgs: Vec<Value> = events
        .iter()
        .filter(|e| e["ev"] == "message")
        .cloned()
        .collect();
    // seq strictly increasing on each connection; across the move the new gateway may start
    // a few messages behind the old one (see the Rust clients), never far.
    let second = opened.get(1).copied().unwrap_or(events.len());
    for part in [&events[..second], &events[second..]] {
        let mut last: std::collections::HashMap<String, u64> = Default::default();
        for m in part
            .iter()
            .filter(|e| e["ev"] == "message" && e["type"] != "status")
        {
            // Per stream: the subscription snapshot may send a quote newer than its book.
            let (sym, seq) = (
                format!(
                    "{} {}",
                    m["symbol"].as_str().unwrap(),
                    m["type"].as_str().unwrap()
                ),
                m["seq"].as_u64().unwrap(),
            );
            if let Some(prev) = last.insert(sym.clone(), seq) {
                assert!(seq > prev, "{who}: {sym} seq {prev} → {seq}");
            }
        }
    }
    let gaps: Vec<&Value> = events.iter().filter(|e| e["ev"] == "gap").collect();
    assert!(
        !gaps.iter().any(|g| g["reason"] == "seq_reset"),
        "{who}: {gaps:?}"
    );
    match opened.len() {
        1 => {
            assert!(
                gaps.is_empty(),
                "{who} stayed on its gateway but saw gaps: {gaps:?}"
            );
            assert!(msgs.len() > 100, "{who}: {} messages", msgs.len());
            false
        }
        2 => {
            let reconnect_gaps = gaps.iter().filter(|g| g["reason"] == "reconnect").count();
            let after_seq = |sym: &str| {
                events[second..]
                    .iter()
                    .filter(|m| m["ev"] == "message" && m["symbol"] == sym)
                    .filter_map(|m| m["seq"].as_u64())
                    .max()
            };
            let before_seq = |sym: &str| {
                events[..second]
                    .iter()
                    .filter(|m| m["ev"] == "message" && m["symbol"] == sym)
                    .filter_map(|m| m["seq"].as_u64())
                    .max()
            };
            for sym in ["SYM0001", "SYM0002"] {
                assert!(
                    after_seq(sym) > before_seq(sym),
                    "{who}: {sym} did not move on"
                );
            }
            assert_eq!(
                reconnect_gaps, 6,
                "{who}: one reconnect gap per stream: {gaps:?}"
            );
            let after: Vec<&Value> = events[opened[1]..]
                .iter()
                .filter(|e| e["ev"] == "message")
                .collect();
            for sym in ["SYM0001", "SYM0002"] {
                for ch in ["quote", "book"] {
                    let at = after
                        .iter()
                        .position(|m| m["symbol"] == sym && m["type"] == ch);
                    assert!(
                        at.is_some_and(|i| i < 10),
                        "{who}: no {sym} {ch} snapshot after reconnecting"
                    );
                }
            }
            true
        }
        n => panic!("{who}: opened {n} times: {events:?}"),
    }
}

#[test]
fn killing_a_gateway_moves_its_clients_to_the_other_with_a_snapshot() {
    move_clients_off_g1(Stop::Kill);
}

/// The planned way: SIGTERM. `/readyz` turns 503 (HAProxy sends no one new), every session
/// is closed 1001 after a final flush, and the clients reconnect to the other gateway.
#[test]
fn draining_a_gateway_moves_its_clients_to_the_other_with_a_snapshot() {
    move_clients_off_g1(Stop::Drain);
}

enum Stop {
    Kill,
    Drain,
}

fn move_clients_off_g1(stop_g1: Stop) {
    let nats = Nats::start(false);
    let _engine = Tickwire::engine(&nats, &["--symbols", "4", "--rate", "800"]);
    let mut g1 = Tickwire::gateway(&nats, &[]);
    let g2 = Tickwire::gateway(&nats, &[]);
    let lb = Haproxy::start([g1.port, g2.port]);
    wait_until(Duration::from_secs(10), "haproxy to route", || {
        http_status(lb.port, "/readyz") == Some(200)
    });
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let logs: Vec<Log> = (0..6).map(|_| Log::default()).collect();
        let js: Vec<JsClient> = (0..2).map(|_| JsClient::start(&lb.ws_url())).collect();
        let tasks: Vec<_> = logs
            .iter()
            .map(|l| tokio::spawn(reconnecting_client(lb.ws_url(), l.clone(), stop.clone())))
            .collect();
        wait_until(Duration::from_secs(10), "clients on both gateways", || {
            g1.stats()["sessions_active"] == 4 && g2.stats()["sessions_active"] == 4
        });
        tokio::time::sleep(Duration::from_millis(800)).await;
        match stop_g1 {
            Stop::Kill => g1.kill(),
            Stop::Drain => {
                let pid = g1.child.id().to_string();
                let ok = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
                assert!(ok.success());
            }
        }
        let landed = (0..400).any(|_| {
            std::thread::sleep(Duration::from_millis(25));
            g2.stats()["sessions_active"] == 8
        });
        if !landed {
            let states: Vec<Vec<Value>> = js
                .iter()
                .map(|c| {
                    let events = c.events.lock().unwrap();
                    events
                        .iter()
                        .filter(|e| e["ev"] != "message")
                        .cloned()
                        .collect()
                })
                .collect();
            panic!(
                "g1's clients did not land on g2 (g2 has {}): library events {states:?}",
                g2.stats()["sessions_active"]
            );
        }
        if matches!(stop_g1, Stop::Drain) {
            // A drained gateway exits 0 once its sessions took their 1001.
            let status = g1.child.wait().unwrap();
            assert!(status.success(), "drained gateway exited {status:?}");
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in tasks {
            t.await.unwrap();
        }
        let (mut moved, mut stayed) = (0, 0);
        for (i, log) in logs.iter().enumerate() {
            let conns = log.lock().unwrap().clone();
            match conns.len() {
                1 => {
                    // On g2 all along: no gap at all, trades included.
                    stayed += 1;
                    let n =
                        assert_no_gap(&conns[0], &format!("client {i} on the surviving gateway"));
                    assert!(n > 100, "client {i}: only {n} messages");
                }
                2 => {
                    moved += 1;
                    let (before, after) = (&conns[0], &conns[1]);
                    assert_no_gap(before, &format!("client {i} before the kill"));
                    assert_no_gap(after, &format!("client {i} after reconnecting"));
                    // The new connection starts with the current state of every stream.
                    for sym in ["SYM0001", "SYM0002"] {
                        for ch in ["quote", "book"] {
                            let first = after
                                .iter()
                                .position(|m| m["symbol"] == sym && kind(m) == ch)
                                .unwrap_or_else(|| {
                                    panic!("client {i}: no {sym} {ch} after reconnecting")
                                });
                            assert!(
                                first < 8,
                                "client {i}: {sym} {ch} snapshot came late ({first})"
                            );
                        }
                        // Gateways are at slightly different positions at any instant: the
                        // new one may start a few messages behind (the client then sees some
                        // again, with seq it already had), but it moves on past the old one.
                        let max_of = |msgs: &[Value]| {
                            msgs.iter()
                                .filter(|m| m["symbol"] == sym)
                                .filter_map(|m| m["seq"].as_u64())
                                .max()
                                .unwrap()
                        };
                        assert!(
                            max_of(after) > max_of(before),
                            "client {i}: {sym} did not move on after reconnecting"
                        );
                    }
                }
                n => panic!("client {i}: {n} connections"),
            }
        }
        for (i, c) in js.into_iter().enumerate() {
            if check_js_client(&c.stop(), &format!("tickwire.js client {i}")) {
                moved += 1;
            } else {
                stayed += 1;
            }
        }
        assert_eq!((moved, stayed), (4, 4));
    });
}
