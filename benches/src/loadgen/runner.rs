//! Running a scenario: worker threads (one current-thread tokio runtime each) carrying the
//! clients, connection pacing and source-address round-robin, the phases (connect → settle →
//! warm-up → measurement → stop), one-second sampling of the server and of the generator, the
//! live progress line, and assembling the [`RunResult`].

use super::client::{run_client, ClientCtx, Shared};
use super::config::{symbol_name, Scenario, SymbolPicker};
use super::procstat::{
    find_listener_pid, loadavg, raise_nofile, rss_kib, CpuMeter, MachineCpuMeter,
};
use super::report::{RunResult, SeriesPoint, ServerResources};
use super::stats::{
    new_histogram, percentile_distribution, ConnStats, Counters, LatencySummary, WorkerStats,
};
use std::io::{IsTerminal, Write};
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::{mpsc, watch};

/// How long stopping may take before the result is assembled without the stragglers (the
/// stalled clients' final drain takes up to 3 s, connects up to the connect timeout).
pub const STOP_GRACE: Duration = Duration::from_secs(15);

/// Errors that stop a run before it measures anything.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("bad url {0:?}: expected ws://HOST:PORT/PATH")]
    Url(String),
    #[error("resolving {0}: {1}")]
    Resolve(String, std::io::Error),
    #[error("starting worker thread: {0}")]
    Thread(std::io::Error),
    #[error("invalid scenario: {0}")]
    Config(#[from] super::config::ConfigError),
}

/// How to run a scenario.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub scenario: Scenario,
    /// Name of the server under test in tables and plots.
    pub label: String,
    /// Server pid for RSS/CPU sampling; if `None`, the process listening on the target port
    /// (when the target is on this machine) is looked up.
    pub server_pid: Option<u32>,
    /// Print the live progress line on stderr.
    pub progress: bool,
}

struct Spawn {
    symbols: Vec<String>,
    src: Option<IpAddr>,
    stalled: bool,
}

/// Splits `ws://host:port/path` into (host:port, resolved address).
pub fn resolve_url(url: &str) -> Result<(String, SocketAddr), RunError> {
    let rest = url
        .strip_prefix("ws://")
        .ok_or_else(|| RunError::Url(url.to_string()))?;
    let hostport = rest.split('/').next().unwrap_or_default().to_string();
    if hostport.is_empty() || !hostport.contains(':') {
        return Err(RunError::Url(url.to_string()));
    }
    let addr = hostport
        .to_socket_addrs()
        .map_err(|e| RunError::Resolve(hostport.clone(), e))?
        .next()
        .ok_or_else(|| RunError::Url(url.to_string()))?;
    Ok((hostport, addr))
}

/// Source address number `k` of the round-robin: 127.0.0.2, 127.0.0.3, ...
pub fn source_addr(k: u32) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(u32::from(Ipv4Addr::new(127, 0, 0, 2)) + k))
}

struct Sampler {
    pid: Option<u32>,
    server_cpu: Option<CpuMeter>,
    own_cpu: CpuMeter,
    peak_rss: u64,
}

impl Sampler {
    fn sample(&mut self) -> (Option<f64>, Option<u64>, Option<f64>) {
        let cpu = self.server_cpu.as_mut().and_then(|m| m.sample());
        let rss = self.pid.and_then(|p| rss_kib(p).ok());
        if let Some(r) = rss {
            self.peak_rss = self.peak_rss.max(r);
        }
        (cpu, rss, self.own_cpu.sample())
    }
}

fn lock(w: &Mutex<WorkerStats>) -> std::sync::MutexGuard<'_, WorkerStats> {
    w.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs a scenario to completion and returns what it measured.
pub fn run(opts: &RunOptions) -> Result<RunResult, RunError> {
    let mut sc = opts.scenario.clone();
    sc.validate()?;
    // As many polling threads as cores (two or more) leave none for anything else, the
    // server under test included; more would poll against each other. The intended use is
    // one thread pinned to a core of its own.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if sc.busy_poll && sc.threads as usize >= cores.max(2) {
        eprintln!(
            "busy_poll off: {} polling generator threads on {cores} cores would leave no core free",
            sc.threads
        );
        sc.busy_poll = false;
    }
    let sc = &sc;
    let (hostport, target) = resolve_url(&sc.url)?;
    let path = sc.url["ws://".len() + hostport.len()..].to_string();
    let total = sc.clients + sc.stalled_clients;
    // Each client is one fd; leave room for the runtime and files.
    if let Err(e) = raise_nofile(total as u64 + 1024) {
        eprintln!("warning: could not raise RLIMIT_NOFILE: {e}");
    }
    let pid = opts.server_pid.or_else(|| {
        if target.ip().is_loopback() {
            find_listener_pid(target.port())
        } else {
            None
        }
    });
    let mut sampler = Sampler {
        pid,
        server_cpu: pid.map(CpuMeter::new),
        own_cpu: CpuMeter::new(std::process::id()),
        peak_rss: 0,
    };
    let baseline_rss = pid.and_then(|p| rss_kib(p).ok()).unwrap_or(0);
    sampler.peak_rss = baseline_rss;

    let loadavg_start = loadavg();
    let t0 = Instant::now();
    let shared = Arc::new(Shared {
        url: sc.url.clone(),
        host: hostport.clone(),
        path: if path.is_empty() { "/".into() } else { path },
        subprotocols: sc.subprotocols.clone(),
        target,
        channels: sc.channels.clone(),
        depth: sc.depth,
        throttle_ms: sc.throttle_ms,
        subscribe_batch: sc.subscribe_batch as usize,
        stalled_rcvbuf: sc.stalled_rcvbuf,
        stall_read_after: (sc.stall_read_after_s > 0.0)
            .then(|| Duration::from_secs_f64(sc.stall_read_after_s)),
        measuring: AtomicBool::new(false),
        open: AtomicI64::new(0),
        t0,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    let mut handles = Vec::new();
    for i in 0..sc.threads {
        let (tx, mut rx) = mpsc::unbounded_channel::<Spawn>();
        let stats = Arc::new(Mutex::new(WorkerStats::default()));
        let ctx = ClientCtx {
            shared: shared.clone(),
            stats: stats.clone(),
            stop: stop_rx.clone(),
        };
        let busy_poll = sc.busy_poll;
        let h = std::thread::Builder::new()
            .name(format!("loadgen-{i}"))
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime");
                rt.block_on(async move {
                    if busy_poll {
                        // Always runnable: the runtime never parks, so every turn polls
                        // the sockets without waiting (yield_now defers this task until
                        // the I/O driver has been polled).
                        tokio::spawn(async {
                            loop {
                                tokio::task::yield_now().await;
                            }
                        });
                    }
                    let mut set = tokio::task::JoinSet::new();
                    while let Some(sp) = rx.recv().await {
                        set.spawn(run_client(ctx.clone(), sp.symbols, sp.src, sp.stalled));
                        while set.try_join_next().is_some() {}
                    }
                    while set.join_next().await.is_some() {}
                });
            })
            .map_err(RunError::Thread)?;
        senders.push(tx);
        workers.push(stats);
        handles.push(h);
    }

    let tty = std::io::stderr().is_terminal();
    let mut progress = Progress {
        enabled: opts.progress,
        tty,
        last_msgs: 0,
        last_t: Instant::now(),
    };

    // Phase 1: connect at the configured rate.
    let picker = SymbolPicker::new(sc);
    let n_src = sc.source_addr_count();
    let use_src = matches!(target.ip(), IpAddr::V4(ip) if ip.is_loopback());
    let mut next_tick = Instant::now() + Duration::from_secs(1);
    for i in 0..total {
        let due = t0 + Duration::from_secs_f64(i as f64 / sc.connect_rate as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
        let stalled = i >= sc.clients;
        let symbols = picker.pick(i).into_iter().map(symbol_name).collect();
        let src = use_src.then(|| source_addr(i % n_src));
        let _ = senders[(i % sc.threads) as usize].send(Spawn {
            symbols,
            src,
            stalled,
        });
        if Instant::now() >= next_tick {
            next_tick += Duration::from_secs(1);
            let s = sampler.sample();
            progress.line("connect", t0, &shared, &workers, None, s);
        }
    }
    drop(senders);

    // Phase 2: wait until every client connected (or failed) and every healthy one is
    // subscribed, bounded in time.
    let settle_deadline = Instant::now() + Duration::from_secs(10 + total as u64 / 500);
    loop {
        let (done, subscribed, healthy_connected) = {
            let mut c = ConnStats::default();
            let mut st = ConnStats::default();
            for w in &workers {
                let g = lock(w);
                c.merge(&g.conns);
                st.merge(&g.stalled);
            }
            (
                c.connected + c.connect_failed + st.connected + st.connect_failed,
                c.fully_subscribed,
                c.connected,
            )
        };
        if (done >= total as u64 && subscribed >= healthy_connected)
            || Instant::now() >= settle_deadline
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() >= next_tick {
            next_tick += Duration::from_secs(1);
            let s = sampler.sample();
            progress.line("settle", t0, &shared, &workers, None, s);
        }
    }

    // Phase 3: warm-up.
    let warm_end = Instant::now() + Duration::from_secs_f64(sc.warmup_s);
    while Instant::now() < warm_end {
        std::thread::sleep((warm_end - Instant::now()).min(Duration::from_millis(100)));
        if Instant::now() >= next_tick {
            next_tick += Duration::from_secs(1);
            let s = sampler.sample();
            progress.line("warm-up", t0, &shared, &workers, None, s);
        }
    }

    // Phase 4: measurement.
    let window_start_rss = pid.and_then(|p| rss_kib(p).ok()).unwrap_or(0);
    sampler.sample();
    shared.measuring.store(true, Ordering::SeqCst);
    let w_start = Instant::now();
    let w_end = w_start + Duration::from_secs_f64(sc.duration_s);
    let mut series = Vec::new();
    let mut tick = w_start;
    let mut cpu_samples = Vec::new();
    let mut own_samples = Vec::new();
    let mut machine = MachineCpuMeter::new();
    loop {
        tick += Duration::from_secs(1);
        let last = tick >= w_end;
        let until = if last { w_end } else { tick };
        let now = Instant::now();
        if until > now {
            std::thread::sleep(until - now);
        }
        if last {
            shared.measuring.store(false, Ordering::SeqCst);
        }
        let mut ic = Counters::default();
        let mut ih = new_histogram();
        for w in &workers {
            let mut g = lock(w);
            ic.merge(&std::mem::take(&mut g.interval));
            ih.add(&g.interval_latency).expect("same bounds");
            g.interval_latency.reset();
        }
        let (cpu, rss, own) = sampler.sample();
        if let Some(c) = cpu {
            cpu_samples.push(c);
        }
        if let Some(c) = own {
            own_samples.push(c);
        }
        let dt = (until - (tick - Duration::from_secs(1)))
            .as_secs_f64()
            .max(1e-3);
        let l = LatencySummary::of(&ih);
        let pt = SeriesPoint {
            t_s: until.duration_since(w_start).as_secs_f64(),
            msgs_per_s: ic.market_msgs() as f64 / dt,
            bytes_per_s: ic.bytes as f64 / dt,
            p50_us: l.p50_us,
            p99_us: l.p99_us,
            max_us: l.max_us,
            open_connections: shared.open.load(Ordering::Relaxed),
            server_cpu_pct: cpu,
            server_rss_kib: rss,
            loadgen_cpu_pct: own,
            machine_cpu: machine.sample(),
        };
        progress.line("measure", t0, &shared, &workers, Some(&pt), (cpu, rss, own));
        series.push(pt);
        if last {
            break;
        }
    }
    let measured_s = w_start.elapsed().as_secs_f64().min(sc.duration_s.max(1e-3));
    let end_rss = pid.and_then(|p| rss_kib(p).ok()).unwrap_or(0);
    let open_at_end = shared.open.load(Ordering::Relaxed);

    // Phase 5: stop every client (stalled ones drain to read their close code) and merge.
    let _ = stop_tx.send(true);
    // Workers end once their clients have; a client stuck in the kernel (e.g. a stalled drain)
    // must not hold the result hostage, so wait at most STOP_GRACE and then report anyway.
    let give_up = Instant::now() + STOP_GRACE;
    for h in handles {
        while !h.is_finished() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(20));
        }
        if h.is_finished() {
            let _ = h.join();
        }
    }
    progress.finish();
    let mut window = Counters::default();
    let mut run = Counters::default();
    let mut conns = ConnStats::default();
    let mut stalled = ConnStats::default();
    let mut hist = new_histogram();
    for w in &workers {
        let g = lock(w);
        window.merge(&g.window);
        run.merge(&g.run);
        conns.merge(&g.conns);
        stalled.merge(&g.stalled);
        hist.add(&g.latency).expect("same bounds");
    }
    let mean = |v: &[f64]| {
        if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    let max = |v: &[f64]| v.iter().cloned().fold(0.0, f64::max);
    let server = pid.map(|pid| ServerResources {
        pid,
        baseline_rss_kib: baseline_rss,
        window_start_rss_kib: window_start_rss,
        end_rss_kib: end_rss,
        peak_rss_kib: sampler.peak_rss,
        kib_per_connection: (open_at_end > 0 && baseline_rss > 0)
            .then(|| (end_rss as f64 - baseline_rss as f64) / open_at_end as f64),
        cpu_pct_mean: mean(&cpu_samples),
        cpu_pct_max: max(&cpu_samples),
    });
    Ok(RunResult {
        label: opts.label.clone(),
        scenario: sc.clone(),
        started_unix_s: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
            .saturating_sub(t0.elapsed().as_secs()),
        measured_s,
        generator_threads: sc.threads,
        latency: LatencySummary::of(&hist),
        latency_distribution: percentile_distribution(&hist),
        deliveries_per_s: window.market_msgs() as f64 / measured_s,
        frames_per_s: window.frames as f64 / measured_s,
        bytes_per_s: window.bytes as f64 / measured_s,
        window,
        run,
        conns,
        stalled,
        open_at_end,
        server,
        loadgen_cpu_pct_mean: mean(&own_samples),
        loadgen_cpu_pct_max: max(&own_samples),
        loadavg_start,
        loadavg_end: loadavg(),
        // Online CPUs of the machine (not this process's affinity mask, which taskset narrows).
        // SAFETY: sysconf has no memory-safety preconditions.
        cpus: unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) }.max(0) as usize,
        series,
    })
}

struct Progress {
    enabled: bool,
    tty: bool,
    last_msgs: u64,
    last_t: Instant,
}

impl Progress {
    fn line(
        &mut self,
        phase: &str,
        t0: Instant,
        shared: &Shared,
        workers: &[Arc<Mutex<WorkerStats>>],
        pt: Option<&SeriesPoint>,
        (cpu, rss, own): (Option<f64>, Option<u64>, Option<f64>),
    ) {
        let mut run = Counters::default();
        let mut closes = 0u64;
        for w in workers {
            let g = lock(w);
            run.merge(&g.run);
            closes += g.conns.close_codes.values().sum::<u64>();
        }
        let now = Instant::now();
        let dt = now.duration_since(self.last_t).as_secs_f64().max(1e-3);
        let rate = (run.market_msgs() - self.last_msgs) as f64 / dt;
        self.last_msgs = run.market_msgs();
        self.last_t = now;
        if !self.enabled {
            return;
        }
        let lat = pt.map_or(String::new(), |p| {
            format!(" p50 {:.0}µs p99 {:.0}µs", p.p50_us, p.p99_us)
        });
        let line = format!(
            "[{phase:>7} {:>5.1}s] open {} | {:.0} msg/s{lat} | trade gaps {} confl q {} b {} | closes {} | srv cpu {} rss {} | gen cpu {}",
            t0.elapsed().as_secs_f64(),
            shared.open.load(Ordering::Relaxed),
            rate,
            run.chan_missing[1],
            run.chan_missing[0],
            run.chan_missing[2],
            closes,
            cpu.map_or("-".into(), |c| format!("{c:.0}%")),
            rss.map_or("-".into(), |r| format!("{:.1}MiB", r as f64 / 1024.0)),
            own.map_or("-".into(), |c| format!("{c:.0}%")),
        );
        let mut e = std::io::stderr().lock();
        if self.tty {
            let _ = write!(e, "\r\x1b[2K{line}");
        } else {
            let _ = writeln!(e, "{line}");
        }
        let _ = e.flush();
    }

    fn finish(&self) {
        if self.enabled && self.tty {
            eprintln!();
        }
    }
}
