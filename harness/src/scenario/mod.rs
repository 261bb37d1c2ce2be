//! The scenario format (shared/SCENARIO-FORMAT.md, version 1): parsing with exact
//! `file:line:col` errors, validation, matrix expansion, `when:` and seeds.
//!
//! ```text
//! text ──yaml::parse──▶ positioned Node tree ──parse──▶ Spec (typed, defaults applied)
//!                              │                          ▲
//!                              └─ matrix: per cell, replace values in the tree, then parse
//! ```
//!
//! - [`load`] / [`load_str`] read a scenario, check the whole format (every matrix cell
//!   included) and return a [`Scenario`] or every error found ([`ScenarioErrors`]; print it
//!   with `Display`: one `file:line:col: message` per error, plus `help:` lines).
//! - [`Scenario::cells`] expands the matrix into [`Cell`]s: name, seed and the resolved
//!   [`Spec`] with only the expectations whose `when:` holds.
//! - [`check_available`] reports what a runner does not implement yet.
//!
//! Seeds: the scenario seed is `seed:` or the first 8 bytes (little-endian) of
//! SHA-256(name). With a matrix, a cell's seed is the first 8 bytes (LE) of SHA-256 of the
//! scenario seed in decimal followed by the cell name. Without a matrix the single cell
//! uses the scenario seed itself, so `seed: 7` really runs with seed 7.

mod available;
mod error;
mod files;
pub mod matrix;
pub mod model;
mod parse;
mod parse_media;
mod parse_run;
mod parse_services;
mod parse_topology;
mod validate;
pub mod values;
pub mod yaml;

pub use available::{Availability, check_available};
pub use error::{Error, Pos, ScenarioErrors};
pub use matrix::Matrix;
pub use model::*;
pub use values::{Comparison, Op, PortRange, Rate, UaPattern};

use error::Errors;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use yaml::Node;

/// The most cells a matrix may expand to.
pub const MAX_CELLS: usize = 4096;

/// The first 8 bytes (little-endian) of SHA-256(`text`).
fn sha_seed(text: &str) -> u64 {
    let d = Sha256::digest(text.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&d[..8]);
    u64::from_le_bytes(b)
}

/// The default scenario seed: the first 8 bytes (LE) of SHA-256(`name`).
pub fn name_seed(name: &str) -> u64 {
    sha_seed(name)
}

/// A matrix cell's seed: the first 8 bytes (LE) of SHA-256(`seed` in decimal + `cell_name`).
pub fn cell_seed(seed: u64, cell_name: &str) -> u64 {
    sha_seed(&format!("{seed}{cell_name}"))
}

/// A loaded, valid scenario.
#[derive(Clone, Debug)]
pub struct Scenario {
    /// The file it was read from (as given).
    pub file: PathBuf,
    /// The scenario as written (before matrix substitution), resolved.
    pub spec: Spec,
    /// The matrix, if any.
    pub matrix: Option<Matrix>,
    tree: Node,
}

/// One cell of a scenario: what one run executes.
#[derive(Clone, Debug)]
pub struct Cell {
    /// `NAME[key=value,…]` (keys in matrix order), or `NAME` without a matrix.
    pub name: String,
    /// The cell's seed (see the module docs).
    pub seed: u64,
    /// The matrix values of this cell, (key, value as written), in matrix order.
    pub values: Vec<(String, String)>,
    /// The resolved scenario for this cell; `expect` holds only the expectations whose
    /// `when:` holds, and probe steps measure the lifetime when an expectation asks.
    pub spec: Spec,
}

/// Reads and checks a scenario file.
///
/// # Errors
/// Every problem found, positioned.
pub fn load(path: &Path) -> Result<Scenario, ScenarioErrors> {
    let too_big = std::fs::metadata(path).is_ok_and(|m| m.len() > yaml::MAX_BYTES as u64);
    if too_big {
        return Err(Error::new(
            path,
            Pos::new(1, 1),
            format!("the file is larger than {} bytes", yaml::MAX_BYTES),
        )
        .into());
    }
    let text = std::fs::read_to_string(path).map_err(|e| {
        ScenarioErrors::from(
            Error::new(
                path,
                Pos::new(1, 1),
                format!("cannot read the scenario: {e}"),
            )
            .help("check the path; scenario files are UTF-8 YAML"),
        )
    })?;
    load_str(&text, path)
}

/// Parses and checks scenario text; `file` names it in errors and anchors relative paths
/// (NAT profiles) to its folder.
///
/// # Errors
/// Every problem found, positioned.
pub fn load_str(text: &str, file: impl AsRef<Path>) -> Result<Scenario, ScenarioErrors> {
    let file = file.as_ref();
    let tree = yaml::parse(text, file)?;
    let mut errs = Errors::new(file);
    let spec = build(&tree, file, &mut errs);
    let matrix = matrix::parse(&tree, &mut errs);
    if let Some(spec) = &spec {
        check_when_paths(&tree, spec, &mut errs);
    }
    let spec = match spec {
        Some(s) if errs.is_empty() => s,
        _ => {
            let mut list = errs.list;
            if list.is_empty() {
                list.push(Error::new(
                    file,
                    Pos::new(1, 1),
                    "the scenario is not valid",
                ));
            }
            error::sort_dedup(&mut list);
            return Err(ScenarioErrors(list));
        }
    };
    let scenario = Scenario {
        file: file.to_path_buf(),
        spec,
        matrix,
        tree,
    };
    // Check every cell now: a value that only a matrix cell brings in must fail `validate`.
    scenario.cells()?;
    Ok(scenario)
}

/// Parses and validates one document tree (the scenario, or a cell's tree).
fn build(tree: &Node, file: &Path, errs: &mut Errors) -> Option<Spec> {
    let mut p = parse::Parser::new(file);
    let mut spec = p.root(tree)?;
    validate::topology(&mut p, &mut spec);
    files::check(&p.files, &mut p.e);
    errs.list.append(&mut p.e.list);
    Some(spec)
}

fn check_when_paths(tree: &Node, spec: &Spec, errs: &mut Errors) {
    let _ = spec;
    for x in tree
        .get("expect")
        .and_then(|e| e.value.as_seq())
        .unwrap_or(&[])
    {
        let Some(w) = x.get("when").and_then(|w| w.value.as_map()) else {
            continue;
        };
        for c in w {
            if let Err(m) = matrix::resolve(tree, &c.key.text, true) {
                errs.help(
                    c.key.pos,
                    format!("`when` path `{}` does not resolve: {m}", c.key.text),
                    "a path is dotted from the top (`links.alice.loss`) or from a unique name (`nat-a.type`)",
                );
            }
        }
    }
}

/// The value a NAT axis (or `type`) has in `spec` when the document does not write it.
fn nat_default_text(spec: &Spec, path: &[matrix::Seg]) -> Option<String> {
    use matrix::Seg;
    let [Seg::Key(s), Seg::Key(name), Seg::Key(axis), rest @ ..] = path else {
        return None;
    };
    if s != "nats" {
        return None;
    }
    let n = spec.topology.nat(name)?;
    let c = &n.config;
    let t = |d: std::time::Duration| values::format_duration(d);
    Some(match (axis.as_str(), rest) {
        ("type", []) if n.profile.is_none() => {
            n.preset.unwrap_or(Preset::PortRestricted).to_string()
        }
        ("mapping", []) => c.mapping.to_string(),
        ("filtering", []) => c.filtering.to_string(),
        ("port_allocation", []) => c.port_allocation.to_string(),
        ("port_parity", []) => c.port_parity.to_string(),
        ("port_range", []) => c.port_range.to_string(),
        ("pooling", []) => c.pooling.to_string(),
        ("hairpinning", []) => c.hairpinning.to_string(),
        ("refresh", []) => c.refresh.to_string(),
        ("max_bindings", []) => c.max_bindings.to_string(),
        ("unsolicited", []) => c.unsolicited.to_string(),
        ("fragments", []) => c.fragments.to_string(),
        ("sip_alg", []) => c.sip_alg.to_string(),
        ("timeouts", [Seg::Key(k)]) => match k.as_str() {
            "udp" => t(c.timeouts.udp),
            "tcp_established" => t(c.timeouts.tcp_established),
            "tcp_transitory" => t(c.timeouts.tcp_transitory),
            "icmp" => t(c.timeouts.icmp),
            _ => return None,
        },
        _ => return None,
    })
}

/// Whether `when` holds in the cell whose document is `tree` and model is `spec`: every
/// path has the value, compared by meaning (`0%` = `0.0%`, `1s` = `1000ms`). A path the
/// document does not write compares against the resolved value for NAT axes and `type`
/// (defaults, preset, profile); otherwise it does not hold.
pub fn when_holds(tree: &Node, spec: &Spec, when: &[When]) -> bool {
    when.iter().all(|w| {
        when_value(tree, spec, &w.path).is_some_and(|v| values::same_meaning(&v, &w.value))
    })
}

/// The value a `when:` path has in a cell: as written, or, for NAT axes and `type` the
/// document does not write, the resolved default; `None` when it has none there.
fn when_value(tree: &Node, spec: &Spec, path: &str) -> Option<String> {
    let path = matrix::resolve(tree, path, true).ok()?;
    match matrix::get(tree, &path) {
        Some(n) => n.as_scalar().map(|s| s.text.clone()),
        None => nat_default_text(spec, &path),
    }
}

/// What the cells of a scenario say of its `when:` conditions, to refuse one that holds in
/// no cell (a value typo, a key with no value anywhere): an expectation that silently never
/// applies would let a cell pass with nothing checked.
#[derive(Default)]
struct WhenTally {
    /// Per expectation index: whether it held in some cell, and per condition the values
    /// its path took.
    seen: BTreeMap<usize, (bool, Vec<std::collections::BTreeSet<String>>)>,
}

impl WhenTally {
    fn add(&mut self, tree: &Node, spec: &Spec) {
        for x in spec.expect.iter().filter(|x| !x.when.is_empty()) {
            let (held, values) = self
                .seen
                .entry(x.index)
                .or_insert_with(|| (false, vec![Default::default(); x.when.len()]));
            *held |= when_holds(tree, spec, &x.when);
            for (w, vals) in x.when.iter().zip(values.iter_mut()) {
                if let Some(v) = when_value(tree, spec, &w.path) {
                    vals.insert(v);
                }
            }
        }
    }

    /// An error per `when:` that held in no cell, at its first condition.
    fn errors(&self, spec: &Spec, errs: &mut Errors) {
        for x in &spec.expect {
            let Some((false, values)) = self.seen.get(&x.index) else {
                continue;
            };
            let why: Vec<String> = x
                .when
                .iter()
                .zip(values)
                .map(|(w, vals)| {
                    if vals.is_empty() {
                        format!(
                            "`{}` is set in no cell and has no default (a key the format does \
                             not define there, or one the scenario never writes)",
                            w.path
                        )
                    } else {
                        let list: Vec<&str> = vals.iter().map(String::as_str).collect();
                        format!("`{}` is {} across the cells", w.path, list.join(" | "))
                    }
                })
                .collect();
            let pos = x.when.first().map_or(x.pos, |w| w.pos);
            errs.help(
                pos,
                format!(
                    "this `when:` holds in no cell, so the expectation would never be checked: {}",
                    why.join("; ")
                ),
                "fix the value or the key (values compare by meaning: `1s` = `1000ms`), \
                 or remove the expectation",
            );
        }
    }
}

impl Scenario {
    /// The document tree as written.
    pub fn tree(&self) -> &Node {
        &self.tree
    }

    /// What `features` lacks to run every cell of this scenario, with `fabric` (the CLI's
    /// `--fabric`) replacing the file's fabric when given. One error per place, in file
    /// order; empty when the runner can run it all. See [`check_available`].
    ///
    /// # Errors
    /// Matrix expansion errors (see [`Scenario::cells`]).
    pub fn unavailable(
        &self,
        fabric: Option<Fabric>,
        features: &Availability,
    ) -> Result<Vec<Error>, ScenarioErrors> {
        let mut out = Vec::new();
        for mut cell in self.cells()? {
            if let Some(f) = fabric {
                cell.spec.fabric = f;
            }
            out.extend(check_available(&cell.spec, &self.file, features));
        }
        error::sort_dedup(&mut out);
        Ok(out)
    }

    /// The cells to run: one per matrix combination not excluded, in matrix order (first
    /// key slowest); one cell named after the scenario without a matrix.
    ///
    /// # Errors
    /// A cell whose substituted values are invalid (positioned on the matrix value), or a
    /// matrix larger than [`MAX_CELLS`].
    pub fn cells(&self) -> Result<Vec<Cell>, ScenarioErrors> {
        let Some(m) = &self.matrix else {
            let mut spec = self.spec.clone();
            let mut tally = WhenTally::default();
            tally.add(&self.tree, &spec);
            let mut errs = Errors::new(&self.file);
            tally.errors(&self.spec, &mut errs);
            if !errs.is_empty() {
                return errs.finish(Vec::new());
            }
            finish_cell(&self.tree, &mut spec);
            return Ok(vec![Cell {
                name: self.spec.name.clone(),
                seed: self.spec.seed,
                values: Vec::new(),
                spec,
            }]);
        };
        let combos = m.combinations();
        let mut errs = Errors::new(&self.file);
        if combos.len() > MAX_CELLS {
            let pos = self
                .tree
                .get("matrix")
                .map(|e| e.key.pos)
                .unwrap_or_default();
            errs.help(
                pos,
                format!(
                    "the matrix expands to {} cells; at most {MAX_CELLS} are run",
                    combos.len()
                ),
                "use fewer values or `exclude:`",
            );
            return errs.finish(Vec::new());
        }
        let mut cells = Vec::with_capacity(combos.len());
        let mut tally = WhenTally::default();
        for combo in combos {
            let mut tree = self.tree.clone();
            let mut values = Vec::new();
            for (ki, vi) in combo.iter().enumerate() {
                let k = &m.keys[ki];
                let v = &k.values[*vi];
                matrix::set(&mut tree, &k.path, v.clone(), k.pos);
                values.push((k.key.clone(), v.render()));
            }
            let parts: Vec<String> = values.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let name = format!("{}[{}]", self.spec.name, parts.join(","));
            let before = errs.list.len();
            let Some(mut spec) = build(&tree, &self.file, &mut errs) else {
                continue;
            };
            if errs.list.len() > before {
                for e in &mut errs.list[before..] {
                    if e.help.is_none() {
                        e.help = Some(format!("in matrix cell {name}"));
                    }
                }
                continue;
            }
            tally.add(&tree, &spec);
            finish_cell(&tree, &mut spec);
            let seed = cell_seed(spec.seed, &name);
            cells.push(Cell {
                name,
                seed,
                values,
                spec,
            });
        }
        if errs.is_empty() {
            tally.errors(&self.spec, &mut errs);
        }
        errs.finish(cells)
    }
}

/// Keeps the expectations whose `when:` holds; turns on lifetime measurement where asked.
fn finish_cell(tree: &Node, spec: &mut Spec) {
    let mut kept = Vec::new();
    for x in std::mem::take(&mut spec.expect) {
        if when_holds(tree, spec, &x.when) {
            kept.push(x);
        }
    }
    spec.expect = kept;
    let wants: Vec<String> = spec
        .expect
        .iter()
        .filter(|x| {
            x.checks
                .iter()
                .any(|c| matches!(c.measure, Measure::BindingLifetime(_)))
        })
        .map(|x| x.step.clone())
        .collect();
    for s in &mut spec.steps {
        if let (StepKind::Probe { lifetime, .. }, Some(n)) = (&mut s.kind, &s.name)
            && wants.contains(n)
        {
            *lifetime = true;
        }
    }
}
