//! Node tree → typed model, part 4: steps and expectations.

use super::error::Pos;
use super::model::*;
use super::parse::{Fields, Parser};
use super::values::*;
use super::yaml::{Node, Value};
use std::net::IpAddr;
use std::time::Duration;

const STEP_KINDS: &[&str] = &[
    "call", "reinvite", "probe", "punch", "run", "wait", "link", "nat", "service",
];

impl Parser {
    // ===== steps =====

    pub(crate) fn steps(&mut self, node: &Node) {
        let items = self.seq(
            node,
            "`steps`",
            "write `steps:` followed by `- call: {…}` items",
        );
        for item in items {
            let Some(entries) = item.as_map() else {
                self.e.help(
                    item.pos,
                    format!(
                        "a step must be a mapping like `- wait: 5s`, not {}",
                        item.kind()
                    ),
                    format!("step kinds: {}", STEP_KINDS.join(", ")),
                );
                continue;
            };
            let Some(first) = entries.first() else {
                self.e.at(item.pos, "empty step").help =
                    Some(format!("step kinds: {}", STEP_KINDS.join(", ")));
                continue;
            };
            let Some(kind) = StepKindName::from_keyword(&first.key.text) else {
                let mut help = format!("step kinds: {}", STEP_KINDS.join(", "));
                if let Some(s) = super::parse::suggest(&first.key.text, STEP_KINDS) {
                    help = format!("did you mean `{s}`? {help}");
                }
                self.e.help(
                    first.key.pos,
                    format!("unknown step kind `{}`", first.key.text),
                    help,
                );
                continue;
            };
            if let Some(extra) = entries.get(1) {
                let k = &extra.key.text;
                if matches!(k.as_str(), "name" | "at" | "wait") && kind != StepKindName::Wait {
                    self.e.help(
                        extra.key.pos,
                        format!("`{k}` must sit inside the step's map"),
                        format!("write `- {}: {{ …, {k}: … }}`", first.key.text),
                    );
                } else {
                    self.e.help(
                        extra.key.pos,
                        format!(
                            "a step has one kind; `{k}` is a second key beside `{}`",
                            first.key.text
                        ),
                        "write each step as its own `- KIND: {…}` item",
                    );
                }
                continue;
            }
            if let Some(step) = self.step(kind, &first.value, first.key.pos) {
                self.steps.push(step);
            }
        }
    }

    fn step(&mut self, kind: StepKindName, n: &Node, pos: Pos) -> Option<Step> {
        if kind == StepKindName::Wait {
            let d = self.val(n, "`wait`", parse_duration)?;
            return Some(Step {
                name: None,
                at: None,
                wait: false,
                kind: StepKind::Wait(d),
                pos,
            });
        }
        let own: &[&str] = match kind {
            StepKindName::Call => &["from", "to", "media"],
            StepKindName::Reinvite => &["call", "hold"],
            StepKindName::Probe => &["from", "server", "lifetime", "lifetime_max"],
            StepKindName::Punch => &["between", "rendezvous", "protocol", "timeout"],
            StepKindName::Run => &["on", "cmd", "timeout"],
            StepKindName::Link => &["on", "set"],
            StepKindName::Nat => &["on", "action", "addresses"],
            StepKindName::Service => &["on", "type", "action"],
            StepKindName::Wait => &[],
        };
        let mut keys = vec!["name", "at", "wait"];
        keys.extend_from_slice(own);
        let what = format!("the {kind} step");
        let f = self.map(n, &what, &keys)?;
        let name = match f.get("name") {
            Some(nn) => {
                let t = self.text(nn, "`name`")?.to_string();
                self.declare(&t, nn.pos, "step").then_some(t)
            }
            None => None,
        };
        let at = self.opt_duration(&f, "at");
        let wait = self.opt_bool(&f, "wait").unwrap_or(false);
        let req = |p: &mut Parser, key: &str, example: &str| -> Option<&Node> {
            let v = f.get(key);
            if v.is_none() {
                p.missing(n.pos, key, &what, example);
            }
            v
        };
        let stepkind = match kind {
            StepKindName::Call => {
                let from = req(self, "from", "HOST").and_then(|x| self.ua_host(x, "`from`"));
                let to = req(self, "to", "HOST").and_then(|x| self.ua_host(x, "`to`"));
                let media = self.call_media(f.get("media"));
                StepKind::Call {
                    from: from?,
                    to: to?,
                    media,
                }
            }
            StepKindName::Reinvite => {
                let call = req(self, "call", "CALL-STEP").and_then(|x| {
                    let t = self.text(x, "`call`")?.to_string();
                    let found = self.steps.iter().find(|s| s.name.as_deref() == Some(&t));
                    match found.map(|s| s.kind.name()) {
                        Some(StepKindName::Call) => Some(t),
                        Some(k) => {
                            self.e.help(
                                x.pos,
                                format!("`{t}` is a {k} step, not a call step"),
                                "a reinvite names an earlier call step",
                            );
                            None
                        }
                        None => {
                            self.e.help(
                                x.pos,
                                format!("no earlier step is named `{t}`"),
                                "a reinvite names a call step above it: `- call: { name: c1, … }`",
                            );
                            None
                        }
                    }
                });
                StepKind::Reinvite {
                    call: call?,
                    hold: self.opt_bool(&f, "hold"),
                }
            }
            StepKindName::Probe => {
                let from = req(self, "from", "HOST").and_then(|x| self.host_ref(x, "`from`"));
                let server = req(self, "server", "HOST")
                    .and_then(|x| self.service_host(x, "`server`", "stun", |s| s.stun.is_some()));
                StepKind::Probe {
                    from: from?,
                    server: server?,
                    lifetime: self.opt_bool(&f, "lifetime").unwrap_or(false),
                    lifetime_max: self
                        .opt_duration(&f, "lifetime_max")
                        .unwrap_or(Duration::from_secs(300)),
                }
            }
            StepKindName::Punch => {
                let between = req(self, "between", "[HOST, HOST]").and_then(|x| {
                    let items = self.seq(x, "`between`", "write `between: [alice, bob]`");
                    let hosts: Vec<Option<String>> = items
                        .iter()
                        .map(|i| self.host_ref(i, "`between`"))
                        .collect();
                    if items.len() != 2 {
                        self.e.help(
                            x.pos,
                            format!(
                                "`between` lists {} hosts; a punch is between two",
                                items.len()
                            ),
                            "write `between: [alice, bob]`",
                        );
                        return None;
                    }
                    match (&hosts[0], &hosts[1]) {
                        (Some(a), Some(b)) if a == b => {
                            self.e.at(
                                x.pos,
                                format!(
                                    "`between` names `{a}` twice; a punch needs two different hosts"
                                ),
                            );
                            None
                        }
                        (Some(a), Some(b)) => Some([a.clone(), b.clone()]),
                        _ => None,
                    }
                });
                let rendezvous =
                    req(self, "rendezvous", "HOST").and_then(|x| self.host_ref(x, "`rendezvous`"));
                StepKind::Punch {
                    between: between?,
                    rendezvous: rendezvous?,
                    protocol: self
                        .opt_kw(
                            &f,
                            "protocol",
                            PunchProtocol::from_keyword,
                            PunchProtocol::VALUES,
                        )
                        .unwrap_or(PunchProtocol::Udp),
                    timeout: self
                        .opt_duration(&f, "timeout")
                        .unwrap_or(Duration::from_secs(5)),
                }
            }
            StepKindName::Run => {
                let on = req(self, "on", "HOST").and_then(|x| self.host_ref(x, "`on`"));
                let cmd = req(self, "cmd", "[PROGRAM, ARG…]").and_then(|x| {
                    let items = self.seq(x, "`cmd`", "write `cmd: [program, --flag, value]`");
                    if items.is_empty() {
                        self.e.help(
                            x.pos,
                            "`cmd` is empty",
                            "write `cmd: [program, --flag, value]`",
                        );
                        return None;
                    }
                    let v: Vec<String> = items
                        .iter()
                        .filter_map(|i| self.text(i, "a `cmd` word").map(str::to_string))
                        .collect();
                    (v.len() == items.len()).then_some(v)
                });
                StepKind::Run {
                    on: on?,
                    cmd: cmd?,
                    timeout: self.opt_duration(&f, "timeout"),
                }
            }
            StepKindName::Link => {
                let on = req(self, "on", "HOST").and_then(|x| {
                    let t = self.text(x, "`on`")?.to_string();
                    self.link_target(&t, x.pos)
                });
                let (up, down) = match req(self, "set", "{ loss: 20% }") {
                    Some(s) => self.link_settings(s, "`set`"),
                    None => Default::default(),
                };
                StepKind::Link { on: on?, up, down }
            }
            StepKindName::Nat => self.nat_step(&f, n, &what)?,
            StepKindName::Service => self.service_step(&f, n, &what)?,
            StepKindName::Wait => return None,
        };
        Some(Step {
            name,
            at,
            wait,
            kind: stepkind,
            pos,
        })
    }

    /// `service: { on: HOST, type: media-relay|dispatcher|sip-proxy, action:
    /// stop|kill|drain }`: the host must declare that service; `drain` is for media relays.
    fn service_step(&mut self, f: &Fields<'_>, n: &Node, what: &str) -> Option<StepKind> {
        let on = match f.get("on") {
            Some(x) => self.host_ref(x, "`on`"),
            None => {
                self.missing(n.pos, "on", what, "HOST");
                None
            }
        };
        let service = match f.get("type") {
            Some(x) => self.kw(
                x,
                "service type",
                ServiceType::from_keyword,
                ServiceType::VALUES,
            ),
            None => {
                self.missing(n.pos, "type", what, "media-relay");
                None
            }
        };
        let action = match f.get("action") {
            Some(x) => self.kw(
                x,
                "service action",
                ServiceAction::from_keyword,
                ServiceAction::VALUES,
            ),
            None => {
                self.missing(n.pos, "action", what, "stop");
                None
            }
        };
        let (on, service, action) = (on?, service?, action?);
        let runs = self.services.iter().any(|s| {
            s.host == on
                && match service {
                    ServiceType::MediaRelay => s.media_relay.is_some(),
                    ServiceType::Dispatcher => s.dispatcher.is_some(),
                    ServiceType::SipProxy => s.sip_proxy.is_some(),
                }
        });
        if !runs {
            let pos = f.get("on").map_or(n.pos, |x| x.pos);
            let mut help =
                format!("add `services: {{ {on}: {{ {service}: {{…}} }} }}` or name another host");
            if service == ServiceType::MediaRelay {
                help.push_str(
                    " (the relay a `sip-proxy` starts when its host declares none is not \
                     a step's target: declare it to act on it)",
                );
            }
            self.e.help(
                pos,
                format!("`on`: host `{on}` runs no `{service}` service"),
                help,
            );
            return None;
        }
        if action == ServiceAction::Drain && service != ServiceType::MediaRelay {
            let pos = f.get("action").map_or(n.pos, |x| x.pos);
            self.e.help(
                pos,
                format!("`drain` applies to media relays, not to a `{service}`"),
                "use `action: stop` (graceful) or `action: kill` (abrupt)",
            );
            return None;
        }
        Some(StepKind::Service {
            on,
            service,
            action,
        })
    }

    fn nat_step(&mut self, f: &Fields<'_>, n: &Node, what: &str) -> Option<StepKind> {
        let on = match f.get("on") {
            Some(x) => {
                let t = self.text(x, "`on`")?.to_string();
                if self.nats.iter().any(|m| m.name == t) {
                    Some(t)
                } else {
                    let names: Vec<&str> = self.nats.iter().map(|m| m.name.as_str()).collect();
                    self.e.help(
                        x.pos,
                        format!("`on`: unknown NAT `{t}`"),
                        format!("NATs: {}", names.join(", ")),
                    );
                    None
                }
            }
            None => {
                self.missing(n.pos, "on", what, "NAT");
                None
            }
        };
        let action = match f.get("action") {
            Some(x) => self.kw(
                x,
                "NAT action",
                NatActionKind::from_keyword,
                NatActionKind::VALUES,
            ),
            None => {
                self.missing(n.pos, "action", what, "reboot");
                None
            }
        };
        let addresses = f.get("addresses");
        let action = match (action?, addresses) {
            (NatActionKind::Renumber, Some(a)) => {
                let outside = on
                    .as_ref()
                    .and_then(|o| self.nats.iter().find(|m| &m.name == o))
                    .map(|m| m.outside.clone());
                let prefix = outside
                    .as_ref()
                    .and_then(|o| self.networks.iter().find(|x| &x.name == o))
                    .map(|x| x.prefix);
                let items = self.seq(a, "`addresses`", "write `addresses: [203.0.113.31]`");
                let mut v = Vec::new();
                for i in items {
                    let Some(ip) = self.val(i, "the address", |s| {
                        s.trim()
                            .parse::<IpAddr>()
                            .map_err(|_| format!("`{s}` is not an IP address"))
                    }) else {
                        continue;
                    };
                    if let Some(p) = prefix.filter(|p| !p.contains(ip)) {
                        self.e.help(
                            i.pos,
                            format!("address {ip} is not in the NAT's outside network ({p})"),
                            format!("renumber within {p}"),
                        );
                        continue;
                    }
                    if let Some(u) = self
                        .addr_uses
                        .iter()
                        .find(|u| u.addr == ip && !u.owner.starts_with("NAT"))
                    {
                        self.e.at(
                            i.pos,
                            format!("address {ip} is already used by {} at {}", u.owner, u.pos),
                        );
                        continue;
                    }
                    v.push(ip);
                }
                if items.is_empty() {
                    self.e.at(a.pos, "`addresses` is empty; list the new pool");
                }
                NatAction::Renumber(v)
            }
            (NatActionKind::Renumber, None) => {
                self.missing(n.pos, "addresses", what, "[203.0.113.31]");
                return None;
            }
            (k, Some(_)) => {
                let pos = f.entry("addresses").map(|e| e.key.pos).unwrap_or(n.pos);
                self.e.help(
                    pos,
                    format!("`addresses` only goes with `action: renumber`, not `{k}`"),
                    "remove `addresses`, or use `action: renumber`",
                );
                return None;
            }
            (NatActionKind::Reboot, None) => NatAction::Reboot,
            (NatActionKind::Rebind, None) => NatAction::Rebind,
        };
        Some(StepKind::Nat { on: on?, action })
    }

    fn ua_host(&mut self, n: &Node, what: &str) -> Option<String> {
        let h = self.host_ref(n, what)?;
        let has_ua = self.agents.iter().any(|a| a.host == h && a.ua.is_some());
        if !has_ua {
            self.e.help(
                n.pos,
                format!("{what}: host `{h}` has no `ua` agent"),
                format!("add `agents: {{ {h}: {{ ua: {{ user: {h} }} }} }}`"),
            );
            return None;
        }
        Some(h)
    }

    fn call_media(&mut self, n: Option<&Node>) -> CallMedia {
        let mut m = CallMedia {
            codec: "PCMU".into(),
            ptime: Duration::from_millis(20),
            duration: Duration::from_secs(10),
            video: false,
        };
        let Some(n) = n else { return m };
        let Some(f) = self.map(n, "`media`", &["codec", "ptime", "duration", "video"]) else {
            return m;
        };
        if let Some(c) = self.opt_string(&f, "codec") {
            m.codec = c;
        }
        if let Some(v) = self.opt_duration(&f, "ptime") {
            m.ptime = v;
        }
        if let Some(v) = self.opt_duration(&f, "duration") {
            m.duration = v;
        }
        if let Some(v) = self.opt_bool(&f, "video") {
            m.video = v;
        }
        m
    }

    // ===== expectations =====

    pub(crate) fn expect(&mut self, node: &Node) -> Vec<Expectation> {
        let items = self.seq(
            node,
            "`expect`",
            "write `expect:` followed by `- call: c1` items",
        );
        let mut out = Vec::new();
        for (index, item) in items.iter().enumerate() {
            if let Some(x) = self.expectation(item, index) {
                out.push(x);
            }
        }
        out
    }

    fn expectation(&mut self, item: &Node, index: usize) -> Option<Expectation> {
        const KINDS: &[&str] = &["call", "probe", "punch", "run"];
        let Some(entries) = item.as_map() else {
            self.e.help(
                item.pos,
                format!("an expectation must be a mapping, not {}", item.kind()),
                "write `- call: c1` followed by measures like `established: true`",
            );
            return None;
        };
        let kinds: Vec<_> = entries
            .iter()
            .filter(|e| {
                StepKindName::from_keyword(&e.key.text).is_some() && !is_measure(&e.key.text)
            })
            .collect();
        let Some(k) = kinds.first() else {
            self.e.help(
                item.pos,
                "the expectation names no step",
                "add `call: NAME`, `probe: NAME`, `punch: NAME` or `run: NAME`",
            );
            return None;
        };
        if let Some(second) = kinds.get(1) {
            self.e.help(
                second.key.pos,
                format!(
                    "the expectation names two steps (`{}` and `{}`)",
                    k.key.text, second.key.text
                ),
                "an expectation names one step; split it into two items",
            );
            return None;
        }
        let kind = StepKindName::from_keyword(&k.key.text)?;
        if !KINDS.contains(&k.key.text.as_str()) {
            self.e.help(
                k.key.pos,
                format!("{kind} steps produce no measures"),
                "expectations name call, probe, punch or run steps",
            );
            return None;
        }
        let step_name = self.text(&k.value, &format!("`{kind}`"))?.to_string();
        let mut ok = true;
        match self
            .steps
            .iter()
            .find(|s| s.name.as_deref() == Some(&step_name))
        {
            Some(s) if s.kind.name() != kind => {
                let actual = s.kind.name();
                self.e.help(
                    k.value.pos,
                    format!("`{step_name}` is a {actual} step, not a {kind} step"),
                    format!("write `{actual}: {step_name}` and measures of a {actual} step"),
                );
                ok = false;
            }
            Some(_) => {}
            None => {
                let names: Vec<String> = self
                    .steps
                    .iter()
                    .filter(|s| s.kind.name() == kind)
                    .filter_map(|s| s.name.clone())
                    .collect();
                self.e.help(
                    k.value.pos,
                    format!("no {kind} step is named `{step_name}`"),
                    if names.is_empty() {
                        format!("give the {kind} step a `name: {step_name}`")
                    } else {
                        format!("{kind} steps: {}", names.join(", "))
                    },
                );
                ok = false;
            }
        }
        let measures = measures_of(kind);
        let mut when = Vec::new();
        let mut checks = Vec::new();
        for e in entries {
            let key = e.key.text.as_str();
            if key == k.key.text {
                continue;
            }
            if key == "when" {
                let ws = self.any_map(
                    &e.value,
                    "`when`",
                    "write `when: { nat-a.type: symmetric }`",
                );
                for w in ws {
                    if let Some(v) = self.text(&w.value, "a `when` value") {
                        when.push(When {
                            path: w.key.text.clone(),
                            value: v.to_string(),
                            pos: w.key.pos,
                        });
                    }
                }
                continue;
            }
            if !measures.contains(&key) {
                if is_measure(key) {
                    self.e.help(
                        e.key.pos,
                        format!("a {kind} step cannot produce `{key}`"),
                        format!("{kind} steps measure: {}", measures.join(", ")),
                    );
                } else {
                    let mut valid: Vec<&str> = vec![kind.as_str(), "when"];
                    valid.extend_from_slice(measures);
                    let mut help = format!("valid keys: {}", valid.join(", "));
                    if let Some(s) = super::parse::suggest(key, &valid) {
                        help = format!("did you mean `{s}`? {help}");
                    }
                    self.e.help(
                        e.key.pos,
                        format!("unknown key `{key}` in a {kind} expectation"),
                        help,
                    );
                }
                ok = false;
                continue;
            }
            if let Some(m) = self.measure(key, &e.value) {
                checks.push(Check {
                    measure: m,
                    pos: e.key.pos,
                });
            } else {
                ok = false;
            }
        }
        if checks.is_empty() && ok {
            self.e.help(
                item.pos,
                format!("the expectation on `{step_name}` checks nothing"),
                format!("add a measure: {}", measures.join(", ")),
            );
            return None;
        }
        ok.then_some(Expectation {
            kind,
            step: step_name,
            when,
            checks,
            index,
            pos: item.pos,
        })
    }

    fn measure(&mut self, key: &str, n: &Node) -> Option<Measure> {
        let what = format!("`{key}`");
        let dur = |s: &str| parse_comparison(s, parse_duration);
        Some(match key {
            "established" => Measure::Established(self.val(n, &what, parse_bool)?),
            "setup_time" => Measure::SetupTime(self.val(n, &what, dur)?),
            "media" => Measure::Media(self.kw(
                n,
                "`media` value",
                MediaPath::from_keyword,
                MediaPath::VALUES,
            )?),
            "loss" => Measure::Loss(self.val(n, &what, |s| parse_comparison(s, parse_percent))?),
            "jitter" => Measure::Jitter(self.val(n, &what, dur)?),
            "one_way_delay" => Measure::OneWayDelay(self.val(n, &what, dur)?),
            "mos" => Measure::Mos(self.val(n, &what, |s| {
                parse_comparison(s, |v| match parse_number(v) {
                    Ok(x) if (1.0..=5.0).contains(&x) => Ok(x),
                    Ok(_) => Err(format!("MOS `{v}` is outside 1 to 5")),
                    Err(e) => Err(e),
                })
            })?),
            "mapping" => Measure::Mapping(self.kw(
                n,
                "`mapping` value",
                Behavior::from_keyword,
                Behavior::VALUES,
            )?),
            "filtering" => Measure::Filtering(self.kw(
                n,
                "`filtering` value",
                Behavior::from_keyword,
                Behavior::VALUES,
            )?),
            "hairpinning" => Measure::Hairpinning(self.val(n, &what, parse_bool)?),
            "binding_lifetime" => Measure::BindingLifetime(self.val(n, &what, dur)?),
            "port_allocation" => Measure::PortAllocation(self.kw(
                n,
                "`port_allocation` value",
                MeasuredPortAllocation::from_keyword,
                MeasuredPortAllocation::VALUES,
            )?),
            "port_parity" => Measure::PortParity(self.val(n, &what, parse_bool)?),
            "connected" => Measure::Connected(self.val(n, &what, parse_bool)?),
            "exit" => Measure::Exit(self.val(n, &what, |s| {
                parse_comparison(s, |v| {
                    v.parse::<i64>()
                        .map_err(|_| format!("`{v}` is not an exit status (a whole number)"))
                })
            })?),
            "stdout" | "stderr" => {
                let f = self.map(n, &what, &["contains"])?;
                let Some(c) = f.get("contains") else {
                    self.missing(n.pos, "contains", &what, "\"some text\"");
                    return None;
                };
                let contains = match &c.value {
                    Value::Scalar(s) => s.text.clone(),
                    _ => {
                        self.e
                            .at(c.pos, format!("`contains` must be text, not {}", c.kind()));
                        return None;
                    }
                };
                let t = TextMatch { contains };
                if key == "stdout" {
                    Measure::Stdout(t)
                } else {
                    Measure::Stderr(t)
                }
            }
            _ => return None,
        })
    }
}

/// Whether `key` is a measure of some step kind.
fn is_measure(key: &str) -> bool {
    [
        StepKindName::Call,
        StepKindName::Probe,
        StepKindName::Punch,
        StepKindName::Run,
    ]
    .iter()
    .any(|k| measures_of(*k).contains(&key))
}
