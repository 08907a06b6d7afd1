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
//!
//! Independent messages compress poorly when they are small (a quote shrinks by a third, a
//! ten-level book by about 2.5x), because each carries its own Huffman tables and finds
//! repeats only within itself. Clients that allow context takeover can do much better
//! without giving up the one-compression-per-message property: every client whose stream
//! of messages is the same shares one [`StreamCompressor`], whose sliding window then holds
//! exactly what each of those clients' windows holds (see `fanout::streams`).

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
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        c.reset();
        compress_message(&mut c, opcode, payload)
    })
}

/// Compresses one message with `c` as it stands (its window carries over) and ends it with
/// a sync flush whose empty tail is removed, as RFC 7692 §7.2.1 asks.
fn compress_message(c: &mut Compress, opcode: Opcode, payload: &[u8]) -> Bytes {
    let mut frame = FrameBuf::with_capacity(payload.len() / 2 + 16);
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
    frame.finish_with_rsv1(opcode)
}

/// A permessage-deflate compressor whose window carries from one message to the next
/// (context takeover), for a stream of messages that several clients receive identically.
///
/// A client can decode a message from it only if, since the last [`StreamCompressor::sync`]
/// before that message, every compressed message the client received came from this
/// compressor, in order: its inflater's window then equals this compressor's.
pub struct StreamCompressor {
    compress: Compress,
    /// Messages compressed since the last sync point.
    since_sync: u64,
}

impl StreamCompressor {
    /// A fresh compressor (a sync point: the first message references nothing before it).
    pub fn new(level: u32) -> Self {
        StreamCompressor {
            compress: Compress::new(Compression::new(level.min(9)), false),
            since_sync: 0,
        }
    }

    /// Forgets the window, so the next message references nothing before it: a client may
    /// start following the stream from there, whatever its inflater saw before.
    pub fn sync(&mut self) {
        if self.since_sync > 0 {
            self.compress.reset();
            self.since_sync = 0;
        }
    }

    /// Messages compressed since the last sync point.
    pub fn since_sync(&self) -> u64 {
        self.since_sync
    }

    /// Compresses the payload of `plain` (a complete uncompressed frame) into a compressed
    /// frame of the same opcode.
    pub fn compress_frame(&mut self, plain: &[u8]) -> Bytes {
        let opcode = if plain[0] & 0x0f == Opcode::Binary as u8 {
            Opcode::Binary
        } else {
            Opcode::Text
        };
        self.since_sync += 1;
        compress_message(
            &mut self.compress,
            opcode,
            crate::wire::frame_payload(plain),
        )
    }
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

    /// A client that keeps its window (context takeover): one inflater for every message.
    struct ContextClient {
        d: Decompress,
    }

    impl ContextClient {
        fn new() -> Self {
            ContextClient {
                d: Decompress::new(false),
            }
        }
        fn inflate(&mut self, frame: &[u8]) -> Vec<u8> {
            let payload = crate::wire::frame_payload(frame);
            let mut input = payload.to_vec();
            input.extend_from_slice(&SYNC_TAIL);
            let mut out = Vec::with_capacity(payload.len() * 16 + 64);
            let start_in = self.d.total_in();
            loop {
                let at = (self.d.total_in() - start_in) as usize;
                let before = self.d.total_in();
                self.d
                    .decompress_vec(&input[at..], &mut out, FlushDecompress::Sync)
                    .unwrap();
                if (self.d.total_in() - start_in) as usize == input.len() {
                    break;
                }
                if self.d.total_in() == before {
                    out.reserve(out.capacity() + 64);
                }
            }
            out
        }
    }

    fn msg(i: usize) -> Vec<u8> {
        format!(
            r#"{{"type":"quote","symbol":"SYM{:04}","seq":{i},"bid":"101.{:02}"}}"#,
            i % 7,
            i % 100
        )
        .into_bytes()
    }

    #[test]
    fn a_stream_decodes_with_one_window_and_shrinks_repeats() {
        let mut s = StreamCompressor::new(6);
        let mut client = ContextClient::new();
        let (mut plain, mut wire) = (0, 0);
        for i in 0..200 {
            let m = msg(i);
            let f = s.compress_frame(&crate::wire::frame(Opcode::Text, &m));
            assert_eq!(f[0], 0x80 | 0x40 | 0x1);
            assert_eq!(client.inflate(&f), m, "message {i}");
            plain += m.len();
            wire += crate::wire::frame_payload(&f).len();
        }
        // The same messages compressed one by one shrink far less.
        let independent: usize = (0..200)
            .map(|i| crate::wire::frame_payload(&deflate_frame(Opcode::Text, &msg(i))).len())
            .sum();
        assert!(
            wire * 2 < independent,
            "stream {wire} B vs independent {independent} B"
        );
        assert!(wire * 2 < plain, "{wire} of {plain}");
    }

    #[test]
    fn a_client_may_join_at_a_sync_point_whatever_its_window_holds() {
        let mut s = StreamCompressor::new(6);
        let mut early = ContextClient::new();
        let mut late = ContextClient::new();
        // The late client's window holds unrelated independent messages.
        for i in 0..10 {
            let f = deflate_frame(Opcode::Text, b"something else entirely, many times over");
            assert!(!late.inflate(&f).is_empty(), "{i}");
        }
        for i in 0..50 {
            let f = s.compress_frame(&crate::wire::frame(Opcode::Text, &msg(i)));
            assert_eq!(early.inflate(&f), msg(i));
        }
        s.sync();
        assert_eq!(s.since_sync(), 0);
        for i in 50..100 {
            let f = s.compress_frame(&crate::wire::frame(Opcode::Text, &msg(i)));
            assert_eq!(early.inflate(&f), msg(i), "an old member keeps decoding");
            assert_eq!(
                late.inflate(&f),
                msg(i),
                "the new member decodes from the sync"
            );
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
