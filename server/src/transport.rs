//! A WebSocket connection after the handshake: one task per connection that owns the socket,
//! writes what the session's outbox holds and reads what the client sends.
//!
//! The connection is taken away from actix-http at the upgrade (see `crate::net`), so none of
//! actix-http's per-connection buffers (an 8 KiB read and an 8 KiB write buffer) stay with
//! it. What [`Connection`] keeps instead:
//!
//! * **Writes** go straight from the outbox's shared frames to the socket with one vectored
//!   write (`writev`) per wake-up: frames arrive already encoded (shared by every subscriber),
//!   so nothing is copied and nothing is allocated per client per tick. They are gathered in
//!   a per-worker scratch list; only frames the socket did not take stay with the connection,
//!   in [`Connection::unsent`], which is empty (unallocated) unless the client is behind. The
//!   outbox stays the one buffer where a slow client's data waits, and where it is conflated
//!   and bounded.
//! * **Reads** go into one buffer per worker thread; the decoder keeps only the bytes of a
//!   message not yet complete, so an idle connection holds no read buffer.
//! * Decoded messages reach the session actor through the session's *inbox*, a short queue
//!   in [`SessionShared`]: when it is full the connection stops reading until the actor has
//!   caught up, so a client that floods requests is held back by TCP, not buffered.
//!
//! The connection outlives the actor: when the actor stops, its close frame is still written,
//! then the write side is shut down and the connection waits for the client to close (the
//! worker's sweep cuts it after the close grace). It is generic over the stream, so the same
//! code serves plain TCP and TLS.
//!
//! The transport also counts what it hands to the socket (frames and bytes by channel, into
//! per-session `Cell`s that the worker's sweep moves to the global metrics) and samples the
//! internal latency of one market-data frame in `latency_sample_every`: the frame's
//! `recv_ts` is read back from its JSON header and compared with the wall clock at the
//! moment the frame is taken for the write. Frames are counted one by one, before batching;
//! compressed and MessagePack frames are counted as `encoded` (their channel is not sniffed)
//! and are not latency-sampled.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::io::{self, IoSlice};
use std::os::fd::RawFd;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::{Buf, Bytes};
use futures_util::Stream;
use smallvec::SmallVec;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use tickwire_engine::domain::Nanos;
use tickwire_engine::fanout::{OutboxStats, Router, SharedOutbox};

use crate::metrics::{recv_ts_of_frame, Metrics, OutClass, OUT_CLASSES};
use crate::worker::Worker;
use crate::ws::outbound::MAX_FRAMES_PER_WRITE;
use crate::ws::{Inbound, InboundDecoder, InboundError, Outbound};

/// Messages decoded but not yet handled by the actor, beyond which reading pauses.
const INBOX_CAPACITY: usize = 16;

/// Size of the per-worker read buffer.
const READ_BUFFER: usize = 16 << 10;

/// Reads per wake-up before the connection yields to the other connections of its worker.
const READS_PER_POLL: usize = 4;

/// Vectored writes per wake-up before the connection yields.
const WRITES_PER_POLL: usize = 8;

thread_local! {
    /// The worker's read buffer: every connection of the worker reads into it in turn.
    static READ_BUF: RefCell<Box<[u8]>> = RefCell::new(vec![0; READ_BUFFER].into_boxed_slice());
    /// The worker's list of frames being written.
    static GATHER: RefCell<Vec<Bytes>> = const { RefCell::new(Vec::new()) };
}

/// One decoded client message (or the error that ends the connection) for the actor.
pub type InboxItem = Result<Inbound, InboundError>;

/// State shared by a session actor, its connection and its worker's sweep.
pub struct SessionShared {
    pub id: u64,
    pub outbox: SharedOutbox,
    /// Last time the client sent anything.
    pub last_seen: Cell<Instant>,
    /// Last time the server sent a ping.
    pub last_ping: Cell<Instant>,
    /// Whether the connection's transport task still exists (the connection is open).
    pub body_alive: Cell<bool>,
    /// The socket pushed back: written frames wait in the connection.
    pub write_blocked: Cell<bool>,
    /// Listed for the sweep's next flagged pass (see `crate::worker`).
    pub flagged: Cell<bool>,
    /// Client messages waiting for the actor (see the module documentation).
    inbox: RefCell<VecDeque<InboxItem>>,
    /// The connection will deliver nothing more.
    inbox_ended: Cell<bool>,
    /// The actor, waiting for a message.
    actor_waker: Cell<Option<Waker>>,
    /// The connection, waiting for room in the inbox.
    reader_waker: Cell<Option<Waker>>,
    /// The actor has stopped: nothing will take from the inbox any more.
    actor_gone: Cell<bool>,
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
            write_blocked: Cell::new(false),
            flagged: Cell::new(false),
            inbox: RefCell::new(VecDeque::new()),
            inbox_ended: Cell::new(false),
            actor_waker: Cell::new(None),
            reader_waker: Cell::new(None),
            actor_gone: Cell::new(false),
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
            // Most sessions sent nothing of most classes since the last sweep: skip the
            // shared atomics (cache lines every worker writes) when there is nothing to add.
            let frames = self.out_frames[i].replace(0);
            if frames != 0 {
                m.frames_out[i].add(frames);
                m.bytes_out[i].add(self.out_bytes[i].replace(0));
            }
        }
        let now = self.outbox.borrow().stats();
        if now == self.reported.get() {
            return;
        }
        let before = self.reported.replace(now);
        m.conflated
            .add(now.conflated.saturating_sub(before.conflated));
        m.throttled
            .add(now.throttled.saturating_sub(before.throttled));
    }

    /// Counts a frame handed to the socket and samples its latency now and then.
    #[inline]
    pub(crate) fn count_out(&self, frame: &[u8]) {
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

    /// Cuts the TCP connection (both directions). The connection's transport then fails
    /// its next read or write and drops everything.
    pub fn cut(&self) {
        if !self.body_alive.get() {
            return;
        }
        if let Some(fd) = self.fd {
            // SAFETY: the fd belongs to this connection's TcpStream, which its `Connection`
            // owns; `body_alive` is cleared when the connection is dropped, and both live on
            // this thread, so the fd is still open here.
            let fd = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
            let _ = socket2::SockRef::from(&fd).shutdown(std::net::Shutdown::Both);
        }
    }
}

impl SessionShared {
    /// Hands a client message to the actor (the caller checks [`Self::inbox_full`] first).
    fn deliver(&self, item: InboxItem) {
        self.inbox.borrow_mut().push_back(item);
        if let Some(w) = self.actor_waker.take() {
            w.wake();
        }
    }

    fn inbox_full(&self) -> bool {
        self.inbox.borrow().len() >= INBOX_CAPACITY
    }

    /// Whether the actor still takes client messages.
    fn actor_listening(&self) -> bool {
        !self.actor_gone.get()
    }

    /// No more client messages will come.
    fn end_inbox(&self) {
        self.inbox_ended.set(true);
        if let Some(w) = self.actor_waker.take() {
            w.wake();
        }
    }
}

/// The session actor's side of the inbox: the stream of client messages.
pub struct InboxStream(pub Rc<SessionShared>);

impl Stream for InboxStream {
    type Item = InboxItem;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<InboxItem>> {
        let shared = &self.0;
        let mut inbox = shared.inbox.borrow_mut();
        match inbox.pop_front() {
            Some(item) => {
                if inbox.len() + 1 == INBOX_CAPACITY {
                    if let Some(w) = shared.reader_waker.take() {
                        w.wake();
                    }
                }
                if inbox.is_empty() && inbox.capacity() > INBOX_CAPACITY {
                    *inbox = VecDeque::new();
                }
                Poll::Ready(Some(item))
            }
            None if shared.inbox_ended.get() => Poll::Ready(None),
            None => {
                if inbox.capacity() > 0 {
                    // An idle session keeps no queue.
                    *inbox = VecDeque::new();
                }
                let w = shared.actor_waker.take();
                shared.actor_waker.set(match w {
                    Some(w) if w.will_wake(cx.waker()) => Some(w),
                    _ => Some(cx.waker().clone()),
                });
                Poll::Pending
            }
        }
    }
}

impl Drop for InboxStream {
    fn drop(&mut self) {
        // The connection now reads only to see the client's end, and decodes nothing.
        let shared = &self.0;
        shared.actor_gone.set(true);
        *shared.inbox.borrow_mut() = VecDeque::new();
        if let Some(w) = shared.reader_waker.take() {
            w.wake();
        }
    }
}

/// A stream a WebSocket connection can run on: plain TCP or TLS over TCP.
pub trait WsStream: AsyncRead + AsyncWrite + Unpin + 'static {
    /// The TCP socket underneath, for cutting a connection whose close does not complete.
    fn tcp_fd(&self) -> RawFd;
}

impl WsStream for tokio::net::TcpStream {
    fn tcp_fd(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self)
    }
}

impl WsStream for tokio_rustls::server::TlsStream<tokio::net::TcpStream> {
    fn tcp_fd(&self) -> RawFd {
        std::os::fd::AsRawFd::as_raw_fd(self.get_ref().0)
    }
}

/// One WebSocket connection after its handshake; see the module documentation. Resolves when
/// the connection is over.
pub struct Connection<T> {
    io: T,
    shared: Rc<SessionShared>,
    /// The worker: its router is asked to dispatch queued ticks before each write, and its
    /// sweep is told when the connection ran.
    worker: Rc<Worker>,
    decoder: InboundDecoder,
    outbound: Outbound,
    /// Bytes taken for the socket and not yet written: the handshake response at first, then
    /// only what the socket pushed back. Empty (and unallocated) while the client keeps up.
    unsent: Vec<Bytes>,
    /// Still reading (no end of stream or read error yet).
    reading: bool,
    /// Still decoding client messages (no protocol error yet).
    decoding: bool,
    /// The close frame is written and the write side is being shut down.
    closing: bool,
    /// The write side is shut down.
    shut_down: bool,
}

impl<T: WsStream> Connection<T> {
    /// A connection over `io` that first writes `first_bytes` (the 101 response, and any
    /// response the HTTP layer had not written yet) and decodes `already_read` (bytes the
    /// client sent right after its handshake).
    pub fn new(
        io: T,
        shared: Rc<SessionShared>,
        worker: Rc<Worker>,
        mut decoder: InboundDecoder,
        outbound: Outbound,
        first_bytes: Vec<Bytes>,
        already_read: &[u8],
    ) -> Self {
        decoder.feed(already_read);
        Connection {
            io,
            shared,
            worker,
            decoder,
            outbound,
            unsent: first_bytes,
            reading: true,
            decoding: true,
            closing: false,
            shut_down: false,
        }
    }

    /// Writes what is ready. `Err` when the connection is broken.
    fn poll_write_side(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        for _ in 0..WRITES_PER_POLL {
            if !self.unsent.is_empty() {
                // The socket pushed back last time: finish that first.
                if !write_frames(&mut self.io, cx, &mut self.unsent)? {
                    return Ok(());
                }
                continue;
            }
            if self.closing {
                return Ok(());
            }
            // Ticks queued behind this connection's turn go out with this write.
            Router::dispatch_ready_for_writer(&self.worker.router);
            let outcome = GATHER.with(|g| -> io::Result<Gathered> {
                let mut frames = g.borrow_mut();
                frames.clear();
                let more = self.outbound.take(&self.shared, cx, &mut frames);
                if frames.is_empty() {
                    return Ok(Gathered::Nothing);
                }
                let all_written = write_frames(&mut self.io, cx, &mut frames);
                // What the socket did not take waits with the connection.
                self.unsent.append(&mut frames);
                Ok(match all_written? {
                    false => Gathered::SocketFull,
                    true if more => Gathered::More,
                    true => Gathered::Nothing,
                })
            })?;
            match outcome {
                Gathered::More => {}
                Gathered::SocketFull => return Ok(()),
                Gathered::Nothing => {
                    // Everything taken is written; the close frame was the last, if taken.
                    if self.shared.outbox.borrow().finished() {
                        self.closing = true;
                    }
                    return Ok(());
                }
            }
        }
        // More is ready: come back after the worker's other connections had their turn.
        cx.waker().wake_by_ref();
        Ok(())
    }

    /// Reads and decodes what the client sent. `Err` when the connection is broken.
    fn poll_read_side(&mut self, cx: &mut Context<'_>) -> io::Result<()> {
        if self.decoding && !self.shared.actor_listening() {
            self.decoding = false;
            self.decoder = InboundDecoder::new(0, false);
        }
        self.decode_buffered();
        let mut reads = 0;
        while self.reading {
            if self.decoding && self.shared.inbox_full() {
                // The actor catches up first; it wakes us when there is room.
                self.shared.reader_waker.set(Some(cx.waker().clone()));
                return Ok(());
            }
            if reads == READS_PER_POLL {
                cx.waker().wake_by_ref();
                return Ok(());
            }
            reads += 1;
            let read = READ_BUF.with(|b| -> Poll<io::Result<usize>> {
                let mut b = b.borrow_mut();
                let mut rb = ReadBuf::new(&mut b[..]);
                match Pin::new(&mut self.io).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        if self.decoding {
                            self.decoder.feed(rb.filled());
                        }
                        Poll::Ready(Ok(n))
                    }
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending => Poll::Pending,
                }
            });
            match read {
                Poll::Ready(Ok(0)) => {
                    self.reading = false;
                    self.shared.end_inbox();
                }
                Poll::Ready(Ok(_)) => self.decode_buffered(),
                Poll::Ready(Err(e)) => {
                    self.reading = false;
                    if self.decoding && !self.closing {
                        self.shared.deliver(Err(InboundError::Io(e.to_string())));
                    }
                    self.shared.end_inbox();
                    return Err(e);
                }
                Poll::Pending => {
                    self.decoder.release_idle();
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Hands every complete message in the decoder to the actor, while there is room.
    fn decode_buffered(&mut self) {
        if !self.decoder.has_buffered() {
            return;
        }
        while self.decoding && !self.shared.inbox_full() {
            match self.decoder.decode() {
                Ok(Some(m)) => {
                    self.shared.deliver(Ok(m));
                }
                Ok(None) => return,
                Err(e) => {
                    // Nothing after a protocol error is decoded; the actor closes.
                    self.decoding = false;
                    self.decoder = InboundDecoder::new(0, false);
                    self.shared.deliver(Err(e));
                }
            }
        }
    }
}

/// What one gather-and-write step left.
enum Gathered {
    /// Nothing more is ready now (the outbox or a timer holds the waker).
    Nothing,
    /// More frames are ready.
    More,
    /// The socket is full (it holds the waker).
    SocketFull,
}

/// Writes `frames` with one vectored write and drops what was written. `Ok(true)` when all
/// of it was written, `Ok(false)` when the socket is full (the waker is registered).
fn write_frames<T: WsStream>(
    io: &mut T,
    cx: &mut Context<'_>,
    frames: &mut Vec<Bytes>,
) -> io::Result<bool> {
    while !frames.is_empty() {
        let io = Pin::new(&mut *io);
        let written = if frames.len() == 1 {
            // The common case of a client that keeps up: one frame per wake-up.
            io.poll_write(cx, &frames[0])
        } else {
            let slices: SmallVec<[IoSlice<'_>; MAX_FRAMES_PER_WRITE]> = frames
                .iter()
                .take(MAX_FRAMES_PER_WRITE)
                .map(|f| IoSlice::new(f))
                .collect();
            io.poll_write_vectored(cx, &slices)
        };
        let mut written = match written {
            Poll::Ready(Ok(0)) => return Err(io::ErrorKind::WriteZero.into()),
            Poll::Ready(Ok(w)) => w,
            Poll::Ready(Err(e)) => return Err(e),
            Poll::Pending => return Ok(false),
        };
        let mut done = 0;
        for f in frames.iter_mut() {
            if written >= f.len() {
                written -= f.len();
                done += 1;
            } else {
                f.advance(written);
                break;
            }
        }
        frames.drain(..done);
    }
    Ok(true)
}

impl<T: WsStream> Future for Connection<T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let Err(e) = this.poll_write_side(cx) {
            tracing::debug!(parent: &this.shared.span, error = %e, "write failed; dropping connection");
            return Poll::Ready(());
        }
        if let Poll::Ready(Err(e)) = Pin::new(&mut this.io).poll_flush(cx) {
            tracing::debug!(parent: &this.shared.span, error = %e, "flush failed; dropping connection");
            return Poll::Ready(());
        }
        if this.closing && !this.shut_down {
            match Pin::new(&mut this.io).poll_shutdown(cx) {
                Poll::Ready(_) => this.shut_down = true,
                Poll::Pending => {}
            }
        }
        if this.poll_read_side(cx).is_err() {
            return Poll::Ready(());
        }
        if this.unsent.is_empty() && this.unsent.capacity() > 0 {
            this.unsent = Vec::new();
        }
        this.shared.write_blocked.set(!this.unsent.is_empty());
        // What the connection did may have changed what the sweep looks at. (After the
        // writes: bookkeeping does not delay a tick.)
        this.worker.flag(&this.shared);
        if this.shut_down && !this.reading {
            return Poll::Ready(());
        }
        Poll::Pending
    }
}

impl<T> Drop for Connection<T> {
    fn drop(&mut self) {
        self.shared.body_alive.set(false);
        self.shared.end_inbox();
        // The sweep's next flagged pass takes the session out of the registry.
        self.worker.flag(&self.shared);
    }
}
