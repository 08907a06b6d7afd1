//! The scrape-time [`Snapshot`] of every counter (server, engine, feeds, process) and its
//! encodings: Prometheus text through the `prometheus-client` crate, and JSON for `/stats`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::*;

/// Feed state of one feed at scrape time.
#[derive(Debug, Clone)]
pub struct FeedSnapshot {
    pub name: String,
    pub events: u64,
    pub symbols: usize,
    pub live: usize,
    pub stale: usize,
    /// Symbols whose book never published a status (no snapshot yet).
    pub pending: usize,
}

/// Process figures read from `/proc/self` (Linux); `None` elsewhere.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessSnapshot {
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub threads: u64,
    pub open_fds: u64,
}

impl ProcessSnapshot {
    /// Reads the current process's figures. CPU time is in clock ticks of `USER_HZ`, which
    /// is 100 on every Linux architecture the server is built for.
    pub fn read() -> Option<ProcessSnapshot> {
        const USER_HZ: f64 = 100.0;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name (which may contain spaces).
        let rest = &stat[stat.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // rest[0] is field 3 (state): utime is field 14, stime 15, threads 20, vsize 23.
        let num = |i: usize| f.get(i - 3).and_then(|s| s.parse::<u64>().ok());
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let rss_kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())?;
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .map(|d| d.count() as u64)
            .unwrap_or(0);
        Some(ProcessSnapshot {
            cpu_seconds: (num(14)? + num(15)?) as f64 / USER_HZ,
            resident_bytes: rss_kib * 1024,
            virtual_bytes: num(23)?,
            threads: num(20)?,
            open_fds,
        })
    }
}

/// Everything a scrape reports, read once and then encoded.
#[derive(Debug)]
pub struct Snapshot {
    pub sessions_active: i64,
    pub connects: u64,
    pub disconnects: Vec<(&'static str, u64)>,
    pub subscriptions: Vec<(&'static str, i64)>,
    pub frames_out: Vec<(&'static str, u64)>,
    pub bytes_out: Vec<(&'static str, u64)>,
    pub conflated: u64,
    pub throttled: u64,
    pub request_errors: u64,
    pub feeds: Vec<FeedSnapshot>,
    pub router_resyncs: u64,
    /// Sweep visits: (flagged pass, pass over every session).
    pub sweep_visits: (u64, u64),
    pub worker_queue_overflows: u64,
    pub book_restarts: u64,
    pub book_events_dropped: u64,
    pub checksum_failures: u64,
    pub books: u64,
    pub ticks_published: u64,
    pub replay_sessions: i64,
    /// Shared compression windows: (windows, members, demotions, frames).
    pub shared_streams: (i64, i64, u64, u64),
    pub tls_failures: Vec<(&'static str, u64)>,
    pub replays_started: u64,
    pub replays_refused: u64,
    pub latency: (f64, u64, Vec<(f64, u64)>),
    pub draining: bool,
    pub process: Option<ProcessSnapshot>,
    /// (reason, status, count) of refused upgrades.
    pub upgrades_refused: Vec<(&'static str, u16, u64)>,
    pub ticket_requests: Vec<(&'static str, u64)>,
    pub rate_limited_messages: u64,
    pub revoked_streams: u64,
    pub admin_refused: u64,
}

impl Snapshot {
    /// The server's own counters; the caller fills in the engine's.
    pub fn of(m: &Metrics) -> Snapshot {
        Snapshot {
            sessions_active: m.sessions_active.get(),
            connects: m.sessions_opened.get(),
            disconnects: DisconnectReason::ALL
                .iter()
                .map(|r| (r.as_str(), m.disconnects[*r as usize].get()))
                .collect(),
            subscriptions: tickwire_engine::tick::Channel::ALL
                .iter()
                .map(|c| (c.as_str(), m.subscriptions[*c as usize].get()))
                .collect(),
            frames_out: OutClass::ALL
                .iter()
                .map(|c| (c.as_str(), m.frames_out[*c as usize].get()))
                .collect(),
            bytes_out: OutClass::ALL
                .iter()
                .map(|c| (c.as_str(), m.bytes_out[*c as usize].get()))
                .collect(),
            conflated: m.conflated.get(),
            throttled: m.throttled.get(),
            request_errors: m.request_errors.get(),
            feeds: Vec::new(),
            router_resyncs: m.router_resyncs.get(),
            sweep_visits: (m.sweep_visits_flagged.get(), m.sweep_visits_all.get()),
            worker_queue_overflows: 0,
            book_restarts: 0,
            book_events_dropped: 0,
            checksum_failures: m.checksum_failures.get(),
            books: 0,
            ticks_published: 0,
            replay_sessions: m.replay_sessions.get(),
            shared_streams: (
                m.shared_streams.get(),
                m.shared_stream_members.get(),
                m.shared_stream_demotions.get(),
                m.shared_stream_frames.get(),
            ),
            tls_failures: TlsFailure::ALL
                .iter()
                .map(|f| (f.as_str(), m.tls_failures[*f as usize].get()))
                .collect(),
            replays_started: m.replays_started.get(),
            replays_refused: m.replays_refused.get(),
            latency: m.latency.read(),
            draining: m.draining.load(Ordering::Relaxed),
            process: ProcessSnapshot::read(),
            upgrades_refused: UpgradeRefusal::ALL
                .iter()
                .map(|r| {
                    let n = m.security.upgrades_refused[*r as usize].get();
                    (r.as_str(), r.status(), n)
                })
                .collect(),
            ticket_requests: TicketOutcome::ALL
                .iter()
                .map(|o| (o.as_str(), m.security.ticket_requests[*o as usize].get()))
                .collect(),
            rate_limited_messages: m.security.rate_limited_messages.get(),
            revoked_streams: m.security.revoked_streams.get(),
            admin_refused: m.security.admin_refused.get(),
        }
    }

    /// The Prometheus text exposition (format 0.0.4) of this snapshot.
    pub fn encode(self) -> String {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(self));
        let mut out = String::new();
        prometheus_client::encoding::prometheus_text::encode(&mut out, &registry)
            .expect("writing to a String cannot fail");
        out
    }
}

/// Content type of [`Snapshot::encode`]'s output.
pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

fn counter(e: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge<V>(e: &mut DescriptorEncoder, name: &str, help: &str, v: V) -> std::fmt::Result
where
    V: prometheus_client::encoding::EncodeGaugeValue + std::fmt::Debug + Send + Sync,
{
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn labelled_counter(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(impl AsRef<str>, u64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (l, v) in values {
        let labels = [(label, l.as_ref())];
        let c = ConstCounter::new(*v);
        c.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

fn labelled_gauge(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    label: &str,
    values: &[(impl AsRef<str>, i64)],
) -> std::fmt::Result {
    let mut m = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (l, v) in values {
        let labels = [(label, l.as_ref())];
        let g = ConstGauge::new(*v);
        g.encode(m.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Snapshot {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let e = &mut e;
        gauge(
            e,
            "tickwire_sessions_active",
            "WebSocket sessions open now (one per connection).",
            self.sessions_active,
        )?;
        counter(
            e,
            "tickwire_connects",
            "WebSocket connections accepted.",
            self.connects,
        )?;
        labelled_counter(
            e,
            "tickwire_disconnects",
            "Sessions ended, by reason.",
            "reason",
            &self.disconnects,
        )?;
        labelled_gauge(
            e,
            "tickwire_subscriptions",
            "Active (session, symbol, channel) subscriptions, by channel.",
            "channel",
            &self.subscriptions,
        )?;
        labelled_counter(
            e,
            "tickwire_messages_out",
            "Frames handed to client sockets, by channel (reply: acks/errors/pongs; control: ping/pong/close).",
            "channel",
            &self.frames_out,
        )?;
        labelled_counter(
            e,
            "tickwire_bytes_out",
            "Bytes (WebSocket frames) handed to client sockets, by channel.",
            "channel",
            &self.bytes_out,
        )?;
        counter(
            e,
            "tickwire_conflated_updates",
            "Quote/book updates replaced by a newer one before they were sent (client behind).",
            self.conflated,
        )?;
        counter(
            e,
            "tickwire_throttled_updates",
            "Quote/book updates replaced while waiting for the client's throttle interval.",
            self.throttled,
        )?;
        labelled_counter(
            e,
            "tickwire_tls_handshake_failures",
            "TLS connections that failed before their first request, by reason (plaintext: a plain-text client on the TLS port).",
            "reason",
            &self.tls_failures,
        )?;
        counter(
            e,
            "tickwire_request_errors",
            "Client requests refused with an error reply.",
            self.request_errors,
        )?;
        {
            let mut m = e.encode_descriptor(
                "tickwire_upgrades_refused",
                "WebSocket upgrades refused before a session existed, by reason and HTTP status (401 ticket, 403 origin, 429 user cap, 503 connection caps).",
                None,
                MetricType::Counter,
            )?;
            for (reason, status, n) in &self.upgrades_refused {
                let status = status.to_string();
                let labels = [("reason", *reason), ("status", status.as_str())];
                ConstCounter::new(*n).encode(m.encode_family(&labels)?)?;
            }
        }
        labelled_counter(
            e,
            "tickwire_ticket_requests",
            "POST /auth/ticket requests by outcome.",
            "outcome",
            &self.ticket_requests,
        )?;
        counter(
            e,
            "tickwire_rate_limited_messages",
            "Client messages dropped by the per-session rate limit.",
            self.rate_limited_messages,
        )?;
        counter(
            e,
            "tickwire_revoked_streams",
            "(session, symbol, channel) streams removed because a reload changed the user's entitlements.",
            self.revoked_streams,
        )?;
        counter(
            e,
            "tickwire_admin_requests_refused",
            "/admin/* requests refused (missing or wrong admin key, or not from loopback).",
            self.admin_refused,
        )?;
        let feed_events: Vec<(&str, u64)> = self
            .feeds
            .iter()
            .map(|f| (f.name.as_str(), f.events))
            .collect();
        labelled_counter(
            e,
            "tickwire_feed_messages_in",
            "Normalized events received from each feed adapter.",
            "feed",
            &feed_events,
        )?;
        let feed_live: Vec<(&str, i64)> = self
            .feeds
            .iter()
            .map(|f| (f.name.as_str(), (f.live == f.symbols) as i64))
            .collect();
        labelled_gauge(
            e,
            "tickwire_feed_live",
            "1 when every symbol of the feed is live (book synced), else 0.",
            "feed",
            &feed_live,
        )?;
        {
            let mut m = e.encode_descriptor(
                "tickwire_feed_symbols",
                "Symbols of each feed by state (pending: no snapshot yet).",
                None,
                MetricType::Gauge,
            )?;
            for f in &self.feeds {
                for (state, n) in [("live", f.live), ("stale", f.stale), ("pending", f.pending)] {
                    let labels = [("feed", f.name.as_str()), ("state", state)];
                    ConstGauge::new(n as i64).encode(m.encode_family(&labels)?)?;
                }
            }
        }
        labelled_counter(
            e,
            "tickwire_sweep_visits",
            "Session visits by the workers' sweeps: flagged (sessions whose connection ran, every sweep interval) and all (every session, once per idle period).",
            "pass",
            &[
                ("flagged", self.sweep_visits.0),
                ("all", self.sweep_visits.1),
            ],
        )?;
        labelled_counter(
            e,
            "tickwire_resyncs",
            "Resynchronizations: worker_queue (a server worker's tick queue overflowed and its sessions were re-offered the last values), book_restart (a book actor restarted and asked for a snapshot).",
            "kind",
            &[
                ("worker_queue", self.router_resyncs),
                ("book_restart", self.book_restarts),
            ],
        )?;
        counter(
            e,
            "tickwire_worker_queue_overflows",
            "Ticks lost to a full server-worker queue (followed by a resync).",
            self.worker_queue_overflows,
        )?;
        counter(
            e,
            "tickwire_book_events_dropped",
            "Feed events dropped by books waiting for a snapshot.",
            self.book_events_dropped,
        )?;
        counter(
            e,
            "tickwire_checksum_failures",
            "Venue book checksum mismatches (no adapter verifies checksums yet).",
            self.checksum_failures,
        )?;
        gauge(
            e,
            "tickwire_books",
            "Order books (one per symbol).",
            self.books as i64,
        )?;
        counter(
            e,
            "tickwire_ticks_published",
            "Ticks published by book actors to the fan-out hub.",
            self.ticks_published,
        )?;
        gauge(
            e,
            "tickwire_replay_sessions",
            "Replays running (per-client WebSocket replays and GET /replay streams).",
            self.replay_sessions,
        )?;
        let (windows, members, demotions, frames) = self.shared_streams;
        gauge(
            e,
            "tickwire_shared_deflate_streams",
            "Compression windows shared by the clients of identical streams.",
            windows,
        )?;
        gauge(
            e,
            "tickwire_shared_deflate_members",
            "Sessions following a shared compression window.",
            members,
        )?;
        counter(
            e,
            "tickwire_shared_deflate_demotions",
            "Sessions that fell behind their shared window and went back to independently compressed, conflatable frames.",
            demotions,
        )?;
        counter(
            e,
            "tickwire_shared_deflate_frames",
            "Messages compressed in a shared window (once per window, whatever its number of clients).",
            frames,
        )?;
        counter(
            e,
            "tickwire_replays_started",
            "Replays started (WebSocket and HTTP).",
            self.replays_started,
        )?;
        counter(
            e,
            "tickwire_replays_refused",
            "Replays refused by the per-user or total limit.",
            self.replays_refused,
        )?;
        gauge(
            e,
            "tickwire_draining",
            "1 while a graceful shutdown is in progress.",
            self.draining as i64,
        )?;
        {
            let (sum, count, buckets) = &self.latency;
            let m = e.encode_descriptor(
                "tickwire_internal_latency_seconds",
                "Time from a tick's recv_ts to its frame being handed to the client socket (sampled).",
                None,
                MetricType::Histogram,
            )?;
            let mut m = m;
            m.encode_histogram::<NoLabelSet>(*sum, *count, buckets, None)?;
        }
        if let Some(p) = self.process {
            let c = ConstCounter::new(p.cpu_seconds);
            c.encode(e.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time of the process.",
                None,
                c.metric_type(),
            )?)?;
            gauge(
                e,
                "process_resident_memory_bytes",
                "Resident memory of the process.",
                p.resident_bytes as i64,
            )?;
            gauge(
                e,
                "process_virtual_memory_bytes",
                "Virtual memory of the process.",
                p.virtual_bytes as i64,
            )?;
            gauge(e, "process_threads", "OS threads.", p.threads as i64)?;
            gauge(
                e,
                "process_open_fds",
                "Open file descriptors.",
                p.open_fds as i64,
            )?;
        }
        Ok(())
    }
}
