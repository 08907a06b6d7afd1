//! The append-only recording writer.
//!
//! Shaped for a recorder actor: [`Writer::append`] is cheap (varint-encode into an in-memory
//! block), and a block is compressed and written with one `write` call when it reaches
//! [`WriterOptions::block_bytes`] or when its oldest record has waited
//! [`WriterOptions::max_delay`]. Because the data reaches the operating system at least that
//! often, a recorder killed with SIGKILL loses at most `max_delay` of data; the recorder must
//! call [`Writer::poll`] from a timer (every `max_delay / 2` or so) so a quiet feed is flushed
//! too. [`WriterOptions::fsync`] adds an `fsync` per block for power-loss durability.
//!
//! The block index is kept in memory and written, with the stream table, at
//! [`Writer::finish`]. A file that was never finished is still complete up to its last whole
//! block: readers rebuild the index by walking block headers (see [`super::index`]).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use super::format::{self, BlockHeader, BlockType, Codec, IndexEntry};
use super::{Header, RecordKind, RecordingError, StreamId, StreamInfo, StreamKind};

/// Tuning of a [`Writer`].
#[derive(Clone, Debug)]
pub struct WriterOptions {
    /// Uncompressed size at which a block is cut (default 128 KiB). Larger blocks compress
    /// better; smaller ones make seeks decode less.
    pub block_bytes: usize,
    /// Longest time a record may sit in memory before its block is written (default 500 ms).
    pub max_delay: Duration,
    /// zstd level (default 3). `0` stores blocks uncompressed.
    pub zstd_level: i32,
    /// `fsync` after every block (default off: SIGKILL-safe, not power-loss-safe).
    pub fsync: bool,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            block_bytes: 128 << 10,
            max_delay: Duration::from_millis(500),
            zstd_level: 3,
            fsync: false,
        }
    }
}

/// What [`Writer::finish`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriterSummary {
    /// Records written (stream definitions excluded).
    pub records: u64,
    /// Data blocks written.
    pub blocks: u64,
    /// Uncompressed payload bytes of the records (sum of payload lengths).
    pub payload_bytes: u64,
    /// File size in bytes.
    pub file_bytes: u64,
}

/// Appends records to a recording file. See the module docs for the durability contract.
pub struct Writer {
    file: File,
    offset: u64,
    opts: WriterOptions,
    compressor: Option<zstd::bulk::Compressor<'static>>,
    block: Vec<u8>,
    stored: Vec<u8>,
    block_count: u32,
    block_min: i64,
    block_max: i64,
    prev_ts: i64,
    block_flags: u8,
    pending_since: Option<Instant>,
    index: Vec<IndexEntry>,
    streams: Vec<StreamInfo>,
    records: u64,
    payload_bytes: u64,
    finished: bool,
}

impl Writer {
    /// Creates (or truncates) `path` and writes the file header.
    pub fn create(
        path: impl AsRef<Path>,
        header: &Header,
        opts: WriterOptions,
    ) -> Result<Writer, RecordingError> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Writer::new(file, header, opts)
    }

    /// Writes the file header to an already opened, empty file.
    pub fn new(
        mut file: File,
        header: &Header,
        opts: WriterOptions,
    ) -> Result<Writer, RecordingError> {
        let head = format::encode_file_header(header)?;
        file.write_all(&head)?;
        if opts.fsync {
            file.sync_data()?;
        }
        let compressor = if opts.zstd_level == 0 {
            None
        } else {
            Some(zstd::bulk::Compressor::new(opts.zstd_level)?)
        };
        Ok(Writer {
            file,
            offset: head.len() as u64,
            block: Vec::with_capacity(opts.block_bytes + 4096),
            stored: Vec::new(),
            opts,
            compressor,
            block_count: 0,
            block_min: i64::MAX,
            block_max: i64::MIN,
            prev_ts: 0,
            block_flags: 0,
            pending_since: None,
            index: Vec::new(),
            streams: Vec::new(),
            records: 0,
            payload_bytes: 0,
            finished: false,
        })
    }

    /// Declares a stream (a connection or HTTP endpoint) and returns its id. The definition
    /// is written into the current block (flagged, so index rebuilds find it) at timestamp
    /// `ts`, and into the index at [`finish`](Writer::finish).
    pub fn add_stream(
        &mut self,
        ts: i64,
        kind: StreamKind,
        url: &str,
    ) -> Result<StreamId, RecordingError> {
        let id = u32::try_from(self.streams.len())
            .map_err(|_| RecordingError::InvalidInput("too many streams".into()))?;
        let payload = format::encode_stream_def(kind, url);
        self.push(ts, id, format::KIND_STREAM_DEF, &payload)?;
        self.block_flags |= format::FLAG_STREAM_DEFS;
        self.streams.push(StreamInfo {
            id,
            kind,
            url: url.to_string(),
        });
        self.maybe_flush()?;
        Ok(id)
    }

    /// The streams declared so far.
    pub fn streams(&self) -> &[StreamInfo] {
        &self.streams
    }

    /// Appends one record: `ts` is the receive time in ns since the epoch, `payload` the bytes
    /// exactly as received. Writes a block if it is full or due.
    #[inline]
    pub fn append(
        &mut self,
        ts: i64,
        stream: StreamId,
        kind: RecordKind,
        payload: &[u8],
    ) -> Result<(), RecordingError> {
        if stream as usize >= self.streams.len() {
            return Err(RecordingError::UnknownStream(stream));
        }
        self.push(ts, stream, kind as u8, payload)?;
        self.records += 1;
        self.payload_bytes += payload.len() as u64;
        self.maybe_flush()
    }

    /// Writes the current block if it has waited `max_delay`. Call from a timer.
    /// Returns whether a block was written.
    pub fn poll(&mut self) -> Result<bool, RecordingError> {
        match self.pending_since {
            Some(t) if t.elapsed() >= self.opts.max_delay => {
                self.flush()?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Writes the current block now (no-op if empty).
    pub fn flush(&mut self) -> Result<(), RecordingError> {
        if self.block_count == 0 {
            return Ok(());
        }
        let raw_len = u32::try_from(self.block.len())
            .map_err(|_| RecordingError::InvalidInput("block over 4 GiB".into()))?;
        let codec = match &mut self.compressor {
            Some(c) => {
                self.stored.clear();
                self.stored
                    .reserve(zstd::zstd_safe::compress_bound(self.block.len()));
                c.compress_to_buffer(&self.block, &mut self.stored)?;
                Codec::Zstd
            }
            None => Codec::None,
        };
        let payload: &[u8] = if codec == Codec::None {
            &self.block
        } else {
            &self.stored
        };
        let head = BlockHeader {
            block_type: BlockType::Data,
            codec,
            flags: self.block_flags,
            stored_len: payload.len() as u32,
            raw_len,
            record_count: self.block_count,
            min_ts: self.block_min,
            max_ts: self.block_max,
            payload_crc: crc32fast::hash(payload),
        };
        // One write per block: header and payload reach the OS together, so a kill can only
        // tear the last block, which readers detect by length and CRC.
        let mut out = Vec::with_capacity(format::BLOCK_HEADER_LEN + payload.len());
        out.extend_from_slice(&head.encode());
        out.extend_from_slice(payload);
        self.file.write_all(&out)?;
        if self.opts.fsync {
            self.file.sync_data()?;
        }
        self.index.push(IndexEntry {
            offset: self.offset,
            min_ts: self.block_min,
            max_ts: self.block_max,
            record_count: self.block_count,
        });
        self.offset += out.len() as u64;
        self.block.clear();
        self.block_count = 0;
        self.block_min = i64::MAX;
        self.block_max = i64::MIN;
        self.prev_ts = 0;
        self.block_flags = 0;
        self.pending_since = None;
        Ok(())
    }

    /// Flushes, writes the index block and trailer, and syncs the file.
    pub fn finish(mut self) -> Result<WriterSummary, RecordingError> {
        self.flush()?;
        let index = format::encode_index(&self.streams, &self.index)?;
        let head = BlockHeader {
            block_type: BlockType::Index,
            codec: Codec::None,
            flags: 0,
            stored_len: u32::try_from(index.len())
                .map_err(|_| RecordingError::InvalidInput("index over 4 GiB".into()))?,
            raw_len: index.len() as u32,
            record_count: 0,
            min_ts: self.index.first().map_or(0, |e| e.min_ts),
            max_ts: self.index.iter().map(|e| e.max_ts).max().unwrap_or(0),
            payload_crc: crc32fast::hash(&index),
        };
        let index_offset = self.offset;
        let mut out =
            Vec::with_capacity(format::BLOCK_HEADER_LEN + index.len() + format::TRAILER_LEN);
        out.extend_from_slice(&head.encode());
        out.extend_from_slice(&index);
        out.extend_from_slice(&format::encode_trailer(index_offset, self.records));
        self.file.write_all(&out)?;
        self.file.sync_all()?;
        self.offset += out.len() as u64;
        self.finished = true;
        Ok(WriterSummary {
            records: self.records,
            blocks: self.index.len() as u64,
            payload_bytes: self.payload_bytes,
            file_bytes: self.offset,
        })
    }

    #[inline]
    fn push(
        &mut self,
        ts: i64,
        stream: u32,
        kind: u8,
        payload: &[u8],
    ) -> Result<(), RecordingError> {
        if payload.len() > (format::MAX_BLOCK_RAW as usize) / 2 {
            return Err(RecordingError::InvalidInput(format!(
                "payload of {} bytes exceeds the per-record limit",
                payload.len()
            )));
        }
        if self.block_count > 0
            && self.block.len() + payload.len() + 24 > format::MAX_BLOCK_RAW as usize
        {
            self.flush()?;
        }
        format::encode_record(&mut self.block, self.prev_ts, ts, stream, kind, payload);
        self.prev_ts = ts;
        self.block_min = self.block_min.min(ts);
        self.block_max = self.block_max.max(ts);
        self.block_count += 1;
        if self.pending_since.is_none() {
            self.pending_since = Some(Instant::now());
        }
        Ok(())
    }

    #[inline]
    fn maybe_flush(&mut self) -> Result<(), RecordingError> {
        if self.block.len() >= self.opts.block_bytes {
            return self.flush();
        }
        // Checking the clock on every record costs ~20 ns; every 64th record bounds the
        // staleness just as well at any realistic rate, and `poll` covers quiet feeds.
        if self.block_count & 63 == 0 {
            self.poll()?;
        }
        Ok(())
    }
}

impl Drop for Writer {
    /// A writer dropped without [`finish`](Writer::finish) still writes its last block, so
    /// the file is complete up to the drop (without index; readers rebuild it).
    fn drop(&mut self) {
        if !self.finished {
            let _ = self.flush();
        }
    }
}
