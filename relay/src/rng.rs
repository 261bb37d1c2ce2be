//! The cores' one seeded random number generator: SplitMix64 (Steele, Lea, Flood,
//! "Fast splittable pseudorandom number generators", OOPSLA 2014). Small, fast,
//! deterministic from the seed, and plenty for what the cores draw: STUN transaction ids
//! (RFC 8489 §6: 96 random bits), relayed port choices (RFC 8656 §7.2), SIP branch and
//! tag suffixes. Not for secrets: nonces that must be unguessable are derived from keys.

/// A SplitMix64 generator. The same seed gives the same sequence, on every platform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// A generator whose first output is the mix of `seed + γ`.
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64 { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// The generator's state (a Weyl sequence: `seed + n·γ` after `n` draws). The TURN
    /// client's transaction ids carry its low 32 bits after the draw's 64, which makes
    /// them unique per client even if two draws mixed to the same value.
    pub fn state(&self) -> u64 {
        self.state
    }
}

#[cfg(test)]
mod test {
    use super::*;

    /// The outputs of the reference `splitmix64.c` (Vigna, prng.di.unimi.it) for seed
    /// 1234567.
    #[test]
    fn matches_the_reference_sequence() {
        let mut r = SplitMix64::new(1234567);
        let got: Vec<u64> = (0..5).map(|_| r.next_u64()).collect();
        assert_eq!(
            got,
            [
                6457827717110365317,
                3203168211198807973,
                9817491932198370423,
                4593380528125082431,
                16408922859458223821,
            ]
        );
    }

    #[test]
    fn state_is_a_weyl_sequence() {
        let mut r = SplitMix64::new(7);
        r.next_u64();
        r.next_u64();
        assert_eq!(
            r.state(),
            7u64.wrapping_add(2u64.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        );
    }
}
