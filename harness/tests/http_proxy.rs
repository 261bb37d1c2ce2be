//! The `http-proxy` service on the virtual fabric: a client behind an `http-proxy-only`
//! firewall reaches a server only through the authenticating CONNECT proxy, and only to
//! the ports the proxy allows; everything else is refused with the proxy's reason or
//! blocked by the firewall.

use emulator::fabric::sim::Sim;
use harness::agents::net::{Net, TcpPhase};
use harness::agents::services::http_proxy::HttpProxyService;
use relay::http_proxy::ProxyConfig;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

const SCENARIO: &str = "version: 1\nname: proxy\nfabric: virtual\n\
    networks: { internet: 203.0.113.0/24, office: 10.0.3.0/24 }\n\
    firewalls: { corp: { inside: office, outside: internet, class: http-proxy-only } }\n\
    hosts:\n  carol: { network: office }\n  proxy: { network: internet, address: 203.0.113.8 }\n  server: { network: internet, address: 203.0.113.5 }\n\
    services: { proxy: { http-proxy: { port: 3128, users: { alice: secret } } } }\n";

struct World {
    sim: Sim,
    proxy: HttpProxyService<Sim>,
    names: Vec<(String, IpAddr)>,
}

impl World {
    fn new() -> World {
        let s = harness::scenario::load_str(SCENARIO, "proxy.yaml").unwrap();
        let topo = harness::convert::topology(&s.spec).unwrap();
        #[allow(clippy::disallowed_methods)] // the virtual clock's origin
        let mut sim = Sim::new(topo, 1, Instant::now()).unwrap();
        let names: Vec<(String, IpAddr)> = sim
            .topology()
            .hosts
            .iter()
            .map(|h| (h.name.clone(), h.addresses[0]))
            .collect();
        let proxy = HttpProxyService::start(
            &mut sim,
            host(&names, "proxy"),
            3128,
            ProxyConfig::new(vec![("alice".into(), "secret".into())]),
            names.clone(),
        )
        .unwrap();
        World { sim, proxy, names }
    }

    fn host(&self, name: &str) -> usize {
        host(&self.names, name)
    }

    /// Run for `d` of virtual time, polling the proxy after every step.
    fn run(&mut self, d: Duration) {
        let until = self.sim.now() + d;
        while self.sim.now() < until {
            let next = [self.sim.poll_timeout(), self.proxy.poll_timeout()]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(until)
                .clamp(self.sim.now(), until)
                .min(self.sim.now() + Duration::from_millis(5));
            self.sim.advance(next);
            self.proxy.poll(&mut self.sim);
        }
    }
}

fn host(names: &[(String, IpAddr)], name: &str) -> usize {
    names.iter().position(|(n, _)| n == name).unwrap()
}

fn recv_all(w: &mut World, s: emulator::fabric::sim::SocketId) -> String {
    w.run(Duration::from_millis(300));
    String::from_utf8_lossy(&w.sim.tcp_recv(s)).into_owned()
}

// base64("alice:secret")
const AUTH: &str = "Proxy-Authorization: Basic YWxpY2U6c2VjcmV0\r\n";

#[test]
fn tunnel_through_the_proxy_and_nothing_else() {
    let mut w = World::new();
    let (carol, server) = (w.host("carol"), w.host("server"));
    let server_ip = w.names[server].1;
    let listen443 = w.sim.tcp_listen(server, 443).unwrap();

    // Directly: the firewall drops it.
    let (direct, _) = w
        .sim
        .tcp_connect(carol, 0, SocketAddr::new(server_ip, 443))
        .unwrap();
    w.run(Duration::from_secs(2));
    assert_ne!(Net::tcp_state(&mut w.sim, direct), TcpPhase::Established);
    w.sim.close(direct);

    // Without credentials: 407 with a Basic challenge, connection kept for the retry.
    let proxy_addr = SocketAddr::new(w.names[w.host("proxy")].1, 3128);
    let (c, _) = w.sim.tcp_connect(carol, 0, proxy_addr).unwrap();
    w.run(Duration::from_millis(300));
    assert_eq!(Net::tcp_state(&mut w.sim, c), TcpPhase::Established);
    w.sim
        .tcp_send(
            c,
            b"CONNECT server:443 HTTP/1.1\r\nHost: server:443\r\n\r\n",
        )
        .unwrap();
    let text = recv_all(&mut w, c);
    assert!(text.starts_with("HTTP/1.1 407 "), "{text}");
    assert!(
        text.contains("Proxy-Authenticate: Basic realm=\"pinhole\""),
        "{text}"
    );

    // With them, on the same connection: 200, then bytes both ways.
    w.sim
        .tcp_send(
            c,
            format!("CONNECT server:443 HTTP/1.1\r\n{AUTH}\r\nearly").as_bytes(),
        )
        .unwrap();
    let text = recv_all(&mut w, c);
    assert_eq!(text, "HTTP/1.1 200 Connection established\r\n\r\n");
    assert_eq!(Net::tcp_state(&mut w.sim, listen443), TcpPhase::Established);
    assert_eq!(w.sim.tcp_recv(listen443), b"early");
    w.sim.tcp_send(c, b"ping").unwrap();
    w.run(Duration::from_millis(300));
    assert_eq!(w.sim.tcp_recv(listen443), b"ping");
    let big = vec![0x5a; 100_000];
    let mut sent = 0;
    let mut got = Vec::new();
    for _ in 0..400 {
        if sent < big.len() {
            sent += w.sim.tcp_send(listen443, &big[sent..]).unwrap();
        }
        w.run(Duration::from_millis(20));
        got.extend(w.sim.tcp_recv(c));
        if got.len() == big.len() {
            break;
        }
    }
    assert_eq!(
        got, big,
        "100 kB from the server arrive whole through the tunnel"
    );

    // A port the proxy does not allow: 403, and the connection closes.
    let _listen80 = w.sim.tcp_listen(server, 80).unwrap();
    let (c2, _) = w.sim.tcp_connect(carol, 0, proxy_addr).unwrap();
    w.run(Duration::from_millis(300));
    w.sim
        .tcp_send(
            c2,
            format!("CONNECT server:80 HTTP/1.1\r\n{AUTH}\r\n").as_bytes(),
        )
        .unwrap();
    let text = recv_all(&mut w, c2);
    assert!(text.starts_with("HTTP/1.1 403 "), "{text}");
    w.run(Duration::from_millis(300));
    assert_eq!(
        Net::tcp_state(&mut w.sim, c2),
        TcpPhase::Closing,
        "the proxy closed its side after the refusal"
    );

    // An unknown name: 502 with the reason.
    let (c3, _) = w.sim.tcp_connect(carol, 0, proxy_addr).unwrap();
    w.run(Duration::from_millis(300));
    w.sim
        .tcp_send(
            c3,
            format!("CONNECT nowhere:443 HTTP/1.1\r\n{AUTH}\r\n").as_bytes(),
        )
        .unwrap();
    let text = recv_all(&mut w, c3);
    assert!(
        text.starts_with("HTTP/1.1 502 ") && text.contains("unknown host `nowhere`"),
        "{text}"
    );

    let refused: Vec<u16> = w
        .proxy
        .events()
        .iter()
        .filter_map(|e| match e {
            relay::http_proxy::TunnelEvent::Refused { status, .. } => Some(*status),
            _ => None,
        })
        .collect();
    assert_eq!(refused, [407, 403, 502]);
    w.proxy.stop(&mut w.sim);
}
