//! The services of a scenario on a host of either fabric: `stun`, `turn`, `http-proxy`,
//! `media-relay`, `dispatcher` and `sip-proxy` (SCENARIO-FORMAT.md "Services"), started
//! before t = 0 over any [`Net`].
//! A new service goes here: its config from the model, started by [`start_services`].

use crate::agents::net::{Agent, Net};
use crate::agents::services::dispatcher::{DispatcherService, dispatcher_config};
use crate::agents::services::http_proxy::HttpProxyService;
use crate::agents::services::media_relay::{MediaRelayService, media_relay_config};
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
    let ip_of = |host: &str| -> Result<std::net::IpAddr, String> {
        names
            .iter()
            .find(|(n, _)| n == host)
            .map(|(_, ip)| *ip)
            .ok_or_else(|| format!("host `{host}` has no address"))
    };
    let mut all = Vec::new();
    for s in &spec.services {
        let h = topo
            .host_id(&s.host)
            .ok_or_else(|| format!("unknown host `{}`", s.host))?;
        let primary = ip_of(&s.host)?;
        // Where this host's proxy sends its ng commands, and the relay it starts itself.
        let mut media = ProxyMedia::default();
        if let Some(p) = &s.sip_proxy {
            media.relay = match &p.relay {
                m::RelayUse::None => None,
                m::RelayUse::Declared { host } | m::RelayUse::Implicit { host } => {
                    let r = spec
                        .proxy_relay(&s.host)
                        .ok_or_else(|| format!("host `{host}` runs no media-relay"))?;
                    Some(SocketAddr::new(ip_of(host)?, r.ng_port))
                }
                m::RelayUse::Dispatcher { host } => {
                    let d = spec
                        .services_of(host)
                        .and_then(|x| x.dispatcher.as_ref())
                        .ok_or_else(|| format!("host `{host}` runs no dispatcher"))?;
                    Some(SocketAddr::new(ip_of(host)?, d.port))
                }
            };
            if let m::RelayUse::Implicit { .. } = p.relay {
                media.implicit = spec.proxy_relay(&s.host);
            }
        }
        // A dispatcher's relays: each relay host's first address and ng port.
        if let Some(d) = &s.dispatcher {
            for r in &d.relays {
                let relay = spec
                    .services_of(r)
                    .and_then(|x| x.media_relay.as_ref())
                    .ok_or_else(|| format!("host `{r}` runs no media-relay"))?;
                media
                    .dispatcher_relays
                    .push(SocketAddr::new(ip_of(r)?, relay.ng_port));
            }
        }
        let addresses = net.host_addresses(h);
        all.append(&mut start_services(
            net, h, primary, &addresses, s, &media, seed, &names,
        )?);
    }
    Ok(all)
}

/// What a host's media-related services need from the rest of the scenario.
#[derive(Debug, Clone, Default)]
pub struct ProxyMedia {
    /// The ng address the host's `sip-proxy` sends to (its relay or dispatcher).
    pub relay: Option<SocketAddr>,
    /// The relay the proxy's host starts because it declares none (the format's
    /// defaults).
    pub implicit: Option<m::MediaRelay>,
    /// The ng addresses of the host's `dispatcher`'s relays.
    pub dispatcher_relays: Vec<SocketAddr>,
}

/// Start the services of one host (`stun`, `turn`, `http-proxy`, `media-relay`,
/// `dispatcher`, `sip-proxy`): a `stun` service sharing the `turn` service's port becomes
/// part of it; on different ports they are two. `media` says where the proxy's relay is
/// and whether the host starts one for it.
#[allow(clippy::too_many_arguments)]
pub fn start_services<N: Net + 'static>(
    net: &mut N,
    host: usize,
    primary: std::net::IpAddr,
    addresses: &[std::net::IpAddr],
    services: &m::Services,
    media: &ProxyMedia,
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
    // Relays first: a proxy's first offer may come at once.
    for relay in services.media_relay.iter().chain(media.implicit.as_ref()) {
        let (r, c) = media_relay_config(addresses, relay, seed);
        let svc = MediaRelayService::start(net, host, r, c)
            .map_err(|e| format!("media-relay service on `{}`: {e}", services.host))?;
        out.push(Box::new(svc));
    }
    if let Some(d) = &services.dispatcher {
        let config = dispatcher_config(primary, d, media.dispatcher_relays.clone(), seed);
        let svc = DispatcherService::start(net, host, config)
            .map_err(|e| format!("dispatcher service on `{}`: {e}", services.host))?;
        out.push(Box::new(svc));
    }
    if let Some(sip) = &services.sip_proxy {
        let mut config = proxy_config(primary, sip, seed);
        config.media.relay = media.relay;
        let svc = SipProxyService::start(net, host, config)
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
