//! The good example scenarios parse, and their cells come out as the format says.

use harness::scenario::{self, *};
use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

fn load(name: &str) -> Scenario {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/good_scenarios")
        .join(name);
    match scenario::load(&p) {
        Ok(s) => s,
        Err(e) => panic!("{name} should parse:\n{e}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn format_examples_parse() {
    let s = load("format-examples.yaml");
    let spec = &s.spec;
    assert_eq!(spec.version, 1);
    assert_eq!(spec.seed, 7);
    assert_eq!(spec.fabric, Fabric::Kernel);
    assert_eq!(spec.time_limit, Duration::from_secs(60));
    let t = &spec.topology;
    assert_eq!(t.networks.len(), 5);
    // Addresses: the NAT on the inside takes .1, hosts the next free ones.
    assert_eq!(t.nat("nat-a").unwrap().inside_address, ip("10.0.1.1"));
    assert_eq!(t.host("alice").unwrap().addresses, vec![ip("10.0.1.2")]);
    assert_eq!(t.host("alice").unwrap().gateway, Some(ip("10.0.1.1")));
    assert_eq!(t.host("bob").unwrap().addresses, vec![ip("10.0.2.20")]);
    assert_eq!(t.host("carol").unwrap().addresses, vec![ip("198.51.100.2")]);
    assert_eq!(t.gateway_of("office").unwrap().device, "corp");
    assert_eq!(t.gateway_of("carrier").unwrap().address, ip("100.64.0.1"));
    assert!(t.gateway_of("internet").is_none());
    assert_eq!(t.host("server").unwrap().gateway, None);
    // The profile, overridden by nothing; its axes over the port-restricted defaults.
    let hb = t.nat("home-b-router").unwrap();
    let prof = hb.profile.as_ref().unwrap();
    assert_eq!(prof.name.as_deref(), Some("Some Router 3000"));
    assert_eq!(hb.config.filtering, FilteringBehavior::AddressDependent);
    assert_eq!(hb.config.port_allocation, PortAllocation::Sequential);
    assert_eq!(hb.config.timeouts.udp, Duration::from_secs(30));
    assert_eq!(hb.config.timeouts.icmp, Duration::from_secs(60));
    assert_eq!(hb.config.sip_alg, SipAlgMode::Rewrite);
    let a = t.nat("nat-a").unwrap();
    assert_eq!(a.config.timeouts.tcp_established, Duration::from_secs(7440));
    assert_eq!(a.config.sip_alg, SipAlgMode::Off);
    // Links.
    let bob = spec
        .links
        .iter()
        .find(|l| l.target == LinkTarget::Host("bob".into()))
        .unwrap();
    assert!(
        matches!(bob.up.loss, Some(Loss::Gilbert(g)) if g.p == 0.01 && g.r == 0.3 && g.k == 1.0)
    );
    assert_eq!(bob.up.rate.unwrap().bits_per_sec, 256_000);
    assert_eq!(bob.down.mtu, Some(1280));
    // Services and agents.
    let sv = spec.services_of("server").unwrap();
    assert_eq!(
        sv.stun.as_ref().unwrap().alternate.as_ref().unwrap().port,
        3479
    );
    assert_eq!(sv.turn.as_ref().unwrap().quota, Some(10));
    assert_eq!(sv.sip_proxy.as_ref().unwrap().nat.test, NatTests::ALL);
    let ua = spec.ua_of("alice").unwrap();
    assert_eq!(ua.turn.as_ref().unwrap().password, "secret");
    assert_eq!(ua.keepalive, Some(Duration::from_secs(15)));
    // Steps.
    assert_eq!(spec.steps.len(), 11);
    assert!(matches!(spec.steps[6].kind, StepKind::Wait(d) if d == Duration::from_secs(35)));
    assert_eq!(spec.steps[1].at, Some(Duration::from_secs(5)));
    assert!(spec.steps[5].wait);
    assert!(
        matches!(&spec.steps[10].kind, StepKind::Nat { action: NatAction::Renumber(v), .. } if v == &vec![ip("203.0.113.31")])
    );
    // Expectations.
    assert_eq!(spec.expect.len(), 5);
    assert_eq!(spec.expect[0].checks.len(), 7);
    // Matrix: 4 × 2 − 1 cells.
    let cells = s.cells().unwrap();
    assert_eq!(cells.len(), 7);
    let name = "call between symmetric and port-restricted NATs through the relay";
    assert_eq!(
        cells[0].name,
        format!("{name}[nat-a.type=full-cone,cgn.type=port-restricted]")
    );
    assert_eq!(
        cells[6].name,
        format!("{name}[nat-a.type=symmetric,cgn.type=port-restricted]")
    );
    assert!(!cells.iter().any(|c| {
        c.name
            .ends_with("[nat-a.type=symmetric,cgn.type=symmetric]")
    }));
    assert_eq!(cells[0].seed, cell_seed(7, &cells[0].name));
    // The cell's value replaced the file's; the explicit axes still override the preset.
    let c0 = &cells[0].spec.topology;
    assert_eq!(c0.nat("nat-a").unwrap().preset, Some(Preset::FullCone));
    assert_eq!(
        cells[1].spec.topology.nat("cgn").unwrap().config.mapping,
        MappingBehavior::AddressAndPortDependent
    );
    // `when: { nat-a.type: symmetric }` only in the symmetric cell.
    assert_eq!(cells[0].spec.expect.len(), 4);
    assert_eq!(cells[6].spec.expect.len(), 5);
    // The probe measures the lifetime because an expectation asks.
    assert!(matches!(
        cells[0].spec.steps[2].kind,
        StepKind::Probe { lifetime: true, .. }
    ));
}

#[test]
fn virtual_lab_parses() {
    let s = load("virtual-lab.yaml");
    let spec = &s.spec;
    assert_eq!(spec.fabric, Fabric::Virtual);
    assert_eq!(spec.fabric_pos, Some(Pos::new(6, 9)));
    assert_eq!(spec.seed, name_seed("virtual lab"));
    let t = &spec.topology;
    // Listed addresses first: bob holds .1, so the NAT takes .2 and alice .3.
    assert_eq!(t.nat("home").unwrap().inside_address, ip("10.0.1.2"));
    assert_eq!(t.host("alice").unwrap().addresses, vec![ip("10.0.1.3")]);
    assert_eq!(t.host("bob").unwrap().gateway, Some(ip("10.0.1.2")));
    assert_eq!(t.host("v6").unwrap().addresses, vec![ip("2001:db8:1::1")]);
    assert_eq!(t.host("v6").unwrap().gateway, None);
    // On internet: the firewall's outside, then NATs without a pool.
    assert_eq!(
        t.firewall("corp").unwrap().outside_address,
        ip("203.0.113.1")
    );
    assert_eq!(t.nat("home").unwrap().addresses, vec![ip("203.0.113.2")]);
    // Profile, overridden by explicit axes.
    let home = t.nat("home").unwrap();
    assert_eq!(
        home.config.filtering,
        FilteringBehavior::EndpointIndependent
    );
    assert_eq!(home.config.port_allocation, PortAllocation::Sequential);
    assert_eq!(home.config.sip_alg, SipAlgMode::Off);
    assert_eq!(home.sip_alg_pos, None);
    assert!(home.config.hairpinning);
    let full = t.nat("full").unwrap();
    let c = &full.config;
    assert_eq!(
        (c.mapping, c.filtering),
        (
            MappingBehavior::AddressDependent,
            FilteringBehavior::AddressDependent
        )
    );
    assert!(c.port_parity && c.hairpinning);
    assert_eq!(
        c.port_range,
        PortRange {
            first: 2000,
            last: 3000
        }
    );
    assert_eq!(c.pooling, Pooling::Arbitrary);
    assert_eq!(c.timeouts.tcp_established, Duration::from_secs(3600));
    assert_eq!((c.refresh, c.max_bindings), (Refresh::Both, 100));
    assert_eq!(
        (c.unsolicited, c.fragments),
        (Unsolicited::Icmp, Fragments::Drop)
    );
    assert_eq!(full.sip_alg_pos, Some(Pos::new(36, 14)));
    let corp = t.firewall("corp").unwrap();
    assert_eq!(corp.class, FirewallClass::HttpsOnly);
    assert_eq!(corp.rules.len(), 4);
    assert_eq!(
        corp.rules[1].ports,
        Some(PortRange {
            first: 1000,
            last: 2000
        })
    );
    assert_eq!(corp.rules[2].direction, Direction::Outbound);
    assert_eq!(corp.rules[3].to.unwrap().to_string(), "203.0.113.99/32");
    // Links on NAT/firewall sides.
    assert_eq!(spec.links[0].target, LinkTarget::Outside("home".into()));
    assert_eq!(spec.links[0].up.rate.unwrap().bits_per_sec, 10_000_000);
    assert!(matches!(spec.links[1].down.loss, Some(Loss::Gilbert(g)) if g.h == 0.0 && g.k == 1.0));
    // Services defaults and long forms.
    let sv = spec.services_of("server").unwrap();
    let sp = sv.sip_proxy.as_ref().unwrap();
    assert_eq!(
        (sp.port, sp.media, sp.ice),
        (5060, MediaPolicy::WhenNatted, None)
    );
    // `ice:` not given: add the relay candidate where media is relayed, else pass through.
    assert_eq!(sp.ice_for(true), IcePolicy::AddRelayCandidate);
    assert_eq!(sp.ice_for(false), IcePolicy::Passthrough);
    // The host declares a relay: the proxy uses it.
    assert_eq!(
        sp.relay,
        RelayUse::Declared {
            host: "server".into()
        }
    );
    assert_eq!(
        sp.nat.keepalive.as_ref().unwrap().method,
        KeepaliveMethod::Notify
    );
    assert_eq!(
        sv.stun.as_ref().unwrap().alternate.as_ref().unwrap().port,
        3480
    );
    assert_eq!(sv.turn.as_ref().unwrap().users.len(), 2);
    assert_eq!(sv.http_proxy.as_ref().unwrap().port, 3128);
    assert_eq!(spec.ua_of("carol").unwrap().user, "carol");
    assert_eq!(spec.ua_of("bob").unwrap().user, "robert");
    assert!(!spec.ua_of("alice").unwrap().symmetric);
    // Steps.
    match &spec.steps[0].kind {
        StepKind::Call { media, .. } => {
            assert_eq!(
                (media.codec.as_str(), media.ptime),
                ("PCMU", Duration::from_millis(20))
            )
        }
        k => panic!("{k:?}"),
    }
    assert!(
        matches!(spec.steps[3].kind, StepKind::Punch { protocol: PunchProtocol::Tcp, timeout, .. } if timeout == Duration::from_secs(5))
    );
    assert_eq!(spec.steps[3].at, Some(Duration::from_secs(90)));
    match &spec.steps[4].kind {
        StepKind::Link { on, up, down } => {
            assert_eq!(on, &LinkTarget::Inside("corp".into()));
            assert_eq!(up.delay, Some(Duration::from_millis(100)));
            assert_eq!(down.mtu, Some(576));
        }
        k => panic!("{k:?}"),
    }
    assert!(matches!(spec.steps[6].kind, StepKind::Wait(d) if d == Duration::from_millis(1500)));
    // when: by meaning, and against resolved NAT values when the file does not write them.
    let cells = s.cells().unwrap();
    assert_eq!(cells.len(), 1);
    assert_eq!(cells[0].name, "virtual lab");
    assert_eq!(cells[0].seed, spec.seed);
    let kept: Vec<usize> = cells[0].spec.expect.iter().map(|x| x.index).collect();
    // (A `when:` that held in no cell would make the file invalid: bad_scenarios.rs.)
    assert_eq!(kept, vec![0, 1, 2, 3, 4]);
    // Comparisons.
    let Measure::SetupTime(st) = &cells[0].spec.expect[0].checks[2].measure else {
        panic!()
    };
    assert_eq!(st.op, Op::Eq);
    assert!(st.check(&Duration::from_millis(2000)));
    let Measure::Mos(m) = &cells[0].spec.expect[0].checks[3].measure else {
        panic!()
    };
    assert!(m.check(&4.1) && !m.check(&4.0));
}

#[test]
fn matrix_paths_names_seeds_and_exclude() {
    let s = load("matrix-paths.yaml");
    let seed = name_seed("punch matrix");
    assert_eq!(s.spec.seed, seed);
    let cells = s.cells().unwrap();
    let names: Vec<&str> = cells.iter().map(|c| c.name.as_str()).collect();
    let n = |m: &str, l: &str, t: &str| {
        format!("punch matrix[nat-b.mapping={m},links.nat-a.outside.loss={l},h1.timeout={t}]")
    };
    let (eim, apdm) = ("endpoint-independent", "address-and-port-dependent");
    assert_eq!(
        names,
        vec![
            n(eim, "0%", "5s"),
            n(eim, "0%", "10s"),
            n(eim, "5%", "5s"),
            n(apdm, "0%", "5s"),
            n(apdm, "0%", "10s"),
            n(apdm, "5%", "5s"),
        ]
    );
    for c in &cells {
        assert_eq!(c.seed, cell_seed(seed, &c.name));
    }
    // The seed formula, spelled out.
    use sha2::Digest;
    let d = sha2::Sha256::digest(format!("{seed}{}", cells[0].name).as_bytes());
    assert_eq!(
        cells[0].seed,
        u64::from_le_bytes(d[..8].try_into().unwrap())
    );
    let d = sha2::Sha256::digest(b"punch matrix");
    assert_eq!(seed, u64::from_le_bytes(d[..8].try_into().unwrap()));
    // Values land where the paths point, including a key the file did not write.
    let c = &cells[4].spec;
    assert_eq!(
        c.topology.nat("nat-b").unwrap().config.mapping,
        MappingBehavior::AddressAndPortDependent
    );
    assert!(
        matches!(c.steps[0].kind, StepKind::Punch { timeout, .. } if timeout == Duration::from_secs(10))
    );
    assert_eq!(cells[2].spec.links[0].up.loss, Some(Loss::Random(0.05)));
    assert_eq!(
        cells[4].values[2],
        ("h1.timeout".to_string(), "10s".to_string())
    );
    // when: one expectation per cell.
    assert!(matches!(
        cells[0].spec.expect[..],
        [Expectation { index: 0, .. }]
    ));
    assert!(matches!(
        cells[3].spec.expect[..],
        [Expectation { index: 1, .. }]
    ));
}

#[test]
fn availability() {
    let s = load("format-examples.yaml");
    let file = s.file.clone();
    assert!(check_available(&s.spec, &file, &Availability::all()).is_empty());
    let errs = check_available(&s.spec, &file, &Availability::default());
    let first = errs[0].to_string();
    assert!(
        first.contains(":6:9: the kernel fabric is not available yet"),
        "{first}"
    );
    assert!(
        first.contains("use `fabric: virtual` or `--fabric virtual`"),
        "{first}"
    );
    assert!(errs.iter().any(|e| e.message.contains("`turn` service")));
    assert!(errs.iter().any(|e| e.message.contains("SIP ALG")));
    // Run steps need the kernel fabric whatever is available.
    let mut spec = s.spec.clone();
    spec.fabric = Fabric::Virtual;
    let errs = check_available(&spec, &file, &Availability::all());
    assert_eq!(errs.len(), 2);
    assert!(errs[0].message.contains("`run` steps"));
    // A partial release.
    let lab = load("virtual-lab.yaml");
    let partial = Availability {
        virtual_fabric: true,
        stun: true,
        probe_steps: true,
        punch_steps: true,
        ..Availability::default()
    };
    let errs = check_available(&lab.spec, &lab.file, &partial);
    let msgs: Vec<String> = errs
        .iter()
        .map(|e| format!("{}: {}", e.pos, e.message))
        .collect();
    assert!(
        msgs.iter().any(|m| m.contains("TCP hole punching")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter().any(|m| m.contains("binding lifetime")),
        "{msgs:#?}"
    );
    assert!(
        msgs.iter().any(|m| m.starts_with("36:14: the SIP ALG")),
        "{msgs:#?}"
    );
}

#[test]
fn load_str_and_error_display() {
    let text = "version: 1\nname: x\nnetworks: { n: 10.0.0.0/24 }\nhosts: { h: { network: m } }\n";
    let e = scenario::load_str(text, "dir/x.yaml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "dir/x.yaml:4:24: `network`: unknown network `m`\n  help: declare it under `networks:` (declared: n)"
    );
    let ok = scenario::load_str("version: 1\nname: tiny\n", "tiny.yaml").unwrap();
    assert_eq!(ok.spec.time_limit, Duration::from_secs(300));
    assert_eq!(ok.spec.fabric, Fabric::Kernel);
    assert_eq!(ok.spec.fabric_pos, None);
}

#[test]
fn unavailable_over_all_cells_with_fabric_override() {
    let s = load("format-examples.yaml");
    let only_virtual = Availability {
        virtual_fabric: true,
        ..Availability::all()
    };
    let only_virtual = Availability {
        kernel_fabric: false,
        ..only_virtual
    };
    // The file says kernel: one error at `fabric: kernel`, reported once for all 7 cells.
    let errs = s.unavailable(None, &only_virtual).unwrap();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(errs[0].pos, Pos::new(6, 9));
    // `--fabric virtual`: now the two run steps are the problem.
    let errs = s.unavailable(Some(Fabric::Virtual), &only_virtual).unwrap();
    let at: Vec<Pos> = errs.iter().map(|e| e.pos).collect();
    assert_eq!(at, vec![Pos::new(106, 5), Pos::new(107, 5)]);
}

#[test]
fn network_and_broadcast_addresses() {
    let head =
        "version: 1\nname: x\nnetworks: { n: 10.0.0.0/24, p: 10.0.9.0/31, w: \"::/0\" }\nhosts:\n";
    let e = scenario::load_str(
        &format!("{head}  a: {{ network: n, address: 10.0.0.255 }}\n"),
        "x.yaml",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("x.yaml:5:29: address 10.0.0.255 is the network or broadcast"),
        "{e}"
    );
    let ok = scenario::load_str(
        &format!("{head}  a: {{ network: p, address: 10.0.9.0 }}\n  b: {{ network: w }}\n"),
        "x.yaml",
    )
    .unwrap();
    assert_eq!(
        ok.spec.topology.host("b").unwrap().addresses,
        vec![ip("::1")]
    );
}
