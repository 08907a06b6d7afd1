//! Validation of a loaded [`FileConfig`]: the values that parse but make no sense, each
//! refused with an error naming its key. Kept apart from loading (`file.rs`) because it is
//! the part that grows with every new setting.

use std::net::SocketAddr;

use super::*;

impl FileConfig {
    /// Checks values that parse but make no sense.
    pub fn validate(&self, origin: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, message: String| ConfigError::Invalid {
            origin: origin.to_string(),
            key: key.to_string(),
            message,
        };
        self.listen.parse::<SocketAddr>().map_err(|e| {
            bad(
                "listen",
                format!("{:?} is not ADDRESS:PORT ({e})", self.listen),
            )
        })?;
        if !(1..=64).contains(&self.workers) {
            return Err(bad("workers", format!("{} is not in 1..=64", self.workers)));
        }
        if self.book_threads == 0 {
            return Err(bad("book_threads", "must be at least 1".into()));
        }
        let f = &self.feed;
        const KINDS: [&str; 6] = [
            "replay",
            "synthetic",
            "coinbase",
            "binance",
            "kraken",
            "okx",
        ];
        if !KINDS.contains(&f.kind.as_str()) {
            return Err(bad(
                "feed.kind",
                format!("unknown feed {:?}; expected one of {KINDS:?}", f.kind),
            ));
        }
        let r = &self.replay;
        tickwire_feeds::replay::Speed::parse(&r.speed).map_err(|e| bad("replay.speed", e))?;
        let time = |key: &str, v: &str| -> Result<Option<i64>, ConfigError> {
            if v.is_empty() {
                return Ok(None);
            }
            tickwire_feeds::replay::parse_time(v)
                .map(Some)
                .map_err(|e| bad(key, e))
        };
        if let (Some(a), Some(b)) = (time("replay.from", &r.from)?, time("replay.to", &r.to)?) {
            if a > b {
                return Err(bad(
                    "replay.to",
                    format!("{:?} is before replay.from ({:?})", r.to, r.from),
                ));
            }
        }
        for (key, v) in [
            ("replay.max_per_user", r.max_per_user),
            ("replay.max_total", r.max_total),
            ("replay.threads", r.threads),
        ] {
            if v == 0 {
                return Err(bad(key, "must be greater than 0".into()));
            }
        }
        if r.threads > 64 {
            return Err(bad(
                "replay.threads",
                format!("{} is not in 1..=64", r.threads),
            ));
        }
        if r.max_per_user > r.max_total {
            return Err(bad(
                "replay.max_per_user",
                format!(
                    "{} is more than replay.max_total ({})",
                    r.max_per_user, r.max_total
                ),
            ));
        }
        if f.kind != "synthetic" && f.kind != "replay" {
            if !(f.url.starts_with("ws://") || f.url.starts_with("wss://")) {
                return Err(bad(
                    "feed.url",
                    format!("{:?} is not a ws:// or wss:// URL", f.url),
                ));
            }
            if f.instruments.is_empty() {
                return Err(bad(
                    "feed.instruments",
                    "a venue feed needs at least one instrument".into(),
                ));
            }
            if !f.url_b.is_empty() {
                if !(f.url_b.starts_with("ws://") || f.url_b.starts_with("wss://")) {
                    return Err(bad(
                        "feed.url_b",
                        format!("{:?} is not a ws:// or wss:// URL", f.url_b),
                    ));
                }
                if !tickwire_feeds::failover::supports(&f.kind) {
                    return Err(bad(
                        "feed.url_b",
                        format!(
                            "A/B lines need a venue whose messages can be arbitrated by sequence; {:?} is not one of {:?}",
                            f.kind,
                            tickwire_feeds::failover::ARBITRATED_VENUES
                        ),
                    ));
                }
            }
            for (key, v) in [
                ("feed.price_scale", f.price_scale),
                ("feed.size_scale", f.size_scale),
            ] {
                if v > 18 {
                    return Err(bad(key, format!("{v} is not in 0..=18")));
                }
            }
        }
        if f.symbols == 0 || f.symbols > 1_000_000 {
            return Err(bad(
                "feed.symbols",
                format!("{} is not in 1..=1000000", f.symbols),
            ));
        }
        if !(f.rate.is_finite() && f.rate >= 0.0) {
            return Err(bad(
                "feed.rate",
                format!("{} is not a non-negative number", f.rate),
            ));
        }
        let s = &self.session;
        let positive = [
            ("session.max_queued_bytes", s.max_queued_bytes as u64),
            ("session.max_lag_ms", s.max_lag_ms),
            ("session.close_grace_ms", s.close_grace_ms),
            ("session.ping_interval_ms", s.ping_interval_ms),
            ("session.client_timeout_ms", s.client_timeout_ms),
            ("session.max_message_bytes", s.max_message_bytes as u64),
            (
                "session.max_symbols_per_session",
                s.max_symbols_per_session as u64,
            ),
            (
                "session.max_symbols_per_request",
                s.max_symbols_per_request as u64,
            ),
            ("session.socket_send_buffer", s.socket_send_buffer as u64),
            ("session.sweep_interval_ms", s.sweep_interval_ms),
            ("shutdown.drain_ms", self.shutdown.drain_ms),
            (
                "metrics.latency_sample_every",
                self.metrics.latency_sample_every as u64,
            ),
        ];
        for (key, v) in positive {
            if v == 0 {
                return Err(bad(key, "must be greater than 0".into()));
            }
        }
        if s.ping_interval_ms >= s.client_timeout_ms {
            return Err(bad(
                "session.ping_interval_ms",
                format!(
                    "{} must be less than session.client_timeout_ms ({}), or every client times out",
                    s.ping_interval_ms, s.client_timeout_ms
                ),
            ));
        }
        if s.batch_window_us > 100_000 {
            return Err(bad(
                "session.batch_window_us",
                format!("{} is more than 100000 (0.1 s)", s.batch_window_us),
            ));
        }
        if !(1..=9).contains(&s.shared_deflate_level) {
            return Err(bad(
                "session.shared_deflate_level",
                format!("{} is not in 1..=9", s.shared_deflate_level),
            ));
        }
        if s.shared_deflate_demote_bytes < 1024 {
            return Err(bad(
                "session.shared_deflate_demote_bytes",
                format!("{} is less than 1024", s.shared_deflate_demote_bytes),
            ));
        }
        if s.shared_deflate_streams > 10_000 {
            return Err(bad(
                "session.shared_deflate_streams",
                format!(
                    "{} is more than 10000 (each holds a few hundred KiB)",
                    s.shared_deflate_streams
                ),
            ));
        }
        match (self.tls.cert_file.is_empty(), self.tls.key_file.is_empty()) {
            (true, true) => {}
            (false, true) => {
                return Err(bad(
                    "tls.key_file",
                    "missing: tls.cert_file is set, TLS needs both".into(),
                ))
            }
            (true, false) => {
                return Err(bad(
                    "tls.cert_file",
                    "missing: tls.key_file is set, TLS needs both".into(),
                ))
            }
            (false, false) => {
                let files = crate::net::tls::TlsFiles {
                    cert_file: self.tls.cert_file.clone().into(),
                    key_file: self.tls.key_file.clone().into(),
                };
                crate::net::tls::load_certified_key(&files)
                    .map_err(|e| bad(e.key().unwrap_or("tls.cert_file"), e.detail()))?;
            }
        }
        let c = &self.cluster;
        if !c.nats_url.split(',').all(|u| {
            let u = u.trim();
            u.starts_with("nats://") || u.starts_with("tls://") || u.starts_with("ws://")
        }) {
            return Err(bad(
                "cluster.nats_url",
                format!(
                    "{:?} is not a nats:// URL (or a comma-separated list)",
                    c.nats_url
                ),
            ));
        }
        if !crate::cluster::subjects::is_valid_prefix(&c.subject_prefix) {
            return Err(bad(
                "cluster.subject_prefix",
                format!(
                    "{:?} must be one subject token of letters, digits, - and _",
                    c.subject_prefix
                ),
            ));
        }
        if !c
            .lease_bucket
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            || c.lease_bucket.is_empty()
        {
            return Err(bad(
                "cluster.lease_bucket",
                format!("{:?} must be letters, digits, - and _", c.lease_bucket),
            ));
        }
        for (key, v, min) in [
            ("cluster.lease_ttl_ms", c.lease_ttl_ms, 200),
            ("cluster.snapshot_interval_ms", c.snapshot_interval_ms, 10),
            ("cluster.heartbeat_interval_ms", c.heartbeat_interval_ms, 10),
            ("cluster.engine_timeout_ms", c.engine_timeout_ms, 50),
            ("cluster.publish_queue", c.publish_queue as u64, 16),
        ] {
            if v < min {
                return Err(bad(key, format!("{v} is less than {min}")));
            }
        }
        if c.heartbeat_interval_ms >= c.engine_timeout_ms {
            return Err(bad(
                "cluster.heartbeat_interval_ms",
                format!(
                    "{} must be less than cluster.engine_timeout_ms ({}), or gateways see the engine as down",
                    c.heartbeat_interval_ms, c.engine_timeout_ms
                ),
            ));
        }
        if crate::cluster::subjects::RESERVED_VENUES.contains(&f.kind.as_str()) {
            return Err(bad("feed.kind", format!("{:?} is reserved", f.kind)));
        }
        // The sweep cuts a pass into steps of at least 1 ms (server/src/worker.rs); below
        // 10 ms a pass could no longer be cut small enough for a worker with many sessions.
        if !(10..=10_000).contains(&s.sweep_interval_ms) {
            return Err(bad(
                "session.sweep_interval_ms",
                format!("{} is not in 10..=10000", s.sweep_interval_ms),
            ));
        }
        crate::security::settings::validate(&self.auth, &self.origin, &self.limits)
            .map_err(|(key, message)| bad(&key, message))?;
        Ok(())
    }
}
