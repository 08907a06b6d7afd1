//! Acceptance 2 of the operations issue: `/readyz` answers 503 with reasons while a feed is
//! not live (here: after an injected feed failure, for the 2 s restart backoff) and 200 once
//! every book is live again; `/healthz` stays 200 throughout. (Not ready *before* the
//! first snapshot is covered in-process by `app::tests`, where the feed can be held back.)

mod common;

use std::time::{Duration, Instant};

use common::Server;
use serde_json::Value;

fn readyz(server: &Server) -> (u16, Value) {
    let raw = server.raw_get("/readyz");
    let status: u16 = raw
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, serde_json::from_str(body).expect("readyz JSON"))
}

/// Polls until `/readyz` answers `want`; returns the body and when it first did.
fn wait_readyz(server: &Server, want: u16, within: Duration) -> (Value, Instant) {
    let end = Instant::now() + within;
    loop {
        let (status, body) = readyz(server);
        if status == want {
            return (body, Instant::now());
        }
        assert!(
            Instant::now() < end,
            "/readyz did not answer {want} within {within:?}; last: {status} {body}"
        );
        std::thread::sleep(Duration::from_millis(25));
    }
}

#[test]
fn readyz_is_503_while_a_feed_is_stale_and_200_when_live() {
    let server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "5",
        "--rate",
        "500",
        "--enable-fault-injection",
        "--feed-backoff-ms",
        "2000",
    ]);
    let (body, _) = wait_readyz(&server, 200, Duration::from_secs(10));
    assert_eq!(body["ready"], true);
    assert_eq!(body["reasons"].as_array().unwrap().len(), 0);

    for round in 0..2 {
        let fault_at = Instant::now();
        server.post("/admin/fault/feed/synthetic");
        let (body, _) = wait_readyz(&server, 503, Duration::from_secs(2));
        assert_eq!(body["ready"], false);
        let stale_reason = |body: &Value| -> Option<String> {
            body["reasons"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(Value::as_str)
                .find(|r| r.starts_with("feed synthetic: ") && r.ends_with(" of 5 symbols stale"))
                .map(str::to_string)
        };
        assert!(
            stale_reason(&body).is_some(),
            "round {round}: reasons {}",
            body["reasons"]
        );
        // The books learn of the failure one by one; soon all five are stale.
        let end = Instant::now() + Duration::from_secs(1);
        loop {
            let (status, body) = readyz(&server);
            assert_eq!(status, 503, "round {round}");
            if stale_reason(&body).as_deref() == Some("feed synthetic: 5 of 5 symbols stale") {
                break;
            }
            assert!(Instant::now() < end, "round {round}: {body}");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(server.get("/healthz"), "ok\n", "alive while not ready");
        // Still not ready well inside the 2 s backoff...
        std::thread::sleep(Duration::from_millis(1000));
        let (status, _) = readyz(&server);
        assert_eq!(status, 503, "round {round}: ready again during the backoff");
        // ...and ready again once the restarted feed's snapshots are in.
        let (_, back) = wait_readyz(&server, 200, Duration::from_secs(10));
        let down_for = back - fault_at;
        assert!(
            down_for >= Duration::from_millis(1500),
            "round {round}: ready after only {down_for:?}, the backoff is 2 s"
        );
        let m = server.get("/metrics");
        assert!(
            m.contains("tickwire_feed_live{feed=\"synthetic\"} 1"),
            "{m}"
        );
    }
}
