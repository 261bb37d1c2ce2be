//! pinhole's run reports.
#![deny(missing_docs)]
