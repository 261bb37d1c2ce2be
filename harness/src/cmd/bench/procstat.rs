//! CPU accounting of a process tree from `/proc` (utime + stime of every descendant), and
//! the load average: what `pinhole bench proxy` charges to each proxy.

use std::collections::HashMap;
use std::process::Command;

/// `/proc/PID/stat` fields after the command name: index 1 is the ppid, 11 utime, 12
/// stime, 13 cutime, 14 cstime (proc(5), counting from field 3 `state` as 0).
pub(crate) fn stat_fields(pid: u32) -> Option<Vec<u64>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(
        rest.split_whitespace()
            .map(|f| f.parse().unwrap_or(0))
            .collect(),
    )
}

/// The process tree under `root` (itself included), from `/proc` of the sandbox's PID
/// namespace.
pub(crate) fn tree(root: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(f) = stat_fields(pid) {
                children.entry(f[1] as u32).or_default().push(pid);
            }
        }
    }
    let mut all = vec![root];
    let mut i = 0;
    while i < all.len() {
        if let Some(c) = children.get(&all[i]) {
            all.extend(c);
        }
        i += 1;
    }
    all
}

/// CPU time of `root`'s process tree so far, in clock ticks: utime+stime of every live
/// process, plus the children `root` has reaped (its cutime+cstime).
pub(crate) fn tree_ticks(root: u32) -> (u64, usize) {
    let pids = tree(root);
    let mut ticks = 0;
    for &pid in &pids {
        if let Some(f) = stat_fields(pid) {
            ticks += f.get(11).copied().unwrap_or(0) + f.get(12).copied().unwrap_or(0);
            if pid == root {
                ticks += f.get(13).copied().unwrap_or(0) + f.get(14).copied().unwrap_or(0);
            }
        }
    }
    (ticks, pids.len())
}

/// Clock ticks per second of `/proc/PID/stat` (`getconf CLK_TCK`; 100 on Linux).
pub(crate) fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|&t| t > 0)
        .unwrap_or(100)
}

pub(crate) fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// On-CPU time so far (user + system, what utime+stime count, to the nanosecond) of every
/// thread of process `pid`, in ns (`schedstat`'s first field): `/proc/PID/stat`'s clock
/// ticks are too coarse for short measurements.
pub(crate) fn process_cpu_ns(pid: u32) -> Option<u64> {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}
