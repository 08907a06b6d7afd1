//! `loopback-floor`: what this machine's loopback TCP alone costs for a fan-out like W2's.
//!
//! Before blaming (or crediting) the server for a saturated fan-out figure, this measures the
//! floor under it: one writer thread pinned to the server's core writes pre-built bytes to C
//! connected loopback sockets, one `writev` of F frames per socket in turn, as fast as the
//! kernel takes them — no WebSocket, no JSON, no fan-out, nothing in user space. One reader
//! thread on the other core drains every socket through epoll and throws the bytes away.
//!
//! The writer's rate at F frames per write is the most any server could deliver from that
//! core with writes that size, and `C / writes per second` is the shortest round it could
//! keep: a conflating server's p99 cannot go much below its round. Sweeping F shows the
//! trade-off a saturated server faces — longer rounds (more frames per write) buy rate.
//!
//! ```text
//! cargo build --release -p tickwire-benches --bin loopback-floor
//! target/release/loopback-floor --conns 1000 --frame-bytes 290 --frames 4,8,16,32,64
//! ```
//!
//! Linux only (epoll, thread affinity).

use std::io;
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use tickwire_benches::loadgen::procstat::{raise_nofile, CpuBusy, MachineCpuMeter};

#[derive(Parser)]
struct Args {
    /// Connected socket pairs.
    #[arg(long, default_value_t = 1000)]
    conns: usize,
    /// Bytes per frame (W2's average delivered message is about 290 bytes of JSON).
    #[arg(long, default_value_t = 290)]
    frame_bytes: usize,
    /// Frames per write to sweep, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "4,8,16,32,64")]
    frames: Vec<usize>,
    /// Seconds measured per sweep point (after half a second of warm-up).
    #[arg(long, default_value_t = 4.0)]
    seconds: f64,
    /// Core of the writer thread (the server's core in run-scenarios.sh).
    #[arg(long, default_value_t = 0)]
    writer_cpu: usize,
    /// Core of the reader thread (the generator's).
    #[arg(long, default_value_t = 1)]
    reader_cpu: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    if args.frames.is_empty() || args.frames.contains(&0) || args.frame_bytes == 0 {
        bail!("--frames and --frame-bytes must be positive");
    }
    // Two descriptors per connection, plus a few.
    raise_nofile(2 * args.conns as u64 + 64).context("raising the open-files limit")?;
    let (writers, readers) = connect_pairs(args.conns)?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        let cpu = args.reader_cpu;
        std::thread::spawn(move || read_all(readers, cpu, &stop))
    };

    println!(
        "{} connections, {}-byte frames, writer on cpu {}, reader on cpu {}, {} s per point",
        args.conns, args.frame_bytes, args.writer_cpu, args.reader_cpu, args.seconds
    );
    println!("| frames/write | writes/s | frames/s | MB/s | round ms | writes refused (socket full) % | writer CPU % | writer cpu busy % (softirq %) | reader cpu busy % |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let fds: Vec<RawFd> = writers.iter().map(|s| s.as_raw_fd()).collect();
    let (writer_cpu, reader_cpu) = (args.writer_cpu, args.reader_cpu);
    for &frames in &args.frames {
        let point = {
            let fds = fds.clone();
            let (frame_bytes, seconds) = (args.frame_bytes, args.seconds);
            std::thread::spawn(move || write_point(&fds, writer_cpu, frames, frame_bytes, seconds))
                .join()
                .expect("writer thread panicked")?
        };
        let round_ms = args.conns as f64 / point.writes_per_s * 1e3;
        println!(
            "| {frames} | {:.0} | {:.0} | {:.1} | {:.2} | {:.1} | {:.0} | {:.0} ({:.0}) | {:.0} |",
            point.writes_per_s,
            point.bytes_per_s / args.frame_bytes as f64,
            point.bytes_per_s / 1e6,
            round_ms,
            point.full_share * 100.0,
            point.thread_cpu * 100.0,
            core_pct(&point.cores.busy_pct, writer_cpu),
            core_pct(&point.cores.softirq_pct, writer_cpu),
            core_pct(&point.cores.busy_pct, reader_cpu),
        );
        // Let the reader empty every socket before the next point.
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().expect("reader thread panicked")?;
    drop(writers);
    Ok(())
}

/// `n` connected loopback pairs: (accepted side, for the writer; connecting side, for the reader).
fn connect_pairs(n: usize) -> Result<(Vec<TcpStream>, Vec<TcpStream>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let (mut writers, mut readers) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let client = TcpStream::connect(addr).context("connect")?;
        let (server, _) = listener.accept()?;
        // As the server's sessions do: frames go out when written, not after Nagle's delay.
        server.set_nodelay(true)?;
        server.set_nonblocking(true)?;
        client.set_nonblocking(true)?;
        writers.push(server);
        readers.push(client);
    }
    Ok((writers, readers))
}

struct Point {
    writes_per_s: f64,
    bytes_per_s: f64,
    /// Share of write attempts refused with EAGAIN: the reader, not the writer, was the limit.
    full_share: f64,
    /// The writer thread's own CPU time over the window, as a share of one core.
    thread_cpu: f64,
    /// Per-core busy and softirq shares over the window.
    cores: CpuBusy,
}

/// Writes `frames` iovecs of `frame_bytes` to each socket in turn for `seconds`.
fn write_point(
    fds: &[RawFd],
    cpu: usize,
    frames: usize,
    frame_bytes: usize,
    seconds: f64,
) -> Result<Point> {
    pin_to(cpu)?;
    let payload = vec![b'x'; frame_bytes];
    let iov: Vec<libc::iovec> = (0..frames)
        .map(|_| libc::iovec {
            iov_base: payload.as_ptr() as *mut libc::c_void,
            iov_len: frame_bytes,
        })
        .collect();
    let run = |window: Duration| -> Result<(u64, u64, u64)> {
        let (mut writes, mut bytes, mut full) = (0u64, 0u64, 0u64);
        let end = Instant::now() + window;
        while Instant::now() < end {
            for &fd in fds {
                // SAFETY: `iov` points into `payload`, alive for the whole call.
                let n = unsafe { libc::writev(fd, iov.as_ptr(), iov.len() as libc::c_int) };
                if n >= 0 {
                    writes += 1;
                    bytes += n as u64;
                } else {
                    let err = io::Error::last_os_error();
                    if err.kind() != io::ErrorKind::WouldBlock {
                        return Err(err).context("writev");
                    }
                    full += 1;
                }
            }
        }
        Ok((writes, bytes, full))
    };
    run(Duration::from_millis(500))?;
    let window = Duration::from_secs_f64(seconds);
    let (mut meter, cpu0, t0) = (MachineCpuMeter::new(), thread_cpu_seconds(), Instant::now());
    let (writes, bytes, full) = run(window)?;
    let (cores, cpu1, elapsed) = (meter.sample(), thread_cpu_seconds(), t0.elapsed());
    let secs = elapsed.as_secs_f64();
    Ok(Point {
        writes_per_s: writes as f64 / secs,
        bytes_per_s: bytes as f64 / secs,
        full_share: full as f64 / (writes + full).max(1) as f64,
        thread_cpu: (cpu1 - cpu0) / secs,
        cores,
    })
}

/// Drains every socket until `stop`, discarding the bytes.
fn read_all(sockets: Vec<TcpStream>, cpu: usize, stop: &AtomicBool) -> Result<()> {
    pin_to(cpu)?;
    // SAFETY: plain epoll system calls on descriptors owned by `sockets`, which outlive them.
    let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    if epoll < 0 {
        return Err(io::Error::last_os_error()).context("epoll_create1");
    }
    for (i, s) in sockets.iter().enumerate() {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: i as u64,
        };
        // SAFETY: see above.
        if unsafe { libc::epoll_ctl(epoll, libc::EPOLL_CTL_ADD, s.as_raw_fd(), &mut ev) } < 0 {
            return Err(io::Error::last_os_error()).context("epoll_ctl");
        }
    }
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 1024];
    let mut buf = vec![0u8; 256 * 1024];
    while !stop.load(Ordering::Relaxed) {
        // SAFETY: `events` has room for the count passed.
        let n = unsafe { libc::epoll_wait(epoll, events.as_mut_ptr(), events.len() as i32, 100) };
        for ev in &events[..n.max(0) as usize] {
            let fd = sockets[ev.u64 as usize].as_raw_fd();
            loop {
                // SAFETY: `buf` is valid for its length.
                let r = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
                if r <= 0 {
                    break;
                }
            }
        }
    }
    // SAFETY: closing the epoll descriptor created above.
    unsafe { libc::close(epoll) };
    Ok(())
}

fn pin_to(cpu: usize) -> Result<()> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET writes inside it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error()).context("sched_setaffinity");
        }
    }
    Ok(())
}

fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// A core's percentage from a [`CpuBusy`] sample (NaN if the machine has no such core).
fn core_pct(per_core: &[f64], cpu: usize) -> f64 {
    per_core.get(cpu).copied().unwrap_or(f64::NAN)
}
