//! Runs scenario cells on the kernel fabric: hosts are network namespaces behind TUN
//! devices, time is real, and `run:` steps execute real programs inside hosts.
//!
//! The steps run on the crate's one step timeline (`timeline.rs`); this module is the
//! kernel fabric's side of it (its `StepHost`), and the `run` steps' programs.
//!
//! Must be called inside pinhole's sandbox (`emulator::fabric::kernel::sys::enter_sandbox`).
//! `run` steps (SCENARIO-FORMAT.md): with `wait: true` the step is done when the program
//! exits; without, it runs in the background and is stopped — SIGTERM, then SIGKILL after
//! 2 s — at its `timeout` or at the end of the scenario, whichever comes first. Its exit
//! status, stdout and stderr are recorded either way.

use super::CellOptions;
use super::capture::PcapSink;
use super::events::Recorder;
use super::judge::results_json;
use super::programs::{Running, collect, with_own_binary};
use super::results::{RunOutcome, StepResult, ms};
use super::services::start_all;
use super::timeline::{self, StepHost};
use crate::agents::net::Agent;
use crate::agents::os::{EXTERNAL_TOKENS, NsGuard, OsNet};
use crate::convert;
use crate::scenario::Cell;
use crate::scenario::model as m;
use emulator::fabric::kernel::sys;
use emulator::fabric::kernel::{KernelFabric, NatAction};
use emulator::link::LinkConfig;
use emulator::topology::{Attachment, Topology};
use reports::CellReport;
use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

#[allow(clippy::disallowed_methods)] // the kernel fabric runs on the real clock
fn now() -> Instant {
    Instant::now()
}

/// The kernel fabric, the sockets into its hosts, the services and the `run` programs:
/// the [`StepHost`] of a kernel cell.
struct KDriver {
    fabric: KernelFabric,
    net: OsNet,
    services: Vec<Box<dyn Agent<OsNet>>>,
    deadline: Instant,
    time_limit: Duration,
    background: Vec<Running>,
    finished: BTreeMap<String, RunOutcome>,
    pcap: Option<PcapSink>,
    links: BTreeMap<(Attachment, bool), LinkConfig>,
    events: Recorder,
    /// The last token given to a program's pidfd (above [`OUTPUT_TOKEN`]).
    next_token: usize,
}

/// Tokens of the driver's own sources in its `OsNet`'s readiness set: the output waker,
/// then one pidfd per `run` program.
const OUTPUT_TOKEN: usize = EXTERNAL_TOKENS;

impl KDriver {
    /// The earliest moment something is due by the clock: a service's timeout, a
    /// background program's stop or kill time, the time limit.
    fn next_deadline(&self) -> Instant {
        self.services
            .iter()
            .filter_map(|s| s.poll_timeout())
            .chain(self.background.iter().filter_map(Running::next_deadline))
            .fold(self.deadline, Instant::min)
    }

    fn drain_pcap(&mut self) {
        if let Some(p) = self.pcap.as_mut() {
            while let Some(c) = self.fabric.poll_capture() {
                p.record(self.fabric.topology(), self.fabric.epoch(), &c);
            }
        }
    }

    /// Take the engine's events (NATs, firewalls, drops) into the cell's log.
    fn drain_engine_events(&mut self) {
        while let Some((t, e)) = self.fabric.poll_event() {
            self.events.engine(t, e);
        }
    }

    /// Serve the services, reap background programs that ended or are due to be stopped.
    fn tick(&mut self) {
        self.drain_engine_events();
        for s in &mut self.services {
            s.poll(&mut self.net);
            s.drain_events(&mut self.events);
        }
        let t = now();
        let mut i = 0;
        while i < self.background.len() {
            if let Some(code) = self.background[i].poll(t) {
                let r = self.background.remove(i);
                if let Some(fd) = &r.pidfd {
                    let source = &mut mio::unix::SourceFd(&fd.as_raw_fd());
                    let _ = self.net.registry().deregister(source);
                }
                let (name, out) = r.finish(code);
                self.finished.insert(name, out);
            } else {
                i += 1;
            }
        }
        self.drain_pcap();
    }

    /// Wait until `until` (bounded by the time limit), serving the services and tending
    /// programs meanwhile: woken by the services' sockets, their timeouts, a program's
    /// exit (pidfd), its stop time, or queued captures.
    fn tend_until(&mut self, until: Instant) -> Result<(), String> {
        loop {
            self.tick();
            let t = now();
            if t >= until {
                return Ok(());
            }
            if t >= self.deadline {
                return Err(format!("time limit of {:?} reached", self.time_limit));
            }
            let wake = self.next_deadline().min(until);
            self.net.wait(Some(wake));
        }
    }
}

impl StepHost for KDriver {
    type Net = OsNet;

    fn topology(&self) -> &Topology {
        self.fabric.topology()
    }

    fn elapsed(&self) -> Duration {
        now() - self.fabric.epoch()
    }

    fn sleep_until(&mut self, t: Duration) -> Result<(), String> {
        let until = self.fabric.epoch() + t;
        self.tend_until(until)
    }

    fn net(&mut self) -> &mut OsNet {
        &mut self.net
    }

    /// Run a built-in agent (punch, probe) to its end, serving everything else meanwhile.
    fn drive(&mut self, agent: &mut dyn Agent<OsNet>) -> Result<(), String> {
        loop {
            agent.poll(&mut self.net);
            if agent.is_done() {
                return Ok(());
            }
            self.tick();
            let t = now();
            if t >= self.deadline {
                return Err(format!("time limit of {:?} reached", self.time_limit));
            }
            let next = agent
                .poll_timeout()
                .map_or(self.next_deadline(), |a| a.min(self.next_deadline()));
            self.net.wait(Some(next));
        }
    }

    /// The kernel fabric does not hand its links' settings back: the driver keeps them.
    fn link(&self, at: Attachment, up: bool) -> Option<LinkConfig> {
        self.links.get(&(at, up)).cloned()
    }

    fn set_link(&mut self, at: Attachment, up: bool, config: LinkConfig) -> Result<(), String> {
        self.links.insert((at, up), config.clone());
        self.fabric
            .set_link(at, up, config)
            .map_err(|e| e.to_string())
    }

    fn nat_action(&mut self, id: usize, on: &str, action: &m::NatAction) -> Result<(), String> {
        let a = match action {
            m::NatAction::Reboot => NatAction::Reboot,
            m::NatAction::Rebind => NatAction::Rebind,
            m::NatAction::Renumber(addrs) => NatAction::Renumber(addrs.clone()),
        };
        self.fabric
            .nat_action(id, a)
            .map_err(|e| format!("`{on}`: {e}"))
    }

    fn run_program(
        &mut self,
        step: &str,
        host: usize,
        cmd: &[String],
        timeout: Option<Duration>,
        wait: bool,
    ) -> Result<(), String> {
        let cmd = with_own_binary(cmd);
        let mut child = self
            .fabric
            .host(host)
            .spawn(&cmd, &[], Stdio::null(), Stdio::piped(), Stdio::piped())
            .map_err(|e| format!("step `{step}`: {e}"))?;
        let out = child.stdout.take().map(collect);
        let err = child.stderr.take().map(collect);
        let (Some(stdout), Some(stderr)) = (out, err) else {
            return Err(format!("step `{step}`: no pipes to the program"));
        };
        self.next_token += 1;
        let pidfd = sys::pidfd_open(child.id()).map_err(|e| format!("step `{step}`: {e}"))?;
        self.net
            .registry()
            .register(
                &mut mio::unix::SourceFd(&pidfd.as_raw_fd()),
                mio::Token(OUTPUT_TOKEN + self.next_token),
                mio::Interest::READABLE,
            )
            .map_err(|e| format!("step `{step}`: wait on the program: {e}"))?;
        self.background.push(Running {
            name: step.to_string(),
            child,
            stdout,
            stderr,
            deadline: timeout.map(|t| now() + t),
            stopped: false,
            term_sent: None,
            killed: false,
            pidfd: Some(pidfd),
        });
        if wait {
            loop {
                self.tick();
                if !self.background.iter().any(|r| r.name == step) {
                    break;
                }
                if now() >= self.deadline {
                    return Err(format!("time limit of {:?} reached", self.time_limit));
                }
                self.net.wait(Some(self.next_deadline()));
            }
        }
        Ok(())
    }

    fn service_action(
        &mut self,
        host: usize,
        kind: &str,
        action: m::ServiceAction,
    ) -> Result<(), String> {
        super::timeline::act_on_service(&mut self.services, &mut self.net, host, kind, action)
    }

    fn not_available(&self, step: &str, kind: &str) -> String {
        format!("step `{step}` ({kind}) is not available on the kernel fabric yet")
    }
}

/// Run one cell on the kernel fabric and judge it. Call only inside the sandbox.
pub fn run_cell(cell: &Cell, opts: &CellOptions) -> CellReport {
    timeline::judged_cell(cell, "kernel", |r, res| run_steps(cell, opts, r, res))
}

/// Start the kernel fabric and the services, run the timeline, stop the programs still
/// running (recording what they did), and record the fabric's counters.
fn run_steps(
    cell: &Cell,
    opts: &CellOptions,
    report: &mut CellReport,
    results: &mut BTreeMap<String, StepResult>,
) -> Result<(), String> {
    let spec = &cell.spec;
    let topo = convert::topology(spec)?;
    let links = topo
        .links
        .iter()
        .flat_map(|l| {
            [
                ((l.at, true), l.up.clone()),
                ((l.at, false), l.down.clone()),
            ]
        })
        .collect();
    let fabric =
        KernelFabric::start(topo, cell.seed, opts.pcap_dir.is_some()).map_err(|e| e.to_string())?;
    let epoch = fabric.epoch();
    // Built-in agents and services open real sockets inside a host by entering its
    // network namespace for the moment a socket is created.
    let hosts = fabric.hosts();
    let addrs = fabric
        .topology()
        .hosts
        .iter()
        .map(|h| h.addresses.clone())
        .collect();
    let net = OsNet::new(addrs)
        .map_err(|e| e.to_string())?
        .with_enter(Box::new(move |h| {
            let ns = hosts
                .get(h)
                .ok_or(crate::agents::net::NetError::NoHost(h))?;
            let g = ns.enter_net().map_err(|e| {
                crate::agents::net::NetError::io(
                    "enter a host's network namespace",
                    std::io::Error::other(e.to_string()),
                )
            })?;
            Ok(NsGuard::new(move || drop(g)))
        }));
    let mut d = KDriver {
        fabric,
        net,
        services: Vec::new(),
        deadline: epoch + spec.time_limit,
        time_limit: spec.time_limit,
        background: Vec::new(),
        finished: BTreeMap::new(),
        pcap: opts.pcap_dir.clone().map(PcapSink::new),
        links,
        events: Recorder::new(epoch, opts.events_limit()),
        next_token: 0,
    };
    // Engine events (and captured packets) wake the driver, so that the bounded queues
    // are drained into the cell's log while the driver would otherwise sleep (a long
    // `wait` step).
    let waker = mio::Waker::new(d.net.registry(), mio::Token(OUTPUT_TOKEN))
        .map_err(|e| format!("a waker for the engine's events and captures: {e}"))?;
    d.fabric
        .wake_on_output(std::sync::Arc::new(waker))
        .map_err(|e| e.to_string())?;
    let topo = d.fabric.topology().clone();
    let mut outcome = start_all(&mut d.net, &topo, spec, cell.seed).map(|s| d.services = s);
    if outcome.is_ok() {
        outcome = timeline::run_steps(cell, &mut d, report, results);
    }
    // The end of the scenario stops every background program.
    let t = now();
    for r in &mut d.background {
        r.stop(t);
    }
    loop {
        d.tick();
        if d.background.is_empty() {
            break;
        }
        // Woken by the programs' exits (pidfds) or their kill time.
        let wake = d.background.iter().filter_map(Running::next_deadline).min();
        d.net.wait(wake);
    }
    report.ended_ms = ms(now() - epoch);
    for (name, out) in std::mem::take(&mut d.finished) {
        let r = StepResult::Run(out);
        if let Some(s) = report.steps.iter_mut().find(|s| s.name == name) {
            s.results = results_json(&r);
        }
        results.insert(name, r);
    }
    let end = now();
    let mut live = Vec::new();
    if let Ok(snap) = d.fabric.snapshot_with_mappings() {
        timeline::record_counters(report, d.fabric.topology(), &snap.engine, |i| {
            snap.nats.get(i)
        });
        live = snap.live;
    }
    d.drain_engine_events();
    d.fabric.stop();
    d.drain_pcap();
    let events = std::mem::replace(&mut d.events, Recorder::new(epoch, 0));
    report.events = events.finish(d.fabric.topology(), end, &live);
    let pcap = d.pcap.take().map(PcapSink::finish).unwrap_or(Ok(()));
    outcome?;
    pcap
}
