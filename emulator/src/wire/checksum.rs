//! The Internet checksum (RFC 1071) and its incremental update (RFC 1624).

/// One's-complement sum of `data` as big-endian 16-bit words (odd byte padded with zero),
/// not yet folded.
pub fn sum(data: &[u8]) -> u32 {
    let mut acc: u64 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u16::from_be_bytes([c[0], c[1]]) as u64;
    }
    if let [b] = chunks.remainder() {
        acc += (*b as u64) << 8;
    }
    fold64(acc)
}

fn fold64(mut acc: u64) -> u32 {
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Fold a 32-bit one's-complement accumulator to 16 bits.
pub fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum field value for data whose (unfolded) sum is `acc`.
pub fn finish(acc: u32) -> u16 {
    !fold(acc)
}

/// The checksum of `data` (RFC 1071).
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data))
}

/// Sum of the IPv4/IPv6 pseudo-header for an upper-layer checksum.
pub fn pseudo_header_sum(src: &[u8], dst: &[u8], proto: u8, len: u32) -> u32 {
    let acc = sum(src) as u64
        + sum(dst) as u64
        + proto as u64
        + (len >> 16) as u64
        + (len & 0xffff) as u64;
    fold64(acc)
}

/// RFC 1624 eqn. 3: the new checksum after the covered bytes `old` changed to `new`
/// (same length, even offset in the checksummed data): `HC' = ~(~HC + ~m + m')`.
pub fn update(check: u16, old: &[u8], new: &[u8]) -> u16 {
    debug_assert_eq!(old.len(), new.len());
    let mut acc: u64 = (!check) as u64;
    let mut o = old.chunks_exact(2);
    let mut n = new.chunks_exact(2);
    for (a, b) in (&mut o).zip(&mut n) {
        acc += (!u16::from_be_bytes([a[0], a[1]])) as u64;
        acc += u16::from_be_bytes([b[0], b[1]]) as u64;
    }
    if let ([a], [b]) = (o.remainder(), n.remainder()) {
        acc += (!((*a as u16) << 8)) as u64;
        acc += ((*b as u16) << 8) as u64;
    }
    !fold(fold64(acc))
}

/// [`update`] for a single 16-bit word.
pub fn update_u16(check: u16, old: u16, new: u16) -> u16 {
    update(check, &old.to_be_bytes(), &new.to_be_bytes())
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3 example bytes: sum is 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(fold(sum(&data)), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn incremental_matches_full_recompute() {
        let mut data: Vec<u8> = (0..64u8).map(|i| i.wrapping_mul(37)).collect();
        data[10] = 0;
        data[11] = 0;
        let c = checksum(&data);
        data[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(checksum(&data), 0);
        for (at, new) in [
            (4usize, [1u8, 2, 3, 4]),
            (20, [0xff, 0xff, 0, 0]),
            (40, [0, 0, 0, 0]),
        ] {
            let old: [u8; 4] = data[at..at + 4].try_into().unwrap();
            data[at..at + 4].copy_from_slice(&new);
            let cur = u16::from_be_bytes([data[10], data[11]]);
            let upd = update(cur, &old, &new);
            data[10..12].copy_from_slice(&upd.to_be_bytes());
            assert_eq!(checksum(&data), 0, "after rewrite at {at}");
        }
    }
}
