//! `pinhole bench proxy`: SIPp call load through a SIP proxy/registrar, for Debian's
//! Kamailio with its stock configuration and for pinhole's own proxy, in the same run.
//!
//! Topology (kernel fabric, one flat network, no NAT, so the figures measure the proxy):
//! `uac` 192.0.2.10 (SIPp caller), `proxy` 192.0.2.20 (the proxy under test, UDP 5060),
//! `uas` 192.0.2.30 (SIPp callee). Packets between hosts cross pinhole's engine thread in
//! this process; its CPU is not counted as the proxy's.
//!
//! Per proxy program: start it, wait until it answers an OPTIONS, start the callee
//! (`interop/sipp/uas_answer.xml`, server mode, UDP 5060 on `uas`), register bob once
//! (`uas_register.xml`, RFC 3261 §10), then run the caller (`uac_call.xml`: INVITE
//! sip:bob@192.0.2.20, ACK and BYE along the Record-Route, RFC 3261 §12.2.1.1) twice over:
//!
//! 1. CPU per call: `--cpu-rate` calls/s for `--seconds`; the proxy's CPU time is
//!    utime+stime (and the reaped children's) of its whole process tree from `/proc`,
//!    read before and after, divided by the successful calls.
//! 2. Highest clean rate: `--rates` in order, each for `--seconds`; a rate is clean when
//!    every call succeeded (none failed, none missing) and SIPp placed them at ≥ 90 % of
//!    the rate (otherwise the load generator, not the proxy, was the limit). The search
//!    stops at the first rate that is not clean.
//!
//! Every SIPp run is bounded in calls (`-m`) and time (`-timeout`, `-recv_timeout`, and a
//! deadline here after which it is killed); the proxies and the callee are stopped by PID
//! at the end, and the sandbox takes whatever is left with it.
//!
//! The proxy programs: Kamailio (`/etc/kamailio/kamailio.cfg` unchanged, in the
//! foreground, 2 UDP workers for the 2 cores of the machines this is measured on, 256 MB
//! of shared memory, runtime files in the host's private `/tmp`), and `pinhole serve proxy --listen ADDR:PORT`, run
//! only when `pinhole serve proxy --help` succeeds; until then its row says so and its
//! JSON figures are null.

use super::nat::{find_program, output_in, run_in};
use super::procstat::{clock_ticks, loadavg, tree_ticks};
use super::sipp_stats::{Load, parse_stats, round};
use crate::cli::{EXIT_ENVIRONMENT, EXIT_FAIL, EXIT_INVALID, EXIT_PASS};
use anyhow::{Context, Result, anyhow, bail};
use emulator::fabric::kernel::sys::{self, HostNs};
use emulator::topology::{Host, Network, Topology};
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The caller's address.
const UAC_ADDR: &str = "192.0.2.10";
/// The proxy's address (and the SIP domain: requests for sip:bob@192.0.2.20 are its own).
const PROXY_ADDR: &str = "192.0.2.20";
/// The callee's address.
const UAS_ADDR: &str = "192.0.2.30";
/// Every SIP port (caller, proxy, callee's answering SIPp).
const SIP_PORT: u16 = 5060;
/// The port the REGISTER is sent from on the callee's host.
const REGISTER_PORT: u16 = 5070;
/// Where the scenario files and SIPp's statistics live in the SIPp hosts' private /tmp.
const WORK_DIR: &str = "/tmp/pinhole-sipp";
/// The stock Kamailio configuration (Debian package `kamailio`).
const KAMAILIO_CFG: &str = "/etc/kamailio/kamailio.cfg";
/// Kamailio's UDP worker processes (`-n`): one per core of the 2-core machines.
const KAMAILIO_CHILDREN: u32 = 2;
/// Kamailio's shared memory (`-m`), MB. Debian's default of 64 runs out at 600 calls/s:
/// tm keeps every finished transaction (a copy of the request and the replies) for its
/// 5 s wait timer, and `new_t(): out of mem` turns into 500 replies. 256 MB leaves memory
/// out of the figures (the machine has far more).
const KAMAILIO_SHM_MB: u32 = 256;
/// How long a proxy gets to answer its first OPTIONS.
const START_WAIT: Duration = Duration::from_secs(15);
/// A call whose next message does not come within this long fails (SIPp `-recv_timeout`).
const RECV_TIMEOUT_MS: u32 = 10_000;

const UAC_XML: &str = include_str!("../../../../interop/sipp/uac_call.xml");
const UAS_XML: &str = include_str!("../../../../interop/sipp/uas_answer.xml");
const REG_XML: &str = include_str!("../../../../interop/sipp/uas_register.xml");

/// Options of `pinhole bench proxy`.
#[derive(Clone, Debug)]
pub struct ProxyBenchOptions {
    /// Length of every load (the CPU run and each rate of the search), seconds.
    pub seconds: f64,
    /// The fixed rate of the CPU measurement, calls/s.
    pub cpu_rate: u32,
    /// The rates tried in order by the search for the highest clean one, calls/s.
    pub rates: Vec<u32>,
    /// Print one JSON object on stdout instead of the table.
    pub json: bool,
}

use super::{ip, now};

/// The measured topology: `uac`, `proxy` and `uas` on one network, no NAT.
pub fn topology() -> Topology {
    let host = |name: &str, a: &str| Host {
        name: name.into(),
        network: 0,
        addresses: vec![ip(a)],
    };
    Topology {
        networks: vec![Network {
            name: "lan".into(),
            prefix: "192.0.2.0/24".parse().expect("a constant prefix"),
        }],
        hosts: vec![
            host("uac", UAC_ADDR),
            host("proxy", PROXY_ADDR),
            host("uas", UAS_ADDR),
        ],
        ..Default::default()
    }
}

/// A proxy under test: how to run it, or why it cannot be.
struct ProxyProgram {
    /// `kamailio` or `pinhole` (the JSON key prefix).
    name: &'static str,
    /// The command run in the proxy host, or why there is none.
    argv: Result<Vec<String>, String>,
    /// Commands run in the proxy host first (to completion).
    prepare: Vec<Vec<String>>,
}

fn kamailio_program() -> ProxyProgram {
    let argv = match find_program("kamailio") {
        None => Err("not installed (Debian package kamailio)".to_string()),
        Some(_) if !std::path::Path::new(KAMAILIO_CFG).is_file() => {
            Err(format!("{KAMAILIO_CFG} is missing"))
        }
        Some(exe) => Ok(vec![
            exe,
            "-DD".into(), // foreground: the PID we hold is the main process
            "-E".into(),  // log to stderr (drained here), not to the machine's syslog
            "-n".into(),
            KAMAILIO_CHILDREN.to_string(),
            "-m".into(),
            KAMAILIO_SHM_MB.to_string(),
            "-M".into(),
            "8".into(),
            "-Y".into(),
            "/tmp/kamailio".into(), // ctl socket and RPC fifo in the host's private /tmp
            "-l".into(),
            format!("udp:{PROXY_ADDR}:{SIP_PORT}"),
            "-f".into(),
            KAMAILIO_CFG.into(),
        ]),
    };
    ProxyProgram {
        name: "kamailio",
        argv,
        prepare: vec![vec!["mkdir".into(), "-p".into(), "/tmp/kamailio".into()]],
    }
}

fn pinhole_program() -> ProxyProgram {
    let exe = std::env::current_exe().map(|p| p.to_string_lossy().into_owned());
    let argv = match exe {
        Err(e) => Err(format!("cannot find the pinhole binary: {e}")),
        Ok(exe) => {
            let help = Command::new(&exe)
                .args(["serve", "proxy", "--help"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
            if help.is_ok_and(|s| s.success()) {
                Ok(vec![
                    exe,
                    "serve".into(),
                    "proxy".into(),
                    "--listen".into(),
                    format!("{PROXY_ADDR}:{SIP_PORT}"),
                ])
            } else {
                Err("proxy not available yet".to_string())
            }
        }
    };
    ProxyProgram {
        name: "pinhole",
        argv,
        prepare: Vec::new(),
    }
}

/// Put the scenario files into `ns`'s private /tmp.
fn install_scenarios(ns: &HostNs) -> Result<()> {
    run_in(ns, &["mkdir", "-p", WORK_DIR], None)?;
    for (name, text) in [
        ("uac_call.xml", UAC_XML),
        ("uas_answer.xml", UAS_XML),
        ("uas_register.xml", REG_XML),
    ] {
        let cmd = format!("cat > {WORK_DIR}/{name}");
        run_in(ns, &["sh", "-c", &cmd], Some(text))?;
    }
    Ok(())
}

/// Wait for `child` until `deadline` (on its pidfd, no polling); kill it (SIGKILL, by
/// PID) after that.
fn wait_until(child: &mut Child, deadline: Instant) -> Result<Option<i32>> {
    if emulator::fabric::kernel::wait_for_exit(child.id(), deadline)? {
        return Ok(child.wait()?.code());
    }
    let _ = sys::signal(child.id(), sys::SIGKILL);
    let _ = child.wait();
    Ok(None)
}

/// Stop a process we started: SIGTERM, then SIGKILL after `grace`.
pub(crate) fn stop(child: &mut Child, grace: Duration) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = sys::signal(child.id(), sys::SIGTERM);
    let _ = wait_until(child, now() + grace);
}

/// Send OPTIONS to the proxy from the caller's host until any SIP response comes back.
fn wait_ready(uac: &HostNs, proxy: &mut Child, log: &StderrTail) -> Result<()> {
    let sock = {
        let _in = uac.enter_net().map_err(|e| anyhow!("{e}"))?;
        UdpSocket::bind(SocketAddr::new(ip(UAC_ADDR), 0))?
    };
    sock.set_read_timeout(Some(Duration::from_millis(200)))?;
    let local = sock.local_addr()?;
    let to = SocketAddr::new(ip(PROXY_ADDR), SIP_PORT);
    let deadline = now() + START_WAIT;
    let mut buf = [0u8; 4096];
    let mut n = 0u32;
    loop {
        n += 1;
        if let Some(st) = proxy.try_wait()? {
            bail!("it exited ({st}) before answering: {}", log.text());
        }
        if now() >= deadline {
            bail!("no answer to OPTIONS within {START_WAIT:?}: {}", log.text());
        }
        let req = format!(
            "OPTIONS sip:{PROXY_ADDR}:{SIP_PORT} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-pinhole-ready-{n};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:bench@{UAC_ADDR}>;tag=ready{n}\r\n\
             To: <sip:{PROXY_ADDR}>\r\n\
             Call-ID: pinhole-ready-{n}@{UAC_ADDR}\r\n\
             CSeq: {n} OPTIONS\r\n\
             Content-Length: 0\r\n\r\n"
        );
        let _ = sock.send_to(req.as_bytes(), to);
        if let Ok((len, _)) = sock.recv_from(&mut buf)
            && buf[..len].starts_with(b"SIP/2.0 ")
        {
            return Ok(());
        }
    }
}

/// The last lines a child wrote to stderr (drained by a thread so it never blocks).
#[derive(Clone, Default)]
pub(crate) struct StderrTail(Arc<Mutex<VecDeque<String>>>);

impl StderrTail {
    pub(crate) fn drain(&self, child: &mut Child) {
        if let Some(err) = child.stderr.take() {
            let lines = Arc::clone(&self.0);
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    let mut l = lines.lock().unwrap_or_else(|p| p.into_inner());
                    if l.len() == 20 {
                        l.pop_front();
                    }
                    l.push_back(line);
                }
            });
        }
    }

    pub(crate) fn text(&self) -> String {
        let l = self.0.lock().unwrap_or_else(|p| p.into_inner());
        l.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

/// The three hosts and what runs on them.
struct Bench<'a> {
    uac: &'a HostNs,
    proxy: &'a HostNs,
    uas: &'a HostNs,
    sipp: String,
    seconds: f64,
}

impl Bench<'_> {
    /// Run the caller at `rate` for the bench's seconds; bounded in calls and time.
    fn call_load(&self, rate: u32, tag: &str) -> Result<Load> {
        let calls = (f64::from(rate) * self.seconds).round().max(1.0) as u64;
        let limit = (rate.max(50) * 2).to_string();
        let stat = format!("{WORK_DIR}/uac-{tag}-{rate}.csv");
        let errors = format!("{WORK_DIR}/uac-{tag}-{rate}.err");
        let timeout = format!("{}s", (self.seconds + 30.0).ceil() as u64);
        let argv: Vec<String> = [
            self.sipp.as_str(),
            &format!("{PROXY_ADDR}:{SIP_PORT}"),
            "-sf",
            &format!("{WORK_DIR}/uac_call.xml"),
            "-s",
            "bob",
            "-i",
            UAC_ADDR,
            "-p",
            &SIP_PORT.to_string(),
            "-r",
            &rate.to_string(),
            "-rp",
            "1000",
            "-m",
            &calls.to_string(),
            "-l",
            &limit,
            "-recv_timeout",
            &RECV_TIMEOUT_MS.to_string(),
            "-timeout",
            &timeout,
            "-nostdin",
            "-trace_stat",
            "-stf",
            &stat,
            "-fd",
            "100ms",
            "-trace_err",
            "-error_file",
            &errors,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut child = self
            .uac
            .spawn(&argv, &[], Stdio::null(), Stdio::null(), Stdio::null())
            .map_err(|e| anyhow!("{e}"))?;
        let deadline = now() + Duration::from_secs_f64(self.seconds + 40.0);
        let exit = wait_until(&mut child, deadline)?;
        let mut load = Load {
            rate,
            calls,
            exit,
            ..Default::default()
        };
        match exit {
            Some(0 | 1) => {}
            None => bail!("SIPp (caller) did not stop within its bound and was killed"),
            Some(c) => bail!(
                "SIPp (caller) exited {c}: {}",
                output_in(self.uac, &["head", "-c", "600", &errors], None).unwrap_or_default()
            ),
        }
        let text = output_in(self.uac, &["cat", &stat], None).with_context(|| {
            format!(
                "SIPp (caller) exited {exit:?} without statistics: {}",
                output_in(self.uac, &["head", "-c", "600", &errors], None).unwrap_or_default()
            )
        })?;
        parse_stats(&text, &mut load)?;
        if load.failed > 0 {
            eprintln!(
                "pinhole bench proxy: {tag} at {rate} calls/s: {} failed; SIPp says: {}",
                load.failed,
                output_in(self.uac, &["head", "-c", "600", &errors], None).unwrap_or_default()
            );
        }
        Ok(load)
    }

    /// Start the callee's answering SIPp and register bob; the callee runs until stopped.
    fn start_callee(&self, total_seconds: f64) -> Result<Child> {
        let port = SIP_PORT.to_string();
        let timeout = format!("{}s", total_seconds.ceil() as u64);
        let answer: Vec<String> = [
            self.sipp.as_str(),
            "-sf",
            &format!("{WORK_DIR}/uas_answer.xml"),
            "-i",
            UAS_ADDR,
            "-p",
            &port,
            "-nostdin",
            "-timeout",
            &timeout,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut callee = self
            .uas
            .spawn(&answer, &[], Stdio::null(), Stdio::null(), Stdio::null())
            .map_err(|e| anyhow!("{e}"))?;
        // The answering SIPp needs its socket before the proxy sends it an INVITE; it
        // binds within milliseconds, and the registration below takes at least a round
        // trip, so a short pause suffices.
        std::thread::sleep(Duration::from_millis(300));
        let register: Vec<String> = [
            self.sipp.as_str(),
            &format!("{PROXY_ADDR}:{SIP_PORT}"),
            "-sf",
            &format!("{WORK_DIR}/uas_register.xml"),
            "-i",
            UAS_ADDR,
            "-p",
            &REGISTER_PORT.to_string(),
            "-key",
            "answer_port",
            &port,
            "-m",
            "1",
            "-recv_timeout",
            "5000",
            "-timeout",
            "10s",
            "-nostdin",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let mut reg = self
            .uas
            .spawn(&register, &[], Stdio::null(), Stdio::null(), Stdio::null())
            .map_err(|e| anyhow!("{e}"))?;
        let code = wait_until(&mut reg, now() + Duration::from_secs(15))?;
        if code != Some(0) {
            stop(&mut callee, Duration::from_secs(2));
            bail!("registering bob failed (SIPp exit {code:?})");
        }
        if let Some(st) = callee.try_wait()? {
            bail!("the answering SIPp exited ({st})");
        }
        Ok(callee)
    }

    /// Measure one proxy program: CPU run, then the rate search.
    fn measure(&self, program: &ProxyProgram, opts: &ProxyBenchOptions) -> Result<Value> {
        let argv = program.argv.as_ref().map_err(|e| anyhow!("{e}"))?;
        for p in &program.prepare {
            let p: Vec<&str> = p.iter().map(String::as_str).collect();
            run_in(self.proxy, &p, None)?;
        }
        let mut proc = self
            .proxy
            .spawn(argv, &[], Stdio::null(), Stdio::null(), Stdio::piped())
            .map_err(|e| anyhow!("{e}"))?;
        let log = StderrTail::default();
        log.drain(&mut proc);
        let result = (|| -> Result<Value> {
            wait_ready(self.uac, &mut proc, &log).context("starting the proxy")?;
            let total = (opts.rates.len() as f64 + 1.0) * (self.seconds + 45.0) + 30.0;
            let mut callee = self.start_callee(total)?;
            let result = (|| -> Result<Value> {
                let hz = clock_ticks() as f64;
                let (t0, processes) = tree_ticks(proc.id());
                eprintln!(
                    "pinhole bench proxy: {}: {} calls/s for {} s (CPU)…",
                    program.name, opts.cpu_rate, self.seconds
                );
                let mut cpu = self.call_load(opts.cpu_rate, program.name)?;
                let (t1, _) = tree_ticks(proc.id());
                let cpu_ms = (t1.saturating_sub(t0)) as f64 * 1000.0 / hz;
                cpu.cpu_ms = Some(cpu_ms);
                let per_1000 =
                    (cpu.successful > 0).then(|| round(cpu_ms * 1000.0 / cpu.successful as f64, 1));
                let mut steps = Vec::new();
                let mut max_cps: Option<u32> = None;
                let mut stopped = "every rate tried was clean";
                for &rate in &opts.rates {
                    eprintln!(
                        "pinhole bench proxy: {}: {rate} calls/s for {} s…",
                        program.name, self.seconds
                    );
                    let l = self.call_load(rate, program.name)?;
                    eprintln!(
                        "pinhole bench proxy: {}: {rate} calls/s: {} ok, {} failed of {}, placed at {:.0}/s",
                        program.name,
                        l.successful,
                        l.failed,
                        l.calls,
                        l.achieved_cps()
                    );
                    let clean = l.clean();
                    steps.push(l.json());
                    if !clean {
                        stopped = if l.failed > 0 || l.successful < l.calls {
                            "failed calls"
                        } else {
                            "SIPp placed the calls below 90 % of the rate (the load generator's limit)"
                        };
                        break;
                    }
                    max_cps = Some(rate);
                }
                let mut cpu_json = cpu.json();
                cpu_json["cpu_ms"] = json!(round(cpu_ms, 1));
                Ok(json!({
                    "available": true,
                    "command": argv.join(" "),
                    "processes": processes,
                    "cpu_ms_per_1000_calls": per_1000,
                    "cpu_run": cpu_json,
                    "max_cps": max_cps,
                    "search_stopped": stopped,
                    "steps": steps,
                }))
            })();
            stop(&mut callee, Duration::from_secs(3));
            result
        })();
        stop(&mut proc, Duration::from_secs(5));
        result
    }
}

/// `pinhole bench proxy`: returns the exit code.
pub fn proxy(opts: &ProxyBenchOptions) -> Result<u8> {
    if !(opts.seconds > 0.0 && opts.seconds <= 600.0) {
        eprintln!("pinhole: --seconds must be more than 0 and at most 600");
        return Ok(EXIT_INVALID);
    }
    if opts.cpu_rate == 0
        || opts.cpu_rate > 5000
        || opts.rates.is_empty()
        || opts.rates.iter().any(|&r| r == 0 || r > 5000)
    {
        eprintln!("pinhole: rates must be between 1 and 5000 calls/s, and --rates not empty");
        return Ok(EXIT_INVALID);
    }
    let Some(sipp) = find_program("sipp") else {
        eprintln!(
            "pinhole: `sipp` is not installed (Debian package sip-tester; `cargo xtask deps`)"
        );
        return Ok(EXIT_ENVIRONMENT);
    };
    if let Err(code) = super::enter_sandbox() {
        return Ok(code);
    }
    let fabric = match super::start_fabric(topology()) {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let bench = Bench {
        uac: fabric.host(0),
        proxy: fabric.host(1),
        uas: fabric.host(2),
        sipp,
        seconds: opts.seconds,
    };
    install_scenarios(bench.uac)?;
    install_scenarios(bench.uas)?;
    let load_before = loadavg();
    eprintln!(
        "pinhole bench proxy: caller {UAC_ADDR} → proxy {PROXY_ADDR}:{SIP_PORT} → callee {UAS_ADDR}; load average {load_before}"
    );
    let mut out = serde_json::Map::new();
    let mut code = EXIT_PASS;
    for program in [kamailio_program(), pinhole_program()] {
        let v = match &program.argv {
            Err(why) => json!({"available": false, "why": why}),
            Ok(_) => match bench.measure(&program, opts) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("pinhole bench proxy: {}: {e:#}", program.name);
                    code = EXIT_FAIL;
                    json!({"available": true, "error": format!("{e:#}")})
                }
            },
        };
        out.insert(
            format!("{}_cpu_ms_per_1000_calls", program.name),
            v.get("cpu_ms_per_1000_calls")
                .cloned()
                .unwrap_or(Value::Null),
        );
        out.insert(
            format!("{}_max_cps", program.name),
            v.get("max_cps").cloned().unwrap_or(Value::Null),
        );
        out.insert(program.name.into(), v);
    }
    let load_after = loadavg();
    out.insert("seconds".into(), json!(opts.seconds));
    out.insert("cpu_rate".into(), json!(opts.cpu_rate));
    out.insert("rates".into(), json!(opts.rates));
    out.insert("loadavg_before".into(), json!(load_before));
    out.insert("loadavg_after".into(), json!(load_after));
    if opts.json {
        println!("{}", Value::Object(out));
    } else {
        print_table(&out, opts);
    }
    Ok(code)
}

fn print_table(out: &serde_json::Map<String, Value>, opts: &ProxyBenchOptions) {
    println!(
        "pinhole bench proxy — SIPp calls (INVITE/ACK/BYE via Record-Route) {UAC_ADDR} → {PROXY_ADDR} → {UAS_ADDR}, {} s per load",
        opts.seconds
    );
    println!(
        "{:<10} {:>28} {:>30}",
        "proxy",
        format!("CPU ms / 1000 calls @{}/s", opts.cpu_rate),
        "highest rate with 0 failed"
    );
    for name in ["kamailio", "pinhole"] {
        let v = &out[name];
        if v["available"] == json!(false) {
            println!("{name}: {}", v["why"].as_str().unwrap_or("not available"));
            continue;
        }
        if let Some(e) = v["error"].as_str() {
            println!("{name}: not measured: {e}");
            continue;
        }
        let cpu = v["cpu_ms_per_1000_calls"]
            .as_f64()
            .map_or("—".into(), |c| format!("{c:.1}"));
        let max = v["max_cps"]
            .as_u64()
            .map_or(format!("none of {:?}", opts.rates), |m| {
                format!("{m} calls/s")
            });
        println!("{name:<10} {cpu:>28} {max:>30}");
        println!(
            "           search stopped: {}",
            v["search_stopped"].as_str().unwrap_or("")
        );
        let run = &v["cpu_run"];
        println!(
            "           CPU run: {} of {} calls ok, {} failed, {} ms CPU over {} processes",
            run["successful"], run["calls"], run["failed"], run["cpu_ms"], v["processes"]
        );
        for s in v["steps"].as_array().into_iter().flatten() {
            println!(
                "           {:>5}/s: {} ok, {} failed of {}, placed at {}/s{}",
                s["rate"],
                s["successful"],
                s["failed"],
                s["calls"],
                s["achieved_cps"],
                if s["clean"] == json!(true) {
                    ""
                } else {
                    "  ← stop"
                }
            );
        }
    }
    println!(
        "load average before {}, after {}",
        out["loadavg_before"].as_str().unwrap_or(""),
        out["loadavg_after"].as_str().unwrap_or("")
    );
}
