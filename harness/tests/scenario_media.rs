//! The scenario-format additions of the media relay (#13): `media-relay` keys, the
//! `sip-proxy`'s relay choice, the `dispatcher` service, the `service` step, secrets and
//! port overlaps — values, defaults, positioned errors, and what stays refused.

use harness::scenario::{self, *};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

const HEAD: &str = "version: 1
name: relays
fabric: virtual
networks: { internet: 203.0.113.0/24, six: \"2001:db8::/64\" }
hosts:
  proxy: { network: internet }
  r1: { network: internet }
  r2: { network: internet }
  d: { network: internet }
  v6host: { network: six }
";

/// HEAD followed by `rest`.
fn doc(rest: &str) -> String {
    format!("{HEAD}{rest}")
}

fn load(rest: &str) -> Scenario {
    let text = doc(rest);
    scenario::load_str(&text, "x.yaml").unwrap_or_else(|e| panic!("should parse:\n{e}\n{text}"))
}

/// All the errors of `rest`, printed.
fn errors(rest: &str) -> String {
    match scenario::load_str(&doc(rest), "x.yaml") {
        Ok(_) => panic!("should not parse:\n{rest}"),
        Err(e) => e.to_string(),
    }
}

/// `line:col` of the `nth` (0-based) occurrence of `needle` in HEAD + `rest`.
fn at(rest: &str, needle: &str, nth: usize) -> String {
    let text = doc(rest);
    let (i, _) = text
        .match_indices(needle)
        .nth(nth)
        .unwrap_or_else(|| panic!("`{needle}` not in the text"));
    let before = &text[..i];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    format!("{line}:{col}")
}

/// Asserts that the errors of `rest` include `x.yaml:AT: message…` and `help` (if any).
fn assert_error(rest: &str, needle: &str, nth: usize, message: &str, help: &str) {
    let all = errors(rest);
    let want = format!("x.yaml:{}: {message}", at(rest, needle, nth));
    assert!(all.contains(&want), "want {want:?} in:\n{all}");
    assert!(all.contains(help), "want help {help:?} in:\n{all}");
}

fn services<'a>(s: &'a Scenario, host: &str) -> &'a Services {
    s.spec.services_of(host).unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

// ===== media-relay =====

#[test]
fn media_relay_defaults() {
    let s = load("services:\n  r1:\n    media-relay: {}\n");
    let r = services(&s, "r1").media_relay.clone().unwrap();
    assert_eq!(r, MediaRelay::defaults(r.pos));
    assert_eq!(
        (r.ports.first, r.ports.last, r.latching),
        (40000, 40999, Latching::Strict)
    );
    assert_eq!(r.latching_window, Duration::from_secs(5));
    assert_eq!(r.idle_timeout, Duration::from_secs(60));
    assert_eq!(r.idle_timeout_before_media, Duration::from_secs(90));
    assert_eq!(r.streams_max, 64);
    assert_eq!(r.advertised_address, None);
    assert!(r.asymmetric_clients.is_empty());
    assert_eq!(r.secret, None);
    assert_eq!(r.ng_port, 2223);
    assert_eq!(r.ng_port, DEFAULT_NG_PORT);
}

#[test]
fn media_relay_every_key() {
    let s = load(
        "services:
  r1:
    media-relay:
      ports: 30000-30999
      latching: first-packet
      latching_window: 2s
      idle_timeout: 30s
      idle_timeout_before_media: 2m
      streams_max: 8
      advertised_address: 198.51.100.7
      asymmetric_clients: [\"Grandstream*1.0\", snom]
      secret: s3cret
      ng_port: 22222
  r2:
    media-relay: { latching: off }
  v6host:
    media-relay: { advertised_address: \"2001:db8:1::7\" }
",
    );
    let r = services(&s, "r1").media_relay.clone().unwrap();
    assert_eq!(r.ports.to_string(), "30000-30999");
    assert_eq!(r.latching, Latching::FirstPacket);
    assert_eq!(r.latching_window, Duration::from_secs(2));
    assert_eq!(r.idle_timeout, Duration::from_secs(30));
    assert_eq!(r.idle_timeout_before_media, Duration::from_secs(120));
    assert_eq!(r.streams_max, 8);
    assert_eq!(r.advertised_address, Some(ip("198.51.100.7")));
    let pats: Vec<&str> = r
        .asymmetric_clients
        .iter()
        .map(|p| p.text.as_str())
        .collect();
    assert_eq!(pats, ["Grandstream*1.0", "snom"]);
    assert!(r.is_asymmetric("Grandstream GXP2000 1.0.4"));
    assert!(r.is_asymmetric("SNOM360/8.7"));
    assert!(!r.is_asymmetric("Linphone/5.0"));
    assert_eq!(r.secret.as_deref(), Some("s3cret"));
    assert_eq!(r.ng_port, 22222);
    let r2 = services(&s, "r2").media_relay.clone().unwrap();
    assert_eq!(r2.latching, Latching::Off);
    let v6 = services(&s, "v6host").media_relay.clone().unwrap();
    assert_eq!(v6.advertised_address, Some(ip("2001:db8:1::7")));
}

#[test]
fn media_relay_invalid_values() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "streams_max: 0",
            "0 }",
            "`streams_max`: `0` is not a number of streams",
            "",
        ),
        (
            "streams_max: many",
            "many",
            "`streams_max`: `many` is not a number of streams",
            "",
        ),
        (
            "latching: sticky",
            "sticky",
            "`sticky` is not a valid `latching` value",
            "use one of: strict, first-packet, off",
        ),
        (
            "latching_window: 0s",
            "0s",
            "`latching_window` must be longer than 0",
            "never learns where to send",
        ),
        (
            "latching_window: soon",
            "soon",
            "`latching_window`: `soon` is not a duration",
            "",
        ),
        (
            "idle_timeout_before_media: 0ms",
            "0ms",
            "`idle_timeout_before_media` must be longer than 0",
            "",
        ),
        (
            "advertised_address: relay.example",
            "relay.example",
            "`advertised_address`: `relay.example` is not an IP address",
            "",
        ),
        (
            "advertised_address: 0.0.0.0",
            "0.0.0.0",
            "`advertised_address`: 0.0.0.0 cannot receive media",
            "public unicast address",
        ),
        (
            "advertised_address: \"2001:db8::9\"",
            "\"2001:db8::9",
            "`advertised_address`: 2001:db8::9 is not of host `r1`'s address family",
            "",
        ),
        (
            "asymmetric_clients: [ok, \"*\"]",
            "\"*\"",
            "a User-Agent pattern: `*` matches every client",
            "",
        ),
        (
            "asymmetric_clients: snom",
            "snom",
            "`asymmetric_clients` must be a sequence, not a scalar",
            "",
        ),
        ("secret: \"\"", "\"\"", "`secret` is empty", ""),
        (
            "ng_port: 70000",
            "70000",
            "`ng_port`: `70000` is not a port",
            "",
        ),
        (
            "ng_port: 40010",
            "40010",
            "the `media-relay` ng_port 40010 is inside its own `ports` 40000-40999",
            "set `ng_port` outside `ports`",
        ),
        (
            "ports: 2000-3000",
            "2000-3000",
            "the `media-relay` ng_port 2223 is inside its own `ports` 2000-3000",
            "the default `ng_port` is 2223",
        ),
        (
            "stream_max: 2",
            "stream_max",
            "unknown key `stream_max` in `media-relay`",
            "did you mean `streams_max`?",
        ),
    ];
    for (kv, needle, message, help) in cases {
        let rest = format!("services:\n  r1:\n    media-relay: {{ {kv} }}\n");
        assert_error(&rest, needle, 0, message, help);
    }
    // One problem, one error: the relay's own ports are not an overlap between services.
    let all = errors("services:\n  r1:\n    media-relay: { ng_port: 40010 }\n");
    assert_eq!(
        all.lines().filter(|l| !l.starts_with("  help")).count(),
        1,
        "{all}"
    );
}

// ===== sip-proxy =====

#[test]
fn proxy_relay_resolution_and_ice() {
    // Its host has a relay: that one. `ice` not given: None, and the rule applies.
    let s = load("services:\n  proxy:\n    sip-proxy: {}\n    media-relay: {}\n");
    let p = services(&s, "proxy").sip_proxy.clone().unwrap();
    assert_eq!(
        p.relay,
        RelayUse::Declared {
            host: "proxy".into()
        }
    );
    assert_eq!(p.ice, None);
    assert_eq!(p.ice_priority, IcePriority::Lowest);
    assert_eq!(p.ice_for(true), IcePolicy::AddRelayCandidate);
    assert_eq!(p.ice_for(false), IcePolicy::Passthrough);
    assert_eq!(p.secret, None);
    // None declared, none named: the proxy starts one with the defaults.
    let s = load("services:\n  proxy:\n    sip-proxy: {}\n");
    let p = services(&s, "proxy").sip_proxy.clone().unwrap();
    assert_eq!(
        p.relay,
        RelayUse::Implicit {
            host: "proxy".into()
        }
    );
    assert!(services(&s, "proxy").media_relay.is_none());
    // `media: never` needs none.
    let s = load("services:\n  proxy:\n    sip-proxy: { media: never }\n");
    let p = services(&s, "proxy").sip_proxy.clone().unwrap();
    assert_eq!(p.relay, RelayUse::None);
    // Named relay, named dispatcher (declared later in the file), explicit ICE.
    let s = load(
        "services:
  proxy:
    sip-proxy: { media_relay: r1, ice: strip, ice_priority: highest }
  r1:
    media-relay: {}
",
    );
    let p = services(&s, "proxy").sip_proxy.clone().unwrap();
    assert_eq!(p.relay, RelayUse::Declared { host: "r1".into() });
    assert_eq!(p.ice, Some(IcePolicy::Strip));
    assert_eq!(p.ice_for(true), IcePolicy::Strip);
    assert_eq!(p.ice_priority, IcePriority::Highest);
    let s = load(
        "services:
  proxy:
    sip-proxy: { dispatcher: d, media: relay }
  d:
    dispatcher: { relays: [r1] }
  r1:
    media-relay: {}
",
    );
    let p = services(&s, "proxy").sip_proxy.clone().unwrap();
    assert_eq!(p.relay, RelayUse::Dispatcher { host: "d".into() });
}

#[test]
fn proxy_invalid_values_and_references() {
    let p = |kv: &str| format!("services:\n  proxy:\n    sip-proxy: {{ {kv} }}\n");
    assert_error(
        &p("ice_priority: middle"),
        "middle",
        0,
        "`middle` is not a valid `ice_priority` value",
        "use one of: lowest, highest",
    );
    assert_error(
        &p("media_relay: r1"),
        "r1 }",
        0,
        "`media_relay`: host `r1` runs no `media-relay` service",
        "add `services: { r1: { media-relay: {…} } }` or name another host",
    );
    assert_error(
        &p("dispatcher: d"),
        "d }",
        0,
        "`dispatcher`: host `d` runs no `dispatcher` service",
        "add `services: { d: { dispatcher: {…} } }`",
    );
    assert_error(
        &p("media_relay: nowhere"),
        "nowhere",
        0,
        "`media_relay`: unknown host `nowhere`",
        "declare it under `hosts:`",
    );
    let both = "services:
  proxy:
    sip-proxy: { media_relay: r1, dispatcher: d }
  r1:
    media-relay: {}
  d:
    dispatcher: { relays: [r1], port: 2300 }
";
    assert_error(
        both,
        "dispatcher: d",
        0,
        "`media_relay` and `dispatcher` exclude each other",
        "keep one",
    );
    assert_error(
        &p("mediarelay: r1"),
        "mediarelay",
        0,
        "unknown key `mediarelay` in `sip-proxy`",
        "did you mean `media_relay`?",
    );
}

// ===== dispatcher =====

#[test]
fn dispatcher_defaults_and_keys() {
    let s = load(
        "services:
  d:
    dispatcher: { relays: [r1, r2] }
  r1:
    media-relay: {}
  r2:
    media-relay: {}
",
    );
    let d = services(&s, "d").dispatcher.clone().unwrap();
    assert_eq!(d.relays, ["r1", "r2"]);
    assert_eq!(d.health_interval, Duration::from_secs(1));
    assert_eq!(d.port, 2223);
    assert_eq!(d.secret, None);
    let s = load(
        "services:
  d:
    dispatcher: { relays: [r1], health_interval: 250ms, port: 3000, secret: k }
  r1:
    media-relay: {}
",
    );
    let d = services(&s, "d").dispatcher.clone().unwrap();
    assert_eq!(
        (d.health_interval, d.port, d.secret.as_deref()),
        (Duration::from_millis(250), 3000, Some("k"))
    );
}

#[test]
fn dispatcher_invalid() {
    let relays = "  r1:\n    media-relay: {}\n";
    let d = |body: &str| format!("services:\n  d:\n    dispatcher: {{ {body} }}\n{relays}");
    assert_error(
        &d("port: 3000"),
        "{ port",
        0,
        "`dispatcher` has no `relays`",
        "add `relays: [HOST, …]`",
    );
    assert_error(
        &d("relays: "),
        "relays: ",
        0,
        "`relays` is empty; a dispatcher needs one",
        "",
    );
    assert_error(
        &d("relays: []"),
        "[]",
        0,
        "`relays` is empty; a dispatcher needs one",
        "",
    );
    assert_error(
        &d("relays: [r1, r2]"),
        "r2]",
        0,
        "`relays`: host `r2` runs no `media-relay` service",
        "add `services: { r2: { media-relay: {} } }`",
    );
    assert_error(
        &d("relays: [r1, r1]"),
        "r1]",
        0,
        "`relays` lists `r1` twice",
        "",
    );
    assert_error(
        &d("relays: [r1], health_interval: 0s"),
        "0s",
        0,
        "`health_interval` must be longer than 0",
        "",
    );
    // A dispatcher and a relay on one host both default to port 2223.
    let same = "services:\n  r1:\n    media-relay: {}\n    dispatcher: { relays: [r1] }\n";
    assert_error(
        same,
        "{ relays: [r1] }",
        0,
        "on host `r1`, the `dispatcher` port 2223 and the `media-relay` ng_port 2223",
        "set the dispatcher's `port`",
    );
    let moved =
        "services:\n  r1:\n    media-relay: {}\n    dispatcher: { relays: [r1], port: 2224 }\n";
    load(moved);
}

// ===== secrets =====

#[test]
fn one_secret_per_control_channel_inherited() {
    let s = load(
        "services:
  proxy:
    sip-proxy: { dispatcher: d }
  d:
    dispatcher: { relays: [r1, r2], secret: shared }
  r1:
    media-relay: {}
  r2:
    media-relay: { secret: shared }
",
    );
    let secret = |h: &str, f: fn(&Services) -> Option<String>| f(services(&s, h));
    assert_eq!(
        secret("proxy", |x| x.sip_proxy.clone()?.secret).as_deref(),
        Some("shared")
    );
    assert_eq!(
        secret("r1", |x| x.media_relay.clone()?.secret).as_deref(),
        Some("shared")
    );
    assert_eq!(
        secret("d", |x| x.dispatcher.clone()?.secret).as_deref(),
        Some("shared")
    );
    // A proxy's secret reaches the relay it names; an unrelated relay keeps none.
    let s = load(
        "services:
  proxy:
    sip-proxy: { media_relay: r1, secret: mine }
  r1:
    media-relay: {}
  r2:
    media-relay: {}
",
    );
    assert_eq!(
        services(&s, "r1")
            .media_relay
            .as_ref()
            .unwrap()
            .secret
            .as_deref(),
        Some("mine")
    );
    assert_eq!(
        services(&s, "r2").media_relay.as_ref().unwrap().secret,
        None
    );
    assert_eq!(
        s.spec.proxy_relay("proxy").unwrap().secret.as_deref(),
        Some("mine")
    );
    // The implicit relay gets the proxy's secret from the proxy (it has no entry).
    let s = load("services:\n  proxy:\n    sip-proxy: { secret: mine }\n");
    let p = services(&s, "proxy").sip_proxy.clone().unwrap();
    assert_eq!(p.secret.as_deref(), Some("mine"));
    let implicit = s.spec.proxy_relay("proxy").unwrap();
    assert_eq!(
        implicit,
        MediaRelay {
            secret: Some("mine".into()),
            ..MediaRelay::defaults(p.pos)
        }
    );
    // Through a dispatcher, or with no relay: none used directly.
    let s = load("services:\n  proxy:\n    sip-proxy: { media: never }\n");
    assert_eq!(s.spec.proxy_relay("proxy"), None);
}

#[test]
fn differing_secrets_are_invalid() {
    let rest = "services:
  proxy:
    sip-proxy: { dispatcher: d, secret: other }
  d:
    dispatcher: { relays: [r1], secret: shared }
  r1:
    media-relay: {}
";
    // The first secret in file order is the group's; the later one is reported.
    let all = errors(rest);
    let want = format!(
        "x.yaml:{}: this `secret` differs from the one of the `sip-proxy` on `proxy` (at {})",
        at(rest, "shared", 0),
        at(rest, "other", 0)
    );
    assert!(all.contains(&want), "{all}");
    assert!(
        all.contains("leave `secret` out here to inherit it"),
        "{all}"
    );
    // Two relays of one dispatcher with different secrets.
    let rest = "services:
  d:
    dispatcher: { relays: [r1, r2] }
  r1:
    media-relay: { secret: a }
  r2:
    media-relay: { secret: b }
";
    let all = errors(rest);
    assert!(
        all.contains(&format!(
            "x.yaml:{}: this `secret` differs from the one of the `media-relay` on `r1`",
            at(rest, "b }", 0)
        )),
        "{all}"
    );
    // Secrets never appear in messages.
    assert!(!all.contains("`a`") && !all.contains("`b`"), "{all}");
}

// ===== ports =====

#[test]
fn relay_ports_must_not_overlap_the_hosts_other_services() {
    let rest = "services:
  r1:
    turn: { relay_ports: 40500-41000 }
    media-relay: { ports: 40000-40999 }
";
    assert_error(
        rest,
        "40000-40999",
        0,
        "on host `r1`, the `media-relay` ports 40000-40999 and the `turn` relay_ports 40500-41000",
        "set the relay's `ports` to a range no other service of the host uses",
    );
    let rest = "services:
  r1:
    sip-proxy: { port: 5060, media: never }
    media-relay: { ng_port: 5060 }
";
    assert_error(
        rest,
        "5060 }",
        0,
        "on host `r1`, the `media-relay` ng_port 5060 and the `sip-proxy` port 5060 (at 13:16) bind the same UDP ports",
        "set the relay's `ng_port`",
    );
    let rest = "services:
  r1:
    stun: { port: 2223 }
    media-relay: {}
";
    assert_error(
        rest,
        "{}",
        0,
        "on host `r1`, the `media-relay` ng_port 2223 and the `stun` port 2223",
        "",
    );
    // The relay a proxy starts claims the defaults, positioned at the proxy.
    let rest = "services:
  proxy:
    turn: { relay_ports: 40000-49999 }
    sip-proxy: {}
";
    assert_error(
        rest,
        "{}",
        0,
        "on host `proxy`, the ports 40000-40999 of the `media-relay` this `sip-proxy` starts (its host declares none) and the `turn` relay_ports 40000-49999",
        "or name a relay with `media_relay: HOST`",
    );
    // The proxy's own port inside the range of the relay it starts.
    let rest = "services:\n  proxy:\n    sip-proxy: { port: 40000 }\n";
    assert_error(
        rest,
        "{ port",
        0,
        "on host `proxy`, the ports 40000-40999 of the `media-relay` this `sip-proxy` starts (its host declares none) and the `sip-proxy` port 40000",
        "",
    );
    // Other hosts' ports, and the older services among themselves, are not checked.
    load(
        "services:
  r1:
    media-relay: {}
  r2:
    stun: { port: 3478 }
    turn: { port: 3478, relay_ports: 40000-40999 }
    sip-proxy: { media: never, media_relay: r1 }
",
    );
}

// ===== the service step =====

const SERVICE_STEP_HOSTS: &str = "services:
  proxy:
    sip-proxy: { dispatcher: d }
  d:
    dispatcher: { relays: [r1, r2] }
  r1:
    media-relay: {}
  r2:
    media-relay: {}
";

#[test]
fn service_steps_parse() {
    let s = load(&format!(
        "{SERVICE_STEP_HOSTS}steps:
  - service: {{ name: kill-r1, on: r1, type: media-relay, action: kill, at: 5s }}
  - service: {{ on: r2, type: media-relay, action: drain, wait: true }}
  - service: {{ on: d, type: dispatcher, action: stop }}
  - service: {{ on: proxy, type: sip-proxy, action: stop }}
"
    ));
    let steps = &s.spec.steps;
    assert_eq!(steps.len(), 4);
    assert_eq!(steps[0].name.as_deref(), Some("kill-r1"));
    assert_eq!(steps[0].at, Some(Duration::from_secs(5)));
    assert_eq!(
        steps[0].kind,
        StepKind::Service {
            on: "r1".into(),
            service: ServiceType::MediaRelay,
            action: ServiceAction::Kill
        }
    );
    assert!(steps[1].wait);
    assert!(matches!(
        steps[1].kind,
        StepKind::Service {
            action: ServiceAction::Drain,
            ..
        }
    ));
    assert!(matches!(
        steps[2].kind,
        StepKind::Service {
            service: ServiceType::Dispatcher,
            action: ServiceAction::Stop,
            ..
        }
    ));
    assert_eq!(steps[3].kind.name(), StepKindName::Service);
}

#[test]
fn service_steps_invalid() {
    let step = |body: &str| format!("{SERVICE_STEP_HOSTS}steps:\n  - service: {{ {body} }}\n");
    assert_error(
        &step("on: d, type: dispatcher, action: drain"),
        "drain",
        0,
        "`drain` applies to media relays, not to a `dispatcher`",
        "use `action: stop` (graceful) or `action: kill` (abrupt)",
    );
    assert_error(
        &step("on: d, type: media-relay, action: stop"),
        "d, type",
        0,
        "`on`: host `d` runs no `media-relay` service",
        "declare it to act on it",
    );
    assert_error(
        &step("on: r1, type: turn, action: stop"),
        "turn",
        0,
        "`turn` is not a valid service type",
        "use one of: media-relay, dispatcher, sip-proxy",
    );
    assert_error(
        &step("on: r1, type: media-relay, action: restart"),
        "restart",
        0,
        "`restart` is not a valid service action",
        "use one of: stop, kill, drain",
    );
    assert_error(
        &step("on: r1, type: media-relay"),
        "{ on: r1, type: media-relay }",
        0,
        "the service step has no `action`",
        "add `action: stop`",
    );
    assert_error(
        &step("on: r1, type: media-relay, action: stop, host: r2"),
        "host: r2",
        0,
        "unknown key `host` in the service step",
        "valid keys: name, at, wait, on, type, action",
    );
    // A sip-proxy's implicit relay is no step target.
    let rest = "services:\n  proxy:\n    sip-proxy: {}\nsteps:\n  - service: { on: proxy, type: media-relay, action: kill }\n";
    assert_error(
        rest,
        "proxy, type",
        0,
        "`on`: host `proxy` runs no `media-relay` service",
        "",
    );
    // Service steps produce no measures.
    let rest = format!(
        "{SERVICE_STEP_HOSTS}steps:\n  - service: {{ name: k, on: r1, type: media-relay, action: kill }}\nexpect:\n  - {{ service: k, exit: 0 }}\n"
    );
    assert_error(
        &rest,
        "service: k,",
        0,
        "service steps produce no measures",
        "",
    );
}

// ===== what runs now =====

#[test]
fn the_runner_runs_the_relay_the_dispatcher_and_service_steps() {
    let s = load(&format!(
        "{SERVICE_STEP_HOSTS}steps:\n  - service: {{ on: r1, type: media-relay, action: kill }}\n"
    ));
    let file = Path::new("x.yaml");
    assert!(check_available(&s.spec, file, &Availability::all()).is_empty());
    let cell = &s.cells().unwrap()[0];
    for fabric in [Fabric::Virtual, Fabric::Kernel] {
        let problems: Vec<String> = harness::cli::cell_problems(cell, file, fabric)
            .iter()
            .map(ToString::to_string)
            .collect();
        assert!(problems.is_empty(), "{fabric:?}: {problems:#?}");
    }
}

#[test]
fn a_matrix_over_the_new_keys() {
    let s = load(
        "services:
  r1:
    media-relay: {}
matrix:
  services.r1.media-relay.latching: [strict, first-packet, off]
",
    );
    let cells = s.cells().unwrap();
    let l: Vec<Latching> = cells
        .iter()
        .map(|c| {
            c.spec
                .services_of("r1")
                .unwrap()
                .media_relay
                .clone()
                .unwrap()
                .latching
        })
        .collect();
    assert_eq!(l, [Latching::Strict, Latching::FirstPacket, Latching::Off]);
}

/// Every scenario shipped in `scenarios/` and `interop/` still loads, and what it asks
/// for is still available: the additions are additive.
#[test]
fn shipped_and_interop_scenarios_still_load_and_run() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let dirs = [root.join("scenarios"), root.join("interop")];
    let files = harness::cli::collect_files(&dirs).unwrap();
    assert!(files.len() > 10, "{files:?}");
    for f in files {
        let s = scenario::load(&f).unwrap_or_else(|e| panic!("{}:\n{e}", f.display()));
        for cell in s.cells().unwrap() {
            let problems = harness::cli::cell_problems(&cell, &f, cell.spec.fabric);
            assert!(problems.is_empty(), "{}: {problems:?}", cell.name);
            for sv in &cell.spec.services {
                if let Some(p) = &sv.sip_proxy {
                    // With the defaults (`media: when-natted`) a proxy uses a relay: the one
                    // it names, its dispatcher, or one its host starts (implicit) when the
                    // host declares none.
                    if p.media != relay::sip::proxy::MediaPolicy::Never {
                        assert_ne!(p.relay, RelayUse::None, "{}", cell.name);
                    }
                    if let RelayUse::Implicit { host } = &p.relay {
                        assert_eq!(host, &sv.host, "{}", cell.name);
                        assert!(sv.media_relay.is_none(), "{}", cell.name);
                    }
                }
            }
        }
    }
}

/// The example of `docs/reference.md` ("The media relay in scenarios").
#[test]
fn the_documented_example() {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/good_scenarios/media-relay.yaml");
    let s = scenario::load(&p).unwrap_or_else(|e| panic!("{e}"));
    let spec = &s.spec;
    let edge = spec.services_of("edge").unwrap().sip_proxy.clone().unwrap();
    assert_eq!(
        edge.relay,
        RelayUse::Dispatcher {
            host: "dispatch".into()
        }
    );
    assert_eq!(edge.secret.as_deref(), Some("correct-horse"));
    let r2 = spec
        .services_of("relay-2")
        .unwrap()
        .media_relay
        .clone()
        .unwrap();
    assert_eq!(r2.secret.as_deref(), Some("correct-horse"));
    assert_eq!(r2.ports, MediaRelay::defaults(r2.pos).ports);
    let docs =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/reference.md"))
            .unwrap();
    assert!(
        docs.contains("      relays: [relay-1, relay-2]   # hosts that declare a media-relay"),
        "docs/reference.md shows this file's services"
    );
    assert!(matches!(
        spec.steps[1].kind,
        StepKind::Service {
            action: ServiceAction::Kill,
            ..
        }
    ));
}
