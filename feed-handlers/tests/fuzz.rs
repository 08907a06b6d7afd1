//! Fuzz-style robustness: random bytes and mutated real messages must never panic a decoder
//! or the recording reader. Mutations are applied to decoders that have first been fed the
//! real stream, so they hit the update paths of live books, not only the "unknown symbol"
//! early exits. Seeds are fixed so a failure reproduces.

use std::path::PathBuf;

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tickwire_engine::domain::Nanos;
use tickwire_feeds::rawfile::{parse_line, RecordKind};
use tickwire_feeds::venues::{decoder_for, VenueDecoder, VENUES};

fn feed(name: &str) -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/real-feeds/"
    ))
    .join(name);
    assert!(p.is_file(), "recorded feed {} is missing", p.display());
    p
}

fn recording_for(venue: &str) -> Vec<&'static str> {
    match venue {
        "coinbase" => vec!["coinbase-2021-04-17-level2-ticker-matches.raw"],
        "binance" => vec![
            "binance-2021-10-12-rest-snapshots.raw",
            "binance-2021-10-12-depth-bookticker-aggtrade-kline.raw",
        ],
        "kraken" => vec![
            "kraken-2021-04-17-book.raw",
            "kraken-2021-04-17-trade.raw",
            "kraken-2021-04-17-ticker.raw",
        ],
        "okx" => vec!["okx-2022-05-13-books-tickers-trades.raw"],
        _ => unreachable!("every venue has a recording"),
    }
}

/// Lines of a venue's recordings (snapshots first for Binance).
fn lines(venue: &str) -> Vec<Vec<u8>> {
    recording_for(venue)
        .into_iter()
        .flat_map(|f| {
            std::fs::read(feed(f))
                .unwrap()
                .split(|&c| c == b'\n')
                .map(<[u8]>::to_vec)
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Feeds one line to a decoder the way inspect does; errors are fine, panics are not.
fn feed_line(
    d: &mut dyn VenueDecoder,
    line: &mut [u8],
    out: &mut Vec<tickwire_feeds::venues::Decoded>,
) {
    out.clear();
    if let Ok(Some(r)) = parse_line(line) {
        let _ = match r.kind {
            RecordKind::Received => d.decode(r.payload, r.ts, out),
            RecordKind::Http => d.decode_http(r.url, r.payload, r.ts, out),
            _ => Ok(()),
        };
    }
}

const TOKENS: [&[u8]; 16] = [
    b"\"",
    b"[",
    b"]",
    b"{",
    b"}",
    b",",
    b":",
    b"0",
    b"-1",
    b"\"0\"",
    b"null",
    b"1e308",
    b"\"99999999999999999999999\"",
    b"\"-0.0000000001\"",
    b"\"\\u0000\"",
    b"[[\"1\",\"0\"]]",
];

fn mutate(rng: &mut Xoshiro256PlusPlus, line: &mut Vec<u8>) {
    let n = 1 + rng.next_u64() % 4;
    for _ in 0..n {
        let len = line.len().max(1);
        let at = (rng.next_u64() as usize) % len;
        match rng.next_u64() % 6 {
            0 => {
                if let Some(b) = line.get_mut(at) {
                    *b ^= 1 << (rng.next_u64() % 8);
                }
            }
            1 => {
                let end = (at + 1 + (rng.next_u64() as usize) % 16).min(line.len());
                if at < end {
                    line.drain(at..end);
                }
            }
            2 => line.truncate(at),
            3 => {
                let t = TOKENS[(rng.next_u64() as usize) % TOKENS.len()];
                let at = at.min(line.len());
                line.splice(at..at, t.iter().copied());
            }
            4 => {
                // Swap a digit for another: plausible but wrong numbers and checksums.
                if let Some(b) = line.get_mut(at).filter(|b| b.is_ascii_digit()) {
                    *b = b'0' + (rng.next_u64() % 10) as u8;
                }
            }
            _ => {
                let end = (at + (rng.next_u64() as usize) % 32).min(line.len());
                let chunk = line[at.min(end)..end].to_vec();
                line.splice(end..end, chunk);
            }
        }
    }
}

#[test]
fn random_bytes_never_panic_any_decoder() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0xF00D);
    let mut out = Vec::new();
    for venue in VENUES {
        let mut d = decoder_for(venue).unwrap();
        for _ in 0..20_000 {
            let len = (rng.next_u64() % 300) as usize;
            let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
            out.clear();
            let _ = d.decode(&mut bytes, Nanos(0), &mut out);
            let _ = d.decode_http("https://x?symbol=ABC", &mut bytes, Nanos(0), &mut out);
            let _ = parse_line(&mut bytes);
        }
        assert_eq!(d.stats().messages, 40_000);
        assert!(
            d.stats().parse_errors > 19_000,
            "random bytes are not valid messages: {:?}",
            d.stats()
        );
    }
}

#[test]
fn mutated_real_messages_never_panic_any_decoder() {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(0xBEEF);
    let mut out = Vec::new();
    for venue in VENUES {
        let corpus = lines(venue);
        let mut d = decoder_for(venue).unwrap();
        let mut errors_before = 0;
        for round in 0..3 {
            for original in &corpus {
                // Keep the books live with the real line, then throw a mutant at them.
                feed_line(d.as_mut(), &mut original.clone(), &mut out);
                let mut mutant = original.clone();
                mutate(&mut rng, &mut mutant);
                feed_line(d.as_mut(), &mut mutant, &mut out);
            }
            let errors = d.stats().parse_errors;
            assert!(
                errors > errors_before,
                "{venue} round {round}: mutants were rejected"
            );
            errors_before = errors;
        }
    }
}
