//! `junit.xml`: the run as JUnit XML for CI systems (Jenkins, GitLab, GitHub test
//! reporters). One `<testsuite>` per scenario file, one `<testcase>` per cell and
//! measure (`classname` = the cell, `name` = `step.measure`), as DESIGN.md's reports
//! section asks. A cell that could not run to its end adds an errored `<testcase>` named
//! `cell`; a cell without expectations is one `<testcase>` named `cell` that passes when
//! the cell ran.
//!
//! Like `report.json`, the file holds no wall-clock time: `time` is the cell's scenario
//! time, so the same scenario and seed give the same bytes.

use crate::{CellReport, Check, Report};
use std::fmt::Write;

/// The report as JUnit XML.
pub fn to_junit(report: &Report) -> String {
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let (tests, failures, errors) = report
        .scenarios
        .iter()
        .flat_map(|s| &s.cells)
        .map(counts)
        .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    let _ = writeln!(
        x,
        "<testsuites name=\"pinhole\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\">"
    );
    for s in &report.scenarios {
        let (t, f, e) = s
            .cells
            .iter()
            .map(counts)
            .fold((0, 0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
        let time: u64 = s.cells.iter().map(|c| c.ended_ms).sum();
        let _ = writeln!(
            x,
            "  <testsuite name=\"{}\" tests=\"{t}\" failures=\"{f}\" errors=\"{e}\" time=\"{}\">",
            attr(&format!("{} ({})", s.name, s.file)),
            seconds(time)
        );
        let _ = writeln!(
            x,
            "    <properties><property name=\"file\" value=\"{}\"/><property name=\"pinhole_version\" value=\"{}\"/></properties>",
            attr(&s.file),
            attr(&report.pinhole_version)
        );
        for c in &s.cells {
            cell(&mut x, c);
        }
        x.push_str("  </testsuite>\n");
    }
    x.push_str("</testsuites>\n");
    x
}

/// (testcases, failures, errors) of a cell.
fn counts(c: &CellReport) -> (u32, u32, u32) {
    let failures = c.checks.iter().filter(|k| !k.passed).count() as u32;
    let checks = c.checks.len() as u32;
    match (&c.error, checks) {
        (Some(_), _) => (checks + 1, failures, 1),
        (None, 0) => (1, u32::from(!c.passed), 0),
        (None, _) => (checks, failures, 0),
    }
}

fn cell(x: &mut String, c: &CellReport) {
    let class = attr(&c.name);
    let props = format!(
        "seed {} on the {} fabric; scenario time {} ms",
        c.seed, c.fabric, c.ended_ms
    );
    if let Some(e) = &c.error {
        let _ = writeln!(
            x,
            "    <testcase classname=\"{class}\" name=\"cell\" time=\"{}\">\n      <error message=\"{}\" type=\"cell-error\">{}</error>\n      <system-out>{}</system-out>\n    </testcase>",
            seconds(c.ended_ms),
            attr(e),
            text(e),
            text(&props)
        );
    } else if c.checks.is_empty() {
        let _ = writeln!(
            x,
            "    <testcase classname=\"{class}\" name=\"cell\" time=\"{}\">{}</testcase>",
            seconds(c.ended_ms),
            if c.passed {
                String::new()
            } else {
                "<failure message=\"the cell failed\" type=\"cell\"/>".to_string()
            }
        );
    }
    for k in &c.checks {
        check(x, &class, k, &props);
    }
}

fn check(x: &mut String, class: &str, k: &Check, props: &str) {
    let name = attr(&format!("{}.{}", k.step, k.measure));
    let measured = k
        .measured_text
        .clone()
        .or_else(|| k.measured.as_ref().map(|v| v.to_string()))
        .unwrap_or_else(|| "not measured".into());
    let detail = format!(
        "expected {}: {}, measured {measured}",
        k.measure, k.expected
    );
    if k.passed {
        let _ = writeln!(
            x,
            "    <testcase classname=\"{class}\" name=\"{name}\">\n      <system-out>{}</system-out>\n    </testcase>",
            text(&format!("{detail}\n{props}"))
        );
    } else {
        let message = k.message.clone().unwrap_or_else(|| detail.clone());
        let _ = writeln!(
            x,
            "    <testcase classname=\"{class}\" name=\"{name}\">\n      <failure message=\"{}\" type=\"expectation\">{}</failure>\n    </testcase>",
            attr(&message),
            text(&format!("{detail}\n{props}"))
        );
    }
}

fn seconds(ms: u64) -> String {
    format!("{}.{:03}", ms / 1000, ms % 1000)
}

/// Characters XML 1.0 allows (§2.2); others (control characters a program may print)
/// become U+FFFD.
fn allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Escape for an attribute value (also newlines, so they survive attribute
/// normalisation).
fn attr(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&apos;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            '\t' => o.push_str("&#9;"),
            c if allowed(c) => o.push(c),
            _ => o.push('\u{FFFD}'),
        }
    }
    o
}

/// Escape for element text.
fn text(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '\r' => o.push_str("&#13;"),
            c if allowed(c) => o.push(c),
            _ => o.push('\u{FFFD}'),
        }
    }
    o
}

#[cfg(test)]
pub(crate) mod test {
    use super::*;
    use crate::ScenarioReport;

    pub(crate) fn sample() -> Report {
        let mut r = Report::new("0.1.0");
        r.scenarios.push(ScenarioReport {
            file: "scenarios/a&b.yaml".into(),
            name: "punch <presets>".into(),
            cells: vec![
                CellReport {
                    name: "punch[nat.type=full-cone]".into(),
                    seed: 7,
                    fabric: "virtual".into(),
                    passed: false,
                    ended_ms: 1500,
                    checks: vec![
                        Check {
                            step: "h1".into(),
                            measure: "connected".into(),
                            expected: "true".into(),
                            measured: Some(serde_json::json!(true)),
                            measured_text: Some("true".into()),
                            passed: true,
                            message: None,
                        },
                        Check {
                            step: "run".into(),
                            measure: "stdout".into(),
                            expected: "contains \"ok\"".into(),
                            measured: Some(serde_json::json!("a\u{1}b\"<x>\n")),
                            measured_text: None,
                            passed: false,
                            message: Some("stdout lacks \"ok\" & more".into()),
                        },
                    ],
                    ..Default::default()
                },
                CellReport {
                    name: "punch[nat.type=symmetric]".into(),
                    error: Some("time limit of 20s reached".into()),
                    ..Default::default()
                },
                CellReport {
                    name: "nothing to check".into(),
                    passed: true,
                    ..Default::default()
                },
            ],
        });
        r.summarize();
        r
    }

    #[test]
    fn counts_and_escaping() {
        let x = to_junit(&sample());
        assert!(
            x.contains("<testsuites name=\"pinhole\" tests=\"4\" failures=\"1\" errors=\"1\">"),
            "{x}"
        );
        assert!(
            x.contains("name=\"punch &lt;presets&gt; (scenarios/a&amp;b.yaml)\""),
            "{x}"
        );
        assert!(
            x.contains("message=\"stdout lacks &quot;ok&quot; &amp; more\""),
            "{x}"
        );
        assert!(!x.contains('\u{1}'), "control characters are replaced");
        assert!(
            x.contains("<error message=\"time limit of 20s reached\""),
            "{x}"
        );
        assert!(
            x.contains("classname=\"nothing to check\" name=\"cell\""),
            "{x}"
        );
        assert_eq!(x, to_junit(&sample()), "deterministic");
    }
}
