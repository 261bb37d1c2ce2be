//! pinhole's scenario model, runner and built-in agents.
#![deny(missing_docs)]

pub mod scenario;
