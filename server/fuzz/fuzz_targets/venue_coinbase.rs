//! The coinbase decoder (and the recorded-feed line parser) over lines in the recording format
//! (`<ts>: <payload>`, `<url> -> <ts>: <payload>` for HTTP). The seeds are runs of real
//! recorded messages, so mutations reach the update paths of live books.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tickwire_fuzz::feed_decoder("coinbase", data);
});
