//! Running scenario cells: one step timeline for both fabrics, each fabric its driver,
//! the services, the judge, the event log and the pool that runs cells in parallel.
//!
//! | module | what it is |
//! |---|---|
//! | [`timeline`] | the step timeline of a cell, one for both fabrics, behind a `StepHost` trait each fabric implements |
//! | [`results`] | what steps produce (a `run` step's [`results::RunOutcome`]), for the judge and the report |
//! | [`sim`] | the virtual fabric's driver (virtual time, smoltcp hosts) |
//! | [`kernel`] | the kernel fabric's driver (network namespaces, real programs) |
//! | [`programs`] | real programs of `run` steps: output, stop, exit |
//! | [`services`] | the scenario's services (`stun`, `turn`, `http-proxy`, `sip-proxy`) on either fabric |
//! | `judge` (crate-private) | expectations judged against step results; step results as report data |
//! | [`events`] | the per-cell timed event log (engine, NATs, firewalls, services) and its coalescing |
//! | [`capture`] | `--pcap DIR`: a capture file per interface and cell |
//! | [`pool`] | the worker pool of `pinhole run` |
//!
//! Imports go one way: `pool` → `sim`/`kernel` → `timeline` → `judge` → `results`;
//! `services`, `events`, `capture`, `programs` and `results` are leaves (no import circle).

use std::path::PathBuf;

pub mod capture;
pub mod events;
pub(crate) mod judge;
pub mod kernel;
pub mod pool;
pub mod programs;
pub mod results;
pub mod services;
pub mod sim;
pub mod timeline;

/// Per-run options of a cell.
#[derive(Clone, Debug, Default)]
pub struct CellOptions {
    /// Write one pcap file per attachment into this folder.
    pub pcap_dir: Option<PathBuf>,
    /// Most records in a cell's event log (`None`: [`reports::events::DEFAULT_LIMIT`];
    /// `Some(0)`: keep only the summaries).
    pub events_limit: Option<usize>,
}

impl CellOptions {
    /// The event log bound in force.
    pub fn events_limit(&self) -> usize {
        self.events_limit.unwrap_or(reports::events::DEFAULT_LIMIT)
    }
}
