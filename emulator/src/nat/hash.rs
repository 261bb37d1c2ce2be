//! Fixed (seedless) hashing and the compact open-addressing index the binding table uses.
//!
//! Nothing here uses `RandomState`: the same inputs give the same layout and the same
//! iteration order on every run (DESIGN.md, `nat`).

use std::hash::{BuildHasherDefault, Hasher};

const K: u64 = 0xf135_7aea_2e62_a9c5;

/// An FxHash-style hasher (rotate, xor, multiply) with a final avalanche so that low bits
/// are usable as a bucket index. Deterministic: no per-process seed.
#[derive(Clone, Copy, Default, Debug)]
pub(crate) struct FxHasher {
    h: u64,
}

impl FxHasher {
    #[inline]
    pub(crate) fn add(&mut self, w: u64) {
        self.h = (self.h.rotate_left(26) ^ w).wrapping_mul(K);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u16(&mut self, i: u16) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(i as u64);
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        mix(self.h)
    }
}

/// Final avalanche (the murmur3 64-bit finaliser).
#[inline]
pub(crate) fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// `HashMap`/`HashSet` builder with [`FxHasher`].
pub(crate) type FxBuild = BuildHasherDefault<FxHasher>;
/// A `HashMap` with the fixed hasher.
pub(crate) type FxHashMap<K, V> = std::collections::HashMap<K, V, FxBuild>;

/// An open-addressing (linear probing) hash index from a key's 32-bit hash to a slab
/// index; the keys themselves live in the slab, so each entry costs 4 bytes: an 8-bit
/// tag (the hash's top byte, to skip most non-matching slab reads) and a 24-bit index.
/// Small buckets keep the index of a 100k-binding table in a core's L2 cache. Deletion is
/// by backward shift (no tombstones); growth and deletion recompute hashes from the slab
/// through a `hash_of(index)` callback.
///
/// Each bucket holds `tag << 24 | (index + 1)`, 0 = empty; the home bucket is
/// `hash & mask`.
#[derive(Clone, Debug)]
pub(crate) struct IndexTable {
    buckets: Vec<u32>,
    len: usize,
}

/// The largest slab index an [`IndexTable`] can hold (`2^24 - 2`).
pub(crate) const MAX_INDEX: u32 = (1 << 24) - 2;

#[inline]
fn entry(hash: u32, idx: u32) -> u32 {
    (hash & 0xff00_0000) | (idx + 1)
}

impl IndexTable {
    pub(crate) fn new() -> Self {
        IndexTable {
            buckets: vec![0; 16],
            len: 0,
        }
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn clear(&mut self) {
        self.buckets = vec![0; 16];
        self.len = 0;
    }

    /// Heap bytes used.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.buckets.len() * 4
    }

    #[inline]
    fn mask(&self) -> usize {
        self.buckets.len() - 1
    }

    /// The index in `hash`'s home bucket if its tag matches (a guess, for warming caches:
    /// loads the bucket line).
    #[inline]
    pub(crate) fn peek(&self, hash: u32) -> Option<u32> {
        let b = self.buckets[hash as usize & self.mask()];
        (b != 0 && (b ^ hash) & 0xff00_0000 == 0).then(|| (b & 0x00ff_ffff) - 1)
    }

    /// The index with hash `hash` for which `eq` holds.
    #[inline]
    pub(crate) fn find(&self, hash: u32, mut eq: impl FnMut(u32) -> bool) -> Option<u32> {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        loop {
            // `i` is always masked into the bucket range.
            let b = self.buckets[i];
            if b == 0 {
                return None;
            }
            if (b ^ hash) & 0xff00_0000 == 0 {
                let idx = (b & 0x00ff_ffff) - 1;
                if eq(idx) {
                    return Some(idx);
                }
            }
            i = (i + 1) & mask;
        }
    }

    /// Insert `idx` (≤ [`MAX_INDEX`]) under `hash`; the caller made sure the key is not
    /// present. `hash_of` gives the hash of any index already in the table.
    pub(crate) fn insert(&mut self, hash: u32, idx: u32, hash_of: impl Fn(u32) -> u32) {
        debug_assert!(idx <= MAX_INDEX);
        if (self.len + 1) * 4 > self.buckets.len() * 3 {
            self.grow(&hash_of);
        }
        self.place(hash, entry(hash, idx));
        self.len += 1;
    }

    fn place(&mut self, hash: u32, e: u32) {
        let mask = self.mask();
        let mut i = hash as usize & mask;
        while self.buckets[i] != 0 {
            i = (i + 1) & mask;
        }
        self.buckets[i] = e;
    }

    fn grow(&mut self, hash_of: &impl Fn(u32) -> u32) {
        let n = self.buckets.len() * 2;
        let old = std::mem::replace(&mut self.buckets, vec![0; n]);
        for e in old.into_iter().filter(|e| *e != 0) {
            self.place(hash_of((e & 0x00ff_ffff) - 1), e);
        }
    }

    /// Remove the entry `(hash, idx)`; returns whether it was there. `hash_of` gives the
    /// hash of any index in the table.
    pub(crate) fn remove(&mut self, hash: u32, idx: u32, hash_of: impl Fn(u32) -> u32) -> bool {
        let mask = self.mask();
        let want = entry(hash, idx);
        let mut i = hash as usize & mask;
        loop {
            let b = self.buckets[i];
            if b == 0 {
                return false;
            }
            if b == want {
                break;
            }
            i = (i + 1) & mask;
        }
        // Backward-shift deletion (Knuth 6.4 algorithm R).
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let b = self.buckets[j];
            if b == 0 {
                break;
            }
            let home = hash_of((b & 0x00ff_ffff) - 1) as usize & mask;
            // Move b into the hole if its home is not cyclically in (hole, j].
            let in_range = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !in_range {
                self.buckets[hole] = b;
                hole = j;
            }
        }
        self.buckets[hole] = 0;
        self.len -= 1;
        true
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn index_table_matches_a_map() {
        let mut t = IndexTable::new();
        // idx -> hash; few distinct hashes so that collisions and long probe runs happen.
        let hash_of = |idx: u32| (mix(idx as u64 % 97) as u32) & 0xff00_00ff;
        let mut model: std::collections::BTreeSet<u32> = Default::default();
        let mut x = 12345u64;
        for step in 0..20_000u32 {
            x = mix(x.wrapping_add(step as u64));
            let idx = (x >> 20) as u32 % 3000;
            if model.remove(&idx) {
                assert!(t.remove(hash_of(idx), idx, hash_of));
            } else {
                t.insert(hash_of(idx), idx, hash_of);
                model.insert(idx);
            }
            assert_eq!(t.len(), model.len());
        }
        for idx in &model {
            assert_eq!(t.find(hash_of(*idx), |i| i == *idx), Some(*idx));
        }
        assert_eq!(t.find(hash_of(5000), |i| i == 5000), None);
        assert!(!t.remove(hash_of(3001), 3001, hash_of));
        assert!(t.bytes() >= model.len() * 4);
    }

    #[test]
    fn hasher_is_deterministic() {
        let mut a = FxHasher::default();
        a.write(b"hello world, this is 25b");
        let mut b = FxHasher::default();
        b.write(b"hello world, this is 25b");
        assert_eq!(a.finish(), b.finish());
        let mut c = FxHasher::default();
        c.write(b"hello world, this is 25c");
        assert_ne!(a.finish(), c.finish());
    }
}
