//! A YAML node tree in which every key and value carries its `line:col`.
//!
//! Built from `granit-parser`'s event parser (the parser under serde-saphyr), whose events
//! come with exact source spans. Input limits (checked before and while parsing):
//!
//! - at most [`MAX_BYTES`] bytes of input;
//! - at most [`MAX_DEPTH`] nested mappings/sequences;
//! - one document per file;
//! - anchors (`&a`), aliases (`*a`) and tags (`!t`) are rejected: a scenario is plain data,
//!   and rejecting aliases rules out "billion laughs" expansion altogether;
//! - duplicate keys in one mapping are rejected;
//! - keys must be scalars.

use super::error::{Error, Pos};
use granit_parser::{Event, Options, Parser, ScalarStyle, Span};
use std::path::Path;

/// The largest scenario or profile file accepted, in bytes.
pub const MAX_BYTES: usize = 1 << 20;
/// The deepest nesting of mappings and sequences accepted.
pub const MAX_DEPTH: usize = 32;

/// How a scalar was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Style {
    /// `plain`
    Plain,
    /// `'single quoted'`
    SingleQuoted,
    /// `"double quoted"`
    DoubleQuoted,
    /// `|` block
    Literal,
    /// `>` block
    Folded,
}

/// A scalar: its text after YAML escape processing, and how it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Scalar {
    /// The text.
    pub text: String,
    /// The notation.
    pub style: Style,
}

impl Scalar {
    /// A plain scalar that YAML reads as null (`~`, `null`, or nothing).
    pub fn is_null(&self) -> bool {
        self.style == Style::Plain
            && matches!(self.text.as_str(), "" | "~" | "null" | "Null" | "NULL")
    }
}

/// A mapping key: always a scalar.
#[derive(Clone, Debug, PartialEq)]
pub struct Key {
    /// The key text.
    pub text: String,
    /// Where the key starts.
    pub pos: Pos,
}

/// One `key: value` entry of a mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The key.
    pub key: Key,
    /// The value.
    pub value: Node,
}

/// What a node holds.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    /// A mapping, entries in file order.
    Map(Vec<Entry>),
    /// A sequence.
    Seq(Vec<Node>),
    /// A scalar.
    Scalar(Scalar),
}

/// A YAML node and where it starts.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Where the node starts (for a block mapping: its first key).
    pub pos: Pos,
    /// The content.
    pub value: Value,
}

impl Node {
    /// The entries if this is a mapping.
    pub fn as_map(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The items if this is a sequence.
    pub fn as_seq(&self) -> Option<&[Node]> {
        match &self.value {
            Value::Seq(s) => Some(s),
            _ => None,
        }
    }

    /// The scalar if this is one.
    pub fn as_scalar(&self) -> Option<&Scalar> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    /// The entry for `key` if this is a mapping that has it.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.as_map()?.iter().find(|e| e.key.text == key)
    }

    /// What kind of node this is, for messages: "a mapping", "a sequence", "a string".
    pub fn kind(&self) -> &'static str {
        match &self.value {
            Value::Map(_) => "a mapping",
            Value::Seq(_) => "a sequence",
            Value::Scalar(s) if s.is_null() => "empty (null)",
            Value::Scalar(_) => "a scalar",
        }
    }

    /// A compact one-line rendering: scalars as written (without quotes), collections in
    /// flow style. Used for matrix cell names.
    pub fn render(&self) -> String {
        match &self.value {
            Value::Scalar(s) => s.text.clone(),
            Value::Seq(items) => {
                let v: Vec<String> = items.iter().map(Node::render).collect();
                format!("[{}]", v.join(", "))
            }
            Value::Map(entries) => {
                let v: Vec<String> = entries
                    .iter()
                    .map(|e| format!("{}: {}", e.key.text, e.value.render()))
                    .collect();
                format!("{{{}}}", v.join(", "))
            }
        }
    }
}

fn pos(span: &Span) -> Pos {
    Pos::new(span.start.line(), span.start.col() + 1)
}

enum Frame {
    Map {
        pos: Pos,
        entries: Vec<Entry>,
        key: Option<Key>,
    },
    Seq {
        pos: Pos,
        items: Vec<Node>,
    },
}

/// Parses one YAML document into a positioned tree.
///
/// # Errors
/// A syntax error, an input limit, an anchor/alias/tag, a duplicate or non-scalar key, or
/// an empty file; the error is positioned in `file`.
pub fn parse(text: &str, file: &Path) -> Result<Node, Error> {
    let err = |p: Pos, m: String| Error::new(file, p, m);
    if text.len() > MAX_BYTES {
        return Err(err(
            Pos::new(1, 1),
            format!(
                "the file is {} bytes; at most {MAX_BYTES} are accepted",
                text.len()
            ),
        ));
    }
    let mut options = Options::default();
    options.set_emit_comments(false);
    options.block_nesting_limit = MAX_DEPTH + 1;
    options.flow_nesting_limit = MAX_DEPTH + 1;
    let parser = Parser::new_from_str_with_options(text, options);
    let mut stack: Vec<Frame> = Vec::new();
    let mut root: Option<Node> = None;
    let mut documents = 0;
    for ev in parser {
        let (ev, span) = match ev {
            Ok(x) => x,
            Err(e) => {
                let m = e.marker();
                return Err(err(
                    Pos::new(m.line(), m.col() + 1),
                    format!("YAML syntax error: {}", e.info()),
                ));
            }
        };
        let p = pos(&span);
        let done: Option<Node> = match ev {
            Event::StreamStart | Event::StreamEnd | Event::DocumentEnd => None,
            Event::DocumentStart(..) => {
                documents += 1;
                if documents > 1 {
                    return Err(err(
                        p,
                        "a scenario file holds one YAML document; remove the second `---`".into(),
                    ));
                }
                None
            }
            Event::Alias(_) | Event::UnresolvedAlias(_) => {
                return Err(err(
                    p,
                    "YAML aliases (`*name`) are not supported in scenarios; write the value out"
                        .into(),
                ));
            }
            Event::Scalar(text, style, anchor, tag) => {
                if anchor != 0 {
                    return Err(err(p, "YAML anchors (`&name`) are not supported in scenarios; write the value out".into()));
                }
                if tag.is_some() {
                    return Err(err(
                        p,
                        "YAML tags (`!tag`) are not supported in scenarios; remove the tag".into(),
                    ));
                }
                let style = match style {
                    ScalarStyle::Plain => Style::Plain,
                    ScalarStyle::SingleQuoted => Style::SingleQuoted,
                    ScalarStyle::DoubleQuoted => Style::DoubleQuoted,
                    ScalarStyle::Literal => Style::Literal,
                    ScalarStyle::Folded => Style::Folded,
                };
                Some(Node {
                    pos: p,
                    value: Value::Scalar(Scalar {
                        text: text.into_owned(),
                        style,
                    }),
                })
            }
            Event::SequenceStart(_, anchor, ref tag) | Event::MappingStart(_, anchor, ref tag) => {
                if anchor != 0 {
                    return Err(err(p, "YAML anchors (`&name`) are not supported in scenarios; write the value out".into()));
                }
                if tag.is_some() {
                    return Err(err(
                        p,
                        "YAML tags (`!tag`) are not supported in scenarios; remove the tag".into(),
                    ));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(err(p, format!("nesting deeper than {MAX_DEPTH} levels")));
                }
                let is_seq = matches!(ev, Event::SequenceStart(..));
                stack.push(if is_seq {
                    Frame::Seq {
                        pos: p,
                        items: Vec::new(),
                    }
                } else {
                    Frame::Map {
                        pos: p,
                        entries: Vec::new(),
                        key: None,
                    }
                });
                None
            }
            Event::SequenceEnd | Event::MappingEnd => match stack.pop() {
                Some(Frame::Seq { pos, items }) => Some(Node {
                    pos,
                    value: Value::Seq(items),
                }),
                Some(Frame::Map { pos, entries, .. }) => Some(Node {
                    pos,
                    value: Value::Map(entries),
                }),
                None => None,
            },
            _ => None,
        };
        let Some(node) = done else { continue };
        match stack.last_mut() {
            None => root = Some(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, key, .. }) => match key.take() {
                Some(k) => entries.push(Entry {
                    key: k,
                    value: node,
                }),
                None => {
                    let Value::Scalar(s) = node.value else {
                        return Err(err(
                            node.pos,
                            "mapping keys must be plain names, not mappings or sequences".into(),
                        ));
                    };
                    if let Some(prev) = entries.iter().find(|e| e.key.text == s.text) {
                        return Err(Error::new(
                            file,
                            node.pos,
                            format!("duplicate key `{}` (first at {})", s.text, prev.key.pos),
                        )
                        .help(
                            "each key may appear once per mapping; remove or merge one of them",
                        ));
                    }
                    *key = Some(Key {
                        text: s.text,
                        pos: node.pos,
                    });
                }
            },
        }
    }
    match root {
        Some(r) if !matches!(&r.value, Value::Scalar(s) if s.is_null()) => Ok(r),
        _ => Err(err(
            Pos::new(1, 1),
            "the file is empty; a scenario starts with `version: 1`".into(),
        )),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn positions_of_keys_and_values() {
        let t = "a: 1\nb:\n  c: [x, {d: e}]\n  f: 'q'\n";
        let n = parse(t, Path::new("t.yaml")).unwrap();
        let m = n.as_map().unwrap();
        assert_eq!(m[0].key.pos, Pos::new(1, 1));
        assert_eq!(m[0].value.pos, Pos::new(1, 4));
        let b = &m[1].value;
        assert_eq!(b.pos, Pos::new(3, 3));
        let c = &b.as_map().unwrap()[0].value;
        assert_eq!(c.pos, Pos::new(3, 6));
        let seq = c.as_seq().unwrap();
        assert_eq!(seq[0].pos, Pos::new(3, 7));
        let d = &seq[1].as_map().unwrap()[0];
        assert_eq!(d.key.pos, Pos::new(3, 11));
        assert_eq!(d.value.pos, Pos::new(3, 14));
        let f = &b.as_map().unwrap()[1].value;
        assert_eq!(f.as_scalar().unwrap().style, Style::SingleQuoted);
        assert_eq!(f.pos, Pos::new(4, 6));
    }

    #[test]
    fn limits() {
        let p = Path::new("t.yaml");
        assert!(
            parse("a: &x 1\nb: *x\n", p)
                .unwrap_err()
                .message
                .contains("anchors")
        );
        assert!(
            parse("a: 1\na: 2\n", p)
                .unwrap_err()
                .message
                .contains("duplicate key")
        );
        assert!(parse("", p).unwrap_err().message.contains("empty"));
        let deep = "[".repeat(40) + &"]".repeat(40);
        assert!(parse(&deep, p).is_err());
        assert!(
            parse("a: 1\n---\nb: 2\n", p)
                .unwrap_err()
                .message
                .contains("one YAML document")
        );
        let e = parse("a: [1, 2\n", p).unwrap_err();
        assert!(e.message.starts_with("YAML syntax error"), "{e}");
    }
}
