//! Round trip: `pinhole probe`, run behind an emulated NAT on the kernel fabric (a real
//! program on a real stack, against pinhole's STUN service), writes a NAT profile; a
//! scenario that replays that profile probes back to the same classification. Over the
//! four presets, all nine mapping × filtering combinations, and the three port
//! allocations with and without parity.

mod kernel_common;

use kernel_common::required;
use std::path::Path;
use std::process::Command;

fn recording_scenario(nat_axes: &str, matrix: &str) -> String {
    format!(
        "version: 1\nname: record\nfabric: kernel\ntime_limit: 60s\n\
         networks: {{ internet: 203.0.113.0/24, home: 10.0.1.0/24 }}\n\
         nats:\n  nat:\n    inside: home\n    outside: {{ network: internet, addresses: [203.0.113.11] }}\n{nat_axes}\
         hosts:\n  alice: {{ network: home }}\n  server: {{ network: internet, addresses: [203.0.113.5, 203.0.113.6] }}\n\
         services:\n  server:\n    stun: {{ port: 3478, alternate: 203.0.113.6 }}\n\
         steps:\n  - run: {{ name: rec, on: alice, wait: true, timeout: 30s, cmd: [\"{bin}\", probe, \"203.0.113.5:3478\", --out, \"-\"] }}\n\
         expect:\n  - {{ run: rec, exit: 0 }}\n{matrix}",
        bin = env!("CARGO_BIN_EXE_pinhole"),
    )
}

/// A preset's mapping, filtering and port allocation (SCENARIO-FORMAT.md's preset table).
fn preset(t: &str) -> (&'static str, &'static str, &'static str) {
    match t {
        "full-cone" => ("endpoint-independent", "endpoint-independent", "preserve"),
        "restricted" => ("endpoint-independent", "address-dependent", "preserve"),
        "port-restricted" => (
            "endpoint-independent",
            "address-and-port-dependent",
            "preserve",
        ),
        "symmetric" => (
            "address-and-port-dependent",
            "address-and-port-dependent",
            "random",
        ),
        other => panic!("{other}"),
    }
}

/// The value of matrix key `key` in a cell name `NAME[k=v,…]`.
fn cell_value<'a>(name: &'a str, key: &str) -> Option<&'a str> {
    let rest = name.split(&format!("{key}=")).nth(1)?;
    Some(rest.split([',', ']']).next().unwrap_or(rest))
}

#[test]
fn probe_records_a_profile_that_replays_to_the_same_nat() {
    let dir = std::env::temp_dir().join(format!("pinhole-roundtrip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("presets.yaml"),
        recording_scenario(
            "    type: full-cone\n",
            "matrix:\n  nat.type: [full-cone, restricted, port-restricted, symmetric]\n",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("axes.yaml"),
        recording_scenario(
            "    mapping: endpoint-independent\n    filtering: endpoint-independent\n",
            "matrix:\n  nat.mapping: [endpoint-independent, address-dependent, address-and-port-dependent]\n  \
             nat.filtering: [endpoint-independent, address-dependent, address-and-port-dependent]\n",
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("ports.yaml"),
        recording_scenario(
            "    mapping: address-and-port-dependent
    filtering: endpoint-independent
    hairpinning: true
",
            "matrix:
  nat.port_allocation: [preserve, sequential, random]
  nat.port_parity: [true, false]
",
        ),
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args(["run", "--json", "--no-report", "--jobs", "2"])
        .arg(dir.join("presets.yaml"))
        .arg(dir.join("axes.yaml"))
        .arg(dir.join("ports.yaml"))
        .output()
        .unwrap();
    if out.status.code() == Some(3) && !required() {
        eprintln!("skipped: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // Replay every recorded profile on the virtual fabric and probe it again.
    let mut replay_files = Vec::new();
    for (k, cell) in report["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|s| s["cells"].as_array().unwrap())
        .enumerate()
    {
        let name = cell["name"].as_str().unwrap();
        let profile = cell["steps"][0]["results"]["stdout"].as_str().unwrap();
        // What the recording NAT was configured as, from the cell name.
        let (mapping, filtering, ports) = if let Some(t) = cell_value(name, "nat.type") {
            preset(t)
        } else if let Some(p) = cell_value(name, "nat.port_allocation") {
            ("address-and-port-dependent", "endpoint-independent", p)
        } else {
            let m = cell_value(name, "nat.mapping").unwrap();
            let f = cell_value(name, "nat.filtering").unwrap();
            // No `type:`: the port-restricted preset's port preservation.
            (preset_word(m), preset_word(f), "preserve")
        };
        let parity = cell_value(name, "nat.port_parity").unwrap_or("false");
        assert!(
            profile.contains(&format!("port_allocation: {ports}\n")),
            "{name}:\n{profile}"
        );
        // Preservation keeps parity trivially: the probe reports parity for the others only.
        let parity_check = if ports == "preserve" {
            assert!(!profile.contains("port_parity"), "{name}:\n{profile}");
            String::new()
        } else {
            assert!(
                profile.contains(&format!("port_parity: {parity}\n")),
                "{name}:\n{profile}"
            );
            format!(", port_parity: {parity}")
        };
        assert!(
            profile.contains(&format!("mapping: {mapping}\n")),
            "{name}:\n{profile}"
        );
        assert!(
            profile.contains(&format!("filtering: {filtering}\n")),
            "{name}:\n{profile}"
        );
        let pfile = format!("profile-{k}.yaml");
        std::fs::write(dir.join(&pfile), profile).unwrap();
        let replay = dir.join(format!("replay-{k}.yaml"));
        std::fs::write(
            &replay,
            format!(
                "version: 1\nname: replay {k}\nfabric: virtual\n\
                 networks: {{ internet: 203.0.113.0/24, home: 10.0.1.0/24 }}\n\
                 nats: {{ nat: {{ inside: home, outside: {{ network: internet, addresses: [203.0.113.11] }}, profile: {pfile} }} }}\n\
                 hosts: {{ alice: {{ network: home }}, server: {{ network: internet, addresses: [203.0.113.5, 203.0.113.6] }} }}\n\
                 services: {{ server: {{ stun: {{ port: 3478, alternate: 203.0.113.6 }} }} }}\n\
                 steps:\n  - probe: {{ name: p, from: alice, server: server }}\n\
                 expect:\n  - {{ probe: p, mapping: {mapping}, filtering: {filtering}, port_allocation: {ports}{parity_check} }}\n"
            ),
        )
        .unwrap();
        replay_files.push(replay);
    }
    assert_eq!(replay_files.len(), 19);
    let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args(["run", "--no-report", "-q"])
        .args(&replay_files)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(Path::new(&dir).exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

fn preset_word(s: &str) -> &'static str {
    match s {
        "endpoint-independent" => "endpoint-independent",
        "address-dependent" => "address-dependent",
        "address-and-port-dependent" => "address-and-port-dependent",
        other => panic!("{other}"),
    }
}
