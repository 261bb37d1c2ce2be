//! A TURN client behind each enterprise firewall class (`firewalls:` classes) reaches a
//! relayed peer through pinhole's `turn` service on every path the class allows — UDP,
//! TCP, TCP on port 443, TCP through the authenticating `http-proxy` service, TLS on
//! port 443 (`tls_port`), TLS through the proxy — and fails with a clear reason on every
//! path it does not (virtual fabric).

mod common;

use common::World;
use emulator::fabric::sim::Sim;
use harness::agents::net::Agent;
use harness::agents::turn_client::{ProxyVia, TurnCheck, TurnCheckConfig};
use relay::turn::Transport;
use std::time::Duration;

fn scenario(class: &str) -> String {
    format!(
        r#"
version: 1
name: turn behind {class}
fabric: virtual
networks: {{ internet: 203.0.113.0/24, office: 198.51.100.0/24 }}
firewalls:
  corp: {{ inside: office, outside: internet, class: {class} }}
hosts:
  alice: {{ network: office }}
  server: {{ network: internet, address: 203.0.113.5 }}
  server443: {{ network: internet, address: 203.0.113.8 }}
  proxy: {{ network: internet, address: 203.0.113.9 }}
  peer: {{ network: internet, address: 203.0.113.7 }}
services:
  server:
    turn: {{ port: 3478, tls_port: 443, users: {{ alice: secret }} }}
  server443:
    turn: {{ port: 443, users: {{ alice: secret }} }}
  proxy:
    http-proxy: {{ port: 3128, users: {{ alice: proxypass }} }}
"#
    )
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Path {
    Udp,
    Tcp,
    Tcp443,
    Proxy,
    Tls443,
    TlsProxy,
    ProxyWithoutCredentials,
}

fn world(class: &str) -> World {
    World::new(&scenario(class), 3, 3480)
}

fn drive(w: &mut World, agent: &mut dyn Agent<Sim>) {
    w.drive(agent, Duration::from_secs(10));
}

/// Run one path; Ok(()) when all 10 echoes came back, Err(reason) otherwise.
fn try_path(w: &mut World, path: Path) -> Result<(), String> {
    let alice = w.sim.topology().host_id("alice").unwrap();
    let server = match path {
        // The proxy tunnels only to port 443 (squid's default `SSL_ports`).
        Path::Tcp443 | Path::Proxy | Path::ProxyWithoutCredentials => "203.0.113.8:443",
        Path::Tls443 | Path::TlsProxy => "203.0.113.5:443",
        _ => "203.0.113.5:3478",
    };
    let proxy = |credentials| ProxyVia {
        address: "203.0.113.9:3128".parse().unwrap(),
        credentials,
    };
    let config = TurnCheckConfig {
        server: server.parse().unwrap(),
        transport: if path == Path::Udp {
            Transport::Udp
        } else {
            Transport::Tcp
        },
        username: "alice".into(),
        password: "secret".into(),
        peer: "203.0.113.7:3480".parse().unwrap(),
        channel: true,
        count: 10,
        size: 160,
        timeout: Duration::from_secs(3),
        seed: 5,
        proxy: match path {
            Path::Proxy | Path::TlsProxy => Some(proxy(Some(("alice".into(), "proxypass".into())))),
            Path::ProxyWithoutCredentials => Some(proxy(None)),
            _ => None,
        },
        tls: matches!(path, Path::Tls443 | Path::TlsProxy),
    };
    let mut c = TurnCheck::start(&mut w.sim, alice, config).unwrap();
    drive(w, &mut c);
    let o = c.outcome();
    if o.passed() {
        Ok(())
    } else {
        Err(o.error.clone().unwrap_or_else(|| format!("{o:?}")))
    }
}

const PATHS: [Path; 6] = [
    Path::Udp,
    Path::Tcp,
    Path::Tcp443,
    Path::Proxy,
    Path::Tls443,
    Path::TlsProxy,
];

#[test]
fn each_class_allows_exactly_its_paths_with_clear_reasons_for_the_rest() {
    // class → which of [UDP, TCP, TCP 443, TCP via proxy, TLS 443, TLS via proxy] work
    let table = [
        ("open", [true, true, true, true, true, true]),
        ("udp-replies-only", [true, true, true, true, true, true]),
        ("tcp-outbound-only", [false, true, true, true, true, true]),
        ("https-only", [false, false, true, false, true, false]),
        ("http-proxy-only", [false, false, false, true, false, true]),
    ];
    for (class, expected) in table {
        let mut w = world(class);
        for (path, works) in PATHS.iter().zip(expected) {
            let r = try_path(&mut w, *path);
            if works {
                assert_eq!(r, Ok(()), "{class}: {path:?}");
            } else {
                let why = r.expect_err(&format!("{class}: {path:?} must be blocked"));
                let expected_reason = match path {
                    Path::Udp => "no answer to Allocate",
                    _ => "TCP handshake unanswered",
                };
                assert!(why.contains(expected_reason), "{class}: {path:?}: {why}");
            }
        }
        // Through the proxy without credentials: 407, wherever the proxy is reachable.
        let r = try_path(&mut w, Path::ProxyWithoutCredentials);
        let why = r.expect_err("no credentials");
        if expected[3] {
            assert!(
                why.contains("answered `HTTP/1.1 407 Proxy Authentication Required`"),
                "{class}: {why}"
            );
        } else {
            assert!(why.contains("TCP handshake unanswered"), "{class}: {why}");
        }
    }
}
