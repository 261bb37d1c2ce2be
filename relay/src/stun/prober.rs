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

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::attr::{Attribute, ChangeRequest};
use super::message::{Class, Message, Method, TransactionId};
use crate::rng::SplitMix64;

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

/// How a NAT picks the external port of a new mapping (RFC 4787 §4.2.1), as far as
/// consecutive mappings show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PortAllocation {
    /// The external port is the internal port (port preservation).
    Preserve,
    /// Each new mapping takes a port a small step above the previous one.
    Sequential,
    /// Neither: no pattern between consecutive mappings.
    Random,
}

impl PortAllocation {
    /// Every value as pinhole's scenarios write it (a probe step's
    /// `expect: port_allocation:`).
    pub const VALUES: &'static [&'static str] = &["preserve", "sequential", "random"];

    /// The keyword pinhole's scenarios and NAT profiles use (`preserve`, `sequential`,
    /// `random`).
    pub fn as_str(self) -> &'static str {
        match self {
            PortAllocation::Preserve => "preserve",
            PortAllocation::Sequential => "sequential",
            PortAllocation::Random => "random",
        }
    }

    /// The value for a scenario keyword (exact, lower case).
    pub fn from_keyword(s: &str) -> Option<PortAllocation> {
        [
            PortAllocation::Preserve,
            PortAllocation::Sequential,
            PortAllocation::Random,
        ]
        .into_iter()
        .find(|a| a.as_str() == s)
    }
}

impl std::fmt::Display for PortAllocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest step between consecutive external ports that still counts as sequential:
/// other hosts behind a busy NAT take ports in between.
pub const SEQUENTIAL_MAX_STEP: u16 = 16;

/// Classify port allocation from `(local port, mapped port)` samples in the order their
/// mappings were created; `None` with fewer than four samples.
///
/// - **preserve** when all but at most one sample kept its port (one collision with
///   another host's mapping is tolerated);
/// - **sequential** when all but at most one step between consecutive mapped ports is in
///   `1..=SEQUENTIAL_MAX_STEP` (one wrap at the end of the range is tolerated);
/// - **random** otherwise.
///
/// Parity (RFC 4787 §4.2.2) is reported only for allocations that do not preserve the
/// port (preservation keeps parity trivially) and only when at least two samples of each
/// local parity exist: `Some(true)` when every mapped port has its local port's parity.
/// Samples should alternate in pairs of parity (even, even, odd, odd, …) so that a
/// sequential allocator without parity cannot match the local parities by accident.
pub fn classify_port_allocation(samples: &[(u16, u16)]) -> Option<(PortAllocation, Option<bool>)> {
    let n = samples.len();
    if n < 4 {
        return None;
    }
    let preserved = samples.iter().filter(|(l, m)| l == m).count();
    if preserved + 1 >= n {
        return Some((PortAllocation::Preserve, None));
    }
    let small_steps = samples
        .windows(2)
        .filter(|w| (1..=SEQUENTIAL_MAX_STEP).contains(&w[1].1.wrapping_sub(w[0].1)))
        .count();
    let allocation = if small_steps + 2 >= n {
        PortAllocation::Sequential
    } else {
        PortAllocation::Random
    };
    let evens = samples.iter().filter(|(l, _)| l.is_multiple_of(2)).count();
    let parity =
        (evens >= 2 && n - evens >= 2).then(|| samples.iter().all(|(l, m)| l % 2 == m % 2));
    Some((allocation, parity))
}

/// The order in which to use sample sockets with local ports `ports`: pairs of even and odd
/// ports alternating (even, even, odd, odd, …), the rest at the end.
fn parity_pairs_order(ports: &[u16]) -> Vec<u8> {
    let (mut evens, mut odds): (Vec<u8>, Vec<u8>) =
        (0..ports.len() as u8).partition(|&i| ports[i as usize].is_multiple_of(2));
    evens.reverse();
    odds.reverse();
    let mut out = Vec::with_capacity(ports.len());
    while !evens.is_empty() || !odds.is_empty() {
        for q in [&mut evens, &mut odds] {
            for _ in 0..2 {
                if let Some(i) = q.pop() {
                    out.push(i);
                }
            }
        }
    }
    out
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
        p.events
            .push_back(ProbeEvent::TestStarted(ProbeTest::Binding));
        let server = p.config.server;
        p.start(
            now,
            Step::BindingI,
            &[(SocketId::Primary, server, None, None)],
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

    // ===== internals =====

    fn next_tid(&mut self) -> TransactionId {
        let mut id = [0u8; 12];
        let a = self.rng.next_u64().to_be_bytes();
        let b = self.rng.next_u64().to_be_bytes();
        id[..8].copy_from_slice(&a);
        id[8..].copy_from_slice(&b[..4]);
        TransactionId::new(id)
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

    fn on_response(
        &mut self,
        now: Instant,
        socket: SocketId,
        req_socket: SocketId,
        from: SocketAddr,
        msg: &Message,
    ) {
        let error =
            (msg.class == Class::Error).then(|| match msg.get(super::attr::kind::ERROR_CODE) {
                Some(Attribute::ErrorCode(e)) => format!("{} {}", e.code, e.reason),
                _ => "error response".to_owned(),
            });
        match self.step {
            Step::BindingI => {
                let mapped = msg.mapped_address();
                match (error, mapped) {
                    (Some(e), _) => {
                        self.result(
                            ProbeTest::Binding,
                            TestResult::Failed(format!("server answered Test I with {e}")),
                        );
                        self.finish();
                    }
                    (None, None) => {
                        self.result(
                            ProbeTest::Binding,
                            TestResult::Failed(
                                "Test I response has no (XOR-)MAPPED-ADDRESS".into(),
                            ),
                        );
                        self.finish();
                    }
                    (None, Some(mapped)) => {
                        self.report.mapped = Some(mapped);
                        let other = msg.other_address();
                        self.report.other_address = other;
                        self.report.nat_detected = self.nat_detected();
                        let nat_detected = self.report.nat_detected;
                        self.result(
                            ProbeTest::Binding,
                            TestResult::Mapped {
                                mapped,
                                other,
                                nat_detected,
                            },
                        );
                        self.goto_filtering(now);
                    }
                }
            }
            Step::FilteringII | Step::FilteringIII => {
                let change_ip = self.step == Step::FilteringII;
                if let Some(e) = error {
                    self.result(
                        ProbeTest::Filtering,
                        TestResult::Failed(format!(
                            "server refused CHANGE-REQUEST ({e}): RFC 5780 tests need `alternate`"
                        )),
                    );
                    self.goto_mapping(now);
                } else if from.ip() == self.config.server.ip() && change_ip
                    || from.port() == self.config.server.port()
                {
                    self.result(
                        ProbeTest::Filtering,
                        TestResult::Failed(format!(
                            "server ignored CHANGE-REQUEST (answered from {from})"
                        )),
                    );
                    self.goto_mapping(now);
                } else {
                    let b = if change_ip {
                        Behavior::EndpointIndependent
                    } else {
                        Behavior::AddressDependent
                    };
                    self.report.filtering = Some(b);
                    self.result(ProbeTest::Filtering, TestResult::Behavior(b));
                    self.goto_mapping(now);
                }
            }
            Step::MappingII | Step::MappingIII => {
                let Some(mapped) = msg.mapped_address().filter(|_| error.is_none()) else {
                    let why = error.unwrap_or_else(|| "no (XOR-)MAPPED-ADDRESS".into());
                    self.result(
                        ProbeTest::Mapping,
                        TestResult::Failed(format!("mapping test failed: {why}")),
                    );
                    self.goto_hairpin(now);
                    return;
                };
                let behavior = if self.step == Step::MappingII {
                    if Some(mapped) == self.report.mapped {
                        Behavior::EndpointIndependent
                    } else {
                        self.mapping_x2 = Some(mapped);
                        let other = self.report.other_address;
                        match other {
                            Some(other) => self.start(
                                now,
                                Step::MappingIII,
                                &[(SocketId::Primary, other, None, None)],
                            ),
                            // Unreachable: mapping tests start only with a usable OTHER-ADDRESS.
                            None => self.goto_hairpin(now),
                        }
                        return;
                    }
                } else if Some(mapped) == self.mapping_x2 {
                    Behavior::AddressDependent
                } else {
                    Behavior::AddressAndPortDependent
                };
                self.report.mapping = Some(behavior);
                self.result(ProbeTest::Mapping, TestResult::Behavior(behavior));
                self.goto_hairpin(now);
            }
            Step::HairpinBinding => match (error, msg.mapped_address(), self.report.mapped) {
                (None, Some(y1), Some(x1)) => {
                    self.secondary_mapped = Some(y1);
                    self.start(
                        now,
                        Step::HairpinProbe,
                        &[
                            (SocketId::Primary, y1, None, None),
                            (SocketId::Secondary, x1, None, None),
                        ],
                    );
                }
                (e, _, _) => {
                    let why = e.unwrap_or_else(|| "no (XOR-)MAPPED-ADDRESS".into());
                    self.result(
                        ProbeTest::Hairpinning,
                        TestResult::Failed(format!("secondary socket's binding failed: {why}")),
                    );
                    self.goto_ports(now);
                }
            },
            Step::LifetimeRefresh { wait } => match (error, msg.mapped_address()) {
                (None, Some(mapped)) => {
                    self.step = Step::LifetimeWait {
                        wait,
                        port: mapped.port(),
                        until: now + wait,
                    };
                }
                (e, _) => {
                    let why = e.unwrap_or_else(|| "no (XOR-)MAPPED-ADDRESS".into());
                    self.result(
                        ProbeTest::Lifetime,
                        TestResult::Failed(format!("lifetime refresh failed: {why}")),
                    );
                    self.finish();
                }
            },
            Step::LifetimeProbe { wait } => {
                if let Some(e) = error {
                    self.result(
                        ProbeTest::Lifetime,
                        TestResult::Failed(format!(
                            "server refused RESPONSE-PORT ({e}): lifetime not measured"
                        )),
                    );
                    self.finish();
                } else if socket == req_socket {
                    self.result(
                        ProbeTest::Lifetime,
                        TestResult::Failed(
                            "server ignored RESPONSE-PORT (answer came back to the sending socket)"
                                .into(),
                        ),
                    );
                    self.finish();
                } else {
                    self.lifetime_result(now, wait, true);
                }
            }
            Step::PortSample(k) => match (error, msg.mapped_address()) {
                (None, Some(mapped)) => {
                    let local = self
                        .sample_order
                        .get(k)
                        .and_then(|&i| self.sample_local.get(i as usize));
                    let Some(local) = local.map(|a| a.port()) else {
                        self.result(
                            ProbeTest::PortAllocation,
                            TestResult::Failed(
                                "sample sockets changed during the port-allocation test".into(),
                            ),
                        );
                        return self.goto_lifetime(now);
                    };
                    self.samples.push((local, mapped.port()));
                    self.result(
                        ProbeTest::PortAllocation,
                        TestResult::PortSample {
                            local,
                            mapped: mapped.port(),
                        },
                    );
                    self.sample_next(now, k + 1);
                }
                (e, _) => {
                    let why = e.unwrap_or_else(|| "no (XOR-)MAPPED-ADDRESS".into());
                    self.result(
                        ProbeTest::PortAllocation,
                        TestResult::Failed(format!("port-allocation sample {k} failed: {why}")),
                    );
                    self.goto_lifetime(now);
                }
            },
            Step::HairpinProbe | Step::LifetimeWait { .. } | Step::Done => {}
        }
    }

    fn on_no_response(&mut self, now: Instant) {
        match self.step {
            Step::BindingI => {
                let server = self.config.server;
                self.result(
                    ProbeTest::Binding,
                    TestResult::Failed(format!("no response from STUN server {server} (Test I)")),
                );
                self.finish();
            }
            Step::FilteringII => {
                let server = self.config.server;
                let change = ChangeRequest {
                    change_ip: false,
                    change_port: true,
                };
                self.start(
                    now,
                    Step::FilteringIII,
                    &[(SocketId::Primary, server, Some(change), None)],
                );
            }
            Step::FilteringIII => {
                let b = Behavior::AddressAndPortDependent;
                self.report.filtering = Some(b);
                self.result(ProbeTest::Filtering, TestResult::Behavior(b));
                self.goto_mapping(now);
            }
            Step::MappingII | Step::MappingIII => {
                let to = self.attempt_target();
                self.result(
                    ProbeTest::Mapping,
                    TestResult::Failed(format!(
                        "no response from the server's alternate address {to}"
                    )),
                );
                self.goto_hairpin(now);
            }
            Step::HairpinBinding => {
                self.result(
                    ProbeTest::Hairpinning,
                    TestResult::Failed(
                        "no response to the secondary socket's binding request".into(),
                    ),
                );
                self.goto_ports(now);
            }
            Step::HairpinProbe => self.hairpin_result(now, false),
            Step::LifetimeRefresh { .. } => {
                self.result(
                    ProbeTest::Lifetime,
                    TestResult::Failed("no response to the lifetime refresh request".into()),
                );
                self.finish();
            }
            Step::LifetimeProbe { wait } => self.lifetime_result(now, wait, false),
            Step::PortSample(k) => {
                self.result(
                    ProbeTest::PortAllocation,
                    TestResult::Failed(format!("no response to port-allocation sample {k}")),
                );
                self.goto_lifetime(now);
            }
            Step::LifetimeWait { .. } | Step::Done => {}
        }
    }

    fn attempt_target(&self) -> String {
        match (self.step, self.report.other_address) {
            (Step::MappingII, Some(o)) => {
                SocketAddr::new(o.ip(), self.config.server.port()).to_string()
            }
            (_, Some(o)) => o.to_string(),
            _ => "?".into(),
        }
    }

    fn goto_filtering(&mut self, now: Instant) {
        let tests = &self.config.tests;
        if (tests.filtering || tests.mapping) && !self.other_usable() {
            let why = match self.report.other_address {
                None => "server has no OTHER-ADDRESS: RFC 5780 mapping/filtering tests need a server with `alternate`".into(),
                Some(o) => format!("server's OTHER-ADDRESS {o} does not differ in IP and port from {}", self.config.server),
            };
            let test = if tests.filtering {
                ProbeTest::Filtering
            } else {
                ProbeTest::Mapping
            };
            self.result(test, TestResult::Failed(why));
            self.goto_hairpin(now);
            return;
        }
        if self.config.tests.filtering {
            self.events
                .push_back(ProbeEvent::TestStarted(ProbeTest::Filtering));
            let server = self.config.server;
            let change = ChangeRequest {
                change_ip: true,
                change_port: true,
            };
            self.start(
                now,
                Step::FilteringII,
                &[(SocketId::Primary, server, Some(change), None)],
            );
        } else {
            self.goto_mapping(now);
        }
    }

    fn other_usable(&self) -> bool {
        self.report.other_address.is_some_and(|o| {
            o.ip() != self.config.server.ip() && o.port() != self.config.server.port()
        })
    }

    fn goto_mapping(&mut self, now: Instant) {
        match self.report.other_address {
            Some(other) if self.config.tests.mapping && self.other_usable() => {
                self.events
                    .push_back(ProbeEvent::TestStarted(ProbeTest::Mapping));
                let to = SocketAddr::new(other.ip(), self.config.server.port());
                self.start(now, Step::MappingII, &[(SocketId::Primary, to, None, None)]);
            }
            _ => self.goto_hairpin(now),
        }
    }

    fn goto_hairpin(&mut self, now: Instant) {
        if self.config.tests.hairpinning {
            self.events
                .push_back(ProbeEvent::TestStarted(ProbeTest::Hairpinning));
            let server = self.config.server;
            self.start(
                now,
                Step::HairpinBinding,
                &[(SocketId::Secondary, server, None, None)],
            );
        } else {
            self.goto_ports(now);
        }
    }

    fn hairpin_result(&mut self, now: Instant, works: bool) {
        self.report.hairpinning = Some(works);
        self.result(ProbeTest::Hairpinning, TestResult::Hairpinning(works));
        self.goto_ports(now);
    }

    fn goto_ports(&mut self, now: Instant) {
        if !self.config.tests.port_allocation {
            return self.goto_lifetime(now);
        }
        self.events
            .push_back(ProbeEvent::TestStarted(ProbeTest::PortAllocation));
        if self.sample_local.len() < 4 {
            let n = self.sample_local.len();
            self.result(
                ProbeTest::PortAllocation,
                TestResult::Failed(format!(
                    "port allocation needs at least 4 sample sockets, the driver gave {n}"
                )),
            );
            return self.goto_lifetime(now);
        }
        let ports: Vec<u16> = self.sample_local.iter().map(|a| a.port()).collect();
        self.sample_order = parity_pairs_order(&ports);
        self.samples.clear();
        self.sample_next(now, 0);
    }

    /// Send sample `k` (one at a time, so the mappings are created in a known order), or
    /// classify when all have answered.
    fn sample_next(&mut self, now: Instant, k: usize) {
        if let Some(&i) = self.sample_order.get(k) {
            let server = self.config.server;
            self.start(
                now,
                Step::PortSample(k),
                &[(SocketId::Sample(i), server, None, None)],
            );
            return;
        }
        if let Some((allocation, parity)) = classify_port_allocation(&self.samples) {
            self.report.port_allocation = Some(allocation);
            self.report.port_parity = parity;
            if parity.is_none() && allocation != PortAllocation::Preserve {
                self.report.errors.push(
                    "port parity not determined: fewer than two sample sockets of each local port parity"
                        .into(),
                );
            }
            self.result(
                ProbeTest::PortAllocation,
                TestResult::PortAllocation { allocation, parity },
            );
        }
        self.goto_lifetime(now);
    }

    fn goto_lifetime(&mut self, now: Instant) {
        match self.config.tests.lifetime {
            Some(max) => {
                self.events
                    .push_back(ProbeEvent::TestStarted(ProbeTest::Lifetime));
                self.lifetime_round(now, max);
            }
            None => self.finish(),
        }
    }

    fn lifetime_round(&mut self, now: Instant, wait: Duration) {
        let server = self.config.server;
        self.start(
            now,
            Step::LifetimeRefresh { wait },
            &[(SocketId::Primary, server, None, None)],
        );
    }

    fn lifetime_result(&mut self, now: Instant, wait: Duration, alive: bool) {
        self.result(
            ProbeTest::Lifetime,
            TestResult::LifetimeStep { wait, alive },
        );
        if alive {
            self.lifetime_lower = self.lifetime_lower.max(wait);
        } else {
            self.lifetime_upper = Some(self.lifetime_upper.map_or(wait, |u| u.min(wait)));
        }
        let done = match self.lifetime_upper {
            None => true, // survived max
            Some(upper) => {
                upper.saturating_sub(self.lifetime_lower) <= self.config.lifetime_resolution
                    || self.bisections >= MAX_BISECTIONS
            }
        };
        if done {
            let (lower, upper) = (self.lifetime_lower, self.lifetime_upper);
            if upper.is_some_and(|u| u < lower) {
                self.report.errors.push(format!(
                    "inconsistent lifetime results: survived {lower:?} but not {upper:?} (packet loss, or a NAT \
                     that refreshes bindings on inbound traffic)"
                ));
            }
            self.report.binding_lifetime = Some(lower);
            self.report.lifetime_upper_bound = upper;
            self.result(ProbeTest::Lifetime, TestResult::Lifetime { lower, upper });
            self.finish();
        } else {
            self.bisections += 1;
            let upper = self.lifetime_upper.unwrap_or(wait);
            let next = self.lifetime_lower + (upper - self.lifetime_lower) / 2;
            self.lifetime_round(now, next);
        }
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

#[cfg(test)]
mod test {
    use super::*;

    /// Locals in the prober's order (even, even, odd, odd, …) starting at `base`.
    fn locals(base: u16, n: usize) -> Vec<u16> {
        let ports: Vec<u16> = (0..n as u16).map(|i| base + i).collect();
        parity_pairs_order(&ports)
            .into_iter()
            .map(|i| ports[i as usize])
            .collect()
    }

    #[test]
    fn parity_pairs_alternate_in_pairs() {
        let ports = [40_001, 40_002, 40_003, 40_004, 40_005, 40_006, 40_008];
        let order: Vec<u16> = parity_pairs_order(&ports)
            .into_iter()
            .map(|i| ports[i as usize])
            .collect();
        assert_eq!(
            order,
            [40_002, 40_004, 40_001, 40_003, 40_006, 40_008, 40_005]
        );
    }

    #[test]
    fn preserved_ports_are_preserve_even_with_one_collision() {
        let mut s: Vec<(u16, u16)> = locals(40_000, 12).into_iter().map(|l| (l, l)).collect();
        assert_eq!(
            classify_port_allocation(&s),
            Some((PortAllocation::Preserve, None))
        );
        s[5].1 = 1024;
        assert_eq!(
            classify_port_allocation(&s),
            Some((PortAllocation::Preserve, None))
        );
        s[6].1 = 1025;
        assert_ne!(
            classify_port_allocation(&s).map(|c| c.0),
            Some(PortAllocation::Preserve)
        );
    }

    #[test]
    fn sequential_without_parity_is_not_mistaken_for_parity() {
        // A sequential allocator hands out 1024, 1025, … whatever the local parity.
        let s: Vec<(u16, u16)> = locals(40_000, 12).into_iter().zip(1024..).collect();
        assert_eq!(
            classify_port_allocation(&s),
            Some((PortAllocation::Sequential, Some(false)))
        );
    }

    #[test]
    fn sequential_with_parity_and_one_wrap() {
        let mut next = 65_530u16;
        let s: Vec<(u16, u16)> = locals(40_000, 12)
            .into_iter()
            .map(|l| {
                if next % 2 != l % 2 {
                    next = next.wrapping_add(1);
                }
                if !(1024..65_535).contains(&next) {
                    next = 1024 + l % 2;
                }
                let m = next;
                next = next.wrapping_add(1);
                (l, m)
            })
            .collect();
        assert_eq!(
            classify_port_allocation(&s),
            Some((PortAllocation::Sequential, Some(true))),
            "{s:?}"
        );
    }

    #[test]
    fn random_ports_are_random_and_parity_is_seen() {
        let mut rng = SplitMix64::new(99);
        let s: Vec<(u16, u16)> = locals(40_000, 12)
            .into_iter()
            .map(|l| {
                let r = 1024 + (rng.next_u64() % 64_000) as u16;
                (l, r)
            })
            .collect();
        let (a, p) = classify_port_allocation(&s).unwrap();
        assert_eq!(a, PortAllocation::Random, "{s:?}");
        assert_eq!(p, Some(false), "{s:?}");
        let with_parity: Vec<(u16, u16)> = s.iter().map(|&(l, m)| (l, m - m % 2 + l % 2)).collect();
        assert_eq!(
            classify_port_allocation(&with_parity),
            Some((PortAllocation::Random, Some(true)))
        );
    }

    #[test]
    fn parity_needs_both_local_parities_and_enough_samples() {
        let one_parity: Vec<(u16, u16)> =
            (0..8u16).map(|i| (40_000 + 2 * i, 2000 + 7 * i)).collect();
        assert_eq!(classify_port_allocation(&one_parity).unwrap().1, None);
        assert_eq!(classify_port_allocation(&one_parity[..3]), None);
    }
}
