//! `tickwire serve --record FILE`: the raw upstream of the served feed (a venue's live
//! session, or a replay re-recorded as it plays) goes into a recording while serving. A
//! timer flushes it (a killed server loses at most the writer's `max_delay`); a graceful
//! shutdown finishes it with its index and trailer once the server has stopped.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use tickwire_engine::domain::Nanos;
use tickwire_feeds::recording::{Header, Recorder};

use crate::config::FeedChoice;

static ACTIVE: Mutex<Option<Arc<Recorder>>> = Mutex::new(None);

/// Creates the recording for `feed`, with a header naming its adapter, venue and symbols.
pub fn create(path: &Path, feed: &FeedChoice) -> anyhow::Result<Recorder> {
    let header = match feed {
        FeedChoice::Live {
            venue,
            ws_url,
            instruments,
            ..
        } => Header {
            adapter: venue.clone(),
            venue: venue.clone(),
            symbols: instruments.clone(),
            start_ns: Nanos::now().0,
            metadata: vec![
                ("url".into(), ws_url.clone()),
                ("recorder".into(), format!("tickwire serve {}", env!("CARGO_PKG_VERSION"))),
            ],
        },
        FeedChoice::Replay(r) => {
            let reader = match r.files.as_slice() {
                [] => super::bundled::reader().context("opening the bundled day")?,
                [one] => tickwire_feeds::recording::Reader::open(one)
                    .with_context(|| format!("opening {}", one.display()))?,
                _ => anyhow::bail!(
                    "--record with several --replay files: a recording holds one adapter's traffic"
                ),
            };
            let mut h = reader.header().clone();
            h.start_ns = Nanos::now().0;
            h.metadata
                .push(("recorder".into(), "tickwire serve --record (a replay)".into()));
            h
        }
        FeedChoice::Synthetic { .. } => anyhow::bail!(
            "--record needs a venue or replay feed: the synthetic market has no raw upstream to record"
        ),
    };
    let r = Recorder::create(path, &header)?;
    Ok(r)
}

/// Flushes `recorder` every 200 ms while the server runs; remembers it for [`finish`].
pub fn spawn_flusher(recorder: Arc<Recorder>) {
    *ACTIVE.lock().unwrap_or_else(|e| e.into_inner()) = Some(recorder.clone());
    actix_rt::spawn(async move {
        let mut t = tokio::time::interval(Duration::from_millis(200));
        loop {
            t.tick().await;
            if let Err(e) = recorder.poll() {
                tracing::error!(error = %e, "recording write failed");
                return;
            }
        }
    });
}

/// Writes the index and trailer of the recording started with [`spawn_flusher`].
pub fn finish(path: &Path) -> anyhow::Result<()> {
    let Some(r) = ACTIVE.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return Ok(());
    };
    let summary = r
        .finish()
        .with_context(|| format!("finishing recording {}", path.display()))?;
    tracing::info!(
        out = %path.display(),
        records = summary.records,
        blocks = summary.blocks,
        file_bytes = summary.file_bytes,
        "recording finished"
    );
    Ok(())
}
