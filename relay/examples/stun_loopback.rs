//! Runs the RFC 5780 `Server` on 127.0.0.1 / 127.0.0.2 (ports 34780/34781) and the
//! `Prober` against it over real UDP sockets: a thin-driver smoke test. Expected: no NAT,
//! endpoint-independent mapping and filtering, hairpinning.
//!
//! `cargo run -p pinhole-relay --example stun_loopback`
#![allow(clippy::disallowed_methods)] // a driver: it reads the clock

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use relay::stun::{ProbeEvent, Prober, ProberConfig, Server, ServerConfig, SocketId};

fn main() -> std::io::Result<()> {
    let mut config = ServerConfig::new("127.0.0.1:34780".parse().unwrap());
    config.alternate = Some("127.0.0.2".parse().unwrap());
    let server_sockets: Vec<(SocketAddr, UdpSocket)> = config
        .listen_addresses()
        .into_iter()
        .map(|a| {
            let s = UdpSocket::bind(a)?;
            s.set_nonblocking(true)?;
            Ok((a, s))
        })
        .collect::<std::io::Result<_>>()?;
    let mut server = Server::new(config.clone()).expect("valid config");

    let x = UdpSocket::bind("127.0.0.1:0")?;
    let y = UdpSocket::bind("127.0.0.1:0")?;
    x.set_nonblocking(true)?;
    y.set_nonblocking(true)?;
    let mut probe_config = ProberConfig::new(config.primary);
    probe_config.tests.lifetime = Some(Duration::from_secs(2));
    let mut prober = Prober::new(probe_config, Instant::now(), 42);
    prober.set_local_addresses(x.local_addr()?, y.local_addr()?);

    let mut buf = [0u8; 2048];
    loop {
        while let Some(t) = prober.poll_transmit() {
            let sock = if t.socket == SocketId::Primary {
                &x
            } else {
                &y
            };
            sock.send_to(&t.data, t.to)?;
        }
        while let Some(event) = prober.poll_event() {
            println!("{event:?}");
            if let ProbeEvent::Done(_) = event {
                println!("server stats: {:?}", server.stats());
                return Ok(());
            }
        }
        for (local, sock) in &server_sockets {
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                server.handle_input(Instant::now(), *local, from, &buf[..n]);
            }
        }
        while let Some(t) = server.poll_transmit() {
            if let Some((_, sock)) = server_sockets.iter().find(|(a, _)| *a == t.from) {
                sock.send_to(&t.data, t.to)?;
            }
        }
        while server.poll_event().is_some() {}
        for (id, sock) in [(SocketId::Primary, &x), (SocketId::Secondary, &y)] {
            while let Ok((n, from)) = sock.recv_from(&mut buf) {
                prober.handle_input(Instant::now(), id, from, &buf[..n]);
            }
        }
        if prober.poll_timeout().is_some_and(|t| Instant::now() >= t) {
            prober.handle_timeout(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}
