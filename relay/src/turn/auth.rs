//! Long-term credentials (RFC 8489 §9.2) with the RFC 8489 security features: password
//! algorithms (MD5 and SHA-256 keys, PASSWORD-ALGORITHMS / PASSWORD-ALGORITHM, §9.2.2,
//! §14.11, §14.12), USERHASH (§14.4), the nonce cookie that carries the server's
//! security feature set so that a man in the middle cannot bid it down (§9.2.1, §18.8),
//! MESSAGE-INTEGRITY-SHA256 (§14.6); deterministic nonces and the token bucket that limits
//! unauthenticated (401) responses.
//!
//! Strings are used as given: no SASLprep/OpaqueString (RFC 8265) normalisation of
//! username, realm or password, so credentials must already be in their prepared form
//! (plain ASCII always is). The hashes are RustCrypto's `md-5` and `sha2`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use md5::Digest;

use super::attrs::{self, kind};
use super::config::TurnConfig;
use super::event::AuthFailure;
use crate::stun::integrity::{check_integrity, check_integrity_sha256, hmac_sha1, sha256};
use crate::stun::{Attribute, Message};

pub use super::attrs::kind::{PASSWORD_ALGORITHM, PASSWORD_ALGORITHMS, USERHASH};
/// The nonce cookie (RFC 8489 §9.2.1): a NONCE starting with it comes from an RFC 8489
/// server and carries its security feature set in the next four (base64) characters.
pub const NONCE_COOKIE: &[u8] = b"obMatJos2";

/// A password algorithm (RFC 8489 §18.5 registry): how the long-term key is derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PasswordAlgorithm {
    /// 0x0001: MD5(username ":" realm ":" password), the RFC 5389 key.
    Md5,
    /// 0x0002: SHA-256(username ":" realm ":" password).
    Sha256,
}

impl PasswordAlgorithm {
    /// The registry number.
    pub const fn number(self) -> u16 {
        match self {
            PasswordAlgorithm::Md5 => 0x0001,
            PasswordAlgorithm::Sha256 => 0x0002,
        }
    }

    /// The algorithm with this registry number.
    pub fn from_number(n: u16) -> Option<Self> {
        match n {
            0x0001 => Some(PasswordAlgorithm::Md5),
            0x0002 => Some(PasswordAlgorithm::Sha256),
            _ => None,
        }
    }

    /// `md5` or `sha256` (the scenario and command-line spelling).
    pub fn name(self) -> &'static str {
        match self {
            PasswordAlgorithm::Md5 => "md5",
            PasswordAlgorithm::Sha256 => "sha256",
        }
    }

    /// Reads `md5`, `sha256` or `sha-256` (any case).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "md5" => Some(PasswordAlgorithm::Md5),
            "sha256" | "sha-256" => Some(PasswordAlgorithm::Sha256),
            _ => None,
        }
    }

    /// The long-term key for these credentials (RFC 8489 §9.2.2).
    pub fn key(self, username: &str, realm: &str, password: &str) -> LongTermKey {
        match self {
            PasswordAlgorithm::Md5 => LongTermKey::Md5(long_term_key(username, realm, password)),
            PasswordAlgorithm::Sha256 => {
                LongTermKey::Sha256(long_term_key_sha256(username, realm, password))
            }
        }
    }
}

/// A long-term credential key: the HMAC key of MESSAGE-INTEGRITY and
/// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §9.2.2).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LongTermKey {
    /// 16 bytes, [`PasswordAlgorithm::Md5`].
    Md5([u8; 16]),
    /// 32 bytes, [`PasswordAlgorithm::Sha256`].
    Sha256([u8; 32]),
}

impl LongTermKey {
    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            LongTermKey::Md5(k) => k,
            LongTermKey::Sha256(k) => k,
        }
    }
}

impl std::fmt::Debug for LongTermKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The key is a password equivalent: never in logs.
        match self {
            LongTermKey::Md5(_) => f.write_str("LongTermKey::Md5(..)"),
            LongTermKey::Sha256(_) => f.write_str("LongTermKey::Sha256(..)"),
        }
    }
}

/// The MD5 long-term key: MD5(username ":" realm ":" password) (RFC 8489 §9.2.2).
pub fn long_term_key(username: &str, realm: &str, password: &str) -> [u8; 16] {
    let mut h = md5::Md5::new();
    for p in [username, ":", realm, ":", password] {
        h.update(p.as_bytes());
    }
    h.finalize().into()
}

/// The SHA-256 long-term key: SHA-256(username ":" realm ":" password) (RFC 8489 §9.2.2).
pub fn long_term_key_sha256(username: &str, realm: &str, password: &str) -> [u8; 32] {
    sha256(&[
        username.as_bytes(),
        b":",
        realm.as_bytes(),
        b":",
        password.as_bytes(),
    ])
}

/// The USERHASH value: SHA-256(username ":" realm) (RFC 8489 §14.4).
pub fn userhash(username: &str, realm: &str) -> [u8; 32] {
    sha256(&[username.as_bytes(), b":", realm.as_bytes()])
}

/// The STUN Security Feature set a server announces in its nonce cookie (RFC 8489 §9.2.1,
/// registry §18.8). Bits are numbered from the right, bit 0 the least significant of the
/// 24 — verified erratum 6290, which the Appendix B.1 nonce ("AAAC": username anonymity)
/// follows; the RFC's original prose (and stun-rs 0.1.11) number them from the left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct SecurityFeatures {
    /// Bit 0, "Password algorithms": the server sends PASSWORD-ALGORITHMS and checks that
    /// requests echo it (§9.2.4).
    pub password_algorithms: bool,
    /// Bit 1, "Username anonymity": clients must send USERHASH instead of USERNAME (§9.2.5).
    pub username_anonymity: bool,
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

impl SecurityFeatures {
    /// The 24-bit value.
    pub fn bits(self) -> u32 {
        u32::from(self.password_algorithms) | (u32::from(self.username_anonymity) << 1)
    }

    /// The 13-byte nonce prefix: the cookie and the base64 (RFC 4648) of the 24 bits.
    pub fn cookie(self) -> [u8; 13] {
        let b = self.bits();
        let mut out = [0u8; 13];
        out[..9].copy_from_slice(NONCE_COOKIE);
        for i in 0..4 {
            out[9 + i] = BASE64[((b >> (18 - 6 * i)) & 0x3F) as usize];
        }
        out
    }

    /// The feature set of a NONCE that starts with the cookie; `None` for a nonce without
    /// one (an RFC 5389 server's) or with a malformed feature set. Unassigned bits are
    /// ignored.
    pub fn from_nonce(nonce: &[u8]) -> Option<Self> {
        let chars = nonce.strip_prefix(NONCE_COOKIE)?.get(..4)?;
        let mut b = 0u32;
        for c in chars {
            let v = BASE64.iter().position(|x| x == c)? as u32;
            b = (b << 6) | v;
        }
        Some(SecurityFeatures {
            password_algorithms: b & 1 != 0,
            username_anonymity: b & 2 != 0,
        })
    }
}

/// A PASSWORD-ALGORITHMS value (RFC 8489 §14.11): per algorithm its number, parameter
/// length (0: MD5 and SHA-256 take none) and parameters padded to 4 bytes.
pub fn encode_password_algorithms(list: &[PasswordAlgorithm]) -> Vec<u8> {
    let mut v = Vec::with_capacity(4 * list.len());
    for a in list {
        v.extend_from_slice(&a.number().to_be_bytes());
        v.extend_from_slice(&[0, 0]);
    }
    v
}

/// The (number, parameters) entries of a PASSWORD-ALGORITHMS value, unknown algorithms
/// included; `None` when malformed or empty.
pub fn decode_password_algorithms(mut v: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    while !v.is_empty() {
        let (n, params, rest) = split_algorithm(v)?;
        out.push((n, params));
        v = rest.get(params.len().next_multiple_of(4) - params.len()..)?;
    }
    (!out.is_empty()).then_some(out)
}

fn split_algorithm(v: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    let n = u16::from_be_bytes([*v.first()?, *v.get(1)?]);
    let len = usize::from(u16::from_be_bytes([*v.get(2)?, *v.get(3)?]));
    let params = v.get(4..4 + len)?;
    Some((n, params, &v[4 + len..]))
}

/// A PASSWORD-ALGORITHM value (RFC 8489 §14.12), no parameters.
pub fn encode_password_algorithm(a: PasswordAlgorithm) -> Vec<u8> {
    let mut v = a.number().to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0]);
    v
}

/// The (number, parameters) of a PASSWORD-ALGORITHM value; `None` when malformed.
pub fn decode_password_algorithm(v: &[u8]) -> Option<(u16, &[u8])> {
    let (n, params, rest) = split_algorithm(v)?;
    rest.is_empty().then_some((n, params))
}

/// Which integrity attributes a response carries (RFC 8489 §9.2.4 last paragraph, §14.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseIntegrity {
    /// MESSAGE-INTEGRITY (HMAC-SHA1).
    pub sha1: bool,
    /// MESSAGE-INTEGRITY-SHA256 (full 32 bytes), after MESSAGE-INTEGRITY when both.
    pub sha256: bool,
}

/// An authenticated request: who, with which key, and how to protect the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Credentials {
    pub(crate) user: String,
    pub(crate) key: LongTermKey,
    pub(crate) integrity: ResponseIntegrity,
}

/// A request that failed authentication, and the error code of its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rejection {
    pub(crate) reason: AuthFailure,
    pub(crate) code: u16,
    /// The USERNAME, or the user a USERHASH names, for the event.
    pub(crate) user: Option<String>,
}

/// The server side of the long-term credential mechanism (RFC 8489 §9.2.4).
#[derive(Debug, Clone)]
pub(crate) struct Authenticator {
    realm: String,
    users: HashMap<String, String>,
    by_hash: HashMap<[u8; 32], String>,
    algorithms: Vec<PasswordAlgorithm>,
    /// Our PASSWORD-ALGORITHMS value, which requests must echo byte for byte.
    algorithms_value: Vec<u8>,
    features: SecurityFeatures,
    nonces: Nonces,
}

impl Authenticator {
    pub(crate) fn new(config: &TurnConfig) -> Self {
        let features = SecurityFeatures {
            password_algorithms: !config.password_algorithms.is_empty(),
            username_anonymity: config.username_anonymity,
        };
        Authenticator {
            realm: config.realm.clone(),
            users: config.users.iter().cloned().collect(),
            by_hash: config
                .users
                .iter()
                .map(|(u, _)| (userhash(u, &config.realm), u.clone()))
                .collect(),
            algorithms: config.password_algorithms.clone(),
            algorithms_value: encode_password_algorithms(&config.password_algorithms),
            features,
            nonces: Nonces::new(config.seed, config.nonce_lifetime, features),
        }
    }

    /// REALM, a fresh NONCE and (with password algorithms) PASSWORD-ALGORITHMS: what a 401
    /// or 438 carries (RFC 8489 §9.2.4).
    pub(crate) fn challenge(&self, secs: u64) -> Vec<Attribute> {
        let mut v = vec![
            attrs::realm(&self.realm),
            attrs::nonce(self.nonces.issue(secs).as_bytes()),
        ];
        if self.features.password_algorithms {
            v.push(attrs::raw(
                PASSWORD_ALGORITHMS,
                self.algorithms_value.clone(),
            ));
        }
        v
    }

    /// The checks of RFC 8489 §9.2.4, `secs` seconds after the server's epoch, on the
    /// request `req` whose bytes are `data`. The order: no integrity attribute (401);
    /// USERNAME/USERHASH, REALM or NONCE missing (400); the password-algorithm checks
    /// when our nonce cookie announces them (400); another realm (401); a stale or foreign
    /// nonce (438); unknown user (401); integrity (401).
    pub(crate) fn check(
        &self,
        req: &Message,
        data: &[u8],
        secs: u64,
    ) -> Result<Credentials, Rejection> {
        let name = attrs::raw_value(req, kind::USERNAME);
        let hash = attrs::raw_value(req, USERHASH);
        let hashed_user = hash
            .and_then(|h| <[u8; 32]>::try_from(h).ok())
            .and_then(|h| self.by_hash.get(&h));
        let label = name
            .map(|u| String::from_utf8_lossy(u).into_owned())
            .or_else(|| hashed_user.cloned());
        let reject = |reason, code| Rejection {
            reason,
            code,
            user: label.clone(),
        };
        let (sha1_at, sha256_at) = integrity_positions(req);
        if sha1_at.is_none() && sha256_at.is_none() {
            return Err(reject(
                AuthFailure::NoCredentials,
                attrs::error::UNAUTHENTICATED,
            ));
        }
        let (Some(realm), Some(nonce)) = (
            attrs::raw_value(req, kind::REALM),
            attrs::raw_value(req, kind::NONCE),
        ) else {
            return Err(reject(AuthFailure::Incomplete, attrs::error::BAD_REQUEST));
        };
        if name.is_some() == hash.is_some() {
            // Neither, or both: which one names the user?
            return Err(reject(AuthFailure::Incomplete, attrs::error::BAD_REQUEST));
        }
        let Some((algorithm, negotiated)) = self.negotiate(req, nonce) else {
            return Err(reject(
                AuthFailure::AlgorithmMismatch,
                attrs::error::BAD_REQUEST,
            ));
        };
        if realm != self.realm.as_bytes() {
            return Err(reject(
                AuthFailure::WrongRealm,
                attrs::error::UNAUTHENTICATED,
            ));
        }
        if self.nonces.check(nonce, secs) != NonceCheck::Valid {
            return Err(reject(AuthFailure::StaleNonce, attrs::error::STALE_NONCE));
        }
        let user = match name {
            Some(n) => String::from_utf8_lossy(n).into_owned(),
            None => hashed_user.cloned().unwrap_or_default(),
        };
        let Some(password) = self.users.get(&user) else {
            return Err(reject(
                AuthFailure::UnknownUser,
                attrs::error::UNAUTHENTICATED,
            ));
        };
        let key = algorithm.key(&user, &self.realm, password);
        // §14.6: with MESSAGE-INTEGRITY-SHA256 present it is the one checked (it covers a
        // MESSAGE-INTEGRITY before it; one after it is to be ignored).
        let valid = match sha256_at {
            Some(_) => check_integrity_sha256(data, key.as_bytes()),
            None => check_integrity(data, key.as_bytes()),
        };
        if valid != Some(true) {
            return Err(reject(
                AuthFailure::BadIntegrity,
                attrs::error::UNAUTHENTICATED,
            ));
        }
        // §9.2.4: MESSAGE-INTEGRITY-SHA256 in every response unless the request was
        // processed as MD5 for naming no algorithm; we also answer MESSAGE-INTEGRITY-SHA256
        // with it (§14.6), and MESSAGE-INTEGRITY with it.
        let used_sha1 = match (sha1_at, sha256_at) {
            (Some(a), Some(b)) => a < b,
            (Some(_), None) => true,
            _ => false,
        };
        Ok(Credentials {
            user,
            key,
            integrity: ResponseIntegrity {
                sha1: used_sha1 && !negotiated,
                sha256: negotiated || sha256_at.is_some(),
            },
        })
    }

    /// The password-algorithm checks of RFC 8489 §9.2.4, when the request's nonce carries
    /// the cookie with "Password algorithms": no PASSWORD-ALGORITHMS and no
    /// PASSWORD-ALGORITHM → MD5, not negotiated; otherwise both must be present, the first
    /// equal to what we sent and the second one of its entries, else `None` (400).
    /// Without the bit the attributes are not looked at and the key is MD5.
    fn negotiate(&self, req: &Message, nonce: &[u8]) -> Option<(PasswordAlgorithm, bool)> {
        if !SecurityFeatures::from_nonce(nonce).is_some_and(|f| f.password_algorithms) {
            return Some((PasswordAlgorithm::Md5, false));
        }
        match (
            attrs::raw_value(req, PASSWORD_ALGORITHMS),
            attrs::raw_value(req, PASSWORD_ALGORITHM),
        ) {
            (None, None) => Some((PasswordAlgorithm::Md5, false)),
            (Some(list), Some(one)) if list == self.algorithms_value.as_slice() => {
                let (n, params) = decode_password_algorithm(one)?;
                let a = PasswordAlgorithm::from_number(n)
                    .filter(|a| params.is_empty() && self.algorithms.contains(a))?;
                Some((a, true))
            }
            _ => None,
        }
    }
}

/// Indexes of the first MESSAGE-INTEGRITY and MESSAGE-INTEGRITY-SHA256 attributes.
fn integrity_positions(req: &Message) -> (Option<usize>, Option<usize>) {
    let at = |t| req.attributes.iter().position(|a| a.typ() == t);
    (
        at(kind::MESSAGE_INTEGRITY),
        at(kind::MESSAGE_INTEGRITY_SHA256),
    )
}

/// The request without the attributes that follow its integrity attribute(s), which
/// RFC 8489 §14.5/§14.6 says to ignore (FINGERPRINT kept); `None` when nothing follows.
pub(crate) fn authenticated_part(req: &Message) -> Option<Message> {
    let (sha1, sha256) = integrity_positions(req);
    let last = match (sha1, sha256) {
        (Some(a), Some(b)) if a < b => b,
        (_, Some(b)) => b,
        (Some(a), None) => a,
        (None, None) => return None,
    };
    let rest = &req.attributes[last + 1..];
    if rest.iter().all(|a| matches!(a, Attribute::Fingerprint(_))) {
        return None;
    }
    let mut trimmed = req.clone();
    trimmed.attributes.truncate(last + 1);
    trimmed.attributes.extend(
        rest.iter()
            .filter(|a| matches!(a, Attribute::Fingerprint(_)))
            .cloned(),
    );
    Some(trimmed)
}

/// Deterministic nonces (RFC 8489 §9.2): the nonce cookie with the server's security
/// features (§9.2.1), then `<issue time in seconds, 16 hex digits>` and 16 hex digits of
/// HMAC-SHA1(seed, features, issue time). A nonce is valid when it starts with our cookie,
/// its MAC matches and it is younger than the configured lifetime; the server keeps no
/// nonce state.
#[derive(Debug, Clone)]
pub(crate) struct Nonces {
    seed: [u8; 8],
    lifetime: Duration,
    cookie: [u8; 13],
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
    pub(crate) fn new(seed: u64, lifetime: Duration, features: SecurityFeatures) -> Self {
        Nonces {
            seed: seed.to_be_bytes(),
            lifetime,
            cookie: features.cookie(),
        }
    }

    fn mac(&self, issued: u64) -> u64 {
        let m = hmac_sha1(
            &self.seed,
            &[b"pinhole-turn-nonce", &self.cookie, &issued.to_be_bytes()],
        );
        u64::from_be_bytes([m[0], m[1], m[2], m[3], m[4], m[5], m[6], m[7]])
    }

    /// A nonce issued at `secs` seconds after the server's epoch.
    pub(crate) fn issue(&self, secs: u64) -> String {
        let cookie = std::str::from_utf8(&self.cookie).unwrap_or_default(); // ASCII by construction
        format!("{cookie}{secs:016x}{:016x}", self.mac(secs))
    }

    pub(crate) fn check(&self, nonce: &[u8], secs: u64) -> NonceCheck {
        // Another feature set than ours is not our nonce (and may be a bid-down attempt).
        let Some(rest) = nonce.strip_prefix(&self.cookie[..]) else {
            return NonceCheck::Invalid;
        };
        // Hex digits only, so the slicing stays on character boundaries.
        let Some(text) = std::str::from_utf8(rest)
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
    fn keys_and_userhash_known_answers() {
        // python3 -c "import hashlib;print(hashlib.md5(b'user:realm:pass').hexdigest())"
        assert_eq!(
            hex(&long_term_key("user", "realm", "pass")),
            "8493fbc53ba582fb4c044c456bdc40eb"
        );
        assert_eq!(
            hex(PasswordAlgorithm::Md5
                .key("user", "realm", "pass")
                .as_bytes()),
            "8493fbc53ba582fb4c044c456bdc40eb"
        );
        // python3 -c "import hashlib;print(hashlib.sha256(b'alice:example.org:secret').hexdigest())"
        assert_eq!(
            hex(PasswordAlgorithm::Sha256
                .key("alice", "example.org", "secret")
                .as_bytes()),
            "d1659fff7a501be15962adc35514ca6a5868905695f2dd1093741f931e000a1f"
        );
        // RFC 8489 Appendix B.1: the USERHASH of "マトリックス" in realm "example.org".
        assert_eq!(
            hex(&userhash("マトリックス", "example.org")),
            "4a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704"
        );
        for a in [PasswordAlgorithm::Md5, PasswordAlgorithm::Sha256] {
            assert_eq!(PasswordAlgorithm::from_number(a.number()), Some(a));
            assert_eq!(PasswordAlgorithm::from_name(a.name()), Some(a));
        }
        assert_eq!(
            PasswordAlgorithm::from_name("SHA-256"),
            Some(PasswordAlgorithm::Sha256)
        );
        assert_eq!(PasswordAlgorithm::from_number(3), None);
        assert_eq!(PasswordAlgorithm::from_name("sha1"), None);
        assert_eq!(
            format!("{:?}", PasswordAlgorithm::Md5.key("a", "b", "c")),
            "LongTermKey::Md5(..)"
        );
    }

    #[test]
    fn security_features_in_the_nonce_cookie() {
        let both = SecurityFeatures {
            password_algorithms: true,
            username_anonymity: true,
        };
        // base64 of 00 00 03, 00 00 01, 00 00 00 (python3 base64.b64encode).
        assert_eq!(&both.cookie(), b"obMatJos2AAAD");
        let pa = SecurityFeatures {
            password_algorithms: true,
            username_anonymity: false,
        };
        assert_eq!(&pa.cookie(), b"obMatJos2AAAB");
        assert_eq!(&SecurityFeatures::default().cookie(), b"obMatJos2AAAA");
        for f in [both, pa, SecurityFeatures::default()] {
            assert_eq!(SecurityFeatures::from_nonce(&f.cookie()), Some(f));
        }
        // RFC 8489 Appendix B.1's nonce: "AAAC" = username anonymity (erratum 6290).
        assert_eq!(
            SecurityFeatures::from_nonce(b"obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"),
            Some(SecurityFeatures {
                password_algorithms: false,
                username_anonymity: true,
            })
        );
        // Unassigned bits are ignored; no cookie, short or non-base64 features: none.
        assert_eq!(SecurityFeatures::from_nonce(b"obMatJos2////x"), Some(both));
        assert_eq!(SecurityFeatures::from_nonce(b"0123456789abcdef"), None);
        assert_eq!(SecurityFeatures::from_nonce(b"obMatJos2AA"), None);
        assert_eq!(SecurityFeatures::from_nonce(b"obMatJos2AA=A"), None);
        assert_eq!(
            SecurityFeatures::from_nonce("obMatJos2ééé".as_bytes()),
            None
        );
    }

    #[test]
    fn password_algorithm_attributes() {
        let list = [PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5];
        let v = encode_password_algorithms(&list);
        assert_eq!(v, [0, 2, 0, 0, 0, 1, 0, 0]);
        assert_eq!(
            decode_password_algorithms(&v),
            Some(vec![(2, &[][..]), (1, &[][..])])
        );
        // An unknown algorithm with 3 bytes of parameters, padded to 4.
        let odd = [0, 9, 0, 3, 1, 2, 3, 0, 0, 1, 0, 0];
        assert_eq!(
            decode_password_algorithms(&odd),
            Some(vec![(9, &[1, 2, 3][..]), (1, &[][..])])
        );
        assert_eq!(decode_password_algorithms(&[]), None);
        assert_eq!(decode_password_algorithms(&[0, 1, 0]), None);
        assert_eq!(decode_password_algorithms(&[0, 1, 0, 8, 0]), None);
        assert_eq!(decode_password_algorithms(&odd[..7]), None, "padding cut");
        let one = encode_password_algorithm(PasswordAlgorithm::Sha256);
        assert_eq!(one, [0, 2, 0, 0]);
        assert_eq!(decode_password_algorithm(&one), Some((2, &[][..])));
        assert_eq!(decode_password_algorithm(&[0, 2, 0, 0, 0]), None);
        assert_eq!(decode_password_algorithm(&[0, 2]), None);
    }

    #[test]
    fn nonces() {
        let features = SecurityFeatures {
            password_algorithms: true,
            username_anonymity: false,
        };
        let n = Nonces::new(42, Duration::from_secs(600), features);
        let nonce = n.issue(100);
        assert_eq!(nonce.len(), 13 + 32);
        assert!(nonce.starts_with("obMatJos2AAAB"));
        assert_eq!(n.issue(100), nonce, "deterministic");
        assert_eq!(n.check(nonce.as_bytes(), 100), NonceCheck::Valid);
        assert_eq!(n.check(nonce.as_bytes(), 699), NonceCheck::Valid);
        assert_eq!(n.check(nonce.as_bytes(), 700), NonceCheck::Stale);
        assert_eq!(n.check(nonce.as_bytes(), 99), NonceCheck::Invalid);
        let other = Nonces::new(43, Duration::from_secs(600), features).issue(100);
        assert_eq!(n.check(other.as_bytes(), 100), NonceCheck::Invalid);
        // The same nonce with its feature bits changed (a bid-down) is not ours.
        let downgraded = nonce.replacen("AAAB", "AAAA", 1);
        assert_eq!(n.check(downgraded.as_bytes(), 100), NonceCheck::Invalid);
        // Nor is one of the same seed issued under another feature set.
        let plain = Nonces::new(42, Duration::from_secs(600), SecurityFeatures::default());
        assert_eq!(
            plain.check(nonce.replacen("AAAB", "AAAA", 1).as_bytes(), 100),
            NonceCheck::Invalid
        );
        assert_eq!(n.check(&nonce.as_bytes()[13..], 100), NonceCheck::Invalid);
        assert_eq!(n.check(b"junk", 100), NonceCheck::Invalid);
        assert_eq!(n.check(&[0xff; 45], 100), NonceCheck::Invalid);
        // 32 bytes of multi-byte characters after the cookie: no slicing inside one.
        let with = |tail: &str| format!("obMatJos2AAAB{tail}");
        assert_eq!(
            n.check(with(&"é".repeat(16)).as_bytes(), 100),
            NonceCheck::Invalid
        );
        assert_eq!(
            n.check(with(&format!("a{}", "é".repeat(15))).as_bytes(), 100),
            NonceCheck::Invalid
        );
        assert_eq!(
            n.check(with("+000000000000064ffffffffffffffff").as_bytes(), 100),
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
