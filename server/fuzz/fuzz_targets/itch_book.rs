//! The ITCH 5.0 framer, parser and L3 book over arbitrary bytes: corrupt, unknown and
//! truncated messages must be reported and skipped, never panic. Seeds are generated
//! trading days, so mutations reach orders that exist.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tickwire_feeds::itch::{replay, L3Book};

fuzz_target!(|data: &[u8]| {
    let mut book = L3Book::with_capacity(1024);
    let _ = replay(data, &mut book, |_, _, _, _| {}, |_, _| {});
});
