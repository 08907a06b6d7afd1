//! permessage-deflate (RFC 7692) for outgoing frames, compressed once for every recipient.
//!
//! Tickwire negotiates `server_no_context_takeover`: every message is compressed on its
//! own, with no sliding window carried from one message to the next. That is what makes a
//! compressed frame shareable: the same bytes are valid for every client that negotiated the
//! extension, so the cost is one compression per message (not per message per client) and no
//! per-connection compressor state or window memory at all.
//!
//! Compression runs where the frame is built (book actors, and server workers for book
//! ladders at per-session depths) with a thread-local compressor reused across messages.

use std::cell::RefCell;

use bytes::Bytes;
use flate2::{Compress, Compression, FlushCompress, Status};

use crate::wire::{FrameBuf, Opcode};

/// The empty stored block that ends a sync flush; RFC 7692 §7.2.1 removes it from the wire.
const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

thread_local! {
    static COMPRESSOR: RefCell<Compress> = RefCell::new(Compress::new(Compression::default(), false));
}

/// Compresses `payload` as one permessage-deflate message and returns the complete frame
/// (FIN, RSV1 set, `opcode`).
pub fn deflate_frame(opcode: Opcode, payload: &[u8]) -> Bytes {
    let mut frame = FrameBuf::with_capacity(payload.len() / 2 + 16);
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        let out = frame.vec();
        let start = out.len();
        let mut consumed = 0;
        loop {
            // Raw deflate never needs more than the input plus a few bytes per 16 KiB block.
            out.reserve(payload.len() - consumed + 64);
            let before_in = c.total_in();
            let status = c
                .compress_vec(&payload[consumed..], out, FlushCompress::Sync)
                .expect("deflate of an in-memory buffer cannot fail");
            consumed += (c.total_in() - before_in) as usize;
            if consumed == payload.len() && out.len() >= start + 4 && out.ends_with(&SYNC_TAIL) {
                break;
            }
            if matches!(status, Status::BufError) && out.capacity() == out.len() {
                out.reserve(64);
            }
        }
        let len = out.len();
        out.truncate(len - SYNC_TAIL.len());
    });
    frame.finish_with_rsv1(opcode)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{Decompress, FlushDecompress};

    /// Inflates a permessage-deflate payload the way a receiving client does.
    fn inflate(payload: &[u8]) -> Vec<u8> {
        let mut d = Decompress::new(false);
        let mut input = payload.to_vec();
        input.extend_from_slice(&SYNC_TAIL);
        let mut out = Vec::with_capacity(payload.len() * 8 + 64);
        loop {
            let before = d.total_in();
            d.decompress_vec(
                &input[d.total_in() as usize..],
                &mut out,
                FlushDecompress::Sync,
            )
            .unwrap();
            if d.total_in() as usize == input.len() {
                break;
            }
            if d.total_in() == before {
                out.reserve(out.capacity());
            }
        }
        out
    }

    #[test]
    fn frames_round_trip_and_set_rsv1() {
        for text in [
            String::new(),
            "x".into(),
            r#"{"type":"quote","symbol":"SYM0001","seq":42,"bid":"101.25"}"#.repeat(3),
            "ab".repeat(40_000),
        ] {
            let f = deflate_frame(Opcode::Text, text.as_bytes());
            assert_eq!(f[0], 0x80 | 0x40 | 0x1, "FIN + RSV1 + text");
            let (len, start) = match f[1] {
                126 => (u16::from_be_bytes([f[2], f[3]]) as usize, 4),
                127 => (
                    u64::from_be_bytes(f[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                n => (n as usize, 2),
            };
            assert_eq!(f.len(), start + len);
            assert_eq!(inflate(&f[start..]), text.as_bytes());
        }
    }

    #[test]
    fn each_message_is_independent() {
        // With no context takeover, compressing the same message twice gives the same bytes.
        let m = br#"{"type":"trade","symbol":"SYM0001","price":"101.26"}"#;
        assert_eq!(
            deflate_frame(Opcode::Text, m),
            deflate_frame(Opcode::Text, m)
        );
    }
}
