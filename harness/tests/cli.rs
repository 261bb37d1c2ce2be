//! The `pinhole` binary's exit codes and messages (SCENARIO-FORMAT.md "Results").

use std::path::Path;
use std::process::Command;

fn pinhole() -> Command {
    Command::new(env!("CARGO_BIN_EXE_pinhole"))
}

/// Assert that a run exited 0 (showing its stderr if not).
fn succeeded(out: &std::process::Output) {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn tmpdir(tag: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("pinhole-cli-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

const PASSING: &str = r#"
version: 1
name: tiny punch
fabric: virtual
time_limit: 20s
networks: { internet: 203.0.113.0/24, home-a: 10.0.1.0/24, home-b: 10.0.2.0/24 }
nats:
  nat-a: { inside: home-a, outside: { network: internet, addresses: [203.0.113.11] }, type: full-cone }
  nat-b: { inside: home-b, outside: { network: internet, addresses: [203.0.113.12] }, type: symmetric }
hosts:
  alice: { network: home-a }
  bob: { network: home-b }
  server: { network: internet }
steps:
  - punch: { name: h1, between: [alice, bob], rendezvous: server }
expect:
  - { punch: h1, connected: true }
"#;

#[test]
fn run_passes_fails_and_rejects_with_the_documented_codes() {
    let dir = tmpdir("codes");
    let good = dir.join("good.yaml");
    std::fs::write(&good, PASSING).unwrap();
    let out = pinhole()
        .args(["run", "--report"])
        .arg(dir.join("report"))
        .arg(&good)
        .output()
        .unwrap();
    succeeded(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("PASS tiny punch"), "{text}");
    assert!(dir.join("report/report.json").exists());

    // The same topology, but expecting the wrong outcome: exit 1 with the reason.
    let failing = dir.join("failing.yaml");
    std::fs::write(
        &failing,
        PASSING.replace("connected: true", "connected: false"),
    )
    .unwrap();
    let out = pinhole()
        .args(["run", "--no-report"])
        .arg(&failing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("FAIL h1.connected: expected false, measured true"),
        "{text}"
    );

    // Invalid input: exit 2, position in the message, nothing run (no report written).
    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        PASSING.replace("time_limit: 20s", "time_limit: 20s\ncolour: blue"),
    )
    .unwrap();
    let out = pinhole()
        .args(["run", "--report"])
        .arg(dir.join("bad-report"))
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.yaml:6:1"), "{err}");
    assert!(
        !dir.join("bad-report").exists(),
        "an invalid input must start nothing"
    );

    // The media relay runs (it listens; nothing here sends it a call).
    let relay = dir.join("relay.yaml");
    std::fs::write(
        &relay,
        format!("{PASSING}services:\n  server:\n    media-relay: {{ ports: 40000-40999 }}\n"),
    )
    .unwrap();
    let out = pinhole()
        .args(["run", "--no-report"])
        .arg(&relay)
        .output()
        .unwrap();
    succeeded(&out);
    // Every media policy of the sip-proxy is valid (the default starts a relay).
    for media in ["relay", "when-natted", "never"] {
        let sip = dir.join(format!("sip-{media}.yaml"));
        std::fs::write(
            &sip,
            format!(
                "{PASSING}services:\n  server:\n    sip-proxy: {{ port: 5060, media: {media} }}\n"
            ),
        )
        .unwrap();
        let out = pinhole().arg("validate").arg(&sip).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{media}: {err}");
    }
    // A feature not built yet is refused with its position, not skipped.
    let ua = dir.join("ua.yaml");
    std::fs::write(
        &ua,
        format!(
            "{PASSING}services:\n  server:\n    sip-proxy: {{}}\nagents:\n  alice:\n    ua: {{ user: alice, proxy: server }}\n"
        ),
    )
    .unwrap();
    let out = pinhole().arg("validate").arg(&ua).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ua.yaml:23:") && err.contains("the built-in `ua` agent is not available yet"),
        "{err}"
    );
    // A scenario written for the kernel fabric runs on the virtual one with `--fabric`.
    let kernel = dir.join("kernel.yaml");
    std::fs::write(
        &kernel,
        PASSING.replace("fabric: virtual", "fabric: kernel"),
    )
    .unwrap();
    // …and `--fabric virtual` overrides it.
    let out = pinhole()
        .args(["run", "--no-report", "--fabric", "virtual"])
        .arg(&kernel)
        .output()
        .unwrap();
    succeeded(&out);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn validate_reports_ok_and_errors() {
    let dir = tmpdir("validate");
    let good = dir.join("good.yaml");
    std::fs::write(&good, PASSING).unwrap();
    let out = pinhole().arg("validate").arg(&good).output().unwrap();
    succeeded(&out);
    let out = pinhole()
        .arg("validate")
        .arg(dir.join("missing.yaml"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no such file"));
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let out = pinhole().arg("validate").arg(&shipped).output().unwrap();
    succeeded(&out);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The report folder holds `junit.xml` and `summary.md` next to `report.json`; the JUnit
/// file is read back by an independent XML parser (Python's ElementTree) and its counts
/// agree with what the run did: one testcase per cell and measure, failures where an
/// expectation did not hold.
#[test]
fn report_folder_has_junit_xml_and_summary() {
    let dir = tmpdir("junit");
    let good = dir.join("good.yaml");
    std::fs::write(&good, PASSING).unwrap();
    let failing = dir.join("failing.yaml");
    std::fs::write(
        &failing,
        PASSING
            .replace(
                "name: tiny punch",
                "name: tiny punch <expected to fail> & more",
            )
            .replace("connected: true", "connected: false"),
    )
    .unwrap();
    let out = pinhole()
        .args(["run", "-q", "--report"])
        .arg(dir.join("report"))
        .arg(&good)
        .arg(&failing)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    for f in ["report.json", "junit.xml", "summary.md"] {
        assert!(dir.join("report").join(f).exists(), "{f}");
    }
    let check = r#"
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
assert root.tag == "testsuites", root.tag
cases = root.findall("./testsuite/testcase")
failures = [c for c in cases if c.find("failure") is not None]
print(len(root.findall("testsuite")), len(cases), len(failures), root.get("tests"), root.get("failures"))
print(failures[0].get("classname"), failures[0].get("name"), failures[0].find("failure").get("message"))
"#;
    let out = Command::new("python3")
        .args(["-c", check])
        .arg(dir.join("report/junit.xml"))
        .output()
        .expect("python3 (installed by `cargo xtask test`)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("2 2 1 2 1"), "{text}");
    assert_eq!(
        lines.next(),
        Some(
            "tiny punch <expected to fail> & more h1.connected expected connected: false, but it was true"
        ),
        "{text}"
    );
    let md = std::fs::read_to_string(dir.join("report/summary.md")).unwrap();
    assert!(md.starts_with("# pinhole run FAILED"), "{md}");
    assert!(md.contains("2 cells: 1 passed, 1 failed"), "{md}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A cell that ends with zero checks fails (exit 1): in the summary line, as an errored
/// `cell` testcase in JUnit, and with its error in report.json — while the cell next to it
/// with a check passes.
#[test]
fn a_cell_with_zero_checks_fails() {
    let dir = tmpdir("zero-checks");
    let file = dir.join("zero.yaml");
    std::fs::write(
        &file,
        PASSING
            .replace(
                "  - { punch: h1, connected: true }",
                "  - { when: { nat-a.type: full-cone }, punch: h1, connected: true }",
            )
            .replace(
                "expect:",
                "matrix:\n  nat-a.type: [full-cone, restricted]\nexpect:",
            ),
    )
    .unwrap();
    let out = pinhole()
        .args(["run", "--report"])
        .arg(dir.join("report"))
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains(
            "2 cells: 1 passed, 1 failed, 1 with zero checks (1 checks: 1 held, 0 failed)"
        ),
        "{text}"
    );
    let report: reports::Report =
        serde_json::from_str(&std::fs::read_to_string(dir.join("report/report.json")).unwrap())
            .unwrap();
    let cells = &report.scenarios[0].cells;
    assert!(cells[0].passed && cells[0].checks.len() == 1);
    assert!(!cells[1].passed && cells[1].checks.is_empty());
    assert!(
        cells[1]
            .error
            .as_deref()
            .unwrap_or("")
            .contains("zero checks"),
        "{:?}",
        cells[1].error
    );
    assert_eq!(report.summary.cells_without_checks, 1);
    let junit = std::fs::read_to_string(dir.join("report/junit.xml")).unwrap();
    assert!(
        junit.contains("name=\"cell\"") && junit.contains("the cell ended with zero checks"),
        "{junit}"
    );
    assert!(junit.contains("errors=\"1\""), "{junit}");
    std::fs::remove_dir_all(&dir).unwrap();
}
