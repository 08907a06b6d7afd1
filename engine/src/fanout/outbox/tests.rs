//! Unit tests of the outbox: conflation, ordering, throttling, bounds and memory.

use super::*;
use std::task::Waker;

fn limits() -> OutboxLimits {
    OutboxLimits {
        max_queued_bytes: 1000,
    }
}

fn drain(o: &mut Outbox) -> Vec<Bytes> {
    let w = Waker::noop();
    std::iter::from_fn(|| o.next_frame(w)).collect()
}

#[test]
fn conflates_slots_but_keeps_events_in_order() {
    let mut o = Outbox::new(limits());
    let q = o.alloc_slot(None);
    o.offer(q, 1, &Bytes::from_static(b"q1"), None);
    o.push_event(Bytes::from_static(b"t1"));
    assert_eq!(
        o.offer(q, 2, &Bytes::from_static(b"q2"), None),
        Offer::Replaced
    );
    o.push_event(Bytes::from_static(b"t2"));
    // The newer quote moved behind the trade that was published before it.
    assert_eq!(drain(&mut o), vec!["t1", "q2", "t2"]);
    assert_eq!(o.stats().conflated, 1);
    assert_eq!(o.queued_bytes(), 0);
}

/// Counts wake-ups.
struct CountWake(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountWake {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    }
}

#[test]
fn piggybacked_frames_wait_for_the_next_write_or_an_explicit_wake() {
    let count = std::sync::Arc::new(CountWake(Default::default()));
    let waker = Waker::from(count.clone());
    let wakes = || count.0.load(std::sync::atomic::Ordering::Relaxed);
    let mut o = Outbox::new(limits());
    assert_eq!(o.next_frame(&waker), None, "registers the waker");
    o.piggyback(Bytes::from_static(b"ping"));
    assert_eq!(wakes(), 0, "a piggybacked frame does not wake");
    o.push_event(Bytes::from_static(b"t1"));
    assert_eq!(wakes(), 1);
    assert_eq!(
        drain(&mut o),
        vec!["ping", "t1"],
        "it leaves with the next write"
    );

    assert_eq!(o.next_frame(&waker), None);
    o.piggyback(Bytes::from_static(b"ping"));
    assert_eq!(wakes(), 1);
    o.wake_if_pending();
    assert_eq!(
        wakes(),
        2,
        "the owner's nudge sends it without other output"
    );
    assert_eq!(drain(&mut o), vec!["ping"]);
    assert_eq!(o.next_frame(&waker), None);
    o.wake_if_pending();
    assert_eq!(wakes(), 2, "nothing pending: no wake");
}

#[test]
fn ignores_older_values() {
    let mut o = Outbox::new(limits());
    let q = o.alloc_slot(None);
    o.offer(q, 5, &Bytes::from_static(b"q5"), None);
    assert_eq!(
        o.offer(q, 4, &Bytes::from_static(b"q4"), None),
        Offer::Stale
    );
    assert_eq!(drain(&mut o), vec!["q5"]);
    assert_eq!(
        o.offer(q, 5, &Bytes::from_static(b"q5"), None),
        Offer::Stale
    );
}

#[test]
fn throttle_defers_and_keeps_latest() {
    let mut o = Outbox::new(limits());
    let q = o.alloc_slot(Some(Duration::from_millis(100)));
    let t0 = Instant::now();
    o.offer(q, 1, &Bytes::from_static(b"a"), Some(t0));
    assert_eq!(drain(&mut o), vec!["a"]);
    o.offer(
        q,
        2,
        &Bytes::from_static(b"b"),
        Some(t0 + Duration::from_millis(10)),
    );
    o.offer(
        q,
        3,
        &Bytes::from_static(b"c"),
        Some(t0 + Duration::from_millis(20)),
    );
    assert!(drain(&mut o).is_empty(), "held back by the throttle");
    assert_eq!(
        o.release_due(t0 + Duration::from_millis(50)),
        Some(t0 + Duration::from_millis(100))
    );
    assert_eq!(o.release_due(t0 + Duration::from_millis(100)), None);
    assert_eq!(drain(&mut o), vec!["c"]);
    assert_eq!(o.stats().throttled, 1);
}

#[test]
fn overflow_closes_as_slow_consumer() {
    let mut o = Outbox::new(limits());
    for _ in 0..9 {
        assert_eq!(o.push_event(Bytes::from(vec![0u8; 100])), Offer::Queued);
    }
    assert_eq!(o.push_event(Bytes::from(vec![0u8; 200])), Offer::Overflow);
    assert_eq!(o.closing(), Some(&CloseReason::SLOW_CONSUMER));
    assert_eq!(o.queued_bytes(), 0);
    let out = drain(&mut o);
    assert_eq!(out.len(), 1, "only the close frame remains");
    assert_eq!(&out[0][..4], &[0x88, 15, 0x03, 0xF0]);
    assert!(o.finished());
}

#[test]
fn lag_grows_only_while_not_draining() {
    let mut o = Outbox::new(limits());
    let t0 = Instant::now();
    assert_eq!(o.sweep_lag(t0), Duration::ZERO);
    o.push_event(Bytes::from_static(b"x"));
    assert_eq!(o.sweep_lag(t0), Duration::ZERO);
    assert_eq!(
        o.sweep_lag(t0 + Duration::from_secs(1)),
        Duration::from_secs(1)
    );
    assert_eq!(
        o.sweep_lag(t0 + Duration::from_secs(3)),
        Duration::from_secs(3)
    );
    drain(&mut o);
    assert_eq!(o.sweep_lag(t0 + Duration::from_secs(4)), Duration::ZERO);
}

#[test]
fn conflation_keeps_the_queue_bounded() {
    let mut o = Outbox::new(OutboxLimits {
        max_queued_bytes: 1 << 20,
    });
    let slots: Vec<_> = (0..10).map(|_| o.alloc_slot(None)).collect();
    for seq in 1..100_000u64 {
        let id = slots[(seq % 10) as usize];
        o.offer(id, seq, &Bytes::from_static(b"q"), None);
    }
    assert!(o.queued_entries() <= 2 * 10 + 64, "{}", o.queued_entries());
    let out = drain(&mut o);
    assert_eq!(out.len(), 10);
}

#[test]
fn queue_memory_outlives_a_drain_until_released_when_idle() {
    let mut o = Outbox::new(OutboxLimits {
        max_queued_bytes: 1 << 20,
    });
    let burst = |o: &mut Outbox| {
        for _ in 0..200 {
            o.push_event(Bytes::from_static(b"t"));
        }
    };
    burst(&mut o);
    assert_eq!(drain(&mut o).len(), 200);
    // Kept across the drain: the next burst reuses it.
    assert!(o.entries.capacity() >= 200 && o.frames.capacity() >= 200);
    burst(&mut o);
    o.release_idle_memory();
    assert!(
        o.entries.capacity() >= 200,
        "not released while frames wait"
    );
    drain(&mut o);
    o.release_idle_memory();
    assert!(o.entries.capacity() <= IDLE_QUEUE_CAPACITY);
    assert!(o.frames.capacity() <= IDLE_QUEUE_CAPACITY);
}

#[test]
fn freed_slots_drop_pending_values() {
    let mut o = Outbox::new(limits());
    let q = o.alloc_slot(None);
    o.offer(q, 1, &Bytes::from_static(b"q1"), None);
    o.free_slot(q);
    assert_eq!(o.queued_bytes(), 0);
    assert!(drain(&mut o).is_empty());
    let r = o.alloc_slot(None);
    assert_eq!(r, q, "slots are reused");
    o.offer(r, 1, &Bytes::from_static(b"r1"), None);
    assert_eq!(drain(&mut o), vec!["r1"]);
}
