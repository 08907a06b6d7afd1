//! The WebSocket inbound frame decoder (masking, fragmentation, control frames, UTF-8,
//! permessage-deflate with its inflate limit) over arbitrary bytes fed in arbitrary chunks,
//! as the transport feeds what each read returned. The first byte chooses the chunk size and
//! whether deflate was negotiated. Decoding must never panic, never yield a message over the
//! limit, and end at the first error with a close code the protocol defines (the transport
//! closes the connection there).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickwire_server::ws::{Inbound, InboundDecoder};

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let chunk = 1 + (control & 0x3f) as usize;
    let deflate = control & 0x40 != 0;
    let mut decoder = InboundDecoder::new(LIMIT, deflate);
    for piece in rest.chunks(chunk) {
        decoder.feed(piece);
        // Every message a chunk completes comes out; a bounded loop: each message consumes
        // at least a frame header.
        for _ in 0..=piece.len() + rest.len() {
            match decoder.decode() {
                Ok(None) => break,
                Ok(Some(Inbound::Text(t))) => assert!(t.len() <= LIMIT),
                Ok(Some(Inbound::Binary(b))) => assert!(b.len() <= LIMIT),
                Ok(Some(Inbound::Ping(p))) => assert!(p.len() <= 125),
                Ok(Some(_)) => {}
                Err(e) => {
                    assert!(matches!(e.close_code(), 1002 | 1007 | 1009));
                    return;
                }
            }
        }
        decoder.release_idle();
    }
});
