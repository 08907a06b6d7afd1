//! Replays every recording in `../shared/real-feeds/` through its decoder and checks the
//! oracles the exchanges put in the data: Kraken's and OKX's book checksums, Binance's
//! update-id chain, Coinbase's ticker best bid/ask. Expected counts are computed from the
//! files independently (serde_json, not the decoder) wherever the README does not state them.
//!
//! A missing recording fails the test loudly: these tests must never pass by skipping.

use std::path::PathBuf;

use serde_json::Value;
use tickwire_engine::event::FeedEvent;
use tickwire_feeds::inspect::{replay, ReplayItem, Summary};
use tickwire_feeds::venues::{
    BinanceDecoder, CoinbaseDecoder, Decoded, KrakenDecoder, OkxDecoder, ResyncReason,
    SymbolRegistry, VenueDecoder,
};

fn feed(name: &str) -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/real-feeds/"
    ))
    .join(name);
    assert!(
        p.is_file(),
        "recorded feed {} is missing: the repository must be cloned with ../shared beside it",
        p.display()
    );
    p
}

/// The payloads of received lines (`<ts>: <payload>`), parsed with serde_json.
fn received_json(name: &str) -> Vec<Value> {
    std::fs::read_to_string(feed(name))
        .unwrap()
        .lines()
        .filter_map(|l| {
            let (ts, payload) = l.split_once(": ")?;
            ts.parse::<f64>().ok()?;
            Some(serde_json::from_str(payload).expect("recorded payloads are JSON"))
        })
        .collect()
}

fn run(decoder: &mut dyn VenueDecoder, files: &[PathBuf]) -> Summary {
    replay(decoder, files, |_, _| Ok(())).unwrap()
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("tickwire-{}-{name}", std::process::id()));
    std::fs::write(&p, contents).unwrap();
    p
}

#[test]
fn kraken_all_2557_book_checksums_verify() {
    let mut d = KrakenDecoder::new(SymbolRegistry::inferred("kraken"));
    let s = run(&mut d, &[feed("kraken-2021-04-17-book.raw")]);
    assert_eq!(s.checksums_verified, 2557, "{s:?}");
    assert_eq!(s.checksums_failed, 0);
    assert_eq!((s.parse_errors, s.resyncs, s.symbols), (0, 0, 4));
    assert_eq!(s.crossed_after_update, 0, "a correct book never crosses");
    // 4 snapshots + 2557 updates (each update message carries exactly one checksum).
    assert_eq!(s.events, 4 + 2557);
}

#[test]
fn kraken_corrupted_checksum_resyncs_and_drops_the_pair_until_a_snapshot() {
    let text = std::fs::read_to_string(feed("kraken-2021-04-17-book.raw")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Corrupt the first XMR/USD update's checksum.
    let victim = lines
        .iter()
        .position(|l| l.contains("\"c\":\"") && l.ends_with("\"XMR/USD\"]"))
        .unwrap();
    let later_xmr = lines[victim + 1..]
        .iter()
        .filter(|l| l.contains("\"c\":\"") && l.ends_with("\"XMR/USD\"]"))
        .count() as u64;
    let mut edited: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
    // Change the checksum's last digit: still a valid u32, but wrong.
    let end = edited[victim][..edited[victim].find("\"},\"book").unwrap()].len() - 1;
    let digit = edited[victim].as_bytes()[end] - b'0';
    edited[victim].replace_range(end..=end, &((digit + 1) % 10).to_string());
    let path = temp_file("kraken-corrupt.raw", &edited.join("\n"));

    let mut d = KrakenDecoder::new(SymbolRegistry::inferred("kraken"));
    let mut resync_reasons = Vec::new();
    let s = replay(&mut d, &[&path], |_, item| {
        if let ReplayItem::Decoded {
            decoded: Decoded::Resync { reason, .. },
            ..
        } = item
        {
            resync_reasons.push(reason.clone());
        }
        Ok(())
    })
    .unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(s.checksums_failed, 1);
    assert_eq!(s.resyncs, 1);
    assert!(matches!(
        resync_reasons[..],
        [ResyncReason::ChecksumMismatch { .. }]
    ));
    assert_eq!(s.checksums_verified, 2557 - 1 - later_xmr);
    assert_eq!(d.stats().dropped_awaiting_snapshot, later_xmr);
}

#[test]
fn kraken_trades_and_tickers_decode_completely() {
    let expected_trades: usize = received_json("kraken-2021-04-17-trade.raw")
        .iter()
        .filter(|v| v.get(2).and_then(Value::as_str) == Some("trade"))
        .map(|v| v[1].as_array().unwrap().len())
        .sum();
    let mut d = KrakenDecoder::new(SymbolRegistry::inferred("kraken"));
    let s = run(&mut d, &[feed("kraken-2021-04-17-trade.raw")]);
    assert!(expected_trades > 0);
    assert_eq!((s.events as usize, s.parse_errors), (expected_trades, 0));

    let expected_tickers = received_json("kraken-2021-04-17-ticker.raw")
        .iter()
        .filter(|v| v.get(2).and_then(Value::as_str) == Some("ticker"))
        .count();
    let mut d = KrakenDecoder::new(SymbolRegistry::inferred("kraken"));
    let s = run(&mut d, &[feed("kraken-2021-04-17-ticker.raw")]);
    assert!(expected_tickers > 0);
    assert_eq!((s.quotes as usize, s.parse_errors), (expected_tickers, 0));
}

#[test]
fn okx_all_290_book_checksums_verify() {
    let mut d = OkxDecoder::new(SymbolRegistry::inferred("okx"));
    let s = run(&mut d, &[feed("okx-2022-05-13-books-tickers-trades.raw")]);
    assert_eq!(s.checksums_verified, 290, "{s:?}");
    assert_eq!(s.checksums_failed, 0);
    assert_eq!((s.parse_errors, s.resyncs, s.symbols), (0, 0, 3));
    assert_eq!(s.crossed_after_update, 0);

    let msgs = received_json("okx-2022-05-13-books-tickers-trades.raw");
    let count = |channel: &str| -> u64 {
        msgs.iter()
            .filter(|m| m["arg"]["channel"] == channel && m.get("data").is_some())
            .map(|m| m["data"].as_array().unwrap().len() as u64)
            .sum()
    };
    assert_eq!(s.events, count("books") + count("trades"));
    assert_eq!(s.quotes, count("tickers"));
}

/// Binance: (symbol, lastUpdateId) of each REST snapshot, and the depth diffs.
fn binance_expectations() -> (Vec<(String, u64)>, Vec<Value>) {
    let snaps = std::fs::read_to_string(feed("binance-2021-10-12-rest-snapshots.raw"))
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let symbol = l
                .split("symbol=")
                .nth(1)
                .unwrap()
                .split('&')
                .next()
                .unwrap();
            let payload: Value = serde_json::from_str(l.split_once(": ").unwrap().1).unwrap();
            (
                symbol.to_string(),
                payload["lastUpdateId"].as_u64().unwrap(),
            )
        })
        .collect();
    let diffs = received_json("binance-2021-10-12-depth-bookticker-aggtrade-kline.raw")
        .into_iter()
        .map(|m| m["data"].clone())
        .filter(|d| d["e"] == "depthUpdate")
        .collect();
    (snaps, diffs)
}

#[test]
fn binance_diffs_chain_from_the_rest_snapshots_without_gaps() {
    let (snaps, diffs) = binance_expectations();
    assert_eq!(snaps.len(), 4);
    // The documented procedure applies exactly the diffs newer than the snapshot.
    let expected_deltas = diffs
        .iter()
        .filter(|d| {
            let lid = snaps.iter().find(|(s, _)| d["s"] == s.as_str()).unwrap().1;
            d["u"].as_u64().unwrap() > lid
        })
        .count();
    assert!(expected_deltas > 50);

    let mut d = BinanceDecoder::new(SymbolRegistry::inferred("binance"));
    let mut deltas = 0;
    let s = replay(
        &mut d,
        &[
            feed("binance-2021-10-12-depth-bookticker-aggtrade-kline.raw"),
            feed("binance-2021-10-12-rest-snapshots.raw"),
        ],
        |_, item| {
            if let ReplayItem::Decoded {
                decoded: Decoded::Event(FeedEvent::Delta { .. }),
                ..
            } = item
            {
                deltas += 1;
            }
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(
        (s.sequence_gaps, s.resyncs, s.parse_errors),
        (0, 0, 0),
        "{s:?}"
    );
    assert_eq!(deltas, expected_deltas);
    assert_eq!(s.symbols, 4);
    for id in 0..4 {
        assert!(d.is_live(tickwire_engine::domain::SymbolId(id)));
    }
    assert_eq!(s.crossed_after_update, 0);
}

#[test]
fn binance_deleting_one_diff_triggers_a_resync() {
    let (snaps, _) = binance_expectations();
    let text = std::fs::read_to_string(feed(
        "binance-2021-10-12-depth-bookticker-aggtrade-kline.raw",
    ))
    .unwrap();
    // Delete the second NKNUSDT diff that lies wholly after its snapshot.
    let lid = snaps.iter().find(|(s, _)| s == "NKNUSDT").unwrap().1;
    let mut seen = 0;
    let victim = text
        .lines()
        .position(|l| {
            let Some((_, payload)) = l.split_once(": ") else {
                return false;
            };
            let Ok(v) = serde_json::from_str::<Value>(payload) else {
                return false;
            };
            let d = &v["data"];
            if d["e"] == "depthUpdate" && d["s"] == "NKNUSDT" && d["U"].as_u64().unwrap() > lid + 1
            {
                seen += 1;
            }
            seen == 2
        })
        .unwrap();
    let edited: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != victim)
        .map(|(_, l)| l)
        .collect();
    let path = temp_file("binance-gap.raw", &edited.join("\n"));
    let mut d = BinanceDecoder::new(SymbolRegistry::inferred("binance"));
    let mut resynced = Vec::new();
    let s = replay(
        &mut d,
        &[path.clone(), feed("binance-2021-10-12-rest-snapshots.raw")],
        |dec, item| {
            if let ReplayItem::Decoded {
                decoded: Decoded::Resync { symbol, reason },
                ..
            } = item
            {
                let name = dec.registry().get(*symbol).unwrap().symbol.clone();
                resynced.push((name, reason.clone()));
            }
            Ok(())
        },
    )
    .unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!((s.sequence_gaps, s.resyncs), (1, 1), "{s:?}");
    assert_eq!(resynced.len(), 1);
    assert_eq!(resynced[0].0, "NKNUSDT");
    assert!(matches!(resynced[0].1, ResyncReason::SequenceGap { .. }));
    let nkn = d.registry().lookup("NKNUSDT").unwrap();
    assert!(!d.is_live(nkn), "waits for a new snapshot");
}

/// Time of an applied l2update and the best bid/ask mantissas after it.
type AppliedTop = (i64, Option<i64>, Option<i64>);

/// Coinbase stamps a match's `ticker` and the `l2update` that the match causes with the same
/// `time`, and sends the l2update first. So the rule is: **when the last l2update the book
/// applied for the product before a ticker has exactly the ticker's `time`, the book has seen
/// precisely the updates that the ticker reflects, and its best bid and ask must equal the
/// ticker's.** If the last applied update is older, the ticker's update has not arrived (or
/// the ticker predates the snapshot, which carries no time); if it is newer, the book has
/// already moved past the ticker. Those tickers are counted, not compared.
#[test]
fn coinbase_books_match_every_ticker_they_have_caught_up_with() {
    let mut d = CoinbaseDecoder::new(SymbolRegistry::inferred("coinbase"));
    // Per symbol: time of the last applied l2update and the book's best prices after it.
    let mut last: Vec<Option<AppliedTop>> = vec![None; 64];
    let (mut compared, mut skipped, mut mismatches) = (0, 0, Vec::new());
    let s = replay(
        &mut d,
        &[feed("coinbase-2021-04-17-level2-ticker-matches.raw")],
        |_, item| {
            let ReplayItem::Decoded {
                line,
                decoded,
                book,
                ..
            } = item
            else {
                return Ok(());
            };
            match decoded {
                Decoded::Event(ev @ FeedEvent::Delta { meta, .. }) => {
                    let top = book.unwrap().top();
                    last[meta.symbol.index()] = Some((
                        ev.meta().ts.0,
                        top.bid.map(|l| l.price.0),
                        top.ask.map(|l| l.price.0),
                    ));
                }
                Decoded::Event(FeedEvent::Snapshot { meta, .. }) => {
                    last[meta.symbol.index()] = None;
                }
                Decoded::Quote(q) => match last[q.meta.symbol.index()] {
                    Some((t, bid, ask)) if t == q.meta.ts.0 => {
                        compared += 1;
                        let want = (q.bid.map(|b| b.price.0), q.ask.map(|a| a.price.0));
                        if (bid, ask) != want {
                            mismatches.push((line, (bid, ask), want));
                        }
                    }
                    _ => skipped += 1,
                },
                _ => {}
            }
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(s.parse_errors, 0);
    assert_eq!(s.quotes, 107);
    assert!(mismatches.is_empty(), "{mismatches:?}");
    // Counted from the recording: 10 tickers predate their product's snapshot or its
    // first update; every other ticker is checked.
    assert_eq!((compared, skipped), (97, 10));
    assert_eq!(s.crossed_after_update, 0);
}

#[test]
fn coinbase_trades_are_every_match_with_the_takers_side() {
    let msgs = received_json("coinbase-2021-04-17-level2-ticker-matches.raw");
    let matches: Vec<&Value> = msgs
        .iter()
        .filter(|m| m["type"] == "match" || m["type"] == "last_match")
        .collect();
    let mut d = CoinbaseDecoder::new(SymbolRegistry::inferred("coinbase"));
    let mut trades = Vec::new();
    replay(
        &mut d,
        &[feed("coinbase-2021-04-17-level2-ticker-matches.raw")],
        |dec, item| {
            if let ReplayItem::Decoded {
                decoded:
                    Decoded::Event(FeedEvent::Trade {
                        meta,
                        price,
                        aggressor,
                        ..
                    }),
                ..
            } = item
            {
                let (ps, _) = dec.registry().scales(meta.symbol);
                trades.push((price.display(ps).to_string(), *aggressor));
            }
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(trades.len(), matches.len());
    for (m, (price, aggressor)) in matches.iter().zip(&trades) {
        let want: tickwire_engine::domain::Price = tickwire_engine::domain::Price::parse(
            m["price"].as_str().unwrap(),
            tickwire_engine::domain::Scale::new(8),
        )
        .unwrap();
        assert_eq!(
            price,
            &want
                .display(tickwire_engine::domain::Scale::new(8))
                .to_string()
        );
        let maker_sell = m["side"] == "sell";
        assert_eq!(
            *aggressor,
            Some(if maker_sell {
                tickwire_engine::domain::Side::Buy
            } else {
                tickwire_engine::domain::Side::Sell
            })
        );
    }
}

#[test]
fn inspect_prints_events_and_a_summary_for_every_recording() {
    for (venue, files) in [
        ("kraken", vec!["kraken-2021-04-17-book.raw"]),
        ("okx", vec!["okx-2022-05-13-books-tickers-trades.raw"]),
        (
            "coinbase",
            vec!["coinbase-2021-04-17-level2-ticker-matches.raw"],
        ),
        (
            "binance",
            vec![
                "binance-2021-10-12-depth-bookticker-aggtrade-kline.raw",
                "binance-2021-10-12-rest-snapshots.raw",
            ],
        ),
    ] {
        let paths: Vec<PathBuf> = files.iter().map(|f| feed(f)).collect();
        let mut out = Vec::new();
        let s = tickwire_feeds::inspect::run_files(venue, &paths, Some(5), &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("every output line is JSON"))
            .collect();
        let last = lines.last().unwrap();
        assert_eq!(last["type"], "summary");
        assert_eq!(last["summary"]["events"], s.events);
        let events = lines
            .iter()
            .filter(|l| ["snapshot", "delta", "trade"].contains(&l["type"].as_str().unwrap()))
            .count() as u64;
        assert_eq!(events, s.events, "{venue}");
        // --book-depth: book lines never exceed the requested depth.
        for l in lines.iter().filter(|l| l["type"] == "delta") {
            assert!(l["book"]["bids"].as_array().unwrap().len() <= 5);
            assert!(l["book"]["asks"].as_array().unwrap().len() <= 5);
        }
    }
}

#[test]
fn inspect_reports_malformed_lines_with_their_numbers_and_carries_on() {
    let text = std::fs::read_to_string(feed("okx-2022-05-13-books-tickers-trades.raw")).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    lines.insert(20, "this is not a recorded line".into());
    lines.insert(30, "1652459225.5: {\"arg\": [truncated".into());
    let path = temp_file("okx-malformed.raw", &lines.join("\n"));
    let mut out = Vec::new();
    let s = tickwire_feeds::inspect::run("okx", &path, None, &mut out).unwrap();
    std::fs::remove_file(&path).ok();
    assert_eq!(s.parse_errors, 2);
    assert_eq!(
        s.errors.iter().map(|e| e.line).collect::<Vec<_>>(),
        vec![21, 31]
    );
    assert_eq!(s.checksums_verified, 290, "the run carried on past both");
}
