//! Scenario configuration: what a run does (clients, subscriptions, phases) and which symbols
//! each client subscribes to (fixed slices, all symbols, or Zipf-popular).
//!
//! A scenario is a TOML file (see `benches/scenarios/`); every field has a default and can be
//! overridden from the command line. The `[server]` table records how the server side of the
//! scenario is started (`tickwire serve --feed synthetic --symbols N --rate R --seed S`), so
//! the run script and the generator agree on the symbol universe.

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Errors reading or validating a scenario.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading scenario {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("parsing scenario {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("invalid scenario: {0}")]
    Invalid(String),
}

/// How each client picks its K symbols out of the N served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// Client `i` takes the K consecutive symbols starting at `(i * K) mod N` (wrapping), so
    /// every symbol has the same number of subscribers when `C * K` is a multiple of N.
    #[default]
    FixedSlice,
    /// Every client subscribes to every symbol (K is ignored).
    All,
    /// K distinct symbols drawn by Zipf popularity (rank r has weight `1 / r^zipf_s`).
    Zipf,
}

/// The server side of a scenario, as `tickwire serve --feed synthetic` is started for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSpec {
    pub symbols: u32,
    /// Quote updates per second summed over all symbols.
    pub rate: u64,
    pub seed: u64,
}

impl Default for ServerSpec {
    fn default() -> Self {
        Self {
            symbols: 100,
            rate: 1000,
            seed: 42,
        }
    }
}

/// Performance targets a scenario is judged against (all optional); see
/// [`report::check_targets`](super::report::check_targets).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Targets {
    pub p99_us_max: Option<f64>,
    pub p999_us_max: Option<f64>,
    pub deliveries_per_s_min: Option<f64>,
    pub kib_per_connection_max: Option<f64>,
    /// Every healthy client connected and stayed connected.
    pub all_connected: Option<bool>,
    /// Every stalled client was closed with 1008.
    pub stalled_closed_1008: Option<bool>,
    /// Healthy p99 at most `p99_ratio_max` times that of the same server's run of the
    /// scenario named here.
    pub p99_reference_scenario: Option<String>,
    pub p99_ratio_max: Option<f64>,
}

/// One load-generator run.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    pub name: String,
    pub description: String,
    /// `ws://host:port/ws` of the server under test.
    pub url: String,
    /// Healthy clients (they read everything).
    pub clients: u32,
    /// Stalled clients: they subscribe and then never read until the run ends.
    pub stalled_clients: u32,
    /// Symbols per client (K).
    pub symbols_per_client: u32,
    pub pattern: Pattern,
    pub zipf_s: f64,
    pub channels: Vec<String>,
    pub depth: u32,
    pub throttle_ms: u32,
    /// WebSocket subprotocols to offer, first preferred (e.g. `["tickwire.json.batch"]`);
    /// empty offers none (the server's default encoding).
    pub subprotocols: Vec<String>,
    /// At most this many symbols per subscribe request (larger sets are split).
    pub subscribe_batch: u32,
    /// New connections per second.
    pub connect_rate: u32,
    /// Seconds after the last connection before measurement starts.
    pub warmup_s: f64,
    /// Measurement window in seconds.
    pub duration_s: f64,
    /// Worker threads carrying the clients.
    pub threads: u32,
    /// Worker threads poll their sockets without ever sleeping. A sleeping thread on an
    /// idle core pays the core's wake-up (tens of microseconds on a virtual machine) on
    /// every message, which a latency measurement would otherwise charge to the server.
    /// Each worker then shows 100 % CPU; the report gives the time it spent handling data.
    pub busy_poll: bool,
    /// Number of source addresses 127.0.0.2, 127.0.0.3, ... used round-robin (0 = one per
    /// 20,000 clients, at least one).
    pub source_addrs: u32,
    /// SO_RCVBUF for stalled clients in bytes (0 = kernel default), so a server notices a
    /// stalled reader quickly.
    pub stalled_rcvbuf: u32,
    /// Seconds after subscribing at which stalled clients start reading again (0 = not
    /// before the run ends). A server that closes a stalled client queues its 1008 close
    /// frame behind the data the client has not read; it only reaches the client if the client
    /// reads before the server gives up on delivering it and cuts the connection.
    pub stall_read_after_s: f64,
    /// Seed for the Zipf draw.
    pub seed: u64,
    pub server: ServerSpec,
    pub targets: Targets,
}

impl Default for Scenario {
    fn default() -> Self {
        Self {
            name: "adhoc".into(),
            description: String::new(),
            url: "ws://127.0.0.1:8080/ws".into(),
            clients: 100,
            stalled_clients: 0,
            symbols_per_client: 10,
            pattern: Pattern::FixedSlice,
            zipf_s: 1.0,
            channels: vec!["quote".into(), "trade".into(), "book".into()],
            depth: 10,
            throttle_ms: 0,
            subprotocols: Vec::new(),
            subscribe_batch: 100,
            connect_rate: 1000,
            warmup_s: 3.0,
            duration_s: 20.0,
            threads: 1,
            busy_poll: false,
            source_addrs: 0,
            stalled_rcvbuf: 4096,
            stall_read_after_s: 0.0,
            seed: 7,
            server: ServerSpec::default(),
            targets: Targets::default(),
        }
    }
}

impl Scenario {
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        let s: Scenario =
            toml::from_str(&text).map_err(|source| ConfigError::Parse { path: p, source })?;
        s.validate()?;
        Ok(s)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |m: &str| Err(ConfigError::Invalid(m.to_string()));
        if self.server.symbols == 0 {
            return bad("server.symbols must be > 0");
        }
        if self.pattern != Pattern::All
            && (self.symbols_per_client == 0 || self.symbols_per_client > self.server.symbols)
        {
            return bad("symbols_per_client must be in 1..=server.symbols");
        }
        if self.connect_rate == 0 || self.threads == 0 || self.subscribe_batch == 0 {
            return bad("connect_rate, threads and subscribe_batch must be > 0");
        }
        if self.duration_s.is_nan() || self.duration_s <= 0.0 || self.warmup_s < 0.0 {
            return bad("duration_s must be > 0 and warmup_s >= 0");
        }
        for c in &self.channels {
            if !matches!(c.as_str(), "quote" | "trade" | "book") {
                return bad("channels must be quote, trade or book");
            }
        }
        Ok(())
    }

    /// Source addresses actually used.
    pub fn source_addr_count(&self) -> u32 {
        if self.source_addrs > 0 {
            self.source_addrs
        } else {
            let total = self.clients + self.stalled_clients;
            total.div_ceil(20_000).max(1)
        }
    }

    /// Arguments for `tickwire serve` (and the Node baseline) matching this scenario.
    pub fn server_args(&self, listen: &str) -> String {
        format!(
            "--feed synthetic --symbols {} --rate {} --seed {} --listen {}",
            self.server.symbols, self.server.rate, self.server.seed, listen
        )
    }
}

/// The name the synthetic feed gives symbol `i`.
pub fn symbol_name(i: u32) -> String {
    format!("SYM{i:04}")
}

/// Chooses each client's symbol indices for a scenario.
pub struct SymbolPicker {
    n: u32,
    k: u32,
    pattern: Pattern,
    /// Cumulative Zipf weights (only for [`Pattern::Zipf`]).
    cdf: Vec<f64>,
    seed: u64,
}

impl SymbolPicker {
    pub fn new(s: &Scenario) -> Self {
        let n = s.server.symbols;
        let cdf = if s.pattern == Pattern::Zipf {
            let mut acc = 0.0;
            (1..=n)
                .map(|r| {
                    acc += 1.0 / (r as f64).powf(s.zipf_s);
                    acc
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            n,
            k: s.symbols_per_client.min(n),
            pattern: s.pattern,
            cdf,
            seed: s.seed,
        }
    }

    /// Symbol indices for client number `client` (deterministic per seed).
    pub fn pick(&self, client: u32) -> Vec<u32> {
        match self.pattern {
            Pattern::All => (0..self.n).collect(),
            Pattern::FixedSlice => {
                let start = (client as u64 * self.k as u64 % self.n as u64) as u32;
                (0..self.k).map(|j| (start + j) % self.n).collect()
            }
            Pattern::Zipf => {
                let mut rng = Xoshiro256PlusPlus::seed_from_u64(
                    self.seed ^ (client as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                );
                let total = *self.cdf.last().expect("n > 0");
                let mut out: Vec<u32> = Vec::with_capacity(self.k as usize);
                // Draw by popularity; duplicates are redrawn. With K close to N the tail is
                // filled in rank order so the loop always ends.
                let mut tries = 0u32;
                while out.len() < self.k as usize && tries < self.k * 64 {
                    tries += 1;
                    let u = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * total;
                    let idx = self.cdf.partition_point(|&c| c < u) as u32;
                    let idx = idx.min(self.n - 1);
                    if !out.contains(&idx) {
                        out.push(idx);
                    }
                }
                let mut r = 0;
                while out.len() < self.k as usize {
                    if !out.contains(&r) {
                        out.push(r);
                    }
                    r += 1;
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_slice_wraps_and_spreads_evenly() {
        let s = Scenario {
            clients: 100,
            symbols_per_client: 10,
            server: ServerSpec {
                symbols: 100,
                ..Default::default()
            },
            ..Default::default()
        };
        let p = SymbolPicker::new(&s);
        assert_eq!(p.pick(0), (0..10).collect::<Vec<_>>());
        assert_eq!(p.pick(9), (90..100).collect::<Vec<_>>());
        assert_eq!(p.pick(10), (0..10).collect::<Vec<_>>());
        let mut counts = vec![0u32; 100];
        for c in 0..100 {
            for i in p.pick(c) {
                counts[i as usize] += 1;
            }
        }
        assert!(counts.iter().all(|&c| c == 10), "{counts:?}");
    }

    #[test]
    fn zipf_is_distinct_and_skewed() {
        let s = Scenario {
            symbols_per_client: 5,
            pattern: Pattern::Zipf,
            server: ServerSpec {
                symbols: 1000,
                ..Default::default()
            },
            ..Default::default()
        };
        let p = SymbolPicker::new(&s);
        let mut hits0 = 0;
        let mut hits_last = 0;
        for c in 0..2000 {
            let v = p.pick(c);
            assert_eq!(v.len(), 5);
            let mut d = v.clone();
            d.sort();
            d.dedup();
            assert_eq!(d.len(), 5);
            hits0 += v.contains(&0) as u32;
            hits_last += v.contains(&999) as u32;
        }
        assert!(hits0 > 10 * hits_last.max(1), "{hits0} vs {hits_last}");
    }

    #[test]
    fn scenario_toml_round_trip_and_validation() {
        let s: Scenario = toml::from_str(
            "name='x'\nclients=3\nsymbols_per_client=2\n[server]\nsymbols=4\nrate=10\n",
        )
        .unwrap();
        assert_eq!(s.clients, 3);
        assert_eq!(s.server.rate, 10);
        s.validate().unwrap();
        let bad = Scenario {
            symbols_per_client: 5,
            server: ServerSpec {
                symbols: 4,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(bad.validate().is_err());
        assert!(toml::from_str::<Scenario>("nope=1").is_err());
    }
}
