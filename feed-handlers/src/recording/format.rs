//! The on-disk encoding, and nothing else: every byte offset of the format lives here.
//!
//! Layout (all integers little-endian; full description in `docs/recording-format.md`):
//!
//! ```text
//! file    = file-header block* [index-block trailer]
//! header  = MAGIC(8) version:u16 reserved:u16 body_len:u32 body crc32(body):u32
//! block   = block-header(44) payload(stored_len)
//! trailer = index_offset:u64 total_records:u64 crc32(first 16 bytes):u32 TRAILER_MAGIC(4)
//! ```
//!
//! Blocks are self-delimiting (length + CRC in a header that has its own CRC) so a reader can
//! walk them without the index, skip payloads, and tell a torn tail from a damaged block.
//! Records inside a data block are varint-encoded with timestamps delta-coded, which keeps the
//! per-record overhead at a few bytes for binary feeds such as ITCH.

use super::{Header, RecordKind, RecordingError, StreamInfo, StreamKind};

/// First 8 bytes of every recording. The `\r\n\x1a` tail catches text-mode mangling.
pub const MAGIC: [u8; 8] = *b"TWREC\r\n\x1a";
/// The format version this code writes and reads.
pub const VERSION: u16 = 1;
/// Bytes before the header body: magic, version, reserved, body length.
pub const FILE_HEADER_FIXED: usize = 16;
/// Magic at the start of every block header.
pub const BLOCK_MAGIC: [u8; 4] = *b"TWB1";
/// Size of a block header.
pub const BLOCK_HEADER_LEN: usize = 44;
/// Magic at the very end of a cleanly closed file.
pub const TRAILER_MAGIC: [u8; 4] = *b"TWE1";
/// Size of the trailer.
pub const TRAILER_LEN: usize = 24;
/// Kind byte of a stream-definition record (metadata, not yielded to readers).
pub const KIND_STREAM_DEF: u8 = 0x80;
/// Largest payload a block may hold, a sanity bound for readers of damaged files.
pub const MAX_BLOCK_RAW: u32 = 64 << 20;

/// Block type byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum BlockType {
    /// Records.
    Data = 1,
    /// The index written at clean close.
    Index = 2,
}

/// Payload codec byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Codec {
    /// Stored as is.
    None = 0,
    /// One zstd frame.
    Zstd = 1,
}

/// Block flag: the block holds at least one stream definition.
pub const FLAG_STREAM_DEFS: u8 = 1;

/// Decoded block header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// Data or index.
    pub block_type: BlockType,
    /// Payload codec.
    pub codec: Codec,
    /// `FLAG_*` bits.
    pub flags: u8,
    /// Payload bytes on disk.
    pub stored_len: u32,
    /// Payload bytes after decompression.
    pub raw_len: u32,
    /// Records in the block (stream definitions included).
    pub record_count: u32,
    /// Smallest record timestamp (ns).
    pub min_ts: i64,
    /// Largest record timestamp (ns).
    pub max_ts: i64,
    /// CRC32 (IEEE) of the stored payload.
    pub payload_crc: u32,
}

impl BlockHeader {
    /// Encodes the 44-byte header, computing its own CRC.
    pub fn encode(&self) -> [u8; BLOCK_HEADER_LEN] {
        let mut b = [0u8; BLOCK_HEADER_LEN];
        b[0..4].copy_from_slice(&BLOCK_MAGIC);
        b[4] = self.block_type as u8;
        b[5] = self.codec as u8;
        b[6] = self.flags;
        b[8..12].copy_from_slice(&self.stored_len.to_le_bytes());
        b[12..16].copy_from_slice(&self.raw_len.to_le_bytes());
        b[16..20].copy_from_slice(&self.record_count.to_le_bytes());
        b[20..28].copy_from_slice(&self.min_ts.to_le_bytes());
        b[28..36].copy_from_slice(&self.max_ts.to_le_bytes());
        b[36..40].copy_from_slice(&self.payload_crc.to_le_bytes());
        let crc = crc32fast::hash(&b[0..40]);
        b[40..44].copy_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes and validates a block header read at `offset`.
    pub fn decode(b: &[u8; BLOCK_HEADER_LEN], offset: u64) -> Result<BlockHeader, RecordingError> {
        let bad = || RecordingError::BlockHeaderCrc { offset };
        if b[0..4] != BLOCK_MAGIC || crc32fast::hash(&b[0..40]) != u32_at(b, 40) {
            return Err(bad());
        }
        let malformed = |reason: &str| RecordingError::MalformedBlock {
            offset,
            reason: reason.to_string(),
        };
        let block_type = match b[4] {
            1 => BlockType::Data,
            2 => BlockType::Index,
            _ => return Err(malformed("unknown block type")),
        };
        let codec = match b[5] {
            0 => Codec::None,
            1 => Codec::Zstd,
            _ => return Err(malformed("unknown codec")),
        };
        let h = BlockHeader {
            block_type,
            codec,
            flags: b[6],
            stored_len: u32_at(b, 8),
            raw_len: u32_at(b, 12),
            record_count: u32_at(b, 16),
            min_ts: i64_at(b, 20),
            max_ts: i64_at(b, 28),
            payload_crc: u32_at(b, 36),
        };
        if h.raw_len > MAX_BLOCK_RAW || h.stored_len > MAX_BLOCK_RAW + (MAX_BLOCK_RAW >> 4) {
            return Err(malformed("block larger than the format allows"));
        }
        Ok(h)
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(a)
}

fn i64_at(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    i64_at(b, at) as u64
}

/// Encodes the whole file header (fixed part, body, CRC).
pub fn encode_file_header(h: &Header) -> Result<Vec<u8>, RecordingError> {
    let mut body = Vec::new();
    put_str(&mut body, &h.adapter)?;
    put_str(&mut body, &h.venue)?;
    put_u32(&mut body, len_u32(h.symbols.len())?);
    for s in &h.symbols {
        put_str(&mut body, s)?;
    }
    body.extend_from_slice(&h.start_ns.to_le_bytes());
    put_u32(&mut body, len_u32(h.metadata.len())?);
    for (k, v) in &h.metadata {
        put_str(&mut body, k)?;
        put_str(&mut body, v)?;
    }
    let mut out = Vec::with_capacity(FILE_HEADER_FIXED + body.len() + 4);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    put_u32(&mut out, len_u32(body.len())?);
    out.extend_from_slice(&body);
    put_u32(&mut out, crc32fast::hash(&body));
    Ok(out)
}

/// Validates the fixed part of the file header; returns the body length.
pub fn decode_file_header_fixed(b: &[u8; FILE_HEADER_FIXED]) -> Result<u32, RecordingError> {
    if b[0..8] != MAGIC {
        return Err(RecordingError::NotARecording);
    }
    let version = u16::from_le_bytes([b[8], b[9]]);
    if version != VERSION {
        return Err(RecordingError::UnsupportedVersion(version));
    }
    let len = u32_at(b, 12);
    if len > 16 << 20 {
        return Err(RecordingError::CorruptHeader(format!(
            "header body of {len} bytes"
        )));
    }
    Ok(len)
}

/// Decodes the header body followed by its 4-byte CRC.
pub fn decode_file_header_body(b: &[u8]) -> Result<Header, RecordingError> {
    let corrupt = |m: &str| RecordingError::CorruptHeader(m.to_string());
    if b.len() < 4 {
        return Err(corrupt("missing checksum"));
    }
    let (body, crc) = b.split_at(b.len() - 4);
    if crc32fast::hash(body) != u32_at(crc, 0) {
        return Err(corrupt("checksum mismatch"));
    }
    let mut r = Bytes::new(body);
    let map = |_| corrupt("body does not decode");
    let adapter = r.string().map_err(map)?;
    let venue = r.string().map_err(map)?;
    let n = r.u32().map_err(map)?;
    let mut symbols = Vec::new();
    for _ in 0..n {
        symbols.push(r.string().map_err(map)?);
    }
    let start_ns = r.i64().map_err(map)?;
    let n = r.u32().map_err(map)?;
    let mut metadata = Vec::new();
    for _ in 0..n {
        let k = r.string().map_err(map)?;
        let v = r.string().map_err(map)?;
        metadata.push((k, v));
    }
    Ok(Header {
        adapter,
        venue,
        symbols,
        start_ns,
        metadata,
    })
}

/// One entry of the block index.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// Offset of the block header in the file.
    pub offset: u64,
    /// Smallest timestamp in the block.
    pub min_ts: i64,
    /// Largest timestamp in the block.
    pub max_ts: i64,
    /// Records in the block (stream definitions included).
    pub record_count: u32,
}

/// Encodes the payload of the index block: the stream table, then the block entries.
pub fn encode_index(
    streams: &[StreamInfo],
    entries: &[IndexEntry],
) -> Result<Vec<u8>, RecordingError> {
    let mut out = Vec::with_capacity(8 + entries.len() * 28);
    put_u32(&mut out, len_u32(streams.len())?);
    for s in streams {
        put_u32(&mut out, s.id);
        out.push(s.kind as u8);
        put_str(&mut out, &s.url)?;
    }
    put_u32(&mut out, len_u32(entries.len())?);
    for e in entries {
        out.extend_from_slice(&e.offset.to_le_bytes());
        out.extend_from_slice(&e.min_ts.to_le_bytes());
        out.extend_from_slice(&e.max_ts.to_le_bytes());
        put_u32(&mut out, e.record_count);
    }
    Ok(out)
}

/// Decodes an index block payload.
pub fn decode_index(b: &[u8]) -> Result<(Vec<StreamInfo>, Vec<IndexEntry>), RecordingError> {
    let bad = |_| RecordingError::CorruptIndex("index block does not decode".into());
    let mut r = Bytes::new(b);
    let n = r.u32().map_err(bad)?;
    let mut streams = Vec::new();
    for _ in 0..n {
        let id = r.u32().map_err(bad)?;
        let kind = StreamKind::from_u8(r.u8().map_err(bad)?)
            .ok_or_else(|| RecordingError::CorruptIndex("unknown stream kind".into()))?;
        let url = r.string().map_err(bad)?;
        streams.push(StreamInfo { id, kind, url });
    }
    let n = r.u32().map_err(bad)?;
    let mut entries = Vec::with_capacity((n as usize).min(b.len() / 28));
    for _ in 0..n {
        entries.push(IndexEntry {
            offset: r.u64().map_err(bad)?,
            min_ts: r.i64().map_err(bad)?,
            max_ts: r.i64().map_err(bad)?,
            record_count: r.u32().map_err(bad)?,
        });
    }
    if !r.is_empty() {
        return Err(RecordingError::CorruptIndex(
            "trailing bytes in index block".into(),
        ));
    }
    Ok((streams, entries))
}

/// Encodes the trailer.
pub fn encode_trailer(index_offset: u64, total_records: u64) -> [u8; TRAILER_LEN] {
    let mut b = [0u8; TRAILER_LEN];
    b[0..8].copy_from_slice(&index_offset.to_le_bytes());
    b[8..16].copy_from_slice(&total_records.to_le_bytes());
    let crc = crc32fast::hash(&b[0..16]);
    b[16..20].copy_from_slice(&crc.to_le_bytes());
    b[20..24].copy_from_slice(&TRAILER_MAGIC);
    b
}

/// Decodes a trailer; `None` if the bytes are not a valid trailer (file not closed cleanly).
pub fn decode_trailer(b: &[u8; TRAILER_LEN]) -> Option<(u64, u64)> {
    if b[20..24] != TRAILER_MAGIC || crc32fast::hash(&b[0..16]) != u32_at(b, 16) {
        return None;
    }
    Some((u64_at(b, 0), u64_at(b, 8)))
}

/// Appends one record to a data block's raw payload. `prev_ts` is the previous record's
/// timestamp in the same block (0 at block start).
#[inline]
pub fn encode_record(
    out: &mut Vec<u8>,
    prev_ts: i64,
    ts: i64,
    stream: u32,
    kind: u8,
    payload: &[u8],
) {
    put_varint(out, zigzag(ts.wrapping_sub(prev_ts)));
    put_varint(out, u64::from(stream));
    out.push(kind);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

/// A record decoded from a block, with its payload as a range of the block buffer.
#[derive(Clone, Copy, Debug)]
pub struct RawRecord {
    /// Timestamp, ns.
    pub ts: i64,
    /// Stream id.
    pub stream: u32,
    /// Kind byte.
    pub kind: u8,
    /// Payload start in the block buffer.
    pub start: usize,
    /// Payload end in the block buffer.
    pub end: usize,
}

/// Decodes the record at `*pos` of `buf`, advancing `*pos`. `Err` carries a reason.
#[inline(always)]
pub fn decode_record(buf: &[u8], pos: &mut usize, prev_ts: i64) -> Result<RawRecord, &'static str> {
    let delta = unzigzag(get_varint(buf, pos)?);
    let stream = get_varint(buf, pos)?;
    let stream = u32::try_from(stream).map_err(|_| "stream id out of range")?;
    let kind = *buf.get(*pos).ok_or("record truncated")?;
    *pos += 1;
    let len = get_varint(buf, pos)?;
    let start = *pos;
    let end = usize::try_from(len)
        .ok()
        .and_then(|l| start.checked_add(l))
        .filter(|&e| e <= buf.len())
        .ok_or("record payload runs past the block")?;
    *pos = end;
    Ok(RawRecord {
        ts: prev_ts.wrapping_add(delta),
        stream,
        kind,
        start,
        end,
    })
}

/// Encodes a stream definition's payload: kind byte then the URL bytes.
pub fn encode_stream_def(kind: StreamKind, url: &str) -> Vec<u8> {
    let mut v = Vec::with_capacity(1 + url.len());
    v.push(kind as u8);
    v.extend_from_slice(url.as_bytes());
    v
}

/// Decodes a stream definition's payload.
pub fn decode_stream_def(id: u32, payload: &[u8]) -> Result<StreamInfo, &'static str> {
    let (&k, url) = payload.split_first().ok_or("empty stream definition")?;
    let kind = StreamKind::from_u8(k).ok_or("unknown stream kind")?;
    let url = std::str::from_utf8(url).map_err(|_| "stream URL is not UTF-8")?;
    Ok(StreamInfo {
        id,
        kind,
        url: url.to_string(),
    })
}

/// True if `kind` is a record kind this version knows (or a stream definition).
pub fn known_kind(kind: u8) -> bool {
    kind == KIND_STREAM_DEF || RecordKind::from_u8(kind).is_some()
}

#[inline]
fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

#[inline]
fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

#[inline]
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

#[inline(always)]
fn get_varint(buf: &[u8], pos: &mut usize) -> Result<u64, &'static str> {
    // Fast path: stream ids, most lengths and many deltas fit in one byte.
    if let Some(&b) = buf.get(*pos) {
        if b < 0x80 {
            *pos += 1;
            return Ok(u64::from(b));
        }
    }
    get_varint_slow(buf, pos)
}

#[inline(never)]
fn get_varint_slow(buf: &[u8], pos: &mut usize) -> Result<u64, &'static str> {
    let mut v = 0u64;
    let mut shift = 0u32;
    loop {
        let b = *buf.get(*pos).ok_or("record truncated")?;
        *pos += 1;
        if shift == 63 && b > 1 {
            return Err("varint overflow");
        }
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
        shift += 7;
        if shift > 63 {
            return Err("varint overflow");
        }
    }
}

fn len_u32(n: usize) -> Result<u32, RecordingError> {
    u32::try_from(n).map_err(|_| RecordingError::InvalidInput(format!("length {n} exceeds u32")))
}

fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), RecordingError> {
    put_u32(out, len_u32(s.len())?);
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

/// Bounds-checked little-endian reader over a byte slice.
struct Bytes<'a> {
    b: &'a [u8],
}

impl<'a> Bytes<'a> {
    fn new(b: &'a [u8]) -> Self {
        Bytes { b }
    }
    fn is_empty(&self) -> bool {
        self.b.is_empty()
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], ()> {
        if self.b.len() < n {
            return Err(());
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, ()> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, ()> {
        Ok(u32_at(self.take(4)?, 0))
    }
    fn i64(&mut self) -> Result<i64, ()> {
        Ok(i64_at(self.take(8)?, 0))
    }
    fn u64(&mut self) -> Result<u64, ()> {
        Ok(u64_at(self.take(8)?, 0))
    }
    fn string(&mut self) -> Result<String, ()> {
        let n = self.u32()? as usize;
        let s = self.take(n)?;
        String::from_utf8(s.to_vec()).map_err(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_and_zigzag_round_trip_extremes() {
        for v in [0i64, 1, -1, 63, -64, 1 << 40, i64::MIN, i64::MAX] {
            let mut out = Vec::new();
            encode_record(&mut out, 0, v, u32::MAX, 2, b"xy");
            let mut pos = 0;
            let r = decode_record(&out, &mut pos, 0).unwrap();
            assert_eq!(
                (r.ts, r.stream, r.kind, &out[r.start..r.end]),
                (v, u32::MAX, 2, &b"xy"[..])
            );
            assert_eq!(pos, out.len());
        }
    }

    #[test]
    fn truncated_record_is_an_error_not_a_panic() {
        let mut out = Vec::new();
        encode_record(&mut out, 0, 12345, 7, 0, b"payload");
        for cut in 0..out.len() {
            let mut pos = 0;
            assert!(
                decode_record(&out[..cut], &mut pos, 0).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn block_header_rejects_any_flipped_bit() {
        let h = BlockHeader {
            block_type: BlockType::Data,
            codec: Codec::Zstd,
            flags: 0,
            stored_len: 10,
            raw_len: 20,
            record_count: 3,
            min_ts: 5,
            max_ts: 9,
            payload_crc: 0xdead_beef,
        };
        let enc = h.encode();
        assert_eq!(BlockHeader::decode(&enc, 0).unwrap(), h);
        for i in 0..BLOCK_HEADER_LEN * 8 {
            let mut b = enc;
            b[i / 8] ^= 1 << (i % 8);
            assert!(BlockHeader::decode(&b, 0).is_err(), "bit {i}");
        }
    }
}
