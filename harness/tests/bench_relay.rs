//! `pinhole bench relay` with a tiny bounded load: the JSON object has every key of issue
//! #13, and every available relay (the do-nothing forwarder always; rtpengine and coturn
//! where installed; pinhole's relay once `serve relay` exists) delivered packets.
//! Performance is printed, never asserted: no figure is compared with a threshold.

mod kernel_common;

use kernel_common::required;
use serde_json::Value;

const TARGETS: [&str; 4] = ["forwarder", "rtpengine", "coturn", "pinhole"];

#[test]
fn bench_relay_compare_delivers_through_every_available_relay() {
    let Some(v) = kernel_common::run_bench(&[
        "relay",
        "--compare",
        "--rates",
        "1000,2000",
        "--step-seconds",
        "0.5",
        "--json",
    ]) else {
        return;
    };
    for t in TARGETS {
        for key in [format!("{t}_pps_per_core"), format!("{t}_max_lossless_pps")] {
            assert!(v.get(&key).is_some(), "no {key} in {v}");
        }
        for map in [
            "max_lossless_pps",
            "p99_added_latency_us",
            "loss_ratio",
            "bytes_per_session",
        ] {
            assert!(v[map].get(t).is_some(), "no {map}.{t} in {v}");
        }
    }
    assert!(v.get("common_step_pps").is_some(), "{v}");
    let gen_steps = v["generator"]["steps"].as_array().expect("generator steps");
    assert!(
        gen_steps[0]["received"].as_u64().unwrap_or(0) > 0,
        "the generator's own path delivered nothing: {v}"
    );
    for t in TARGETS {
        let r = &v["targets"][t];
        if r["available"] == Value::Bool(false) {
            let why = r["why"].as_str().unwrap_or_default();
            assert!(r.get("error").is_none(), "{t} failed: {r}");
            // The forwarder is this binary: always there. The others may be missing
            // here, but not where the environment is required to have them.
            assert_ne!(t, "forwarder", "{r}");
            if t == "pinhole" {
                assert!(why.contains("not built"), "{r}");
            } else {
                assert!(!required(), "{t} was not measured: {why}");
            }
            assert_eq!(v["unavailable"][t], why, "{v}");
            assert!(v[format!("{t}_pps_per_core")].is_null(), "{v}");
            eprintln!("{t} skipped: {why}");
            continue;
        }
        let steps = r["steps"].as_array().expect("steps");
        assert!(!steps.is_empty(), "{r}");
        assert!(
            steps[0]["received"].as_u64().unwrap_or(0) > 0,
            "{t} delivered nothing: {r}"
        );
        assert!(r["command"].as_str().is_some(), "{r}");
        assert!(steps[0]["cpu_percent"].as_f64().is_some(), "{r}");
    }
}

#[test]
fn bench_relay_overload_reports_recovery_per_stream() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pinhole"))
        .args([
            "bench",
            "relay",
            "--overload",
            "--target",
            "forwarder",
            "--rates",
            "1000,2000",
            "--step-seconds",
            "0.5",
            "--overload-seconds",
            "1",
            "--recovery-seconds",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.code() == Some(3) && !required() {
        eprintln!("skipped: the machine cannot run the relay bench here: {stderr}");
        return;
    }
    let v: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stderr}"));
    let f = &v["targets"]["forwarder"];
    if let Some(e) = f["error"].as_str()
        && e.contains("no CPU limit could be set")
        && !required()
    {
        eprintln!("skipped: no cgroup CPU limit here: {e}");
        return;
    }
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(
        f["limit"].as_str().is_some_and(|l| l.contains("cgroup")),
        "{v}"
    );
    assert!(f["received"].as_u64().unwrap_or(0) > 0, "{v}");
    let streams = f["recovery_streams"].as_u64().expect("recovery_streams");
    assert!(streams > 0, "{v}");
    assert_eq!(
        f["recovered_within_1s"].as_u64().unwrap_or(0) + f["not_recovered"].as_u64().unwrap_or(0),
        streams,
        "{v}"
    );
}
