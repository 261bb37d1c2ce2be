//! The step timeline of a scenario cell, one for both fabrics.
//!
//! A cell runs its steps in order (SCENARIO-FORMAT.md "Steps"): a step starts when the step
//! before it is done and not before its `at:`. What a step does, what it records and how the
//! report is filled do not depend on the fabric; what does — the clock, serving services
//! while time passes, changing a link or a NAT of the running fabric, starting a real
//! program — is behind `StepHost`, implemented by the virtual fabric's driver
//! ([`crate::run::sim`]) and the kernel fabric's ([`crate::run::kernel`]). Keeping the
//! timeline in one place means a new step kind or report field is written once and the
//! fabrics cannot drift apart (`tests/fabric_equivalence.rs` compares their verdicts).

use super::judge::{check_expectations, results_json};
use super::results::{StepResult, ms};
use crate::agents::net::{Agent, Net};
use crate::agents::steps::probe::Probe;
use crate::agents::steps::punch::Punch;
use crate::convert;
use crate::scenario::Cell;
use crate::scenario::model::{self as m, Measure, StepKind};
use emulator::DropReason;
use emulator::fabric::engine::EngineStats;
use emulator::link::LinkConfig;
use emulator::nat::NatStats;
use emulator::topology::{Attachment, Topology};
use relay::stun::{ProberConfig, Tests};
use reports::{CellReport, DropCount, StepReport};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// What the timeline needs from the fabric a cell runs on. Times are scenario times:
/// durations since the cell's t = 0. Errors are the cell's error message; they end the
/// timeline (the steps after it did not run).
pub(crate) trait StepHost {
    /// The socket API the built-in agents (punch, probe) use on this fabric.
    type Net: Net;

    /// The running topology, for host, NAT and attachment names.
    fn topology(&self) -> &Topology;

    /// The scenario time now.
    fn elapsed(&self) -> Duration;

    /// Serve the services (and programs) until scenario time `t`; an error when the
    /// cell's time limit comes first.
    fn sleep_until(&mut self, t: Duration) -> Result<(), String>;

    /// The sockets for starting a built-in agent.
    fn net(&mut self) -> &mut Self::Net;

    /// Run a built-in agent until it is done, serving everything else meanwhile; an error
    /// when the time limit comes first.
    fn drive(&mut self, agent: &mut dyn Agent<Self::Net>) -> Result<(), String>;

    /// The current settings of the link at `at` (`up`: from the attachment into its
    /// network), if it has any.
    fn link(&self, at: Attachment, up: bool) -> Option<LinkConfig>;

    /// Replace the settings of the link at `at` on the running fabric.
    fn set_link(&mut self, at: Attachment, up: bool, config: LinkConfig) -> Result<(), String>;

    /// A `nat:` step's action on NAT `id` (named `on`).
    fn nat_action(&mut self, id: usize, on: &str, action: &m::NatAction) -> Result<(), String>;

    /// Start a `run:` step's program (step `step`) on host `host`; with `wait`, return when
    /// it has ended. Its [`RunOutcome`] is recorded by the fabric when it ends, not here.
    fn run_program(
        &mut self,
        step: &str,
        host: usize,
        cmd: &[String],
        timeout: Option<Duration>,
        wait: bool,
    ) -> Result<(), String>;

    /// A `service` step's `action` on the service `kind` (its scenario keyword) of host
    /// `host`.
    fn service_action(
        &mut self,
        host: usize,
        kind: &str,
        action: m::ServiceAction,
    ) -> Result<(), String>;

    /// The error of a step kind this fabric cannot run (the availability check rejects it
    /// before the run; it is never silently skipped).
    fn not_available(&self, step: &str, kind: &str) -> String;
}

/// The error of a cell that ended with zero checks (SCENARIO-FORMAT.md: it fails).
pub const NO_CHECKS: &str = "the cell ended with zero checks: no expectation applies to it \
     (none written, or every `when:` excludes this cell); a cell that checks nothing fails";

/// A cell's report: `run` fills the steps (and sets up and tears down the fabric); an
/// error it returns is the cell's error; then the expectations are judged.
pub(crate) fn judged_cell(
    cell: &Cell,
    fabric: &str,
    run: impl FnOnce(&mut CellReport, &mut BTreeMap<String, StepResult>) -> Result<(), String>,
) -> CellReport {
    let mut report = CellReport {
        name: cell.name.clone(),
        seed: cell.seed,
        fabric: fabric.into(),
        ..Default::default()
    };
    let mut results: BTreeMap<String, StepResult> = BTreeMap::new();
    if let Err(e) = run(&mut report, &mut results) {
        report.error = Some(e);
    }
    check_expectations(cell, &results, &mut report);
    // A cell that checks nothing proves nothing: it fails rather than pass empty.
    if report.checks.is_empty() && report.error.is_none() {
        report.error = Some(NO_CHECKS.to_string());
    }
    report.passed = report.error.is_none() && report.checks.iter().all(|c| c.passed);
    report
}

/// Run the cell's steps on `host`, recording each in `report` and its result in `results`
/// (a `run` step's result is recorded by the fabric when its program ends).
pub(crate) fn run_steps<H: StepHost>(
    cell: &Cell,
    host: &mut H,
    report: &mut CellReport,
    results: &mut BTreeMap<String, StepResult>,
) -> Result<(), String> {
    let spec = &cell.spec;
    for (i, step) in spec.steps.iter().enumerate() {
        let name = step_name(i, step);
        if let Some(at) = step.at {
            host.sleep_until(at)?;
        }
        let started = host.elapsed();
        let result = match &step.kind {
            StepKind::Wait(dur) => {
                host.sleep_until(host.elapsed() + *dur)?;
                StepResult::Done
            }
            StepKind::Link { on, up, down } => {
                let at = convert::attachment(host.topology(), on)
                    .ok_or_else(|| format!("link target `{on}` names nothing"))?;
                for (is_up, change) in [(true, up), (false, down)] {
                    let merged = merge_link(host.link(at, is_up), change);
                    host.set_link(at, is_up, merged)?;
                }
                StepResult::Done
            }
            StepKind::Nat { on, action } => {
                let id = host
                    .topology()
                    .nat_id(on)
                    .ok_or_else(|| format!("unknown NAT `{on}`"))?;
                host.nat_action(id, on, action)?;
                StepResult::Done
            }
            StepKind::Run { on, cmd, timeout } => {
                let h = host_id(host.topology(), on)?;
                host.run_program(&name, h, cmd, *timeout, step.wait)?;
                StepResult::Done
            }
            StepKind::Punch {
                between,
                rendezvous,
                protocol,
                timeout,
            } => {
                let topo = host.topology();
                let (a, b) = (host_id(topo, &between[0])?, host_id(topo, &between[1])?);
                let r = host_id(topo, rendezvous)?;
                let proto = *protocol;
                let mut p = Punch::start(host.net(), proto, [a, b], r, *timeout)
                    .map_err(|e| format!("punch `{name}`: {e}"))?;
                host.drive(&mut p)?;
                StepResult::Punch(p.outcome())
            }
            StepKind::Probe {
                from,
                server,
                lifetime,
                lifetime_max,
            } => {
                let topo = host.topology();
                let (h, sh) = (host_id(topo, from)?, host_id(topo, server)?);
                let stun = spec
                    .services_of(server)
                    .and_then(|s| s.stun.as_ref())
                    .ok_or_else(|| format!("host `{server}` runs no stun service"))?;
                let server_addr = SocketAddr::new(topo.hosts[sh].addresses[0], stun.port);
                let (config, seed) =
                    probe_config(cell, i, &name, server_addr, *lifetime, *lifetime_max);
                let mut p = Probe::start(host.net(), h, config, seed)
                    .map_err(|e| format!("probe `{name}`: {e}"))?;
                host.drive(&mut p)?;
                match p.report() {
                    Some(r) => StepResult::Probe(r.clone()),
                    None => return Err(format!("probe `{name}` did not finish")),
                }
            }
            StepKind::Service {
                on,
                service,
                action,
            } => {
                let h = host_id(host.topology(), on)?;
                host.service_action(h, service.as_str(), *action)
                    .map_err(|e| format!("service step `{name}` on `{on}`: {e}"))?;
                StepResult::Done
            }
            // Refused by `check_available` before a cell starts; kept here so that a
            // runner that forgets the check still fails rather than skip the step.
            StepKind::Call { .. } | StepKind::Reinvite { .. } => {
                return Err(host.not_available(&name, step_kind(&step.kind)));
            }
        };
        report.steps.push(StepReport {
            name: name.clone(),
            kind: step_kind(&step.kind).to_string(),
            started_ms: ms(started),
            ended_ms: ms(host.elapsed()),
            results: results_json(&result),
        });
        if !matches!(step.kind, StepKind::Run { .. }) {
            results.insert(name, result);
        }
    }
    Ok(())
}

/// The fabric's counters at the end of a cell into its report: drops by place and reason,
/// and each NAT's counters (`nat(i)`: the stats of the topology's NAT `i`, if known).
pub(crate) fn record_counters<'a>(
    report: &mut CellReport,
    topo: &Topology,
    engine: &EngineStats,
    nat: impl Fn(usize) -> Option<&'a NatStats>,
) {
    // By place name, then reason: places are ids in the engine, names in the report.
    let mut drops: Vec<(String, DropReason, u64)> = engine
        .drops
        .iter()
        .map(|((at, reason), count)| (topo.place_name(*at), *reason, *count))
        .collect();
    drops.sort();
    for (at, reason, count) in drops {
        report.drops.push(DropCount {
            at,
            reason: reason.as_str().to_string(),
            count,
        });
    }
    for (i, n) in topo.nats.iter().enumerate() {
        if let Some(s) = nat(i) {
            report.nats.insert(n.name.clone(), nat_counters(s));
        }
    }
}

/// The host index of a host name (validated by the parser).
fn host_id(topo: &Topology, name: &str) -> Result<usize, String> {
    topo.host_id(name)
        .ok_or_else(|| format!("unknown host `{name}`"))
}

/// A step's name: its `name:`, else `step-N` (1-based).
fn step_name(i: usize, s: &m::Step) -> String {
    s.name.clone().unwrap_or_else(|| format!("step-{}", i + 1))
}

/// A step kind's name as the scenario format writes it.
fn step_kind(k: &StepKind) -> &'static str {
    match k {
        StepKind::Call { .. } => "call",
        StepKind::Reinvite { .. } => "reinvite",
        StepKind::Probe { .. } => "probe",
        StepKind::Punch { .. } => "punch",
        StepKind::Run { .. } => "run",
        StepKind::Wait(_) => "wait",
        StepKind::Link { .. } => "link",
        StepKind::Nat { .. } => "nat",
        StepKind::Service { .. } => "service",
    }
}

/// The prober's configuration for probe step `i` (named `name`) of a cell, and its seed.
/// The binding lifetime is measured when the step asks or an expectation needs it.
fn probe_config(
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

/// A NAT's counters for the report, by stable names.
fn nat_counters(s: &emulator::nat::NatStats) -> BTreeMap<String, u64> {
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

/// A `link:` step's settings merged into the link's current ones (SCENARIO-FORMAT.md:
/// "merged into the link's current settings").
fn merge_link(
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

/// A `service` step on whichever fabric: the service `kind` of `host` among `services`.
pub(crate) fn act_on_service<N: Net>(
    services: &mut [Box<dyn Agent<N>>],
    net: &mut N,
    host: usize,
    kind: &str,
    action: m::ServiceAction,
) -> Result<(), String> {
    let svc = services
        .iter_mut()
        .find(|s| s.service() == Some((host, kind)))
        .ok_or_else(|| format!("no `{kind}` service runs there"))?;
    svc.act(net, action)
}
