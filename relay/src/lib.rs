//! pinhole's servers as sans-IO cores.
#![deny(missing_docs)]
