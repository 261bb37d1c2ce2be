//! External address and port allocation (RFC 4787 §4.1 pooling, §4.2 port assignment:
//! preservation, parity, sequential or random), and the bookkeeping of ports in use.

use super::hash::FxHashMap;
use super::table::A16;
use super::table::Binding;
use super::{Nat, Pooling, PortAllocation};
use crate::verdict::DropReason;
use std::net::IpAddr;

#[derive(Clone, Debug)]
pub(super) struct Pool {
    pub(super) addrs: Vec<IpAddr>,
    index: FxHashMap<IpAddr, u16>,
    v4: Vec<u16>,
    v6: Vec<u16>,
}

impl Pool {
    pub(super) fn new(addrs: &[IpAddr]) -> Self {
        let mut p = Pool {
            addrs: addrs.to_vec(),
            index: FxHashMap::default(),
            v4: Vec::new(),
            v6: Vec::new(),
        };
        for (i, a) in addrs.iter().enumerate() {
            p.index.insert(*a, i as u16);
            if a.is_ipv4() {
                p.v4.push(i as u16);
            } else {
                p.v6.push(i as u16);
            }
        }
        p
    }

    #[inline]
    pub(super) fn index_of(&self, a: IpAddr) -> Option<u16> {
        if self.addrs.len() <= 4 {
            self.addrs.iter().position(|x| *x == a).map(|i| i as u16)
        } else {
            self.index.get(&a).copied()
        }
    }

    pub(super) fn family(&self, v6: bool) -> &[u16] {
        if v6 { &self.v6 } else { &self.v4 }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub(super) struct PortState {
    /// Ports in use, by parity.
    pub(super) used: [u32; 2],
    /// Sequential allocation: the next port to try.
    pub(super) cursor: u16,
}

impl Nat {
    pub(super) fn reset_ports(&mut self) {
        let lo = self.config.port_range.0;
        self.ports = vec![
            PortState {
                used: [0, 0],
                cursor: lo
            };
            self.pool.addrs.len() * 3
        ];
    }

    pub(super) fn use_port(&mut self, ext_idx: u16, slot: u8, port: u16) {
        self.ports[ext_idx as usize * 3 + slot as usize].used[(port & 1) as usize] += 1;
    }

    pub(super) fn release_port(&mut self, b: &Binding) {
        let u = &mut self.ports[b.ext_idx as usize * 3 + b.slot() as usize].used
            [(b.ext_port & 1) as usize];
        *u = u.saturating_sub(1);
    }

    pub(super) fn pair_acquire(&mut self, int: &A16, v6: bool, ext_idx: u16) {
        if self.config.pooling == Pooling::Paired {
            self.pairs.entry((*int, v6)).or_insert((ext_idx, 0)).1 += 1;
        }
    }

    pub(super) fn pair_release(&mut self, int: &A16, v6: bool) {
        if self.config.pooling != Pooling::Paired {
            return;
        }
        if let Some(e) = self.pairs.get_mut(&(*int, v6)) {
            e.1 = e.1.saturating_sub(1);
            if e.1 == 0 {
                self.pairs.remove(&(*int, v6));
            }
        }
    }

    /// Choose an external address and port for a new mapping of `int:int_port`.
    pub(super) fn allocate(
        &mut self,
        pk: u8,
        int: &A16,
        int_port: u16,
    ) -> Result<(u16, u16), DropReason> {
        let v6 = pk & 4 != 0;
        if self.config.pooling == Pooling::Paired
            && let Some(&(idx, _)) = self.pairs.get(&(*int, v6))
        {
            return self
                .alloc_port(idx, pk, int_port)
                .map(|p| (idx, p))
                .ok_or(DropReason::PortsExhausted);
        }
        let n = self.pool.family(v6).len();
        if n == 0 {
            return Err(DropReason::AddressFamily);
        }
        let start = self.rng.range_inclusive(0, n as u64 - 1) as usize;
        for k in 0..n {
            let idx = self.pool.family(v6)[(start + k) % n];
            if let Some(p) = self.alloc_port(idx, pk, int_port) {
                return Ok((idx, p));
            }
        }
        Err(DropReason::PortsExhausted)
    }

    /// A free port on pool address `ext_idx` for protocol key `pk`, per the allocation
    /// strategy and parity; `None` if none is free.
    pub(super) fn alloc_port(&mut self, ext_idx: u16, pk: u8, int_port: u16) -> Option<u16> {
        let (lo, hi) = (
            self.config.port_range.0 as u32,
            self.config.port_range.1 as u32,
        );
        let ps_i = ext_idx as usize * 3 + (pk & 3) as usize;
        let ps = self.ports[ps_i];
        let parity = self.config.port_parity.then_some(int_port as u32 & 1);
        // First candidate port >= x of the right parity.
        let first_from = |x: u32| match parity {
            Some(p) if x & 1 != p => x + 1,
            _ => x,
        };
        let first = first_from(lo);
        let (step, capacity, used) = match parity {
            Some(p) => (
                2,
                if first > hi { 0 } else { (hi - first) / 2 + 1 },
                ps.used[p as usize],
            ),
            None => (1, hi - lo + 1, ps.used[0] + ps.used[1]),
        };
        if used >= capacity {
            return None;
        }
        let free = |nat: &Self, p: u32| !nat.table.ext_taken(pk, ext_idx, p as u16);
        let start = match self.config.port_allocation {
            PortAllocation::Preserve => {
                let ip = int_port as u32;
                if (lo..=hi).contains(&ip) && free(self, ip) {
                    self.ports[ps_i].cursor = if ip + 1 > hi {
                        lo as u16
                    } else {
                        ip as u16 + 1
                    };
                    return Some(ip as u16);
                }
                // Fallback: sequential (O(1) amortised even when many hosts use the
                // same internal port).
                ps.cursor as u32
            }
            PortAllocation::Sequential => ps.cursor as u32,
            PortAllocation::Random => {
                let mut last = first;
                for _ in 0..32 {
                    let k = self.rng.range_inclusive(0, capacity as u64 - 1) as u32;
                    last = first + k * step;
                    if free(self, last) {
                        return Some(last as u16);
                    }
                }
                last
            }
        };
        let mut p = first_from(start.clamp(lo, hi));
        if p > hi {
            p = first;
        }
        for _ in 0..capacity {
            if free(self, p) {
                let next = p + 1;
                self.ports[ps_i].cursor = if next > hi { lo as u16 } else { next as u16 };
                return Some(p as u16);
            }
            p += step;
            if p > hi {
                p = first;
            }
        }
        None
    }
}
