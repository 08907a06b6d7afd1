//! A sleep with sub-millisecond precision for replay pacing.
//!
//! tokio's timer wheel has a resolution of one millisecond, and a sleep ends at the next
//! tick after its deadline: up to a millisecond late, plus the wake-up. That alone would use
//! half of the 2 ms a replayed event may be late. Spinning instead would burn a core on a
//! machine that also runs the server. So one process-wide thread keeps the deadlines of
//! every waiting replay in a heap and sleeps on a condition variable until the earliest one
//! (a futex wait, precise to the kernel's timer slack, typically ~50 µs), then wakes the
//! tasks that are due. A deadline less than [`EARLY`] away counts as reached.

use std::collections::BinaryHeap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// A deadline closer than this is treated as reached (not worth a round trip).
pub const EARLY: Duration = Duration::from_micros(20);

struct Slot {
    fired: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

struct Entry {
    deadline: Instant,
    slot: Arc<Slot>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.deadline == other.deadline
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Earliest first in a max-heap.
        other.deadline.cmp(&self.deadline)
    }
}

struct Service {
    heap: Mutex<BinaryHeap<Entry>>,
    cv: Condvar,
}

fn service() -> &'static Service {
    static S: OnceLock<&'static Service> = OnceLock::new();
    S.get_or_init(|| {
        let s: &'static Service = Box::leak(Box::new(Service {
            heap: Mutex::new(BinaryHeap::new()),
            cv: Condvar::new(),
        }));
        std::thread::Builder::new()
            .name("tickwire-replay-timer".into())
            .spawn(move || run(s))
            .expect("spawn the replay timer thread");
        s
    })
}

fn run(s: &'static Service) {
    let mut heap = s.heap.lock().unwrap_or_else(|e| e.into_inner());
    let mut due = Vec::new();
    loop {
        let now = Instant::now();
        while heap.peek().is_some_and(|e| e.deadline <= now + EARLY) {
            due.extend(heap.pop());
        }
        if !due.is_empty() {
            drop(heap);
            for e in due.drain(..) {
                e.slot.fired.store(true, Ordering::Release);
                if let Some(w) = e
                    .slot
                    .waker
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                {
                    w.wake();
                }
            }
            heap = s.heap.lock().unwrap_or_else(|e| e.into_inner());
            continue;
        }
        heap = match heap.peek().map(|e| e.deadline) {
            None => s.cv.wait(heap).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let wait = d.saturating_duration_since(now);
                s.cv.wait_timeout(heap, wait)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    }
}

/// A future that is ready at `deadline` (see the module documentation).
pub struct Sleep {
    deadline: Instant,
    slot: Option<Arc<Slot>>,
}

/// Sleeps until `deadline` with sub-millisecond precision.
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        slot: None,
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() + EARLY >= self.deadline {
            return Poll::Ready(());
        }
        match &self.slot {
            Some(slot) => {
                let mut w = slot.waker.lock().unwrap_or_else(|e| e.into_inner());
                if slot.fired.load(Ordering::Acquire) {
                    return Poll::Ready(());
                }
                match &*w {
                    Some(old) if old.will_wake(cx.waker()) => {}
                    _ => *w = Some(cx.waker().clone()),
                }
                Poll::Pending
            }
            None => {
                let slot = Arc::new(Slot {
                    fired: AtomicBool::new(false),
                    waker: Mutex::new(Some(cx.waker().clone())),
                });
                self.slot = Some(slot.clone());
                let s = service();
                let mut heap = s.heap.lock().unwrap_or_else(|e| e.into_inner());
                let earliest = heap.peek().is_none_or(|e| self.deadline < e.deadline);
                heap.push(Entry {
                    deadline: self.deadline,
                    slot,
                });
                drop(heap);
                if earliest {
                    s.cv.notify_one();
                }
                Poll::Pending
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wakes_close_to_the_deadline() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut worst = Duration::ZERO;
            for i in 0..20u64 {
                let d = Instant::now() + Duration::from_micros(300 + i * 137);
                sleep_until(d).await;
                let late = Instant::now().saturating_duration_since(d);
                assert!(Instant::now() + EARLY >= d, "woke early");
                worst = worst.max(late);
            }
            // Generous on a shared machine; typical is well under 200 µs.
            assert!(worst < Duration::from_millis(20), "{worst:?}");
        });
    }
}
