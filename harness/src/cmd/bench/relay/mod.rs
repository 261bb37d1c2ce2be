//! `pinhole bench relay`: simulated G.711 calls through a media relay at stepped rates —
//! delivered packets/s, loss, the relay's CPU (utime+stime of its process, % of one
//! core), packets/s per relay core, one-way latency (p50/p99/p999) and memory per session —
//! for pinhole's relay and, with `--compare`, in the same run and the same steps, Debian's
//! rtpengine (userspace), coturn (TURN channels) and a do-nothing forwarder.
//!
//! Topology, inside pinhole's sandbox (its own user + PID + mount + network namespaces):
//! two namespaces, `r-gen` (the generator, 198.51.100.2) and `r-relay` (the relay under
//! test, 198.51.100.1), joined by one veth pair — Linux's forwarding path and nothing
//! else. Unlike `bench nat`, no packet crosses pinhole's kernel-fabric engine: the figures
//! price the relay, not the emulator.
//!
//! | module | what it is |
//! |---|---|
//! | `load` | the load generator (paced RTP, batched raw sends, per-stream receive) |
//! | `targets` | the relays: started by PID, sessions over stdin, ng or TURN |
//! | `forwarder` | the hidden `bench-relay-forwarder`: the do-nothing baseline |
//! | `limit` | the cgroup CPU limit of `--overload` |
//! | `report` | per-step figures, the JSON object and the table |

pub mod forwarder;
mod limit;
mod load;
mod report;
mod targets;

pub use targets::Target;

use super::nat::{find_program, run_in};
use super::procstat::{loadavg, process_cpu_ns};
use crate::cli::{EXIT_FAIL, EXIT_INVALID, EXIT_PASS};
use anyhow::{Result, anyhow};
use emulator::fabric::kernel::sys::{self, HostNs};
use load::{Legs, Outcome, Phase, RawSender, Route};
use report::Step;
use serde_json::{Value, json};
use std::process::{Child, Stdio};
use std::time::Duration;
use targets::Running;

/// The generator host's address.
pub(crate) const GEN_ADDR: &str = "198.51.100.2";
/// The relay host's address.
pub(crate) const RELAY_ADDR: &str = "198.51.100.1";
/// The relays' ng control port (rtpengine's customary one).
pub(crate) const NG_PORT: u16 = 2223;
/// coturn's listening port.
pub(crate) const TURN_PORT: u16 = 3478;
/// The relays' media port range.
pub(crate) const PORT_MIN: u16 = 20000;
/// The relays' media port range (last port).
pub(crate) const PORT_MAX: u16 = 39999;
/// Packets per second of one call (50 each way).
const PPS_PER_CALL: u32 = 100;
/// Time after a load for packets still in flight.
const DRAIN: Duration = Duration::from_millis(300);
/// Time after the overload run for packets still queued in the relay.
const OVERLOAD_DRAIN: Duration = Duration::from_secs(1);
/// Most calls: each takes two generator sockets and up to four relay ports.
const MAX_CALLS: u32 = 4000;
/// The steps of a run without `--rates`.
const DEFAULT_RATES: [u32; 7] = [20_000, 50_000, 100_000, 150_000, 200_000, 250_000, 300_000];
/// The steps of an `--overload` search without `--rates`.
const DEFAULT_OVERLOAD_RATES: [u32; 7] = [10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 150_000];

impl RelayBenchOptions {
    /// The steps: `--rates`, or the mode's default.
    pub fn rates(&self) -> Vec<u32> {
        match &self.rates {
            Some(r) => r.clone(),
            None if self.overload => DEFAULT_OVERLOAD_RATES.to_vec(),
            None => DEFAULT_RATES.to_vec(),
        }
    }
}

/// Options of `pinhole bench relay`.
#[derive(Clone, Debug, clap::Args)]
pub struct RelayBenchOptions {
    /// Target packet rates of the steps, packets/s over both directions (a call is 100:
    /// 50 each way), in increasing order; a target's steps stop after its first that is
    /// not lossless (a packet lost or late, or the generator behind).
    /// Default 20000,50000,100000,150000,200000,250000,300000; with `--overload`
    /// 10000,20000,40000,60000,80000,100000,150000 (the search under the CPU cap).
    #[arg(long, value_delimiter = ',')]
    pub rates: Option<Vec<u32>>,
    /// Length of each step, seconds (bounds its packets: rate × seconds).
    #[arg(long, default_value_t = 2.0)]
    pub step_seconds: f64,
    /// The relay measured without `--compare`.
    #[arg(long, value_enum, default_value = "pinhole")]
    pub target: Target,
    /// Run the same steps, in the same run, through every available target: the
    /// do-nothing forwarder, rtpengine, coturn and pinhole's relay.
    #[arg(long)]
    pub compare: bool,
    /// Overload test instead of the steps: cap the target's CPU (a cgroup), find its
    /// highest lossless step under that cap (none lost, none late), then send
    /// `--overload-factor` × that for `--overload-seconds` and 50 % for
    /// `--recovery-seconds`, and report per stream when it delivers every packet in time
    /// again.
    #[arg(long)]
    pub overload: bool,
    /// The overload of `--overload`: this many times the lossless rate.
    #[arg(long, default_value_t = 2)]
    pub overload_factor: u32,
    /// The CPU cap of `--overload`, % of one core.
    #[arg(long, default_value_t = 25)]
    pub cpu_limit: u32,
    /// Length of the overload, seconds.
    #[arg(long, default_value_t = 5.0)]
    pub overload_seconds: f64,
    /// Length of the 50 % load after the overload, seconds.
    #[arg(long, default_value_t = 3.0)]
    pub recovery_seconds: f64,
    /// A packet later than this (one way, milliseconds) counts against a step as a lost
    /// one does — a phone's jitter buffer would drop it; a relay that queues instead of
    /// keeping up is not lossless.
    #[arg(long, default_value_t = 50)]
    pub late_ms: u32,
    /// Print one JSON object on stdout (progress stays on stderr).
    #[arg(long)]
    pub json: bool,
}

/// The two namespaces and the veth pair between them.
struct Topo {
    gen_ns: HostNs,
    relay: HostNs,
    holders: Vec<Child>,
}

impl Topo {
    fn setup() -> Result<Topo> {
        let ip_cmd = find_program("ip")
            .ok_or_else(|| anyhow!("`ip` is not installed (Debian package iproute2)"))?;
        let hosts = format!("127.0.0.1\tlocalhost\n{GEN_ADDR}\tgen\n{RELAY_ADDR}\trelay\n");
        let gen_ns = HostNs::create("r-gen", &hosts).map_err(|e| anyhow!("{e}"))?;
        let relay = HostNs::create("r-relay", &hosts).map_err(|e| anyhow!("{e}"))?;
        let mut t = Topo {
            gen_ns,
            relay,
            holders: Vec::new(),
        };
        // `ip link … netns PID` needs a process in the target namespace: a bounded sleep.
        let holder = t
            .relay
            .spawn(
                &["sleep".to_string(), "3600".to_string()],
                &[],
                Stdio::null(),
                Stdio::null(),
                Stdio::null(),
            )
            .map_err(|e| anyhow!("{e}"))?;
        let pid = holder.id().to_string();
        t.holders.push(holder);
        let ip_cmd = ip_cmd.as_str();
        run_in(
            &t.gen_ns,
            &[
                ip_cmd, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns",
                &pid,
            ],
            None,
        )?;
        for (ns, addr) in [(&t.gen_ns, GEN_ADDR), (&t.relay, RELAY_ADDR)] {
            run_in(
                ns,
                &[ip_cmd, "-batch", "-"],
                Some(&format!(
                    "addr add {addr}/24 dev eth0\nlink set eth0 up\nlink set lo up\n"
                )),
            )?;
        }
        Ok(t)
    }
}

impl Drop for Topo {
    fn drop(&mut self) {
        for c in &mut self.holders {
            let _ = sys::signal(c.id(), sys::SIGKILL);
            let _ = c.wait();
        }
    }
}

/// The bench's state: topology, legs, generator.
struct Bench {
    topo: Topo,
    legs: Legs,
    raw: RawSender,
    seconds: f64,
    late: Duration,
}

impl Bench {
    /// Routes of the generator's own path: A's leg straight to B's and back.
    fn null_routes(&self) -> Vec<Route> {
        (0..self.legs.calls())
            .map(|i| Route {
                a_to: self.legs.b_addr(i),
                b_to: self.legs.a_addr(i),
                a_channel: None,
            })
            .collect()
    }

    fn rounds(&self, seconds: f64) -> u32 {
        ((seconds * 1000.0 / load::PERIOD.as_millis() as f64).round() as u32).max(1)
    }

    /// One step: `rate` packets/s for the bench's seconds through `routes`, with the CPU
    /// of `pid` counted when given.
    fn step(&self, rate: u32, routes: &[Route], pid: Option<u32>) -> Result<(Step, Outcome)> {
        let calls = (rate / PPS_PER_CALL).max(1) as usize;
        let phases = [Phase {
            calls,
            rounds: self.rounds(self.seconds),
        }];
        let t0 = pid.and_then(process_cpu_ns);
        let out = load::run(&self.raw, &self.legs, routes, &phases, DRAIN, self.late)?;
        let t1 = pid.and_then(process_cpu_ns);
        let cpu_s = t0.zip(t1).map(|(a, b)| b.saturating_sub(a) as f64 / 1e9);
        let planned_s = f64::from(phases[0].rounds) * load::PERIOD.as_secs_f64();
        Ok((
            Step::new(rate, calls, &out, planned_s, cpu_s, self.late),
            out,
        ))
    }

    /// The steps through `routes` until the first that does not `pass`.
    fn steps(
        &self,
        name: &str,
        rates: &[u32],
        routes: &[Route],
        mut running: Option<&mut Running>,
        pass: fn(&Step) -> bool,
    ) -> Result<Vec<Step>> {
        let mut steps = Vec::new();
        for &rate in rates {
            if let Some(r) = running.as_deref_mut() {
                r.check_alive()?;
            }
            let pid = running.as_deref().map(Running::pid);
            let (s, _) = self.step(rate, routes, pid)?;
            eprintln!("pinhole bench relay: {name:<10} {}", s.progress());
            let passed = pass(&s);
            steps.push(s);
            if !passed {
                break;
            }
        }
        Ok(steps)
    }
}

/// `pinhole bench relay`: returns the exit code.
pub fn relay(opts: &RelayBenchOptions) -> Result<u8> {
    if !(opts.step_seconds >= 0.2 && opts.step_seconds <= 60.0) {
        eprintln!("pinhole: --step-seconds must be between 0.2 and 60");
        return Ok(EXIT_INVALID);
    }
    if !(1..=8).contains(&opts.overload_factor) {
        eprintln!("pinhole: --overload-factor must be between 1 and 8");
        return Ok(EXIT_INVALID);
    }
    let factor = if opts.overload {
        opts.overload_factor
    } else {
        1
    };
    let max_rate = MAX_CALLS * PPS_PER_CALL / factor;
    let rates = opts.rates();
    if rates.is_empty()
        || rates.iter().any(|&r| r < PPS_PER_CALL || r > max_rate)
        || rates.windows(2).any(|w| w[0] >= w[1])
    {
        eprintln!(
            "pinhole: --rates must be increasing, each between {PPS_PER_CALL} and {max_rate} packets/s"
        );
        return Ok(EXIT_INVALID);
    }
    if opts.late_ms == 0 || opts.late_ms > 10_000 {
        eprintln!("pinhole: --late-ms must be between 1 and 10000");
        return Ok(EXIT_INVALID);
    }
    if opts.overload
        && (opts.cpu_limit == 0
            || opts.cpu_limit > 100
            || !(opts.overload_seconds > 0.0 && opts.overload_seconds <= 60.0)
            || !(opts.recovery_seconds >= 1.0 && opts.recovery_seconds <= 60.0))
    {
        eprintln!(
            "pinhole: --cpu-limit must be 1..100, --overload-seconds 0..60, --recovery-seconds 1..60"
        );
        return Ok(EXIT_INVALID);
    }
    if let Err(code) = super::enter_sandbox() {
        return Ok(code);
    }
    let max = *rates.last().unwrap_or(&PPS_PER_CALL);
    let calls = (max / PPS_PER_CALL * factor) as usize;
    if let Err(e) = sys::raise_open_files_limit() {
        eprintln!("pinhole bench relay: could not raise the open files limit: {e}");
    }
    let topo = Topo::setup()?;
    let legs = Legs::open(&topo.gen_ns, super::ip(GEN_ADDR), calls)?;
    let raw = RawSender::open(&topo.gen_ns)?;
    let bench = Bench {
        topo,
        legs,
        raw,
        seconds: opts.step_seconds,
        late: Duration::from_millis(u64::from(opts.late_ms)),
    };
    let load_before = loadavg();
    eprintln!(
        "pinhole bench relay: generator {GEN_ADDR} ⇄ relay {RELAY_ADDR} (veth), {calls} calls of G.711 \
         (172-byte RTP, 50 packets/s each way), {} s per step; load average {load_before}",
        opts.step_seconds
    );
    let targets: Vec<Target> = if opts.compare {
        targets::ALL.to_vec()
    } else {
        vec![opts.target]
    };
    let mut out = if opts.overload {
        overload(&bench, &targets, opts)?
    } else {
        compare(&bench, &targets, opts)?
    };
    out.insert("loadavg_before".into(), json!(load_before));
    out.insert("loadavg_after".into(), json!(loadavg()));
    let failed = out
        .get("targets")
        .and_then(Value::as_object)
        .is_some_and(|t| t.values().any(|v| v.get("error").is_some()));
    if opts.json {
        println!("{}", Value::Object(out));
    } else if opts.overload {
        report::print_overload(&out);
    } else {
        report::print_table(&out, opts);
    }
    Ok(if failed { EXIT_FAIL } else { EXIT_PASS })
}

/// The steps through the generator's own path, then each target.
fn compare(
    bench: &Bench,
    targets: &[Target],
    opts: &RelayBenchOptions,
) -> Result<serde_json::Map<String, Value>> {
    let null_routes = bench.null_routes();
    let null = bench.steps(
        "generator",
        &opts.rates(),
        &null_routes,
        None,
        Step::lossless,
    )?;
    let mut results: Vec<(Target, report::Measured)> = Vec::new();
    for &t in targets {
        let r = match t.argv() {
            Err(why) => {
                eprintln!("pinhole bench relay: {}: {why}", t.name());
                Err(why)
            }
            Ok(_) => measure(bench, t, &opts.rates()).map_err(|e| {
                eprintln!("pinhole bench relay: {}: {e:#}", t.name());
                format!("error: {e:#}")
            }),
        };
        results.push((t, r));
    }
    Ok(report::summary(&null, &results, opts))
}

/// Start `t`, run the steps, stop it.
fn measure(bench: &Bench, t: Target, rates: &[u32]) -> Result<(Vec<Step>, Value)> {
    eprintln!(
        "pinhole bench relay: {}: starting, {} sessions…",
        t.name(),
        bench.legs.calls()
    );
    let mut running = Running::start(t, &bench.topo.relay, &bench.topo.gen_ns, &bench.legs)?;
    let routes = running.routes.clone();
    let steps = bench.steps(t.name(), rates, &routes, Some(&mut running), Step::lossless)?;
    let info = json!({
        "command": running.command,
        "sessions": running.routes.len(),
        "rss_idle_kib": running.rss_idle_kib,
        "rss_sessions_kib": running.rss_sessions_kib,
        "bytes_per_session": running.bytes_per_session(),
    });
    Ok((steps, info))
}

/// `--overload` for each target.
fn overload(
    bench: &Bench,
    targets: &[Target],
    opts: &RelayBenchOptions,
) -> Result<serde_json::Map<String, Value>> {
    let mut per = serde_json::Map::new();
    for &t in targets {
        let v = match t.argv() {
            Err(why) => json!({"available": false, "why": why}),
            Ok(_) => match overload_one(bench, t, opts) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("pinhole bench relay: {}: {e:#}", t.name());
                    json!({"available": true, "error": format!("{e:#}")})
                }
            },
        };
        per.insert(t.name().into(), v);
    }
    let mut out = serde_json::Map::new();
    out.insert("mode".into(), json!("overload"));
    out.insert("cpu_limit_percent".into(), json!(opts.cpu_limit));
    out.insert("overload_factor".into(), json!(opts.overload_factor));
    out.insert("late_ms".into(), json!(opts.late_ms));
    out.insert("overload_seconds".into(), json!(opts.overload_seconds));
    out.insert("recovery_seconds".into(), json!(opts.recovery_seconds));
    out.insert("targets".into(), Value::Object(per));
    Ok(out)
}

fn overload_one(bench: &Bench, t: Target, opts: &RelayBenchOptions) -> Result<Value> {
    let mut running = Running::start(t, &bench.topo.relay, &bench.topo.gen_ns, &bench.legs)?;
    let limit = limit::CpuLimit::apply(running.pid(), opts.cpu_limit)?;
    eprintln!(
        "pinhole bench relay: {}: limited by {}",
        t.name(),
        limit.how
    );
    let routes = running.routes.clone();
    let steps = bench.steps(
        t.name(),
        &opts.rates(),
        &routes,
        Some(&mut running),
        Step::lossless,
    )?;
    let Some(lossless) = steps.iter().filter(|s| s.lossless()).map(|s| s.rate).max() else {
        return Ok(json!({
            "available": true,
            "limit": limit.how,
            "error": format!("no step was lossless under the limit: {}", steps.first().map(Step::progress).unwrap_or_default()),
            "steps": steps.iter().map(Step::json).collect::<Vec<_>>(),
        }));
    };
    let high = (opts.overload_factor * lossless / PPS_PER_CALL) as usize;
    let low = ((lossless / 2) / PPS_PER_CALL).max(1) as usize;
    let phases = [
        Phase {
            calls: high,
            rounds: bench.rounds(opts.overload_seconds),
        },
        Phase {
            calls: low,
            rounds: bench.rounds(opts.recovery_seconds),
        },
    ];
    eprintln!(
        "pinhole bench relay: {}: overload {} packets/s for {} s, then {} packets/s for {} s…",
        t.name(),
        high as u32 * PPS_PER_CALL,
        opts.overload_seconds,
        low as u32 * PPS_PER_CALL,
        opts.recovery_seconds
    );
    running.check_alive()?;
    // Long enough for late packets to arrive: they count as late, not lost.
    let out = load::run(
        &bench.raw,
        &bench.legs,
        &routes,
        &phases,
        OVERLOAD_DRAIN,
        bench.late,
    )?;
    running.check_alive()?;
    let v = report::overload_json(t, &limit.how, lossless, &phases, &out, &steps, bench.late);
    drop(running);
    drop(limit);
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_ports_hold_every_call() {
        // rtpengine takes RTP + RTCP ports on both sides: four per call; the forwarder two.
        assert!(u32::from(PORT_MAX - PORT_MIN + 1) >= 4 * MAX_CALLS);
    }
}
