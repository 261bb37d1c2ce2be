//! Fuzz body for `pinhole-harness`: the scenario loader. Compiled into the fuzz crate
//! (`fuzz/src/lib.rs`) and into the replay test `harness/tests/fuzz_replay.rs`.

use harness::scenario;
use std::path::Path;

/// The name the text is loaded under (a relative path: any NAT profile it names is looked
/// up relative to the current directory, which holds none).
const FILE: &str = "fuzz.yaml";

/// Lines of `text` as YAML counts them (`\n`, `\r\n` or `\r` end a line).
fn yaml_lines(text: &str) -> Vec<&str> {
    text.split('\n')
        .flat_map(|l| l.strip_suffix('\r').unwrap_or(l).split('\r'))
        .collect()
}

/// `scenario::load_str` on arbitrary UTF-8 (invalid UTF-8 is replaced, as a reader would).
///
/// Invariants: nothing panics; an error names at least one problem; each problem in this
/// file has a position inside the text (1-based line within its lines, column at most one
/// past the end of that line); a scenario that loads expands to its cells.
pub fn scenario_yaml(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    match scenario::load_str(&text, FILE) {
        Ok(s) => {
            let cells = s.cells().expect("load_str already checked every cell");
            assert!(!cells.is_empty(), "a scenario with no cell");
        }
        Err(errs) => {
            assert!(!errs.errors().is_empty(), "an error without a problem");
            let _ = errs.to_string();
            let lines = yaml_lines(&text);
            for e in errs.errors() {
                if e.file != Path::new(FILE) {
                    continue; // a NAT profile's error, positioned in that file
                }
                let (line, col) = (e.pos.line, e.pos.col);
                assert!(
                    line >= 1 && col >= 1,
                    "position {line}:{col} is not 1-based: {e}"
                );
                assert!(
                    line <= lines.len(),
                    "line {line} past the end ({} lines): {e}",
                    lines.len()
                );
                let width = lines[line - 1].chars().count();
                assert!(
                    col <= width + 1,
                    "column {col} past the end of line {line} ({width} chars): {e}"
                );
            }
        }
    }
}
