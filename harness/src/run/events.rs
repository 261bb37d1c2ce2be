//! The per-cell event log while a cell runs: [`Recorder`] takes the typed events of the
//! engine (NATs, firewalls, links, routing) and of the services, coalesces what would be
//! one record per packet, bounds the rest, and at the end of the cell resolves places to
//! names and writes [`reports::events::Event`]s.
//!
//! Places stay ids ([`RecPlace`]) until [`Recorder::finish`]; nothing is allocated for a
//! packet whose record is coalesced (a repeated drop, refusal or denial only bumps a
//! counter).
//!
//! Services gather their core's events in a [`ServiceLog`] as they poll (with the time of
//! that poll) and hand them over through [`crate::agents::net::Agent::drain_events`].

use emulator::fabric::engine::EngineEvent;
use emulator::firewall::{Cause, FirewallEvent};
use emulator::nat::{ExpiryCause, NatEvent};
use emulator::topology::{Place, Topology};
use emulator::wire::{Endpoint, Proto};
use emulator::{Direction, DropReason};
use reports::events::{DEFAULT_LIMIT, Event, EventKind};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::time::Instant;

/// Where a record happened, by id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum RecPlace {
    /// A place of the topology.
    Topo(Place),
    /// A service on a host (`server/sip-proxy`).
    Service(usize, &'static str),
    /// The cell as a whole (bookkeeping records: `cell`).
    Cell,
}

/// What a repeated occurrence is coalesced by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// A drop at a place for a reason.
    Drop(Place, DropReason),
    /// An inbound packet a NAT refused: per NAT, reason, protocol, peer and external
    /// endpoint.
    Refused(usize, DropReason, Proto, Option<Endpoint>, Option<Endpoint>),
    /// A packet a firewall denied, per direction and 5-tuple.
    Denied(usize, Direction, Proto, Endpoint, Endpoint),
}

struct Coalesced {
    first_seq: u64,
    place: RecPlace,
    count: u64,
    last: Instant,
}

struct Record {
    t: Instant,
    seq: u64,
    place: RecPlace,
    kind: EventKind,
}

/// A service's events gathered between two drains, bounded: past [`DEFAULT_LIMIT`] entries
/// the newest are counted and not kept (a driver that never drains, such as `pinhole
/// serve`, holds at most that many).
#[derive(Default)]
pub struct ServiceLog {
    entries: Vec<(Instant, EventKind)>,
    lost: u64,
}

impl ServiceLog {
    /// Record `kind` at `t`.
    pub fn push(&mut self, t: Instant, kind: EventKind) {
        if self.entries.len() >= DEFAULT_LIMIT {
            self.lost += 1;
        } else {
            self.entries.push((t, kind));
        }
    }

    /// Hand every entry to `sink` (oldest first) and forget them; returns how many were
    /// lost to the bound since the last drain.
    pub fn drain(&mut self, sink: &mut dyn FnMut(Instant, EventKind)) -> u64 {
        for (t, k) in self.entries.drain(..) {
            sink(t, k);
        }
        std::mem::take(&mut self.lost)
    }
}

/// A cell's event log being recorded. See the module docs.
pub struct Recorder {
    epoch: Instant,
    limit: usize,
    seq: u64,
    records: Vec<Record>,
    cut: u64,
    coalesced: HashMap<Key, Coalesced>,
}

impl Recorder {
    /// A log whose t = 0 is `epoch`, keeping at most `limit` records.
    pub fn new(epoch: Instant, limit: usize) -> Recorder {
        Recorder {
            epoch,
            limit,
            seq: 0,
            records: Vec::new(),
            cut: 0,
            coalesced: HashMap::new(),
        }
    }

    /// Records kept so far.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Keep one record, or count it as cut past the limit.
    pub fn record(&mut self, t: Instant, place: RecPlace, kind: EventKind) -> Option<u64> {
        if self.records.len() >= self.limit {
            self.cut += 1;
            return None;
        }
        let seq = self.seq;
        self.seq += 1;
        self.records.push(Record {
            t,
            seq,
            place,
            kind,
        });
        Some(seq)
    }

    /// Count `key` if seen before; otherwise record `make()` as its first occurrence.
    fn coalesce(
        &mut self,
        t: Instant,
        key: Key,
        place: RecPlace,
        make: impl FnOnce() -> EventKind,
    ) {
        if let Some(c) = self.coalesced.get_mut(&key) {
            c.count += 1;
            c.last = t;
            return;
        }
        if let Some(first_seq) = self.record(t, place, make()) {
            self.coalesced.insert(
                key,
                Coalesced {
                    first_seq,
                    place,
                    count: 1,
                    last: t,
                },
            );
        }
    }

    /// Record an event of the engine (NAT, firewall, drop).
    pub fn engine(&mut self, t: Instant, e: EngineEvent) {
        match e {
            EngineEvent::Dropped { at, reason } => {
                self.coalesce(t, Key::Drop(at, reason), RecPlace::Topo(at), || {
                    EventKind::Dropped {
                        reason: reason.as_str().to_string(),
                    }
                });
            }
            EngineEvent::Nat { nat, event } => self.nat(t, nat, event),
            EngineEvent::Firewall { firewall, event } => self.firewall(t, firewall, event),
            _ => {}
        }
    }

    fn nat(&mut self, t: Instant, nat: usize, e: NatEvent) {
        let place = RecPlace::Topo(Place::Nat(nat));
        let kind = match e {
            NatEvent::MappingCreated {
                proto,
                internal,
                external,
                remote,
            } => EventKind::MappingCreated {
                proto: proto_name(proto),
                internal: internal.to_string(),
                external: external.to_string(),
                remote: remote.to_string(),
            },
            NatEvent::MappingExpired {
                proto,
                internal,
                external,
                cause,
                refreshes,
                last_refresh,
            } => EventKind::MappingExpired {
                proto: proto_name(proto),
                internal: internal.to_string(),
                external: external.to_string(),
                cause: match cause {
                    ExpiryCause::Timeout => "timeout",
                    ExpiryCause::Reboot => "reboot",
                    ExpiryCause::Rebind => "rebind",
                    ExpiryCause::Renumber => "renumber",
                    _ => "other",
                }
                .to_string(),
                refreshes,
                last_refresh_us: last_refresh.map(|r| self.us(r)),
            },
            NatEvent::MappingRebound {
                proto,
                internal,
                old_external,
                new_external,
            } => EventKind::MappingRebound {
                proto: proto_name(proto),
                internal: internal.to_string(),
                old_external: old_external.to_string(),
                new_external: new_external.to_string(),
            },
            NatEvent::SipAlg(a) => EventKind::SipAlg {
                action: format!(
                    "{} packet: {} field(s) rewritten, length {:+}, {} media mapping(s) opened",
                    dir_name(a.dir),
                    a.fields.count_ones(),
                    a.length_delta,
                    a.media.len()
                ),
            },
            NatEvent::PacketDropped {
                dir: Direction::Inbound,
                reason,
                proto: Some(proto),
                src,
                dst,
            } => {
                let key = Key::Refused(nat, reason, proto, src, dst);
                let text = |e: Option<Endpoint>| e.map(|e| e.to_string()).unwrap_or_default();
                return self.coalesce(t, key, place, || EventKind::InboundRefused {
                    reason: reason.as_str().to_string(),
                    proto: proto_name(proto),
                    peer: text(src),
                    external: text(dst),
                });
            }
            // Outbound drops and unparseable packets: the engine's drop record covers them.
            _ => return,
        };
        self.record(t, place, kind);
    }

    fn firewall(&mut self, t: Instant, fw: usize, e: FirewallEvent) {
        let place = RecPlace::Topo(Place::Firewall(fw));
        let kind = match e {
            FirewallEvent::FlowCreated { key, initiator, by } => {
                let (src, dst) = match initiator {
                    Direction::Outbound => (key.inside, key.outside),
                    Direction::Inbound => (key.outside, key.inside),
                };
                EventKind::FlowCreated {
                    proto: proto_name(key.proto),
                    initiator: dir_name(initiator).to_string(),
                    src: src.to_string(),
                    dst: dst.to_string(),
                    by: cause_name(by),
                }
            }
            FirewallEvent::FlowExpired { key } => EventKind::FlowExpired {
                proto: proto_name(key.proto),
                src: key.inside.to_string(),
                dst: key.outside.to_string(),
            },
            FirewallEvent::Denied {
                direction,
                proto,
                src,
                dst,
                by,
            } => {
                let key = Key::Denied(fw, direction, proto, src, dst);
                return self.coalesce(t, key, place, || EventKind::Denied {
                    direction: dir_name(direction).to_string(),
                    proto: proto_name(proto),
                    src: src.to_string(),
                    dst: dst.to_string(),
                    by: cause_name(by),
                });
            }
            _ => return,
        };
        self.record(t, place, kind);
    }

    /// Record what a service on `host` gathered (`service` is its scenario name).
    pub fn service(&mut self, host: usize, service: &'static str, log: &mut ServiceLog) {
        let place = RecPlace::Service(host, service);
        let lost = log.drain(&mut |t, k| {
            self.record(t, place, k);
        });
        self.cut += lost;
    }

    fn us(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_micros()).unwrap_or(u64::MAX)
    }

    /// End the log at `end`: the mappings still live (`live`: per NAT, its
    /// [`emulator::nat::Nat::mappings`]), the counts of coalesced records, the count of what
    /// was cut; then names for places, SIP peers resolved through the NAT mappings of the
    /// log, and everything in `(t_us, seq)` order with `seq` renumbered from 0.
    pub fn finish(
        mut self,
        topo: &Topology,
        end: Instant,
        live: &[Vec<emulator::nat::MappingInfo>],
    ) -> Vec<Event> {
        // The summaries are written even past the limit: they bound themselves (one per
        // coalesced key or live mapping) and say what the cut part would have.
        self.limit = usize::MAX;
        for (nat, maps) in live.iter().enumerate() {
            for m in maps {
                let kind = EventKind::MappingLive {
                    proto: proto_name(m.proto),
                    internal: m.internal.to_string(),
                    external: m.external.to_string(),
                    refreshes: m.refreshes,
                    last_refresh_us: self.us(m.last_refresh),
                };
                self.record(end, RecPlace::Topo(Place::Nat(nat)), kind);
            }
        }
        let mut repeats: Vec<Coalesced> = std::mem::take(&mut self.coalesced)
            .into_values()
            .filter(|c| c.count > 1)
            .collect();
        repeats.sort_by_key(|c| c.first_seq);
        for c in repeats {
            let kind = EventKind::Repeated {
                first_seq: c.first_seq,
                count: c.count,
                last_us: self.us(c.last),
            };
            self.record(end, c.place, kind);
        }
        if self.cut > 0 {
            let kind = EventKind::EventsCut { count: self.cut };
            self.record(end, RecPlace::Cell, kind);
        }
        let epoch = self.epoch;
        let mut records = self.records;
        records.sort_by_key(|r| (r.t.saturating_duration_since(epoch), r.seq));
        let renumber: HashMap<u64, u64> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.seq, i as u64))
            .collect();
        let mut paths = PeerPaths::new(topo);
        let us = |t: Instant| {
            u64::try_from(t.saturating_duration_since(epoch).as_micros()).unwrap_or(u64::MAX)
        };
        records
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                let mut kind = r.kind;
                paths.follow(&r.place, &kind);
                match &mut kind {
                    EventKind::Repeated { first_seq, .. } => {
                        *first_seq = renumber.get(first_seq).copied().unwrap_or(*first_seq);
                    }
                    EventKind::Sip {
                        remote,
                        peer_host,
                        via_nats,
                        ..
                    } => {
                        if let Ok(addr) = remote.parse::<SocketAddr>() {
                            (*peer_host, *via_nats) = paths.resolve(addr);
                        }
                    }
                    _ => {}
                }
                Event {
                    t_us: us(r.t),
                    seq: i as u64,
                    place: place_name(topo, r.place),
                    kind,
                }
            })
            .collect()
    }
}

/// The name a report shows for a place.
pub fn place_name(topo: &Topology, p: RecPlace) -> String {
    match p {
        RecPlace::Topo(p) => topo.place_name(p),
        RecPlace::Service(h, s) => format!("{}/{s}", topo.hosts[h].name),
        RecPlace::Cell => "cell".to_string(),
    }
}

/// Follows the NAT mappings of a log in order, to tell which host stands behind an
/// address a service saw and which NATs lie in between (nested NATs too).
struct PeerPaths<'a> {
    topo: &'a Topology,
    /// Per NAT: external endpoint → internal endpoint of its live mappings.
    maps: Vec<BTreeMap<String, String>>,
}

impl<'a> PeerPaths<'a> {
    fn new(topo: &'a Topology) -> PeerPaths<'a> {
        PeerPaths {
            topo,
            maps: vec![BTreeMap::new(); topo.nats.len()],
        }
    }

    /// Take in a record (mapping created, rebound, expired).
    fn follow(&mut self, place: &RecPlace, kind: &EventKind) {
        let RecPlace::Topo(Place::Nat(n)) = *place else {
            return;
        };
        let Some(m) = self.maps.get_mut(n) else {
            return;
        };
        match kind {
            EventKind::MappingCreated {
                internal, external, ..
            } => {
                m.insert(external.clone(), internal.clone());
            }
            EventKind::MappingRebound {
                internal,
                old_external,
                new_external,
                ..
            } => {
                m.remove(old_external);
                m.insert(new_external.clone(), internal.clone());
            }
            EventKind::MappingExpired { external, .. } => {
                m.remove(external);
            }
            _ => {}
        }
    }

    /// The host behind `addr` and the NATs on the way to it, nearest first.
    fn resolve(&self, mut addr: SocketAddr) -> (Option<String>, Vec<String>) {
        let mut nats = Vec::new();
        // Each step goes one NAT deeper; a topology has no NAT loops, the bound is a guard.
        for _ in 0..=self.topo.nats.len() {
            let ip = addr.ip();
            if let Some(h) = self.topo.hosts.iter().find(|h| h.addresses.contains(&ip)) {
                return (Some(h.name.clone()), nats);
            }
            let Some(n) = self
                .topo
                .nats
                .iter()
                .position(|n| n.config.external.contains(&ip))
            else {
                break;
            };
            nats.push(self.topo.nats[n].name.clone());
            let key = Endpoint::new(ip, addr.port()).to_string();
            match self.maps[n]
                .get(&key)
                .and_then(|i| i.parse::<SocketAddr>().ok())
            {
                Some(inner) => addr = inner,
                None => break,
            }
        }
        (None, nats)
    }
}

fn proto_name(p: Proto) -> String {
    match p {
        Proto::Udp => "udp".to_string(),
        Proto::Tcp => "tcp".to_string(),
        Proto::Icmp => "icmp".to_string(),
        Proto::Other(n) => format!("ip-proto-{n}"),
    }
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::Outbound => "outbound",
        Direction::Inbound => "inbound",
    }
}

fn cause_name(c: Cause) -> String {
    match c {
        Cause::Rule(i) => format!("rule {i}"),
        Cause::Class => "class".to_string(),
        Cause::Fragment => "fragment".to_string(),
    }
}

/// A `Service` record: `event` with `detail` as text pairs.
pub fn service_event(service: &str, event: &str, detail: &[(&str, String)]) -> EventKind {
    EventKind::Service {
        service: service.to_string(),
        event: event.to_string(),
        detail: detail
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
    }
}

/// A `Service` record from a core event's `Debug` form `Variant { field: value, … }` (or
/// `Variant(value)`, `Variant`): the variant name in snake_case and each field as text.
/// The services' event enums (STUN, TURN, HTTP proxy) hold addresses, numbers, strings and
/// durations, which print without ambiguity; values are split at top-level commas only.
pub fn debug_record(service: &str, event: &impl std::fmt::Debug) -> EventKind {
    let text = format!("{event:?}");
    let (name, rest) = match text.find([' ', '(']) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text.as_str(), ""),
    };
    let mut detail = BTreeMap::new();
    let inner = rest
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .map(|r| (r.trim(), true))
        .or_else(|| {
            rest.strip_prefix('(')
                .and_then(|r| r.strip_suffix(')'))
                .map(|r| (r.trim(), false))
        });
    if let Some((inner, named)) = inner {
        for (i, part) in split_top_level(inner).into_iter().enumerate() {
            match part.split_once(": ").filter(|_| named) {
                Some((k, v)) => detail.insert(k.trim().to_string(), unquote(v.trim())),
                None => detail.insert(i.to_string(), unquote(part.trim())),
            };
        }
    }
    EventKind::Service {
        service: service.to_string(),
        event: snake_case(name),
        detail,
    }
}

fn unquote(v: &str) -> String {
    v.strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(v)
        .to_string()
}

fn snake_case(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Split at commas outside brackets and quotes.
fn split_top_level(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut escaped, mut start) = (0i32, false, false, 0);
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '(' | '[' | '{' if !quoted => depth += 1,
            ')' | ']' | '}' if !quoted => depth -= 1,
            ',' if !quoted && depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < s.len() && !s[start..].trim().is_empty() {
        parts.push(&s[start..]);
    }
    parts
}

#[cfg(test)]
mod test {
    use super::*;
    use emulator::nat::MappingInfo;
    use std::time::Duration;

    fn topo() -> Topology {
        let s = crate::scenario::load_str(
            r#"
version: 1
name: t
networks: { internet: 203.0.113.0/24, home: 10.0.1.0/24 }
nats:
  nat-a: { inside: home, outside: { network: internet, addresses: [203.0.113.11] } }
hosts:
  alice: { network: home }
  server: { network: internet, address: 203.0.113.5 }
"#,
            "t.yaml",
        )
        .unwrap();
        let cell = s.cells().unwrap().remove(0);
        crate::convert::topology(&cell.spec).unwrap()
    }

    #[allow(clippy::disallowed_methods)] // a test's clock origin
    fn origin() -> Instant {
        Instant::now()
    }

    /// A NAT-a UDP mapping created from `internal` to `external`, towards the server.
    fn created(internal: &str, external: &str) -> EngineEvent {
        EngineEvent::Nat {
            nat: 0,
            event: NatEvent::MappingCreated {
                proto: Proto::Udp,
                internal: ep(internal),
                external: ep(external),
                remote: ep("203.0.113.5:5060"),
            },
        }
    }

    fn ep(s: &str) -> Endpoint {
        let a: SocketAddr = s.parse().unwrap();
        Endpoint::new(a.ip(), a.port())
    }

    #[test]
    fn repeated_drops_and_refusals_are_coalesced_and_bounded() {
        let (topo, t0) = (topo(), origin());
        let mut r = Recorder::new(t0, 50);
        for i in 0..1000u64 {
            let t = t0 + Duration::from_millis(i);
            r.engine(
                t,
                EngineEvent::Dropped {
                    at: Place::Nat(0),
                    reason: DropReason::Filtered,
                },
            );
            r.engine(
                t,
                EngineEvent::Nat {
                    nat: 0,
                    event: NatEvent::PacketDropped {
                        dir: Direction::Inbound,
                        reason: DropReason::Filtered,
                        proto: Some(Proto::Udp),
                        src: Some(ep("203.0.113.5:3478")),
                        dst: Some(ep("203.0.113.11:40000")),
                    },
                },
            );
        }
        assert_eq!(r.len(), 2);
        let events = r.finish(&topo, t0 + Duration::from_secs(2), &[vec![]]);
        assert_eq!(events.len(), 4);
        let repeats: Vec<_> = events
            .iter()
            .filter_map(|e| match e.kind {
                EventKind::Repeated {
                    first_seq,
                    count,
                    last_us,
                } => Some((first_seq, count, last_us)),
                _ => None,
            })
            .collect();
        assert_eq!(repeats, vec![(0, 1000, 999_000), (1, 1000, 999_000)]);
        assert_eq!(events[0].place, "nat-a");
        assert!(matches!(events[1].kind, EventKind::InboundRefused { .. }));
    }

    #[test]
    fn the_limit_cuts_and_counts() {
        let (topo, t0) = (topo(), origin());
        let mut r = Recorder::new(t0, 3);
        for i in 0..10u16 {
            let (int, ext) = (
                format!("10.0.1.2:{}", 5000 + i),
                format!("203.0.113.11:{}", 5000 + i),
            );
            r.engine(t0, created(&int, &ext));
        }
        let live = vec![MappingInfo {
            proto: Proto::Udp,
            internal: ep("10.0.1.2:5000"),
            external: ep("203.0.113.11:5000"),
            remote: ep("203.0.113.5:5060"),
            expires: t0 + Duration::from_secs(120),
            refreshes: 4,
            last_refresh: t0 + Duration::from_secs(1),
            tcp_established: false,
        }];
        let events = r.finish(&topo, t0 + Duration::from_secs(2), &[live]);
        assert_eq!(events.len(), 5);
        assert!(matches!(
            events[3].kind,
            EventKind::MappingLive {
                refreshes: 4,
                last_refresh_us: 1_000_000,
                ..
            }
        ));
        assert_eq!(events[4].kind, EventKind::EventsCut { count: 7 });
        assert!(events.windows(2).all(|w| w[0].seq + 1 == w[1].seq));
    }

    #[test]
    fn debug_records_name_their_fields() {
        #[derive(Debug)]
        #[allow(dead_code)] // read through Debug only
        enum E {
            AllocationCreated {
                client: SocketAddr,
                user: String,
                lifetime: Duration,
            },
            Opened(u16, String),
            Gone,
        }
        let e = E::AllocationCreated {
            client: "203.0.113.11:4000".parse().unwrap(),
            user: "a, \"b\"".into(),
            lifetime: Duration::from_secs(600),
        };
        let EventKind::Service { event, detail, .. } = debug_record("turn", &e) else {
            panic!();
        };
        assert_eq!(event, "allocation_created");
        assert_eq!(detail["client"], "203.0.113.11:4000");
        assert_eq!(detail["user"], "a, \\\"b\\\"");
        assert_eq!(detail["lifetime"], "600s");
        let EventKind::Service { event, detail, .. } =
            debug_record("x", &E::Opened(443, "h".into()))
        else {
            panic!();
        };
        assert_eq!(
            (event.as_str(), detail["0"].as_str(), detail["1"].as_str()),
            ("opened", "443", "h")
        );
        let EventKind::Service { event, detail, .. } = debug_record("x", &E::Gone) else {
            panic!();
        };
        assert_eq!((event.as_str(), detail.len()), ("gone", 0));
    }

    #[test]
    fn sip_peers_resolve_through_the_nat_mappings_of_the_log() {
        let (topo, t0) = (topo(), origin());
        let mut r = Recorder::new(t0, 100);
        r.engine(t0, created("10.0.1.2:5060", "203.0.113.11:1024"));
        let server = topo.host_id("server").unwrap();
        let mut log = ServiceLog::default();
        log.push(
            t0 + Duration::from_micros(10),
            EventKind::Sip {
                dir: "received".into(),
                transport: "udp".into(),
                summary: "REGISTER sip:example.org".into(),
                call_id: "a".into(),
                cseq: "1 REGISTER".into(),
                local: "203.0.113.5:5060".into(),
                remote: "203.0.113.11:1024".into(),
                peer_host: None,
                via_nats: vec![],
            },
        );
        r.service(server, "sip-proxy", &mut log);
        let events = r.finish(&topo, t0 + Duration::from_secs(1), &[vec![]]);
        let EventKind::Sip {
            peer_host,
            via_nats,
            ..
        } = &events[1].kind
        else {
            panic!("{events:?}");
        };
        assert_eq!(peer_host.as_deref(), Some("alice"));
        assert_eq!(via_nats, &["nat-a".to_string()]);
        assert_eq!(events[1].place, "server/sip-proxy");
        assert_eq!(events[1].t_us, 10);
    }
}
