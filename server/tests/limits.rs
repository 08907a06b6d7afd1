//! The abuse limits one by one (acceptance 5 of the security issue runs them together in
//! `abuse.rs`): the message rate limit (rate_limited, then close 1008), connection caps per
//! address and in total (503, slots given back), the handshake timeout against slowloris,
//! and the idle timeout (4002).

mod common;

use std::io::{Read, Write};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use common::{subscribe, ws_open, Ended, Server};
use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

#[tokio::test]
async fn a_flood_is_rate_limited_then_closed_1008() {
    let s = Server::start_configured(
        "[feed]\nkind = \"synthetic\"\nsymbols = 3\nrate = 300.0\n[limits]\nmessages_per_second = 20.0\nmessage_burst = 20\nrate_limit_close_after = 100\n",
        &[],
        &[],
    );
    let server = &s.server;
    let mut polite = ws_open(server.port, "/ws", &[], None).await.unwrap();
    polite.send(subscribe(1, &["SYM0001"], &["quote"])).await;
    let mut flood = ws_open(server.port, "/ws", &[], None).await.unwrap();
    // Thousands of requests as fast as the socket takes them.
    let mut sent = 0;
    for i in 0..3000 {
        if flood
            .ws
            .send(Message::text(json!({"op":"ping","id":i}).to_string()))
            .await
            .is_err()
        {
            break;
        }
        sent += 1;
    }
    assert!(sent > 100);
    let mut pongs = 0;
    let mut limited = Vec::new();
    let end = loop {
        match tokio::time::timeout(
            Duration::from_secs(5),
            futures_util::StreamExt::next(&mut flood.ws),
        )
        .await
        .expect("flood client not closed")
        {
            Some(Ok(Message::Text(t))) => {
                let m: serde_json::Value = serde_json::from_str(&t).unwrap();
                match m["type"].as_str() {
                    Some("pong") => pongs += 1,
                    Some("error") => limited.push(m),
                    _ => {}
                }
            }
            Some(Ok(Message::Close(f))) => {
                break f.map(|f| (u16::from(f.code), f.reason.to_string()))
            }
            Some(Ok(_)) => {}
            other => panic!("flood connection ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(end, Some((1008, "rate limited".to_string())));
    assert!(
        (20..=40).contains(&pongs),
        "burst then a trickle: {pongs} pongs"
    );
    assert!(!limited.is_empty(), "a rate_limited error comes first");
    assert!(
        limited.len() <= 2,
        "errors are limited too: {}",
        limited.len()
    );
    assert!(limited.iter().all(|e| e["code"] == "rate_limited"));
    // The polite client is untouched.
    polite.send(json!({"op":"ping","id":77})).await;
    polite
        .recv_until(Duration::from_secs(5), |m| {
            m["type"] == "pong" && m["id"] == 77
        })
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = server.stats();
    assert_eq!(stats["disconnects_rate_limit"], 1, "{stats}");
    assert!(stats["rate_limited_messages"].as_u64().unwrap() > 100);
}

#[tokio::test]
async fn connection_caps_refuse_503_and_give_slots_back() {
    let s = Server::start_configured(
        "[feed]\nkind = \"synthetic\"\nsymbols = 3\n[limits]\nmax_connections_per_ip = 5\nmax_connections = 8\n",
        &[],
        &[],
    );
    let server = &s.server;
    let mut from_one = Vec::new();
    for _ in 0..5 {
        from_one.push(
            ws_open(server.port, "/ws", &[], ip("127.0.0.1"))
                .await
                .unwrap(),
        );
    }
    let r = ws_open(server.port, "/ws", &[], ip("127.0.0.1"))
        .await
        .err()
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.body["reason"], "ip_connection_limit");
    let mut from_two = Vec::new();
    for _ in 0..3 {
        from_two.push(
            ws_open(server.port, "/ws", &[], ip("127.0.0.2"))
                .await
                .unwrap(),
        );
    }
    let r = ws_open(server.port, "/ws", &[], ip("127.0.0.3"))
        .await
        .err()
        .unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.body["reason"], "server_connection_limit");
    // Plain HTTP still answers at the cap.
    assert_eq!(server.get("/healthz").trim(), "ok");
    // A closed connection gives its slots back.
    let mut c = from_one.pop().unwrap();
    c.ws.close(None).await.unwrap();
    drop(c);
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        match ws_open(server.port, "/ws", &[], ip("127.0.0.1")).await {
            Ok(c) => {
                from_one.push(c);
                break;
            }
            Err(r) => assert_eq!(r.status, 503),
        }
        assert!(Instant::now() < end, "slot never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = server.get("/metrics");
    assert!(
        m.contains("reason=\"ip_connection_limit\",status=\"503\"} 1"),
        "{m}"
    );
}

#[test]
fn a_slowloris_handshake_is_cut_at_the_timeout() {
    let s = Server::start_configured(
        "[feed]\nkind = \"synthetic\"\nsymbols = 3\n[limits]\nhandshake_timeout_ms = 1000\n",
        &[],
        &[],
    );
    let server = &s.server;
    let head =
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let start = Instant::now();
    let mut answer = Vec::new();
    let mut closed_at = None;
    // One byte every 100 ms: the whole head would take 14 s.
    for b in head.bytes() {
        if sock.write_all(&[b]).is_err() {
            closed_at = Some(start.elapsed());
            break;
        }
        let mut buf = [0u8; 512];
        match sock.read(&mut buf) {
            Ok(0) => {
                closed_at = Some(start.elapsed());
                break;
            }
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => {
                closed_at = Some(start.elapsed());
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(80));
        assert!(start.elapsed() < Duration::from_secs(6), "never cut");
    }
    let closed_at = closed_at.expect("the server never closed the slow connection");
    assert!(
        closed_at >= Duration::from_millis(900) && closed_at < Duration::from_millis(3000),
        "cut after {closed_at:?}"
    );
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // No session came of it; the server is fine.
    assert_eq!(server.stats()["sessions_opened"], 0);
}

#[tokio::test]
async fn idle_sessions_are_closed_4002() {
    let s = Server::start_configured(
        "[feed]\nkind = \"synthetic\"\nsymbols = 3\nrate = 100.0\n[limits]\nidle_timeout_ms = 600\n",
        &[],
        &[],
    );
    let server = &s.server;
    let mut idle = ws_open(server.port, "/ws", &[], None).await.unwrap();
    let mut busy = ws_open(server.port, "/ws", &[], None).await.unwrap();
    busy.send(subscribe(1, &["SYM0001"], &["quote"])).await;
    let t0 = Instant::now();
    match idle.wait_end(Duration::from_secs(5)).await {
        Ended::Closed(Some((code, reason))) => {
            assert_eq!((code, reason.as_str()), (4002, "idle timeout"))
        }
        other => panic!("{other:?}"),
    }
    assert!(
        t0.elapsed() >= Duration::from_millis(450),
        "{:?}",
        t0.elapsed()
    );
    // Subscribed: still open long after the timeout.
    let msgs = busy.collect_for(Duration::from_millis(1200)).await;
    assert!(msgs.iter().any(|m| m["type"] == "quote"));
    busy.send(json!({"op":"ping","id":2})).await;
    busy.recv_until(Duration::from_secs(2), |m| m["type"] == "pong")
        .await;
    // Unsubscribing everything starts the clock again.
    busy.send(json!({"op":"unsubscribe","id":3,"symbols":["SYM0001"],"channels":["quote"]}))
        .await;
    match busy.wait_end(Duration::from_secs(5)).await {
        Ended::Closed(Some((code, _))) => assert_eq!(code, 4002),
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(server.stats()["disconnects_idle"], 2);
}
