//! Finding the blocks of a recording: from the index written at clean close, or by walking.
//!
//! A cleanly finished file ends with an index block (stream table + one entry per data block)
//! and a trailer pointing at it, so opening costs two small reads. A file whose writer was
//! killed has no trailer; then the blocks are found by walking block headers from the start.
//! Headers carry length, record count and min/max timestamps, so the walk reads 44 bytes per
//! block and skips payloads, except for blocks flagged as holding stream definitions, which
//! are decoded to rebuild the stream table. The walk stops cleanly at a torn tail (an
//! incomplete last block) and resynchronises past a damaged header by scanning for the next
//! block magic whose header checksum holds; both are reported in [`Recovery`].

use std::fs::File;

use super::format::{self, BlockHeader, BlockType, Codec, IndexEntry, BLOCK_HEADER_LEN};
use super::{RecordingError, StreamInfo};

/// What was found when opening a file that was not closed cleanly (or was damaged).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovery {
    /// The file ends with a valid trailer and index (the writer called `finish`).
    pub clean_close: bool,
    /// An incomplete block at the end of the file: `(offset, bytes)`. Everything before
    /// `offset` is readable; these bytes are ignored.
    pub torn_tail: Option<(u64, u64)>,
    /// Damaged regions skipped while walking: `(offset, bytes)`.
    pub skipped: Vec<(u64, u64)>,
    /// Why a present trailer/index was not used, if so.
    pub index_error: Option<String>,
    /// Blocks flagged with stream definitions that could not be decoded while walking (their
    /// streams are missing from the stream table).
    pub lost_stream_defs: Vec<u64>,
}

/// The result of locating blocks: the stream table and the data blocks in file order.
#[derive(Clone, Debug, Default)]
pub struct BlockIndex {
    /// Every stream declared in the file.
    pub streams: Vec<StreamInfo>,
    /// Every data block, in file order.
    pub entries: Vec<IndexEntry>,
    /// How the index was obtained and what was damaged.
    pub recovery: Recovery,
}

/// What a reader reads from: an open file, or bytes in memory (a recording embedded in the
/// binary, such as the bundled market day).
#[derive(Debug)]
pub enum Backing {
    /// An open file, read with positional reads.
    File(File),
    /// A whole recording in memory.
    Memory(&'static [u8]),
}

impl Backing {
    /// Length in bytes.
    pub fn len(&self) -> std::io::Result<u64> {
        match self {
            Backing::File(f) => Ok(f.metadata()?.len()),
            Backing::Memory(m) => Ok(m.len() as u64),
        }
    }

    /// Whether there are no bytes at all.
    pub fn is_empty(&self) -> std::io::Result<bool> {
        Ok(self.len()? == 0)
    }
}

/// Positional read that does not move a shared file cursor, so readers can share one handle.
pub(crate) fn read_at(backing: &Backing, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    let file = match backing {
        Backing::File(f) => f,
        Backing::Memory(m) => {
            let start = usize::try_from(offset).unwrap_or(usize::MAX);
            let src = start
                .checked_add(buf.len())
                .and_then(|end| m.get(start..end))
                .ok_or(std::io::ErrorKind::UnexpectedEof)?;
            buf.copy_from_slice(src);
            return Ok(());
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileExt;
        file.read_exact_at(buf, offset)
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::FileExt;
        let mut done = 0;
        while done < buf.len() {
            let n = file.seek_read(&mut buf[done..], offset + done as u64)?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            done += n;
        }
        Ok(())
    }
}

/// Reads and validates the block at `offset`: header, then payload (CRC checked, still in its
/// stored form). `file_len` bounds the read so truncation is reported, not hit as EOF.
pub(crate) fn read_block(
    file: &Backing,
    offset: u64,
    file_len: u64,
    stored: &mut Vec<u8>,
) -> Result<BlockHeader, RecordingError> {
    if offset + BLOCK_HEADER_LEN as u64 > file_len {
        return Err(RecordingError::TruncatedBlock {
            offset,
            needed: BLOCK_HEADER_LEN as u64,
            available: file_len.saturating_sub(offset),
        });
    }
    let mut hb = [0u8; BLOCK_HEADER_LEN];
    read_at(file, &mut hb, offset)?;
    let h = BlockHeader::decode(&hb, offset)?;
    let needed = BLOCK_HEADER_LEN as u64 + u64::from(h.stored_len);
    if offset + needed > file_len {
        return Err(RecordingError::TruncatedBlock {
            offset,
            needed,
            available: file_len - offset,
        });
    }
    stored.clear();
    stored.resize(h.stored_len as usize, 0);
    read_at(file, stored, offset + BLOCK_HEADER_LEN as u64)?;
    let computed = crc32fast::hash(stored);
    if computed != h.payload_crc {
        return Err(RecordingError::BlockCrc {
            offset,
            stored: h.payload_crc,
            computed,
        });
    }
    Ok(h)
}

/// Turns a validated stored payload into the raw record bytes in `out`.
pub(crate) fn decode_payload(
    h: &BlockHeader,
    offset: u64,
    stored: &[u8],
    out: &mut Vec<u8>,
    dec: &mut zstd::bulk::Decompressor<'static>,
) -> Result<(), RecordingError> {
    out.clear();
    match h.codec {
        Codec::None => out.extend_from_slice(stored),
        Codec::Zstd => {
            out.reserve(h.raw_len as usize);
            dec.decompress_to_buffer(stored, out)
                .map_err(|e| RecordingError::MalformedBlock {
                    offset,
                    reason: format!("zstd: {e}"),
                })?;
        }
    }
    if out.len() != h.raw_len as usize {
        return Err(RecordingError::MalformedBlock {
            offset,
            reason: format!("decoded {} bytes, header says {}", out.len(), h.raw_len),
        });
    }
    Ok(())
}

/// Locates every block of the file whose data starts at `data_start`.
pub fn load(file: &Backing, data_start: u64, file_len: u64) -> Result<BlockIndex, RecordingError> {
    let mut index_error = None;
    if file_len >= data_start + (BLOCK_HEADER_LEN + format::TRAILER_LEN) as u64 {
        let mut tb = [0u8; format::TRAILER_LEN];
        read_at(file, &mut tb, file_len - format::TRAILER_LEN as u64)?;
        if tb[20..24] == format::TRAILER_MAGIC {
            match from_trailer(file, data_start, file_len, &tb) {
                Ok(idx) => return Ok(idx),
                Err(e) => index_error = Some(e.to_string()),
            }
        }
    }
    let mut idx = walk(file, data_start, file_len)?;
    idx.recovery.index_error = index_error;
    Ok(idx)
}

fn from_trailer(
    file: &Backing,
    data_start: u64,
    file_len: u64,
    tb: &[u8; format::TRAILER_LEN],
) -> Result<BlockIndex, RecordingError> {
    let bad = |m: &str| RecordingError::CorruptIndex(m.to_string());
    let (index_offset, _records) =
        format::decode_trailer(tb).ok_or_else(|| bad("trailer checksum mismatch"))?;
    let index_end = file_len - format::TRAILER_LEN as u64;
    if index_offset < data_start || index_offset > index_end {
        return Err(bad("trailer points outside the file"));
    }
    let mut stored = Vec::new();
    let h = read_block(file, index_offset, index_end, &mut stored)?;
    if h.block_type != BlockType::Index || h.codec != Codec::None {
        return Err(bad("trailer does not point at an index block"));
    }
    if index_offset + BLOCK_HEADER_LEN as u64 + u64::from(h.stored_len) != index_end {
        return Err(bad("index block does not end at the trailer"));
    }
    let (streams, entries) = format::decode_index(&stored)?;
    let mut next = data_start;
    for e in &entries {
        if e.offset < next || e.offset + BLOCK_HEADER_LEN as u64 > index_offset {
            return Err(bad("index entries out of order or out of range"));
        }
        next = e.offset + BLOCK_HEADER_LEN as u64;
    }
    Ok(BlockIndex {
        streams,
        entries,
        recovery: Recovery {
            clean_close: true,
            ..Recovery::default()
        },
    })
}

fn walk(file: &Backing, data_start: u64, file_len: u64) -> Result<BlockIndex, RecordingError> {
    let mut idx = BlockIndex::default();
    let mut stored = Vec::new();
    let mut raw = Vec::new();
    let mut dec = zstd::bulk::Decompressor::new()?;
    let mut off = data_start;
    while off < file_len {
        let mut hb = [0u8; BLOCK_HEADER_LEN];
        if file_len - off < BLOCK_HEADER_LEN as u64 {
            idx.recovery.torn_tail = Some((off, file_len - off));
            break;
        }
        read_at(file, &mut hb, off)?;
        let h = match BlockHeader::decode(&hb, off) {
            Ok(h) => h,
            Err(_) => match resync(file, off + 1, file_len)? {
                Some(next) => {
                    idx.recovery.skipped.push((off, next - off));
                    off = next;
                    continue;
                }
                None => {
                    idx.recovery.torn_tail = Some((off, file_len - off));
                    break;
                }
            },
        };
        let end = off + BLOCK_HEADER_LEN as u64 + u64::from(h.stored_len);
        if end > file_len || h.block_type == BlockType::Index {
            // An incomplete block, or an index whose trailer never made it: the tail.
            idx.recovery.torn_tail = Some((off, file_len - off));
            break;
        }
        if h.flags & format::FLAG_STREAM_DEFS != 0 {
            let defs = read_block(file, off, file_len, &mut stored)
                .and_then(|h| decode_payload(&h, off, &stored, &mut raw, &mut dec))
                .and_then(|()| stream_defs(&raw, off));
            match defs {
                Ok(defs) => idx.streams.extend(defs),
                Err(_) => idx.recovery.lost_stream_defs.push(off),
            }
        }
        idx.entries.push(IndexEntry {
            offset: off,
            min_ts: h.min_ts,
            max_ts: h.max_ts,
            record_count: h.record_count,
        });
        off = end;
    }
    Ok(idx)
}

/// The stream definitions inside a decoded data block.
pub(crate) fn stream_defs(raw: &[u8], offset: u64) -> Result<Vec<StreamInfo>, RecordingError> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut prev = 0;
    let malformed = |reason: &str| RecordingError::MalformedBlock {
        offset,
        reason: reason.to_string(),
    };
    while pos < raw.len() {
        let r = format::decode_record(raw, &mut pos, prev).map_err(malformed)?;
        prev = r.ts;
        if r.kind == format::KIND_STREAM_DEF {
            out.push(format::decode_stream_def(r.stream, &raw[r.start..r.end]).map_err(malformed)?);
        }
    }
    Ok(out)
}

/// Scans forward from `from` for the next offset holding a valid block header.
fn resync(file: &Backing, from: u64, file_len: u64) -> Result<Option<u64>, RecordingError> {
    const CHUNK: u64 = 1 << 20;
    let mut buf = Vec::new();
    let mut start = from;
    while start + BLOCK_HEADER_LEN as u64 <= file_len {
        let len = (file_len - start).min(CHUNK + BLOCK_HEADER_LEN as u64) as usize;
        buf.resize(len, 0);
        read_at(file, &mut buf, start)?;
        let mut i = 0;
        while i + BLOCK_HEADER_LEN <= len {
            if buf[i..i + 4] == format::BLOCK_MAGIC {
                let mut hb = [0u8; BLOCK_HEADER_LEN];
                hb.copy_from_slice(&buf[i..i + BLOCK_HEADER_LEN]);
                if BlockHeader::decode(&hb, start + i as u64).is_ok() {
                    return Ok(Some(start + i as u64));
                }
            }
            i += 1;
        }
        start += (len - BLOCK_HEADER_LEN + 1) as u64;
    }
    Ok(None)
}
