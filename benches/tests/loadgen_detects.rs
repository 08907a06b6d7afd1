//! The load generator detects what it claims to: it is run against a tiny protocol server
//! written here (tokio + tungstenite) that is made to misbehave in known ways —
//! dropping one trade (a gap must be counted) and one quote (counted as conflation, not as a
//! gap), holding every message back by a known delay (latency must shift by that amount),
//! and closing clients that stop reading with 1008 "slow consumer" (the close code must be
//! reported for the stalled clients).

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tickwire_benches::loadgen::config::{Scenario, ServerSpec};
use tickwire_benches::loadgen::report::RunResult;
use tickwire_benches::loadgen::runner::{run, RunOptions};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;

/// How the test server misbehaves.
#[derive(Clone, Default)]
struct Behavior {
    /// Per symbol, skip this trade chan_seq (the message is never sent).
    drop_trade: Option<u64>,
    /// Per symbol, skip this quote chan_seq.
    drop_quote: Option<u64>,
    /// Hold every message this long after stamping `recv_ts`.
    delay: Duration,
    /// Rounds of (quote, trade) per symbol; one round every `interval`.
    rounds: u64,
    interval: Duration,
    /// Padding per message, to fill socket buffers of stalled readers.
    pad: usize,
    /// A send that does not complete within this is a slow consumer: close with 1008.
    stall_timeout: Option<Duration>,
    /// After queueing the 1008 close, cut the connection if it has not left within this.
    close_grace: Option<Duration>,
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

async fn serve_conn(stream: tokio::net::TcpStream, b: Behavior) {
    if b.stall_timeout.is_some() {
        // A small send buffer so a client that stops reading backs up quickly.
        let _ = socket2::SockRef::from(&stream).set_send_buffer_size(16 * 1024);
    }
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    let (mut tx, mut rx) = ws.split();
    // The first frame must be a subscribe request.
    let (id, symbols) = loop {
        match rx.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: serde_json::Value = serde_json::from_str(&t).expect("client sent JSON");
                assert_eq!(v["op"], "subscribe", "first request is a subscribe");
                let syms: Vec<String> = v["symbols"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|s| s.as_str().unwrap().to_string())
                    .collect();
                break (v["id"].as_u64().unwrap(), syms);
            }
            Some(Ok(_)) => continue,
            _ => return,
        }
    };
    let ack = serde_json::json!({"type":"subscribed","id":id,"symbols":symbols,"channels":["quote","trade"]});
    if tx.send(Message::text(ack.to_string())).await.is_err() {
        return;
    }
    // Drain whatever else the client sends (close frames, pings).
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });

    // Producer stamps recv_ts; the sender holds each message until stamp + delay.
    let (qtx, mut qrx) = tokio::sync::mpsc::unbounded_channel::<(tokio::time::Instant, String)>();
    let pad = "x".repeat(b.pad);
    let bp = b.clone();
    tokio::spawn(async move {
        let mut seq = 0u64;
        for round in 1..=bp.rounds {
            for s in &symbols {
                seq += 1;
                if bp.drop_quote != Some(round) {
                    let m = format!(
                        r#"{{"type":"quote","symbol":"{s}","seq":{seq},"chan_seq":{round},"ts":{t},"recv_ts":{t},"bid":"1.00","bid_size":"1","ask":"1.01","ask_size":"1","pad":"{pad}"}}"#,
                        t = now_ns()
                    );
                    let _ = qtx.send((tokio::time::Instant::now(), m));
                }
                seq += 1;
                if bp.drop_trade != Some(round) {
                    let m = format!(
                        r#"{{"type":"trade","symbol":"{s}","seq":{seq},"chan_seq":{round},"ts":{t},"recv_ts":{t},"price":"1.00","size":"1","side":"buy"}}"#,
                        t = now_ns()
                    );
                    let _ = qtx.send((tokio::time::Instant::now(), m));
                }
            }
            tokio::time::sleep(bp.interval).await;
        }
    });
    while let Some((stamped, m)) = qrx.recv().await {
        tokio::time::sleep_until(stamped + b.delay).await;
        let send = tx.send(Message::text(m));
        let ok = match b.stall_timeout {
            Some(t) => match tokio::time::timeout(t, send).await {
                Ok(r) => r.is_ok(),
                Err(_) => {
                    // Slow consumer: close with 1008. The close frame queues behind what the
                    // client has not read; it reaches the client once it drains.
                    let close = tx.send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Policy,
                        reason: "slow consumer".into(),
                    })));
                    match b.close_grace {
                        Some(g) => {
                            if tokio::time::timeout(g, close).await.is_err() {
                                // Cut: drop both halves of the socket.
                                reader.abort();
                            }
                        }
                        None => {
                            let _ = close.await;
                        }
                    }
                    return;
                }
            },
            None => send.await.is_ok(),
        };
        if !ok {
            return;
        }
    }
    // Keep the connection open until the client leaves.
    let _ = tx.close().await;
}

/// Starts the test server on a thread of its own; returns its address.
fn start_server(b: Behavior) -> SocketAddr {
    let (atx, arx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            atx.send(l.local_addr().unwrap()).unwrap();
            loop {
                let (s, _) = l.accept().await.unwrap();
                tokio::spawn(serve_conn(s, b.clone()));
            }
        });
    });
    arx.recv().unwrap()
}

fn scenario(addr: SocketAddr, clients: u32, stalled: u32, duration_s: f64) -> Scenario {
    Scenario {
        name: "test".into(),
        url: format!("ws://{addr}/ws"),
        clients,
        stalled_clients: stalled,
        symbols_per_client: 2,
        channels: vec!["quote".into(), "trade".into()],
        connect_rate: 1000,
        warmup_s: 0.0,
        duration_s,
        threads: 2,
        server: ServerSpec {
            symbols: 4,
            rate: 0,
            seed: 1,
        },
        ..Default::default()
    }
}

fn run_against(addr: SocketAddr, clients: u32, stalled: u32, duration_s: f64) -> RunResult {
    run_scenario(scenario(addr, clients, stalled, duration_s))
}

fn run_scenario(scenario: Scenario) -> RunResult {
    run(&RunOptions {
        scenario,
        label: "test-server".into(),
        server_pid: Some(std::process::id()),
        progress: false,
    })
    .expect("run completes")
}

#[test]
fn counts_one_dropped_trade_as_a_gap_and_a_dropped_quote_as_conflation() {
    let addr = start_server(Behavior {
        drop_trade: Some(10),
        drop_quote: Some(20),
        rounds: 40,
        interval: Duration::from_millis(5),
        ..Default::default()
    });
    // 3 clients × 2 symbols: 40 rounds take ~0.2 s, well inside the run.
    let r = run_against(addr, 3, 0, 1.5);
    assert_eq!(r.conns.connected, 3, "{r:?}");
    assert_eq!(r.conns.fully_subscribed, 3);
    // Every client sees every symbol's dropped trade once: 3 × 2 gaps of one message.
    assert_eq!(r.run.chan_missing[1], 6, "trade gaps: {:?}", r.run);
    assert_eq!(r.run.chan_jumps[1], 6);
    // The dropped quotes are conflation, reported separately, not as gaps.
    assert_eq!(r.run.chan_missing[0], 6, "quote conflation: {:?}", r.run);
    assert_eq!(r.run.msgs[1], 3 * 2 * 39);
    assert_eq!(r.run.msgs[0], 3 * 2 * 39);
    assert_eq!(r.run.seq_regressions, 0);
    assert_eq!(r.run.chan_regressions, [0, 0, 0]);
}

#[test]
fn busy_polling_generator_detects_the_same_gaps_and_reports_its_work() {
    let addr = start_server(Behavior {
        drop_trade: Some(10),
        rounds: 40,
        interval: Duration::from_millis(5),
        ..Default::default()
    });
    let r = run_scenario(Scenario {
        busy_poll: true,
        // One thread: as many polling threads as this machine's cores would turn it off.
        threads: 1,
        ..scenario(addr, 3, 0, 1.5)
    });
    assert!(r.scenario.busy_poll, "ran busy-polling");
    assert_eq!(r.conns.fully_subscribed, 3, "{r:?}");
    assert_eq!(r.run.chan_missing[1], 6, "trade gaps: {:?}", r.run);
    assert_eq!(r.run.msgs[1], 3 * 2 * 39);
    // Polling threads show a full core each; the time spent on data is what they report.
    assert!(r.run.handling_ns > 0, "{:?}", r.run);
    assert!(
        (r.run.handling_ns as f64) < r.measured_s * 1e9 * f64::from(r.generator_threads),
        "{:?}",
        r.run
    );
}

#[test]
fn clean_stream_reports_no_gaps() {
    let addr = start_server(Behavior {
        rounds: 30,
        interval: Duration::from_millis(5),
        ..Default::default()
    });
    let r = run_against(addr, 2, 0, 1.0);
    assert_eq!(r.run.msgs[1], 2 * 2 * 30);
    assert_eq!(r.run.chan_missing, [0, 0, 0], "{:?}", r.run);
}

#[test]
fn latency_shifts_by_the_injected_delay() {
    const DELAY_MS: u64 = 40;
    let spec = |delay| Behavior {
        delay,
        rounds: 400,
        interval: Duration::from_millis(10),
        ..Default::default()
    };
    let base = run_against(start_server(spec(Duration::ZERO)), 2, 0, 2.0);
    let slow = run_against(
        start_server(spec(Duration::from_millis(DELAY_MS))),
        2,
        0,
        2.0,
    );
    assert!(base.latency.count > 100, "{:?}", base.latency);
    assert!(slow.latency.count > 100, "{:?}", slow.latency);
    let d_us = DELAY_MS as f64 * 1000.0;
    // Every delayed message is held at least DELAY after its recv_ts stamp.
    assert!(
        slow.latency.min_us >= d_us * 0.99,
        "min {} µs < delay",
        slow.latency.min_us
    );
    // The median moves by the delay (generous upper slack for a loaded machine).
    let shift = slow.latency.p50_us - base.latency.p50_us;
    assert!(
        shift >= d_us * 0.9 && shift <= d_us + 60_000.0,
        "p50 shift {shift} µs (base {:?}, slow {:?})",
        base.latency,
        slow.latency
    );
    // Without delay the median is far below the delay.
    assert!(base.latency.p50_us < d_us / 2.0, "{:?}", base.latency);
}

#[test]
fn stalled_clients_report_close_1008() {
    let addr = start_server(Behavior {
        rounds: 100_000,
        interval: Duration::from_millis(2),
        pad: 8 * 1024,
        stall_timeout: Some(Duration::from_millis(500)),
        ..Default::default()
    });
    let r = run_against(addr, 2, 3, 3.0);
    assert_eq!(r.stalled.connected, 3, "{:?}", r.stalled);
    assert_eq!(
        r.stalled.close_codes.get("1008").copied(),
        Some(3),
        "stalled: {:?}",
        r.stalled
    );
    assert_eq!(
        r.stalled.close_reasons.get("slow consumer").copied(),
        Some(3)
    );
    // The healthy clients kept receiving meanwhile.
    assert!(r.window.msgs[1] > 100, "{:?}", r.window);
}

#[test]
fn stalled_clients_cut_without_close_frame_are_not_reported_as_1008() {
    let addr = start_server(Behavior {
        rounds: 100_000,
        interval: Duration::from_millis(2),
        pad: 8 * 1024,
        stall_timeout: Some(Duration::from_millis(300)),
        close_grace: Some(Duration::from_millis(300)),
        ..Default::default()
    });
    let r = run_against(addr, 1, 3, 4.0);
    assert_eq!(r.stalled.connected, 3, "{:?}", r.stalled);
    // The server gave up on them: each is seen closed, but no close frame ever arrived.
    assert_eq!(r.stalled.stalled_closed_by_server, 3, "{:?}", r.stalled);
    assert_eq!(r.stalled.close_codes.get("1008"), None, "{:?}", r.stalled);
    assert_eq!(r.stalled.disconnects.get("still open at end"), None);
}

#[test]
fn stalled_clients_resuming_early_read_the_1008_close() {
    // The close frame waits 10 s behind the unread data; the clients read again after 1 s.
    let addr = start_server(Behavior {
        rounds: 100_000,
        interval: Duration::from_millis(2),
        pad: 8 * 1024,
        stall_timeout: Some(Duration::from_millis(300)),
        close_grace: Some(Duration::from_secs(10)),
        ..Default::default()
    });
    let mut sc = scenario(addr, 1, 3, 4.0);
    sc.stall_read_after_s = 1.0;
    let r = run_scenario(sc);
    assert_eq!(
        r.stalled.close_codes.get("1008").copied(),
        Some(3),
        "{:?}",
        r.stalled
    );
    assert_eq!(r.stalled.stalled_closed_by_server, 3);
    // They saw the close while the run was still going, not in the final drain.
    assert!(
        r.stalled.stalled_close_times_s.iter().all(|t| *t < 4.0),
        "{:?}",
        r.stalled.stalled_close_times_s
    );
}
