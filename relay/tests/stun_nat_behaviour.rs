//! RFC 5780 behaviour discovery end to end: `Prober` ↔ fake NAT ↔ `Server`, under a
//! virtual clock, for every mapping × filtering × hairpinning combination, binding
//! lifetime, "no NAT", a server without alternate address, loss and determinism.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use relay::stun::{
    Attribute, Behavior, Message, ProbeEvent, ProbeReport, ProbeTest, Prober, ProberConfig, Server,
    ServerConfig, SocketId, TestResult,
};

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// The virtual clock's start, captured once; everything after is `epoch + offset`.
#[allow(clippy::disallowed_methods)]
fn epoch() -> Instant {
    Instant::now()
}

const PRIMARY: &str = "192.168.1.10:5000";
const SECONDARY: &str = "192.168.1.10:5001";
const PUBLIC_IP: &str = "203.0.113.1";
const SERVER: &str = "198.51.100.1:3478";
const SERVER_ALT_IP: &str = "198.51.100.2";

/// A minimal UDP NAT: RFC 4787 mapping and filtering behaviours, sequential port
/// allocation, outbound-only refresh with a fixed lifetime, optional hairpinning.
/// Hairpinned packets are translated (source = the sender's mapping) and delivered to the
/// target mapping's internal endpoint without inbound filtering.
struct FakeNat {
    public_ip: IpAddr,
    mapping: Behavior,
    filtering: Behavior,
    hairpin: bool,
    lifetime: Duration,
    next_port: u16,
    bindings: Vec<Binding>,
}

struct Binding {
    internal: SocketAddr,
    /// Which remote endpoints share this mapping: `None` for EIM, `(ip, 0)` for ADM,
    /// the exact remote for APDM.
    key: Option<SocketAddr>,
    external: SocketAddr,
    /// Remotes this binding has sent to (for filtering).
    contacted: Vec<SocketAddr>,
    expires: Instant,
}

impl FakeNat {
    fn new(mapping: Behavior, filtering: Behavior, hairpin: bool, lifetime: Duration) -> Self {
        FakeNat {
            public_ip: PUBLIC_IP.parse().unwrap(),
            mapping,
            filtering,
            hairpin,
            lifetime,
            next_port: 50_000,
            bindings: Vec::new(),
        }
    }

    fn key(&self, dst: SocketAddr) -> Option<SocketAddr> {
        match self.mapping {
            Behavior::AddressDependent => Some(SocketAddr::new(dst.ip(), 0)),
            Behavior::AddressAndPortDependent => Some(dst),
            _ => None,
        }
    }

    fn expire(&mut self, now: Instant) {
        self.bindings.retain(|b| now < b.expires);
    }

    /// Translates an outbound packet; returns its public source.
    fn outbound(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr) -> SocketAddr {
        self.expire(now);
        let key = self.key(dst);
        let idx = match self
            .bindings
            .iter()
            .position(|b| b.internal == src && b.key == key)
        {
            Some(i) => i,
            None => {
                let external = SocketAddr::new(self.public_ip, self.next_port);
                self.next_port += 1;
                self.bindings.push(Binding {
                    internal: src,
                    key,
                    external,
                    contacted: vec![],
                    expires: now,
                });
                self.bindings.len() - 1
            }
        };
        let lifetime = self.lifetime;
        let b = &mut self.bindings[idx];
        b.expires = now + lifetime;
        if !b.contacted.contains(&dst) {
            b.contacted.push(dst);
        }
        b.external
    }

    /// An inbound packet from `src` to our public `dst`: the internal endpoint, if let in.
    fn inbound(&mut self, now: Instant, src: SocketAddr, dst: SocketAddr) -> Option<SocketAddr> {
        self.expire(now);
        let b = self.bindings.iter().find(|b| b.external == dst)?;
        let allowed = match self.filtering {
            Behavior::EndpointIndependent => true,
            Behavior::AddressDependent => b.contacted.iter().any(|c| c.ip() == src.ip()),
            _ => b.contacted.contains(&src),
        };
        allowed.then_some(b.internal)
    }

    fn hairpin_target(&mut self, now: Instant, dst: SocketAddr) -> Option<SocketAddr> {
        self.expire(now);
        if !self.hairpin {
            return None;
        }
        self.bindings
            .iter()
            .find(|b| b.external == dst)
            .map(|b| b.internal)
    }
}

/// Prober host + optional NAT + server, zero latency, virtual time.
struct Net {
    now: Instant,
    start: Instant,
    prober: Prober,
    server: Server,
    server_addrs: Vec<SocketAddr>,
    nat: Option<FakeNat>,
    /// Drop the first copy of every distinct client datagram (forces retransmissions).
    drop_first: Option<HashSet<Vec<u8>>>,
    /// Drop everything the client sends.
    blackhole: bool,
    /// Remove CHANGE-REQUEST from requests before the server sees them (a server that
    /// ignores it, like a plain RFC 8489 server that does not check comprehension).
    strip_change_request: bool,
    /// (time since start, socket, to, bytes) of every client transmit.
    log: Vec<(Duration, SocketId, SocketAddr, Vec<u8>)>,
    events: Vec<ProbeEvent>,
}

impl Net {
    fn new(
        nat: Option<FakeNat>,
        server_config: ServerConfig,
        prober_config: ProberConfig,
        seed: u64,
    ) -> Self {
        let now = epoch();
        let mut prober = Prober::new(prober_config, now, seed);
        prober.set_local_addresses(sa(PRIMARY), sa(SECONDARY));
        let server_addrs = server_config.listen_addresses();
        Net {
            now,
            start: now,
            prober,
            server: Server::new(server_config).unwrap(),
            server_addrs,
            nat,
            drop_first: None,
            blackhole: false,
            strip_change_request: false,
            log: Vec::new(),
            events: Vec::new(),
        }
    }

    fn local(socket: SocketId) -> SocketAddr {
        match socket {
            SocketId::Primary => sa(PRIMARY),
            SocketId::Secondary => sa(SECONDARY),
            SocketId::Sample(_) => unreachable!("these tests leave the port-allocation test off"),
        }
    }

    fn deliver_to_client(&mut self, internal: SocketAddr, from: SocketAddr, data: &[u8]) {
        let socket = if internal == sa(PRIMARY) {
            SocketId::Primary
        } else if internal == sa(SECONDARY) {
            SocketId::Secondary
        } else {
            return;
        };
        self.prober.handle_input(self.now, socket, from, data);
    }

    fn send_from_client(&mut self, socket: SocketId, to: SocketAddr, data: Vec<u8>) {
        self.log
            .push((self.now - self.start, socket, to, data.clone()));
        if self.blackhole {
            return;
        }
        if let Some(seen) = &mut self.drop_first
            && seen.insert(data.clone())
        {
            return;
        }
        let data = if self.strip_change_request {
            let mut m = Message::parse(&data).unwrap();
            m.attributes
                .retain(|a| !matches!(a, Attribute::ChangeRequest(_)));
            m.emit()
        } else {
            data
        };
        let src = Self::local(socket);
        let now = self.now;
        match &mut self.nat {
            Some(nat) => {
                let public_src = nat.outbound(now, src, to);
                if to.ip() == nat.public_ip {
                    if let Some(internal) = nat.hairpin_target(now, to) {
                        self.deliver_to_client(internal, public_src, &data);
                    }
                } else if self.server_addrs.contains(&to) {
                    self.server.handle_input(now, to, public_src, &data);
                }
            }
            None => {
                if to == sa(PRIMARY) || to == sa(SECONDARY) {
                    self.deliver_to_client(to, src, &data);
                } else if self.server_addrs.contains(&to) {
                    self.server.handle_input(now, to, src, &data);
                }
            }
        }
    }

    fn send_from_server(&mut self, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        assert!(
            self.server_addrs.contains(&from),
            "server sends from its own sockets"
        );
        let now = self.now;
        let internal = match &mut self.nat {
            Some(nat) if to.ip() == nat.public_ip => nat.inbound(now, from, to),
            Some(_) => None,
            None => Some(to),
        };
        if let Some(internal) = internal {
            self.deliver_to_client(internal, from, &data);
        }
    }

    /// Runs to completion; returns the report.
    fn run(&mut self) -> ProbeReport {
        for _ in 0..10_000 {
            loop {
                let mut progressed = false;
                while let Some(t) = self.prober.poll_transmit() {
                    progressed = true;
                    self.send_from_client(t.socket, t.to, t.data);
                }
                while let Some(t) = self.server.poll_transmit() {
                    progressed = true;
                    self.send_from_server(t.from, t.to, t.data);
                }
                while self.server.poll_event().is_some() {}
                if !progressed {
                    break;
                }
            }
            while let Some(e) = self.prober.poll_event() {
                self.events.push(e);
            }
            if let Some(ProbeEvent::Done(report)) = self.events.last() {
                assert!(self.prober.is_done());
                assert_eq!(self.prober.poll_timeout(), None);
                return report.clone();
            }
            let next = self
                .prober
                .poll_timeout()
                .expect("an unfinished prober has a timer");
            assert!(next >= self.now, "timers never go back in time");
            self.now = next;
            self.prober.handle_timeout(self.now);
        }
        panic!("prober did not finish");
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

fn rfc5780_server() -> ServerConfig {
    let mut c = ServerConfig::new(sa(SERVER));
    c.alternate = Some(SERVER_ALT_IP.parse().unwrap());
    c
}

const BEHAVIORS: [Behavior; 3] = [
    Behavior::EndpointIndependent,
    Behavior::AddressDependent,
    Behavior::AddressAndPortDependent,
];

#[test]
fn classifies_all_mapping_filtering_hairpinning_combinations() {
    for mapping in BEHAVIORS {
        for filtering in BEHAVIORS {
            for hairpin in [false, true] {
                let nat = FakeNat::new(mapping, filtering, hairpin, Duration::from_secs(120));
                let mut net = Net::new(
                    Some(nat),
                    rfc5780_server(),
                    ProberConfig::new(sa(SERVER)),
                    7,
                );
                let report = net.run();
                let case = format!("{mapping:?} × {filtering:?} × hairpin {hairpin}: {report:?}");
                assert_eq!(report.mapped, Some(sa("203.0.113.1:50000")), "{case}");
                assert_eq!(
                    report.other_address,
                    Some(sa("198.51.100.2:3479")),
                    "{case}"
                );
                assert_eq!(report.nat_detected, Some(true), "{case}");
                assert_eq!(report.mapping, Some(mapping), "{case}");
                assert_eq!(report.filtering, Some(filtering), "{case}");
                assert_eq!(report.hairpinning, Some(hairpin), "{case}");
                assert_eq!(report.binding_lifetime, None, "{case}");
                assert!(report.errors.is_empty(), "{case}");
                // Bounded: at most 4 negative tests (filtering II+III, hairpin…) of 1.75 s.
                assert!(
                    net.elapsed() <= Duration::from_millis(4 * 1750),
                    "{case}: {:?}",
                    net.elapsed()
                );
            }
        }
    }
}

#[test]
fn progress_events_in_order() {
    let nat = FakeNat::new(
        Behavior::EndpointIndependent,
        Behavior::AddressAndPortDependent,
        true,
        Duration::from_secs(60),
    );
    let mut net = Net::new(
        Some(nat),
        rfc5780_server(),
        ProberConfig::new(sa(SERVER)),
        1,
    );
    net.run();
    let started: Vec<ProbeTest> = net
        .events
        .iter()
        .filter_map(|e| match e {
            ProbeEvent::TestStarted(t) => Some(*t),
            _ => None,
        })
        .collect();
    assert_eq!(
        started,
        [
            ProbeTest::Binding,
            ProbeTest::Filtering,
            ProbeTest::Mapping,
            ProbeTest::Hairpinning
        ]
    );
    assert!(matches!(
        net.events[1],
        ProbeEvent::TestResult(
            ProbeTest::Binding,
            TestResult::Mapped {
                nat_detected: Some(true),
                ..
            }
        )
    ));
    assert!(net.events.contains(&ProbeEvent::TestResult(
        ProbeTest::Filtering,
        TestResult::Behavior(Behavior::AddressAndPortDependent)
    )));
    assert_eq!(
        net.events
            .iter()
            .filter(|e| matches!(e, ProbeEvent::Done(_)))
            .count(),
        1
    );
}

#[test]
fn binding_lifetime_is_bracketed() {
    for (lifetime_s, max_s) in [(30u64, 120u64), (7, 60), (1, 10)] {
        let lifetime = Duration::from_secs(lifetime_s);
        let nat = FakeNat::new(
            Behavior::EndpointIndependent,
            Behavior::AddressAndPortDependent,
            false,
            lifetime,
        );
        let mut config = ProberConfig::new(sa(SERVER));
        config.tests.lifetime = Some(Duration::from_secs(max_s));
        let mut net = Net::new(Some(nat), rfc5780_server(), config, 3);
        let report = net.run();
        assert!(report.errors.is_empty(), "{report:?}");
        let lower = report.binding_lifetime.unwrap();
        let upper = report.lifetime_upper_bound.unwrap();
        assert!(
            lower < lifetime && lifetime <= upper,
            "{lower:?} < {lifetime:?} <= {upper:?}"
        );
        assert!(
            upper - lower <= Duration::from_secs(1),
            "{lower:?}..{upper:?}"
        );
        let steps = net
            .events
            .iter()
            .filter(|e| {
                matches!(
                    e,
                    ProbeEvent::TestResult(ProbeTest::Lifetime, TestResult::LifetimeStep { .. })
                )
            })
            .count();
        assert!(steps <= 11, "{steps}");
    }
}

#[test]
fn binding_lifetime_longer_than_max() {
    let nat = FakeNat::new(
        Behavior::AddressAndPortDependent,
        Behavior::AddressAndPortDependent,
        false,
        Duration::from_secs(600),
    );
    let mut config = ProberConfig::new(sa(SERVER));
    config.tests.lifetime = Some(Duration::from_secs(90));
    let mut net = Net::new(Some(nat), rfc5780_server(), config, 3);
    let report = net.run();
    assert_eq!(report.binding_lifetime, Some(Duration::from_secs(90)));
    assert_eq!(report.lifetime_upper_bound, None);
}

#[test]
fn no_nat_is_detected() {
    let mut config = ProberConfig::new(sa(SERVER));
    config.tests.lifetime = Some(Duration::from_secs(20));
    let mut net = Net::new(None, rfc5780_server(), config, 9);
    let report = net.run();
    assert_eq!(report.mapped, Some(sa(PRIMARY)));
    assert_eq!(report.nat_detected, Some(false));
    assert_eq!(report.mapping, Some(Behavior::EndpointIndependent));
    assert_eq!(report.filtering, Some(Behavior::EndpointIndependent));
    assert_eq!(report.hairpinning, Some(true));
    assert_eq!(report.binding_lifetime, Some(Duration::from_secs(20)));
    assert!(report.errors.is_empty(), "{report:?}");
}

#[test]
fn server_without_alternate_address() {
    let nat = FakeNat::new(
        Behavior::EndpointIndependent,
        Behavior::EndpointIndependent,
        true,
        Duration::from_secs(60),
    );
    let mut net = Net::new(
        Some(nat),
        ServerConfig::new(sa(SERVER)),
        ProberConfig::new(sa(SERVER)),
        5,
    );
    let report = net.run();
    assert_eq!(report.mapped, Some(sa("203.0.113.1:50000")));
    assert_eq!(report.mapping, None);
    assert_eq!(report.filtering, None);
    assert_eq!(
        report.hairpinning,
        Some(true),
        "hairpinning needs no alternate"
    );
    assert_eq!(report.errors.len(), 1, "{report:?}");
    assert!(report.errors[0].contains("OTHER-ADDRESS"), "{report:?}");
}

#[test]
fn unreachable_server() {
    let nat = FakeNat::new(
        Behavior::EndpointIndependent,
        Behavior::EndpointIndependent,
        true,
        Duration::from_secs(60),
    );
    let config = ProberConfig::new(sa(SERVER));
    let give_up = config.negative_test_duration();
    assert_eq!(give_up, Duration::from_millis(1750));
    let mut net = Net::new(Some(nat), rfc5780_server(), config, 5);
    net.blackhole = true;
    let report = net.run();
    assert_eq!(report.mapped, None);
    assert_eq!(report.nat_detected, None);
    assert!(report.errors[0].contains("no response"), "{report:?}");
    assert_eq!(net.elapsed(), give_up);
    let sends: Vec<Duration> = net.log.iter().map(|l| l.0).collect();
    assert_eq!(
        sends,
        [
            Duration::ZERO,
            Duration::from_millis(250),
            Duration::from_millis(750)
        ]
    );
}

#[test]
fn retransmissions_recover_from_loss() {
    for mapping in BEHAVIORS {
        for filtering in BEHAVIORS {
            let nat = FakeNat::new(mapping, filtering, true, Duration::from_secs(120));
            let mut net = Net::new(
                Some(nat),
                rfc5780_server(),
                ProberConfig::new(sa(SERVER)),
                11,
            );
            net.drop_first = Some(HashSet::new());
            let report = net.run();
            assert_eq!(
                (report.mapping, report.filtering, report.hairpinning),
                (Some(mapping), Some(filtering), Some(true))
            );
        }
    }
}

#[test]
fn same_seed_same_probe() {
    let run = |seed| {
        let nat = FakeNat::new(
            Behavior::AddressDependent,
            Behavior::AddressDependent,
            true,
            Duration::from_secs(20),
        );
        let mut config = ProberConfig::new(sa(SERVER));
        config.tests.lifetime = Some(Duration::from_secs(40));
        let mut net = Net::new(Some(nat), rfc5780_server(), config, seed);
        let report = net.run();
        (net.log, report, net.events)
    };
    let a = run(42);
    assert_eq!(a, run(42));
    assert_ne!(a.0, run(43).0, "transaction ids depend on the seed");
}

#[test]
fn server_ignoring_change_request_is_reported() {
    let nat = FakeNat::new(
        Behavior::AddressDependent,
        Behavior::AddressDependent,
        false,
        Duration::from_secs(60),
    );
    let mut net = Net::new(
        Some(nat),
        rfc5780_server(),
        ProberConfig::new(sa(SERVER)),
        5,
    );
    net.strip_change_request = true;
    let report = net.run();
    assert_eq!(report.filtering, None);
    assert_eq!(report.mapping, Some(Behavior::AddressDependent));
    assert!(
        report.errors[0].contains("ignored CHANGE-REQUEST"),
        "{report:?}"
    );
}

#[test]
fn absurd_timing_config_is_clamped() {
    let nat = FakeNat::new(
        Behavior::EndpointIndependent,
        Behavior::AddressAndPortDependent,
        false,
        Duration::from_secs(60),
    );
    let mut config = ProberConfig::new(sa(SERVER));
    config.rto = Duration::MAX;
    config.max_retransmits = u32::MAX;
    config.tests.lifetime = Some(Duration::MAX);
    let mut net = Net::new(Some(nat), rfc5780_server(), config, 5);
    let report = net.run();
    assert_eq!(report.filtering, Some(Behavior::AddressAndPortDependent));
    let lower = report.binding_lifetime.unwrap();
    assert!(lower < Duration::from_secs(60), "{report:?}");
}
