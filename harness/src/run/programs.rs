//! The real programs of `run` steps on the kernel fabric (SCENARIO-FORMAT.md "Steps"): each
//! runs in its host's namespaces with its output collected (bounded), is stopped — SIGTERM,
//! then SIGKILL after [`KILL_GRACE`] — at its `timeout` or at the end of the scenario, and
//! its end wakes the driver through a pidfd. What it did is a
//! [`RunOutcome`].

use super::results::RunOutcome;
use emulator::fabric::kernel::sys;
use std::io::Read;
use std::os::fd::OwnedFd;
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Most output kept per stream of a `run` program; the rest is counted, not kept.
pub const OUTPUT_LIMIT: usize = 1 << 20;

/// Grace between SIGTERM and SIGKILL when a program is stopped.
pub const KILL_GRACE: Duration = Duration::from_secs(2);

pub(super) struct Output {
    buf: Vec<u8>,
    dropped: u64,
}

pub(super) fn collect(mut r: impl Read + Send + 'static) -> (Arc<Mutex<Output>>, JoinHandle<()>) {
    let out = Arc::new(Mutex::new(Output {
        buf: Vec::new(),
        dropped: 0,
    }));
    let o = Arc::clone(&out);
    let h = std::thread::spawn(move || {
        let mut chunk = [0u8; 8192];
        while let Ok(n) = r.read(&mut chunk) {
            if n == 0 {
                break;
            }
            if let Ok(mut o) = o.lock() {
                let room = OUTPUT_LIMIT.saturating_sub(o.buf.len());
                let keep = n.min(room);
                o.buf.extend_from_slice(&chunk[..keep]);
                o.dropped += (n - keep) as u64;
            }
        }
    });
    (out, h)
}

pub(super) struct Running {
    pub(super) name: String,
    pub(super) child: Child,
    pub(super) stdout: (Arc<Mutex<Output>>, JoinHandle<()>),
    pub(super) stderr: (Arc<Mutex<Output>>, JoinHandle<()>),
    pub(super) deadline: Option<Instant>,
    pub(super) stopped: bool,
    pub(super) term_sent: Option<Instant>,
    pub(super) killed: bool,
    /// Readable once the program has exited; registered with the driver's `OsNet`, so
    /// that its end wakes the driver (no polling for it).
    pub(super) pidfd: Option<OwnedFd>,
}

impl Running {
    /// When this program next needs attention by the clock: its stop time, or the end of
    /// the grace after SIGTERM (once). Its exit wakes the driver through the pidfd.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        match self.term_sent {
            Some(t) if !self.killed => Some(t + KILL_GRACE),
            Some(_) => None,
            None => self.deadline,
        }
    }

    /// Poll: returns the exit status once the program has ended.
    pub(super) fn poll(&mut self, now: Instant) -> Option<i64> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(exit_code(st));
        }
        if let Some(t) = self.term_sent {
            if now >= t + KILL_GRACE && !self.killed {
                self.killed = true;
                let _ = sys::signal(self.child.id(), sys::SIGKILL);
            }
        } else if self.deadline.is_some_and(|d| now >= d) {
            self.stop(now);
        }
        None
    }

    pub(super) fn stop(&mut self, now: Instant) {
        if self.term_sent.is_none() {
            self.stopped = true;
            self.term_sent = Some(now);
            let _ = sys::signal(self.child.id(), sys::SIGTERM);
        }
    }

    pub(super) fn finish(self, exit: i64) -> (String, RunOutcome) {
        let text = |o: (Arc<Mutex<Output>>, JoinHandle<()>)| {
            let _ = o.1.join();
            o.0.lock()
                .map(|o| {
                    let mut s = String::from_utf8_lossy(&o.buf).into_owned();
                    if o.dropped > 0 {
                        s.push_str(&format!("\n[pinhole: {} more bytes not kept]\n", o.dropped));
                    }
                    s
                })
                .unwrap_or_default()
        };
        let stdout = text(self.stdout);
        let stderr = text(self.stderr);
        (
            self.name,
            RunOutcome {
                exit: Some(exit),
                stopped: self.stopped,
                stdout,
                stderr,
            },
        )
    }
}

/// A `run` step's command with a program named `pinhole` replaced by the path of the
/// running pinhole binary, so that scenarios can run pinhole's own tools (`pinhole
/// turn-client`, `pinhole serve`) inside hosts whatever the binary is installed as.
pub fn with_own_binary(cmd: &[String]) -> Vec<String> {
    let mut cmd = cmd.to_vec();
    if cmd.first().is_some_and(|p| p == "pinhole")
        && let Ok(exe) = std::env::current_exe()
    {
        cmd[0] = exe.to_string_lossy().into_owned();
    }
    cmd
}

pub(super) fn exit_code(st: std::process::ExitStatus) -> i64 {
    use std::os::unix::process::ExitStatusExt;
    match (st.code(), st.signal()) {
        (Some(c), _) => c as i64,
        (None, Some(s)) => 128 + s as i64,
        _ => -1,
    }
}
