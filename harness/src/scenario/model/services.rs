//! The services and agents of the scenario model.

use super::*;

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

/// The ng control port of a `media-relay` and of a `dispatcher` when the scenario names
/// none: 2223, the one rtpengine deployments customarily use, so Kamailio's `rtpengine`
/// module and pinhole's proxy find them at the same place.
pub const DEFAULT_NG_PORT: u16 = 2223;

/// Which media relay a `sip-proxy` hands its calls' media to, resolved from its
/// `media_relay:` / `dispatcher:` keys, its `media` policy and its host's services. The
/// runner reads only this.
#[derive(Clone, Debug, PartialEq)]
pub enum RelayUse {
    /// `media: never` and no relay named: the proxy needs none, none is started.
    None,
    /// The `media-relay` service declared on `host`: the proxy's own host when it names
    /// none, else the host `media_relay: HOST` names. Its ng address is that host's first
    /// address and the relay's `ng_port`.
    Declared {
        /// The relay's host.
        host: String,
    },
    /// The proxy's host declares no `media-relay` and the proxy names none (and its media
    /// policy is not `never`): the runner starts one on `host` (the proxy's host) with the
    /// format's defaults, [`MediaRelay::defaults`], whose `secret` is the proxy's.
    Implicit {
        /// The proxy's host.
        host: String,
    },
    /// `dispatcher: HOST`: the proxy sends its ng commands to that host's `dispatcher`
    /// service (its first address and the dispatcher's `port`).
    Dispatcher {
        /// The dispatcher's host.
        host: String,
    },
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
    /// ICE policy as written; `None`: not given, and the default depends on the call —
    /// `add-relay-candidate` where media is relayed, `passthrough` otherwise (see
    /// [`SipProxy::ice_for`]).
    pub ice: Option<IcePolicy>,
    /// Where the relay candidate ranks (default lowest).
    pub ice_priority: IcePriority,
    /// The relay the proxy uses (resolved).
    pub relay: RelayUse,
    /// The shared secret authenticating the ng control channel to its relay or dispatcher:
    /// as written, else inherited from the relay or dispatcher it uses (see
    /// `docs/reference.md`, "one secret per control channel"); `None`: unauthenticated.
    pub secret: Option<String>,
    /// Where it is declared.
    pub pos: Pos,
}

impl SipProxy {
    /// The ICE policy for a call whose media is relayed (`relayed`) or not: the one
    /// written, else `add-relay-candidate` for relayed media and `passthrough` otherwise.
    pub fn ice_for(&self, relayed: bool) -> IcePolicy {
        self.ice.unwrap_or(if relayed {
            IcePolicy::AddRelayCandidate
        } else {
            IcePolicy::Passthrough
        })
    }
}

/// `media-relay:`
#[derive(Clone, Debug, PartialEq)]
pub struct MediaRelay {
    /// Relay ports, UDP (default 40000-40999).
    pub ports: PortRange,
    /// Latching (default strict).
    pub latching: Latching,
    /// How long after signalling (an offer or answer for the stream) the relay still
    /// learns a side's address from its packets (default 5s; see `docs/reference.md`).
    pub latching_window: Duration,
    /// Idle timeout once media has flowed (default 60s).
    pub idle_timeout: Duration,
    /// Idle timeout of a stream no packet has arrived on yet (default 90s, MediaProxy's
    /// `stream_timeout`).
    pub idle_timeout_before_media: Duration,
    /// Streams per session at most (default 64, ≥ 1).
    pub streams_max: u32,
    /// The address written into SDP instead of the host's own, for a relay behind a
    /// 1:1 NAT (default none: the host's address).
    pub advertised_address: Option<IpAddr>,
    /// Clients treated as asymmetric (`latching: off` for them), by User-Agent.
    pub asymmetric_clients: Vec<UaPattern>,
    /// The ng control secret: as written, else inherited (see [`SipProxy::secret`]).
    pub secret: Option<String>,
    /// The ng control port, UDP (default [`DEFAULT_NG_PORT`]).
    pub ng_port: u16,
    /// Where it is declared (for an implicit relay: where its `sip-proxy` is).
    pub pos: Pos,
}

impl MediaRelay {
    /// A relay with every default of the format (declared at `pos`): what `media-relay: {}`
    /// means, and what a `sip-proxy` starts when its host has none ([`RelayUse::Implicit`]).
    pub fn defaults(pos: Pos) -> MediaRelay {
        MediaRelay {
            ports: PortRange {
                first: 40000,
                last: 40999,
            },
            latching: Latching::Strict,
            latching_window: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(60),
            idle_timeout_before_media: Duration::from_secs(90),
            streams_max: 64,
            advertised_address: None,
            asymmetric_clients: Vec::new(),
            secret: None,
            ng_port: DEFAULT_NG_PORT,
            pos,
        }
    }

    /// Whether a client with this User-Agent is on the asymmetric clients list.
    pub fn is_asymmetric(&self, user_agent: &str) -> bool {
        self.asymmetric_clients
            .iter()
            .any(|p| p.matches(user_agent))
    }
}

/// `dispatcher:` — MediaProxy's dispatcher: proxies send it their ng commands and it
/// picks one of `relays` per session, health-checks them and fails over.
#[derive(Clone, Debug, PartialEq)]
pub struct Dispatcher {
    /// The hosts whose `media-relay` it dispatches to (at least one, each once).
    pub relays: Vec<String>,
    /// The ng control secret: as written, else inherited (see [`SipProxy::secret`]).
    pub secret: Option<String>,
    /// How often it pings each relay (default 1s).
    pub health_interval: Duration,
    /// Its ng control port, UDP (default [`DEFAULT_NG_PORT`]).
    pub port: u16,
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
    /// Media relay dispatcher.
    pub dispatcher: Option<Dispatcher>,
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
