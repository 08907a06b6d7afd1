//! Acceptance 3 of the operations issue: invalid configurations are refused at start-up
//! with a message naming the bad key; `tickwire config check` agrees; a valid file,
//! environment overrides and flags layer as documented.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::Server;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_tickwire"));
    c.env("RUST_LOG", "warn");
    // This test controls every TICKWIRE_* variable the binary sees.
    for (k, _) in std::env::vars() {
        if k.starts_with("TICKWIRE_") {
            c.env_remove(k);
        }
    }
    c
}

fn write_config(name: &str, text: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tickwire-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(format!("{name}.toml"));
    std::fs::write(&p, text).unwrap();
    p
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// (case, file contents, key the error must name)
const INVALID: &[(&str, &str, &str)] = &[
    (
        "unknown top-level key",
        "listn = \"127.0.0.1:1\"\n",
        "listn",
    ),
    ("unknown table", "[sesion]\nmax_lag_ms = 5\n", "sesion"),
    (
        "sweep too often for its ten slices",
        "[session]\nsweep_interval_ms = 5\n",
        "session.sweep_interval_ms",
    ),
    (
        "unknown key in a table",
        "[session]\nmax_lag = 5\n",
        "session.max_lag",
    ),
    (
        "wrong type",
        "[session]\nmax_lag_ms = \"5s\"\n",
        "session.max_lag_ms",
    ),
    (
        "negative size",
        "[session]\nmax_queued_bytes = -1\n",
        "session.max_queued_bytes",
    ),
    ("bad listen address", "listen = \"localhost\"\n", "listen"),
    ("zero workers", "workers = 0\n", "workers"),
    ("too many workers", "workers = 65\n", "workers"),
    ("unknown feed", "[feed]\nkind = \"nasdaq\"\n", "feed.kind"),
    (
        "bad replay speed",
        "[replay]\nspeed = \"fast\"\n",
        "replay.speed",
    ),
    ("zero replay speed", "[replay]\nspeed = 0\n", "replay.speed"),
    (
        "bad replay time",
        "[replay]\nfrom = \"yesterday\"\n",
        "replay.from",
    ),
    (
        "inverted replay range",
        "[replay]\nfrom = \"2025-06-16T15:00:00Z\"\nto = \"2025-06-16T14:00:00Z\"\n",
        "replay.to",
    ),
    (
        "no replays allowed",
        "[replay]\nmax_total = 0\n",
        "replay.max_total",
    ),
    (
        "per-user replays above the total",
        "[replay]\nmax_per_user = 10\nmax_total = 5\n",
        "replay.max_per_user",
    ),
    (
        "zero replay threads",
        "[replay]\nthreads = 0\n",
        "replay.threads",
    ),
    ("unknown replay key", "[replay]\nsped = 1\n", "replay.sped"),
    ("zero symbols", "[feed]\nkind = \"synthetic\"\nsymbols = 0\n", "feed.symbols"),
    (
        "synthetic market settings without the synthetic feed",
        "[feed]\nsymbols = 3\n",
        "feed.symbols",
    ),
    ("negative rate", "[feed]\nkind = \"synthetic\"\nrate = -1.0\n", "feed.rate"),
    ("rate not a number", "[feed]\nkind = \"synthetic\"\nrate = nan\n", "feed.rate"),
    (
        "ping not shorter than timeout",
        "[session]\nping_interval_ms = 5000\nclient_timeout_ms = 5000\n",
        "session.ping_interval_ms",
    ),
    (
        "zero lag",
        "[session]\nmax_lag_ms = 0\n",
        "session.max_lag_ms",
    ),
    (
        "zero drain",
        "[shutdown]\ndrain_ms = 0\n",
        "shutdown.drain_ms",
    ),
    (
        "zero sampling",
        "[metrics]\nlatency_sample_every = 0\n",
        "metrics.latency_sample_every",
    ),
    ("log not a bool", "[log]\njson = \"yes\"\n", "log.json"),
    (
        "shared deflate level out of range",
        "[session]\nshared_deflate_level = 0\n",
        "session.shared_deflate_level",
    ),
    (
        "tiny demotion threshold",
        "[session]\nshared_deflate_demote_bytes = 10\n",
        "session.shared_deflate_demote_bytes",
    ),
    ("table where a value goes", "[listen]\nx = 1\n", "listen"),
    ("auth without users", "[auth]\nenabled = true\n", "auth.users"),
    ("unknown auth key", "[auth]\nenable = true\n", "auth.enable"),
    (
        "key not a digest",
        "[auth]\nenabled = true\n[[auth.users]]\nname = \"a\"\nkey_sha256 = \"secret\"\n",
        "auth.users[0].key_sha256",
    ),
    (
        "user without a name",
        "[auth]\nenabled = true\n[[auth.users]]\nkey_sha256 = \"secret\"\n",
        "auth.users[0].name",
    ),
    (
        "unknown entitled channel",
        "[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n[[auth.users]]\nname = \"a\"\nchannels = [\"candles\"]\n",
        "auth.users[0].channels",
    ),
    (
        "bad symbol pattern",
        "[auth]\njwt_secret = \"0123456789abcdef0123456789abcdef\"\n[[auth.users]]\nname = \"a\"\nsymbols = [\"BTC USD\"]\n",
        "auth.users[0].symbols",
    ),
    ("short token secret", "[auth]\njwt_secret = \"short\"\n", "auth.jwt_secret"),
    ("bad admin digest", "[auth]\nadmin_key_sha256 = \"xyz\"\n", "auth.admin_key_sha256"),
    ("zero ticket ttl", "[auth]\nticket_ttl_ms = 0\n", "auth.ticket_ttl_ms"),
    ("origin without scheme", "[origin]\nallowed = [\"example.com\"]\n", "origin.allowed"),
    ("zero message rate", "[limits]\nmessages_per_second = 0.0\n", "limits.messages_per_second"),
    ("zero burst", "[limits]\nmessage_burst = 0\n", "limits.message_burst"),
    ("zero handshake timeout", "[limits]\nhandshake_timeout_ms = 0\n", "limits.handshake_timeout_ms"),
];

#[test]
fn every_invalid_config_is_refused_naming_the_key() {
    for (case, text, key) in INVALID {
        let file = write_config(&case.replace(' ', "_"), text);
        let named = format!("`{key}`");
        // `serve` refuses to start...
        let out = bin()
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&file)
            .output()
            .expect("run tickwire");
        assert_eq!(out.status.code(), Some(2), "{case}: serve exit status");
        let err = stderr(&out);
        assert!(
            err.contains(&named),
            "{case}: serve said {err:?}, not {named}"
        );
        // ...and `config check` says the same.
        let out = bin().args(["config", "check"]).arg(&file).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{case}: check exit status");
        assert!(
            stderr(&out).contains(&named),
            "{case}: check said {:?}",
            stderr(&out)
        );
    }
}

#[test]
fn bad_environment_and_flags_are_refused_naming_the_key() {
    let ok = write_config("ok", "");
    let out = bin()
        .env("TICKWIRE_SESSION__MAX_LAG_MS", "soon")
        .args(["config", "check"])
        .arg(&ok)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("`session.max_lag_ms`"),
        "{}",
        stderr(&out)
    );

    let out = bin()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--feed",
            "synthetic",
            "--symbols",
            "0",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("`feed.symbols`"), "{}", stderr(&out));

    let out = bin()
        .args(["config", "check", "/nonexistent/t.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/t.toml"));

    let out = bin()
        .args(["config", "check"])
        .arg(write_config("syntax", "[session\n"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not valid TOML"), "{}", stderr(&out));
}

#[test]
fn the_example_file_is_valid_and_holds_the_defaults() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/tickwire.example.toml");
    let out = bin().args(["config", "check", example]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(example).unwrap();
    let shown = String::from_utf8(out.stdout).unwrap();
    let parsed: toml_like::Table = toml_like::parse(&text);
    let effective: toml_like::Table = toml_like::parse(&shown);
    assert_eq!(parsed, effective, "the example differs from the defaults");
}

#[test]
fn file_env_and_flags_layer_in_that_order() {
    // The file sets the symbol count and rate; the environment overrides the rate; a flag
    // overrides the listen address. /symbols and the feed's speed show what took effect.
    let file = write_config(
        "layers",
        "listen = \"127.0.0.1:1\"\n[feed]\nkind = \"synthetic\"\nsymbols = 3\nrate = 1.0\n",
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = bin()
        .env("TICKWIRE_FEED__RATE", "2000")
        .args(["serve", "--config"])
        .arg(&file)
        .args(["--listen", &listen])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let server = Server::adopt(port, child);
    let symbols: serde_json::Value = serde_json::from_str(&server.get("/symbols")).unwrap();
    assert_eq!(symbols.as_array().unwrap().len(), 3, "file's feed.symbols");
    let t0 = server.stats()["ticks_published"].as_u64().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1000));
    let t1 = server.stats()["ticks_published"].as_u64().unwrap();
    assert!(
        t1 - t0 > 500,
        "environment's feed.rate not applied: {} ticks/s",
        t1 - t0
    );
}

/// Just enough TOML reading to compare two flat-tabled files key by key.
mod toml_like {
    use std::collections::BTreeMap;
    pub type Table = BTreeMap<String, String>;
    pub fn parse(text: &str) -> Table {
        let mut out = Table::new();
        let mut table = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(t) = line.strip_prefix('[') {
                table = t.trim_end_matches(']').to_string();
                continue;
            }
            let (k, v) = line.split_once('=').expect("key = value");
            let key = if table.is_empty() {
                k.trim().to_string()
            } else {
                format!("{table}.{}", k.trim())
            };
            let v = v.trim().trim_end_matches(".0").to_string();
            out.insert(key, v);
        }
        out
    }
}

#[test]
fn reload_reresolves_the_file_and_refuses_an_invalid_one_naming_the_key() {
    let file = write_config("reload", "[feed]\nkind = \"synthetic\"\nsymbols = 3\n");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let child = bin()
        .args(["serve", "--feed", "synthetic", "--config"])
        .arg(&file)
        .args(["--listen", &listen])
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut server = Server::adopt(port, child);
    let ok = server.raw_request_for_test("POST", "/admin/reload");
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
    assert!(ok.contains("\"ok\":true"), "{ok}");

    std::fs::write(&file, "workers = 0\n").unwrap();
    let refused = server.raw_request_for_test("POST", "/admin/reload");
    assert!(refused.starts_with("HTTP/1.1 422"), "{refused}");
    assert!(refused.contains("workers"), "{refused}");

    // SIGHUP reloads too; without a handler it would end the process.
    let pid = server.child.id().to_string();
    let hup = std::process::Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap();
    assert!(hup.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(server.is_running(), "SIGHUP ended the server");
    assert_eq!(server.get("/healthz").trim(), "ok");
}

#[test]
fn tls_files_are_both_or_neither_and_checked_at_start_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("tickwire-config-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = |name: &str, text: String| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let a = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let b = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let cert = pem("a.crt", a.cert.pem());
    let key = pem("a.key", a.signing_key.serialize_pem());
    let other_key = pem("b.key", b.signing_key.serialize_pem());
    let not_pem = pem("junk.crt", "hello\n".to_string());
    let missing = dir.join("missing.crt").display().to_string();

    let cases: Vec<(&str, Vec<&str>, &str, &str)> = vec![
        (
            "cert without key",
            vec!["--tls-cert", &cert],
            "tls.key_file",
            "missing",
        ),
        (
            "key without cert",
            vec!["--tls-key", &key],
            "tls.cert_file",
            "missing",
        ),
        (
            "unreadable cert",
            vec!["--tls-cert", &missing, "--tls-key", &key],
            "tls.cert_file",
            "No such file",
        ),
        (
            "not PEM",
            vec!["--tls-cert", &not_pem, "--tls-key", &key],
            "tls.cert_file",
            "no PEM",
        ),
        (
            "key of another cert",
            vec!["--tls-cert", &cert, "--tls-key", &other_key],
            "tls.key_file",
            "does not match",
        ),
        (
            "cert given as key",
            vec!["--tls-cert", &cert, "--tls-key", &cert],
            "tls.key_file",
            "no PEM",
        ),
    ];
    for (case, args, key_named, why) in cases {
        let out = bin()
            .arg("serve")
            .args(["--listen", "127.0.0.1:1"])
            .args(&args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{case}: {}", stderr(&out));
        let e = stderr(&out);
        assert!(e.contains(&format!("`{key_named}`")), "{case}: {e}");
        assert!(e.contains(why), "{case}: {e}");
    }

    // A matching pair passes `config check`, and the file keys work like the flags.
    let file = write_config(
        "tls-ok",
        &format!("[tls]\ncert_file = {cert:?}\nkey_file = {key:?}\n"),
    );
    let out = bin().args(["config", "check"]).arg(&file).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("cert_file"));
}
