//! Proxy settings, inputs, outputs and events (the STYLE.md vocabulary).

pub use crate::control::ng::IcePriority;
use crate::sdp::{IcePolicy, Party, RewriteReport, Role};
use crate::sip::nat::NatTests;
use crate::sip::registrar::{RegistrarConfig, RemovalReason};
use crate::sip::transport::{Flow, Transport};
use std::net::SocketAddr;
use std::time::Duration;

/// RFC 3261 §17 timer base values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// RTT estimate (default 500 ms).
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests and INVITE responses (4 s).
    pub t2: Duration,
    /// Longest time a message stays in the network (5 s).
    pub t4: Duration,
    /// Timer C (RFC 3261 §16.6 step 11, §16.8): how long a forwarded INVITE may go on
    /// ringing — after a provisional response, with no final one — before the proxy
    /// cancels it. Restarted by every provisional response other than 100 (§16.7 step 2).
    /// The RFC wants more than 3 minutes (default 181 s); Timer B (64×T1) bounds only the
    /// wait for the first response.
    pub c: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
            c: Duration::from_secs(181),
        }
    }
}

/// The keepalive request sent towards NATed registered contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepaliveMethod {
    /// OPTIONS (nathelper's default `sipping_method`).
    Options,
    /// NOTIFY with `Event: keep-alive` (nat_traversal's choice).
    Notify,
}

impl KeepaliveMethod {
    /// The scenario keywords (`sip-proxy.nat.keepalive.method`): the method names.
    pub const VALUES: &'static [&'static str] = &["OPTIONS", "NOTIFY"];

    /// The method a scenario keyword names (exact, as the method is written).
    pub fn from_keyword(s: &str) -> Option<KeepaliveMethod> {
        match s {
            "OPTIONS" => Some(KeepaliveMethod::Options),
            "NOTIFY" => Some(KeepaliveMethod::Notify),
            _ => None,
        }
    }
}

/// Keepalives towards NATed contacts (`sip-proxy.nat.keepalive`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeepaliveConfig {
    /// Which request.
    pub method: KeepaliveMethod,
    /// Interval per contact; first pings are spread over it with the seeded RNG.
    pub interval: Duration,
    /// A binding is removed after this many unanswered pings in a row.
    pub max_missed: u32,
}

/// NAT handling (`sip-proxy.nat`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NatConfig {
    /// The detection tests (any hit marks the message NATed).
    pub tests: NatTests,
    /// Rewrite Contact of NATed dialog messages ([`crate::sip::nat::fix_contact`]).
    pub fix_contact: bool,
    /// Keepalives towards NATed bindings.
    pub keepalive: Option<KeepaliveConfig>,
}

/// When the proxy puts a media relay into a call's SDP (`sip-proxy.media`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MediaPolicy {
    /// `relay`: every call (MediaProxy's unconditional `engage_media_proxy`).
    Relay,
    /// `never`: SDP is forwarded as the endpoints wrote it.
    Never,
    /// `when-natted`: calls where the caller or the callee is behind a NAT by the
    /// configured NAT tests (the rule is in [`crate::sip::proxy::media`]).
    WhenNatted,
}

impl MediaPolicy {
    /// The scenario keywords, in the order SCENARIO-FORMAT.md lists them.
    pub const VALUES: &'static [&'static str] = &["relay", "never", "when-natted"];

    /// The policy a scenario keyword names.
    pub fn from_keyword(s: &str) -> Option<MediaPolicy> {
        match s {
            "relay" => Some(MediaPolicy::Relay),
            "never" => Some(MediaPolicy::Never),
            "when-natted" => Some(MediaPolicy::WhenNatted),
            _ => None,
        }
    }

    /// The scenario keyword.
    pub fn as_str(self) -> &'static str {
        match self {
            MediaPolicy::Relay => "relay",
            MediaPolicy::Never => "never",
            MediaPolicy::WhenNatted => "when-natted",
        }
    }
}

impl std::fmt::Display for MediaPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Media handling (`sip-proxy.media`, `sip-proxy.ice`, and where the relay is). It only
/// takes effect with a relay address ([`MediaConfig::relay`]); without one SDP is never
/// touched. See [`crate::sip::proxy::media`] for what is sent and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaConfig {
    /// Which calls go through the relay.
    pub policy: MediaPolicy,
    /// What happens to ICE attributes of relayed descriptions (sent as the ng `ICE` key:
    /// `strip` → `remove`, `add-relay-candidate` → `force-relay`, `passthrough` → none).
    pub ice: IcePolicy,
    /// The ng control address of the media relay, or of the dispatcher in front of
    /// several (`sip-proxy.media_relay` / `dispatcher`; a `media-relay` service listens
    /// on port 2223 by default). ng requests go from the proxy's SIP UDP socket; the
    /// driver hands every datagram from this address to the proxy as usual
    /// ([`crate::sip::proxy::Input::Message`] on that socket), and the proxy reads it as ng.
    pub relay: Option<SocketAddr>,
    /// The shared secret of the control channel (`sip-proxy.secret`): every ng message is
    /// signed with it and every reply must verify.
    pub secret: Option<String>,
    /// How long an offer or answer waits for the relay's reply before the message fails
    /// (503 for a request's offer, forwarded unchanged otherwise). Default 2 s.
    pub reply_timeout: Duration,
    /// RFC 8445 priority of the relay candidate with `ice: add-relay-candidate`
    /// (`sip-proxy.ice_priority`, sent as pinhole's ng `ice-priority`). Default lowest.
    pub ice_priority: IcePriority,
}

impl Default for MediaConfig {
    /// The scenario defaults: `media: when-natted`, `ice: passthrough`, no relay, no
    /// secret, a 2 s reply timeout, lowest relay candidate priority.
    fn default() -> MediaConfig {
        MediaConfig {
            policy: MediaPolicy::WhenNatted,
            ice: IcePolicy::Passthrough,
            relay: None,
            secret: None,
            reply_timeout: Duration::from_secs(2),
            ice_priority: IcePriority::Lowest,
        }
    }
}

/// Proxy settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// The proxy's addresses (one per transport it listens on): used in Via and
    /// Record-Route, and to recognise Route entries and Request-URIs that name it.
    pub listen: Vec<(Transport, SocketAddr)>,
    /// Domains the proxy is responsible for (besides its own IP addresses).
    pub domains: Vec<String>,
    /// Timer values.
    pub timers: Timers,
    /// Registrar settings.
    pub registrar: RegistrarConfig,
    /// NAT handling.
    pub nat: NatConfig,
    /// Insert Record-Route in dialog-creating requests (RFC 3261 §16.6 step 4).
    pub record_route: bool,
    /// A dialog without in-dialog traffic for this long ends (`DialogEnded{Timeout}`).
    pub dialog_timeout: Duration,
    /// Media relay policy and the relay's address.
    pub media: MediaConfig,
    /// Seed for the keepalive spread and branch ids.
    pub seed: u64,
}

impl ProxyConfig {
    /// A proxy on `udp` (and TCP on the same address), default timers, no NAT handling.
    pub fn new(addr: SocketAddr) -> ProxyConfig {
        ProxyConfig {
            listen: vec![(Transport::Udp, addr), (Transport::Tcp, addr)],
            domains: Vec::new(),
            timers: Timers::default(),
            registrar: RegistrarConfig::default(),
            nat: NatConfig::default(),
            record_route: true,
            dialog_timeout: Duration::from_secs(7200),
            media: MediaConfig::default(),
            seed: 0,
        }
    }
}

/// What the driver hands the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// One datagram (UDP) or one framed message (TCP, from a [`crate::sip::StreamFramer`]).
    Message {
        /// Where it came from.
        flow: Flow,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// A connection closed: NATed bindings registered over it go, public ones are reached
    /// at their Contact from now on, responses follow their Via (RFC 3261 §18.2.2).
    Closed(crate::sip::transport::ConnId),
    /// A [`Transmit`] could not be sent (RFC 3261 §18.4): the connection attempt failed
    /// (refused, reset, unreachable, timed out) or the connection broke before the bytes
    /// were handed to it. The driver hands back the transmit as it got it; report a closed
    /// connection (`Closed`) before the messages it lost, so that fallbacks avoid it.
    /// A request fails as if a 503 arrived (§16.9, §17.1.4), a response is re-sent to the
    /// next §18.2.2 destination or given up (§17.2.4), a keepalive's binding goes at once.
    TransportError {
        /// The flow the transmit named.
        flow: Flow,
        /// The bytes the transmit carried.
        bytes: Vec<u8>,
    },
}

/// Bytes to send ([`Transmit::flow`] names transport, addresses and connection). On
/// TCP/TLS with `conn == Some(c)` they go on connection `c` only (never elsewhere: if it
/// has closed meanwhile the driver hands the transmit back as [`Input::TransportError`]
/// and the core picks the next target); with `None` the driver reuses an open connection
/// to `to` or opens one from `from` (RFC 3261 §18.1.1), and reports a failed attempt the
/// same way.
pub use crate::io::Transmit;

/// The RFC 3261 §17 timers (named after the RFC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// INVITE client retransmit.
    TimerA,
    /// INVITE client timeout.
    TimerB,
    /// INVITE client wait for response retransmits after a non-2xx.
    TimerD,
    /// Non-INVITE client retransmit.
    TimerE,
    /// Non-INVITE client timeout.
    TimerF,
    /// INVITE server response retransmit.
    TimerG,
    /// INVITE server wait for ACK.
    TimerH,
    /// INVITE server wait for ACK retransmits.
    TimerI,
    /// Non-INVITE server wait for request retransmits.
    TimerJ,
    /// Non-INVITE client wait for response retransmits.
    TimerK,
    /// Proxy INVITE timer (RFC 3261 §16.8): a ringing INVITE is cancelled.
    TimerC,
}

/// Why a dialog ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialogEndReason {
    /// A BYE passed (from the caller when `by_caller`).
    Bye {
        /// Whether the caller (From of the INVITE) sent it.
        by_caller: bool,
    },
    /// The INVITE was cancelled (487).
    Cancelled,
    /// The INVITE failed with this final status.
    Failed(u16),
    /// No final response: Timer B (no response at all) or Timer C and the 64×T1 after
    /// its CANCEL (RFC 3261 §16.8).
    TransactionTimeout,
    /// The INVITE could not be sent: the transport reported an error (RFC 3261 §16.9,
    /// treated as a 503; the caller got a 500 by §16.7 step 6).
    TransportError,
    /// No in-dialog traffic for the dialog timeout.
    Timeout,
    /// The media relay ended the call's session (ng `media-ended`, e.g. its idle timeout)
    /// and the proxy sent a BYE to both sides.
    MediaEnded {
        /// The relay's reason.
        reason: String,
    },
}

/// Why a message was dropped without an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DropReason {
    /// Not parseable at all.
    Unparseable,
    /// A bad message that cannot be answered (a response, an ACK, no usable Via).
    Unanswerable,
    /// A response matching no transaction and not a 2xx to forward.
    UnmatchedResponse,
    /// A response whose top Via is not ours.
    NotOurVia,
    /// A retransmission absorbed by a transaction.
    Retransmission,
    /// An ACK with nowhere to go.
    UnroutableAck,
    /// A message we sent that the transport could not deliver, with no fallback left
    /// (RFC 3261 §18.4; see [`ProxyEvent::SendFailed`]).
    TransportError,
}

/// What happened, for reports and the SIP ladder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProxyEvent {
    // ===== SIP ladder =====
    /// A message arrived.
    MessageReceived {
        /// From where.
        flow: Flow,
        /// `INVITE sip:…` / `200 OK (INVITE)`.
        summary: String,
        /// Its Call-ID.
        call_id: String,
        /// Its CSeq (`1 INVITE`), empty when it has none that parses.
        cseq: String,
    },
    /// A message left.
    MessageSent {
        /// To where.
        flow: Flow,
        /// Summary.
        summary: String,
        /// Its Call-ID.
        call_id: String,
        /// Its CSeq (`1 INVITE`), empty when it has none that parses.
        cseq: String,
    },
    // ===== registrar =====
    /// A binding was added or refreshed.
    Registered {
        /// Address of record.
        aor: String,
        /// The contact URI.
        contact: String,
        /// The stored path (the REGISTER's source).
        path: Flow,
        /// Granted seconds.
        expires: u32,
        /// Whether a NAT test hit.
        natted: bool,
    },
    /// A binding went away.
    RegistrationRemoved {
        /// Address of record.
        aor: String,
        /// The contact URI.
        contact: String,
        /// Why.
        reason: RemovalReason,
    },
    // ===== NAT =====
    /// A NAT test hit on a message.
    NatDetected {
        /// The source address.
        source: SocketAddr,
        /// The tests that hit (bitmask).
        tests: u8,
        /// Whether the Contact was rewritten.
        contact_fixed: bool,
    },
    /// A keepalive was sent to a NATed binding.
    KeepaliveSent {
        /// Address of record.
        aor: String,
        /// Where.
        flow: Flow,
    },
    // ===== dialogs =====
    /// A dialog-creating INVITE was forwarded (the media session can be set up).
    DialogStarted {
        /// Call-ID.
        call_id: String,
        /// The caller's tag.
        from_tag: String,
        /// Caller address of record (From URI).
        caller: String,
        /// Callee (To URI).
        callee: String,
    },
    /// A 2xx to that INVITE was forwarded.
    DialogConfirmed {
        /// Call-ID.
        call_id: String,
        /// The callee's tag.
        to_tag: String,
    },
    /// The dialog (or the attempt) ended.
    DialogEnded {
        /// Call-ID.
        call_id: String,
        /// Why.
        reason: DialogEndReason,
    },
    // ===== media =====
    /// An SDP body was rewritten to point at the media relay and forwarded.
    MediaRewritten {
        /// Call-ID.
        call_id: String,
        /// Who wrote the description.
        party: Party,
        /// Offer or answer (RFC 3264).
        role: Role,
        /// The method of the message (`INVITE`, `ACK`, …; for a response, its CSeq method).
        method: String,
        /// The status code of a response, `None` for a request.
        status: Option<u16>,
        /// What happened to each stream.
        report: RewriteReport,
        /// A retransmission: the earlier rewrite was sent again, the relay was not asked.
        repeated: bool,
    },
    /// An SDP body could not go through the relay: a request was refused (`status`), or a
    /// message that cannot be refused (a response, an ACK) was forwarded with its SDP as
    /// the endpoint wrote it (`status: None`). Never half rewritten.
    MediaFailed {
        /// Call-ID.
        call_id: String,
        /// Who wrote the description.
        party: Party,
        /// The method of the message (for a response, its CSeq method).
        method: String,
        /// What went wrong.
        why: String,
        /// The status the proxy answered the request with, if it did.
        status: Option<u16>,
    },
    /// The call's relay session was released (the dialog or the attempt ended).
    MediaReleased {
        /// Call-ID.
        call_id: String,
    },
    // ===== transport =====
    /// The driver reported that a message could not be sent ([`Input::TransportError`]).
    SendFailed {
        /// Where it was to go.
        flow: Flow,
        /// Its summary.
        summary: String,
        /// Its Call-ID.
        call_id: String,
        /// Where a response was sent again (RFC 3261 §18.2.2's next choice); `None`: given
        /// up (a request failed as if a 503 arrived, §16.9; a response was dropped, §17.2.4;
        /// a keepalive's binding was removed).
        retried: Option<Flow>,
    },
    // ===== transactions =====
    /// A client transaction timed out (408 sent upstream when there was a request).
    TransactionTimeout {
        /// Method.
        method: String,
        /// Timer B or F (or H on the server side: no ACK).
        timer: Timer,
    },
    /// A message was dropped.
    Dropped {
        /// Why.
        reason: DropReason,
        /// From where.
        from: SocketAddr,
    },
}
