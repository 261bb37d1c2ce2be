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
    assert_eq!(hb.config.filtering, Behavior::AddressDependent);
    assert_eq!(hb.config.port_allocation, PortAllocation::Sequential);
    assert_eq!(hb.config.timeouts.udp, Duration::from_secs(30));
    assert_eq!(hb.config.timeouts.icmp, Duration::from_secs(60));
    assert_eq!(hb.config.sip_alg, SipAlg::Rewrite);
    let a = t.nat("nat-a").unwrap();
    assert_eq!(a.config.timeouts.tcp_established, Duration::from_secs(7440));
    assert_eq!(a.config.sip_alg, SipAlg::Off);
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
    assert_eq!(sv.sip_proxy.as_ref().unwrap().nat.test.len(), 4);
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
        Behavior::AddressAndPortDependent
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
