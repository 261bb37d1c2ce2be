//! Node tree → typed model, part 2: networks, NATs (presets, profiles, axes),
//! firewalls, hosts and links.

use super::error::Pos;
use super::model::*;
use super::parse::{
    AddrUse, Fields, IMPAIRMENT_KEYS, NAT_AXES, Parser, parse_ip, parse_prefix, parse_u32,
};
use super::values::*;
use super::yaml::{self, Node, Value};
use std::net::IpAddr;

impl Parser {
    // ===== topology =====

    pub(crate) fn networks(&mut self, node: &Node) {
        let entries = self.any_map(
            node,
            "`networks`",
            "write `networks:` followed by `name: prefix` lines, like `home-a: 10.0.1.0/24`",
        );
        for e in entries {
            let ok = self.declare(&e.key.text, e.key.pos, "network");
            let Some(text) = self.text(&e.value, "the network prefix") else {
                continue;
            };
            let prefix = match parse_prefix(text) {
                Ok(p) => p,
                Err(m) => {
                    self.e.help(
                        e.value.pos,
                        m,
                        "write the network as ADDRESS/LENGTH with the host bits zero, like 10.0.1.0/24",
                    );
                    continue;
                }
            };
            if let Some(other) = self.networks.iter().find(|n| n.prefix.overlaps(&prefix)) {
                self.e.help(
                    e.value.pos,
                    format!(
                        "network `{}` ({prefix}) overlaps network `{}` ({}) declared at {}",
                        e.key.text, other.name, other.prefix, other.pos
                    ),
                    "networks must not share addresses; pick disjoint prefixes",
                );
            }
            if ok {
                self.networks.push(Network {
                    name: e.key.text.clone(),
                    prefix,
                    gateway: None,
                    pos: e.key.pos,
                });
            }
        }
    }

    /// A listed address: parsed, inside `network`, not used twice.
    pub(crate) fn address(
        &mut self,
        node: &Node,
        network: Option<&str>,
        owner: &str,
    ) -> Option<IpAddr> {
        let a = self.val(node, "the address", parse_ip)?;
        if let Some(net) = network.and_then(|n| self.networks.iter().find(|x| x.name == n)) {
            let (prefix, net_name) = (net.prefix, net.name.clone());
            if !prefix.contains(a) {
                self.e.help(
                    node.pos,
                    format!("address {a} is not in network `{net_name}` ({prefix})"),
                    format!("use an address inside {prefix}, or put {owner} on another network"),
                );
                return None;
            }
            // IPv4 /31 and /32 have no network or broadcast address (RFC 3021).
            let v4_tiny = prefix.addr().is_ipv4() && prefix.len() >= 31;
            let broadcast = prefix
                .last_host_index()
                .checked_add(1)
                .and_then(|i| prefix.nth(i))
                .filter(|b| b.is_ipv4());
            if !v4_tiny && (a == prefix.addr() || Some(a) == broadcast) {
                self.e.help(
                    node.pos,
                    format!("address {a} is the network or broadcast address of {prefix}"),
                    "use a host address",
                );
                return None;
            }
        }
        if let Some(u) = self.addr_uses.iter().find(|u| u.addr == a) {
            self.e.help(
                node.pos,
                format!("address {a} is already used by {} at {}", u.owner, u.pos),
                "each address belongs to one host or NAT; pick another one or leave it out to have one assigned",
            );
            return None;
        }
        self.addr_uses.push(AddrUse {
            addr: a,
            pos: node.pos,
            owner: owner.to_string(),
        });
        Some(a)
    }

    /// A list of addresses (`[a, b]`).
    pub(crate) fn addresses(
        &mut self,
        node: &Node,
        network: Option<&str>,
        owner: &str,
    ) -> Vec<IpAddr> {
        let items = self.seq(
            node,
            "`addresses`",
            "write `addresses: [203.0.113.5, 203.0.113.6]`",
        );
        if items.is_empty() && matches!(node.value, Value::Seq(_)) {
            self.e
                .at(node.pos, "`addresses` is empty; list at least one address");
        }
        items
            .iter()
            .filter_map(|n| self.address(n, network, owner))
            .collect()
    }

    pub(crate) fn nats(&mut self, node: &Node) {
        let entries = self.any_map(
            node,
            "`nats`",
            "write `nats:` followed by one mapping per NAT",
        );
        let mut keys: Vec<&str> = vec!["inside", "outside", "type", "profile"];
        keys.extend_from_slice(NAT_AXES);
        for e in entries {
            let name = e.key.text.clone();
            let ok = self.declare(&name, e.key.pos, "NAT");
            let what = format!("NAT `{name}`");
            let Some(f) = self.map(&e.value, &what, &keys) else {
                continue;
            };
            let inside = match f.get("inside") {
                Some(n) => self.network_ref(n, "`inside`"),
                None => {
                    self.missing(e.key.pos, "inside", &what, "NETWORK");
                    None
                }
            };
            let (outside, addresses) = match f.get("outside") {
                Some(n) => self.outside(n, &what, &format!("NAT `{name}`")),
                None => {
                    self.missing(
                        e.key.pos,
                        "outside",
                        &what,
                        "{ network: NETWORK, addresses: [IP] }",
                    );
                    (None, Vec::new())
                }
            };
            let preset = self.opt_kw(&f, "type", Preset::from_keyword, Preset::VALUES);
            let mut profile = None;
            let mut config = NatConfig::preset(preset.unwrap_or(Preset::PortRestricted));
            let mut sip_alg_pos = None;
            if let (Some(t), Some(p)) = (f.entry("type"), f.entry("profile")) {
                let (first, second) = if t.key.pos < p.key.pos {
                    (t, p)
                } else {
                    (p, t)
                };
                self.e.help(
                    second.key.pos,
                    format!("NAT `{name}` has both `type` and `profile` (first at {})", first.key.pos),
                    "`type` and `profile` exclude each other: keep one; explicit axes override either",
                );
            } else if let Some(p) = f.get("profile")
                && let Some((info, cfg, alg)) = self.profile(p)
            {
                profile = Some(info);
                config = cfg;
                if alg {
                    sip_alg_pos = Some(p.pos);
                }
            }
            if let Some(alg) = self.axes(&f, &mut config) {
                sip_alg_pos = Some(alg);
            } else if f.get("sip_alg").is_some() {
                sip_alg_pos = None;
            }
            if let (Some(inside), Some(outside)) = (&inside, &outside) {
                self.device_pos.insert(
                    name.clone(),
                    (
                        f.get("inside").map(|n| n.pos).unwrap_or(f.pos),
                        f.get("outside").map(|n| n.pos).unwrap_or(f.pos),
                    ),
                );
                if ok {
                    if addresses.is_empty() {
                        self.auto_pools.push(self.nats.len());
                    }
                    self.nats.push(Nat {
                        name,
                        inside: inside.clone(),
                        outside: outside.clone(),
                        addresses,
                        inside_address: IpAddr::from([0, 0, 0, 0]),
                        preset,
                        profile,
                        config,
                        sip_alg_pos,
                        pos: e.key.pos,
                    });
                }
            }
        }
    }

    /// `outside: NETWORK` or `outside: { network: NETWORK, addresses: [IP…] }`.
    pub(crate) fn outside(
        &mut self,
        n: &Node,
        what: &str,
        owner: &str,
    ) -> (Option<String>, Vec<IpAddr>) {
        if n.as_scalar().is_some() {
            return (self.network_ref(n, "`outside`"), Vec::new());
        }
        let Some(f) = self.map(
            n,
            &format!("`outside` of {what}"),
            &["network", "addresses"],
        ) else {
            return (None, Vec::new());
        };
        let network = match f.get("network") {
            Some(x) => self.network_ref(x, "`network`"),
            None => {
                self.missing(n.pos, "network", "`outside`", "NETWORK");
                None
            }
        };
        let addresses = match (f.get("addresses"), &network) {
            (Some(a), Some(net)) => self.addresses(a, Some(&net.clone()), owner),
            _ => Vec::new(),
        };
        (network, addresses)
    }

    /// Applies the axes present in `f` to `config`. Returns where `sip_alg: rewrite` is.
    pub(crate) fn axes(&mut self, f: &Fields<'_>, c: &mut NatConfig) -> Option<Pos> {
        if let Some(v) = self.opt_kw(
            f,
            "mapping",
            MappingBehavior::from_keyword,
            MappingBehavior::VALUES,
        ) {
            c.mapping = v;
        }
        if let Some(v) = self.opt_kw(
            f,
            "filtering",
            FilteringBehavior::from_keyword,
            FilteringBehavior::VALUES,
        ) {
            c.filtering = v;
        }
        if let Some(v) = self.opt_kw(
            f,
            "port_allocation",
            PortAllocation::from_keyword,
            PortAllocation::VALUES,
        ) {
            c.port_allocation = v;
        }
        if let Some(v) = self.opt_bool(f, "port_parity") {
            c.port_parity = v;
        }
        if let Some(v) = self.opt(f, "port_range", parse_port_range) {
            c.port_range = v;
        }
        if let Some(v) = self.opt_kw(f, "pooling", Pooling::from_keyword, Pooling::VALUES) {
            c.pooling = v;
        }
        if let Some(v) = self.opt_bool(f, "hairpinning") {
            c.hairpinning = v;
        }
        if let Some(n) = f.get("timeouts")
            && let Some(t) = self.map(
                n,
                "`timeouts`",
                &["udp", "tcp_established", "tcp_transitory", "icmp"],
            )
        {
            if let Some(v) = self.opt_duration(&t, "udp") {
                c.timeouts.udp = v;
            }
            if let Some(v) = self.opt_duration(&t, "tcp_established") {
                c.timeouts.tcp_established = v;
            }
            if let Some(v) = self.opt_duration(&t, "tcp_transitory") {
                c.timeouts.tcp_transitory = v;
            }
            if let Some(v) = self.opt_duration(&t, "icmp") {
                c.timeouts.icmp = v;
            }
        }
        if let Some(v) = self.opt_kw(f, "refresh", Refresh::from_keyword, Refresh::VALUES) {
            c.refresh = v;
        }
        if let Some(v) = self.opt(f, "max_bindings", parse_u32) {
            c.max_bindings = v;
        }
        if let Some(v) = self.opt_kw(
            f,
            "unsolicited",
            Unsolicited::from_keyword,
            Unsolicited::VALUES,
        ) {
            c.unsolicited = v;
        }
        if let Some(v) = self.opt_kw(f, "fragments", Fragments::from_keyword, Fragments::VALUES) {
            c.fragments = v;
        }
        // `off` is a YAML 1.1 boolean; it arrives here as the text `off`.
        if let Some(v) = self.opt_kw(f, "sip_alg", SipAlgMode::from_keyword, SipAlgMode::VALUES) {
            c.sip_alg = v;
            if v == SipAlgMode::Rewrite {
                return f.get("sip_alg").map(|n| n.pos);
            }
        }
        None
    }

    /// Loads a NAT profile: the axes over the port-restricted defaults (or the profile's
    /// own `type:`), plus free `name`/`description`/`recorded` metadata. Errors inside the
    /// profile are positioned in the profile file.
    pub(crate) fn profile(&mut self, node: &Node) -> Option<(ProfileInfo, NatConfig, bool)> {
        let rel = self.text(node, "`profile`")?;
        let path = self.base_dir.join(rel);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(err) => {
                self.e.help(
                    node.pos,
                    format!("cannot read NAT profile {}: {err}", path.display()),
                    "profile paths are relative to the scenario file's folder",
                );
                return None;
            }
        };
        let tree = match yaml::parse(&text, &path) {
            Ok(t) => t,
            Err(e) => {
                self.e.push(e);
                return None;
            }
        };
        let mut sub = Parser::new(&path);
        let mut keys: Vec<&str> = vec!["name", "description", "recorded", "type"];
        keys.extend_from_slice(NAT_AXES);
        let f = sub.map(&tree, "the NAT profile", &keys);
        let mut out = None;
        if let Some(f) = f {
            let preset = sub.opt_kw(&f, "type", Preset::from_keyword, Preset::VALUES);
            let mut config = NatConfig::preset(preset.unwrap_or(Preset::PortRestricted));
            let alg = sub.axes(&f, &mut config).is_some();
            let info = ProfileInfo {
                path: path.clone(),
                name: sub.opt_string(&f, "name"),
                description: sub.opt_string(&f, "description"),
                recorded: f.get("recorded").map(Node::render),
            };
            out = Some((info, config, alg));
        }
        let failed = !sub.e.is_empty();
        for e in sub.e.list {
            self.e.push(e);
        }
        if failed { None } else { out }
    }

    pub(crate) fn firewalls(&mut self, node: &Node) {
        let entries = self.any_map(
            node,
            "`firewalls`",
            "write `firewalls:` followed by one mapping per firewall",
        );
        for e in entries {
            let name = e.key.text.clone();
            let ok = self.declare(&name, e.key.pos, "firewall");
            let what = format!("firewall `{name}`");
            let Some(f) = self.map(&e.value, &what, &["inside", "outside", "class", "rules"])
            else {
                continue;
            };
            let inside = match f.get("inside") {
                Some(n) => self.network_ref(n, "`inside`"),
                None => {
                    self.missing(e.key.pos, "inside", &what, "NETWORK");
                    None
                }
            };
            let outside = match f.get("outside") {
                Some(n) => self.network_ref(n, "`outside`"),
                None => {
                    self.missing(e.key.pos, "outside", &what, "NETWORK");
                    None
                }
            };
            let class = self
                .opt_kw(
                    &f,
                    "class",
                    FirewallClass::from_keyword,
                    FirewallClass::VALUES,
                )
                .unwrap_or(FirewallClass::Open);
            let mut rules = Vec::new();
            if let Some(r) = f.get("rules") {
                let items = self.seq(
                    r,
                    "`rules`",
                    "write `rules: [{ action: allow, proto: udp, ports: 5060 }]`",
                );
                for item in items {
                    if let Some(rule) = self.rule(item) {
                        rules.push(rule);
                    }
                }
            }
            if let (Some(inside), Some(outside)) = (inside, outside) {
                self.device_pos.insert(
                    name.clone(),
                    (
                        f.get("inside").map(|n| n.pos).unwrap_or(f.pos),
                        f.get("outside").map(|n| n.pos).unwrap_or(f.pos),
                    ),
                );
                if ok {
                    self.firewalls.push(Firewall {
                        name,
                        inside,
                        outside,
                        class,
                        rules,
                        inside_address: IpAddr::from([0, 0, 0, 0]),
                        outside_address: IpAddr::from([0, 0, 0, 0]),
                        pos: e.key.pos,
                    });
                }
            }
        }
    }

    pub(crate) fn rule(&mut self, node: &Node) -> Option<Rule> {
        let f = self.map(
            node,
            "a firewall rule",
            &["action", "proto", "direction", "ports", "to"],
        )?;
        let action = match f.get("action") {
            Some(n) => self.kw(
                n,
                "`action` value",
                RuleAction::from_keyword,
                RuleAction::VALUES,
            ),
            None => {
                self.missing(node.pos, "action", "the firewall rule", "allow");
                None
            }
        };
        let proto = self
            .opt_kw(&f, "proto", RuleProto::from_keyword, RuleProto::VALUES)
            .unwrap_or(RuleProto::Any);
        let direction = self
            .opt_kw(&f, "direction", Direction::from_keyword, Direction::VALUES)
            .unwrap_or(Direction::Outbound);
        let ports = self.opt(&f, "ports", parse_port_range);
        let to = self.opt(&f, "to", parse_prefix);
        Some(Rule {
            action: action?,
            proto,
            direction,
            ports,
            to,
            pos: node.pos,
        })
    }

    pub(crate) fn hosts(&mut self, node: &Node) {
        let entries = self.any_map(
            node,
            "`hosts`",
            "write `hosts:` followed by `name: { network: NETWORK }` lines",
        );
        for e in entries {
            let name = e.key.text.clone();
            let ok = self.declare(&name, e.key.pos, "host");
            let what = format!("host `{name}`");
            let Some(f) = self.map(&e.value, &what, &["network", "address", "addresses"]) else {
                continue;
            };
            let network = match f.get("network") {
                Some(n) => self.network_ref(n, "`network`"),
                None => {
                    self.missing(e.key.pos, "network", &what, "NETWORK");
                    None
                }
            };
            let owner = format!("host `{name}`");
            let mut addresses = Vec::new();
            match (f.entry("address"), f.entry("addresses")) {
                (Some(a), Some(b)) => {
                    self.e.help(
                        b.key.pos,
                        format!("host `{name}` has both `address` and `addresses`"),
                        "use `address: IP` for one address or `addresses: [IP, IP]` for several",
                    );
                    let _ = a;
                }
                (Some(a), None) => {
                    if let Some(ip) = self.address(&a.value, network.as_deref(), &owner) {
                        addresses.push(ip);
                    }
                }
                (None, Some(b)) => {
                    addresses = self.addresses(&b.value, network.as_deref(), &owner);
                }
                (None, None) => {}
            }
            if let (true, Some(network)) = (ok, network) {
                let explicit = f.get("address").is_some() || f.get("addresses").is_some();
                if !explicit {
                    self.auto_hosts.push(self.hosts.len());
                }
                self.hosts.push(Host {
                    name,
                    network,
                    addresses,
                    gateway: None,
                    pos: e.key.pos,
                });
            }
        }
    }

    // ===== links =====

    /// A link target: a host name, or `DEVICE.inside` / `DEVICE.outside`.
    pub(crate) fn link_target(&mut self, text: &str, pos: Pos) -> Option<LinkTarget> {
        if let Some((dev, side)) = text.rsplit_once('.') {
            let known = self.nats.iter().any(|n| n.name == dev)
                || self.firewalls.iter().any(|n| n.name == dev);
            if !known {
                self.e.help(
                    pos,
                    format!("link target `{text}`: unknown NAT or firewall `{dev}`"),
                    "a link is named by a host, or by NAT.inside / NAT.outside (also for firewalls)",
                );
                return None;
            }
            return match side {
                "inside" => Some(LinkTarget::Inside(dev.to_string())),
                "outside" => Some(LinkTarget::Outside(dev.to_string())),
                _ => {
                    self.e.help(
                        pos,
                        format!("link target `{text}`: unknown side `{side}`"),
                        format!("write `{dev}.inside` or `{dev}.outside`"),
                    );
                    None
                }
            };
        }
        if self.hosts.iter().any(|h| h.name == text) {
            return Some(LinkTarget::Host(text.to_string()));
        }
        let mut names: Vec<String> = self.hosts.iter().map(|h| h.name.clone()).collect();
        for d in self
            .nats
            .iter()
            .map(|n| &n.name)
            .chain(self.firewalls.iter().map(|n| &n.name))
        {
            names.push(format!("{d}.inside"));
            names.push(format!("{d}.outside"));
        }
        self.e.help(
            pos,
            format!("link target `{text}` is not a host, NAT.inside or NAT.outside"),
            format!("valid targets: {}", names.join(", ")),
        );
        None
    }

    pub(crate) fn links(&mut self, node: &Node) -> Vec<Link> {
        let entries = self.any_map(
            node,
            "`links`",
            "write `links:` followed by `HOST: { delay: 40ms }` lines",
        );
        let mut out: Vec<Link> = Vec::new();
        for e in entries {
            let target = self.link_target(&e.key.text, e.key.pos);
            let (up, down) = self.link_settings(&e.value, &format!("link `{}`", e.key.text));
            if let Some(target) = target {
                if let Some(prev) = out.iter().find(|l| l.target == target) {
                    self.e.help(
                        e.key.pos,
                        format!("link `{target}` is already set at {}", prev.pos),
                        "merge the two entries",
                    );
                    continue;
                }
                out.push(Link {
                    target,
                    up,
                    down,
                    pos: e.key.pos,
                });
            }
        }
        out
    }

    /// The flat form (the same impairments both ways) or `up:`/`down:`.
    pub(crate) fn link_settings(&mut self, node: &Node, what: &str) -> (Impairment, Impairment) {
        let directional = node
            .as_map()
            .is_some_and(|m| m.iter().any(|e| e.key.text == "up" || e.key.text == "down"));
        if directional {
            let mut allowed = vec!["up", "down"];
            allowed.extend_from_slice(IMPAIRMENT_KEYS);
            let Some(f) = self.map(node, what, &allowed) else {
                return Default::default();
            };
            let up = f
                .get("up")
                .map(|n| self.impairment(n, &format!("`up` of {what}")))
                .unwrap_or_default();
            let down = f
                .get("down")
                .map(|n| self.impairment(n, &format!("`down` of {what}")))
                .unwrap_or_default();
            if let Some(x) = f
                .entries
                .iter()
                .find(|e| IMPAIRMENT_KEYS.contains(&e.key.text.as_str()))
            {
                self.e.at(
                    x.key.pos,
                    format!("`{}` sits beside `up`/`down` in {what}", x.key.text),
                ).help = Some("use either the flat form or `up:`/`down:`, not both; move it into `up:` and `down:`".into());
            }
            (up, down)
        } else {
            let i = self.impairment(node, what);
            (i.clone(), i)
        }
    }

    pub(crate) fn impairment(&mut self, node: &Node, what: &str) -> Impairment {
        let mut allowed: Vec<&str> = IMPAIRMENT_KEYS.to_vec();
        if what.starts_with("link") {
            allowed.extend_from_slice(&["up", "down"]);
        }
        let Some(f) = self.map(node, what, &allowed) else {
            return Impairment::default();
        };
        let loss = f.get("loss").and_then(|n| self.loss(n));
        Impairment {
            delay: self.opt_duration(&f, "delay"),
            jitter: self.opt_duration(&f, "jitter"),
            loss,
            duplicate: self.opt(&f, "duplicate", parse_percent),
            reorder: self.opt(&f, "reorder", parse_percent),
            rate: self.opt(&f, "rate", parse_rate),
            queue: self.opt(&f, "queue", parse_u32),
            mtu: self.opt(&f, "mtu", |s| match parse_u32(s) {
                Ok(v) if (68..=65535).contains(&v) => Ok(v),
                _ => Err(format!(
                    "`{s}` is not an MTU; write a number from 68 to 65535"
                )),
            }),
        }
    }

    pub(crate) fn loss(&mut self, node: &Node) -> Option<Loss> {
        if node.as_scalar().is_some() {
            return self.val(node, "`loss`", parse_percent).map(Loss::Random);
        }
        let f = self.map(node, "`loss`", &["gilbert"])?;
        let Some(g) = f.get("gilbert") else {
            self.missing(node.pos, "gilbert", "`loss`", "{ p: 1%, r: 30% }");
            return None;
        };
        let gf = self.map(g, "`gilbert`", &["p", "r", "h", "k"])?;
        let p = self.opt(&gf, "p", parse_percent);
        let r = self.opt(&gf, "r", parse_percent);
        if gf.get("p").is_none() {
            self.missing(g.pos, "p", "`gilbert`", "1%");
        }
        if gf.get("r").is_none() {
            self.missing(g.pos, "r", "`gilbert`", "30%");
        }
        let h = self.opt(&gf, "h", parse_percent).unwrap_or(0.0);
        let k = self.opt(&gf, "k", parse_percent).unwrap_or(1.0);
        Some(Loss::Gilbert(Gilbert { p: p?, r: r?, h, k }))
    }
}
