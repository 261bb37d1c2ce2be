//! Built-in agents and services, as thin drivers over the sans-IO cores.
//!
//! | module | what it is |
//! |---|---|
//! | [`http_proxy`] | the `http-proxy` service: an authenticating HTTP CONNECT proxy |
//! | [`net`] | [`net::Net`], the socket API agents are written against (implemented by the virtual fabric's `Sim`), and [`net::Agent`] |
//! | [`os`] | [`os::OsNet`]: `Net` over real OS sockets and real time, and [`os::run_until`], its blocking driver |
//! | [`punch`] | the `punch` step: UDP hole punching / TCP simultaneous open through a built-in rendezvous |
//! | [`probe`] | the `probe` step: RFC 5780 behaviour discovery with `relay::stun::Prober` |
//! | [`stun`] | the `stun` service: `relay::stun::Server` on a host's sockets |
//! | [`sip`] | the `sip-proxy` service: `relay::sip::proxy::Proxy` on a host's UDP and TCP sockets |
//! | [`tls`] | TLS (rustls) over a `Net` TCP socket: self-signed server, permissive client |
//! | [`turn`] | the `turn` service: `relay::turn::TurnServer` over UDP and TCP, sharing its port with an RFC 5780 `stun` service |
//! | [`turn_client`] | [`turn_client::TurnCheck`]: relay datagrams to an echo peer through a TURN server and count the echoes; [`turn_client::UdpEcho`] |
//! | [`turn_tcp_client`] | [`turn_tcp_client::TcpRelayCheck`]: RFC 6062 client to client through one TURN server (Connect, ConnectionAttempt, ConnectionBind, raw bytes echoed) |

pub mod http_proxy;
pub mod net;
pub mod os;
pub mod probe;
pub mod punch;
pub mod sip;
pub mod stun;
pub mod tls;
pub mod turn;
pub mod turn_client;
pub mod turn_tcp_client;
