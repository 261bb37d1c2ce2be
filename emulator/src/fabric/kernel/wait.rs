//! [`Waiter`]: the one way pinhole's real-time drivers wait — for readiness of their
//! sources (TUN devices, sockets, pidfds, a [`mio::Waker`]) or until a deadline, whichever
//! comes first, with the deadline kept to the nanosecond by a [`TimerFd`] registered as
//! one more source.
//!
//! `mio::Poll::poll`'s timeout, like `epoll_wait(2)`'s, is whole milliseconds (rounded
//! up): a timer wheel that must fire 30 ms after a packet arrived fired up to 1 ms late.
//! So the timeout given to mio is only ever zero or none, and deadlines go through the
//! timerfd.
//!
//! mio is edge-triggered: a source is reported when it becomes ready, not while it stays
//! ready. A driver that reads a bounded batch must remember the sources it has not
//! drained and wait with a deadline of now while there are any (see the engine thread and
//! `OsNet`).

use super::sys::{SysError, TimerFd};
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use std::io;
use std::os::fd::AsRawFd;
use std::time::Instant;

/// The token of the [`Waiter`]'s own timer; sources registered by the caller must not use
/// it.
pub const TIMER: Token = Token(usize::MAX);

/// A `mio::Poll` plus a nanosecond timer.
pub struct Waiter {
    poll: Poll,
    events: Events,
    timer: TimerFd,
    /// The deadline the timer is armed for, to skip re-arming it for the same one.
    armed: Option<Instant>,
}

impl std::fmt::Debug for Waiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Waiter")
            .field("armed", &self.armed)
            .finish_non_exhaustive()
    }
}

fn os(op: &str, e: io::Error) -> SysError {
    SysError::Os {
        op: op.into(),
        source: e,
    }
}

impl Waiter {
    /// A waiter reporting up to `capacity` ready sources per wait.
    ///
    /// # Errors
    ///
    /// [`SysError::Os`] when the kernel refuses an epoll set or a timerfd.
    pub fn new(capacity: usize) -> Result<Waiter, SysError> {
        let poll = Poll::new().map_err(|e| os("epoll_create", e))?;
        let timer = TimerFd::new()?;
        poll.registry()
            .register(&mut SourceFd(&timer.as_raw_fd()), TIMER, Interest::READABLE)
            .map_err(|e| os("register the timerfd", e))?;
        Ok(Waiter {
            poll,
            events: Events::with_capacity(capacity.max(1) + 1),
            timer,
            armed: None,
        })
    }

    /// Where sources are registered (any token but [`TIMER`]).
    pub fn registry(&self) -> &Registry {
        self.poll.registry()
    }

    /// Block until a registered source is ready or `deadline` passes (`None`: no deadline;
    /// one in the past: just look). A signal ends the wait early with nothing ready.
    /// Then [`Waiter::events`] lists what is ready.
    ///
    /// # Errors
    ///
    /// [`SysError::Os`] when the kernel refuses the wait or the timer.
    pub fn wait(&mut self, deadline: Option<Instant>) -> Result<(), SysError> {
        #[allow(clippy::disallowed_methods)] // the real clock: this is a driver
        let now = Instant::now();
        let timeout = match deadline {
            Some(d) if d <= now => Some(std::time::Duration::ZERO),
            Some(d) => {
                if self.armed != Some(d) {
                    self.timer.set(Some(d - now))?;
                    self.armed = Some(d);
                }
                None
            }
            None => {
                if self.armed.take().is_some() {
                    self.timer.set(None)?;
                }
                None
            }
        };
        match self.poll.poll(&mut self.events, timeout) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => self.events.clear(),
            Err(e) => return Err(os("epoll_wait", e)),
        }
        if self.events.iter().any(|e| e.token() == TIMER) {
            self.timer.clear();
            self.armed = None;
        }
        Ok(())
    }

    /// The sources found ready by the last [`Waiter::wait`] (the timer left out).
    pub fn events(&self) -> impl Iterator<Item = &mio::event::Event> {
        self.events.iter().filter(|e| e.token() != TIMER)
    }
}

/// Wait until process `pid` has exited or `deadline` passes, on a pidfd (no polling).
/// Returns whether it exited (a process already gone counts as exited). The process need
/// not be a child; a child still has to be reaped (`Child::wait`) afterwards.
///
/// # Errors
///
/// [`SysError`] when the kernel refuses a pidfd (e.g. `ENOSYS` before Linux 5.3) or the
/// wait.
pub fn wait_for_exit(pid: u32, deadline: Instant) -> Result<bool, SysError> {
    let fd = match super::sys::pidfd_open(pid) {
        Ok(fd) => fd,
        Err(SysError::Os { source, .. }) if source.raw_os_error() == Some(libc::ESRCH) => {
            return Ok(true);
        }
        Err(e) => return Err(e),
    };
    let mut w = Waiter::new(1)?;
    w.registry()
        .register(&mut SourceFd(&fd.as_raw_fd()), Token(0), Interest::READABLE)
        .map_err(|e| os("register a pidfd", e))?;
    loop {
        w.wait(Some(deadline))?;
        if w.events().next().is_some() {
            return Ok(true);
        }
        #[allow(clippy::disallowed_methods)] // the real clock: this is a driver
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}
