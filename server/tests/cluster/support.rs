//! Harness of the cluster tests: a real `nats-server` (and `haproxy`) from the system's
//! packages on free loopback ports, the real `tickwire` binary in its roles, and a
//! WebSocket client. A missing `nats-server` or `haproxy` fails the test with the install
//! command; nothing is skipped.

#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

/// Finds a system binary on PATH or in /usr/sbin; panics with the install hint.
pub fn system_binary(name: &str) -> PathBuf {
    let path = std::env::var("PATH").unwrap_or_default();
    for dir in path
        .split(':')
        .chain(["/usr/sbin", "/usr/bin", "/usr/local/bin"])
    {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` not found on PATH or in /usr/sbin: install it (apt-get install -y {name}); .ci/test.sh does");
}

/// Waits until `port` accepts TCP connections.
pub fn wait_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A nats-server on loopback, killed on drop.
pub struct Nats {
    pub port: u16,
    pub monitor: u16,
    jetstream: bool,
    store: PathBuf,
    child: Option<Child>,
}

impl Nats {
    pub fn start(jetstream: bool) -> Nats {
        let store = std::env::temp_dir().join(format!(
            "tickwire-nats-{}-{}",
            std::process::id(),
            free_port()
        ));
        let mut n = Nats {
            port: free_port(),
            monitor: free_port(),
            jetstream,
            store,
            child: None,
        };
        n.spawn();
        n
    }

    fn spawn(&mut self) {
        let mut cmd = Command::new(system_binary("nats-server"));
        cmd.args([
            "-a",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-m",
            &self.monitor.to_string(),
        ]);
        if self.jetstream {
            cmd.args(["-js", "-sd", self.store.to_str().unwrap()]);
        }
        let child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nats-server");
        self.child = Some(child);
        wait_port(self.port, "nats-server");
        wait_port(self.monitor, "nats-server monitoring");
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same ports.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Subscriptions per connection name, from the monitoring endpoint.
    pub fn subscriptions(&self) -> HashMap<String, Vec<String>> {
        let body = http_get(self.monitor, "/connz?subs=1").expect("connz");
        let v: Value = serde_json::from_str(&body).expect("connz JSON");
        let mut out = HashMap::new();
        for c in v["connections"].as_array().into_iter().flatten() {
            let name = c["name"].as_str().unwrap_or_default().to_string();
            let subs = c["subscriptions_list"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect();
            out.insert(name, subs);
        }
        out
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}

/// A plain HTTP/1.1 GET; the body.
pub fn http_get(port: u16, path: &str) -> std::io::Result<String> {
    let raw = http_raw(port, "GET", path)?;
    Ok(raw
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default())
}

/// The status code of a GET.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let raw = http_raw(port, "GET", path).ok()?;
    raw.split_whitespace().nth(1)?.parse().ok()
}

fn http_raw(port: u16, method: &str, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    // HTTP/1.0: no chunked bodies to undo.
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// A `tickwire` process in some role, killed on drop.
pub struct Tickwire {
    pub port: u16,
    pub child: Child,
}

impl Tickwire {
    /// `tickwire <role> --listen 127.0.0.1:<free> <args>`; waits for `/healthz`.
    pub fn start(role: &str, args: &[&str]) -> Tickwire {
        let port = free_port();
        let child = Command::new(env!("CARGO_BIN_EXE_tickwire"))
            .arg(role)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .env(
                "RUST_LOG",
                std::env::var("TEST_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tickwire");
        let t = Tickwire { port, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while http_get(port, "/healthz")
            .map(|b| !b.contains("ok"))
            .unwrap_or(true)
        {
            assert!(Instant::now() < deadline, "tickwire {role} did not come up");
            std::thread::sleep(Duration::from_millis(30));
        }
        t
    }

    /// An engine role; with `--symbols` and no `--feed`, on the synthetic market.
    pub fn engine(nats: &Nats, args: &[&str]) -> Tickwire {
        let url = nats.url();
        let mut a = vec!["--nats-url", url.as_str()];
        if args.contains(&"--symbols") && !args.contains(&"--feed") {
            a.extend(["--feed", "synthetic"]);
        }
        a.extend_from_slice(args);
        Tickwire::start("engine", &a)
    }

    pub fn gateway(nats: &Nats, args: &[&str]) -> Tickwire {
        let url = nats.url();
        let mut a = vec!["--nats-url", url.as_str()];
        a.extend_from_slice(args);
        Tickwire::start("gateway", &a)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// The NATS connection name of a gateway.
    pub fn gateway_name(&self) -> String {
        format!("tickwire gateway 127.0.0.1:{}", self.port)
    }

    pub fn stats(&self) -> Value {
        // The test machine runs several clusters at once: allow a slow answer or two.
        let mut last = None;
        for _ in 0..3 {
            match http_get(self.port, "/stats") {
                Ok(body) => return serde_json::from_str(&body).expect("stats JSON"),
                Err(e) => last = Some(e),
            }
        }
        panic!("GET /stats on {}: {last:?}", self.port)
    }

    pub fn ready(&self) -> bool {
        http_status(self.port, "/readyz") == Some(200)
    }

    /// SIGKILL: the process dies without a goodbye.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Tickwire {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `f` until it is true; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(25));
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A JSON-protocol WebSocket client.
pub struct Client {
    pub ws: Ws,
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(url)
            .await
            .expect("WebSocket connect");
        Client { ws }
    }

    pub async fn try_connect(url: &str) -> Option<Client> {
        tokio_tungstenite::connect_async(url)
            .await
            .ok()
            .map(|(ws, _)| Client { ws })
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn subscribe(&mut self, symbols: &[&str], channels: &[&str]) {
        self.send(
            serde_json::json!({"op":"subscribe","id":1,"symbols":symbols,"channels":channels}),
        )
        .await;
    }

    /// The next JSON message; `None` at the end of the connection or after `timeout`.
    pub async fn recv(&mut self, timeout: Duration) -> Option<Value> {
        loop {
            let m = tokio::time::timeout(timeout, self.ws.next()).await.ok()??;
            match m.ok()? {
                Message::Text(t) => return Some(serde_json::from_str(&t).expect("server JSON")),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// Every message received within `window`.
    pub async fn collect_for(&mut self, window: Duration) -> Vec<Value> {
        let end = tokio::time::Instant::now() + window;
        let mut out = Vec::new();
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(end, self.ws.next()).await {
            if let Message::Text(t) = m {
                out.push(serde_json::from_str(&t).expect("server JSON"));
            }
        }
        out
    }

    /// Receives until `pred` matches, returning everything received; panics after `timeout`.
    pub async fn until(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        let end = tokio::time::Instant::now() + timeout;
        let mut out = Vec::new();
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Some(v) => {
                    let done = pred(&v);
                    out.push(v);
                    if done {
                        return out;
                    }
                }
                None => panic!(
                    "no matching message within {timeout:?}; got {} messages, last {:?}",
                    out.len(),
                    out.last()
                ),
            }
        }
    }
}

pub fn kind(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

pub fn is_status(v: &Value, state: &str) -> bool {
    kind(v) == "status" && v["state"] == state
}

/// Checks what a client must always see: `seq` strictly increasing per stream (symbol and
/// channel; across channels the subscription snapshot may send a quote newer than the book
/// that follows it, see docs/protocol.md), and `trade` `chan_seq` increasing by exactly
/// one. Returns the number of data messages checked.
pub fn assert_no_gap(msgs: &[Value], context: &str) -> usize {
    let mut seq: HashMap<String, u64> = HashMap::new();
    let mut trade: HashMap<String, u64> = HashMap::new();
    let mut n = 0;
    for m in msgs {
        let k = kind(m);
        if !matches!(k, "quote" | "trade" | "book") {
            continue;
        }
        n += 1;
        let sym = m["symbol"].as_str().unwrap().to_string();
        let s = m["seq"].as_u64().unwrap();
        if let Some(prev) = seq.insert(format!("{sym} {k}"), s) {
            assert!(s > prev, "{context}: {sym} seq went from {prev} to {s}");
        }
        if k == "trade" {
            let c = m["chan_seq"].as_u64().unwrap();
            if let Some(prev) = trade.insert(sym.clone(), c) {
                assert_eq!(
                    c,
                    prev + 1,
                    "{context}: {sym} lost a trade (chan_seq {prev} → {c})"
                );
            }
        }
    }
    n
}

/// Market-data values without sequence numbers and times: what two servers on the same
/// feed must agree on.
pub fn values(m: &Value) -> Value {
    let mut v = m.clone();
    if let Some(o) = v.as_object_mut() {
        for k in ["seq", "chan_seq", "ts", "recv_ts"] {
            o.remove(k);
        }
    }
    v
}

/// haproxy with `server/tests/cluster/haproxy.cfg`, in front of `backends`.
pub struct Haproxy {
    pub port: u16,
    child: Child,
    cfg: PathBuf,
}

impl Haproxy {
    pub fn start(backends: [u16; 2]) -> Haproxy {
        let port = free_port();
        let template = include_str!("haproxy.cfg");
        let text = template
            .replace("@FRONT@", &port.to_string())
            .replace("@G1@", &backends[0].to_string())
            .replace("@G2@", &backends[1].to_string());
        let cfg = std::env::temp_dir().join(format!(
            "tickwire-haproxy-{}-{port}.cfg",
            std::process::id()
        ));
        std::fs::write(&cfg, text).expect("write haproxy.cfg");
        let bin = system_binary("haproxy");
        let check = Command::new(&bin)
            .args(["-c", "-f", cfg.to_str().unwrap()])
            .output()
            .expect("haproxy -c");
        assert!(
            check.status.success(),
            "haproxy.cfg invalid: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let child = Command::new(bin)
            .args(["-db", "-f", cfg.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy");
        wait_port(port, "haproxy");
        Haproxy { port, child, cfg }
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.cfg);
    }
}
