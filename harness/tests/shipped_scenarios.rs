//! Every scenario shipped in `scenarios/` runs on the virtual fabric and every expectation
//! of every cell holds; the same scenario and seed give a byte-identical report.json.

use harness::cli::{self, RunOptions};
use harness::run::sim;
use harness::scenario;
use std::path::{Path, PathBuf};

fn scenarios_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios")
}

fn run_file(name: &str) {
    let path = scenarios_dir().join(name);
    let s = scenario::load(&path).unwrap_or_else(|e| panic!("{name} does not load:\n{e}"));
    let cells = s.cells().unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut failures = Vec::new();
    for cell in &cells {
        let problems = cli::cell_problems(cell, &path, cell.spec.fabric);
        assert!(problems.is_empty(), "{name}: {problems:?}");
        let r = sim::run_cell(cell);
        if !r.passed {
            failures.push(format!(
                "{}: error {:?}; failed checks: {:?}",
                r.name,
                r.error,
                r.checks.iter().filter(|c| !c.passed).collect::<Vec<_>>()
            ));
        }
        // Every cell checks something, and every measure of every expectation that
        // applies to it was judged (each is its own check).
        let measures: usize = cell.spec.expect.iter().map(|x| x.checks.len()).sum();
        assert!(measures > 0, "{}: no expectation applies", r.name);
        assert_eq!(
            r.checks.len(),
            measures,
            "{}: not every measure was judged",
            r.name
        );
    }
    assert!(failures.is_empty(), "{name}:\n{}", failures.join("\n"));
}

#[test]
fn every_shipped_scenario_has_a_test() {
    let tested = [
        "punch-udp-presets.yaml",
        "probe-presets.yaml",
        "probe-mapping-filtering.yaml",
        "probe-port-allocation.yaml",
        "probe-hairpinning.yaml",
        "cgnat-hairpin-punch.yaml",
        "link-steps.yaml",
        "nat-actions.yaml",
        "firewall-classes.yaml",
        "punch-tcp-presets.yaml",
        "probe-binding-lifetime.yaml",
        "probe-profile.yaml",
        "ipv6-punch.yaml",
    ];
    // Every scenario file, in folders too (as `pinhole run scenarios/` finds them).
    let dir = scenarios_dir();
    let shipped: Vec<String> = cli::collect_files(std::slice::from_ref(&dir))
        .unwrap()
        .iter()
        .map(|p| p.strip_prefix(&dir).unwrap().to_string_lossy().into_owned())
        .collect();
    assert!(shipped.len() >= tested.len(), "{shipped:?}");
    for s in &shipped {
        assert!(
            tested.contains(&s.as_str()),
            "scenarios/{s} is not run by any test: add it here"
        );
    }
}

#[test]
fn punch_udp_presets() {
    run_file("punch-udp-presets.yaml");
}

#[test]
fn probe_presets() {
    run_file("probe-presets.yaml");
}

#[test]
fn probe_mapping_filtering() {
    run_file("probe-mapping-filtering.yaml");
}

#[test]
fn probe_port_allocation() {
    run_file("probe-port-allocation.yaml");
}

#[test]
fn probe_hairpinning() {
    run_file("probe-hairpinning.yaml");
}

#[test]
fn cgnat_hairpin_punch() {
    run_file("cgnat-hairpin-punch.yaml");
}

#[test]
fn link_steps() {
    run_file("link-steps.yaml");
}

#[test]
fn nat_actions() {
    run_file("nat-actions.yaml");
}

#[test]
fn same_seed_gives_byte_identical_report() {
    let tmp = std::env::temp_dir().join(format!("pinhole-determinism-{}", std::process::id()));
    let mut texts = Vec::new();
    for (k, jobs) in [(0, 1), (1, 4)] {
        let dir = tmp.join(k.to_string());
        let opts = RunOptions {
            fabric: None,
            report: Some(dir.clone()),
            jobs,
            shard: None,
            json: false,
            quiet: true,
            pcap: None,
            events_limit: None,
        };
        let files = vec![
            scenarios_dir().join("punch-udp-presets.yaml"),
            scenarios_dir().join("link-steps.yaml"),
            scenarios_dir().join("probe-presets.yaml"),
        ];
        let code = cli::run(&files, &opts).unwrap();
        assert_eq!(code, cli::EXIT_PASS);
        let mut files = std::fs::read(dir.join("report.json")).unwrap();
        files.extend(std::fs::read(dir.join("junit.xml")).unwrap());
        files.extend(std::fs::read(dir.join("summary.md")).unwrap());
        // Every cell's event log too, in file-name order.
        let mut logs: Vec<_> = std::fs::read_dir(dir.join("events"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        logs.sort();
        assert!(!logs.is_empty(), "no event logs written");
        for l in logs {
            files.extend(l.file_name().unwrap().as_encoded_bytes());
            files.extend(std::fs::read(l).unwrap());
        }
        texts.push(files);
    }
    std::fs::remove_dir_all(&tmp).unwrap();
    assert!(
        texts[0] == texts[1],
        "report.json, junit.xml, summary.md or an event log differs between two runs with the same seeds"
    );
}

#[test]
fn firewall_classes() {
    run_file("firewall-classes.yaml");
}

#[test]
fn punch_tcp_presets() {
    run_file("punch-tcp-presets.yaml");
}

#[test]
fn probe_binding_lifetime() {
    run_file("probe-binding-lifetime.yaml");
}

#[test]
fn probe_profile() {
    run_file("probe-profile.yaml");
}

#[test]
fn ipv6_punch() {
    run_file("ipv6-punch.yaml");
}
