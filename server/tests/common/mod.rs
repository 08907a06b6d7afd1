//! Test harness: starts the real `tickwire` binary on a free loopback port and talks to it
//! with a real WebSocket client (tokio-tungstenite).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream as TokioTcp;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// A running server process, killed on drop.
pub struct Server {
    pub port: u16,
    pub child: Child,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind an ephemeral port")
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    /// Starts `tickwire serve` with `args` (plus `--listen`) and waits until it answers.
    pub fn start(args: &[&str]) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_tickwire"))
            .arg("serve")
            .args(["--listen", &listen])
            .args(args)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tickwire");
        Server::adopt(port, child)
    }

    /// Takes over a started server process and waits until it answers on `port`.
    pub fn adopt(port: u16, child: Child) -> Server {
        let server = Server { port, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(body) = server.try_get("/healthz") {
                if body.contains("ok") {
                    return server;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("server did not come up on port {port}");
    }

    pub fn url(&self) -> String {
        format!("ws://127.0.0.1:{}/ws", self.port)
    }

    /// A plain HTTP/1.1 GET; returns the body.
    pub fn try_get(&self, path: &str) -> std::io::Result<String> {
        self.request("GET", path)
    }

    pub fn get(&self, path: &str) -> String {
        self.try_get(path).expect("HTTP GET")
    }

    pub fn post(&self, path: &str) -> String {
        self.request("POST", path).expect("HTTP POST")
    }

    /// A plain HTTP/1.1 GET; returns the whole response (status line, headers, body).
    pub fn raw_get(&self, path: &str) -> String {
        self.raw_request("GET", path).expect("HTTP GET")
    }

    /// The whole response (status line, headers, body) of a bodiless request.
    pub fn raw_request_for_test(&self, method: &str, path: &str) -> String {
        self.raw_request(method, path).expect("HTTP request")
    }

    fn request(&self, method: &str, path: &str) -> std::io::Result<String> {
        let out = self.raw_request(method, path)?;
        Ok(out
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default())
    }

    fn raw_request(&self, method: &str, path: &str) -> std::io::Result<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.port))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        write!(
            s,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )?;
        let mut out = String::new();
        s.read_to_string(&mut out)?;
        Ok(out)
    }

    pub fn stats(&self) -> Value {
        serde_json::from_str(&self.get("/stats")).expect("stats JSON")
    }

    /// Resident set size of the server process in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("read /proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS line")
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A WebSocket client speaking the JSON protocol.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TokioTcp>>,
}

/// How a connection ended, as seen by the client.
#[derive(Debug, PartialEq)]
pub enum Ended {
    Closed(Option<(u16, String)>),
    Error(String),
}

impl Client {
    pub async fn connect(server: &Server) -> Client {
        let (ws, _) = tokio_tungstenite::connect_async(server.url())
            .await
            .expect("WebSocket connect");
        Client { ws }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::text(v.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_raw(&mut self, m: Message) {
        self.ws.send(m).await.expect("send");
    }

    /// Next JSON message (a batch array is flattened by the caller via `recv_all`).
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

    /// Receives until `pred` matches; panics after `timeout`.
    pub async fn recv_until(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            match self.recv(left).await {
                Some(v) if pred(&v) => return v,
                Some(_) => continue,
                None => panic!("no matching message within {timeout:?}"),
            }
        }
    }

    /// Reads until the connection ends and reports how.
    pub async fn wait_end(&mut self, timeout: Duration) -> Ended {
        let end = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(end, self.ws.next()).await {
                Err(_) => panic!("connection did not end within {timeout:?}"),
                Ok(None) => return Ended::Closed(None),
                Ok(Some(Err(e))) => return Ended::Error(e.to_string()),
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Ended::Closed(frame.map(|f| (u16::from(f.code), f.reason.to_string())))
                }
                Ok(Some(Ok(_))) => continue,
            }
        }
    }
}

pub fn code(c: CloseCode) -> u16 {
    u16::from(c)
}

pub fn subscribe(id: i64, symbols: &[&str], channels: &[&str]) -> Value {
    serde_json::json!({"op":"subscribe","id":id,"symbols":symbols,"channels":channels})
}

pub fn msg_type(v: &Value) -> &str {
    v["type"].as_str().unwrap_or("")
}

/// A hand-written WebSocket client over a raw socket: the test controls every bit.
pub struct Raw {
    pub s: TcpStream,
    pub response_head: String,
}

impl Raw {
    pub fn connect(port: u16, extensions: Option<&str>) -> Raw {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let ext = extensions
            .map(|e| format!("Sec-WebSocket-Extensions: {e}\r\n"))
            .unwrap_or_default();
        write!(
            s,
            "GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let response_head = String::from_utf8(head).unwrap();
        assert!(response_head.starts_with("HTTP/1.1 101"), "{response_head}");
        Raw { s, response_head }
    }

    /// Sends one masked frame with the given first byte (FIN/RSV/opcode).
    pub fn send_frame(&mut self, first: u8, payload: &[u8]) {
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        let mut f = vec![first];
        match payload.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n <= u16::MAX as usize => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
        self.s.write_all(&f).unwrap();
    }

    /// Reads one frame: (first byte, payload).
    pub fn read_frame(&mut self) -> (u8, Vec<u8>) {
        let mut h = [0u8; 2];
        self.s.read_exact(&mut h).unwrap();
        self.finish_frame(h)
    }

    /// Reads the rest of a frame whose first two bytes are `h`.
    pub fn finish_frame(&mut self, h: [u8; 2]) -> (u8, Vec<u8>) {
        let len = match h[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                self.s.read_exact(&mut l).unwrap();
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                self.s.read_exact(&mut l).unwrap();
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut p = vec![0u8; len];
        self.s.read_exact(&mut p).unwrap();
        (h[0], p)
    }

    /// Reads frames until a close frame and returns its code.
    pub fn close_code(&mut self) -> u16 {
        loop {
            let (first, p) = self.read_frame();
            if first & 0x0f == 0x8 {
                return u16::from_be_bytes([p[0], p[1]]);
            }
        }
    }
}

/// A recorded real feed from `../shared/real-feeds/` (relative to the repo root).
pub fn real_feed(name: &str) -> std::path::PathBuf {
    let p = std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/real-feeds"
    ))
    .join(name);
    assert!(p.is_file(), "recorded feed {} is missing", p.display());
    p
}

/// A fresh temporary directory, unique to this call: tests of one binary run in parallel
/// and may ask for the same name (each must not remove the other's files).
pub fn temp_dir(test: &str) -> std::path::PathBuf {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("tickwire-{test}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Converts a real feed (line format) into a Tickwire recording for `adapter`.
pub fn recording_of(
    real: &str,
    adapter: &str,
    symbols: &[&str],
    out: &std::path::Path,
) -> std::path::PathBuf {
    use tickwire_feeds::recording::{convert, Header, WriterOptions};
    let input = std::io::BufReader::new(std::fs::File::open(real_feed(real)).unwrap());
    let header = Header {
        adapter: adapter.into(),
        venue: adapter.into(),
        symbols: symbols.iter().map(|s| s.to_string()).collect(),
        start_ns: 0,
        metadata: vec![("source".into(), real.into())],
    };
    convert::raw_to_recording(input, out, header, WriterOptions::default()).unwrap();
    out.to_path_buf()
}

impl Server {
    /// Like [`Server::start`], with environment variables.
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_tickwire"))
            .arg("serve")
            .args(["--listen", &listen])
            .args(args)
            .env("RUST_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tickwire");
        Server::adopt(port, child)
    }
}
// ---- security helpers: configured servers, HTTP with headers, upgrades that may be refused

/// Writes `text` to a fresh file under the temp directory and returns its path.
pub fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("tickwire-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {self:?}"))
    }
}

/// A started server whose stderr goes to a file (to check its logs).
pub struct Logged {
    pub server: Server,
    pub log: std::path::PathBuf,
}

impl Logged {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Server {
    /// Starts `tickwire serve --config FILE` with `config` as the file, `args` and `env`;
    /// stderr is kept in a file.
    pub fn start_configured(config: &str, args: &[&str], env: &[(&str, &str)]) -> Logged {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let file = temp_file(&format!("config-{port}.toml"), config);
        let log = temp_file(&format!("server-{port}.log"), "");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_tickwire"));
        cmd.arg("serve")
            .arg("--config")
            .arg(&file)
            .args(["--listen", &listen])
            .args(args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        for (k, _) in std::env::vars() {
            if k.starts_with("TICKWIRE_") {
                cmd.env_remove(k);
            }
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start tickwire");
        Logged {
            server: Server::adopt(port, child),
            log,
        }
    }

    /// The configuration file of a server started with [`Server::start_configured`].
    pub fn config_path(&self) -> std::path::PathBuf {
        std::env::temp_dir()
            .join(format!("tickwire-test-{}", std::process::id()))
            .join(format!("config-{}.toml", self.port))
    }

    /// One HTTP/1.1 request with extra header lines (`"Name: value"`), from `source`.
    pub fn http_from(
        &self,
        source: Option<std::net::IpAddr>,
        method: &str,
        path: &str,
        headers: &[&str],
    ) -> Reply {
        let mut s = match source {
            None => TcpStream::connect(("127.0.0.1", self.port)).unwrap(),
            Some(ip) => {
                let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)
                    .unwrap();
                sock.bind(&std::net::SocketAddr::new(ip, 0).into()).unwrap();
                sock.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], self.port)).into())
                    .unwrap();
                sock.into()
            }
        };
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n",
            self.port
        );
        for h in headers {
            req.push_str(h);
            req.push_str("\r\n");
        }
        if !headers
            .iter()
            .any(|h| h.to_ascii_lowercase().starts_with("connection:"))
        {
            req.push_str("Connection: close\r\n");
        }
        req.push_str("Content-Length: 0\r\n\r\n");
        s.write_all(req.as_bytes()).unwrap();
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        // Until the server closes; a 101 keeps the connection, so stop after its head.
        while let Ok(n) = s.read(&mut buf) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&buf[..n]);
            if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok());
                if head.starts_with("http/1.1 101")
                    || length.is_some_and(|l| out.len() >= end + 4 + l)
                {
                    break;
                }
            }
        }
        let out = String::from_utf8_lossy(&out).into_owned();
        let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no HTTP status in {out:?}"));
        Reply {
            status,
            head: head.to_string(),
            body: body.to_string(),
        }
    }

    pub fn http(&self, method: &str, path: &str, headers: &[&str]) -> Reply {
        self.http_from(None, method, path, headers)
    }

    /// `POST /auth/ticket` with `Authorization: Bearer <credential>`; the ticket.
    pub fn ticket(&self, credential: &str) -> String {
        let r = self.http(
            "POST",
            "/auth/ticket",
            &[&format!("Authorization: Bearer {credential}")],
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["ticket"].as_str().unwrap().to_string()
    }
}

/// A refused upgrade: the HTTP status and JSON body.
#[derive(Debug)]
pub struct Refused {
    pub status: u16,
    pub body: Value,
}

/// Opens a WebSocket to `target` (`/ws?ticket=...`) with extra headers, from `source`
/// (another loopback address) if given.
pub async fn ws_open(
    port: u16,
    target: &str,
    headers: &[(&str, &str)],
    source: Option<std::net::IpAddr>,
) -> Result<Client, Refused> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    let mut req = format!("ws://127.0.0.1:{port}{target}")
        .into_client_request()
        .unwrap();
    for (k, v) in headers {
        req.headers_mut().insert(
            tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let sock = tokio::net::TcpSocket::new_v4().unwrap();
    if let Some(ip) = source {
        sock.bind(std::net::SocketAddr::new(ip, 0)).unwrap();
    }
    let stream = sock
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .expect("TCP connect");
    match tokio_tungstenite::client_async(req, MaybeTlsStream::Plain(stream)).await {
        Ok((ws, _)) => Ok(Client { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            let status = resp.status().as_u16();
            let body = resp
                .body()
                .as_ref()
                .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
                .unwrap_or(Value::Null);
            Err(Refused { status, body })
        }
        Err(e) => panic!("WebSocket handshake failed unexpectedly: {e}"),
    }
}

/// SHA-256 hex of `key`, as `auth.users[].key_sha256` wants it.
pub fn sha256_hex(key: &str) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(key.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
