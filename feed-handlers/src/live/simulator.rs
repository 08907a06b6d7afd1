//! Exchange simulator: serves a recorded feed over a real WebSocket (and Binance's REST depth
//! snapshot over HTTP) so live adapters can be tested end to end on this machine, which
//! cannot reach the exchanges.
//!
//! Each WebSocket connection waits for the client's first (subscription) message, then plays
//! every *received* message of the recording in order. Faults apply to the first connection
//! only, so a reconnecting client then gets a clean stream: [`Faults::drop_message`] skips a
//! message, [`Faults::garbage_before`] sends a non-JSON frame first, and
//! [`Faults::disconnect_after`] drops the TCP connection after that many messages.
//!
//! For Binance, the simulator behaves like the exchange: it keeps each symbol's book (the
//! recorded REST snapshot plus every diff it has *generated*, including one it "lost" on
//! the way), so a snapshot fetched mid-stream is current and the client's diff chain
//! resumes from it.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tickwire_engine::domain::decimal::parse_mantissa;
use tickwire_engine::domain::Scale;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;

use crate::rawfile::{parse_line, RawReader, RecordKind};

/// Faults injected into the first connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Faults {
    /// Index (among played messages) of a message never sent.
    pub drop_message: Option<usize>,
    /// Index of a message preceded by a garbage frame.
    pub garbage_before: Option<usize>,
    /// Close the TCP connection abruptly after this many messages.
    pub disconnect_after: Option<usize>,
}

/// What to serve.
#[derive(Debug, Clone, Default)]
pub struct SimConfig {
    /// Payloads to play, in order (the recording's received messages).
    pub messages: Vec<String>,
    /// Binance REST snapshots by symbol (recorded response bodies).
    pub rest_snapshots: HashMap<String, String>,
    pub faults: Faults,
    /// Pause between messages (none by default).
    pub pace: Option<Duration>,
}

impl SimConfig {
    /// Loads a recording's received messages and, optionally, a REST snapshot recording.
    pub fn from_recordings(stream: &Path, rest: Option<&Path>) -> std::io::Result<Self> {
        let mut cfg = SimConfig::default();
        let mut reader = RawReader::open(stream)?;
        while let Some((_, line)) = reader.next_line()? {
            if let Ok(Some(r)) = parse_line(line) {
                if r.kind == RecordKind::Received {
                    cfg.messages
                        .push(String::from_utf8_lossy(r.payload).into_owned());
                }
            }
        }
        if let Some(rest) = rest {
            let mut reader = RawReader::open(rest)?;
            while let Some((_, line)) = reader.next_line()? {
                if let Ok(Some(r)) = parse_line(line) {
                    let symbol = r
                        .url
                        .split(['?', '&'])
                        .find_map(|kv| kv.strip_prefix("symbol="));
                    if let (RecordKind::Http, Some(symbol)) = (r.kind, symbol) {
                        cfg.rest_snapshots.insert(
                            symbol.to_string(),
                            String::from_utf8_lossy(r.payload).into_owned(),
                        );
                    }
                }
            }
        }
        Ok(cfg)
    }
}

/// A running simulator; dropping it stops accepting connections.
pub struct Simulator {
    pub addr: SocketAddr,
    /// WebSocket connections accepted so far.
    pub connections: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Simulator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Simulator {
    /// `ws://addr/ws`
    pub fn ws_url(&self) -> String {
        format!("ws://{}/ws", self.addr)
    }

    /// `http://addr`
    pub fn rest_url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// A Binance book as the simulated exchange holds it: price mantissa → (price, qty strings).
#[derive(Debug, Default, Clone)]
struct ExchangeBook {
    last_update_id: u64,
    bids: BTreeMap<i64, (String, String)>,
    asks: BTreeMap<i64, (String, String)>,
}

impl ExchangeBook {
    fn from_snapshot(body: &str) -> Option<Self> {
        let v: Value = serde_json::from_str(body).ok()?;
        let mut book = ExchangeBook {
            last_update_id: v["lastUpdateId"].as_u64()?,
            ..Default::default()
        };
        book.apply(&v["bids"], true);
        book.apply(&v["asks"], false);
        Some(book)
    }

    fn apply(&mut self, levels: &Value, bids: bool) {
        let side = if bids { &mut self.bids } else { &mut self.asks };
        for l in levels.as_array().into_iter().flatten() {
            let (Some(p), Some(q)) = (l[0].as_str(), l[1].as_str()) else {
                continue;
            };
            let Ok(key) = parse_mantissa(p.as_bytes(), Scale::new(12)) else {
                continue;
            };
            if parse_mantissa(q.as_bytes(), Scale::new(12)) == Ok(0) {
                side.remove(&key);
            } else {
                side.insert(key, (p.to_string(), q.to_string()));
            }
        }
    }

    /// Applies a depthUpdate the exchange generated (sent or not).
    fn apply_diff(&mut self, d: &Value) {
        let Some(u) = d["u"].as_u64() else { return };
        if u <= self.last_update_id {
            return;
        }
        self.apply(&d["b"], true);
        self.apply(&d["a"], false);
        self.last_update_id = u;
    }

    fn to_json(&self) -> String {
        let side = |levels: Box<dyn Iterator<Item = &(String, String)> + '_>| {
            levels
                .map(|(p, q)| serde_json::json!([p, q]))
                .collect::<Vec<_>>()
        };
        serde_json::json!({
            "lastUpdateId": self.last_update_id,
            "bids": side(Box::new(self.bids.values().rev())),
            "asks": side(Box::new(self.asks.values())),
        })
        .to_string()
    }
}

struct Shared {
    cfg: SimConfig,
    books: Mutex<HashMap<String, ExchangeBook>>,
    connections: Arc<AtomicUsize>,
}

/// Starts a simulator on an ephemeral local port.
pub async fn start(cfg: SimConfig) -> std::io::Result<Simulator> {
    start_on(cfg, "127.0.0.1:0".parse().expect("valid address")).await
}

/// Like [`start`], listening on `addr` (the `tickwire exchange-sim` command).
pub async fn start_on(cfg: SimConfig, addr: SocketAddr) -> std::io::Result<Simulator> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let books = cfg
        .rest_snapshots
        .iter()
        .filter_map(|(s, body)| Some((s.clone(), ExchangeBook::from_snapshot(body)?)))
        .collect();
    let connections = Arc::new(AtomicUsize::new(0));
    let shared = Arc::new(Shared {
        cfg,
        books: Mutex::new(books),
        connections: connections.clone(),
    });
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(e) = serve(stream, shared).await {
                    tracing::debug!(error = %e, "simulator connection ended");
                }
            });
        }
    });
    Ok(Simulator {
        addr,
        connections,
        task,
    })
}

async fn serve(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut head = [0u8; 2048];
    let n = stream.peek(&mut head).await?;
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    if head.contains("upgrade: websocket") {
        serve_ws(stream, shared).await
    } else {
        serve_http(stream, shared).await
    }
}

async fn serve_http(mut stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let mut req = Vec::new();
    let mut buf = [0u8; 1024];
    while !req.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(());
        }
        req.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&req);
    let path = line.split_whitespace().nth(1).unwrap_or("/");
    let symbol = path
        .split(['?', '&'])
        .find_map(|kv| kv.strip_prefix("symbol="))
        .unwrap_or_default();
    let body = shared
        .books
        .lock()
        .ok()
        .and_then(|b| b.get(symbol).map(ExchangeBook::to_json));
    let response = match body {
        Some(body) if path.starts_with("/api/v3/depth") => format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".into(),
    };
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

async fn serve_ws(stream: TcpStream, shared: Arc<Shared>) -> std::io::Result<()> {
    let conn = shared.connections.fetch_add(1, Ordering::SeqCst);
    let faults = if conn == 0 {
        shared.cfg.faults
    } else {
        Faults::default()
    };
    let ws = tokio_tungstenite::accept_async(stream)
        .await
        .map_err(std::io::Error::other)?;
    let (mut tx, mut rx) = ws.split();
    // Play once the client has subscribed.
    match rx.next().await {
        Some(Ok(_)) => {}
        _ => return Ok(()),
    }
    // Keep reading (pings, OKX "ping" texts) so the client's writes never block.
    let reader = tokio::spawn(async move { while let Some(Ok(_)) = rx.next().await {} });
    // Every connection replays from the start; stale diffs leave the book as it is.
    let replayed_binance = !shared.cfg.rest_snapshots.is_empty();
    for (i, msg) in shared.cfg.messages.iter().enumerate() {
        if faults.disconnect_after == Some(i) {
            reader.abort();
            // Dropping both halves closes the TCP connection without a close frame.
            return Ok(());
        }
        if replayed_binance {
            // The exchange's own book moves whether or not the message reaches the client.
            if let Ok(v) = serde_json::from_str::<Value>(msg) {
                let d = &v["data"];
                if d["e"] == "depthUpdate" {
                    if let (Some(s), Ok(mut books)) = (d["s"].as_str(), shared.books.lock()) {
                        if let Some(b) = books.get_mut(s) {
                            b.apply_diff(d);
                        }
                    }
                }
            }
        }
        if faults.garbage_before == Some(i) {
            tx.send(Message::Text("}{ not json \u{1}".into()))
                .await
                .map_err(std::io::Error::other)?;
        }
        if faults.drop_message == Some(i) {
            continue;
        }
        tx.send(Message::Text(msg.clone().into()))
            .await
            .map_err(std::io::Error::other)?;
        if let Some(p) = shared.cfg.pace {
            tokio::time::sleep(p).await;
        }
    }
    // Stay connected and idle, like an exchange with nothing more to say.
    let _ = reader.await;
    Ok(())
}
