//! Timers and process handles as file descriptors, so that pinhole's drivers wait on one
//! readiness set (`mio::Poll`) for packets, deadlines and child exits alike:
//!
//! - [`TimerFd`]: `timerfd_create(2)` on `CLOCK_MONOTONIC` (the clock of
//!   [`std::time::Instant`] on Linux), armed with nanosecond precision. `epoll_wait(2)`'s
//!   own timeout — and so mio's and tokio's — is whole milliseconds, which made a 30 ms
//!   link delay up to 1 ms late each way.
//! - [`pidfd_open`]: a pidfd (Linux 5.3) becomes readable when its process exits, so a
//!   driver sees a child end without polling `waitpid`.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

use super::{SysError, cvt};

/// A non-blocking, close-on-exec `CLOCK_MONOTONIC` timerfd: readable once it expires,
/// until [`TimerFd::clear`] reads the expirations.
#[derive(Debug)]
pub struct TimerFd {
    fd: OwnedFd,
}

impl TimerFd {
    /// A disarmed timer.
    ///
    /// # Errors
    ///
    /// [`SysError::Os`] when the kernel refuses (e.g. out of file descriptors).
    pub fn new() -> Result<TimerFd, SysError> {
        // SAFETY: timerfd_create with a valid clock and flags; result checked.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        let raw = cvt(raw, || "timerfd_create".into())?;
        // SAFETY: fresh fd owned by nobody else.
        Ok(TimerFd {
            fd: unsafe { OwnedFd::from_raw_fd(raw) },
        })
    }

    /// Expire once, `after` from now (relative, nanosecond precision; zero expires at
    /// once), or disarm with `None`. Re-arming discards an expiry not yet read.
    ///
    /// # Errors
    ///
    /// [`SysError::Os`] when the kernel refuses.
    pub fn set(&self, after: Option<Duration>) -> Result<(), SysError> {
        let value = match after {
            None => libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            Some(d) => {
                // An all-zero it_value disarms: the shortest timer is 1 ns.
                let d = d.max(Duration::from_nanos(1));
                libc::timespec {
                    tv_sec: d.as_secs().min(libc::time_t::MAX as u64) as libc::time_t,
                    tv_nsec: d.subsec_nanos() as libc::c_long,
                }
            }
        };
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: value,
        };
        // SAFETY: timerfd_settime reads `spec`; the old value is not asked for.
        let r =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        cvt(r, || "timerfd_settime".into())?;
        Ok(())
    }

    /// Read (and so reset) the expiration count: the fd is not readable afterwards until
    /// the timer expires again. Returns whether it had expired.
    pub fn clear(&self) -> bool {
        let mut count = 0u64;
        loop {
            // SAFETY: reads 8 bytes into a u64 we own.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&raw mut count).cast(),
                    std::mem::size_of::<u64>(),
                )
            };
            if n == 8 {
                return count > 0;
            }
            if n == -1 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return false;
        }
    }
}

impl AsFd for TimerFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl AsRawFd for TimerFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// A pidfd for process `pid` (a child of this program, by its pid): readable once the
/// process has exited (it stays readable until the fd is closed; reap the child with
/// `Child::try_wait` after that).
///
/// # Errors
///
/// [`SysError::Invalid`] for a pid out of range; [`SysError::Os`] when the kernel refuses
/// (`ESRCH`: no such process; `ENOSYS`: a kernel before 5.3).
pub fn pidfd_open(pid: u32) -> Result<OwnedFd, SysError> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Err(SysError::Invalid(format!("pid {pid}")));
    };
    // SAFETY: pidfd_open(2) takes a pid and flags (0) and returns a new fd or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0 as libc::c_uint) };
    if raw < 0 {
        return Err(SysError::last_os(format!("pidfd_open({pid})")));
    }
    // SAFETY: fresh fd owned by nobody else; fds fit in c_int.
    Ok(unsafe { OwnedFd::from_raw_fd(raw as RawFd) })
}

/// Set the calling thread's timer slack (`PR_SET_TIMERSLACK`, prctl(2)) to `ns`
/// nanoseconds (at least 1). Linux lets a timer of a normal thread fire up to its slack
/// late, 50 µs by default, to batch wake-ups; the engine thread delivers delayed packets
/// at their timers and wants them on time.
///
/// # Errors
///
/// [`SysError::Os`] when the kernel refuses.
pub fn set_timer_slack(ns: u64) -> Result<(), SysError> {
    let ns = ns.max(1) as libc::c_ulong;
    // SAFETY: prctl(PR_SET_TIMERSLACK) takes the slack as a plain value; no pointers.
    let r = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, ns, 0, 0, 0) };
    cvt(r, || "prctl(PR_SET_TIMERSLACK)".into())?;
    Ok(())
}
