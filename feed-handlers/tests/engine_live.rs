//! A live adapter inside the real engine: the simulator serves OKX's recording over a real
//! WebSocket and drops the connection mid-stream; the engine's supervisor restarts the
//! session, clients see each symbol go stale and then live again, and the books the engine
//! publishes end equal to an offline replay of the recording.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tickwire_engine::domain::{Instrument, Scale, Side};
use tickwire_engine::tick::{FeedState, Tick, TickBody};
use tickwire_engine::{Engine, EngineConfig};
use tickwire_feeds::inspect::{replay, ReplayItem};
use tickwire_feeds::live::simulator::{self, Faults, SimConfig};
use tickwire_feeds::live::{LiveAdapter, LiveConfig, Venue};
use tickwire_feeds::venues::{decoder_for, Decoded};

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

#[actix_rt::test]
async fn okx_disconnect_goes_stale_then_live_and_engine_books_match_offline() {
    let file = feed("okx-2022-05-13-books-tickers-trades.raw");
    // Offline: final books by symbol name.
    let mut d = decoder_for("okx").unwrap();
    let mut offline: HashMap<String, Levels> = HashMap::new();
    replay(d.as_mut(), std::slice::from_ref(&file), |dec, item| {
        if let ReplayItem::Decoded {
            decoded: Decoded::Event(ev),
            book: Some(book),
            ..
        } = item
        {
            let name = dec.registry().get(ev.meta().symbol).unwrap().symbol.clone();
            let side = |s| book.levels(s).map(|l| (l.price.0, l.qty.0)).collect();
            offline.insert(name, (side(Side::Buy), side(Side::Sell)));
        }
        Ok(())
    })
    .unwrap();
    let names: Vec<String> = d
        .registry()
        .instruments()
        .iter()
        .map(|i| i.symbol.clone())
        .collect();

    let mut sim_cfg = SimConfig::from_recordings(&file, None).unwrap();
    sim_cfg.faults = Faults {
        disconnect_after: Some(150),
        ..Faults::default()
    };
    sim_cfg.pace = Some(Duration::from_millis(1));
    let sim = simulator::start(sim_cfg).await.unwrap();
    let instruments: Vec<Instrument> = names
        .iter()
        .map(|n| Instrument {
            symbol: n.clone(),
            venue: "okx".into(),
            price_scale: Scale::new(8),
            size_scale: Scale::new(8),
        })
        .collect();
    let cfg = LiveConfig::new(Venue::Okx, &sim.ws_url(), instruments);
    let engine = Engine::start(
        vec![Box::new(LiveAdapter::new(cfg))],
        EngineConfig::default(),
    )
    .expect("engine starts");
    let hub = engine.hub().clone();
    let ids: Vec<_> = names
        .iter()
        .map(|n| engine.symbols().lookup(n).unwrap())
        .collect();
    for id in &ids {
        hub.add_interest(*id, 0);
    }

    let mut states: HashMap<usize, Vec<FeedState>> = HashMap::new();
    let mut books: HashMap<usize, Levels> = HashMap::new();
    let matches = |books: &HashMap<usize, Levels>| {
        ids.iter().zip(&names).all(|(id, n)| {
            let (Some((bids, asks)), Some((ob, oa))) = (books.get(&id.index()), offline.get(n))
            else {
                return false;
            };
            // Published books carry the top levels only.
            !bids.is_empty() && ob.starts_with(bids) && oa.starts_with(asks)
        })
    };
    let mut batch: Vec<Arc<Tick>> = Vec::new();
    let outcome = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            batch.clear();
            hub.recv_batch(0, &mut batch, 1024).await;
            for t in &batch {
                let i = t.header.symbol.index();
                match &t.body {
                    TickBody::Status { state, .. } => states.entry(i).or_default().push(*state),
                    TickBody::Book(l) => {
                        let side = |v: &Vec<tickwire_engine::book::Level>| {
                            v.iter().map(|l| (l.price.0, l.qty.0)).collect()
                        };
                        books.insert(i, (side(&l.bids), side(&l.asks)));
                    }
                    _ => {}
                }
            }
            let recovered = ids.iter().all(|id| {
                let s = states
                    .get(&id.index())
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                s.windows(2)
                    .any(|w| w == [FeedState::Stale, FeedState::Live])
                    && s.contains(&FeedState::Live)
                    && s.iter().filter(|x| **x == FeedState::Live).count() >= 2
            });
            if recovered && matches(&books) {
                return;
            }
        }
    })
    .await;
    assert!(
        outcome.is_ok(),
        "never recovered: states {states:?}, books match {}",
        matches(&books)
    );
    assert_eq!(sim.connections.load(std::sync::atomic::Ordering::SeqCst), 2);
}
