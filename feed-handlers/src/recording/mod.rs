//! # Recordings: Tickwire's own capture format for raw upstream traffic
//!
//! A recording holds the **raw upstream messages** of one adapter (bytes exactly as received,
//! JSON text or binary such as ITCH) with their **receive timestamps** (`i64` nanoseconds since
//! the Unix epoch) and the **stream** (connection) each one travelled on. Replaying raw messages
//! rather than normalized events means a replay exercises the same adapter and book code as a
//! live session. The byte layout is specified in `docs/recording-format.md`.
//!
//! The module is split by responsibility:
//!
//! * [`format`](mod@format): the on-disk encoding (file header, block header, record encoding, index block,
//!   trailer). Nothing else knows byte offsets, so an independent reader only needs that file
//!   and the document.
//! * [`writer`]: the append-only [`Writer`]. Records are buffered into a block which is
//!   compressed, checksummed and written whole once it reaches its size target or has waited
//!   `max_delay` (half a second by default), so a recorder killed with SIGKILL loses at most
//!   about that much. A clean [`Writer::finish`] appends the index and a trailer.
//! * [`index`]: finds every block of a file: from the trailer's index when the file was closed
//!   cleanly, otherwise by walking block headers (which carry min/max timestamps so the walk
//!   skips payloads), stopping cleanly at a torn tail and resynchronising past damaged headers.
//! * [`reader`]: [`Reader`] (open, header, streams, time range, damage report) and [`Cursor`]
//!   (iterate all records, or [`Reader::seek`] to the first record at or after a time while
//!   reading no earlier block).
//! * [`read_ahead`]: [`ReadAhead`](read_ahead::ReadAhead), the thread behind
//!   [`Reader::read_ahead_cursor`] that decodes the next blocks while the current one is
//!   read (full-speed replays of compressed files).
//! * [`merge`]: [`Merge`], a k-way merge of several cursors in timestamp order, stable on ties,
//!   for replaying several venues together.
//! * [`convert`]: lossless conversion between the `../shared/real-feeds/*.raw` line format and
//!   recordings, in both directions.
//!
//! Every failure is a typed [`RecordingError`]; corrupt input never panics.

pub mod convert;
mod error;
pub mod format;
pub mod index;
pub mod merge;
pub mod read_ahead;
pub mod reader;
pub mod recorder;
pub mod writer;

pub use error::RecordingError;
pub use merge::{Merge, MergedRecord};
pub use reader::{Cursor, Reader, Record, RecordRef, Recovery};
pub use recorder::Recorder;
pub use writer::{Writer, WriterOptions, WriterSummary};

/// Identifies one stream (connection, or HTTP endpoint) inside a recording.
pub type StreamId = u32;

/// What a record is: mirrors the directions of the `real-feeds` line format plus `Closed`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordKind {
    /// A message received from the upstream (the common case).
    Received = 0,
    /// A message the client sent (subscriptions, pings).
    Sent = 1,
    /// The body of an HTTP response (REST snapshots).
    HttpResponse = 2,
    /// The connection was opened; payload is usually empty.
    Opened = 3,
    /// The connection was closed; payload may hold a reason.
    Closed = 4,
}

impl RecordKind {
    /// Decodes the on-disk kind byte (stream definitions, `0x80`, are not records).
    pub fn from_u8(b: u8) -> Option<RecordKind> {
        Some(match b {
            0 => RecordKind::Received,
            1 => RecordKind::Sent,
            2 => RecordKind::HttpResponse,
            3 => RecordKind::Opened,
            4 => RecordKind::Closed,
            _ => return None,
        })
    }
}

/// The transport of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum StreamKind {
    /// Unknown or not applicable (e.g. received lines with no preceding connection).
    Other = 0,
    /// A WebSocket connection.
    WebSocket = 1,
    /// HTTP requests to one URL.
    Http = 2,
    /// A raw TCP/UDP byte stream (e.g. ITCH over MoldUDP64 or SoupBinTCP).
    Socket = 3,
}

impl StreamKind {
    /// Decodes the on-disk kind byte.
    pub fn from_u8(b: u8) -> Option<StreamKind> {
        Some(match b {
            0 => StreamKind::Other,
            1 => StreamKind::WebSocket,
            2 => StreamKind::Http,
            3 => StreamKind::Socket,
            _ => return None,
        })
    }
}

/// One stream of a recording: its id, transport and URL (or other address).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamInfo {
    /// Id used by the records of this stream.
    pub id: StreamId,
    /// Transport.
    pub kind: StreamKind,
    /// URL or address, as the adapter connected to it.
    pub url: String,
}

/// The file header: what was recorded and when.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Header {
    /// Adapter name as configured (e.g. `coinbase`).
    pub adapter: String,
    /// Venue name (e.g. `coinbase-pro`).
    pub venue: String,
    /// Symbols the adapter was subscribed to, in the venue's spelling.
    pub symbols: Vec<String>,
    /// Start of the recording, ns since the Unix epoch.
    pub start_ns: i64,
    /// Free-form key/value metadata (URL, host, tool version, source file...).
    pub metadata: Vec<(String, String)>,
}
