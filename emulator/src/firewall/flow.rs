//! Flow state: the 5-tuple key and the TCP connection tracking that picks the timeout.

use super::FirewallTimeouts;
use crate::verdict::Direction;
use crate::wire::{Endpoint, IcmpKind, L4, PacketInfo, Proto, tcp_flags};
use std::time::{Duration, Instant};

/// A flow's 5-tuple, oriented by the firewall's sides: `inside` is the endpoint on the
/// inside network whichever side spoke first. ICMP queries use the identifier as the port
/// (RFC 5508 §3.1); protocols without ports use port 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowKey {
    /// Transport protocol.
    pub proto: Proto,
    /// The endpoint on the inside network.
    pub inside: Endpoint,
    /// The endpoint on the outside network.
    pub outside: Endpoint,
}

impl FlowKey {
    /// The key of a packet travelling in `dir`.
    pub fn of(dir: Direction, info: &PacketInfo) -> Self {
        let src = info.src_endpoint().unwrap_or(Endpoint::new(info.src, 0));
        let dst = info.dst_endpoint().unwrap_or(Endpoint::new(info.dst, 0));
        let (inside, outside) = match dir {
            Direction::Outbound => (src, dst),
            Direction::Inbound => (dst, src),
        };
        FlowKey {
            proto: info.proto,
            inside,
            outside,
        }
    }
}

/// Where a TCP flow is in its life, as far as a middlebox can see it (RFC 5382 §5,
/// RFC 7857 §2.2). The state only selects the idle timeout.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    /// A SYN has not yet been seen in both directions (SYN_SENT / SYN_RCVD): transitory.
    Opening,
    /// SYNs seen both ways (or the flow was picked up mid-stream) and no FIN: established.
    Established,
    /// A FIN seen in one direction only: the other half may still carry data for long, so
    /// the established timeout still applies.
    HalfClosed,
    /// FINs seen in both directions (TIME_WAIT, 2·MSL): transitory.
    Closed,
    /// A RST was seen: transitory. Per RFC 7857 §2.2 the state is kept for the transitory
    /// timeout rather than deleted at once, and a later non-RST packet revives the flow.
    Reset,
}

/// The TCP flags seen on a flow, per side (index 0 = initiator, 1 = responder).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct TcpTrack {
    syn: [bool; 2],
    fin: [bool; 2],
    rst: bool,
}

impl TcpTrack {
    /// State for a flow whose first packet (from the initiator) has `flags`.
    pub(crate) fn start(flags: u8) -> Self {
        let mut t = TcpTrack::default();
        if flags & tcp_flags::SYN == 0 {
            // Picked up mid-stream (Open class, or an Allow rule): treat as established.
            t.syn = [true, true];
        }
        t.update(0, flags);
        t
    }

    /// Account a segment with `flags` from `side` (0 initiator, 1 responder).
    pub(crate) fn update(&mut self, side: usize, flags: u8) {
        let closed = self.rst || (self.fin[0] && self.fin[1]);
        let pure_syn = flags & (tcp_flags::SYN | tcp_flags::ACK | tcp_flags::RST) == tcp_flags::SYN;
        if closed && pure_syn {
            // A new connection reusing the same 5-tuple.
            *self = TcpTrack::default();
        }
        if flags & tcp_flags::RST != 0 {
            self.rst = true;
            return;
        }
        // RFC 7857 §2.2: traffic after a RST means the RST did not end the connection.
        self.rst = false;
        if flags & tcp_flags::SYN != 0 {
            self.syn[side] = true;
        }
        if flags & tcp_flags::FIN != 0 {
            self.fin[side] = true;
        }
    }

    /// The current state.
    pub(crate) fn state(&self) -> TcpState {
        if self.rst {
            TcpState::Reset
        } else if self.fin[0] && self.fin[1] {
            TcpState::Closed
        } else if !(self.syn[0] && self.syn[1]) {
            TcpState::Opening
        } else if self.fin[0] || self.fin[1] {
            TcpState::HalfClosed
        } else {
            TcpState::Established
        }
    }
}

/// A flow's protocol state, as shown in [`FlowEntry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FlowState {
    /// UDP, ICMP query, or another protocol: no state beyond the idle timer.
    Active,
    /// TCP, with its tracked state.
    Tcp(TcpState),
}

/// A snapshot of one flow (for debugging, like `conntrack -L`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    /// The 5-tuple.
    pub key: FlowKey,
    /// Which side sent the flow's first packet.
    pub initiator: Direction,
    /// Protocol state.
    pub state: FlowState,
    /// When the flow expires unless refreshed.
    pub expires: Instant,
}

/// One tracked flow.
#[derive(Clone, Debug)]
pub(crate) struct Flow {
    /// Creation sequence number: orders expiry of flows with the same deadline.
    pub(crate) seq: u64,
    pub(crate) initiator: Direction,
    pub(crate) expires: Instant,
    pub(crate) tcp: Option<TcpTrack>,
    /// Set for ICMP query flows: the initiator sent echo requests, so only echo replies
    /// may come from the other side.
    pub(crate) icmp_query: bool,
}

impl Flow {
    pub(crate) fn state(&self) -> FlowState {
        match self.tcp {
            Some(t) => FlowState::Tcp(t.state()),
            None => FlowState::Active,
        }
    }

    /// The idle timeout in the current state.
    pub(crate) fn timeout(&self, proto: Proto, t: &FirewallTimeouts) -> Duration {
        match (proto, self.tcp) {
            (Proto::Tcp, Some(track)) => match track.state() {
                TcpState::Established | TcpState::HalfClosed => t.tcp_established,
                TcpState::Opening | TcpState::Closed | TcpState::Reset => t.tcp_transitory,
            },
            (Proto::Icmp, _) => t.icmp,
            _ => t.udp,
        }
    }

    /// Whether `info`, travelling in `dir` on this flow, may pass. Only ICMP query flows
    /// refuse anything: their responder may send echo replies only (so an echo *request*
    /// from the outside does not ride on an inside host's ping).
    pub(crate) fn accepts(&self, dir: Direction, info: &PacketInfo) -> bool {
        if !self.icmp_query || dir == self.initiator {
            return true;
        }
        matches!(
            info.l4,
            L4::Icmp {
                kind: IcmpKind::EchoReply,
                ..
            }
        )
    }

    /// Account a packet in `dir`; returns whether it refreshes the idle timer. TCP packets
    /// refresh in both directions (RFC 5382 REQ-5 counts idle time of the connection); other
    /// flows only from the initiator's side (RFC 4787 REQ-6: outbound refresh, no inbound
    /// refresh, so the outside cannot keep a pinhole open on its own).
    pub(crate) fn on_packet(&mut self, dir: Direction, info: &PacketInfo) -> bool {
        let side = usize::from(dir != self.initiator);
        match (&mut self.tcp, info.l4) {
            (Some(track), L4::Tcp { flags, .. }) => {
                track.update(side, flags);
                true
            }
            _ => side == 0,
        }
    }
}
