//! What steps produce: the data the timeline records, the judge checks and the report
//! shows — a leaf of the run modules (the timeline, the judge and the fabric drivers all
//! import it; it imports none of them).

use crate::agents::steps::punch::PunchOutcome;
use relay::stun::ProbeReport;
use std::time::Duration;

/// What a step produced, for expectations and the report.
#[derive(Clone, Debug)]
pub(crate) enum StepResult {
    /// The step has no result of its own (wait, link, nat; a background `run` so far).
    Done,
    /// A punch step's outcome.
    Punch(PunchOutcome),
    /// A probe step's report.
    Probe(ProbeReport),
    /// A `run` step's program.
    Run(RunOutcome),
}

/// What a `run` step's program did.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RunOutcome {
    /// Exit status; a program ended by a signal has 128 + the signal number, as in a shell.
    pub exit: Option<i64>,
    /// Whether pinhole stopped it (timeout or end of scenario).
    pub stopped: bool,
    /// Its standard output (up to [`OUTPUT_LIMIT`](super::programs::OUTPUT_LIMIT) bytes, lossy UTF-8).
    pub stdout: String,
    /// Its standard error (likewise).
    pub stderr: String,
}

/// A duration in whole milliseconds, as reports write times.
pub(crate) fn ms(d: Duration) -> u64 {
    d.as_millis() as u64
}
