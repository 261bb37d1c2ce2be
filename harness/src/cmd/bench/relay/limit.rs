//! The CPU limit of `pinhole bench relay --overload`: the relay under test is moved into a
//! cgroup this bench creates, whose CPU bandwidth is capped to a share of one core — with
//! cgroup v2's `cpu.max` where the v2 hierarchy has the cpu controller, else cgroup v1's
//! `cpu.cfs_quota_us`/`cpu.cfs_period_us`. Overload then comes from the relay's limit,
//! not from out-sending it (the generator and the relay share the machine's cores). The
//! cgroup is removed when the limit is dropped (its processes moved back first).

use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// Scheduler period of the quota, microseconds: 10 ms, so that a throttled relay waits at
/// most the rest of 10 ms (with the default 100 ms period a relay at 25 % stalls for 75 ms
/// at a time, and every relay's packets would be late by `--late-ms` alike).
const PERIOD_US: u64 = 10_000;

/// A cgroup holding the relay, removed on drop.
pub(crate) struct CpuLimit {
    dir: PathBuf,
    parent: PathBuf,
    /// What was set, for the report.
    pub how: String,
}

impl CpuLimit {
    /// Cap `pid` (and its threads) to `percent` of one core.
    pub fn apply(pid: u32, percent: u32) -> Result<CpuLimit> {
        let quota = PERIOD_US * u64::from(percent) / 100;
        let name = format!("pinhole-bench-relay-{}", std::process::id());
        let mut errors = Vec::new();
        for root in ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"] {
            let root = Path::new(root);
            let controllers = std::fs::read_to_string(root.join("cgroup.controllers"));
            if !controllers.is_ok_and(|c| c.split_whitespace().any(|x| x == "cpu")) {
                errors.push(format!("{}: no cgroup v2 cpu controller", root.display()));
                continue;
            }
            let _ = std::fs::write(root.join("cgroup.subtree_control"), "+cpu");
            match Self::make(
                root,
                &name,
                &[("cpu.max", format!("{quota} {PERIOD_US}"))],
                pid,
            ) {
                Ok(dir) => {
                    return Ok(CpuLimit {
                        how: format!(
                            "cgroup v2 {}/cpu.max = \"{quota} {PERIOD_US}\" ({percent} % of one core)",
                            dir.display()
                        ),
                        dir,
                        parent: root.to_path_buf(),
                    });
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
        let v1 = Path::new("/sys/fs/cgroup/cpu");
        if v1.join("cpu.cfs_quota_us").is_file() {
            match Self::make(
                v1,
                &name,
                &[
                    ("cpu.cfs_period_us", PERIOD_US.to_string()),
                    ("cpu.cfs_quota_us", quota.to_string()),
                ],
                pid,
            ) {
                Ok(dir) => {
                    return Ok(CpuLimit {
                        how: format!(
                            "cgroup v1 {}: cpu.cfs_quota_us {quota} per cpu.cfs_period_us {PERIOD_US} ({percent} % of one core)",
                            dir.display()
                        ),
                        dir,
                        parent: v1.to_path_buf(),
                    });
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        } else {
            errors.push("no cgroup v1 cpu controller at /sys/fs/cgroup/cpu".into());
        }
        bail!("no CPU limit could be set: {}", errors.join("; "))
    }

    fn make(root: &Path, name: &str, settings: &[(&str, String)], pid: u32) -> Result<PathBuf> {
        let dir = root.join(name);
        std::fs::create_dir(&dir).with_context(|| format!("create {}", dir.display()))?;
        let r = (|| -> Result<()> {
            for (file, value) in settings {
                std::fs::write(dir.join(file), value)
                    .with_context(|| format!("write {value:?} to {}/{file}", dir.display()))?;
            }
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())
                .with_context(|| format!("move PID {pid} into {}", dir.display()))?;
            Ok(())
        })();
        if let Err(e) = r {
            let _ = std::fs::remove_dir(&dir);
            return Err(e);
        }
        Ok(dir)
    }
}

impl Drop for CpuLimit {
    fn drop(&mut self) {
        // A cgroup with processes cannot be removed: move what is left back to the parent.
        if let Ok(procs) = std::fs::read_to_string(self.dir.join("cgroup.procs")) {
            for p in procs.split_whitespace() {
                let _ = std::fs::write(self.parent.join("cgroup.procs"), p);
            }
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!(
                "pinhole bench relay: could not remove {}: {e}",
                self.dir.display()
            );
        }
    }
}
