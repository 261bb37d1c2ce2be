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
//!
//! # Layout
//!
//! One concern per file: `flow` (the one classification of a transport header into a
//! mapping key, for both directions and for quoted packets), `outbound`, `inbound`,
//! `hairpin`, `icmp` (RFC 5508 error translation), `fragments` (RFC 4787 REQ-14),
//! `mapping` (lookup, creation, refresh, TCP state, removal), `ports` (pool and port
//! allocation), `events` (events, counters, snapshot), `table` and `hash` (the binding
//! table), `config`. This file holds the device and its public operations.

mod config;
mod events;
mod flow;
mod fragments;
mod hairpin;
mod hash;
mod icmp;
mod inbound;
mod mapping;
mod outbound;
mod ports;
mod table;

pub use config::{
    FilteringBehavior, Fragments, MappingBehavior, NatConfig, NatConfigError, Pooling,
    PortAllocation, Preset, Refresh, SipAlgMode, Timeouts, Unsolicited,
};
pub use events::{ExpiryCause, MAX_EVENTS, MappingInfo, NatEvent, NatStats};
pub use fragments::{FRAGMENT_TIMEOUT, MAX_FRAGMENT_ENTRIES};

use crate::alg::SipAlg;
use crate::rng::SimRng;
use crate::verdict::{Direction, Verdict};
use crate::wire::{self, Endpoint, IpVersion, PacketBuf, PacketInfo, Proto};
use flow::{Class, classify};
use fragments::{FragEntry, FragKey};
use hash::FxHashMap;
use ports::{Pool, PortState};
use std::collections::VecDeque;
use std::net::IpAddr;
use std::time::{Duration, Instant};
use table::{A16, Binding, P_TCP, P_UDP, Table, a16, ip_of, pkey, tcp_established};

// The unit tests (tests.rs) reach these through `use super::*`.
#[cfg(test)]
use crate::{
    verdict::DropReason,
    wire::{IcmpKind, L4, reply, tcp_flags},
};

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
        self.handle_info(now, dir, pkt, info)
    }

    /// [`handle_packet`](Self::handle_packet) for a packet the caller has already parsed
    /// with [`wire::parse`] (the fabric's engine parses once per hop, to route it and to
    /// decrement its TTL, and hands the view on). `info` must describe `pkt` as it is now.
    pub fn handle_parsed(
        &mut self,
        now: Instant,
        dir: Direction,
        pkt: &mut PacketBuf,
        info: PacketInfo,
    ) -> Verdict {
        self.handle_info(now, dir, pkt, Some(info))
    }

    /// [`handle_packet`](Self::handle_packet) for a packet already parsed (`None`: it
    /// did not parse).
    #[inline]
    fn handle_info(
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
                verdicts.push(self.handle_info(now, dir, p, info));
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
        let Class::Flow(flow) = classify(&info.l4, dir) else {
            return None;
        };
        let pk = pkey(flow.slot, info.version == IpVersion::V6);
        match dir {
            Direction::Outbound => {
                let (mr, mp) =
                    table::mask_remote(self.config.mapping, &a16(info.dst), flow.remote_port);
                Some((
                    false,
                    table::out_tag(pk, &a16(info.src), flow.local_port, &mr, mp),
                ))
            }
            Direction::Inbound => {
                let ext = self.pool.index_of(info.dst)?;
                Some((true, table::ext_tag(pk, ext, flow.local_port)))
            }
        }
    }

    // ----- time -----

    #[inline]
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

    #[inline]
    fn timeout_of(&self, b: &Binding) -> u64 {
        match b.slot() {
            P_UDP => self.t_ns[0],
            P_TCP if tcp_established(b.tcp) => self.t_ns[1],
            P_TCP => self.t_ns[2],
            _ => self.t_ns[3],
        }
    }
}

#[cfg(test)]
mod tests;
