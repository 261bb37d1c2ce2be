//! `pinhole bench nat`: UDP packets/s (64 and 1200 bytes) and TCP throughput from a host
//! behind one NAT to a host on the internet, on the kernel fabric (pinhole's engine does
//! the NAT) and, side by side in the same sandbox, through Linux's own forwarding with an
//! nftables masquerade in a router namespace.
//!
//! Both sides have the same addresses: host A 10.0.1.2 in `home`, its gateway 10.0.1.1,
//! the NAT's public address 203.0.113.11 and host B 203.0.113.5 in `internet`.
//!
//! - pinhole: [`KernelFabric`](emulator::fabric::kernel::KernelFabric) with hosts `a` and `b` (TUN devices) and a port-restricted
//!   NAT; every packet crosses the engine thread of this process.
//! - kernel: namespaces `k-a` — `k-r` — `k-b` joined by veth pairs (default offloads); `k-r`
//!   forwards (`ip_forward=1`) and masquerades (`nft`). Set up with `ip` and `nft`.
//!
//! Traffic comes from the hidden `bench-udp-send` / `bench-udp-recv` / `bench-tcp-send` /
//! `bench-tcp-recv` subcommands of this same binary, run inside the hosts: the UDP sender
//! is rate-unlimited (`sendmmsg` of 64 datagrams) on a connected socket, the receiver
//! counts what arrives (`recvmmsg`) during a window of `--seconds` that opens at the first
//! datagram; TCP is one connection, goodput counted by the receiver over the same window.
//! Every agent stops by itself after its time; the sandbox takes the namespaces, devices
//! and processes with it when the command exits.

use crate::cli::{EXIT_INVALID, EXIT_PASS};
use anyhow::{Context, Result, anyhow, bail};
use emulator::fabric::kernel::Snapshot;
use emulator::fabric::kernel::sys::{self, HostNs};
use emulator::nat::{NatConfig, Preset};
use emulator::topology::{Host, NatNode, Network, Topology};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Stdio};
use std::time::Duration;

/// Host A's address (behind the NAT).
const A_ADDR: &str = "10.0.1.2";
/// The NAT's inside address (A's gateway).
const GW_ADDR: &str = "10.0.1.1";
/// The NAT's public address.
const NAT_ADDR: &str = "203.0.113.11";
/// Host B's address (on the internet).
const B_ADDR: &str = "203.0.113.5";
/// Extra time the senders run past the receiver's window (it opens at the first packet).
const SEND_MARGIN: f64 = 0.5;
/// How long a receiver waits for its first packet or connection.
pub(crate) const FIRST_PACKET_WAIT: Duration = Duration::from_secs(10);

/// Options of `pinhole bench nat`.
#[derive(Clone, Debug)]
pub struct NatBenchOptions {
    /// Length of each measurement window, seconds.
    pub seconds: f64,
    /// Print one JSON object on stdout instead of the table.
    pub json: bool,
    /// How the UDP sender offers its load.
    pub sender: Sender,
}

/// How `bench nat`'s UDP sender offers its load: the comparison with the kernel NAT
/// should not rest on one sender's weakness.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Sender {
    /// `sendmmsg(2)`, 64 datagrams a call: one core offering as fast as it can.
    Sendmmsg,
    /// `sendto(2)`-style, one datagram a call.
    Sendto,
}

impl Sender {
    /// Datagrams per system call.
    fn batch(self) -> usize {
        match self {
            Sender::Sendmmsg => sys::MAX_BATCH,
            Sender::Sendto => 1,
        }
    }

    /// The name the report prints.
    fn name(self) -> &'static str {
        match self {
            Sender::Sendmmsg => "sendmmsg",
            Sender::Sendto => "sendto",
        }
    }
}

use super::{ip, now};

/// The measured topology: `a` in `home` behind a port-restricted NAT to `internet`,
/// where `b` is.
pub fn topology() -> Topology {
    let net = |name: &str, p: &str| Network {
        name: name.into(),
        prefix: p.parse().expect("a constant prefix"),
    };
    Topology {
        networks: vec![
            net("internet", "203.0.113.0/24"),
            net("home", "10.0.1.0/24"),
        ],
        hosts: vec![
            Host {
                name: "a".into(),
                network: 1,
                addresses: vec![ip(A_ADDR)],
            },
            Host {
                name: "b".into(),
                network: 0,
                addresses: vec![ip(B_ADDR)],
            },
        ],
        nats: vec![NatNode {
            name: "nat".into(),
            inside: 1,
            outside: 0,
            inside_address: ip(GW_ADDR),
            config: NatConfig::preset(Preset::PortRestricted, vec![ip(NAT_ADDR)]),
        }],
        ..Default::default()
    }
}

/// `(VmRSS, VmHWM)` of this process in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `name` in `PATH`, or in `/usr/sbin` or `/sbin` (not in a normal user's `PATH` on Debian,
/// where `ip` and `nft` live).
pub(crate) fn find_program(name: &str) -> Option<String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(std::path::PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .map(|p| p.to_string_lossy().into_owned())
}

/// Run `argv` in `ns` to completion (feeding `stdin`), failing with its stderr.
pub(crate) fn run_in(ns: &HostNs, argv: &[&str], stdin: Option<&str>) -> Result<()> {
    output_in(ns, argv, stdin).map(drop)
}

/// Run `argv` in `ns` (with `stdin` if given) and return its stdout; fail with its stderr.
pub(crate) fn output_in(ns: &HostNs, argv: &[&str], stdin: Option<&str>) -> Result<String> {
    let argv: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    let mut child = ns
        .spawn(
            &argv,
            &[],
            if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            },
            Stdio::piped(),
            Stdio::piped(),
        )
        .map_err(|e| anyhow!("{e}"))?;
    if let Some(text) = stdin {
        let mut w = child.stdin.take().context("stdin")?;
        w.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "`{}` in {}: {}: {}",
            argv.join(" "),
            ns.name(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The kernel side: three namespaces joined by veth pairs, the middle one forwarding
/// and masquerading with nftables.
struct KernelNat {
    a: HostNs,
    b: HostNs,
    r: HostNs,
    holders: Vec<Child>,
}

impl KernelNat {
    fn setup() -> Result<KernelNat> {
        let find = |prog: &str| {
            find_program(prog).ok_or_else(|| {
                anyhow!("`{prog}` is not installed (Debian packages iproute2 and nftables; `cargo xtask deps`)")
            })
        };
        let (ip_cmd, nft) = (find("ip")?, find("nft")?);
        let (ip_cmd, nft) = (ip_cmd.as_str(), nft.as_str());
        let hosts = format!("127.0.0.1\tlocalhost\n{A_ADDR}\ta\n{B_ADDR}\tb\n");
        let a = HostNs::create("k-a", &hosts).map_err(|e| anyhow!("{e}"))?;
        let r = HostNs::create("k-r", &hosts).map_err(|e| anyhow!("{e}"))?;
        let b = HostNs::create("k-b", &hosts).map_err(|e| anyhow!("{e}"))?;
        let mut k = KernelNat {
            a,
            b,
            r,
            holders: Vec::new(),
        };
        // `ip link … netns PID` needs a process in the target namespace: a bounded sleep.
        let hold = |ns: &HostNs| {
            ns.spawn(
                &["sleep".to_string(), "3600".to_string()],
                &[],
                Stdio::null(),
                Stdio::null(),
                Stdio::null(),
            )
            .map_err(|e| anyhow!("{e}"))
        };
        let r_holder = hold(&k.r)?;
        let b_holder = hold(&k.b)?;
        let (r_pid, b_pid) = (r_holder.id().to_string(), b_holder.id().to_string());
        k.holders.push(r_holder);
        k.holders.push(b_holder);
        run_in(
            &k.a,
            &[
                ip_cmd, "link", "add", "eth0", "type", "veth", "peer", "name", "in", "netns",
                &r_pid,
            ],
            None,
        )?;
        run_in(
            &k.r,
            &[
                ip_cmd, "link", "add", "out", "type", "veth", "peer", "name", "eth0", "netns",
                &b_pid,
            ],
            None,
        )?;
        run_in(
            &k.a,
            &[ip_cmd, "-batch", "-"],
            Some(&format!(
                "addr add {A_ADDR}/24 dev eth0\nlink set eth0 up\nroute add default via {GW_ADDR}\n"
            )),
        )?;
        run_in(
            &k.r,
            &[ip_cmd, "-batch", "-"],
            Some(&format!(
                "addr add {GW_ADDR}/24 dev in\naddr add {NAT_ADDR}/24 dev out\nlink set in up\nlink set out up\n"
            )),
        )?;
        run_in(
            &k.b,
            &[ip_cmd, "-batch", "-"],
            Some(&format!(
                "addr add {B_ADDR}/24 dev eth0\nlink set eth0 up\n"
            )),
        )?;
        run_in(
            &k.r,
            &["sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"],
            None,
        )?;
        run_in(
            &k.r,
            &[nft, "-f", "-"],
            Some(
                "table ip pinhole_bench {\n  chain post {\n    type nat hook postrouting priority 100; policy accept;\n    oifname \"out\" masquerade\n  }\n}\n",
            ),
        )?;
        Ok(k)
    }
}

impl Drop for KernelNat {
    fn drop(&mut self) {
        for c in &mut self.holders {
            let _ = sys::signal(c.id(), sys::SIGKILL);
            let _ = c.wait();
        }
    }
}

/// Drop counters of one network namespace: its interfaces (`lo` aside) and UDP sockets.
#[derive(Clone, Copy, Debug, Default)]
struct NsDrops {
    /// Interfaces' `tx_drop` (a TUN device whose queue to the engine is full counts here).
    if_tx: u64,
    /// Interfaces' `rx_drop`.
    if_rx: u64,
    /// UDP datagrams dropped because a socket's receive buffer was full.
    udp_rcvbuf: u64,
    /// UDP sends refused for a full send buffer.
    udp_sndbuf: u64,
}

impl NsDrops {
    fn read(ns: &HostNs) -> NsDrops {
        // /proc/thread-self/net shows the calling thread's network namespace.
        let Ok(_in) = ns.enter_net() else {
            return NsDrops::default();
        };
        let dev = std::fs::read_to_string("/proc/thread-self/net/dev").unwrap_or_default();
        let snmp = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default();
        let mut d = NsDrops::default();
        for line in dev.lines().skip(2) {
            let Some((name, rest)) = line.split_once(':') else {
                continue;
            };
            if name.trim() == "lo" {
                continue;
            }
            let f: Vec<u64> = rest
                .split_whitespace()
                .map(|x| x.parse().unwrap_or(0))
                .collect();
            d.if_rx += f.get(3).copied().unwrap_or(0);
            d.if_tx += f.get(11).copied().unwrap_or(0);
        }
        let udp: Vec<&str> = snmp.lines().filter(|l| l.starts_with("Udp:")).collect();
        if let [names, values] = udp.as_slice() {
            for (n, v) in names.split_whitespace().zip(values.split_whitespace()) {
                let v = v.parse().unwrap_or(0);
                match n {
                    "RcvbufErrors" => d.udp_rcvbuf = v,
                    "SndbufErrors" => d.udp_sndbuf = v,
                    _ => {}
                }
            }
        }
        d
    }

    fn since(self, before: NsDrops) -> NsDrops {
        NsDrops {
            if_tx: self.if_tx.saturating_sub(before.if_tx),
            if_rx: self.if_rx.saturating_sub(before.if_rx),
            udp_rcvbuf: self.udp_rcvbuf.saturating_sub(before.udp_rcvbuf),
            udp_sndbuf: self.udp_sndbuf.saturating_sub(before.udp_sndbuf),
        }
    }
}

/// Where packets were lost during one measurement.
fn losses(sender: NsDrops, receiver: NsDrops, middle: Value) -> Value {
    json!({
        "sender_if_tx_dropped": sender.if_tx,
        "sender_udp_sndbuf_errors": sender.udp_sndbuf,
        "receiver_if_rx_dropped": receiver.if_rx,
        "receiver_udp_rcvbuf_errors": receiver.udp_rcvbuf,
        "middle": middle,
    })
}

fn engine_drops(s: &Snapshot) -> (u64, u64) {
    (s.engine.drops.values().sum(), s.tun_full)
}

/// What a receiver counted.
#[derive(Clone, Copy, Debug, Default)]
struct Counted {
    packets: u64,
    bytes: u64,
    seconds: f64,
    /// Datagrams the sender sent, and over how long (UDP only).
    offered: Option<(u64, f64)>,
}

fn agent_argv(args: &[String]) -> Result<Vec<String>> {
    let exe = std::env::current_exe().context("find the pinhole binary")?;
    let mut v = vec![exe.to_string_lossy().into_owned()];
    v.extend(args.iter().cloned());
    Ok(v)
}

fn spawn_agent(ns: &HostNs, args: &[String]) -> Result<Child> {
    ns.spawn(
        &agent_argv(args)?,
        &[],
        Stdio::null(),
        Stdio::piped(),
        Stdio::inherit(),
    )
    .map_err(|e| anyhow!("{e}"))
}

fn parse_json(text: &str, who: &str) -> Result<Value> {
    serde_json::from_str(text.trim()).with_context(|| format!("{who} printed {text:?}"))
}

/// On-CPU time so far of this process's engine thread (`pinhole-engine`), in ns, from
/// `/proc/self/task/*/schedstat`: less sensitive than rates to other load on the machine.
fn engine_cpu_ns() -> Option<u64> {
    for task in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let path = task.path();
        let comm = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if comm.trim() == "pinhole-engine" {
            let stat = std::fs::read_to_string(path.join("schedstat")).ok()?;
            return stat.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

/// One measurement: a receiver in `rx_ns`, then a sender in `tx_ns`.
fn measure(
    rx_ns: &HostNs,
    tx_ns: &HostNs,
    tcp: bool,
    port: u16,
    size: usize,
    seconds: f64,
    batch: usize,
) -> Result<Counted> {
    let s = |v: &dyn ToString| v.to_string();
    let recv_args = vec![
        s(&if tcp {
            "bench-tcp-recv"
        } else {
            "bench-udp-recv"
        }),
        s(&"--port"),
        s(&port),
        s(&"--seconds"),
        s(&seconds),
    ];
    let mut rx = spawn_agent(rx_ns, &recv_args)?;
    let mut out = BufReader::new(rx.stdout.take().context("receiver stdout")?);
    let mut line = String::new();
    out.read_line(&mut line)?;
    if line.trim() != "ready" {
        let _ = rx.wait();
        bail!("the receiver in {} did not start: {line:?}", rx_ns.name());
    }
    let send_args = vec![
        s(&if tcp {
            "bench-tcp-send"
        } else {
            "bench-udp-send"
        }),
        s(&"--to"),
        s(&SocketAddr::new(ip(B_ADDR), port)),
        s(&"--size"),
        s(&size),
        s(&"--seconds"),
        s(&(seconds + SEND_MARGIN)),
    ];
    let mut send_args = send_args;
    if !tcp {
        send_args.extend([s(&"--batch"), s(&batch)]);
    }
    let tx = spawn_agent(tx_ns, &send_args)?;
    let mut text = String::new();
    out.read_to_string(&mut text)?;
    let rx_status = rx.wait()?;
    let tx_out = tx.wait_with_output()?;
    if !rx_status.success() {
        bail!("the receiver in {} failed ({rx_status})", rx_ns.name());
    }
    let v = parse_json(&text, "the receiver")?;
    let mut c = Counted {
        packets: v["packets"].as_u64().unwrap_or(0),
        bytes: v["bytes"].as_u64().unwrap_or(0),
        seconds: v["seconds"].as_f64().unwrap_or(0.0),
        offered: None,
    };
    if !tcp && let Ok(sv) = parse_json(&String::from_utf8_lossy(&tx_out.stdout), "the sender") {
        c.offered = Some((
            sv["packets"].as_u64().unwrap_or(0),
            sv["seconds"].as_f64().unwrap_or(0.0),
        ));
    }
    if c.packets == 0 {
        bail!(
            "nothing arrived from {} at {} (sender: {})",
            tx_ns.name(),
            rx_ns.name(),
            tx_out.status
        );
    }
    Ok(c)
}

fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn snapshot_json(s: &Snapshot, topo: &emulator::topology::Topology) -> Value {
    let drops: serde_json::Map<String, Value> = s
        .engine
        .drops
        .iter()
        .map(|((place, reason), n)| (format!("{}: {reason:?}", topo.place_name(*place)), json!(n)))
        .collect();
    let nat_drops: serde_json::Map<String, Value> = s
        .nats
        .first()
        .map(|n| {
            n.drops
                .iter()
                .map(|(r, c)| (format!("{r:?}"), json!(c)))
                .collect()
        })
        .unwrap_or_default();
    json!({
        "sent": s.engine.sent,
        "delivered": s.engine.delivered,
        "drops": drops,
        "tun_full": s.tun_full,
        "nat_translated_out": s.nats.first().map_or(0, |n| n.translated_out),
        "nat_translated_in": s.nats.first().map_or(0, |n| n.translated_in),
        "nat_drops": nat_drops,
        "nat_mappings": s.mappings.first().copied().unwrap_or(0),
        "tun_offloads": s.offloads.to_string(),
        "offload_errors": s.offload_errors,
        "segmented_in_userspace": s.segmented,
        "udp_coalesced": s.coalesced,
    })
}

/// `pinhole bench nat`: returns the exit code.
pub fn nat(opts: &NatBenchOptions) -> Result<u8> {
    if !(opts.seconds > 0.0 && opts.seconds <= 600.0) {
        eprintln!("pinhole: --seconds must be more than 0 and at most 600");
        return Ok(EXIT_INVALID);
    }
    if let Err(code) = super::enter_sandbox() {
        return Ok(code);
    }
    let secs = opts.seconds;
    let (rss_before, _) = memory_kib();
    let fabric = match super::start_fabric(topology()) {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let (rss_started, _) = memory_kib();
    let (a, b) = (fabric.host(0), fabric.host(1));
    let kernel = KernelNat::setup();
    let mut kernel_unavailable = kernel.as_ref().err().map(|e| format!("{e:#}"));
    if let Some(why) = &kernel_unavailable {
        eprintln!("pinhole bench: kernel side unavailable, measuring pinhole only: {why}");
    }
    let mut kernel = kernel.ok();
    eprintln!(
        "pinhole bench nat: {secs} s per measurement, A {A_ADDR} → NAT {NAT_ADDR} → B {B_ADDR}"
    );

    let mut results = serde_json::Map::new();
    let mut table: Vec<(String, String, String, String)> = Vec::new();
    let mut losses_text: Vec<String> = Vec::new();
    let mut cpu_text: Vec<String> = Vec::new();
    let tests: [(&str, bool, u16, usize); 3] = [
        ("udp64", false, 5001, 64),
        ("udp1200", false, 5002, 1200),
        ("tcp", true, 5003, 128 * 1024),
    ];
    for (name, tcp, port, size) in tests {
        eprintln!("pinhole bench: {name} through pinhole…");
        let (sa, sb) = (NsDrops::read(a), NsDrops::read(b));
        let snap0 = fabric.snapshot().map_err(|e| anyhow!("{e}"))?;
        let (cpu0, wall0) = (engine_cpu_ns(), now());
        let p = measure(b, a, tcp, port, size, secs, opts.sender.batch())
            .with_context(|| format!("{name} through pinhole"))?;
        let (cpu1, wall) = (engine_cpu_ns(), now().duration_since(wall0));
        let snap1 = fabric.snapshot().map_err(|e| anyhow!("{e}"))?;
        let (e0, e1) = (engine_drops(&snap0), engine_drops(&snap1));
        let engine_packets = snap1.engine.sent - snap0.engine.sent;
        let cpu = cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a));
        let cpu_json = json!({
            "engine_packets": engine_packets,
            "engine_cpu_ns_per_packet": cpu.filter(|_| engine_packets > 0)
                .map(|c| round(c as f64 / engine_packets as f64, 0)),
            "engine_cpu_percent": cpu.map(|c| round(100.0 * c as f64 / wall.as_nanos() as f64, 1)),
        });
        if let (Some(c), Some(pc)) = (
            cpu_json["engine_cpu_ns_per_packet"].as_f64(),
            cpu_json["engine_cpu_percent"].as_f64(),
        ) {
            cpu_text.push(format!(
                "{name} {c:.0} ns/packet over {engine_packets} packets ({pc:.0}% of a core)"
            ));
        }
        let p_loss = losses(
            NsDrops::read(a).since(sa),
            NsDrops::read(b).since(sb),
            json!({"engine_drops": e1.0 - e0.0, "engine_tun_full": e1.1 - e0.1}),
        );
        let measured = kernel.as_ref().map(|k| -> Result<(Counted, Value)> {
            eprintln!("pinhole bench: {name} through the kernel (nftables)…");
            let (sa, sr, sb) = (
                NsDrops::read(&k.a),
                NsDrops::read(&k.r),
                NsDrops::read(&k.b),
            );
            let c = measure(&k.b, &k.a, tcp, port, size, secs, opts.sender.batch())?;
            let r = NsDrops::read(&k.r).since(sr);
            let loss = losses(
                NsDrops::read(&k.a).since(sa),
                NsDrops::read(&k.b).since(sb),
                json!({"router_if_rx_dropped": r.if_rx, "router_if_tx_dropped": r.if_tx}),
            );
            Ok((c, loss))
        });
        let (k, k_loss) = match measured {
            Some(Ok((c, loss))) => (Some(c), loss),
            Some(Err(e)) => {
                // Reported in the output; the kernel side is not measured further.
                let why = format!("{name} through the kernel: {e:#}");
                eprintln!("pinhole bench: {why}");
                kernel_unavailable = Some(why);
                kernel = None;
                (None, Value::Null)
            }
            None => (None, Value::Null),
        };
        let ratio = |pv: f64, kv: Option<f64>| kv.filter(|k| *k > 0.0).map(|k| round(pv / k, 3));
        if tcp {
            let mbit = |c: &Counted| round(rate(c.bytes * 8, c.seconds) / 1e6, 1);
            let (pm, km) = (mbit(&p), k.as_ref().map(mbit));
            results.insert(
                name.into(),
                json!({
                    "pinhole_mbit_s": pm,
                    "kernel_mbit_s": km,
                    "ratio": ratio(pm, km),
                    "pinhole_losses": p_loss,
                    "kernel_losses": k_loss,
                    "engine_cpu": cpu_json,
                }),
            );
            table.push((
                "TCP (1 connection)".into(),
                format!("{pm:.1} Mbit/s"),
                km.map_or("—".into(), |k| format!("{k:.1} Mbit/s")),
                ratio(pm, km).map_or("—".into(), |r| format!("{r:.3}")),
            ));
            eprintln!("pinhole bench: {name}: pinhole {pm} Mbit/s, kernel {km:?} Mbit/s");
        } else {
            let pps = |c: &Counted| rate(c.packets, c.seconds).round();
            let offered = |c: &Counted| c.offered.map(|(n, s)| rate(n, s).round());
            let (pp, kp) = (pps(&p), k.as_ref().map(pps));
            results.insert(
                name.into(),
                json!({
                    "pinhole_pps": pp,
                    "kernel_pps": kp,
                    "ratio": ratio(pp, kp),
                    "pinhole_offered_pps": offered(&p),
                    "kernel_offered_pps": k.as_ref().and_then(offered),
                    "pinhole_losses": p_loss,
                    "kernel_losses": k_loss,
                    "engine_cpu": cpu_json,
                }),
            );
            table.push((
                format!("UDP {size} B payload"),
                format!("{pp:.0} pps"),
                kp.map_or("—".into(), |k| format!("{k:.0} pps")),
                ratio(pp, kp).map_or("—".into(), |r| format!("{r:.3}")),
            ));
            eprintln!(
                "pinhole bench: {name}: pinhole {pp} pps (offered {:?}), kernel {kp:?} pps (offered {:?})",
                offered(&p),
                k.as_ref().and_then(offered)
            );
            let describe = |l: &Value| {
                if l.is_null() {
                    return "—".to_string();
                }
                let mid = &l["middle"];
                let middle = if mid.get("engine_drops").is_some() {
                    format!(
                        "engine {} + full TUN queue {}",
                        mid["engine_drops"], mid["engine_tun_full"]
                    )
                } else {
                    format!(
                        "router interfaces {}",
                        mid["router_if_rx_dropped"].as_u64().unwrap_or(0)
                            + mid["router_if_tx_dropped"].as_u64().unwrap_or(0)
                    )
                };
                format!(
                    "sender interface {}, sender socket {}, {middle}, receiver interface {}, receiver socket {}",
                    l["sender_if_tx_dropped"],
                    l["sender_udp_sndbuf_errors"],
                    l["receiver_if_rx_dropped"],
                    l["receiver_udp_rcvbuf_errors"]
                )
            };
            losses_text.push(format!(
                "UDP {size} B dropped — pinhole: {}; kernel: {}",
                describe(&results[name]["pinhole_losses"]),
                describe(&results[name]["kernel_losses"])
            ));
        }
    }
    let snap = fabric.snapshot().map_err(|e| anyhow!("{e}"))?;
    let engine_json = snapshot_json(&snap, fabric.topology());
    let (rss_after, rss_peak) = memory_kib();
    drop(kernel);
    results.insert("engine_rss_kib".into(), json!(rss_after));
    results.insert(
        "rss_kib".into(),
        json!({"before_start": rss_before, "fabric_started": rss_started, "after": rss_after, "peak": rss_peak}),
    );
    results.insert("engine".into(), engine_json.clone());
    results.insert("seconds".into(), json!(secs));
    results.insert("sender".into(), json!(opts.sender.name()));
    results.insert("kernel_unavailable".into(), json!(kernel_unavailable));
    if opts.json {
        println!("{}", Value::Object(results));
    } else {
        println!(
            "pinhole bench nat — {secs} s per measurement; A {A_ADDR} → NAT → B {B_ADDR}; UDP sender {}; receive rates",
            opts.sender.name()
        );
        println!(
            "{:<22} {:>16} {:>20} {:>15}",
            "", "pinhole", "kernel (nftables)", "pinhole/kernel"
        );
        for (n, p, k, r) in &table {
            println!("{n:<22} {p:>16} {k:>20} {r:>15}");
        }
        for l in &losses_text {
            println!("{l}");
        }
        if let Some(why) = &kernel_unavailable {
            println!("kernel side not measured: {why}");
        }
        println!(
            "memory (this process, engine in it): VmRSS {rss_before} KiB before start, \
             {rss_started} KiB with the fabric up, {rss_after} KiB after the load; peak {rss_peak} KiB"
        );
        if !cpu_text.is_empty() {
            println!("engine thread CPU: {}", cpu_text.join("; "));
        }
        let e = &engine_json;
        println!(
            "engine: {} packets in, {} delivered, {} dropped writing to a full TUN queue; drops {}; NAT drops {}",
            e["sent"], e["delivered"], e["tun_full"], e["drops"], e["nat_drops"]
        );
        println!(
            "TUN offloads: {} (PINHOLE_TUN_OFFLOAD=0 turns them off); {} super-segments cut in userspace, \
             {} UDP datagrams coalesced into USO writes, {} packets with an unusable offload header",
            snap.offloads, snap.segmented, snap.coalesced, snap.offload_errors
        );
    }
    Ok(EXIT_PASS)
}
