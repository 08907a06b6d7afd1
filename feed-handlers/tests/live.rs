//! Live adapters end to end over real sockets: the exchange simulator serves the recorded
//! feeds over WebSocket (and Binance's REST snapshot over HTTP), the adapter's real session
//! code connects, subscribes, parses and resyncs, and the books it builds must end up equal
//! to those of an offline replay of the same recording. Faults: a garbage frame, a dropped
//! Binance diff (→ REST resync), and a disconnect mid-stream (→ reconnect, fresh snapshots).
//!
//! The test plays the engine's supervisor: it reruns a failed session after a short pause.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use tickwire_engine::adapter::{FeedCommand, FeedError};
use tickwire_engine::book::{L2Book, Level};
use tickwire_engine::domain::{Instrument, Scale, Side, SymbolId};
use tickwire_engine::event::FeedEvent;
use tickwire_feeds::inspect::{replay, ReplayItem};
use tickwire_feeds::live::simulator::{self, Faults, SimConfig};
use tickwire_feeds::live::{LiveConfig, Session, SessionIo, Venue};
use tickwire_feeds::venues::{decoder_for, Decoded};
use tokio::sync::Notify;

fn feed(name: &str) -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/real-feeds/"
    ))
    .join(name);
    assert!(p.is_file(), "recorded feed {} is missing", p.display());
    p
}

type Levels = (Vec<(i64, i64)>, Vec<(i64, i64)>);

fn levels(book: &L2Book) -> Levels {
    let side = |s| book.levels(s).map(|l| (l.price.0, l.qty.0)).collect();
    (side(Side::Buy), side(Side::Sell))
}

/// Final books of an offline replay, by symbol name, plus the events of the run.
fn offline(venue: &str, files: &[PathBuf]) -> (HashMap<String, Levels>, Vec<String>) {
    let mut d = decoder_for(venue).unwrap();
    let mut books: HashMap<String, Levels> = HashMap::new();
    replay(d.as_mut(), files, |dec, item| {
        if let ReplayItem::Decoded {
            decoded: Decoded::Event(ev),
            book: Some(book),
            ..
        } = item
        {
            let name = dec.registry().get(ev.meta().symbol).unwrap().symbol.clone();
            books.insert(name, levels(book));
        }
        Ok(())
    })
    .unwrap();
    let names = d
        .registry()
        .instruments()
        .iter()
        .map(|i| i.symbol.clone())
        .collect();
    (books, names)
}

/// The engine side, for tests: books by engine id; signals when they equal the target.
struct TestIo {
    names: Vec<String>,
    books: Vec<L2Book>,
    target: HashMap<String, Levels>,
    /// Per session: which symbols have had their snapshot yet.
    snapshotted: Vec<bool>,
    /// Book deltas that arrived before their symbol's snapshot in the session.
    deltas_before_snapshot: u64,
    /// Sessions that emitted a snapshot.
    sessions_with_snapshots: u64,
    done: Arc<Notify>,
    reached: bool,
}

impl TestIo {
    fn new(names: Vec<String>, target: HashMap<String, Levels>) -> Self {
        TestIo {
            books: vec![L2Book::new(); names.len()],
            names,
            target,
            snapshotted: Vec::new(),
            deltas_before_snapshot: 0,
            sessions_with_snapshots: 0,
            done: Arc::new(Notify::new()),
            reached: false,
        }
    }

    fn matches_target(&self) -> bool {
        self.names
            .iter()
            .zip(&self.books)
            .all(|(n, b)| self.target.get(n) == Some(&levels(b)))
    }
}

impl SessionIo for TestIo {
    fn symbol(&self, name: &str) -> Option<SymbolId> {
        self.names
            .iter()
            .position(|n| n == name)
            .map(|i| SymbolId(i as u32))
    }

    fn emit(&mut self, event: FeedEvent) {
        let i = event.meta().symbol.index();
        match event {
            FeedEvent::Snapshot { .. } => {
                if !self.snapshotted.iter().any(|s| *s) {
                    self.sessions_with_snapshots += 1;
                }
                self.snapshotted[i] = true;
            }
            FeedEvent::Delta { .. } if !self.snapshotted[i] => self.deltas_before_snapshot += 1,
            _ => {}
        }
        let book = &mut self.books[event.meta().symbol.index()];
        match &event {
            FeedEvent::Snapshot { bids, asks, .. } => {
                let lv = |&(price, qty): &(_, _)| Level { price, qty };
                book.replace(bids.iter().map(lv), asks.iter().map(lv));
            }
            FeedEvent::Delta { changes, .. } => {
                for c in changes {
                    book.apply(c.side, c.price, c.qty);
                }
            }
            FeedEvent::Trade { .. } => {}
        }
        if !self.reached && self.matches_target() {
            self.reached = true;
            self.done.notify_one();
        }
    }

    fn next_command(&mut self) -> LocalBoxFuture<'_, Result<FeedCommand, FeedError>> {
        let done = self.done.clone();
        Box::pin(async move {
            done.notified().await;
            Err(FeedError::Injected(
                "books reached the offline state".into(),
            ))
        })
    }
}

fn instruments(venue: &str, names: &[String]) -> Vec<Instrument> {
    // The scales the offline replay inferred for these recordings (module docs of venues).
    names
        .iter()
        .map(|n| Instrument {
            symbol: n.clone(),
            venue: venue.into(),
            price_scale: Scale::new(if n == "OCEAN/XBT" { 9 } else { 8 }),
            size_scale: Scale::new(8),
        })
        .collect()
}

/// Runs sessions like the supervisor until the books match; returns each session's error
/// and the last session's counters.
async fn supervise(
    cfg: &LiveConfig,
    io: &mut TestIo,
) -> (
    Vec<FeedError>,
    tickwire_feeds::venues::DecodeStats,
    u64,
    u64,
) {
    let mut errors = Vec::new();
    let run = async {
        loop {
            io.snapshotted = vec![false; io.names.len()];
            let mut session = Session::new(cfg);
            let result = session.run(io).await;
            let err = result.expect_err("a live session only ends with an error");
            let finished = matches!(err, FeedError::Injected(_));
            errors.push(err);
            if finished {
                return (
                    session.stats().clone(),
                    session.decode_errors,
                    session.snapshots_fetched,
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let (stats, decode_errors, snaps) = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("books never reached the offline state");
    (errors, stats, decode_errors, snaps)
}

#[tokio::test(flavor = "current_thread")]
async fn kraken_over_websocket_with_garbage_matches_offline_replay() {
    let file = feed("kraken-2021-04-17-book.raw");
    let (target, names) = offline("kraken", std::slice::from_ref(&file));
    let mut sim_cfg = SimConfig::from_recordings(&file, None).unwrap();
    sim_cfg.faults = Faults {
        garbage_before: Some(100),
        ..Faults::default()
    };
    let sim = simulator::start(sim_cfg).await.unwrap();
    let cfg = LiveConfig::new(Venue::Kraken, &sim.ws_url(), instruments("kraken", &names));
    let mut io = TestIo::new(names, target);
    let (errors, stats, decode_errors, _) = supervise(&cfg, &mut io).await;
    assert_eq!(errors.len(), 1, "one session sufficed: {errors:?}");
    assert_eq!(decode_errors, 1, "the garbage frame, counted and skipped");
    assert_eq!(stats.checksums_verified, 2557);
    assert_eq!(stats.checksums_failed, 0);
    assert_eq!(
        (io.sessions_with_snapshots, io.deltas_before_snapshot),
        (1, 0)
    );
}

#[tokio::test(flavor = "current_thread")]
async fn okx_disconnect_mid_stream_reconnects_and_books_match_again() {
    let file = feed("okx-2022-05-13-books-tickers-trades.raw");
    let (target, names) = offline("okx", std::slice::from_ref(&file));
    let mut sim_cfg = SimConfig::from_recordings(&file, None).unwrap();
    sim_cfg.faults = Faults {
        disconnect_after: Some(150),
        ..Faults::default()
    };
    let sim = simulator::start(sim_cfg).await.unwrap();
    let cfg = LiveConfig::new(Venue::Okx, &sim.ws_url(), instruments("okx", &names));
    let mut io = TestIo::new(names, target);
    let (errors, stats, _, _) = supervise(&cfg, &mut io).await;
    assert!(
        matches!(
            errors[..],
            [FeedError::Disconnected(_), FeedError::Injected(_)]
        ),
        "{errors:?}"
    );
    assert_eq!(sim.connections.load(std::sync::atomic::Ordering::SeqCst), 2);
    // The second session verified every checksum of the full replay.
    assert_eq!((stats.checksums_verified, stats.checksums_failed), (290, 0));
    assert_eq!(
        (io.sessions_with_snapshots, io.deltas_before_snapshot),
        (2, 0),
        "each session starts every book from a snapshot"
    );
}

#[tokio::test(flavor = "current_thread")]
async fn binance_dropped_diff_refetches_the_rest_snapshot_and_resumes() {
    let stream = feed("binance-2021-10-12-depth-bookticker-aggtrade-kline.raw");
    let rest = feed("binance-2021-10-12-rest-snapshots.raw");
    let (target, names) = offline("binance", &[stream.clone(), rest.clone()]);
    let mut sim_cfg = SimConfig::from_recordings(&stream, Some(&rest)).unwrap();
    // Drop a mid-stream NKNUSDT diff (far enough in to be past the initial snapshot).
    let victim = sim_cfg
        .messages
        .iter()
        .enumerate()
        .filter(|(_, m)| m.contains("\"e\":\"depthUpdate\"") && m.contains("\"s\":\"NKNUSDT\""))
        .nth(20)
        .map(|(i, _)| i)
        .unwrap();
    sim_cfg.faults = Faults {
        drop_message: Some(victim),
        ..Faults::default()
    };
    // Paced like the real stream (faster), so the client's first snapshots come early in it.
    sim_cfg.pace = Some(Duration::from_millis(3));
    let sim = simulator::start(sim_cfg).await.unwrap();
    let mut cfg = LiveConfig::new(
        Venue::Binance,
        &sim.ws_url(),
        instruments("binance", &names),
    );
    cfg.rest_url = Some(sim.rest_url());
    let mut io = TestIo::new(names, target);
    let (errors, stats, _, snapshots) = supervise(&cfg, &mut io).await;
    assert_eq!(
        errors.len(),
        1,
        "recovered without reconnecting: {errors:?}"
    );
    assert_eq!(stats.sequence_gaps, 1);
    assert_eq!(snapshots, 4 + 1, "one snapshot per symbol, plus the resync");
}
