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
