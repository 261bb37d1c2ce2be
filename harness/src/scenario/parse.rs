//! Node tree → typed model, part 1: the helpers, the top level, the topology and links.
//!
//! Every problem is recorded with the position of the offending key or value and parsing
//! goes on, so that one run reports as many errors as practical.

use super::error::{Errors, Pos};
use super::model::*;
use super::values::*;
use super::yaml::{Entry, Node, Value};
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

pub(crate) const IMPAIRMENT_KEYS: &[&str] = &[
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
    /// Files the scenario names (TLS certificates), read by [`super::files`] after parsing.
    pub(crate) files: Vec<super::files::NamedFile>,
    /// What the media services' checks need once every host's services are parsed.
    pub(crate) media: super::parse_media::MediaRefs,
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

pub(crate) fn parse_u32(s: &str) -> Result<u32, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number from 0 to {}", u32::MAX))
}

pub(crate) fn parse_ip(s: &str) -> Result<IpAddr, String> {
    s.trim().parse().map_err(|_| {
        format!("`{s}` is not an IP address; write an IPv4 or IPv6 literal like 10.0.1.5")
    })
}

pub(crate) fn parse_prefix(s: &str) -> Result<Prefix, String> {
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
            files: Vec::new(),
            media: Default::default(),
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
}
