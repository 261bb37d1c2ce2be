//! OS layer of the kernel fabric: the sandbox, per-host namespaces, TUN devices and
//! rtnetlink. All of the crate's `unsafe`, ioctl and netlink code lives here.
//!
//! - [`enter_sandbox`] puts the whole program into fresh user + PID + mount + network
//!   namespaces, so everything created later disappears with the process, even on SIGKILL.
//! - [`HostNs`] is one emulated host: a network namespace and a mount namespace (own
//!   `/etc/hosts`, `/etc/resolv.conf` and `/tmp`). [`HostNs::add_tun`] gives it a TUN
//!   interface with addresses and default routes; [`HostNs::spawn`] runs a program in it;
//!   [`HostNs::enter_net`] switches the calling thread's network namespace for a while.
//! - [`read_packet`], [`write_packet`], [`read_batch`], [`write_batch`] and
//!   [`wait_readable`] move packets through TUN fds; [`read_vnet`] and [`write_vnet`] do
//!   it with the virtio-net header of TUN devices with offloads
//!   ([`HostNs::add_tun_offload`], [`TunOffloads`]).
//! - [`TimerFd`] (nanosecond deadlines) and [`pidfd_open`] (child exits) are file
//!   descriptors a driver registers with its readiness set next to its sockets.
//! - [`send_repeated`], [`send_batch_to`], [`recv_many`] and [`recv_sized`] move many
//!   datagrams per system call (`pinhole bench`); [`raise_open_files_limit`] makes room
//!   for a socket per media port.
//! - [`ExecServer`] and [`exec_remote`] let another process run programs in the hosts of
//!   a running sandbox (`pinhole exec`).

mod exec;
mod host;
mod netlink;
mod sandbox;
mod sock;
mod timer;
mod tun;

use std::io;

pub use exec::{ExecRequest, ExecServer, exec_remote};
pub use host::{HostNs, NetnsGuard, RESOLV_CONF};
pub use sandbox::{IdMap, Sandbox, enter_sandbox, in_sandbox};
pub use sock::{
    MAX_BATCH, raise_open_files_limit, recv_batch_from, recv_many, recv_sized, send_batch_to,
    send_repeated,
};
pub use timer::{TimerFd, pidfd_open, set_timer_slack};
pub use tun::{
    TUN_F_CSUM, TUN_F_TSO_ECN, TUN_F_TSO4, TUN_F_TSO6, TUN_F_USO4, TUN_F_USO6, TunOffloads,
    read_batch, read_packet, read_vnet, wait_readable, write_batch, write_packet, write_vnet,
};

/// What went wrong in the OS layer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SysError {
    /// The kernel fabric cannot work on this machine or for this user. Exit code 3.
    #[error(
        "the kernel fabric cannot start: {reason}. `--fabric virtual` needs no privileges and \
         runs the same scenarios without namespaces"
    )]
    Unsupported {
        /// Why, and what could be changed.
        reason: String,
    },
    /// [`enter_sandbox`] was called after threads were started.
    #[error(
        "enter_sandbox() must run before any thread exists, but this process already has \
         {threads} threads; call it first thing in main(), before starting tokio or logging threads"
    )]
    Threaded {
        /// Threads found in `/proc/self/status`.
        threads: usize,
    },
    /// A host was created outside the sandbox.
    #[error(
        "not inside the pinhole sandbox: call enter_sandbox() first thing in main() \
         (hosts are only created inside it, so that they cannot outlive pinhole)"
    )]
    NotInSandbox,
    /// A caller-supplied value the kernel would reject.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// A system call failed.
    #[error("{op}: {source}")]
    Os {
        /// What was being done, e.g. `setns(net) for host alice`.
        op: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl SysError {
    /// `true` when the machine or user cannot run the kernel fabric at all (exit code 3 and
    /// a hint to use `--fabric virtual`), as opposed to a failure while running it.
    pub fn is_unsupported(&self) -> bool {
        matches!(self, SysError::Unsupported { .. })
    }

    fn os(op: impl Into<String>, source: io::Error) -> SysError {
        SysError::Os {
            op: op.into(),
            source,
        }
    }

    fn last_os(op: impl Into<String>) -> SysError {
        SysError::os(op, io::Error::last_os_error())
    }
}

/// `-1` → the OS error of `op`.
fn cvt(ret: libc::c_int, op: impl FnOnce() -> String) -> Result<libc::c_int, SysError> {
    if ret == -1 {
        Err(SysError::last_os(op()))
    } else {
        Ok(ret)
    }
}

/// `-1` with `EINTR` → retry.
fn cvt_retry(mut f: impl FnMut() -> libc::c_int) -> io::Result<libc::c_int> {
    loop {
        let r = f();
        if r != -1 {
            return Ok(r);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// Send signal `sig` (e.g. `libc::SIGTERM`) to process `pid` — a child this program
/// started, by its pid. `ESRCH` (already gone) is not an error.
///
/// # Errors
///
/// [`SysError::Os`] when the kernel refuses (e.g. `EPERM`).
pub fn signal(pid: u32, sig: libc::c_int) -> Result<(), SysError> {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return Err(SysError::Invalid(format!("pid {pid}")));
    };
    // SAFETY: kill(2) with a positive pid signals exactly that process.
    let r = unsafe { libc::kill(pid, sig) };
    if r == -1 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::ESRCH) {
            return Ok(());
        }
        return Err(SysError::Os {
            op: format!("kill({pid}, {sig})"),
            source: e,
        });
    }
    Ok(())
}

/// SIGTERM, for [`signal`].
pub const SIGTERM: libc::c_int = libc::SIGTERM;
/// SIGKILL, for [`signal`].
pub const SIGKILL: libc::c_int = libc::SIGKILL;
