//! The built-in agents over real OS sockets ([`OsNet`]) on loopback.
//!
//! Network safety: every address here is in 127.0.0.0/8; nothing leaves the machine.
//! Each test is bounded by a real-time deadline of a few seconds.

use harness::agents::net::{Agent, Net, NetError};
use harness::agents::os::{NsGuard, OsNet, run_until};
use harness::agents::services::stun::StunService;
use harness::agents::steps::probe::Probe;
use harness::agents::steps::punch::{Punch, PunchProtocol};
use relay::stun::{Behavior, ProberConfig, ServerConfig};
use socket2::{Domain, Socket, Type};
use std::net::TcpStream;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// The most any test here may take.
const BOUND: Duration = Duration::from_secs(8);

fn lo(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

#[test]
fn probe_without_nat_sees_no_nat() {
    // host 0: the STUN server (127.0.0.2 primary, 127.0.0.3 alternate); host 1: the prober.
    let mut net = OsNet::new(vec![vec![lo(2), lo(3)], vec![lo(4)]]).unwrap();
    let server = SocketAddr::new(lo(2), 3478);
    let config = ServerConfig {
        primary: server,
        alternate: Some(lo(3)),
        alternate_port: Some(3479),
        software: Some("pinhole test".into()),
    };
    let mut stun = StunService::start(&mut net, 0, config).expect("stun service binds");
    let mut probe =
        Probe::start(&mut net, 1, ProberConfig::new(server), 7).expect("probe sockets bind");
    let start = net.now();
    let done = run_until(&mut net, &mut [&mut stun, &mut probe], start + BOUND);
    let took = net.now() - start;
    stun.stop(&mut net);
    assert!(done, "the probe did not finish within {BOUND:?}");
    let r = probe.report().expect("a finished probe has a report");
    assert!(r.errors.is_empty(), "errors: {:?}", r.errors);
    assert_eq!(r.mapped.map(|a| a.ip()), Some(lo(4)));
    assert_eq!(r.nat_detected, Some(false));
    assert_eq!(r.mapping, Some(Behavior::EndpointIndependent));
    assert_eq!(r.filtering, Some(Behavior::EndpointIndependent));
    // No NAT: a request to the "mapped" address of the other socket reaches it directly.
    assert_eq!(r.hairpinning, Some(true));
    // Every test is answered: no retransmission timeouts.
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(
        net.socket_count(),
        0,
        "probe and service close their sockets"
    );
}

fn punch(proto: PunchProtocol) -> (harness::agents::steps::punch::PunchOutcome, OsNet) {
    let mut net = OsNet::new(vec![vec![lo(5)], vec![lo(6)], vec![lo(7)]]).unwrap();
    let mut p = Punch::start(&mut net, proto, [0, 1], 2, Duration::from_secs(3))
        .expect("punch sockets open");
    let start = net.now();
    let done = run_until(&mut net, &mut [&mut p], start + BOUND);
    assert!(done, "the punch did not end within {BOUND:?}");
    (p.outcome(), net)
}

#[test]
fn udp_punch_on_loopback_connects() {
    let (o, net) = punch(PunchProtocol::Udp);
    assert!(o.connected, "{o:?}");
    assert_eq!(o.learned[0].map(|a| a.ip()), Some(lo(6)));
    assert_eq!(o.learned[1].map(|a| a.ip()), Some(lo(5)));
    assert!(
        o.time_to_connect
            .is_some_and(|t| t < Duration::from_secs(1))
    );
    assert_eq!(net.socket_count(), 0);
}

/// TCP through the rendezvous works on loopback: one listener takes both registrations and
/// each peer learns the other's address:port; then each opens its simultaneous-open attempt
/// from its registration port (`SO_REUSEADDR`/`SO_REUSEPORT`).
///
/// The SYNs cannot cross on plain loopback, so `connected` is expected false here (it is
/// not asserted: that is the kernel's timing, not ours). With no NAT to drop the first SYN,
/// it reaches the other host before that host's own connect and the kernel answers it with
/// an RST at once, inside the `connect` call (no socket has that 4-tuple yet): the first
/// attempt is refused, and the second SYN meets a closed socket and is reset too. Both
/// peers retry every 100 ms in the same order, so they never cross. Through a filtering NAT
/// (the virtual fabric, or the kernel fabric's engine) the first SYN is dropped and the
/// second crosses it (RFC 5128 §3.4), as
/// `tcp_punch_on_loopback_connects_when_the_first_syn_is_dropped` shows.
#[test]
fn tcp_punch_on_loopback_registers_and_attempts() {
    let (o, net) = punch(PunchProtocol::Tcp);
    assert_eq!(o.learned[0].map(|a| a.ip()), Some(lo(6)), "{o:?}");
    assert_eq!(o.learned[1].map(|a| a.ip()), Some(lo(5)), "{o:?}");
    eprintln!("TCP punch on loopback: {o:?}");
    assert_eq!(net.socket_count(), 0);
}

/// A "SYN sink" on a peer's punch address: a listening socket (`SO_REUSEPORT`, beside the
/// peer's own sockets on that port) whose accept queue is full, so that a SYN no socket of
/// the peer expects is dropped silently instead of answered with an RST — what a NAT's
/// filter does to the first SYN of a simultaneous open. Test equipment only, loopback only.
struct SynSink {
    _listener: Socket,
    _filler: TcpStream,
}

impl SynSink {
    fn install(at: SocketAddr) -> std::io::Result<SynSink> {
        let l = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        l.set_reuse_address(true)?;
        l.set_reuse_port(true)?;
        l.bind(&at.into())?;
        l.listen(0)?; // one queued connection fills it
        let f = Socket::new(Domain::IPV4, Type::STREAM, None)?;
        f.bind(&SocketAddr::new(lo(18), 0).into())?;
        f.connect_timeout(&at.into(), Duration::from_secs(1))?;
        Ok(SynSink {
            _listener: l,
            _filler: f.into(),
        })
    }
}

/// A TCP punch that installs a [`SynSink`] on each peer's address as soon as the other
/// peer has learned it (before its first simultaneous-open attempt, usually; if not, the
/// next attempt 100 ms later crosses).
struct SinkedPunch {
    punch: Punch<OsNet>,
    sinks: Vec<SynSink>,
    done: [bool; 2],
}

impl Agent<OsNet> for SinkedPunch {
    fn poll(&mut self, net: &mut OsNet) {
        self.punch.poll(net);
        let learned = self.punch.outcome().learned;
        for (done, at) in self.done.iter_mut().zip(learned) {
            if let (false, Some(at)) = (*done, at) {
                self.sinks
                    .push(SynSink::install(at).expect("SYN sink installs on loopback"));
                *done = true;
            }
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.punch.poll_timeout()
    }
    fn is_done(&self) -> bool {
        self.punch.is_done()
    }
}

/// With the first SYN dropped instead of reset (see [`SynSink`]), the TCP punch through
/// `OsNet` completes a real simultaneous open on loopback: the second SYN meets the first
/// peer's socket in SYN-SENT, which answers SYN-ACK (RFC 9293 §3.5, figure 8).
#[test]
fn tcp_punch_on_loopback_connects_when_the_first_syn_is_dropped() {
    // Addresses of its own, apart from the other punch tests running in parallel.
    let mut net = OsNet::new(vec![vec![lo(15)], vec![lo(16)], vec![lo(17)]]).unwrap();
    let punch = Punch::start(
        &mut net,
        PunchProtocol::Tcp,
        [0, 1],
        2,
        Duration::from_secs(3),
    )
    .expect("punch sockets open");
    let mut p = SinkedPunch {
        punch,
        sinks: Vec::new(),
        done: [false; 2],
    };
    let start = net.now();
    let done = run_until(&mut net, &mut [&mut p], start + BOUND);
    assert!(done, "the punch did not end within {BOUND:?}");
    let o = p.punch.outcome();
    eprintln!("TCP punch on loopback with SYN sinks: {o:?}");
    assert_eq!(p.sinks.len(), 2);
    assert!(o.connected, "{o:?}");
    assert!(
        o.time_to_connect
            .is_some_and(|t| t < Duration::from_secs(2)),
        "{o:?}"
    );
    assert_eq!(net.socket_count(), 0);
}

#[test]
fn enter_hook_wraps_every_socket_creation() {
    let entered = Arc::new(AtomicU32::new(0));
    let left = Arc::new(AtomicU32::new(0));
    let (e, l) = (entered.clone(), left.clone());
    let hook = Box::new(move |host: usize| -> Result<NsGuard, NetError> {
        assert_eq!(host, 0);
        e.fetch_add(1, Ordering::SeqCst);
        let l = l.clone();
        Ok(NsGuard::new(move || {
            l.fetch_add(1, Ordering::SeqCst);
        }))
    });
    let mut net = OsNet::new(vec![vec![lo(8)]]).unwrap().with_enter(hook);
    let (s, port) = net.udp_bind(0, Some(lo(8)), 0).expect("bind");
    assert_ne!(port, 0);
    assert_eq!(
        (entered.load(Ordering::SeqCst), left.load(Ordering::SeqCst)),
        (1, 1)
    );
    // An OsNet can move to the thread that drives it.
    let mut net = std::thread::spawn(move || net).join().expect("moved");
    net.close(s);
    // A failing hook fails the socket creation.
    let mut net = OsNet::new(vec![vec![lo(8)]])
        .unwrap()
        .with_enter(Box::new(|_| {
            Err(NetError::io(
                "setns",
                std::io::Error::other("no such namespace"),
            ))
        }));
    assert!(net.udp_bind(0, None, 0).is_err());
}

/// The `sip-proxy` driver over kernel sockets (what `pinhole serve proxy` runs): a request
/// forwarded over TCP to a port where nothing listens is refused by the kernel, the
/// non-blocking connect fails, and the caller gets the proxy's 500 at once (RFC 3261 §16.9,
/// §16.7 step 6) instead of a 408 after Timer B's 32 s.
#[test]
fn sip_proxy_answers_a_refused_tcp_connection_at_once() {
    use harness::agents::services::sip_proxy::SipProxyService;
    use relay::sip::proxy::{DropReason, ProxyConfig};
    let mut net = OsNet::new(vec![vec![lo(2)]]).unwrap();
    let port = net.ephemeral_port(0, true).expect("a free port");
    let proxy = SocketAddr::new(lo(2), port);
    let mut svc = SipProxyService::start(&mut net, 0, ProxyConfig::new(proxy)).expect("binds");
    // a port on 127.0.0.5 that nothing listens on (bound once, then released)
    let dead = std::net::TcpListener::bind((lo(5), 0))
        .and_then(|l| l.local_addr())
        .expect("a port on 127.0.0.5");
    let dave = std::net::UdpSocket::bind((lo(4), 0)).expect("udp");
    dave.set_nonblocking(true).unwrap();
    let me = dave.local_addr().unwrap();
    let invite = format!(
        "INVITE sip:carol@{dead};transport=tcp SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bKrefused;rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:dave@127.0.0.4>;tag=d\r\n\
         To: <sip:carol@{dead}>\r\n\
         Call-ID: refused\r\n\
         CSeq: 1 INVITE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let start = net.now();
    dave.send_to(invite.as_bytes(), proxy).unwrap();
    let mut status = None;
    while status.is_none() && net.now() < start + BOUND {
        svc.poll(&mut net);
        let mut buf = [0u8; 4096];
        while let Ok(n) = dave.recv(&mut buf) {
            let code = relay::sip::Message::parse(&buf[..n])
                .unwrap()
                .status()
                .unwrap();
            if code >= 200 {
                status = Some(code);
            }
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = net.now() - start;
    let p = svc.proxy();
    let dropped = p.stats().dropped.get(&DropReason::TransportError).copied();
    let clients = p.transaction_count().1;
    svc.stop(&mut net);
    assert_eq!(status, Some(500));
    assert!(took < Duration::from_secs(2), "took {took:?}");
    assert_eq!(dropped, Some(1));
    assert_eq!(clients, 0);
}
