//! The replay as the server's feed: `tickwire serve --replay FILE... --speed S [--from T
//! --to T] [--loop]`, and the bundled day when no file is given (what `cargo run` serves).

use anyhow::Context as _;
use tickwire_feeds::recording::Reader;
use tickwire_feeds::replay::{ReplayAdapter, ReplayOptions, ReplaySource};

use crate::config::ReplayFeed;

/// Opens the recordings of `r` (or the bundled day) as a replay adapter.
pub fn build(r: &ReplayFeed) -> anyhow::Result<Box<dyn tickwire_engine::FeedAdapter>> {
    build_with(r, None)
}

/// [`build`], re-recording every raw record into `tap` (`serve --record`).
pub fn build_with(
    r: &ReplayFeed,
    tap: Option<std::sync::Arc<dyn tickwire_feeds::live::RawTap>>,
) -> anyhow::Result<Box<dyn tickwire_engine::FeedAdapter>> {
    let readers = if r.files.is_empty() {
        vec![super::bundled::reader().context("opening the bundled day")?]
    } else {
        r.files
            .iter()
            .map(|f| Reader::open(f).with_context(|| format!("opening recording {}", f.display())))
            .collect::<anyhow::Result<Vec<_>>>()?
    };
    for (reader, name) in readers.iter().zip(names(r)) {
        let rec = reader.recovery();
        if !rec.clean_close || !rec.skipped.is_empty() {
            tracing::warn!(recording = %name, clean_close = rec.clean_close,
                torn_tail = ?rec.torn_tail, skipped = ?rec.skipped,
                "recording was not closed cleanly or is damaged; replaying what is readable");
        }
    }
    let source = ReplaySource::open(readers).context("reading the recordings' instruments")?;
    if let Some((first, last)) = source.time_range() {
        for (key, t) in [("--from", r.from), ("--to", r.to)] {
            if let Some(t) = t {
                if t < first || t > last {
                    anyhow::bail!(
                        "{key} {} is outside the recordings ({} to {})",
                        tickwire_feeds::replay::format_rfc3339(t),
                        tickwire_feeds::replay::format_rfc3339(first),
                        tickwire_feeds::replay::format_rfc3339(last)
                    );
                }
            }
        }
    }
    let mut opts = ReplayOptions::new(r.speed);
    // The bundled day starts a few minutes before the open to build its books; a new user
    // should see trading at once.
    opts.from = r.from.or_else(|| {
        r.files
            .is_empty()
            .then(|| tickwire_feeds::replay::source::session_open(&source.readers()[0]))
            .flatten()
    });
    opts.to = r.to;
    opts.looping = r.looping;
    opts.tap = tap;
    if r.speed == tickwire_feeds::replay::Speed::Max {
        opts.progress = Some(watch_progress(&source));
        // At full speed the replay waits for the slowest server worker's tick queue
        // instead of overflowing it (which would resynchronize every session there).
        opts.backpressure = Some(std::sync::Arc::new(|| {
            SERVED_HUB
                .get()
                .is_some_and(|h| h.max_queued() > HUB_HIGH_WATER)
        }));
    }
    tracing::info!(
        recordings = ?names(r),
        symbols = source.instruments().len(),
        speed = %r.speed,
        looping = r.looping,
        "starting replay feed"
    );
    Ok(Box::new(ReplayAdapter::new(source, opts)))
}

/// Ticks a worker queue may hold before a full-speed served replay waits (a quarter of the
/// default queue).
const HUB_HIGH_WATER: usize = tickwire_engine::fanout::hub::DEFAULT_WORKER_QUEUE / 4;

static SERVED_HUB: std::sync::OnceLock<std::sync::Arc<tickwire_engine::fanout::Hub>> =
    std::sync::OnceLock::new();

/// Tells a full-speed served replay which hub to watch (call once the engine is up).
pub fn attach_hub(hub: std::sync::Arc<tickwire_engine::fanout::Hub>) {
    let _ = SERVED_HUB.set(hub);
}

fn names(r: &ReplayFeed) -> Vec<String> {
    if r.files.is_empty() {
        vec![super::bundled::NAME.to_string()]
    } else {
        r.files.iter().map(|f| f.display().to_string()).collect()
    }
}

/// A full-speed replay shows its progress (records of the pass, rate, ETA): a bar on a
/// terminal, periodic log lines otherwise.
fn watch_progress(source: &ReplaySource) -> std::sync::Arc<tickwire_feeds::replay::Progress> {
    use std::sync::atomic::Ordering;
    let total: u64 = source
        .readers()
        .iter()
        .flat_map(|r| r.blocks().iter().map(|b| u64::from(b.record_count)))
        .sum();
    let shared = std::sync::Arc::new(tickwire_feeds::replay::Progress::default());
    let p = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("tickwire-replay-progress".into())
        .spawn(move || {
            let mut bar = tickwire_feeds::progress::Progress::new("replay", total);
            let mut passes = 0;
            loop {
                std::thread::sleep(std::time::Duration::from_millis(200));
                let done = p.records.load(Ordering::Relaxed);
                let now_passes = p.passes.load(Ordering::Relaxed);
                if now_passes != passes {
                    bar.finish();
                    passes = now_passes;
                    bar = tickwire_feeds::progress::Progress::new("replay", total);
                }
                bar.set(done.saturating_sub(total * passes));
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no progress display");
    }
    shared
}
