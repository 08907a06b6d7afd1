//! The client request decoder: any text frame must parse or be refused with an error, and
//! the error reply must encode, in both encodings.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickwire_server::protocol::{self, parse_request, RequestLimits};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let limits = RequestLimits {
        max_symbols_per_request: 16,
        max_throttle_ms: 60_000,
    };
    match parse_request(text, &limits) {
        Ok(_) => {}
        Err(e) => {
            assert!(!e.message.is_empty());
            let _ = protocol::error(&e, false);
            let _ = protocol::error(&e, true);
        }
    }
});
