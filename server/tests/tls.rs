//! WSS and HTTPS on one port, with a certificate generated here (rcgen): the subscribe flow
//! over wss://, GET /healthz over https://, plain-text clients refused cleanly (and counted)
//! without disturbing TLS clients, and a certificate reload on SIGHUP served to new
//! connections while an existing one stays open; a broken certificate is refused and the
//! old one stays in service.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{subscribe, Server};
use futures_util::{SinkExt, StreamExt};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// A self-signed certificate for `localhost` and 127.0.0.1, written as PEM files.
struct TestCert {
    der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

fn make_cert() -> TestCert {
    let c =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()])
            .expect("generate certificate");
    TestCert {
        der: c.cert.der().clone(),
        cert_pem: c.cert.pem(),
        key_pem: c.signing_key.serialize_pem(),
    }
}

fn write_cert(dir: &Path, cert: &TestCert) -> (PathBuf, PathBuf) {
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    // Written next to the target and renamed, as an operator's deploy would do.
    std::fs::write(dir.join("cert.pem.new"), &cert.cert_pem).unwrap();
    std::fs::write(dir.join("key.pem.new"), &cert.key_pem).unwrap();
    std::fs::rename(dir.join("cert.pem.new"), &c).unwrap();
    std::fs::rename(dir.join("key.pem.new"), &k).unwrap();
    (c, k)
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tickwire-tls-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A TLS client trusting exactly `roots`.
fn connector(roots: &[&CertificateDer<'static>]) -> tokio_rustls::TlsConnector {
    let mut store = rustls::RootCertStore::empty();
    for r in roots {
        store.add((*r).clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_connect(
    port: u16,
    roots: &[&CertificateDer<'static>],
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", port)).await?;
    connector(roots)
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

/// The certificate the server presents to a new connection.
async fn served_cert(port: u16, roots: &[&CertificateDer<'static>]) -> CertificateDer<'static> {
    let s = tls_connect(port, roots).await.expect("TLS handshake");
    s.get_ref()
        .1
        .peer_certificates()
        .expect("server certificate")[0]
        .clone()
}

/// One HTTPS request; returns the whole response. A missing close_notify at the end is
/// tolerated (the response is complete by then).
async fn https(port: u16, roots: &[&CertificateDer<'static>], method: &str, path: &str) -> String {
    let mut s = tls_connect(port, roots).await.expect("TLS handshake");
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Starts `tickwire serve` on TLS and waits until https://.../healthz answers.
async fn start_tls(cert: &Path, key: &Path, roots: &[&CertificateDer<'static>]) -> Server {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_tickwire"))
        .arg("serve")
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--feed", "synthetic", "--symbols", "5", "--rate", "200"])
        .arg("--tls-cert")
        .arg(cert)
        .arg("--tls-key")
        .arg(key)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start tickwire");
    let server = Server { port, child };
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if tls_connect(port, roots).await.is_ok() {
            let r = https(port, roots, "GET", "/healthz").await;
            if r.contains("ok") {
                return server;
            }
        }
        assert!(Instant::now() < deadline, "TLS server did not come up");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

type Wss = WebSocketStream<TlsStream<TcpStream>>;

async fn wss_connect(port: u16, roots: &[&CertificateDer<'static>]) -> Wss {
    let tls = tls_connect(port, roots).await.expect("TLS handshake");
    let (ws, resp) = tokio_tungstenite::client_async(format!("wss://localhost:{port}/ws"), tls)
        .await
        .expect("WebSocket handshake over TLS");
    assert_eq!(resp.status(), 101);
    ws
}

async fn recv_json(ws: &mut Wss, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let m = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("timed out waiting for a message")
            .expect("stream ended")
            .expect("WebSocket error");
        if let Message::Text(t) = m {
            let v: Value = serde_json::from_str(&t).unwrap();
            if pred(&v) {
                return v;
            }
        }
    }
}

#[tokio::test]
async fn wss_and_https_on_one_port_and_plain_text_is_refused_cleanly() {
    let dir = temp_dir("flow");
    let cert = make_cert();
    let (c, k) = write_cert(&dir, &cert);
    let roots = [&cert.der];
    let server = start_tls(&c, &k, &roots).await;
    let port = server.port;

    let health = https(port, &roots, "GET", "/healthz").await;
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");
    assert!(health.ends_with("ok\n"), "{health}");

    let mut ws = wss_connect(port, &roots).await;
    ws.send(Message::text(
        subscribe(1, &["SYM0000"], &["quote"]).to_string(),
    ))
    .await
    .unwrap();
    let ack = recv_json(&mut ws, |v| v["type"] == "subscribed").await;
    assert_eq!(ack["id"], 1);
    recv_json(&mut ws, |v| {
        v["type"] == "quote" && v["symbol"] == "SYM0000"
    })
    .await;

    // Plain HTTP to the TLS port: a plain-text 400 that says why, then the connection ends.
    let mut plain = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), plain.read_to_string(&mut out))
        .await
        .expect("the server closes the plain-text connection")
        .unwrap();
    assert!(out.starts_with("HTTP/1.1 400"), "{out}");
    assert!(out.contains("this port speaks TLS"), "{out}");

    // A ws:// client to the TLS port fails its handshake; nothing hangs.
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        tokio_tungstenite::connect_async(format!("ws://127.0.0.1:{port}/ws")),
    )
    .await
    .expect("the ws:// attempt ends");
    assert!(r.is_err(), "a plain WebSocket handshake must not succeed");

    // Garbage that is neither TLS nor HTTP: closed without an answer.
    let mut junk = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    junk.write_all(&[0x01, 0x02, 0x03, 0x04]).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(5), junk.read_to_end(&mut buf))
        .await
        .expect("closed")
        .unwrap_or(0);
    assert_eq!(n, 0, "no answer to garbage");

    // A TLS client that offers only h2 has no protocol in common with us (ALPN http/1.1).
    let mut h2_only = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates({
        let mut store = rustls::RootCertStore::empty();
        store.add(cert.der.clone()).unwrap();
        store
    })
    .with_no_client_auth();
    h2_only.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    let r = tokio_rustls::TlsConnector::from(Arc::new(h2_only))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(r.is_err(), "an h2-only client must be refused");

    // The TLS client was not disturbed, and the failures are counted.
    recv_json(&mut ws, |v| v["type"] == "quote").await;
    let metrics = https(port, &roots, "GET", "/metrics").await;
    assert!(
        metrics.contains("tickwire_tls_handshake_failures_total{reason=\"plaintext\"} 3")
            && metrics.contains("tickwire_tls_handshake_failures_total{reason=\"handshake\"} 1"),
        "{}",
        metrics
            .lines()
            .filter(|l| l.contains("tls"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test]
async fn sighup_serves_a_new_certificate_to_new_connections_and_refuses_a_broken_one() {
    let dir = temp_dir("reload");
    let first = make_cert();
    let second = make_cert();
    assert_ne!(first.der, second.der);
    let (c, k) = write_cert(&dir, &first);
    let both = [&first.der, &second.der];
    let server = start_tls(&c, &k, &both).await;
    let port = server.port;
    assert_eq!(served_cert(port, &both).await, first.der);

    let mut ws = wss_connect(port, &both).await;
    ws.send(Message::text(
        subscribe(1, &["SYM0001"], &["quote"]).to_string(),
    ))
    .await
    .unwrap();
    recv_json(&mut ws, |v| v["type"] == "subscribed").await;

    write_cert(&dir, &second);
    let hup = |pid: u32| {
        let ok = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -HUP");
    };
    hup(server.child.id());
    let deadline = Instant::now() + Duration::from_secs(10);
    while served_cert(port, &both).await != second.der {
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The connection opened under the old certificate is still served.
    recv_json(&mut ws, |v| {
        v["type"] == "quote" && v["symbol"] == "SYM0001"
    })
    .await;

    // A broken certificate file: the reload is refused, naming the key, and the current
    // certificate stays in service.
    std::fs::write(&c, "-----BEGIN CERTIFICATE-----\nnot base64 at all\n").unwrap();
    let r = https(port, &both, "POST", "/admin/reload").await;
    assert!(r.starts_with("HTTP/1.1 422"), "{r}");
    assert!(r.contains("tls.cert_file"), "{r}");
    hup(server.child.id());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(served_cert(port, &both).await, second.der);
    recv_json(&mut ws, |v| v["type"] == "quote").await;
}
