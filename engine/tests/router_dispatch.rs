//! How a server worker's router takes ticks from its queue to the outboxes.
//!
//! * A worker whose tick queue overflowed resynchronizes its sessions from the last values
//!   only once it has drained the queue: sending the (newest) last values while older ticks
//!   still wait behind them would make a symbol's `seq` go backwards.
//! * A connection about to write dispatches what is queued itself
//!   ([`Router::dispatch_ready_for_writer`]), without waiting for the router's task, and the
//!   same rules hold on that path.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use tickwire_engine::book::{Level, TopOfBook};
use tickwire_engine::domain::{
    Instrument, Nanos, Price, Qty, Scale, Seq, Side, SymbolId, SymbolTable,
};
use tickwire_engine::fanout::{Hub, Outbox, OutboxLimits, Router, SharedOutbox, SubscribeSpec};
use tickwire_engine::tick::{Channel, ChannelSet, Encoding, Tick, TickBody, TickHeader};
use tickwire_engine::wire::{frame_payload, TickEncoder};

/// One symbol, one worker whose queue holds `queue` ticks, one session subscribed to its
/// quotes and trades.
fn setup(queue: usize) -> (Instrument, Arc<Hub>, Rc<RefCell<Router>>, SharedOutbox) {
    let ins = Instrument {
        symbol: "SYM0000".into(),
        venue: "test".into(),
        price_scale: Scale::new(2),
        size_scale: Scale::new(0),
    };
    let table = SymbolTable::new(vec![ins.clone()]).unwrap();
    // Room for a few router batches, far fewer than what is published.
    let hub = Hub::new(table, 1, queue);
    let worker = hub.claim_worker();
    let router = Rc::new(RefCell::new(Router::new(hub.clone(), worker)));
    let outbox = Rc::new(RefCell::new(Outbox::new(OutboxLimits {
        max_queued_bytes: 1 << 30,
    })));
    router.borrow_mut().subscribe(
        1,
        &outbox,
        SymbolId(0),
        SubscribeSpec {
            channels: [Channel::Quote, Channel::Trade]
                .into_iter()
                .collect::<ChannelSet>(),
            depth: 10,
            throttle: None,
            encoding: Encoding::JSON,
        },
    );
    (ins, hub, router, outbox)
}

/// Publishes `n` ticks, quotes and trades in turn, with `seq` 1..=n.
fn publish(ins: &Instrument, hub: &Hub, n: u64) {
    let enc = TickEncoder::new(ins);
    let (mut quotes, mut trades) = (0, 0);
    for seq in 1..=n {
        let trade = seq % 2 == 0;
        let c = if trade { &mut trades } else { &mut quotes };
        *c += 1;
        let header = TickHeader {
            symbol: SymbolId(0),
            seq: Seq(seq),
            chan_seq: Seq(*c),
            ts: Nanos(seq as i64),
            recv_ts: Nanos(seq as i64),
        };
        let (body, frame) = if trade {
            let f = enc.trade(&header, Price(100), Qty(1), Some(Side::Sell));
            (
                TickBody::Trade {
                    price: Price(100),
                    qty: Qty(1),
                    aggressor: Some(Side::Sell),
                },
                f,
            )
        } else {
            let top = TopOfBook {
                bid: Some(Level {
                    price: Price(99),
                    qty: Qty(seq as i64),
                }),
                ask: None,
            };
            let f = enc.quote(&header, &top);
            (TickBody::Quote(top), f)
        };
        hub.publish(Arc::new(Tick {
            header,
            body,
            frames: [frame, Bytes::new(), Bytes::new(), Bytes::new()],
        }));
    }
}

/// Every frame the outbox holds, checking that `seq` only goes up; returns the count and the
/// last `seq`.
fn drain_in_order(outbox: &SharedOutbox) -> (usize, u64) {
    let mut last = 0u64;
    let mut n = 0;
    while let Some(f) = outbox.borrow_mut().next_frame(Waker::noop()) {
        let v: serde_json::Value = serde_json::from_slice(frame_payload(&f)).unwrap();
        let seq = v["seq"].as_u64().unwrap();
        assert!(seq > last, "seq went from {last} to {seq} ({v})");
        last = seq;
        n += 1;
    }
    (n, last)
}

#[test]
fn seq_never_goes_backwards_after_a_queue_overflow() {
    // Room for a few router batches, far fewer than what is published.
    let (ins, hub, router, outbox) = setup(4096);
    publish(&ins, &hub, 20_000);
    assert!(
        hub.stats
            .worker_overflows
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async {
        tokio::task::spawn_local(Router::run(router.clone()));
        tokio::time::sleep(Duration::from_millis(200)).await;
    });
    assert!(router.borrow().stats().resyncs >= 1, "no resync happened");

    let (n, last) = drain_in_order(&outbox);
    assert!(n > 1000, "only {n} frames");
    // Trades that did not fit are lost (a visible chan_seq gap); the last quote is not.
    assert_eq!(last, 19_999, "the last quote was delivered");
}

#[test]
fn a_writer_dispatches_what_is_queued_without_the_router_task() {
    let (ins, hub, router, outbox) = setup(4096);
    publish(&ins, &hub, 10);
    assert_eq!(
        outbox.borrow().queued_entries(),
        0,
        "nothing dispatched yet"
    );

    // While the router is in use up the stack, a writer leaves the queue alone.
    {
        let _busy = router.borrow_mut();
        Router::dispatch_ready_for_writer(&router);
    }
    assert_eq!(hub.queued(0), 10);

    Router::dispatch_ready_for_writer(&router);
    assert_eq!(hub.queued(0), 0, "the queue was drained");
    let (n, last) = drain_in_order(&outbox);
    // Five trades, and the five quotes conflated to the newest.
    assert_eq!((n, last), (6, 10));
}

#[test]
fn a_writer_resynchronizes_after_an_overflow_once_the_queue_is_drained() {
    let (ins, hub, router, outbox) = setup(4096);
    publish(&ins, &hub, 20_000);
    while hub.queued(0) > 0 {
        Router::dispatch_ready_for_writer(&router);
    }
    Router::dispatch_ready_for_writer(&router);
    assert_eq!(router.borrow().stats().resyncs, 1);
    let (n, last) = drain_in_order(&outbox);
    assert!(n > 1000, "only {n} frames");
    assert_eq!(last, 19_999, "the last quote was delivered");
}
