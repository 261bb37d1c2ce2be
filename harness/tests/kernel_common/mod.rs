#![allow(dead_code)] // each test file uses what it needs
//! Shared by the kernel-fabric tests: whether they may be skipped where the machine
//! cannot run the kernel fabric, and running a `pinhole bench` with `--json` (skipped on
//! exit 3 unless CI requires it) to get its JSON.

use serde_json::Value;
use std::process::Command;

/// Whether the environment must be able to run the kernel fabric (CI, or
/// `PINHOLE_REQUIRE_NAMESPACES`): then a skip is a failure.
pub fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true")
        || std::env::var_os("PINHOLE_REQUIRE_NAMESPACES").is_some()
}

/// `pinhole bench ARGS…` (give `--json` among them): its JSON object, or `None` when the
/// machine cannot run it (exit 3) and nothing requires it. Any other failure panics with
/// the benchmark's stderr.
pub fn run_bench(args: &[&str]) -> Option<Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) && !required() {
        eprintln!("skipped: the machine cannot run `pinhole bench {args:?}` here: {stderr}");
        return None;
    }
    assert!(
        out.status.success(),
        "pinhole bench {args:?}: {}: {stderr}",
        out.status
    );
    Some(
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout))),
    )
}
