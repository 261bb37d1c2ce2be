//! SIPp's `-trace_stat` CSV: the counters `pinhole bench proxy` reads per load step.

use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// What one SIPp caller run counted (its `-trace_stat` file, cumulative columns).
/// A rate is sustained when SIPp placed the calls at least this fraction of it.
const SUSTAINED: f64 = 0.9;

#[derive(Clone, Debug, Default)]
pub(crate) struct Load {
    pub(crate) rate: u32,
    pub(crate) calls: u64,
    pub(crate) created: u64,
    pub(crate) successful: u64,
    pub(crate) failed: u64,
    /// From SIPp's start to the statistics row by which every call was created, seconds.
    pub(crate) elapsed: f64,
    pub(crate) exit: Option<i32>,
    /// Proxy CPU during the run, ms (CPU run only).
    pub(crate) cpu_ms: Option<f64>,
}

impl Load {
    pub(crate) fn achieved_cps(&self) -> f64 {
        if self.elapsed > 0.0 {
            self.created as f64 / self.elapsed
        } else {
            0.0
        }
    }

    pub(crate) fn clean(&self) -> bool {
        self.failed == 0
            && self.successful == self.calls
            && self.achieved_cps() >= SUSTAINED * f64::from(self.rate)
    }

    pub(crate) fn json(&self) -> Value {
        json!({
            "rate": self.rate,
            "calls": self.calls,
            "created": self.created,
            "successful": self.successful,
            "failed": self.failed,
            "placing_seconds": round(self.elapsed, 3),
            "achieved_cps": round(self.achieved_cps(), 1),
            "sipp_exit": self.exit,
            "clean": self.clean(),
        })
    }
}

pub(crate) fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// Seconds since the epoch from a SIPp statistics time column (`date\ttime\tepoch`).
pub(crate) fn stat_time(s: &str) -> Option<f64> {
    s.rsplit('\t').next()?.trim().parse().ok()
}

/// Parse SIPp's `-trace_stat` CSV (a row every 100 ms and a final one): the counts
/// come from the last row; the placing time is from the start to the first row by which
/// every call had been created, so a slow tail of the last calls does not lower the rate.
pub(crate) fn parse_stats(text: &str, load: &mut Load) -> Result<()> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .context("an empty statistics file")?
        .split(';')
        .collect();
    let rows: Vec<BTreeMap<&str, &str>> = lines
        .map(|l| header.iter().copied().zip(l.split(';')).collect())
        .collect();
    let last = rows.last().context("no statistics row")?;
    let num = |row: &BTreeMap<&str, &str>, k: &str| -> Result<u64> {
        row.get(k)
            .and_then(|v| v.trim().parse().ok())
            .with_context(|| format!("no {k} in SIPp's statistics"))
    };
    load.created = num(last, "OutgoingCall(C)")?;
    load.successful = num(last, "SuccessfulCall(C)")?;
    load.failed = num(last, "FailedCall(C)")?;
    let start = last.get("StartTime").and_then(|s| stat_time(s));
    let placed = rows
        .iter()
        .find(|r| num(r, "OutgoingCall(C)").is_ok_and(|n| n >= load.created))
        .and_then(|r| r.get("CurrentTime").and_then(|s| stat_time(s)));
    load.elapsed = match (start, placed) {
        (Some(a), Some(b)) => (b - a).max(0.0),
        _ => 0.0,
    };
    Ok(())
}
