//! The NAT device: a sans-IO state machine that rewrites packets in place.
//!
//! Every behaviour of RFC 4787 (UDP), RFC 5382 (TCP) and RFC 5508 (ICMP) is an independent
//! axis of [`NatConfig`]; the classic types are [`Preset`]s. The fabric calls
//! [`Nat::handle_packet`] with [`Direction::Outbound`] for packets from the inside network
//! and [`Direction::Inbound`] for packets from the outside addressed to an external
//! address, and acts on the [`Verdict`]:
//!
//! - `Forward`: the packet was translated; pass it on in its direction.
//! - `Hairpin`: an outbound packet addressed to one of the NAT's own external endpoints
//!   (RFC 4787 §6, REQ-9): it now carries the sender's *external* endpoint as source and
//!   the target's internal endpoint as destination; deliver it back into the inside.
//! - `Drop(reason)`: dropped (counted in [`NatStats`], reported as [`NatEvent::PacketDropped`]).
//! - `Reply(reason, pkt)`: dropped, and `pkt` (ICMP port unreachable or TCP RST from the
//!   external address that was addressed) goes back towards the sender.
//!
//! # Model
//!
//! - **Mapping** (RFC 4787 §4.1): the key is (protocol, internal address:port) plus nothing
//!   (EIM), the remote address (ADM) or the remote address:port (APDM). ICMP echo
//!   identifiers are translated like ports (RFC 5508 §3.1); their remote "port" is 0.
//! - **Filtering** (RFC 4787 §5): each mapping keeps the set of remotes it has sent to
//!   (addresses for ADF, address:port for APDF) for as long as the mapping lives; an
//!   inbound packet passes iff the set allows its source. Permissions have no timer of
//!   their own.
//! - **No port overloading**: an external (address, port, protocol) belongs to at most one
//!   live mapping, so under ADM/APDM every new mapping takes a fresh port.
//! - **Expiry**: a mapping refreshed at `t` with timeout `T` is alive while `now < t + T`
//!   and gone from `t + T` on — both for lookups (an expired mapping is never used, even if
//!   [`Nat::handle_timeout`] has not run yet) and for [`Nat::handle_timeout`]. Outbound
//!   packets always refresh (RFC 4787 REQ-6); inbound ones only with [`Refresh::Both`].
//! - **TCP** (RFC 5382 §5, REQ-5): a mapping is *established* once a SYN was seen in both
//!   directions and until a FIN or RST is seen; established mappings get
//!   `tcp_established`, all others (SYN only, FIN, RST) `tcp_transitory`. A packet that
//!   moves a mapping to a shorter timeout shortens its expiry even if it does not refresh.
//!   The state is per mapping (under EIM, connections sharing a mapping share it); an
//!   outbound or inbound SYN without ACK after a FIN or RST starts over.
//! - **ICMP errors** (RFC 5508 §4.2): inbound errors are matched by their embedded packet
//!   (the outbound packet as translated); outer destination and embedded source are
//!   rewritten back to the internal endpoint, the embedded IP header checksum and, when
//!   quoted, the embedded transport checksum are updated incrementally, and the outer ICMP
//!   checksum is recomputed (ICMPv6 with its pseudo-header). Outbound errors about an
//!   inbound packet are translated the other way. Errors never refresh a mapping. An
//!   error whose ICMP checksum or embedded IPv4 header checksum fails is dropped as
//!   `Malformed` (RFC 5508 REQ-3); one matching no mapping as `IcmpNoMapping`.
//! - **Hairpinning** (RFC 4787 §6, REQ-9; RFC 5382 REQ-8): the target mapping's filter is
//!   applied with the sender's external endpoint as remote. ICMP echo to an external
//!   address is not hairpinned (dropped as `NoMapping`).
//! - **Fragments** (RFC 4787 §11, REQ-14): see [`Fragments`]; fragments that come before
//!   their first fragment are dropped (`Fragment`), nothing is reassembled.
//! - **Unsolicited** inbound packets (no mapping: `NoMapping`; filtered: `Filtered`) are
//!   dropped or answered per [`Unsolicited`], from the external address they were sent to.
//!
//! # Table layout and cost
//!
//! Bindings live in a slab of 64-byte entries (one cache line: internal and first remote
//! address as 16 bytes each, IPv4 mapped into IPv6 space with the family in a protocol
//! byte; expiry; ports; pool index; TCP state). Two open-addressing indexes of 4-byte
//! buckets (8-bit hash tag + 24-bit slab index, load ≤ 3/4) find a binding by outbound
//! key and by external (protocol, address, port); hashes are seedless (no `RandomState`).
//! Filter permissions beyond the first remote sit in a side map for the few bindings that
//! have them. Expiry uses a binary heap of `(deadline, slot)` with lazy re-arming (a
//! refresh only stores the new deadline), so the per-packet path never touches the heap;
//! ties expire in slot order, which is deterministic. Measured (benches/nat_memory.rs):
//! about 105 bytes per binding at 1M live bindings; at most 2^24 - 1 bindings.
//! [`Nat::handle_batch`] overlaps the table lookups of up to 32 packets.

mod config;
mod hash;
mod table;

pub use config::{
    FilteringBehavior, Fragments, MappingBehavior, NatConfig, NatConfigError, Pooling,
    PortAllocation, Preset, Refresh, SipAlgMode, Timeouts, Unsolicited,
};

use crate::alg::{AlgAction, AlgStats, SipAlg};
use crate::rng::SimRng;
use crate::verdict::{Direction, DropReason, Verdict};
use crate::wire::{
    self, Endpoint, IcmpKind, IpVersion, L4, PacketBuf, PacketInfo, Proto, reply, tcp_flags,
};
use hash::FxHashMap;
use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};
use table::{
    A16, Binding, P_ICMP, P_TCP, P_UDP, TCP_FIN_IN, TCP_FIN_OUT, TCP_RST, TCP_SYN_IN, TCP_SYN_OUT,
    Table, a16, ip_of, pkey, tcp_established,
};

/// How long a first fragment's translation is remembered for its later fragments.
pub const FRAGMENT_TIMEOUT: Duration = Duration::from_secs(15);
/// At most this many fragmented datagrams are remembered at once; beyond it later
/// fragments of new datagrams are dropped.
pub const MAX_FRAGMENT_ENTRIES: usize = 4096;
/// At most this many undrained events are queued; further ones are counted in
/// [`NatStats::events_dropped`] and discarded (bounded memory when nobody drains).
pub const MAX_EVENTS: usize = 65536;

// ===== NAT events =====

/// Why a mapping went away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ExpiryCause {
    /// Its idle timeout passed.
    Timeout,
    /// [`Nat::reboot`].
    Reboot,
    /// [`Nat::rebind`] found no free external port for it.
    Rebind,
    /// [`Nat::renumber`].
    Renumber,
}

/// Something the NAT did, for reports (binding timeline, drop counts).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum NatEvent {
    /// A new mapping (RFC 4787 §4.1).
    MappingCreated {
        /// UDP, TCP or ICMP (echo identifier mapping).
        proto: Proto,
        /// Internal endpoint.
        internal: Endpoint,
        /// External endpoint it was given.
        external: Endpoint,
        /// The remote endpoint the creating packet was sent to (ICMP: port 0).
        remote: Endpoint,
    },
    /// A mapping went away.
    MappingExpired {
        /// Protocol.
        proto: Proto,
        /// Internal endpoint.
        internal: Endpoint,
        /// External endpoint it had.
        external: Endpoint,
        /// Why.
        cause: ExpiryCause,
        /// Packets that refreshed it, the creating one included (RFC 4787 §4.3).
        refreshes: u32,
        /// When it was last refreshed (or created): its expiry minus the timeout of its
        /// state then. Packets are summarised here, never reported one by one.
        last_refresh: Option<Instant>,
    },
    /// [`Nat::rebind`] moved a live mapping to a new external endpoint.
    MappingRebound {
        /// Protocol.
        proto: Proto,
        /// Internal endpoint.
        internal: Endpoint,
        /// The old external endpoint.
        old_external: Endpoint,
        /// The new external endpoint.
        new_external: Endpoint,
    },
    /// The SIP ALG rewrote a packet ([`crate::alg`]).
    SipAlg(AlgAction),
    /// A packet was dropped (possibly with a reply sent).
    PacketDropped {
        /// The direction it travelled.
        dir: Direction,
        /// Why.
        reason: DropReason,
        /// Its protocol, if it parsed.
        proto: Option<Proto>,
        /// Its source (ICMP: identifier as port), if it parsed.
        src: Option<Endpoint>,
        /// Its destination, if it parsed.
        dst: Option<Endpoint>,
    },
}

/// Counters for reports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct NatStats {
    /// Outbound packets translated and forwarded.
    pub translated_out: u64,
    /// Inbound packets translated and forwarded.
    pub translated_in: u64,
    /// Packets hairpinned.
    pub hairpinned: u64,
    /// Mappings created.
    pub created: u64,
    /// Mappings that timed out.
    pub expired: u64,
    /// Mappings removed by reboot, renumber or a failed rebind.
    pub removed: u64,
    /// Mappings moved by rebind.
    pub rebound: u64,
    /// Replies (ICMP errors, RSTs) sent for refused packets.
    pub replies: u64,
    /// Events discarded because the queue held [`MAX_EVENTS`].
    pub events_dropped: u64,
    /// Dropped packets per reason (a `Reply` counts as a drop too).
    pub drops: BTreeMap<DropReason, u64>,
    /// What the SIP ALG did (all zero when it is off).
    pub alg: AlgStats,
}

impl NatStats {
    /// Drops for one reason.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.drops.get(&reason).copied().unwrap_or(0)
    }

    /// All drops.
    pub fn total_dropped(&self) -> u64 {
        self.drops.values().sum()
    }
}

/// One live mapping, for debugging (`netstat`-like snapshot).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MappingInfo {
    /// Protocol.
    pub proto: Proto,
    /// Internal endpoint.
    pub internal: Endpoint,
    /// External endpoint.
    pub external: Endpoint,
    /// The remote the mapping was created towards.
    pub remote: Endpoint,
    /// When it expires unless refreshed.
    pub expires: Instant,
    /// Packets that refreshed it, the creating one included.
    pub refreshes: u32,
    /// When it was last refreshed (or created): its expiry minus its state's timeout.
    pub last_refresh: Instant,
    /// TCP only: whether the connection is established (RFC 5382 §5).
    pub tcp_established: bool,
}

#[derive(Clone, Debug)]
struct Pool {
    addrs: Vec<IpAddr>,
    index: FxHashMap<IpAddr, u16>,
    v4: Vec<u16>,
    v6: Vec<u16>,
}

impl Pool {
    fn new(addrs: &[IpAddr]) -> Self {
        let mut p = Pool {
            addrs: addrs.to_vec(),
            index: FxHashMap::default(),
            v4: Vec::new(),
            v6: Vec::new(),
        };
        for (i, a) in addrs.iter().enumerate() {
            p.index.insert(*a, i as u16);
            if a.is_ipv4() {
                p.v4.push(i as u16);
            } else {
                p.v6.push(i as u16);
            }
        }
        p
    }

    #[inline]
    fn index_of(&self, a: IpAddr) -> Option<u16> {
        if self.addrs.len() <= 4 {
            self.addrs.iter().position(|x| *x == a).map(|i| i as u16)
        } else {
            self.index.get(&a).copied()
        }
    }

    fn family(&self, v6: bool) -> &[u16] {
        if v6 { &self.v6 } else { &self.v4 }
    }
}

#[derive(Clone, Copy, Debug, Default)]
struct PortState {
    /// Ports in use, by parity.
    used: [u32; 2],
    /// Sequential allocation: the next port to try.
    cursor: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct FragKey {
    dir: Direction,
    proto: u8,
    id: u32,
    src: A16,
    dst: A16,
}

#[derive(Clone, Copy, Debug)]
struct FragEntry {
    new_src: Option<IpAddr>,
    new_dst: Option<IpAddr>,
    hairpin: bool,
    expires: u64,
}

fn proto_of_slot(slot: u8) -> Proto {
    match slot {
        P_UDP => Proto::Udp,
        P_TCP => Proto::Tcp,
        _ => Proto::Icmp,
    }
}

fn dur_ns(d: Duration) -> u64 {
    // Clamp to ~146 years so that tick arithmetic never overflows an Instant.
    d.as_nanos().min(1 << 62) as u64
}

/// The NAT. See the [module docs](self).
#[derive(Clone, Debug)]
pub struct Nat {
    config: NatConfig,
    rng: SimRng,
    table: Table,
    pool: Pool,
    ports: Vec<PortState>,
    /// Paired pooling: internal address (and family) -> (pool index, live mappings).
    pairs: FxHashMap<(A16, bool), (u16, u32)>,
    frags: FxHashMap<FragKey, FragEntry>,
    epoch: Option<Instant>,
    /// The last `now` seen and its tick (packets of a burst share `now`).
    last_tick: Option<(Instant, u64)>,
    /// [`Nat::handle_batch`]: the precomputed tag (by external endpoint?, tag) of the
    /// current packet's first lookup.
    hint: Option<(bool, u32)>,
    events: VecDeque<NatEvent>,
    stats: NatStats,
    /// Timeouts in ns: UDP, TCP established, TCP transitory, ICMP.
    t_ns: [u64; 4],
    /// The SIP ALG, when `sip_alg: rewrite`.
    alg: Option<SipAlg>,
}

impl Nat {
    /// A NAT with this configuration; `rng` drives port and address choices.
    pub fn new(config: NatConfig, rng: SimRng) -> Result<Nat, NatConfigError> {
        config.validate()?;
        let pool = Pool::new(&config.external);
        let t = &config.timeouts;
        let t_ns = [
            dur_ns(t.udp),
            dur_ns(t.tcp_established),
            dur_ns(t.tcp_transitory),
            dur_ns(t.icmp),
        ];
        let mut nat = Nat {
            table: Table::new(config.mapping),
            ports: Vec::new(),
            pool,
            pairs: FxHashMap::default(),
            frags: FxHashMap::default(),
            epoch: None,
            last_tick: None,
            hint: None,
            events: VecDeque::new(),
            stats: NatStats::default(),
            config,
            rng,
            t_ns,
            alg: None,
        };
        if nat.config.sip_alg == SipAlgMode::Rewrite {
            nat.alg = Some(SipAlg::default());
        }
        nat.reset_ports();
        Ok(nat)
    }

    fn reset_ports(&mut self) {
        let lo = self.config.port_range.0;
        self.ports = vec![
            PortState {
                used: [0, 0],
                cursor: lo
            };
            self.pool.addrs.len() * 3
        ];
    }

    /// The configuration.
    pub fn config(&self) -> &NatConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &NatStats {
        &self.stats
    }

    /// Whether `addr` is one of the pool's external addresses.
    pub fn is_external(&self, addr: IpAddr) -> bool {
        self.pool.index_of(addr).is_some()
    }

    /// Live mappings (including ones whose time has come but that
    /// [`handle_timeout`](Self::handle_timeout) has not removed yet).
    pub fn mapping_count(&self) -> usize {
        self.table.len()
    }

    /// A snapshot of the live mappings, sorted by protocol, internal and external endpoint.
    pub fn mappings(&self) -> Vec<MappingInfo> {
        let mut v: Vec<MappingInfo> = self
            .table
            .slab
            .iter()
            .filter(|b| b.live())
            .filter_map(|b| {
                Some(MappingInfo {
                    proto: proto_of_slot(b.slot()),
                    internal: Endpoint::new(ip_of(b.int_addr, b.v6()), b.int_port),
                    external: self.ext_endpoint(b),
                    remote: Endpoint::new(ip_of(b.rem_addr, b.v6()), b.rem_port),
                    expires: self.instant(b.expires)?,
                    refreshes: b.refreshes,
                    last_refresh: self.instant(b.expires.saturating_sub(self.timeout_of(b)))?,
                    tcp_established: b.slot() == P_TCP && tcp_established(b.tcp),
                })
            })
            .collect();
        v.sort_by_key(|a| (a.proto, a.internal, a.external));
        v
    }

    /// The next queued event.
    pub fn poll_event(&mut self) -> Option<NatEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next run: never later than the
    /// earliest mapping expiry. It may be earlier (a mapping refreshed since its timer was
    /// armed is re-armed then, without an event).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.table.next_timer().and_then(|t| self.instant(t))
    }

    /// Expire every mapping whose time has come (`now >= last refresh + timeout`), in
    /// deadline order (ties by slot index), emitting [`NatEvent::MappingExpired`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let t = self.tick(now);
        while let Some(idx) = self.table.pop_expired(t) {
            self.remove_binding(idx, ExpiryCause::Timeout);
        }
        if !self.frags.is_empty() {
            self.frags.retain(|_, e| e.expires > t);
        }
    }

    /// Drop all mappings (the device restarted), emitting `MappingExpired { cause: Reboot }`.
    pub fn reboot(&mut self, now: Instant) {
        self.tick(now);
        self.clear_all(ExpiryCause::Reboot);
        if let Some(alg) = &mut self.alg {
            alg.clear();
        }
    }

    /// The SIP ALG's state, when `sip_alg: rewrite`.
    pub fn sip_alg(&self) -> Option<&SipAlg> {
        self.alg.as_ref()
    }

    /// Opens (or refreshes) the UDP mapping an outbound packet from `internal` to `remote`
    /// would use, and lets `remote` in through the filter, exactly as if such a packet had
    /// been sent — what the SIP ALG does for the media ports it advertises. Returns the
    /// external endpoint; `None` when no mapping can be made (binding limit, ports
    /// exhausted, address family, `remote` being one of the NAT's own addresses).
    pub fn open_mapping(
        &mut self,
        now: Instant,
        internal: Endpoint,
        remote: Endpoint,
    ) -> Option<Endpoint> {
        let t = self.tick(now);
        self.open_udp_mapping(t, internal, remote)
    }

    fn open_udp_mapping(
        &mut self,
        t: u64,
        internal: Endpoint,
        remote: Endpoint,
    ) -> Option<Endpoint> {
        let v6 = internal.addr.is_ipv6();
        if v6 != remote.addr.is_ipv6()
            || self.pool.family(v6).is_empty()
            || self.pool.index_of(remote.addr).is_some()
        {
            return None;
        }
        let pk = pkey(P_UDP, v6);
        let int = a16(internal.addr);
        let rem = a16(remote.addr);
        let idx = match self.lookup_out(t, pk, &int, internal.port, &rem, remote.port) {
            Some(i) => i,
            None => self
                .create(t, pk, int, internal.port, rem, remote.port)
                .ok()?,
        };
        let filtering = self.config.filtering;
        self.table.permit(idx, filtering, &rem, remote.port);
        self.touch(idx, t, true, None);
        Some(self.ext_endpoint(&self.table.slab[idx as usize]))
    }

    /// Runs the SIP ALG on a packet the NAT translated and forwards.
    fn run_alg(&mut self, t: u64, dir: Direction, pkt: &mut PacketBuf, before: &PacketInfo) {
        let Some(mut alg) = self.alg.take() else {
            return;
        };
        let action = alg.handle(dir, before, pkt, &mut |int, rem| {
            self.open_udp_mapping(t, int, rem)
        });
        self.stats.alg = alg.stats().clone();
        self.alg = Some(alg);
        if let Some(a) = action {
            self.push_event(NatEvent::SipAlg(a));
        }
    }

    /// Move every live mapping to a new external port — and, with paired pooling, each
    /// internal host to a freshly chosen pool address (arbitrary pooling: each mapping to a
    /// freshly chosen address) — keeping its filter state and timer. The old external
    /// endpoints are gone at once. A mapping for which no port is free is removed.
    pub fn rebind(&mut self, now: Instant) {
        let t = self.tick(now);
        self.frags.clear();
        self.pairs.clear();
        for idx in self.table.live_indices() {
            let b = self.table.slab[idx as usize].clone();
            if b.expires <= t {
                self.table.remove(idx);
                self.release_port(&b);
                self.removed_event(&b, ExpiryCause::Timeout);
                continue;
            }
            // The old endpoint is still held, so the new one differs from it.
            match self.allocate(b.pkey, &b.int_addr, b.int_port) {
                Ok((ni, np)) => {
                    let old_external = self.ext_endpoint(&b);
                    self.release_port(&b);
                    self.table.move_ext(idx, ni, np);
                    self.use_port(ni, b.slot(), np);
                    self.pair_acquire(&b.int_addr, b.v6(), ni);
                    self.stats.rebound += 1;
                    let nb = &self.table.slab[idx as usize];
                    let ev = NatEvent::MappingRebound {
                        proto: proto_of_slot(b.slot()),
                        internal: Endpoint::new(ip_of(b.int_addr, b.v6()), b.int_port),
                        old_external,
                        new_external: self.ext_endpoint(nb),
                    };
                    self.push_event(ev);
                }
                Err(_) => {
                    self.table.remove(idx);
                    self.release_port(&b);
                    self.removed_event(&b, ExpiryCause::Rebind);
                }
            }
        }
    }

    /// Replace the external address pool; all mappings are dropped
    /// (`MappingExpired { cause: Renumber }`). On error nothing changes.
    pub fn renumber(&mut self, now: Instant, external: Vec<IpAddr>) -> Result<(), NatConfigError> {
        config::validate_pool(&external)?;
        self.tick(now);
        self.clear_all(ExpiryCause::Renumber);
        self.pool = Pool::new(&external);
        self.config.external = external;
        self.reset_ports();
        Ok(())
    }

    /// Handle one packet at `now` travelling in `dir`; rewrite it in place and say what to
    /// do with it (see the [module docs](self)).
    pub fn handle_packet(&mut self, now: Instant, dir: Direction, pkt: &mut PacketBuf) -> Verdict {
        let info = wire::parse(pkt.as_slice()).ok();
        self.handle_parsed(now, dir, pkt, info)
    }

    /// [`handle_packet`](Self::handle_packet) for a packet already parsed (`None`: it
    /// did not parse).
    fn handle_parsed(
        &mut self,
        now: Instant,
        dir: Direction,
        pkt: &mut PacketBuf,
        info: Option<PacketInfo>,
    ) -> Verdict {
        let t = self.tick(now);
        let v = match dir {
            Direction::Outbound => self.outbound(t, pkt.as_mut_slice(), info),
            Direction::Inbound => self.inbound(t, pkt.as_mut_slice(), info),
        };
        if self.alg.is_some()
            && matches!(v, Verdict::Forward)
            && let Some(before) = &info
        {
            self.run_alg(t, dir, pkt, before);
        }
        match &v {
            Verdict::Forward => match dir {
                Direction::Outbound => self.stats.translated_out += 1,
                Direction::Inbound => self.stats.translated_in += 1,
            },
            Verdict::Hairpin => self.stats.hairpinned += 1,
            // Every drop is decided before the packet is rewritten: `info` describes it.
            Verdict::Drop(r) => self.note_drop(dir, *r, info.as_ref()),
            Verdict::Reply(r, _) => {
                self.stats.replies += 1;
                self.note_drop(dir, *r, info.as_ref());
            }
        }
        v
    }

    /// Handle packets travelling in the same direction, in order, appending one verdict
    /// per packet to `verdicts`. The results, events and stats are exactly those of
    /// calling [`handle_packet`](Self::handle_packet) on each in turn; the difference is
    /// speed: the table lookups of up to 32 packets are started together so that their
    /// memory latencies overlap (memory-level parallelism), which matters once the table
    /// no longer fits in cache.
    pub fn handle_batch(
        &mut self,
        now: Instant,
        dir: Direction,
        pkts: &mut [PacketBuf],
        verdicts: &mut Vec<Verdict>,
    ) {
        const CHUNK: usize = 32;
        verdicts.reserve(pkts.len());
        for chunk in pkts.chunks_mut(CHUNK) {
            // 1. Parse and hash (packet data is hot), 2. load every home bucket,
            // 3. load every guessed binding; each loop's loads are independent of each
            // other, so the CPU keeps many cache misses in flight at once.
            let mut infos = [None; CHUNK];
            let mut tags = [(false, 0u32, false); CHUNK];
            for ((h, info), p) in tags.iter_mut().zip(infos.iter_mut()).zip(chunk.iter()) {
                *info = wire::parse(p.as_slice()).ok();
                if let Some(i) = info
                    && let Some((by_ext, tag)) = self.lookup_hint(dir, i)
                {
                    *h = (by_ext, tag, true);
                }
            }
            let mut guess = [u32::MAX; CHUNK];
            for (g, &(by_ext, tag, ok)) in guess.iter_mut().zip(tags.iter()) {
                if ok && let Some(i) = self.table.peek(by_ext, tag) {
                    *g = i;
                }
            }
            let mut acc = 0u64;
            for &g in guess.iter().take(chunk.len()) {
                if let Some(b) = self.table.slab.get(g as usize) {
                    acc ^= b.expires;
                }
            }
            std::hint::black_box(acc);
            for ((p, info), &(by_ext, tag, ok)) in chunk.iter_mut().zip(infos).zip(tags.iter()) {
                // The first table lookup of this packet reuses the tag computed above.
                self.hint = ok.then_some((by_ext, tag));
                verdicts.push(self.handle_parsed(now, dir, p, info));
                self.hint = None;
            }
        }
    }

    /// Which index and tag a packet's lookup will use (UDP/TCP/ICMP echo only).
    #[inline]
    fn lookup_hint(&self, dir: Direction, info: &PacketInfo) -> Option<(bool, u32)> {
        if info.fragment.is_some() {
            return None;
        }
        let (slot, sport, dport) = match info.l4 {
            L4::Udp { src_port, dst_port }
            | L4::Tcp {
                src_port, dst_port, ..
            } => {
                let slot = if matches!(info.l4, L4::Udp { .. }) {
                    P_UDP
                } else {
                    P_TCP
                };
                (slot, src_port, dst_port)
            }
            L4::Icmp {
                kind: IcmpKind::EchoRequest | IcmpKind::EchoReply,
                id,
            } => (P_ICMP, id, id),
            _ => return None,
        };
        let pk = pkey(slot, info.version == IpVersion::V6);
        match dir {
            Direction::Outbound => {
                let rport = if slot == P_ICMP { 0 } else { dport };
                let (mr, mp) = table::mask_remote(self.config.mapping, &a16(info.dst), rport);
                Some((false, table::out_tag(pk, &a16(info.src), sport, &mr, mp)))
            }
            Direction::Inbound => {
                let ext = self.pool.index_of(info.dst)?;
                Some((true, table::ext_tag(pk, ext, dport)))
            }
        }
    }

    // ----- time -----

    fn tick(&mut self, now: Instant) -> u64 {
        if let Some((at, t)) = self.last_tick
            && at == now
        {
            return t;
        }
        let e = *self.epoch.get_or_insert(now);
        let t = now
            .saturating_duration_since(e)
            .as_nanos()
            .min(u64::MAX as u128) as u64;
        self.last_tick = Some((now, t));
        t
    }

    /// The instant of tick `t`; `None` before the first call that passed a time (then
    /// there are no bindings either).
    fn instant(&self, t: u64) -> Option<Instant> {
        let e = self.epoch?;
        Some(
            e.checked_add(Duration::from_nanos(t))
                .unwrap_or(e + Duration::from_secs(1 << 32)),
        )
    }

    fn timeout_of(&self, b: &Binding) -> u64 {
        match b.slot() {
            P_UDP => self.t_ns[0],
            P_TCP if tcp_established(b.tcp) => self.t_ns[1],
            P_TCP => self.t_ns[2],
            _ => self.t_ns[3],
        }
    }

    // ----- events and stats -----

    fn push_event(&mut self, e: NatEvent) {
        if self.events.len() >= MAX_EVENTS {
            self.stats.events_dropped += 1;
        } else {
            self.events.push_back(e);
        }
    }

    fn note_drop(&mut self, dir: Direction, reason: DropReason, info: Option<&PacketInfo>) {
        *self.stats.drops.entry(reason).or_insert(0) += 1;
        let (proto, src, dst) = match info {
            Some(i) => (Some(i.proto), i.src_endpoint(), i.dst_endpoint()),
            None => (None, None, None),
        };
        self.push_event(NatEvent::PacketDropped {
            dir,
            reason,
            proto,
            src,
            dst,
        });
    }

    fn ext_endpoint(&self, b: &Binding) -> Endpoint {
        Endpoint::new(self.pool.addrs[b.ext_idx as usize], b.ext_port)
    }

    fn removed_event(&mut self, b: &Binding, cause: ExpiryCause) {
        if cause == ExpiryCause::Timeout {
            self.stats.expired += 1;
        } else {
            self.stats.removed += 1;
        }
        let ev = NatEvent::MappingExpired {
            proto: proto_of_slot(b.slot()),
            internal: Endpoint::new(ip_of(b.int_addr, b.v6()), b.int_port),
            external: self.ext_endpoint(b),
            cause,
            refreshes: b.refreshes,
            last_refresh: self.instant(b.expires.saturating_sub(self.timeout_of(b))),
        };
        self.push_event(ev);
    }

    // ----- table maintenance -----

    fn remove_binding(&mut self, idx: u32, cause: ExpiryCause) {
        let b = self.table.remove(idx);
        self.release_port(&b);
        self.pair_release(&b.int_addr, b.v6());
        self.removed_event(&b, cause);
    }

    fn clear_all(&mut self, cause: ExpiryCause) {
        for idx in self.table.live_indices() {
            let b = self.table.slab[idx as usize].clone();
            self.removed_event(&b, cause);
        }
        self.table.clear();
        self.pairs.clear();
        self.frags.clear();
        self.reset_ports();
    }

    fn use_port(&mut self, ext_idx: u16, slot: u8, port: u16) {
        self.ports[ext_idx as usize * 3 + slot as usize].used[(port & 1) as usize] += 1;
    }

    fn release_port(&mut self, b: &Binding) {
        let u = &mut self.ports[b.ext_idx as usize * 3 + b.slot() as usize].used
            [(b.ext_port & 1) as usize];
        *u = u.saturating_sub(1);
    }

    fn pair_acquire(&mut self, int: &A16, v6: bool, ext_idx: u16) {
        if self.config.pooling == Pooling::Paired {
            self.pairs.entry((*int, v6)).or_insert((ext_idx, 0)).1 += 1;
        }
    }

    fn pair_release(&mut self, int: &A16, v6: bool) {
        if self.config.pooling != Pooling::Paired {
            return;
        }
        if let Some(e) = self.pairs.get_mut(&(*int, v6)) {
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 {
                self.pairs.remove(&(*int, v6));
            }
        }
    }

    /// A live mapping by external endpoint; one whose time has come is removed first.
    #[inline]
    fn lookup_ext(&mut self, t: u64, pk: u8, ext_idx: u16, port: u16) -> Option<u32> {
        let tag = match self.hint {
            Some((true, tag)) => self.hint.take().map(|_| tag),
            _ => None,
        };
        let idx = self.table.find_ext_tagged(tag, pk, ext_idx, port)?;
        if self.table.slab[idx as usize].expires <= t {
            self.remove_binding(idx, ExpiryCause::Timeout);
            return None;
        }
        Some(idx)
    }

    /// A live mapping by outbound key; one whose time has come is removed first.
    #[inline]
    fn lookup_out(
        &mut self,
        t: u64,
        pk: u8,
        int: &A16,
        int_port: u16,
        rem: &A16,
        rem_port: u16,
    ) -> Option<u32> {
        let tag = match self.hint {
            Some((false, tag)) => self.hint.take().map(|_| tag),
            _ => None,
        };
        let idx = self
            .table
            .find_out_tagged(tag, pk, int, int_port, rem, rem_port)?;
        if self.table.slab[idx as usize].expires <= t {
            self.remove_binding(idx, ExpiryCause::Timeout);
            return None;
        }
        Some(idx)
    }

    // ----- port and address allocation (RFC 4787 §4.2) -----

    /// Choose an external address and port for a new mapping of `int:int_port`.
    fn allocate(&mut self, pk: u8, int: &A16, int_port: u16) -> Result<(u16, u16), DropReason> {
        let v6 = pk & 4 != 0;
        if self.config.pooling == Pooling::Paired
            && let Some(&(idx, _)) = self.pairs.get(&(*int, v6))
        {
            return self
                .alloc_port(idx, pk, int_port)
                .map(|p| (idx, p))
                .ok_or(DropReason::PortsExhausted);
        }
        let n = self.pool.family(v6).len();
        if n == 0 {
            return Err(DropReason::AddressFamily);
        }
        let start = self.rng.range_inclusive(0, n as u64 - 1) as usize;
        for k in 0..n {
            let idx = self.pool.family(v6)[(start + k) % n];
            if let Some(p) = self.alloc_port(idx, pk, int_port) {
                return Ok((idx, p));
            }
        }
        Err(DropReason::PortsExhausted)
    }

    /// A free port on pool address `ext_idx` for protocol key `pk`, per the allocation
    /// strategy and parity; `None` if none is free.
    fn alloc_port(&mut self, ext_idx: u16, pk: u8, int_port: u16) -> Option<u16> {
        let (lo, hi) = (
            self.config.port_range.0 as u32,
            self.config.port_range.1 as u32,
        );
        let ps_i = ext_idx as usize * 3 + (pk & 3) as usize;
        let ps = self.ports[ps_i];
        let parity = self.config.port_parity.then_some(int_port as u32 & 1);
        // First candidate port >= x of the right parity.
        let first_from = |x: u32| match parity {
            Some(p) if x & 1 != p => x + 1,
            _ => x,
        };
        let first = first_from(lo);
        let (step, capacity, used) = match parity {
            Some(p) => (
                2,
                if first > hi { 0 } else { (hi - first) / 2 + 1 },
                ps.used[p as usize],
            ),
            None => (1, hi - lo + 1, ps.used[0] + ps.used[1]),
        };
        if used >= capacity {
            return None;
        }
        let free = |nat: &Self, p: u32| !nat.table.ext_taken(pk, ext_idx, p as u16);
        let start = match self.config.port_allocation {
            PortAllocation::Preserve => {
                let ip = int_port as u32;
                if (lo..=hi).contains(&ip) && free(self, ip) {
                    self.ports[ps_i].cursor = if ip + 1 > hi {
                        lo as u16
                    } else {
                        ip as u16 + 1
                    };
                    return Some(ip as u16);
                }
                // Fallback: sequential (O(1) amortised even when many hosts use the
                // same internal port).
                ps.cursor as u32
            }
            PortAllocation::Sequential => ps.cursor as u32,
            PortAllocation::Random => {
                let mut last = first;
                for _ in 0..32 {
                    let k = self.rng.range_inclusive(0, capacity as u64 - 1) as u32;
                    last = first + k * step;
                    if free(self, last) {
                        return Some(last as u16);
                    }
                }
                last
            }
        };
        let mut p = first_from(start.clamp(lo, hi));
        if p > hi {
            p = first;
        }
        for _ in 0..capacity {
            if free(self, p) {
                let next = p + 1;
                self.ports[ps_i].cursor = if next > hi { lo as u16 } else { next as u16 };
                return Some(p as u16);
            }
            p += step;
            if p > hi {
                p = first;
            }
        }
        None
    }

    /// Create a mapping (RFC 4787 §4.1) for an outbound packet.
    fn create(
        &mut self,
        t: u64,
        pk: u8,
        int: A16,
        int_port: u16,
        rem: A16,
        rem_port: u16,
    ) -> Result<u32, DropReason> {
        // The table holds at most 2^24 - 1 bindings whatever `max_bindings` says.
        if self.table.len() >= self.config.max_bindings || self.table.full() {
            return Err(DropReason::BindingLimit);
        }
        let (ext_idx, ext_port) = self.allocate(pk, &int, int_port)?;
        let mut b = Binding {
            int_addr: int,
            rem_addr: rem,
            expires: 0,
            timer_at: 0,
            int_port,
            rem_port,
            ext_port,
            ext_idx,
            refreshes: 0,
            pkey: pk,
            tcp: 0,
            flags: 0,
        };
        b.expires = t.saturating_add(self.timeout_of(&b));
        let idx = self.table.insert(b);
        self.use_port(ext_idx, pk & 3, ext_port);
        self.pair_acquire(&int, pk & 4 != 0, ext_idx);
        self.stats.created += 1;
        let v6 = pk & 4 != 0;
        let ev = NatEvent::MappingCreated {
            proto: proto_of_slot(pk & 3),
            internal: Endpoint::new(ip_of(int, v6), int_port),
            external: Endpoint::new(self.pool.addrs[ext_idx as usize], ext_port),
            remote: Endpoint::new(ip_of(rem, v6), rem_port),
        };
        self.push_event(ev);
        Ok(idx)
    }

    /// Activity on a mapping: TCP state, then the timer (refresh, or shortening only).
    #[inline]
    fn touch(&mut self, idx: u32, t: u64, refresh: bool, tcp: Option<(u8, bool)>) {
        let b = &self.table.slab[idx as usize];
        let before = self.timeout_of(b);
        let mut exp = b.expires;
        let mut after = before;
        if let Some((flags, out)) = tcp {
            let s = tcp_update(b.tcp, flags, out);
            self.table.slab[idx as usize].tcp = s;
            after = self.timeout_of(&self.table.slab[idx as usize]);
        }
        let cand = t.saturating_add(after);
        if refresh {
            exp = cand;
            let b = &mut self.table.slab[idx as usize];
            b.refreshes = b.refreshes.saturating_add(1);
        } else if after < before {
            exp = exp.min(cand);
        }
        self.table.set_expiry(idx, exp);
    }

    // ----- outbound -----

    fn outbound(&mut self, t: u64, buf: &mut [u8], info: Option<PacketInfo>) -> Verdict {
        let Some(mut info) = info else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if let Some(f) = info.fragment {
            if self.config.fragments == Fragments::Drop {
                return Verdict::Drop(DropReason::Fragment);
            }
            if f.offset != 0 {
                return self.later_fragment(t, Direction::Outbound, buf, &mut info, f.id);
            }
        }
        let (slot, sport, dport, flags) = match info.l4 {
            L4::Udp { src_port, dst_port } => (P_UDP, src_port, dst_port, 0),
            L4::Tcp {
                src_port,
                dst_port,
                flags,
                ..
            } => (P_TCP, src_port, dst_port, flags),
            L4::Icmp {
                kind: IcmpKind::EchoRequest | IcmpKind::EchoReply,
                id,
            } => (P_ICMP, id, 0, 0),
            L4::Icmp {
                kind: IcmpKind::Error { .. },
                ..
            } => return self.outbound_icmp_error(t, buf, &mut info),
            _ => return Verdict::Drop(DropReason::UnsupportedProtocol),
        };
        let v6 = info.version == IpVersion::V6;
        if self.pool.family(v6).is_empty() {
            return Verdict::Drop(DropReason::AddressFamily);
        }
        let hairpin_to = self.pool.index_of(info.dst);
        if hairpin_to.is_some() {
            if !self.config.hairpinning {
                return Verdict::Drop(DropReason::HairpinDisabled);
            }
            if slot == P_ICMP {
                return Verdict::Drop(DropReason::NoMapping);
            }
        }
        let pk = pkey(slot, v6);
        let int = a16(info.src);
        let rem = a16(info.dst);
        let idx = match self.lookup_out(t, pk, &int, sport, &rem, dport) {
            Some(i) => i,
            None => match self.create(t, pk, int, sport, rem, dport) {
                Ok(i) => i,
                Err(r) => return Verdict::Drop(r),
            },
        };
        let filtering = self.config.filtering;
        self.table.permit(idx, filtering, &rem, dport);
        self.touch(idx, t, true, (slot == P_TCP).then_some((flags, true)));
        let ext = self.ext_endpoint(&self.table.slab[idx as usize]);
        let (orig_src, orig_dst) = (info.src, info.dst);
        if let Some(target_ext) = hairpin_to {
            return self.hairpin(t, buf, &mut info, ext, target_ext, slot, dport, flags);
        }
        wire::set_src(buf, &mut info, ext);
        if let Some(f) = info.fragment {
            self.remember_fragment(
                t,
                Direction::Outbound,
                &info,
                f.id,
                orig_src,
                orig_dst,
                FragEntry {
                    new_src: Some(ext.addr),
                    new_dst: None,
                    hairpin: false,
                    expires: 0,
                },
            );
        }
        Verdict::Forward
    }

    /// RFC 4787 §6: an outbound packet to one of our external endpoints, already counted
    /// as outbound activity on the sender's mapping (`sender_ext`).
    #[allow(clippy::too_many_arguments)]
    fn hairpin(
        &mut self,
        t: u64,
        buf: &mut [u8],
        info: &mut PacketInfo,
        sender_ext: Endpoint,
        target_ext: u16,
        slot: u8,
        dport: u16,
        flags: u8,
    ) -> Verdict {
        let v6 = info.version == IpVersion::V6;
        let Some(tidx) = self.lookup_ext(t, pkey(slot, v6), target_ext, dport) else {
            return Verdict::Drop(DropReason::NoMapping);
        };
        let f = self.config.filtering;
        if !self
            .table
            .permits(tidx, f, &a16(sender_ext.addr), sender_ext.port)
        {
            return Verdict::Drop(DropReason::Filtered);
        }
        let tb = &self.table.slab[tidx as usize];
        let target_int = Endpoint::new(ip_of(tb.int_addr, tb.v6()), tb.int_port);
        self.touch(
            tidx,
            t,
            self.config.refresh == Refresh::Both,
            (slot == P_TCP).then_some((flags, false)),
        );
        let (orig_src, orig_dst) = (info.src, info.dst);
        wire::set_src(buf, info, sender_ext);
        wire::set_dst(buf, info, target_int);
        if let Some(f) = info.fragment {
            self.remember_fragment(
                t,
                Direction::Outbound,
                info,
                f.id,
                orig_src,
                orig_dst,
                FragEntry {
                    new_src: Some(sender_ext.addr),
                    new_dst: Some(target_int.addr),
                    hairpin: true,
                    expires: 0,
                },
            );
        }
        Verdict::Hairpin
    }

    // ----- inbound -----

    fn inbound(&mut self, t: u64, buf: &mut [u8], info: Option<PacketInfo>) -> Verdict {
        let Some(mut info) = info else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let Some(ext_idx) = self.pool.index_of(info.dst) else {
            return Verdict::Drop(DropReason::NoMapping);
        };
        if let Some(f) = info.fragment {
            if self.config.fragments == Fragments::Drop {
                return Verdict::Drop(DropReason::Fragment);
            }
            if f.offset != 0 {
                return self.later_fragment(t, Direction::Inbound, buf, &mut info, f.id);
            }
        }
        let (slot, dport, sport, flags) = match info.l4 {
            L4::Udp { src_port, dst_port } => (P_UDP, dst_port, src_port, 0),
            L4::Tcp {
                src_port,
                dst_port,
                flags,
                ..
            } => (P_TCP, dst_port, src_port, flags),
            L4::Icmp {
                kind: IcmpKind::EchoRequest | IcmpKind::EchoReply,
                id,
            } => (P_ICMP, id, 0, 0),
            L4::Icmp {
                kind: IcmpKind::Error { .. },
                ..
            } => return self.inbound_icmp_error(t, buf, &mut info),
            _ => return Verdict::Drop(DropReason::UnsupportedProtocol),
        };
        let v6 = info.version == IpVersion::V6;
        let Some(idx) = self.lookup_ext(t, pkey(slot, v6), ext_idx, dport) else {
            return self.unsolicited(buf, &info, DropReason::NoMapping);
        };
        let rem = a16(info.src);
        if !self.table.permits(idx, self.config.filtering, &rem, sport) {
            return self.unsolicited(buf, &info, DropReason::Filtered);
        }
        let b = &self.table.slab[idx as usize];
        let int = Endpoint::new(ip_of(b.int_addr, b.v6()), b.int_port);
        self.touch(
            idx,
            t,
            self.config.refresh == Refresh::Both,
            (slot == P_TCP).then_some((flags, false)),
        );
        let (orig_src, orig_dst) = (info.src, info.dst);
        wire::set_dst(buf, &mut info, int);
        if let Some(f) = info.fragment {
            self.remember_fragment(
                t,
                Direction::Inbound,
                &info,
                f.id,
                orig_src,
                orig_dst,
                FragEntry {
                    new_src: None,
                    new_dst: Some(int.addr),
                    hairpin: false,
                    expires: 0,
                },
            );
        }
        Verdict::Forward
    }

    /// An unsolicited inbound packet: drop, or reply per [`Unsolicited`].
    fn unsolicited(&self, buf: &[u8], info: &PacketInfo, reason: DropReason) -> Verdict {
        let reply = match (self.config.unsolicited, info.l4) {
            (Unsolicited::Drop, _) => None,
            (Unsolicited::Rst, L4::Tcp { .. }) => reply::tcp_rst(buf),
            (Unsolicited::Icmp | Unsolicited::Rst, _) => {
                reply::icmp_error(buf, info.dst, reply::IcmpError::PortUnreachable)
            }
        };
        match reply {
            Some(p) => Verdict::Reply(reason, p),
            None => Verdict::Drop(reason),
        }
    }

    // ----- ICMP errors (RFC 5508 §4.2) -----

    fn inbound_icmp_error(&mut self, t: u64, buf: &mut [u8], info: &mut PacketInfo) -> Verdict {
        let off = info.l4_offset + 8;
        let end = info.total_len.min(buf.len());
        let Some(inner_buf) = buf.get(off..end) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let Ok(mut inner) = wire::parse_embedded(inner_buf) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if inner.version != info.version || !icmp_error_checksums_ok(buf, info, &inner) {
            return Verdict::Drop(DropReason::Malformed);
        }
        // The embedded packet is one we sent: source = our external endpoint.
        let (slot, ext_port, rem_port) = match inner.l4 {
            L4::Udp { src_port, dst_port } => (P_UDP, src_port, dst_port),
            L4::Tcp {
                src_port, dst_port, ..
            } => (P_TCP, src_port, dst_port),
            L4::Icmp {
                kind: IcmpKind::EchoRequest | IcmpKind::EchoReply,
                id,
            } => (P_ICMP, id, 0),
            _ => return Verdict::Drop(DropReason::IcmpNoMapping),
        };
        let Some(ext_idx) = self.pool.index_of(inner.src) else {
            return Verdict::Drop(DropReason::IcmpNoMapping);
        };
        let v6 = info.version == IpVersion::V6;
        let Some(idx) = self.lookup_ext(t, pkey(slot, v6), ext_idx, ext_port) else {
            return Verdict::Drop(DropReason::IcmpNoMapping);
        };
        if !self
            .table
            .permits(idx, self.config.filtering, &a16(inner.dst), rem_port)
        {
            return Verdict::Drop(DropReason::Filtered);
        }
        let b = &self.table.slab[idx as usize];
        let int = Endpoint::new(ip_of(b.int_addr, b.v6()), b.int_port);
        wire::set_src(&mut buf[off..end], &mut inner, int);
        let outer_id = match info.l4 {
            L4::Icmp { id, .. } => id,
            _ => 0,
        };
        wire::set_dst(buf, info, Endpoint::new(int.addr, outer_id));
        wire::update_icmp_checksum(buf, info);
        Verdict::Forward
    }

    fn outbound_icmp_error(&mut self, t: u64, buf: &mut [u8], info: &mut PacketInfo) -> Verdict {
        let off = info.l4_offset + 8;
        let end = info.total_len.min(buf.len());
        let Some(inner_buf) = buf.get(off..end) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let Ok(mut inner) = wire::parse_embedded(inner_buf) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if inner.version != info.version || !icmp_error_checksums_ok(buf, info, &inner) {
            return Verdict::Drop(DropReason::Malformed);
        }
        // The embedded packet is one we delivered: destination = the internal endpoint.
        let (slot, int_port, rem_port) = match inner.l4 {
            L4::Udp { src_port, dst_port } => (P_UDP, dst_port, src_port),
            L4::Tcp {
                src_port, dst_port, ..
            } => (P_TCP, dst_port, src_port),
            L4::Icmp {
                kind: IcmpKind::EchoRequest | IcmpKind::EchoReply,
                id,
            } => (P_ICMP, id, 0),
            _ => return Verdict::Drop(DropReason::IcmpNoMapping),
        };
        let v6 = info.version == IpVersion::V6;
        let (int, rem) = (a16(inner.dst), a16(inner.src));
        let Some(idx) = self.lookup_out(t, pkey(slot, v6), &int, int_port, &rem, rem_port) else {
            return Verdict::Drop(DropReason::IcmpNoMapping);
        };
        let ext = self.ext_endpoint(&self.table.slab[idx as usize]);
        wire::set_dst(&mut buf[off..end], &mut inner, ext);
        let outer_id = match info.l4 {
            L4::Icmp { id, .. } => id,
            _ => 0,
        };
        wire::set_src(buf, info, Endpoint::new(ext.addr, outer_id));
        wire::update_icmp_checksum(buf, info);
        Verdict::Forward
    }

    // ----- fragments (RFC 4787 §11, REQ-14) -----

    #[allow(clippy::too_many_arguments)]
    fn remember_fragment(
        &mut self,
        t: u64,
        dir: Direction,
        info: &PacketInfo,
        id: u32,
        orig_src: IpAddr,
        orig_dst: IpAddr,
        mut entry: FragEntry,
    ) {
        if self.frags.len() >= MAX_FRAGMENT_ENTRIES {
            self.frags.retain(|_, e| e.expires > t);
            if self.frags.len() >= MAX_FRAGMENT_ENTRIES {
                return;
            }
        }
        entry.expires = t.saturating_add(dur_ns(FRAGMENT_TIMEOUT));
        let key = FragKey {
            dir,
            proto: info.proto.number(info.version),
            id,
            src: a16(orig_src),
            dst: a16(orig_dst),
        };
        self.frags.insert(key, entry);
    }

    fn later_fragment(
        &mut self,
        t: u64,
        dir: Direction,
        buf: &mut [u8],
        info: &mut PacketInfo,
        id: u32,
    ) -> Verdict {
        let key = FragKey {
            dir,
            proto: info.proto.number(info.version),
            id,
            src: a16(info.src),
            dst: a16(info.dst),
        };
        let Some(e) = self.frags.get(&key).copied().filter(|e| e.expires > t) else {
            return Verdict::Drop(DropReason::Fragment);
        };
        if let Some(a) = e.new_src {
            wire::set_src(buf, info, Endpoint::new(a, 0));
        }
        if let Some(a) = e.new_dst {
            wire::set_dst(buf, info, Endpoint::new(a, 0));
        }
        if e.hairpin {
            Verdict::Hairpin
        } else {
            Verdict::Forward
        }
    }
}

/// RFC 5508 §4.2 (REQ-3): an ICMP error whose ICMP checksum, or whose embedded IPv4
/// header checksum, does not verify is dropped (the NAT would otherwise "fix" it when it
/// recomputes the checksum). The embedded transport checksum is not checked (REQ-3 c).
fn icmp_error_checksums_ok(buf: &[u8], info: &PacketInfo, inner: &PacketInfo) -> bool {
    // Under the fuzzer checksums are not verified, so that random inputs reach the
    // translation code (STYLE.md §10); the rest of the check still runs.
    if cfg!(fuzzing) {
        return true;
    }
    let end = info.total_len.min(buf.len());
    if !wire::checksums_valid(&buf[..end]) {
        return false;
    }
    let off = info.l4_offset + 8;
    match inner.version {
        IpVersion::V4 => buf
            .get(off..off + inner.l4_offset)
            .is_some_and(|h| wire::checksum::checksum(h) == 0),
        IpVersion::V6 => true,
    }
}

/// TCP state after a segment with `flags` (`out`: outbound) — RFC 5382 §5.
fn tcp_update(state: u8, flags: u8, out: bool) -> u8 {
    let mut s = state;
    if flags & tcp_flags::RST != 0 {
        return s | TCP_RST;
    }
    if flags & tcp_flags::SYN != 0 {
        if flags & tcp_flags::ACK == 0 && s & (TCP_FIN_OUT | TCP_FIN_IN | TCP_RST) != 0 {
            s = 0; // a new connection on a closed mapping
        }
        s |= if out { TCP_SYN_OUT } else { TCP_SYN_IN };
    }
    if flags & tcp_flags::FIN != 0 {
        s |= if out { TCP_FIN_OUT } else { TCP_FIN_IN };
    }
    s
}

#[cfg(test)]
mod tests;
