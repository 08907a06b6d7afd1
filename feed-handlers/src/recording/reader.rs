//! Reading recordings: [`Reader`] opens a file, [`Cursor`] iterates its records.
//!
//! A [`Reader`] is a cheap, cloneable, `Send + Sync` handle (an `Arc` around the open file,
//! header, stream table and block index), so a server can open a dataset once and give every
//! replay its own [`Cursor`]. Cursors use positional reads, so they never disturb each other,
//! and own their decode buffers, so they are `'static` and can move into an actor.
//!
//! [`Cursor::next_ref`] lends each record's payload straight out of the decompressed block
//! (no copy per record); the [`Iterator`] impl yields owned [`Record`]s for convenience.
//! [`Reader::seek`] binary-searches the block index (on the running maximum of block end
//! times, so it stays correct if a clock stepped backwards) and decodes no earlier block;
//! [`Reader::blocks_read`] counts decoded blocks for tests and metrics.
//!
//! A block that fails its checksum or does not decode yields one `Err` and the cursor moves on
//! to the next block, so one damaged block costs only its own records.
//!
//! [`Reader::read_ahead_cursor`] gives a cursor whose blocks are decoded by a second thread
//! ([`super::read_ahead`]) while it walks the current one: the same records and errors, in
//! the same order, with decompression off the consuming thread.

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::format::{self, IndexEntry, RawRecord, FILE_HEADER_FIXED};
pub use super::index::Recovery;
use super::index::{self, read_at, Backing};
use super::read_ahead::ReadAhead;
use super::{Header, RecordKind, RecordingError, StreamId, StreamInfo};

struct Inner {
    file: Backing,
    file_len: u64,
    header: Header,
    streams: Vec<StreamInfo>,
    entries: Vec<IndexEntry>,
    /// Running maximum of `entries[..=i].max_ts`: monotone, so seeks can binary-search it.
    run_max: Vec<i64>,
    recovery: Recovery,
    blocks_read: AtomicU64,
}

/// An open recording. Clone freely; clones share the file and counters.
#[derive(Clone)]
pub struct Reader {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Reader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reader")
            .field("header", &self.inner.header)
            .field("blocks", &self.inner.entries.len())
            .field("recovery", &self.inner.recovery)
            .finish()
    }
}

impl Reader {
    /// Opens a recording: validates the header, then loads the index from the trailer or, if
    /// the file was not closed cleanly, rebuilds it by walking block headers.
    pub fn open(path: impl AsRef<Path>) -> Result<Reader, RecordingError> {
        Reader::from_file(File::open(path)?)
    }

    /// Like [`open`](Reader::open) on an already opened file.
    pub fn from_file(file: File) -> Result<Reader, RecordingError> {
        Reader::from_backing(Backing::File(file))
    }

    /// A recording held in memory for the life of the program (e.g. embedded with
    /// `include_bytes!`): no file, so it works whatever the current directory.
    pub fn from_static(bytes: &'static [u8]) -> Result<Reader, RecordingError> {
        Reader::from_backing(Backing::Memory(bytes))
    }

    fn from_backing(file: Backing) -> Result<Reader, RecordingError> {
        let file_len = file.len()?;
        if file_len < FILE_HEADER_FIXED as u64 {
            let mut b = vec![0u8; file_len as usize];
            read_at(&file, &mut b, 0)?;
            if !format::MAGIC.starts_with(&b) {
                return Err(RecordingError::NotARecording);
            }
            return Err(RecordingError::TruncatedHeader);
        }
        let mut fixed = [0u8; FILE_HEADER_FIXED];
        read_at(&file, &mut fixed, 0)?;
        let body_len = u64::from(format::decode_file_header_fixed(&fixed)?);
        let data_start = FILE_HEADER_FIXED as u64 + body_len + 4;
        if data_start > file_len {
            return Err(RecordingError::TruncatedHeader);
        }
        let mut body = vec![0u8; (body_len + 4) as usize];
        read_at(&file, &mut body, FILE_HEADER_FIXED as u64)?;
        let header = format::decode_file_header_body(&body)?;
        let idx = index::load(&file, data_start, file_len)?;
        let mut m = i64::MIN;
        let run_max = idx
            .entries
            .iter()
            .map(|e| {
                m = m.max(e.max_ts);
                m
            })
            .collect();
        Ok(Reader {
            inner: Arc::new(Inner {
                file,
                file_len,
                header,
                streams: idx.streams,
                entries: idx.entries,
                run_max,
                recovery: idx.recovery,
                blocks_read: AtomicU64::new(0),
            }),
        })
    }

    /// Size of the recording in bytes.
    pub fn file_len(&self) -> u64 {
        self.inner.file_len
    }

    /// The file header.
    pub fn header(&self) -> &Header {
        &self.inner.header
    }

    /// Every stream declared in the file.
    pub fn streams(&self) -> &[StreamInfo] {
        &self.inner.streams
    }

    /// The stream with id `id`, if declared.
    pub fn stream(&self, id: StreamId) -> Option<&StreamInfo> {
        self.inner.streams.iter().find(|s| s.id == id)
    }

    /// Smallest and largest record timestamp (ns), from the index; `None` if empty.
    pub fn time_range(&self) -> Option<(i64, i64)> {
        let e = &self.inner.entries;
        let min = e.iter().map(|e| e.min_ts).min()?;
        Some((min, *self.inner.run_max.last()?))
    }

    /// The data blocks, in file order.
    pub fn blocks(&self) -> &[IndexEntry] {
        &self.inner.entries
    }

    /// How the index was obtained and what damage was found while opening.
    pub fn recovery(&self) -> &Recovery {
        &self.inner.recovery
    }

    /// Data blocks decoded so far by all cursors of this reader (and its clones).
    pub fn blocks_read(&self) -> u64 {
        self.inner.blocks_read.load(Ordering::Relaxed)
    }

    /// A cursor over every record from the start.
    pub fn cursor(&self) -> Cursor {
        Cursor::new(self.clone(), 0, None)
    }

    /// Like [`cursor`](Reader::cursor), but its blocks are decoded ahead on a second thread
    /// ([`ReadAhead`]): for long full-speed reads of compressed files. Falls back to a plain
    /// cursor if the thread cannot be started.
    pub fn read_ahead_cursor(&self) -> Cursor {
        let mut c = self.cursor();
        match ReadAhead::start(self.clone(), 0) {
            Ok(ahead) => c.read_ahead = Some(ahead),
            Err(e) => tracing::warn!(error = %e, "no read-ahead thread; reading inline"),
        }
        c
    }

    /// A cursor positioned at the first record whose timestamp is `>= t` (ns). Blocks that end
    /// before `t` are not read.
    pub fn seek(&self, t: i64) -> Cursor {
        let first = self.inner.run_max.partition_point(|&m| m < t);
        Cursor::new(self.clone(), first, Some(t))
    }
}

/// A record whose payload borrows the cursor's block buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    /// Receive time, ns since the epoch.
    pub ts: i64,
    /// Stream (connection) id.
    pub stream: StreamId,
    /// Direction/kind.
    pub kind: RecordKind,
    /// Bytes exactly as received or sent.
    pub payload: &'a [u8],
}

impl RecordRef<'_> {
    /// Copies into an owned [`Record`].
    pub fn to_record(&self) -> Record {
        Record {
            ts: self.ts,
            stream: self.stream,
            kind: self.kind,
            payload: self.payload.to_vec(),
        }
    }
}

/// An owned record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Receive time, ns since the epoch.
    pub ts: i64,
    /// Stream (connection) id.
    pub stream: StreamId,
    /// Direction/kind.
    pub kind: RecordKind,
    /// Bytes exactly as received or sent.
    pub payload: Vec<u8>,
}

/// Iterates the records of one [`Reader`], in file order.
pub struct Cursor {
    reader: Reader,
    next_block: usize,
    block_offset: u64,
    raw: Vec<u8>,
    stored: Vec<u8>,
    pos: usize,
    prev_ts: i64,
    skip_before: Option<i64>,
    head: Option<RawRecord>,
    dec: Option<zstd::bulk::Decompressor<'static>>,
    /// Decodes the following blocks on a second thread, if this cursor was made so.
    read_ahead: Option<ReadAhead>,
    blocks_read: u64,
}

impl Cursor {
    fn new(reader: Reader, first_block: usize, skip_before: Option<i64>) -> Cursor {
        Cursor {
            read_ahead: None,
            reader,
            next_block: first_block,
            block_offset: 0,
            raw: Vec::new(),
            stored: Vec::new(),
            pos: 0,
            prev_ts: 0,
            skip_before,
            head: None,
            dec: None,
            blocks_read: 0,
        }
    }

    /// The reader this cursor reads.
    pub fn reader(&self) -> &Reader {
        &self.reader
    }

    /// Blocks this cursor has decoded.
    pub fn blocks_read(&self) -> u64 {
        self.blocks_read
    }

    /// The next record, borrowing its payload. `None` at the end; an `Err` for a damaged block
    /// (the next call continues with the following block).
    #[inline]
    pub fn next_ref(&mut self) -> Option<Result<RecordRef<'_>, RecordingError>> {
        // Fast path: the next record is in the current block and needs no filtering. Anything
        // unusual (block boundary, stream definition, damage, seek filter) takes `fill`.
        if self.head.is_none() && self.skip_before.is_none() && self.pos < self.raw.len() {
            let mut pos = self.pos;
            if let Ok(r) = format::decode_record(&self.raw, &mut pos, self.prev_ts) {
                if let Some(kind) = RecordKind::from_u8(r.kind) {
                    self.pos = pos;
                    self.prev_ts = r.ts;
                    return Some(Ok(RecordRef {
                        ts: r.ts,
                        stream: r.stream,
                        kind,
                        payload: &self.raw[r.start..r.end],
                    }));
                }
            }
        }
        match self.fill() {
            Ok(true) => {}
            Ok(false) => return None,
            Err(e) => return Some(Err(e)),
        }
        let r = self.head.take()?;
        let kind = RecordKind::from_u8(r.kind)?;
        Some(Ok(RecordRef {
            ts: r.ts,
            stream: r.stream,
            kind,
            payload: &self.raw[r.start..r.end],
        }))
    }

    /// The timestamp of the next record without consuming it.
    #[inline]
    pub fn peek_ts(&mut self) -> Option<Result<i64, RecordingError>> {
        match self.fill() {
            Ok(true) => self.head.map(|h| Ok(h.ts)),
            Ok(false) => None,
            Err(e) => Some(Err(e)),
        }
    }

    /// Makes `head` hold the next record; `Ok(false)` at the end.
    #[inline]
    fn fill(&mut self) -> Result<bool, RecordingError> {
        if self.head.is_some() {
            return Ok(true);
        }
        loop {
            if self.pos < self.raw.len() {
                let r = match format::decode_record(&self.raw, &mut self.pos, self.prev_ts) {
                    Ok(r) => r,
                    Err(reason) => {
                        self.pos = self.raw.len();
                        return Err(RecordingError::MalformedBlock {
                            offset: self.block_offset,
                            reason: reason.to_string(),
                        });
                    }
                };
                self.prev_ts = r.ts;
                if r.kind == format::KIND_STREAM_DEF {
                    continue;
                }
                if RecordKind::from_u8(r.kind).is_none() {
                    return Err(RecordingError::MalformedBlock {
                        offset: self.block_offset,
                        reason: format!("unknown record kind {:#04x}", r.kind),
                    });
                }
                if let Some(t) = self.skip_before {
                    if r.ts < t {
                        continue;
                    }
                    self.skip_before = None;
                }
                self.head = Some(r);
                return Ok(true);
            }
            let inner = &self.reader.inner;
            let Some(entry) = inner.entries.get(self.next_block) else {
                return Ok(false);
            };
            self.next_block += 1;
            self.load(entry.offset)?;
        }
    }

    fn load(&mut self, offset: u64) -> Result<(), RecordingError> {
        self.raw.clear();
        self.pos = 0;
        self.prev_ts = 0;
        self.block_offset = offset;
        let res = match &mut self.read_ahead {
            Some(ahead) => ahead.next_into(&mut self.raw),
            None => decode_block(
                &self.reader,
                offset,
                &mut self.stored,
                &mut self.raw,
                &mut self.dec,
            ),
        };
        if res.is_err() {
            self.raw.clear();
        }
        res?;
        self.blocks_read += 1;
        self.reader
            .inner
            .blocks_read
            .fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// Reads, checks and decompresses the data block at `offset` into `raw` (`stored` and
/// `dec` are reusable scratch). What every cursor, read-ahead or not, does per block.
pub(crate) fn decode_block(
    reader: &Reader,
    offset: u64,
    stored: &mut Vec<u8>,
    raw: &mut Vec<u8>,
    dec: &mut Option<zstd::bulk::Decompressor<'static>>,
) -> Result<(), RecordingError> {
    let inner = &reader.inner;
    let h = index::read_block(&inner.file, offset, inner.file_len, stored)?;
    if h.block_type != format::BlockType::Data {
        return Err(RecordingError::MalformedBlock {
            offset,
            reason: "index entry does not point at a data block".into(),
        });
    }
    let dec = match dec {
        Some(d) => d,
        None => dec.insert(zstd::bulk::Decompressor::new()?),
    };
    index::decode_payload(&h, offset, stored, raw, dec)
}

impl Iterator for Cursor {
    type Item = Result<Record, RecordingError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_ref().map(|r| r.map(|r| r.to_record()))
    }
}
