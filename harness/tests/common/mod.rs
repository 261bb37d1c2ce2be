//! A virtual-fabric world for the TURN tests (turn_service.rs, turn_firewalls.rs): a
//! scenario's topology with every service it declares started, a UDP echo peer on host
//! `peer`, and a driver that runs one agent while serving everything else.

use emulator::fabric::sim::Sim;
use harness::agents::net::Agent;
use harness::agents::turn_client::UdpEcho;
use harness::run::services::start_all;
use std::time::{Duration, Instant};

pub struct World {
    pub sim: Sim,
    pub services: Vec<Box<dyn Agent<Sim>>>,
    pub echo: UdpEcho<Sim>,
}

impl World {
    /// The scenario `yaml`'s first cell with `seed`, its services, and an echo on
    /// `peer:echo_port`.
    pub fn new(yaml: &str, seed: u64, echo_port: u16) -> World {
        Self::new_at(yaml, std::path::Path::new("world.yaml"), seed, echo_port)
    }

    /// As [`World::new`], the scenario read as if it were the file `file` (its paths
    /// relative to that file's folder).
    pub fn new_at(yaml: &str, file: &std::path::Path, seed: u64, echo_port: u16) -> World {
        let s = harness::scenario::load_str(yaml, file).unwrap();
        let cell = s.cells().unwrap().remove(0);
        let topo = harness::convert::topology(&cell.spec).unwrap();
        #[allow(clippy::disallowed_methods)] // the virtual clock's origin
        let epoch = Instant::now();
        let mut sim = Sim::new(topo, seed, epoch).unwrap();
        let topo = sim.topology().clone();
        let services = start_all(&mut sim, &topo, &cell.spec, seed).unwrap();
        let peer = sim.topology().host_id("peer").unwrap();
        let echo = UdpEcho::start(&mut sim, peer, echo_port).unwrap();
        World {
            sim,
            services,
            echo,
        }
    }

    /// Run `agent` to its end (or `limit` of virtual time) while serving everything else.
    pub fn drive(&mut self, agent: &mut dyn Agent<Sim>, limit: Duration) {
        let end = self.sim.now() + limit;
        loop {
            for _ in 0..100 {
                let before = (self.sim.stats().delivered, self.sim.stats().sent);
                for s in &mut self.services {
                    s.poll(&mut self.sim);
                }
                self.echo.poll(&mut self.sim);
                agent.poll(&mut self.sim);
                self.sim.flush();
                if (self.sim.stats().delivered, self.sim.stats().sent) == before {
                    break;
                }
            }
            let now = self.sim.now();
            if agent.is_done() || now >= end {
                return;
            }
            let mut next = end;
            for t in [self.sim.poll_timeout(), agent.poll_timeout()]
                .into_iter()
                .flatten()
                .chain(self.services.iter().filter_map(|s| s.poll_timeout()))
            {
                next = next.min(t.max(now));
            }
            self.sim.advance(next.max(now + Duration::from_micros(100)));
        }
    }
}
