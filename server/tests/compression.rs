//! permessage-deflate: negotiation, shared compressed frames that decode to exactly the
//! uncompressed messages, and the defined outcome of hostile compressed input (zip bomb:
//! 1009; garbage: 1007; RSV1 without negotiation: 1002) while other clients carry on.
//!
//! The client here is written by hand over a raw socket so the test controls every bit;
//! the Python `websockets` test (`server/tests/py/`) covers a client nobody here wrote.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{subscribe, Client, Server};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::Value;

struct Raw {
    s: TcpStream,
    response_head: String,
}

impl Raw {
    fn connect(port: u16, extensions: Option<&str>) -> Raw {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let ext = extensions
            .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let response_head = String::from_utf8(head).unwrap();
        assert!(response_head.starts_with("HTTP/1.1 101"), "{response_head}");
        Raw { s, response_head }
    }

    /// Sends one masked frame with the given first byte (FIN/RSV/opcode).
    fn send_frame(&mut self, first: u8, payload: &[u8]) {
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut f = vec![first];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        self.s.write_all(&f).unwrap();
    }

    /// Reads one frame: (first byte, payload).
    fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        self.s.read_exact(&mut h).unwrap();
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                self.s.read_exact(&mut l).unwrap();
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                self.s.read_exact(&mut l).unwrap();
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut p = vec![0u8; len];
        self.s.read_exact(&mut p).unwrap();
        (h[0], p)
    }

    /// Reads frames until a close frame and returns its code.
    fn close_code(&mut self) -> u16 {
        loop {
            let (first, p) = self.read_frame();
            if first & 0x0f == 0x8 {
                return u16::from_be_bytes([p[0], p[1]]);
            }
        }
    }
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = Compress::new(Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 1024);
    c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    out.truncate(out.len() - 4);
    out
}

fn inflate(payload: &[u8]) -> Vec<u8> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut d = Decompress::new(false);
    let mut out = Vec::with_capacity(64 * 1024);
    d.decompress_vec(&input, &mut out, FlushDecompress::Sync)
        .unwrap();
    out
}

const OFFER: &str = "permessage-deflate; client_max_window_bits";

#[tokio::test]
async fn compressed_frames_decode_to_the_uncompressed_messages() {
    let server = Server::start(&["--symbols", "4", "--rate", "400"]);
    let mut plain = Client::connect(&server).await;
    plain
        .send(subscribe(1, &["SYM0001"], &["quote", "trade", "book"]))
        .await;
    let mut raw = Raw::connect(server.port, Some(OFFER));
    assert!(
        raw.response_head
            .contains("permessage-deflate; server_no_context_takeover; client_no_context_takeover"),
        "{}",
        raw.response_head
    );
    // Requests may be compressed too.
    let sub = subscribe(1, &["SYM0001"], &["quote", "trade", "book"]).to_string();
    raw.send_frame(0x80 | 0x40 | 0x1, &deflate(sub.as_bytes()));
    let mut compressed_msgs = Vec::new();
    let mut compressed_bytes = 0;
    let mut inflated_bytes = 0;
    while compressed_msgs.len() < 300 {
        let (first, p) = raw.read_frame();
        if first & 0x0f != 0x1 {
            continue;
        }
        let text = if first & 0x40 != 0 {
            compressed_bytes += p.len();
            let t = inflate(&p);
            inflated_bytes += t.len();
            t
        } else {
            p
        };
        let v: Value = serde_json::from_slice(&text).expect("valid JSON after inflating");
        compressed_msgs.push(v);
    }
    assert_eq!(compressed_msgs[0]["type"], "subscribed");
    assert!(compressed_bytes > 0, "market data arrived compressed");
    eprintln!("compressed {compressed_bytes} B for {inflated_bytes} B of JSON");
    let plain_msgs = plain.collect_for(Duration::from_millis(1500)).await;
    // Every data message seen by both clients is identical, byte for byte as JSON.
    let key = |m: &Value| (m["type"].clone(), m["chan_seq"].clone());
    let mut compared = 0;
    for m in compressed_msgs.iter().filter(|m| m["chan_seq"].is_u64()) {
        if let Some(p) = plain_msgs
            .iter()
            .find(|p| key(p) == key(m) && p["symbol"] == m["symbol"])
        {
            assert_eq!(p, m);
            compared += 1;
        }
    }
    assert!(compared > 100, "only {compared} messages in common");
}

#[tokio::test]
async fn hostile_compressed_input_gets_its_close_code_and_others_carry_on() {
    let server = Server::start(&["--symbols", "4", "--rate", "1000"]);
    let mut bystander = Client::connect(&server).await;
    bystander.send(subscribe(1, &["SYM0002"], &["quote"])).await;
    bystander.collect_for(Duration::from_millis(300)).await;

    // A zip bomb: 40 KiB on the wire, 40 MiB inflated (the limit is 64 KiB).
    let bomb = deflate(&vec![b' '; 40 << 20]);
    assert!(bomb.len() < 64 << 10);
    let mut c = Raw::connect(server.port, Some(OFFER));
    c.send_frame(0x80 | 0x40 | 0x1, &bomb);
    assert_eq!(c.close_code(), 1009);

    // Not deflate data at all.
    let mut c = Raw::connect(server.port, Some(OFFER));
    c.send_frame(0x80 | 0x40 | 0x1, &[0xff, 0xfe, 0xfd, 0x00, 0x13, 0x37]);
    assert_eq!(c.close_code(), 1007);

    // RSV1 on a connection that did not negotiate compression.
    let mut c = Raw::connect(server.port, None);
    assert!(!c.response_head.contains("permessage-deflate"));
    c.send_frame(0x80 | 0x40 | 0x1, &deflate(b"{}"));
    assert_eq!(c.close_code(), 1002);

    let after = bystander.collect_for(Duration::from_secs(1)).await;
    assert!(after.iter().filter(|m| m["type"] == "quote").count() > 20);
}

#[tokio::test]
async fn declined_offers_fall_back_to_plain_frames() {
    let server = Server::start(&["--symbols", "2", "--rate", "100"]);
    let mut c = Raw::connect(
        server.port,
        Some("permessage-deflate; server_max_window_bits=10"),
    );
    assert!(!c.response_head.contains("permessage-deflate"));
    c.send_frame(
        0x81,
        subscribe(1, &["SYM0001"], &["quote"])
            .to_string()
            .as_bytes(),
    );
    for _ in 0..5 {
        let (first, _) = c.read_frame();
        assert_eq!(first & 0x40, 0, "no RSV1 without negotiation");
    }
    let server2 = Server::start(&["--symbols", "2", "--rate", "100", "--no-permessage-deflate"]);
    let c = Raw::connect(server2.port, Some(OFFER));
    assert!(!c.response_head.contains("permessage-deflate"));
}
