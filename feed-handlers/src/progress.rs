//! Progress of long work (`record`, `inspect`, a full-speed replay): a progress bar with
//! rate and ETA on a terminal (the `indicatif` crate: it redraws in place, computes a
//! smoothed rate and ETA, and hides itself when stderr is not a terminal), and a plain
//! `tracing` line every few seconds otherwise, so logs and CI output stay readable.

use std::io::IsTerminal as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often the non-terminal form logs.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// See the module documentation.
pub struct Progress {
    what: &'static str,
    total: u64,
    done: AtomicU64,
    bar: Option<indicatif::ProgressBar>,
    started: Instant,
    last_log: Mutex<Instant>,
}

impl Progress {
    /// Progress of `what` over `total` units (0 if unknown).
    pub fn new(what: &'static str, total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = if total > 0 {
                indicatif::ProgressBar::new(total)
            } else {
                indicatif::ProgressBar::new_spinner()
            };
            let style = indicatif::ProgressStyle::with_template(
                "{msg} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, ETA {eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
            b.set_style(style);
            b.set_message(what);
            b
        });
        Progress {
            what,
            total,
            done: AtomicU64::new(0),
            bar,
            started: Instant::now(),
            last_log: Mutex::new(Instant::now()),
        }
    }

    /// Counts `n` more units done.
    #[inline]
    pub fn tick(&self, n: u64) {
        let done = self.done.fetch_add(n, Ordering::Relaxed) + n;
        if done & 0x3ff != 0 && done != self.total {
            return;
        }
        self.show(done);
    }

    /// Sets the units done (for work counted elsewhere).
    pub fn set(&self, done: u64) {
        self.done.store(done, Ordering::Relaxed);
        self.show(done);
    }

    fn show(&self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
            return;
        }
        let mut last = self.last_log.lock().unwrap_or_else(|e| e.into_inner());
        if last.elapsed() < LOG_EVERY {
            return;
        }
        *last = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        let rate = done as f64 / secs;
        let eta_s = (self.total > done && rate > 0.0).then(|| (self.total - done) as f64 / rate);
        tracing::info!(
            what = self.what,
            done,
            total = self.total,
            rate_per_s = rate.round() as u64,
            eta_s = eta_s.map(|e| e.round() as u64),
            "progress"
        );
    }

    /// Ends the bar (or logs the final count).
    pub fn finish(&self) {
        let done = self.done.load(Ordering::Relaxed);
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-9);
        tracing::info!(
            what = self.what,
            done,
            elapsed_s = secs,
            rate_per_s = (done as f64 / secs).round() as u64,
            "done"
        );
    }
}
