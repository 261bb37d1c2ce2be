//! TURN server configuration (RFC 8656 §7.2 relayed addresses and lifetimes, RFC 8489
//! §9.2 long-term credentials, RFC 8656 §21.1.2 peer deny list).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use thiserror::Error;

use super::auth::PasswordAlgorithm;
use crate::stun;

/// Server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// Listening transport addresses (UDP) clients send to (RFC 8656 §2.2 "TURN server
    /// transport address"). STUN Binding requests are answered there too.
    pub listen: Vec<SocketAddr>,
    /// The IP of every relayed transport address; its family is the only one allocated
    /// (RFC 8656 §7.2: other REQUESTED-ADDRESS-FAMILY values get 440).
    pub relay_addr: IpAddr,
    /// Inclusive relayed port range, e.g. (49152, 65535) (RFC 8656 §7.2 item 8).
    pub relay_ports: (u16, u16),
    /// The REALM of long-term credentials (RFC 8489 §9.2).
    pub realm: String,
    /// (username, password) pairs, used as given (no OpaqueString, RFC 8489 §9.2.2).
    pub users: Vec<(String, String)>,
    /// The password algorithms offered in PASSWORD-ALGORITHMS, in order of preference
    /// (RFC 8489 §9.2.4, §14.11; clients take the first they support). Empty: RFC 5389
    /// behaviour, no PASSWORD-ALGORITHMS and the MD5 key; the nonce cookie then leaves
    /// the "Password algorithms" bit unset. Clients that name no algorithm get MD5 either
    /// way. Default: SHA-256, MD5.
    pub password_algorithms: Vec<PasswordAlgorithm>,
    /// Set the "Username anonymity" bit in the nonce cookie: RFC 8489 clients then send
    /// USERHASH instead of USERNAME (§9.2.5). The server accepts both either way. Default on.
    pub username_anonymity: bool,
    /// Allocations allowed per username (486 Allocation Quota Reached beyond, RFC 8656 §7.2).
    pub quota: Option<u32>,
    /// SOFTWARE attribute for responses (RFC 8489 §14.14).
    pub software: Option<String>,
    /// How long a NONCE stays valid before 438 Stale Nonce (RFC 8489 §9.2.4).
    pub nonce_lifetime: Duration,
    /// Extra refused peer prefixes (RFC 8656 §21.1.2), added to the default deny list.
    pub deny: Vec<(IpAddr, u8)>,
    /// Seed for nonces and relayed port choice (everything else is deterministic).
    pub seed: u64,
    /// Accept ChannelBind for the channel numbers 0x5000–0x7FFF, which RFC 5766 §11
    /// allowed and RFC 8656 §12 reserves (RFC 7983 demultiplexing). Off by default: such
    /// requests get 400 (RFC 8656 §12.2). On for older clients (coturn accepts them too).
    pub legacy_channels: bool,
}

impl TurnConfig {
    /// A server on `listen`, relaying from `relay_addr` ports 49152–65535, no users,
    /// password algorithms SHA-256 and MD5, username anonymity on, no quota, SOFTWARE "pinhole", nonces valid for one hour, seed 0.
    pub fn new(listen: SocketAddr, relay_addr: IpAddr, realm: impl Into<String>) -> Self {
        TurnConfig {
            listen: vec![listen],
            relay_addr,
            relay_ports: (49152, 65535),
            realm: realm.into(),
            users: Vec::new(),
            password_algorithms: vec![PasswordAlgorithm::Sha256, PasswordAlgorithm::Md5],
            username_anonymity: true,
            quota: None,
            software: Some("pinhole".into()),
            nonce_lifetime: Duration::from_secs(3600),
            deny: Vec::new(),
            seed: 0,
            legacy_channels: false,
        }
    }

    /// Adds a user (builder style).
    pub fn user(mut self, name: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.push((name.into(), password.into()));
        self
    }
}

/// A configuration the server refuses.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TurnConfigError {
    /// `listen` is empty.
    #[error("no listening address: give the TURN server at least one")]
    NoListen,
    /// `relay_ports` is empty or starts at port 0.
    #[error("relay port range {0}-{1} is empty or includes port 0")]
    BadPortRange(u16, u16),
    /// The relay address is unspecified (0.0.0.0 or ::).
    #[error("relay address {0} is unspecified: use the address peers reach the relay at")]
    UnspecifiedRelay(IpAddr),
    /// The realm is empty or longer than RFC 8489 §14.9 allows (763 bytes).
    #[error("realm must be 1 to 763 bytes long")]
    BadRealm,
    /// A deny prefix longer than its address.
    #[error("deny prefix {0}/{1} is longer than the address")]
    BadPrefix(IpAddr, u8),
    /// A password algorithm listed twice in [`TurnConfig::password_algorithms`].
    #[error("password algorithm {} is listed twice", .0.name())]
    DuplicatePasswordAlgorithm(PasswordAlgorithm),
    /// The embedded STUN server refused a listening address.
    #[error("listening address {0}: {1}")]
    Stun(SocketAddr, stun::ConfigError),
}
