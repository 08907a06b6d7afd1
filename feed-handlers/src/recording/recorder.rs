//! Recording a live session: a [`RawTap`] that appends every raw upstream message, with its
//! receive time, to a recording file.
//!
//! The live adapter calls the tap with the bytes exactly as sent or received, before any
//! decoding, so a recording replays through the very same decoders and books. Each
//! connection URL (and each HTTP endpoint, e.g. a Binance snapshot URL) becomes a stream of
//! the recording the first time it is seen. The writer's durability contract applies: call
//! [`Recorder::poll`] from a timer (a quiet feed is flushed within `max_delay`) and
//! [`Recorder::finish`] on shutdown.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use tickwire_engine::domain::Nanos;

use super::{
    Header, RecordKind, RecordingError, StreamId, StreamKind, Writer, WriterOptions, WriterSummary,
};
use crate::live::RawTap;

struct Inner {
    writer: Option<Writer>,
    streams: HashMap<(StreamKind, String), StreamId>,
    records: u64,
    /// The first write error; later messages are dropped and `finish` reports it.
    error: Option<RecordingError>,
}

/// See the module documentation.
pub struct Recorder {
    inner: Mutex<Inner>,
}

impl Recorder {
    /// Creates the recording file with `header`.
    pub fn create(path: impl AsRef<Path>, header: &Header) -> Result<Recorder, RecordingError> {
        let writer = Writer::create(path, header, WriterOptions::default())?;
        Ok(Recorder {
            inner: Mutex::new(Inner {
                writer: Some(writer),
                streams: HashMap::new(),
                records: 0,
                error: None,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave the writer half-updated in a way that
        // matters more than losing the recording; keep going with what is there.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the pending block if it is due. Call from a timer (every ~250 ms).
    pub fn poll(&self) -> Result<(), RecordingError> {
        let mut g = self.lock();
        if let Some(e) = g.error.take() {
            return Err(e);
        }
        if let Some(w) = g.writer.as_mut() {
            w.poll()?;
        }
        Ok(())
    }

    /// Records appended so far.
    pub fn records(&self) -> u64 {
        self.lock().records
    }

    /// Writes the index and trailer and closes the file.
    pub fn finish(&self) -> Result<WriterSummary, RecordingError> {
        let mut g = self.lock();
        if let Some(e) = g.error.take() {
            return Err(e);
        }
        let w = g
            .writer
            .take()
            .ok_or_else(|| RecordingError::InvalidInput("recording already finished".into()))?;
        w.finish()
    }
}

impl RawTap for Recorder {
    fn raw(&self, kind: RecordKind, url: &str, ts: Nanos, payload: &[u8]) {
        let mut g = self.lock();
        let Inner {
            writer,
            streams,
            records,
            error,
        } = &mut *g;
        let (Some(w), None) = (writer.as_mut(), error.as_ref()) else {
            return;
        };
        let stream_kind = if kind == RecordKind::HttpResponse {
            StreamKind::Http
        } else {
            StreamKind::WebSocket
        };
        let result = (|| {
            let id = match streams.get(&(stream_kind, url.to_string())) {
                Some(id) => *id,
                None => {
                    let id = w.add_stream(ts.0, stream_kind, url)?;
                    streams.insert((stream_kind, url.to_string()), id);
                    id
                }
            };
            w.append(ts.0, id, kind, payload)
        })();
        match result {
            Ok(()) => *records += 1,
            Err(e) => {
                tracing::error!(error = %e, "recording write failed; recording stops here");
                *error = Some(e);
            }
        }
    }
}
