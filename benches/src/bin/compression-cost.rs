//! `compression-cost`: server CPU per delivered message and RSS per connection with N
//! clients that negotiate permessage-deflate, against the same run without compression.
//!
//! Usage: `compression-cost --url 127.0.0.1:PORT --pid SERVER_PID --clients 1000
//! --symbols SYM0000,SYM0001,... --seconds 10 [--deflate [--no-context]]`
//!
//! `--deflate` offers what browsers offer (the server may keep its context: clients of the
//! same stream share a window); `--no-context` adds `server_no_context_takeover`, so every
//! message is compressed on its own.
//!
//! Clients are raw WebSocket clients (handshake and frame reading by hand, spread over a few
//! threads); they count frames and bytes but do not inflate, since the figure of interest is
//! the server's work. Server CPU comes from /proc/PID/stat, RSS from /proc/PID/status.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn arg(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

fn proc_cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("server /proc stat");
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn connect(addr: &str, deflate: bool, no_context: bool, subscribe: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    let ext = match (deflate, no_context) {
        (false, _) => "",
        (true, false) => "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n",
        (true, true) => "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits; server_no_context_takeover\r\n",
    };
    write!(
        s,
        "GET /ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{ext}\r\n"
    )
    .unwrap();
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert_eq!(
        deflate,
        head.contains("permessage-deflate"),
        "negotiation as asked"
    );
    let payload = subscribe.as_bytes();
    let mask = [1u8, 2, 3, 4];
    let mut f = vec![0x81u8];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i & 3]));
    s.write_all(&f).unwrap();
    s
}

fn main() {
    let addr = arg("--url").expect("--url HOST:PORT");
    let pid: u32 = arg("--pid").expect("--pid").parse().unwrap();
    let clients: usize = arg("--clients").unwrap_or("1000".into()).parse().unwrap();
    let seconds: u64 = arg("--seconds").unwrap_or("10".into()).parse().unwrap();
    let symbols = arg("--symbols").expect("--symbols A,B,...");
    let deflate = std::env::args().any(|a| a == "--deflate");
    let no_context = std::env::args().any(|a| a == "--no-context");
    let syms: Vec<String> = symbols.split(',').map(|s| format!("\"{s}\"")).collect();
    let subscribe = format!(
        r#"{{"op":"subscribe","id":1,"symbols":[{}],"channels":["quote","trade","book"]}}"#,
        syms.join(",")
    );

    let rss_before = rss_kib(pid);
    let frames = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let threads = 4;
    let mut handles = Vec::new();
    for t in 0..threads {
        let socks: Vec<TcpStream> = (t..clients)
            .step_by(threads)
            .map(|_| connect(&addr, deflate, no_context, &subscribe))
            .collect();
        let (frames, bytes, stop) = (frames.clone(), bytes.clone(), stop.clone());
        handles.push(std::thread::spawn(move || {
            // Round-robin non-blocking reads; counting frames by parsing headers.
            let mut state: Vec<(TcpStream, Vec<u8>)> = socks
                .into_iter()
                .map(|s| {
                    s.set_nonblocking(true).unwrap();
                    (s, Vec::new())
                })
                .collect();
            let mut buf = vec![0u8; 1 << 16];
            while !stop.load(Ordering::Relaxed) {
                let mut idle = true;
                for (s, pending) in state.iter_mut() {
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 {
                            break;
                        }
                        idle = false;
                        bytes.fetch_add(n as u64, Ordering::Relaxed);
                        pending.extend_from_slice(&buf[..n]);
                    }
                    let mut at = 0;
                    loop {
                        let p = &pending[at..];
                        if p.len() < 2 {
                            break;
                        }
                        let (len, h) = match p[1] & 0x7f {
                            126 if p.len() >= 4 => (u16::from_be_bytes([p[2], p[3]]) as usize, 4),
                            127 if p.len() >= 10 => (
                                u64::from_be_bytes(p[2..10].try_into().unwrap()) as usize,
                                10,
                            ),
                            126 | 127 => break,
                            n => (n as usize, 2),
                        };
                        if p.len() < h + len {
                            break;
                        }
                        frames.fetch_add(1, Ordering::Relaxed);
                        at += h + len;
                    }
                    pending.drain(..at);
                }
                if idle {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }));
    }
    std::thread::sleep(Duration::from_secs(2));
    let rss_connected = rss_kib(pid);
    let (f0, b0, c0, t0) = (
        frames.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        proc_cpu_ticks(pid),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_secs(seconds));
    let (f1, b1, c1, el) = (
        frames.load(Ordering::Relaxed),
        bytes.load(Ordering::Relaxed),
        proc_cpu_ticks(pid),
        t0.elapsed(),
    );
    stop.store(true, Ordering::Relaxed);
    let tick_ns = 1e9 / 100.0; // USER_HZ
    let cpu_ns = (c1 - c0) as f64 * tick_ns;
    let delivered = (f1 - f0) as f64;
    println!(
        "deflate={deflate} clients={clients} frames/s={:.0} bytes/s={:.0} bytes/frame={:.1} \
         server_cpu={:.1}% server_cpu_ns/frame={:.0} rss_kib_per_conn={:.2}",
        delivered / el.as_secs_f64(),
        (b1 - b0) as f64 / el.as_secs_f64(),
        (b1 - b0) as f64 / delivered,
        cpu_ns / el.as_nanos() as f64 * 100.0,
        cpu_ns / delivered,
        (rss_connected as f64 - rss_before as f64) / clients as f64
    );
    for h in handles {
        h.join().unwrap();
    }
}
