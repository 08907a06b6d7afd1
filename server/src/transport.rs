//! The outbound half of a WebSocket connection: a response body that pulls frames from the
//! session's outbox.
//!
//! actix-ws would hand frames to the HTTP layer through a channel, copying each message into
//! a per-connection encoder (see `crate::ws` for why we own the frame layer). [`WsBody`] is
//! the 101 response's body instead: actix-http polls it only when it can write,
//! so the session's [`Outbox`](tickwire_engine::fanout::Outbox) is the one buffer where a
//! slow client's data waits, and where it is conflated and bounded. Frames arrive already
//! encoded (shared by every subscriber), so the body returns them as they are: no copy and
//! no allocation per client per tick.
//!
//! The body also counts what it hands to the socket (frames and bytes by channel, into
//! per-session `Cell`s that the worker's sweep moves to the global metrics) and samples the
//! internal latency of one market-data frame in `latency_sample_every`: the frame's
//! `recv_ts` is read back from its JSON header and compared with the wall clock at the
//! moment the frame is handed to actix-http for writing. Frames are counted one by one,
//! before batching; compressed and MessagePack frames are counted as `encoded` (their
//! channel is not sniffed) and are not latency-sampled.

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;
use tokio::time::Sleep;

use tickwire_engine::batch;
use tickwire_engine::domain::Nanos;
use tickwire_engine::fanout::{OutboxStats, SharedOutbox};
use tickwire_engine::wire::Opcode;

use crate::metrics::{recv_ts_of_frame, Metrics, OutClass, OUT_CLASSES};

/// State shared by a session actor, its transport body and its worker's sweep.
pub struct SessionShared {
    pub id: u64,
    pub outbox: SharedOutbox,
    /// Last time the client sent anything.
    pub last_seen: Cell<Instant>,
    /// Last time the server sent a ping.
    pub last_ping: Cell<Instant>,
    /// Whether the transport body still exists (the connection is open).
    pub body_alive: Cell<bool>,
    /// The connection's socket, for cutting it when a closed client does not go away.
    pub fd: Option<RawFd>,
    /// When a closing session's connection will be cut.
    pub close_deadline: Cell<Option<Instant>>,
    /// The session's tracing span (session id, peer, user); every session event is logged
    /// in it.
    pub span: tracing::Span,
    pub metrics: Arc<Metrics>,
    /// Frames and bytes handed to the socket since the last sweep, by [`OutClass`].
    pub out_frames: [Cell<u64>; OUT_CLASSES],
    pub out_bytes: [Cell<u64>; OUT_CLASSES],
    /// Market-data frames until the next latency sample.
    pub sample_countdown: Cell<u32>,
    /// The outbox counters already added to the global metrics.
    pub reported: Cell<OutboxStats>,
}

impl SessionShared {
    /// State for a new session.
    pub fn new(
        id: u64,
        outbox: SharedOutbox,
        fd: Option<RawFd>,
        span: tracing::Span,
        metrics: Arc<Metrics>,
    ) -> Self {
        let now = Instant::now();
        SessionShared {
            id,
            outbox,
            last_seen: Cell::new(now),
            last_ping: Cell::new(now),
            body_alive: Cell::new(true),
            fd,
            close_deadline: Cell::new(None),
            span,
            sample_countdown: Cell::new(1),
            metrics,
            out_frames: Default::default(),
            out_bytes: Default::default(),
            reported: Cell::new(OutboxStats::default()),
        }
    }

    /// Moves this session's counts since the last call into the global metrics. Called by
    /// the sweep and once more when the session leaves the registry.
    pub fn flush_counters(&self) {
        let m = &self.metrics;
        for i in 0..OUT_CLASSES {
            m.frames_out[i].add(self.out_frames[i].replace(0));
            m.bytes_out[i].add(self.out_bytes[i].replace(0));
        }
        let now = self.outbox.borrow().stats();
        let before = self.reported.replace(now);
        m.conflated
            .add(now.conflated.saturating_sub(before.conflated));
        m.throttled
            .add(now.throttled.saturating_sub(before.throttled));
    }

    /// Counts a frame handed to the socket and samples its latency now and then.
    #[inline]
    fn count_out(&self, frame: &[u8]) {
        let class = OutClass::of_frame(frame);
        let i = class as usize;
        self.out_frames[i].set(self.out_frames[i].get() + 1);
        self.out_bytes[i].set(self.out_bytes[i].get() + frame.len() as u64);
        if class.is_market_data() {
            let n = self.sample_countdown.get();
            if n <= 1 {
                self.sample_countdown.set(self.metrics.latency_sample_every);
                if let Some(recv_ts) = recv_ts_of_frame(frame) {
                    let ns = Nanos::now().0.saturating_sub(recv_ts).max(0);
                    self.metrics.latency.observe_ns(ns as u64);
                }
            } else {
                self.sample_countdown.set(n - 1);
            }
        }
    }

    /// Cuts the TCP connection (both directions). The connection's dispatcher then fails
    /// its next read or write and drops everything.
    pub fn cut(&self) {
        if !self.body_alive.get() {
            return;
        }
        if let Some(fd) = self.fd {
            // SAFETY: the fd belongs to this connection's TcpStream, which the HTTP
            // dispatcher owns together with our body; `body_alive` is cleared when the body
            // is dropped, and both live on this thread, so the fd is still open here.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Both);
        }
    }
}

/// See the module documentation.
pub struct WsBody {
    shared: Rc<SessionShared>,
    throttle_timer: Option<Pin<Box<Sleep>>>,
    batching: Option<Batching>,
}

/// Batching state of a session that negotiated `tickwire.json.batch`.
struct Batching {
    /// How long the first pending update may wait for others (0: only what is pending).
    window: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    /// A frame taken from the outbox that could not join the previous batch.
    carry: Option<Bytes>,
}

/// Largest batch, in payload bytes: keeps one write, and one client, from hogging the worker.
const MAX_BATCH_BYTES: usize = 64 << 10;
const MAX_BATCH_FRAMES: usize = 256;

impl WsBody {
    /// A body draining `shared`'s outbox; `batch_window` when the client accepts batches.
    pub fn new(shared: Rc<SessionShared>, batch_window: Option<Duration>) -> Self {
        WsBody {
            shared,
            throttle_timer: None,
            batching: batch_window.map(|window| Batching {
                window,
                timer: None,
                carry: None,
            }),
        }
    }
}

/// The opcode of a data frame (text or binary), `None` for control frames.
fn data_opcode(frame: &[u8]) -> Option<u8> {
    let op = frame[0] & 0x0f;
    (op == Opcode::Text as u8 || op == Opcode::Binary as u8).then_some(op)
}

impl Drop for WsBody {
    fn drop(&mut self) {
        self.shared.body_alive.set(false);
    }
}

impl MessageBody for WsBody {
    type Error = Infallible;

    fn size(&self) -> BodySize {
        BodySize::Stream
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        let this = self.get_mut();
        let mut outbox = this.shared.outbox.borrow_mut();
        if outbox.has_deferred() {
            // Throttled values wait for their interval; a timer wakes us for the earliest.
            loop {
                match outbox.release_due(Instant::now()) {
                    None => {
                        this.throttle_timer = None;
                        break;
                    }
                    Some(due) => {
                        let due = tokio::time::Instant::from_std(due);
                        match &mut this.throttle_timer {
                            Some(t) if t.deadline() == due => {}
                            Some(t) => t.as_mut().reset(due),
                            None => {
                                this.throttle_timer = Some(Box::pin(tokio::time::sleep_until(due)))
                            }
                        }
                        let timer = this.throttle_timer.as_mut().expect("timer just set");
                        if timer.as_mut().poll(cx).is_pending() {
                            break;
                        }
                    }
                }
            }
        }
        let Some(batching) = this.batching.as_mut() else {
            return match outbox.next_frame(cx.waker()) {
                Some(frame) => {
                    this.shared.count_out(&frame);
                    Poll::Ready(Some(Ok(frame)))
                }
                None if outbox.finished() => Poll::Ready(None),
                None => Poll::Pending,
            };
        };
        if !batching.window.is_zero() && batching.carry.is_none() && outbox.closing().is_none() {
            // Let the first pending update wait up to the window for others to join it.
            if batching.timer.is_none() && outbox.has_pending() {
                batching.timer = Some(Box::pin(tokio::time::sleep(batching.window)));
            }
            if let Some(t) = batching.timer.as_mut() {
                if t.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                batching.timer = None;
            }
        }
        let first = match batching.carry.take() {
            Some(f) => f,
            None => match outbox.next_frame(cx.waker()) {
                Some(f) => {
                    this.shared.count_out(&f);
                    f
                }
                None if outbox.finished() => return Poll::Ready(None),
                None => return Poll::Pending,
            },
        };
        let Some(opcode) = data_opcode(&first) else {
            return Poll::Ready(Some(Ok(first)));
        };
        let compressed = batch::is_deflated(&first);
        let mut size = first.len();
        let mut group = vec![first];
        while size < MAX_BATCH_BYTES && group.len() < MAX_BATCH_FRAMES {
            match outbox.next_frame(cx.waker()) {
                Some(f) => {
                    this.shared.count_out(&f);
                    if data_opcode(&f) == Some(opcode) && batch::is_deflated(&f) == compressed {
                        size += f.len();
                        group.push(f);
                    } else {
                        batching.carry = Some(f);
                        break;
                    }
                }
                None => break,
            }
        }
        if group.len() == 1 {
            return Poll::Ready(group.pop().map(Ok));
        }
        Poll::Ready(Some(Ok(if opcode == Opcode::Binary as u8 {
            batch::msgpack_array(&group)
        } else {
            batch::json_array(&group)
        })))
    }
}
