//! One load-generator client: the TCP connect (bound to a chosen loopback source address so more
//! than ~28k connections fit), the WebSocket handshake, the subscribe requests, and then either
//! the healthy read loop (timestamp, parse, account every frame) or the stalled behaviour
//! (never read; watch the TCP state to see when the server gives up; drain at the end to read
//! the close code).
//!
//! The read loop is built for cost: everything a read returns is handled in one go with one
//! receive timestamp (the frames arrived together), through the lean connection in [`ws`]
//! (no allocation or copy per message), and folded into the worker's statistics under one
//! lock per read, not per message.
//!
//! [`ws`]: super::ws

use super::procstat::{tcp_state, TCP_ESTABLISHED};
use super::protocol::{subscribe_request, Kind, Parser};
use super::stats::{ConnStats, FrameDelta, SeqTracker, WorkerStats};
use super::ws::{Event, WsConn, WsError};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

/// Errors connecting a client.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("tcp: {0}")]
    Tcp(#[from] std::io::Error),
    #[error("websocket: {0}")]
    Ws(#[from] WsError),
}

/// State shared by every client of a run.
pub struct Shared {
    pub url: String,
    /// `Host` header and request path of the URL.
    pub host: String,
    pub path: String,
    /// Subprotocols offered, first preferred (none: the server's default).
    pub subprotocols: Vec<String>,
    pub target: SocketAddr,
    pub channels: Vec<String>,
    pub depth: u32,
    pub throttle_ms: u32,
    pub subscribe_batch: usize,
    pub stalled_rcvbuf: u32,
    /// See [`Scenario::stall_read_after_s`](super::config::Scenario::stall_read_after_s).
    pub stall_read_after: Option<Duration>,
    /// Messages count towards the measurement window only while this is set.
    pub measuring: AtomicBool,
    /// Connections currently open (healthy and stalled).
    pub open: AtomicI64,
    pub t0: Instant,
}

/// What a worker needs to run a client.
#[derive(Clone)]
pub struct ClientCtx {
    pub shared: Arc<Shared>,
    pub stats: Arc<Mutex<WorkerStats>>,
    pub stop: watch::Receiver<bool>,
}

/// Longest a TCP connect plus WebSocket handshake may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Nanoseconds since the Unix epoch, the clock `recv_ts` is on.
pub fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Opens a TCP connection from `src` (if given) and performs the WebSocket handshake.
pub async fn connect(
    shared: &Shared,
    src: Option<IpAddr>,
    rcvbuf: Option<u32>,
) -> Result<WsConn, ConnectError> {
    let target = shared.target;
    let sock = match target {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(n) = rcvbuf {
        sock.set_recv_buffer_size(n)?;
    }
    if let Some(ip) = src {
        sock.bind(SocketAddr::new(ip, 0))?;
    }
    let stream: TcpStream = sock.connect(target).await?;
    stream.set_nodelay(true)?;
    let (ws, _protocol) =
        WsConn::handshake(stream, &shared.host, &shared.path, &shared.subprotocols).await?;
    Ok(ws)
}

fn subscribe_messages(shared: &Shared, symbols: &[String]) -> Vec<String> {
    symbols
        .chunks(shared.subscribe_batch.max(1))
        .enumerate()
        .map(|(i, chunk)| {
            subscribe_request(
                i as u64 + 1,
                chunk,
                &shared.channels,
                shared.depth,
                shared.throttle_ms,
            )
        })
        .collect()
}

fn with_stats<R>(ctx: &ClientCtx, f: impl FnOnce(&mut WorkerStats) -> R) -> R {
    let mut g = ctx.stats.lock().unwrap_or_else(|p| p.into_inner());
    f(&mut g)
}

fn conns(s: &mut WorkerStats, stalled: bool) -> &mut ConnStats {
    if stalled {
        &mut s.stalled
    } else {
        &mut s.conns
    }
}

/// Records a server close frame.
fn record_close(c: &mut ConnStats, frame: Option<(u16, String)>) {
    match frame {
        Some((code, reason)) => {
            let code = code.to_string();
            *c.close_codes.entry(code.clone()).or_default() += 1;
            *c.close_reasons.entry(reason).or_default() += 1;
            c.disconnect(format!("close {code}"));
        }
        None => {
            *c.close_codes.entry("none".into()).or_default() += 1;
            c.disconnect("close (no code)");
        }
    }
}

/// Runs one client until the run stops or the server closes it.
pub async fn run_client(
    mut ctx: ClientCtx,
    symbols: Vec<String>,
    src: Option<IpAddr>,
    stalled: bool,
) {
    let sh = ctx.shared.clone();
    with_stats(&ctx, |s| conns(s, stalled).attempted += 1);
    let rcvbuf = (stalled && sh.stalled_rcvbuf > 0).then_some(sh.stalled_rcvbuf);
    // A server whose accept backlog is full leaves connects hanging for minutes (SYN
    // retries): bound the connect + handshake, and give up when the run stops.
    let attempt = tokio::time::timeout(CONNECT_TIMEOUT, connect(&sh, src, rcvbuf));
    let mut stop = ctx.stop.clone();
    let res = tokio::select! {
        r = attempt => r.map_err(|_| "timeout".to_string()).and_then(|r| r.map_err(|e| e.to_string())),
        _ = stop.wait_for(|s| *s) => Err("run ended first".to_string()),
    };
    let mut ws = match res {
        Ok(ws) => ws,
        Err(e) => {
            let key = format!("connect: {e}");
            with_stats(&ctx, |s| {
                let c = conns(s, stalled);
                c.connect_failed += 1;
                c.disconnect(key);
            });
            return;
        }
    };
    sh.open.fetch_add(1, Ordering::Relaxed);
    with_stats(&ctx, |s| conns(s, stalled).connected += 1);
    let reqs = subscribe_messages(&sh, &symbols);
    let n_reqs = reqs.len() as u64;
    for r in reqs {
        let sent = tokio::time::timeout(CONNECT_TIMEOUT, ws.send_text(&r)).await;
        if let Some(e) = match sent {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(e.to_string()),
            Err(_) => Some("timeout".to_string()),
        } {
            with_stats(&ctx, |s| conns(s, stalled).disconnect(format!("send: {e}")));
            sh.open.fetch_sub(1, Ordering::Relaxed);
            return;
        }
    }
    if stalled {
        run_stalled(&mut ctx, ws).await;
    } else {
        run_healthy(&mut ctx, ws, n_reqs).await;
    }
    sh.open.fetch_sub(1, Ordering::Relaxed);
}

async fn run_healthy(ctx: &mut ClientCtx, mut ws: WsConn, n_reqs: u64) {
    let mut parser = Parser::default();
    let mut tracker = SeqTracker::default();
    let mut delta = FrameDelta::default();
    let mut acks = 0u64;
    let mut errors: Vec<String> = Vec::new();
    if *ctx.stop.borrow() {
        return;
    }
    loop {
        let ready = tokio::select! {
            biased;
            r = ws.readable() => r,
            _ = ctx.stop.changed() => {
                let _ = tokio::time::timeout(Duration::from_secs(1), ws.close(1000)).await;
                return;
            }
        };
        if let Err(e) = ready {
            with_stats(ctx, |s| s.conns.disconnect(format!("error: {e}")));
            return;
        }
        // One receive time for everything this read returns: it arrived together.
        let now = now_ns();
        delta.clear();
        let acks_before = acks;
        let mut close = None;
        let mut saw_close = false;
        let res = ws
            .read_available(|ev| match ev {
                Event::Text(t) => {
                    delta.c.frames += 1;
                    delta.c.bytes += t.len() as u64;
                    let res = parser.parse(t, |m| {
                        match m.kind() {
                            Kind::Subscribed => acks += 1,
                            Kind::Error if errors.len() < 3 => errors.push(format!(
                                "id={:?} code={} message={}",
                                m.id,
                                m.code.as_deref().unwrap_or("?"),
                                m.message.as_deref().unwrap_or("")
                            )),
                            _ => {}
                        }
                        tracker.observe(&m, now, &mut delta);
                    });
                    if res.is_err() {
                        delta.c.parse_errors += 1;
                    }
                }
                Event::Binary(b) => {
                    delta.c.frames += 1;
                    delta.c.bytes += b.len() as u64;
                    delta.c.other_msgs += 1;
                }
                Event::Close(f) => {
                    saw_close = true;
                    close = Some(f);
                }
            })
            .await;
        delta.c.handling_ns = (now_ns() - now).max(0) as u64;
        let measuring = ctx.shared.measuring.load(Ordering::Relaxed);
        let newly_subscribed = acks_before < n_reqs && acks >= n_reqs;
        with_stats(ctx, |s| {
            s.apply(&delta, measuring);
            if newly_subscribed {
                s.conns.fully_subscribed += 1;
            }
            for e in errors.drain(..) {
                if s.conns.server_errors.len() < 10 {
                    s.conns.server_errors.push(e);
                }
            }
            if let Some(f) = close.take() {
                record_close(&mut s.conns, f);
            }
        });
        match res {
            Ok(true) => {}
            Ok(false) => {
                if !saw_close {
                    with_stats(ctx, |s| s.conns.disconnect("eof"));
                }
                return;
            }
            Err(e) => {
                with_stats(ctx, |s| s.conns.disconnect(format!("error: {e}")));
                return;
            }
        }
    }
}

async fn run_stalled(ctx: &mut ClientCtx, mut ws: WsConn) {
    let fd = ws.stream().as_raw_fd();
    let subscribed_at = tokio::time::Instant::now();
    let resume_at = ctx.shared.stall_read_after.map(|d| subscribed_at + d);
    let mut closed_seen = false;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let mark_closed = |ctx: &ClientCtx| {
        let t = ctx.shared.t0.elapsed().as_secs_f64();
        with_stats(ctx, |s| {
            s.stalled.stalled_closed_by_server += 1;
            s.stalled.stalled_close_times_s.push(t);
        });
    };
    // Never read while stalled; only watch whether the server dropped us (a FIN or an
    // acceptable RST changes the TCP state; behind a zero window it may not).
    while !*ctx.stop.borrow() && resume_at.is_none_or(|r| tokio::time::Instant::now() < r) {
        tokio::select! {
            _ = tick.tick() => {}
            _ = ctx.stop.changed() => break,
        }
        if !closed_seen && !matches!(tcp_state(fd), Ok(TCP_ESTABLISHED)) {
            closed_seen = true;
            mark_closed(ctx);
        }
    }
    // Read what the kernel buffered to find the close frame, if the server sent one: until the
    // run stops (when resuming early) and then for at most 3 s more.
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        if deadline.is_none() && *ctx.stop.borrow() {
            deadline = Some(tokio::time::Instant::now() + Duration::from_secs(3));
        }
        let ready = match deadline {
            Some(d) => tokio::time::timeout_at(d, ws.readable()).await.ok(),
            None => tokio::select! {
                r = ws.readable() => Some(r),
                _ = ctx.stop.changed() => None,
            },
        };
        let ended = match ready {
            None if deadline.is_some() => {
                with_stats(ctx, |s| s.stalled.disconnect("still open at end"));
                return;
            }
            None => continue, // the run stopped: set the deadline and go on draining
            Some(Err(e)) => {
                with_stats(ctx, |s| s.stalled.disconnect(format!("error: {e}")));
                true
            }
            Some(Ok(())) => {
                let mut close = None;
                match ws
                    .read_available(|ev| {
                        if let Event::Close(f) = ev {
                            close = Some(f);
                        }
                    })
                    .await
                {
                    Ok(open) => {
                        if let Some(f) = close {
                            with_stats(ctx, |s| record_close(&mut s.stalled, f));
                            true
                        } else if !open {
                            with_stats(ctx, |s| s.stalled.disconnect("eof"));
                            true
                        } else {
                            false
                        }
                    }
                    Err(e) => {
                        with_stats(ctx, |s| s.stalled.disconnect(format!("error: {e}")));
                        true
                    }
                }
            }
        };
        if ended {
            if !closed_seen {
                mark_closed(ctx);
            }
            return;
        }
    }
}
