//! The replay pipeline in-process: the ITCH decoder's L2 view equals the generator's own
//! model of the book; a generated day round-trips through a recording; ReplaySource merges
//! and restamps as documented; a damaged block is reported and the rest replays.

use tickwire_engine::domain::{Side, SymbolId};
use tickwire_feeds::itch::generator::{generate, generate_day, DayConfig, GenConfig};
use tickwire_feeds::itch::ItchDecoder;
use tickwire_feeds::recording::Reader;
use tickwire_feeds::replay::{LocalBooks, ReplaySource, StepError};
use tickwire_feeds::venues::{Decoded, VenueDecoder};

fn tmp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "tickwire-replay-test-{}-{name}",
        std::process::id()
    ))
}

#[test]
fn itch_decoder_l2_deltas_rebuild_the_generators_books() {
    let day = generate(&GenConfig {
        seed: 3,
        stocks: 20,
        messages: 200_000,
        truth: false,
    });
    let mut dec = ItchDecoder::new(0);
    let mut out = Vec::new();
    let mut bytes = day.bytes.clone();
    dec.decode(&mut bytes, tickwire_engine::domain::Nanos(0), &mut out)
        .unwrap();
    assert_eq!(dec.stats().messages, day.messages as u64);
    let mut books = LocalBooks::new(dec.registry().len());
    let mut trades = 0;
    for d in &out {
        if let Decoded::Event(ev) = d {
            books.apply(ev);
            trades += matches!(ev, tickwire_engine::event::FeedEvent::Trade { .. }) as u32;
        }
    }
    assert!(trades > 1000);
    // Registry ids follow the stock directory: locate L is id L - 1.
    for (locate, (bids, asks)) in day.final_levels.iter().enumerate().skip(1) {
        let book = books.book(SymbolId(locate as u32 - 1)).unwrap();
        let side = |s| {
            book.levels(s)
                .map(|l| (l.price.0 as u32, l.qty.0 as u64))
                .collect::<Vec<_>>()
        };
        let want = |v: &Vec<tickwire_feeds::itch::Level>| {
            v.iter().map(|l| (l.price, l.shares)).collect::<Vec<_>>()
        };
        assert_eq!(side(Side::Buy), want(bids), "locate {locate} bids");
        assert_eq!(side(Side::Sell), want(asks), "locate {locate} asks");
    }
}

#[test]
fn a_generated_day_replays_from_its_recording_and_seeks_consistently() {
    let day = generate_day(&DayConfig {
        messages: 60_000,
        ..DayConfig::default()
    });
    let path = tmp("day.twrec");
    day.write_recording(&path, 1_000_000_000, Vec::new())
        .unwrap();
    let reader = Reader::open(&path).unwrap();
    let mut src = ReplaySource::open(vec![reader.clone()]).unwrap();
    assert_eq!(src.instruments().len(), 40);
    assert_eq!(src.instruments()[0].symbol, "AAPL");
    let (first, last) = src.time_range().unwrap();
    let mid = first + (last - first) / 2;
    // Books at `mid`, by replaying everything before it...
    let mut books = LocalBooks::new(40);
    let mut last_ts = i64::MIN;
    while src.peek_ts().is_some_and(|t| t < mid) {
        let step = src.step(None).unwrap();
        assert!(step.ts >= last_ts, "records out of order");
        last_ts = step.ts;
        for d in step.decoded {
            if let Decoded::Event(ev) = d {
                assert!(
                    ev.meta().ts.0 <= step.ts,
                    "event after its packet was received"
                );
                books.apply(ev);
            }
        }
    }
    assert_eq!(src.decoder(0).stats().parse_errors, 0);
    // ...equal the books after a reset and the same fast-forward (what a seek does).
    src.reset().unwrap();
    let mut again = LocalBooks::new(40);
    while src.peek_ts().is_some_and(|t| t < mid) {
        for d in src.step(None).unwrap().decoded {
            if let Decoded::Event(ev) = d {
                again.apply(ev);
            }
        }
    }
    for i in 0..40u32 {
        let (a, b) = (
            books.book(SymbolId(i)).unwrap(),
            again.book(SymbolId(i)).unwrap(),
        );
        assert!(a.levels(Side::Buy).eq(b.levels(Side::Buy)), "symbol {i}");
        assert!(books.usable(SymbolId(i)));
    }
    let _ = std::fs::remove_file(&path);
}

#[test]
fn a_damaged_block_is_reported_and_the_rest_replays() {
    let day = generate_day(&DayConfig {
        messages: 40_000,
        ..DayConfig::default()
    });
    let path = tmp("damaged.twrec");
    day.write_recording(&path, 0, Vec::new()).unwrap();
    let clean = Reader::open(&path).unwrap();
    let blocks = clean.blocks().to_vec();
    assert!(blocks.len() >= 3, "{} blocks", blocks.len());
    let mut bytes = std::fs::read(&path).unwrap();
    // Flip a byte in the middle of the second block's payload.
    let off = blocks[1].offset as usize + 60;
    bytes[off] ^= 0xff;
    std::fs::write(&path, &bytes).unwrap();
    let mut src = ReplaySource::open(vec![Reader::open(&path).unwrap()]).unwrap();
    let (mut damaged, mut records) = (0, 0);
    while let Some(step) = src.step(None) {
        records += 1;
        if let Some(StepError::Damaged { .. }) = step.error {
            damaged += 1;
        }
    }
    assert_eq!(damaged, 1);
    let total: u64 = blocks.iter().map(|b| u64::from(b.record_count)).sum();
    assert!(
        records as u64 >= total - u64::from(blocks[1].record_count) - 1,
        "{records} of {total}"
    );
    let _ = std::fs::remove_file(&path);
}
