//! The configuration file's layout ([`FileConfig`]), its loading with `TICKWIRE_*`
//! environment overrides, and the validation that turns it into a [`ServerConfig`] with
//! every error naming its key ([`ConfigError`]).

use std::time::Duration;

use tickwire_engine::fanout::StreamConfig;

use super::*;
use crate::protocol::RequestLimits;
use crate::security::settings::{AuthSection, LimitsSection, OriginSection};
use crate::security::SecurityConfig;

/// A configuration that could not be used. Every variant names the offending key
/// (`session.max_lag_ms`) or environment variable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not valid TOML: {message}")]
    Syntax { path: String, message: String },
    #[error("{origin}: `{key}`: {message}")]
    Key {
        origin: String,
        key: String,
        message: String,
    },
    #[error("{origin}: `{key}`: invalid value: {message}")]
    Invalid {
        origin: String,
        key: String,
        message: String,
    },
}

impl ConfigError {
    /// The key the error is about, when there is one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::Key { key, .. } | ConfigError::Invalid { key, .. } => Some(key),
            _ => None,
        }
    }
}

/// The configuration file's layout: every setting of `tickwire serve`, grouped in tables.
/// Unknown keys are refused. Missing keys take the defaults of [`ServerConfig::default`].
/// See `docs/tickwire.example.toml` for an annotated copy.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    /// Address and port to listen on.
    pub listen: String,
    /// HTTP/WebSocket worker threads (1..=64).
    pub workers: usize,
    /// Threads the book actors are sharded over.
    pub book_threads: usize,
    /// Enables `POST /admin/fault/...` (drills and tests only).
    pub enable_fault_injection: bool,
    pub feed: FeedSection,
    pub session: SessionSection,
    pub shutdown: ShutdownSection,
    pub metrics: MetricsSection,
    pub log: LogSection,
    pub tls: TlsSection,
    pub replay: ReplaySection,
    pub origin: OriginSection,
    pub limits: LimitsSection,
    pub cluster: ClusterSection,
    /// Last: it holds the `[[auth.users]]` array of tables.
    pub auth: AuthSection,
}

/// `[replay]`: what `feed.kind = "replay"` plays, and the replays clients ask for.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReplaySection {
    /// Recordings served as the feed; empty: the bundled day.
    pub files: Vec<String>,
    /// `1`, `10`, `0.5`, ... or `"max"`.
    #[serde(deserialize_with = "speed_setting")]
    pub speed: String,
    /// RFC 3339 or ns since the epoch; "" for the start.
    pub from: String,
    /// RFC 3339 or ns since the epoch; "" for the end.
    pub to: String,
    #[serde(rename = "loop")]
    pub looping: bool,
    /// Directory of the datasets clients may replay ("" for none but the bundled day).
    pub datasets_dir: String,
    pub max_per_user: usize,
    pub max_total: usize,
    pub threads: usize,
}

/// A speed may be written as a number (`10`) or a string (`"max"`, `"10"`).
fn speed_setting<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum S {
        Int(i64),
        Float(f64),
        Text(String),
    }
    Ok(match <S as serde::Deserialize>::deserialize(d)? {
        S::Int(i) => i.to_string(),
        S::Float(f) => f.to_string(),
        S::Text(t) => t,
    })
}

/// `[cluster]`: NATS and the `engine`/`gateway` roles (see docs/deployment.md).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSection {
    /// NATS server URL(s), comma-separated (`nats://host:4222`).
    pub nats_url: String,
    /// First token of every subject.
    pub subject_prefix: String,
    /// This engine's name ("" = `engine-<pid>`).
    pub engine_id: String,
    /// Engine: publish only while holding the lease (active/standby).
    pub lease: bool,
    pub lease_bucket: String,
    pub lease_ttl_ms: u64,
    pub snapshot_interval_ms: u64,
    pub heartbeat_interval_ms: u64,
    /// Gateway: no heartbeat for this long marks the symbols stale.
    pub engine_timeout_ms: u64,
    /// Engine: capacity of the publisher's tick queue.
    pub publish_queue: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedSection {
    /// Upstream feed: `synthetic`, or a venue: `coinbase`, `binance`, `kraken`, `okx`.
    pub kind: String,
    pub symbols: usize,
    pub rate: f64,
    pub seed: u64,
    pub backoff_ms: u64,
    /// Venue feeds: WebSocket URL.
    pub url: String,
    /// Venue feeds: WebSocket URL of a second line (A/B feeds, arbitrated by sequence); ""
    /// for one line.
    pub url_b: String,
    /// Binance: REST base URL for depth snapshots ("" for none).
    pub rest_url: String,
    /// Venue feeds: venue symbols to subscribe to.
    pub instruments: Vec<String>,
    /// Venue feeds: decimal places of prices and sizes.
    pub price_scale: u8,
    pub size_scale: u8,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SessionSection {
    pub max_queued_bytes: usize,
    pub max_lag_ms: u64,
    pub close_grace_ms: u64,
    pub ping_interval_ms: u64,
    pub client_timeout_ms: u64,
    pub max_message_bytes: usize,
    pub max_symbols_per_session: usize,
    pub max_symbols_per_request: usize,
    pub max_throttle_ms: u32,
    pub socket_send_buffer: usize,
    pub sweep_interval_ms: u64,
    pub permessage_deflate: bool,
    pub batch_window_us: u64,
    /// Per worker: most compression windows shared by clients of identical streams (0: every
    /// message is compressed on its own).
    pub shared_deflate_streams: usize,
    /// zlib level (1..=9) of the shared compression windows.
    pub shared_deflate_level: u32,
    /// A client of a shared window with more than this many bytes waiting goes back to
    /// independently compressed (conflatable) frames until it catches up.
    pub shared_deflate_demote_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownSection {
    pub drain_ms: u64,
    pub flush_ms: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    pub latency_sample_every: u32,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    pub json: bool,
}

/// TLS on the listening port: both files, or neither ("" is unset).
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsSection {
    /// PEM certificate chain, leaf first.
    pub cert_file: String,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) of the leaf certificate.
    pub key_file: String,
}

fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

impl Default for FileConfig {
    fn default() -> Self {
        let c = ServerConfig::default();
        let (symbols, rate, seed) = (100, 1_000.0, 1);
        let s = &c.session;
        FileConfig {
            listen: c.listen.to_string(),
            workers: c.workers,
            book_threads: c.book_threads,
            enable_fault_injection: c.fault_injection,
            feed: FeedSection {
                kind: "replay".into(),
                symbols,
                rate,
                seed,
                backoff_ms: ms(c.feed_backoff),
                url: String::new(),
                url_b: String::new(),
                rest_url: String::new(),
                instruments: Vec::new(),
                price_scale: 8,
                size_scale: 8,
            },
            session: SessionSection {
                max_queued_bytes: s.max_queued_bytes,
                max_lag_ms: ms(s.max_lag),
                close_grace_ms: ms(s.close_grace),
                ping_interval_ms: ms(s.ping_interval),
                client_timeout_ms: ms(s.client_timeout),
                max_message_bytes: s.max_message_bytes,
                max_symbols_per_session: s.max_symbols_per_session,
                max_symbols_per_request: s.request.max_symbols_per_request,
                max_throttle_ms: s.request.max_throttle_ms,
                socket_send_buffer: s.socket_send_buffer,
                sweep_interval_ms: ms(s.sweep_interval),
                permessage_deflate: s.permessage_deflate,
                batch_window_us: s.batch_window.as_micros() as u64,
                shared_deflate_streams: s.shared_streams.max_groups,
                shared_deflate_level: s.shared_streams.level,
                shared_deflate_demote_bytes: s.shared_streams.demote_bytes,
            },
            shutdown: ShutdownSection {
                drain_ms: ms(c.drain_timeout),
                flush_ms: ms(s.shutdown_flush),
            },
            metrics: MetricsSection {
                latency_sample_every: c.latency_sample_every,
            },
            log: LogSection { json: c.log_json },
            tls: TlsSection::default(),
            replay: ReplaySection {
                files: Vec::new(),
                speed: "1".into(),
                from: String::new(),
                to: String::new(),
                looping: true,
                datasets_dir: "replay-data".into(),
                max_per_user: c.replay.max_per_user,
                max_total: c.replay.max_total,
                threads: c.replay.threads,
            },
            origin: OriginSection::default(),
            limits: LimitsSection::default(),
            cluster: ClusterSection {
                nats_url: c.cluster.nats_url.clone(),
                subject_prefix: c.cluster.subject_prefix.clone(),
                engine_id: String::new(),
                lease: c.cluster.lease,
                lease_bucket: c.cluster.lease_bucket.clone(),
                lease_ttl_ms: ms(c.cluster.lease_ttl),
                snapshot_interval_ms: ms(c.cluster.snapshot_interval),
                heartbeat_interval_ms: ms(c.cluster.heartbeat_interval),
                engine_timeout_ms: ms(c.cluster.engine_timeout),
                publish_queue: c.cluster.publish_queue,
            },
            auth: AuthSection::default(),
        }
    }
}

macro_rules! section_default {
    ($($t:ident => $field:ident),*) => {$(
        impl Default for $t {
            fn default() -> Self {
                FileConfig::default().$field
            }
        }
    )*};
}
section_default!(FeedSection => feed, SessionSection => session, ShutdownSection => shutdown,
    MetricsSection => metrics, LogSection => log, ReplaySection => replay, ClusterSection => cluster);

/// Prefix of environment variables that override file settings.
pub const ENV_PREFIX: &str = "TICKWIRE_";

/// The key an environment variable sets: `TICKWIRE_SESSION__MAX_LAG_MS` is
/// `session.max_lag_ms` (after the prefix, `__` separates tables, the rest is lowercased).
pub fn env_key(var: &str) -> Option<String> {
    let rest = var.strip_prefix(ENV_PREFIX)?;
    Some(rest.to_ascii_lowercase().replace("__", "."))
}

/// Every key path of the file layout (`listen`, `session.max_lag_ms`, ...).
fn known_keys() -> Vec<String> {
    fn walk(prefix: &str, t: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in t {
            let key = if prefix.is_empty() {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                toml::Value::Table(sub) => walk(&key, sub, out),
                _ => out.push(key),
            }
        }
    }
    let table = toml::Table::try_from(FileConfig::default()).expect("defaults serialize");
    let mut out = Vec::new();
    walk("", &table, &mut out);
    out
}

/// `feed.symbols`, `feed.rate` and `feed.seed` describe the synthetic market; set to anything
/// but their defaults while the feed is another one (the bundled replay day, by default),
/// they would be silently ignored, so they are refused naming the key. (Files that list
/// every default, like the annotated example or `config check`'s output, stay valid.)
fn synthetic_keys_need_the_synthetic_feed(
    table: &toml::Table,
    origin: &str,
) -> Result<(), ConfigError> {
    let Some(toml::Value::Table(feed)) = table.get("feed") else {
        return Ok(());
    };
    let kind = feed
        .get("kind")
        .and_then(|k| k.as_str())
        .unwrap_or(FileConfig::default().feed.kind.as_str())
        .to_string();
    if kind == "synthetic" {
        return Ok(());
    }
    let defaults = toml::Table::try_from(FileConfig::default().feed).expect("defaults serialize");
    for key in ["symbols", "rate", "seed"] {
        let differs = match (feed.get(key), defaults.get(key)) {
            (Some(toml::Value::Integer(v)), Some(toml::Value::Float(d))) => *v as f64 != *d,
            (Some(v), Some(d)) => v != d,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if differs {
            return Err(ConfigError::Invalid {
                origin: origin.to_string(),
                key: format!("feed.{key}"),
                message: format!(
                    "sets up the synthetic market, but feed.kind is {kind:?}; add feed.kind = \"synthetic\""
                ),
            });
        }
    }
    Ok(())
}

/// The result of loading: the settings, and notes worth logging (ignored variables).
#[derive(Debug)]
pub struct Loaded {
    pub config: FileConfig,
    pub notes: Vec<String>,
}

impl FileConfig {
    /// Reads `path` (if any), then applies the `TICKWIRE_*` variables of `env` on top, and
    /// checks the result. `TICKWIRE_*` variables that name no setting are reported in
    /// [`Loaded::notes`] and otherwise ignored (other tools use the prefix too, e.g.
    /// `TICKWIRE_BIN`); unknown keys in the file are errors.
    pub fn load(
        path: Option<&std::path::Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Loaded, ConfigError> {
        let (mut table, origin) = match path {
            Some(p) => {
                let shown = p.display().to_string();
                let text = std::fs::read_to_string(p).map_err(|source| ConfigError::Read {
                    path: shown.clone(),
                    source,
                })?;
                let table: toml::Table =
                    text.parse()
                        .map_err(|e: toml::de::Error| ConfigError::Syntax {
                            path: shown.clone(),
                            message: e.to_string().trim_end().to_string(),
                        })?;
                (table, shown)
            }
            None => (toml::Table::new(), "defaults".to_string()),
        };
        // Reject the file's own mistakes before mixing in the environment.
        Self::from_table(table.clone(), &origin)?;
        let known = known_keys();
        let mut notes = Vec::new();
        let mut vars: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        vars.sort();
        for (var, value) in vars {
            let key = env_key(&var).expect("prefix checked");
            if !known.contains(&key) {
                notes.push(format!(
                    "environment variable {var} names no setting (`{key}`); ignored"
                ));
                continue;
            }
            let parsed = format!("v = {value}")
                .parse::<toml::Table>()
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(value));
            let mut at = &mut table;
            let parts: Vec<&str> = key.split('.').collect();
            for part in &parts[..parts.len() - 1] {
                let entry = at
                    .entry(part.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()));
                at = match entry {
                    toml::Value::Table(t) => t,
                    _ => {
                        return Err(ConfigError::Key {
                            origin: origin.clone(),
                            key: part.to_string(),
                            message: "must be a table".into(),
                        })
                    }
                };
            }
            at.insert(parts[parts.len() - 1].to_string(), parsed);
        }
        let origin = if origin == "defaults" {
            "environment".to_string()
        } else {
            format!("{origin} (with TICKWIRE_* environment overrides)")
        };
        synthetic_keys_need_the_synthetic_feed(&table, &origin)?;
        let config = Self::from_table(table, &origin)?;
        config.validate(&origin)?;
        Ok(Loaded { config, notes })
    }

    /// Deserializes a table, naming the key of any error.
    fn from_table(table: toml::Table, origin: &str) -> Result<FileConfig, ConfigError> {
        let de = toml::Value::Table(table);
        serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner().to_string();
            // The library may append the path again on a second line; we name it ourselves.
            let inner = inner
                .lines()
                .next()
                .unwrap_or_default()
                .trim_end()
                .to_string();
            // serde_path_to_error's path ends at the offending key, unknown ones included.
            let key = path;
            ConfigError::Key {
                origin: origin.to_string(),
                key,
                message: inner,
            }
        })
    }

    /// The settings the server runs with. Call [`FileConfig::validate`] first.
    pub fn to_server_config(&self) -> ServerConfig {
        let s = &self.session;
        let d = Duration::from_millis;
        ServerConfig {
            listen: self.listen.parse().expect("validated"),
            workers: self.workers,
            book_threads: self.book_threads,
            feed: if self.feed.kind == "replay" {
                let r = &self.replay;
                let t = |v: &str| {
                    (!v.is_empty())
                        .then(|| tickwire_feeds::replay::parse_time(v).expect("validated"))
                };
                FeedChoice::Replay(ReplayFeed {
                    files: r.files.iter().map(Into::into).collect(),
                    speed: tickwire_feeds::replay::Speed::parse(&r.speed).expect("validated"),
                    from: t(&r.from),
                    to: t(&r.to),
                    looping: r.looping,
                })
            } else if self.feed.kind == "synthetic" {
                FeedChoice::Synthetic {
                    symbols: self.feed.symbols,
                    rate: self.feed.rate,
                    seed: self.feed.seed,
                }
            } else {
                FeedChoice::Live {
                    venue: self.feed.kind.clone(),
                    ws_url: self.feed.url.clone(),
                    ws_url_b: Some(self.feed.url_b.clone()).filter(|u| !u.is_empty()),
                    rest_url: Some(self.feed.rest_url.clone()).filter(|u| !u.is_empty()),
                    instruments: self.feed.instruments.clone(),
                    price_scale: self.feed.price_scale,
                    size_scale: self.feed.size_scale,
                }
            },
            session: SessionLimits {
                max_queued_bytes: s.max_queued_bytes,
                max_lag: d(s.max_lag_ms),
                close_grace: d(s.close_grace_ms),
                ping_interval: d(s.ping_interval_ms),
                client_timeout: d(s.client_timeout_ms),
                max_message_bytes: s.max_message_bytes,
                max_symbols_per_session: s.max_symbols_per_session,
                request: RequestLimits {
                    max_symbols_per_request: s.max_symbols_per_request,
                    max_throttle_ms: s.max_throttle_ms,
                },
                socket_send_buffer: s.socket_send_buffer,
                sweep_interval: d(s.sweep_interval_ms),
                shutdown_flush: d(self.shutdown.flush_ms),
                permessage_deflate: s.permessage_deflate,
                batch_window: Duration::from_micros(s.batch_window_us),
                shared_streams: StreamConfig {
                    max_groups: s.shared_deflate_streams,
                    level: s.shared_deflate_level,
                    // A member must be demoted well before it would be closed as slow.
                    demote_bytes: s.shared_deflate_demote_bytes.min(s.max_queued_bytes / 2),
                },
            },
            fault_injection: self.enable_fault_injection,
            feed_backoff: d(self.feed.backoff_ms),
            drain_timeout: d(self.shutdown.drain_ms),
            latency_sample_every: self.metrics.latency_sample_every,
            log_json: self.log.json,
            tls: (!self.tls.cert_file.is_empty()).then(|| crate::net::tls::TlsFiles {
                cert_file: self.tls.cert_file.clone().into(),
                key_file: self.tls.key_file.clone().into(),
            }),
            replay: ReplaySettings {
                datasets_dir: Some(self.replay.datasets_dir.clone())
                    .filter(|d| !d.is_empty())
                    .map(Into::into),
                max_per_user: self.replay.max_per_user,
                max_total: self.replay.max_total,
                threads: self.replay.threads,
            },
            security: SecurityConfig::from_sections(&self.auth, &self.origin, &self.limits)
                .expect("validated"),
            cluster: crate::cluster::ClusterSettings {
                nats_url: self.cluster.nats_url.clone(),
                subject_prefix: self.cluster.subject_prefix.clone(),
                engine_id: if self.cluster.engine_id.is_empty() {
                    crate::cluster::default_engine_id()
                } else {
                    self.cluster.engine_id.clone()
                },
                lease: self.cluster.lease,
                lease_bucket: self.cluster.lease_bucket.clone(),
                lease_ttl: d(self.cluster.lease_ttl_ms),
                snapshot_interval: d(self.cluster.snapshot_interval_ms),
                heartbeat_interval: d(self.cluster.heartbeat_interval_ms),
                engine_timeout: d(self.cluster.engine_timeout_ms),
                publish_queue: self.cluster.publish_queue,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(text: &str, env: &[(&str, &str)]) -> Result<Loaded, ConfigError> {
        let dir = std::env::temp_dir().join(format!(
            "tickwire-config-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("t.toml");
        std::fs::write(&p, text).unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        FileConfig::load(Some(&p), env)
    }

    #[test]
    fn defaults_round_trip_and_match_server_defaults() {
        let c = load_str("", &[]).unwrap().config;
        assert_eq!(c, FileConfig::default());
        let s = c.to_server_config();
        assert_eq!(s.listen, ServerConfig::default().listen);
        assert_eq!(s.session.max_lag, SessionLimits::default().max_lag);
    }

    #[test]
    fn env_overrides_file_and_names_tables_with_double_underscore() {
        let l = load_str(
            "[session]\nmax_lag_ms = 100\n",
            &[
                ("TICKWIRE_SESSION__MAX_LAG_MS", "250"),
                ("TICKWIRE_LISTEN", "0.0.0.0:9000"),
                ("TICKWIRE_LOG__JSON", "true"),
                ("TICKWIRE_BIN", "/somewhere/tickwire"),
                ("OTHER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(l.config.session.max_lag_ms, 250);
        assert_eq!(l.config.listen, "0.0.0.0:9000");
        assert!(l.config.log.json);
        assert_eq!(l.notes.len(), 1, "{:?}", l.notes);
        assert!(l.notes[0].contains("TICKWIRE_BIN"));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("bogus = 1", "bogus"),
            ("[session]\nmax_lagg_ms = 1", "session.max_lagg_ms"),
            ("[session]\nmax_lag_ms = \"x\"", "session.max_lag_ms"),
            ("workers = 0", "workers"),
            ("[cluster]\nnats_url = \"http://x\"", "cluster.nats_url"),
            ("[cluster]\nsubject_prefix = \"m.d\"", "cluster.subject_prefix"),
            ("[cluster]\nlease_ttl_ms = 10", "cluster.lease_ttl_ms"),
            (
                "[cluster]\nheartbeat_interval_ms = 2000\nengine_timeout_ms = 1000",
                "cluster.heartbeat_interval_ms",
            ),
            ("[cluster]\nlease_bucket = \"a.b\"", "cluster.lease_bucket"),
            (
                "[feed]\nkind = \"binance\"\nurl = \"ws://a\"\nurl_b = \"ws://b\"\ninstruments = [\"X\"]",
                "feed.url_b",
            ),
            (
                "[feed]\nkind = \"coinbase\"\nurl = \"ws://a\"\nurl_b = \"b\"\ninstruments = [\"X\"]",
                "feed.url_b",
            ),
        ];
        for (text, key) in cases {
            let e = load_str(text, &[]).unwrap_err();
            assert_eq!(e.key(), Some(key), "{text}: {e}");
            assert!(e.to_string().contains(key), "{e}");
        }
        let e = load_str("", &[("TICKWIRE_WORKERS", "abc")]).unwrap_err();
        assert_eq!(e.key(), Some("workers"), "{e}");
    }
}
