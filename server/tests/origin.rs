//! Acceptance 4 of the security issue: a disallowed Origin gets 403 before any upgrade; an
//! allowed one connects and receives data.

mod common;

use std::time::Duration;

use common::{subscribe, ws_open, Server};

#[tokio::test]
async fn disallowed_origins_get_403_and_allowed_ones_connect() {
    let s = Server::start_configured(
        "[feed]\nkind = \"synthetic\"\nsymbols = 3\nrate = 300.0\n[origin]\nallowed = [\"https://app.example.com\", \"https://*.desk.example\"]\n",
        &[],
        &[],
    );
    let server = &s.server;
    let own = format!("http://127.0.0.1:{}", server.port);
    for refused in [
        "https://evil.example",
        "https://app.example.com.evil.example",
        "http://app.example.com",
        "https://desk.example",
        "null",
        "not an origin",
        "http://127.0.0.1:1",
    ] {
        let r = ws_open(server.port, "/ws", &[("Origin", refused)], None)
            .await
            .err()
            .unwrap_or_else(|| panic!("{refused} was admitted"));
        assert_eq!(r.status, 403, "{refused}");
        assert_eq!(r.body["error"], "forbidden");
        assert_eq!(r.body["reason"], "origin_not_allowed", "{refused}");
    }
    for allowed in [
        "https://app.example.com",
        "https://APP.example.com:443",
        "https://eu.desk.example",
        own.as_str(),
    ] {
        let mut c = ws_open(server.port, "/ws", &[("Origin", allowed)], None)
            .await
            .unwrap_or_else(|r| panic!("{allowed} refused: {r:?}"));
        c.send(subscribe(1, &["SYM0001"], &["quote"])).await;
        c.recv_until(Duration::from_secs(5), |m| m["type"] == "quote")
            .await;
    }
    // No Origin at all (not a browser) is allowed by default.
    assert!(ws_open(server.port, "/ws", &[], None).await.is_ok());
    let stats = server.stats();
    assert_eq!(stats["upgrades_refused_origin_not_allowed"], 7);
    assert_eq!(stats["sessions_opened"], 5);
    let m = server.get("/metrics");
    assert!(m.contains(
        "tickwire_upgrades_refused_total{reason=\"origin_not_allowed\",status=\"403\"} 7"
    ));
}

#[tokio::test]
async fn a_strict_policy_refuses_missing_and_same_host_origins() {
    let s = Server::start_configured(
        "[feed]\nkind = \"synthetic\"\nsymbols = 3\n[origin]\nallowed = [\"https://app.example.com\"]\nallow_missing = false\nallow_same_host = false\n",
        &[],
        &[],
    );
    let server = &s.server;
    let own = format!("http://127.0.0.1:{}", server.port);
    let r = ws_open(server.port, "/ws", &[], None).await.err().unwrap();
    assert_eq!(r.status, 403);
    let r = ws_open(server.port, "/ws", &[("Origin", &own)], None)
        .await
        .err()
        .unwrap();
    assert_eq!(r.status, 403);
    assert!(ws_open(
        server.port,
        "/ws",
        &[("Origin", "https://app.example.com")],
        None
    )
    .await
    .is_ok());
    // The ticket endpoint answers CORS preflights for listed origins only.
    let r = server.http(
        "OPTIONS",
        "/auth/ticket",
        &[
            "Origin: https://app.example.com",
            "Access-Control-Request-Method: POST",
        ],
    );
    assert_eq!(r.status, 204, "{r:?}");
    assert!(r
        .head
        .to_ascii_lowercase()
        .contains("access-control-allow-origin: https://app.example.com"));
    let r = server.http("OPTIONS", "/auth/ticket", &["Origin: https://evil.example"]);
    assert_eq!(r.status, 403);
}
