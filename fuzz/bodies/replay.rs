//! Replays a fuzz target's committed inputs as an ordinary test: every file in
//! `fuzz/corpus/TARGET/` (which must exist and hold at least one file, so that the test
//! cannot silently check nothing) and in `fuzz/regressions/TARGET/` (crash inputs, if any).

use std::path::{Path, PathBuf};

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_file())
        .filter(|p| {
            !p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
        })
        .collect();
    v.sort();
    v
}

/// Run `body` on every committed input of `target`; `manifest_dir` is the calling crate's
/// `CARGO_MANIFEST_DIR` (the fuzz crate is its sibling).
pub fn replay(manifest_dir: &str, target: &str, body: fn(&[u8])) {
    let fuzz = Path::new(manifest_dir).join("../fuzz");
    let corpus = fuzz.join("corpus").join(target);
    let mut inputs = files(&corpus);
    assert!(
        !inputs.is_empty(),
        "{} holds no inputs: the replay would test nothing",
        corpus.display()
    );
    let regressions = fuzz.join("regressions").join(target);
    if regressions.exists() {
        inputs.extend(files(&regressions));
    }
    for path in &inputs {
        let data = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if let Err(panic) = std::panic::catch_unwind(|| body(&data)) {
            eprintln!("fuzz target {target} fails on {}", path.display());
            std::panic::resume_unwind(panic);
        }
    }
    eprintln!("{target}: {} inputs replayed", inputs.len());
}
