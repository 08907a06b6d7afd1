//! Acceptance 1 of the operations issue: `/metrics` is valid Prometheus text, and its
//! counters move by the right amounts while clients connect, subscribe, get throttled, get
//! conflated, disconnect, and are cut off as slow consumers.
//!
//! Phases run one client kind at a time so that what each client observed can be compared
//! exactly with what the server counted (frames and bytes by channel, connects,
//! disconnects by reason, subscriptions by channel). Throttled and conflated updates are
//! invisible to the client except as `chan_seq` gaps, so those are checked between the gaps
//! the client saw (a lower bound) and the updates published meanwhile (an upper bound).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::Server;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::Message;

/// One scrape: series (`name{k="v",...}` with labels sorted) to value.
#[derive(Debug, Clone)]
struct Scrape(BTreeMap<String, f64>);

impl Scrape {
    fn get(&self, series: &str) -> f64 {
        *self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("series {series} missing from /metrics"))
    }
}

fn valid_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':')
        && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

/// A strict parser of the Prometheus text exposition format (0.0.4): HELP and TYPE lines,
/// samples with optional labels; every sample must belong to a family whose TYPE came
/// first (histograms via `_bucket`/`_sum`/`_count`), no series twice, buckets cumulative
/// and ending at `+Inf` equal to `_count`.
fn parse_prometheus(text: &str) -> Scrape {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut out = BTreeMap::new();
    assert!(text.ends_with('\n'), "exposition must end with a newline");
    for (n, line) in text.lines().enumerate() {
        let at = || format!("line {}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().unwrap();
            let name = parts.next().unwrap_or_else(|| panic!("{}", at()));
            assert!(valid_name(name), "bad metric name, {}", at());
            match kind {
                "HELP" => {}
                "TYPE" => {
                    let t = parts.next().unwrap_or_else(|| panic!("{}", at()));
                    assert!(
                        ["counter", "gauge", "histogram", "summary", "untyped"].contains(&t),
                        "bad type, {}",
                        at()
                    );
                    assert!(
                        types.insert(name.to_string(), t.to_string()).is_none(),
                        "TYPE twice, {}",
                        at()
                    );
                }
                _ => panic!("unknown comment kind, {}", at()),
            }
            continue;
        }
        assert!(!line.starts_with('#'), "bad comment, {}", at());
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("{}", at()));
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("bad value, {}", at())),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series, Vec::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("unclosed labels, {}", at()));
                let mut labels = Vec::new();
                let mut chars = body.chars().peekable();
                while chars.peek().is_some() {
                    let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
                    assert!(valid_name(&key), "bad label name, {}", at());
                    assert_eq!(chars.next(), Some('"'), "{}", at());
                    let mut val = String::new();
                    loop {
                        match chars.next() {
                            Some('\\') => match chars.next() {
                                Some('n') => val.push('\n'),
                                Some(c @ ('\\' | '"')) => val.push(c),
                                _ => panic!("bad escape, {}", at()),
                            },
                            Some('"') => break,
                            Some(c) => val.push(c),
                            None => panic!("unterminated label value, {}", at()),
                        }
                    }
                    labels.push((key, val));
                    match chars.next() {
                        Some(',') | None => {}
                        _ => panic!("bad label separator, {}", at()),
                    }
                }
                (name, labels)
            }
        };
        assert!(valid_name(name), "bad sample name, {}", at());
        let family = types.get(name).map(|_| name).or_else(|| {
            ["_bucket", "_sum", "_count"].iter().find_map(|suf| {
                let base = name.strip_suffix(suf)?;
                (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
            })
        });
        assert!(family.is_some(), "sample without a TYPE, {}", at());
        let mut labels = labels;
        labels.sort();
        let key = if labels.is_empty() {
            name.to_string()
        } else {
            let l: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            format!("{name}{{{}}}", l.join(","))
        };
        assert!(out.insert(key, value).is_none(), "series twice, {}", at());
    }
    // Histograms: cumulative buckets ending at +Inf == _count.
    for (name, t) in &types {
        if t != "histogram" {
            continue;
        }
        let prefix = format!("{name}_bucket{{le=\"");
        let mut buckets: Vec<(f64, f64)> = out
            .iter()
            .filter_map(|(k, v)| {
                let le = k.strip_prefix(&prefix)?.strip_suffix("\"}")?;
                let le = if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                };
                Some((le, *v))
            })
            .collect();
        buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
        assert!(!buckets.is_empty(), "{name}: no buckets");
        assert!(
            buckets.windows(2).all(|w| w[0].1 <= w[1].1),
            "{name}: not cumulative"
        );
        let last = buckets.last().unwrap();
        assert!(last.0.is_infinite(), "{name}: no +Inf bucket");
        assert_eq!(
            last.1,
            out[&format!("{name}_count")],
            "{name}: +Inf != count"
        );
    }
    Scrape(out)
}

fn scrape(server: &Server) -> Scrape {
    parse_prometheus(&server.get("/metrics"))
}

/// Scrapes until `pred` holds (the sweep moves per-session counts every 100 ms).
async fn scrape_until(server: &Server, what: &str, pred: impl Fn(&Scrape) -> bool) -> Scrape {
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = scrape(server);
        if pred(&s) {
            return s;
        }
        if tokio::time::Instant::now() > end {
            panic!("/metrics never showed {what}: {s:#?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// What a client received, by message type, with exact wire sizes.
#[derive(Debug, Default)]
struct Seen {
    frames: HashMap<String, u64>,
    bytes: HashMap<String, u64>,
    /// Per symbol, the `chan_seq`s of quotes in order.
    quote_seqs: HashMap<String, Vec<u64>>,
}

fn wire_len(payload: usize) -> u64 {
    let header = if payload < 126 {
        2
    } else if payload <= 65535 {
        4
    } else {
        10
    };
    (header + payload) as u64
}

impl Seen {
    fn record(&mut self, text: &str) {
        let v: Value = serde_json::from_str(text).expect("server JSON");
        let kind = match v["type"].as_str().unwrap_or("") {
            t @ ("quote" | "trade" | "book" | "status") => t.to_string(),
            _ => "reply".to_string(),
        };
        if kind == "quote" {
            self.quote_seqs
                .entry(v["symbol"].as_str().unwrap().to_string())
                .or_default()
                .push(v["chan_seq"].as_u64().unwrap());
        }
        *self.frames.entry(kind.clone()).or_default() += 1;
        *self.bytes.entry(kind).or_default() += wire_len(text.len());
    }
    fn frames(&self, k: &str) -> f64 {
        self.frames.get(k).copied().unwrap_or(0) as f64
    }
    fn bytes(&self, k: &str) -> f64 {
        self.bytes.get(k).copied().unwrap_or(0) as f64
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(server: &Server) -> Ws {
    tokio_tungstenite::connect_async(server.url())
        .await
        .expect("connect")
        .0
}

/// Reads for `window`, recording every text frame.
async fn read_for(ws: &mut Ws, seen: &mut Seen, window: Duration) {
    let end = tokio::time::Instant::now() + window;
    while let Ok(Some(m)) = tokio::time::timeout_at(end, ws.next()).await {
        if let Message::Text(t) = m.expect("frame") {
            seen.record(&t);
        }
    }
}

/// Closes from the client side and reads everything up to the server's close reply.
async fn close_and_drain(ws: &mut Ws, seen: &mut Seen) {
    ws.send(Message::Close(None)).await.expect("send close");
    loop {
        match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => seen.record(&t),
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => return,
            Ok(Some(Ok(_))) => {}
            Err(_) => panic!("server did not answer the close"),
        }
    }
}

fn delta(after: &Scrape, before: &Scrape, series: &str) -> f64 {
    after.get(series) - before.get(series)
}

fn out_series(kind: &str, ch: &str) -> String {
    format!("tickwire_{kind}_total{{channel=\"{ch}\"}}")
}

fn disc(reason: &str) -> String {
    format!("tickwire_disconnects_total{{reason=\"{reason}\"}}")
}

fn subs(ch: &str) -> String {
    format!("tickwire_subscriptions{{channel=\"{ch}\"}}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follow_clients_throttling_conflation_and_slow_consumers() {
    let server = Server::start(&[
        "--feed",
        "synthetic",
        "--symbols",
        "10",
        "--rate",
        "3000",
        "--max-queued-bytes",
        "262144",
        "--slow-consumer-lag-ms",
        "1000",
        "--close-grace-ms",
        "1000",
    ]);
    let syms: Vec<String> = (0..10).map(|i| format!("SYM{i:04}")).collect();

    let m0 = scrape(&server);
    assert_eq!(m0.get("tickwire_sessions_active"), 0.0);
    assert_eq!(m0.get("tickwire_connects_total"), 0.0);
    assert_eq!(m0.get("tickwire_books"), 10.0);
    assert_eq!(m0.get("tickwire_feed_live{feed=\"synthetic\"}"), 1.0);
    assert!(m0.get("tickwire_feed_messages_in_total{feed=\"synthetic\"}") > 0.0);
    assert!(m0.get("process_resident_memory_bytes") > 1e6);
    assert!(m0.get("process_cpu_seconds_total") >= 0.0);
    assert_eq!(m0.get("tickwire_checksum_failures_total"), 0.0);
    assert_eq!(m0.get("tickwire_replay_sessions"), 0.0);

    // --- Phase 1: one plain client: connect, subscribe, read, unsubscribe, close. ---
    let mut a = connect(&server).await;
    let mut seen_a = Seen::default();
    a.send(Message::text(
        json!({"op":"subscribe","id":1,"symbols":[&syms[0], &syms[1]],"channels":["quote","trade","book"]}).to_string(),
    ))
    .await
    .unwrap();
    read_for(&mut a, &mut seen_a, Duration::from_millis(800)).await;
    let m1 = scrape(&server);
    assert_eq!(delta(&m1, &m0, "tickwire_connects_total"), 1.0);
    assert_eq!(m1.get("tickwire_sessions_active"), 1.0);
    for ch in ["quote", "trade", "book"] {
        assert_eq!(m1.get(&subs(ch)), 2.0, "{ch} subscriptions");
    }
    // Dropping the trade channel of one symbol moves exactly that gauge.
    a.send(Message::text(
        json!({"op":"unsubscribe","id":2,"symbols":[&syms[0]],"channels":["trade"]}).to_string(),
    ))
    .await
    .unwrap();
    read_for(&mut a, &mut seen_a, Duration::from_millis(300)).await;
    let m1b = scrape(&server);
    assert_eq!(m1b.get(&subs("trade")), 1.0);
    assert_eq!(m1b.get(&subs("quote")), 2.0);
    close_and_drain(&mut a, &mut seen_a).await;
    // The final counts of a session reach the totals at the sweep after it ends.
    let m2 = scrape_until(&server, "client A gone and its frames counted", |s| {
        s.get("tickwire_sessions_active") == 0.0
            && s.get(&disc("client_close")) == 1.0
            && delta(s, &m0, &out_series("messages_out", "quote")) == seen_a.frames("quote")
            // The echoed close frame leaves after the actor stopped: it can be counted one
            // sweep later than the disconnect.
            && delta(s, &m0, &out_series("messages_out", "control")) >= 1.0
    })
    .await;
    for ch in ["quote", "trade", "book"] {
        assert_eq!(m2.get(&subs(ch)), 0.0, "{ch} subscriptions after close");
    }
    // Everything client A received, the server counted, frame for frame and byte for byte.
    assert!(seen_a.frames("quote") > 10.0 && seen_a.frames("book") > 10.0);
    for ch in ["quote", "trade", "book", "status", "reply"] {
        assert_eq!(
            delta(&m2, &m0, &out_series("messages_out", ch)),
            seen_a.frames(ch),
            "{ch} frames"
        );
        assert_eq!(
            delta(&m2, &m0, &out_series("bytes_out", ch)),
            seen_a.bytes(ch),
            "{ch} bytes"
        );
    }
    assert_eq!(seen_a.frames("reply"), 2.0, "two acks");
    // The close reply (and perhaps pings) are control frames.
    assert!(delta(&m2, &m0, &out_series("messages_out", "control")) >= 1.0);
    // Market data was timed on its way out.
    let lat_count = m2.get("tickwire_internal_latency_seconds_count");
    assert!(lat_count >= 1.0, "no latency sample");
    let mean = m2.get("tickwire_internal_latency_seconds_sum") / lat_count;
    assert!((0.0..1.0).contains(&mean), "mean internal latency {mean} s");

    // --- Phase 2: a throttled client. ---
    let mut b = connect(&server).await;
    let mut seen_b = Seen::default();
    b.send(Message::text(
        json!({"op":"subscribe","id":1,"symbols":&syms,"channels":["quote"],"throttle_ms":250})
            .to_string(),
    ))
    .await
    .unwrap();
    read_for(&mut b, &mut seen_b, Duration::from_secs(2)).await;
    b.send(Message::text(
        json!({"op":"unsubscribe","id":2,"symbols":&syms,"channels":["quote"]}).to_string(),
    ))
    .await
    .unwrap();
    read_for(&mut b, &mut seen_b, Duration::from_millis(300)).await;
    close_and_drain(&mut b, &mut seen_b).await;
    let m3 = scrape_until(&server, "client B gone and its frames counted", |s| {
        s.get("tickwire_sessions_active") == 0.0
            && s.get(&disc("client_close")) == 2.0
            && delta(s, &m2, &out_series("messages_out", "quote")) == seen_b.frames("quote")
    })
    .await;
    // What B missed between the quotes it got: the lower bound of replaced updates.
    let gaps: u64 = seen_b
        .quote_seqs
        .values()
        .map(|s| s.windows(2).map(|w| w[1] - w[0] - 1).sum::<u64>())
        .sum();
    let replaced = delta(&m3, &m2, "tickwire_throttled_updates_total")
        + delta(&m3, &m2, "tickwire_conflated_updates_total");
    let published = delta(&m3, &m2, "tickwire_ticks_published_total");
    assert_eq!(
        m3.get("tickwire_worker_queue_overflows_total"),
        0.0,
        "ticks were lost to a full worker queue; gaps would not all be replacements"
    );
    assert!(gaps > 100, "throttle skipped only {gaps} quotes");
    assert!(
        replaced >= gaps as f64,
        "server counted {replaced} replaced updates, client saw {gaps} skipped"
    );
    assert!(
        replaced <= published,
        "{replaced} replaced > {published} published"
    );
    // B read promptly: its skips are the throttle's, not backpressure conflation.
    assert!(
        delta(&m3, &m2, "tickwire_throttled_updates_total") >= gaps as f64 * 0.9,
        "throttled {} vs gaps {gaps}",
        delta(&m3, &m2, "tickwire_throttled_updates_total")
    );
    for ch in ["quote", "reply"] {
        assert_eq!(
            delta(&m3, &m2, &out_series("messages_out", ch)),
            seen_b.frames(ch),
            "{ch} frames of B"
        );
    }

    // --- Phase 3: a stalled client is conflated, then cut off as a slow consumer; a
    // client that just goes away without a close counts as an error. ---
    let mut c = connect(&server).await;
    c.send(Message::text(
        json!({"op":"subscribe","id":1,"symbols":&syms,"channels":["quote","book","trade"],"depth":25}).to_string(),
    ))
    .await
    .unwrap();
    // Never read: the socket buffers fill, the outbox conflates, then the lag bound trips.
    let m4 = scrape_until(&server, "client C closed as a slow consumer", |s| {
        s.get(&disc("slow_consumer")) == 1.0 && s.get("tickwire_sessions_active") == 0.0
    })
    .await;
    assert!(
        delta(&m4, &m3, "tickwire_conflated_updates_total") > 0.0,
        "a stalled client's quotes/books were not conflated"
    );
    assert!(
        delta(&m4, &m3, "tickwire_conflated_updates_total")
            <= delta(&m4, &m3, "tickwire_ticks_published_total")
    );
    assert_eq!(server.stats()["slow_consumer_closes"], 1);
    // C now reads what got through: the close, 1008.
    let end = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match c.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await;
    // The connection may have been cut before the close got through; either is a close.
    if let Ok(Some(code)) = end {
        assert_eq!(code, 1008);
    }

    let d = connect(&server).await;
    scrape_until(&server, "client D connected", |s| {
        s.get("tickwire_sessions_active") == 1.0
    })
    .await;
    drop(d);
    let m5 = scrape_until(&server, "client D counted as an error", |s| {
        s.get("tickwire_sessions_active") == 0.0 && s.get(&disc("error")) == 1.0
    })
    .await;
    assert_eq!(delta(&m5, &m0, "tickwire_connects_total"), 4.0);
    assert_eq!(m5.get(&disc("client_close")), 2.0);
    assert_eq!(m5.get(&disc("slow_consumer")), 1.0);
    for r in ["heartbeat", "rate_limit", "auth", "shutdown"] {
        assert_eq!(m5.get(&disc(r)), 0.0, "{r}");
    }
    assert_eq!(
        m5.get("tickwire_sessions_active"),
        0.0,
        "sessions_active is connects minus disconnects"
    );
}

#[test]
fn parser_rejects_malformed_exposition() {
    let ok = "# HELP a_total x\n# TYPE a_total counter\na_total{k=\"v\"} 1\n";
    assert_eq!(parse_prometheus(ok).get("a_total{k=\"v\"}"), 1.0);
    for bad in [
        "a_total 1\n",                  // no TYPE
        "# TYPE a gauge\na{k=\"v} 1\n", // unterminated
        "# TYPE a gauge\na 1\na 2\n",   // duplicate series
        "# TYPE a gauge\na one\n",      // bad value
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n", // not cumulative
    ] {
        assert!(
            std::panic::catch_unwind(|| parse_prometheus(bad)).is_err(),
            "accepted {bad:?}"
        );
    }
}

/// Metric names that `text` refers to (`tickwire_*`, `process_*`), histogram series
/// reduced to their family.
fn referenced_metrics(text: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (i, _) in text
        .match_indices("tickwire_")
        .chain(text.match_indices("process_"))
    {
        if i > 0 {
            let prev = text.as_bytes()[i - 1];
            if prev.is_ascii_alphanumeric() || prev == b'_' {
                continue;
            }
        }
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        // Rust paths (`tickwire_server::session` in log filters) are not metrics.
        if !text[i + name.len()..].starts_with("::") {
            out.insert(name);
        }
    }
    out
}

/// The dashboard and the operations guide name only metrics the server exports.
#[test]
fn dashboard_and_docs_name_only_exported_metrics() {
    let server = Server::start(&["--feed", "synthetic", "--symbols", "2", "--rate", "10"]);
    let scrape = scrape(&server);
    let exported: std::collections::BTreeSet<String> = scrape
        .0
        .keys()
        .map(|k| k.split('{').next().unwrap().to_string())
        .collect();
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/");
    for file in ["grafana-dashboard.json", "operations.md"] {
        let text = std::fs::read_to_string(format!("{docs}{file}")).unwrap();
        if file.ends_with(".json") {
            serde_json::from_str::<Value>(&text).expect("dashboard is JSON");
        }
        let names = referenced_metrics(&text);
        assert!(names.len() > 10, "{file}: {names:?}");
        for n in names {
            // Prose may name a family (`tickwire_internal_latency_seconds`) or a prefix.
            let ok = exported.contains(&n)
                || exported.iter().any(|e| e.starts_with(&format!("{n}_")))
                || n == "tickwire_"
                || n == "process_";
            assert!(ok, "{file} names {n}, which /metrics does not export");
        }
    }
}
