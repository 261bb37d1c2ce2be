//! The packet engine both fabrics share: routing between networks, the NAT and firewall
//! devices, and the links, as one sans-IO state machine.
//!
//! A fabric feeds it the packets its hosts send ([`Engine::handle_from_host`]) and takes
//! the packets to deliver to hosts ([`Engine::poll_to_host`]); it runs due timers with
//! [`Engine::handle_timeout`] at [`Engine::poll_timeout`]. The virtual fabric connects it to
//! smoltcp stacks under a virtual clock, the kernel fabric to TUN devices under the real one.
//!
//! Packet path from a host: its `up` link → routing on its network
//! ([`SegmentRoutes`]) → the next attachment's `down` link → that node (a host, or one
//! side of a NAT or firewall). A NAT or firewall forwards to its other side, out through
//! that attachment's `up` link; a hairpinned packet or a reply (ICMP error, RST) goes back
//! out the side it came in. Attachments without a link forward instantly. Routers
//! decrement the TTL.

use crate::firewall::{Firewall, FirewallEvent};
use crate::link::{Admit, Link, LinkConfig};
use crate::nat::Nat;
use crate::rng::SimRng;
use crate::topology::{Attachment, Place, SegmentRoutes, Topology, TopologyError};
use crate::wire::{self, PacketBuf, PacketInfo};
use crate::{Direction, DropReason, Verdict};
use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::Instant;

/// Something that happened in the engine, for reports. Places are ids
/// ([`Topology::place_name`] names them), so an event costs no allocation.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum EngineEvent {
    /// A packet was dropped (one event per packet: consumers coalesce).
    Dropped {
        /// Where: a host, NAT, firewall, link or network.
        at: Place,
        /// Why.
        reason: DropReason,
    },
    /// A NAT event (mapping created, expired, …).
    Nat {
        /// The NAT's index in the topology.
        nat: usize,
        /// The event.
        event: crate::nat::NatEvent,
    },
    /// A firewall event (flow created or expired, packet denied).
    Firewall {
        /// The firewall's index in the topology.
        firewall: usize,
        /// The event.
        event: FirewallEvent,
    },
}

/// Errors building or reconfiguring an engine.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The topology is invalid.
    #[error(transparent)]
    Topology(#[from] TopologyError),
    /// A NAT's configuration or action is invalid.
    #[error("NAT `{0}`: {1}")]
    Nat(String, String),
}

/// Counters of an engine run.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EngineStats {
    /// Packets hosts sent into the engine.
    pub sent: u64,
    /// Packets delivered to hosts.
    pub delivered: u64,
    /// Drops by place and reason.
    pub drops: BTreeMap<(Place, DropReason), u64>,
}

/// Where a packet is headed next.
#[derive(Clone, Copy, Debug)]
enum Hop {
    /// Leaving `at` into its network: through `at`'s up link, then routed.
    Up(Attachment),
    /// On a network, from `from`: route it.
    Route(Attachment),
    /// Into the node behind attachment `at` (its down link already passed), with the
    /// packet's parsed view when routing just made it and nothing has touched the packet
    /// since (no link held it): a hop parses a packet once.
    Node(Attachment, Option<PacketInfo>),
}

/// Bound on events kept for [`Engine::poll_event`]; beyond it the oldest are discarded
/// (and counted), so an undrained engine cannot grow without limit.
pub const MAX_EVENTS: usize = 1 << 20;

/// Bound on packets waiting for the fabric to take them with [`Engine::poll_to_host`];
/// beyond it deliveries are dropped as [`DropReason::QueueFull`].
pub const MAX_TO_HOSTS: usize = 1 << 16;

/// Bound on packets in flight on one link direction (delayed, jittered or serialized);
/// beyond it packets are dropped as [`DropReason::QueueFull`] at the link. With the kernel
/// fabric's 2 KiB packet buffers this keeps an overloaded delayed link under 64 MiB; at
/// 500k packets/s it still carries 65 ms of delay at full rate.
pub const MAX_LINK_IN_FLIGHT: usize = 1 << 15;

/// Bound on captured packets waiting for [`Engine::poll_capture`]; beyond it captures are
/// discarded and counted in [`Engine::captures_discarded`].
pub const MAX_CAPTURES: usize = 1 << 16;

/// A packet as seen on an attachment's interface, like a capture on that interface:
/// outgoing packets as the node sends them, incoming ones as it receives them (after the
/// link). A NAT's outside interface therefore shows translated packets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Captured {
    /// The interface.
    pub at: Attachment,
    /// When.
    pub time: Instant,
    /// `true` for packets the node sent, `false` for packets it received.
    pub outgoing: bool,
    /// The packet.
    pub packet: Vec<u8>,
}

/// The shared packet engine. See the module docs.
pub struct Engine {
    now: Instant,
    topo: Topology,
    routes: Vec<SegmentRoutes>,
    rng: SimRng,
    nats: Vec<Nat>,
    firewalls: Vec<Firewall>,
    link_index: BTreeMap<(Attachment, bool), usize>,
    links: Vec<(Attachment, bool, Link)>,
    work: VecDeque<(PacketBuf, Hop)>,
    to_hosts: VecDeque<(usize, PacketBuf)>,
    events: VecDeque<(Instant, EngineEvent)>,
    events_discarded: u64,
    stats: EngineStats,
    capture: bool,
    captured: VecDeque<Captured>,
    captures_discarded: u64,
}

impl Engine {
    /// Build the engine at time `now`. NAT port choices and link fates derive from `rng`.
    pub fn new(topo: Topology, rng: SimRng, now: Instant) -> Result<Engine, EngineError> {
        topo.validate()?;
        let routes = topo.routes();
        let mut nats = Vec::new();
        for (i, n) in topo.nats.iter().enumerate() {
            let nat = Nat::new(n.config.clone(), rng.fork(0x2000 + i as u64))
                .map_err(|e| EngineError::Nat(n.name.clone(), e.to_string()))?;
            nats.push(nat);
        }
        let firewalls = topo
            .firewalls
            .iter()
            .map(|f| Firewall::new(f.config.clone()))
            .collect();
        let mut e = Engine {
            now,
            routes,
            rng,
            nats,
            firewalls,
            link_index: BTreeMap::new(),
            links: Vec::new(),
            work: VecDeque::new(),
            to_hosts: VecDeque::new(),
            events: VecDeque::new(),
            events_discarded: 0,
            stats: EngineStats::default(),
            capture: false,
            captured: VecDeque::new(),
            captures_discarded: 0,
            topo,
        };
        for l in e.topo.links.clone() {
            e.set_link(l.at, true, l.up);
            e.set_link(l.at, false, l.down);
        }
        Ok(e)
    }

    /// The topology being run.
    pub fn topology(&self) -> &Topology {
        &self.topo
    }

    /// The routing table of every network.
    pub fn routes(&self) -> &[SegmentRoutes] {
        &self.routes
    }

    /// Counters so far.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Events discarded because nobody drained [`Engine::poll_event`].
    pub fn events_discarded(&self) -> u64 {
        self.events_discarded
    }

    /// A NAT by index.
    pub fn nat(&self, id: usize) -> &Nat {
        &self.nats[id]
    }

    /// A NAT by index, mutable (scenario `nat:` reboot and rebind).
    pub fn nat_mut(&mut self, id: usize) -> &mut Nat {
        &mut self.nats[id]
    }

    /// A firewall by index.
    pub fn firewall(&self, id: usize) -> &Firewall {
        &self.firewalls[id]
    }

    /// Give NAT `id` a new external address pool (scenario `nat: renumber`): the NAT drops
    /// its bindings and the outside network routes the new addresses to it.
    pub fn renumber_nat(
        &mut self,
        now: Instant,
        id: usize,
        external: Vec<IpAddr>,
    ) -> Result<(), EngineError> {
        let name = self.topo.nats[id].name.clone();
        let outside = self.topo.nats[id].outside;
        let prefix = self.topo.networks[outside].prefix;
        for a in &external {
            if !prefix.contains(*a) {
                return Err(EngineError::Nat(
                    name,
                    format!("{a} is not in its outside network {prefix}"),
                ));
            }
            match self.routes[outside].owners.get(a) {
                Some(Attachment::NatOutside(n)) if *n == id => {}
                Some(other) => {
                    return Err(EngineError::Nat(
                        name,
                        format!(
                            "{a} already belongs to {}",
                            self.topo.attachment_name(*other)
                        ),
                    ));
                }
                None => {}
            }
        }
        self.now = self.now.max(now);
        self.nats[id]
            .renumber(self.now, external.clone())
            .map_err(|e| EngineError::Nat(name, e.to_string()))?;
        self.drain_nat_events(id);
        self.topo.nats[id].config.external = external;
        self.routes = self.topo.routes();
        Ok(())
    }

    /// The link of an attachment in one direction (`up`: away from it), if it has one.
    pub fn link(&self, at: Attachment, up: bool) -> Option<&Link> {
        self.link_index.get(&(at, up)).map(|&i| &self.links[i].2)
    }

    /// Replace the settings of an attachment's link in one direction (scenario `link:`
    /// steps), creating the link if the attachment had none. Each link draws from its own
    /// random stream, labelled by attachment and direction, so adding one link does not
    /// change the fates of packets on the others.
    pub fn set_link(&mut self, at: Attachment, up: bool, config: LinkConfig) {
        match self.link_index.get(&(at, up)) {
            Some(&i) => self.links[i].2.set_config(self.now, config),
            None => {
                let (kind, idx) = match at {
                    Attachment::Host(i) => (1u64, i),
                    Attachment::NatInside(i) => (2, i),
                    Attachment::NatOutside(i) => (3, i),
                    Attachment::FirewallInside(i) => (4, i),
                    Attachment::FirewallOutside(i) => (5, i),
                };
                let label = 0x3000_0000 + (kind << 20) + ((idx as u64) << 1) + up as u64;
                let rng = self.rng.fork(label);
                self.link_index.insert((at, up), self.links.len());
                self.links.push((at, up, Link::new(config, rng)));
            }
        }
    }

    /// Whether the engine gives no packet per-packet semantics beyond routing, TTL and NAT
    /// rewriting: no link with any impairment (delay, jitter, loss, duplication,
    /// reordering, rate, MTU), no firewall, no capture. Only then may a fabric pass TCP or
    /// UDP super-segments (GSO) through whole: a NAT translates one as it would each of its
    /// segments, whereas a link must lose, delay, queue or refuse each segment on its own,
    /// a firewall sees each segment's flags, and a capture shows the packets on the wire.
    /// A NAT with the SIP ALG (`sip_alg: rewrite`) also needs packets: it rewrites whole
    /// SIP messages per segment and adjusts TCP sequence numbers per segment.
    pub fn passes_aggregates(&self) -> bool {
        let plain = LinkConfig::default();
        !self.capture
            && self.firewalls.is_empty()
            && self.nats.iter().all(|n| n.sip_alg().is_none())
            && self.links.iter().all(|(_, _, l)| *l.config() == plain)
    }

    /// The earliest time a link delivery or a NAT or firewall timer is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let links = self.links.iter().filter_map(|(_, _, l)| l.poll_timeout());
        let nats = self.nats.iter().filter_map(Nat::poll_timeout);
        let fws = self.firewalls.iter().filter_map(Firewall::poll_timeout);
        links.chain(nats).chain(fws).min()
    }

    /// Run the timers and link deliveries due at `now`, moving the packets on.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        let now = self.now;
        for n in 0..self.nats.len() {
            self.nats[n].handle_timeout(now);
            self.drain_nat_events(n);
        }
        for f in 0..self.firewalls.len() {
            self.firewalls[f].handle_timeout(now);
            self.drain_firewall_events(f);
        }
        self.run(now);
    }

    /// A packet host `host` sent, at `now`. What reaches hosts at once comes out of
    /// [`Engine::poll_to_host`]; delayed packets after [`Engine::handle_timeout`].
    pub fn handle_from_host(&mut self, now: Instant, host: usize, packet: PacketBuf) {
        self.now = self.now.max(now);
        self.stats.sent += 1;
        self.work
            .push_back((packet, Hop::Up(Attachment::Host(host))));
        self.run(self.now);
    }

    /// Deliver a packet into the node behind `at`, as if it had come through `at`'s down
    /// link (tests of one device's behaviour in the topology).
    pub fn inject_into(&mut self, now: Instant, at: Attachment, packet: PacketBuf) {
        self.now = self.now.max(now);
        self.work.push_back((packet, Hop::Node(at, None)));
        self.run(self.now);
    }

    /// Start (or stop) recording every packet on every attachment for
    /// [`Engine::poll_capture`] (pcap files).
    pub fn set_capture(&mut self, on: bool) {
        self.capture = on;
    }

    /// The next captured packet, oldest first.
    pub fn poll_capture(&mut self) -> Option<Captured> {
        self.captured.pop_front()
    }

    /// Captures discarded because nobody drained [`Engine::poll_capture`].
    pub fn captures_discarded(&self) -> u64 {
        self.captures_discarded
    }

    fn record(&mut self, at: Attachment, outgoing: bool, p: &PacketBuf) {
        if self.captured.len() >= MAX_CAPTURES {
            self.captures_discarded += 1;
            return;
        }
        self.captured.push_back(Captured {
            at,
            time: self.now,
            outgoing,
            packet: p.as_slice().to_vec(),
        });
    }

    /// The next packet for a host: `(host index, packet)`.
    pub fn poll_to_host(&mut self) -> Option<(usize, PacketBuf)> {
        self.to_hosts.pop_front()
    }

    /// The next event, oldest first, with the time it happened.
    pub fn poll_event(&mut self) -> Option<(Instant, EngineEvent)> {
        self.events.pop_front()
    }

    fn run(&mut self, now: Instant) {
        loop {
            let mut progress = false;
            for i in 0..self.links.len() {
                while let Some(p) = self.links[i].2.poll_transmit(now) {
                    let (at, up, _) = self.links[i];
                    let hop = if up {
                        Hop::Route(at)
                    } else {
                        Hop::Node(at, None)
                    };
                    self.work.push_back((p, hop));
                    progress = true;
                }
            }
            while let Some((p, hop)) = self.work.pop_front() {
                self.step(p, hop);
                progress = true;
            }
            if !progress {
                break;
            }
        }
    }

    fn drop_at(&mut self, at: Place, reason: DropReason) {
        *self.stats.drops.entry((at, reason)).or_insert(0) += 1;
        self.push_event(EngineEvent::Dropped { at, reason });
    }

    fn push_event(&mut self, e: EngineEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
            self.events_discarded += 1;
        }
        self.events.push_back((self.now, e));
    }

    fn drain_nat_events(&mut self, n: usize) {
        while let Some(event) = self.nats[n].poll_event() {
            self.push_event(EngineEvent::Nat { nat: n, event });
        }
    }

    fn drain_firewall_events(&mut self, f: usize) {
        while let Some(event) = self.firewalls[f].poll_event() {
            self.push_event(EngineEvent::Firewall { firewall: f, event });
        }
    }

    fn through_link(&mut self, at: Attachment, up: bool, p: PacketBuf, then: Hop) {
        let Some(&i) = self.link_index.get(&(at, up)) else {
            self.work.push_front((p, then));
            return;
        };
        // A delay without a rate holds (arrival rate × delay) packets, with no queue limit
        // of its own: bound it, so an overloaded delayed link drops rather than grows.
        if self.links[i].2.in_flight() >= MAX_LINK_IN_FLIGHT {
            return self.drop_at(Place::Link(at, up), DropReason::QueueFull);
        }
        match self.links[i].2.handle_packet(self.now, p) {
            Admit::Queued => {}
            Admit::Dropped(reason) => self.drop_at(Place::Link(at, up), reason),
            Admit::TooBig { mtu, packet } => {
                self.drop_at(Place::Link(at, up), DropReason::Mtu);
                if let Some(from) = self.router_address(at)
                    && let Some(err) = wire::reply::icmp_error(
                        packet.as_slice(),
                        from,
                        wire::reply::IcmpError::TooBig { mtu },
                    )
                {
                    // Back towards the sender, on the network of this attachment.
                    self.work.push_back((err, Hop::Route(at)));
                }
            }
        }
    }

    /// The address an ICMP error about a packet refused at `at`'s link comes from: the
    /// attachment's own router address where it is a device, else the network's gateway,
    /// else the host itself.
    fn router_address(&self, at: Attachment) -> Option<IpAddr> {
        match at {
            Attachment::NatInside(n) => Some(self.topo.nats[n].inside_address),
            Attachment::NatOutside(n) => self.topo.nats[n].config.external.first().copied(),
            Attachment::FirewallInside(f) | Attachment::FirewallOutside(f) => {
                Some(self.topo.firewalls[f].inside_address)
            }
            Attachment::Host(h) => {
                let net = self.topo.hosts[h].network;
                match self.routes[net].gateway {
                    Some(Attachment::NatInside(n)) => Some(self.topo.nats[n].inside_address),
                    Some(Attachment::FirewallInside(f)) => {
                        Some(self.topo.firewalls[f].inside_address)
                    }
                    _ => self.topo.hosts[h].addresses.first().copied(),
                }
            }
        }
    }

    fn step(&mut self, mut p: PacketBuf, hop: Hop) {
        if self.capture {
            match hop {
                Hop::Up(at) => self.record(at, true, &p),
                Hop::Node(at, _) => self.record(at, false, &p),
                Hop::Route(_) => {}
            }
        }
        match hop {
            Hop::Up(at) => self.through_link(at, true, p, Hop::Route(at)),
            Hop::Route(from) => {
                let net = self.topo.network_of(from);
                let Ok(info) = wire::parse(p.as_slice()) else {
                    return self.drop_at(Place::Network(net), DropReason::Malformed);
                };
                if is_link_scope(info.src, info.dst) {
                    return self.drop_at(Place::Network(net), DropReason::LinkScope);
                }
                match self.routes[net].route(info.dst, from) {
                    Some(next) => self.through_link(next, false, p, Hop::Node(next, Some(info))),
                    None => self.drop_at(Place::Network(net), DropReason::NoRoute),
                }
            }
            Hop::Node(Attachment::Host(h), _) => {
                if self.to_hosts.len() >= MAX_TO_HOSTS {
                    return self.drop_at(Place::Host(h), DropReason::QueueFull);
                }
                self.stats.delivered += 1;
                self.to_hosts.push_back((h, p));
            }
            Hop::Node(at @ (Attachment::NatInside(n) | Attachment::NatOutside(n)), info) => {
                let dir = if matches!(at, Attachment::NatInside(_)) {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                let Some(info) = self.router_hop(&mut p, info, Place::Nat(n)) else {
                    return;
                };
                let verdict = self.nats[n].handle_parsed(self.now, dir, &mut p, info);
                self.drain_nat_events(n);
                self.apply_verdict(
                    verdict,
                    p,
                    Place::Nat(n),
                    Attachment::NatInside(n),
                    Attachment::NatOutside(n),
                    dir,
                );
            }
            Hop::Node(
                at @ (Attachment::FirewallInside(f) | Attachment::FirewallOutside(f)),
                info,
            ) => {
                let dir = if matches!(at, Attachment::FirewallInside(_)) {
                    Direction::Outbound
                } else {
                    Direction::Inbound
                };
                let Some(info) = self.router_hop(&mut p, info, Place::Firewall(f)) else {
                    return;
                };
                let verdict = self.firewalls[f].handle_parsed(self.now, dir, &p, &info);
                self.drain_firewall_events(f);
                self.apply_verdict(
                    verdict,
                    p,
                    Place::Firewall(f),
                    Attachment::FirewallInside(f),
                    Attachment::FirewallOutside(f),
                    dir,
                );
            }
        }
    }

    /// TTL handling at a router, on the view routing parsed (parsing here only when a
    /// link held the packet in between, or it was injected). Returns the view after the
    /// decrement, or `None` if the packet was dropped.
    fn router_hop(
        &mut self,
        p: &mut PacketBuf,
        info: Option<PacketInfo>,
        at: Place,
    ) -> Option<PacketInfo> {
        let Some(mut info) = info.or_else(|| wire::parse(p.as_slice()).ok()) else {
            self.drop_at(at, DropReason::Malformed);
            return None;
        };
        if info.ttl <= 1 {
            self.drop_at(at, DropReason::TtlExpired);
            return None;
        }
        wire::decrement_ttl(p.as_mut_slice(), &mut info);
        Some(info)
    }

    fn apply_verdict(
        &mut self,
        verdict: Verdict,
        p: PacketBuf,
        at: Place,
        inside: Attachment,
        outside: Attachment,
        dir: Direction,
    ) {
        let (onward, back) = match dir {
            Direction::Outbound => (outside, inside),
            Direction::Inbound => (inside, outside),
        };
        match verdict {
            Verdict::Forward => self.work.push_back((p, Hop::Up(onward))),
            Verdict::Hairpin => self.work.push_back((p, Hop::Up(back))),
            Verdict::Drop(reason) => self.drop_at(at, reason),
            Verdict::Reply(reason, reply) => {
                self.drop_at(at, reason);
                self.work.push_back((reply, Hop::Up(back)));
            }
        }
    }
}

/// Whether a packet must stay on its link: a multicast or broadcast destination, or a
/// link-local source or destination.
fn is_link_scope(src: IpAddr, dst: IpAddr) -> bool {
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            d.is_multicast() || d.is_broadcast() || d.is_link_local() || s.is_link_local()
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let ll = |a: std::net::Ipv6Addr| a.segments()[0] & 0xffc0 == 0xfe80;
            d.is_multicast() || ll(d) || ll(s)
        }
        _ => false,
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::link::LinkConfig;
    use crate::nat::{NatConfig, Preset};
    use std::time::Duration;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn udp(src: [u8; 4], sp: u16, dst: [u8; 4], dp: u16) -> PacketBuf {
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4(src, dst, 64)
            .udp(sp, dp)
            .write(&mut v, b"payload")
            .unwrap();
        PacketBuf::from_slice(&v)
    }

    /// alice (10.0.1.2) at home behind `nat` (10.0.1.1), server (203.0.113.5) on the
    /// internet.
    fn home_and_internet(nat: NatConfig) -> crate::topology::Builder {
        Topology::builder()
            .network("internet", "203.0.113.0/24")
            .network("home", "10.0.1.0/24")
            .nat("nat", "home", "internet", nat)
            .host("alice", "home", "10.0.1.2")
            .host("server", "internet", "203.0.113.5")
    }

    /// Drops counted at the place named `name` for `reason`.
    fn drops_at<'a>(e: &'a Engine, name: &str, reason: DropReason) -> Option<&'a u64> {
        e.stats()
            .drops
            .iter()
            .find(|((p, r), _)| e.topology().place_name(*p) == name && *r == reason)
            .map(|(_, n)| n)
    }

    /// The SIP ALG runs inside the engine's NAT, so both fabrics (which share this
    /// engine) apply it.
    #[test]
    fn the_engine_runs_the_sip_alg() {
        use crate::nat::SipAlgMode;
        let topo = home_and_internet(
            NatConfig::preset(Preset::PortRestricted, vec![ip("203.0.113.11")])
                .sip_alg(SipAlgMode::Rewrite),
        )
        .build()
        .unwrap();
        #[allow(clippy::disallowed_methods)] // the origin of test time
        let t0 = Instant::now();
        let mut e = Engine::new(topo, SimRng::new(1), t0).unwrap();
        assert!(
            !e.passes_aggregates(),
            "the ALG rewrites per segment: no super-segments through it"
        );
        let msg = "OPTIONS sip:203.0.113.5 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.1.2:5060;branch=z9\r\nContact: <sip:a@10.0.1.2:5060>\r\nContent-Length: 0\r\n\r\n";
        let mut v = Vec::new();
        etherparse::PacketBuilder::ipv4([10, 0, 1, 2], [203, 0, 113, 5], 64)
            .udp(5060, 5060)
            .write(&mut v, msg.as_bytes())
            .unwrap();
        e.handle_from_host(t0, 0, PacketBuf::from_slice(&v));
        let (h, p) = e.poll_to_host().unwrap();
        assert_eq!(h, 1);
        assert!(wire::checksums_valid(p.as_slice()));
        let text = String::from_utf8_lossy(&p.as_slice()[28..]).into_owned();
        assert!(
            text.contains("Via: SIP/2.0/UDP 203.0.113.11:5060;branch=z9"),
            "{text}"
        );
        assert!(text.contains("Contact: <sip:a@203.0.113.11:5060>"));
        let alg_events = std::iter::from_fn(|| e.poll_event())
            .filter(|(_, ev)| {
                matches!(
                    ev,
                    EngineEvent::Nat {
                        event: crate::nat::NatEvent::SipAlg(_),
                        ..
                    }
                )
            })
            .count();
        assert_eq!(alg_events, 1);
        assert_eq!(e.nat(0).stats().alg.packets_rewritten, 1);
    }

    #[test]
    fn a_delayed_link_holds_a_bounded_number_of_packets() {
        let delayed = LinkConfig {
            delay: Duration::from_secs(1),
            ..LinkConfig::default()
        };
        let topo = Topology::builder()
            .network("lan", "10.0.0.0/24")
            .host("a", "lan", "10.0.0.2")
            .host("b", "lan", "10.0.0.3")
            .link("a", delayed, LinkConfig::default())
            .build()
            .unwrap();
        #[allow(clippy::disallowed_methods)] // the origin of test time
        let t0 = Instant::now();
        let mut e = Engine::new(topo, SimRng::new(1), t0).unwrap();
        assert!(
            !e.passes_aggregates(),
            "an impaired link needs per-packet semantics"
        );
        let extra = 10;
        for _ in 0..MAX_LINK_IN_FLIGHT + extra {
            e.handle_from_host(t0, 0, udp([10, 0, 0, 2], 1, [10, 0, 0, 3], 2));
        }
        assert_eq!(
            e.link(Attachment::Host(0), true).unwrap().in_flight(),
            MAX_LINK_IN_FLIGHT
        );
        assert_eq!(
            drops_at(&e, "a.up", DropReason::QueueFull),
            Some(&(extra as u64))
        );
        e.handle_timeout(t0 + Duration::from_secs(1));
        let mut n = 0;
        while e.poll_to_host().is_some() {
            n += 1;
        }
        assert_eq!(n, MAX_LINK_IN_FLIGHT);
    }

    #[test]
    fn raw_packets_cross_a_nat_with_link_delay() {
        let delayed = LinkConfig {
            delay: Duration::from_millis(30),
            ..LinkConfig::default()
        };
        let topo = home_and_internet(NatConfig::preset(
            Preset::PortRestricted,
            vec![ip("203.0.113.11")],
        ))
        .link("server", LinkConfig::default(), delayed)
        .build()
        .unwrap();
        #[allow(clippy::disallowed_methods)] // the origin of test time
        let t0 = Instant::now();
        let mut e = Engine::new(topo, SimRng::new(1), t0).unwrap();
        e.handle_from_host(t0, 0, udp([10, 0, 1, 2], 5000, [203, 0, 113, 5], 3478));
        assert!(e.poll_to_host().is_none(), "held by the 30 ms link");
        assert_eq!(e.poll_timeout(), Some(t0 + Duration::from_millis(30)));
        e.handle_timeout(t0 + Duration::from_millis(30));
        let (h, p) = e.poll_to_host().unwrap();
        assert_eq!(h, 1);
        let info = wire::parse(p.as_slice()).unwrap();
        assert_eq!(
            info.src_endpoint().unwrap().to_string(),
            "203.0.113.11:5000"
        );
        assert_eq!(info.ttl, 63, "the NAT is a router hop");
        assert!(wire::checksums_valid(p.as_slice()));
        // Unsolicited from another server port: filtered, counted, nothing delivered.
        e.handle_from_host(t0, 1, udp([203, 0, 113, 5], 9999, [203, 0, 113, 11], 5000));
        assert!(e.poll_to_host().is_none());
        assert_eq!(drops_at(&e, "nat", DropReason::Filtered), Some(&1));
        // Link-scope chatter (an IPv6 router solicitation) is not forwarded, and says so.
        let mut rs = Vec::new();
        etherparse::PacketBuilder::ipv6(
            [0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            255,
        )
        .icmpv6_echo_request(1, 1)
        .write(&mut rs, b"")
        .unwrap();
        e.handle_from_host(t0, 0, PacketBuf::from_slice(&rs));
        assert_eq!(drops_at(&e, "home", DropReason::LinkScope), Some(&1));
        // Private addresses are not routed on the internet.
        e.handle_from_host(t0, 1, udp([203, 0, 113, 5], 3478, [10, 0, 1, 2], 5000));
        assert_eq!(drops_at(&e, "internet", DropReason::NoRoute), Some(&1));
        assert!(e.poll_event().is_some());
    }
}
