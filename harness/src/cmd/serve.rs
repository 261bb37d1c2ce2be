//! `pinhole serve stun|turn` (standalone servers on the machine's own sockets) and
//! `pinhole turn-client` (relay datagrams to an echo peer through a TURN server and count
//! the echoes). Thin drivers: the services and the check are the ones scenarios use
//! ([`crate::agents::services::stun::StunService`], [`crate::agents::services::turn::TurnService`],
//! [`crate::agents::turn_client::TurnCheck`]) on [`OsNet`], in real time.

use crate::agents::net::{Agent, Net};
use crate::agents::os::{EXTERNAL_TOKENS, OsNet, run_until};
use crate::agents::services::stun::StunService;
use crate::agents::services::turn::{TurnService, TurnServiceConfig};
use crate::agents::turn_client::{ProxyVia, TurnCheck, TurnCheckConfig};
use crate::agents::turn_tcp_client::{TcpRelayCheck, TcpRelayCheckConfig};
use anyhow::{Context, Result, anyhow, bail};
use relay::stun::ServerConfig;
use relay::turn::{Transport, TurnConfig};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Options of `pinhole serve stun|turn`.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// `turn` (STUN too) or `stun` only.
    pub turn: bool,
    /// The listening transport address (a concrete address: it is also the relay address).
    pub listen: SocketAddr,
    /// RFC 5780 alternate address (the alternate port is the listening port + 1).
    pub alternate: Option<IpAddr>,
    /// TURN realm.
    pub realm: String,
    /// TURN users, `NAME:PASSWORD`.
    pub users: Vec<String>,
    /// TURN relay ports, `A-B`.
    pub relay_ports: (u16, u16),
    /// Allocations per user.
    pub quota: Option<u32>,
    /// Accept TURN over TCP on the same port.
    pub tcp: bool,
    /// Accept TURN over TLS on this port.
    pub tls_port: Option<u16>,
    /// The TLS certificate chain and key (PEM files); `None`: a self-signed certificate
    /// made at start.
    pub tls_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Password algorithms offered (RFC 8489 §9.2.4); `None`: the default (SHA-256, MD5).
    pub password_algorithms: Option<Vec<relay::turn::PasswordAlgorithm>>,
    /// Accept RFC 5766 channel numbers 0x5000–0x7FFF.
    pub legacy_channels: bool,
}

/// Parses `sha256,md5` (in order; `none` for an empty list).
pub fn parse_password_algorithms(s: &str) -> Result<Vec<relay::turn::PasswordAlgorithm>> {
    if s.trim() == "none" {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for name in s.split(',') {
        let a = relay::turn::PasswordAlgorithm::from_name(name.trim())
            .with_context(|| format!("`{name}`: not sha256 or md5 (or `none` alone)"))?;
        if out.contains(&a) {
            bail!("`{name}` is listed twice");
        }
        out.push(a);
    }
    Ok(out)
}

/// Parses `A-B` (or a single port).
pub fn parse_port_range(s: &str) -> Result<(u16, u16)> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a
        .trim()
        .parse()
        .with_context(|| format!("`{s}`: not a port range like 49152-65535"))?;
    let b: u16 = b
        .trim()
        .parse()
        .with_context(|| format!("`{s}`: not a port range like 49152-65535"))?;
    if a == 0 || a > b {
        bail!("`{s}`: the range must be non-empty and start above port 0");
    }
    Ok((a, b))
}

/// Parses `NAME:PASSWORD`.
pub fn parse_user(s: &str) -> Result<(String, String)> {
    match s.split_once(':') {
        Some((u, p)) if !u.is_empty() => Ok((u.to_string(), p.to_string())),
        _ => bail!("`{s}`: give a user as NAME:PASSWORD"),
    }
}

/// SIGINT and SIGTERM: a flag, and a byte written to a pipe whose read end is
/// registered with `net`'s readiness set, so that a signal arriving between the flag check
/// and the wait still ends the wait (the handlers stay installed for the process).
struct StopSignal {
    flag: Arc<AtomicBool>,
    /// The read end, kept open while `net` waits on it.
    _pipe: std::os::unix::net::UnixStream,
}

/// The token of the signal pipe in the serving `OsNet`'s readiness set.
const SIGNAL_TOKEN: usize = EXTERNAL_TOKENS;

/// SIGINT and SIGTERM set the flag and write a byte to the returned socket's peer: register
/// the socket (edge-triggered; any number of readiness sets may watch it) to be woken.
pub(crate) fn signal_pipe() -> Result<(Arc<AtomicBool>, std::os::unix::net::UnixStream)> {
    let flag = Arc::new(AtomicBool::new(false));
    let (read, write) = std::os::unix::net::UnixStream::pair().context("a signal pipe")?;
    read.set_nonblocking(true)?;
    write.set_nonblocking(true)?;
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&flag)).context("install a signal handler")?;
        signal_hook::low_level::pipe::register(sig, write.try_clone()?)
            .context("install a signal handler")?;
    }
    Ok((flag, read))
}

fn stop_signal(net: &OsNet) -> Result<StopSignal> {
    use std::os::fd::AsRawFd;
    let (flag, read) = signal_pipe()?;
    net.registry()
        .register(
            &mut mio::unix::SourceFd(&read.as_raw_fd()),
            mio::Token(SIGNAL_TOKEN),
            mio::Interest::READABLE,
        )
        .context("wait on the signal pipe")?;
    Ok(StopSignal { flag, _pipe: read })
}

/// Serve `service` until SIGINT/SIGTERM: poll it, then wait until one of its sockets is
/// ready, its next timeout, or a signal — no polling interval, so an idle service sleeps
/// and a request is handled as soon as it arrives. Returns the exit code, 0.
fn serve_until_stopped(net: &mut OsNet, service: &mut dyn Agent<OsNet>, stop: &StopSignal) -> u8 {
    println!("pinhole: serving until SIGINT or SIGTERM");
    while !stop.flag.load(Ordering::Relaxed) {
        service.poll(net);
        net.wait(service.poll_timeout());
    }
    println!("pinhole: stopped");
    0
}

/// `pinhole serve`: serve until SIGINT/SIGTERM. Returns the exit code.
pub fn serve(o: &ServeOptions) -> Result<u8> {
    if o.listen.ip().is_unspecified() {
        bail!(
            "--listen {}: give the address clients reach this machine at (it is also the \
             relayed address and the RFC 5780 primary address), not an unspecified one",
            o.listen
        );
    }
    let stun = ServerConfig {
        primary: o.listen,
        alternate: o.alternate,
        alternate_port: None,
        software: Some(format!("pinhole {}", env!("CARGO_PKG_VERSION"))),
    };
    stun.validate().map_err(|e| anyhow!("--alternate: {e}"))?;
    let mut host = vec![o.listen.ip()];
    host.extend(o.alternate);
    let mut net = OsNet::new(vec![host])?;
    let stop = stop_signal(&net)?;
    let mut service: Box<dyn Agent<OsNet>> = if o.turn {
        let users = o
            .users
            .iter()
            .map(|u| parse_user(u))
            .collect::<Result<Vec<_>>>()
            .context("--user")?;
        if users.is_empty() {
            bail!("give at least one --user NAME:PASSWORD: TURN needs long-term credentials");
        }
        let mut turn = TurnConfig::new(o.listen, o.listen.ip(), o.realm.clone());
        turn.users = users;
        turn.relay_ports = o.relay_ports;
        turn.quota = o.quota;
        turn.legacy_channels = o.legacy_channels;
        if let Some(a) = &o.password_algorithms {
            turn.password_algorithms = a.clone();
        }
        turn.software = stun.software.clone();
        // Nonces and relayed ports differ from run to run; a scenario fixes its own seed.
        turn.seed = u64::from(std::process::id())
            ^ std::time::SystemTime::UNIX_EPOCH
                .elapsed()
                .map_or(0, |d| d.as_nanos() as u64);
        let config = TurnServiceConfig {
            turn,
            stun: o.alternate.map(|_| stun.clone()),
            tcp: o.tcp,
            tls: match o.tls_port {
                Some(p) => Some((
                    p,
                    match &o.tls_cert {
                        Some((cert, key)) => crate::agents::tls::server_from_pem_files(cert, key),
                        None => {
                            crate::agents::tls::self_signed_server(vec![o.listen.ip().to_string()])
                        }
                    }
                    .map_err(|e| anyhow!("{e}"))?,
                )),
                None => None,
            },
        };
        let svc = TurnService::start(&mut net, 0, config).map_err(|e| anyhow!("{e}"))?;
        let udp: Vec<String> = svc.udp_addresses().iter().map(|a| a.to_string()).collect();
        println!(
            "pinhole: TURN (RFC 8656) on UDP{} {}, realm `{}`, {} user(s), relaying from {} ports {}-{}{}",
            if o.tcp { " and TCP" } else { "" },
            o.listen,
            o.realm,
            o.users.len(),
            o.listen.ip(),
            o.relay_ports.0,
            o.relay_ports.1,
            o.quota.map(|q| format!(", quota {q}")).unwrap_or_default()
        );
        if let Some(p) = o.tls_port {
            println!(
                "pinhole: TURN over TLS on TCP {} ({})",
                SocketAddr::new(o.listen.ip(), p),
                match &o.tls_cert {
                    Some((cert, _)) => format!("certificate {}", cert.display()),
                    None => "self-signed certificate".into(),
                }
            );
        }
        println!(
            "pinhole: STUN Binding on UDP {}{}",
            udp.join(", "),
            if o.alternate.is_some() {
                " (RFC 5780: CHANGE-REQUEST, OTHER-ADDRESS)"
            } else {
                ""
            }
        );
        Box::new(svc)
    } else {
        let svc = StunService::start(&mut net, 0, stun.clone()).map_err(|e| anyhow!("{e}"))?;
        let addrs: Vec<String> = stun
            .listen_addresses()
            .iter()
            .map(|a| a.to_string())
            .collect();
        println!(
            "pinhole: STUN{} on UDP {}",
            if o.alternate.is_some() {
                " (RFC 5780)"
            } else {
                ""
            },
            addrs.join(", ")
        );
        Box::new(svc)
    };
    Ok(serve_until_stopped(&mut net, &mut *service, &stop))
}

/// `pinhole serve proxy`: the SIP proxy/registrar on `listen` (UDP and TCP) until SIGINT
/// or SIGTERM. Returns the exit code.
pub fn serve_proxy(listen: SocketAddr, domains: Vec<String>, fix_contact: bool) -> Result<u8> {
    use relay::sip::nat::NatTests;
    if listen.ip().is_unspecified() {
        bail!(
            "--listen {listen}: give the address clients reach this machine at (it goes into \
             Via and Record-Route), not an unspecified one"
        );
    }
    let mut config = relay::sip::proxy::ProxyConfig::new(listen);
    config.domains = domains;
    config.seed = u64::from(std::process::id());
    if fix_contact {
        config.nat.tests = NatTests::PRIVATE_CONTACT
            .union(NatTests::SOURCE_DIFFERS_FROM_VIA)
            .union(NatTests::PRIVATE_VIA)
            .union(NatTests::SOURCE_PORT_DIFFERS_FROM_VIA);
        config.nat.fix_contact = true;
    }
    let mut net = OsNet::new(vec![vec![listen.ip()]])?;
    let stop = stop_signal(&net)?;
    let mut service =
        crate::agents::services::sip_proxy::SipProxyService::start(&mut net, 0, config)
            .map_err(|e| anyhow!("{e}"))?;
    println!(
        "pinhole: SIP proxy and registrar on UDP and TCP {listen}{}",
        if fix_contact {
            ", fixing NATed Contacts"
        } else {
            ""
        }
    );
    Ok(serve_until_stopped(&mut net, &mut service, &stop))
}

/// Options of `pinhole turn-client`.
#[derive(Clone, Debug)]
pub struct TurnClientOptions {
    /// `HOST[:PORT]` (port 3478 by default).
    pub server: String,
    /// `NAME:PASSWORD`.
    pub user: String,
    /// The UDP echo peer (not with `tcp_relay`).
    pub peer: Option<SocketAddr>,
    /// RFC 6062 client to client ([`crate::agents::turn_tcp_client::TcpRelayCheck`]).
    pub tcp_relay: bool,
    /// Use ChannelBind and ChannelData.
    pub channel: bool,
    /// TURN over TCP.
    pub tcp: bool,
    /// Datagrams to send.
    pub count: u32,
    /// Payload bytes each.
    pub size: usize,
    /// Give up after this long.
    pub timeout: Duration,
    /// An HTTP CONNECT proxy to reach the server through (TCP only).
    pub proxy: Option<SocketAddr>,
    /// The proxy's Basic credentials, `NAME:PASSWORD`.
    pub proxy_user: Option<String>,
    /// TURN over TLS (with `tcp`).
    pub tls: bool,
}

/// `pinhole turn-client`: 0 when every echo came back, 1 otherwise.
pub fn turn_client(o: &TurnClientOptions) -> Result<u8> {
    let (user, password) = parse_user(&o.user).context("--user")?;
    let with_port = if o.server.parse::<IpAddr>().is_ok() || !o.server.contains(':') {
        format!("{}:3478", o.server)
    } else {
        o.server.clone()
    };
    let server = with_port
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .or_else(|| o.server.parse().ok())
        .ok_or_else(|| anyhow!("`{}`: not a server address (HOST[:PORT])", o.server))?;
    let any = if server.is_ipv4() {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    };
    let mut net = OsNet::new(vec![vec![any]])?;
    if o.tcp_relay {
        return tcp_relay_client(&mut net, o, server, user, password);
    }
    let peer = o
        .peer
        .ok_or_else(|| anyhow!("--peer is needed (unless --tcp-relay)"))?;
    let transport = if o.tcp {
        Transport::Tcp
    } else {
        Transport::Udp
    };
    let config = TurnCheckConfig {
        server,
        transport,
        username: user,
        password,
        peer,
        channel: o.channel,
        count: o.count,
        size: o.size,
        timeout: o.timeout,
        seed: u64::from(std::process::id()),
        proxy: match o.proxy {
            Some(address) => Some(ProxyVia {
                address,
                credentials: o
                    .proxy_user
                    .as_deref()
                    .map(parse_user)
                    .transpose()
                    .context("--proxy-user")?,
            }),
            None => None,
        },
        tls: o.tls,
    };
    if (config.proxy.is_some() || o.tls) && !o.tcp {
        bail!("--proxy and --tls need --tcp: they carry TURN over a TCP connection");
    }
    let mut check = TurnCheck::start(&mut net, 0, config).context("open the client socket")?;
    let deadline = net.now() + o.timeout + Duration::from_secs(1);
    run_until(&mut net, &mut [&mut check], deadline);
    let out = check.outcome();
    if let Some(r) = out.relayed {
        println!(
            "allocated {r} on {server} over {}; mapped address {}",
            match (o.tcp, o.tls) {
                (true, true) => "TLS",
                (true, false) => "TCP",
                _ => "UDP",
            },
            out.mapped.map_or("unknown".into(), |m| m.to_string())
        );
    }
    let what = if o.channel {
        "ChannelData"
    } else {
        "Send/Data indications"
    };
    Ok(report_check(
        what,
        out.passed(),
        out.sent,
        out.received,
        out.error.as_deref(),
    ))
}

/// Print a relay check's result line (and its error) and return the exit code: 0 only when
/// everything sent came back.
fn report_check(what: &str, passed: bool, sent: u32, received: u32, error: Option<&str>) -> u8 {
    println!(
        "{what} {}: sent {sent}, received {received}, lost {}",
        if passed { "OK" } else { "FAILED" },
        sent - received
    );
    if let Some(e) = error {
        eprintln!("pinhole turn-client: {e}");
    }
    u8::from(!passed)
}

/// `pinhole turn-client --tcp-relay`: RFC 6062 between two TCP allocations.
fn tcp_relay_client(
    net: &mut OsNet,
    o: &TurnClientOptions,
    server: SocketAddr,
    username: String,
    password: String,
) -> Result<u8> {
    let config = TcpRelayCheckConfig {
        server,
        username,
        password,
        tls: o.tls,
        count: o.count,
        size: o.size,
        timeout: o.timeout,
        seed: u64::from(std::process::id()),
    };
    let mut check = TcpRelayCheck::start(net, 0, config).context("open the client sockets")?;
    let deadline = net.now() + o.timeout + Duration::from_secs(1);
    run_until(net, &mut [&mut check], deadline);
    let out = check.outcome();
    if let [Some(a), Some(b)] = out.relayed {
        println!(
            "allocated TCP {a} and {b} on {server} over {}",
            if o.tls { "TLS" } else { "TCP" }
        );
    }
    if let [Some(a), Some(b)] = out.ids {
        println!(
            "Connect gave connection {}, ConnectionAttempt announced {}",
            a.0, b.0
        );
    }
    Ok(report_check(
        "TCP relay (RFC 6062)",
        out.passed(),
        out.sent,
        out.received,
        out.error.as_deref(),
    ))
}
