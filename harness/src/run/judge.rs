//! Judging a cell's expectations: each check of `expect:` against the result its step
//! recorded (SCENARIO-FORMAT.md "Expectations"), and the step results as report data.
//!
//! Shared by both fabrics through [`crate::run::timeline`], so a measure is judged — and its
//! messages worded — the same way whichever fabric ran the step.

use super::results::{RunOutcome, StepResult, ms};
use crate::scenario::Cell;
use crate::scenario::model::Measure;
use reports::{CellReport, Check};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// Judge every check of the cell's expectations (the cell holds only those whose `when:`
/// holds in it) against the steps' results, in the order they are written.
pub(crate) fn check_expectations(
    cell: &Cell,
    results: &BTreeMap<String, StepResult>,
    report: &mut CellReport,
) {
    for e in &cell.spec.expect {
        let result = results.get(&e.step);
        for c in &e.checks {
            let (measured, passed, message) = judge(&c.measure, result);
            report.checks.push(Check {
                step: e.step.clone(),
                measure: c.measure.key().to_string(),
                expected: measure_text(&c.measure),
                measured_text: measured.as_ref().map(|v| value_text(&c.measure, v)),
                measured,
                passed,
                message,
            });
        }
    }
}

/// A step's result as the `results` object of its report entry.
pub(crate) fn results_json(r: &StepResult) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    match r {
        StepResult::Done => {}
        StepResult::Run(o) => {
            out.insert("exit".into(), json!(o.exit));
            out.insert("stopped".into(), json!(o.stopped));
            out.insert("stdout".into(), json!(o.stdout));
            out.insert("stderr".into(), json!(o.stderr));
        }
        StepResult::Punch(p) => {
            out.insert("connected".into(), json!(p.connected));
            out.insert(
                "learned".into(),
                json!(
                    p.learned
                        .iter()
                        .map(|a| a.map(|a| a.to_string()))
                        .collect::<Vec<_>>()
                ),
            );
            out.insert("received".into(), json!(p.received));
            if let Some(t) = p.time_to_connect {
                out.insert("time_to_connect_ms".into(), json!(ms(t)));
            }
        }
        StepResult::Probe(p) => {
            if let Some(a) = p.mapped {
                out.insert("mapped".into(), json!(a.to_string()));
            }
            if let Some(n) = p.nat_detected {
                out.insert("nat_detected".into(), json!(n));
            }
            if let Some(b) = p.mapping {
                out.insert("mapping".into(), json!(b.as_str()));
            }
            if let Some(b) = p.filtering {
                out.insert("filtering".into(), json!(b.as_str()));
            }
            if let Some(h) = p.hairpinning {
                out.insert("hairpinning".into(), json!(h));
            }
            if let Some(l) = p.binding_lifetime {
                out.insert("binding_lifetime_ms".into(), json!(ms(l)));
            }
            if let Some(l) = p.lifetime_upper_bound {
                out.insert("binding_lifetime_upper_bound_ms".into(), json!(ms(l)));
            }
            if let Some(a) = p.port_allocation {
                out.insert("port_allocation".into(), json!(a.as_str()));
            }
            if let Some(b) = p.port_parity {
                out.insert("port_parity".into(), json!(b));
            }
            if !p.errors.is_empty() {
                out.insert("errors".into(), json!(p.errors));
            }
        }
    }
    out
}

fn fmt_duration(d: Duration) -> String {
    crate::scenario::values::format_duration(d)
}

/// Judge one measure against a step's result.
fn judge(measure: &Measure, result: Option<&StepResult>) -> (Option<Value>, bool, Option<String>) {
    let not_measured = |why: String| (None, false, Some(why));
    match (measure, result) {
        (Measure::Exit(_) | Measure::Stdout(_) | Measure::Stderr(_), Some(StepResult::Run(o))) => {
            judge_run(measure, Some(o))
        }
        (Measure::Connected(want), Some(StepResult::Punch(p))) => (
            Some(json!(p.connected)),
            p.connected == *want,
            (p.connected != *want).then(|| {
                format!(
                    "expected connected: {want}, but it was {}{}",
                    p.connected,
                    match p.received {
                        [true, false] => " (only the first peer heard the second)",
                        [false, true] => " (only the second peer heard the first)",
                        _ => "",
                    }
                )
            }),
        ),
        (Measure::Mapping(want) | Measure::Filtering(want), Some(StepResult::Probe(p))) => {
            let got = match measure {
                Measure::Mapping(_) => p.mapping,
                _ => p.filtering,
            };
            match got {
                Some(b) => {
                    let ok = b.as_str() == want.as_str();
                    (
                        Some(json!(b.as_str())),
                        ok,
                        (!ok).then(|| format!("expected {want}, measured {}", b.as_str())),
                    )
                }
                None => not_measured(format!(
                    "the probe could not determine it: {}",
                    p.errors.join("; ")
                )),
            }
        }
        (Measure::PortAllocation(want), Some(StepResult::Probe(p))) => match p.port_allocation {
            Some(a) => {
                let ok = a.as_str() == want.as_str();
                (
                    Some(json!(a.as_str())),
                    ok,
                    (!ok).then(|| {
                        format!("expected port_allocation: {want}, measured {}", a.as_str())
                    }),
                )
            }
            None => not_measured(format!(
                "the probe could not determine it: {}",
                p.errors.join("; ")
            )),
        },
        (Measure::PortParity(want), Some(StepResult::Probe(p))) => match p.port_parity {
            Some(b) => (
                Some(json!(b)),
                b == *want,
                (b != *want).then(|| format!("expected port_parity: {want}, measured {b}")),
            ),
            None if p.port_allocation.is_some_and(|a| a.as_str() == "preserve") => not_measured(
                "the NAT preserves ports, which keeps their parity whatever its parity setting"
                    .into(),
            ),
            None => not_measured(format!(
                "the probe could not determine it: {}",
                p.errors.join("; ")
            )),
        },
        (Measure::Hairpinning(want), Some(StepResult::Probe(p))) => match p.hairpinning {
            Some(h) => (
                Some(json!(h)),
                h == *want,
                (h != *want).then(|| format!("expected hairpinning: {want}, measured {h}")),
            ),
            None => not_measured(format!(
                "the probe could not determine it: {}",
                p.errors.join("; ")
            )),
        },
        (Measure::BindingLifetime(cmp), Some(StepResult::Probe(p))) => match p.binding_lifetime {
            Some(l) => {
                let ok = cmp.check(&l);
                (
                    Some(json!(ms(l))),
                    ok,
                    (!ok).then(|| format!("expected {cmp}, measured {}", fmt_duration(l))),
                )
            }
            None => not_measured(format!(
                "the probe did not measure a binding lifetime: {}",
                p.errors.join("; ")
            )),
        },
        (_, None) => not_measured("the step did not run".into()),
        (m, Some(_)) => not_measured(format!("`{}` is not produced by this step", m.key())),
    }
}

/// Judge a `run` step's measure against what its program did.
fn judge_run(measure: &Measure, out: Option<&RunOutcome>) -> (Option<Value>, bool, Option<String>) {
    let Some(out) = out else {
        return (None, false, Some("the step did not run".into()));
    };
    match measure {
        Measure::Exit(cmp) => match out.exit {
            Some(code) => {
                let ok = cmp.check(&code);
                let why = if out.stopped {
                    " (pinhole stopped it: timeout or end of scenario)"
                } else {
                    ""
                };
                (
                    Some(json!(code)),
                    ok,
                    (!ok).then(|| format!("expected exit {cmp}, it exited {code}{why}")),
                )
            }
            None => (None, false, Some("the program did not exit".into())),
        },
        Measure::Stdout(t) | Measure::Stderr(t) => {
            let (text, stream) = match measure {
                Measure::Stdout(_) => (&out.stdout, "stdout"),
                _ => (&out.stderr, "stderr"),
            };
            let ok = text.contains(&t.contains);
            let excerpt: String = text.chars().take(400).collect();
            (
                Some(json!(excerpt)),
                ok,
                (!ok).then(|| format!("{stream} does not contain {:?}", t.contains)),
            )
        }
        m => (
            None,
            false,
            Some(format!("`{}` is not produced by a run step", m.key())),
        ),
    }
}

/// A measured value in the units its expectation is written in.
fn value_text(m: &Measure, v: &Value) -> String {
    match (m, v) {
        (
            Measure::BindingLifetime(_)
            | Measure::SetupTime(_)
            | Measure::Jitter(_)
            | Measure::OneWayDelay(_),
            Value::Number(n),
        ) => n
            .as_u64()
            .map(|ms| fmt_duration(Duration::from_millis(ms)))
            .unwrap_or_else(|| n.to_string()),
        (Measure::Loss(_), Value::Number(n)) => {
            format!("{}%", n.as_f64().unwrap_or(0.0) * 100.0)
        }
        (_, Value::String(s)) => s.trim_end().to_string(),
        (_, v) => v.to_string(),
    }
}

/// An expectation as written, for the report's `expected`.
fn measure_text(m: &Measure) -> String {
    match m {
        Measure::Connected(b)
        | Measure::Hairpinning(b)
        | Measure::Established(b)
        | Measure::PortParity(b) => b.to_string(),
        Measure::PortAllocation(a) => a.to_string(),
        Measure::Mapping(b) | Measure::Filtering(b) => b.to_string(),
        Measure::BindingLifetime(c)
        | Measure::SetupTime(c)
        | Measure::Jitter(c)
        | Measure::OneWayDelay(c) => c.text.clone(),
        Measure::Loss(c) | Measure::Mos(c) => c.text.clone(),
        Measure::Exit(c) => c.text.clone(),
        Measure::Media(p) => p.to_string(),
        Measure::Stdout(t) | Measure::Stderr(t) => format!("contains {:?}", t.contains),
    }
}
