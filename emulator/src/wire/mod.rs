//! Packets on the wire: a buffer with head- and tailroom, parsing of IPv4/IPv6 with
//! UDP/TCP/ICMP, in-place address/port rewrite with incremental checksums (RFC 1624), and
//! builders for the packets devices send back (ICMP errors, TCP RST).
//!
//! The hot path never re-parses with a general parser or recomputes a whole checksum:
//! [`parse`] reads the few fields a device needs into a [`PacketInfo`], and the `set_*`
//! rewrites patch header fields and adjust checksums by the difference.

mod buf;
pub mod checksum;
pub mod offload;
mod packet;
pub mod reply;

pub use buf::{CapacityError, PacketBuf};
pub use packet::{
    Endpoint, Fragment, IcmpKind, IpVersion, L4, PacketInfo, Proto, WireError, checksums_valid,
    decrement_ttl, parse, parse_embedded, set_dst, set_src, tcp_flags, update_icmp_checksum,
};
