//! The built-in agents over real OS sockets ([`OsNet`]) on loopback.
//!
//! Network safety: every address here is in 127.0.0.0/8; nothing leaves the machine.
//! Each test is bounded by a real-time deadline of a few seconds.

use harness::agents::net::{Net, NetError};
use harness::agents::os::{NsGuard, OsNet, run_until};
use harness::agents::probe::Probe;
use harness::agents::punch::{Punch, PunchProtocol};
use harness::agents::stun::StunService;
use relay::stun::{Behavior, ProberConfig, ServerConfig};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// The most any test here may take.
const BOUND: Duration = Duration::from_secs(8);

fn lo(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

#[test]
fn probe_without_nat_sees_no_nat() {
    // host 0: the STUN server (127.0.0.2 primary, 127.0.0.3 alternate); host 1: the prober.
    let mut net = OsNet::new(vec![vec![lo(2), lo(3)], vec![lo(4)]]);
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

fn punch(proto: PunchProtocol) -> (harness::agents::punch::PunchOutcome, OsNet) {
    let mut net = OsNet::new(vec![vec![lo(5)], vec![lo(6)], vec![lo(7)]]);
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
/// second crosses it (RFC 5128 §3.4).
#[test]
fn tcp_punch_on_loopback_registers_and_attempts() {
    let (o, net) = punch(PunchProtocol::Tcp);
    assert_eq!(o.learned[0].map(|a| a.ip()), Some(lo(6)), "{o:?}");
    assert_eq!(o.learned[1].map(|a| a.ip()), Some(lo(5)), "{o:?}");
    eprintln!("TCP punch on loopback: {o:?}");
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
    let mut net = OsNet::new(vec![vec![lo(8)]]).with_enter(hook);
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
    let mut net = OsNet::new(vec![vec![lo(8)]]).with_enter(Box::new(|_| {
        Err(NetError::io(
            "setns",
            std::io::Error::other("no such namespace"),
        ))
    }));
    assert!(net.udp_bind(0, None, 0).is_err());
}
