//! Hand-written rtnetlink requests: link up + MTU, addresses, default routes.
//!
//! A netlink socket acts on the network namespace it was created in, so open it while the
//! thread is inside the host's namespace.

use std::io;
use std::mem;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::{SysError, cvt, cvt_retry};

const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 0x2;
const NLMSG_HDRLEN: usize = 16;

const IFLA_MTU: u16 = 4;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_FLAGS: u16 = 8;
const IFA_F_NODAD: u32 = 0x02;
const RT_SCOPE_UNIVERSE: u8 = 0;

/// A blocking `NETLINK_ROUTE` socket bound to the namespace it was opened in.
pub(super) struct Netlink {
    fd: OwnedFd,
    seq: u32,
}

impl Netlink {
    /// Open a route netlink socket in the calling thread's network namespace.
    pub(super) fn open() -> Result<Netlink, SysError> {
        // SAFETY: plain socket(2); the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        let raw = cvt(raw, || "socket(AF_NETLINK, NETLINK_ROUTE)".into())?;
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: sockaddr_nl is plain data; all-zero is valid (kernel assigns the port).
        let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
        sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: `sa` is a valid sockaddr_nl of the size passed.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sa).cast::<libc::sockaddr>(),
                mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        cvt(r, || "bind(netlink)".into())?;
        Ok(Netlink { fd, seq: 0 })
    }

    /// Bring interface `index` up and optionally set its MTU.
    pub(super) fn set_link(&mut self, index: u32, mtu: Option<u32>) -> Result<(), SysError> {
        let mut body = Vec::with_capacity(32);
        body.push(libc::AF_UNSPEC as u8); // ifi_family
        body.push(0); // pad
        body.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
        body.extend_from_slice(&(index as i32).to_ne_bytes());
        body.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_flags
        body.extend_from_slice(&(libc::IFF_UP as u32).to_ne_bytes()); // ifi_change
        if let Some(mtu) = mtu {
            attr(&mut body, IFLA_MTU, &mtu.to_ne_bytes());
        }
        let what = match mtu {
            Some(mtu) => format!("rtnetlink: set interface {index} up with MTU {mtu}"),
            None => format!("rtnetlink: set interface {index} up"),
        };
        self.request(&what, libc::RTM_NEWLINK, 0, &body)
    }

    /// Add `addr/prefix` to interface `index`; IPv6 addresses skip duplicate address
    /// detection so that they are usable at once.
    pub(super) fn add_addr(
        &mut self,
        index: u32,
        addr: IpAddr,
        prefix: u8,
    ) -> Result<(), SysError> {
        let mut body = Vec::with_capacity(48);
        let (family, flags) = match addr {
            IpAddr::V4(_) => (libc::AF_INET as u8, 0u8),
            IpAddr::V6(_) => (libc::AF_INET6 as u8, IFA_F_NODAD as u8),
        };
        body.push(family);
        body.push(prefix);
        body.push(flags);
        body.push(RT_SCOPE_UNIVERSE);
        body.extend_from_slice(&index.to_ne_bytes());
        match addr {
            IpAddr::V4(a) => {
                attr(&mut body, IFA_LOCAL, &a.octets());
                attr(&mut body, IFA_ADDRESS, &a.octets());
            }
            IpAddr::V6(a) => {
                attr(&mut body, IFA_ADDRESS, &a.octets());
                attr(&mut body, IFA_FLAGS, &IFA_F_NODAD.to_ne_bytes());
            }
        }
        self.request(
            &format!("rtnetlink: add address {addr}/{prefix} to interface {index}"),
            libc::RTM_NEWADDR,
            NLM_F_CREATE | NLM_F_EXCL,
            &body,
        )
    }

    /// Add a default route of the given family through interface `index`, via `gateway`
    /// or, without one, on-link (every destination is a neighbour on the TUN).
    pub(super) fn add_default_route(
        &mut self,
        index: u32,
        ipv6: bool,
        gateway: Option<IpAddr>,
    ) -> Result<(), SysError> {
        let mut body = Vec::with_capacity(40);
        let family = if ipv6 { libc::AF_INET6 } else { libc::AF_INET } as u8;
        let scope = if !ipv6 && gateway.is_none() {
            libc::RT_SCOPE_LINK
        } else {
            RT_SCOPE_UNIVERSE
        };
        body.extend_from_slice(&[
            family,
            0, // rtm_dst_len: default route
            0, // rtm_src_len
            0, // rtm_tos
            libc::RT_TABLE_MAIN,
            libc::RTPROT_STATIC,
            scope,
            libc::RTN_UNICAST,
        ]);
        body.extend_from_slice(&0u32.to_ne_bytes()); // rtm_flags
        attr(&mut body, libc::RTA_OIF, &index.to_ne_bytes());
        match gateway {
            Some(IpAddr::V4(g)) => attr(&mut body, libc::RTA_GATEWAY, &g.octets()),
            Some(IpAddr::V6(g)) => attr(&mut body, libc::RTA_GATEWAY, &g.octets()),
            None => {}
        }
        let what = match gateway {
            Some(g) => format!("rtnetlink: add default route via {g} on interface {index}"),
            None => format!(
                "rtnetlink: add on-link IPv{} default route on interface {index}",
                if ipv6 { 6 } else { 4 }
            ),
        };
        self.request(&what, libc::RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &body)
    }

    /// Send one request and wait for its acknowledgement.
    fn request(&mut self, what: &str, ty: u16, flags: u16, body: &[u8]) -> Result<(), SysError> {
        self.seq = self.seq.wrapping_add(1);
        let len = NLMSG_HDRLEN + body.len();
        let mut msg = Vec::with_capacity(len);
        msg.extend_from_slice(&(len as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&(flags | NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
        msg.extend_from_slice(&self.seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
        msg.extend_from_slice(body);
        let fd = self.fd.as_raw_fd();
        // SAFETY: `msg` is a valid buffer of the length passed.
        let sent =
            cvt_retry(|| unsafe { libc::send(fd, msg.as_ptr().cast(), msg.len(), 0) } as i32)
                .map_err(|e| SysError::os(format!("{what} (send)"), e))?;
        if sent as usize != msg.len() {
            return Err(SysError::os(
                format!("{what} (send)"),
                io::Error::new(io::ErrorKind::WriteZero, "short netlink send"),
            ));
        }
        let mut buf = vec![0u8; 16384];
        loop {
            // SAFETY: `buf` is a valid writable buffer of the length passed.
            let n = cvt_retry(|| unsafe {
                libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) as i32
            })
            .map_err(|e| SysError::os(format!("{what} (recv)"), e))? as usize;
            let mut off = 0;
            while off + NLMSG_HDRLEN <= n {
                let mlen = u32::from_ne_bytes(field(&buf, off)) as usize;
                let mty = u16::from_ne_bytes(field(&buf, off + 4));
                let mseq = u32::from_ne_bytes(field(&buf, off + 8));
                if mlen < NLMSG_HDRLEN || off + mlen > n {
                    break;
                }
                if mty == NLMSG_ERROR && mseq == self.seq && mlen >= NLMSG_HDRLEN + 4 {
                    let code = i32::from_ne_bytes(field(&buf, off + NLMSG_HDRLEN));
                    return if code == 0 {
                        Ok(())
                    } else {
                        Err(SysError::os(what, io::Error::from_raw_os_error(-code)))
                    };
                }
                off += align4(mlen);
            }
        }
    }
}

fn field<const N: usize>(buf: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&buf[at..at + N]);
    out
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Append one `rtattr` (length, type, data, padding to 4 bytes).
fn attr(buf: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(data);
    buf.resize(buf.len() + align4(len) - len, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attributes_are_padded_to_four_bytes() {
        let mut buf = Vec::new();
        attr(&mut buf, 7, &[1, 2, 3, 4, 5]);
        assert_eq!(buf.len(), 12);
        assert_eq!(u16::from_ne_bytes([buf[0], buf[1]]), 9);
        assert_eq!(u16::from_ne_bytes([buf[2], buf[3]]), 7);
        assert_eq!(&buf[4..9], &[1, 2, 3, 4, 5]);
        assert_eq!(&buf[9..], &[0, 0, 0]);
    }
}
