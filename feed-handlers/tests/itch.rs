//! ITCH 5.0 round trip: generated days parsed (from memory and from a memory-mapped file)
//! into the L3 book must reproduce the generator's independent ground truth after every
//! single message; corrupt, unknown and truncated messages are reported and skipped.

use rand_core::{RngCore, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use tickwire_feeds::itch::{
    generate, map_file, replay, BookError, GenConfig, GeneratedDay, ItchError, ItchSide, L3Book,
    StreamError,
};

fn day(seed: u64, stocks: u16, messages: usize) -> GeneratedDay {
    generate(&GenConfig {
        seed,
        stocks,
        messages,
        truth: true,
    })
}

/// Replays `bytes` and checks every applied message's stock and print against
/// `truth[map(index)]`; [`check_tops_every_step`] checks the tops.
fn check_against_truth(
    bytes: &[u8],
    d: &GeneratedDay,
    map: impl Fn(usize) -> Option<usize>,
) -> (L3Book, Vec<(usize, StreamError)>, usize) {
    let mut book = L3Book::new();
    let mut errors = Vec::new();
    let mut checked = 0;
    let mut mismatches = Vec::new();
    replay(
        bytes,
        &mut book,
        |i, _, effect, _| {
            let Some(t) = map(i) else {
                mismatches.push(format!("message {i} should have been rejected"));
                return;
            };
            let truth = d.truth[t];
            if effect.book != truth.book.map(|(l, _)| l) {
                mismatches.push(format!(
                    "message {i}: touched {:?}, truth {:?}",
                    effect.book, truth.book
                ));
            }
            if effect.print != truth.print {
                mismatches.push(format!(
                    "message {i}: print {:?} != {:?}",
                    effect.print, truth.print
                ));
            }
            checked += 1;
        },
        |i, e| errors.push((i, e)),
    );
    assert!(
        mismatches.is_empty(),
        "{:?}",
        &mismatches[..mismatches.len().min(5)]
    );
    (book, errors, checked)
}

/// Step-by-step top-of-book comparison (the closure form cannot borrow the book).
fn check_tops_every_step(
    bytes: &[u8],
    d: &GeneratedDay,
    map: impl Fn(usize) -> Option<usize>,
) -> usize {
    use tickwire_feeds::itch::{parse, Frames};
    let mut book = L3Book::new();
    let mut compared = 0;
    for (i, frame) in Frames::new(bytes).enumerate() {
        let Ok(frame) = frame else { break };
        let Ok(msg) = parse(frame.body) else { continue };
        let Ok(effect) = book.apply(&msg) else {
            continue;
        };
        let t = map(i).unwrap_or_else(|| panic!("message {i} should have been rejected"));
        let want = d.truth[t].book;
        let got = effect.book.map(|locate| (locate, book.top(locate)));
        assert_eq!(got, want, "top of book after message {i} (truth {t})");
        compared += 1;
    }
    compared
}

#[test]
fn generated_day_round_trips_at_every_message() {
    let d = day(7, 300, 300_000);
    assert_eq!(d.truth.len(), d.messages);
    let (book, errors, checked) = check_against_truth(&d.bytes, &d, Some);
    assert!(errors.is_empty(), "{:?}", &errors[..errors.len().min(5)]);
    assert_eq!(checked, d.messages);
    assert_eq!(check_tops_every_step(&d.bytes, &d, Some), d.messages);

    // Full depth at the end of the day, every stock, every level.
    for (locate, (bids, asks)) in d.final_levels.iter().enumerate().skip(1) {
        let s = book.stock(locate as u16).expect("every stock had orders");
        assert_eq!(&s.levels(ItchSide::Buy).copied().collect::<Vec<_>>(), bids);
        assert_eq!(&s.levels(ItchSide::Sell).copied().collect::<Vec<_>>(), asks);
    }
    // The generated flow is realistic enough to exercise everything.
    let prints = d.truth.iter().filter(|t| t.print.is_some()).count();
    assert!(prints > 10_000, "{prints} prints");
    assert!(book.live_orders() > 1_000);
    let kinds: std::collections::BTreeSet<u8> = tickwire_feeds::itch::Frames::new(&d.bytes)
        .map(|f| f.unwrap().body[0])
        .collect();
    assert_eq!(kinds, b"ACDEFHPQRSUX".iter().copied().collect());
}

#[test]
fn memory_mapped_file_gives_the_same_day() {
    let d = day(11, 50, 50_000);
    let path = std::env::temp_dir().join(format!("tickwire-itch-{}.bin", std::process::id()));
    std::fs::write(&path, &d.bytes).unwrap();
    let map = map_file(&path).unwrap();
    let (_, errors, checked) = check_against_truth(&map, &d, Some);
    assert!(errors.is_empty());
    assert_eq!(checked, d.messages);
    assert_eq!(check_tops_every_step(&map, &d, Some), d.messages);
    drop(map);
    std::fs::remove_file(&path).ok();
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut f = (body.len() as u16).to_be_bytes().to_vec();
    f.extend_from_slice(body);
    f
}

#[test]
fn corrupt_and_unknown_messages_are_reported_and_skipped() {
    let d = day(3, 20, 20_000);
    let frames: Vec<&[u8]> = tickwire_feeds::itch::Frames::new(&d.bytes)
        .map(|f| f.unwrap().body)
        .collect();
    // Inserted after these original message indices: an unknown type, a known type with the
    // wrong length, a delete of an order that never existed, and an executed message whose
    // share count exceeds the order's.
    // An execution of an order that is live at that point, for more shares than it has.
    let mut scratch = L3Book::new();
    for body in &frames[..=15_000] {
        let _ = scratch.apply(&tickwire_feeds::itch::parse(body).unwrap());
    }
    let live_ref = frames[..=15_000]
        .iter()
        .filter(|b| b[0] == b'A')
        .map(|b| u64::from_be_bytes(b[11..19].try_into().unwrap()))
        .find(|r| scratch.order(*r).is_some())
        .unwrap();
    let mut bogus_exec = vec![b'E', 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    bogus_exec.extend_from_slice(&live_ref.to_be_bytes());
    bogus_exec.extend_from_slice(&u32::MAX.to_be_bytes());
    bogus_exec.extend_from_slice(&1u64.to_be_bytes());
    let mut unknown_delete = vec![b'D', 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    unknown_delete.extend_from_slice(&(u64::MAX - 1).to_be_bytes());
    let inserts: Vec<(usize, Vec<u8>)> = vec![
        (100, b"z0123456789".to_vec()),
        (5_000, vec![b'A'; 30]),
        (9_000, unknown_delete),
        (15_000, bogus_exec),
    ];
    let mut bytes = Vec::new();
    let mut original_of = Vec::new(); // stream index -> original index (None = inserted)
    for (i, body) in frames.iter().enumerate() {
        bytes.extend(frame(body));
        original_of.push(Some(i));
        for (_, bad) in inserts.iter().filter(|(at, _)| *at == i) {
            bytes.extend(frame(bad));
            original_of.push(None);
        }
    }
    let map = |i: usize| original_of[i];
    let (_, errors, checked) = check_against_truth(&bytes, &d, map);
    assert_eq!(
        checked, d.messages,
        "every real message still applied and matched"
    );
    assert_eq!(check_tops_every_step(&bytes, &d, map), d.messages);
    let kinds: Vec<_> = errors.iter().map(|(i, e)| (original_of[*i], *e)).collect();
    assert_eq!(kinds.len(), 4, "{kinds:?}");
    assert!(
        kinds.iter().all(|(orig, _)| orig.is_none()),
        "only inserted frames fail"
    );
    assert!(matches!(
        kinds[0].1,
        StreamError::Parse {
            error: ItchError::UnknownType(b'z'),
            ..
        }
    ));
    assert!(matches!(
        kinds[1].1,
        StreamError::Parse {
            error: ItchError::BadLength {
                kind: 'A',
                expected: 36,
                got: 30
            },
            ..
        }
    ));
    assert!(matches!(
        kinds[2].1,
        StreamError::Book {
            error: BookError::UnknownOrder(_),
            ..
        }
    ));
    assert!(matches!(
        kinds[3].1,
        StreamError::Book {
            error: BookError::TooManyShares { .. },
            ..
        }
    ));
}

#[test]
fn truncated_tail_is_reported_after_every_complete_message() {
    let d = day(4, 10, 5_000);
    // Cut inside the last message.
    let cut = d.bytes.len() - 5;
    let mut book = L3Book::new();
    let mut errors = Vec::new();
    let stats = replay(
        &d.bytes[..cut],
        &mut book,
        |_, _, _, _| {},
        |i, e| errors.push((i, e)),
    );
    assert_eq!(stats.messages as usize, d.messages - 1);
    assert_eq!(stats.applied as usize, d.messages - 1);
    assert_eq!(errors.len(), 1);
    let (i, StreamError::Truncated(t)) = errors[0] else {
        panic!("{errors:?}")
    };
    assert_eq!(i, d.messages - 1);
    assert_eq!(
        t.offset + 2 + 12,
        d.bytes.len(),
        "the last message is a 12-byte system event"
    );
}

#[test]
fn random_and_mutated_streams_never_panic() {
    let d = day(9, 10, 5_000);
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(99);
    for round in 0..300 {
        let mut bytes = if round % 3 == 0 {
            (0..(rng.next_u64() % 4096))
                .map(|_| rng.next_u64() as u8)
                .collect()
        } else {
            d.bytes.clone()
        };
        for _ in 0..(1 + rng.next_u64() % 20) {
            if bytes.is_empty() {
                break;
            }
            let at = (rng.next_u64() % bytes.len() as u64) as usize;
            bytes[at] = rng.next_u64() as u8;
        }
        let mut book = L3Book::new();
        let stats = replay(&bytes, &mut book, |_, _, _, _| {}, |_, _| {});
        assert!(stats.messages + stats.errors > 0 || bytes.len() < 2);
    }
}

#[test]
fn inspect_prints_every_book_change_and_reports_bad_messages() {
    let d = day(21, 5, 2_000);
    let mut bytes = d.bytes.clone();
    bytes.extend(frame(b"z-unknown"));
    bytes.extend_from_slice(&[0, 36, b'A', 0]); // truncated add order
    let path =
        std::env::temp_dir().join(format!("tickwire-itch-inspect-{}.bin", std::process::id()));
    std::fs::write(&path, &bytes).unwrap();
    let mut out = Vec::new();
    let s = tickwire_feeds::inspect::run("itch", &path, Some(3), &mut out).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(
        s.messages as usize,
        d.messages + 1,
        "the truncated tail is not a message"
    );
    assert_eq!(s.events as usize, d.messages);
    assert_eq!(s.parse_errors, 2);
    assert_eq!(s.symbols, 5);
    let lines: Vec<serde_json::Value> = String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let with_book = lines.iter().filter(|l| l.get("book").is_some()).count();
    let touching = d.truth.iter().filter(|t| t.book.is_some()).count();
    assert_eq!(with_book, touching);
    // The last book line of each stock shows the generator's final top three levels.
    for (locate, (bids, _)) in d.final_levels.iter().enumerate().skip(1) {
        let name = format!("S{locate:04}");
        let last = lines
            .iter()
            .rfind(|l| l["symbol"] == name.as_str() && l.get("book").is_some())
            .unwrap();
        let shown: Vec<u64> = last["book"]["bids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l[1].as_u64().unwrap())
            .collect();
        let want: Vec<u64> = bids.iter().take(3).map(|l| l.shares).collect();
        assert_eq!(shown, want, "{name}");
    }
    assert_eq!(lines.last().unwrap()["type"], "summary");
}
