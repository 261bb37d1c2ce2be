//! pinhole's scenario model, runner, built-in agents and commands.
//!
//! | module | what it is |
//! |---|---|
//! | [`scenario`] | the YAML model of SCENARIO-FORMAT.md: parsing with exact positions, validation, matrix cells, `when:` |
//! | [`convert`] | scenario model → emulator configuration |
//! | [`run`] | running cells: the step timeline, the virtual and kernel fabric drivers, services, judging, the event log, the worker pool |
//! | [`agents`] | built-in agents and services over the socket API [`agents::net::Net`], on the virtual fabric or real sockets |
//! | [`cli`] | `pinhole run` / `pinhole validate` as library functions |
//! | [`cmd`] | the other subcommands: `serve`, `probe`, `up`/`exec`/`down`, `bench` |
//!
//! Where new things go:
//! - a **service** (a server a scenario runs on a host): its sans-IO core in `relay`, its
//!   driver in [`agents::services`] (an [`agents::net::Agent`] that also hands its core's
//!   events to the cell log in `drain_events`), its model in [`scenario::model`], started by
//!   [`run::services::start_services`];
//! - a **step**: its model in [`scenario::model`] (`StepKind`), its agent in
//!   [`agents::steps`], dispatched in [`run::timeline`] (one place for both fabrics);
//! - a **measure** (an expectation's check): `scenario::model::Measure`, produced by its step's
//!   result in [`run::timeline`], judged in `run::judge`;
//! - a **report section**: plain data in the `reports` crate (which knows no driver type),
//!   filled from the cell's report or its event log ([`run::events`]).
#![deny(missing_docs)]

pub mod agents;
pub mod cli;
pub mod cmd;
pub mod convert;
pub mod run;
pub mod scenario;
