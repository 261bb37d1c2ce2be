//! TUN devices: creation (TUNSETIFF) and packet I/O on their fds.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

use super::{SysError, cvt};

/// `_IOW('T', 202, int)` on x86_64 and aarch64.
const TUNSETIFF: libc::c_ulong = 0x4004_54ca;
const IFF_TUN: libc::c_short = 0x0001;
const IFF_NO_PI: libc::c_short = 0x1000;

/// `struct ifreq` with the `ifr_flags` member of its union (40 bytes on 64-bit Linux).
#[repr(C)]
struct IfReqFlags {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// Create the TUN device `ifname` (IFF_TUN | IFF_NO_PI) in the calling thread's network
/// namespace; the fd is non-blocking and close-on-exec.
pub(super) fn create(ifname: &str) -> Result<OwnedFd, SysError> {
    // SAFETY: open(2) on a NUL-terminated literal; result checked.
    let raw = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    let raw = cvt(raw, || "open /dev/net/tun".into())?;
    // SAFETY: fresh fd owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let mut req = IfReqFlags {
        name: [0; libc::IFNAMSIZ],
        flags: IFF_TUN | IFF_NO_PI,
        _pad: [0; 22],
    };
    // The caller checked 1..IFNAMSIZ bytes without NUL.
    req.name[..ifname.len()].copy_from_slice(ifname.as_bytes());
    // SAFETY: TUNSETIFF reads and writes a `struct ifreq`, which `req` is laid out as.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), TUNSETIFF as _, &raw mut req) };
    cvt(r, || format!("ioctl(TUNSETIFF) creating TUN {ifname}"))?;
    Ok(fd)
}

/// Read one packet from a non-blocking TUN fd into `buf`. `Ok(None)` when no packet is
/// waiting (`EAGAIN`). A packet longer than `buf` is truncated by the kernel, so size `buf`
/// to the interface MTU.
pub fn read_packet(fd: BorrowedFd<'_>, buf: &mut [u8]) -> Result<Option<usize>, SysError> {
    loop {
        // SAFETY: `buf` is a valid writable buffer of the length passed.
        let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
        if n >= 0 {
            return Ok(Some(n as usize));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(SysError::os("read from TUN", e)),
        }
    }
}

/// Write one packet (a whole IPv4 or IPv6 datagram) to a TUN fd. `Ok(false)` when the
/// kernel would block (`EAGAIN`) and the packet was not written.
pub fn write_packet(fd: BorrowedFd<'_>, packet: &[u8]) -> Result<bool, SysError> {
    loop {
        // SAFETY: `packet` is a valid buffer of the length passed.
        let n = unsafe { libc::write(fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
        if n >= 0 {
            return Ok(true);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(false),
            _ => return Err(SysError::os("write to TUN", e)),
        }
    }
}

/// Read packets into `bufs` until the fd has none left or the buffers run out; the length
/// of packet `i` goes to `lens[i]`. Returns how many were read.
pub fn read_batch<B: AsMut<[u8]>>(
    fd: BorrowedFd<'_>,
    bufs: &mut [B],
    lens: &mut [usize],
) -> Result<usize, SysError> {
    let mut count = 0;
    for (buf, len) in bufs.iter_mut().zip(lens.iter_mut()) {
        match read_packet(fd, buf.as_mut())? {
            Some(n) => {
                *len = n;
                count += 1;
            }
            None => break,
        }
    }
    Ok(count)
}

/// Write packets in order until one would block. Returns how many were written; the rest
/// (from that index on) were not.
pub fn write_batch<P: AsRef<[u8]>>(fd: BorrowedFd<'_>, packets: &[P]) -> Result<usize, SysError> {
    let mut count = 0;
    for p in packets {
        if !write_packet(fd, p.as_ref())? {
            break;
        }
        count += 1;
    }
    Ok(count)
}

/// Wait with poll(2) until at least one of `fds` is readable (or has an error or hang-up,
/// which the next read reports) or `timeout` passes (`None`: wait forever). Sets
/// `ready[i]` for each such fd and returns how many; `Ok(0)` on timeout or when a signal
/// interrupted the wait.
///
/// # Panics
///
/// If `ready` is shorter than `fds`.
pub fn wait_readable(
    fds: &[BorrowedFd<'_>],
    timeout: Option<Duration>,
    ready: &mut [bool],
) -> Result<usize, SysError> {
    assert!(ready.len() >= fds.len(), "`ready` needs one slot per fd");
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let ms = match timeout {
        None => -1,
        Some(d) => d
            .as_nanos()
            .div_ceil(1_000_000)
            .min(libc::c_int::MAX as u128) as libc::c_int,
    };
    // SAFETY: `pfds` is a valid array of the length passed.
    let r = unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, ms) };
    if r == -1 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            ready.iter_mut().for_each(|r| *r = false);
            return Ok(0);
        }
        return Err(SysError::os("poll", e));
    }
    let mut n = 0;
    for (p, r) in pfds.iter().zip(ready.iter_mut()) {
        *r = p.revents & (libc::POLLIN | libc::POLLERR | libc::POLLHUP | libc::POLLNVAL) != 0;
        n += usize::from(*r);
    }
    Ok(n)
}

/// A non-blocking, close-on-exec pipe: `(read end, write end)`. The kernel fabric wakes its
/// engine thread by writing a byte to it.
///
/// # Errors
///
/// [`SysError::Os`] when the kernel refuses (e.g. out of file descriptors).
pub fn pipe_nonblocking() -> Result<(OwnedFd, OwnedFd), SysError> {
    let mut fds = [0 as libc::c_int; 2];
    // SAFETY: pipe2(2) writes two fds into the array we pass.
    let r = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_NONBLOCK | libc::O_CLOEXEC) };
    cvt(r, || "pipe2".to_string())?;
    // SAFETY: both fds were just created and are owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}
