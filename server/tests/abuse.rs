//! Acceptance 5 of the security issue: a flood client, an oversized frame, a connection
//! storm from one address and slowloris handshakes, all at once, are each contained by
//! their limit, while 50 normal clients keep their data flowing with no gaps. Every party
//! has its own loopback address (127.0.0.1 storms, .2-.51 are the normal clients, .200
//! floods, .201 sends the oversized frame), as they would on the internet.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{subscribe, ws_open, Ended, Server};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

const NORMAL_CLIENTS: usize = 50;
const STORM: usize = 200;
const PER_IP: usize = 20;
const SLOWLORIS: usize = 20;

#[derive(Default, Debug)]
struct Seen {
    messages: usize,
    trades: usize,
    /// Trades whose `chan_seq` skipped (a lost trade), or any stream going backwards.
    chan_seq_gaps: Vec<String>,
    seq_regressions: Vec<String>,
    /// Quote `chan_seq` jumps: conflation (latest state wins when two updates of a symbol
    /// meet in the outbox), which the protocol allows; counted, not a loss.
    quote_conflations: usize,
    /// Longest time without a market-data message.
    longest_silence: Duration,
    ended: Option<String>,
}

/// Reads for `window`, checking that trades' `chan_seq` rises by exactly 1 per symbol,
/// quotes' never goes back, `seq` strictly rises per symbol, and data never stops.
async fn normal_client(port: u16, source: IpAddr, symbols: Vec<String>, window: Duration) -> Seen {
    let mut c = ws_open(port, "/ws", &[], Some(source))
        .await
        .expect("normal client admitted");
    let names: Vec<&str> = symbols.iter().map(String::as_str).collect();
    c.send(subscribe(1, &names, &["quote", "trade"])).await;
    let mut seen = Seen::default();
    let mut chan_seq: HashMap<(String, String), u64> = HashMap::new();
    let mut seq: HashMap<String, u64> = HashMap::new();
    let end = tokio::time::Instant::now() + window;
    let mut last_data: Option<Instant> = None;
    loop {
        let m = match tokio::time::timeout_at(end, c.ws.next()).await {
            Err(_) => break,
            Ok(Some(Ok(Message::Text(t)))) => serde_json::from_str::<Value>(&t).unwrap(),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => {
                seen.ended = Some(format!("{other:?}"));
                break;
            }
        };
        let kind = m["type"].as_str().unwrap_or_default().to_string();
        if kind != "quote" && kind != "trade" {
            continue;
        }
        seen.messages += 1;
        seen.trades += (kind == "trade") as usize;
        let now = Instant::now();
        if let Some(t) = last_data.replace(now) {
            seen.longest_silence = seen.longest_silence.max(now - t);
        }
        let sym = m["symbol"].as_str().unwrap().to_string();
        let cs = m["chan_seq"].as_u64().unwrap();
        if let Some(last) = chan_seq.insert((sym.clone(), kind.clone()), cs) {
            if cs <= last || (kind == "trade" && cs != last + 1) {
                seen.chan_seq_gaps
                    .push(format!("{sym} {kind}: {last} -> {cs}"));
            } else if cs != last + 1 {
                seen.quote_conflations += 1;
            }
        }
        let s = m["seq"].as_u64().unwrap();
        if let Some(last) = seq.insert(sym.clone(), s) {
            if s <= last {
                seen.seq_regressions.push(format!("{sym}: {last} -> {s}"));
            }
        }
    }
    seen
}

/// A slowloris: one byte of a request head every 200 ms. Returns when the server cut it.
fn slowloris(port: u16) -> Duration {
    let head =
        b"GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n";
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let start = Instant::now();
    for b in head.iter().cycle() {
        if s.write_all(&[*b]).is_err() {
            break;
        }
        let mut buf = [0u8; 256];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if start.elapsed() > Duration::from_secs(10) {
            panic!("slowloris never cut");
        }
        std::thread::sleep(Duration::from_millis(190));
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_is_contained_while_normal_clients_see_no_gaps() {
    let s = Server::start_configured(
        &format!(
            "[feed]\nkind = \"synthetic\"\nsymbols = 50\nrate = 2000.0\n\
             [session]\nmax_message_bytes = 4096\n\
             [limits]\nmax_connections_per_ip = {PER_IP}\nmessages_per_second = 50.0\n\
             message_burst = 100\nrate_limit_close_after = 200\nhandshake_timeout_ms = 1000\n"
        ),
        &[],
        &[],
    );
    let server = &s.server;
    let port = server.port;
    let window = Duration::from_secs(6);
    let normals: Vec<_> = (0..NORMAL_CLIENTS)
        .map(|i| {
            let source: IpAddr = format!("127.0.0.{}", i + 2).parse().unwrap();
            let symbols = (0..5)
                .map(|k| format!("SYM{:04}", (i + k * 10) % 50))
                .collect();
            tokio::spawn(normal_client(port, source, symbols, window))
        })
        .collect();
    // Let them subscribe and settle before the attacks begin.
    tokio::time::sleep(Duration::from_millis(1000)).await;

    let slow: Vec<_> = (0..SLOWLORIS)
        .map(|_| std::thread::spawn(move || slowloris(port)))
        .collect();

    let flood = tokio::spawn(async move {
        let mut c = ws_open(port, "/ws", &[], Some([127, 0, 0, 200].into()))
            .await
            .expect("flood admitted");
        for i in 0..20_000 {
            if c.ws
                .send(Message::text(json!({"op":"ping","id":i}).to_string()))
                .await
                .is_err()
            {
                break;
            }
        }
        c.wait_end(Duration::from_secs(10)).await
    });

    let oversized = tokio::spawn(async move {
        let mut c = ws_open(port, "/ws", &[], Some([127, 0, 0, 201].into()))
            .await
            .expect("oversized admitted");
        c.send_raw(Message::text("x".repeat(100_000))).await;
        c.wait_end(Duration::from_secs(10)).await
    });

    let storm = tokio::spawn(async move {
        let attempts: Vec<_> = (0..STORM)
            .map(|_| tokio::spawn(async move { ws_open(port, "/ws", &[], None).await }))
            .collect();
        let (mut admitted, mut refused_503, mut other) = (Vec::new(), 0, Vec::new());
        for a in attempts {
            match a.await.unwrap() {
                Ok(c) => admitted.push(c),
                Err(r) if r.status == 503 && r.body["reason"] == "ip_connection_limit" => {
                    refused_503 += 1
                }
                Err(r) => other.push(r),
            }
        }
        (admitted, refused_503, other)
    });

    let flood_end = flood.await.unwrap();
    let oversized_end = oversized.await.unwrap();
    let (admitted, refused_503, other) = storm.await.unwrap();
    let cut_after: Vec<Duration> = slow.into_iter().map(|t| t.join().unwrap()).collect();

    // Each attacker got its defined outcome.
    match flood_end {
        Ended::Closed(Some((code, reason))) => {
            assert_eq!((code, reason.as_str()), (1008, "rate limited"))
        }
        other => panic!("flood: {other:?}"),
    }
    match oversized_end {
        Ended::Closed(Some((code, reason))) => {
            assert_eq!((code, reason.as_str()), (1009, "message too big"))
        }
        other => panic!("oversized: {other:?}"),
    }
    assert!(other.is_empty(), "storm: unexpected answers {other:?}");
    assert!(
        admitted.len() <= PER_IP,
        "storm: {} admitted",
        admitted.len()
    );
    assert_eq!(admitted.len() + refused_503, STORM);
    assert!(refused_503 >= STORM - PER_IP);
    for d in &cut_after {
        assert!(
            *d >= Duration::from_millis(800) && *d < Duration::from_secs(4),
            "slowloris cut after {d:?}"
        );
    }
    drop(admitted);

    // The normal clients saw everything, in order, with no gap.
    let mut conflations = 0;
    for (i, n) in normals.into_iter().enumerate() {
        let seen = n.await.unwrap();
        assert!(
            seen.ended.is_none(),
            "client {i} was disconnected: {:?}",
            seen.ended
        );
        assert!(seen.messages > 200, "client {i} starved: {seen:?}");
        assert!(seen.trades > 0, "client {i}: no trades");
        conflations += seen.quote_conflations;
        assert!(
            seen.chan_seq_gaps.is_empty(),
            "client {i} gaps: {:?}",
            seen.chan_seq_gaps
        );
        assert!(
            seen.seq_regressions.is_empty(),
            "client {i}: {:?}",
            seen.seq_regressions
        );
    }
    eprintln!("normal clients: {conflations} quote conflations (allowed; trades are exact)");
    let stats = server.stats();
    assert_eq!(stats["disconnects_rate_limit"], 1, "{stats}");
    assert!(
        stats["upgrades_refused_ip_connection_limit"]
            .as_u64()
            .unwrap()
            >= (STORM - PER_IP) as u64
    );
    assert_eq!(stats["disconnects_slow_consumer"], 0, "{stats}");
}
