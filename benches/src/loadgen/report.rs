//! The result of a run (serialized as the JSON result file) and its rendering as text tables:
//! a detailed summary of one run and a comparison table of several (for example Tickwire and
//! the Node `ws` baseline on the same scenario).

use super::config::Scenario;
use super::stats::{ConnStats, Counters, LatencySummary};
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;

/// One second of the measurement window.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SeriesPoint {
    /// Seconds since the measurement window started (end of the interval).
    pub t_s: f64,
    pub msgs_per_s: f64,
    pub bytes_per_s: f64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
    pub open_connections: i64,
    pub server_cpu_pct: Option<f64>,
    pub server_rss_kib: Option<u64>,
    pub loadgen_cpu_pct: Option<f64>,
    /// Per-CPU busy and softirq percent of the whole machine in this second.
    #[serde(default)]
    pub machine_cpu: super::procstat::CpuBusy,
}

/// Server-side resource figures (same machine only).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerResources {
    pub pid: u32,
    /// RSS before the generator connected anything.
    pub baseline_rss_kib: u64,
    /// RSS when the measurement window started (all clients connected and warmed up).
    pub window_start_rss_kib: u64,
    /// RSS at the end of the measurement window.
    pub end_rss_kib: u64,
    pub peak_rss_kib: u64,
    /// (end RSS − baseline) / open connections at the end.
    pub kib_per_connection: Option<f64>,
    pub cpu_pct_mean: f64,
    pub cpu_pct_max: f64,
}

/// Everything a run measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunResult {
    /// What was measured ("tickwire", "node-ws", ...).
    pub label: String,
    pub scenario: Scenario,
    pub started_unix_s: u64,
    pub measured_s: f64,
    pub generator_threads: u32,
    pub latency: LatencySummary,
    /// (percentile, µs) points of the window's latency distribution.
    pub latency_distribution: Vec<(f64, f64)>,
    /// Market-data messages delivered per second to healthy clients in the window.
    pub deliveries_per_s: f64,
    pub frames_per_s: f64,
    pub bytes_per_s: f64,
    /// Counters over the measurement window.
    pub window: Counters,
    /// Counters over the whole run (connect, warm-up, window).
    pub run: Counters,
    pub conns: ConnStats,
    pub stalled: ConnStats,
    /// Connections open at the end of the window.
    pub open_at_end: i64,
    pub server: Option<ServerResources>,
    pub loadgen_cpu_pct_mean: f64,
    pub loadgen_cpu_pct_max: f64,
    /// Machine load averages (1/5/15 min) at the start and end of the run.
    #[serde(default)]
    pub loadavg_start: Option<[f64; 3]>,
    #[serde(default)]
    pub loadavg_end: Option<[f64; 3]>,
    #[serde(default)]
    pub cpus: usize,
    pub series: Vec<SeriesPoint>,
}

fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn map_str(m: &std::collections::BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "-".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k}×{v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A detailed plain-text summary of one run.
pub fn summary(r: &RunResult) -> String {
    let mut s = String::new();
    let sc = &r.scenario;
    let l = &r.latency;
    let w = &r.window;
    let _ = writeln!(
        s,
        "== {} on {} — {} ==",
        sc.name,
        r.label,
        if sc.description.is_empty() {
            "-"
        } else {
            &sc.description
        }
    );
    let _ = writeln!(
        s,
        "server: {} symbols, {} quote updates/s; clients: {} healthy × {} symbols ({:?}) + {} stalled; window {:.1} s",
        sc.server.symbols, sc.server.rate, sc.clients, sc.symbols_per_client, sc.pattern,
        sc.stalled_clients, r.measured_s
    );
    let _ = writeln!(
        s,
        "connections: {} connected / {} attempted, {} failed, {} fully subscribed, {} open at end",
        r.conns.connected,
        r.conns.attempted,
        r.conns.connect_failed,
        r.conns.fully_subscribed,
        r.open_at_end
    );
    let _ = writeln!(
        s,
        "latency µs (n={}): p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  p99.99 {:.1}  max {:.1}  mean {:.1}",
        l.count, l.p50_us, l.p90_us, l.p99_us, l.p999_us, l.p9999_us, l.max_us, l.mean_us
    );
    let _ = writeln!(
        s,
        "throughput: {} msgs/s (quote {} trade {} book {} in window), {} frames/s, {:.2} MB/s",
        si(r.deliveries_per_s),
        w.msgs[0],
        w.msgs[1],
        w.msgs[2],
        si(r.frames_per_s),
        r.bytes_per_s / 1e6
    );
    let _ = writeln!(
        s,
        "sequence (whole run): trade gaps {} missing in {} jumps; conflated quote {} book {}; chan_seq regressions {:?}; seq regressions {}",
        r.run.chan_missing[1], r.run.chan_jumps[1], r.run.chan_missing[0], r.run.chan_missing[2],
        r.run.chan_regressions, r.run.seq_regressions
    );
    let _ = writeln!(
        s,
        "control: {} acks, {} status, {} errors, {} parse errors, {} missing fields, {} negative latencies",
        r.run.subscribed_acks,
        r.run.status_msgs,
        r.run.error_msgs,
        r.run.parse_errors,
        r.run.missing_fields,
        r.run.negative_latency
    );
    let _ = writeln!(
        s,
        "healthy disconnects: {}; close codes: {}",
        map_str(&r.conns.disconnects),
        map_str(&r.conns.close_codes)
    );
    if sc.stalled_clients > 0 {
        let _ = writeln!(
            s,
            "stalled: {} connected, {} closed by server during run (first at {:?} s); at end: {}; close codes: {}",
            r.stalled.connected,
            r.stalled.stalled_closed_by_server,
            r.stalled
                .stalled_close_times_s
                .iter()
                .cloned()
                .fold(None, |a: Option<f64>, b| Some(a.map_or(b, |a| a.min(b))))
                .map(|v| (v * 10.0).round() / 10.0),
            map_str(&r.stalled.disconnects),
            map_str(&r.stalled.close_codes)
        );
    }
    for e in &r.conns.server_errors {
        let _ = writeln!(s, "server error: {e}");
    }
    if let Some(sv) = &r.server {
        let _ = writeln!(
            s,
            "server pid {}: CPU mean {:.0}% max {:.0}%; RSS baseline {} KiB, window start {} KiB, end {} KiB, peak {} KiB; {} KiB per connection",
            sv.pid, sv.cpu_pct_mean, sv.cpu_pct_max, sv.baseline_rss_kib, sv.window_start_rss_kib,
            sv.end_rss_kib, sv.peak_rss_kib,
            sv.kib_per_connection.map_or("-".into(), |v| format!("{v:.2}"))
        );
    } else {
        let _ = writeln!(
            s,
            "server resources: not sampled (no --server-pid, none found)"
        );
    }
    let _ = writeln!(
        s,
        "load generator: CPU mean {:.0}% max {:.0}% over {} threads (100% = one core){}; handling received data {:.0}% of one core",
        r.loadgen_cpu_pct_mean,
        r.loadgen_cpu_pct_max,
        r.generator_threads,
        if r.scenario.busy_poll { ", busy-polling" } else { "" },
        r.window.handling_ns as f64 / 1e7 / r.measured_s.max(1e-9)
    );
    if !r.series.is_empty() {
        let n = r
            .series
            .iter()
            .map(|p| p.machine_cpu.busy_pct.len())
            .max()
            .unwrap_or(0);
        let avg = |f: &dyn Fn(&SeriesPoint) -> Option<f64>| {
            let v: Vec<f64> = r.series.iter().filter_map(f).collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        };
        let cores: Vec<String> = (0..n)
            .map(|i| {
                format!(
                    "cpu{i} {:.0}% busy ({:.0}% softirq)",
                    avg(&|p| p.machine_cpu.busy_pct.get(i).copied()),
                    avg(&|p| p.machine_cpu.softirq_pct.get(i).copied())
                )
            })
            .collect();
        let _ = writeln!(s, "machine CPU over the window: {}", cores.join(", "));
        let _ = writeln!(
            s,
            "machine saturated (every core >= 95% busy) in {} of {} seconds: other work competed with server and generator there",
            saturated_seconds(r),
            r.series.len()
        );
    }
    let la = |v: Option<[f64; 3]>| {
        v.map_or("-".into(), |v| {
            format!("{:.2} {:.2} {:.2}", v[0], v[1], v[2])
        })
    };
    let _ = writeln!(
        s,
        "machine: {} CPUs; load average at start {} / at end {}",
        r.cpus,
        la(r.loadavg_start),
        la(r.loadavg_end)
    );
    s
}

/// A markdown table with one row per run.
pub fn comparison_table(runs: &[RunResult]) -> String {
    let mut s = String::from(
        "| scenario | server | connected | deliveries/s | MB/s | p50 µs | p99 µs | p99.9 µs | max µs | trade gaps | conflated q/b | healthy closes | stalled closes | srv CPU % | srv RSS MiB end/peak | KiB/conn | gen CPU % | cores busy % | saturated s |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for r in runs {
        let (cpu, rss, kpc) = match &r.server {
            Some(sv) => (
                format!("{:.0}", sv.cpu_pct_mean),
                format!(
                    "{:.1}/{:.1}",
                    sv.end_rss_kib as f64 / 1024.0,
                    sv.peak_rss_kib as f64 / 1024.0
                ),
                sv.kib_per_connection
                    .map_or("-".into(), |v| format!("{v:.2}")),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        let stalled = if r.scenario.stalled_clients > 0 {
            format!(
                "{}/{} ({})",
                r.stalled.stalled_closed_by_server,
                r.scenario.stalled_clients,
                map_str(&r.stalled.close_codes)
            )
        } else {
            "-".into()
        };
        let _ = writeln!(
            s,
            "| {} | {} | {}/{} | {} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {}/{} | {} | {} | {} | {} | {} | {:.0} | {} | {}/{} |",
            r.scenario.name,
            r.label,
            r.conns.connected,
            r.scenario.clients,
            si(r.deliveries_per_s),
            r.bytes_per_s / 1e6,
            r.latency.p50_us,
            r.latency.p99_us,
            r.latency.p999_us,
            r.latency.max_us,
            r.run.chan_missing[1],
            r.run.chan_missing[0],
            r.run.chan_missing[2],
            map_str(&r.conns.close_codes),
            stalled,
            cpu,
            rss,
            kpc,
            r.loadgen_cpu_pct_mean,
            core_busy(r)
                .iter()
                .map(|v| format!("{v:.0}"))
                .collect::<Vec<_>>()
                .join("/"),
            saturated_seconds(r),
            r.series.len()
        );
    }
    s
}

/// The server label of a repeated run without its repetition suffix: `tickwire-r3` is the
/// third run of `tickwire` (see `benches/run-scenarios.sh`, `REPEAT`).
pub fn base_label(label: &str) -> &str {
    match label.rsplit_once("-r") {
        Some((base, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => base,
        _ => label,
    }
}

/// Adds `value` to the group of `key`, keeping groups in order of first appearance.
fn push_grouped<K: PartialEq, V>(groups: &mut Vec<(K, Vec<V>)>, key: K, value: V) {
    match groups.iter_mut().find(|(k, _)| *k == key) {
        Some((_, v)) => v.push(value),
        None => groups.push((key, vec![value])),
    }
}

/// Median, minimum and maximum of `values` (not empty).
fn spread(mut values: Vec<f64>) -> (f64, f64, f64) {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    };
    (median, values[0], values[n - 1])
}

/// A markdown table of the spread over repeated runs of the same scenario and server:
/// median (min-max) of the latency percentiles and the delivery rate. On a shared or
/// virtual machine one run can move by more than the difference being measured; the
/// spread says how much. `None` when nothing was repeated.
pub fn spread_table(runs: &[RunResult]) -> Option<String> {
    let mut groups: Vec<((&str, &str), Vec<&RunResult>)> = Vec::new();
    for r in runs {
        push_grouped(
            &mut groups,
            (r.scenario.name.as_str(), base_label(&r.label)),
            r,
        );
    }
    groups.retain(|g| g.1.len() > 1);
    if groups.is_empty() {
        return None;
    }
    let mut s = String::from(
        "| scenario | server | runs | p50 µs | p99 µs | p99.9 µs | deliveries/s |\n|---|---|---|---|---|---|---|\n",
    );
    for ((name, label), rs) in groups {
        let cell = |f: fn(&RunResult) -> f64, fmt: fn(f64) -> String| {
            let (m, lo, hi) = spread(rs.iter().map(|r| f(r)).collect());
            format!("{} ({}-{})", fmt(m), fmt(lo), fmt(hi))
        };
        let us = |v: f64| format!("{v:.0}");
        let _ = writeln!(
            s,
            "| {name} | {label} | {} | {} | {} | {} | {} |",
            rs.len(),
            cell(|r| r.latency.p50_us, us),
            cell(|r| r.latency.p99_us, us),
            cell(|r| r.latency.p999_us, us),
            cell(|r| r.deliveries_per_s, si),
        );
    }
    Some(s)
}

/// Seconds of the window in which every CPU was at least 95% busy.
pub fn saturated_seconds(r: &RunResult) -> usize {
    r.series
        .iter()
        .filter(|p| {
            !p.machine_cpu.busy_pct.is_empty() && p.machine_cpu.busy_pct.iter().all(|b| *b >= 95.0)
        })
        .count()
}

/// Mean busy percent of each CPU over the measurement window.
pub fn core_busy(r: &RunResult) -> Vec<f64> {
    let n = r
        .series
        .iter()
        .map(|p| p.machine_cpu.busy_pct.len())
        .max()
        .unwrap_or(0);
    (0..n)
        .map(|i| {
            let v: Vec<f64> = r
                .series
                .iter()
                .filter_map(|p| p.machine_cpu.busy_pct.get(i).copied())
                .collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        })
        .collect()
}

/// One target check of a run.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    pub scenario: String,
    pub label: String,
    pub what: String,
    pub measured: String,
    pub pass: bool,
}

/// A ratio target's group of repeated runs: scenario, reference scenario, limit, base label.
type RatioKey<'a> = (&'a str, &'a str, f64, &'a str);

/// Checks each run against its scenario's targets; `runs` also supplies the reference runs of ratio
/// targets (same label, the named scenario). A ratio target measured in several rounds
/// (`REPEAT`) also gets one check of the median of its per-round ratios: each round pairs a run
/// with its reference taken minutes apart, while run-level noise on a shared machine moves one
/// run by more than the 10 % such a target allows.
pub fn check_targets(runs: &[RunResult]) -> Vec<TargetCheck> {
    let mut out = Vec::new();
    let mut ratios: Vec<(RatioKey, Vec<f64>)> = Vec::new();
    for r in runs {
        let t = &r.scenario.targets;
        let mut add = |what: String, measured: String, pass: bool| {
            out.push(TargetCheck {
                scenario: r.scenario.name.clone(),
                label: r.label.clone(),
                what,
                measured,
                pass,
            })
        };
        if let Some(m) = t.p99_us_max {
            add(
                format!("p99 ≤ {m} µs"),
                format!("{:.0} µs", r.latency.p99_us),
                r.latency.count > 0 && r.latency.p99_us <= m,
            );
        }
        if let Some(m) = t.p999_us_max {
            add(
                format!("p99.9 ≤ {m} µs"),
                format!("{:.0} µs", r.latency.p999_us),
                r.latency.count > 0 && r.latency.p999_us <= m,
            );
        }
        if let Some(m) = t.deliveries_per_s_min {
            add(
                format!("≥ {m} deliveries/s"),
                format!("{:.0}/s", r.deliveries_per_s),
                r.deliveries_per_s >= m,
            );
        }
        if let Some(m) = t.kib_per_connection_max {
            let v = r.server.as_ref().and_then(|s| s.kib_per_connection);
            add(
                format!("≤ {m} KiB server RSS per connection"),
                v.map_or("not sampled".into(), |v| format!("{v:.2} KiB")),
                v.is_some_and(|v| v <= m),
            );
        }
        if t.all_connected == Some(true) {
            let n = r.scenario.clients as u64;
            let ended: u64 = r.conns.disconnects.values().sum::<u64>() - r.conns.connect_failed;
            add(
                format!("all {n} clients connected, none dropped"),
                format!("{} connected, {} dropped", r.conns.connected, ended),
                r.conns.connected == n && ended == 0,
            );
        }
        if t.stalled_closed_1008 == Some(true) {
            let n = r.scenario.stalled_clients as u64;
            let c = r.stalled.close_codes.get("1008").copied().unwrap_or(0);
            add(
                format!("all {n} stalled clients closed with 1008"),
                format!("{c} with 1008"),
                c == n,
            );
        }
        if let (Some(name), Some(max)) = (&t.p99_reference_scenario, t.p99_ratio_max) {
            let reference = runs
                .iter()
                .find(|o| &o.scenario.name == name && o.label == r.label);
            match reference {
                Some(o) if o.latency.p99_us > 0.0 => {
                    let ratio = r.latency.p99_us / o.latency.p99_us;
                    let key = (
                        r.scenario.name.as_str(),
                        name.as_str(),
                        max,
                        base_label(&r.label),
                    );
                    push_grouped(&mut ratios, key, ratio);
                    add(
                        format!("p99 ≤ {max}x {name}'s"),
                        format!(
                            "{ratio:.2}x ({:.0} vs {:.0} µs)",
                            r.latency.p99_us, o.latency.p99_us
                        ),
                        ratio <= max,
                    );
                }
                _ => add(
                    format!("p99 ≤ {max}x {name}'s"),
                    format!("no {name} run"),
                    false,
                ),
            }
        }
    }
    for ((scenario, reference, max, label), v) in ratios {
        if v.len() < 2 {
            continue;
        }
        let n = v.len();
        let (median, lo, hi) = spread(v);
        out.push(TargetCheck {
            scenario: scenario.to_string(),
            label: label.to_string(),
            what: format!("median p99 ≤ {max}x {reference}'s (paired rounds)"),
            measured: format!("{median:.2}x ({lo:.2}-{hi:.2}) over {n} pairs"),
            pass: median <= max,
        });
    }
    out
}

/// The target checks as a markdown table.
pub fn targets_table(checks: &[TargetCheck]) -> String {
    let mut s =
        String::from("| scenario | server | target | measured | met |\n|---|---|---|---|---|\n");
    for c in checks {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            c.scenario,
            c.label,
            c.what,
            c.measured,
            if c.pass { "yes" } else { "**no**" }
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::config::Targets;

    fn run(name: &str, label: &str, p99: f64, targets: Targets) -> RunResult {
        RunResult {
            label: label.into(),
            scenario: Scenario {
                name: name.into(),
                clients: 2,
                stalled_clients: 1,
                targets,
                ..Default::default()
            },
            started_unix_s: 0,
            measured_s: 1.0,
            generator_threads: 1,
            latency: LatencySummary {
                count: 10,
                p99_us: p99,
                p999_us: p99 * 2.0,
                ..Default::default()
            },
            latency_distribution: vec![],
            deliveries_per_s: 1000.0,
            frames_per_s: 1000.0,
            bytes_per_s: 0.0,
            window: Counters::default(),
            run: Counters::default(),
            conns: ConnStats {
                connected: 2,
                ..Default::default()
            },
            stalled: ConnStats::default(),
            open_at_end: 2,
            server: None,
            loadgen_cpu_pct_mean: 0.0,
            loadgen_cpu_pct_max: 0.0,
            loadavg_start: None,
            loadavg_end: None,
            cpus: 2,
            series: vec![],
        }
    }

    #[test]
    fn targets_pass_and_fail() {
        let t = Targets {
            p99_us_max: Some(150.0),
            p999_us_max: Some(500.0),
            deliveries_per_s_min: Some(2000.0),
            all_connected: Some(true),
            stalled_closed_1008: Some(true),
            p99_reference_scenario: Some("ref".into()),
            p99_ratio_max: Some(1.1),
            kib_per_connection_max: Some(7.0),
        };
        let runs = vec![
            run("x", "a", 100.0, t),
            run("ref", "a", 95.0, Targets::default()),
        ];
        let c = check_targets(&runs);
        let by = |w: &str| c.iter().find(|c| c.what.starts_with(w)).unwrap().pass;
        assert!(by("p99 ≤ 150"));
        assert!(by("p99.9"));
        assert!(!by("≥ 2000"));
        assert!(by("all 2 clients"));
        assert!(!by("all 1 stalled"));
        assert!(by("p99 ≤ 1.1x")); // 100/95 = 1.05
        assert!(!by("≤ 7 KiB")); // not sampled
        assert!(targets_table(&c).contains("**no**"));
    }

    #[test]
    fn repeated_runs_are_summarized_as_median_and_range() {
        assert_eq!(base_label("tickwire-r12"), "tickwire");
        assert_eq!(base_label("tickwire-b-r2"), "tickwire-b");
        assert_eq!(base_label("node-ws"), "node-ws");
        assert_eq!(base_label("tickwire-r"), "tickwire-r");
        let t = Targets::default;
        let runs = vec![
            run("W1", "tickwire-r1", 200.0, t()),
            run("W1", "tickwire-r2", 150.0, t()),
            run("W1", "tickwire-r3", 400.0, t()),
            run("W1", "node-ws-r1", 300.0, t()),
            run("W3", "tickwire", 300.0, t()),
        ];
        let table = spread_table(&runs).expect("a repeated group");
        // Only W1/tickwire was repeated; its p99 median is the middle run, p99.9 twice it.
        assert_eq!(table.lines().count(), 3, "{table}");
        assert!(
            table.contains("| W1 | tickwire | 3 | 0 (0-0) | 200 (150-400) | 400 (300-800) |"),
            "{table}"
        );
        assert!(spread_table(&runs[3..]).is_none());
        assert_eq!(spread(vec![4.0, 1.0, 3.0, 2.0]), (2.5, 1.0, 4.0));
    }

    #[test]
    fn repeated_ratio_targets_add_the_median_of_the_paired_runs() {
        let t = || Targets {
            p99_reference_scenario: Some("ref".into()),
            p99_ratio_max: Some(1.1),
            ..Targets::default()
        };
        // Round 2 is a noisy outlier: only its own pair misses, the median passes.
        let runs = vec![
            run("x", "tickwire-r1", 100.0, t()),
            run("ref", "tickwire-r1", 100.0, Targets::default()),
            run("x", "tickwire-r2", 150.0, t()),
            run("ref", "tickwire-r2", 100.0, Targets::default()),
            run("x", "tickwire-r3", 95.0, t()),
            run("ref", "tickwire-r3", 100.0, Targets::default()),
            run("x", "node-ws", 300.0, t()),
            run("ref", "node-ws", 100.0, Targets::default()),
        ];
        let c = check_targets(&runs);
        let per_run: Vec<bool> = c
            .iter()
            .filter(|c| c.label.starts_with("tickwire-r"))
            .map(|c| c.pass)
            .collect();
        assert_eq!(per_run, [true, false, true]);
        let median: Vec<&TargetCheck> = c.iter().filter(|c| c.label == "tickwire").collect();
        assert_eq!(median.len(), 1, "{c:?}");
        assert!(
            median[0].what.starts_with("median p99 ≤ 1.1x ref's"),
            "{c:?}"
        );
        assert_eq!(median[0].measured, "1.00x (0.95-1.50) over 3 pairs");
        assert!(median[0].pass);
        // A server measured once gets no median row.
        assert!(!c
            .iter()
            .any(|c| c.label == "node-ws" && c.what.starts_with("median")));
    }
}
