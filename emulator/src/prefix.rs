//! [`Prefix`]: an IPv4 or IPv6 network prefix such as `10.0.1.0/24`.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// An IP network: address and prefix length, host bits zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

/// A prefix string that is not `ADDRESS/LEN` with a valid length and zero host bits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    /// Not `ADDRESS/LEN`.
    #[error("expected ADDRESS/LENGTH, like 10.0.1.0/24")]
    Syntax,
    /// Length above 32 (IPv4) or 128 (IPv6).
    #[error("prefix length {0} is too long for the address family")]
    Length(u8),
    /// Host bits set, e.g. `10.0.1.5/24`.
    #[error("host bits are set; did you mean {0}?")]
    HostBits(Prefix),
}

fn to_u128(a: IpAddr) -> u128 {
    match a {
        IpAddr::V4(a) => u32::from(a) as u128,
        IpAddr::V6(a) => u128::from(a),
    }
}

fn bits(a: IpAddr) -> u8 {
    if a.is_ipv4() { 32 } else { 128 }
}

fn from_u128(v: u128, like: IpAddr) -> IpAddr {
    match like {
        IpAddr::V4(_) => IpAddr::V4((v as u32).into()),
        IpAddr::V6(_) => IpAddr::V6(v.into()),
    }
}

impl Prefix {
    /// A prefix; fails if `len` is too long or host bits are set.
    pub fn new(addr: IpAddr, len: u8) -> Result<Self, PrefixError> {
        if len > bits(addr) {
            return Err(PrefixError::Length(len));
        }
        let p = Prefix { addr, len };
        let masked = from_u128(to_u128(addr) & p.mask(), addr);
        if masked != addr {
            return Err(PrefixError::HostBits(Prefix { addr: masked, len }));
        }
        Ok(p)
    }

    fn mask(&self) -> u128 {
        let b = bits(self.addr);
        if self.len == 0 {
            0
        } else {
            let all = if b == 32 { u32::MAX as u128 } else { u128::MAX };
            all & !((1u128 << (b - self.len)) - 1).min(all)
        }
    }

    /// The network address.
    pub fn addr(&self) -> IpAddr {
        self.addr
    }

    /// The prefix length.
    #[allow(clippy::len_without_is_empty)] // a prefix length, not a collection size
    pub fn len(&self) -> u8 {
        self.len
    }

    /// Whether `a` is inside this network.
    pub fn contains(&self, a: IpAddr) -> bool {
        a.is_ipv4() == self.addr.is_ipv4() && to_u128(a) & self.mask() == to_u128(self.addr)
    }

    /// Whether the two networks share any address.
    pub fn overlaps(&self, other: &Prefix) -> bool {
        self.contains(other.addr) || other.contains(self.addr)
    }

    /// The `n`-th address of the network (0 is the network address itself), if inside it.
    pub fn nth(&self, n: u128) -> Option<IpAddr> {
        let host_bits = bits(self.addr) - self.len;
        if host_bits < 128 && n >> host_bits != 0 {
            return None;
        }
        Some(from_u128(to_u128(self.addr) + n, self.addr))
    }

    /// The number of the last usable host address: for IPv4 below /31 the broadcast
    /// address is not usable.
    pub fn last_host_index(&self) -> u128 {
        let host_bits = bits(self.addr) - self.len;
        let size_minus_1 = if host_bits >= 128 {
            u128::MAX
        } else {
            (1u128 << host_bits) - 1
        };
        if self.addr.is_ipv4() && host_bits >= 2 {
            size_minus_1 - 1
        } else {
            size_minus_1
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl FromStr for Prefix {
    type Err = PrefixError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (a, l) = s.split_once('/').ok_or(PrefixError::Syntax)?;
        let addr: IpAddr = a.trim().parse().map_err(|_| PrefixError::Syntax)?;
        let len: u8 = l.trim().parse().map_err(|_| PrefixError::Syntax)?;
        Prefix::new(addr, len)
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn parse_contains_overlap() {
        let p: Prefix = "10.0.1.0/24".parse().unwrap();
        assert!(p.contains("10.0.1.200".parse().unwrap()));
        assert!(!p.contains("10.0.2.1".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
        assert!(p.overlaps(&"10.0.0.0/16".parse().unwrap()));
        assert!(!p.overlaps(&"10.0.2.0/24".parse().unwrap()));
        assert_eq!(p.nth(1).unwrap().to_string(), "10.0.1.1");
        assert_eq!(p.nth(256), None);
        assert_eq!(p.last_host_index(), 254);
        assert_eq!(
            "10.0.1.5/24".parse::<Prefix>().unwrap_err().to_string(),
            "host bits are set; did you mean 10.0.1.0/24?"
        );
        assert!(
            "2001:db8::/32"
                .parse::<Prefix>()
                .unwrap()
                .contains("2001:db8::9".parse().unwrap())
        );
        assert_eq!("0.0.0.0/0".parse::<Prefix>().unwrap().len(), 0);
        assert!(matches!(
            "1.2.3.4/33".parse::<Prefix>(),
            Err(PrefixError::Length(33))
        ));
    }
}
