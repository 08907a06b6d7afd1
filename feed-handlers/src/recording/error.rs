//! The one error type of the recording module.

use std::io;

/// Everything that can go wrong writing, reading or converting a recording.
///
/// Offsets are byte offsets in the recording file, so a damaged file can be inspected with
/// a hex dump next to `docs/recording-format.md`.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    /// An I/O error from the operating system.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The file does not start with the recording magic.
    #[error("not a tickwire recording (bad magic)")]
    NotARecording,
    /// The file was written by a newer format version.
    #[error("unsupported recording format version {0}")]
    UnsupportedVersion(u16),
    /// The file header fails its checksum or does not decode.
    #[error("corrupt file header: {0}")]
    CorruptHeader(String),
    /// The file ends inside the file header.
    #[error("file truncated inside the file header")]
    TruncatedHeader,
    /// A block header fails its checksum.
    #[error("corrupt block header at offset {offset}")]
    BlockHeaderCrc {
        /// Offset of the block header.
        offset: u64,
    },
    /// A block payload fails its checksum.
    #[error("block at offset {offset}: payload checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    BlockCrc {
        /// Offset of the block header.
        offset: u64,
        /// CRC stored in the block header.
        stored: u32,
        /// CRC computed over the payload read.
        computed: u32,
    },
    /// A block extends past the end of the file.
    #[error("block at offset {offset} is truncated: needs {needed} bytes, file has {available}")]
    TruncatedBlock {
        /// Offset of the block header.
        offset: u64,
        /// Bytes the block needs from its offset.
        needed: u64,
        /// Bytes available from its offset.
        available: u64,
    },
    /// A block passed its checksum but its content does not decode.
    #[error("block at offset {offset}: {reason}")]
    MalformedBlock {
        /// Offset of the block header.
        offset: u64,
        /// What was wrong.
        reason: String,
    },
    /// The index block or trailer is inconsistent.
    #[error("corrupt index: {0}")]
    CorruptIndex(String),
    /// A writer was given a stream id it never declared.
    #[error("unknown stream id {0}")]
    UnknownStream(u32),
    /// A value does not fit the format (e.g. a payload over 4 GiB).
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// A line of the `real-feeds` text format does not parse.
    #[error("line {line}: {reason}")]
    Parse {
        /// 1-based line number.
        line: u64,
        /// What was wrong.
        reason: String,
    },
}
