//! `pinhole run --pcap DIR` writes one capture per interface and cell, and tshark (an
//! independent decoder) reads every one of them — every checksum verified — without
//! errors, and sees the protocols.

use std::path::{Path, PathBuf};
use std::process::Command;

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            files(&p, out);
        } else {
            out.push(p);
        }
    }
}

#[test]
fn tshark_decodes_every_capture() {
    let tshark_ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        tshark_ok,
        "tshark is needed by this test: run `cargo xtask test` as root, or apt-get install tshark"
    );
    let dir = std::env::temp_dir().join(format!("pinhole-pcap-{}", std::process::id()));
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args(["run", "--no-report", "-q", "--pcap"])
        .arg(&dir)
        .arg(scenarios.join("probe-hairpinning.yaml"))
        .arg(scenarios.join("firewall-classes.yaml"))
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = Vec::new();
    files(&dir, &mut all);
    assert!(
        all.len() >= 20,
        "expected a capture per interface and cell, got {}",
        all.len()
    );
    let mut protocols = String::new();
    for f in &all {
        let o = Command::new("tshark")
            .args(["-n", "-r"])
            .arg(f)
            // Verify every checksum (off by default in Wireshark).
            .args([
                "-o",
                "ip.check_checksum:TRUE",
                "-o",
                "udp.check_checksum:TRUE",
            ])
            .args(["-o", "tcp.check_checksum:TRUE"]) // ICMP checksums are always verified
            .args([
                "-T",
                "fields",
                "-e",
                "frame.protocols",
                "-e",
                "_ws.malformed",
                "-e",
                "_ws.expert.severity",
            ])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "tshark failed on {}: {}",
            f.display(),
            String::from_utf8_lossy(&o.stderr)
        );
        let text = String::from_utf8_lossy(&o.stdout);
        for line in text.lines() {
            let cols: Vec<&str> = line.split('\t').collect();
            assert!(
                cols.get(1).is_none_or(|m| m.is_empty()),
                "malformed packet in {}: {line}",
                f.display()
            );
            // Severity 8388608 is "error" in Wireshark's expert info (e.g. a bad checksum).
            assert!(
                !cols.get(2).is_some_and(|s| s.contains("8388608")),
                "expert error in {}: {line}",
                f.display()
            );
        }
        protocols.push_str(&text);
    }
    for p in ["raw:ip:udp:stun", "raw:ip:tcp"] {
        assert!(protocols.contains(p), "no {p} packets seen by tshark");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
