//! Acceptance 6 of the core issue: every malformed client message gets its defined error,
//! the session stays open, and other subscriptions keep flowing. Oversized frames close the
//! offending connection with 1009 without disturbing anyone else. The security issue adds
//! the table of malformed upgrades, tickets, credentials, origins and admin requests, each
//! with its HTTP status and reason (rate limits are in `limits.rs`).

mod common;

use std::time::Duration;

use common::{subscribe, Client, Ended, Server};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// (what the client sends, expected error code, expected id in the reply)
fn cases() -> Vec<(String, &'static str, Value)> {
    let huge: Vec<String> = (0..5000).map(|i| format!("S{i}")).collect();
    let sub = |extra: &str| {
        format!(r#"{{"op":"subscribe","id":20,"symbols":["SYM0001"],"channels":["quote"]{extra}}}"#)
    };
    vec![
        ("not json".into(), "bad_request", Value::Null),
        (r#"{"op":"subscribe""#.into(), "bad_request", Value::Null),
        ("[]".into(), "bad_request", Value::Null),
        (r#""hello""#.into(), "bad_request", Value::Null),
        ("42".into(), "bad_request", Value::Null),
        ("{}".into(), "bad_request", Value::Null),
        (r#"{"op":5,"id":1}"#.into(), "bad_request", json!(1)),
        (r#"{"op":"dance","id":2}"#.into(), "unknown_op", json!(2)),
        (
            r#"{"op":"subscribe","id":3}"#.into(),
            "bad_request",
            json!(3),
        ),
        (
            r#"{"op":"subscribe","id":4,"symbols":"SYM0001","channels":["quote"]}"#.into(),
            "bad_request",
            json!(4),
        ),
        (
            r#"{"op":"subscribe","id":5,"symbols":[],"channels":["quote"]}"#.into(),
            "bad_request",
            json!(5),
        ),
        (
            r#"{"op":"subscribe","id":6,"symbols":[1,2],"channels":["quote"]}"#.into(),
            "bad_request",
            json!(6),
        ),
        (
            r#"{"op":"subscribe","id":7,"symbols":["NOPE"],"channels":["quote"]}"#.into(),
            "unknown_symbol",
            json!(7),
        ),
        (
            r#"{"op":"subscribe","id":8,"symbols":["SYM0001"]}"#.into(),
            "bad_request",
            json!(8),
        ),
        (
            r#"{"op":"subscribe","id":9,"symbols":["SYM0001"],"channels":[]}"#.into(),
            "bad_request",
            json!(9),
        ),
        (
            r#"{"op":"subscribe","id":10,"symbols":["SYM0001"],"channels":["candles"]}"#.into(),
            "unknown_channel",
            json!(10),
        ),
        (
            r#"{"op":"subscribe","id":11,"symbols":["SYM0001"],"channels":"quote"}"#.into(),
            "bad_request",
            json!(11),
        ),
        (sub(r#","depth":0"#), "bad_request", json!(20)),
        (sub(r#","depth":51"#), "bad_request", json!(20)),
        (sub(r#","depth":"10""#), "bad_request", json!(20)),
        (sub(r#","throttle_ms":-1"#), "bad_request", json!(20)),
        (
            sub(r#","throttle_ms":1000000000"#),
            "bad_request",
            json!(20),
        ),
        (sub(r#","chanels":["quote"]"#), "bad_request", json!(20)),
        (
            json!({"op":"subscribe","id":12,"symbols":huge,"channels":["quote"]}).to_string(),
            "limit_exceeded",
            json!(12),
        ),
        (
            r#"{"op":"subscribe","id":{"a":1},"symbols":["SYM0001"],"channels":["quote"]}"#.into(),
            "bad_request",
            Value::Null,
        ),
        (
            r#"{"op":"ping","id":13,"extra":true}"#.into(),
            "bad_request",
            json!(13),
        ),
        (
            r#"{"op":"unsubscribe","id":14,"symbols":["NOPE"],"channels":["quote"]}"#.into(),
            "unknown_symbol",
            json!(14),
        ),
        (
            json!({"op":"subscribe","id":15,"symbols":["X".repeat(1000)],"channels":["quote"]})
                .to_string(),
            "unknown_symbol",
            json!(15),
        ),
        (
            r#"{"op":"subscribe","id":"s-16","symbols":["SYM0001","NOPE"],"channels":["trade"]}"#
                .into(),
            "unknown_symbol",
            json!("s-16"),
        ),
        (sub(r#","depth":10.5"#), "bad_request", json!(20)),
        (r#"{"op":null,"id":17}"#.into(), "bad_request", json!(17)),
        // Nesting deep enough to exhaust a recursive parser's stack, within the 64 KiB limit.
        (
            format!("{}{}", "[".repeat(30_000), "]".repeat(30_000)),
            "bad_request",
            Value::Null,
        ),
    ]
}

#[tokio::test]
async fn every_malformed_message_gets_its_error_and_the_session_survives() {
    let server = Server::start(&["--feed", "synthetic", "--symbols", "5", "--rate", "500"]);
    let mut c = Client::connect(&server).await;
    c.send(subscribe(100, &["SYM0002"], &["quote"])).await;
    let cases = cases();
    assert!(cases.len() >= 30);
    for (i, (text, code, id)) in cases.iter().enumerate() {
        c.send_raw(Message::text(text.clone())).await;
        let err = c
            .recv_until(Duration::from_secs(5), |m| m["type"] == "error")
            .await;
        assert_eq!(err["code"], *code, "case {i}: {text:.80} -> {err}");
        assert_eq!(err["id"], *id, "case {i}: id echoed");
        assert!(!err["message"].as_str().unwrap().is_empty());
        // Still open and still answering.
        c.send(json!({"op":"ping","id":1000 + i})).await;
        let pong = c
            .recv_until(Duration::from_secs(5), |m| m["type"] == "pong")
            .await;
        assert_eq!(pong["id"], 1000 + i);
    }
    // A binary frame is refused with its own code.
    c.send_raw(Message::binary(vec![1u8, 2, 3])).await;
    let err = c
        .recv_until(Duration::from_secs(5), |m| m["type"] == "error")
        .await;
    assert_eq!(err["code"], "unsupported");
    // Nothing above was applied: only the original subscription flows.
    let msgs = c.collect_for(Duration::from_millis(500)).await;
    assert!(msgs.iter().any(|m| m["symbol"] == "SYM0002"));
    assert!(msgs
        .iter()
        .all(|m| m["symbol"].is_null() || m["symbol"] == "SYM0002"));
}

#[tokio::test]
async fn oversized_frame_closes_1009_and_others_are_unaffected() {
    let server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "5",
        "--rate",
        "1000",
        "--max-message-bytes",
        "4096",
    ]);
    let mut bystander = Client::connect(&server).await;
    bystander
        .send(subscribe(1, &["SYM0001"], &["trade", "quote"]))
        .await;
    bystander.collect_for(Duration::from_millis(300)).await;

    let mut abuser = Client::connect(&server).await;
    abuser.send_raw(Message::text("x".repeat(10_000))).await;
    match abuser.wait_end(Duration::from_secs(5)).await {
        Ended::Closed(Some((code, reason))) => {
            assert_eq!(code, 1009);
            assert_eq!(reason, "message too big");
        }
        other => panic!("expected close 1009, got {other:?}"),
    }
    let after = bystander.collect_for(Duration::from_secs(1)).await;
    assert!(after.iter().filter(|m| m["type"] == "quote").count() > 10);
}

/// (method, path, extra headers, with WebSocket headers, status, `reason` or `error`)
type HttpCase<'a> = (&'a str, String, Vec<&'a str>, bool, u16, &'a str);

/// The security issue's table: malformed upgrades, tickets, credentials, origins and admin
/// requests, each with its defined HTTP status and reason, and none leaving a session.
#[test]
fn every_malformed_upgrade_or_credential_gets_its_answer() {
    use common::sha256_hex;
    let alice = "alice-key-for-the-malformed-table-000000";
    let admin = "admin-key-for-the-malformed-table-000000";
    let s = Server::start_configured(
        &format!(
            "[feed]\nkind = \"synthetic\"\nsymbols = 3\n[origin]\nallowed = [\"https://app.example.com\"]\n\
             [auth]\nenabled = true\nadmin_key_sha256 = \"{}\"\n\
             jwt_secret = \"a-secret-for-signed-tokens-32-bytes!\"\n\
             [[auth.users]]\nname = \"alice\"\nkey_sha256 = \"{}\"\n",
            sha256_hex(admin),
            sha256_hex(alice)
        ),
        &[],
        &[],
    );
    let server = &s.server;
    let ws = [
        "Upgrade: websocket",
        "Connection: Upgrade",
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
        "Sec-WebSocket-Version: 13",
    ];
    let good = server.ticket(alice);
    let long = "A".repeat(5000);
    let bearer_long = format!("Authorization: Bearer {long}");
    let a43 = "A".repeat(43);
    let plus43 = format!("{}+", "A".repeat(42));
    let eq43 = "=".repeat(43);
    let pct = "%41".repeat(43);
    let a44 = "A".repeat(44);
    let a42 = "A".repeat(42);
    let dup = format!("/ws?ticket={a43}&ticket={a43}");
    let unsigned = "Authorization: Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsImV4cCI6OTk5OTk5OTk5OX0.";
    let with_good = format!("/ws?ticket={good}");
    let basic_admin = format!("Authorization: Basic {admin}");
    let q = |t: &str| format!("/ws?ticket={t}");
    // (method, path, extra headers, with WebSocket headers, status, `reason` or `error`)
    let cases: Vec<HttpCase> = vec![
        ("GET", "/ws".into(), vec![], true, 401, "ticket_missing"),
        ("GET", q(""), vec![], true, 401, "ticket_missing"),
        (
            "GET",
            "/ws?tickets=x".into(),
            vec![],
            true,
            401,
            "ticket_missing",
        ),
        ("GET", q("short"), vec![], true, 401, "ticket_malformed"),
        ("GET", q(&a42), vec![], true, 401, "ticket_malformed"),
        ("GET", q(&a44), vec![], true, 401, "ticket_malformed"),
        ("GET", q(&plus43), vec![], true, 401, "ticket_malformed"),
        ("GET", q(&eq43), vec![], true, 401, "ticket_malformed"),
        ("GET", q(&pct), vec![], true, 401, "ticket_malformed"),
        ("GET", q(&long), vec![], true, 401, "ticket_malformed"),
        ("GET", dup, vec![], true, 401, "ticket_malformed"),
        ("GET", q(&a43), vec![], true, 401, "ticket_unknown"),
        // Origin is judged first: a foreign page never burns the ticket.
        (
            "GET",
            with_good.clone(),
            vec!["Origin: https://evil.example"],
            true,
            403,
            "origin_not_allowed",
        ),
        (
            "GET",
            with_good.clone(),
            vec!["Origin: null"],
            true,
            403,
            "origin_not_allowed",
        ),
        (
            "GET",
            with_good.clone(),
            vec!["Origin: http://"],
            true,
            403,
            "origin_not_allowed",
        ),
        (
            "GET",
            with_good.clone(),
            vec!["Origin: https://app.example.com/path"],
            true,
            403,
            "origin_not_allowed",
        ),
        // Not a WebSocket handshake at all.
        ("GET", with_good.clone(), vec![], false, 400, ""),
        (
            "POST",
            "/auth/ticket".into(),
            vec![],
            false,
            401,
            "credentials_missing",
        ),
        (
            "POST",
            "/auth/ticket".into(),
            vec!["Authorization: Bearer"],
            false,
            401,
            "credentials_malformed",
        ),
        (
            "POST",
            "/auth/ticket".into(),
            vec!["Authorization: Token abc"],
            false,
            401,
            "credentials_malformed",
        ),
        (
            "POST",
            "/auth/ticket".into(),
            vec!["Authorization: Basic YWxpY2U6eA=="],
            false,
            401,
            "credentials_malformed",
        ),
        (
            "POST",
            "/auth/ticket".into(),
            vec![&bearer_long],
            false,
            401,
            "credentials_malformed",
        ),
        (
            "POST",
            "/auth/ticket".into(),
            vec!["Authorization: Bearer wrong"],
            false,
            401,
            "credentials_invalid",
        ),
        (
            "POST",
            "/auth/ticket".into(),
            vec![unsigned],
            false,
            401,
            "credentials_invalid",
        ),
        (
            "POST",
            "/auth/ticket".into(),
            vec!["Authorization: Bearer eyJ.x.y"],
            false,
            401,
            "credentials_invalid",
        ),
        (
            "OPTIONS",
            "/auth/ticket".into(),
            vec!["Origin: https://evil.example"],
            false,
            403,
            "origin_not_allowed",
        ),
        (
            "POST",
            "/admin/reload".into(),
            vec![],
            false,
            401,
            "admin_refused",
        ),
        (
            "POST",
            "/admin/reload".into(),
            vec!["Authorization: Bearer wrong"],
            false,
            401,
            "admin_refused",
        ),
        (
            "POST",
            "/admin/reload".into(),
            vec![&basic_admin],
            false,
            401,
            "admin_refused",
        ),
    ];
    assert!(cases.len() >= 25);
    for (i, (method, path, extra, websocket, status, reason)) in cases.iter().enumerate() {
        let mut headers: Vec<&str> = extra.clone();
        if *websocket {
            headers.extend(ws.iter());
        }
        let r = server.http(method, path, &headers);
        assert_eq!(
            r.status, *status,
            "case {i}: {method} {path:.60} {extra:?}: {r:?}"
        );
        if !reason.is_empty() {
            let body = r.json();
            let got = body
                .get("reason")
                .or(body.get("error"))
                .cloned()
                .unwrap_or_default();
            assert_eq!(got, *reason, "case {i}: {body}");
        }
    }
    // None of them made a session, and the good ticket survived the refused attempts.
    assert_eq!(server.stats()["sessions_opened"], 0);
    let r = server.http("GET", &with_good, &ws);
    assert_eq!(r.status, 101, "{r:?}");
}

/// Regression (found by the `ws_inbound` fuzz target): a continuation frame announcing a
/// 64-bit length near `u64::MAX` after a buffered fragment overflowed the size check and
/// panicked the decoder. It must close 1009 like any oversized message.
#[test]
fn a_huge_64_bit_length_after_a_fragment_closes_1009() {
    use std::io::Write;
    let server = Server::start(&["--feed", "synthetic", "--symbols", "3"]);
    let mut raw = common::Raw::connect(server.port, None);
    raw.send_frame(0x01, b"{\"op\":"); // text, not final
    let mut f = vec![0x80u8, 0x80 | 127];
    f.extend_from_slice(&u64::MAX.to_be_bytes());
    f.extend_from_slice(&[1, 2, 3, 4]);
    raw.s.write_all(&f).unwrap();
    assert_eq!(raw.close_code(), 1009);
    // The server is fine.
    assert_eq!(server.get("/healthz").trim(), "ok");
}
