//! Process sampling through `/proc` (Linux): the server's RSS and CPU (by pid, or found from the
//! port it listens on), the generator's own CPU, TCP socket state of stalled clients, and
//! raising the open-files limit.

use std::io;
use std::time::Instant;

/// Clock ticks per second for `/proc/*/stat` CPU fields.
fn clk_tck() -> f64 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU seconds (user + system) of a process from `/proc/PID/stat`.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name is in parentheses and may contain spaces: split after the last ')'.
    let rest = s
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("bad stat"))?;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After ')' the fields start at field 3 (state); utime is field 14, stime 15.
    let utime: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let stime: f64 = f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    Ok((utime + stime) / clk_tck())
}

/// Resident set size in KiB from `/proc/PID/status` (VmRSS).
pub fn rss_kib(pid: u32) -> io::Result<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    for line in s.lines() {
        if let Some(v) = line.strip_prefix("VmRSS:") {
            return v
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .map_err(io::Error::other);
        }
    }
    Err(io::Error::other("no VmRSS"))
}

/// CPU utilisation of a process between successive samples, in percent of one core.
pub struct CpuMeter {
    pid: u32,
    last: Option<(Instant, f64)>,
}

impl CpuMeter {
    pub fn new(pid: u32) -> Self {
        let mut m = Self { pid, last: None };
        m.sample();
        m
    }

    /// Percent of one core since the previous call (None on the first call or if gone).
    pub fn sample(&mut self) -> Option<f64> {
        let now = Instant::now();
        let cpu = cpu_seconds(self.pid).ok()?;
        let out = self.last.map(|(t, c)| {
            let dt = now.duration_since(t).as_secs_f64();
            if dt > 0.0 {
                (cpu - c) / dt * 100.0
            } else {
                0.0
            }
        });
        self.last = Some((now, cpu));
        out
    }
}

/// Per-CPU utilisation from `/proc/stat` between successive samples. On loopback the kernel's
/// TCP work (softirq) is not charged to any process, so per-process CPU alone can hide a
/// saturated core; this shows it.
#[derive(Default)]
pub struct MachineCpuMeter {
    /// Per CPU: (total jiffies, idle+iowait jiffies, softirq jiffies).
    last: Vec<(u64, u64, u64)>,
}

/// One sample of [`MachineCpuMeter`]: percent busy and percent softirq per CPU.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct CpuBusy {
    pub busy_pct: Vec<f64>,
    pub softirq_pct: Vec<f64>,
}

impl MachineCpuMeter {
    fn read() -> Vec<(u64, u64, u64)> {
        let Ok(s) = std::fs::read_to_string("/proc/stat") else {
            return Vec::new();
        };
        s.lines()
            .filter(|l| l.starts_with("cpu") && l.as_bytes().get(3).is_some_and(u8::is_ascii_digit))
            .map(|l| {
                let v: Vec<u64> = l
                    .split_whitespace()
                    .skip(1)
                    .map(|x| x.parse().unwrap_or(0))
                    .collect();
                let g = |i: usize| v.get(i).copied().unwrap_or(0);
                // user nice system idle iowait irq softirq steal
                let total = (0..8).map(g).sum();
                (total, g(3) + g(4), g(6))
            })
            .collect()
    }

    pub fn new() -> Self {
        Self { last: Self::read() }
    }

    /// Utilisation per CPU since the previous call.
    pub fn sample(&mut self) -> CpuBusy {
        let now = Self::read();
        let mut out = CpuBusy::default();
        for (a, b) in self.last.iter().zip(&now) {
            let dt = b.0.saturating_sub(a.0).max(1) as f64;
            let idle = b.1.saturating_sub(a.1) as f64;
            let soft = b.2.saturating_sub(a.2) as f64;
            out.busy_pct
                .push(((dt - idle) / dt * 100.0).clamp(0.0, 100.0));
            out.softirq_pct.push((soft / dt * 100.0).clamp(0.0, 100.0));
        }
        self.last = now;
        out
    }
}

/// Finds the pid of the process listening on TCP `port` (IPv4 or IPv6) by matching the
/// socket inode from `/proc/net/tcp{,6}` against `/proc/*/fd`.
pub fn find_listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(s) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in s.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() < 10 || f[3] != "0A" {
                continue; // not LISTEN
            }
            let Some((_, p)) = f[1].rsplit_once(':') else {
                continue;
            };
            if u16::from_str_radix(p, 16).ok() == Some(port) {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let me = std::process::id();
    for e in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(l) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| l.as_os_str() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// Raises RLIMIT_NOFILE to at least `want` (up to the hard limit, raising that too when
/// permitted). Returns the soft limit in force afterwards.
pub fn raise_nofile(want: u64) -> io::Result<u64> {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: r is a valid rlimit out-pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if r.rlim_cur >= want {
        return Ok(r.rlim_cur);
    }
    let mut n = libc::rlimit {
        rlim_cur: want,
        rlim_max: r.rlim_max.max(want),
    };
    // SAFETY: n is a valid rlimit.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &n) } != 0 {
        // Not privileged to raise the hard limit: take what the hard limit allows.
        n.rlim_cur = r.rlim_max;
        n.rlim_max = r.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &n) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(n.rlim_cur)
}

/// The 1/5/15-minute load averages from `/proc/loadavg` (other work on a shared machine shows
/// up here, and in latency).
pub fn loadavg() -> Option<[f64; 3]> {
    let s = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = s.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

/// Linux TCP state of a socket (`tcpi_state`): 1 ESTABLISHED, 7 CLOSE, 8 CLOSE_WAIT, ...
pub fn tcp_state(fd: std::os::fd::RawFd) -> io::Result<u8> {
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: info is a writable buffer of `len` bytes; the kernel writes at most len bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info[0])
}

pub const TCP_ESTABLISHED: u8 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_own_process_and_finds_listener() {
        let me = std::process::id();
        assert!(rss_kib(me).unwrap() > 100);
        let mut m = CpuMeter::new(me);
        let t = Instant::now();
        let mut x = 0u64;
        while t.elapsed().as_millis() < 50 {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(m.sample().unwrap() > 0.0);
        // The listener is this very process, which find_listener_pid skips by design, so a
        // port nobody listens on must come back None.
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        assert_eq!(find_listener_pid(port), None);
        assert!(raise_nofile(256).unwrap() >= 256);
        assert!(loadavg().unwrap().iter().all(|v| *v >= 0.0));
        let mut mc = MachineCpuMeter::new();
        std::thread::sleep(std::time::Duration::from_millis(30));
        let b = mc.sample();
        assert!(!b.busy_pct.is_empty());
        assert!(b.busy_pct.iter().all(|v| (0.0..=100.0).contains(v)));
    }
}
