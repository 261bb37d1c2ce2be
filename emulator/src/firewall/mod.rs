//! The stateful firewall: ordered [`Rule`]s in front of an enterprise [`FirewallClass`],
//! with per-flow state and idle timeouts. It filters only; it never translates.
//!
//! # How a packet is judged
//!
//! [`Direction::Outbound`] is from the inside network. For each packet, in this order:
//!
//! 1. Not a parseable IPv4/IPv6 packet: dropped, [`DropReason::Malformed`].
//! 2. A non-first fragment (RFC 791 / RFC 8200 §4.5) has no transport header: it follows the
//!    verdict given to the first fragment with the same (source, destination, protocol,
//!    identification) within the last [`FRAGMENT_TIMEOUT`]; if that first fragment was not
//!    seen (lost, or reordered behind its followers), it is dropped with
//!    [`DropReason::Fragment`]. Rules and class are not consulted for it.
//! 3. An ICMP error (RFC 792, RFC 4443) never creates state. After the rules, it passes if
//!    the packet it quotes ([`wire::parse_embedded`](crate::wire::parse_embedded)) belongs
//!    to a tracked flow and was sent by the host the error now goes to (the check RFC 5508
//!    asks of NATs); otherwise the class decides (only [`Open`](FirewallClass::Open), and
//!    [`UdpRepliesOnly`](FirewallClass::UdpRepliesOnly) outbound, let unrelated errors by).
//!    Errors do not refresh the flow.
//! 4. The [`Rule`]s, in order; the first that matches decides: [`Action::Allow`] forwards
//!    and tracks the flow (creating or refreshing it), [`Action::Deny`] drops with
//!    [`DropReason::Firewall`]. Rules apply to replies too: a deny rule really denies.
//! 5. A packet of a tracked flow (same 5-tuple, either direction, [`FlowKey`]) passes and
//!    refreshes it. Exception: on an ICMP echo flow, the responder's side may only send
//!    echo replies.
//! 6. The class decides whether the packet may start a new flow
//!    ([`FirewallClass`] documents each). In every class but `Open`, a TCP flow starts only
//!    with a SYN without ACK (RFC 9293 §3.5); other segments without a flow are dropped, as
//!    enterprise firewalls do (Linux conntrack's default "loose" pick-up is only emulated by
//!    `Open` and by `Allow` rules).
//!
//! # Flow lifetime
//!
//! A flow lives for `[last refresh, last refresh + timeout)`: at exactly the deadline it is
//! gone, whether or not [`Firewall::handle_timeout`] was called (packets expire due flows
//! first). UDP, ICMP and other flows are refreshed only by packets from the side that
//! started them (RFC 4787 REQ-6); TCP flows by packets either way, with the timeout picked
//! by [`TcpState`] (RFC 5382 REQ-5: established ≥ 2 h 4 min, transitory ≥ 4 min; RST handled
//! as RFC 7857 §2.2). The table holds at most [`FirewallConfig::max_flows`] flows; a packet
//! that would start one more is dropped with [`DropReason::BindingLimit`].
//!
//! # Example
//!
//! ```
//! use emulator::firewall::{Firewall, FirewallClass, FirewallConfig};
//! use emulator::{Direction, DropReason, PacketBuf, Verdict};
//!
//! let mut fw = Firewall::new(FirewallConfig::new(FirewallClass::UdpRepliesOnly));
//! # #[allow(clippy::disallowed_methods)]
//! let now = std::time::Instant::now(); // a driver's clock; the firewall never reads one
//! # fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> PacketBuf {
//! #     let mut v = Vec::new();
//! #     etherparse::PacketBuilder::ipv4(src, dst, 64).udp(sp, dp).write(&mut v, b"x").unwrap();
//! #     PacketBuf::from_slice(&v)
//! # }
//! let out = udp([10, 0, 0, 2], 5000, [203, 0, 113, 5], 3478);
//! let reply = udp([203, 0, 113, 5], 3478, [10, 0, 0, 2], 5000);
//! let stranger = udp([203, 0, 113, 9], 3478, [10, 0, 0, 2], 5000);
//! assert!(matches!(fw.handle_packet(now, Direction::Inbound, &reply), Verdict::Drop(DropReason::Firewall)));
//! assert!(matches!(fw.handle_packet(now, Direction::Outbound, &out), Verdict::Forward));
//! assert!(matches!(fw.handle_packet(now, Direction::Inbound, &reply), Verdict::Forward));
//! assert!(matches!(fw.handle_packet(now, Direction::Inbound, &stranger), Verdict::Drop(_)));
//! while let Some(event) = fw.poll_event() {
//!     // record (now, event) for the report
//!     # let _ = event;
//! }
//! ```

mod flow;
mod rule;
#[cfg(test)]
mod tests;

pub use flow::{FlowEntry, FlowKey, FlowState, TcpState};
pub use rule::{Action, FirewallClass, Rule, RuleProto};

use crate::verdict::{Direction, DropReason, Verdict};
use crate::wire::{Endpoint, L4, PacketBuf, PacketInfo, Proto, parse, parse_embedded};
use flow::{Flow, TcpTrack};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long the verdict on a first fragment is remembered for its followers: RFC 791's
/// recommended initial reassembly timer, 15 s.
pub const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(15);

/// At most this many first-fragment verdicts are remembered; the oldest is forgotten first.
pub const FRAGMENT_LIMIT: usize = 4096;

/// At most this many events wait in [`Firewall::poll_event`]'s queue; more are counted in
/// [`FirewallStats::events_lost`] (only a driver that breaks the drive contract loses any).
pub const EVENT_LIMIT: usize = 65536;

// ===== Configuration =====

/// Idle timeouts per flow kind. The defaults are the NAT's, which are the minimums of
/// RFC 4787 REQ-5 (UDP), RFC 5382 REQ-5 (TCP) and RFC 5508 REQ-1 (ICMP queries).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FirewallTimeouts {
    /// UDP flows, and flows of protocols other than TCP and ICMP. Default 2 min
    /// (RFC 4787 REQ-5).
    pub udp: Duration,
    /// TCP flows in [`TcpState::Established`] or [`TcpState::HalfClosed`]. Default 2 h 4 min
    /// (RFC 5382 REQ-5).
    pub tcp_established: Duration,
    /// TCP flows opening, closed or reset. Default 4 min (RFC 5382 REQ-5, 2·MSL).
    pub tcp_transitory: Duration,
    /// ICMP query (echo) flows. Default 60 s (RFC 5508 REQ-1).
    pub icmp: Duration,
}

impl Default for FirewallTimeouts {
    fn default() -> Self {
        FirewallTimeouts {
            udp: Duration::from_secs(120),
            tcp_established: Duration::from_secs(2 * 3600 + 4 * 60),
            tcp_transitory: Duration::from_secs(240),
            icmp: Duration::from_secs(60),
        }
    }
}

/// A firewall's configuration (scenario `firewalls: NAME:`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FirewallConfig {
    /// The class that decides what may start a flow.
    pub class: FirewallClass,
    /// Extra rules, checked in order before the class; the first match wins.
    pub rules: Vec<Rule>,
    /// HTTP proxy endpoints for [`FirewallClass::HttpProxyOnly`] (ignored by other classes).
    pub proxies: Vec<Endpoint>,
    /// Idle timeouts.
    pub timeouts: FirewallTimeouts,
    /// Most flows tracked at once (default 65536, like the NAT's `max_bindings`); keeps
    /// memory bounded under a flood. Not a scenario key in format version 1.
    pub max_flows: usize,
}

impl FirewallConfig {
    /// A configuration of `class` with no rules, no proxies and default timeouts.
    pub fn new(class: FirewallClass) -> Self {
        FirewallConfig {
            class,
            rules: Vec::new(),
            proxies: Vec::new(),
            timeouts: FirewallTimeouts::default(),
            max_flows: 65536,
        }
    }
}

impl Default for FirewallConfig {
    fn default() -> Self {
        FirewallConfig::new(FirewallClass::Open)
    }
}

// ===== Firewall events =====

/// Which part of the policy decided about a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Cause {
    /// The rule at this index of [`FirewallConfig::rules`].
    Rule(usize),
    /// The [`FirewallClass`].
    Class,
    /// A non-first fragment that followed its first fragment's verdict.
    Fragment,
}

/// Something that happened inside the firewall, for reports ([`Firewall::poll_event`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FirewallEvent {
    /// A flow started.
    FlowCreated {
        /// Its 5-tuple.
        key: FlowKey,
        /// The side that sent its first packet.
        initiator: Direction,
        /// What allowed it.
        by: Cause,
    },
    /// A flow reached its idle timeout and was removed.
    FlowExpired {
        /// Its 5-tuple.
        key: FlowKey,
    },
    /// A packet was refused ([`DropReason::Firewall`]).
    Denied {
        /// Which way it was going.
        direction: Direction,
        /// Its protocol.
        proto: Proto,
        /// Source address and port (ICMP query: identifier; otherwise port 0).
        src: Endpoint,
        /// Destination address and port.
        dst: Endpoint,
        /// What refused it.
        by: Cause,
    },
}

/// Counters, for reports. Every packet handed to [`Firewall::handle_packet`] is counted
/// exactly once in one of the `forwarded_*`/`denied_*` counters or in [`dropped`](Self::dropped).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FirewallStats {
    /// Outbound packets forwarded.
    pub forwarded_outbound: u64,
    /// Inbound packets forwarded.
    pub forwarded_inbound: u64,
    /// Outbound packets refused by policy ([`DropReason::Firewall`]).
    pub denied_outbound: u64,
    /// Inbound packets refused by policy ([`DropReason::Firewall`]).
    pub denied_inbound: u64,
    /// Unparseable packets ([`DropReason::Malformed`]).
    pub malformed: u64,
    /// Non-first fragments whose first fragment was not seen ([`DropReason::Fragment`]).
    pub fragments_unmatched: u64,
    /// Packets refused because the flow table was full ([`DropReason::BindingLimit`]).
    pub flow_limit: u64,
    /// Forwarded non-first fragments (included in `forwarded_*`).
    pub fragments_followed: u64,
    /// Forwarded ICMP errors about a tracked flow (included in `forwarded_*`).
    pub icmp_errors_related: u64,
    /// Flows created.
    pub flows_created: u64,
    /// Flows expired.
    pub flows_expired: u64,
    /// Events dropped because the event queue was full.
    pub events_lost: u64,
}

impl FirewallStats {
    /// Packets dropped for a reason other than policy (malformed, unmatched fragment, full
    /// flow table).
    pub fn dropped(&self) -> u64 {
        self.malformed + self.fragments_unmatched + self.flow_limit
    }
}

// ===== The firewall =====

/// Key of a remembered first-fragment verdict: (source, destination, protocol number,
/// identification), the fields RFC 791 reassembles by.
type FragKey = (IpAddr, IpAddr, u8, u32);

struct Refusal {
    reason: DropReason,
    by: Cause,
}

impl Refusal {
    fn policy(by: Cause) -> Self {
        Refusal {
            reason: DropReason::Firewall,
            by,
        }
    }
}

/// A stateful firewall. See the [module docs](self) for how packets are judged.
#[derive(Debug)]
pub struct Firewall {
    config: FirewallConfig,
    flows: HashMap<FlowKey, Flow>,
    /// Flow deadlines, ordered by (deadline, creation sequence): deterministic expiry order.
    timers: BTreeMap<(Instant, u64), FlowKey>,
    frags: HashMap<FragKey, (bool, Instant, u64)>,
    frag_timers: BTreeMap<(Instant, u64), FragKey>,
    events: VecDeque<FirewallEvent>,
    stats: FirewallStats,
    next_seq: u64,
}

impl Firewall {
    /// A firewall with no flows.
    pub fn new(config: FirewallConfig) -> Self {
        Firewall {
            config,
            flows: HashMap::new(),
            timers: BTreeMap::new(),
            frags: HashMap::new(),
            frag_timers: BTreeMap::new(),
            events: VecDeque::new(),
            stats: FirewallStats::default(),
            next_seq: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &FirewallConfig {
        &self.config
    }

    /// The counters.
    pub fn stats(&self) -> &FirewallStats {
        &self.stats
    }

    /// How many flows are tracked.
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// A snapshot of every tracked flow, sorted by key.
    pub fn flows(&self) -> Vec<FlowEntry> {
        let mut v: Vec<FlowEntry> = self
            .flows
            .iter()
            .map(|(k, f)| FlowEntry {
                key: *k,
                initiator: f.initiator,
                state: f.state(),
                expires: f.expires,
            })
            .collect();
        v.sort_by_key(|e| e.key);
        v
    }

    /// Judge one packet travelling in `dir`. The packet is never modified.
    pub fn handle_packet(&mut self, now: Instant, dir: Direction, pkt: &PacketBuf) -> Verdict {
        match parse(pkt.as_slice()) {
            Ok(info) => self.handle_parsed(now, dir, pkt, &info),
            Err(_) => {
                self.expire(now);
                self.refused(
                    dir,
                    None,
                    Refusal {
                        reason: DropReason::Malformed,
                        by: Cause::Class,
                    },
                )
            }
        }
    }

    /// [`handle_packet`](Self::handle_packet) for a packet the caller has already parsed
    /// with [`parse`] (the fabric's engine parses once per hop and hands the view on).
    /// `info` must describe `pkt`.
    pub fn handle_parsed(
        &mut self,
        now: Instant,
        dir: Direction,
        pkt: &PacketBuf,
        info: &PacketInfo,
    ) -> Verdict {
        self.expire(now);
        match self.judge(now, dir, pkt.as_slice(), info) {
            Ok(()) => {
                match dir {
                    Direction::Outbound => self.stats.forwarded_outbound += 1,
                    Direction::Inbound => self.stats.forwarded_inbound += 1,
                }
                Verdict::Forward
            }
            Err(r) => self.refused(dir, Some(info), r),
        }
    }

    /// Count a refused packet (and report a policy denial).
    fn refused(&mut self, dir: Direction, info: Option<&PacketInfo>, r: Refusal) -> Verdict {
        match r.reason {
            DropReason::Firewall => match dir {
                Direction::Outbound => self.stats.denied_outbound += 1,
                Direction::Inbound => self.stats.denied_inbound += 1,
            },
            DropReason::Malformed => self.stats.malformed += 1,
            DropReason::Fragment => self.stats.fragments_unmatched += 1,
            _ => self.stats.flow_limit += 1,
        }
        if r.reason == DropReason::Firewall
            && let Some(info) = info
        {
            self.push_event(FirewallEvent::Denied {
                direction: dir,
                proto: info.proto,
                src: info.src_endpoint().unwrap_or(Endpoint::new(info.src, 0)),
                dst: info.dst_endpoint().unwrap_or(Endpoint::new(info.dst, 0)),
                by: r.by,
            });
        }
        Verdict::Drop(r.reason)
    }

    /// The earliest deadline (a flow's idle timeout or a fragment verdict's end), if any.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let a = self.timers.keys().next().map(|k| k.0);
        let b = self.frag_timers.keys().next().map(|k| k.0);
        match (a, b) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Expire every flow and fragment verdict whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.expire(now);
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<FirewallEvent> {
        self.events.pop_front()
    }

    fn push_event(&mut self, e: FirewallEvent) {
        if self.events.len() >= EVENT_LIMIT {
            self.stats.events_lost += 1;
        } else {
            self.events.push_back(e);
        }
    }

    fn expire(&mut self, now: Instant) {
        while let Some(entry) = self.timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.flows.remove(&key);
            self.stats.flows_expired += 1;
            self.push_event(FirewallEvent::FlowExpired { key });
        }
        while let Some(entry) = self.frag_timers.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            self.frags.remove(&key);
        }
    }

    fn judge(
        &mut self,
        now: Instant,
        dir: Direction,
        buf: &[u8],
        info: &PacketInfo,
    ) -> Result<(), Refusal> {
        let frag_key = info
            .fragment
            .map(|f| (info.src, info.dst, info.proto.number(info.version), f.id));
        if let (Some(f), Some(key)) = (info.fragment, frag_key)
            && f.offset != 0
        {
            return match self.frags.get(&key) {
                Some((true, _, _)) => {
                    self.stats.fragments_followed += 1;
                    Ok(())
                }
                Some((false, _, _)) => Err(Refusal::policy(Cause::Fragment)),
                None => Err(Refusal {
                    reason: DropReason::Fragment,
                    by: Cause::Fragment,
                }),
            };
        }
        let result = if info.is_icmp_error() {
            self.judge_icmp_error(dir, buf, info)
        } else {
            self.judge_flow(now, dir, info)
        };
        if let Some(key) = frag_key {
            self.remember_fragment(now, key, result.is_ok());
        }
        result
    }

    fn remember_fragment(&mut self, now: Instant, key: FragKey, allowed: bool) {
        if let Some((_, at, seq)) = self.frags.remove(&key) {
            self.frag_timers.remove(&(at, seq));
        }
        if self.frags.len() >= FRAGMENT_LIMIT
            && let Some((_, old)) = self.frag_timers.pop_first()
        {
            self.frags.remove(&old);
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let at = later(now, FRAGMENT_TIMEOUT);
        self.frags.insert(key, (allowed, at, seq));
        self.frag_timers.insert((at, seq), key);
    }

    fn judge_icmp_error(
        &mut self,
        dir: Direction,
        buf: &[u8],
        info: &PacketInfo,
    ) -> Result<(), Refusal> {
        for (i, rule) in self.config.rules.iter().enumerate() {
            if rule.matches(dir, info) {
                return match rule.action {
                    Action::Allow => Ok(()),
                    Action::Deny => Err(Refusal::policy(Cause::Rule(i))),
                };
            }
        }
        let quoted = buf.get(info.l4_offset + 8..info.total_len).unwrap_or(&[]);
        if let Ok(inner) = parse_embedded(quoted) {
            // The quoted packet went the other way: its source is the error's destination.
            let consistent = match dir {
                Direction::Inbound => inner.src == info.dst,
                Direction::Outbound => inner.dst == info.src,
            };
            if consistent && self.flows.contains_key(&FlowKey::of(dir.reverse(), &inner)) {
                self.stats.icmp_errors_related += 1;
                return Ok(());
            }
        }
        if self.config.class.admits_unrelated_icmp_error(dir) {
            Ok(())
        } else {
            Err(Refusal::policy(Cause::Class))
        }
    }

    fn judge_flow(
        &mut self,
        now: Instant,
        dir: Direction,
        info: &PacketInfo,
    ) -> Result<(), Refusal> {
        let key = FlowKey::of(dir, info);
        for (i, rule) in self.config.rules.iter().enumerate() {
            if rule.matches(dir, info) {
                return match rule.action {
                    Action::Allow => self.track(now, dir, key, info, Cause::Rule(i)),
                    Action::Deny => Err(Refusal::policy(Cause::Rule(i))),
                };
            }
        }
        if self.flows.get(&key).is_some_and(|f| f.accepts(dir, info)) {
            return self.track(now, dir, key, info, Cause::Class);
        }
        if self
            .config
            .class
            .admits_new(dir, info, &self.config.proxies)
        {
            self.track(now, dir, key, info, Cause::Class)
        } else {
            Err(Refusal::policy(Cause::Class))
        }
    }

    /// Refresh the packet's flow, or create it.
    fn track(
        &mut self,
        now: Instant,
        dir: Direction,
        key: FlowKey,
        info: &PacketInfo,
        by: Cause,
    ) -> Result<(), Refusal> {
        let timeouts = self.config.timeouts;
        if let Some(flow) = self.flows.get_mut(&key) {
            if flow.on_packet(dir, info) {
                let old = (flow.expires, flow.seq);
                flow.expires = later(now, flow.timeout(key.proto, &timeouts));
                let new = (flow.expires, flow.seq);
                self.timers.remove(&old);
                self.timers.insert(new, key);
            }
            return Ok(());
        }
        let tcp = match info.l4 {
            // A RST without a flow is forwarded (when allowed) but starts nothing.
            L4::Tcp { flags, .. } if flags & crate::wire::tcp_flags::RST != 0 => return Ok(()),
            L4::Tcp { flags, .. } => Some(TcpTrack::start(flags)),
            _ => None,
        };
        if self.flows.len() >= self.config.max_flows {
            return Err(Refusal {
                reason: DropReason::BindingLimit,
                by,
            });
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        let mut flow = Flow {
            seq,
            initiator: dir,
            expires: now,
            tcp,
            icmp_query: matches!(
                info.l4,
                L4::Icmp {
                    kind: crate::wire::IcmpKind::EchoRequest,
                    ..
                }
            ),
        };
        flow.expires = later(now, flow.timeout(key.proto, &timeouts));
        self.timers.insert((flow.expires, seq), key);
        self.flows.insert(key, flow);
        self.stats.flows_created += 1;
        self.push_event(FirewallEvent::FlowCreated {
            key,
            initiator: dir,
            by,
        });
        Ok(())
    }
}

/// `t + d`, saturating far in the future instead of panicking on overflow.
fn later(t: Instant, d: Duration) -> Instant {
    t.checked_add(d)
        .or_else(|| t.checked_add(Duration::from_secs(100 * 365 * 86400)))
        .unwrap_or(t)
}
