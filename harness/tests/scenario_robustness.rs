//! Damaged scenarios never panic: every byte-level mutation of a good file either parses
//! or returns positioned errors inside the file.

use proptest::prelude::*;
use std::path::Path;

fn good() -> (String, std::path::PathBuf) {
    good_file("format-examples.yaml")
}

fn good_file(name: &str) -> (String, std::path::PathBuf) {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/good_scenarios")
        .join(name);
    (std::fs::read_to_string(&p).unwrap(), p)
}

/// `text` with `len` bytes at `at` replaced by `with`, if both ends are char boundaries.
fn mutate(text: &str, at: usize, len: usize, with: &str) -> Option<String> {
    let at = at.min(text.len());
    let end = (at + len).min(text.len());
    if !text.is_char_boundary(at) || !text.is_char_boundary(end) {
        return None;
    }
    Some(format!("{}{}{}", &text[..at], with, &text[end..]))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn mutations_never_panic(at in 0usize..8000, len in 0usize..40, with in "[ a-z0-9:,{}\\[\\]\\-\n.%]{0,12}") {
        let (text, path) = good();
        let at = at.min(text.len());
        let end = (at + len).min(text.len());
        if !text.is_char_boundary(at) || !text.is_char_boundary(end) {
            return Ok(());
        }
        let mutated = format!("{}{}{}", &text[..at], with, &text[end..]);
        let lines = mutated.lines().count() + 1;
        if let Err(errs) = harness::scenario::load_str(&mutated, &path) {
            for e in errs.errors() {
                if e.file == path {
                    prop_assert!(e.pos.line >= 1 && e.pos.line <= lines, "{e}");
                }
            }
        }
    }

    /// The same for the media relay's services and the `service` step (the
    /// cross-service checks: relay choice, secrets, port overlaps).
    #[test]
    fn media_relay_mutations_never_panic(at in 0usize..2600, len in 0usize..40, with in "[ a-z0-9:,{}\\[\\]\\-\n.%*]{0,12}") {
        let (text, path) = good_file("media-relay.yaml");
        let Some(mutated) = mutate(&text, at, len, &with) else {
            return Ok(());
        };
        let lines = mutated.lines().count() + 1;
        if let Err(errs) = harness::scenario::load_str(&mutated, &path) {
            for e in errs.errors() {
                prop_assert!(e.pos.line >= 1 && e.pos.line <= lines, "{e}");
            }
        }
    }

    #[test]
    fn durations_round_trip(ms in 0u64..100_000_000) {
        let d = std::time::Duration::from_millis(ms);
        let s = harness::scenario::values::format_duration(d);
        prop_assert_eq!(harness::scenario::values::parse_duration(&s).unwrap(), d, "{}", s);
    }
}
