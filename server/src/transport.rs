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

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::{BodySize, MessageBody};
use bytes::Bytes;
use tokio::time::Sleep;

use tickwire_engine::batch;
use tickwire_engine::fanout::SharedOutbox;
use tickwire_engine::wire::Opcode;

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
}

impl SessionShared {
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
                Some(frame) => Poll::Ready(Some(Ok(frame))),
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
                Some(f) => f,
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
                Some(f)
                    if data_opcode(&f) == Some(opcode) && batch::is_deflated(&f) == compressed =>
                {
                    size += f.len();
                    group.push(f);
                }
                Some(f) => {
                    batching.carry = Some(f);
                    break;
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
