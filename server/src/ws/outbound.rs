//! Choosing what goes out next: frames taken from the session's outbox, throttled values
//! released when due, and (for the `.batch` subprotocols) several pending updates joined into
//! one frame.
//!
//! [`Outbound::take`] is called by the transport when the socket can take more; it fills a
//! list of frames that the transport then writes with one vectored write. Frames arrive
//! already encoded and shared by every subscriber, so they are passed on as they are (a
//! reference count, no copy); only a batch is built per session, because it is one message.
//! Each frame is counted (frames and bytes by channel, latency sample) as it is taken, right
//! before it is handed to the socket.

use std::future::Future;
use std::pin::Pin;
use std::task::Context;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::time::Sleep;

use tickwire_engine::batch;
use tickwire_engine::fanout::Outbox;
use tickwire_engine::wire::Opcode;

use crate::transport::SessionShared;

/// Largest batch, in payload bytes: keeps one write, and one client, from hogging the worker.
const MAX_BATCH_BYTES: usize = 64 << 10;
const MAX_BATCH_FRAMES: usize = 256;

/// What one call to [`Outbound::take`] may gather: bounds one vectored write.
pub const MAX_FRAMES_PER_WRITE: usize = 64;
pub const MAX_BYTES_PER_WRITE: usize = 256 << 10;

/// See the module documentation.
pub struct Outbound {
    throttle_timer: Option<Pin<Box<Sleep>>>,
    batching: Option<Batching>,
}

/// Batching state of a session that negotiated a `.batch` subprotocol.
struct Batching {
    /// How long the first pending update may wait for others (0: only what is pending).
    window: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// A frame taken from the outbox that could not join the previous batch.
    carry: Option<Bytes>,
}

/// The opcode of a data frame (text or binary), `None` for control frames.
fn data_opcode(frame: &[u8]) -> Option<u8> {
    let op = frame[0] & 0x0f;
    (op == Opcode::Text as u8 || op == Opcode::Binary as u8).then_some(op)
}

impl Outbound {
    /// `batch_window` when the client accepts batches.
    pub fn new(batch_window: Option<Duration>) -> Self {
        Outbound {
            throttle_timer: None,
            batching: batch_window.map(|window| Batching {
                window,
                timer: None,
                carry: None,
            }),
        }
    }

    /// Appends the frames ready to send to `out` (at most [`MAX_FRAMES_PER_WRITE`] frames,
    /// about [`MAX_BYTES_PER_WRITE`] bytes). When it adds nothing, the outbox and the timers
    /// hold `cx`'s waker. Returns `true` if more may be ready right away.
    pub fn take(
        &mut self,
        shared: &SessionShared,
        cx: &mut Context<'_>,
        out: &mut Vec<Bytes>,
    ) -> bool {
        let mut outbox = shared.outbox.borrow_mut();
        if outbox.has_deferred() {
            self.release_throttled(&mut outbox, cx);
        }
        let mut bytes = 0;
        while out.len() < MAX_FRAMES_PER_WRITE && bytes < MAX_BYTES_PER_WRITE {
            let next = match self.batching.as_mut() {
                None => outbox
                    .next_frame(cx.waker())
                    .inspect(|f| shared.count_out(f)),
                Some(b) => b.next(&mut outbox, shared, cx),
            };
            match next {
                Some(f) => {
                    bytes += f.len();
                    out.push(f);
                }
                None => return false,
            }
        }
        true
    }

    /// Moves throttled values that are due into the queue; a timer wakes us for the earliest.
    fn release_throttled(&mut self, outbox: &mut Outbox, cx: &mut Context<'_>) {
        loop {
            match outbox.release_due(Instant::now()) {
                None => {
                    self.throttle_timer = None;
                    return;
                }
                Some(due) => {
                    let due = tokio::time::Instant::from_std(due);
                    match &mut self.throttle_timer {
                        Some(t) if t.deadline() == due => {}
                        Some(t) => t.as_mut().reset(due),
                        None => self.throttle_timer = Some(Box::pin(tokio::time::sleep_until(due))),
                    }
                    let timer = self.throttle_timer.as_mut().expect("timer just set");
                    if timer.as_mut().poll(cx).is_pending() {
                        return;
                    }
                }
            }
        }
    }
}

impl Batching {
    /// The next frame: a batch of pending updates of one kind, or a single frame.
    fn next(
        &mut self,
        outbox: &mut Outbox,
        shared: &SessionShared,
        cx: &mut Context<'_>,
    ) -> Option<Bytes> {
        if !self.window.is_zero() && self.carry.is_none() && outbox.closing().is_none() {
            // Let the first pending update wait up to the window for others to join it.
            if self.timer.is_none() && outbox.has_pending() {
                self.timer = Some(Box::pin(tokio::time::sleep(self.window)));
            }
            if let Some(t) = self.timer.as_mut() {
                if t.as_mut().poll(cx).is_pending() {
                    return None;
                }
                self.timer = None;
            }
        }
        let first = match self.carry.take() {
            Some(f) => f,
            None => {
                let f = outbox.next_frame(cx.waker())?;
                shared.count_out(&f);
                f
            }
        };
        let Some(opcode) = data_opcode(&first) else {
            return Some(first);
        };
        let compressed = batch::is_deflated(&first);
        let mut size = first.len();
        let mut group = vec![first];
        while size < MAX_BATCH_BYTES && group.len() < MAX_BATCH_FRAMES {
            let Some(f) = outbox.next_frame(cx.waker()) else {
                break;
            };
            shared.count_out(&f);
            if data_opcode(&f) == Some(opcode) && batch::is_deflated(&f) == compressed {
                size += f.len();
                group.push(f);
            } else {
                self.carry = Some(f);
                break;
            }
        }
        if group.len() == 1 {
            return group.pop();
        }
        Some(if opcode == Opcode::Binary as u8 {
            batch::msgpack_array(&group)
        } else {
            batch::json_array(&group)
        })
    }
}
