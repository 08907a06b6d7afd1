//! The WebSocket inbound frame decoder (masking, fragmentation, control frames, UTF-8,
//! permessage-deflate with its inflate limit) over arbitrary bytes cut into arbitrary
//! chunks. The first byte chooses the chunk size and whether deflate was negotiated. The
//! stream must end (with messages or one error) and never yield a message over the limit.
#![no_main]

use bytes::Bytes;
use futures_util::{FutureExt, StreamExt};
use libfuzzer_sys::fuzz_target;
use tickwire_server::ws::{Inbound, InboundStream};

const LIMIT: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let Some((&control, rest)) = data.split_first() else {
        return;
    };
    let chunk = 1 + (control & 0x3f) as usize;
    let deflate = control & 0x40 != 0;
    let chunks: Vec<Result<Bytes, actix_http::error::PayloadError>> = rest
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let stream: actix_http::BoxedPayloadStream = Box::pin(futures_util::stream::iter(chunks));
    let payload = actix_web::dev::Payload::Stream { payload: stream };
    let mut inbound = InboundStream::new(payload, LIMIT, deflate);
    let mut errors = 0;
    for _ in 0..rest.len() + 2 {
        match inbound
            .next()
            .now_or_never()
            .expect("all input is available")
        {
            None => return,
            Some(Ok(Inbound::Text(t))) => assert!(t.len() <= LIMIT),
            Some(Ok(Inbound::Binary(b))) => assert!(b.len() <= LIMIT),
            Some(Ok(Inbound::Ping(p))) => assert!(p.len() <= 125),
            Some(Ok(_)) => {}
            Some(Err(e)) => {
                errors += 1;
                assert!(matches!(e.close_code(), 1002 | 1007 | 1009));
            }
        }
        assert!(errors <= 1, "the stream goes on after an error");
    }
    panic!("the decoder did not finish");
});
