//! Acceptance 2: HAProxy in front of two gateways. Kill one gateway: its clients reconnect
//! through HAProxy to the other and resume with a snapshot; the other gateway's clients see
//! no gap.
//!
//! The clients here are Rust clients doing what `server/web/tickwire.js` does on a lost
//! connection: reconnect (to the same URL, here HAProxy's) after a short backoff,
//! resubscribe, and take the first quote and book as the new state (a snapshot), treating
//! the reconnect as a gap.

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
            match c.recv(Duration::from_millis(200)).await {
                Some(m) => log.lock().unwrap().last_mut().unwrap().push(m),
                None => {
                    // Timed out with the connection still open, or it ended: tell which.
                    use futures_util::FutureExt;
                    use futures_util::StreamExt;
                    if c.ws.next().now_or_never().is_some_and(|m| m.is_none()) {
                        break;
                    }
                    if log.lock().unwrap().last().is_some_and(|l| l.is_empty()) {
                        continue;
                    }
                    // A quiet 200 ms on a 400-updates/s feed means the connection is gone.
                    break;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[test]
fn killing_a_gateway_moves_its_clients_to_the_other_with_a_snapshot() {
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
        let tasks: Vec<_> = logs
            .iter()
            .map(|l| tokio::spawn(reconnecting_client(lb.ws_url(), l.clone(), stop.clone())))
            .collect();
        wait_until(Duration::from_secs(10), "clients on both gateways", || {
            g1.stats()["sessions_active"] == 3 && g2.stats()["sessions_active"] == 3
        });
        tokio::time::sleep(Duration::from_millis(800)).await;
        g1.kill();
        wait_until(
            Duration::from_secs(10),
            "g1's clients to land on g2",
            || g2.stats()["sessions_active"] == 6,
        );
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
                        let last_before = before
                            .iter()
                            .filter(|m| m["symbol"] == sym)
                            .filter_map(|m| m["seq"].as_u64())
                            .max()
                            .unwrap();
                        let first_after = after
                            .iter()
                            .filter(|m| m["symbol"] == sym)
                            .filter_map(|m| m["seq"].as_u64())
                            .min()
                            .unwrap();
                        assert!(
                            first_after >= last_before,
                            "client {i}: {sym} resumed behind ({first_after} < {last_before})"
                        );
                    }
                }
                n => panic!("client {i}: {n} connections"),
            }
        }
        assert_eq!((moved, stayed), (3, 3));
    });
}
