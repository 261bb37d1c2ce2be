//! TUN devices: creation (tun-rs, with the virtio-net header and offloads when asked) and
//! packet I/O on their fds. Waiting on many of them
//! is the drivers' readiness set (`kernel::Waiter`, mio).

use std::fmt;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd};
use std::time::Duration;

use super::SysError;
use crate::wire::offload::VNET_HDR_LEN;

/// `_IOW('T', 208, unsigned int)`.
const TUNSETOFFLOAD: libc::c_ulong = 0x4004_54d0;

/// `TUN_F_CSUM`: the kernel may hand over packets with a partial transport checksum.
pub const TUN_F_CSUM: u32 = 0x01;
/// `TUN_F_TSO4`: TCP/IPv4 super-segments.
pub const TUN_F_TSO4: u32 = 0x02;
/// `TUN_F_TSO6`: TCP/IPv6 super-segments.
pub const TUN_F_TSO6: u32 = 0x04;
/// `TUN_F_TSO_ECN`: super-segments with ECN (CWR) too.
pub const TUN_F_TSO_ECN: u32 = 0x08;
/// `TUN_F_USO4`: UDP/IPv4 super-datagrams (Linux 6.2).
pub const TUN_F_USO4: u32 = 0x20;
/// `TUN_F_USO6`: UDP/IPv6 super-datagrams (Linux 6.2).
pub const TUN_F_USO6: u32 = 0x40;

/// The offload state of a TUN device: whether packets carry a virtio-net header, and
/// which `TUN_F_*` offloads the kernel accepted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunOffloads {
    /// Every packet read or written carries a [`VNET_HDR_LEN`]-byte virtio-net header.
    pub vnet_hdr: bool,
    /// `TUN_F_*` bits in force.
    pub flags: u32,
}

impl fmt::Display for TunOffloads {
    /// `off`, or the offloads in force, e.g. `csum tso4 tso6 tso-ecn uso4 uso6`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.vnet_hdr {
            return f.write_str("off");
        }
        let names = [
            (TUN_F_CSUM, "csum"),
            (TUN_F_TSO4, "tso4"),
            (TUN_F_TSO6, "tso6"),
            (TUN_F_TSO_ECN, "tso-ecn"),
            (TUN_F_USO4, "uso4"),
            (TUN_F_USO6, "uso6"),
        ];
        let on: Vec<&str> = names
            .iter()
            .filter(|(b, _)| self.flags & b != 0)
            .map(|(_, n)| *n)
            .collect();
        if on.is_empty() {
            f.write_str("vnet header, no offloads")
        } else {
            f.write_str(&on.join(" "))
        }
    }
}

/// Create the TUN device `ifname` (layer 3, no packet information) in the calling
/// thread's network namespace with tun-rs: it opens `/dev/net/tun` (`O_CLOEXEC`) and
/// issues TUNSETIFF on this thread, and the kernel creates the device in the namespace of
/// the thread that opened the fd; it is then made non-blocking here. With
/// `offload`, tun-rs sets IFF_VNET_HDR (the 10-byte header of
/// [`VNET_HDR_LEN`], the kernel's default size) and the checksum/TSO offloads, and USO
/// where the kernel has it (6.2).
///
/// Two pieces stay our own, each one ioctl: tun-rs does not ask for `TUN_F_TSO_ECN`, which
/// lets the kernel hand over super-segments of ECN-using (CWR) TCP flows too, so it is
/// added here when the kernel takes it; and packet I/O stays [`read_vnet`] /
/// [`write_vnet`], because tun-rs's `recv`/`send` take the header and the packet in one
/// contiguous buffer while the engine's buffers keep headroom in front of the packet
/// (`PacketBuf`): `readv`/`writev` with two iovecs place them apart without a copy.
pub(super) fn create(ifname: &str, offload: bool) -> Result<(OwnedFd, TunOffloads), SysError> {
    let os = |what: &str, e: io::Error| SysError::os(format!("{what} TUN {ifname} (tun-rs)"), e);
    let dev = tun_rs::DeviceBuilder::new()
        .name(ifname)
        .offload(offload)
        .build_sync()
        .map_err(|e| os("create", e))?;
    dev.set_nonblocking(true)
        .map_err(|e| os("make non-blocking", e))?;
    let uso = offload && dev.udp_gso();
    // SAFETY: into_raw_fd hands over the device's one fd; nothing else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(dev.into_raw_fd()) };
    if !offload {
        return Ok((fd, TunOffloads::default()));
    }
    let mut flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6;
    if uso {
        flags |= TUN_F_USO4 | TUN_F_USO6;
    }
    let with_ecn = flags | TUN_F_TSO_ECN;
    // SAFETY: TUNSETOFFLOAD takes the flags as the argument value itself.
    let r = unsafe {
        libc::ioctl(
            fd.as_raw_fd(),
            TUNSETOFFLOAD as _,
            with_ecn as libc::c_ulong,
        )
    };
    if r == 0 {
        flags = with_ecn;
    }
    Ok((
        fd,
        TunOffloads {
            vnet_hdr: true,
            flags,
        },
    ))
}

/// Read one packet and its virtio-net header from a non-blocking TUN fd created with
/// offloads: the header into `hdr`, the packet into `buf` (size it for 64 KiB
/// super-segments). Returns the packet's length; `Ok(None)` when none is waiting.
pub fn read_vnet(
    fd: BorrowedFd<'_>,
    hdr: &mut [u8; VNET_HDR_LEN],
    buf: &mut [u8],
) -> Result<Option<usize>, SysError> {
    let iov = [
        libc::iovec {
            iov_base: hdr.as_mut_ptr().cast(),
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        },
    ];
    loop {
        // SAFETY: both iovecs describe valid writable buffers of the lengths given.
        let n = unsafe { libc::readv(fd.as_raw_fd(), iov.as_ptr(), 2) };
        if n >= 0 {
            return Ok(Some((n as usize).saturating_sub(VNET_HDR_LEN)));
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(None),
            _ => return Err(SysError::os("read from TUN", e)),
        }
    }
}

/// Write one packet behind its virtio-net header to a TUN fd created with offloads.
/// `Ok(false)` when the kernel would block and nothing was written.
pub fn write_vnet(
    fd: BorrowedFd<'_>,
    hdr: &[u8; VNET_HDR_LEN],
    packet: &[u8],
) -> Result<bool, SysError> {
    let iov = [
        libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: packet.as_ptr() as *mut libc::c_void,
            iov_len: packet.len(),
        },
    ];
    loop {
        // SAFETY: both iovecs describe valid buffers of the lengths given; writev only
        // reads them.
        let n = unsafe { libc::writev(fd.as_raw_fd(), iov.as_ptr(), 2) };
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
