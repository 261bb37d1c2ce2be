//! `pinhole bench latency`: how long a packet or a request waits in pinhole's drivers, on
//! the kernel fabric (issue #11: timers that round to milliseconds and sleep-poll loops).
//!
//! Measured, in one sandbox:
//!
//! 1. UDP echo round trip from host `a` (10.0.1.2, behind a port-restricted NAT) to host
//!    `b` (203.0.113.5), the topology of `pinhole bench nat`: with 0-delay links, then with
//!    b's link delayed 30 ms each way. The echo server and the client are sockets of this
//!    process inside the hosts' namespaces, blocking on `recv` (no polling of their own), so
//!    the figures are the engine thread's. The difference of the medians should be the
//!    60 ms the link adds, no more.
//! 2. A SIP OPTIONS round trip (RFC 3261 §11) from `a` to `pinhole serve proxy` on `b`
//!    (a separate process), and to the scenario `sip-proxy` service of a kernel-fabric
//!    scenario (the service runs inside the scenario runner's driver loop). The client is
//!    the hidden `bench-sip-options` subcommand, run inside host `a` (as a `run` step in
//!    the scenario).
//! 3. The CPU an idle `pinhole serve proxy` and an idle `pinhole serve turn` use over
//!    `--idle-seconds`: on-CPU time of all their threads from `/proc/PID/task/*/schedstat`
//!    (nanoseconds; `/proc/PID/stat`'s clock ticks are too coarse for 0.1 % of 10 s).
//!
//! Bounded: a fixed number of round trips per measurement, each with a 1 s timeout (a lost
//! one counts as lost), and a time limit per measurement. The servers are stopped by PID;
//! the sandbox takes the namespaces and anything left with it.

use crate::cli::{EXIT_FAIL, EXIT_INVALID, EXIT_PASS};
use crate::cmd::bench::nat::topology;
use crate::cmd::bench::procstat::process_cpu_ns;
use anyhow::{Context, Result, anyhow, bail};
use emulator::fabric::kernel::sys::{self, HostNs};
use emulator::link::LinkConfig;
use emulator::topology::Attachment;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Host A's address (behind the NAT), as in [`topology`].
const A_ADDR: &str = "10.0.1.2";
/// Host B's address (on the internet), as in [`topology`].
const B_ADDR: &str = "203.0.113.5";
/// The UDP echo port on B.
const ECHO_PORT: u16 = 7007;
/// The SIP port of `serve proxy` on B.
const SIP_PORT: u16 = 5060;
/// The TURN port of `serve turn` on B.
const TURN_PORT: u16 = 3478;
/// The one-way delay of the delayed link.
const LINK_DELAY: Duration = Duration::from_millis(30);
/// How long one round trip may take before it counts as lost.
const RTT_TIMEOUT: Duration = Duration::from_secs(1);
/// Round trips before each measurement that are not counted (NAT mapping, ARP-free TUN
/// start, the servers' first allocations).
const WARMUP: u32 = 20;
/// How long a server gets to answer its first request.
const START_WAIT: Duration = Duration::from_secs(10);

/// Options of `pinhole bench latency`.
#[derive(Clone, Debug)]
pub struct LatencyBenchOptions {
    /// Round trips per measurement with 0-delay links (UDP echo, SIP OPTIONS).
    pub count: u32,
    /// Round trips with the 30 ms link (each takes 60 ms).
    pub delayed_count: u32,
    /// How long the idle servers' CPU is measured, seconds.
    pub idle_seconds: f64,
    /// Print one JSON object on stdout instead of the table.
    pub json: bool,
}

use super::{ip, now};

/// Round-trip times of one measurement.
#[derive(Clone, Debug, Default)]
struct Rtts {
    samples: Vec<Duration>,
    lost: u32,
}

impl Rtts {
    /// The `p`-quantile (nearest rank), in µs.
    fn quantile_us(&self, p: f64) -> Option<f64> {
        let mut s = self.samples.clone();
        if s.is_empty() {
            return None;
        }
        s.sort();
        let rank = ((p * s.len() as f64).ceil() as usize).clamp(1, s.len());
        Some(s[rank - 1].as_nanos() as f64 / 1e3)
    }

    fn json(&self) -> Value {
        let r = |x: Option<f64>| x.map(|v| (v * 10.0).round() / 10.0);
        json!({
            "count": self.samples.len(),
            "lost": self.lost,
            "p50_us": r(self.quantile_us(0.5)),
            "p99_us": r(self.quantile_us(0.99)),
        })
    }
}

/// A socket of this process inside `ns`, bound to `addr`.
fn udp_in(ns: &HostNs, addr: SocketAddr) -> Result<UdpSocket> {
    let _in = ns.enter_net().map_err(|e| anyhow!("{e}"))?;
    Ok(UdpSocket::bind(addr)?)
}

/// The UDP echo server on B: echoes every datagram until `stop` (checked at least every
/// 100 ms, when a blocking receive times out).
fn echo_server(sock: UdpSocket, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
        let mut buf = [0u8; 2048];
        while !stop.load(Ordering::Relaxed) {
            if let Ok((n, from)) = sock.recv_from(&mut buf) {
                let _ = sock.send_to(&buf[..n], from);
            }
        }
    })
}

/// `count` UDP echoes, one at a time, from `sock` (connected to the echo server).
fn echo_rtts(sock: &UdpSocket, count: u32, limit: Duration) -> Result<Rtts> {
    sock.set_read_timeout(Some(RTT_TIMEOUT))?;
    let mut out = Rtts::default();
    let end = now() + limit;
    let mut buf = [0u8; 64];
    for seq in 0..WARMUP + count {
        if now() >= end {
            break;
        }
        let msg = seq.to_be_bytes();
        let t0 = now();
        sock.send(&msg)?;
        let rtt = loop {
            match sock.recv(&mut buf) {
                Ok(4) if buf[..4] == msg => break Some(t0.elapsed()),
                // An older echo that came back after its timeout.
                Ok(_) => continue,
                Err(_) => break None,
            }
        };
        if seq < WARMUP {
            continue;
        }
        match rtt {
            Some(d) => out.samples.push(d),
            None => out.lost += 1,
        }
    }
    if out.samples.is_empty() {
        bail!("no echo came back");
    }
    Ok(out)
}

fn delay(d: Duration) -> LinkConfig {
    LinkConfig {
        delay: d,
        ..LinkConfig::default()
    }
}

/// Start `pinhole ARGS…` in `ns`, its stderr inherited.
fn spawn_self(ns: &HostNs, args: &[String], stdout: Stdio) -> Result<Child> {
    let exe = std::env::current_exe().context("find the pinhole binary")?;
    let mut argv = vec![exe.to_string_lossy().into_owned()];
    argv.extend(args.iter().cloned());
    ns.spawn(&argv, &[], Stdio::null(), stdout, Stdio::inherit())
        .map_err(|e| anyhow!("{e}"))
}

/// Run the hidden `bench-sip-options` client in `ns` against `to`; its JSON.
fn sip_options_in(ns: &HostNs, to: SocketAddr, count: u32) -> Result<Value> {
    let args = [
        "bench-sip-options".to_string(),
        "--to".into(),
        to.to_string(),
        "--count".into(),
        count.to_string(),
    ];
    let child = spawn_self(ns, &args, Stdio::piped())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("the OPTIONS client failed ({})", out.status);
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .with_context(|| format!("the OPTIONS client printed {text:?}"))
}

/// Stop a server we started: SIGTERM, and SIGKILL if it has not gone within 2 s.
fn stop(mut child: Child) {
    let _ = sys::signal(child.id(), sys::SIGTERM);
    let end = now() + Duration::from_secs(2);
    if !emulator::fabric::kernel::wait_for_exit(child.id(), end).unwrap_or(false) {
        let _ = sys::signal(child.id(), sys::SIGKILL);
    }
    let _ = child.wait();
}

/// Start `pinhole serve …` in `ns` and wait until it prints that it is serving.
fn start_server(ns: &HostNs, args: &[&str]) -> Result<Child> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let mut child = spawn_self(ns, &args, Stdio::piped())?;
    let out = child.stdout.take().context("server stdout")?;
    let mut lines = BufReader::new(out).lines();
    loop {
        match lines.next() {
            Some(Ok(l)) if l.contains("serving until") => break,
            Some(Ok(_)) => {}
            _ => {
                stop(child);
                bail!("`pinhole {}` did not start", args.join(" "));
            }
        }
    }
    // Keep reading (and dropping) its stdout so that it never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Ok(child)
}

/// The scenario whose `sip-proxy` service is measured: the client runs as a `run` step.
fn scenario_text(count: u32) -> String {
    format!(
        "version: 1
name: bench latency sip-proxy service
fabric: kernel
time_limit: 120s
networks:
  internet: 203.0.113.0/24
  home: 10.0.1.0/24
nats:
  nat:
    inside: home
    outside: {{ network: internet, addresses: [203.0.113.11] }}
    type: port-restricted
hosts:
  a: {{ network: home, address: {A_ADDR} }}
  b: {{ network: internet, address: {B_ADDR} }}
services:
  b:
    sip-proxy: {{ port: {SIP_PORT} }}
steps:
  - run: {{ name: options, on: a, cmd: [pinhole, bench-sip-options, --to, \"{B_ADDR}:{SIP_PORT}\", --count, \"{count}\"], timeout: 100s, wait: true }}
expect:
  - run: options
    exit: 0
"
    )
}

/// The OPTIONS round trip to the scenario `sip-proxy` service on the kernel fabric.
fn scenario_options(count: u32) -> Result<Value> {
    let text = scenario_text(count);
    let scenario = crate::scenario::load_str(&text, "bench-latency.yaml")
        .map_err(|e| anyhow!("the benchmark's scenario: {e:?}"))?;
    let cells = scenario
        .cells()
        .map_err(|e| anyhow!("the benchmark's scenario: {e:?}"))?;
    let cell = cells
        .first()
        .context("the benchmark's scenario has no cell")?;
    let report = crate::run::kernel::run_cell(cell, &crate::run::CellOptions::default());
    let step = report
        .steps
        .iter()
        .find(|s| s.name == "options")
        .context("the scenario did not report its step")?;
    let stdout = step
        .results
        .get("stdout")
        .and_then(Value::as_str)
        .unwrap_or("");
    if !report.passed {
        bail!(
            "the scenario failed: {} (client stderr: {})",
            report.error.clone().unwrap_or_default(),
            step.results
                .get("stderr")
                .and_then(Value::as_str)
                .unwrap_or("")
        );
    }
    serde_json::from_str(stdout.trim())
        .with_context(|| format!("the OPTIONS client printed {stdout:?}"))
}

/// `pinhole bench latency`: returns the exit code.
pub fn latency(opts: &LatencyBenchOptions) -> Result<u8> {
    if !(1..=100_000).contains(&opts.count) || !(1..=10_000).contains(&opts.delayed_count) {
        eprintln!("pinhole: --count must be 1..=100000 and --delayed-count 1..=10000");
        return Ok(EXIT_INVALID);
    }
    if !(opts.idle_seconds > 0.0 && opts.idle_seconds <= 600.0) {
        eprintln!("pinhole: --idle-seconds must be more than 0 and at most 600");
        return Ok(EXIT_INVALID);
    }
    if let Err(code) = super::enter_sandbox() {
        return Ok(code);
    }
    let fabric = match super::start_fabric(topology()) {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let (a, b) = (fabric.host(0), fabric.host(1));
    let b_echo = SocketAddr::new(ip(B_ADDR), ECHO_PORT);

    // 1. UDP echo, 0-delay and 30 ms links.
    let stop_echo = Arc::new(AtomicBool::new(false));
    let server = echo_server(udp_in(b, b_echo)?, Arc::clone(&stop_echo));
    let client = udp_in(a, SocketAddr::new(ip("0.0.0.0"), 0))?;
    client.connect(b_echo)?;
    eprintln!("pinhole bench latency: UDP echo A {A_ADDR} → NAT → B {B_ADDR}, 0-delay links…");
    let zero =
        echo_rtts(&client, opts.count, Duration::from_secs(60)).context("UDP echo, 0-delay")?;
    for up in [true, false] {
        fabric
            .set_link(Attachment::Host(1), up, delay(LINK_DELAY))
            .map_err(|e| anyhow!("{e}"))?;
    }
    eprintln!("pinhole bench latency: UDP echo with B's link delayed {LINK_DELAY:?} each way…");
    let limit = Duration::from_secs(10) + (LINK_DELAY * 3) * (opts.delayed_count + WARMUP);
    let delayed = echo_rtts(&client, opts.delayed_count, limit).context("UDP echo, 30 ms link")?;
    for up in [true, false] {
        fabric
            .set_link(Attachment::Host(1), up, LinkConfig::default())
            .map_err(|e| anyhow!("{e}"))?;
    }
    stop_echo.store(true, Ordering::Relaxed);
    let _ = server.join();

    // 2. and 3. `serve proxy` and `serve turn` on B.
    eprintln!("pinhole bench latency: SIP OPTIONS to `pinhole serve proxy`…");
    let proxy_listen = format!("{B_ADDR}:{SIP_PORT}");
    let turn_listen = format!("{B_ADDR}:{TURN_PORT}");
    let proxy = start_server(b, &["serve", "proxy", "--listen", &proxy_listen])?;
    let turn = match start_server(
        b,
        &[
            "serve",
            "turn",
            "--listen",
            &turn_listen,
            "--user",
            "bench:bench",
        ],
    ) {
        Ok(t) => t,
        Err(e) => {
            stop(proxy);
            return Err(e);
        }
    };
    let measured = (|| -> Result<(Value, f64, f64)> {
        let serve_options = sip_options_in(a, SocketAddr::new(ip(B_ADDR), SIP_PORT), opts.count)
            .context("SIP OPTIONS to serve proxy")?;
        eprintln!(
            "pinhole bench latency: idle CPU of serve proxy and serve turn over {} s…",
            opts.idle_seconds
        );
        let cpu = |c: &Child| process_cpu_ns(c.id()).context("read a server's schedstat");
        let (p0, t0, w0) = (cpu(&proxy)?, cpu(&turn)?, now());
        // The measurement window itself: nothing to drive here.
        std::thread::sleep(Duration::from_secs_f64(opts.idle_seconds));
        let (p1, t1, wall) = (cpu(&proxy)?, cpu(&turn)?, w0.elapsed());
        let pct = |a: u64, b: u64| {
            let v = 100.0 * b.saturating_sub(a) as f64 / wall.as_nanos() as f64;
            (v * 1000.0).round() / 1000.0
        };
        Ok((serve_options, pct(p0, p1), pct(t0, t1)))
    })();
    stop(proxy);
    stop(turn);
    let (serve_options, idle_proxy, idle_turn) = measured?;
    drop(fabric);

    eprintln!("pinhole bench latency: SIP OPTIONS to the scenario `sip-proxy` service…");
    let scenario = scenario_options(opts.count).context("SIP OPTIONS to the scenario service")?;

    let diff = zero
        .quantile_us(0.5)
        .zip(delayed.quantile_us(0.5))
        .map(|(z, d)| ((d - z) * 10.0).round() / 10.0);
    let out = json!({
        "udp_echo": {
            "zero_delay": zero.json(),
            "delayed": delayed.json(),
            "link_delay_ms": LINK_DELAY.as_millis() as u64,
            "added_p50_us": diff,
            "expected_added_us": 2 * LINK_DELAY.as_micros() as u64,
        },
        "sip_options": {
            "serve_proxy": serve_options,
            "scenario_service": scenario,
        },
        "idle_cpu": {
            "seconds": opts.idle_seconds,
            "serve_proxy_percent": idle_proxy,
            "serve_turn_percent": idle_turn,
        },
    });
    if opts.json {
        println!("{out}");
    } else {
        print_table(&out);
    }
    Ok(EXIT_PASS)
}

fn print_table(v: &Value) {
    let f = |x: &Value| x.as_f64().map_or("—".into(), |v| format!("{v:.1} µs"));
    let row = |name: &str, r: &Value| {
        let n = |x: &Value| x.as_u64().map_or("—".into(), |v| v.to_string());
        println!(
            "{name:<44} {:>12} {:>12} {:>6} {:>5}",
            f(&r["p50_us"]),
            f(&r["p99_us"]),
            n(&r["count"]),
            n(&r["lost"])
        );
    };
    println!("pinhole bench latency — kernel fabric, A {A_ADDR} → NAT → B {B_ADDR}");
    println!(
        "{:<44} {:>12} {:>12} {:>6} {:>5}",
        "round trip", "p50", "p99", "n", "lost"
    );
    let u = &v["udp_echo"];
    row("UDP echo, 0-delay links", &u["zero_delay"]);
    row(
        &format!("UDP echo, B's link {} ms each way", u["link_delay_ms"]),
        &u["delayed"],
    );
    row(
        "SIP OPTIONS, `pinhole serve proxy`",
        &v["sip_options"]["serve_proxy"],
    );
    row(
        "SIP OPTIONS, scenario `sip-proxy` service",
        &v["sip_options"]["scenario_service"],
    );
    println!(
        "delayed − 0-delay (p50): {} (the link adds {} µs)",
        f(&u["added_p50_us"]),
        u["expected_added_us"]
    );
    let c = &v["idle_cpu"];
    println!(
        "idle CPU over {} s: serve proxy {}% of a core, serve turn {}% of a core",
        c["seconds"], c["serve_proxy_percent"], c["serve_turn_percent"]
    );
}

/// Hidden `bench-sip-options`: send `count` SIP OPTIONS to `to`, one at a time (after a
/// few uncounted ones, the first of which waits up to 10 s for the server), and print the
/// round-trip times as JSON (`count`, `lost`, `p50_us`, `p99_us`, `status` of the last
/// response).
pub fn sip_options(to: SocketAddr, count: u32) -> Result<u8> {
    let any = if to.is_ipv4() { "0.0.0.0" } else { "::" };
    let sock = UdpSocket::bind(SocketAddr::new(ip(any), 0))?;
    sock.connect(to)?;
    let local = sock.local_addr()?;
    let mut buf = [0u8; 4096];
    let mut out = Rtts::default();
    let mut status = String::new();
    let start = now();
    let mut n = 0u32;
    let mut counted = 0u32;
    let end = start + START_WAIT + RTT_TIMEOUT * count.min(100) + Duration::from_secs(60);
    while counted < count && now() < end {
        n += 1;
        let branch = format!("z9hG4bK-pinhole-lat-{n}");
        let req = format!(
            "OPTIONS sip:{to} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:bench@{}>;tag=lat{n}\r\n\
             To: <sip:{}>\r\n\
             Call-ID: pinhole-lat-{n}@{}\r\n\
             CSeq: {n} OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            local.ip(),
            to.ip(),
            local.ip()
        );
        let wait = if n == 1 { START_WAIT } else { RTT_TIMEOUT };
        sock.set_read_timeout(Some(wait.min(Duration::from_millis(200))))?;
        let t0 = now();
        sock.send(req.as_bytes())?;
        let rtt = loop {
            match sock.recv(&mut buf) {
                Ok(len) => {
                    let text = String::from_utf8_lossy(&buf[..len]);
                    if text.starts_with("SIP/2.0 ") && text.contains(&branch) {
                        status = text.lines().next().unwrap_or("").to_string();
                        break Some(t0.elapsed());
                    }
                }
                Err(_) if t0.elapsed() < wait => {
                    // Not answered yet: the server may still be starting (first request),
                    // or a lost request is resent as a client transaction would.
                    if n == 1 {
                        let _ = sock.send(req.as_bytes());
                    }
                }
                Err(_) => break None,
            }
        };
        if n <= WARMUP {
            if rtt.is_none() && n == 1 {
                bail!("no answer to OPTIONS from {to} within {START_WAIT:?}");
            }
            continue;
        }
        counted += 1;
        match rtt {
            Some(d) => out.samples.push(d),
            None => out.lost += 1,
        }
    }
    let mut v = out.json();
    v["status"] = json!(status);
    println!("{v}");
    Ok(if out.samples.is_empty() {
        EXIT_FAIL
    } else {
        EXIT_PASS
    })
}
