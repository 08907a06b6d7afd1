//! Acceptance 4 of the operations issue: SIGTERM (and SIGINT) with connected clients: every
//! client receives close 1001 "going away", the process exits 0 within the drain time, and
//! a recording in progress (`serve --record`) reads back complete: index and trailer
//! present, every message received until the shutdown in it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{subscribe, Client, Ended, Server};
use futures_util::StreamExt;

const CLIENTS: usize = 500;
const DRAIN_MS: u64 = 5000;

fn signal(server: &Server, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &server.child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill {sig} failed");
}

/// Waits for the process to exit; returns its exit code and when it exited.
fn wait_exit(server: &mut Server, within: Duration) -> (Option<i32>, Instant) {
    let end = Instant::now() + within;
    loop {
        if let Some(status) = server.child.try_wait().expect("try_wait") {
            return (status.code(), Instant::now());
        }
        assert!(
            Instant::now() < end,
            "server still running {within:?} after the signal"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

async fn connect_all(server: &Server, n: usize) -> Vec<Client> {
    let mut clients = Vec::with_capacity(n);
    for chunk in 0..n.div_ceil(50) {
        let batch = (chunk * 50..((chunk + 1) * 50).min(n)).map(|i| async move {
            let mut c = Client::connect(server).await;
            let sym = format!("SYM{:04}", i % 10);
            c.send(subscribe(1, &[&sym], &["quote", "trade"])).await;
            c.recv_until(Duration::from_secs(20), |m| m["type"] == "subscribed")
                .await;
            c
        });
        clients.extend(futures_util::future::join_all(batch).await);
    }
    clients
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_closes_every_client_1001_and_exits_0_within_the_drain_time() {
    let drain = DRAIN_MS.to_string();
    let mut server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "10",
        "--rate",
        "2000",
        "--drain-ms",
        &drain,
    ]);
    let clients = connect_all(&server, CLIENTS).await;
    assert_eq!(server.stats()["sessions_active"], CLIENTS as u64);

    // Every client keeps reading market data until its connection ends.
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| tokio::spawn(async move { c.wait_end(Duration::from_secs(30)).await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let sent = Instant::now();
    signal(&server, "-TERM");
    let (code, exited) =
        tokio::task::block_in_place(|| wait_exit(&mut server, Duration::from_secs(30)));
    assert_eq!(code, Some(0), "exit status after SIGTERM");
    let took = exited - sent;
    assert!(
        took < Duration::from_millis(DRAIN_MS),
        "took {took:?} to exit; drain time is {DRAIN_MS} ms"
    );

    let mut going_away = 0;
    let mut other = Vec::new();
    for r in readers {
        match r.await.expect("reader task") {
            Ended::Closed(Some((1001, reason))) if reason == "going away" => going_away += 1,
            e => other.push(e),
        }
    }
    assert_eq!(
        going_away,
        CLIENTS,
        "{} clients did not get 1001 going away, e.g. {:?}",
        other.len(),
        other.first()
    );
    eprintln!("SIGTERM with {CLIENTS} clients: all closed 1001, exit 0 after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_also_drains_and_nothing_listens_afterwards() {
    let mut server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "2",
        "--rate",
        "100",
        "--drain-ms",
        "3000",
    ]);
    let mut c = Client::connect(&server).await;
    c.send(subscribe(1, &["SYM0000"], &["quote"])).await;
    c.recv_until(Duration::from_secs(5), |m| m["type"] == "subscribed")
        .await;
    signal(&server, "-INT");
    let end = c.wait_end(Duration::from_secs(5)).await;
    assert_eq!(end, Ended::Closed(Some((1001, "going away".into()))));
    let (code, _) = tokio::task::block_in_place(|| wait_exit(&mut server, Duration::from_secs(10)));
    assert_eq!(code, Some(0));
    // Gone for good: nothing listens any more.
    let refused = tokio_tungstenite::connect_async(server.url()).await;
    assert!(refused.is_err(), "connected after shutdown");
    assert!(c.ws.next().await.is_none(), "data after the close");
}

/// A client that stopped reading (its socket is full, so not even the close frame can
/// leave) cannot hold the process beyond the drain time: it exits 0 when the drain time is
/// over. (A client that merely does not answer the close does not delay anything: the
/// server ends the connection once its close frame is written.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_client_cannot_delay_exit_beyond_the_drain_time() {
    let mut server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "10",
        "--rate",
        "5000",
        "--drain-ms",
        "1500",
        "--slow-consumer-lag-ms",
        "60000",
        "--max-queued-bytes",
        "268435456",
        "--close-grace-ms",
        "60000",
    ]);
    let mut stalled = Client::connect(&server).await;
    let all: Vec<String> = (0..10).map(|i| format!("SYM{i:04}")).collect();
    let all: Vec<&str> = all.iter().map(String::as_str).collect();
    stalled
        .send(serde_json::json!({"op":"subscribe","id":1,"symbols":all,"channels":["quote","trade","book"],"depth":25}))
        .await;
    // Never read. Once updates are being conflated, the socket is full.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let m = server.get("/metrics");
        let conflated = m
            .lines()
            .find_map(|l| l.strip_prefix("tickwire_conflated_updates_total "))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap();
        if conflated > 0.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the stalled client never fell behind"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent = Instant::now();
    signal(&server, "-TERM");
    // While draining, no new session is accepted.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let late = tokio::time::timeout(
        Duration::from_millis(500),
        tokio_tungstenite::connect_async(server.url()),
    )
    .await;
    assert!(
        !matches!(late, Ok(Ok(_))),
        "a new WebSocket session was accepted during the drain"
    );
    let (code, exited) =
        tokio::task::block_in_place(|| wait_exit(&mut server, Duration::from_secs(10)));
    assert_eq!(code, Some(0));
    let took = exited - sent;
    assert!(
        took >= Duration::from_millis(1400),
        "exited after {took:?}: it did not wait for the stalled client"
    );
    assert!(
        took < Duration::from_millis(3000),
        "took {took:?}, drain time 1500 ms"
    );
}

/// SIGTERM while serving a venue feed (the exchange simulator playing the recorded Kraken
/// book feed, paced) with `--record` and 500 clients: every client gets 1001, the process
/// exits 0 within the drain time, and the recording was finished cleanly (trailer and
/// index present) and holds the upstream's messages, byte for byte and in order, up to
/// the moment of the shutdown.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigterm_finishes_a_recording_in_progress() {
    use tickwire_feeds::recording::{Reader, RecordKind};
    let dir = common::temp_dir("shutdown-record");
    let out = dir.join("served.twrec");
    let feed = common::real_feed("kraken-2021-04-17-book.raw");
    let sim_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut sim = Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .arg("exchange-sim")
        .arg(&feed)
        .args([
            "--listen",
            &format!("127.0.0.1:{sim_port}"),
            "--pace-ms",
            "5",
        ])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", sim_port)).is_err() {
        assert!(Instant::now() < end, "simulator did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    let url = format!("ws://127.0.0.1:{sim_port}/ws");
    let mut server = Server::start(&[
        "--feed",
        "kraken",
        "--feed-url",
        &url,
        "--instruments",
        "XMR/USD,WAVES/EUR,ETH/CHF,SC/EUR",
        "--record",
        out.to_str().unwrap(),
        "--drain-ms",
        &DRAIN_MS.to_string(),
    ]);
    let mut clients = Vec::with_capacity(CLIENTS);
    for chunk in 0..CLIENTS / 50 {
        let batch = (0..50).map(|i| {
            let server = &server;
            async move {
                let mut c = Client::connect(server).await;
                let sym = ["XMR/USD", "WAVES/EUR", "ETH/CHF", "SC/EUR"][(chunk * 50 + i) % 4];
                c.send(subscribe(1, &[sym], &["quote", "trade"])).await;
                c.recv_until(Duration::from_secs(20), |m| m["type"] == "subscribed")
                    .await;
                c
            }
        });
        clients.extend(futures_util::future::join_all(batch).await);
    }
    let readers: Vec<_> = clients
        .into_iter()
        .map(|mut c| tokio::spawn(async move { c.wait_end(Duration::from_secs(30)).await }))
        .collect();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let signalled = tickwire_engine::domain::Nanos::now().0;
    let sent = Instant::now();
    signal(&server, "-TERM");
    let (code, exited) =
        tokio::task::block_in_place(|| wait_exit(&mut server, Duration::from_secs(30)));
    let _ = sim.kill();
    let _ = sim.wait();
    assert_eq!(code, Some(0));
    assert!(
        exited - sent < Duration::from_millis(DRAIN_MS),
        "took {:?}",
        exited - sent
    );
    let mut going_away = 0;
    for r in readers {
        if let Ended::Closed(Some((1001, _))) = r.await.unwrap() {
            going_away += 1;
        }
    }
    assert_eq!(going_away, CLIENTS);

    let reader = Reader::open(&out).expect("the recording opens");
    assert!(
        reader.recovery().clean_close,
        "no trailer/index: {:?}",
        reader.recovery()
    );
    assert!(reader.recovery().torn_tail.is_none() && reader.recovery().skipped.is_empty());
    let recorded: Vec<_> = reader
        .cursor()
        .map(|r| r.expect("every block reads"))
        .filter(|r| r.kind == RecordKind::Received)
        .collect();
    let text = std::fs::read(&feed).unwrap();
    let original: Vec<Vec<u8>> = text
        .split(|&b| b == b'\n')
        .filter_map(|l| {
            tickwire_feeds::recording::convert::parse_line(l)
                .ok()
                .flatten()
        })
        .filter(|l| l.kind == RecordKind::Received)
        .map(|l| l.payload.to_vec())
        .collect();
    assert!(
        recorded.len() > 100,
        "only {} messages recorded",
        recorded.len()
    );
    assert!(
        recorded.len() < original.len(),
        "the feed was over before the shutdown"
    );
    for (i, (r, o)) in recorded.iter().zip(&original).enumerate() {
        assert!(
            r.payload == *o,
            "message {i} differs from what the venue sent"
        );
    }
    let last = recorded.last().unwrap().ts;
    assert!(
        last >= signalled - 200_000_000,
        "the last recorded message is {} ms older than the SIGTERM",
        (signalled - last) / 1_000_000
    );
    eprintln!(
        "SIGTERM with {CLIENTS} clients and a recording: all closed 1001, exit 0 after {:?}, {} messages recorded, trailer present",
        exited - sent,
        recorded.len()
    );
}
