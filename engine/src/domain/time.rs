//! Nanosecond timestamps and per-symbol sequence numbers.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (UTC). `i64` covers the years 1678..2262.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Nanos(pub i64);

impl Nanos {
    /// The current wall-clock time.
    pub fn now() -> Self {
        let d = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Nanos(d.as_nanos() as i64)
    }

    /// From fractional Unix seconds as recorded in feed captures (`1618677817.061845`).
    pub fn from_secs_f64(secs: f64) -> Self {
        Nanos((secs * 1e9).round() as i64)
    }

    /// From Unix milliseconds, as many venues send event times.
    pub const fn from_millis(ms: i64) -> Self {
        Nanos(ms * 1_000_000)
    }

    /// The raw count.
    pub const fn get(self) -> i64 {
        self.0
    }
}

/// A sequence number of one published stream. Strictly increasing; a jump is a gap the client
/// can see (conflation for quotes and books; never expected for trades).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize)]
pub struct Seq(pub u64);

impl Seq {
    /// The number after this one.
    #[must_use]
    pub const fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}
