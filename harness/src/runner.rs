//! Runs scenario cells on the virtual fabric and judges their expectations.
//!
//! A cell runs its steps in order (SCENARIO-FORMAT.md "Steps"): a step starts when the
//! step before it is done and not before its `at:`. Between inputs the driver jumps the
//! virtual clock to the earliest due event of the fabric, the services and the running
//! step, so a 5-minute scenario takes milliseconds. Reaching `time_limit` fails the cell.

use crate::agents::http_proxy::HttpProxyService;
use crate::agents::net::{Agent, Net};
use crate::agents::probe::Probe;
use crate::agents::punch::{Punch, PunchOutcome, PunchProtocol};
use crate::agents::sip::{SipProxyService, proxy_config};
use crate::agents::stun::StunService;
use crate::agents::turn::{TurnService, TurnServiceConfig};
use crate::capture::PcapSink;
use crate::convert;
use crate::scenario::Cell;
use crate::scenario::model::{self as m, Measure, StepKind};
use emulator::fabric::sim::Sim;
use relay::stun::{ProbeReport, ProberConfig, ServerConfig, Tests};
use relay::turn::TurnConfig;
use reports::{CellReport, Check, DropCount, StepReport};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What a step produced, for expectations and the report.
#[derive(Clone, Debug)]
pub(crate) enum StepResult {
    Done,
    Punch(PunchOutcome),
    Probe(ProbeReport),
    Run(crate::kernel_runner::RunOutcome),
}

enum Active {
    Punch(Box<Punch<Sim>>),
    Probe(Box<Probe<Sim>>),
}

impl Active {
    fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Active::Punch(p) => p.poll_timeout(),
            Active::Probe(p) => p.poll_timeout(),
        }
    }
    fn poll(&mut self, sim: &mut Sim) {
        match self {
            Active::Punch(p) => p.poll(sim),
            Active::Probe(p) => p.poll(sim),
        }
    }
    fn is_done(&self) -> bool {
        match self {
            Active::Punch(p) => p.is_done(),
            Active::Probe(p) => p.is_done(),
        }
    }
}

/// The cell ran out of scenario time or could not set something up.
#[derive(Debug)]
struct Abort(String);

struct Driver {
    sim: Sim,
    services: Vec<Box<dyn Agent<Sim>>>,
    deadline: Instant,
    time_limit: Duration,
    pcap: Option<PcapSink>,
}

pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}

fn drain_captures(pcap: &mut Option<PcapSink>, sim: &mut Sim) {
    if let Some(p) = pcap.as_mut() {
        let epoch = sim.epoch();
        while let Some(c) = sim.engine_mut().poll_capture() {
            p.record(sim.topology(), epoch, &c);
        }
    }
}

impl Driver {
    fn elapsed(&self) -> Duration {
        self.sim.now() - self.sim.epoch()
    }

    /// Let agents read and write until nothing more happens at the current instant
    /// (zero-delay paths make request and answer land in the same instant).
    fn settle(&mut self, active: &mut Option<Active>) {
        drain_captures(&mut self.pcap, &mut self.sim);
        for _ in 0..1000 {
            let before = (self.sim.stats().delivered, self.sim.stats().sent);
            for s in &mut self.services {
                s.poll(&mut self.sim);
            }
            if let Some(a) = active.as_mut() {
                a.poll(&mut self.sim);
            }
            self.sim.flush();
            drain_captures(&mut self.pcap, &mut self.sim);
            if (self.sim.stats().delivered, self.sim.stats().sent) == before {
                return;
            }
        }
    }

    /// Run until `until`, or until the active step is done (then return early).
    fn drive(&mut self, until: Instant, active: &mut Option<Active>) -> Result<(), Abort> {
        loop {
            self.settle(active);
            if active.as_ref().is_some_and(Active::is_done) {
                return Ok(());
            }
            let now = self.sim.now();
            if now >= until {
                return Ok(());
            }
            if now >= self.deadline {
                return Err(Abort(format!(
                    "time limit of {:?} reached",
                    self.time_limit
                )));
            }
            let mut next = until.min(self.deadline);
            for t in [
                self.sim.poll_timeout(),
                active.as_ref().and_then(Active::poll_timeout),
            ]
            .into_iter()
            .flatten()
            .chain(self.services.iter().filter_map(|s| s.poll_timeout()))
            {
                next = next.min(t.max(now));
            }
            self.sim.advance(next);
        }
    }
}

/// The host index of a host name (validated by the parser).
fn host(sim: &Sim, name: &str) -> Result<usize, Abort> {
    sim.topology()
        .host_id(name)
        .ok_or_else(|| Abort(format!("unknown host `{name}`")))
}

pub(crate) fn step_name(i: usize, s: &m::Step) -> String {
    s.name.clone().unwrap_or_else(|| format!("step-{}", i + 1))
}

pub(crate) fn step_kind(k: &StepKind) -> &'static str {
    match k {
        StepKind::Call { .. } => "call",
        StepKind::Reinvite { .. } => "reinvite",
        StepKind::Probe { .. } => "probe",
        StepKind::Punch { .. } => "punch",
        StepKind::Run { .. } => "run",
        StepKind::Wait(_) => "wait",
        StepKind::Link { .. } => "link",
        StepKind::Nat { .. } => "nat",
    }
}

/// The prober's configuration for probe step `i` (named `name`) of a cell, and its seed.
/// The binding lifetime is measured when the step asks or an expectation needs it.
pub(crate) fn probe_config(
    cell: &Cell,
    i: usize,
    name: &str,
    server: SocketAddr,
    lifetime: bool,
    lifetime_max: Duration,
) -> (ProberConfig, u64) {
    let wants_lifetime = lifetime
        || cell.spec.expect.iter().any(|e| {
            e.step == name
                && e.checks
                    .iter()
                    .any(|c| matches!(c.measure, Measure::BindingLifetime(_)))
        });
    let wants_ports = cell.spec.expect.iter().any(|e| {
        e.step == name
            && e.checks.iter().any(|c| {
                matches!(
                    c.measure,
                    Measure::PortAllocation(_) | Measure::PortParity(_)
                )
            })
    });
    let mut config = ProberConfig::new(server);
    config.tests = Tests {
        mapping: true,
        filtering: true,
        hairpinning: true,
        lifetime: wants_lifetime.then_some(lifetime_max),
        port_allocation: wants_ports,
    };
    let seed = cell.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (config, seed)
}

/// The STUN server configuration of a `stun` service on a host whose first address is
/// `primary`.
pub fn stun_config(primary: std::net::IpAddr, stun: &m::Stun) -> ServerConfig {
    ServerConfig {
        primary: SocketAddr::new(primary, stun.port),
        alternate: stun.alternate.as_ref().map(|a| a.address),
        alternate_port: stun.alternate.as_ref().map(|a| a.port),
        software: Some(format!("pinhole {}", env!("CARGO_PKG_VERSION"))),
    }
}

/// The `turn` service of a host whose first address is `primary`; with `stun` when a
/// `stun` service on the same host shares its port (one listener, coturn-style).
pub fn turn_config(
    primary: std::net::IpAddr,
    turn: &m::Turn,
    stun: Option<&m::Stun>,
    seed: u64,
) -> TurnServiceConfig {
    let listen = SocketAddr::new(primary, turn.port);
    let mut config = TurnConfig::new(listen, primary, turn.realm.clone());
    config.users = turn.users.clone();
    config.relay_ports = (turn.relay_ports.first, turn.relay_ports.last);
    config.quota = turn.quota;
    config.legacy_channels = turn.legacy_channels;
    if let Some(a) = &turn.password_algorithms {
        config.password_algorithms = a.clone();
    }
    config.software = Some(format!("pinhole {}", env!("CARGO_PKG_VERSION")));
    config.seed = seed;
    TurnServiceConfig {
        turn: config,
        stun: stun
            .filter(|s| s.port == turn.port)
            .map(|s| stun_config(primary, s)),
        tcp: true,
        tls: None,
    }
}

/// Start the services of one host (`stun`, `turn`, `http-proxy`, `sip-proxy`): a `stun` service sharing
/// the `turn` service's port becomes part of it; on different ports they are two.
pub fn start_services<N: Net + 'static>(
    net: &mut N,
    host: usize,
    primary: std::net::IpAddr,
    services: &m::Services,
    seed: u64,
    names: &[(String, std::net::IpAddr)],
) -> Result<Vec<Box<dyn Agent<N>>>, String> {
    let mut out: Vec<Box<dyn Agent<N>>> = Vec::new();
    let shared = matches!((&services.stun, &services.turn), (Some(s), Some(t)) if s.port == t.port);
    if let Some(stun) = services.stun.as_ref().filter(|_| !shared) {
        let svc = StunService::start(net, host, stun_config(primary, stun))
            .map_err(|e| format!("stun service on `{}`: {e}", services.host))?;
        out.push(Box::new(svc));
    }
    if let Some(turn) = &services.turn {
        let mut config = turn_config(primary, turn, services.stun.as_ref(), seed);
        if let Some(port) = turn.tls_port {
            // The scenario's certificate (a format extension), else one made at start.
            let tls = match &turn.tls_cert {
                Some((cert, key)) => crate::agents::tls::server_from_pem_files(cert, key),
                None => crate::agents::tls::self_signed_server(vec![
                    primary.to_string(),
                    services.host.clone(),
                ]),
            }
            .map_err(|e| format!("turn service on `{}`: {e}", services.host))?;
            config.tls = Some((port, tls));
        }
        let svc = TurnService::start(net, host, config)
            .map_err(|e| format!("turn service on `{}`: {e}", services.host))?;
        out.push(Box::new(svc));
    }
    if let Some(p) = &services.http_proxy {
        let config = relay::http_proxy::ProxyConfig::new(p.users.clone());
        let svc = HttpProxyService::start(net, host, p.port, config, names.to_vec())
            .map_err(|e| format!("http-proxy service on `{}`: {e}", services.host))?;
        out.push(Box::new(svc));
    }
    if let Some(sip) = &services.sip_proxy {
        let svc = SipProxyService::start(net, host, proxy_config(primary, sip, seed))
            .map_err(|e| format!("sip-proxy service on `{}`: {e}", services.host))?;
        out.push(Box::new(svc));
    }
    Ok(out)
}

/// Every host's name and primary address: what the hosts' `/etc/hosts` says, for services
/// that resolve names (the `http-proxy`'s CONNECT targets).
pub fn host_names(topo: &emulator::topology::Topology) -> Vec<(String, std::net::IpAddr)> {
    topo.hosts
        .iter()
        .filter_map(|h| Some((h.name.clone(), *h.addresses.first()?)))
        .collect()
}

/// A NAT's counters for the report, by stable names.
pub(crate) fn nat_counters(s: &emulator::nat::NatStats) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for (k, v) in [
        ("translated_out", s.translated_out),
        ("translated_in", s.translated_in),
        ("hairpinned", s.hairpinned),
        ("mappings_created", s.created),
        ("mappings_expired", s.expired),
        ("mappings_removed", s.removed),
        ("mappings_rebound", s.rebound),
        ("replies", s.replies),
    ] {
        m.insert(k.to_string(), v);
    }
    for (reason, n) in &s.drops {
        m.insert(format!("dropped_{}", reason.as_str()), *n);
    }
    // The SIP ALG's counters, only when it did something (reports of NATs without it
    // stay as they were).
    let a = &s.alg;
    if *a != emulator::alg::AlgStats::default() {
        for (k, v) in [
            ("sip_alg_messages", a.messages),
            ("sip_alg_packets_rewritten", a.packets_rewritten),
            ("sip_alg_fields", a.fields),
            ("sip_alg_content_length_fixed", a.content_length_fixed),
            ("sip_alg_media_mappings", a.media_mappings),
            ("sip_alg_media_failed", a.media_failed),
            ("sip_alg_tcp_adjusted", a.tcp_adjusted),
            ("sip_alg_partial", a.partial),
        ] {
            m.insert(k.to_string(), v);
        }
    }
    m
}

pub(crate) fn results_json(r: &StepResult) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    match r {
        StepResult::Done => {}
        StepResult::Run(o) => {
            out.insert("exit".into(), json!(o.exit));
            out.insert("stopped".into(), json!(o.stopped));
            out.insert("stdout".into(), json!(o.stdout));
            out.insert("stderr".into(), json!(o.stderr));
        }
        StepResult::Punch(p) => {
            out.insert("connected".into(), json!(p.connected));
            out.insert(
                "learned".into(),
                json!(
                    p.learned
                        .iter()
                        .map(|a| a.map(|a| a.to_string()))
                        .collect::<Vec<_>>()
                ),
            );
            out.insert("received".into(), json!(p.received));
            if let Some(t) = p.time_to_connect {
                out.insert("time_to_connect_ms".into(), json!(ms(t)));
            }
        }
        StepResult::Probe(p) => {
            if let Some(a) = p.mapped {
                out.insert("mapped".into(), json!(a.to_string()));
            }
            if let Some(n) = p.nat_detected {
                out.insert("nat_detected".into(), json!(n));
            }
            if let Some(b) = p.mapping {
                out.insert("mapping".into(), json!(b.as_str()));
            }
            if let Some(b) = p.filtering {
                out.insert("filtering".into(), json!(b.as_str()));
            }
            if let Some(h) = p.hairpinning {
                out.insert("hairpinning".into(), json!(h));
            }
            if let Some(l) = p.binding_lifetime {
                out.insert("binding_lifetime_ms".into(), json!(ms(l)));
            }
            if let Some(l) = p.lifetime_upper_bound {
                out.insert("binding_lifetime_upper_bound_ms".into(), json!(ms(l)));
            }
            if let Some(a) = p.port_allocation {
                out.insert("port_allocation".into(), json!(a.as_str()));
            }
            if let Some(b) = p.port_parity {
                out.insert("port_parity".into(), json!(b));
            }
            if !p.errors.is_empty() {
                out.insert("errors".into(), json!(p.errors));
            }
        }
    }
    out
}

fn fmt_duration(d: Duration) -> String {
    crate::scenario::values::format_duration(d)
}

/// Judge one measure against a step's result.
pub(crate) fn judge(
    measure: &Measure,
    result: Option<&StepResult>,
) -> (Option<Value>, bool, Option<String>) {
    let not_measured = |why: String| (None, false, Some(why));
    match (measure, result) {
        (Measure::Exit(_) | Measure::Stdout(_) | Measure::Stderr(_), Some(StepResult::Run(o))) => {
            judge_run(measure, Some(o))
        }
        (Measure::Connected(want), Some(StepResult::Punch(p))) => (
            Some(json!(p.connected)),
            p.connected == *want,
            (p.connected != *want).then(|| {
                format!(
                    "expected connected: {want}, but it was {}{}",
                    p.connected,
                    match p.received {
                        [true, false] => " (only the first peer heard the second)",
                        [false, true] => " (only the second peer heard the first)",
                        _ => "",
                    }
                )
            }),
        ),
        (Measure::Mapping(want) | Measure::Filtering(want), Some(StepResult::Probe(p))) => {
            let got = match measure {
                Measure::Mapping(_) => p.mapping,
                _ => p.filtering,
            };
            match got {
                Some(b) => {
                    let ok = b.as_str() == want.as_str();
                    (
                        Some(json!(b.as_str())),
                        ok,
                        (!ok).then(|| format!("expected {want}, measured {}", b.as_str())),
                    )
                }
                None => not_measured(format!(
                    "the probe could not determine it: {}",
                    p.errors.join("; ")
                )),
            }
        }
        (Measure::PortAllocation(want), Some(StepResult::Probe(p))) => match p.port_allocation {
            Some(a) => {
                let ok = a.as_str() == want.as_str();
                (
                    Some(json!(a.as_str())),
                    ok,
                    (!ok).then(|| {
                        format!("expected port_allocation: {want}, measured {}", a.as_str())
                    }),
                )
            }
            None => not_measured(format!(
                "the probe could not determine it: {}",
                p.errors.join("; ")
            )),
        },
        (Measure::PortParity(want), Some(StepResult::Probe(p))) => match p.port_parity {
            Some(b) => (
                Some(json!(b)),
                b == *want,
                (b != *want).then(|| format!("expected port_parity: {want}, measured {b}")),
            ),
            None if p.port_allocation.is_some_and(|a| a.as_str() == "preserve") => not_measured(
                "the NAT preserves ports, which keeps their parity whatever its parity setting"
                    .into(),
            ),
            None => not_measured(format!(
                "the probe could not determine it: {}",
                p.errors.join("; ")
            )),
        },
        (Measure::Hairpinning(want), Some(StepResult::Probe(p))) => match p.hairpinning {
            Some(h) => (
                Some(json!(h)),
                h == *want,
                (h != *want).then(|| format!("expected hairpinning: {want}, measured {h}")),
            ),
            None => not_measured(format!(
                "the probe could not determine it: {}",
                p.errors.join("; ")
            )),
        },
        (Measure::BindingLifetime(cmp), Some(StepResult::Probe(p))) => match p.binding_lifetime {
            Some(l) => {
                let ok = cmp.check(&l);
                (
                    Some(json!(ms(l))),
                    ok,
                    (!ok).then(|| format!("expected {cmp}, measured {}", fmt_duration(l))),
                )
            }
            None => not_measured(format!(
                "the probe did not measure a binding lifetime: {}",
                p.errors.join("; ")
            )),
        },
        (_, None) => not_measured("the step did not run".into()),
        (m, Some(_)) => not_measured(format!("`{}` is not produced by this step", m.key())),
    }
}

/// Run one cell on the virtual fabric and judge it.
pub fn run_cell(cell: &Cell) -> CellReport {
    run_cell_with(cell, &CellOptions::default())
}

/// Per-run options of a cell.
#[derive(Clone, Debug, Default)]
pub struct CellOptions {
    /// Write one pcap file per attachment into this folder.
    pub pcap_dir: Option<PathBuf>,
}

/// Run one cell on the virtual fabric with options, and judge it.
pub fn run_cell_with(cell: &Cell, opts: &CellOptions) -> CellReport {
    let spec = &cell.spec;
    let mut report = CellReport {
        name: cell.name.clone(),
        seed: cell.seed,
        fabric: "virtual".into(),
        ..Default::default()
    };
    let mut results: BTreeMap<String, StepResult> = BTreeMap::new();
    let outcome = run_steps(cell, opts, &mut report, &mut results);
    if let Err(Abort(msg)) = &outcome {
        report.error = Some(msg.clone());
    }
    // Expectations (the cell holds only those whose `when:` holds in it).
    for e in &spec.expect {
        let result = results.get(&e.step);
        for c in &e.checks {
            let (measured, passed, message) = judge(&c.measure, result);
            report.checks.push(Check {
                step: e.step.clone(),
                measure: c.measure.key().to_string(),
                expected: measure_text(&c.measure),
                measured_text: measured.as_ref().map(|v| value_text(&c.measure, v)),
                measured,
                passed,
                message,
            });
        }
    }
    report.passed = report.error.is_none() && report.checks.iter().all(|c| c.passed);
    report
}

/// Judge a `run` step's measure against what its program did.
fn judge_run(
    measure: &Measure,
    out: Option<&crate::kernel_runner::RunOutcome>,
) -> (Option<Value>, bool, Option<String>) {
    let Some(out) = out else {
        return (None, false, Some("the step did not run".into()));
    };
    match measure {
        Measure::Exit(cmp) => match out.exit {
            Some(code) => {
                let ok = cmp.check(&code);
                let why = if out.stopped {
                    " (pinhole stopped it: timeout or end of scenario)"
                } else {
                    ""
                };
                (
                    Some(json!(code)),
                    ok,
                    (!ok).then(|| format!("expected exit {cmp}, it exited {code}{why}")),
                )
            }
            None => (None, false, Some("the program did not exit".into())),
        },
        Measure::Stdout(t) | Measure::Stderr(t) => {
            let (text, stream) = match measure {
                Measure::Stdout(_) => (&out.stdout, "stdout"),
                _ => (&out.stderr, "stderr"),
            };
            let ok = text.contains(&t.contains);
            let excerpt: String = text.chars().take(400).collect();
            (
                Some(json!(excerpt)),
                ok,
                (!ok).then(|| format!("{stream} does not contain {:?}", t.contains)),
            )
        }
        m => (
            None,
            false,
            Some(format!("`{}` is not produced by a run step", m.key())),
        ),
    }
}

/// A measured value in the units its expectation is written in.
pub(crate) fn value_text(m: &Measure, v: &Value) -> String {
    match (m, v) {
        (
            Measure::BindingLifetime(_)
            | Measure::SetupTime(_)
            | Measure::Jitter(_)
            | Measure::OneWayDelay(_),
            Value::Number(n),
        ) => n
            .as_u64()
            .map(|ms| fmt_duration(Duration::from_millis(ms)))
            .unwrap_or_else(|| n.to_string()),
        (Measure::Loss(_), Value::Number(n)) => {
            format!("{}%", n.as_f64().unwrap_or(0.0) * 100.0)
        }
        (_, Value::String(s)) => s.trim_end().to_string(),
        (_, v) => v.to_string(),
    }
}

pub(crate) fn measure_text(m: &Measure) -> String {
    match m {
        Measure::Connected(b)
        | Measure::Hairpinning(b)
        | Measure::Established(b)
        | Measure::PortParity(b) => b.to_string(),
        Measure::PortAllocation(a) => a.to_string(),
        Measure::Mapping(b) | Measure::Filtering(b) => b.to_string(),
        Measure::BindingLifetime(c)
        | Measure::SetupTime(c)
        | Measure::Jitter(c)
        | Measure::OneWayDelay(c) => c.text.clone(),
        Measure::Loss(c) | Measure::Mos(c) => c.text.clone(),
        Measure::Exit(c) => c.text.clone(),
        Measure::Media(p) => p.to_string(),
        Measure::Stdout(t) | Measure::Stderr(t) => format!("contains {:?}", t.contains),
    }
}

fn run_steps(
    cell: &Cell,
    opts: &CellOptions,
    report: &mut CellReport,
    results: &mut BTreeMap<String, StepResult>,
) -> Result<(), Abort> {
    let spec = &cell.spec;
    let topo = convert::topology(spec).map_err(Abort)?;
    // The virtual clock's origin. Only differences from it reach the report.
    #[allow(clippy::disallowed_methods)]
    let epoch = Instant::now();
    let mut sim = Sim::new(topo, cell.seed, epoch).map_err(|e| Abort(e.to_string()))?;
    if opts.pcap_dir.is_some() {
        sim.engine_mut().set_capture(true);
    }
    let mut d = Driver {
        sim,
        services: Vec::new(),
        deadline: epoch + spec.time_limit,
        time_limit: spec.time_limit,
        pcap: opts.pcap_dir.clone().map(PcapSink::new),
    };
    // Services listen before t = 0.
    let names = host_names(d.sim.topology());
    for s in &spec.services {
        let h = host(&d.sim, &s.host)?;
        let primary = d.sim.host_addresses(h)[0];
        let mut svcs =
            start_services(&mut d.sim, h, primary, s, cell.seed, &names).map_err(Abort)?;
        d.services.append(&mut svcs);
    }
    let mut result = run_timeline(cell, &mut d, report, results);
    report.ended_ms = ms(d.elapsed());
    drain_captures(&mut d.pcap, &mut d.sim);
    if let Some(p) = d.pcap.take()
        && let Err(e) = p.finish()
    {
        result = result.and(Err(Abort(e)));
    }
    // Fabric counters.
    for ((at, reason), count) in &d.sim.stats().drops {
        report.drops.push(DropCount {
            at: at.clone(),
            reason: reason.as_str().to_string(),
            count: *count,
        });
    }
    for (i, n) in d.sim.topology().nats.iter().enumerate() {
        report
            .nats
            .insert(n.name.clone(), nat_counters(d.sim.nat(i).stats()));
    }
    result
}

fn run_timeline(
    cell: &Cell,
    d: &mut Driver,
    report: &mut CellReport,
    results: &mut BTreeMap<String, StepResult>,
) -> Result<(), Abort> {
    let spec = &cell.spec;
    let epoch = d.sim.epoch();
    for (i, step) in spec.steps.iter().enumerate() {
        let name = step_name(i, step);
        if let Some(at) = step.at {
            let mut none = None;
            d.drive(epoch + at, &mut none)?;
        }
        let started = d.elapsed();
        let result = match &step.kind {
            StepKind::Wait(dur) => {
                let mut none = None;
                let until = d.sim.now() + *dur;
                d.drive(until, &mut none)?;
                StepResult::Done
            }
            StepKind::Link { on, up, down } => {
                let at = convert::attachment(d.sim.topology(), on)
                    .ok_or_else(|| Abort(format!("link target `{on}` names nothing")))?;
                for (is_up, change) in [(true, up), (false, down)] {
                    let current = d.sim.link(at, is_up).map(|l| l.config().clone());
                    let merged = merge_link(current, change);
                    d.sim.set_link(at, is_up, merged);
                }
                StepResult::Done
            }
            StepKind::Nat { on, action } => {
                let id = d
                    .sim
                    .topology()
                    .nat_id(on)
                    .ok_or_else(|| Abort(format!("unknown NAT `{on}`")))?;
                let now = d.sim.now();
                match action {
                    m::NatAction::Reboot => d.sim.nat_mut(id).reboot(now),
                    m::NatAction::Rebind => d.sim.nat_mut(id).rebind(now),
                    m::NatAction::Renumber(addrs) => d
                        .sim
                        .renumber_nat(id, addrs.clone())
                        .map_err(|e| Abort(format!("renumber `{on}`: {e}")))?,
                }
                StepResult::Done
            }
            StepKind::Punch {
                between,
                rendezvous,
                protocol,
                timeout,
            } => {
                let a = host(&d.sim, &between[0])?;
                let b = host(&d.sim, &between[1])?;
                let r = host(&d.sim, rendezvous)?;
                let proto = match protocol {
                    m::PunchProtocol::Udp => PunchProtocol::Udp,
                    m::PunchProtocol::Tcp => PunchProtocol::Tcp,
                };
                let p = Punch::start(&mut d.sim, proto, [a, b], r, *timeout)
                    .map_err(|e| Abort(format!("punch `{name}`: {e}")))?;
                let mut active = Some(Active::Punch(Box::new(p)));
                let far = d.deadline + Duration::from_secs(1);
                d.drive(far, &mut active)?;
                match active {
                    Some(Active::Punch(p)) => StepResult::Punch(p.outcome()),
                    _ => StepResult::Done,
                }
            }
            StepKind::Probe {
                from,
                server,
                lifetime,
                lifetime_max,
            } => {
                let h = host(&d.sim, from)?;
                let sh = host(&d.sim, server)?;
                let stun = spec
                    .services_of(server)
                    .and_then(|s| s.stun.as_ref())
                    .ok_or_else(|| Abort(format!("host `{server}` runs no stun service")))?;
                let server_addr = SocketAddr::new(d.sim.host_addresses(sh)[0], stun.port);
                let (config, seed) =
                    probe_config(cell, i, &name, server_addr, *lifetime, *lifetime_max);
                let p = Probe::start(&mut d.sim, h, config, seed)
                    .map_err(|e| Abort(format!("probe `{name}`: {e}")))?;
                let mut active = Some(Active::Probe(Box::new(p)));
                let far = d.deadline + Duration::from_secs(1);
                d.drive(far, &mut active)?;
                match active {
                    Some(Active::Probe(p)) => match p.report() {
                        Some(r) => StepResult::Probe(r.clone()),
                        None => return Err(Abort(format!("probe `{name}` did not finish"))),
                    },
                    _ => StepResult::Done,
                }
            }
            StepKind::Call { .. } | StepKind::Reinvite { .. } | StepKind::Run { .. } => {
                // Rejected before the run by `check_available`; never silently skipped.
                return Err(Abort(format!(
                    "step `{name}` ({}) is not available yet",
                    step_kind(&step.kind)
                )));
            }
        };
        report.steps.push(StepReport {
            name: name.clone(),
            kind: step_kind(&step.kind).to_string(),
            started_ms: ms(started),
            ended_ms: ms(d.elapsed()),
            results: results_json(&result),
        });
        results.insert(name, result);
    }
    Ok(())
}

/// A `link:` step's settings merged into the link's current ones (SCENARIO-FORMAT.md:
/// "merged into the link's current settings").
pub(crate) fn merge_link(
    current: Option<emulator::link::LinkConfig>,
    change: &m::Impairment,
) -> emulator::link::LinkConfig {
    let base = current.unwrap_or_else(|| convert::link_config(&m::Impairment::default()));
    let new = convert::link_config(change);
    emulator::link::LinkConfig {
        delay: if change.delay.is_some() {
            new.delay
        } else {
            base.delay
        },
        jitter: if change.jitter.is_some() {
            new.jitter
        } else {
            base.jitter
        },
        loss: if change.loss.is_some() {
            new.loss
        } else {
            base.loss
        },
        duplicate: if change.duplicate.is_some() {
            new.duplicate
        } else {
            base.duplicate
        },
        reorder: if change.reorder.is_some() {
            new.reorder
        } else {
            base.reorder
        },
        rate: if change.rate.is_some() {
            new.rate
        } else {
            base.rate
        },
        queue: if change.queue.is_some() {
            new.queue
        } else {
            base.queue
        },
        mtu: if change.mtu.is_some() {
            new.mtu
        } else {
            base.mtu
        },
    }
}
