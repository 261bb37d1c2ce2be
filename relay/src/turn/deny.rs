//! The peer-address deny list (RFC 8656 §21.1.2 "the server MAY … refuse peers"),
//! on by default: a TURN server that relays to its own loopback or to itself lets any
//! authenticated client reach services bound to localhost (the coturn CVE-2020-26262
//! class, where `0.0.0.0`, `::` and IPv4-mapped forms slipped past a loopback check).
//!
//! Refused: 127.0.0.0/8, 0.0.0.0/8, `::`, `::1`, the server's own addresses (relay and
//! listening), configured extra prefixes — and each IPv4 rule also in its IPv4-mapped
//! (`::ffff:a.b.c.d`, ::ffff:0:0/96) and IPv4-compatible (`::a.b.c.d`, ::/96) IPv6 forms.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A set of refused peer IP prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenyList {
    prefixes: Vec<(IpAddr, u8)>,
}

impl DenyList {
    /// The default rules plus the server's own addresses and `extra` prefixes
    /// (an IPv4 prefix also covers its IPv4-mapped and IPv4-compatible IPv6 forms).
    pub fn new(own: impl IntoIterator<Item = IpAddr>, extra: &[(IpAddr, u8)]) -> Self {
        let mut prefixes = vec![
            (IpAddr::V4(Ipv4Addr::new(127, 0, 0, 0)), 8),
            (IpAddr::V4(Ipv4Addr::UNSPECIFIED), 8),
            (IpAddr::V6(Ipv6Addr::UNSPECIFIED), 128),
            (IpAddr::V6(Ipv6Addr::LOCALHOST), 128),
        ];
        for ip in own {
            prefixes.push((ip, if ip.is_ipv4() { 32 } else { 128 }));
        }
        prefixes.extend_from_slice(extra);
        DenyList { prefixes }
    }

    /// The prefixes, in order.
    pub fn prefixes(&self) -> &[(IpAddr, u8)] {
        &self.prefixes
    }

    /// Whether `ip`, or the IPv4 address embedded in an IPv4-mapped or IPv4-compatible
    /// IPv6 `ip`, falls in a refused prefix.
    pub fn is_denied(&self, ip: IpAddr) -> bool {
        let embedded = match ip {
            IpAddr::V6(v6) => embedded_v4(v6).map(IpAddr::V4),
            IpAddr::V4(_) => None,
        };
        self.prefixes.iter().any(|(net, len)| {
            contains(*net, *len, ip) || embedded.is_some_and(|e| contains(*net, *len, e))
        })
    }
}

/// The IPv4 address in ::ffff:a.b.c.d (mapped) or ::a.b.c.d (compatible, including
/// `::` and `::1`, which are then 0.0.0.0 and 0.0.0.1).
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = v6.octets();
    let head_zero = o[..10].iter().all(|b| *b == 0);
    let mapped = head_zero && o[10] == 0xff && o[11] == 0xff;
    let compatible = head_zero && o[10] == 0 && o[11] == 0;
    (mapped || compatible).then(|| Ipv4Addr::new(o[12], o[13], o[14], o[15]))
}

fn contains(net: IpAddr, len: u8, ip: IpAddr) -> bool {
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let len = u32::from(len.min(32));
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let len = u32::from(len.min(128));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn table() {
        let own: Vec<IpAddr> = vec![
            "203.0.113.1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ];
        let d = DenyList::new(own, &[("10.0.0.0".parse().unwrap(), 8)]);
        for ip in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::127.0.0.1",
            "::ffff:0.0.0.0",
            "203.0.113.1",
            "::ffff:203.0.113.1",
            "::203.0.113.1",
            "2001:db8::1",
            "10.1.2.3",
            "::ffff:10.1.2.3",
        ] {
            assert!(d.is_denied(ip.parse().unwrap()), "{ip} must be denied");
        }
        for ip in [
            "198.51.100.7",
            "203.0.113.2",
            "2001:db8::2",
            "::ffff:198.51.100.7",
            "64:ff9b::7f00:1",
            "11.0.0.1",
        ] {
            assert!(!d.is_denied(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }
}
