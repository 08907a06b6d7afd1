//! Acceptance 2 of the security issue: entitlements are enforced per symbol and channel,
//! with per-user connection and symbol caps, and a reload (admin endpoint or SIGHUP) changes
//! them for sessions already open: streams no longer allowed stop, with an `unsubscribed`
//! message saying why, and a removed user's sessions are closed 4003.

mod common;

use std::time::Duration;

use common::{sha256_hex, subscribe, ws_open, Client, Ended, Server};
use serde_json::{json, Value};

const ALICE: &str = "alice-key-0123456789abcdef0123456789";
const CAROL: &str = "carol-key-0123456789abcdef0123456789";

fn config(alice_symbols: &str, alice_channels: &str, with_carol: bool) -> String {
    let carol = if with_carol {
        format!(
            "[[auth.users]]\nname = \"carol\"\nkey_sha256 = \"{}\"\n",
            sha256_hex(CAROL)
        )
    } else {
        String::new()
    };
    format!(
        r#"
[feed]
kind = "synthetic"
symbols = 20
rate = 4000.0

[auth]
enabled = true

[[auth.users]]
name = "alice"
key_sha256 = "{alice}"
symbols = {alice_symbols}
channels = {alice_channels}
max_connections = 2
max_symbols = 3

{carol}
"#,
        alice = sha256_hex(ALICE),
    )
}

async fn connect(server: &Server, key: &str) -> Client {
    let t = server.ticket(key);
    ws_open(server.port, &format!("/ws?ticket={t}"), &[], None)
        .await
        .expect("admitted")
}

async fn reply(c: &mut Client, id: i64) -> Value {
    c.recv_until(Duration::from_secs(5), |m| {
        m["id"] == id && (m["type"] == "error" || m["type"] == "subscribed")
    })
    .await
}

#[tokio::test]
async fn entitlements_are_enforced_and_follow_a_reload() {
    let s = Server::start_configured(
        &config(r#"["SYM000*"]"#, r#"["quote", "trade"]"#, true),
        &[],
        &[],
    );
    let server = &s.server;
    let mut a = connect(server, ALICE).await;

    // A forbidden channel: nothing applied, the channel named.
    a.send(subscribe(1, &["SYM0001"], &["quote", "book"])).await;
    let e = reply(&mut a, 1).await;
    assert_eq!(e["code"], "not_entitled", "{e}");
    assert!(e["message"].as_str().unwrap().contains("book"));
    // A forbidden symbol among allowed ones: nothing applied, the symbol named.
    a.send(subscribe(2, &["SYM0001", "SYM0012"], &["quote"]))
        .await;
    let e = reply(&mut a, 2).await;
    assert_eq!(e["code"], "not_entitled");
    assert_eq!(e["symbols"], json!(["SYM0012"]));
    // Over the user's 3-symbol cap.
    a.send(subscribe(
        3,
        &["SYM0001", "SYM0002", "SYM0003", "SYM0004"],
        &["quote"],
    ))
    .await;
    assert_eq!(reply(&mut a, 3).await["code"], "limit_exceeded");
    // Nothing of the above flows.
    let msgs = a.collect_for(Duration::from_millis(300)).await;
    assert!(msgs.iter().all(|m| m["symbol"].is_null()), "{msgs:?}");

    // Allowed: quote+trade on three symbols.
    a.send(subscribe(
        4,
        &["SYM0001", "SYM0002", "SYM0003"],
        &["quote", "trade"],
    ))
    .await;
    assert_eq!(reply(&mut a, 4).await["type"], "subscribed");
    let msgs = a.collect_for(Duration::from_millis(800)).await;
    for sym in ["SYM0001", "SYM0002", "SYM0003"] {
        assert!(msgs
            .iter()
            .any(|m| m["symbol"] == sym && m["type"] == "quote"));
    }

    // The connection cap: 2 for alice, the third is refused before the upgrade.
    let _a2 = connect(server, ALICE).await;
    let t = server.ticket(ALICE);
    let r = ws_open(server.port, &format!("/ws?ticket={t}"), &[], None)
        .await
        .err()
        .unwrap();
    assert_eq!(r.status, 429);
    assert_eq!(r.body["reason"], "user_connection_limit");

    let mut carol = connect(server, CAROL).await;
    carol.send(subscribe(1, &["SYM0015"], &["book"])).await;
    assert_eq!(reply(&mut carol, 1).await["type"], "subscribed");

    // Reload: alice keeps SYM0001 and SYM0002 and loses trades; carol is removed.
    std::fs::write(
        server.config_path(),
        config(r#"["SYM0001", "SYM0002"]"#, r#"["quote"]"#, false),
    )
    .unwrap();
    let r = server.http("POST", "/admin/reload", &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.body.contains("alice"), "{}", r.body);

    // Alice is told what she lost, in two messages: SYM0003 entirely, trades of the others.
    let mut revoked = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(5);
    while revoked.len() < 2 && tokio::time::Instant::now() < end {
        if let Some(m) = a.recv(Duration::from_secs(5)).await {
            if m["type"] == "unsubscribed" {
                assert!(m["id"].is_null());
                assert_eq!(m["reason"], "not_entitled");
                revoked.push(m);
            }
        }
    }
    revoked.sort_by_key(|m| m["symbols"].to_string());
    assert_eq!(revoked.len(), 2, "{revoked:?}");
    assert_eq!(revoked[0]["symbols"], json!(["SYM0001", "SYM0002"]));
    assert_eq!(revoked[0]["channels"], json!(["trade"]));
    assert_eq!(revoked[1]["symbols"], json!(["SYM0003"]));
    assert_eq!(revoked[1]["channels"], json!(["quote", "trade"]));
    // Give frames already queued before the revocation a moment to drain, then only
    // SYM0001/SYM0002 quotes arrive.
    a.collect_for(Duration::from_millis(200)).await;
    let after = a.collect_for(Duration::from_millis(800)).await;
    assert!(after.iter().any(|m| m["type"] == "quote"));
    for m in &after {
        if !m["symbol"].is_null() {
            assert_eq!(m["type"], "quote", "{m}");
            assert!(m["symbol"] == "SYM0001" || m["symbol"] == "SYM0002", "{m}");
        }
    }
    // New requests see the new entitlements.
    a.send(subscribe(5, &["SYM0003"], &["quote"])).await;
    assert_eq!(reply(&mut a, 5).await["code"], "not_entitled");
    a.send(subscribe(6, &["SYM0001"], &["trade"])).await;
    assert_eq!(reply(&mut a, 6).await["code"], "not_entitled");

    // Carol's session is closed 4003, and she cannot get a ticket any more.
    match carol.wait_end(Duration::from_secs(5)).await {
        Ended::Closed(Some((code, reason))) => {
            assert_eq!((code, reason.as_str()), (4003, "access revoked"))
        }
        other => panic!("carol: {other:?}"),
    }
    let r = server.http(
        "POST",
        "/auth/ticket",
        &[&format!("Authorization: Bearer {CAROL}")],
    );
    assert_eq!(r.status, 401);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = server.stats();
    assert_eq!(stats["disconnects_auth"], 1, "{stats}");
    assert_eq!(stats["revoked_streams"], 4, "{stats}");

    // SIGHUP applies a change too: give SYM0003 back.
    std::fs::write(
        server.config_path(),
        config(r#"["SYM000*"]"#, r#"["quote"]"#, false),
    )
    .unwrap();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let end = std::time::Instant::now() + Duration::from_secs(5);
    let mut id = 100;
    loop {
        id += 1;
        a.send(subscribe(id, &["SYM0003"], &["quote"])).await;
        if reply(&mut a, id).await["type"] == "subscribed" {
            break;
        }
        assert!(std::time::Instant::now() < end, "SIGHUP reload not applied");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_invalid_reload_changes_nothing() {
    let s = Server::start_configured(&config(r#"["SYM0001"]"#, r#"["quote"]"#, false), &[], &[]);
    let server = &s.server;
    let mut a = connect(server, ALICE).await;
    a.send(subscribe(1, &["SYM0001"], &["quote"])).await;
    assert_eq!(reply(&mut a, 1).await["type"], "subscribed");
    std::fs::write(
        server.config_path(),
        config(r#"["SYM 0001"]"#, r#"["quote"]"#, false),
    )
    .unwrap();
    let r = server.http("POST", "/admin/reload", &[]);
    assert_eq!(r.status, 422);
    assert!(r.body.contains("auth.users[0].symbols"), "{}", r.body);
    // Switching auth off at run time is refused too (it needs a restart).
    std::fs::write(
        server.config_path(),
        "[feed]\nkind = \"synthetic\"\nsymbols = 20\nrate = 4000.0\n",
    )
    .unwrap();
    let r = server.http("POST", "/admin/reload", &[]);
    assert_eq!(r.status, 422);
    assert!(r.body.contains("restart"), "{}", r.body);
    let msgs = a.collect_for(Duration::from_millis(500)).await;
    assert!(msgs.iter().any(|m| m["symbol"] == "SYM0001"));
    assert!(msgs.iter().all(|m| m["type"] != "unsubscribed"));
}
