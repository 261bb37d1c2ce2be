//! Long-term credentials (RFC 8489 §9.2): the MD5 key, deterministic nonces and the
//! token bucket that limits unauthenticated (401) responses.
//!
//! MD5 is used only to derive the long-term key, as RFC 8489 §9.2.2 mandates for
//! MESSAGE-INTEGRITY; it is written out (RFC 1321) so the relay needs no crypto crate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use crate::stun::integrity::hmac_sha1;

/// The long-term credential key: MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).
/// Strings are used as given (no SASLprep/OpaqueString normalisation).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    md5(&[
        username.as_bytes(),
        b":",
        realm.as_bytes(),
        b":",
        password.as_bytes(),
    ])
}

/// MD5 (RFC 1321) of the concatenation of `parts`.
pub fn md5(parts: &[&[u8]]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    // K[i] = floor(abs(sin(i + 1)) × 2^32), computed once here rather than tabulated.
    let k: [u32; 64] =
        std::array::from_fn(|i| ((i as f64 + 1.0).sin().abs() * 4_294_967_296.0) as u32);
    let mut h: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];
    let mut msg: Vec<u8> = parts.concat();
    let bits = (msg.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_le_bytes());
    for block in msg.chunks_exact(64) {
        let m: [u32; 16] = std::array::from_fn(|i| {
            u32::from_le_bytes([
                block[4 * i],
                block[4 * i + 1],
                block[4 * i + 2],
                block[4 * i + 3],
            ])
        });
        let [mut a, mut b, mut c, mut d] = h;
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        for (x, v) in h.iter_mut().zip([a, b, c, d]) {
            *x = x.wrapping_add(v);
        }
    }
    let mut out = [0u8; 16];
    for (i, x) in h.iter().enumerate() {
        out[4 * i..4 * i + 4].copy_from_slice(&x.to_le_bytes());
    }
    out
}

/// Deterministic nonces (RFC 8489 §9.2): `<issue time in seconds, 16 hex digits>` followed
/// by 16 hex digits of HMAC-SHA1(seed, issue time). A nonce is valid when its MAC matches
/// and it is younger than the configured lifetime; the server keeps no nonce state.
#[derive(Debug, Clone)]
pub(crate) struct Nonces {
    seed: [u8; 8],
    lifetime: Duration,
}

/// What a received NONCE is worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    Valid,
    /// Ours but too old (438 Stale Nonce).
    Stale,
    /// Not one we issued (treated as stale too, so the client retries with a fresh one).
    Invalid,
}

impl Nonces {
    pub(crate) fn new(seed: u64, lifetime: Duration) -> Self {
        Nonces {
            seed: seed.to_be_bytes(),
            lifetime,
        }
    }

    fn mac(&self, issued: u64) -> u64 {
        let m = hmac_sha1(&self.seed, &[b"pinhole-turn-nonce", &issued.to_be_bytes()]);
        u64::from_be_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]])
    }

    /// A nonce issued at `secs` seconds after the server's epoch.
    pub(crate) fn issue(&self, secs: u64) -> String {
        format!("{secs:016x}{:016x}", self.mac(secs))
    }

    pub(crate) fn check(&self, nonce: &[u8], secs: u64) -> NonceCheck {
        // Hex digits only, so the slicing stays on character boundaries.
        let Some(text) = std::str::from_utf8(nonce)
            .ok()
            .filter(|t| t.len() == 32 && t.bytes().all(|b| b.is_ascii_hexdigit()))
        else {
            return NonceCheck::Invalid;
        };
        let (Ok(issued), Ok(mac)) = (
            u64::from_str_radix(&text[..16], 16),
            u64::from_str_radix(&text[16..], 16),
        ) else {
            return NonceCheck::Invalid;
        };
        if mac != self.mac(issued) || issued > secs {
            NonceCheck::Invalid
        } else if Duration::from_secs(secs - issued) >= self.lifetime {
            NonceCheck::Stale
        } else {
            NonceCheck::Valid
        }
    }
}

/// Token bucket per source IP for unauthenticated responses: `BURST` tokens, refilled at
/// `RATE_PER_SEC`. Idle (full) buckets are forgotten when the table grows past `MAX_SOURCES`.
#[derive(Debug, Clone, Default)]
pub(crate) struct RateLimiter {
    buckets: HashMap<IpAddr, (f64, Duration)>,
}

impl RateLimiter {
    /// Tokens a source starts with.
    pub(crate) const BURST: f64 = 10.0;
    /// Tokens regained per second.
    pub(crate) const RATE_PER_SEC: f64 = 5.0;
    const MAX_SOURCES: usize = 4096;

    /// Takes a token for `ip` at `now` (time since the server epoch); false when empty.
    pub(crate) fn allow(&mut self, ip: IpAddr, now: Duration) -> bool {
        if self.buckets.len() >= Self::MAX_SOURCES && !self.buckets.contains_key(&ip) {
            self.buckets.retain(|_, (tokens, at)| {
                *tokens + (now.saturating_sub(*at)).as_secs_f64() * Self::RATE_PER_SEC < Self::BURST
            });
            if self.buckets.len() >= Self::MAX_SOURCES {
                return false;
            }
        }
        let (tokens, at) = self.buckets.entry(ip).or_insert((Self::BURST, now));
        *tokens =
            (*tokens + now.saturating_sub(*at).as_secs_f64() * Self::RATE_PER_SEC).min(Self::BURST);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod test {
    use super::*;

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn md5_known_answers() {
        // RFC 1321 appendix A.5.
        assert_eq!(hex(&md5(&[b""])), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(hex(&md5(&[b"abc"])), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            hex(&md5(&[
                b"12345678901234567890123456789012345678901234567890123456789012345678901234567890"
            ])),
            "57edf4a22be3c955ac49da2e2107b67a"
        );
        assert_eq!(
            hex(&md5(&[&[b'a'; 1000]])),
            "cabe45dcc9ae5b66ba86600cca6b8ba8"
        );
        // python3 -c "import hashlib;print(hashlib.md5(b'user:realm:pass').hexdigest())"
        assert_eq!(
            hex(&long_term_key("user", "realm", "pass")),
            "8493fbc53ba582fb4c044c456bdc40eb"
        );
    }

    #[test]
    fn nonces() {
        let n = Nonces::new(42, Duration::from_secs(600));
        let nonce = n.issue(100);
        assert_eq!(nonce.len(), 32);
        assert_eq!(n.issue(100), nonce, "deterministic");
        assert_eq!(n.check(nonce.as_bytes(), 100), NonceCheck::Valid);
        assert_eq!(n.check(nonce.as_bytes(), 699), NonceCheck::Valid);
        assert_eq!(n.check(nonce.as_bytes(), 700), NonceCheck::Stale);
        assert_eq!(n.check(nonce.as_bytes(), 99), NonceCheck::Invalid);
        let other = Nonces::new(43, Duration::from_secs(600)).issue(100);
        assert_eq!(n.check(other.as_bytes(), 100), NonceCheck::Invalid);
        assert_eq!(n.check(b"junk", 100), NonceCheck::Invalid);
        assert_eq!(n.check(&[0xff; 32], 100), NonceCheck::Invalid);
        // 32 bytes of multi-byte characters: no slicing inside a character.
        assert_eq!(n.check("é".repeat(16).as_bytes(), 100), NonceCheck::Invalid);
        assert_eq!(
            n.check(format!("a{}", "é".repeat(15)).as_bytes(), 100),
            NonceCheck::Invalid
        );
        assert_eq!(
            n.check(b"+000000000000064ffffffffffffffff", 100),
            NonceCheck::Invalid
        );
    }

    #[test]
    fn rate_limiter() {
        let mut r = RateLimiter::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Duration::from_secs(1);
        for _ in 0..10 {
            assert!(r.allow(ip, t0));
        }
        assert!(!r.allow(ip, t0));
        assert!(r.allow("192.0.2.2".parse().unwrap(), t0));
        assert!(r.allow(ip, t0 + Duration::from_millis(200)));
        assert!(!r.allow(ip, t0 + Duration::from_millis(200)));
    }
}
