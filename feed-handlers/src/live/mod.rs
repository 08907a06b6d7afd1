//! Live WebSocket adapters: one upstream session per [`FeedAdapter::run`].
//!
//! A session connects (URL configurable, so tests point it at the [`simulator`]), sends the
//! venue's subscriptions, fetches Binance's REST snapshots, feeds every frame to the venue's
//! sans-IO decoder and emits the normalized events. Recovery is deliberately simple and
//! always correct: a fresh session starts with fresh snapshots, so whenever a book cannot be
//! repaired in place the session ends with an error and the engine's supervisor reconnects
//! after its backoff (marking the symbols stale meanwhile). Binance is the exception, since
//! its snapshots come over REST: a broken diff chain or an engine resync request refetches
//! that symbol's snapshot without dropping the connection.
//!
//! Heartbeats: WebSocket pings are answered by tungstenite (the pong is flushed on the next
//! read or write); OKX additionally expects a text `ping` when idle, sent every
//! [`LiveConfig::ping_interval`]. A session that hears nothing for
//! [`LiveConfig::idle_timeout`] ends as disconnected.
//!
//! Only `ws://` and `http://` are supported here (no TLS backend is compiled in, since this
//! build cannot reach the exchanges anyway); real venues need a TLS feature of
//! tokio-tungstenite and an HTTPS client for the Binance snapshot.
//!
//! The session logic talks to the engine through [`SessionIo`], implemented for the engine's
//! `FeedIo` and by tests, so the real connection, subscription, parsing and resync code runs
//! end to end against the simulator without an engine.

pub mod simulator;

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use futures_util::{SinkExt, StreamExt};
use tickwire_engine::adapter::{FeedAdapter, FeedCommand, FeedError, FeedIo};
use tickwire_engine::domain::{Instrument, Nanos, SymbolId};
use tickwire_engine::event::FeedEvent;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

use crate::recording::RecordKind;
use crate::venues::{
    BinanceDecoder, CoinbaseDecoder, DecodeStats, Decoded, KrakenDecoder, OkxDecoder,
    SymbolRegistry, VenueDecoder,
};

/// Which venue a live adapter speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Venue {
    Coinbase,
    Binance,
    Kraken,
    Okx,
}

impl Venue {
    /// The venue's short name.
    pub fn name(self) -> &'static str {
        match self {
            Venue::Coinbase => "coinbase",
            Venue::Binance => "binance",
            Venue::Kraken => "kraken",
            Venue::Okx => "okx",
        }
    }
}

/// Configuration of a live adapter.
#[derive(Debug, Clone)]
pub struct LiveConfig {
    pub venue: Venue,
    /// Feed instance name (the venue shown to clients).
    pub name: String,
    /// WebSocket endpoint, e.g. `ws://127.0.0.1:9443/ws`.
    pub ws_url: String,
    /// Binance only: REST base, e.g. `http://127.0.0.1:9443`.
    pub rest_url: Option<String>,
    /// Instruments with their venue symbol names (`XMR/USD`, `NKNUSDT`, ...) and scales.
    pub instruments: Vec<Instrument>,
    /// Kraken book depth to subscribe to.
    pub book_depth: u32,
    pub ping_interval: Duration,
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    /// Sees every raw message of the session, exactly as sent or received (the recorder).
    pub tap: Option<std::sync::Arc<dyn RawTap>>,
}

/// Receives the raw upstream traffic of a live session, before any decoding: what a
/// recorder stores so that a replay runs the same decoders as live.
pub trait RawTap: Send + Sync {
    /// One message: `url` names the connection or HTTP endpoint, `ts` is when it was sent
    /// or received (ns since the epoch).
    fn raw(&self, kind: crate::recording::RecordKind, url: &str, ts: Nanos, payload: &[u8]);
}

impl std::fmt::Debug for dyn RawTap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RawTap")
    }
}

impl LiveConfig {
    /// Defaults for `venue` at `ws_url`.
    pub fn new(venue: Venue, ws_url: &str, instruments: Vec<Instrument>) -> Self {
        LiveConfig {
            venue,
            name: venue.name().to_string(),
            ws_url: ws_url.to_string(),
            rest_url: None,
            instruments,
            book_depth: 1000,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(10),
            tap: None,
        }
    }

    /// A fresh decoder for this venue and these instruments.
    pub fn decoder(&self) -> Box<dyn VenueDecoder> {
        let reg = SymbolRegistry::fixed(self.venue.name(), self.instruments.clone());
        match self.venue {
            Venue::Coinbase => Box::new(CoinbaseDecoder::new(reg)),
            Venue::Binance => Box::new(BinanceDecoder::new(reg)),
            Venue::Kraken => Box::new(KrakenDecoder::new(reg)),
            Venue::Okx => Box::new(OkxDecoder::new(reg)),
        }
    }

    /// The subscription messages to send after connecting.
    pub fn subscriptions(&self) -> Vec<String> {
        let names: Vec<&str> = self.instruments.iter().map(|i| i.symbol.as_str()).collect();
        let list = serde_json::to_string(&names).unwrap_or_else(|_| "[]".into());
        match self.venue {
            Venue::Coinbase => vec![format!(
                r#"{{"type":"subscribe","product_ids":{list},"channels":["level2","ticker","matches","heartbeat"]}}"#
            )],
            Venue::Binance => {
                let streams: Vec<String> = names
                    .iter()
                    .flat_map(|n| {
                        let n = n.to_ascii_lowercase();
                        [
                            format!("{n}@depth@100ms"),
                            format!("{n}@bookTicker"),
                            format!("{n}@aggTrade"),
                        ]
                    })
                    .collect();
                let params = serde_json::to_string(&streams).unwrap_or_else(|_| "[]".into());
                vec![format!(
                    r#"{{"method":"SUBSCRIBE","params":{params},"id":1}}"#
                )]
            }
            Venue::Kraken => ["book", "trade", "ticker"]
                .iter()
                .map(|ch| {
                    let sub = if *ch == "book" {
                        format!(r#"{{"name":"book","depth":{}}}"#, self.book_depth)
                    } else {
                        format!(r#"{{"name":"{ch}"}}"#)
                    };
                    format!(r#"{{"event":"subscribe","pair":{list},"subscription":{sub}}}"#)
                })
                .collect(),
            Venue::Okx => {
                let args: Vec<String> = names
                    .iter()
                    .flat_map(|n| {
                        ["books", "trades", "tickers"]
                            .map(|ch| format!(r#"{{"channel":"{ch}","instId":"{n}"}}"#))
                    })
                    .collect();
                vec![format!(
                    r#"{{"op":"subscribe","args":[{}]}}"#,
                    args.join(",")
                )]
            }
        }
    }
}

/// The engine side of a session; see the module documentation.
pub trait SessionIo {
    /// The engine's id for a venue symbol name.
    fn symbol(&self, name: &str) -> Option<SymbolId>;
    /// Delivers an event (its symbol already mapped to the engine's id).
    fn emit(&mut self, event: FeedEvent);
    /// The next engine command; `Err` ends the session (injected fault).
    fn next_command(&mut self) -> LocalBoxFuture<'_, Result<FeedCommand, FeedError>>;
}

impl SessionIo for FeedIo {
    fn symbol(&self, name: &str) -> Option<SymbolId> {
        FeedIo::symbol(self, name)
    }

    fn emit(&mut self, event: FeedEvent) {
        FeedIo::emit(self, event)
    }

    fn next_command(&mut self) -> LocalBoxFuture<'_, Result<FeedCommand, FeedError>> {
        Box::pin(FeedIo::next_command(self))
    }
}

/// A live adapter: a [`LiveConfig`] plus the statistics of its last session.
pub struct LiveAdapter {
    config: LiveConfig,
    /// Decoder counters of the most recent session.
    pub last_stats: DecodeStats,
}

impl LiveAdapter {
    /// An adapter for `config`.
    pub fn new(config: LiveConfig) -> Self {
        LiveAdapter {
            config,
            last_stats: DecodeStats::default(),
        }
    }
}

impl FeedAdapter for LiveAdapter {
    fn name(&self) -> &str {
        &self.config.name
    }

    fn instruments(&self) -> Vec<Instrument> {
        self.config.instruments.clone()
    }

    fn run<'a>(&'a mut self, io: &'a mut FeedIo) -> LocalBoxFuture<'a, Result<(), FeedError>> {
        Box::pin(async move {
            let mut session = Session::new(&self.config);
            let result = session.run(io).await;
            self.last_stats = session.stats().clone();
            result
        })
    }
}

/// One upstream session. Public so tests can drive it and inspect its decoder.
pub struct Session<'c> {
    config: &'c LiveConfig,
    decoder: Box<dyn VenueDecoder>,
    /// Decoder symbol id → engine symbol id.
    engine_ids: Vec<Option<SymbolId>>,
    /// Messages that failed to decode in this session (logged, never fatal).
    pub decode_errors: u64,
    /// Binance REST snapshots fetched.
    pub snapshots_fetched: u64,
}

impl<'c> Session<'c> {
    /// A session that has not connected yet.
    pub fn new(config: &'c LiveConfig) -> Self {
        Session {
            config,
            decoder: config.decoder(),
            engine_ids: Vec::new(),
            decode_errors: 0,
            snapshots_fetched: 0,
        }
    }

    /// The decoder's counters.
    pub fn stats(&self) -> &DecodeStats {
        self.decoder.stats()
    }

    /// Connects and runs until the upstream ends or fails. Never returns `Ok` while
    /// connected: a closed connection is [`FeedError::Disconnected`].
    pub async fn run(&mut self, io: &mut dyn SessionIo) -> Result<(), FeedError> {
        let cfg = self.config;
        self.engine_ids = cfg
            .instruments
            .iter()
            .map(|i| io.symbol(&i.symbol))
            .collect();
        let connect = tokio_tungstenite::connect_async(cfg.ws_url.as_str());
        let (mut ws, _) = tokio::time::timeout(cfg.connect_timeout, connect)
            .await
            .map_err(|_| FeedError::Connect(format!("{}: timed out", cfg.ws_url)))?
            .map_err(|e| FeedError::Connect(format!("{}: {e}", cfg.ws_url)))?;
        tracing::info!(feed = %cfg.name, url = %cfg.ws_url, "connected");
        let tap = |kind, url: &str, payload: &[u8]| {
            if let Some(t) = &cfg.tap {
                t.raw(kind, url, Nanos::now(), payload);
            }
        };
        tap(RecordKind::Opened, &cfg.ws_url, b"");
        for sub in cfg.subscriptions() {
            tap(RecordKind::Sent, &cfg.ws_url, sub.as_bytes());
            ws.send(Message::Text(sub.into()))
                .await
                .map_err(|e| FeedError::Disconnected(e.to_string()))?;
        }
        if cfg.venue == Venue::Binance {
            // Subscribed first, so the diffs that follow each snapshot are already queued.
            for i in 0..cfg.instruments.len() {
                self.fetch_snapshot(SymbolId(i as u32), io).await?;
            }
        }
        let mut ping = tokio::time::interval(cfg.ping_interval);
        ping.tick().await;
        let mut scratch = Vec::with_capacity(1 << 16);
        loop {
            tokio::select! {
                frame = tokio::time::timeout(cfg.idle_timeout, ws.next()) => {
                    let frame = frame.map_err(|_| FeedError::Disconnected("idle timeout".into()))?;
                    let bytes: &[u8] = match &frame {
                        None => return Err(FeedError::Disconnected("closed by upstream".into())),
                        Some(Err(e)) => return Err(FeedError::Disconnected(e.to_string())),
                        Some(Ok(Message::Text(t))) => t.as_bytes(),
                        Some(Ok(Message::Binary(b))) => b,
                        Some(Ok(Message::Close(c))) => {
                            return Err(FeedError::Disconnected(format!("close frame {c:?}")))
                        }
                        Some(Ok(_)) => {
                            // Ping: tungstenite queued the pong; push it out now.
                            ws.flush().await.map_err(|e| FeedError::Disconnected(e.to_string()))?;
                            continue;
                        }
                    };
                    tap(RecordKind::Received, &cfg.ws_url, bytes);
                    scratch.clear();
                    scratch.extend_from_slice(bytes);
                    self.on_message(&mut scratch, io).await?;
                }
                cmd = io.next_command() => {
                    let FeedCommand::Resync(engine_id) = cmd?;
                    let Some(id) = self.engine_ids.iter().position(|e| *e == Some(engine_id)) else {
                        continue;
                    };
                    if cfg.venue == Venue::Binance {
                        self.fetch_snapshot(SymbolId(id as u32), io).await?;
                    } else {
                        return Err(FeedError::Protocol(format!(
                            "resync of {} requested: starting a fresh session", cfg.instruments[id].symbol
                        )));
                    }
                }
                _ = ping.tick(), if cfg.venue == Venue::Okx => {
                    ws.send(Message::Text("ping".into()))
                        .await
                        .map_err(|e| FeedError::Disconnected(e.to_string()))?;
                }
            }
        }
    }

    async fn on_message(
        &mut self,
        payload: &mut [u8],
        io: &mut dyn SessionIo,
    ) -> Result<(), FeedError> {
        let mut out = Vec::new();
        if let Err(e) = self.decoder.decode(payload, Nanos::now(), &mut out) {
            self.decode_errors += 1;
            tracing::warn!(feed = %self.config.name, error = %e, "undecodable message");
        }
        self.deliver(out, io).await
    }

    /// Emits decoded events and acts on resync requests.
    async fn deliver(
        &mut self,
        out: Vec<Decoded>,
        io: &mut dyn SessionIo,
    ) -> Result<(), FeedError> {
        for d in out {
            match d {
                Decoded::Event(mut ev) => {
                    let id = ev.meta().symbol;
                    let Some(Some(engine_id)) = self.engine_ids.get(id.index()).copied() else {
                        continue;
                    };
                    set_symbol(&mut ev, engine_id);
                    io.emit(ev);
                }
                // The engine derives quotes from its books.
                Decoded::Quote(_) => {}
                Decoded::Resync { symbol, reason } => {
                    tracing::warn!(feed = %self.config.name, symbol = symbol.0, %reason, "resync");
                    if self.config.venue == Venue::Binance {
                        Box::pin(self.fetch_snapshot(symbol, io)).await?;
                    } else {
                        return Err(FeedError::Protocol(format!("book resync: {reason}")));
                    }
                }
            }
        }
        Ok(())
    }

    /// Fetches and applies a Binance REST depth snapshot.
    async fn fetch_snapshot(
        &mut self,
        id: SymbolId,
        io: &mut dyn SessionIo,
    ) -> Result<(), FeedError> {
        let cfg = self.config;
        let base = cfg
            .rest_url
            .as_deref()
            .ok_or_else(|| FeedError::Connect("binance needs rest_url".into()))?;
        let symbol = &cfg
            .instruments
            .get(id.index())
            .ok_or_else(|| FeedError::Protocol(format!("no instrument {}", id.0)))?
            .symbol;
        let url = format!("{base}/api/v3/depth?symbol={symbol}&limit=1000");
        let mut body = tokio::time::timeout(cfg.connect_timeout, http_get(&url))
            .await
            .map_err(|_| FeedError::Connect(format!("{url}: timed out")))??;
        self.snapshots_fetched += 1;
        if let Some(t) = &cfg.tap {
            t.raw(RecordKind::HttpResponse, &url, Nanos::now(), &body);
        }
        let mut out = Vec::new();
        self.decoder
            .decode_http(&url, &mut body, Nanos::now(), &mut out)
            .map_err(|e| FeedError::Protocol(format!("snapshot {url}: {e}")))?;
        self.deliver(out, io).await
    }
}

fn set_symbol(ev: &mut FeedEvent, id: SymbolId) {
    match ev {
        FeedEvent::Snapshot { meta, .. }
        | FeedEvent::Delta { meta, .. }
        | FeedEvent::Trade { meta, .. } => meta.symbol = id,
    }
}

/// A minimal HTTP/1.1 GET over plain TCP (`http://host:port/path`), enough for a REST
/// snapshot: `Connection: close`, body delimited by the end of the stream.
pub async fn http_get(url: &str) -> Result<Vec<u8>, FeedError> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| FeedError::Connect(format!("{url}: only http:// is supported")))?;
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let mut stream = tokio::net::TcpStream::connect(host)
        .await
        .map_err(|e| FeedError::Connect(format!("{url}: {e}")))?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| FeedError::Protocol(format!("{url}: malformed HTTP response")))?;
    let status = response.split(|&c| c == b' ').nth(1).unwrap_or_default();
    if status != b"200" {
        return Err(FeedError::Protocol(format!(
            "{url}: HTTP status {}",
            String::from_utf8_lossy(status)
        )));
    }
    Ok(response.split_off(split + 4))
}
