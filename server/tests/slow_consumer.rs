//! Acceptance 4 of the core issue: a client that stops reading is closed with 1008 "slow
//! consumer" within the configured bound, healthy clients keep every trade with no gap,
//! and the server's memory stays bounded while the stalled clients sit there for 20+ s.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::{subscribe, Client, Ended, Server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_are_cut_off_and_healthy_ones_see_no_gap() {
    let server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "10",
        "--rate",
        "5000",
        "--max-queued-bytes",
        "1048576",
        "--slow-consumer-lag-ms",
        "2000",
        "--close-grace-ms",
        "60000",
    ]);
    let all: Vec<String> = (0..10).map(|i| format!("SYM{i:04}")).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();

    // Two stalled clients: one with trades (unbounded events; caught by the byte bound or
    // the lag bound), one with only conflated channels (caught by the lag bound).
    let mut stalled_events = Client::connect(&server).await;
    stalled_events
        .send(subscribe(1, &all, &["quote", "trade", "book"]))
        .await;
    let mut stalled_conflated = Client::connect(&server).await;
    stalled_conflated
        .send(subscribe(1, &all, &["quote", "book"]))
        .await;

    let healthy: Vec<_> = (0..50)
        .map(|i| {
            let url = server.url();
            let syms: Vec<String> = (0..3)
                .map(|k| format!("SYM{:04}", (i + k * 3) % 10))
                .collect();
            tokio::spawn(async move {
                let (ws, _) = tokio_tungstenite::connect_async(url)
                    .await
                    .expect("connect");
                let mut c = Client { ws };
                let refs: Vec<&str> = syms.iter().map(String::as_str).collect();
                c.send(subscribe(1, &refs, &["trade"])).await;
                let msgs = c.collect_for(Duration::from_secs(24)).await;
                let mut last: HashMap<String, u64> = HashMap::new();
                let mut trades = 0;
                for m in &msgs {
                    if m["type"] != "trade" {
                        continue;
                    }
                    trades += 1;
                    let cs = m["chan_seq"].as_u64().unwrap();
                    let sym = m["symbol"].as_str().unwrap().to_string();
                    if let Some(prev) = last.insert(sym.clone(), cs) {
                        assert_eq!(cs, prev + 1, "healthy client {i}: trade gap on {sym}");
                    }
                }
                let ended_cleanly = !msgs.iter().any(|m| m["type"] == "error");
                (trades, ended_cleanly)
            })
        })
        .collect();

    // Watch the server's memory while the stalled clients do not read for 22 s.
    let start = Instant::now();
    let mut rss = Vec::new();
    let mut both_closed_after = None;
    while start.elapsed() < Duration::from_secs(22) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        rss.push(server.rss_kib());
        let closes = server.stats()["slow_consumer_closes"].as_u64().unwrap();
        if closes == 2 && both_closed_after.is_none() {
            both_closed_after = Some(start.elapsed());
        }
    }
    eprintln!("server RSS (KiB, every 0.5 s): {rss:?}");
    let closed_after = both_closed_after.expect("both stalled clients closed as slow consumers");
    eprintln!("both stalled clients closed after {closed_after:?}");
    // Lag bound 2 s, plus the time to fill the kernel buffers and one sweep period.
    assert!(
        closed_after < Duration::from_secs(6),
        "closed only after {closed_after:?}"
    );
    assert_eq!(server.stats()["slow_consumer_closes"], 2);

    for h in healthy {
        let (trades, clean) = h.await.expect("healthy client");
        assert!(
            trades > 1000,
            "healthy client received only {trades} trades"
        );
        assert!(clean);
    }

    // Memory: after the first seconds, flat (within 16 MiB) and far below what 22 s of
    // unsent data would need.
    let settled = &rss[8..];
    let (lo, hi) = (
        *settled.iter().min().unwrap(),
        *settled.iter().max().unwrap(),
    );
    assert!(
        hi - lo < 16 * 1024,
        "server RSS grew from {lo} to {hi} KiB: {rss:?}"
    );

    // The stalled clients now read: what was buffered, then the close frame.
    for (name, c) in [
        ("events", &mut stalled_events),
        ("conflated", &mut stalled_conflated),
    ] {
        match c.wait_end(Duration::from_secs(20)).await {
            Ended::Closed(Some((code, reason))) => {
                assert_eq!((code, reason.as_str()), (1008, "slow consumer"), "{name}")
            }
            other => panic!("{name}: expected close 1008, got {other:?}"),
        }
    }
}
