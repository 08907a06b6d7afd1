//! Shared pieces of the fuzz targets.

use tickwire_feeds::rawfile::{parse_line, RecordKind};
use tickwire_feeds::venues::decoder_for;

/// Feeds every line of `data` to a fresh decoder of `venue`, the way `tickwire inspect`
/// does. Errors are expected; panics are bugs.
pub fn feed_decoder(venue: &str, data: &[u8]) {
    let mut d = decoder_for(venue).expect("known venue");
    let mut out = Vec::new();
    let mut buf = data.to_vec();
    for line in buf.split_mut(|&c| c == b'\n') {
        out.clear();
        if let Ok(Some(r)) = parse_line(line) {
            let _ = match r.kind {
                RecordKind::Received => d.decode(r.payload, r.ts, &mut out),
                RecordKind::Http => d.decode_http(r.url, r.payload, r.ts, &mut out),
                _ => Ok(()),
            };
        }
    }
}
