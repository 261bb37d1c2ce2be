//! TURN methods and attributes (RFC 8656 §18), carried as [`Attribute::Raw`] values of the
//! lossless STUN codec: this module encodes and decodes their values, so the STUN codec
//! stays unchanged and byte-exact.

use std::net::SocketAddr;

use crate::stun::attr::{decode_address, encode_address};
use crate::stun::{Attribute, Message, Method, RawAttribute, TransactionId};

/// TURN method numbers (RFC 8656 §18).
pub mod method {
    use crate::stun::Method;

    /// Allocate (0x003, RFC 8656 §7): request/response only.
    pub const ALLOCATE: Method = Method::Unknown(0x003);
    /// Refresh (0x004, RFC 8656 §8): request/response only.
    pub const REFRESH: Method = Method::Unknown(0x004);
    /// Send (0x006, RFC 8656 §11.1): indication only.
    pub const SEND: Method = Method::Unknown(0x006);
    /// Data (0x007, RFC 8656 §11.4): indication only.
    pub const DATA: Method = Method::Unknown(0x007);
    /// CreatePermission (0x008, RFC 8656 §10): request/response only.
    pub const CREATE_PERMISSION: Method = Method::Unknown(0x008);
    /// ChannelBind (0x009, RFC 8656 §12): request/response only.
    pub const CHANNEL_BIND: Method = Method::Unknown(0x009);
}

/// TURN attribute type numbers (RFC 8656 §18), plus the RFC 8489 ones TURN relies on.
pub mod kind {
    pub use crate::stun::attr::kind::{
        ERROR_CODE, FINGERPRINT, MESSAGE_INTEGRITY, NONCE, REALM, SOFTWARE, USERNAME,
    };
    /// CHANNEL-NUMBER (RFC 8656 §18.1).
    pub const CHANNEL_NUMBER: u16 = 0x000C;
    /// LIFETIME (RFC 8656 §18.2).
    pub const LIFETIME: u16 = 0x000D;
    /// XOR-PEER-ADDRESS (RFC 8656 §18.3).
    pub const XOR_PEER_ADDRESS: u16 = 0x0012;
    /// DATA (RFC 8656 §18.4).
    pub const DATA: u16 = 0x0013;
    /// XOR-RELAYED-ADDRESS (RFC 8656 §18.5).
    pub const XOR_RELAYED_ADDRESS: u16 = 0x0016;
    /// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6).
    pub const REQUESTED_ADDRESS_FAMILY: u16 = 0x0017;
    /// EVEN-PORT (RFC 8656 §18.7).
    pub const EVEN_PORT: u16 = 0x0018;
    /// REQUESTED-TRANSPORT (RFC 8656 §18.8).
    pub const REQUESTED_TRANSPORT: u16 = 0x0019;
    /// DONT-FRAGMENT (RFC 8656 §18.9).
    pub const DONT_FRAGMENT: u16 = 0x001A;
    /// RESERVATION-TOKEN (RFC 8656 §18.10).
    pub const RESERVATION_TOKEN: u16 = 0x0022;
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    /// PASSWORD-ALGORITHMS (RFC 8489 §14.11), see [`crate::turn::auth`].
    pub const PASSWORD_ALGORITHMS: u16 = 0x8002;
    /// PASSWORD-ALGORITHM (RFC 8489 §14.12), see [`crate::turn::auth`].
    pub const PASSWORD_ALGORITHM: u16 = 0x001D;
    /// USERHASH (RFC 8489 §14.4), see [`crate::turn::auth`].
    pub const USERHASH: u16 = 0x001E;
}

/// TURN error codes (RFC 8656 §19) and the RFC 8489 ones the server sends.
pub mod error {
    /// 400 Bad Request.
    pub const BAD_REQUEST: u16 = 400;
    /// 401 Unauthenticated (RFC 8489 §9.2.4).
    pub const UNAUTHENTICATED: u16 = 401;
    /// 403 Forbidden (peer address refused, RFC 8656 §21.1.2 / §10.2).
    pub const FORBIDDEN: u16 = 403;
    /// 420 Unknown Attribute.
    pub const UNKNOWN_ATTRIBUTE: u16 = 420;
    /// 437 Allocation Mismatch (RFC 8656 §19).
    pub const ALLOCATION_MISMATCH: u16 = 437;
    /// 438 Stale Nonce (RFC 8489 §9.2.4).
    pub const STALE_NONCE: u16 = 438;
    /// 440 Address Family not Supported (RFC 8656 §19).
    pub const ADDRESS_FAMILY_NOT_SUPPORTED: u16 = 440;
    /// 441 Wrong Credentials (RFC 8656 §19): not those that created the allocation.
    pub const WRONG_CREDENTIALS: u16 = 441;
    /// 442 Unsupported Transport Protocol (RFC 8656 §19).
    pub const UNSUPPORTED_TRANSPORT: u16 = 442;
    /// 443 Peer Address Family Mismatch (RFC 8656 §19).
    pub const PEER_ADDRESS_FAMILY_MISMATCH: u16 = 443;
    /// 486 Allocation Quota Reached (RFC 8656 §19).
    pub const ALLOCATION_QUOTA_REACHED: u16 = 486;
    /// 508 Insufficient Capacity (RFC 8656 §19).
    pub const INSUFFICIENT_CAPACITY: u16 = 508;
}

/// The protocol number of UDP in REQUESTED-TRANSPORT (RFC 8656 §18.8).
pub const TRANSPORT_UDP: u8 = 17;
/// REQUESTED-ADDRESS-FAMILY value for IPv4 (RFC 8656 §18.6).
pub const FAMILY_IPV4: u8 = 0x01;
/// REQUESTED-ADDRESS-FAMILY value for IPv6 (RFC 8656 §18.6).
pub const FAMILY_IPV6: u8 = 0x02;

/// The value of the first attribute of type `typ` kept as [`Attribute::Raw`].
pub fn raw_value(msg: &Message, typ: u16) -> Option<&[u8]> {
    raw_values(msg, typ).next()
}

/// The values of every attribute of type `typ` kept as [`Attribute::Raw`], in wire order.
pub fn raw_values(msg: &Message, typ: u16) -> impl Iterator<Item = &[u8]> {
    msg.attributes.iter().filter_map(move |a| match a {
        Attribute::Raw(raw) if raw.typ == typ => Some(raw.value.as_slice()),
        _ => None,
    })
}

/// A raw attribute with zero padding.
pub fn raw(typ: u16, value: Vec<u8>) -> Attribute {
    Attribute::Raw(RawAttribute::new(typ, value))
}

/// An XOR-encoded address attribute (XOR-PEER-ADDRESS, XOR-RELAYED-ADDRESS; RFC 8656
/// §18.3/§18.5 use the XOR-MAPPED-ADDRESS encoding of RFC 8489 §14.2).
pub fn xor_address(typ: u16, addr: SocketAddr, tid: &TransactionId) -> Attribute {
    let mut v = Vec::with_capacity(20);
    encode_address(addr, Some(tid), &mut v);
    raw(typ, v)
}

/// Decodes an XOR-encoded address value; `None` when malformed.
pub fn decode_xor_address(value: &[u8], tid: &TransactionId) -> Option<SocketAddr> {
    decode_address(value, Some(tid))
}

/// Every XOR-PEER-ADDRESS of a message; `Err(())` when one of them is malformed.
#[allow(clippy::result_unit_err)]
pub fn peer_addresses(msg: &Message) -> Result<Vec<SocketAddr>, ()> {
    raw_values(msg, kind::XOR_PEER_ADDRESS)
        .map(|v| decode_xor_address(v, &msg.transaction_id).ok_or(()))
        .collect()
}

/// LIFETIME (RFC 8656 §18.2): seconds as a 32-bit value.
pub fn lifetime(secs: u32) -> Attribute {
    raw(kind::LIFETIME, secs.to_be_bytes().to_vec())
}

/// Decodes a 4-byte big-endian value (LIFETIME).
pub fn decode_u32(value: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(value.try_into().ok()?))
}

/// CHANNEL-NUMBER (RFC 8656 §18.1): the number, then 2 RFFU bytes.
pub fn channel_number(n: u16) -> Attribute {
    let b = n.to_be_bytes();
    raw(kind::CHANNEL_NUMBER, vec![b[0], b[1], 0, 0])
}

/// Decodes CHANNEL-NUMBER.
pub fn decode_channel_number(value: &[u8]) -> Option<u16> {
    (value.len() == 4).then(|| u16::from_be_bytes([value[0], value[1]]))
}

/// REQUESTED-TRANSPORT (RFC 8656 §18.8): protocol number, then 3 RFFU bytes.
pub fn requested_transport(protocol: u8) -> Attribute {
    raw(kind::REQUESTED_TRANSPORT, vec![protocol, 0, 0, 0])
}

/// REQUESTED-ADDRESS-FAMILY (RFC 8656 §18.6): family, then 3 RFFU bytes.
pub fn requested_address_family(family: u8) -> Attribute {
    raw(kind::REQUESTED_ADDRESS_FAMILY, vec![family, 0, 0, 0])
}

/// Decodes the first byte of a 4-byte value (REQUESTED-TRANSPORT, REQUESTED-ADDRESS-FAMILY).
pub fn decode_first_byte_of_4(value: &[u8]) -> Option<u8> {
    (value.len() == 4).then(|| value[0])
}

/// EVEN-PORT (RFC 8656 §18.7): one byte, R (reserve next port) in the top bit.
pub fn even_port(reserve: bool) -> Attribute {
    raw(kind::EVEN_PORT, vec![if reserve { 0x80 } else { 0 }])
}

/// Decodes EVEN-PORT: the R bit.
pub fn decode_even_port(value: &[u8]) -> Option<bool> {
    (value.len() == 1).then(|| value[0] & 0x80 != 0)
}

/// DATA (RFC 8656 §18.4).
pub fn data(bytes: &[u8]) -> Attribute {
    raw(kind::DATA, bytes.to_vec())
}

/// USERNAME (RFC 8489 §14.3).
pub fn username(name: &str) -> Attribute {
    raw(kind::USERNAME, name.as_bytes().to_vec())
}

/// REALM (RFC 8489 §14.9).
pub fn realm(realm: &str) -> Attribute {
    raw(kind::REALM, realm.as_bytes().to_vec())
}

/// NONCE (RFC 8489 §14.10).
pub fn nonce(nonce: &[u8]) -> Attribute {
    raw(kind::NONCE, nonce.to_vec())
}

/// A MESSAGE-INTEGRITY placeholder that [`Message::emit_with_integrity`] fills in
/// (RFC 8489 §14.5).
pub fn integrity_placeholder() -> Attribute {
    raw(kind::MESSAGE_INTEGRITY, vec![0; 20])
}

/// A full-length (32-byte) MESSAGE-INTEGRITY-SHA256 placeholder that
/// [`Message::emit_with_integrity`] fills in (RFC 8489 §14.6).
pub fn integrity_sha256_placeholder() -> Attribute {
    raw(kind::MESSAGE_INTEGRITY_SHA256, vec![0; 32])
}

/// A request of a TURN method with a fresh transaction id (for clients and tests).
pub fn request(method: Method, tid: [u8; 12]) -> Message {
    Message::new(crate::stun::Class::Request, method, TransactionId::new(tid))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn round_trips() {
        let tid = TransactionId::new([7; 12]);
        for addr in ["192.0.2.1:5000", "[2001:db8::1]:6000"] {
            let a: SocketAddr = addr.parse().unwrap();
            let Attribute::Raw(r) = xor_address(kind::XOR_PEER_ADDRESS, a, &tid) else {
                panic!()
            };
            assert_eq!(decode_xor_address(&r.value, &tid), Some(a));
        }
        let Attribute::Raw(r) = channel_number(0x4001) else {
            panic!()
        };
        assert_eq!(decode_channel_number(&r.value), Some(0x4001));
        let Attribute::Raw(r) = lifetime(600) else {
            panic!()
        };
        assert_eq!(decode_u32(&r.value), Some(600));
        let Attribute::Raw(r) = even_port(true) else {
            panic!()
        };
        assert_eq!(decode_even_port(&r.value), Some(true));
        assert_eq!(decode_channel_number(&[0x40]), None);
        assert_eq!(decode_u32(&[1, 2, 3]), None);
        // A TURN message survives the codec byte for byte.
        let msg = request(method::ALLOCATE, [1; 12])
            .with(requested_transport(TRANSPORT_UDP))
            .with(even_port(false))
            .with(data(b"abcde"));
        let bytes = msg.emit();
        assert_eq!(Message::parse(&bytes).unwrap().emit(), bytes);
    }
}
