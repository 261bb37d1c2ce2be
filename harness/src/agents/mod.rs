//! Built-in agents and services, as thin drivers over the sans-IO cores.
//!
//! | module | what it is |
//! |---|---|
//! | [`net`] | [`net::Net`], the socket API agents are written against (implemented by the virtual fabric's `Sim`), and [`net::Agent`] |
//! | [`os`] | [`os::OsNet`]: `Net` over real OS sockets and real time, readiness-driven, and [`os::run_until`], its blocking driver |
//! | [`services`] | the scenario's services: `sip-proxy`, `stun`, `turn`, `http-proxy` |
//! | [`steps`] | the agents of `punch` and `probe` steps |
//! | [`tls`] | TLS (rustls) over a `Net` TCP socket: self-signed server, permissive client, PEM loading |
//! | [`turn_client`] | [`turn_client::TurnCheck`]: relay datagrams to an echo peer through a TURN server and count the echoes; [`turn_client::UdpEcho`] |
//! | [`turn_tcp_client`] | [`turn_tcp_client::TcpRelayCheck`]: RFC 6062 client to client through one TURN server (Connect, ConnectionAttempt, ConnectionBind, raw bytes echoed) |

pub mod net;
pub mod os;
pub mod services;
pub mod steps;
pub mod tls;
pub mod turn_client;
pub mod turn_tcp_client;
