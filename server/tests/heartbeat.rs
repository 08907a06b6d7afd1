//! Heartbeats: the server pings every interval, and a client that stays silent past the
//! timeout is closed with 4000 "heartbeat timeout". A client that answers pings stays.
//!
//! The silent client is a hand-written WebSocket client over a raw TCP socket, because
//! ordinary client libraries answer pings by themselves.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Client, Server};

/// Performs the opening handshake and returns the socket positioned at the first frame.
fn raw_handshake(port: u16) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    s
}

/// Reads one unmasked server frame: (opcode, payload).
fn read_frame(s: &mut TcpStream) -> (u8, Vec<u8>) {
    let mut h = [0u8; 2];
    s.read_exact(&mut h).unwrap();
    let mut len = (h[1] & 0x7f) as usize;
    if len == 126 {
        let mut l = [0u8; 2];
        s.read_exact(&mut l).unwrap();
        len = u16::from_be_bytes(l) as usize;
    } else if len == 127 {
        let mut l = [0u8; 8];
        s.read_exact(&mut l).unwrap();
        len = u64::from_be_bytes(l) as usize;
    }
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).unwrap();
    (h[0] & 0x0f, payload)
}

#[test]
fn silent_client_is_pinged_then_closed_4000() {
    let server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "2",
        "--rate",
        "10",
        "--ping-interval-ms",
        "200",
        "--client-timeout-ms",
        "1000",
    ]);
    let mut s = raw_handshake(server.port);
    let start = Instant::now();
    let mut pings = 0;
    loop {
        let (op, payload) = read_frame(&mut s);
        match op {
            0x9 => pings += 1,
            0x8 => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                assert_eq!(code, 4000);
                assert_eq!(&payload[2..], b"heartbeat timeout");
                break;
            }
            other => panic!("unexpected opcode {other}"),
        }
    }
    let waited = start.elapsed();
    assert!(pings >= 3, "only {pings} pings before the close");
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    // Counted once, under its own reason, once the connection is gone.
    drop(s);
    let end = Instant::now() + Duration::from_secs(5);
    while server.stats()["sessions_active"] != 0 {
        assert!(Instant::now() < end, "session never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let stats = server.stats();
    assert_eq!(stats["heartbeat_closes"], 1);
    assert_eq!(stats["disconnects_heartbeat"], 1);
    assert_eq!(stats["disconnects_error"], 0);
    assert!(server
        .get("/metrics")
        .contains("tickwire_disconnects_total{reason=\"heartbeat\"} 1\n"));
}

#[tokio::test]
async fn client_answering_pings_stays_connected() {
    let server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "2",
        "--rate",
        "10",
        "--ping-interval-ms",
        "200",
        "--client-timeout-ms",
        "1000",
    ]);
    let mut c = Client::connect(&server).await;
    // tungstenite answers pings while we read; 3 s is three timeouts' worth.
    c.collect_for(Duration::from_secs(3)).await;
    c.send(serde_json::json!({"op":"ping","id":1})).await;
    let pong = c
        .recv_until(Duration::from_secs(2), |m| m["type"] == "pong")
        .await;
    assert_eq!(pong["id"], 1);
    assert_eq!(server.stats()["heartbeat_closes"], 0);
}
