//! `cluster-hop`: the latency the engine → NATS → gateway hop adds.
//!
//! In one process, two hubs: the engine's (what book actors publish into) and a gateway's
//! (what its routers drain), joined by the real cluster code over a real nats-server: the
//! engine role's publisher (`start_publisher`) and the gateway (`Gateway::start`), each with
//! its own NATS connection, exactly as `tickwire engine` and `tickwire gateway` run them. A
//! generator publishes quote ticks into the engine hub at `--rate` per second, stamping the
//! publication time into `ts`; a reader drains the gateway hub's worker queue and records
//! `now - ts` for each tick: engine hub publish → publisher queue → encode → NATS → gateway
//! decode, frame encoding → gateway hub → worker queue. One clock, so no skew.
//!
//! ```text
//! cargo run --release -p tickwire-benches --bin cluster-hop -- --rate 100000 --seconds 10
//! ```
//!
//! It starts `nats-server` (from PATH or /usr/sbin) on a free loopback port unless
//! `--nats-url` names one.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;

use tickwire_engine::book::{Level, TopOfBook};
use tickwire_engine::domain::{Nanos, Price, Qty, Seq, SymbolId, SymbolTable};
use tickwire_engine::fanout::Hub;
use tickwire_engine::tick::{FeedState, Tick, TickBody, TickHeader};
use tickwire_feeds::{SyntheticConfig, SyntheticMarket};
use tickwire_server::cluster::gateway::Gateway;
use tickwire_server::cluster::{engine_role, ClusterSettings};

#[derive(Parser)]
struct Args {
    /// Ticks per second into the engine hub.
    #[arg(long, default_value_t = 100_000)]
    rate: u64,
    /// Seconds measured (after one second of warm-up).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Symbols the ticks are spread over.
    #[arg(long, default_value_t = 100)]
    symbols: usize,
    /// An existing NATS server; by default one is started.
    #[arg(long)]
    nats_url: Option<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn tick(symbol: SymbolId, seq: u64, body: TickBody) -> Arc<Tick> {
    let now = Nanos::now();
    Arc::new(Tick {
        header: TickHeader {
            symbol,
            seq: Seq(seq),
            chan_seq: Seq(seq),
            ts: now,
            recv_ts: now,
        },
        body,
        frames: Default::default(),
    })
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let mut nats = None;
    let url = match &args.nats_url {
        Some(u) => u.clone(),
        None => {
            let port = free_port();
            let bin = ["/usr/sbin/nats-server", "/usr/bin/nats-server"]
                .into_iter()
                .find(|p| std::path::Path::new(p).exists())
                .unwrap_or("nats-server");
            nats = Some(
                Command::new(bin)
                    .args(["-a", "127.0.0.1", "-p", &port.to_string()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()?,
            );
            std::thread::sleep(Duration::from_millis(300));
            format!("nats://127.0.0.1:{port}")
        }
    };
    let market = SyntheticMarket::new(&SyntheticConfig {
        symbols: args.symbols,
        ..SyntheticConfig::default()
    });
    let symbols = SymbolTable::new(market.instruments().to_vec())?;
    let settings = ClusterSettings {
        nats_url: url.clone(),
        engine_id: "bench".into(),
        ..ClusterSettings::default()
    };
    let engine_hub = Hub::new(symbols.clone(), 1, 1 << 16);
    engine_role::start_publisher(&engine_hub, &settings)?;
    // Every symbol live with a quote, so snapshots have something to carry.
    let mut seqs = vec![0u64; symbols.len()];
    let top = TopOfBook {
        bid: Some(Level {
            price: Price(10_000),
            qty: Qty(100),
        }),
        ask: Some(Level {
            price: Price(10_002),
            qty: Qty(100),
        }),
    };
    std::thread::sleep(Duration::from_millis(300));
    for (id, _) in symbols.iter() {
        engine_hub.publish(tick(
            id,
            0,
            TickBody::Status {
                state: FeedState::Live,
                reason: "snapshot".into(),
            },
        ));
        seqs[id.index()] += 1;
        engine_hub.publish(tick(id, seqs[id.index()], TickBody::Quote(top)));
    }
    let gateway = Gateway::start(&settings, "bench gateway", 1, 1 << 16)?;
    let gw_hub = tickwire_server::source::MarketSource::hub(&gateway).clone();
    let worker = gw_hub.claim_worker();
    for (id, _) in symbols.iter() {
        gw_hub.add_interest(id, worker);
    }
    std::thread::sleep(Duration::from_millis(500));

    let stop = Arc::new(AtomicBool::new(false));
    let measuring = Arc::new(AtomicBool::new(false));
    let generator = {
        let (hub, stop, rate) = (engine_hub.clone(), stop.clone(), args.rate);
        let n = symbols.len();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut done: u64 = 0;
            let mut i = 0usize;
            while !stop.load(Ordering::Relaxed) {
                let due = (start.elapsed().as_secs_f64() * rate as f64) as u64;
                while done < due {
                    let s = i % n;
                    i += 1;
                    seqs[s] += 1;
                    let mut t = top;
                    if let Some(b) = t.bid.as_mut() {
                        b.qty = Qty(100 + (seqs[s] % 50) as i64);
                    }
                    hub.publish(tick(SymbolId(s as u32), seqs[s], TickBody::Quote(t)));
                    done += 1;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
            done
        })
    };
    let reader = {
        let (hub, stop, measuring) = (gw_hub.clone(), stop.clone(), measuring.clone());
        // Waits for ticks as a server worker's router does (woken by the hub), rather than
        // spinning: on a 2-core machine a spinning reader takes a core from the very threads
        // whose latency it measures.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .build()
                .expect("reader runtime");
            rt.block_on(async move {
                let mut hist = Histogram::<u64>::new_with_bounds(1, 10_000_000_000, 3).unwrap();
                let mut batch = Vec::with_capacity(1024);
                let mut received = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    // Bounded wait, so the reader notices `stop` when no tick comes.
                    let wait = hub.recv_batch(worker, &mut batch, 1024);
                    let _ = tokio::time::timeout(Duration::from_millis(50), wait).await;
                    let now = Nanos::now().get();
                    let on = measuring.load(Ordering::Relaxed);
                    for t in batch.drain(..) {
                        if on && matches!(t.body, TickBody::Quote(_)) {
                            received += 1;
                            let _ = hist.record((now - t.header.ts.get()).max(1) as u64);
                        }
                    }
                }
                (hist, received)
            })
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(args.seconds));
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let generated = generator.join().unwrap();
    let (hist, received) = reader.join().unwrap();
    let us = |q: f64| hist.value_at_quantile(q) as f64 / 1000.0;
    let stats = gateway.shared.stats.gaps.load(Ordering::Relaxed);
    println!(
        "rate {} ticks/s, {} symbols: {} ticks through the hop in {:.1} s ({:.0}/s); gaps {}",
        args.rate,
        args.symbols,
        received,
        elapsed.as_secs_f64(),
        received as f64 / elapsed.as_secs_f64(),
        stats
    );
    println!(
        "added latency engine hub → NATS → gateway hub: p50 {:.1} µs, p90 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, max {:.1} µs",
        us(0.5),
        us(0.9),
        us(0.99),
        us(0.999),
        hist.max() as f64 / 1000.0
    );
    let _ = generated;
    if let Some(mut n) = nats {
        let _ = n.kill();
        let _ = n.wait();
    }
    Ok(())
}
