//! The worker pool of `pinhole run`: cells run in parallel on `jobs` threads, each on its
//! scenario's fabric; each report is handed back as it finishes, and all of them in
//! (scenario, cell) order at the end.

use super::CellOptions;
use crate::scenario::Cell;
use crate::scenario::model::Fabric;
use reports::CellReport;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, mpsc};

/// One cell to run: its scenario's index and its own index there.
pub struct Job {
    /// Index of the scenario file in the run.
    pub scenario: usize,
    /// Index of the cell in its scenario.
    pub index: usize,
    /// The cell.
    pub cell: Cell,
}

/// Run `jobs` on at most `workers` threads (at least one); `finished(scenario, index,
/// report)` is called on this thread as each cell ends. Returns every report in
/// (scenario, cell) order. `opts.pcap_dir` is the run's capture folder: each cell writes
/// into its own subfolder of it.
pub fn run_cells(
    jobs: Vec<Job>,
    workers: usize,
    opts: &CellOptions,
    mut finished: impl FnMut(usize, usize, &CellReport),
) -> Vec<(usize, usize, CellReport)> {
    let total = jobs.len();
    let queue = Arc::new(Mutex::new(jobs.into_iter().collect::<VecDeque<_>>()));
    let (tx, rx) = mpsc::channel();
    let threads: Vec<_> = (0..workers.clamp(1, total.max(1)))
        .map(|_| {
            let queue = Arc::clone(&queue);
            let tx = tx.clone();
            let opts = opts.clone();
            std::thread::spawn(move || {
                loop {
                    let job = match queue.lock() {
                        Ok(mut q) => q.pop_front(),
                        Err(_) => None,
                    };
                    let Some(job) = job else { break };
                    let cell_opts = CellOptions {
                        pcap_dir: opts
                            .pcap_dir
                            .as_ref()
                            .map(|d| d.join(super::capture::cell_dir_name(&job.cell.name))),
                        events_limit: opts.events_limit,
                    };
                    let report = match job.cell.spec.fabric {
                        Fabric::Virtual => super::sim::run_cell_with(&job.cell, &cell_opts),
                        Fabric::Kernel => super::kernel::run_cell(&job.cell, &cell_opts),
                    };
                    if tx.send((job.scenario, job.index, report)).is_err() {
                        break;
                    }
                }
            })
        })
        .collect();
    drop(tx);
    let mut done = Vec::with_capacity(total);
    for (si, ci, cell) in rx {
        finished(si, ci, &cell);
        done.push((si, ci, cell));
    }
    for t in threads {
        let _ = t.join();
    }
    done.sort_by_key(|(s, c, _)| (*s, *c));
    done
}
