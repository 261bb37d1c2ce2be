//! `pinhole bench latency --json` with small counts runs to the end and prints every
//! figure: round-trip quantiles present and positive, counts as asked, idle CPU present
//! and not negative. Timing is printed, never asserted: no figure is compared with a
//! threshold or another figure.

mod kernel_common;

use serde_json::Value;

fn at<'a>(v: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(v, |x, k| &x[k])
}

fn number(v: &Value, path: &str) -> f64 {
    at(v, path)
        .as_f64()
        .unwrap_or_else(|| panic!("{path} is not a number in {v}"))
}

#[test]
fn bench_latency_prints_every_figure() {
    let Some(v) = kernel_common::run_bench(&[
        "latency",
        "--count",
        "30",
        "--delayed-count",
        "5",
        "--idle-seconds",
        "0.5",
        "--json",
    ]) else {
        return;
    };
    for (m, asked) in [
        ("udp_echo.zero_delay", 30.0),
        ("udp_echo.delayed", 5.0),
        ("sip_options.serve_proxy", 30.0),
        ("sip_options.scenario_service", 30.0),
    ] {
        for q in ["p50_us", "p99_us"] {
            let x = number(&v, &format!("{m}.{q}"));
            assert!(x > 0.0, "{m}.{q} = {x} in {v}");
        }
        let n = number(&v, &format!("{m}.count")) + number(&v, &format!("{m}.lost"));
        assert_eq!(
            n, asked,
            "{m}: answered + lost must be the count asked, in {v}"
        );
        assert!(
            number(&v, &format!("{m}.count")) > 0.0,
            "{m}: nothing answered in {v}"
        );
    }
    // The link adds its delay twice per round trip: the median grows (by how much is a
    // benchmark figure, not a test).
    assert!(number(&v, "udp_echo.added_p50_us") > 0.0, "{v}");
    assert_eq!(number(&v, "udp_echo.link_delay_ms"), 30.0);
    for p in [
        "idle_cpu.serve_proxy_percent",
        "idle_cpu.serve_turn_percent",
    ] {
        assert!(number(&v, p) >= 0.0, "{p} in {v}");
    }
    assert_eq!(number(&v, "idle_cpu.seconds"), 0.5);
}
