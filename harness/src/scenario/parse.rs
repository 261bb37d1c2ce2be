//! Node tree → typed model, part 1: the helpers, the top level, the topology and links.
//!
//! Every problem is recorded with the position of the offending key or value and parsing
//! goes on, so that one run reports as many errors as practical.

use super::error::{Errors, Pos};
use super::model::*;
use super::values::*;
use super::yaml::{self, Entry, Node, Value};
use emulator::Prefix;
use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The top-level keys.
pub(crate) const ROOT_KEYS: &[&str] = &[
    "version",
    "name",
    "description",
    "seed",
    "fabric",
    "time_limit",
    "networks",
    "nats",
    "firewalls",
    "hosts",
    "links",
    "services",
    "agents",
    "steps",
    "expect",
    "matrix",
];

/// The behaviour axes of a NAT (also the keys of a NAT profile).
pub(crate) const NAT_AXES: &[&str] = &[
    "mapping",
    "filtering",
    "port_allocation",
    "port_parity",
    "port_range",
    "pooling",
    "hairpinning",
    "timeouts",
    "refresh",
    "max_bindings",
    "unsolicited",
    "fragments",
    "sip_alg",
];

const IMPAIRMENT_KEYS: &[&str] = &[
    "delay",
    "jitter",
    "loss",
    "duplicate",
    "reorder",
    "rate",
    "queue",
    "mtu",
];

/// A mapping whose keys were checked against the allowed ones.
#[derive(Clone, Copy)]
pub(crate) struct Fields<'n> {
    /// Where the mapping starts.
    pub(crate) pos: Pos,
    pub(crate) entries: &'n [Entry],
}

impl<'n> Fields<'n> {
    pub(crate) fn get(&self, key: &str) -> Option<&'n Node> {
        self.entry(key).map(|e| &e.value)
    }
    pub(crate) fn entry(&self, key: &str) -> Option<&'n Entry> {
        self.entries.iter().find(|e| e.key.text == key)
    }
}

/// Where an address was given or assigned, for duplicate detection.
#[derive(Clone, Debug)]
pub(crate) struct AddrUse {
    pub(crate) addr: IpAddr,
    pub(crate) pos: Pos,
    pub(crate) owner: String,
}

/// The parsing state of one scenario (or cell).
pub(crate) struct Parser {
    pub(crate) e: Errors,
    pub(crate) base_dir: PathBuf,
    /// name → (where, what kind of thing)
    pub(crate) names: HashMap<String, (Pos, &'static str)>,
    pub(crate) networks: Vec<Network>,
    pub(crate) nats: Vec<Nat>,
    pub(crate) firewalls: Vec<Firewall>,
    pub(crate) hosts: Vec<Host>,
    /// Hosts that listed no address, by index into `hosts`.
    pub(crate) auto_hosts: Vec<usize>,
    /// NATs without an address pool, by index into `nats`.
    pub(crate) auto_pools: Vec<usize>,
    /// Listed addresses.
    pub(crate) addr_uses: Vec<AddrUse>,
    /// Where each device's `inside:` / `outside:` value is, by device name.
    pub(crate) device_pos: HashMap<String, (Pos, Pos)>,
    pub(crate) services: Vec<Services>,
    pub(crate) agents: Vec<Agents>,
    pub(crate) steps: Vec<Step>,
}

/// The closest of `candidates` to `word`, if close enough to be a likely typo.
pub(crate) fn suggest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    fn dist(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let sub = prev[j] + usize::from(ca != *cb);
                cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    candidates
        .iter()
        .map(|c| (dist(word, c), *c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4) && *d < c.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Whether `s` is a valid name: `[a-z0-9][a-z0-9-]*`.
pub(crate) fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn parse_u32(s: &str) -> Result<u32, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number from 0 to {}", u32::MAX))
}

fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("`{s}` is not an IP address; write an IPv4 or IPv6 literal like 10.0.1.5")
    })
}

fn parse_prefix(s: &str) -> Result<Prefix, String> {
    s.parse::<Prefix>()
        .map_err(|e| format!("`{s}` is not a network prefix: {e}"))
}

impl Parser {
    pub(crate) fn new(file: &Path) -> Self {
        Parser {
            e: Errors::new(file),
            base_dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
            names: HashMap::new(),
            networks: Vec::new(),
            nats: Vec::new(),
            firewalls: Vec::new(),
            hosts: Vec::new(),
            auto_hosts: Vec::new(),
            auto_pools: Vec::new(),
            addr_uses: Vec::new(),
            device_pos: HashMap::new(),
            services: Vec::new(),
            agents: Vec::new(),
            steps: Vec::new(),
        }
    }

    // ===== generic helpers =====

    /// Checks that `node` is a mapping (or empty) whose keys are all in `allowed`.
    pub(crate) fn map<'n>(
        &mut self,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let entries: &'n [Entry] = match &node.value {
            Value::Map(m) => m,
            Value::Scalar(s) if s.is_null() => &[],
            _ => {
                self.e.help(
                    node.pos,
                    format!("{what} must be a mapping, not {}", node.kind()),
                    format!(
                        "write it as `key: value` lines; valid keys: {}",
                        allowed.join(", ")
                    ),
                );
                return None;
            }
        };
        for e in entries {
            if !allowed.contains(&e.key.text.as_str()) {
                self.unknown_key(e, what, allowed);
            }
        }
        Some(Fields {
            pos: node.pos,
            entries,
        })
    }

    pub(crate) fn unknown_key(&mut self, e: &Entry, what: &str, allowed: &[&str]) {
        let mut help = format!("valid keys: {}", allowed.join(", "));
        if let Some(s) = suggest(&e.key.text, allowed) {
            help = format!("did you mean `{s}`? {help}");
        }
        self.e.help(
            e.key.pos,
            format!("unknown key `{}` in {what}", e.key.text),
            help,
        );
    }

    /// Checks that `node` is a mapping (or empty) and returns its entries, any keys.
    pub(crate) fn any_map<'n>(&mut self, node: &'n Node, what: &str, help: &str) -> &'n [Entry] {
        match &node.value {
            Value::Map(m) => m,
            Value::Scalar(s) if s.is_null() => &[],
            _ => {
                self.e.help(
                    node.pos,
                    format!("{what} must be a mapping, not {}", node.kind()),
                    help.to_string(),
                );
                &[]
            }
        }
    }

    /// Checks that `node` is a sequence (or empty).
    pub(crate) fn seq<'n>(&mut self, node: &'n Node, what: &str, help: &str) -> &'n [Node] {
        match &node.value {
            Value::Seq(s) => s,
            Value::Scalar(s) if s.is_null() => &[],
            _ => {
                self.e.help(
                    node.pos,
                    format!("{what} must be a sequence, not {}", node.kind()),
                    help.to_string(),
                );
                &[]
            }
        }
    }

    /// A missing required key.
    pub(crate) fn missing(&mut self, pos: Pos, key: &str, what: &str, example: &str) {
        self.e.help(
            pos,
            format!("{what} has no `{key}`"),
            format!("add `{key}: {example}`"),
        );
    }

    /// The text of a scalar value (not null).
    pub(crate) fn text<'n>(&mut self, node: &'n Node, what: &str) -> Option<&'n str> {
        match &node.value {
            Value::Scalar(s) if !s.is_null() => Some(&s.text),
            _ => {
                self.e.at(
                    node.pos,
                    format!("{what} must be a value, not {}", node.kind()),
                );
                None
            }
        }
    }

    /// A scalar parsed by `parse`, the error positioned on the value.
    pub(crate) fn val<T>(
        &mut self,
        node: &Node,
        what: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let t = self.text(node, what)?;
        match parse(t) {
            Ok(v) => Some(v),
            Err(m) => {
                self.e.at(node.pos, format!("{what}: {m}"));
                None
            }
        }
    }

    /// A keyword from `values`.
    pub(crate) fn kw<T>(
        &mut self,
        node: &Node,
        what: &str,
        from: fn(&str) -> Option<T>,
        values: &[&str],
    ) -> Option<T> {
        let t = self.text(node, what)?;
        match from(t) {
            Some(v) => Some(v),
            None => {
                let mut help = format!("use one of: {}", values.join(", "));
                if let Some(s) = suggest(t, values) {
                    help = format!("did you mean `{s}`? {help}");
                }
                self.e
                    .help(node.pos, format!("`{t}` is not a valid {what}"), help);
                None
            }
        }
    }

    /// `key` of `f` parsed with `parse`, if present.
    pub(crate) fn opt<T>(
        &mut self,
        f: &Fields<'_>,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        let n = f.get(key)?;
        self.val(n, &format!("`{key}`"), parse)
    }

    pub(crate) fn opt_kw<T>(
        &mut self,
        f: &Fields<'_>,
        key: &str,
        from: fn(&str) -> Option<T>,
        values: &[&str],
    ) -> Option<T> {
        let n = f.get(key)?;
        self.kw(n, &format!("`{key}` value"), from, values)
    }

    pub(crate) fn opt_bool(&mut self, f: &Fields<'_>, key: &str) -> Option<bool> {
        self.opt(f, key, parse_bool)
    }

    pub(crate) fn opt_duration(&mut self, f: &Fields<'_>, key: &str) -> Option<Duration> {
        self.opt(f, key, parse_duration)
    }

    pub(crate) fn opt_port(&mut self, f: &Fields<'_>, key: &str) -> Option<u16> {
        self.opt(f, key, parse_port)
    }

    pub(crate) fn opt_string(&mut self, f: &Fields<'_>, key: &str) -> Option<String> {
        let n = f.get(key)?;
        self.text(n, &format!("`{key}`")).map(str::to_string)
    }

    /// A user → password mapping.
    pub(crate) fn users(&mut self, f: &Fields<'_>) -> Vec<(String, String)> {
        let Some(n) = f.get("users") else {
            return Vec::new();
        };
        let entries = self.any_map(n, "`users`", "write `users: { alice: secret }`");
        let mut out = Vec::new();
        for e in entries {
            if let Some(p) = self.text(&e.value, "a password") {
                out.push((e.key.text.clone(), p.to_string()));
            }
        }
        out
    }

    /// Registers a name; checks its syntax and uniqueness.
    pub(crate) fn declare(&mut self, name: &str, pos: Pos, kind: &'static str) -> bool {
        if !valid_name(name) {
            self.e.help(
                pos,
                format!("`{name}` is not a valid {kind} name"),
                "names are lowercase letters, digits and `-`, starting with a letter or digit (like `nat-a`)",
            );
            return false;
        }
        if let Some((p, k)) = self.names.get(name) {
            self.e.help(
                pos,
                format!("the name `{name}` is already used by the {k} at {p}"),
                "names are unique across networks, NATs, firewalls, hosts and steps; rename one",
            );
            return false;
        }
        self.names.insert(name.to_string(), (pos, kind));
        true
    }

    fn list_names(names: impl Iterator<Item = String>) -> String {
        let v: Vec<String> = names.collect();
        if v.is_empty() {
            "none are declared".into()
        } else {
            format!("declared: {}", v.join(", "))
        }
    }

    /// A reference to a declared network.
    pub(crate) fn network_ref(&mut self, node: &Node, what: &str) -> Option<String> {
        let t = self.text(node, what)?.to_string();
        if self.networks.iter().any(|n| n.name == t) {
            return Some(t);
        }
        if self.names.get(&t).is_some_and(|(_, k)| *k == "network") {
            return None; // declared but broken: already reported
        }
        let help = Self::list_names(self.networks.iter().map(|n| n.name.clone()));
        self.e.help(
            node.pos,
            format!("{what}: unknown network `{t}`"),
            format!("declare it under `networks:` ({help})"),
        );
        None
    }

    /// A reference to a declared host.
    pub(crate) fn host_ref(&mut self, node: &Node, what: &str) -> Option<String> {
        let t = self.text(node, what)?.to_string();
        self.host_name_ok(&t, node.pos, what).then_some(t)
    }

    pub(crate) fn host_name_ok(&mut self, t: &str, pos: Pos, what: &str) -> bool {
        if self.hosts.iter().any(|n| n.name == t) {
            return true;
        }
        if self.names.get(t).is_some_and(|(_, k)| *k == "host") {
            return false; // declared but broken: already reported
        }
        let help = Self::list_names(self.hosts.iter().map(|n| n.name.clone()));
        self.e.help(
            pos,
            format!("{what}: unknown host `{t}`"),
            format!("declare it under `hosts:` ({help})"),
        );
        false
    }

    // ===== top level =====

    /// Parses the whole document into a [`Spec`] (addresses resolved by
    /// [`super::validate`]).
    pub(crate) fn root(&mut self, root: &Node) -> Option<Spec> {
        let f = self.map(root, "the scenario", ROOT_KEYS)?;
        let version = match f.get("version") {
            Some(n) => match self.val(n, "`version`", parse_u32) {
                Some(1) => 1,
                Some(v) => {
                    self.e.help(
                        n.pos,
                        format!("unsupported scenario format version {v}"),
                        "this pinhole reads `version: 1`",
                    );
                    v
                }
                None => 1,
            },
            None => {
                self.missing(Pos::new(1, 1), "version", "the scenario", "1");
                1
            }
        };
        let name = match f.get("name") {
            Some(n) => {
                let t = self
                    .text(n, "`name`")
                    .unwrap_or_default()
                    .trim()
                    .to_string();
                if t.is_empty() && n.as_scalar().is_some() {
                    self.e.help(
                        n.pos,
                        "the scenario `name` is empty",
                        "name the scenario: it names reports, cells and the default seed",
                    );
                }
                t
            }
            None => {
                self.missing(Pos::new(1, 1), "name", "the scenario", "a short title");
                String::new()
            }
        };
        let description = self.opt_string(&f, "description");
        let seed = match f.get("seed") {
            Some(n) => self
                .val(n, "`seed`", |s| {
                    s.trim()
                        .parse::<u64>()
                        .map_err(|_| format!("`{s}` is not a whole number from 0 to 2^64-1"))
                })
                .unwrap_or(0),
            None => super::name_seed(&name),
        };
        let fabric = self
            .opt_kw(&f, "fabric", Fabric::from_keyword, Fabric::VALUES)
            .unwrap_or(Fabric::Kernel);
        let fabric_pos = f.get("fabric").map(|n| n.pos);
        let time_limit = self
            .opt_duration(&f, "time_limit")
            .unwrap_or(Duration::from_secs(300));
        if let Some(n) = f.get("networks") {
            self.networks(n);
        }
        if let Some(n) = f.get("nats") {
            self.nats(n);
        }
        if let Some(n) = f.get("firewalls") {
            self.firewalls(n);
        }
        if let Some(n) = f.get("hosts") {
            self.hosts(n);
        }
        let links = f.get("links").map(|n| self.links(n)).unwrap_or_default();
        if let Some(n) = f.get("services") {
            self.services(n);
        }
        if let Some(n) = f.get("agents") {
            self.agents(n);
        }
        if let Some(n) = f.get("steps") {
            self.steps(n);
        }
        let expect = f.get("expect").map(|n| self.expect(n)).unwrap_or_default();
        Some(Spec {
            version,
            name,
            description,
            seed,
            fabric,
            fabric_pos,
            time_limit,
            topology: Topology {
                networks: std::mem::take(&mut self.networks),
                nats: std::mem::take(&mut self.nats),
                firewalls: std::mem::take(&mut self.firewalls),
                hosts: std::mem::take(&mut self.hosts),
            },
            links,
            services: std::mem::take(&mut self.services),
            agents: std::mem::take(&mut self.agents),
            steps: std::mem::take(&mut self.steps),
            expect,
        })
    }

    // ===== topology =====

    fn networks(&mut self, node: &Node) {
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

    fn nats(&mut self, node: &Node) {
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
    fn outside(&mut self, n: &Node, what: &str, owner: &str) -> (Option<String>, Vec<IpAddr>) {
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
        if let Some(v) = self.opt_kw(f, "mapping", Behavior::from_keyword, Behavior::VALUES) {
            c.mapping = v;
        }
        if let Some(v) = self.opt_kw(f, "filtering", Behavior::from_keyword, Behavior::VALUES) {
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
        if let Some(v) = self.opt_kw(f, "sip_alg", SipAlg::from_keyword, SipAlg::VALUES) {
            c.sip_alg = v;
            if v == SipAlg::Rewrite {
                return f.get("sip_alg").map(|n| n.pos);
            }
        }
        None
    }

    /// Loads a NAT profile: the axes over the port-restricted defaults (or the profile's
    /// own `type:`), plus free `name`/`description`/`recorded` metadata. Errors inside the
    /// profile are positioned in the profile file.
    fn profile(&mut self, node: &Node) -> Option<(ProfileInfo, NatConfig, bool)> {
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

    fn firewalls(&mut self, node: &Node) {
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

    fn rule(&mut self, node: &Node) -> Option<Rule> {
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

    fn hosts(&mut self, node: &Node) {
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

    fn links(&mut self, node: &Node) -> Vec<Link> {
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

    fn impairment(&mut self, node: &Node, what: &str) -> Impairment {
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

    fn loss(&mut self, node: &Node) -> Option<Loss> {
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
