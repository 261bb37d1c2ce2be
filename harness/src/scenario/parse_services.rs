//! Node tree → typed model, part 3: services and agents.

use super::model::*;
use super::parse::{Fields, Parser};
use super::values::*;
use super::yaml::Node;
use std::net::IpAddr;
use std::time::Duration;

const SERVICE_KEYS: &[&str] = &[
    "sip-proxy",
    "media-relay",
    "stun",
    "turn",
    "http-proxy",
    "dispatcher",
];

impl Parser {
    // ===== services =====

    pub(crate) fn services(&mut self, node: &Node) {
        let entries = self.any_map(
            node,
            "`services`",
            "write `services:` followed by `HOST: { stun: { port: 3478 } }` lines",
        );
        for e in entries {
            let host = e.key.text.clone();
            let known = self.host_name_ok(&host, e.key.pos, "`services`");
            let what = format!("the services of `{host}`");
            let Some(f) = self.map(&e.value, &what, SERVICE_KEYS) else {
                continue;
            };
            let sip_proxy = f.get("sip-proxy").and_then(|n| self.sip_proxy(n, &host));
            let media_relay = f
                .get("media-relay")
                .and_then(|n| self.media_relay(n, &host));
            let dispatcher = f.get("dispatcher").and_then(|n| self.dispatcher(n, &host));
            let stun = f.get("stun").and_then(|n| self.stun(n, &host));
            let turn = f.get("turn").and_then(|n| {
                let f = self.map(
                    n,
                    "`turn`",
                    &[
                        "port",
                        "realm",
                        "users",
                        "relay_ports",
                        "quota",
                        "tls_port",
                        "legacy_channels",
                        "tls_cert",
                        "tls_key",
                        "password_algorithms",
                    ],
                )?;
                let tls_port = self.opt_port(&f, "tls_port");
                Some(Turn {
                    port: self.opt_port(&f, "port").unwrap_or(3478),
                    realm: self
                        .opt_string(&f, "realm")
                        .unwrap_or_else(|| "pinhole".into()),
                    users: self.users(&f),
                    relay_ports: self.opt(&f, "relay_ports", parse_port_range).unwrap_or(
                        PortRange {
                            first: 49152,
                            last: 65535,
                        },
                    ),
                    quota: self.opt(&f, "quota", |s| {
                        s.trim()
                            .parse::<u32>()
                            .map_err(|_| format!("`{s}` is not a whole number"))
                    }),
                    tls_cert: self.turn_tls_cert(&f, tls_port),
                    tls_port,
                    password_algorithms: f
                        .get("password_algorithms")
                        .map(|n| self.password_algorithms(n)),
                    legacy_channels: self.opt_bool(&f, "legacy_channels").unwrap_or(false),
                    pos: n.pos,
                })
            });
            let http_proxy = f.get("http-proxy").and_then(|n| {
                let f = self.map(n, "`http-proxy`", &["port", "users"])?;
                Some(HttpProxy {
                    port: self.opt_port(&f, "port").unwrap_or(3128),
                    users: self.users(&f),
                    pos: n.pos,
                })
            });
            // The UDP ports the older services bind, for the overlap check of the media
            // relay and the dispatcher (see `parse_media`).
            let one = |p: u16| PortRange { first: p, last: p };
            if let Some(x) = &sip_proxy {
                let what = format!("the `sip-proxy` port {}", x.port);
                self.old_claim("sip-proxy", &host, what, one(x.port), x.pos);
            }
            if let Some(x) = &stun {
                self.old_claim(
                    "stun",
                    &host,
                    format!("the `stun` port {}", x.port),
                    one(x.port),
                    x.pos,
                );
                if let Some(a) = &x.alternate {
                    let what = format!("the `stun` alternate port {}", a.port);
                    self.old_claim("stun", &host, what, one(a.port), x.pos);
                }
            }
            if let Some(x) = &turn {
                self.old_claim(
                    "turn",
                    &host,
                    format!("the `turn` port {}", x.port),
                    one(x.port),
                    x.pos,
                );
                let what = format!("the `turn` relay_ports {}", x.relay_ports);
                self.old_claim("turn", &host, what, x.relay_ports, x.pos);
            }
            if known {
                self.services.push(Services {
                    host,
                    sip_proxy,
                    media_relay,
                    stun,
                    turn,
                    http_proxy,
                    dispatcher,
                    pos: e.key.pos,
                });
            }
        }
        self.media_checks();
    }

    /// `tls_cert` and `tls_key` of a `turn` service: both or neither, only with a
    /// `tls_port`, PEM files (relative to the scenario's folder) that load and match.
    fn turn_tls_cert(
        &mut self,
        f: &Fields<'_>,
        tls_port: Option<u16>,
    ) -> Option<(std::path::PathBuf, std::path::PathBuf)> {
        let (cert_node, key_node) = (f.get("tls_cert"), f.get("tls_key"));
        let (cert, key) = match (cert_node, key_node) {
            (None, None) => return None,
            (Some(c), Some(k)) => (self.text(c, "`tls_cert`")?, self.text(k, "`tls_key`")?),
            (Some(n), None) | (None, Some(n)) => {
                self.e.help(
                    n.pos,
                    "`tls_cert` and `tls_key` go together",
                    "give both: `tls_cert: server.pem, tls_key: server.key` (PEM files)",
                );
                return None;
            }
        };
        let pos = cert_node.map(|n| n.pos)?;
        if tls_port.is_none() {
            self.e.help(
                pos,
                "`tls_cert` without `tls_port`",
                "add `tls_port: 5349` (the port TURN over TLS listens on)",
            );
            return None;
        }
        let (cert, key) = (self.base_dir.join(cert), self.base_dir.join(key));
        // Read and checked after parsing, with the other files the scenario names.
        self.files.push(super::files::NamedFile::TlsPair {
            pos,
            cert: cert.clone(),
            key: key.clone(),
        });
        Some((cert, key))
    }

    /// `password_algorithms: [sha256, md5]` (an empty list: none, RFC 5389 behaviour).
    fn password_algorithms(&mut self, n: &Node) -> Vec<relay::turn::PasswordAlgorithm> {
        use relay::turn::PasswordAlgorithm;
        let help =
            "write `password_algorithms: [sha256, md5]` (in order of preference; `[]` for none)";
        let mut out: Vec<PasswordAlgorithm> = Vec::new();
        for item in self.seq(n, "`password_algorithms`", help) {
            let Some(a) = self.kw(
                item,
                "password algorithm",
                PasswordAlgorithm::from_name,
                &["sha256", "md5"],
            ) else {
                continue;
            };
            if out.contains(&a) {
                self.e
                    .help(item.pos, format!("`{}` is listed twice", a.name()), help);
            } else {
                out.push(a);
            }
        }
        out
    }

    fn sip_proxy(&mut self, n: &Node, host: &str) -> Option<SipProxy> {
        let f = self.map(
            n,
            "`sip-proxy`",
            &[
                "port",
                "nat",
                "media",
                "ice",
                "ice_priority",
                "media_relay",
                "dispatcher",
                "secret",
            ],
        )?;
        let mut nat = SipNat {
            test: NatTests::ALL,
            fix_contact: true,
            keepalive: None,
        };
        if let Some(nn) = f.get("nat")
            && let Some(nf) = self.map(nn, "`nat`", &["test", "fix_contact", "keepalive"])
        {
            if let Some(t) = nf.get("test") {
                let items = self.seq(t, "`test`", "write `test: [private-contact, private-via]`");
                nat.test = items
                    .iter()
                    .filter_map(|i| {
                        self.kw(i, "NAT test", NatTests::from_keyword, NatTests::VALUES)
                    })
                    .fold(NatTests::default(), NatTests::union);
            }
            if let Some(v) = self.opt_bool(&nf, "fix_contact") {
                nat.fix_contact = v;
            }
            if let Some(k) = nf.get("keepalive")
                && let Some(kf) = self.map(k, "`keepalive`", &["method", "interval"])
            {
                nat.keepalive = Some(SipKeepalive {
                    method: self
                        .opt_kw(
                            &kf,
                            "method",
                            KeepaliveMethod::from_keyword,
                            KeepaliveMethod::VALUES,
                        )
                        .unwrap_or(KeepaliveMethod::Options),
                    interval: self
                        .opt_duration(&kf, "interval")
                        .unwrap_or(Duration::from_secs(20)),
                });
            }
        }
        let (ice_priority, secret) = self.sip_proxy_media(&f, host);
        Some(SipProxy {
            port: self.opt_port(&f, "port").unwrap_or(5060),
            nat,
            media: self
                .opt_kw(&f, "media", MediaPolicy::from_keyword, MediaPolicy::VALUES)
                .unwrap_or(MediaPolicy::WhenNatted),
            ice: self.opt_kw(&f, "ice", IcePolicy::from_keyword, IcePolicy::VALUES),
            ice_priority,
            // Resolved by `media_checks` once every host's services are known.
            relay: RelayUse::None,
            secret,
            pos: n.pos,
        })
    }

    fn stun(&mut self, n: &Node, host: &str) -> Option<Stun> {
        let f = self.map(n, "`stun`", &["port", "alternate"])?;
        let port = self.opt_port(&f, "port").unwrap_or(3478);
        let alternate = match f.get("alternate") {
            None => None,
            Some(a) if a.as_scalar().is_some() => self
                .val(a, "`alternate`", |s| {
                    s.trim().parse::<IpAddr>().map_err(|_| {
                        format!("`{s}` is not an IP address; write the host's second address")
                    })
                })
                .map(|address| StunAlternate {
                    address,
                    port: port.saturating_add(1),
                }),
            Some(a) => {
                let af = self.map(a, "`alternate`", &["address", "port"])?;
                let address = match af.get("address") {
                    Some(x) => self.val(x, "`address`", |s| {
                        s.trim()
                            .parse::<IpAddr>()
                            .map_err(|_| format!("`{s}` is not an IP address"))
                    }),
                    None => {
                        self.missing(a.pos, "address", "`alternate`", "IP");
                        None
                    }
                };
                let aport = self.opt_port(&af, "port").unwrap_or(port.saturating_add(1));
                address.map(|address| StunAlternate {
                    address,
                    port: aport,
                })
            }
        };
        if let Some(alt) = &alternate {
            let listed = self
                .hosts
                .iter()
                .find(|h| h.name == host)
                .is_none_or(|h| h.addresses.contains(&alt.address));
            if !listed {
                let pos = f.get("alternate").map(|a| a.pos).unwrap_or(n.pos);
                self.e.help(
                    pos,
                    format!(
                        "the STUN alternate address {} is not an address of host `{host}`",
                        alt.address
                    ),
                    format!(
                        "give `{host}` two addresses: `addresses: [FIRST, {}]`",
                        alt.address
                    ),
                );
            }
        }
        Some(Stun {
            port,
            alternate,
            pos: n.pos,
        })
    }

    // ===== agents =====

    pub(crate) fn agents(&mut self, node: &Node) {
        let entries = self.any_map(
            node,
            "`agents`",
            "write `agents:` followed by `HOST: { ua: { user: NAME } }` lines",
        );
        for e in entries {
            let host = e.key.text.clone();
            let known = self.host_name_ok(&host, e.key.pos, "`agents`");
            let what = format!("the agents of `{host}`");
            let Some(f) = self.map(&e.value, &what, &["ua"]) else {
                continue;
            };
            let ua = f.get("ua").and_then(|n| self.ua(n, &host));
            if known {
                self.agents.push(Agents {
                    host,
                    ua,
                    pos: e.key.pos,
                });
            }
        }
    }

    pub(super) fn service_host(
        &mut self,
        n: &Node,
        what: &str,
        service: &str,
        has: fn(&Services) -> bool,
    ) -> Option<String> {
        let h = self.host_ref(n, what)?;
        if !self.services.iter().any(|s| s.host == h && has(s)) {
            self.e.help(
                n.pos,
                format!("{what}: host `{h}` runs no `{service}` service"),
                format!("add `services: {{ {h}: {{ {service}: {{}} }} }}` or name another host"),
            );
            return None;
        }
        Some(h)
    }

    fn ua(&mut self, n: &Node, host: &str) -> Option<Ua> {
        let f = self.map(
            n,
            "`ua`",
            &[
                "user",
                "proxy",
                "register",
                "ice",
                "stun",
                "turn",
                "symmetric",
                "keepalive",
            ],
        )?;
        let proxy = f
            .get("proxy")
            .and_then(|p| self.service_host(p, "`proxy`", "sip-proxy", |s| s.sip_proxy.is_some()));
        let stun = f
            .get("stun")
            .and_then(|p| self.service_host(p, "`stun`", "stun", |s| s.stun.is_some()));
        let turn = match f.get("turn") {
            None => None,
            Some(t) => {
                let tf = self.map(t, "`turn`", &["server", "user", "password"])?;
                let server = match tf.get("server") {
                    Some(s) => self.service_host(s, "`server`", "turn", |s| s.turn.is_some()),
                    None => {
                        self.missing(t.pos, "server", "`turn`", "HOST");
                        None
                    }
                };
                let user = self.opt_string(&tf, "user");
                let password = self.opt_string(&tf, "password");
                if tf.get("user").is_none() {
                    self.missing(t.pos, "user", "`turn`", "NAME");
                }
                if tf.get("password").is_none() {
                    self.missing(t.pos, "password", "`turn`", "SECRET");
                }
                match (server, user, password) {
                    (Some(server), Some(user), Some(password)) => Some(UaTurn {
                        server,
                        user,
                        password,
                    }),
                    _ => None,
                }
            }
        };
        Some(Ua {
            user: self
                .opt_string(&f, "user")
                .unwrap_or_else(|| host.to_string()),
            proxy,
            register: self.opt_bool(&f, "register").unwrap_or(false),
            ice: self.opt_bool(&f, "ice").unwrap_or(false),
            stun,
            turn,
            symmetric: self.opt_bool(&f, "symmetric").unwrap_or(true),
            keepalive: self.opt_duration(&f, "keepalive"),
            pos: n.pos,
        })
    }
}
