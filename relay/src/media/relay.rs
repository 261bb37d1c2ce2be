//! [`MediaRelay`]: the session table, the control calls (offer/answer/delete), the fast
//! path, timers.

use super::control::{Control, scan};
use super::latch::accept;
use super::ports::PortTable;
use super::session::Session;
use super::{
    Accounting, Command, Component, ConfigError, DropReason, EndReason, Input, Latching,
    MediaEnded, MediaError, MediaEvent, RelayConfig, SessionId, SignalRequest, Verdict,
    user_agent_matches,
};
use crate::io::Transmit;
use crate::rng::SplitMix64;
use crate::rtp;
use crate::sdp::{
    Party, RewriteReport, Role, Sdp, SessionKey, SkipReason, StreamOutcome, rewrite_with,
};
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Most events held for the driver; beyond, events are counted and dropped
/// ([`MediaRelay::events_dropped`]) so an undrained queue cannot grow without bound.
const EVENTS_MAX: usize = 65_536;
/// Capacity reserved up front, so the fast path does not allocate while events are
/// drained.
const EVENTS_RESERVED: usize = 1_024;
/// At most one [`MediaEvent::SourceRejected`] per leg per this interval.
const REJECT_EVENT_INTERVAL: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(super) struct Bounded<T> {
    q: VecDeque<T>,
    dropped: u64,
}

impl<T> Bounded<T> {
    fn new() -> Self {
        Bounded {
            q: VecDeque::with_capacity(EVENTS_RESERVED),
            dropped: 0,
        }
    }

    fn push(&mut self, t: T) {
        if self.q.len() >= EVENTS_MAX {
            self.dropped += 1;
        } else {
            self.q.push_back(t);
        }
    }
}

/// The sans-IO media relay (see the module docs).
#[derive(Debug)]
pub struct MediaRelay {
    pub(super) config: RelayConfig,
    pub(super) tables: Vec<PortTable>,
    pub(super) rng: SplitMix64,
    pub(super) sessions: Vec<Option<Session>>,
    pub(super) generations: Vec<u32>,
    pub(super) free_slots: Vec<u32>,
    pub(super) by_call: HashMap<Box<str>, Vec<u32>>,
    pub(super) timers: BTreeSet<(Instant, u32)>,
    pub(super) commands: VecDeque<Command>,
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) events: Bounded<MediaEvent>,
    pub(super) notices: VecDeque<MediaEnded>,
    pub(super) draining: bool,
    pub(super) unknown_port_drops: u64,
}

impl MediaRelay {
    /// A relay with no session. Refuses a configuration without addresses (or with an
    /// unspecified, multicast or repeated one, or more than 255), a port range without an
    /// even/odd pair, `streams_max` outside 1..=65535, and empty User-Agent patterns.
    pub fn new(config: RelayConfig) -> Result<MediaRelay, ConfigError> {
        if config.addresses.is_empty() {
            return Err(ConfigError::NoAddress);
        }
        for (i, a) in config.addresses.iter().enumerate() {
            if a.is_unspecified()
                || a.is_multicast()
                || config.addresses[..i].contains(a)
                || i > 254
            {
                return Err(ConfigError::BadAddress(*a));
            }
        }
        if config.streams_max == 0 || config.streams_max > usize::from(u16::MAX) {
            return Err(ConfigError::StreamsMax(config.streams_max));
        }
        if config
            .asymmetric_clients
            .iter()
            .any(|p| p.trim().is_empty())
        {
            return Err(ConfigError::EmptyPattern);
        }
        let (start, end) = (*config.ports.start(), *config.ports.end());
        let tables = config
            .addresses
            .iter()
            .map(|ip| PortTable::new(*ip, start, end).ok_or(ConfigError::PortRange { start, end }))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(MediaRelay {
            rng: SplitMix64::new(config.seed),
            config,
            tables,
            sessions: Vec::new(),
            generations: Vec::new(),
            free_slots: Vec::new(),
            by_call: HashMap::new(),
            timers: BTreeSet::new(),
            commands: VecDeque::new(),
            transmits: VecDeque::new(),
            events: Bounded::new(),
            notices: VecDeque::new(),
            draining: false,
            unknown_port_drops: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RelayConfig {
        &self.config
    }

    // ===== control =====

    /// An offer (RFC 3264 §5) written by the party whose tag is `req.from_tag`: creates
    /// the session on a first offer, allocates legs for new streams, opens the writer's
    /// latching window and rewrites `sdp` to point at the relay.
    pub fn offer(
        &mut self,
        now: Instant,
        req: &SignalRequest<'_>,
        sdp: &mut Sdp,
    ) -> Result<RewriteReport, MediaError> {
        self.signal(
            now,
            &SignalRequest {
                role: Role::Offer,
                ..*req
            },
            sdp,
        )
    }

    /// An answer (RFC 3264 §6) written by the party whose tag is `req.to_tag`: records
    /// the answerer's addresses, opens both sides' windows and rewrites `sdp`.
    pub fn answer(
        &mut self,
        now: Instant,
        req: &SignalRequest<'_>,
        sdp: &mut Sdp,
    ) -> Result<RewriteReport, MediaError> {
        self.signal(
            now,
            &SignalRequest {
                role: Role::Answer,
                ..*req
            },
            sdp,
        )
    }

    /// [`MediaRelay::offer`] or [`MediaRelay::answer`] by `req.role`. On error the SDP is
    /// unchanged, and a session this call created is gone again.
    pub fn signal(
        &mut self,
        now: Instant,
        req: &SignalRequest<'_>,
        sdp: &mut Sdp,
    ) -> Result<RewriteReport, MediaError> {
        let found = self
            .find(req.call_id, req.from_tag)
            .or_else(|| req.to_tag.and_then(|t| self.find(req.call_id, t)));
        let (slot, created) = match (found, req.role) {
            (Some(s), _) => (s, false),
            (None, Role::Answer) => return Err(MediaError::UnknownSession),
            (None, Role::Offer) if self.draining => return Err(MediaError::Draining),
            (None, Role::Offer) => (self.create(now, req.call_id, req.from_tag), true),
        };
        let writer = match req.role {
            Role::Offer => Some(req.from_tag),
            Role::Answer => req.to_tag,
        };
        let mode = match req.user_agent {
            Some(ua)
                if self
                    .config
                    .asymmetric_clients
                    .iter()
                    .any(|p| user_agent_matches(p, ua)) =>
            {
                Latching::Off
            }
            _ => self.config.latching,
        };
        let side = {
            let Some(sess) = self.sessions[slot as usize].as_mut() else {
                return Err(MediaError::UnknownSession);
            };
            // Side A is the first offer's tag; any other tag (a later one of a forked
            // call included) is side B, and the latest one is kept.
            let side = match writer {
                Some(t) if sess.side_of_tag(t) == Some(0) => 0,
                Some(t) => {
                    if sess.tags[1].as_deref() != Some(t) {
                        sess.tags[1] = Some(t.into());
                    }
                    1
                }
                None => 1,
            };
            if let Some(ua) = req.user_agent {
                sess.user_agents[side] = Some(ua.into());
            }
            side
        };
        let info = scan(sdp);
        let key = SessionKey {
            call_id: req.call_id,
            from_tag: req.from_tag,
            to_tag: req.to_tag,
        };
        let party = if side == 0 {
            Party::Caller
        } else {
            Party::Callee
        };
        let mut control = Control {
            relay: self,
            slot,
            side,
            now,
            req,
            info: &info,
            mode,
        };
        let report = match rewrite_with(
            sdp,
            key,
            party,
            req.role,
            req.ice,
            req.ice_priority,
            &mut control,
        ) {
            Ok(r) => r,
            Err(e) => {
                if created {
                    self.finish(slot, now, None, None);
                }
                return Err(e.source);
            }
        };
        let id = self.id(slot);
        if let Some(sess) = self.sessions[slot as usize].as_mut() {
            for outcome in &report.streams {
                let (index, held) = match outcome {
                    StreamOutcome::Relayed { index, hold, .. } => (*index, hold.is_some()),
                    StreamOutcome::Skipped {
                        index,
                        reason: SkipReason::Held(_),
                    } => (*index, true),
                    StreamOutcome::Skipped { .. } => continue,
                };
                if let Some(st) = sess.streams.iter_mut().find(|s| s.index == index)
                    && st.held != held
                {
                    st.held = held;
                    self.events.push(MediaEvent::StreamHeld {
                        session: id,
                        stream: index,
                        held,
                    });
                }
            }
            sess.last_activity = now;
        }
        self.reschedule(slot, now);
        if created {
            self.events.push(MediaEvent::SessionCreated {
                session: id,
                call_id: req.call_id.to_owned(),
                from_tag: req.from_tag.to_owned(),
            });
        }
        Ok(report)
    }

    /// Ends the sessions of `call_id` (with `tag` as either side's tag, or all of them
    /// when `tag` is `None`): BYE, CANCEL, a failed INVITE. Returns how many ended.
    /// Emits [`MediaEvent::SessionEnded`] each, no notice (the control side asked).
    pub fn delete(&mut self, now: Instant, call_id: &str, tag: Option<&str>) -> usize {
        let slots: Vec<u32> = self
            .by_call
            .get(call_id)
            .map(|v| {
                v.iter()
                    .copied()
                    .filter(|s| match (tag, self.sessions[*s as usize].as_ref()) {
                        (None, _) => true,
                        (Some(t), Some(sess)) => sess.side_of_tag(t).is_some(),
                        (Some(_), None) => false,
                    })
                    .collect()
            })
            .unwrap_or_default();
        for s in &slots {
            self.finish(*s, now, Some(EndReason::Deleted), None);
        }
        slots.len()
    }

    /// Accounting records, so far, of the sessions of `call_id` (ng `query`).
    pub fn query(&self, now: Instant, call_id: &str) -> Vec<Accounting> {
        self.by_call
            .get(call_id)
            .into_iter()
            .flatten()
            .filter_map(|s| {
                let sess = self.sessions[*s as usize].as_ref()?;
                Some(sess.record(self.id(*s), now, None))
            })
            .collect()
    }

    /// The Call-IDs with a session (ng `list`), sorted.
    pub fn calls(&self) -> Vec<String> {
        let mut v: Vec<String> = self.by_call.keys().map(|k| k.to_string()).collect();
        v.sort();
        v
    }

    /// Sessions running.
    pub fn session_count(&self) -> usize {
        self.sessions.len() - self.free_slots.len()
    }

    /// Stops (or resumes) taking new sessions.
    pub fn set_draining(&mut self, draining: bool) {
        self.draining = draining;
    }

    /// Whether new sessions are refused.
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Draining and no session left: the relay may exit.
    pub fn is_drained(&self) -> bool {
        self.draining && self.session_count() == 0
    }

    // ===== counters =====

    /// Port pairs over all addresses.
    pub fn total_pairs(&self) -> usize {
        self.tables.iter().map(PortTable::pairs).sum()
    }

    /// Free port pairs over all addresses.
    pub fn free_pairs(&self) -> usize {
        self.tables.iter().map(PortTable::free_pairs).sum()
    }

    /// Pairs withdrawn after [`Input::BindFailed`].
    pub fn ports_quarantined(&self) -> usize {
        self.tables.iter().map(PortTable::quarantined).sum()
    }

    /// Datagrams dropped for [`DropReason::UnknownPort`].
    pub fn unknown_port_drops(&self) -> u64 {
        self.unknown_port_drops
    }

    /// Events dropped because the queue was full (never drained).
    pub fn events_dropped(&self) -> u64 {
        self.events.dropped
    }

    /// Heap bytes of the port tables (fixed by the configuration).
    pub fn port_table_bytes(&self) -> usize {
        self.tables.iter().map(PortTable::heap_bytes).sum()
    }

    // ===== data =====

    /// The fast path: what to do with `data` received on relay socket `local` from
    /// `remote`. Allocates nothing (events go to a preallocated, bounded queue) and takes
    /// no lock.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        data: &[u8],
    ) -> Verdict {
        let Some(ai) = self.tables.iter().position(|t| t.ip == local.ip()) else {
            self.unknown_port_drops += 1;
            return Verdict::Drop(DropReason::UnknownPort);
        };
        let Some(owner) = self.tables[ai].owner(local.port()) else {
            self.unknown_port_drops += 1;
            return Verdict::Drop(DropReason::UnknownPort);
        };
        let generation = self
            .generations
            .get(owner.slot as usize)
            .copied()
            .unwrap_or(0);
        let id = SessionId((u64::from(generation) << 32) | u64::from(owner.slot));
        let Some(sess) = self
            .sessions
            .get_mut(owner.slot as usize)
            .and_then(Option::as_mut)
        else {
            self.unknown_port_drops += 1;
            return Verdict::Drop(DropReason::UnknownPort);
        };
        let Some(stream) = sess.streams.get_mut(usize::from(owner.stream)) else {
            self.unknown_port_drops += 1;
            return Verdict::Drop(DropReason::UnknownPort);
        };
        let side = usize::from(owner.side);
        let socket = usize::from(owner.socket);
        if socket == 1 && !stream.legs[side].rtcp_bound {
            self.unknown_port_drops += 1;
            return Verdict::Drop(DropReason::UnknownPort);
        }
        let component = if socket == 1 || (stream.rtp && rtp::is_rtcp(data)) {
            Component::Rtcp
        } else {
            Component::Rtp
        };
        let party = if side == 0 {
            Party::Caller
        } else {
            Party::Callee
        };
        match accept(now, stream, side, socket, remote, data, component) {
            Err(reason) => {
                let leg = &mut stream.legs[side];
                leg.stats.drops.count(reason);
                leg.rejected_unreported += 1;
                if leg
                    .last_reject_event
                    .is_none_or(|t| now >= t + REJECT_EVENT_INTERVAL)
                {
                    self.events.push(MediaEvent::SourceRejected {
                        session: id,
                        stream: stream.index,
                        side: party,
                        source: remote,
                        reason,
                        counted: leg.stats.drops.rejected(),
                        coalesced: leg.rejected_unreported - 1,
                    });
                    leg.rejected_unreported = 0;
                    leg.last_reject_event = Some(now);
                }
                return Verdict::Drop(reason);
            }
            Ok(Some(via)) => {
                stream.legs[side].latched[socket] = Some(remote);
                self.events.push(MediaEvent::Latched {
                    session: id,
                    stream: stream.index,
                    side: party,
                    component: if socket == 1 {
                        Component::Rtcp
                    } else {
                        Component::Rtp
                    },
                    addr: remote,
                    via,
                });
            }
            Ok(None) => {}
        }
        let dest = &stream.legs[1 - side];
        let dsock = usize::from(component == Component::Rtcp && dest.rtcp_bound);
        let sdp_addr = dest.sdp.map(|s| s[dsock]);
        let to = match dest.mode {
            Latching::Off => sdp_addr,
            _ => dest.latched[dsock].or(sdp_addr),
        };
        let Some(to) = to else {
            stream.legs[side]
                .stats
                .drops
                .count(DropReason::NoDestination);
            return Verdict::Drop(DropReason::NoDestination);
        };
        // dsock ≤ 1 and RTP ports are even: no overflow.
        let from = SocketAddr::new(
            self.tables[usize::from(dest.addr)].ip,
            dest.rtp_port + dsock as u16,
        );
        // Counters.
        if component == Component::Rtcp && stream.rtp {
            // Report blocks from this side describe what it receives: the other
            // direction (RFC 3550 §6.4).
            if let Ok(c) = rtp::Compound::new_checked(data)
                && let Some(b) = c.report_blocks().last()
            {
                stream.legs[1 - side].stats.rtcp =
                    Some((b.fraction_lost, b.cumulative_lost, b.jitter));
            }
        }
        let st = &mut stream.legs[side].stats;
        st.packets += 1;
        st.bytes += data.len() as u64;
        if st.first_packet.is_none() {
            st.first_packet = Some(now);
        }
        if st.first_pt.is_none()
            && stream.rtp
            && component == Component::Rtp
            && let Ok(p) = rtp::Packet::new_checked(data)
        {
            st.first_pt = Some(p.payload_type());
        }
        sess.last_activity = now;
        sess.media_started = true;
        Verdict::Forward { from, to }
    }

    /// The vocabulary's input: a datagram (relayed through [`MediaRelay::poll_transmit`],
    /// copied) or a failed bind.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) {
        match input {
            Input::Packet {
                local,
                remote,
                data,
            } => {
                if let Verdict::Forward { from, to } = self.handle_packet(now, local, remote, data)
                {
                    self.transmits
                        .push_back(Transmit::udp(from, to, data.to_vec()));
                }
            }
            Input::BindFailed(addr) => {
                let Some(ai) = self.tables.iter().position(|t| t.ip == addr.ip()) else {
                    return;
                };
                let Some(owner) = self.tables[ai].owner(addr.port()) else {
                    return;
                };
                let rtp_port = addr.port() - u16::from(owner.socket);
                self.finish(
                    owner.slot,
                    now,
                    Some(EndReason::BindFailed),
                    Some((ai, rtp_port, addr)),
                );
            }
        }
    }

    /// Ends sessions whose idle timeout passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(&(t, slot)) = self.timers.first() {
            if t > now {
                break;
            }
            self.timers.pop_first();
            let Some(sess) = self.sessions[slot as usize].as_mut() else {
                continue;
            };
            if sess.timer != Some(t) {
                continue;
            }
            sess.timer = None;
            match self.deadline(slot, now) {
                Some((real, _, reason)) if real <= now => {
                    self.finish(slot, now, Some(reason), None)
                }
                Some(_) => self.reschedule(slot, now),
                None => {}
            }
        }
    }

    /// When to call [`MediaRelay::handle_timeout`].
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(t, _)| *t)
    }

    /// Datagrams to send (from [`MediaRelay::handle_input`]).
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Sockets to bind or close.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// What happened.
    pub fn poll_event(&mut self) -> Option<MediaEvent> {
        self.events.q.pop_front()
    }

    /// Sessions the relay ended on its own, for the control side.
    pub fn poll_notice(&mut self) -> Option<MediaEnded> {
        self.notices.pop_front()
    }

    // ===== internals =====

    fn id(&self, slot: u32) -> SessionId {
        let g = self.generations.get(slot as usize).copied().unwrap_or(0);
        SessionId((u64::from(g) << 32) | u64::from(slot))
    }

    fn find(&self, call_id: &str, tag: &str) -> Option<u32> {
        self.by_call.get(call_id)?.iter().copied().find(|s| {
            self.sessions[*s as usize]
                .as_ref()
                .is_some_and(|sess| sess.side_of_tag(tag).is_some())
        })
    }

    fn create(&mut self, now: Instant, call_id: &str, from_tag: &str) -> u32 {
        let slot = match self.free_slots.pop() {
            Some(s) => s,
            None => {
                self.sessions.push(None);
                self.generations.push(0);
                // More than 4 billion sessions at once is beyond any port range.
                (self.sessions.len() - 1) as u32
            }
        };
        self.sessions[slot as usize] = Some(Session {
            call_id: call_id.into(),
            tags: [Some(from_tag.into()), None],
            user_agents: [None, None],
            created: now,
            last_activity: now,
            media_started: false,
            streams: Vec::new(),
            timer: None,
        });
        self.by_call.entry(call_id.into()).or_default().push(slot);
        slot
    }

    /// The session's real deadline and the next time to look at it. Before media the
    /// relay cannot learn without a timer operation on the fast path that media has
    /// started, so it looks every quarter of `idle_timeout` (at least every second).
    fn deadline(&self, slot: u32, now: Instant) -> Option<(Instant, Instant, EndReason)> {
        let sess = self.sessions[slot as usize].as_ref()?;
        if !sess.media_started {
            let real = sess
                .last_activity
                .checked_add(self.config.idle_timeout_before_media)?;
            let poll = (self.config.idle_timeout / 4).max(Duration::from_secs(1));
            let check = now.checked_add(poll).map_or(real, |p| p.min(real));
            Some((real, check, EndReason::IdleBeforeMedia))
        } else if sess.all_held() {
            None
        } else {
            let real = sess.last_activity.checked_add(self.config.idle_timeout)?;
            Some((real, real, EndReason::Idle))
        }
    }

    fn reschedule(&mut self, slot: u32, now: Instant) {
        let next = self.deadline(slot, now).map(|(_, check, _)| check);
        let Some(sess) = self.sessions[slot as usize].as_mut() else {
            return;
        };
        if let Some(old) = sess.timer.take() {
            self.timers.remove(&(old, slot));
        }
        if let Some(d) = next {
            sess.timer = Some(d);
            self.timers.insert((d, slot));
        }
    }

    /// Ends a session: closes and frees its ports, removes it from the indexes; with a
    /// reason, emits `SessionEnded` (and a notice when the relay ended it on its own);
    /// without, it vanishes (a refused first offer). `failed`: the pair whose bind failed
    /// (quarantined, its failed port not closed).
    fn finish(
        &mut self,
        slot: u32,
        now: Instant,
        reason: Option<EndReason>,
        failed: Option<(usize, u16, SocketAddr)>,
    ) {
        let id = self.id(slot);
        let Some(sess) = self.sessions.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        if let Some(t) = sess.timer {
            self.timers.remove(&(t, slot));
        }
        if let Some(v) = self.by_call.get_mut(&*sess.call_id) {
            v.retain(|s| *s != slot);
            if v.is_empty() {
                self.by_call.remove(&*sess.call_id);
            }
        }
        for stream in &sess.streams {
            for leg in &stream.legs {
                let ai = usize::from(leg.addr);
                let ip = self.tables[ai].ip;
                let rtcp = leg.rtcp_bound.then_some(leg.rtp_port + 1);
                for p in std::iter::once(leg.rtp_port).chain(rtcp) {
                    let at = SocketAddr::new(ip, p);
                    if failed.map(|f| f.2) != Some(at) {
                        self.commands.push_back(Command::ClosePort(at));
                    }
                }
                let quarantine = failed.is_some_and(|(fa, fp, _)| fa == ai && fp == leg.rtp_port);
                self.tables[ai].give_back(leg.rtp_port, quarantine);
            }
        }
        self.generations[slot as usize] = self.generations[slot as usize].wrapping_add(1);
        self.free_slots.push(slot);
        if let Some(reason) = reason {
            let record = sess.record(id, now, Some(reason));
            if reason != EndReason::Deleted {
                self.notices.push_back(MediaEnded {
                    call_id: record.call_id.clone(),
                    from_tag: record.from_tag.clone(),
                    reason,
                });
            }
            self.events.push(MediaEvent::SessionEnded {
                session: id,
                reason,
                record: Box::new(record),
            });
        }
    }
}
