//! The hand-over from HTTP to our WebSocket transport: upgrades that must be refused get a
//! complete HTTP answer; an upgrade after an ordinary request on the same connection, and a
//! frame sent in the same packet as the handshake, both work (the bytes actix-http had read
//! or not yet written are carried over).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Raw, Server};
use serde_json::Value;

const UPGRADE_HEADERS: &str = "Host: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                               Sec-WebSocket-Version: 13\r\n";
const KEY: &str = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

/// Sends `request`, returns everything the server sent until it closed.
fn exchange(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out)
        .expect("the server closes the connection");
    out
}

/// A masked client text frame.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mask = [1u8, 2, 3, 4];
    assert!(payload.len() < 126);
    let mut f = vec![0x81, 0x80 | payload.len() as u8];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    f
}

/// Reads server text frames until one parses to a message of `kind`.
fn read_until(raw: &mut Raw, kind: &str) -> Value {
    loop {
        let (first, p) = raw.read_frame();
        if first & 0x0f == 0x1 {
            let v: Value = serde_json::from_slice(&p).unwrap();
            if v["type"] == kind {
                return v;
            }
        }
    }
}

#[test]
fn refused_upgrades_get_a_complete_http_answer() {
    let server = Server::start(&["--feed", "synthetic", "--symbols", "3"]);
    let port = server.port;

    let r = exchange(
        port,
        &format!("GET /other HTTP/1.1\r\n{UPGRADE_HEADERS}{KEY}\r\n"),
    );
    assert!(r.starts_with("HTTP/1.1 404"), "{r}");
    assert!(r.contains("served at /ws"), "{r}");

    let r = exchange(port, &format!("GET /ws HTTP/1.1\r\n{UPGRADE_HEADERS}\r\n"));
    assert!(r.starts_with("HTTP/1.1 400"), "{r}");
    assert!(r.to_lowercase().contains("key"), "names what is wrong: {r}");

    let r = exchange(
        port,
        "GET /ws HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert!(r.starts_with("HTTP/1.1 400"), "a GET without upgrade: {r}");

    // None of that hurt the server.
    assert_eq!(server.get("/healthz"), "ok\n");
    let mut raw = Raw::connect(port, None);
    raw.send_frame(0x81, br#"{"op":"ping","id":7}"#);
    assert_eq!(read_until(&mut raw, "pong")["id"], 7);
}

#[test]
fn upgrade_after_a_request_and_a_frame_in_the_handshake_packet() {
    let server = Server::start(&["--feed", "synthetic", "--symbols", "3"]);
    // One write: an ordinary request, the upgrade, and a first frame right behind it.
    let mut bytes = format!(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\nGET /ws HTTP/1.1\r\n{UPGRADE_HEADERS}{KEY}\r\n"
    )
    .into_bytes();
    bytes.extend(text_frame(br#"{"op":"ping","id":"first"}"#));
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(&bytes).unwrap();

    // The /healthz response comes first, complete, then the 101.
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !String::from_utf8_lossy(&head).contains("HTTP/1.1 101") || !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    let (first, second) = head.split_at(head.find("HTTP/1.1 101").unwrap());
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(first.ends_with("ok\n"), "{first}");
    assert!(
        second.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{second}"
    );

    let mut raw = Raw {
        s,
        response_head: second.to_string(),
    };
    assert_eq!(read_until(&mut raw, "pong")["id"], "first");
    raw.send_frame(
        0x81,
        br#"{"op":"subscribe","id":2,"symbols":["SYM0001"],"channels":["quote"]}"#,
    );
    assert_eq!(read_until(&mut raw, "subscribed")["id"], 2);
    read_until(&mut raw, "quote");
}
