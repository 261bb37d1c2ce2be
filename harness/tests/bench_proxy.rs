//! `pinhole bench proxy` with a very short load: prints the four figures of issue #6, and
//! Kamailio (stock configuration) and pinhole's proxy (`pinhole serve proxy`) each complete
//! every call with none failed at a low rate.
//! Performance is printed, never asserted: no figure is compared with a threshold.

mod kernel_common;

use kernel_common::required;
use serde_json::Value;

#[test]
fn bench_proxy_runs_kamailio_calls_without_failures() {
    let Some(v) = kernel_common::run_bench(&[
        "proxy",
        "--seconds",
        "2",
        "--cpu-rate",
        "20",
        "--rates",
        "20",
        "--json",
    ]) else {
        return;
    };
    for key in [
        "pinhole_cpu_ms_per_1000_calls",
        "kamailio_cpu_ms_per_1000_calls",
        "pinhole_max_cps",
        "kamailio_max_cps",
    ] {
        assert!(v.get(key).is_some(), "no {key} in {v}");
    }
    let k = &v["kamailio"];
    if k["available"] == Value::Bool(false) {
        assert!(!required(), "kamailio was not measured: {k}");
        eprintln!("kamailio skipped: {}", k["why"]);
    } else {
        let run = &k["cpu_run"];
        assert_eq!(run["calls"], 40, "{v}");
        assert_eq!(run["successful"], 40, "{v}");
        assert_eq!(run["failed"], 0, "{v}");
        assert!(run["cpu_ms"].as_f64().is_some(), "{v}");
        assert!(
            v["kamailio_cpu_ms_per_1000_calls"].as_f64().is_some(),
            "{v}"
        );
        let steps = k["steps"].as_array().expect("steps");
        assert_eq!(steps.len(), 1, "{v}");
        assert_eq!(steps[0]["successful"], 40, "{v}");
        assert_eq!(steps[0]["failed"], 0, "{v}");
        assert_eq!(v["kamailio_max_cps"], 20, "{v}");
    }
    // pinhole's own proxy is always measured (`pinhole serve proxy` exists) and must
    // complete every call, as Kamailio does.
    let p = &v["pinhole"];
    assert!(p.get("error").is_none(), "pinhole's proxy failed: {p}");
    assert_ne!(
        p["available"],
        Value::Bool(false),
        "pinhole's proxy was not measured: {p}"
    );
    let run = &p["cpu_run"];
    assert_eq!(run["calls"], 40, "{v}");
    assert_eq!(run["successful"], 40, "{v}");
    assert_eq!(run["failed"], 0, "{v}");
    let steps = p["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 1, "{v}");
    assert_eq!(steps[0]["successful"], 40, "{v}");
    assert_eq!(steps[0]["failed"], 0, "{v}");
    assert_eq!(v["pinhole_max_cps"], 20, "{v}");
    assert!(v["pinhole_cpu_ms_per_1000_calls"].as_f64().is_some(), "{v}");
}
