//! Acceptance 1 of the security issue: the ticket flow from a real WebSocket client; every
//! bad ticket gets 401 before any upgrade and leaves no session behind; a ticket cannot be
//! replayed. Also: credentials on `POST /auth/ticket`, signed tokens, the ticket caps, the
//! start-up warning with auth off, and the `/admin/*` guard.

mod common;

use std::time::Duration;

use common::{sha256_hex, subscribe, ws_open, Server};
use serde_json::Value;

const ALICE_KEY: &str = "alice-0123456789abcdef0123456789abcdef";
const ADMIN_KEY: &str = "admin-fedcba9876543210fedcba9876543210";
const JWT_SECRET: &str = "a-test-secret-of-at-least-32-bytes!!";

fn config(ttl_ms: u64) -> String {
    format!(
        r#"
[feed]
kind = "synthetic"
symbols = 5
rate = 500.0

[auth]
enabled = true
ticket_ttl_ms = {ttl_ms}
max_tickets_per_user = 4
jwt_secret = "{JWT_SECRET}"
admin_key_sha256 = "{admin}"

[[auth.users]]
name = "alice"
key_sha256 = "{alice}"

[[auth.users]]
name = "bob"
"#,
        admin = sha256_hex(ADMIN_KEY),
        alice = sha256_hex(ALICE_KEY),
    )
}

fn token(sub: &str, exp_offset_s: i64, secret: &str) -> String {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    encode(
        &Header::default(),
        &serde_json::json!({"sub": sub, "exp": now + exp_offset_s}),
        &EncodingKey::from_secret(secret.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn stat(server: &Server, key: &str) -> u64 {
    server.stats()[key]
        .as_u64()
        .unwrap_or_else(|| panic!("no stat {key}"))
}

#[tokio::test]
async fn ticket_flow_works_from_a_real_client_and_cannot_be_replayed() {
    let s = Server::start_configured(&config(30_000), &[], &[]);
    let server = &s.server;

    let reply = server.http(
        "POST",
        "/auth/ticket",
        &[&format!("Authorization: Bearer {ALICE_KEY}")],
    );
    assert_eq!(reply.status, 200, "{reply:?}");
    assert!(reply.head.contains("no-store"), "{}", reply.head);
    let body = reply.json();
    assert_eq!(body["user"], "alice");
    assert_eq!(body["expires_in_ms"], 30_000);
    let ticket = body["ticket"].as_str().unwrap().to_string();
    assert_eq!(ticket.len(), 43);

    let target = format!("/ws?ticket={ticket}");
    let mut c = ws_open(server.port, &target, &[], None)
        .await
        .expect("admitted");
    c.send(subscribe(1, &["SYM0001"], &["quote"])).await;
    let ack = c
        .recv_until(Duration::from_secs(5), |m| m["type"] == "subscribed")
        .await;
    assert_eq!(ack["id"], 1);
    c.recv_until(Duration::from_secs(5), |m| m["type"] == "quote")
        .await;

    // The same ticket again: refused, however often.
    for _ in 0..2 {
        let r = ws_open(server.port, &target, &[], None)
            .await
            .err()
            .unwrap();
        assert_eq!(r.status, 401);
        assert_eq!(r.body["reason"], "ticket_used");
    }

    // A signed token works as a credential too.
    let t = server.ticket(&token("bob", 60, JWT_SECRET));
    let mut b = ws_open(server.port, &format!("/ws?ticket={t}"), &[], None)
        .await
        .expect("bob admitted");
    b.send(serde_json::json!({"op":"ping","id":5})).await;
    b.recv_until(Duration::from_secs(5), |m| m["type"] == "pong")
        .await;

    assert_eq!(stat(server, "sessions_active"), 2);
    assert_eq!(stat(server, "ticket_requests_issued"), 2);
    // The log names the user, never the key or the ticket.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = s.log_text();
    assert!(log.contains("alice"), "{log}");
    assert!(!log.contains(ALICE_KEY), "the key was logged");
    assert!(!log.contains(&ticket), "a ticket was logged");
}

#[tokio::test]
async fn every_bad_ticket_gets_401_and_leaves_no_session() {
    let s = Server::start_configured(&config(400), &[], &[]);
    let server = &s.server;
    let good = server.ticket(ALICE_KEY);
    let expired = server.ticket(ALICE_KEY);
    let used = server.ticket(ALICE_KEY);
    drop(
        ws_open(server.port, &format!("/ws?ticket={used}"), &[], None)
            .await
            .expect("first use admitted"),
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    let mut tampered = good.clone().into_bytes();
    tampered[10] = if tampered[10] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let cases: Vec<(String, &str)> = vec![
        ("/ws".into(), "ticket_missing"),
        ("/ws?ticket=".into(), "ticket_missing"),
        ("/ws?other=1".into(), "ticket_missing"),
        ("/ws?ticket=short".into(), "ticket_malformed"),
        (format!("/ws?ticket={}", "!".repeat(43)), "ticket_malformed"),
        (format!("/ws?ticket={good}A"), "ticket_malformed"),
        (format!("/ws?ticket={}", "A".repeat(43)), "ticket_unknown"),
        (format!("/ws?ticket={tampered}"), "ticket_unknown"),
        (format!("/ws?ticket={expired}"), "ticket_expired"),
        (format!("/ws?ticket={used}"), "ticket_used"),
        (
            format!("/ws?ticket={good}&ticket={good}"),
            "ticket_malformed",
        ),
    ];
    let opened_before = stat(server, "sessions_opened");
    for (target, reason) in &cases {
        let r = ws_open(server.port, target, &[], None)
            .await
            .err()
            .unwrap_or_else(|| panic!("{target} was admitted"));
        assert_eq!(r.status, 401, "{target}");
        assert_eq!(r.body["error"], "unauthorized", "{target}: {}", r.body);
        assert_eq!(r.body["reason"], *reason, "{target}: {}", r.body);
        assert!(r.body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // No session was started for any of them, and the counters agree.
    assert_eq!(stat(server, "sessions_opened"), opened_before);
    assert_eq!(stat(server, "sessions_active"), 0);
    let metrics = server.get("/metrics");
    assert!(
        metrics.contains(
            "tickwire_upgrades_refused_total{reason=\"ticket_missing\",status=\"401\"} 3"
        ),
        "{metrics}"
    );
    assert!(metrics
        .contains("tickwire_upgrades_refused_total{reason=\"ticket_used\",status=\"401\"} 1"));
    // The good ticket was never consumed by the refused duplicate-parameter attempt... but a
    // ticket is short-lived: by now it has expired as well.
    let r = ws_open(server.port, &format!("/ws?ticket={good}"), &[], None)
        .await
        .err()
        .unwrap();
    assert_eq!(r.body["reason"], "ticket_expired");
}

#[tokio::test]
async fn the_ticket_endpoint_refuses_bad_credentials() {
    let s = Server::start_configured(&config(30_000), &[], &[]);
    let server = &s.server;
    let expired = format!("Authorization: Bearer {}", token("bob", -120, JWT_SECRET));
    let forged = format!(
        "Authorization: Bearer {}",
        token("bob", 60, "another-secret-that-is-32-bytes-long")
    );
    let stranger = format!("Authorization: Bearer {}", token("mallory", 60, JWT_SECRET));
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![], "credentials_missing"),
        (
            vec!["Authorization: Basic YWxpY2U6eA=="],
            "credentials_malformed",
        ),
        (vec!["Authorization: Bearer"], "credentials_malformed"),
        (
            vec!["Authorization: Bearer wrong-key"],
            "credentials_invalid",
        ),
        (vec![&expired], "token_expired"),
        (vec![&forged], "credentials_invalid"),
        (vec![&stranger], "credentials_invalid"),
    ];
    for (headers, reason) in &cases {
        let r = server.http("POST", "/auth/ticket", headers);
        assert_eq!(r.status, 401, "{headers:?}: {r:?}");
        assert!(
            r.head.contains("WWW-Authenticate: Bearer")
                || r.head.contains("www-authenticate: Bearer"),
            "{}",
            r.head
        );
        assert_eq!(r.json()["reason"], *reason, "{headers:?}");
    }
    // The per-user cap (4 unused tickets) bounds minting.
    for _ in 0..4 {
        server.ticket(ALICE_KEY);
    }
    let r = server.http(
        "POST",
        "/auth/ticket",
        &[&format!("Authorization: Bearer {ALICE_KEY}")],
    );
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.json()["error"], "user_ticket_limit");
    // Another user is not affected.
    server.ticket(&token("bob", 60, JWT_SECRET));
    let m = server.get("/metrics");
    assert!(
        m.contains("tickwire_ticket_requests_total{outcome=\"credentials_invalid\"} 3"),
        "{m}"
    );
}

#[tokio::test]
async fn admin_endpoints_need_the_admin_key_when_one_is_set() {
    let s = Server::start_configured(&config(30_000), &[], &[]);
    let server = &s.server;
    let r = server.http("POST", "/admin/reload", &[]);
    assert_eq!(r.status, 401, "{r:?}");
    let r = server.http("POST", "/admin/reload", &["Authorization: Bearer nope"]);
    assert_eq!(r.status, 401, "{r:?}");
    let r = server.http(
        "POST",
        "/admin/reload",
        &[&format!("Authorization: Bearer {ADMIN_KEY}")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let hooks = r.json()["hooks"].clone();
    assert!(
        hooks
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["name"] == "security" && h["ok"] == true),
        "{hooks}"
    );
    assert_eq!(stat(server, "admin_refused"), 2);
}

#[tokio::test]
async fn auth_off_needs_no_ticket_and_warns_loudly() {
    let s = Server::start_configured("[feed]\nkind = \"synthetic\"\nsymbols = 3\n", &[], &[]);
    let server = &s.server;
    let mut c = ws_open(server.port, "/ws", &[], None).await.expect("open");
    c.send(subscribe(1, &["SYM0001"], &["quote"])).await;
    c.recv_until(Duration::from_secs(5), |m| m["type"] == "subscribed")
        .await;
    let r = server.http("POST", "/auth/ticket", &["Authorization: Bearer x"]);
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "auth_disabled");
    let status: Value = serde_json::from_str(&server.get("/auth/status")).unwrap();
    assert_eq!(status["enabled"], false);
    let log = s.log_text();
    assert!(log.contains("AUTHENTICATION IS OFF"), "{log}");
    assert!(log.contains("WARN"), "{log}");
}

#[test]
fn auth_on_without_users_is_refused_naming_the_key() {
    let file = common::temp_file("auth-no-users.toml", "[auth]\nenabled = true\n");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`auth.users`"));
    // config check never prints the token secret.
    let file = common::temp_file(
        "auth-secret.toml",
        &format!("[auth]\njwt_secret = \"{JWT_SECRET}\"\n"),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .args(["config", "check"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success());
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(!shown.contains(JWT_SECRET), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
}
