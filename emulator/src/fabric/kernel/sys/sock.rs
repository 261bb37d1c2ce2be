//! Socket helpers for load generation (`pinhole bench`): many datagrams per system call.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, BorrowedFd};

use super::cvt_retry;

/// Most datagrams one [`send_repeated`] call hands to the kernel.
pub const MAX_BATCH: usize = 64;

/// Send `datagram` up to `count` times (at most [`MAX_BATCH`]) on the connected datagram
/// socket `fd` with one `sendmmsg(2)`; returns how many were sent. On a non-blocking
/// socket whose buffer is full, `Ok(0)`.
///
/// # Errors
///
/// The OS error of `sendmmsg` (e.g. `ECONNREFUSED` after an ICMP port unreachable).
pub fn send_repeated(fd: BorrowedFd<'_>, datagram: &[u8], count: usize) -> io::Result<usize> {
    let n = count.min(MAX_BATCH);
    if n == 0 {
        return Ok(0);
    }
    let mut iov = libc::iovec {
        iov_base: datagram.as_ptr().cast_mut().cast(),
        iov_len: datagram.len(),
    };
    // SAFETY: mmsghdr is plain old data; all-zero is a valid empty header.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    for m in msgs.iter_mut().take(n) {
        m.msg_hdr.msg_iov = &raw mut iov;
        m.msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `n` headers, each pointing at one iovec over `datagram`, which the kernel only
    // reads (no msg_name: the socket is connected); all live across the call.
    let r = cvt_retry(|| unsafe {
        libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0)
    });
    match r {
        Ok(sent) => Ok(usize::try_from(sent).unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// Receive up to [`MAX_BATCH`] datagrams on the datagram socket `fd` with one
/// `recvmmsg(2)` (`MSG_WAITFORONE`: wait for the first as the socket's blocking mode and
/// `SO_RCVTIMEO` say, then take what is queued), into `buf` cut into slots of `slot`
/// bytes (longer datagrams are truncated); returns (datagrams, their total length as
/// sent). A timeout or an empty non-blocking socket gives `Ok((0, 0))`.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] for `slot == 0`; the OS error of `recvmmsg`.
pub fn recv_many(fd: BorrowedFd<'_>, buf: &mut [u8], slot: usize) -> io::Result<(usize, usize)> {
    let mut bytes = 0;
    let got = recv_slots(
        fd,
        buf,
        slot,
        MAX_BATCH,
        libc::MSG_WAITFORONE | libc::MSG_TRUNC,
        false,
        |_, len, _| bytes += len,
    )?;
    Ok((got, bytes))
}

/// One `recvmmsg(2)` of up to `max` (and [`MAX_BATCH`]) datagrams into `buf` cut into
/// slots of `slot` bytes, with `flags`; with `names` each datagram's source is read too.
/// `each(i, msg_len, source)` sees every datagram received. A timeout or an empty
/// non-blocking socket gives `Ok(0)`: the one body of [`recv_many`], [`recv_sized`] and
/// [`recv_batch_from`].
fn recv_slots(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    slot: usize,
    max: usize,
    flags: libc::c_int,
    names: bool,
    mut each: impl FnMut(usize, usize, Option<SocketAddr>),
) -> io::Result<usize> {
    if slot == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "slot of 0 bytes",
        ));
    }
    let n = (buf.len() / slot).min(MAX_BATCH).min(max);
    if n == 0 {
        return Ok(0);
    }
    // SAFETY: iovec, mmsghdr and sockaddr_storage are plain old data; all-zero is valid.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut addrs: [libc::sockaddr_storage; MAX_BATCH] = unsafe { std::mem::zeroed() };
    for (i, chunk) in buf.chunks_exact_mut(slot).take(n).enumerate() {
        iovs[i].iov_base = chunk.as_mut_ptr().cast();
        iovs[i].iov_len = slot;
        msgs[i].msg_hdr.msg_iov = &raw mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        if names {
            msgs[i].msg_hdr.msg_name = (&raw mut addrs[i]).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as _;
        }
    }
    // SAFETY: `n` headers, each with one iovec over a disjoint `slot`-byte piece of `buf`
    // and (with `names`) its own address buffer; all outlive the call. With MSG_TRUNC
    // msg_len is the datagram's real size.
    let r = cvt_retry(|| unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            flags,
            std::ptr::null_mut(),
        )
    });
    match r {
        Ok(got) => {
            let got = usize::try_from(got).unwrap_or(0);
            for (i, m) in msgs[..got].iter().enumerate() {
                let source = if names {
                    from_sockaddr(&addrs[i])
                } else {
                    None
                };
                each(i, m.msg_len as usize, source);
            }
            Ok(got)
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            Ok(0)
        }
        Err(e) => Err(e),
    }
}

/// `addr` as a `sockaddr_in`/`sockaddr_in6` for `msg_name`, and its length.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin) };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast(), sin6) };
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// Send each of `packets` (at most [`MAX_BATCH`]) to `to` with one `sendmmsg(2)` on the
/// unconnected datagram (or raw) socket `fd`; returns how many were sent. On a
/// non-blocking socket whose buffer is full, `Ok(0)`. A relay forwarding a batch it
/// received, or a load generator sending one datagram for each of many flows (from a raw
/// socket, each datagram carrying its own IP and UDP header), hands them over in one call.
///
/// # Errors
///
/// The OS error of `sendmmsg` (e.g. `ECONNREFUSED` after an ICMP port unreachable).
pub fn send_batch_to<P: AsRef<[u8]>>(
    fd: BorrowedFd<'_>,
    to: SocketAddr,
    packets: &[P],
) -> io::Result<usize> {
    let n = packets.len().min(MAX_BATCH);
    if n == 0 {
        return Ok(0);
    }
    let (mut name, name_len) = sockaddr(to);
    // SAFETY: iovec and mmsghdr are plain old data; all-zero values are valid.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    for (i, p) in packets.iter().take(n).enumerate() {
        let p = p.as_ref();
        iovs[i].iov_base = p.as_ptr().cast_mut().cast();
        iovs[i].iov_len = p.len();
        msgs[i].msg_hdr.msg_iov = &raw mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
        msgs[i].msg_hdr.msg_name = (&raw mut name).cast();
        msgs[i].msg_hdr.msg_namelen = name_len;
    }
    // SAFETY: `n` headers, each with one iovec over a packet the kernel only reads and the
    // one destination address; packets, iovecs, address and headers outlive the call.
    let r = cvt_retry(|| unsafe {
        libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), n as libc::c_uint, 0)
    });
    match r {
        Ok(sent) => Ok(usize::try_from(sent).unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(0),
        Err(e) => Err(e),
    }
}

/// Like [`recv_many`], and also the length of each datagram: `lens[i]` is the size of
/// the datagram in slot `i` (at most `slot`; longer ones are truncated to it). Receives at
/// most `lens.len()` datagrams.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] for `slot == 0`; the OS error of `recvmmsg`.
pub fn recv_sized(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    slot: usize,
    lens: &mut [usize],
) -> io::Result<usize> {
    let max = lens.len();
    recv_slots(
        fd,
        buf,
        slot,
        max,
        libc::MSG_WAITFORONE,
        false,
        |i, len, _| {
            lens[i] = len.min(slot);
        },
    )
}

/// Raise this process's soft limit of open files (`RLIMIT_NOFILE`) to its hard limit, for
/// a load generator or relay holding a socket per media port; returns the new soft limit.
///
/// # Errors
///
/// The OS error of `getrlimit`/`setrlimit`.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `lim` is a valid, writable rlimit for the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: `lim` is a valid rlimit, read only by the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

/// The source address a `recvmmsg(2)` filled in, if it is IPv4 or IPv6.
fn from_sockaddr(storage: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in; storage is larger
            // than and aligned for it.
            let sin: libc::sockaddr_in = unsafe { std::ptr::read((&raw const *storage).cast()) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6: libc::sockaddr_in6 = unsafe { std::ptr::read((&raw const *storage).cast()) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// Like [`recv_sized`], and also each datagram's source: `from[i]` is the sender of the
/// datagram in slot `i` (`None` for a family other than IPv4/IPv6). A relay, which must
/// know who sent each packet, receives a batch with one `recvmmsg(2)`.
///
/// # Errors
///
/// [`io::ErrorKind::InvalidInput`] for `slot == 0`; the OS error of `recvmmsg`.
pub fn recv_batch_from(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    slot: usize,
    lens: &mut [usize],
    from: &mut [Option<SocketAddr>],
) -> io::Result<usize> {
    let max = lens.len().min(from.len());
    recv_slots(
        fd,
        buf,
        slot,
        max,
        libc::MSG_DONTWAIT,
        true,
        |i, len, source| {
            lens[i] = len.min(slot);
            from[i] = source;
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::os::fd::AsFd;

    #[test]
    fn sends_a_batch_over_loopback() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        tx.connect(rx.local_addr().unwrap()).unwrap();
        assert_eq!(send_repeated(tx.as_fd(), b"hello", 3).unwrap(), 3);
        let mut buf = [0u8; 16];
        assert_eq!(rx.recv(&mut buf).unwrap(), 5);
        let mut many = vec![0u8; 4 * 2048];
        rx.set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .unwrap();
        let mut got = (0, 0);
        while got.0 < 2 {
            let (n, b) = recv_many(rx.as_fd(), &mut many, 2048).unwrap();
            got = (got.0 + n, got.1 + b);
        }
        assert_eq!(got, (2, 10));
        assert_eq!(send_repeated(tx.as_fd(), b"x", 0).unwrap(), 0);
        rx.set_nonblocking(true).unwrap();
        assert_eq!(recv_many(rx.as_fd(), &mut many, 2048).unwrap(), (0, 0));
    }

    #[test]
    fn sends_different_datagrams_and_receives_their_sizes() {
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let to = rx.local_addr().unwrap();
        let packets: [&[u8]; 3] = [b"a", b"bbb", b"cc"];
        assert_eq!(send_batch_to(tx.as_fd(), to, &packets).unwrap(), 3);
        rx.set_read_timeout(Some(std::time::Duration::from_millis(500)))
            .unwrap();
        let mut buf = vec![0u8; 4 * 16];
        let mut lens = [0usize; 4];
        let mut got = Vec::new();
        while got.len() < 3 {
            let n = recv_sized(rx.as_fd(), &mut buf, 16, &mut lens).unwrap();
            for (i, &l) in lens[..n].iter().enumerate() {
                got.push(buf[i * 16..i * 16 + l].to_vec());
            }
        }
        assert_eq!(got, vec![b"a".to_vec(), b"bbb".to_vec(), b"cc".to_vec()]);
        assert_eq!(send_batch_to::<&[u8]>(tx.as_fd(), to, &[]).unwrap(), 0);
    }

    #[test]
    fn the_open_files_limit_ends_at_the_hard_limit() {
        let soft = raise_open_files_limit().unwrap();
        assert_eq!(raise_open_files_limit().unwrap(), soft);
        assert!(soft > 0);
    }

    #[test]
    fn a_batch_comes_with_its_sources() {
        let rx = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        // Blocking with a bound: `peek_from` waits for a datagram (recv_batch_from itself
        // never blocks: MSG_DONTWAIT).
        rx.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .unwrap();
        let to = rx.local_addr().unwrap();
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        a.send_to(b"one", to).unwrap();
        b.send_to(b"second", to).unwrap();
        let mut buf = vec![0u8; 4 * 64];
        let (mut lens, mut from) = ([0usize; 4], [None; 4]);
        let mut got = 0;
        let mut peek = [0u8; 1];
        while got < 2 && rx.peek_from(&mut peek).is_ok() {
            got += recv_batch_from(
                rx.as_fd(),
                &mut buf[got * 64..],
                64,
                &mut lens[got..],
                &mut from[got..],
            )
            .unwrap();
        }
        assert_eq!(got, 2);
        assert_eq!(
            (&buf[..lens[0]], from[0]),
            (&b"one"[..], Some(a.local_addr().unwrap()))
        );
        assert_eq!(
            (&buf[64..64 + lens[1]], from[1]),
            (&b"second"[..], Some(b.local_addr().unwrap()))
        );
        // nothing left: a non-blocking empty socket gives 0
        assert_eq!(
            recv_batch_from(rx.as_fd(), &mut buf, 64, &mut lens, &mut from).unwrap(),
            0
        );
    }
}
