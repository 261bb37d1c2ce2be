//! The typed scenario model: what a scenario (or one matrix cell of it) means, with
//! defaults applied, presets/profiles merged and addresses assigned.
//!
//! Items that the runner may have to reject later (see [`super::check_available`]) keep
//! the [`Pos`] of the key that asked for them.

use super::error::Pos;
use super::values::{Comparison, PortRange, Rate};
use emulator::Prefix;
// The cores own their scenario keywords (`VALUES`, `from_keyword`, `as_str`): the model
// holds their enums, no mirrors.
pub use emulator::Direction;
pub use emulator::firewall::{Action as RuleAction, FirewallClass, RuleProto};
pub use emulator::nat::{
    FilteringBehavior, Fragments, MappingBehavior, Pooling, PortAllocation, Preset, Refresh,
    SipAlgMode, Unsolicited,
};
// A punch step's transport is the punch agent's own enum.
pub use crate::agents::steps::punch::PunchProtocol;
pub use relay::sdp::IcePolicy;
pub use relay::sip::nat::NatTests;
pub use relay::sip::proxy::{KeepaliveMethod, MediaPolicy};
pub use relay::stun::{Behavior, PortAllocation as MeasuredPortAllocation};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

macro_rules! keyword_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vm])* $var),+
        }
        impl $name {
            /// Every value as written in a scenario.
            pub const VALUES: &'static [&'static str] = &[$($text),+];
            /// The value as written in a scenario.
            pub fn as_str(&self) -> &'static str {
                match self { $($name::$var => $text),+ }
            }
            /// The value for a scenario keyword.
            pub fn from_keyword(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$var),)+ _ => None }
            }
        }
        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keyword_enum!(
    /// Where the scenario runs.
    Fabric {
        /// TUN devices and network namespaces (the default).
        Kernel = "kernel",
        /// In-process, under virtual time.
        Virtual = "virtual",
    }
);

keyword_enum!(
    /// The media relay's latching.
    Latching {
        /// Latch only to the signalled address (the default).
        Strict = "strict",
        /// Latch to the first packet's source.
        FirstPacket = "first-packet",
        /// No latching (asymmetric clients).
        Off = "off",
    }
);

keyword_enum!(
    /// A NAT step's action.
    NatActionKind {
        /// Drop all bindings.
        Reboot = "reboot",
        /// Move live flows to new external ports.
        Rebind = "rebind",
        /// A new external address pool.
        Renumber = "renumber",
    }
);

keyword_enum!(
    /// How a call's media went.
    MediaPath {
        /// Through a media relay or a TURN allocation.
        Relayed = "relayed",
        /// Peer to peer.
        Direct = "direct",
        /// Either.
        Any = "any",
    }
);

keyword_enum!(
    /// The kind of a step.
    StepKindName {
        /// `call`
        Call = "call",
        /// `reinvite`
        Reinvite = "reinvite",
        /// `probe`
        Probe = "probe",
        /// `punch`
        Punch = "punch",
        /// `run`
        Run = "run",
        /// `wait`
        Wait = "wait",
        /// `link`
        Link = "link",
        /// `nat`
        Nat = "nat",
    }
);

// ===== topology =====

/// A network (an IP segment).
#[derive(Clone, Debug, PartialEq)]
pub struct Network {
    /// Its name.
    pub name: String,
    /// Its prefix.
    pub prefix: Prefix,
    /// The NAT or firewall whose inside it is: the hosts' default gateway. `None` for a
    /// flat routed segment (like `internet`).
    pub gateway: Option<Gateway>,
    /// Where the network is declared.
    pub pos: Pos,
}

/// The device a network's hosts route through.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Gateway {
    /// The NAT or firewall name.
    pub device: String,
    /// Its address on the network (the first free usable one, normally `.1`).
    pub address: IpAddr,
}

/// A NAT's per-protocol binding timeouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NatTimeouts {
    /// UDP (default 2m).
    pub udp: Duration,
    /// TCP established (default 2h4m).
    pub tcp_established: Duration,
    /// TCP transitory (default 4m).
    pub tcp_transitory: Duration,
    /// ICMP (default 60s).
    pub icmp: Duration,
}

/// Every behaviour axis of a NAT, resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct NatConfig {
    /// Mapping behaviour.
    pub mapping: MappingBehavior,
    /// Filtering behaviour.
    pub filtering: FilteringBehavior,
    /// Port allocation.
    pub port_allocation: PortAllocation,
    /// Keep port parity.
    pub port_parity: bool,
    /// External port range.
    pub port_range: PortRange,
    /// Address pooling.
    pub pooling: Pooling,
    /// Hairpinning.
    pub hairpinning: bool,
    /// Timeouts.
    pub timeouts: NatTimeouts,
    /// Which direction refreshes bindings.
    pub refresh: Refresh,
    /// Most bindings at once.
    pub max_bindings: u32,
    /// Answer to unsolicited inbound packets.
    pub unsolicited: Unsolicited,
    /// IPv4 fragment handling.
    pub fragments: Fragments,
    /// SIP ALG.
    pub sip_alg: SipAlgMode,
}

impl NatConfig {
    /// The defaults of the format with `preset`'s mapping, filtering and port allocation.
    pub fn preset(preset: Preset) -> Self {
        // The preset's axes are the emulator's (one table, RFC 4787 terms); every other
        // axis takes the format's default below.
        let axes = emulator::nat::NatConfig::preset(preset, Vec::new());
        let (mapping, filtering, port_allocation) =
            (axes.mapping, axes.filtering, axes.port_allocation);
        NatConfig {
            mapping,
            filtering,
            port_allocation,
            port_parity: false,
            port_range: PortRange {
                first: 1024,
                last: 65535,
            },
            pooling: Pooling::Paired,
            hairpinning: false,
            timeouts: NatTimeouts {
                udp: Duration::from_secs(120),
                tcp_established: Duration::from_secs(7440),
                tcp_transitory: Duration::from_secs(240),
                icmp: Duration::from_secs(60),
            },
            refresh: Refresh::Outbound,
            max_bindings: 65536,
            unsolicited: Unsolicited::Drop,
            fragments: Fragments::Translate,
            sip_alg: SipAlgMode::Off,
        }
    }
}

/// The NAT profile a NAT was loaded from.
#[derive(Clone, Debug, PartialEq)]
pub struct ProfileInfo {
    /// The profile file (resolved from the scenario's folder).
    pub path: PathBuf,
    /// Its free `name:`.
    pub name: Option<String>,
    /// Its free `description:`.
    pub description: Option<String>,
    /// Its free `recorded:` note (when and where `pinhole probe` recorded it).
    pub recorded: Option<String>,
}

/// A NAT.
#[derive(Clone, Debug, PartialEq)]
pub struct Nat {
    /// Its name.
    pub name: String,
    /// The inside network.
    pub inside: String,
    /// The outside network.
    pub outside: String,
    /// The external address pool (on the outside network).
    pub addresses: Vec<IpAddr>,
    /// Its address on the inside network (the inside hosts' gateway).
    pub inside_address: IpAddr,
    /// The `type:` preset, if given.
    pub preset: Option<Preset>,
    /// The profile, if given.
    pub profile: Option<ProfileInfo>,
    /// The resolved behaviour.
    pub config: NatConfig,
    /// Where `sip_alg: rewrite` was asked for (scenario or profile), if it was.
    pub sip_alg_pos: Option<Pos>,
    /// Where the NAT is declared.
    pub pos: Pos,
}

/// One ordered firewall rule, checked before the class.
#[derive(Clone, Debug, PartialEq)]
pub struct Rule {
    /// Allow or deny.
    pub action: RuleAction,
    /// Protocol (default any).
    pub proto: RuleProto,
    /// Direction (default outbound).
    pub direction: Direction,
    /// Destination ports (default all).
    pub ports: Option<PortRange>,
    /// Destination prefix (default all).
    pub to: Option<Prefix>,
    /// Where the rule is written.
    pub pos: Pos,
}

/// A firewall (routes, does not translate).
#[derive(Clone, Debug, PartialEq)]
pub struct Firewall {
    /// Its name.
    pub name: String,
    /// The inside network.
    pub inside: String,
    /// The outside network.
    pub outside: String,
    /// The class (default open).
    pub class: FirewallClass,
    /// Extra rules before the class.
    pub rules: Vec<Rule>,
    /// Its address on the inside network (the inside hosts' gateway).
    pub inside_address: IpAddr,
    /// Its address on the outside network: the first free one after the hosts'.
    pub outside_address: IpAddr,
    /// Where the firewall is declared.
    pub pos: Pos,
}

/// A host.
#[derive(Clone, Debug, PartialEq)]
pub struct Host {
    /// Its name.
    pub name: String,
    /// Its network.
    pub network: String,
    /// Its addresses (listed, or one auto-assigned).
    pub addresses: Vec<IpAddr>,
    /// Its default gateway (the network's NAT or firewall), if any.
    pub gateway: Option<IpAddr>,
    /// Where the host is declared.
    pub pos: Pos,
}

/// Networks, NATs, firewalls and hosts, in file order.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Topology {
    /// Networks.
    pub networks: Vec<Network>,
    /// NATs.
    pub nats: Vec<Nat>,
    /// Firewalls.
    pub firewalls: Vec<Firewall>,
    /// Hosts.
    pub hosts: Vec<Host>,
}

impl Topology {
    /// The network named `name`.
    pub fn network(&self, name: &str) -> Option<&Network> {
        self.networks.iter().find(|n| n.name == name)
    }
    /// The NAT named `name`.
    pub fn nat(&self, name: &str) -> Option<&Nat> {
        self.nats.iter().find(|n| n.name == name)
    }
    /// The firewall named `name`.
    pub fn firewall(&self, name: &str) -> Option<&Firewall> {
        self.firewalls.iter().find(|n| n.name == name)
    }
    /// The host named `name`.
    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.iter().find(|n| n.name == name)
    }
    /// The default gateway of network `name` (its NAT or firewall), if it has one.
    pub fn gateway_of(&self, network: &str) -> Option<&Gateway> {
        self.network(network)?.gateway.as_ref()
    }
}

// ===== links =====

/// Gilbert–Elliott loss: `p` = P(good→bad), `r` = P(bad→good), `h`/`k` = P(delivered) in
/// the bad/good state. All fractions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Gilbert {
    /// P(good → bad).
    pub p: f64,
    /// P(bad → good).
    pub r: f64,
    /// P(delivered) in the bad state (default 0).
    pub h: f64,
    /// P(delivered) in the good state (default 1).
    pub k: f64,
}

/// Packet loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Loss {
    /// Independent loss with this probability (a fraction).
    Random(f64),
    /// Bursty loss.
    Gilbert(Gilbert),
}

/// The impairments of one direction; `None` = not set (no impairment, or for a `link`
/// step: keep the current setting). `queue` defaults to 50 packets when `rate` is set.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Impairment {
    /// Fixed delay.
    pub delay: Option<Duration>,
    /// Uniform ±jitter.
    pub jitter: Option<Duration>,
    /// Loss.
    pub loss: Option<Loss>,
    /// Duplication probability.
    pub duplicate: Option<f64>,
    /// Reordering probability.
    pub reorder: Option<f64>,
    /// Rate limit.
    pub rate: Option<Rate>,
    /// Rate limiter queue, packets.
    pub queue: Option<u32>,
    /// MTU.
    pub mtu: Option<u32>,
}

impl Impairment {
    /// `self` with every setting of `other` that is set replacing ours.
    pub fn merged(&self, other: &Impairment) -> Impairment {
        Impairment {
            delay: other.delay.or(self.delay),
            jitter: other.jitter.or(self.jitter),
            loss: other.loss.or(self.loss),
            duplicate: other.duplicate.or(self.duplicate),
            reorder: other.reorder.or(self.reorder),
            rate: other.rate.or(self.rate),
            queue: other.queue.or(self.queue),
            mtu: other.mtu.or(self.mtu),
        }
    }
}

/// Which attachment a link impairs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkTarget {
    /// A host's attachment.
    Host(String),
    /// A NAT's or firewall's inside attachment (`NAT.inside`).
    Inside(String),
    /// A NAT's or firewall's outside attachment (`NAT.outside`).
    Outside(String),
}

impl std::fmt::Display for LinkTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkTarget::Host(h) => f.write_str(h),
            LinkTarget::Inside(d) => write!(f, "{d}.inside"),
            LinkTarget::Outside(d) => write!(f, "{d}.outside"),
        }
    }
}

/// An impaired attachment: `up` is away from the host (or from the NAT's side).
#[derive(Clone, Debug, PartialEq)]
pub struct Link {
    /// The attachment.
    pub target: LinkTarget,
    /// Away from the host/device side.
    pub up: Impairment,
    /// Towards it.
    pub down: Impairment,
    /// Where the link is declared.
    pub pos: Pos,
}

// ===== services =====

/// The SIP proxy's NAT handling.
#[derive(Clone, Debug, PartialEq)]
pub struct SipNat {
    /// NAT detection tests (default: all four).
    pub test: NatTests,
    /// Rewrite Contact to the received address (default true).
    pub fix_contact: bool,
    /// Keepalive pings towards NATed contacts (default none).
    pub keepalive: Option<SipKeepalive>,
}

/// Proxy-side NAT keepalive.
#[derive(Clone, Debug, PartialEq)]
pub struct SipKeepalive {
    /// The request sent (default OPTIONS).
    pub method: KeepaliveMethod,
    /// The interval (default 20s).
    pub interval: Duration,
}

/// `sip-proxy:`
#[derive(Clone, Debug, PartialEq)]
pub struct SipProxy {
    /// UDP and TCP port (default 5060).
    pub port: u16,
    /// NAT handling.
    pub nat: SipNat,
    /// Media policy (default when-natted).
    pub media: MediaPolicy,
    /// ICE policy (default passthrough).
    pub ice: IcePolicy,
    /// Where it is declared.
    pub pos: Pos,
}

/// `media-relay:`
#[derive(Clone, Debug, PartialEq)]
pub struct MediaRelay {
    /// Relay ports (default 40000-40999).
    pub ports: PortRange,
    /// Latching (default strict).
    pub latching: Latching,
    /// Idle timeout (default 60s).
    pub idle_timeout: Duration,
    /// Where it is declared.
    pub pos: Pos,
}

/// The RFC 5780 alternate address of a STUN service.
#[derive(Clone, Debug, PartialEq)]
pub struct StunAlternate {
    /// The host's second address.
    pub address: IpAddr,
    /// The alternate port (default the STUN port + 1).
    pub port: u16,
}

/// `stun:`
#[derive(Clone, Debug, PartialEq)]
pub struct Stun {
    /// Port (default 3478).
    pub port: u16,
    /// RFC 5780 alternate address and port.
    pub alternate: Option<StunAlternate>,
    /// Where it is declared.
    pub pos: Pos,
}

/// `turn:`
#[derive(Clone, Debug, PartialEq)]
pub struct Turn {
    /// Port (default 3478).
    pub port: u16,
    /// Realm (default `pinhole`).
    pub realm: String,
    /// Long-term credentials, user → password, in file order.
    pub users: Vec<(String, String)>,
    /// Relay ports (default 49152-65535).
    pub relay_ports: PortRange,
    /// Allocations per user (default unlimited).
    pub quota: Option<u32>,
    /// TURN over TLS port (default none).
    pub tls_port: Option<u16>,
    /// The TLS certificate chain and private key (PEM files, resolved against the
    /// scenario file's folder, checked when the scenario is loaded); `None`: a
    /// self-signed certificate made at start. A format extension.
    pub tls_cert: Option<(PathBuf, PathBuf)>,
    /// The password algorithms offered (RFC 8489 §9.2.4), in order; `None`: the
    /// server's default (SHA-256, MD5); empty: RFC 5389 behaviour. A format extension.
    pub password_algorithms: Option<Vec<relay::turn::PasswordAlgorithm>>,
    /// Also accept the RFC 5766 channel numbers 0x5000–0x7FFF that RFC 8656 §12 reserves
    /// (default false: 400 Bad Request, as RFC 8656 §12.2 says). Older clients, coturn's
    /// `turnutils_uclient` among them, still pick them.
    pub legacy_channels: bool,
    /// Where it is declared.
    pub pos: Pos,
}

/// `http-proxy:`
#[derive(Clone, Debug, PartialEq)]
pub struct HttpProxy {
    /// Port (default 3128).
    pub port: u16,
    /// Users allowed (empty = no authentication), user → password.
    pub users: Vec<(String, String)>,
    /// Where it is declared.
    pub pos: Pos,
}

/// The services of one host.
#[derive(Clone, Debug, PartialEq)]
pub struct Services {
    /// The host they run on.
    pub host: String,
    /// SIP proxy/registrar.
    pub sip_proxy: Option<SipProxy>,
    /// Media relay.
    pub media_relay: Option<MediaRelay>,
    /// STUN server.
    pub stun: Option<Stun>,
    /// TURN server.
    pub turn: Option<Turn>,
    /// HTTP CONNECT proxy.
    pub http_proxy: Option<HttpProxy>,
    /// Where the host's services are declared.
    pub pos: Pos,
}

// ===== agents =====

/// TURN credentials of a UA.
#[derive(Clone, Debug, PartialEq)]
pub struct UaTurn {
    /// The host running the TURN service.
    pub server: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
}

/// The built-in SIP user agent.
#[derive(Clone, Debug, PartialEq)]
pub struct Ua {
    /// SIP user (default the host name).
    pub user: String,
    /// The host running the SIP proxy, if any.
    pub proxy: Option<String>,
    /// REGISTER and keep it refreshed (default false).
    pub register: bool,
    /// Gather ICE candidates (default false).
    pub ice: bool,
    /// The host running the STUN service used for srflx candidates.
    pub stun: Option<String>,
    /// TURN for relay candidates.
    pub turn: Option<UaTurn>,
    /// Symmetric RTP (default true).
    pub symmetric: bool,
    /// Client-side keepalive interval (default none).
    pub keepalive: Option<Duration>,
    /// Where the UA is declared.
    pub pos: Pos,
}

/// The agents of one host.
#[derive(Clone, Debug, PartialEq)]
pub struct Agents {
    /// The host.
    pub host: String,
    /// The UA.
    pub ua: Option<Ua>,
    /// Where the host's agents are declared.
    pub pos: Pos,
}

// ===== steps =====

/// A call's media.
#[derive(Clone, Debug, PartialEq)]
pub struct CallMedia {
    /// Codec (default PCMU).
    pub codec: String,
    /// Packetisation time (default 20ms).
    pub ptime: Duration,
    /// How long until the caller's BYE (default 10s).
    pub duration: Duration,
    /// Add a video stream (default false).
    pub video: bool,
}

/// A `nat` step's action.
#[derive(Clone, Debug, PartialEq)]
pub enum NatAction {
    /// Drop all bindings.
    Reboot,
    /// Move live flows to new external ports.
    Rebind,
    /// New external address pool.
    Renumber(Vec<IpAddr>),
}

/// What a step does.
#[derive(Clone, Debug, PartialEq)]
pub enum StepKind {
    /// Place a call.
    Call {
        /// Caller host (has a UA).
        from: String,
        /// Callee host (has a UA).
        to: String,
        /// Media.
        media: CallMedia,
    },
    /// Re-INVITE an earlier call.
    Reinvite {
        /// The call step's name.
        call: String,
        /// Put on hold (true) or resume (false); `None` = same media.
        hold: Option<bool>,
    },
    /// RFC 5780 behaviour discovery.
    Probe {
        /// The probing host.
        from: String,
        /// The host with the STUN service.
        server: String,
        /// Measure the binding lifetime (also set when an expectation asks for it).
        lifetime: bool,
        /// Upper bound of the lifetime search (default 5m).
        lifetime_max: Duration,
    },
    /// UDP/TCP hole punching.
    Punch {
        /// The two peers.
        between: [String; 2],
        /// The rendezvous host.
        rendezvous: String,
        /// Transport (default udp).
        protocol: PunchProtocol,
        /// Give up after (default 5s).
        timeout: Duration,
    },
    /// Run a real program.
    Run {
        /// The host.
        on: String,
        /// Program and arguments.
        cmd: Vec<String>,
        /// Stop it after this (default: at the end of the scenario).
        timeout: Option<Duration>,
    },
    /// Do nothing for a while.
    Wait(Duration),
    /// Change a link's impairments (merged into the current settings).
    Link {
        /// The attachment.
        on: LinkTarget,
        /// The new settings, towards / away from the attachment.
        up: Impairment,
        /// Towards the host/device side.
        down: Impairment,
    },
    /// Act on a NAT.
    Nat {
        /// The NAT.
        on: String,
        /// What to do.
        action: NatAction,
    },
}

impl StepKind {
    /// The step kind's keyword.
    pub fn name(&self) -> StepKindName {
        match self {
            StepKind::Call { .. } => StepKindName::Call,
            StepKind::Reinvite { .. } => StepKindName::Reinvite,
            StepKind::Probe { .. } => StepKindName::Probe,
            StepKind::Punch { .. } => StepKindName::Punch,
            StepKind::Run { .. } => StepKindName::Run,
            StepKind::Wait(_) => StepKindName::Wait,
            StepKind::Link { .. } => StepKindName::Link,
            StepKind::Nat { .. } => StepKindName::Nat,
        }
    }
}

/// One step of the timeline.
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// Its name (needed to refer to it from `expect:` or a `reinvite`).
    pub name: Option<String>,
    /// Not before this scenario time.
    pub at: Option<Duration>,
    /// For call/reinvite/run: done when the call ends or the program exits.
    pub wait: bool,
    /// What it does.
    pub kind: StepKind,
    /// Where the step's kind key is.
    pub pos: Pos,
}

// ===== expectations =====

/// A text check on a program's output.
#[derive(Clone, Debug, PartialEq)]
pub struct TextMatch {
    /// The output contains this text.
    pub contains: String,
}

/// A measure and its expected value. Percentages are fractions (`3%` → `0.03`).
#[derive(Clone, Debug, PartialEq)]
pub enum Measure {
    /// call: the call was answered.
    Established(bool),
    /// call: INVITE sent → 200 received, at the caller.
    SetupTime(Comparison<Duration>),
    /// call: relayed or direct media.
    Media(MediaPath),
    /// call: RTP loss, worse direction (fraction).
    Loss(Comparison<f64>),
    /// call: mean RFC 3550 interarrival jitter, worse direction.
    Jitter(Comparison<Duration>),
    /// call: mean one-way delay, worse direction.
    OneWayDelay(Comparison<Duration>),
    /// call: E-model MOS, worse direction.
    Mos(Comparison<f64>),
    /// probe: mapping behaviour.
    Mapping(Behavior),
    /// probe: filtering behaviour.
    Filtering(Behavior),
    /// probe: hairpinning.
    Hairpinning(bool),
    /// probe: UDP binding lifetime.
    BindingLifetime(Comparison<Duration>),
    /// probe: port allocation (an extension of SCENARIO-FORMAT.md version 1).
    PortAllocation(MeasuredPortAllocation),
    /// probe: port parity kept (an extension of SCENARIO-FORMAT.md version 1).
    PortParity(bool),
    /// punch: each side received a datagram from the other.
    Connected(bool),
    /// run: exit status.
    Exit(Comparison<i64>),
    /// run: standard output.
    Stdout(TextMatch),
    /// run: standard error.
    Stderr(TextMatch),
}

impl Measure {
    /// The measure's key in a scenario.
    pub fn key(&self) -> &'static str {
        match self {
            Measure::Established(_) => "established",
            Measure::SetupTime(_) => "setup_time",
            Measure::Media(_) => "media",
            Measure::Loss(_) => "loss",
            Measure::Jitter(_) => "jitter",
            Measure::OneWayDelay(_) => "one_way_delay",
            Measure::Mos(_) => "mos",
            Measure::Mapping(_) => "mapping",
            Measure::Filtering(_) => "filtering",
            Measure::Hairpinning(_) => "hairpinning",
            Measure::BindingLifetime(_) => "binding_lifetime",
            Measure::PortAllocation(_) => "port_allocation",
            Measure::PortParity(_) => "port_parity",
            Measure::Connected(_) => "connected",
            Measure::Exit(_) => "exit",
            Measure::Stdout(_) => "stdout",
            Measure::Stderr(_) => "stderr",
        }
    }
}

/// The measures each step kind can produce.
pub fn measures_of(kind: StepKindName) -> &'static [&'static str] {
    match kind {
        StepKindName::Call => &[
            "established",
            "setup_time",
            "media",
            "loss",
            "jitter",
            "one_way_delay",
            "mos",
        ],
        StepKindName::Probe => &[
            "mapping",
            "filtering",
            "hairpinning",
            "binding_lifetime",
            "port_allocation",
            "port_parity",
        ],
        StepKindName::Punch => &["connected"],
        StepKindName::Run => &["exit", "stdout", "stderr"],
        _ => &[],
    }
}

/// One measure check of an expectation.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    /// The measure and expected value.
    pub measure: Measure,
    /// Where the measure's key is.
    pub pos: Pos,
}

/// One `when:` condition: the value at `path` means `value`.
#[derive(Clone, Debug, PartialEq)]
pub struct When {
    /// The dotted path as written.
    pub path: String,
    /// The value as written.
    pub value: String,
    /// Where the path key is.
    pub pos: Pos,
}

/// An expectation: one step and its measures.
#[derive(Clone, Debug, PartialEq)]
pub struct Expectation {
    /// The kind of step it names (call, probe, punch, run).
    pub kind: StepKindName,
    /// The step's name.
    pub step: String,
    /// Conditions on the cell; all must hold.
    pub when: Vec<When>,
    /// The measures, each its own check.
    pub checks: Vec<Check>,
    /// Index in the file's `expect:` list (stable across cells).
    pub index: usize,
    /// Where the expectation starts.
    pub pos: Pos,
}

// ===== the whole =====

/// A fully resolved scenario (or one matrix cell of it).
#[derive(Clone, Debug, PartialEq)]
pub struct Spec {
    /// Format version (1).
    pub version: u32,
    /// Name.
    pub name: String,
    /// Description.
    pub description: Option<String>,
    /// The scenario seed: `seed:` or the first 8 bytes (LE) of SHA-256(name).
    pub seed: u64,
    /// Fabric (default kernel).
    pub fabric: Fabric,
    /// Where `fabric:` is written (`None`: defaulted).
    pub fabric_pos: Option<Pos>,
    /// Scenario time limit (default 5m).
    pub time_limit: Duration,
    /// The topology, addresses resolved.
    pub topology: Topology,
    /// Link impairments.
    pub links: Vec<Link>,
    /// Services by host.
    pub services: Vec<Services>,
    /// Agents by host.
    pub agents: Vec<Agents>,
    /// The timeline.
    pub steps: Vec<Step>,
    /// Expectations. In a [`super::Cell`], only those whose `when:` holds.
    pub expect: Vec<Expectation>,
}

impl Spec {
    /// The services of `host`.
    pub fn services_of(&self, host: &str) -> Option<&Services> {
        self.services.iter().find(|s| s.host == host)
    }
    /// The UA of `host`.
    pub fn ua_of(&self, host: &str) -> Option<&Ua> {
        self.agents.iter().find(|a| a.host == host)?.ua.as_ref()
    }
    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.name.as_deref() == Some(name))
    }
}
