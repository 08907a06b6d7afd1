//! Bad input on NATS gets a defined outcome: a gateway counts and drops undecodable
//! messages (its clients notice nothing), and an engine answers a snapshot request for a
//! symbol it does not have with an empty reply at once (counted), not with silence.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::*;

/// A bare NATS protocol connection (text protocol over TCP).
struct RawNats {
    s: TcpStream,
    r: BufReader<TcpStream>,
}

impl RawNats {
    fn connect(nats: &Nats) -> RawNats {
        let s = TcpStream::connect(("127.0.0.1", nats.port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut r = BufReader::new(s.try_clone().unwrap());
        let mut info = String::new();
        r.read_line(&mut info).unwrap();
        assert!(info.starts_with("INFO"), "{info}");
        let mut n = RawNats { s, r };
        n.send(b"CONNECT {\"verbose\":false,\"name\":\"test\"}\r\n");
        n
    }
    fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }
    fn publish(&mut self, subject: &str, reply: Option<&str>, payload: &[u8]) {
        let head = match reply {
            Some(r) => format!("PUB {subject} {r} {}\r\n", payload.len()),
            None => format!("PUB {subject} {}\r\n", payload.len()),
        };
        self.send(head.as_bytes());
        self.send(payload);
        self.send(b"\r\n");
    }
    /// The payload length of the next MSG (PINGs answered on the way).
    fn next_msg_len(&mut self) -> usize {
        loop {
            let mut line = String::new();
            self.r.read_line(&mut line).expect("read from nats-server");
            if line.starts_with("PING") {
                self.send(b"PONG\r\n");
            } else if let Some(rest) = line.strip_prefix("MSG ") {
                let len: usize = rest.split_whitespace().last().unwrap().parse().unwrap();
                let mut body = vec![0u8; len + 2];
                std::io::Read::read_exact(&mut self.r, &mut body).unwrap();
                return len;
            }
        }
    }
}

#[test]
fn undecodable_messages_are_counted_and_dropped_and_unknown_snapshots_answered_empty() {
    let nats = Nats::start(false);
    let engine = Tickwire::engine(&nats, &["--symbols", "4", "--rate", "400"]);
    let gateway = Tickwire::gateway(&nats, &[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&gateway.ws_url()).await;
        c.subscribe(&["SYM0001"], &["quote", "trade"]).await;
        let mut got = c.collect_for(Duration::from_millis(400)).await;
        let mut raw = RawNats::connect(&nats);
        // Not our encoding at all; a wrong version; a truncated header; garbage heartbeat.
        raw.publish("md.synthetic.SYM0001.quote", None, b"hello");
        let mut wrong_version = vec![9u8; 60];
        wrong_version[1] = 1;
        raw.publish("md.synthetic.SYM0001.quote", None, &wrong_version);
        raw.publish("md.synthetic.SYM0001.trade", None, &[1, 2, 0, 0]);
        raw.publish("md.ctl.heartbeat", None, b"{not json");
        got.extend(c.collect_for(Duration::from_millis(600)).await);
        let stats = gateway.stats();
        assert!(
            stats["cluster"]["decode_errors"].as_u64().unwrap() >= 4,
            "{stats}"
        );
        assert!(assert_no_gap(&got, "client while garbage was published") > 20);
        assert!(!got
            .iter()
            .any(|m| kind(m) == "error" || is_status(m, "stale")));
        assert!(gateway.ready());

        // A snapshot of a symbol the engine does not have: an empty reply.
        raw.send(b"SUB _INBOX.test 1\r\n");
        raw.publish("md.snap.synthetic.NOPE", Some("_INBOX.test"), b"");
        assert_eq!(raw.next_msg_len(), 0);
        assert_eq!(engine.stats()["cluster"]["bad_requests"], 1);
    });
}

#[test]
fn a_subscriber_no_engine_can_serve_is_told_stale_not_left_waiting() {
    let nats = Nats::start(false);
    let mut engine = Tickwire::engine(&nats, &["--symbols", "4", "--rate", "100"]);
    let gateway = Tickwire::gateway(&nats, &["--engine-timeout-ms", "500"]);
    engine.kill();
    wait_until(
        Duration::from_secs(5),
        "the gateway to miss the engine",
        || !gateway.ready(),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut c = Client::connect(&gateway.ws_url()).await;
        c.subscribe(&["SYM0003"], &["quote"]).await;
        let got = c
            .until(Duration::from_secs(5), |m| is_status(m, "stale"))
            .await;
        let stale = got.last().unwrap();
        assert_eq!(stale["symbol"], "SYM0003");
        assert!(
            stale["reason"]
                .as_str()
                .unwrap()
                .starts_with("upstream lost"),
            "{stale}"
        );
    });
}
