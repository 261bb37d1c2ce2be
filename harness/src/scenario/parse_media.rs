//! Node tree → typed model, part 5: the media relay services (`media-relay`, `dispatcher`),
//! the `sip-proxy`'s keys that choose a relay, and the checks that need every host's
//! services: which relay each proxy uses, one secret per control channel, and UDP ports
//! that two services of a host would both bind.

use super::error::Pos;
use super::model::*;
use super::parse::{Fields, Parser, parse_ip};
use super::values::*;
use super::yaml::Node;
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The keys of a `media-relay` service.
pub(crate) const MEDIA_RELAY_KEYS: &[&str] = &[
    "ports",
    "latching",
    "latching_window",
    "idle_timeout",
    "idle_timeout_before_media",
    "streams_max",
    "advertised_address",
    "asymmetric_clients",
    "secret",
    "ng_port",
];

/// The keys of a `dispatcher` service.
pub(crate) const DISPATCHER_KEYS: &[&str] = &["relays", "secret", "health_interval", "port"];

/// A range of UDP ports a service of a host binds, for the overlap check.
#[derive(Clone, Debug)]
pub(crate) struct PortClaim {
    pub(crate) host: String,
    /// The service it belongs to (`media-relay`, `implicit relay`, `turn`, …): one
    /// service's own ports are checked where it is parsed, not here.
    pub(crate) owner: &'static str,
    /// What it is, as a message names it: "the `media-relay` ports 40000-40999".
    pub(crate) what: String,
    pub(crate) range: PortRange,
    /// The value that asks for it (or the service, when defaulted).
    pub(crate) pos: Pos,
    /// A claim of the services of #13 (checked); older services' claims are only checked
    /// against these, so that scenarios that parsed before still parse.
    pub(crate) new: bool,
    /// How to fix an overlap on this claim's side.
    pub(crate) fix: String,
}

/// A `sip-proxy`'s `media_relay: HOST` or `dispatcher: HOST`.
#[derive(Clone, Debug)]
pub(crate) struct ProxyRef {
    pub(crate) host: String,
    pub(crate) dispatcher: bool,
    pub(crate) target: String,
    pub(crate) pos: Pos,
}

/// A service that takes part in ng control, for the secret check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Member {
    Proxy,
    Relay,
    Dispatcher,
}

impl Member {
    fn name(self) -> &'static str {
        match self {
            Member::Proxy => "sip-proxy",
            Member::Relay => "media-relay",
            Member::Dispatcher => "dispatcher",
        }
    }
}

/// What the media parsing gathers for the checks that need every host's services.
#[derive(Clone, Debug, Default)]
pub(crate) struct MediaRefs {
    pub(crate) ports: Vec<PortClaim>,
    pub(crate) proxy_refs: Vec<ProxyRef>,
    /// (dispatcher host, relay host, where the relay is listed)
    pub(crate) dispatcher_relays: Vec<(String, String, Pos)>,
    /// Secrets as written: (member, host, secret, where).
    pub(crate) secrets: Vec<(Member, String, String, Pos)>,
}

impl Parser {
    /// A duration that must be longer than zero.
    fn positive_duration(&mut self, f: &Fields<'_>, key: &str, help: &str) -> Option<Duration> {
        let d = self.opt_duration(f, key)?;
        if d.is_zero() {
            let pos = f.get(key).map_or(f.pos, |n| n.pos);
            self.e.help(
                pos,
                format!("`{key}` must be longer than 0"),
                help.to_string(),
            );
            return None;
        }
        Some(d)
    }

    /// A non-empty `secret`, recorded for the one-secret-per-channel check.
    fn secret(&mut self, f: &Fields<'_>, member: Member, host: &str) -> Option<String> {
        let n = f.get("secret")?;
        let s = self.text(n, "`secret`")?.to_string();
        if s.is_empty() {
            self.e.help(
                n.pos,
                "`secret` is empty",
                "write the shared secret, or leave `secret` out for an unauthenticated channel",
            );
            return None;
        }
        self.media
            .secrets
            .push((member, host.to_string(), s.clone(), n.pos));
        Some(s)
    }

    fn claim(
        &mut self,
        owner: &'static str,
        host: &str,
        what: String,
        range: PortRange,
        pos: Pos,
        fix: String,
    ) {
        self.media.ports.push(PortClaim {
            host: host.to_string(),
            owner,
            what,
            range,
            pos,
            new: true,
            fix,
        });
    }

    /// Records a UDP port range of a service that existed before #13.
    pub(crate) fn old_claim(
        &mut self,
        owner: &'static str,
        host: &str,
        what: String,
        range: PortRange,
        pos: Pos,
    ) {
        self.media.ports.push(PortClaim {
            host: host.to_string(),
            owner,
            what,
            range,
            pos,
            new: false,
            fix: String::new(),
        });
    }

    /// `media-relay: {…}` on `host`.
    pub(crate) fn media_relay(&mut self, n: &Node, host: &str) -> Option<MediaRelay> {
        let f = self.map(n, "`media-relay`", MEDIA_RELAY_KEYS)?;
        let mut r = MediaRelay::defaults(n.pos);
        if let Some(p) = self.opt(&f, "ports", parse_port_range) {
            r.ports = p;
        }
        if let Some(l) = self.opt_kw(&f, "latching", Latching::from_keyword, Latching::VALUES) {
            r.latching = l;
        }
        if let Some(d) = self.positive_duration(
            &f,
            "latching_window",
            "a relay with no latching window never learns where to send; write e.g. `5s`",
        ) {
            r.latching_window = d;
        }
        // Any duration, as before #13 (files that parsed must keep parsing).
        if let Some(d) = self.opt_duration(&f, "idle_timeout") {
            r.idle_timeout = d;
        }
        if let Some(d) = self.positive_duration(
            &f,
            "idle_timeout_before_media",
            "write how long a session waits for its first packet, e.g. `90s`",
        ) {
            r.idle_timeout_before_media = d;
        }
        if let Some(m) = self.opt(&f, "streams_max", |s| match s.trim().parse::<u32>() {
            Ok(v) if v >= 1 => Ok(v),
            _ => Err(format!(
                "`{s}` is not a number of streams; write a whole number from 1 (default 64)"
            )),
        }) {
            r.streams_max = m;
        }
        if let Some(a) = f.get("advertised_address") {
            r.advertised_address = self.advertised_address(a, host);
        }
        if let Some(list) = f.get("asymmetric_clients") {
            let help = "write `asymmetric_clients: [\"Grandstream*1.0\", snom]` (User-Agent parts)";
            for item in self.seq(list, "`asymmetric_clients`", help) {
                if let Some(p) = self.val(item, "a User-Agent pattern", parse_ua_pattern) {
                    r.asymmetric_clients.push(p);
                }
            }
        }
        r.secret = self.secret(&f, Member::Relay, host);
        if let Some(p) = self.opt_port(&f, "ng_port") {
            r.ng_port = p;
        }
        let ports_pos = f.get("ports").map_or(n.pos, |x| x.pos);
        let ng_pos = f.get("ng_port").map_or(n.pos, |x| x.pos);
        if r.ports.contains(r.ng_port) {
            let (pos, fix) = if f.get("ng_port").is_some() {
                (ng_pos, "set `ng_port` outside `ports`")
            } else {
                (
                    ports_pos,
                    "the default `ng_port` is 2223: set `ng_port` outside `ports`",
                )
            };
            self.e.help(
                pos,
                format!(
                    "the `media-relay` ng_port {} is inside its own `ports` {}",
                    r.ng_port, r.ports
                ),
                fix,
            );
        }
        self.claim(
            "media-relay",
            host,
            format!("the `media-relay` ports {}", r.ports),
            r.ports,
            ports_pos,
            "set the relay's `ports` to a range no other service of the host uses".into(),
        );
        self.claim(
            "media-relay",
            host,
            format!("the `media-relay` ng_port {}", r.ng_port),
            PortRange {
                first: r.ng_port,
                last: r.ng_port,
            },
            ng_pos,
            "set the relay's `ng_port` to a port no other service of the host uses".into(),
        );
        Some(r)
    }

    /// `advertised_address`: an IP literal of the host's family, not a wildcard or group.
    fn advertised_address(&mut self, a: &Node, host: &str) -> Option<IpAddr> {
        let ip = self.val(a, "`advertised_address`", parse_ip)?;
        if ip.is_unspecified() || ip.is_multicast() {
            self.e.help(
                a.pos,
                format!("`advertised_address`: {ip} cannot receive media"),
                "write the relay's public unicast address (its 1:1 NAT's outside address)",
            );
            return None;
        }
        let family = self
            .hosts
            .iter()
            .find(|h| h.name == host)
            .and_then(|h| self.networks.iter().find(|n| n.name == h.network))
            .map(|n| n.prefix.addr().is_ipv4());
        if family.is_some_and(|v4| v4 != ip.is_ipv4()) {
            self.e.help(
                a.pos,
                format!("`advertised_address`: {ip} is not of host `{host}`'s address family"),
                "a relay advertises an address of the family it relays (a 1:1 NAT keeps it)",
            );
            return None;
        }
        Some(ip)
    }

    /// `dispatcher: {…}` on `host`.
    pub(crate) fn dispatcher(&mut self, n: &Node, host: &str) -> Option<Dispatcher> {
        let f = self.map(n, "`dispatcher`", DISPATCHER_KEYS)?;
        let help = "write `relays: [relay-1, relay-2]` (hosts that run a `media-relay`)";
        let mut relays: Vec<String> = Vec::new();
        match f.get("relays") {
            None => self.missing(n.pos, "relays", "`dispatcher`", "[HOST, …]"),
            Some(list) => {
                let items = self.seq(list, "`relays`", help);
                // `relays:` with nothing after it: at the key, where the value is missing.
                let null = list.as_scalar().is_some_and(|x| x.is_null());
                let pos = match f.entry("relays") {
                    Some(e) if null => e.key.pos,
                    _ => list.pos,
                };
                if items.is_empty() && (list.as_seq().is_some() || null) {
                    self.e
                        .help(pos, "`relays` is empty; a dispatcher needs one", help);
                }
                for item in items {
                    let Some(h) = self.host_ref(item, "`relays`") else {
                        continue;
                    };
                    if relays.contains(&h) {
                        self.e.help(
                            item.pos,
                            format!("`relays` lists `{h}` twice"),
                            "list each relay host once",
                        );
                        continue;
                    }
                    self.media
                        .dispatcher_relays
                        .push((host.to_string(), h.clone(), item.pos));
                    relays.push(h);
                }
            }
        }
        let d = Dispatcher {
            relays,
            secret: self.secret(&f, Member::Dispatcher, host),
            health_interval: self
                .positive_duration(
                    &f,
                    "health_interval",
                    "write how often the dispatcher pings each relay, e.g. `1s`",
                )
                .unwrap_or(Duration::from_secs(1)),
            port: self.opt_port(&f, "port").unwrap_or(DEFAULT_NG_PORT),
            pos: n.pos,
        };
        let pos = f.get("port").map_or(n.pos, |x| x.pos);
        self.claim(
            "dispatcher",
            host,
            format!("the `dispatcher` port {}", d.port),
            PortRange {
                first: d.port,
                last: d.port,
            },
            pos,
            "set the dispatcher's `port` to one no other service of the host uses (the \
             default, 2223, is also a `media-relay`'s default `ng_port`)"
                .into(),
        );
        Some(d)
    }

    /// The `sip-proxy` keys of #13: `ice_priority`, `media_relay` | `dispatcher`, `secret`.
    /// The relay it uses is resolved by [`Parser::media_checks`] once every host's services
    /// are known.
    pub(crate) fn sip_proxy_media(
        &mut self,
        f: &Fields<'_>,
        host: &str,
    ) -> (IcePriority, Option<String>) {
        let prio = self
            .opt_kw(
                f,
                "ice_priority",
                IcePriority::from_keyword,
                IcePriority::VALUES,
            )
            .unwrap_or(IcePriority::Lowest);
        let relay = f.entry("media_relay");
        let disp = f.entry("dispatcher");
        if let (Some(a), Some(b)) = (relay, disp) {
            let later = if a.key.pos > b.key.pos { a } else { b };
            self.e.help(
                later.key.pos,
                "`media_relay` and `dispatcher` exclude each other",
                "a proxy talks to one relay directly (`media_relay: HOST`) or to a dispatcher \
                 that picks among several (`dispatcher: HOST`); keep one",
            );
        } else if let Some(e) = relay.or(disp) {
            let dispatcher = e.key.text == "dispatcher";
            if let Some(target) = self.host_ref(&e.value, &format!("`{}`", e.key.text)) {
                self.media.proxy_refs.push(ProxyRef {
                    host: host.to_string(),
                    dispatcher,
                    target,
                    pos: e.value.pos,
                });
            }
        }
        let secret = self.secret(f, Member::Proxy, host);
        (prio, secret)
    }

    /// The checks that need every host's services (called after `services:` is parsed):
    /// each proxy's relay, each dispatcher's relays, one secret per control channel, and
    /// no UDP port bound by two services of a host.
    pub(crate) fn media_checks(&mut self) {
        self.resolve_proxy_relays();
        let runs_relay = |p: &Parser, h: &str| {
            p.services
                .iter()
                .any(|s| s.host == h && s.media_relay.is_some())
        };
        for (disp, relay, pos) in self.media.dispatcher_relays.clone() {
            if !runs_relay(self, &relay) {
                self.e.help(
                    pos,
                    format!("`relays`: host `{relay}` runs no `media-relay` service"),
                    format!(
                        "add `services: {{ {relay}: {{ media-relay: {{}} }} }}` or list another \
                         host (dispatcher on `{disp}`)"
                    ),
                );
            }
        }
        self.secret_groups();
        self.port_overlaps();
    }

    fn resolve_proxy_relays(&mut self) {
        let refs = self.media.proxy_refs.clone();
        for i in 0..self.services.len() {
            let host = self.services[i].host.clone();
            let Some(proxy) = &self.services[i].sip_proxy else {
                continue;
            };
            let (media, pos) = (proxy.media, proxy.pos);
            let named = refs.iter().find(|r| r.host == host);
            let relay = match named {
                Some(r) => {
                    let (service, ok) = if r.dispatcher {
                        let ok = self
                            .services
                            .iter()
                            .any(|s| s.host == r.target && s.dispatcher.is_some());
                        ("dispatcher", ok)
                    } else {
                        let ok = self
                            .services
                            .iter()
                            .any(|s| s.host == r.target && s.media_relay.is_some());
                        ("media-relay", ok)
                    };
                    if !ok {
                        let key = if r.dispatcher {
                            "dispatcher"
                        } else {
                            "media_relay"
                        };
                        self.e.help(
                            r.pos,
                            format!("`{key}`: host `{}` runs no `{service}` service", r.target),
                            format!(
                                "add `services: {{ {}: {{ {service}: {{…}} }} }}` or name \
                                 another host",
                                r.target
                            ),
                        );
                        RelayUse::None
                    } else if r.dispatcher {
                        RelayUse::Dispatcher {
                            host: r.target.clone(),
                        }
                    } else {
                        RelayUse::Declared {
                            host: r.target.clone(),
                        }
                    }
                }
                None if self.services[i].media_relay.is_some() => {
                    RelayUse::Declared { host: host.clone() }
                }
                None if media == MediaPolicy::Never => RelayUse::None,
                None => {
                    let d = MediaRelay::defaults(pos);
                    let fix = format!(
                        "declare `media-relay: {{ ports: A-B, ng_port: N }}` on `{host}` with \
                         free ports, or name a relay with `media_relay: HOST`"
                    );
                    self.claim(
                        "implicit relay",
                        &host,
                        format!(
                            "the ports {} of the `media-relay` this `sip-proxy` starts (its \
                             host declares none)",
                            d.ports
                        ),
                        d.ports,
                        pos,
                        fix.clone(),
                    );
                    self.claim(
                        "implicit relay",
                        &host,
                        format!(
                            "the ng_port {} of the `media-relay` this `sip-proxy` starts",
                            d.ng_port
                        ),
                        PortRange {
                            first: d.ng_port,
                            last: d.ng_port,
                        },
                        pos,
                        fix,
                    );
                    RelayUse::Implicit { host: host.clone() }
                }
            };
            if let Some(p) = &mut self.services[i].sip_proxy {
                p.relay = relay;
            }
        }
    }

    /// One secret per control channel: a proxy, the relay or dispatcher it uses and a
    /// dispatcher's relays are one group; every `secret` written in a group must be the
    /// same, and the members that write none inherit it.
    fn secret_groups(&mut self) {
        // Union-find over (member, host).
        let mut ids: HashMap<(Member, String), usize> = HashMap::new();
        let mut parent: Vec<usize> = Vec::new();
        let mut id = |m: Member, h: &str, parent: &mut Vec<usize>| -> usize {
            *ids.entry((m, h.to_string())).or_insert_with(|| {
                parent.push(parent.len());
                parent.len() - 1
            })
        };
        fn root(parent: &mut [usize], mut x: usize) -> usize {
            while parent[x] != x {
                parent[x] = parent[parent[x]];
                x = parent[x];
            }
            x
        }
        let mut edges: Vec<(usize, usize)> = Vec::new();
        let mut members: Vec<(Member, String, usize)> = Vec::new();
        for s in &self.services {
            if let Some(p) = &s.sip_proxy {
                let a = id(Member::Proxy, &s.host, &mut parent);
                members.push((Member::Proxy, s.host.clone(), a));
                match &p.relay {
                    RelayUse::Declared { host } => {
                        edges.push((a, id(Member::Relay, host, &mut parent)));
                    }
                    RelayUse::Dispatcher { host } => {
                        edges.push((a, id(Member::Dispatcher, host, &mut parent)));
                    }
                    RelayUse::None | RelayUse::Implicit { .. } => {}
                }
            }
            if s.media_relay.is_some() {
                let a = id(Member::Relay, &s.host, &mut parent);
                members.push((Member::Relay, s.host.clone(), a));
            }
            if let Some(d) = &s.dispatcher {
                let a = id(Member::Dispatcher, &s.host, &mut parent);
                members.push((Member::Dispatcher, s.host.clone(), a));
                for r in &d.relays {
                    edges.push((a, id(Member::Relay, r, &mut parent)));
                }
            }
        }
        for (a, b) in edges {
            let (ra, rb) = (root(&mut parent, a), root(&mut parent, b));
            parent[ra] = rb;
        }
        // The first secret written in each group (file order) is the group's.
        let mut written = self.media.secrets.clone();
        written.sort_by_key(|w| w.3);
        let mut group_secret: HashMap<usize, (Member, String, String, Pos)> = HashMap::new();
        for (m, h, secret, pos) in written {
            let Some(&x) = ids.get(&(m, h.clone())) else {
                continue;
            };
            let g = root(&mut parent, x);
            match group_secret.get(&g) {
                None => {
                    group_secret.insert(g, (m, h, secret, pos));
                }
                Some((fm, fh, fs, fpos)) if *fs != secret => {
                    let msg = format!(
                        "this `secret` differs from the one of the `{}` on `{fh}` (at {fpos}), \
                         which shares its ng control channel",
                        fm.name()
                    );
                    self.e.help(
                        pos,
                        msg,
                        "a proxy, the relay or dispatcher it uses, and a dispatcher's relays \
                         share one secret: write the same value, or leave `secret` out here \
                         to inherit it",
                    );
                }
                Some(_) => {}
            }
        }
        for (m, h, x) in members {
            let g = root(&mut parent, x);
            let Some((_, _, secret, _)) = group_secret.get(&g) else {
                continue;
            };
            let Some(s) = self.services.iter_mut().find(|s| s.host == h) else {
                continue;
            };
            let slot = match m {
                Member::Proxy => s.sip_proxy.as_mut().map(|p| &mut p.secret),
                Member::Relay => s.media_relay.as_mut().map(|r| &mut r.secret),
                Member::Dispatcher => s.dispatcher.as_mut().map(|d| &mut d.secret),
            };
            if let Some(slot) = slot {
                *slot = Some(secret.clone());
            }
        }
    }

    /// No UDP port bound by two services of one host, where at least one of them is a
    /// `media-relay` (its ports, its ng_port, or one a proxy starts) or a `dispatcher`.
    fn port_overlaps(&mut self) {
        let claims = self.media.ports.clone();
        for (j, b) in claims.iter().enumerate() {
            for a in &claims[..j] {
                if a.host != b.host || a.owner == b.owner || !(a.new || b.new) {
                    continue;
                }
                if a.range.first > b.range.last || b.range.first > a.range.last {
                    continue;
                }
                // Report at the new claim that comes later in the file.
                let (here, other) = match (a.new, b.new) {
                    (true, true) if a.pos > b.pos => (a, b),
                    (true, false) => (a, b),
                    _ => (b, a),
                };
                self.e.help(
                    here.pos,
                    format!(
                        "on host `{}`, {} and {} (at {}) bind the same UDP ports",
                        here.host, here.what, other.what, other.pos
                    ),
                    here.fix.clone(),
                );
            }
        }
    }
}
