//! Socket helpers for load generation (`pinhole bench`): many datagrams per system call.

use std::io;
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
    if slot == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "slot of 0 bytes",
        ));
    }
    let n = (buf.len() / slot).min(MAX_BATCH);
    if n == 0 {
        return Ok((0, 0));
    }
    // SAFETY: iovec and mmsghdr are plain old data; all-zero values are valid.
    let mut iovs: [libc::iovec; MAX_BATCH] = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { std::mem::zeroed() };
    for (i, chunk) in buf.chunks_exact_mut(slot).take(n).enumerate() {
        iovs[i].iov_base = chunk.as_mut_ptr().cast();
        iovs[i].iov_len = slot;
        msgs[i].msg_hdr.msg_iov = &raw mut iovs[i];
        msgs[i].msg_hdr.msg_iovlen = 1;
    }
    // SAFETY: `n` headers, each with one iovec over a disjoint `slot`-byte piece of `buf`;
    // `buf`, the iovecs and headers outlive the call; MSG_TRUNC makes msg_len the real size.
    let r = cvt_retry(|| unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            n as libc::c_uint,
            libc::MSG_WAITFORONE | libc::MSG_TRUNC,
            std::ptr::null_mut(),
        )
    });
    match r {
        Ok(got) => {
            let got = usize::try_from(got).unwrap_or(0);
            let bytes = msgs[..got].iter().map(|m| m.msg_len as usize).sum();
            Ok((got, bytes))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock || e.kind() == io::ErrorKind::TimedOut => {
            Ok((0, 0))
        }
        Err(e) => Err(e),
    }
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
}
