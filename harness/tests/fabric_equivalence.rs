//! The same scenarios give the same pass/fail verdicts — cell by cell, check by check — on
//! the virtual fabric (smoltcp stacks, virtual time) and on the kernel fabric (Linux stacks
//! in network namespaces, real time). Discrete outcomes only, never timing figures.
//!
//! Every shipped scenario of `scenarios/` takes part except `probe-binding-lifetime.yaml`:
//! its RFC 5780 §4.6 search waits out 20 s and 60 s mapping timers several times over,
//! which is milliseconds of virtual time but minutes of real time.
//! Skipped, with the reason, where the kernel fabric cannot run — unless `CI` or
//! `PINHOLE_REQUIRE_NAMESPACES` is set.

use std::path::{Path, PathBuf};
use std::process::Command;

fn verdicts(fabric: &str, files: &[PathBuf]) -> Option<Vec<(String, String, bool)>> {
    let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args([
            "run",
            "--json",
            "--no-report",
            "--jobs",
            "2",
            "--fabric",
            fabric,
        ])
        .args(files)
        .output()
        .unwrap();
    let required = std::env::var_os("CI").is_some_and(|v| v == "true")
        || std::env::var_os("PINHOLE_REQUIRE_NAMESPACES").is_some();
    if out.status.code() == Some(3) && !required {
        eprintln!(
            "skipped: the {fabric} fabric cannot run here: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        return None;
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{fabric}: no JSON report ({e}); stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let mut v = Vec::new();
    for s in report["scenarios"].as_array().unwrap() {
        for c in s["cells"].as_array().unwrap() {
            let cell = c["name"].as_str().unwrap().to_string();
            assert!(c["error"].is_null(), "{fabric}: {cell}: {}", c["error"]);
            for k in c["checks"].as_array().unwrap() {
                let what = format!(
                    "{}.{}",
                    k["step"].as_str().unwrap(),
                    k["measure"].as_str().unwrap()
                );
                v.push((cell.clone(), what, k["passed"].as_bool().unwrap()));
            }
        }
    }
    Some(v)
}

#[test]
fn virtual_and_kernel_fabrics_agree() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios");
    // Every scenario file, in folders too (as `pinhole run scenarios/` finds them).
    let files: Vec<PathBuf> = harness::cli::collect_files(std::slice::from_ref(&dir))
        .unwrap()
        .into_iter()
        .filter(|p| !p.ends_with("probe-binding-lifetime.yaml"))
        .collect();
    assert!(files.len() >= 10, "{files:?}");
    let Some(kernel) = verdicts("kernel", &files) else {
        return;
    };
    let virt = verdicts("virtual", &files).unwrap();
    assert_eq!(virt.len(), kernel.len());
    let differ: Vec<_> = virt
        .iter()
        .zip(&kernel)
        .filter(|(a, b)| a != b)
        .map(|(a, b)| format!("{} {}: virtual {} / kernel {}", a.0, a.1, a.2, b.2))
        .collect();
    assert!(
        differ.is_empty(),
        "the fabrics disagree:\n{}",
        differ.join("\n")
    );
    // And the shipped scenarios hold on both.
    assert!(kernel.iter().all(|(_, _, ok)| *ok));
}
