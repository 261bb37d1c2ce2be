//! pinhole's run reports.
//!
//! One run = one folder: `report.json` ([`Report`], a stable, machine-readable schema),
//! `junit.xml` ([`junit`], one testcase per cell and measure) and `summary.md`
//! ([`markdown`]), and per cell its timed event log `events/CELL.jsonl` ([`events`]). The
//! HTML report (charts, SIP ladder) is not written yet.
//!
//! The report holds only what the run determined: scenario time (virtual on the virtual
//! fabric), measured values and verdicts — never wall-clock times or host paths that vary
//! between runs, so the same scenario and seed give a byte-identical `report.json`.
#![deny(missing_docs)]

pub mod events;
pub mod junit;
pub mod markdown;

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::Path;

/// Version of the `report.json` schema. Bumped only on incompatible changes.
pub const SCHEMA_VERSION: u32 = 1;

/// A whole run: every scenario file and cell.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`SCHEMA_VERSION`].
    pub schema: u32,
    /// The pinhole version that wrote it.
    pub pinhole_version: String,
    /// Totals.
    pub summary: Summary,
    /// Per scenario file.
    pub scenarios: Vec<ScenarioReport>,
}

/// Totals over a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Summary {
    /// Cells run.
    pub cells: u32,
    /// Cells whose every check passed.
    pub cells_passed: u32,
    /// Cells with a failed check or an error.
    pub cells_failed: u32,
    /// Checks that held.
    pub checks_passed: u32,
    /// Checks that did not.
    pub checks_failed: u32,
    /// Cells that ended with zero checks (they fail: nothing was checked).
    #[serde(default)]
    pub cells_without_checks: u32,
}

/// One scenario file.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ScenarioReport {
    /// The file as given on the command line.
    pub file: String,
    /// The scenario's `name`.
    pub name: String,
    /// Its cells (one without a matrix).
    pub cells: Vec<CellReport>,
}

/// One cell of a scenario.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CellReport {
    /// `NAME[key=value,…]`.
    pub name: String,
    /// The cell's seed.
    pub seed: u64,
    /// `virtual` or `kernel`.
    pub fabric: String,
    /// Every check held and nothing went wrong.
    pub passed: bool,
    /// Set when the cell could not be run to the end (time limit, agent failure).
    pub error: Option<String>,
    /// Scenario time when the cell ended, in milliseconds.
    pub ended_ms: u64,
    /// What each step did.
    pub steps: Vec<StepReport>,
    /// Every expectation measure, judged.
    pub checks: Vec<Check>,
    /// Packet drops by place and reason.
    pub drops: Vec<DropCount>,
    /// Per NAT: counters at the end of the cell.
    pub nats: BTreeMap<String, BTreeMap<String, u64>>,
    /// The cell's timed event log, relative to the report folder (`events/NAME.jsonl`);
    /// set by [`Report::summarize`] when the cell has events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_file: Option<String>,
    /// Records in that log.
    #[serde(default)]
    pub event_count: u64,
    /// The log itself, written to `events_file` by [`Report::write_to_dir`] (not part of
    /// `report.json`).
    #[serde(skip)]
    pub events: Vec<events::Event>,
}

/// One step's run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// The step's name (generated `step-N` when it has none).
    pub name: String,
    /// `wait`, `link`, `nat`, `punch`, `probe`, …
    pub kind: String,
    /// Scenario time it started, ms.
    pub started_ms: u64,
    /// Scenario time it was done, ms.
    pub ended_ms: u64,
    /// What it measured, by measure name.
    pub results: BTreeMap<String, serde_json::Value>,
}

/// One measure of one expectation.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Check {
    /// The step the expectation names.
    pub step: String,
    /// The measure (`connected`, `mapping`, …).
    pub measure: String,
    /// The expectation as written (`"< 3%"`, `endpoint-independent`).
    pub expected: String,
    /// What was measured, absent if the step did not produce it. Durations are in
    /// milliseconds, percentages as fractions, behaviours as their scenario keywords.
    pub measured: Option<serde_json::Value>,
    /// The measurement as a person reads it, in the expectation's units (`19.687s`).
    pub measured_text: Option<String>,
    /// Whether it held.
    pub passed: bool,
    /// Why it failed, in words.
    pub message: Option<String>,
}

/// Drops counted at one place for one reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCount {
    /// Host, NAT, firewall, link or network name.
    pub at: String,
    /// The drop reason, snake_case (`no_mapping`, `filtered`, `link_loss`, …).
    pub reason: String,
    /// How many.
    pub count: u64,
}

impl Report {
    /// An empty report for this pinhole version.
    pub fn new(pinhole_version: &str) -> Self {
        Report {
            schema: SCHEMA_VERSION,
            pinhole_version: pinhole_version.to_string(),
            ..Default::default()
        }
    }

    /// Recompute [`Report::summary`] from the cells, and name each cell's event log file
    /// (`events/` + [`events::file_name`] of the cell, with `-2`, `-3`, … when two cells
    /// share a name).
    pub fn summarize(&mut self) {
        let mut used = std::collections::BTreeSet::new();
        for c in self.scenarios.iter_mut().flat_map(|s| &mut s.cells) {
            c.event_count = c.events.len() as u64;
            c.events_file = None;
            if c.events.is_empty() {
                continue;
            }
            let base = events::file_name(&c.name);
            let mut name = base.clone();
            let mut n = 1;
            while !used.insert(name.clone()) {
                n += 1;
                name = format!("{}-{n}.jsonl", base.trim_end_matches(".jsonl"));
            }
            c.events_file = Some(format!("events/{name}"));
        }
        let mut s = Summary::default();
        for c in self.scenarios.iter().flat_map(|s| &s.cells) {
            s.cells += 1;
            if c.checks.is_empty() {
                s.cells_without_checks += 1;
            }
            if c.passed {
                s.cells_passed += 1;
            } else {
                s.cells_failed += 1;
            }
            for k in &c.checks {
                if k.passed {
                    s.checks_passed += 1;
                } else {
                    s.checks_failed += 1;
                }
            }
        }
        self.summary = s;
    }

    /// The report as pretty JSON (stable key order: struct order, maps sorted).
    pub fn to_json(&self) -> String {
        // Serialising plain data with string keys cannot fail.
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Write `report.json`, `junit.xml`, `summary.md` and the cells' event logs (at their
    /// `events_file`, see [`Report::summarize`]) into `dir` (created if missing), each
    /// atomically: a reader never sees a half-written file.
    pub fn write_to_dir(&self, dir: &Path) -> io::Result<()> {
        std::fs::create_dir_all(dir)?;
        for c in self.scenarios.iter().flat_map(|s| &s.cells) {
            let Some(rel) = &c.events_file else { continue };
            let path = dir.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let tmp = path.with_extension("jsonl.tmp");
            std::fs::write(&tmp, events::to_jsonl(&c.events))?;
            std::fs::rename(&tmp, &path)?;
        }
        // Logs of an earlier run into the same folder that this run has no cell for would
        // read as this run's: remove them (only `*.jsonl` files in `events/`).
        let written: std::collections::BTreeSet<_> = self
            .scenarios
            .iter()
            .flat_map(|s| &s.cells)
            .filter_map(|c| c.events_file.as_ref().map(|f| dir.join(f)))
            .collect();
        if let Ok(entries) = std::fs::read_dir(dir.join("events")) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "jsonl") && !written.contains(&p) {
                    std::fs::remove_file(&p)?;
                }
            }
        }
        for (name, text) in [
            ("report.json", self.to_json()),
            ("junit.xml", junit::to_junit(self)),
            ("summary.md", markdown::to_markdown(self)),
        ] {
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, text)?;
            std::fs::rename(&tmp, dir.join(name))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn summary_counts_cells_and_checks() {
        let mut r = Report::new("0.0.0");
        r.scenarios.push(ScenarioReport {
            file: "a.yaml".into(),
            name: "a".into(),
            cells: vec![
                CellReport {
                    passed: true,
                    checks: vec![Check {
                        passed: true,
                        ..Default::default()
                    }],
                    ..Default::default()
                },
                CellReport {
                    passed: false,
                    checks: vec![
                        Check {
                            passed: true,
                            ..Default::default()
                        },
                        Check {
                            passed: false,
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                },
            ],
        });
        r.summarize();
        assert_eq!(
            r.summary,
            Summary {
                cells: 2,
                cells_passed: 1,
                cells_failed: 1,
                checks_passed: 2,
                checks_failed: 1,
                cells_without_checks: 0,
            }
        );
        let back: Report = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn write_is_atomic_and_complete() {
        let dir = std::env::temp_dir().join(format!("pinhole-report-test-{}", std::process::id()));
        let r = Report::new("0.0.0");
        r.write_to_dir(&dir).unwrap();
        let text = std::fs::read_to_string(dir.join("report.json")).unwrap();
        assert_eq!(text, r.to_json());
        assert_eq!(
            std::fs::read_to_string(dir.join("junit.xml")).unwrap(),
            junit::to_junit(&r)
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("summary.md")).unwrap(),
            markdown::to_markdown(&r)
        );
        for tmp in [".report.json.tmp", ".junit.xml.tmp", ".summary.md.tmp"] {
            assert!(!dir.join(tmp).exists());
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
