//! `pinhole run --pcap DIR` writes one capture per interface and cell, and tshark (an
//! independent decoder) reads every one of them — every checksum verified — without
//! errors, and sees the protocols.

mod kernel_common;

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

/// Run `pinhole run --pcap` with `args` and check every capture with tshark; `false` when
/// the fabric cannot run here (and that is allowed).
fn check(tag: &str, args: &[&str], min_files: usize, protocols_wanted: &[&str]) -> bool {
    let tshark_ok = Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        tshark_ok,
        "tshark is needed by this test: run `cargo xtask test` as root, or apt-get install tshark"
    );
    let dir = std::env::temp_dir().join(format!("pinhole-pcap-{tag}-{}", std::process::id()));
    let scenarios = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .current_dir(&scenarios)
        .args(["run", "--no-report", "-q", "--pcap"])
        .arg(&dir)
        .args(args)
        .output()
        .unwrap();
    let required = kernel_common::required();
    if out.status.code() == Some(3) && !required {
        eprintln!("skipped: {}", String::from_utf8_lossy(&out.stderr));
        return false;
    }
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut all = Vec::new();
    files(&dir, &mut all);
    assert!(
        all.len() >= min_files,
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
    for p in protocols_wanted {
        assert!(protocols.contains(p), "no {p} packets seen by tshark");
    }
    std::fs::remove_dir_all(&dir).unwrap();
    true
}

#[test]
fn tshark_decodes_every_virtual_capture() {
    check(
        "virtual",
        &["probe-hairpinning.yaml", "firewall-classes.yaml"],
        20,
        &["raw:ip:udp:stun", "raw:ip:tcp"],
    );
}

#[test]
fn tshark_decodes_every_kernel_capture() {
    // Real Linux stacks: their own checksums, options and IPv6 chatter must decode too.
    check(
        "kernel",
        &[
            "--fabric",
            "kernel",
            "probe-hairpinning.yaml",
            "firewall-classes.yaml",
        ],
        20,
        &["raw:ip:udp:stun", "raw:ip:tcp"],
    );
}
