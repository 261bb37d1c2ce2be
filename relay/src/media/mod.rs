//! The media relay: a sans-IO, MediaProxy-style RTP relay core that a SIP proxy (or
//! rtpengine's "ng" protocol, through a control server) puts between two endpoints.
//!
//! # Why
//!
//! Two endpoints behind NATs often cannot send media to each other: the addresses in
//! their SDP are private, and a symmetric NAT (RFC 4787 §4.1 address-and-port-dependent
//! mapping) maps every destination to a new public port. A relay with public ports fixes
//! both: each endpoint is told (by the SDP rewrite) to send to the relay, and the relay
//! sends each side's media to where the other side's packets really come from — its
//! *latched* address (the "symmetric RTP" of RFC 4961, which every phone behind a NAT
//! relies on). Latching is also the relay's attack surface: a relay that latches onto
//! the first packet from anywhere sends a call's media to whoever sprays its ports first
//! ("RTP Bleed", CVE-2017-14099 / CVE-2017-14114 / CVE-2025-53399). This core's default
//! latching cannot be captured that way (see *Latching* below).
//!
//! # Model
//!
//! - A **session** is one call: Call-ID + the From tag of its first offer (RFC 3261 §12).
//!   The party that wrote the first offer is side A ([`Party::Caller`]), the other side B
//!   ([`Party::Callee`]). In `offer` the From tag is the offerer's; in `answer` the From
//!   tag is still the offerer's and the To tag the answerer's (rtpengine's semantics, which
//!   Kamailio's `rtpengine` module follows, swapping tags for requests from the callee).
//!   A description's writer is thus side A when its tag is A's tag, side B otherwise.
//! - Each session has **streams** (one per relayed `m=` line, by position, RFC 3264 §6;
//!   audio, video, `application`, T.38 `udptl`), at most [`RelayConfig::streams_max`].
//! - Each stream has one **leg** per side: a pair of relay ports (RTP on an even port,
//!   RTCP on the next, RFC 3550 §11) on one of the relay's [`RelayConfig::addresses`] of
//!   the writer's address family. The pair is always reserved; the RTCP ports are bound
//!   ([`Command::BindPort`]) until offer and answer both carry `a=rtcp-mux` (RFC 5761
//!   §5.1.1) and closed then ([`Command::ClosePort`]), so an answer that refuses mux, or a
//!   re-offer that drops it, finds its RTCP ports without moving the stream. Side X
//!   sends to and receives from its own leg's ports; a packet arriving on leg X is sent
//!   out of the other leg's matching port to the other side. The leg facing side X is
//!   what the *other* party's rewritten SDP names (with [`RelayConfig::advertised`] in
//!   place of the local address for a relay behind a 1:1 NAT).
//! - The SDP rewrite is [`crate::sdp::rewrite_with`]: the relay implements
//!   [`crate::sdp::MediaControl`] internally, so offers and answers are rewritten exactly as
//!   the proxy's in-process rewrite does, ICE policy and relay-candidate priority
//!   included.
//!
//! # Latching (the part that matters)
//!
//! Per leg and per port (RTP, RTCP), the relay learns where side X really is. Three modes
//! ([`Latching`], per relay; a side whose User-Agent matches
//! [`RelayConfig::asymmetric_clients`] is always [`Latching::Off`]):
//!
//! - **[`Latching::Strict`]** (default). A packet arriving on side X's leg latches the
//!   leg's port to its source only when all of these hold:
//!   1. it arrives within [`RelayConfig::latching_window`] after signalling that concerns
//!      X: an offer written by X opens X's window; an answer opens the windows of both
//!      sides (the exchange is complete and both start sending then);
//!   2. its source IP is the IP X signalled from — [`SignalRequest::received_from`] as the
//!      proxy saw it — or, when that is absent, the IP of X's SDP address (an endpoint not
//!      behind NAT). Ports are not compared: a NAT maps media to other ports than
//!      signalling;
//!   3. it is plausible: RTP version 2 with a payload type among the formats of either
//!      side's `m=` line, or a well-formed RTCP compound (RFC 3550 §6.1), or a STUN
//!      Binding request that is a valid ICE check (below). For streams that are not RTP
//!      (`udptl`, …) any non-empty datagram is plausible.
//!
//!   Before X's leg latches, media to X goes to X's SDP address. Once it latched, packets
//!   from every other source are dropped and counted ([`DropReason`]), and reported as
//!   [`MediaEvent::SourceRejected`] (coalesced: at most one event per leg per second,
//!   carrying how many were not reported individually). A new offer or answer (a
//!   re-INVITE or UPDATE) reopens the window, and a packet that passes 1–3 in it moves
//!   the latch: that is the documented path for an endpoint that changed address.
//!   The other documented path is ICE: a STUN Binding request from side X whose USERNAME
//!   is `ufrag(Y):ufrag(X)` and whose MESSAGE-INTEGRITY verifies with Y's `a=ice-pwd`
//!   (RFC 8445 §7.2.2, RFC 8489 §9.1; the credentials come from the two SDPs), or a
//!   Binding success response from X that verifies with X's own password (§7.2.5), moves
//!   the latch from any source at any time: only an endpoint of the call knows the
//!   passwords, and a NAT that rebinds makes the next consent check (RFC 7675) arrive
//!   from the new port. No other packet ever moves a latch.
//! - **[`Latching::FirstPacket`]** (MediaProxy's behaviour): the first packet from
//!   anywhere latches each port; later sources are dropped; signalling by X clears X's
//!   latches (the next first packet latches again). Verified ICE checks move it as
//!   above. Shown in the tests to send media to a sprayer that is first.
//! - **[`Latching::Off`]**: media to X always goes to X's SDP address, and packets are
//!   accepted from any source (asymmetric clients, which send from another port than
//!   they receive on).
//!
//! [`RelayConfig::asymmetric_clients`] patterns match the User-Agent case-insensitively;
//! without `*` a pattern matches when it occurs anywhere in the User-Agent (substring);
//! `*` matches any run of characters, and a pattern with `*` must match the whole
//! User-Agent (`Cisco*` matches User-Agents starting with "Cisco", `*ATA*` anything
//! containing "ATA").
//!
//! STUN (RFC 7983 first byte 0–3, [`crate::demux`]) is relayed end to end like media:
//! the relay answers no STUN, so ICE accepts a pair through the relay candidate only when
//! both ends confirmed it (issue item 5). DTLS and ZRTP are relayed from latched sources
//! but never latch.
//!
//! # Sessions
//!
//! A session ends on [`MediaRelay::delete`] (BYE, CANCEL, failure: the control side's
//! call), when its ports cannot be bound ([`Input::BindFailed`]), or on an idle timeout:
//! no packet relayed for [`RelayConfig::idle_timeout_before_media`] since the last
//! signalling while no media has flowed yet, or for [`RelayConfig::idle_timeout`] once
//! media has flowed. A session whose streams are all on hold (RFC 3264 §8.4: `sendonly`,
//! `inactive`, `c=0.0.0.0`, as [`crate::sdp::RewriteReport::held`] reports) is not ended by
//! `idle_timeout` — hold means no media — until a new offer/answer takes it off hold.
//! Timing: after media started, a session ends exactly `idle_timeout` after its last
//! relayed packet; before media the relay checks every quarter of `idle_timeout` (at
//! least every second), so a session whose media stopped soon after it started may live
//! up to a quarter of `idle_timeout` longer (learning "media started" on the fast path
//! would cost a timer-index insertion, i.e. an allocation, per session). Idle
//! endings also yield a [`MediaEnded`] notice ([`MediaRelay::poll_notice`]) so the control
//! side ends the dialog (a BYE to both sides, as MediaProxy with the dialog module does).
//! Every ending emits [`MediaEvent::SessionEnded`] with an [`Accounting`] record.
//!
//! Per stream and direction the record holds packets, bytes, drops by reason, the codec
//! (the `a=rtpmap` of the first payload type relayed, RFC 3551 static types otherwise),
//! the setup delay (session creation → first packet relayed in that direction), and loss
//! and jitter as the receiving endpoint reported them in RTCP report blocks (RFC 3550
//! §6.4: fraction lost, cumulative lost; jitter converted to milliseconds with the
//! codec's clock rate, 8000 Hz when unknown).
//!
//! Draining ([`MediaRelay::set_draining`]): new sessions are refused with
//! [`MediaError::Draining`]; running ones go on (re-offers included);
//! [`MediaRelay::is_drained`] says when the last one ended.
//!
//! # Fast path
//!
//! [`MediaRelay::handle_packet`] takes the receiving socket, the source and the bytes and
//! returns a [`Verdict`]: the driver sends the same bytes itself (zero copy). It allocates
//! nothing and takes no lock: the port names its session through a `Vec` indexed by port
//! (per relay address), sessions live in a slab, counters are plain integers, events go
//! to a preallocated, bounded queue. [`MediaRelay::handle_input`] /
//! [`MediaRelay::poll_transmit`] wrap it in the crate's vocabulary for drivers that prefer
//! owned transmits.
//!
//! # Driving it
//!
//! The crate's drive contract: after any `handle_*`, drain [`MediaRelay::poll_command`]
//! (bind or close sockets), [`MediaRelay::poll_transmit`], [`MediaRelay::poll_event`] and
//! [`MediaRelay::poll_notice`]; wait for a datagram or [`MediaRelay::poll_timeout`]. The
//! control calls (`offer`, `answer`, `delete`) are `handle_*`s too: drain after them.
//!
//! ```no_run
//! # use std::time::Instant;
//! # use std::net::SocketAddr;
//! use relay::media::{Command, MediaRelay, RelayConfig, Verdict};
//! # fn wait(_: Option<Instant>) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> { None }
//! # fn send(_: SocketAddr, _: SocketAddr, _: &[u8]) {}
//! # fn bind(_: SocketAddr) {}
//! # fn close(_: SocketAddr) {}
//! let config = RelayConfig::new(vec!["203.0.113.1".parse().unwrap()], 30000..=39999);
//! let mut relay = MediaRelay::new(config).expect("valid config");
//! loop {
//!     // (offer/answer/delete calls from the control side go here too)
//!     match wait(relay.poll_timeout()) {
//!         Some((local, remote, data)) => {
//!             if let Verdict::Forward { from, to } =
//!                 relay.handle_packet(Instant::now(), local, remote, &data)
//!             {
//!                 send(from, to, &data); // the same bytes, from the other leg's port
//!             }
//!         }
//!         None => relay.handle_timeout(Instant::now()),
//!     }
//!     while let Some(c) = relay.poll_command() {
//!         match c {
//!             Command::BindPort(a) => bind(a),
//!             Command::ClosePort(a) => close(a),
//!         }
//!     }
//!     while let Some(_event) = relay.poll_event() {}
//!     while let Some(_ended) = relay.poll_notice() { /* ng `media-ended` to the proxy */ }
//! }
//! ```
//!
//! [`Input::BindFailed`]`(addr)`: the driver could not bind a port the core asked for;
//! the pair is withdrawn from the pool for the life of the core
//! ([`MediaRelay::ports_quarantined`]) and the session that held it ends with
//! [`EndReason::BindFailed`] (and a notice).
//!
//! # Out of scope
//!
//! Transcoding, SRTP termination or re-keying (SDES/DTLS-SRTP pass through untouched),
//! recording, RTP header rewriting (SSRC/sequence), bandwidth policing, TCP media, BUNDLE
//! awareness (bundled streams are un-bundled: one leg per `m=`), bridging between address
//! families within one stream (both legs take the writer's family), SSRC continuity as a
//! plausibility test (the issue names it; within the window the version and payload
//! type decide, and a moved source is followed through signalling or ICE only), a
//! session's ports moving to another family on a re-offer, releasing the ports
//! of streams a re-offer disables (they are released when the session ends), and
//! answering STUN.

mod control;
mod latch;
mod ports;
mod relay;
mod session;

pub use relay::MediaRelay;
pub use session::{Accounting, DirectionRecord, DropCounts, StreamRecord};

pub use crate::sdp::{IcePolicy, IcePriority, Party, Role};

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::Duration;

/// How a leg learns where its side really is (see the module docs, *Latching*).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Latching {
    /// `strict`: within the window after signalling, from the signalled IP, plausible.
    #[default]
    Strict,
    /// `first-packet`: the first packet from anywhere (MediaProxy).
    FirstPacket,
    /// `off`: send to the SDP address, accept from anyone (asymmetric clients).
    Off,
}

impl std::fmt::Display for Latching {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Latching {
    /// The scenario keywords.
    pub const VALUES: &'static [&'static str] = &["strict", "first-packet", "off"];

    /// The mode a keyword names.
    pub fn from_keyword(s: &str) -> Option<Latching> {
        match s {
            "strict" => Some(Latching::Strict),
            "first-packet" => Some(Latching::FirstPacket),
            "off" => Some(Latching::Off),
            _ => None,
        }
    }

    /// The keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            Latching::Strict => "strict",
            Latching::FirstPacket => "first-packet",
            Latching::Off => "off",
        }
    }
}

/// How port pairs are picked from the range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PortAllocation {
    /// A free pair drawn from the seeded generator (RFC 6056 §3.3.2's spirit: ports that
    /// are hard to guess make spraying costlier). Default.
    #[default]
    Random,
    /// The pair free the longest (first in, first out): deterministic and readable.
    Sequential,
}

/// The relay's configuration (the `media-relay` scenario service).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// The local addresses media ports are bound on (IPv4 and/or IPv6, unicast, not
    /// unspecified). Each has its own port table over [`RelayConfig::ports`].
    pub addresses: Vec<IpAddr>,
    /// The address written into SDP instead of a local address of the same family, for
    /// a relay behind a 1:1 NAT.
    pub advertised: Option<IpAddr>,
    /// The port range (inclusive); RTP takes even ports, RTCP the next odd one.
    pub ports: RangeInclusive<u16>,
    /// Most streams per session (default 64).
    pub streams_max: usize,
    /// The latching mode (default strict).
    pub latching: Latching,
    /// How long after signalling a side's leg may latch (default 20 s).
    pub latching_window: Duration,
    /// Idle time after which a session that has relayed media ends (default 60 s).
    pub idle_timeout: Duration,
    /// Idle time after signalling after which a session that never relayed media ends
    /// (default 180 s: longer than a phone rings, RFC 3261 Timer C).
    pub idle_timeout_before_media: Duration,
    /// User-Agent patterns of asymmetric clients (see the module docs), latched
    /// [`Latching::Off`].
    pub asymmetric_clients: Vec<String>,
    /// How port pairs are picked (default random).
    pub port_allocation: PortAllocation,
    /// The seed of the core's generator.
    pub seed: u64,
}

impl RelayConfig {
    /// A configuration with the defaults above.
    pub fn new(addresses: Vec<IpAddr>, ports: RangeInclusive<u16>) -> RelayConfig {
        RelayConfig {
            addresses,
            advertised: None,
            ports,
            streams_max: 64,
            latching: Latching::Strict,
            latching_window: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            idle_timeout_before_media: Duration::from_secs(180),
            asymmetric_clients: Vec::new(),
            port_allocation: PortAllocation::Random,
            seed: 0,
        }
    }
}

/// Why a [`RelayConfig`] is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No address to bind media ports on.
    #[error("the media relay has no address")]
    NoAddress,
    /// An address that is unspecified, multicast, or listed twice.
    #[error("{0} cannot be a media relay address (unspecified, multicast or repeated)")]
    BadAddress(IpAddr),
    /// The port range holds no even/odd pair, or starts at port 0.
    #[error("the port range {start}-{end} holds no RTP/RTCP port pair")]
    PortRange {
        /// First port.
        start: u16,
        /// Last port.
        end: u16,
    },
    /// `streams_max` is 0 or above 65535.
    #[error("streams_max must be 1 to 65535, not {0}")]
    StreamsMax(usize),
    /// An empty asymmetric-client pattern (it would match everyone).
    #[error("an asymmetric_clients pattern is empty")]
    EmptyPattern,
}

/// Why an offer or answer was refused. The SDP is left unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MediaError {
    /// The relay is draining and takes no new session.
    #[error("the media relay is draining")]
    Draining,
    /// An answer for a call the relay has no session for.
    #[error("no media session for this call")]
    UnknownSession,
    /// The session would have more than `streams_max` streams.
    #[error("more than {limit} streams in one session")]
    StreamsMax {
        /// The limit.
        limit: usize,
    },
    /// The relay has no address of the endpoint's family.
    #[error("the media relay has no {0} address")]
    NoAddress(&'static str),
    /// Every port pair of that family is in use.
    #[error("no free {0} media port left")]
    NoPorts(&'static str),
}

/// One offer or answer as the control side saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignalRequest<'a> {
    /// The Call-ID.
    pub call_id: &'a str,
    /// The From tag: the offerer's, in an offer and in its answer (rtpengine's semantics).
    pub from_tag: &'a str,
    /// The To tag: the answerer's (required to tell sides apart in an answer; absent in an
    /// initial offer).
    pub to_tag: Option<&'a str>,
    /// Offer or answer ([`MediaRelay::signal`] dispatches on it; [`MediaRelay::offer`] and
    /// [`MediaRelay::answer`] set it).
    pub role: Role,
    /// Where the description's writer sent its signalling from, as the proxy saw it (ng
    /// `received-from`; port 0 when ng gave only the address). Only the IP is used: it is
    /// the source a strict leg may latch from.
    pub received_from: Option<SocketAddr>,
    /// The writer's User-Agent, for [`RelayConfig::asymmetric_clients`].
    pub user_agent: Option<&'a str>,
    /// What to do with ICE attributes.
    pub ice: IcePolicy,
    /// The relay candidate's priority.
    pub ice_priority: IcePriority,
}

impl<'a> SignalRequest<'a> {
    /// A request with no signalling source, no User-Agent, ICE
    /// [`IcePolicy::AddRelayCandidate`] at [`IcePriority::Lowest`].
    pub fn new(call_id: &'a str, from_tag: &'a str, to_tag: Option<&'a str>, role: Role) -> Self {
        SignalRequest {
            call_id,
            from_tag,
            to_tag,
            role,
            received_from: None,
            user_agent: None,
            ice: IcePolicy::AddRelayCandidate,
            ice_priority: IcePriority::Lowest,
        }
    }
}

/// A session's id in events and records: slot and generation, unique for the core's
/// life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionId(pub u64);

impl std::fmt::Display for SessionId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "s{}.{}", self.0 & 0xffff_ffff, self.0 >> 32)
    }
}

/// What to do with one received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// Send the same bytes from the local socket `from` to `to`.
    Forward {
        /// The relay port to send from (the other side's leg).
        from: SocketAddr,
        /// The destination (latched or SDP address).
        to: SocketAddr,
    },
    /// Drop it; counted.
    Drop(DropReason),
}

/// Why a datagram was not relayed. Counted per leg ([`DropCounts`]) except
/// [`DropReason::UnknownPort`] ([`MediaRelay::unknown_port_drops`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DropReason {
    /// No stream owns the receiving port (freed, never allocated, or not ours).
    UnknownPort,
    /// The leg is latched and the source is another one.
    WrongSource,
    /// Strict: the leg is not latched and its latching window is closed (or was never
    /// opened: its side has not signalled).
    WindowClosed,
    /// Strict, window open: the source IP is not the one the side signalled from.
    WrongAddress,
    /// Strict, window open, right IP: not RTP/RTCP of the call, nor a valid ICE check.
    Implausible,
    /// The other side has no address yet (no SDP, not latched).
    NoDestination,
}

impl DropReason {
    /// A short snake_case name (accounting records, reports).
    pub fn as_str(self) -> &'static str {
        match self {
            DropReason::UnknownPort => "unknown_port",
            DropReason::WrongSource => "wrong_source",
            DropReason::WindowClosed => "window_closed",
            DropReason::WrongAddress => "wrong_address",
            DropReason::Implausible => "implausible",
            DropReason::NoDestination => "no_destination",
        }
    }
}

/// RTP or RTCP (RFC 3550; on one port told apart by RFC 5761 §4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Component {
    /// RTP (and STUN, DTLS on the RTP port).
    Rtp,
    /// RTCP.
    Rtcp,
}

/// How a latch was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LatchVia {
    /// Strict: a plausible packet from the signalled IP within the window.
    Window,
    /// First-packet mode.
    FirstPacket,
    /// A verified ICE connectivity check or response (any time, any source).
    IceCheck,
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EndReason {
    /// [`MediaRelay::delete`].
    Deleted,
    /// No media within `idle_timeout_before_media` of signalling.
    IdleBeforeMedia,
    /// No media for `idle_timeout` after media had flowed.
    Idle,
    /// The driver could not bind one of its ports.
    BindFailed,
}

impl EndReason {
    /// A short snake_case name (ng `media-ended` reason, accounting records).
    pub fn as_str(self) -> &'static str {
        match self {
            EndReason::Deleted => "deleted",
            EndReason::IdleBeforeMedia => "idle_before_media",
            EndReason::Idle => "idle",
            EndReason::BindFailed => "bind_failed",
        }
    }
}

/// What happened, typed, for reports. A driver may ignore every event.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum MediaEvent {
    // ===== session events =====
    /// A first offer created a session.
    SessionCreated {
        /// The session.
        session: SessionId,
        /// Its Call-ID.
        call_id: String,
        /// Side A's tag.
        from_tag: String,
    },
    /// A session ended.
    SessionEnded {
        /// The session.
        session: SessionId,
        /// Why.
        reason: EndReason,
        /// Its accounting record.
        record: Box<Accounting>,
    },
    // ===== stream events =====
    /// A stream went on or off hold (from the rewrite report of an offer/answer).
    StreamHeld {
        /// The session.
        session: SessionId,
        /// The stream (m= position).
        stream: usize,
        /// On hold now.
        held: bool,
    },
    /// A leg's port latched (or moved) to a source.
    Latched {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: usize,
        /// Whose leg.
        side: Party,
        /// Which port of the leg.
        component: Component,
        /// The learnt address.
        addr: SocketAddr,
        /// How.
        via: LatchVia,
    },
    /// Packets from a source the leg does not accept.
    SourceRejected {
        /// The session.
        session: SessionId,
        /// The stream.
        stream: usize,
        /// Whose leg it arrived on.
        side: Party,
        /// The rejected source.
        source: SocketAddr,
        /// Why.
        reason: DropReason,
        /// Rejections on this leg so far, this one included.
        counted: u64,
        /// Rejections on this leg since the previous event that no event reported.
        coalesced: u64,
    },
}

/// For the control side: a session ended by the relay itself, so the dialog should end
/// too (ng pinhole extension `media-ended {call-id, from-tag, reason}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaEnded {
    /// The Call-ID.
    pub call_id: String,
    /// Side A's tag.
    pub from_tag: String,
    /// Why.
    pub reason: EndReason,
}

/// The driver's input besides control calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input<'a> {
    /// A datagram received on the relay socket `local` from `remote`.
    Packet {
        /// The relay socket.
        local: SocketAddr,
        /// The source.
        remote: SocketAddr,
        /// The bytes.
        data: &'a [u8],
    },
    /// The driver could not bind this port (see the module docs).
    BindFailed(SocketAddr),
}

/// What the driver must do with its sockets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Bind a UDP socket on this address (a relay port now in use).
    BindPort(SocketAddr),
    /// Close the socket bound on this address.
    ClosePort(SocketAddr),
}

/// Whether `user_agent` matches `pattern` (see the module docs: case-insensitive;
/// substring without `*`; with `*`, a glob over the whole User-Agent).
pub fn user_agent_matches(pattern: &str, user_agent: &str) -> bool {
    let p = pattern.to_ascii_lowercase();
    let ua = user_agent.to_ascii_lowercase();
    if !p.contains('*') {
        return ua.contains(&p);
    }
    let parts: Vec<&str> = p.split('*').collect();
    let mut rest = ua.as_str();
    let last = parts.len() - 1;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == last {
            return rest.ends_with(part);
        } else if let Some(at) = rest.find(part) {
            rest = &rest[at + part.len()..];
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn user_agent_patterns() {
        assert!(user_agent_matches("linksys", "Linksys/PAP2T-5.1"));
        assert!(!user_agent_matches("linksys", "Cisco/SPA"));
        assert!(user_agent_matches("Cisco*", "cisco ata 186"));
        assert!(!user_agent_matches("Cisco*", "my cisco"));
        assert!(user_agent_matches("*ATA*", "Cisco ATA 186"));
        assert!(user_agent_matches("*186", "Cisco ATA 186"));
        assert!(!user_agent_matches("*186", "Cisco ATA 1867"));
        assert!(user_agent_matches("a*b*c", "aXXbYYc"));
        assert!(!user_agent_matches("a*b*c", "aXXcYYb"));
        assert!(user_agent_matches("*", "anything"));
    }

    #[test]
    fn keywords_round_trip() {
        for k in Latching::VALUES {
            assert_eq!(Latching::from_keyword(k).unwrap().as_str(), *k);
        }
        assert_eq!(Latching::from_keyword("loose"), None);
    }
}
