//! The `sip-proxy` service's driver on the virtual fabric: transport errors reach the core
//! (RFC 3261 §18.4). A call to a public TCP contact that no longer listens (its host
//! answers the proxy's SYN with a reset) fails with a 500 at once, and one to an address
//! where nothing answers fails when the driver's connect timeout passes — both long before
//! Timer B's 32 s and its 408.

use emulator::fabric::sim::{Sim, SocketId, TcpState};
use harness::agents::net::Agent;
use harness::agents::services::sip_proxy::{CONNECT_TIMEOUT, SipProxyService};
use relay::sip::proxy::{DropReason, ProxyConfig};
use relay::sip::{Message, StreamFramer};
use std::time::{Duration, Instant};

const SCENARIO: &str = r#"
version: 1
name: sip proxy transport errors
fabric: virtual
networks: { internet: 203.0.113.0/24 }
hosts:
  server: { network: internet, address: 203.0.113.5 }
  carol: { network: internet, address: 203.0.113.20 }
  dave: { network: internet, address: 203.0.113.30 }
"#;

const PROXY: &str = "203.0.113.5:5060";

struct World {
    sim: Sim,
    proxy: SipProxyService<Sim>,
}

impl World {
    fn new() -> World {
        let s = harness::scenario::load_str(SCENARIO, "sip.yaml").unwrap();
        let cell = s.cells().unwrap().remove(0);
        let topo = harness::convert::topology(&cell.spec).unwrap();
        #[allow(clippy::disallowed_methods)] // the virtual clock's origin
        let epoch = Instant::now();
        let mut sim = Sim::new(topo, 1, epoch).unwrap();
        let server = sim.topology().host_id("server").unwrap();
        let proxy =
            SipProxyService::start(&mut sim, server, ProxyConfig::new(PROXY.parse().unwrap()))
                .unwrap();
        World { sim, proxy }
    }

    fn host(&self, name: &str) -> usize {
        self.sim.topology().host_id(name).unwrap()
    }

    /// Serve until `done` holds (checked after every round of deliveries) or `limit`
    /// of virtual time has passed; whether it held.
    fn run(&mut self, limit: Duration, mut done: impl FnMut(&mut Sim) -> bool) -> bool {
        let end = self.sim.now() + limit;
        loop {
            for _ in 0..100 {
                let before = (self.sim.stats().delivered, self.sim.stats().sent);
                self.proxy.poll(&mut self.sim);
                self.sim.flush();
                if (self.sim.stats().delivered, self.sim.stats().sent) == before {
                    break;
                }
            }
            if done(&mut self.sim) {
                return true;
            }
            let now = self.sim.now();
            if now >= end {
                return false;
            }
            let mut next = end;
            for t in [self.sim.poll_timeout(), Agent::poll_timeout(&self.proxy)]
                .into_iter()
                .flatten()
            {
                next = next.min(t.max(now));
            }
            self.sim.advance(next.max(now + Duration::from_micros(100)));
        }
    }
}

/// Carol registers over TCP from port 5070, where her Contact says she listens, then her
/// connection ends: the binding stays (public) and requests go to the Contact over a new
/// connection, to a port where nothing listens any more.
fn register_then_leave(w: &mut World, contact: &str) {
    let carol = w.host("carol");
    let (sock, _) = w
        .sim
        .tcp_connect(carol, 5070, PROXY.parse().unwrap())
        .unwrap();
    assert!(w.run(Duration::from_secs(5), |sim| {
        sim.tcp_state(sock) == TcpState::Established
    }));
    let register = format!(
        "REGISTER sip:203.0.113.5 SIP/2.0\r\n\
         Via: SIP/2.0/TCP 203.0.113.20:5070;branch=z9hG4bKreg\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:carol@203.0.113.5>;tag=r\r\n\
         To: <sip:carol@203.0.113.5>\r\n\
         Call-ID: reg-carol\r\n\
         CSeq: 1 REGISTER\r\n\
         Contact: <sip:carol@{contact};transport=tcp>\r\n\
         Expires: 3600\r\n\
         Content-Length: 0\r\n\r\n"
    );
    assert_eq!(
        w.sim.tcp_send(sock, register.as_bytes()).unwrap(),
        register.len()
    );
    let mut framer = StreamFramer::new(Default::default());
    let mut status = None;
    assert!(w.run(Duration::from_secs(5), |sim| {
        framer.push(&sim.tcp_recv(sock));
        if let Some(Ok(relay::sip::Frame::Message(b))) = framer.poll() {
            status = Message::parse(&b).unwrap().status();
        }
        status.is_some()
    }));
    assert_eq!(status, Some(200));
    // a FIN (a removed smoltcp socket sends no reset); the proxy ends its side
    w.sim.tcp_shutdown(sock);
    w.run(Duration::from_millis(500), |_| false);
    assert_eq!(w.proxy.proxy().connection_count(), 0);
    w.sim.close(sock);
    assert_eq!(
        w.proxy
            .proxy()
            .registrar()
            .lookup("carol@203.0.113.5")
            .len(),
        1
    );
}

/// Dave calls carol over UDP; the final response he gets and after how long.
fn call(w: &mut World, call_id: &str) -> (u16, Duration) {
    let dave = w.host("dave");
    let (udp, _) = w.sim.udp_bind(dave, None, 5060).unwrap();
    let invite = format!(
        "INVITE sip:carol@203.0.113.5 SIP/2.0\r\n\
         Via: SIP/2.0/UDP 203.0.113.30:5060;branch=z9hG4bK{call_id};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:dave@203.0.113.5>;tag=d\r\n\
         To: <sip:carol@203.0.113.5>\r\n\
         Call-ID: {call_id}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:dave@203.0.113.30:5060>\r\n\
         Content-Length: 0\r\n\r\n"
    );
    let t0 = w.sim.now();
    w.sim
        .udp_send(udp, PROXY.parse().unwrap(), None, invite.as_bytes())
        .unwrap();
    let mut status = None;
    assert!(w.run(Duration::from_secs(40), |sim| {
        while let Some((_, _, b)) = sim.udp_recv(udp) {
            let code = Message::parse(&b).unwrap().status().unwrap();
            if code >= 200 {
                status = Some(code);
            }
        }
        status.is_some()
    }));
    let elapsed = w.sim.now() - t0;
    close_udp(w, udp);
    (status.unwrap(), elapsed)
}

fn close_udp(w: &mut World, s: SocketId) {
    w.sim.close(s);
}

#[test]
fn call_to_a_contact_that_refuses_the_connection_fails_at_once() {
    let mut w = World::new();
    register_then_leave(&mut w, "203.0.113.20:5070");
    let (code, elapsed) = call(&mut w, "refused");
    assert_eq!(
        code, 500,
        "§16.9: as if a 503 arrived; §16.7 step 6: 500 upstream"
    );
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    let p = w.proxy.proxy();
    assert_eq!(p.stats().dropped.get(&DropReason::TransportError), Some(&1));
    assert_eq!(p.transaction_count().1, 0, "no client transaction left");
    assert_eq!(p.dialog_count(), 0);
}

#[test]
fn call_to_a_contact_that_never_answers_fails_at_the_connect_timeout() {
    let mut w = World::new();
    // nothing has 203.0.113.99: the SYNs go unanswered
    register_then_leave(&mut w, "203.0.113.99:5070");
    let (code, elapsed) = call(&mut w, "silent");
    assert_eq!(code, 500);
    assert!(
        elapsed >= CONNECT_TIMEOUT && elapsed < CONNECT_TIMEOUT + Duration::from_secs(1),
        "{elapsed:?}"
    );
    assert_eq!(w.proxy.proxy().transaction_count().1, 0);
}
