//! The bundled market day: `replay-data/nasdaq-2025-06-16.twrec`, embedded in the binary so
//! that `tickwire` with no arguments serves it from any working directory.

use tickwire_feeds::recording::{Reader, RecordingError};

/// Dataset name of the bundled day.
pub const NAME: &str = "nasdaq-2025-06-16";

static BYTES: &[u8] = include_bytes!("../../../replay-data/nasdaq-2025-06-16.twrec");

/// A reader of the embedded day.
pub fn reader() -> Result<Reader, RecordingError> {
    Reader::from_static(BYTES)
}
