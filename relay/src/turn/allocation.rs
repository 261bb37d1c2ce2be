//! Allocation state (RFC 8656 §2.2, §9, §12): one per 5-tuple, with its permissions and
//! channel bindings, the relayed port pool with EVEN-PORT reservations (§7.2, §14.7),
//! and the timer index.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::rng::SplitMix64;
use crate::stun::TransactionId;

/// Default allocation lifetime (RFC 8656 §3.2, §7.2): 10 minutes.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(600);
/// Longest allocation lifetime the server grants (RFC 8656 §7.2 "SHOULD NOT exceed 3600").
pub const MAX_LIFETIME: Duration = Duration::from_secs(3600);
/// Permission lifetime (RFC 8656 §9): 300 s, not configurable by the client.
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Channel binding lifetime (RFC 8656 §12): 10 minutes.
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// How long a port reserved by EVEN-PORT with the R bit stays reserved (RFC 8656 §7.2
/// recommends about 30 seconds).
pub const RESERVATION_LIFETIME: Duration = Duration::from_secs(30);

/// The transport between a TURN client and the server (RFC 8656 §3.1): UDP (one STUN
/// message or ChannelData per datagram), or TCP or TLS over TCP (the driver terminates
/// TLS), a byte stream with STUN messages and ChannelData framed back to back and
/// ChannelData padded to 4 bytes (RFC 8656 §12.5); the 5-tuple is then the connection's.
/// The relayed transport is always UDP; this is the client-facing side only.
pub use crate::io::Transport;

/// The 5-tuple of an allocation (RFC 8656 §2.2): the client's transport address as the
/// server sees it, the server's listening transport address, and the transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FiveTuple {
    /// UDP, or a stream connection.
    pub transport: Transport,
    /// The client's (server-reflexive) transport address.
    pub client: SocketAddr,
    /// The server transport address the client talks to.
    pub server: SocketAddr,
}

/// A snapshot of one allocation, for debugging and leak checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationInfo {
    /// The allocation's 5-tuple.
    pub five_tuple: FiveTuple,
    /// The authenticated username that created it.
    pub user: String,
    /// The relayed transport address (RFC 8656 §2.2).
    pub relayed: SocketAddr,
    /// When it expires unless refreshed.
    pub expires: Instant,
    /// Peer IPs with a permission (RFC 8656 §9), sorted.
    pub permissions: Vec<IpAddr>,
    /// Bound channels and their peers (RFC 8656 §12), sorted by number.
    pub channels: Vec<(u16, SocketAddr)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub(crate) peer: SocketAddr,
    pub(crate) expires: Instant,
}

#[derive(Debug, Clone)]
pub(crate) struct Allocation {
    pub(crate) user: String,
    pub(crate) relayed: SocketAddr,
    pub(crate) expires: Instant,
    pub(crate) permissions: HashMap<IpAddr, Instant>,
    pub(crate) channels: HashMap<u16, Channel>,
    pub(crate) by_peer: HashMap<SocketAddr, u16>,
    /// The Allocate transaction and its success response, resent on retransmission (§7.2).
    pub(crate) allocate_tid: TransactionId,
    pub(crate) allocate_response: Vec<u8>,
}

impl Allocation {
    pub(crate) fn has_permission(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions.get(&ip).is_some_and(|e| *e > now)
    }

    pub(crate) fn info(&self, ft: FiveTuple) -> AllocationInfo {
        let mut permissions: Vec<IpAddr> = self.permissions.keys().copied().collect();
        permissions.sort();
        let mut channels: Vec<(u16, SocketAddr)> =
            self.channels.iter().map(|(n, c)| (*n, c.peer)).collect();
        channels.sort();
        AllocationInfo {
            five_tuple: ft,
            user: self.user.clone(),
            relayed: self.relayed,
            expires: self.expires,
            permissions,
            channels,
        }
    }
}

/// What a timer entry refers to; entries are `(deadline, key)` in a `BTreeSet`, so
/// expiry order is deterministic (time, then key).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum TimerKey {
    /// Allocation lifetime (RFC 8656 §7.2, §8).
    Allocation(FiveTuple),
    /// Permission lifetime (RFC 8656 §9).
    Permission(FiveTuple, IpAddr),
    /// Channel binding lifetime (RFC 8656 §12).
    Channel(FiveTuple, u16),
    /// EVEN-PORT reservation (RFC 8656 §7.2).
    Reservation([u8; 8]),
}

pub(crate) type Timers = BTreeSet<(Instant, TimerKey)>;

/// Relayed ports in use or reserved, and the seeded generator that picks them.
#[derive(Debug, Clone)]
pub(crate) struct PortPool {
    lo: u16,
    hi: u16,
    used: HashSet<u16>,
    rng: SplitMix64,
}

impl PortPool {
    pub(crate) fn new(
        range: (u16, u16),
        seed: u64,
        excluded: impl IntoIterator<Item = u16>,
    ) -> Self {
        PortPool {
            lo: range.0,
            hi: range.1,
            used: excluded.into_iter().collect(),
            rng: SplitMix64::new(seed ^ 0x5EED_7E57_0000_0001),
        }
    }

    /// The next draw of the pool's generator.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// Picks a free port at a seeded random start, scanning upwards: even when `even`,
    /// and with the next port free too when `reserve_next` (both are then taken).
    pub(crate) fn take(&mut self, even: bool, reserve_next: bool) -> Option<(u16, Option<u16>)> {
        let n = u32::from(self.hi) - u32::from(self.lo) + 1;
        let start = (self.next_u64() % u64::from(n)) as u32;
        for i in 0..n {
            let p = (u32::from(self.lo) + (start + i) % n) as u16;
            if self.used.contains(&p) || (even && !p.is_multiple_of(2)) {
                continue;
            }
            if reserve_next {
                match p.checked_add(1) {
                    Some(q) if q <= self.hi && !self.used.contains(&q) => {
                        self.used.insert(p);
                        self.used.insert(q);
                        return Some((p, Some(q)));
                    }
                    _ => continue,
                }
            }
            self.used.insert(p);
            return Some((p, None));
        }
        None
    }

    pub(crate) fn release(&mut self, port: u16) {
        self.used.remove(&port);
    }
}
