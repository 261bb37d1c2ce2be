//! The binding table: a slab of compact [`Binding`]s, two [`IndexTable`]s (by internal
//! flow key for outbound packets, by external address:port for inbound ones) and an expiry
//! heap.
//!
//! Layout per binding: 64 bytes (one cache line) in the slab, 2 × 8 bytes of index
//! buckets at ≤ 3/4 load, 16 bytes of heap entry; about 120 bytes with growth slack.
//!
//! Expiry is lazy: a refresh only moves `expires` forward; the binding's single pending
//! heap entry (`timer_at`) fires at the old time and is re-armed at the new one. A
//! refresh that shortens the expiry (TCP going transitory) pushes a new entry at once, so
//! the heap's minimum is never later than the earliest real expiry.

use super::config::{FilteringBehavior, MappingBehavior};
use super::hash::{FxHashMap, IndexTable, MAX_INDEX, mix};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An address in 16 bytes (IPv4 as IPv4-mapped IPv6; the family lives in the proto key).
pub(crate) type A16 = [u8; 16];

pub(crate) fn a16(a: IpAddr) -> A16 {
    match a {
        IpAddr::V4(v) => v.to_ipv6_mapped().octets(),
        IpAddr::V6(v) => v.octets(),
    }
}

pub(crate) fn ip_of(a: A16, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::from(a))
    } else {
        IpAddr::V4(Ipv4Addr::new(a[12], a[13], a[14], a[15]))
    }
}

/// Protocol slot: 0 UDP, 1 TCP, 2 ICMP query.
pub(crate) const P_UDP: u8 = 0;
pub(crate) const P_TCP: u8 = 1;
pub(crate) const P_ICMP: u8 = 2;

/// Proto key: protocol slot | family bit (4 = IPv6).
pub(crate) fn pkey(slot: u8, v6: bool) -> u8 {
    slot | if v6 { 4 } else { 0 }
}

// TCP state bits (RFC 5382 §5: the NAT tracks enough to tell established from transitory).
pub(crate) const TCP_SYN_OUT: u8 = 1;
pub(crate) const TCP_SYN_IN: u8 = 2;
pub(crate) const TCP_FIN_OUT: u8 = 4;
pub(crate) const TCP_FIN_IN: u8 = 8;
pub(crate) const TCP_RST: u8 = 16;

/// Whether TCP state bits make the mapping "established": SYN seen both ways, and no FIN
/// or RST since.
pub(crate) fn tcp_established(s: u8) -> bool {
    s & (TCP_SYN_OUT | TCP_SYN_IN) == (TCP_SYN_OUT | TCP_SYN_IN)
        && s & (TCP_FIN_OUT | TCP_FIN_IN | TCP_RST) == 0
}

/// One mapping: 64 bytes, one cache line (further filter permissions live in
/// [`Table::extras`]).
#[derive(Clone, Debug)]
#[repr(align(64))]
pub(crate) struct Binding {
    pub(crate) int_addr: A16,
    /// The remote that created the mapping: part of the key under ADM/APDM, and the
    /// first filtering permission.
    pub(crate) rem_addr: A16,
    /// Expiry in ticks (ns since the NAT's epoch); alive while `now < expires`.
    pub(crate) expires: u64,
    /// Deadline of this binding's pending heap entry.
    pub(crate) timer_at: u64,
    pub(crate) int_port: u16,
    pub(crate) rem_port: u16,
    pub(crate) ext_port: u16,
    pub(crate) ext_idx: u16,
    /// Packets that refreshed the mapping, the one that created it included (saturating):
    /// reported at expiry and in snapshots, never as one event per packet.
    pub(crate) refreshes: u32,
    pub(crate) pkey: u8,
    pub(crate) tcp: u8,
    /// [`LIVE`] | [`HAS_EXTRAS`].
    pub(crate) flags: u8,
}

/// The slab slot holds a live binding.
pub(crate) const LIVE: u8 = 1;
/// The binding has entries in [`Table::extras`].
const HAS_EXTRAS: u8 = 2;

impl Binding {
    pub(crate) fn live(&self) -> bool {
        self.flags & LIVE != 0
    }

    pub(crate) fn v6(&self) -> bool {
        self.pkey & 4 != 0
    }

    pub(crate) fn slot(&self) -> u8 {
        self.pkey & 3
    }
}

#[inline]
fn eq16(a: &A16, b: &A16) -> bool {
    u128::from_ne_bytes(*a) == u128::from_ne_bytes(*b)
}

/// The remote part of the outbound key under a mapping behaviour.
#[inline]
pub(crate) fn mask_remote(m: MappingBehavior, addr: &A16, port: u16) -> (A16, u16) {
    match m {
        MappingBehavior::EndpointIndependent => ([0; 16], 0),
        MappingBehavior::AddressDependent => (*addr, 0),
        MappingBehavior::AddressAndPortDependent => (*addr, port),
    }
}

#[inline]
fn a16_words(a: &A16) -> (u64, u64) {
    let mut x = [0u8; 8];
    let mut y = [0u8; 8];
    x.copy_from_slice(&a[..8]);
    y.copy_from_slice(&a[8..]);
    (u64::from_le_bytes(x), u64::from_le_bytes(y))
}

/// 64×64→128-bit multiply, folded (the foldhash/wyhash mixing step).
#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

/// The outbound index tag of a key: three folded multiplies, two of them independent (a
/// short dependency chain matters on the per-packet path).
#[inline]
pub(crate) fn out_tag(pk: u8, int: &A16, int_port: u16, rem: &A16, rem_port: u16) -> u32 {
    const K: [u64; 5] = [
        0x243f_6a88_85a3_08d3,
        0x1319_8a2e_0370_7344,
        0xa409_3822_299f_31d0,
        0x082e_fa98_ec4e_6c89,
        0x4528_21e6_38d0_1377,
    ];
    let (a, b) = a16_words(int);
    let (c, d) = a16_words(rem);
    let e = (pk as u64) << 32 | (int_port as u64) << 16 | rem_port as u64;
    let h1 = fold_mul(a ^ K[0], b ^ K[1]);
    let h2 = fold_mul(c ^ K[2], d ^ K[3]);
    fold_mul(h1 ^ e, h2 ^ K[4]) as u32
}

/// The inbound index tag of an external endpoint.
#[inline]
pub(crate) fn ext_tag(pk: u8, ext_idx: u16, port: u16) -> u32 {
    mix((pk as u64) << 32 | (ext_idx as u64) << 16 | port as u64) as u32
}

fn out_tag_of(m: MappingBehavior, b: &Binding) -> u32 {
    let (mr, mp) = mask_remote(m, &b.rem_addr, b.rem_port);
    out_tag(b.pkey, &b.int_addr, b.int_port, &mr, mp)
}

fn ext_tag_of(b: &Binding) -> u32 {
    ext_tag(b.pkey, b.ext_idx, b.ext_port)
}

/// The binding table.
#[derive(Clone, Debug)]
pub(crate) struct Table {
    pub(crate) slab: Vec<Binding>,
    free: Vec<u32>,
    live: usize,
    by_int: IndexTable,
    by_ext: IndexTable,
    timers: BinaryHeap<Reverse<(u64, u32)>>,
    /// Filter permissions beyond a binding's first remote (sorted), for ADF/APDF; ADF
    /// stores port 0. Most bindings have none.
    extras: FxHashMap<u32, Vec<(A16, u16)>>,
    pub(crate) mapping: MappingBehavior,
}

impl Table {
    pub(crate) fn new(mapping: MappingBehavior) -> Self {
        Table {
            slab: Vec::new(),
            free: Vec::new(),
            live: 0,
            by_int: IndexTable::new(),
            by_ext: IndexTable::new(),
            timers: BinaryHeap::new(),
            extras: FxHashMap::default(),
            mapping,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// The mapping an outbound packet from `int:int_port` to `rem:rem_port` uses.
    #[cfg(test)]
    pub(crate) fn find_out(
        &self,
        pk: u8,
        int: &A16,
        int_port: u16,
        rem: &A16,
        rem_port: u16,
    ) -> Option<u32> {
        self.find_out_tagged(None, pk, int, int_port, rem, rem_port)
    }

    /// [`find_out`](Self::find_out) with the key's tag when the caller already has it
    /// (it must be `out_tag` of the masked key).
    #[inline]
    pub(crate) fn find_out_tagged(
        &self,
        tag: Option<u32>,
        pk: u8,
        int: &A16,
        int_port: u16,
        rem: &A16,
        rem_port: u16,
    ) -> Option<u32> {
        let (mr, mp) = mask_remote(self.mapping, rem, rem_port);
        let tag = tag.unwrap_or_else(|| out_tag(pk, int, int_port, &mr, mp));
        let m = self.mapping;
        self.by_int.find(tag, |i| {
            let b = &self.slab[i as usize];
            let (br, bp) = mask_remote(m, &b.rem_addr, b.rem_port);
            b.pkey == pk
                && b.int_port == int_port
                && bp == mp
                && eq16(&b.int_addr, int)
                && eq16(&br, &mr)
        })
    }

    /// Warm the caches for a lookup by outbound (`by_ext == false`) or external tag: load
    /// the home bucket, and return the guessed slab index.
    #[inline]
    pub(crate) fn peek(&self, by_ext: bool, tag: u32) -> Option<u32> {
        if by_ext {
            self.by_ext.peek(tag)
        } else {
            self.by_int.peek(tag)
        }
    }

    /// The mapping holding an external endpoint.
    #[inline]
    pub(crate) fn find_ext(&self, pk: u8, ext_idx: u16, port: u16) -> Option<u32> {
        self.find_ext_tagged(None, pk, ext_idx, port)
    }

    /// [`find_ext`](Self::find_ext) with the endpoint's tag when the caller already has it.
    #[inline]
    pub(crate) fn find_ext_tagged(
        &self,
        tag: Option<u32>,
        pk: u8,
        ext_idx: u16,
        port: u16,
    ) -> Option<u32> {
        let tag = tag.unwrap_or_else(|| ext_tag(pk, ext_idx, port));
        self.by_ext.find(tag, |i| {
            let b = &self.slab[i as usize];
            b.pkey == pk && b.ext_idx == ext_idx && b.ext_port == port
        })
    }

    /// Whether an external endpoint is taken.
    #[inline]
    pub(crate) fn ext_taken(&self, pk: u8, ext_idx: u16, port: u16) -> bool {
        self.find_ext(pk, ext_idx, port).is_some()
    }

    fn out_tag_of(&self, b: &Binding) -> u32 {
        out_tag_of(self.mapping, b)
    }

    /// Whether the slab can take another binding.
    pub(crate) fn full(&self) -> bool {
        self.free.is_empty() && self.slab.len() as u64 > MAX_INDEX as u64
    }

    /// Insert a live binding; arms its timer at `b.expires`.
    pub(crate) fn insert(&mut self, mut b: Binding) -> u32 {
        b.flags = LIVE;
        b.timer_at = b.expires;
        let ot = self.out_tag_of(&b);
        let et = ext_tag(b.pkey, b.ext_idx, b.ext_port);
        let at = b.expires;
        let idx = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = b;
                i
            }
            None => {
                self.slab.push(b);
                (self.slab.len() - 1) as u32
            }
        };
        let (slab, m) = (&self.slab, self.mapping);
        self.by_int
            .insert(ot, idx, |i| out_tag_of(m, &slab[i as usize]));
        self.by_ext
            .insert(et, idx, |i| ext_tag_of(&slab[i as usize]));
        self.timers.push(Reverse((at, idx)));
        self.live += 1;
        idx
    }

    /// Remove a live binding and return it.
    pub(crate) fn remove(&mut self, idx: u32) -> Binding {
        let b = &self.slab[idx as usize];
        debug_assert!(b.live());
        let ot = self.out_tag_of(b);
        let et = ext_tag(b.pkey, b.ext_idx, b.ext_port);
        let (slab, m) = (&self.slab, self.mapping);
        self.by_int
            .remove(ot, idx, |i| out_tag_of(m, &slab[i as usize]));
        self.by_ext
            .remove(et, idx, |i| ext_tag_of(&slab[i as usize]));
        let b = &mut self.slab[idx as usize];
        if b.flags & HAS_EXTRAS != 0 {
            self.extras.remove(&idx);
        }
        b.flags = 0;
        let out = b.clone();
        self.free.push(idx);
        self.live -= 1;
        out
    }

    /// Move a binding to a new external endpoint.
    pub(crate) fn move_ext(&mut self, idx: u32, ext_idx: u16, port: u16) {
        let b = &self.slab[idx as usize];
        let old = ext_tag(b.pkey, b.ext_idx, b.ext_port);
        let new = ext_tag(b.pkey, ext_idx, port);
        let slab = &self.slab;
        self.by_ext
            .remove(old, idx, |i| ext_tag_of(&slab[i as usize]));
        let b = &mut self.slab[idx as usize];
        b.ext_idx = ext_idx;
        b.ext_port = port;
        let slab = &self.slab;
        self.by_ext
            .insert(new, idx, |i| ext_tag_of(&slab[i as usize]));
    }

    /// Whether inbound traffic from `addr:port` passes binding `idx`'s filter (RFC 4787 §5).
    #[inline]
    pub(crate) fn permits(&self, idx: u32, f: FilteringBehavior, addr: &A16, port: u16) -> bool {
        let b = &self.slab[idx as usize];
        let first = match f {
            FilteringBehavior::EndpointIndependent => return true,
            FilteringBehavior::AddressDependent => eq16(&b.rem_addr, addr),
            FilteringBehavior::AddressAndPortDependent => {
                b.rem_port == port && eq16(&b.rem_addr, addr)
            }
        };
        if first || b.flags & HAS_EXTRAS == 0 {
            return first;
        }
        let want = match f {
            FilteringBehavior::AddressDependent => (*addr, 0),
            _ => (*addr, port),
        };
        self.extras
            .get(&idx)
            .is_some_and(|e| e.binary_search(&want).is_ok())
    }

    /// Record that binding `idx` sent to `addr:port`.
    #[inline]
    pub(crate) fn permit(&mut self, idx: u32, f: FilteringBehavior, addr: &A16, port: u16) {
        if self.permits(idx, f, addr, port) {
            return;
        }
        let entry = match f {
            FilteringBehavior::EndpointIndependent => return,
            FilteringBehavior::AddressDependent => (*addr, 0),
            FilteringBehavior::AddressAndPortDependent => (*addr, port),
        };
        self.slab[idx as usize].flags |= HAS_EXTRAS;
        let e = self.extras.entry(idx).or_default();
        if let Err(at) = e.binary_search(&entry) {
            e.insert(at, entry);
        }
    }

    /// Set a binding's expiry; re-arms its timer only if the expiry moved earlier.
    #[inline]
    pub(crate) fn set_expiry(&mut self, idx: u32, expires: u64) {
        let b = &mut self.slab[idx as usize];
        b.expires = expires;
        if expires < b.timer_at {
            b.timer_at = expires;
            self.timers.push(Reverse((expires, idx)));
        }
    }

    /// The earliest pending timer.
    pub(crate) fn next_timer(&self) -> Option<u64> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }

    /// Pop the next due timer (deadline ≤ `now`): returns a binding whose expiry has come,
    /// re-arming (internally) those that were refreshed meanwhile.
    pub(crate) fn pop_expired(&mut self, now: u64) -> Option<u32> {
        while let Some(&Reverse((t, idx))) = self.timers.peek() {
            if t > now {
                return None;
            }
            self.timers.pop();
            let Some(b) = self.slab.get_mut(idx as usize) else {
                continue;
            };
            if !b.live() || b.timer_at != t {
                continue; // stale entry
            }
            if b.expires <= now {
                return Some(idx);
            }
            b.timer_at = b.expires;
            self.timers.push(Reverse((b.expires, idx)));
        }
        None
    }

    /// Indices of live bindings in slab order.
    pub(crate) fn live_indices(&self) -> Vec<u32> {
        self.slab
            .iter()
            .enumerate()
            .filter(|(_, b)| b.live())
            .map(|(i, _)| i as u32)
            .collect()
    }

    /// Drop everything.
    pub(crate) fn clear(&mut self) {
        self.slab.clear();
        self.free.clear();
        self.live = 0;
        self.by_int.clear();
        self.by_ext.clear();
        self.timers.clear();
        self.extras.clear();
    }

    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        assert_eq!(self.by_int.len(), self.live);
        assert_eq!(self.by_ext.len(), self.live);
        for (i, b) in self.slab.iter().enumerate().filter(|(_, b)| b.live()) {
            assert_eq!(
                self.find_out(b.pkey, &b.int_addr, b.int_port, &b.rem_addr, b.rem_port),
                Some(i as u32)
            );
            assert_eq!(self.find_ext(b.pkey, b.ext_idx, b.ext_port), Some(i as u32));
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn binding(i: u16, expires: u64) -> Binding {
        Binding {
            int_addr: a16("10.0.0.1".parse().unwrap()),
            rem_addr: a16("198.51.100.1".parse().unwrap()),
            expires,
            timer_at: 0,
            int_port: i,
            rem_port: 3478,
            ext_port: 1024 + i,
            ext_idx: 0,
            refreshes: 0,
            pkey: P_UDP,
            tcp: 0,
            flags: 0,
        }
    }

    #[test]
    fn binding_is_compact() {
        assert_eq!(std::mem::size_of::<Binding>(), 64);
    }

    #[test]
    fn insert_find_remove_and_lazy_expiry() {
        let mut t = Table::new(MappingBehavior::EndpointIndependent);
        for i in 0..100 {
            t.insert(binding(i, 1000 + i as u64));
        }
        t.check_invariants();
        // Refresh binding 0 to 5000: its old timer fires at 1000 and is re-armed.
        t.set_expiry(0, 5000);
        let mut expired = vec![];
        while let Some(i) = t.pop_expired(2000) {
            t.remove(i);
            expired.push(i);
        }
        assert_eq!(expired, (1..100).collect::<Vec<u32>>());
        assert_eq!(t.len(), 1);
        assert_eq!(t.next_timer(), Some(5000));
        // Shortening pushes a new entry immediately.
        t.set_expiry(0, 3000);
        assert_eq!(t.next_timer(), Some(3000));
        assert_eq!(t.pop_expired(2999), None);
        assert_eq!(t.pop_expired(3000), Some(0));
        t.remove(0);
        assert_eq!(t.pop_expired(10_000), None);
        t.check_invariants();
    }

    #[test]
    fn permissions() {
        let mut t = Table::new(MappingBehavior::EndpointIndependent);
        let i = t.insert(binding(1, 10));
        let j = t.insert(binding(2, 10));
        let r1 = a16("198.51.100.1".parse().unwrap());
        let r2 = a16("198.51.100.2".parse().unwrap());
        let apdf = FilteringBehavior::AddressAndPortDependent;
        let adf = FilteringBehavior::AddressDependent;
        assert!(t.permits(i, apdf, &r1, 3478));
        assert!(!t.permits(i, apdf, &r2, 3478));
        t.permit(i, apdf, &r2, 9);
        assert!(t.permits(i, apdf, &r2, 9));
        assert!(!t.permits(i, apdf, &r2, 10));
        t.permit(j, adf, &r2, 9);
        assert!(t.permits(j, adf, &r2, 10));
        t.remove(i);
        let k = t.insert(binding(3, 10));
        assert_eq!(k, i, "slot reused");
        assert!(
            !t.permits(k, apdf, &r2, 9),
            "extras went with the old binding"
        );
    }
}
