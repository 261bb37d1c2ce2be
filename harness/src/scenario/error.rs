//! Positioned user errors: `file:line:col: message` plus an optional `help:` line.

use std::fmt;
use std::path::{Path, PathBuf};

/// A position in a YAML file: 1-based line and 1-based column (as editors count them).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    /// Line, from 1.
    pub line: usize,
    /// Column in characters, from 1.
    pub col: usize,
}

impl Pos {
    /// A position.
    pub fn new(line: usize, col: usize) -> Self {
        Pos { line, col }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.col)
    }
}

/// One user error in a scenario (or NAT profile) file.
///
/// Displayed as `file:line:col: message`, followed by `\n  help: …` when there is a hint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    /// The file the error is in (the scenario, or a NAT profile it loads).
    pub file: PathBuf,
    /// Where in the file.
    pub pos: Pos,
    /// What is wrong.
    pub message: String,
    /// How to fix it, when we know.
    pub help: Option<String>,
}

impl Error {
    /// An error without a hint.
    pub fn new(file: &Path, pos: Pos, message: impl Into<String>) -> Self {
        Error {
            file: file.to_path_buf(),
            pos,
            message: message.into(),
            help: None,
        }
    }

    /// Adds a hint.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: {}", self.file.display(), self.pos, self.message)?;
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

/// All the errors found in one scenario, in file order (at least one).
///
/// `Display` prints one error per line (each possibly followed by its `help:` line).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioErrors(pub Vec<Error>);

impl ScenarioErrors {
    /// The errors.
    pub fn errors(&self) -> &[Error] {
        &self.0
    }
}

impl fmt::Display for ScenarioErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl From<Error> for ScenarioErrors {
    fn from(e: Error) -> Self {
        ScenarioErrors(vec![e])
    }
}

/// An error sink shared by the parsing and validation passes.
#[derive(Debug)]
pub(crate) struct Errors {
    pub(crate) file: PathBuf,
    pub(crate) list: Vec<Error>,
}

impl Errors {
    pub(crate) fn new(file: &Path) -> Self {
        Errors {
            file: file.to_path_buf(),
            list: Vec::new(),
        }
    }

    /// Records an error in this sink's file.
    pub(crate) fn at(&mut self, pos: Pos, message: impl Into<String>) -> &mut Error {
        let e = Error::new(&self.file, pos, message);
        self.list.push(e);
        let last = self.list.len() - 1;
        &mut self.list[last]
    }

    /// Records an error with a hint.
    pub(crate) fn help(&mut self, pos: Pos, message: impl Into<String>, help: impl Into<String>) {
        self.at(pos, message).help = Some(help.into());
    }

    pub(crate) fn push(&mut self, e: Error) {
        self.list.push(e);
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The collected errors sorted by file order, or `Ok(v)`.
    pub(crate) fn finish<T>(mut self, v: T) -> Result<T, ScenarioErrors> {
        if self.list.is_empty() {
            Ok(v)
        } else {
            sort_dedup(&mut self.list);
            Err(ScenarioErrors(self.list))
        }
    }
}

/// Sorts errors by file and position (stable) and drops repeats of the same message at
/// the same place (matrix cells repeat them), keeping the first.
pub(crate) fn sort_dedup(list: &mut Vec<Error>) {
    list.sort_by(|a, b| (&a.file, a.pos).cmp(&(&b.file, b.pos)));
    list.dedup_by(|b, a| a.file == b.file && a.pos == b.pos && a.message == b.message);
}
