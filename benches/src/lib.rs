//! # tickwire-benches
//!
//! Criterion benchmarks of the hot paths (`benches/benches/*.rs`) and the project's load
//! tools. Shared fixtures for the benches live here so every bench measures the same
//! realistic inputs.
//!
//! [`loadgen`] owns the WebSocket load generator behind the `tickwire-loadgen` binary: it
//! talks only the documented client protocol, so it can measure any server that speaks it (a
//! Tickwire deployment or the Node `ws` baseline in `benches/baselines/node-ws`).

pub mod loadgen;

pub use loadgen::plot::ensure_font as register_plot_font;

/// `criterion_main!` with the plot font registered first (see [`register_plot_font`]).
#[macro_export]
macro_rules! bench_main {
    ($($group:path),+ $(,)?) => {
        fn main() {
            $crate::register_plot_font();
            $($group();)+
            criterion::Criterion::default()
                .configure_from_args()
                .final_summary();
        }
    };
}

use tickwire_engine::book::{L2Book, Level};
use tickwire_engine::domain::{Nanos, SymbolId};
use tickwire_engine::event::{EventMeta, FeedEvent, LevelUpdate};
use tickwire_feeds::{SyntheticConfig, SyntheticMarket};

/// A book of one synthetic instrument and `n` consecutive level-change batches for it,
/// exactly as the simulator publishes them.
pub fn synthetic_book_workload(n: usize) -> (L2Book, Vec<Vec<LevelUpdate>>) {
    let cfg = SyntheticConfig {
        symbols: 1,
        seed: 42,
        ..SyntheticConfig::default()
    };
    let mut market = SyntheticMarket::new(&cfg);
    let (bids, asks) = market.snapshot(0);
    let lv = |(price, qty)| Level { price, qty };
    let mut book = L2Book::new();
    book.replace(bids.into_iter().map(lv), asks.into_iter().map(lv));
    let mut batches = Vec::with_capacity(n);
    let mut out = Vec::new();
    let meta = EventMeta {
        symbol: SymbolId(0),
        ts: Nanos(0),
        recv_ts: Nanos(0),
    };
    while batches.len() < n {
        out.clear();
        market.step(meta, &mut out);
        for ev in out.drain(..) {
            if let FeedEvent::Delta { changes, .. } = ev {
                batches.push(changes.into_vec());
            }
        }
    }
    batches.truncate(n);
    (book, batches)
}
