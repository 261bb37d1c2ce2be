//! `pinhole bench nat --seconds 1 --json` runs to the end and prints a positive figure for
//! every measurement. Performance is printed, never asserted: no figure is compared with
//! a threshold or another figure.

mod kernel_common;

use kernel_common::required;
use serde_json::Value;

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
    let Some(v) =
        kernel_common::run_bench(&["nat", "--seconds", "1", "--json", "--sender", sender])
    else {
        return;
    };
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
