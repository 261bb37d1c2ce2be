//! What `pinhole bench relay` prints: a progress line per step, the JSON object and the
//! table at the end.
//!
//! Definitions: a step is *lossless* when the generator sent every planned packet on
//! time (it kept pace: its sending took at most 2 % + 50 ms longer than planned), every
//! one arrived, and none later than `--late-ms` (one way; a relay that falls behind and
//! works off a queue delivers everything, late). *Packets/s per core* is delivered packets per CPU-second of the relay
//! process (utime+stime of all its threads, to the nanosecond from `/proc/PID/task/*/schedstat`). The
//! *added latency* at a step is the relay path's one-way latency percentile minus the same
//! percentile of the generator's own path (A's socket straight to B's, no relay) at the
//! same step. *Bytes per session*: the relay's VmRSS growth from no session to all
//! sessions, divided by the sessions.

use super::load::{Outcome, PERIOD, Phase};
use super::targets::{ALL, Target};
use super::{DRAIN, RelayBenchOptions};
use serde_json::{Map, Value, json};

/// A target's result: its steps and facts (command, memory), or why it has none.
pub(crate) type Measured = Result<(Vec<Step>, Value), String>;

/// One step's figures.
#[derive(Clone, Debug)]
pub(crate) struct Step {
    /// Target rate, packets/s.
    pub rate: u32,
    calls: usize,
    planned: u64,
    sent: u64,
    received: u64,
    duplicates: u64,
    foreign: u64,
    send_errors: u64,
    /// Received later than the bound.
    late: u64,
    late_ms: u128,
    send_seconds: f64,
    planned_seconds: f64,
    cpu_seconds: Option<f64>,
    latency_us: [Option<f64>; 3],
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

impl Step {
    /// The figures of `out`, a load of `planned_seconds` at `rate`.
    pub fn new(
        rate: u32,
        calls: usize,
        out: &Outcome,
        planned_seconds: f64,
        cpu_seconds: Option<f64>,
        late: std::time::Duration,
    ) -> Step {
        let bound = u32::try_from(late.as_nanos()).unwrap_or(u32::MAX);
        let late_count = out.latency_ns.len() - out.latency_ns.partition_point(|&l| l <= bound);
        Step {
            rate,
            calls,
            planned: out.planned,
            sent: out.sent,
            received: out.received,
            duplicates: out.duplicates,
            foreign: out.foreign,
            send_errors: out.send_errors,
            late: late_count as u64,
            late_ms: late.as_millis(),
            send_seconds: out.send_seconds,
            planned_seconds,
            cpu_seconds,
            latency_us: [
                out.latency_us(0.5),
                out.latency_us(0.99),
                out.latency_us(0.999),
            ],
        }
    }

    fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.received)
    }

    fn loss_ratio(&self) -> f64 {
        if self.sent == 0 {
            return 0.0;
        }
        self.lost() as f64 / self.sent as f64
    }

    /// The generator sent every planned packet, on time.
    pub fn kept_pace(&self) -> bool {
        self.sent == self.planned && self.send_seconds <= self.planned_seconds * 1.02 + 0.05
    }

    /// Every packet sent on time and delivered, none late.
    pub fn lossless(&self) -> bool {
        self.kept_pace() && self.lost() == 0 && self.late == 0
    }

    fn delivered_pps(&self) -> f64 {
        self.received as f64 / self.planned_seconds
    }

    fn cpu_percent(&self) -> Option<f64> {
        let wall = self.send_seconds + DRAIN.as_secs_f64();
        self.cpu_seconds.map(|c| 100.0 * c / wall)
    }

    fn pps_per_core(&self) -> Option<f64> {
        self.cpu_seconds
            .filter(|&c| c > 0.0)
            .map(|c| self.received as f64 / c)
    }

    /// The progress line.
    pub fn progress(&self) -> String {
        let l = |x: Option<f64>| x.map_or("—".into(), |v| format!("{v:.0}"));
        format!(
            "{:>7} pps ({:>4} calls): delivered {:>7.0} pps, lost {} ({:.4} %), late {}, CPU {} % → {} pps/core, \
             latency p50/p99/p999 {}/{}/{} µs{}",
            self.rate,
            self.calls,
            self.delivered_pps(),
            self.lost(),
            100.0 * self.loss_ratio(),
            self.late,
            self.cpu_percent().map_or("—".into(), |c| format!("{c:.0}")),
            l(self.pps_per_core()),
            l(self.latency_us[0]),
            l(self.latency_us[1]),
            l(self.latency_us[2]),
            if self.kept_pace() {
                String::new()
            } else {
                format!(
                    "  [generator behind: sent {} of {} in {:.2} s of {:.2}]",
                    self.sent, self.planned, self.send_seconds, self.planned_seconds
                )
            }
        )
    }

    /// The step as JSON.
    pub fn json(&self) -> Value {
        let r = |x: Option<f64>| x.map(|v| round(v, 1));
        json!({
            "rate_pps": self.rate,
            "calls": self.calls,
            "planned": self.planned,
            "sent": self.sent,
            "received": self.received,
            "lost": self.lost(),
            "loss_ratio": self.loss_ratio(),
            "late": self.late,
            "late_ms": self.late_ms,
            "duplicates": self.duplicates,
            "foreign": self.foreign,
            "send_errors": self.send_errors,
            "delivered_pps": round(self.delivered_pps(), 0),
            "cpu_percent": r(self.cpu_percent()),
            "pps_per_core": self.pps_per_core().map(|v| round(v, 0)),
            "latency_us": {"p50": r(self.latency_us[0]), "p99": r(self.latency_us[1]), "p999": r(self.latency_us[2])},
            "generator_kept_pace": self.kept_pace(),
            "send_seconds": round(self.send_seconds, 3),
            "lossless": self.lossless(),
        })
    }
}

/// The highest lossless step's delivered rate.
fn max_lossless(steps: &[Step]) -> Option<f64> {
    steps
        .iter()
        .filter(|s| s.lossless())
        .map(|s| round(s.delivered_pps(), 0))
        .reduce(f64::max)
}

/// The JSON object of a `--compare` (or one-target) run.
pub(crate) fn summary(
    null: &[Step],
    results: &[(Target, Measured)],
    opts: &RelayBenchOptions,
) -> Map<String, Value> {
    let lossless_at =
        |steps: &[Step], rate: u32| steps.iter().any(|s| s.rate == rate && s.lossless());
    // The highest step every measured target (and the generator's own path) passed.
    let measured: Vec<&Vec<Step>> = results
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok().map(|(s, _)| s))
        .collect();
    let common = opts
        .rates()
        .into_iter()
        .filter(|&r| lossless_at(null, r) && measured.iter().all(|s| lossless_at(s, r)))
        .max();
    let at = |steps: &[Step], rate: Option<u32>| -> Option<Step> {
        rate.and_then(|r| steps.iter().find(|s| s.rate == r).cloned())
    };
    let mut out = Map::new();
    let mut targets = Map::new();
    let (mut max_pps, mut p99, mut loss, mut bytes, mut unavailable) =
        (Map::new(), Map::new(), Map::new(), Map::new(), Map::new());
    for t in ALL {
        let name = t.name();
        let Some((_, r)) = results.iter().find(|(x, _)| *x == t) else {
            let why = "not selected (use --compare or --target)";
            unavailable.insert(name.into(), json!(why));
            for m in [&mut max_pps, &mut p99, &mut loss, &mut bytes] {
                m.insert(name.into(), Value::Null);
            }
            out.insert(format!("{name}_pps_per_core"), Value::Null);
            out.insert(format!("{name}_max_lossless_pps"), Value::Null);
            continue;
        };
        match r {
            Err(why) => {
                unavailable.insert(name.into(), json!(why));
                for m in [&mut max_pps, &mut p99, &mut loss, &mut bytes] {
                    m.insert(name.into(), Value::Null);
                }
                out.insert(format!("{name}_pps_per_core"), Value::Null);
                out.insert(format!("{name}_max_lossless_pps"), Value::Null);
                let key = if why.starts_with("error: ") {
                    "error"
                } else {
                    "why"
                };
                targets.insert(name.into(), json!({"available": false, key: why}));
            }
            Ok((steps, info)) => {
                let c = at(steps, common);
                let n = at(null, common);
                let added = |i: usize| {
                    c.as_ref()
                        .zip(n.as_ref())
                        .and_then(|(c, n)| c.latency_us[i].zip(n.latency_us[i]))
                        .map(|(a, b)| round(a - b, 1))
                };
                let ppc = c.as_ref().and_then(Step::pps_per_core).map(|v| round(v, 0));
                let m = max_lossless(steps);
                out.insert(format!("{name}_pps_per_core"), json!(ppc));
                out.insert(format!("{name}_max_lossless_pps"), json!(m));
                max_pps.insert(name.into(), json!(m));
                p99.insert(name.into(), json!(added(1)));
                loss.insert(name.into(), json!(steps.last().map(Step::loss_ratio)));
                bytes.insert(name.into(), info["bytes_per_session"].clone());
                let mut v = info.clone();
                v["available"] = json!(true);
                v["max_lossless_pps"] = json!(m);
                v["at_common_step"] = json!({
                    "pps_per_core": ppc,
                    "cpu_percent": c.as_ref().and_then(Step::cpu_percent).map(|x| round(x, 1)),
                    "latency_us": c.as_ref().map(|c| c.json()["latency_us"].clone()),
                    "added_latency_us": {"p50": added(0), "p99": added(1), "p999": added(2)},
                });
                v["steps"] = steps.iter().map(Step::json).collect();
                targets.insert(name.into(), v);
            }
        }
    }
    out.insert("common_step_pps".into(), json!(common));
    out.insert("max_lossless_pps".into(), Value::Object(max_pps));
    out.insert("p99_added_latency_us".into(), Value::Object(p99));
    out.insert("loss_ratio".into(), Value::Object(loss));
    out.insert("bytes_per_session".into(), Value::Object(bytes));
    out.insert("unavailable".into(), Value::Object(unavailable));
    let null_steps: Vec<Value> = null.iter().map(Step::json).collect();
    out.insert(
        "generator".into(),
        json!({
            "path": "A leg → B leg inside the generator host, no relay",
            "max_lossless_pps": max_lossless(null),
            "steps": null_steps,
        }),
    );
    out.insert("targets".into(), Value::Object(targets));
    out.insert("rates".into(), json!(opts.rates()));
    out.insert("step_seconds".into(), json!(opts.step_seconds));
    out
}

/// The table at the end of a run.
pub(crate) fn print_table(out: &Map<String, Value>, opts: &RelayBenchOptions) {
    let common = out["common_step_pps"].as_u64();
    println!(
        "pinhole bench relay — G.711 calls (172-byte RTP, 50 pps each way), steps {:?} pps, {} s each",
        opts.rates(),
        opts.step_seconds
    );
    println!(
        "generator's own path (no relay): max lossless {} pps",
        out["generator"]["max_lossless_pps"]
            .as_f64()
            .map_or("— (no step)".into(), |v| format!("{v:.0}"))
    );
    println!(
        "figures at the highest step every target delivered without loss: {}",
        common.map_or("none".into(), |c| format!("{c} pps"))
    );
    println!(
        "{:<10} {:>16} {:>14} {:>8} {:>24} {:>14}",
        "target",
        "max lossless pps",
        "pps per core",
        "CPU %",
        "added p50/p99/p999 µs",
        "bytes/session"
    );
    for t in ALL {
        let v = &out["targets"][t.name()];
        if v.is_null() {
            continue;
        }
        if v["available"] == json!(false) {
            let why = v["why"].as_str().or(v["error"].as_str()).unwrap_or("");
            println!("{:<10} {why}", t.name());
            continue;
        }
        let c = &v["at_common_step"];
        let f = |x: &Value| x.as_f64().map_or("—".into(), |v| format!("{v:.0}"));
        let a = &c["added_latency_us"];
        println!(
            "{:<10} {:>16} {:>14} {:>8} {:>24} {:>14}",
            t.name(),
            f(&v["max_lossless_pps"]),
            f(&c["pps_per_core"]),
            f(&c["cpu_percent"]),
            format!("{}/{}/{}", f(&a["p50"]), f(&a["p99"]), f(&a["p999"])),
            f(&v["bytes_per_session"]),
        );
    }
    println!(
        "load average before {}, after {}",
        out["loadavg_before"].as_str().unwrap_or(""),
        out["loadavg_after"].as_str().unwrap_or("")
    );
}

/// The result of `--overload` for one target.
pub(crate) fn overload_json(
    t: Target,
    limit: &str,
    lossless: u32,
    phases: &[Phase; 2],
    out: &Outcome,
    steps: &[Step],
    late: std::time::Duration,
) -> Value {
    let rounds_per_s = (1.0 / PERIOD.as_secs_f64()) as u32;
    // Phase 1: how evenly the excess was dropped (per-stream delivered fraction).
    let (mut lo, mut hi) = (f64::MAX, 0f64);
    for s in out.streams.iter().take(2 * phases[0].calls) {
        let (Some(a), b) = (
            s.phase_first.first().copied().flatten(),
            s.phase_first.get(1).copied().flatten().unwrap_or(s.sent),
        ) else {
            continue;
        };
        if b <= a {
            continue;
        }
        let got = (a..b).filter(|&q| s.got(q)).count();
        let f = got as f64 / f64::from(b - a);
        lo = lo.min(f);
        hi = hi.max(f);
    }
    // Phase 2: per stream, how long after the load fell it delivers every packet again.
    let mut recovery_ms: Vec<u32> = Vec::new();
    let mut never = 0;
    for s in out.streams.iter().take(2 * phases[1].calls) {
        let Some(first) = s.phase_first.get(1).copied().flatten() else {
            continue;
        };
        match s.last_missing_from(first) {
            None => recovery_ms.push(0),
            Some(m) if s.sent.saturating_sub(m) <= rounds_per_s => never += 1,
            Some(m) => recovery_ms.push((m - first + 1) * PERIOD.as_millis() as u32),
        }
    }
    recovery_ms.sort_unstable();
    let streams = recovery_ms.len() + never;
    let within = recovery_ms.iter().filter(|&&ms| ms <= 1000).count();
    json!({
        "available": true,
        "target": t.name(),
        "limit": limit,
        "lossless_pps_under_limit": lossless,
        "lossless_means": "none lost, none later than late_ms",
        "overload_pps": phases[0].calls as u32 * super::PPS_PER_CALL,
        "recovery_pps": phases[1].calls as u32 * super::PPS_PER_CALL,
        "sent": out.sent,
        "received": out.received,
        "phase_start_s": out.phase_start.iter().map(|s| round(*s, 3)).collect::<Vec<_>>(),
        "overload_delivered_fraction_per_stream": {"min": (lo <= hi).then_some(round(lo, 3)), "max": (lo <= hi).then_some(round(hi, 3))},
        "recovery_streams": streams,
        "recovered_within_1s": within,
        "not_recovered": streams - within,
        "still_losing_in_last_second": never,
        "late": out.latency_ns.iter().filter(|&&l| u128::from(l) > late.as_nanos()).count(),
        "late_ms": late.as_millis(),
        "recovery_ms": {
            "p50": recovery_ms.get(recovery_ms.len() / 2),
            "max": recovery_ms.last(),
        },
        "steps_under_limit": steps.iter().map(Step::json).collect::<Vec<_>>(),
    })
}

/// The human output of `--overload`.
pub(crate) fn print_overload(out: &Map<String, Value>) {
    println!(
        "pinhole bench relay --overload — CPU cap {} % of one core; {}× the lossless rate for {} s, then 50 % for {} s; \
         in time: ≤ {} ms one way",
        out["cpu_limit_percent"],
        out["overload_factor"],
        out["overload_seconds"],
        out["recovery_seconds"],
        out["late_ms"]
    );
    for t in ALL {
        let v = &out["targets"][t.name()];
        if v.is_null() {
            continue;
        }
        if let Some(why) = v["why"].as_str().or(v["error"].as_str()) {
            println!("{:<10} {why}", t.name());
            continue;
        }
        println!(
            "{:<10} limit: {}\n           lossless {} pps under the limit; overload {} pps: per-stream delivered {}–{}; \
             {} lost, {} late; then {} pps: {} of {} streams delivered every packet in time again within 1 s (p50 {} ms, max {} ms), {} still losing or late in the last second",
            t.name(),
            v["limit"].as_str().unwrap_or(""),
            v["lossless_pps_under_limit"],
            v["overload_pps"],
            v["overload_delivered_fraction_per_stream"]["min"],
            v["overload_delivered_fraction_per_stream"]["max"],
            v["sent"]
                .as_u64()
                .unwrap_or(0)
                .saturating_sub(v["received"].as_u64().unwrap_or(0)),
            v["late"],
            v["recovery_pps"],
            v["recovered_within_1s"],
            v["recovery_streams"],
            v["recovery_ms"]["p50"],
            v["recovery_ms"]["max"],
            v["still_losing_in_last_second"],
        );
    }
}
