//! The services of a scenario on a host of either fabric: `stun`, `turn`, `http-proxy` and
//! `sip-proxy` (SCENARIO-FORMAT.md "Services"), started before t = 0 over any [`Net`].
//! A new service goes here: its config from the model, started by [`start_services`].

use crate::agents::net::{Agent, Net};
use crate::agents::services::http_proxy::HttpProxyService;
use crate::agents::services::sip_proxy::{SipProxyService, proxy_config};
use crate::agents::services::stun::StunService;
use crate::agents::services::turn::{TurnService, TurnServiceConfig};
use crate::scenario::model as m;
use relay::stun::ServerConfig;
use relay::turn::TurnConfig;
use std::net::SocketAddr;

/// The STUN server configuration of a `stun` service on a host whose first address is
/// `primary`.
pub fn stun_config(primary: std::net::IpAddr, stun: &m::Stun) -> ServerConfig {
    ServerConfig {
        primary: SocketAddr::new(primary, stun.port),
        alternate: stun.alternate.as_ref().map(|a| a.address),
        alternate_port: stun.alternate.as_ref().map(|a| a.port),
        software: Some(format!("pinhole {}", env!("CARGO_PKG_VERSION"))),
    }
}

/// The `turn` service of a host whose first address is `primary`; with `stun` when a
/// `stun` service on the same host shares its port (one listener, coturn-style).
pub fn turn_config(
    primary: std::net::IpAddr,
    turn: &m::Turn,
    stun: Option<&m::Stun>,
    seed: u64,
) -> TurnServiceConfig {
    let listen = SocketAddr::new(primary, turn.port);
    let mut config = TurnConfig::new(listen, primary, turn.realm.clone());
    config.users = turn.users.clone();
    config.relay_ports = (turn.relay_ports.first, turn.relay_ports.last);
    config.quota = turn.quota;
    config.legacy_channels = turn.legacy_channels;
    if let Some(a) = &turn.password_algorithms {
        config.password_algorithms = a.clone();
    }
    config.software = Some(format!("pinhole {}", env!("CARGO_PKG_VERSION")));
    config.seed = seed;
    TurnServiceConfig {
        turn: config,
        stun: stun
            .filter(|s| s.port == turn.port)
            .map(|s| stun_config(primary, s)),
        tcp: true,
        tls: None,
    }
}

/// Start every host's services of a scenario (`services:` of `spec`) on `net`, whose
/// hosts are `topo`'s: what listens before t = 0.
///
/// # Errors
///
/// A service that cannot start (a port taken, a certificate refused), with its host.
pub fn start_all<N: Net + 'static>(
    net: &mut N,
    topo: &emulator::topology::Topology,
    spec: &m::Spec,
    seed: u64,
) -> Result<Vec<Box<dyn Agent<N>>>, String> {
    let names = host_names(topo);
    let mut all = Vec::new();
    for s in &spec.services {
        let h = topo
            .host_id(&s.host)
            .ok_or_else(|| format!("unknown host `{}`", s.host))?;
        let primary = *topo.hosts[h]
            .addresses
            .first()
            .ok_or_else(|| format!("host `{}` has no address", s.host))?;
        all.append(&mut start_services(net, h, primary, s, seed, &names)?);
    }
    Ok(all)
}

/// Start the services of one host (`stun`, `turn`, `http-proxy`, `sip-proxy`): a `stun` service sharing
/// the `turn` service's port becomes part of it; on different ports they are two.
pub fn start_services<N: Net + 'static>(
    net: &mut N,
    host: usize,
    primary: std::net::IpAddr,
    services: &m::Services,
    seed: u64,
    names: &[(String, std::net::IpAddr)],
) -> Result<Vec<Box<dyn Agent<N>>>, String> {
    let mut out: Vec<Box<dyn Agent<N>>> = Vec::new();
    let shared = matches!((&services.stun, &services.turn), (Some(s), Some(t)) if s.port == t.port);
    if let Some(stun) = services.stun.as_ref().filter(|_| !shared) {
        let svc = StunService::start(net, host, stun_config(primary, stun))
            .map_err(|e| format!("stun service on `{}`: {e}", services.host))?;
        out.push(Box::new(svc));
    }
    if let Some(turn) = &services.turn {
        let mut config = turn_config(primary, turn, services.stun.as_ref(), seed);
        if let Some(port) = turn.tls_port {
            // The scenario's certificate (a format extension), else one made at start.
            let tls = match &turn.tls_cert {
                Some((cert, key)) => crate::agents::tls::server_from_pem_files(cert, key),
                None => crate::agents::tls::self_signed_server(vec![
                    primary.to_string(),
                    services.host.clone(),
                ]),
            }
            .map_err(|e| format!("turn service on `{}`: {e}", services.host))?;
            config.tls = Some((port, tls));
        }
        let svc = TurnService::start(net, host, config)
            .map_err(|e| format!("turn service on `{}`: {e}", services.host))?;
        out.push(Box::new(svc));
    }
    if let Some(p) = &services.http_proxy {
        let config = relay::http_proxy::ProxyConfig::new(p.users.clone());
        let svc = HttpProxyService::start(net, host, p.port, config, names.to_vec())
            .map_err(|e| format!("http-proxy service on `{}`: {e}", services.host))?;
        out.push(Box::new(svc));
    }
    if let Some(sip) = &services.sip_proxy {
        let svc = SipProxyService::start(net, host, proxy_config(primary, sip, seed))
            .map_err(|e| format!("sip-proxy service on `{}`: {e}", services.host))?;
        out.push(Box::new(svc));
    }
    Ok(out)
}

/// Every host's name and primary address: what the hosts' `/etc/hosts` says, for services
/// that resolve names (the `http-proxy`'s CONNECT targets).
pub fn host_names(topo: &emulator::topology::Topology) -> Vec<(String, std::net::IpAddr)> {
    topo.hosts
        .iter()
        .filter_map(|h| Some((h.name.clone(), *h.addresses.first()?)))
        .collect()
}
