//! Runs scenario cells on the virtual fabric and judges their expectations.
//!
//! The steps run on the crate's one step timeline (`timeline.rs`); this module is the
//! virtual fabric's side of it (its `StepHost`): between inputs the driver jumps the
//! virtual clock to the earliest due event of the fabric, the services and the running
//! step, so a 5-minute scenario takes milliseconds. Reaching `time_limit` fails the cell.

use super::CellOptions;
use super::capture::PcapSink;
use super::events::Recorder;
use super::results::{StepResult, ms};
use super::services::start_all;
use super::timeline::{self, StepHost};
use crate::agents::net::Agent;
use crate::convert;
use crate::scenario::Cell;
use crate::scenario::model as m;
use emulator::fabric::sim::Sim;
use emulator::link::LinkConfig;
use emulator::topology::{Attachment, Topology};
use reports::CellReport;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// The virtual fabric, its services and the cell's limits: the [`StepHost`] of a virtual
/// cell.
struct Driver {
    sim: Sim,
    services: Vec<Box<dyn Agent<Sim>>>,
    deadline: Instant,
    time_limit: Duration,
    pcap: Option<PcapSink>,
    events: Recorder,
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
    fn drain_engine_events(&mut self) {
        while let Some((t, e)) = self.sim.poll_event() {
            self.events.engine(t, e);
        }
    }

    /// Let agents read and write until nothing more happens at the current instant
    /// (zero-delay paths make request and answer land in the same instant).
    fn settle(&mut self, active: &mut Option<&mut dyn Agent<Sim>>) {
        drain_captures(&mut self.pcap, &mut self.sim);
        for _ in 0..1000 {
            let before = (self.sim.stats().delivered, self.sim.stats().sent);
            // Each phase's events are taken right after it, so that the log keeps cause
            // before effect within an instant (a NAT maps the INVITE in the flush before
            // the proxy's poll receives it).
            self.drain_engine_events();
            for s in &mut self.services {
                s.poll(&mut self.sim);
                s.drain_events(&mut self.events);
            }
            if let Some(a) = active.as_mut() {
                a.poll(&mut self.sim);
                a.drain_events(&mut self.events);
            }
            self.sim.flush();
            self.drain_engine_events();
            drain_captures(&mut self.pcap, &mut self.sim);
            if (self.sim.stats().delivered, self.sim.stats().sent) == before {
                return;
            }
        }
    }

    /// Run until `until`, or until the active agent is done (then return early).
    fn run_until(
        &mut self,
        until: Instant,
        mut active: Option<&mut dyn Agent<Sim>>,
    ) -> Result<(), String> {
        loop {
            self.settle(&mut active);
            if active.as_ref().is_some_and(|a| a.is_done()) {
                return Ok(());
            }
            let now = self.sim.now();
            if now >= until {
                return Ok(());
            }
            if now >= self.deadline {
                return Err(format!("time limit of {:?} reached", self.time_limit));
            }
            let mut next = until.min(self.deadline);
            for t in [
                self.sim.poll_timeout(),
                active.as_ref().and_then(|a| a.poll_timeout()),
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

impl StepHost for Driver {
    type Net = Sim;

    fn topology(&self) -> &Topology {
        self.sim.topology()
    }

    fn elapsed(&self) -> Duration {
        self.sim.now() - self.sim.epoch()
    }

    fn sleep_until(&mut self, t: Duration) -> Result<(), String> {
        let until = self.sim.epoch() + t;
        self.run_until(until, None)
    }

    fn net(&mut self) -> &mut Sim {
        &mut self.sim
    }

    fn drive(&mut self, agent: &mut dyn Agent<Sim>) -> Result<(), String> {
        // Past the deadline: the time limit ends it if the agent does not.
        let far = self.deadline + Duration::from_secs(1);
        self.run_until(far, Some(agent))
    }

    fn link(&self, at: Attachment, up: bool) -> Option<LinkConfig> {
        self.sim.link(at, up).map(|l| l.config().clone())
    }

    fn set_link(&mut self, at: Attachment, up: bool, config: LinkConfig) -> Result<(), String> {
        self.sim.set_link(at, up, config);
        Ok(())
    }

    fn nat_action(&mut self, id: usize, on: &str, action: &m::NatAction) -> Result<(), String> {
        let now = self.sim.now();
        match action {
            m::NatAction::Reboot => self.sim.nat_mut(id).reboot(now),
            m::NatAction::Rebind => self.sim.nat_mut(id).rebind(now),
            m::NatAction::Renumber(addrs) => self
                .sim
                .renumber_nat(id, addrs.clone())
                .map_err(|e| format!("renumber `{on}`: {e}"))?,
        }
        Ok(())
    }

    fn run_program(
        &mut self,
        step: &str,
        _host: usize,
        _cmd: &[String],
        _timeout: Option<Duration>,
        _wait: bool,
    ) -> Result<(), String> {
        // No real programs in a virtual network: `check_available` rejects `run` steps.
        Err(self.not_available(step, "run"))
    }

    fn service_action(
        &mut self,
        host: usize,
        kind: &str,
        action: m::ServiceAction,
    ) -> Result<(), String> {
        super::timeline::act_on_service(&mut self.services, &mut self.sim, host, kind, action)
    }

    fn not_available(&self, step: &str, kind: &str) -> String {
        format!("step `{step}` ({kind}) is not available yet")
    }
}

/// Run one cell on the virtual fabric and judge it.
pub fn run_cell(cell: &Cell) -> CellReport {
    run_cell_with(cell, &CellOptions::default())
}

/// Run one cell on the virtual fabric with options, and judge it.
pub fn run_cell_with(cell: &Cell, opts: &CellOptions) -> CellReport {
    timeline::judged_cell(cell, "virtual", |r, res| run_steps(cell, opts, r, res))
}

/// Set up the virtual fabric and the services, run the timeline, and record the fabric's
/// counters.
fn run_steps(
    cell: &Cell,
    opts: &CellOptions,
    report: &mut CellReport,
    results: &mut BTreeMap<String, StepResult>,
) -> Result<(), String> {
    let spec = &cell.spec;
    let topo = convert::topology(spec)?;
    // The virtual clock's origin. Only differences from it reach the report.
    #[allow(clippy::disallowed_methods)]
    let epoch = Instant::now();
    let mut sim = Sim::new(topo, cell.seed, epoch).map_err(|e| e.to_string())?;
    if opts.pcap_dir.is_some() {
        sim.engine_mut().set_capture(true);
    }
    let mut d = Driver {
        sim,
        services: Vec::new(),
        deadline: epoch + spec.time_limit,
        time_limit: spec.time_limit,
        pcap: opts.pcap_dir.clone().map(PcapSink::new),
        events: Recorder::new(epoch, opts.events_limit()),
    };
    // Services listen before t = 0.
    let topo = d.sim.topology().clone();
    d.services = start_all(&mut d.sim, &topo, spec, cell.seed)?;
    let mut result = timeline::run_steps(cell, &mut d, report, results);
    report.ended_ms = ms(d.elapsed());
    drain_captures(&mut d.pcap, &mut d.sim);
    if let Some(p) = d.pcap.take()
        && let Err(e) = p.finish()
    {
        result = result.and(Err(e));
    }
    timeline::record_counters(report, d.sim.topology(), d.sim.stats(), |i| {
        Some(d.sim.nat(i).stats())
    });
    d.drain_engine_events();
    let live: Vec<_> = (0..d.sim.topology().nats.len())
        .map(|i| d.sim.nat(i).mappings())
        .collect();
    let end = d.sim.now();
    let Driver { sim, events, .. } = d;
    report.events = events.finish(sim.topology(), end, &live);
    result
}
