//! permessage-deflate: negotiation, shared compressed frames that decode to exactly the
//! uncompressed messages (each message compressed on its own, and windows shared by the
//! clients of one stream), and the defined outcome of hostile compressed input (zip bomb:
//! 1009; garbage: 1007; RSV1 without negotiation: 1002) while other clients carry on.
//!
//! The client here is written by hand over a raw socket so the test controls every bit;
//! the Python `websockets` test (`server/tests/py/`) covers a client nobody here wrote.

mod common;

use std::time::Duration;

use common::{subscribe, Client, Raw, Server};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use serde_json::Value;

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

/// An offer that asks for every server message to be compressed on its own.
const OFFER_NO_CONTEXT: &str =
    "permessage-deflate; client_max_window_bits; server_no_context_takeover";

/// A client that keeps one inflater window over its connection, as context takeover asks.
struct WindowInflater(Decompress);

impl WindowInflater {
    fn new() -> Self {
        WindowInflater(Decompress::new(false))
    }
    fn inflate(&mut self, payload: &[u8]) -> Vec<u8> {
        let mut input = payload.to_vec();
        input.extend_from_slice(&[0, 0, 0xff, 0xff]);
        let mut out = Vec::with_capacity(256 * 1024);
        let start = self.0.total_in();
        self.0
            .decompress_vec(&input, &mut out, FlushDecompress::Sync)
            .expect("a frame the window decodes");
        assert_eq!((self.0.total_in() - start) as usize, input.len());
        out
    }
}

#[tokio::test]
async fn compressed_frames_decode_to_the_uncompressed_messages() {
    let server = Server::start(&["--feed", "synthetic", "--symbols", "4", "--rate", "400"]);
    let mut plain = Client::connect(&server).await;
    plain
        .send(subscribe(1, &["SYM0001"], &["quote", "trade", "book"]))
        .await;
    let mut raw = Raw::connect(server.port, Some(OFFER_NO_CONTEXT));
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

/// Reads raw frames until `n` JSON messages arrived, inflating with one window.
fn read_with_window(raw: &mut Raw, inflater: &mut WindowInflater, n: usize, out: &mut Vec<Value>) {
    let target = out.len() + n;
    while out.len() < target {
        let (first, p) = raw.read_frame();
        if first & 0x0f != 0x1 {
            continue;
        }
        let text = if first & 0x40 != 0 {
            inflater.inflate(&p)
        } else {
            p
        };
        out.push(serde_json::from_slice(&text).expect("valid JSON after inflating"));
    }
}

#[tokio::test]
async fn clients_of_one_stream_share_a_window_and_decode_exactly_what_plain_clients_get() {
    let server = Server::start(&["--feed", "synthetic", "--symbols", "4", "--rate", "800"]);
    let channels = ["quote", "trade", "book"];
    let mut plain = Client::connect(&server).await;
    plain
        .send(subscribe(1, &["SYM0001", "SYM0002"], &channels))
        .await;
    let mut raws: Vec<Raw> = (0..3)
        .map(|_| Raw::connect(server.port, Some(OFFER)))
        .collect();
    for r in &mut raws {
        // Browsers' offer leaves the server's context to the server: it keeps it.
        assert!(
            r.response_head.contains(
                "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover"
            ) || r.response_head.contains(
                "sec-websocket-extensions: permessage-deflate; client_no_context_takeover"
            ),
            "{}",
            r.response_head
        );
        let sub = subscribe(1, &["SYM0001", "SYM0002"], &channels).to_string();
        r.send_frame(0x81, sub.as_bytes());
    }
    let mut inflaters: Vec<WindowInflater> = (0..3).map(|_| WindowInflater::new()).collect();
    let mut got: Vec<Vec<Value>> = vec![Vec::new(); 3];
    for (i, r) in raws.iter_mut().enumerate() {
        read_with_window(r, &mut inflaters[i], 200, &mut got[i]);
    }
    // One client widens its subscription mid-stream (it leaves the shared window for its
    // snapshot and joins another), another keeps reading: both keep decoding.
    let sub = subscribe(2, &["SYM0003"], &channels).to_string();
    raws[0].send_frame(0x81, sub.as_bytes());
    for (i, r) in raws.iter_mut().enumerate() {
        read_with_window(r, &mut inflaters[i], 300, &mut got[i]);
    }
    let stats = server.stats();
    assert!(
        stats["shared_stream_frames"].as_u64().unwrap() > 100,
        "no shared window was used: {stats}"
    );
    let plain_msgs = plain.collect_for(Duration::from_millis(1500)).await;
    let key = |m: &Value| {
        (
            m["type"].clone(),
            m["symbol"].clone(),
            m["chan_seq"].clone(),
        )
    };
    for (i, msgs) in got.iter().enumerate() {
        let mut compared = 0;
        for m in msgs.iter().filter(|m| m["chan_seq"].is_u64()) {
            if let Some(p) = plain_msgs.iter().find(|p| key(p) == key(m)) {
                assert_eq!(p, m, "client {i}");
                compared += 1;
            }
        }
        assert!(
            compared > 100,
            "client {i}: only {compared} messages in common"
        );
    }
}

#[tokio::test]
async fn hostile_compressed_input_gets_its_close_code_and_others_carry_on() {
    let server = Server::start(&["--feed", "synthetic", "--symbols", "4", "--rate", "1000"]);
    let mut bystander = Client::connect(&server).await;
    bystander.send(subscribe(1, &["SYM0002"], &["quote"])).await;
    bystander.collect_for(Duration::from_millis(300)).await;

    // A zip bomb: 40 KiB on the wire, 40 MiB inflated (the limit is 64 KiB).
    let bomb = deflate(&vec![b' '; 40 << 20]);
    assert!(bomb.len() < 64 << 10);
    let mut c = Raw::connect(server.port, Some(OFFER));
    c.send_frame(0x80 | 0x40 | 0x1, &bomb);
    assert_eq!(c.close_code(), 1009);

    // Over the limit by a little, with the decoder's output buffer (four times the
    // compressed size, doubled) landing exactly on the limit: 1,024 compressed bytes. This
    // once panicked the decoder (found by the ws_inbound fuzz target).
    let landing = (0..4000)
        .map(|noise| {
            let mut data: Vec<u8> = (0..noise as u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
                .collect();
            data.resize(70 << 10, b' ');
            deflate(&data)
        })
        .find(|c| c.len() == 1024)
        .expect("some noise length compresses to exactly 1,024 bytes");
    let mut c = Raw::connect(server.port, Some(OFFER));
    c.send_frame(0x80 | 0x40 | 0x1, &landing);
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
    let server = Server::start(&["--feed", "synthetic", "--symbols", "2", "--rate", "100"]);
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
    let server2 = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "2",
        "--rate",
        "100",
        "--no-permessage-deflate",
    ]);
    let c = Raw::connect(server2.port, Some(OFFER));
    assert!(!c.response_head.contains("permessage-deflate"));
}
