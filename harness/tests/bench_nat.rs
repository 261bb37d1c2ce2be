//! `pinhole bench nat --seconds 1 --json` runs to the end and prints a positive figure for
//! every measurement. Performance is printed, never asserted: no figure is compared with
//! a threshold or another figure.

use serde_json::Value;
use std::process::Command;

fn required() -> bool {
    std::env::var_os("CI").is_some_and(|v| v == "true")
        || std::env::var_os("PINHOLE_REQUIRE_NAMESPACES").is_some()
}

fn positive(v: &Value, path: &str) {
    let mut x = v;
    for key in path.split('.') {
        x = &x[key];
    }
    let n = x
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {v}"));
    assert!(n > 0.0, "{path} = {n} in {v}");
}

#[test]
fn bench_nat_prints_every_figure() {
    check_bench_nat("sendmmsg");
}

/// The one-datagram-per-call sender too (`--sender sendto`), so that the comparison does
/// not rest on one sender.
#[test]
fn bench_nat_with_the_sendto_sender() {
    check_bench_nat("sendto");
}

fn check_bench_nat(sender: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args([
            "bench",
            "nat",
            "--seconds",
            "1",
            "--json",
            "--sender",
            sender,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) && !required() {
        eprintln!("skipped: the kernel fabric cannot run here: {stderr}");
        return;
    }
    assert!(
        out.status.success(),
        "pinhole bench nat: {}: {stderr}",
        out.status
    );
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!(v["sender"], sender, "{v}");
    for p in [
        "udp64.pinhole_pps",
        "udp1200.pinhole_pps",
        "tcp.pinhole_mbit_s",
        "engine_rss_kib",
        "engine.sent",
        "engine.delivered",
    ] {
        positive(&v, p);
    }
    match v["kernel_unavailable"].as_str() {
        None => {
            for p in [
                "udp64.kernel_pps",
                "udp64.ratio",
                "udp1200.kernel_pps",
                "udp1200.ratio",
                "tcp.kernel_mbit_s",
                "tcp.ratio",
            ] {
                positive(&v, p);
            }
        }
        Some(why) => {
            assert!(!required(), "the kernel side was not measured: {why}");
            eprintln!("kernel side skipped: {why}");
        }
    }
}
