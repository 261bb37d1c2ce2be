//! `summary.md`: the run for people, in Markdown (a CI job summary, a pull-request
//! comment): totals, then per scenario file a table of cells, then every failed check
//! with its reason. No wall-clock time, like `report.json`.

use crate::Report;
use std::fmt::Write;

/// The report as Markdown.
pub fn to_markdown(report: &Report) -> String {
    let s = &report.summary;
    let mut m = String::new();
    let verdict = if s.cells_failed == 0 {
        "passed"
    } else {
        "FAILED"
    };
    let _ = writeln!(
        m,
        "# pinhole run {verdict}\n\n{} cells: {} passed, {} failed{} ({} checks: {} held, {} failed). pinhole {}.\n",
        s.cells,
        s.cells_passed,
        s.cells_failed,
        if s.cells_without_checks > 0 {
            format!(", {} with zero checks", s.cells_without_checks)
        } else {
            String::new()
        },
        s.checks_passed + s.checks_failed,
        s.checks_passed,
        s.checks_failed,
        cell_text(&report.pinhole_version)
    );
    for sc in &report.scenarios {
        let _ = writeln!(
            m,
            "## {} (`{}`)\n\n| cell | result | checks | fabric | seed |\n|---|---|---|---|---|",
            cell_text(&sc.name),
            sc.file.replace('`', "'")
        );
        for c in &sc.cells {
            let held = c.checks.iter().filter(|k| k.passed).count();
            let result = match (&c.error, c.passed) {
                (Some(_), _) => "**ERROR**",
                (None, true) => "pass",
                (None, false) => "**FAIL**",
            };
            let _ = writeln!(
                m,
                "| {} | {result} | {held}/{} | {} | {} |",
                cell_text(&c.name),
                c.checks.len(),
                c.fabric,
                c.seed
            );
        }
        m.push('\n');
        let failed: Vec<String> = sc
            .cells
            .iter()
            .flat_map(|c| {
                let error = c
                    .error
                    .iter()
                    .map(move |e| format!("- `{}`: {}", code(&c.name), line(e)));
                let checks = c.checks.iter().filter(|k| !k.passed).map(move |k| {
                    format!(
                        "- `{}` {}.{} (expected {}): {}",
                        code(&c.name),
                        k.step,
                        k.measure,
                        line(&k.expected),
                        line(k.message.as_deref().unwrap_or("failed"))
                    )
                });
                error.chain(checks)
            })
            .collect();
        if !failed.is_empty() {
            let _ = writeln!(m, "Failures:\n\n{}\n", failed.join("\n"));
        }
    }
    m
}

/// Text safe inside a table cell: no pipes or line breaks.
fn cell_text(s: &str) -> String {
    line(s).replace('|', "\\|")
}

/// One line.
fn line(s: &str) -> String {
    s.split(['\n', '\r'])
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Text inside inline code: backticks would end it.
fn code(s: &str) -> String {
    line(s).replace('`', "'")
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn totals_tables_and_failures() {
        let r = crate::junit::test::sample();
        let m = to_markdown(&r);
        assert!(m.starts_with("# pinhole run FAILED\n"), "{m}");
        assert!(
            m.contains(
                "3 cells: 1 passed, 2 failed, 2 with zero checks (2 checks: 1 held, 1 failed)"
            ),
            "{m}"
        );
        assert!(
            m.contains("| punch[nat.type=full-cone] | **FAIL** | 1/2 | virtual | 7 |"),
            "{m}"
        );
        assert!(
            m.contains("| punch[nat.type=symmetric] | **ERROR** | 0/0 |"),
            "{m}"
        );
        assert!(m.contains("- `punch[nat.type=full-cone]` run.stdout (expected contains \"ok\"): stdout lacks \"ok\" & more"), "{m}");
        assert!(
            m.contains("- `punch[nat.type=symmetric]`: time limit of 20s reached"),
            "{m}"
        );
    }
}
