//! Replay speed and the clock that turns recorded times into wall-clock deadlines.
//!
//! The clock is anchored at one record: that record is due *now*, and a record `d`
//! nanoseconds later in the recording is due `d / speed` later on the wall clock. Pausing,
//! seeking and changing the speed simply drop the anchor, so the next record re-anchors at
//! the moment playback goes on: nothing "catches up" in a burst after a pause, while a
//! replay that fell behind (a slow consumer, a busy machine) does catch up, because the
//! anchor stays put as long as playback runs.

use std::fmt;
use std::time::{Duration, Instant};

/// How fast a replay plays.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// Recorded time divided by this factor (1 = as it happened, 10 = ten times faster).
    Factor(f64),
    /// As fast as the machine (and the consumer) goes.
    Max,
}

/// Largest factor accepted; beyond it `max` is what is meant.
pub const MAX_FACTOR: f64 = 1_000_000.0;

impl Speed {
    /// Parses `1`, `10`, `0.5`, `max` (as on the command line and in requests).
    pub fn parse(s: &str) -> Result<Speed, String> {
        if s.eq_ignore_ascii_case("max") {
            return Ok(Speed::Max);
        }
        let f: f64 = s
            .parse()
            .map_err(|_| format!("speed {s:?} is not a number or \"max\""))?;
        Speed::factor(f)
    }

    /// A factor, validated: finite, greater than 0, at most [`MAX_FACTOR`].
    pub fn factor(f: f64) -> Result<Speed, String> {
        if f.is_finite() && f > 0.0 && f <= MAX_FACTOR {
            Ok(Speed::Factor(f))
        } else {
            Err(format!(
                "speed {f} must be greater than 0 and at most {MAX_FACTOR}, or \"max\""
            ))
        }
    }
}

impl fmt::Display for Speed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Speed::Factor(x) => write!(f, "{x}"),
            Speed::Max => f.write_str("max"),
        }
    }
}

/// See the module documentation.
#[derive(Debug, Clone)]
pub struct ReplayClock {
    speed: Speed,
    anchor: Option<(Instant, i64)>,
}

impl ReplayClock {
    /// A clock at `speed`, anchored at the first record asked about.
    pub fn new(speed: Speed) -> Self {
        ReplayClock {
            speed,
            anchor: None,
        }
    }

    /// The current speed.
    pub fn speed(&self) -> Speed {
        self.speed
    }

    /// Changes the speed; the next record re-anchors.
    pub fn set_speed(&mut self, speed: Speed) {
        self.speed = speed;
        self.anchor = None;
    }

    /// Forgets the anchor (after a pause or seek): the next record is due at once.
    pub fn rebase(&mut self) {
        self.anchor = None;
    }

    /// When the record recorded at `ts` is due; `None` at [`Speed::Max`].
    #[inline]
    pub fn deadline(&mut self, ts: i64) -> Option<Instant> {
        let Speed::Factor(f) = self.speed else {
            return None;
        };
        let (wall, t0) = *self.anchor.get_or_insert_with(|| (Instant::now(), ts));
        let offset = (ts.saturating_sub(t0)).max(0) as f64 / f;
        Some(wall + Duration::from_nanos(offset as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speeds_parse_and_reject_nonsense() {
        assert_eq!(Speed::parse("max"), Ok(Speed::Max));
        assert_eq!(Speed::parse("10"), Ok(Speed::Factor(10.0)));
        assert_eq!(Speed::parse("0.5"), Ok(Speed::Factor(0.5)));
        for bad in ["0", "-1", "nan", "inf", "fast", "1e9"] {
            assert!(Speed::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn deadlines_scale_recorded_offsets() {
        let mut c = ReplayClock::new(Speed::Factor(10.0));
        let d0 = c.deadline(1_000_000_000).unwrap();
        let d1 = c.deadline(2_000_000_000).unwrap();
        assert_eq!(d1 - d0, Duration::from_millis(100));
        c.rebase();
        let d2 = c.deadline(5_000_000_000).unwrap();
        assert!(d2 >= d0);
        assert!(ReplayClock::new(Speed::Max).deadline(5).is_none());
    }
}
