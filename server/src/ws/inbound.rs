//! Decoding client frames (RFC 6455 §5) into messages, with permessage-deflate.
//!
//! Enforces what a server must: client frames are masked, control frames are short and
//! unfragmented, continuation frames follow a started message, reserved bits are clear
//! unless RSV1 marks a compressed message on a connection that negotiated it, and text is
//! UTF-8. Sizes are checked *before* buffering (a frame header announcing too much is
//! refused at once) and *while* inflating (a small compressed message that would expand past
//! the limit, a "zip bomb", is refused after at most the limit is produced).

use bytes::{Buf, Bytes, BytesMut};
use flate2::{Decompress, FlushDecompress, Status};

/// A complete client message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    Text(String),
    Binary(Bytes),
    Ping(Bytes),
    Pong,
    Close(Option<(u16, String)>),
}

/// Why the connection must be closed, with the close code to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InboundError {
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("message too big")]
    TooBig,
    #[error("invalid UTF-8 in a text message")]
    InvalidUtf8,
    #[error("invalid compressed data")]
    BadCompression,
    #[error("connection error: {0}")]
    Io(String),
}

impl InboundError {
    /// The WebSocket close code for this error.
    pub fn close_code(&self) -> u16 {
        match self {
            InboundError::Protocol(_) | InboundError::Io(_) => 1002,
            InboundError::TooBig => 1009,
            InboundError::InvalidUtf8 | InboundError::BadCompression => 1007,
        }
    }

    /// A short reason for the close frame.
    pub fn close_reason(&self) -> &'static str {
        match self {
            InboundError::Protocol(_) | InboundError::Io(_) => "protocol error",
            InboundError::TooBig => "message too big",
            InboundError::InvalidUtf8 => "invalid utf-8",
            InboundError::BadCompression => "invalid compressed data",
        }
    }
}

struct Partial {
    text: bool,
    compressed: bool,
    data: BytesMut,
}

/// Decodes client messages from the bytes read off the connection.
///
/// The transport reads into a buffer shared by its worker and [`feed`](Self::feed)s what it
/// read; only bytes of a message not yet complete are kept here, so an idle connection holds
/// no buffer at all.
pub struct InboundDecoder {
    buf: BytesMut,
    partial: Option<Partial>,
    max_message: usize,
    deflate: bool,
}

const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV23: u8 = 0x30;

impl InboundDecoder {
    /// Decodes messages of at most `max_message` bytes (after inflating); `deflate` when the
    /// connection negotiated permessage-deflate.
    pub fn new(max_message: usize, deflate: bool) -> Self {
        InboundDecoder {
            buf: BytesMut::new(),
            partial: None,
            max_message,
            deflate,
        }
    }

    /// Adds bytes read from the connection.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Whether bytes wait to be decoded.
    #[inline]
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Frees the buffer once everything in it has been decoded: an idle connection keeps
    /// no read buffer.
    pub fn release_idle(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 0 {
            self.buf = BytesMut::new();
        }
    }

    /// Decodes one message from the buffer if a complete one is there.
    pub fn decode(&mut self) -> Result<Option<Inbound>, InboundError> {
        loop {
            let Some((first, len, header_len)) = self.frame_header()? else {
                return Ok(None);
            };
            if self.buf.len() < header_len + len {
                self.buf.reserve(header_len + len - self.buf.len());
                return Ok(None);
            }
            let mask: [u8; 4] = self.buf[header_len - 4..header_len].try_into().unwrap();
            self.buf.advance(header_len);
            let mut payload = self.buf.split_to(len);
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i & 3];
            }
            let fin = first & FIN != 0;
            let rsv1 = first & RSV1 != 0;
            match first & 0x0f {
                0x8 => return Ok(Some(Inbound::Close(parse_close(&payload)?))),
                0x9 => return Ok(Some(Inbound::Ping(payload.freeze()))),
                0xA => return Ok(Some(Inbound::Pong)),
                op @ (0x1 | 0x2) => {
                    if self.partial.is_some() {
                        return Err(InboundError::Protocol(
                            "new message inside a fragmented one",
                        ));
                    }
                    self.partial = Some(Partial {
                        text: op == 0x1,
                        compressed: rsv1,
                        data: payload,
                    });
                }
                0x0 => {
                    let p = self
                        .partial
                        .as_mut()
                        .ok_or(InboundError::Protocol("continuation without a message"))?;
                    p.data.extend_from_slice(&payload);
                }
                _ => return Err(InboundError::Protocol("unknown opcode")),
            }
            if fin {
                let p = self.partial.take().expect("partial message set above");
                return self.finish(p).map(Some);
            }
        }
    }

    /// Validates the next frame header; returns (first byte, payload length, header length).
    fn frame_header(&self) -> Result<Option<(u8, usize, usize)>, InboundError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let (first, second) = (b[0], b[1]);
        let opcode = first & 0x0f;
        let control = opcode & 0x8 != 0;
        if first & RSV23 != 0 {
            return Err(InboundError::Protocol("reserved bits set"));
        }
        if first & RSV1 != 0 && !(self.deflate && (opcode == 0x1 || opcode == 0x2)) {
            return Err(InboundError::Protocol(
                "RSV1 set without a compressed message",
            ));
        }
        if second & 0x80 == 0 {
            return Err(InboundError::Protocol("client frames must be masked"));
        }
        let (len, ext) = match second & 0x7f {
            126 => {
                if b.len() < 4 {
                    return Ok(None);
                }
                (u16::from_be_bytes([b[2], b[3]]) as u64, 2)
            }
            127 => {
                if b.len() < 10 {
                    return Ok(None);
                }
                (u64::from_be_bytes(b[2..10].try_into().unwrap()), 8)
            }
            n => (n as u64, 0),
        };
        if control && (first & FIN == 0 || len > 125) {
            return Err(InboundError::Protocol("invalid control frame"));
        }
        let buffered = self.partial.as_ref().map_or(0, |p| p.data.len()) as u64;
        // Saturating: a 64-bit length near u64::MAX after a buffered fragment must not wrap
        // around and pass the check (found by the ws_inbound fuzz target).
        if !control && buffered.saturating_add(len) > self.max_message as u64 {
            return Err(InboundError::TooBig);
        }
        let header_len = 2 + ext + 4;
        if b.len() < header_len {
            return Ok(None);
        }
        Ok(Some((first, len as usize, header_len)))
    }

    fn finish(&self, p: Partial) -> Result<Inbound, InboundError> {
        let data = if p.compressed {
            inflate_limited(&p.data, self.max_message)?
        } else {
            p.data.freeze()
        };
        if p.text {
            String::from_utf8(data.to_vec())
                .map(Inbound::Text)
                .map_err(|_| InboundError::InvalidUtf8)
        } else {
            Ok(Inbound::Binary(data))
        }
    }
}

fn parse_close(payload: &[u8]) -> Result<Option<(u16, String)>, InboundError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(InboundError::Protocol("close payload of one byte")),
        _ => {
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            let reason =
                std::str::from_utf8(&payload[2..]).map_err(|_| InboundError::InvalidUtf8)?;
            Ok(Some((code, reason.to_string())))
        }
    }
}

/// Inflates one permessage-deflate message, refusing to produce more than `limit` bytes.
pub fn inflate_limited(compressed: &[u8], limit: usize) -> Result<Bytes, InboundError> {
    let mut input = Vec::with_capacity(compressed.len() + 4);
    input.extend_from_slice(compressed);
    input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    let mut d = Decompress::new(false);
    // One byte past the limit is enough to know a message is too big.
    let mut out: Vec<u8> = Vec::with_capacity((compressed.len() * 4).max(64).min(limit + 1));
    loop {
        if out.len() == out.capacity() {
            if out.len() > limit {
                return Err(InboundError::TooBig);
            }
            // Double, but not past limit + 1 (`room` is at least 1 here).
            let room = limit + 1 - out.len();
            out.reserve(out.len().max(64).min(room));
        }
        let before = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(
                &input[d.total_in() as usize..],
                &mut out,
                FlushDecompress::Sync,
            )
            .map_err(|_| InboundError::BadCompression)?;
        if out.len() > limit {
            return Err(InboundError::TooBig);
        }
        let done_input = d.total_in() as usize == input.len();
        if status == Status::StreamEnd || (done_input && out.len() < out.capacity()) {
            return Ok(Bytes::from(out));
        }
        if (d.total_in(), d.total_out()) == before && out.len() < out.capacity() {
            // No progress with room to write: the input is not valid deflate data.
            return Err(InboundError::BadCompression);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    fn deflate(data: &[u8]) -> Vec<u8> {
        let mut c = Compress::new(Compression::default(), false);
        let mut out = Vec::with_capacity(data.len() + 64);
        c.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        assert!(out.ends_with(&[0, 0, 0xff, 0xff]));
        out.truncate(out.len() - 4);
        out
    }

    #[test]
    fn inflates_within_limit() {
        let msg = br#"{"op":"subscribe","id":1,"symbols":["SYM0001"],"channels":["quote"]}"#;
        assert_eq!(&inflate_limited(&deflate(msg), 1024).unwrap()[..], msg);
    }

    #[test]
    fn refuses_zip_bombs_and_garbage() {
        let bomb = deflate(&vec![b'a'; 10 << 20]);
        assert!(bomb.len() < 20_000);
        assert_eq!(inflate_limited(&bomb, 64 << 10), Err(InboundError::TooBig));
        assert_eq!(
            inflate_limited(&[0xff, 0xff, 0xff, 0x00, 0x13], 1024),
            Err(InboundError::BadCompression)
        );
    }

    /// The output buffer grows by doubling up to the limit; when it lands within 64 bytes
    /// below the limit (here exactly on it) the next growth step must still be valid. Found
    /// by the ws_inbound fuzz target: the growth's bounds crossed and it panicked.
    #[test]
    fn output_landing_just_under_the_limit_is_refused_not_a_panic() {
        for limit in [4096, 4096 + 33, 64 << 10, 100, 10] {
            for size in [limit - 1, limit, limit + 1, 2 * limit] {
                // Incompressible enough that the buffer grows in several steps.
                let data: Vec<u8> = (0..size as u32)
                    .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
                    .collect();
                let compressed = deflate(&data);
                let got = inflate_limited(&compressed, limit);
                if size <= limit {
                    assert_eq!(got.as_deref(), Ok(&data[..]), "size {size}, limit {limit}");
                } else {
                    assert_eq!(got, Err(InboundError::TooBig), "size {size}, limit {limit}");
                }
            }
        }
    }

    /// The ws_inbound fuzz target's input that found the inflate panic, decoded as the
    /// target does: the first byte picks 64-byte chunks and deflate, the limit is 4 KiB.
    #[test]
    fn fuzz_regression_inflate_growth() {
        const INPUT: &[u8] = &[
            0x7f, 0xc1, 0xff, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7f, 0xc1, 0xc1, 0x7a,
            0xc8, 0xfa, 0x21, 0x3d, 0xc5, 0xf3, 0xf3, 0xf3, 0xf3, 0xf3, 0xf3, 0xf3, 0xf3, 0xf3,
            0x03, 0x00, 0xf3, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5,
            0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5,
            0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5,
            0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5,
            0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xb5, 0xf3,
            0x02, 0x04, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x7f, 0xc1, 0xc5, 0x37, 0x3d, 0xb2,
            0x87, 0xf4, 0xfa, 0xec, 0x21, 0xf4, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
            0x00, 0x00, 0x00, 0x00, 0x00, 0xf3, 0x00, 0xf3, 0xf3, 0xf3, 0xf3, 0xff, 0x00, 0x00,
            0x26,
        ];
        let (control, rest) = INPUT.split_first().unwrap();
        let mut decoder = InboundDecoder::new(4096, control & 0x40 != 0);
        let mut error = None;
        'feed: for piece in rest.chunks(1 + (control & 0x3f) as usize) {
            decoder.feed(piece);
            loop {
                match decoder.decode() {
                    Ok(None) => break,
                    Ok(Some(_)) => {}
                    Err(e) => {
                        error = Some(e.close_code());
                        break 'feed;
                    }
                }
            }
        }
        assert!(matches!(error, Some(1002 | 1007 | 1009)), "{error:?}");
    }
}
