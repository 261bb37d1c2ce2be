//! A sans-IO RFC 5780 §4 NAT behaviour prober.
//!
//! The prober runs on a host behind the NAT under test and talks to an RFC 5780 server
//! (one with an alternate IP and port, e.g. [`super::Server`] with `alternate` set). The
//! driver owns two UDP sockets, [`SocketId::Primary`] (X) and [`SocketId::Secondary`] (Y)
//! (plus [`PORT_SAMPLES`] [`SocketId::Sample`] sockets for the port-allocation test),
//! sends each [`ProbeTransmit`] from the named socket, feeds every datagram received on
//! either socket to [`Prober::handle_input`], and calls [`Prober::handle_timeout`] at
//! [`Prober::poll_timeout`]. It should call [`Prober::set_local_addresses`] with the
//! sockets' concrete local addresses (not `0.0.0.0`) so "no NAT" can be detected.
//! The probe is over when [`ProbeEvent::Done`] is emitted / [`Prober::is_done`] is true.
//!
//! # Driving it
//!
//! A minimal blocking driver with std sockets (a tokio driver has the same shape). Both
//! sockets are bound to the concrete local IP that routes to the server, and must stay
//! unconnected (a connected UDP socket would drop the CHANGE-REQUEST answers).
//!
//! ```no_run
//! use std::net::{SocketAddr, UdpSocket};
//! use std::time::{Duration, Instant};
//! use relay::stun::{ProbeEvent, Prober, ProberConfig, SocketId};
//!
//! # fn main() -> std::io::Result<()> {
//! let server: SocketAddr = "198.51.100.1:3478".parse().unwrap();
//! let ip = {
//!     let s = UdpSocket::bind("0.0.0.0:0")?;
//!     s.connect(server)?; // only to learn the route's source IP
//!     s.local_addr()?.ip()
//! };
//! let (x, y) = (UdpSocket::bind((ip, 0))?, UdpSocket::bind((ip, 0))?);
//! x.set_nonblocking(true)?;
//! y.set_nonblocking(true)?;
//! let mut prober = Prober::new(ProberConfig::new(server), Instant::now(), 0x5eed);
//! prober.set_local_addresses(x.local_addr()?, y.local_addr()?);
//! let mut buf = [0u8; 2048];
//! loop {
//!     while let Some(t) = prober.poll_transmit() {
//!         let sock = if t.socket == SocketId::Primary { &x } else { &y };
//!         sock.send_to(&t.data, t.to)?;
//!     }
//!     while let Some(event) = prober.poll_event() {
//!         if let ProbeEvent::Done(report) = event {
//!             println!("{report:?}");
//!             return Ok(());
//!         }
//!     }
//!     for (id, sock) in [(SocketId::Primary, &x), (SocketId::Secondary, &y)] {
//!         while let Ok((n, from)) = sock.recv_from(&mut buf) {
//!             prober.handle_input(Instant::now(), id, from, &buf[..n]);
//!         }
//!     }
//!     if prober.poll_timeout().is_some_and(|t| Instant::now() >= t) {
//!         prober.handle_timeout(Instant::now());
//!     }
//!     // Wait for input or the next deadline. A real driver waits on both sockets'
//!     // readiness (mio, as harness's `OsNet` does); this sketch blocks on X only.
//!     let wait = prober
//!         .poll_timeout()
//!         .map_or(Duration::from_millis(100), |t| t.saturating_duration_since(Instant::now()));
//!     x.set_nonblocking(false)?;
//!     x.set_read_timeout(Some(wait.max(Duration::from_micros(1))))?;
//!     if let Ok((n, from)) = x.recv_from(&mut buf) {
//!         prober.handle_input(Instant::now(), SocketId::Primary, from, &buf[..n]);
//!     }
//!     x.set_nonblocking(true)?;
//! }
//! # }
//! ```
//!
//! # Tests, in this fixed order (one request in flight at a time)
//!
//! 1. **Test I** (§4.3): X → A:P. Gives the mapped address X1 and OTHER-ADDRESS A':P'
//!    (or RFC 3489 CHANGED-ADDRESS). `nat_detected` = X1 ≠ X's local address.
//! 2. **Filtering** (§4.4), on X, before the mapping tests so that X's binding has only
//!    ever sent to A:P (the mapping tests would open its filter towards A'):
//!    Test II X → A:P with CHANGE-REQUEST(IP+port): answered ⇒ endpoint-independent;
//!    else Test III X → A:P with CHANGE-REQUEST(port): answered ⇒ address-dependent;
//!    else address-and-port-dependent. A missing answer (after all retransmissions) *is*
//!    the result here.
//! 3. **Mapping** (§4.3), on X: Test II X → A':P gives X2; X2 = X1 ⇒ endpoint-independent;
//!    else Test III X → A':P' gives X3; X3 = X2 ⇒ address-dependent, else
//!    address-and-port-dependent.
//! 4. **Hairpinning** (§4.7): Y → A:P gives Y1; then, together, X → Y1 (a "punch" that
//!    also opens X's filter towards Y1 when the mapping is endpoint-independent) and
//!    Y → X1. If either request arrives at the other socket (matched by transaction id)
//!    the NAT hairpins; if neither does after all retransmissions, it does not (or its
//!    filtering drops hairpinned packets, which is indistinguishable).
//! 5. **Port allocation** (RFC 4787 §4.2.1, §4.2.2; not an RFC 5780 test), when
//!    `tests.port_allocation`: each of [`PORT_SAMPLES`] fresh sockets, one after the other
//!    (even, even, odd, odd, … local ports), sends a Binding to A:P; the (local, mapped)
//!    port pairs are classified by [`classify_port_allocation`] into preserve, sequential
//!    or random, and whether parity is kept.
//! 6. **Binding lifetime** (§4.6), when `tests.lifetime = Some(max)`: each round refreshes
//!    X's binding with X → A:P (mapped port Xp), waits t, then sends Y → A:P with
//!    RESPONSE-PORT = Xp; the server answers to (Y's public IP, Xp), which reaches X only
//!    while X's binding lives. The first round uses t = max (alive ⇒ lifetime ≥ max, done);
//!    then a binary search on (lower, upper) until `upper − lower ≤ lifetime_resolution`
//!    or 10 bisections. The report gives `binding_lifetime` = the longest wait the binding
//!    survived (lower bound, 0 if none) and `lifetime_upper_bound` = the shortest it did not.
//!    This assumes the NAT refreshes bindings on outbound traffic only (RFC 4787 REQ-6)
//!    and allocates Y's mapping on the same public IP as X's (paired pooling).
//!
//! # Retransmissions (RFC 8489 §6.2.1)
//!
//! A request is sent at 0, RTO, 3·RTO, 7·RTO, … (interval doubling), `max_retransmits`
//! times after the first; the test gives up one more doubled interval after the last send:
//! after `RTO · (2^(max_retransmits+1) − 1)`. Defaults: RTO 250 ms, 2 retransmits ⇒ 3 sends,
//! 1.75 s per unanswered test. A whole probe without lifetime test then takes at most
//! ≈ 4 negative tests × 1.75 s on a lossless path, and lifetime adds about
//! `max + Σ bisection waits` (the waits dominate: budget ≈ 3–6 × `max`).
//!
//! # Layout
//!
//! This file holds the configuration, the report and the drive API; `sequence` runs the
//! RFC 5780 tests (binding, filtering, mapping, hairpinning), `ports` the port-allocation
//! and parity test and its classifier, `lifetime` the binding-lifetime search.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::attr::{Attribute, ChangeRequest};
use super::message::{Class, Message, Method, TransactionId};
use crate::rng::SplitMix64;

mod lifetime;
mod ports;
mod sequence;

pub use ports::{PortAllocation, SEQUENTIAL_MAX_STEP, classify_port_allocation};

/// Most bisections of the lifetime search (after the first probe at `max`).
const MAX_BISECTIONS: u32 = 10;
/// Configuration clamps, so that no `Instant` arithmetic can overflow.
const RTO_RANGE: (Duration, Duration) = (Duration::from_millis(1), Duration::from_secs(60));
const MAX_RETRANSMITS: u32 = 16;
const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// Which tests to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tests {
    /// RFC 5780 §4.3 mapping behaviour.
    pub mapping: bool,
    /// RFC 5780 §4.4 filtering behaviour.
    pub filtering: bool,
    /// RFC 5780 §4.7 hairpinning.
    pub hairpinning: bool,
    /// RFC 5780 §4.6 binding lifetime: `Some(max)` searches between 0 and `max`.
    pub lifetime: Option<Duration>,
    /// RFC 4787 §4.2.1/§4.2.2 port allocation and parity, from [`PORT_SAMPLES`] fresh
    /// sockets (the driver binds them: [`Prober::set_sample_addresses`]).
    pub port_allocation: bool,
}

impl Default for Tests {
    /// Mapping, filtering and hairpinning; no lifetime test (it takes minutes on a real NAT).
    fn default() -> Self {
        Tests {
            mapping: true,
            filtering: true,
            hairpinning: true,
            lifetime: None,
            port_allocation: false,
        }
    }
}

/// Prober configuration. Out-of-range values are clamped by [`Prober::new`]: `rto` to
/// 1 ms..=60 s, `max_retransmits` to ≤ 16, the lifetime bound to ≤ 24 h.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProberConfig {
    /// The server's primary address A:P.
    pub server: SocketAddr,
    /// Initial retransmission timeout (default 250 ms).
    pub rto: Duration,
    /// Retransmissions after the first send (default 2).
    pub max_retransmits: u32,
    /// Which tests to run.
    pub tests: Tests,
    /// Stop the lifetime search when upper − lower ≤ this (default 1 s).
    pub lifetime_resolution: Duration,
}

impl ProberConfig {
    /// Defaults for `server`: RTO 250 ms, 2 retransmits, [`Tests::default`], resolution 1 s.
    pub fn new(server: SocketAddr) -> Self {
        ProberConfig {
            server,
            rto: Duration::from_millis(250),
            max_retransmits: 2,
            tests: Tests::default(),
            lifetime_resolution: Duration::from_secs(1),
        }
    }

    /// How long one unanswered test takes: `rto · (2^(max_retransmits+1) − 1)`.
    pub fn negative_test_duration(&self) -> Duration {
        let factor = 2u32.saturating_pow(self.max_retransmits.saturating_add(1).min(31)) - 1;
        self.rto.saturating_mul(factor)
    }
}

/// How many fresh sockets the port-allocation test uses. Twelve samples make a random
/// allocator that happens to keep every sample's parity a 1-in-4096 event.
pub const PORT_SAMPLES: usize = 12;

/// One of the local sockets the driver owns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketId {
    /// Socket X: Test I, filtering, mapping, the binding whose lifetime is measured.
    Primary,
    /// Socket Y: hairpinning and the lifetime probes.
    Secondary,
    /// Port-allocation sample `n` (`0..PORT_SAMPLES`), as given to
    /// [`Prober::set_sample_addresses`].
    Sample(u8),
}

impl SocketId {
    fn other(self) -> Self {
        match self {
            SocketId::Primary => SocketId::Secondary,
            SocketId::Secondary | SocketId::Sample(_) => SocketId::Primary,
        }
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTransmit {
    /// The socket to send from.
    pub socket: SocketId,
    /// The destination.
    pub to: SocketAddr,
    /// The payload.
    pub data: Vec<u8>,
}

/// RFC 4787 mapping or filtering behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Behavior {
    /// Depends on nothing about the remote endpoint.
    EndpointIndependent,
    /// Depends on the remote IP address.
    AddressDependent,
    /// Depends on the remote IP address and port.
    AddressAndPortDependent,
}

impl Behavior {
    /// Every value as pinhole's scenarios write it (a probe step's `expect: mapping:`).
    pub const VALUES: &'static [&'static str] = &[
        "endpoint-independent",
        "address-dependent",
        "address-and-port-dependent",
    ];

    /// The RFC 4787 term as pinhole's scenarios and NAT profiles write it
    /// (`endpoint-independent`, `address-dependent`, `address-and-port-dependent`).
    pub fn as_str(self) -> &'static str {
        match self {
            Behavior::EndpointIndependent => "endpoint-independent",
            Behavior::AddressDependent => "address-dependent",
            Behavior::AddressAndPortDependent => "address-and-port-dependent",
        }
    }

    /// The value for a scenario keyword (exact, lower case).
    pub fn from_keyword(s: &str) -> Option<Behavior> {
        [
            Behavior::EndpointIndependent,
            Behavior::AddressDependent,
            Behavior::AddressAndPortDependent,
        ]
        .into_iter()
        .find(|b| b.as_str() == s)
    }
}

impl std::fmt::Display for Behavior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The tests, as named in events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ProbeTest {
    /// Test I: the mapped address and the server's other address.
    Binding,
    /// Filtering behaviour.
    Filtering,
    /// Mapping behaviour.
    Mapping,
    /// Hairpinning.
    Hairpinning,
    /// Binding lifetime.
    Lifetime,
    /// Port allocation and parity.
    PortAllocation,
}

/// The result of a test (or of one step of the lifetime search).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TestResult {
    /// Test I answered.
    Mapped {
        /// The primary socket's mapped address X1.
        mapped: SocketAddr,
        /// OTHER-ADDRESS (or CHANGED-ADDRESS) A':P'.
        other: Option<SocketAddr>,
        /// `Some(X1 ≠ local)` when the local address is known.
        nat_detected: Option<bool>,
    },
    /// Mapping or filtering behaviour.
    Behavior(Behavior),
    /// Hairpinning works (or not).
    Hairpinning(bool),
    /// One lifetime round: did the binding survive `wait`?
    LifetimeStep {
        /// Time between the refresh and the probe.
        wait: Duration,
        /// Whether the probe reached the primary socket.
        alive: bool,
    },
    /// The lifetime search ended.
    Lifetime {
        /// Longest wait survived.
        lower: Duration,
        /// Shortest wait not survived (`None`: survived `max`).
        upper: Option<Duration>,
    },
    /// One port-allocation sample: a fresh socket's local and mapped port.
    PortSample {
        /// The sample socket's local port.
        local: u16,
        /// Its mapped port.
        mapped: u16,
    },
    /// The port-allocation test ended.
    PortAllocation {
        /// How the NAT allocates ports.
        allocation: PortAllocation,
        /// Whether it keeps the local port's parity (`None`: not applicable or not
        /// determinable, see [`classify_port_allocation`]).
        parity: Option<bool>,
    },
    /// The test could not be run or concluded.
    Failed(String),
}

/// Progress and the final report.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProbeEvent {
    /// A test started.
    TestStarted(ProbeTest),
    /// A test (or lifetime step) has a result.
    TestResult(ProbeTest, TestResult),
    /// Everything is done; the prober emits nothing more.
    Done(ProbeReport),
}

/// What the probe found. `None` means "not tested" or "could not be determined"
/// (`errors` says why).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ProbeReport {
    /// The primary socket's mapped (server-reflexive) address.
    pub mapped: Option<SocketAddr>,
    /// The server's other address A':P' as it announced it.
    pub other_address: Option<SocketAddr>,
    /// Whether mapped ≠ local (needs [`Prober::set_local_addresses`]).
    pub nat_detected: Option<bool>,
    /// Mapping behaviour.
    pub mapping: Option<Behavior>,
    /// Filtering behaviour.
    pub filtering: Option<Behavior>,
    /// Hairpinning.
    pub hairpinning: Option<bool>,
    /// Lower bound of the binding lifetime (longest wait survived).
    pub binding_lifetime: Option<Duration>,
    /// Upper bound (shortest wait not survived); `None` if it survived `max`.
    pub lifetime_upper_bound: Option<Duration>,
    /// Port allocation.
    pub port_allocation: Option<PortAllocation>,
    /// Port parity preservation (see [`classify_port_allocation`]).
    pub port_parity: Option<bool>,
    /// Why some results are missing.
    pub errors: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    BindingI,
    FilteringII,
    FilteringIII,
    MappingII,
    MappingIII,
    HairpinBinding,
    HairpinProbe,
    LifetimeRefresh {
        wait: Duration,
    },
    LifetimeWait {
        wait: Duration,
        port: u16,
        until: Instant,
    },
    LifetimeProbe {
        wait: Duration,
    },
    /// Waiting for the answer to the `n`th sample (index into `sample_order`).
    PortSample(usize),
    Done,
}

#[derive(Debug)]
struct Request {
    tid: TransactionId,
    socket: SocketId,
    to: SocketAddr,
    data: Vec<u8>,
}

#[derive(Debug)]
struct Attempt {
    requests: Vec<Request>,
    sends: u32,
    interval: Duration,
    deadline: Instant,
}

/// The sans-IO prober. See the module docs.
#[derive(Debug)]
pub struct Prober {
    config: ProberConfig,
    rng: SplitMix64,
    step: Step,
    attempt: Option<Attempt>,
    transmits: VecDeque<ProbeTransmit>,
    events: VecDeque<ProbeEvent>,
    local: Option<(SocketAddr, SocketAddr)>,
    report: ProbeReport,
    mapping_x2: Option<SocketAddr>,
    secondary_mapped: Option<SocketAddr>,
    lifetime_lower: Duration,
    lifetime_upper: Option<Duration>,
    bisections: u32,
    sample_local: Vec<SocketAddr>,
    sample_order: Vec<u8>,
    samples: Vec<(u16, u16)>,
}

impl Prober {
    /// A prober that starts Test I at `now`. Transaction ids come from `rng_seed`.
    pub fn new(mut config: ProberConfig, now: Instant, rng_seed: u64) -> Self {
        config.rto = config.rto.clamp(RTO_RANGE.0, RTO_RANGE.1);
        config.max_retransmits = config.max_retransmits.min(MAX_RETRANSMITS);
        config.tests.lifetime = config.tests.lifetime.map(|l| l.min(MAX_LIFETIME));
        let mut p = Prober {
            config,
            rng: SplitMix64::new(rng_seed),
            step: Step::BindingI,
            attempt: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            local: None,
            report: ProbeReport::default(),
            mapping_x2: None,
            secondary_mapped: None,
            lifetime_lower: Duration::ZERO,
            lifetime_upper: None,
            bisections: 0,
            sample_local: Vec::new(),
            sample_order: Vec::new(),
            samples: Vec::new(),
        };
        let server = p.config.server;
        p.begin(
            now,
            ProbeTest::Binding,
            Step::BindingI,
            (SocketId::Primary, server, None, None),
        );
        p
    }

    /// The local addresses of the two sockets, for "no NAT" detection (mapped = local).
    pub fn set_local_addresses(&mut self, primary: SocketAddr, secondary: SocketAddr) {
        self.local = Some((primary, secondary));
    }

    /// The local addresses of the port-allocation sample sockets (at most
    /// [`PORT_SAMPLES`]; `SocketId::Sample(i)` is `addrs[i]`). Needed, before the
    /// hairpinning test ends, when `tests.port_allocation` is set. Best with both
    /// parities of local port, half each.
    pub fn set_sample_addresses(&mut self, addrs: &[SocketAddr]) {
        self.sample_local = addrs.iter().take(PORT_SAMPLES).copied().collect();
    }

    /// The report so far (final once [`Prober::is_done`]).
    pub fn report(&self) -> &ProbeReport {
        &self.report
    }

    /// Whether the probe has finished.
    pub fn is_done(&self) -> bool {
        self.step == Step::Done
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<ProbeTransmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ProbeEvent> {
        self.events.pop_front()
    }

    /// When [`Prober::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.step {
            Step::Done => None,
            Step::LifetimeWait { until, .. } => Some(until),
            _ => self.attempt.as_ref().map(|a| a.deadline),
        }
    }

    /// Time has passed: retransmit, give up on a test, or end a lifetime wait.
    pub fn handle_timeout(&mut self, now: Instant) {
        if let Step::LifetimeWait { wait, port, until } = self.step {
            if now >= until {
                let server = self.config.server;
                self.start(
                    now,
                    Step::LifetimeProbe { wait },
                    &[(SocketId::Secondary, server, None, Some(port))],
                );
            }
            return;
        }
        let max = self.config.max_retransmits;
        let Some(attempt) = self.attempt.as_mut() else {
            return;
        };
        if now < attempt.deadline {
            return;
        }
        if attempt.sends <= max {
            attempt.sends += 1;
            attempt.interval = attempt.interval.saturating_mul(2);
            attempt.deadline = now + attempt.interval;
            for r in &attempt.requests {
                self.transmits.push_back(ProbeTransmit {
                    socket: r.socket,
                    to: r.to,
                    data: r.data.clone(),
                });
            }
        } else {
            self.attempt = None;
            self.on_no_response(now);
        }
    }

    /// A datagram arrived on `socket` from `from`.
    pub fn handle_input(&mut self, now: Instant, socket: SocketId, from: SocketAddr, data: &[u8]) {
        let Ok(msg) = Message::parse(data) else {
            tracing::trace!(%from, "prober: ignoring non-STUN datagram");
            return;
        };
        let Some(attempt) = &self.attempt else { return };
        let Some(req) = attempt
            .requests
            .iter()
            .find(|r| r.tid == msg.transaction_id)
        else {
            return; // stale or foreign
        };
        let req_socket = req.socket;
        match msg.class {
            Class::Request if self.step == Step::HairpinProbe && socket == req_socket.other() => {
                self.attempt = None;
                self.hairpin_result(now, true);
            }
            // A response to a hairpin request means something answered on the mapped
            // address; it is no hairpin verdict: keep waiting.
            Class::Success | Class::Error if self.step != Step::HairpinProbe => {
                self.attempt = None;
                self.on_response(now, socket, req_socket, from, &msg);
            }
            _ => {}
        }
    }

    fn next_tid(&mut self) -> TransactionId {
        let mut id = [0u8; 12];
        let a = self.rng.next_u64().to_be_bytes();
        let b = self.rng.next_u64().to_be_bytes();
        id[..8].copy_from_slice(&a);
        id[8..].copy_from_slice(&b[..4]);
        TransactionId::new(id)
    }

    /// Announces `test` and starts its first step with one request.
    fn begin(
        &mut self,
        now: Instant,
        test: ProbeTest,
        step: Step,
        req: (SocketId, SocketAddr, Option<ChangeRequest>, Option<u16>),
    ) {
        self.events.push_back(ProbeEvent::TestStarted(test));
        self.start(now, step, &[req]);
    }

    /// Starts a step with requests (socket, destination, CHANGE-REQUEST, RESPONSE-PORT).
    fn start(
        &mut self,
        now: Instant,
        step: Step,
        reqs: &[(SocketId, SocketAddr, Option<ChangeRequest>, Option<u16>)],
    ) {
        self.step = step;
        let mut requests = Vec::with_capacity(reqs.len());
        for &(socket, to, change, response_port) in reqs {
            let tid = self.next_tid();
            let mut msg = Message::new(Class::Request, Method::Binding, tid);
            if let Some(c) = change {
                msg.attributes.push(Attribute::ChangeRequest(c));
            }
            if let Some(p) = response_port {
                msg.attributes.push(Attribute::ResponsePort(p));
            }
            msg.attributes.push(Attribute::Fingerprint(0));
            let data = msg.emit();
            self.transmits.push_back(ProbeTransmit {
                socket,
                to,
                data: data.clone(),
            });
            requests.push(Request {
                tid,
                socket,
                to,
                data,
            });
        }
        let interval = self.config.rto;
        self.attempt = Some(Attempt {
            requests,
            sends: 1,
            interval,
            deadline: now + interval,
        });
    }

    fn result(&mut self, test: ProbeTest, result: TestResult) {
        if let TestResult::Failed(e) = &result {
            self.report.errors.push(e.clone());
        }
        self.events.push_back(ProbeEvent::TestResult(test, result));
    }

    fn nat_detected(&self) -> Option<bool> {
        let (local, _) = self.local?;
        let mapped = self.report.mapped?;
        if local.ip().is_unspecified() {
            return None;
        }
        Some(local != mapped)
    }

    fn finish(&mut self) {
        self.step = Step::Done;
        self.attempt = None;
        if self.report.mapped.is_some() {
            self.report.nat_detected = self.nat_detected();
        }
        self.events.push_back(ProbeEvent::Done(self.report.clone()));
    }
}
