//! The relay's port tables: per relay address, a `Vec` indexed by `port - first` that
//! names the stream owning each port (O(1) on the fast path), and a free list of even/odd
//! pairs (RFC 3550 §11: RTP on an even port, RTCP on the next).

use super::PortAllocation;
use crate::rng::SplitMix64;
use std::collections::VecDeque;
use std::net::IpAddr;

/// What owns a port: the session slot, the stream, the side and which port of the leg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owner {
    pub(super) slot: u32,
    pub(super) stream: u16,
    /// 0 = side A, 1 = side B.
    pub(super) side: u8,
    /// 0 = RTP port, 1 = RTCP port.
    pub(super) socket: u8,
}

const FREE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy)]
struct Slot {
    slot: u32,
    stream: u16,
    side: u8,
    socket: u8,
}

/// One address's table.
#[derive(Debug)]
pub(super) struct PortTable {
    pub(super) ip: IpAddr,
    first: u16,
    slots: Vec<Slot>,
    free: VecDeque<u32>,
    quarantined: usize,
}

impl PortTable {
    /// A table over the pairs of `start..=end` (the first pair starts at the first even
    /// port); `None` when there is no pair.
    pub(super) fn new(ip: IpAddr, start: u16, end: u16) -> Option<PortTable> {
        let first = start.checked_add(start % 2)?;
        if start == 0 || first >= end {
            return None;
        }
        // Ports first..=end, two per pair (a trailing odd port is left out).
        let pairs = (u32::from(end) - u32::from(first)).div_ceil(2);
        if pairs == 0 {
            return None;
        }
        Some(PortTable {
            ip,
            first,
            slots: vec![
                Slot {
                    slot: FREE,
                    stream: 0,
                    side: 0,
                    socket: 0,
                };
                2 * pairs as usize
            ],
            free: (0..pairs).collect(),
            quarantined: 0,
        })
    }

    /// Pairs in the table.
    pub(super) fn pairs(&self) -> usize {
        self.slots.len() / 2
    }

    /// Free pairs.
    pub(super) fn free_pairs(&self) -> usize {
        self.free.len()
    }

    /// Pairs withdrawn after a failed bind.
    pub(super) fn quarantined(&self) -> usize {
        self.quarantined
    }

    /// Takes a free pair for `owner` (socket ignored: the pair's two ports get 0 and 1);
    /// returns the RTP port.
    pub(super) fn take(
        &mut self,
        how: PortAllocation,
        rng: &mut SplitMix64,
        owner: Owner,
    ) -> Option<u16> {
        let pair = match how {
            PortAllocation::Sequential => self.free.pop_front()?,
            PortAllocation::Random => {
                if self.free.is_empty() {
                    return None;
                }
                // The free list holds at most 32,768 pairs: the cast cannot truncate.
                let i = (rng.next_u64() % self.free.len() as u64) as usize;
                self.free.swap_remove_back(i)?
            }
        };
        for socket in 0..2u8 {
            self.slots[2 * pair as usize + usize::from(socket)] = Slot {
                slot: owner.slot,
                stream: owner.stream,
                side: owner.side,
                socket,
            };
        }
        // pair < 32,768 and first + 2·pair ≤ end: no overflow.
        Some(self.first + 2 * pair as u16)
    }

    fn pair_of(&self, rtp_port: u16) -> Option<u32> {
        let off = rtp_port.checked_sub(self.first)?;
        (off % 2 == 0 && usize::from(off) < self.slots.len()).then_some(u32::from(off / 2))
    }

    /// Returns the pair at `rtp_port` to the free list (or withdraws it for good when
    /// `quarantine`).
    pub(super) fn give_back(&mut self, rtp_port: u16, quarantine: bool) {
        let Some(pair) = self.pair_of(rtp_port) else {
            return;
        };
        let i = 2 * pair as usize;
        if self.slots[i].slot == FREE {
            return;
        }
        self.slots[i].slot = FREE;
        self.slots[i + 1].slot = FREE;
        if quarantine {
            self.quarantined += 1;
        } else {
            self.free.push_back(pair);
        }
    }

    /// The owner of `port`, if in use.
    #[inline]
    pub(super) fn owner(&self, port: u16) -> Option<Owner> {
        let off = port.checked_sub(self.first)?;
        let s = self.slots.get(usize::from(off))?;
        (s.slot != FREE).then_some(Owner {
            slot: s.slot,
            stream: s.stream,
            side: s.side,
            socket: s.socket,
        })
    }

    /// Bytes the table holds on the heap.
    pub(super) fn heap_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Slot>() + self.free.capacity() * 4
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn owner(slot: u32) -> Owner {
        Owner {
            slot,
            stream: 0,
            side: 0,
            socket: 0,
        }
    }

    #[test]
    fn pairs_are_even_odd_inside_the_range() {
        let ip = "192.0.2.1".parse().unwrap();
        for (start, end, pairs) in [
            (10000, 10003, 2),
            (10001, 10004, 1),
            (10001, 10005, 2),
            (10000, 10000, 0),
            (65534, 65535, 1),
        ] {
            let t = PortTable::new(ip, start, end);
            assert_eq!(
                t.as_ref().map_or(0, PortTable::pairs),
                pairs,
                "{start}-{end}"
            );
            if let Some(mut t) = t {
                let mut rng = SplitMix64::new(1);
                let mut seen = Vec::new();
                while let Some(p) = t.take(PortAllocation::Random, &mut rng, owner(1)) {
                    assert!(p % 2 == 0 && p >= start && p < end, "{p} in {start}-{end}");
                    assert_eq!(t.owner(p + 1).map(|o| o.socket), Some(1));
                    seen.push(p);
                }
                assert_eq!(seen.len(), pairs);
                for p in seen {
                    t.give_back(p, false);
                    assert_eq!(t.owner(p), None);
                }
                assert_eq!(t.free_pairs(), pairs);
            }
        }
        assert!(PortTable::new(ip, 0, 100).is_none());
    }

    #[test]
    fn sequential_reuses_last() {
        let mut t = PortTable::new("192.0.2.1".parse().unwrap(), 20000, 20007).unwrap();
        let mut rng = SplitMix64::new(1);
        let a = t
            .take(PortAllocation::Sequential, &mut rng, owner(0))
            .unwrap();
        assert_eq!(a, 20000);
        t.give_back(a, false);
        assert_eq!(
            t.take(PortAllocation::Sequential, &mut rng, owner(0)),
            Some(20002)
        );
        t.give_back(20002, true);
        assert_eq!(t.quarantined(), 1);
        assert_eq!(t.free_pairs(), 3);
    }
}
