//! Matrix keys: dotted paths into the node tree, their expansion into cells, `exclude:`,
//! and `when:` conditions.
//!
//! A path starts at a top-level key (`links.alice.loss`) or at a unique name: a network,
//! NAT, firewall or host (`nat-a.type` = `nats.nat-a.type`) or a named step (`c1.media.duration`
//! = the `media.duration` of the step named `c1`). Mapping keys that contain dots
//! (`links.nat-a.inside.loss`) are matched longest first; sequence items are addressed by
//! index (`steps.0.call.from`). The last key of a path may be missing from the document:
//! the matrix then adds it.

use super::error::{Errors, Pos};
use super::parse::ROOT_KEYS;
use super::values::same_meaning;
use super::yaml::{Entry, Key, Node, Value};

/// One step of a resolved path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// One matrix dimension.
#[derive(Clone, Debug, PartialEq)]
pub struct MatrixKey {
    /// The key as written (`nat-a.type`).
    pub key: String,
    /// Where the key is.
    pub pos: Pos,
    /// The absolute path it resolves to.
    pub path: Vec<Seg>,
    /// The values, in order.
    pub values: Vec<Node>,
}

/// `matrix:` — dimensions in file order and the excluded combinations.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    /// The dimensions.
    pub keys: Vec<MatrixKey>,
    /// Each exclusion: (dimension index, value) pairs that must all match.
    pub exclude: Vec<Vec<(usize, Node)>>,
}

/// Finds the entry of `entries` matching `segs[i..i+k]` joined by dots, longest first.
fn match_key(entries: &[Entry], segs: &[&str], i: usize) -> Option<(usize, usize)> {
    for k in (1..=segs.len() - i).rev() {
        let joined = segs[i..i + k].join(".");
        if let Some(idx) = entries.iter().position(|e| e.key.text == joined) {
            return Some((idx, k));
        }
    }
    None
}

/// Resolves a dotted path against `root`. With `allow_new_last`, the last key may be
/// missing from a mapping. Returns the absolute path.
///
/// # Errors
/// Why the path does not resolve.
pub fn resolve(root: &Node, path: &str, allow_new_last: bool) -> Result<Vec<Seg>, String> {
    let segs: Vec<&str> = path.split('.').collect();
    if segs.iter().any(|s| s.is_empty()) {
        return Err(format!("`{path}` is not a dotted path like `nat-a.type`"));
    }
    let Some(entries) = root.as_map() else {
        return Err("the document is not a mapping".into());
    };
    let mut out = Vec::new();
    let mut node: &Node;
    let mut i;
    if ROOT_KEYS.contains(&segs[0]) {
        match entries.iter().find(|e| e.key.text == segs[0]) {
            Some(e) => {
                node = &e.value;
                out.push(Seg::Key(segs[0].to_string()));
                i = 1;
            }
            None if allow_new_last && segs.len() == 1 => {
                return Ok(vec![Seg::Key(segs[0].to_string())]);
            }
            None => return Err(format!("the scenario has no `{}`", segs[0])),
        }
    } else {
        let mut found = None;
        for section in ["networks", "nats", "firewalls", "hosts"] {
            if let Some(m) = root.get(section).and_then(|e| e.value.as_map())
                && let Some(e) = m.iter().find(|e| e.key.text == segs[0])
            {
                found = Some((
                    vec![Seg::Key(section.into()), Seg::Key(segs[0].into())],
                    &e.value,
                ));
                break;
            }
        }
        if found.is_none()
            && let Some(steps) = root.get("steps").and_then(|e| e.value.as_seq())
        {
            for (idx, s) in steps.iter().enumerate() {
                let Some(first) = s.as_map().and_then(|m| m.first()) else {
                    continue;
                };
                let named = first
                    .value
                    .get("name")
                    .and_then(|n| n.value.as_scalar())
                    .is_some_and(|n| n.text == segs[0]);
                if named {
                    found = Some((
                        vec![
                            Seg::Key("steps".into()),
                            Seg::Index(idx),
                            Seg::Key(first.key.text.clone()),
                        ],
                        &first.value,
                    ));
                    break;
                }
            }
        }
        let Some((p, n)) = found else {
            return Err(format!(
                "`{}` is neither a top-level key nor the name of a network, NAT, firewall, host or step",
                segs[0]
            ));
        };
        out = p;
        node = n;
        i = 1;
    }
    while i < segs.len() {
        match &node.value {
            Value::Map(entries) => match match_key(entries, &segs, i) {
                Some((idx, k)) => {
                    out.push(Seg::Key(entries[idx].key.text.clone()));
                    node = &entries[idx].value;
                    i += k;
                }
                None if allow_new_last && i == segs.len() - 1 => {
                    out.push(Seg::Key(segs[i].to_string()));
                    return Ok(out);
                }
                None => {
                    let keys: Vec<&str> = entries.iter().map(|e| e.key.text.as_str()).collect();
                    return Err(format!(
                        "`{}` has no key `{}` (it has: {})",
                        segs[..i].join("."),
                        segs[i],
                        keys.join(", ")
                    ));
                }
            },
            Value::Seq(items) => {
                let idx: usize = segs[i].parse().map_err(|_| {
                    format!(
                        "`{}` is a sequence; address its items by number",
                        segs[..i].join(".")
                    )
                })?;
                let Some(n) = items.get(idx) else {
                    return Err(format!(
                        "`{}` has {} items; index {idx} is out of range",
                        segs[..i].join("."),
                        items.len()
                    ));
                };
                out.push(Seg::Index(idx));
                node = n;
                i += 1;
            }
            Value::Scalar(_) => {
                return Err(format!(
                    "`{}` is a single value; there is nothing inside it",
                    segs[..i].join(".")
                ));
            }
        }
    }
    Ok(out)
}

/// The node at an absolute path, if present.
pub fn get<'n>(root: &'n Node, path: &[Seg]) -> Option<&'n Node> {
    let mut n = root;
    for s in path {
        n = match (s, &n.value) {
            (Seg::Key(k), Value::Map(m)) => &m.iter().find(|e| &e.key.text == k)?.value,
            (Seg::Index(i), Value::Seq(v)) => v.get(*i)?,
            _ => return None,
        };
    }
    Some(n)
}

/// Replaces (or adds) the value at `path`; `key_pos` positions an added key.
pub(crate) fn set(root: &mut Node, path: &[Seg], value: Node, key_pos: Pos) {
    let Some((last, init)) = path.split_last() else {
        return;
    };
    let mut n = root;
    for s in init {
        n = match (s, &mut n.value) {
            (Seg::Key(k), Value::Map(m)) => match m.iter_mut().find(|e| &e.key.text == k) {
                Some(e) => &mut e.value,
                None => return,
            },
            (Seg::Index(i), Value::Seq(v)) => match v.get_mut(*i) {
                Some(x) => x,
                None => return,
            },
            _ => return,
        };
    }
    match (last, &mut n.value) {
        (Seg::Key(k), Value::Map(m)) => match m.iter_mut().find(|e| &e.key.text == k) {
            Some(e) => e.value = value,
            None => m.push(Entry {
                key: Key {
                    text: k.clone(),
                    pos: key_pos,
                },
                value,
            }),
        },
        (Seg::Index(i), Value::Seq(v)) => {
            if let Some(x) = v.get_mut(*i) {
                *x = value;
            }
        }
        _ => {}
    }
}

/// Whether two nodes mean the same: scalars by [`same_meaning`], collections item by item.
pub fn same_node(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Scalar(x), Value::Scalar(y)) => same_meaning(&x.text, &y.text),
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_node(a, b))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter().all(|e| {
                    y.iter()
                        .any(|f| f.key.text == e.key.text && same_node(&e.value, &f.value))
                })
        }
        _ => false,
    }
}

/// Parses `matrix:`, recording errors.
pub(crate) fn parse(root: &Node, e: &mut Errors) -> Option<Matrix> {
    let m = root.get("matrix")?;
    let Some(entries) = m.value.as_map() else {
        e.help(
            m.value.pos,
            format!("`matrix` must be a mapping, not {}", m.value.kind()),
            "write `matrix: { nat-a.type: [full-cone, symmetric] }`",
        );
        return None;
    };
    let mut keys: Vec<MatrixKey> = Vec::new();
    for en in entries.iter().filter(|x| x.key.text != "exclude") {
        let path = match resolve(root, &en.key.text, true) {
            Ok(p) => p,
            Err(msg) => {
                e.help(
                    en.key.pos,
                    format!("matrix key `{}` does not resolve: {msg}", en.key.text),
                    "a key is a dotted path from the top (`links.alice.loss`) or from a unique name (`nat-a.type`)",
                );
                continue;
            }
        };
        if path.first() == Some(&Seg::Key("matrix".into())) {
            e.at(en.key.pos, "a matrix key cannot point into `matrix` itself");
            continue;
        }
        if let Some(k) = keys.iter().find(|k| k.path == path) {
            e.at(
                en.key.pos,
                format!(
                    "matrix key `{}` is the same path as `{}` at {}",
                    en.key.text, k.key, k.pos
                ),
            );
            continue;
        }
        let values = match en.value.as_seq() {
            Some(v) if !v.is_empty() => v.to_vec(),
            _ => {
                e.help(
                    en.value.pos,
                    format!(
                        "matrix key `{}` needs a non-empty list of values",
                        en.key.text
                    ),
                    format!("write `{}: [VALUE, VALUE]`", en.key.text),
                );
                continue;
            }
        };
        keys.push(MatrixKey {
            key: en.key.text.clone(),
            pos: en.key.pos,
            path,
            values,
        });
    }
    if keys.is_empty() && entries.iter().all(|x| x.key.text == "exclude") {
        e.help(
            m.value.pos,
            "the matrix has no keys",
            "list at least one `path: [values]`, or remove `matrix:`",
        );
    }
    let mut exclude = Vec::new();
    if let Some(x) = entries.iter().find(|x| x.key.text == "exclude") {
        let items = match &x.value.value {
            Value::Seq(s) => s.as_slice(),
            _ => {
                e.help(
                    x.value.pos,
                    "`exclude` must be a list of mappings",
                    "write `exclude: [ { nat-a.type: symmetric, cgn.type: symmetric } ]`",
                );
                &[]
            }
        };
        for item in items {
            let Some(conds) = item.as_map() else {
                e.at(
                    item.pos,
                    "each `exclude` item must be a mapping of matrix keys to values",
                );
                continue;
            };
            let mut combo = Vec::new();
            for c in conds {
                let Some(ki) = keys.iter().position(|k| k.key == c.key.text) else {
                    let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
                    e.help(
                        c.key.pos,
                        format!("`{}` is not a key of this matrix", c.key.text),
                        format!("matrix keys: {}", names.join(", ")),
                    );
                    continue;
                };
                if !keys[ki].values.iter().any(|v| same_node(v, &c.value)) {
                    let vals: Vec<String> = keys[ki].values.iter().map(Node::render).collect();
                    e.help(
                        c.value.pos,
                        format!(
                            "`{}` is not one of the values of `{}`",
                            c.value.render(),
                            c.key.text
                        ),
                        format!("values: {}", vals.join(", ")),
                    );
                    continue;
                }
                combo.push((ki, c.value.clone()));
            }
            if !combo.is_empty() {
                exclude.push(combo);
            }
        }
    }
    Some(Matrix { keys, exclude })
}

impl Matrix {
    /// Every combination not excluded, as value indices per key, first key slowest.
    pub fn combinations(&self) -> Vec<Vec<usize>> {
        let mut out: Vec<Vec<usize>> = vec![Vec::new()];
        for k in &self.keys {
            let mut next = Vec::with_capacity(out.len() * k.values.len());
            for prefix in &out {
                for i in 0..k.values.len() {
                    let mut c = prefix.clone();
                    c.push(i);
                    next.push(c);
                }
            }
            out = next;
        }
        out.retain(|combo| {
            !self.exclude.iter().any(|ex| {
                ex.iter()
                    .all(|(ki, v)| same_node(&self.keys[*ki].values[combo[*ki]], v))
            })
        });
        out
    }
}
