//! STUN attributes (RFC 8489 §14, RFC 5780 §7, RFC 3489 §11.2).
//!
//! [`Attribute`] is the typed form of one attribute. Attributes the codec does not decode
//! (unknown types, or known types whose value is malformed or would not re-encode to the
//! same bytes) are kept as [`Attribute::Raw`] with their value and padding bytes, so a
//! parse → emit round trip never loses anything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use super::message::TransactionId;

/// Attribute type numbers (IANA "STUN Attributes" registry).
pub mod kind {
    /// MAPPED-ADDRESS (RFC 8489 §14.1, RFC 3489 §11.2.1).
    pub const MAPPED_ADDRESS: u16 = 0x0001;
    /// RESPONSE-ADDRESS (RFC 3489 §11.2.2; deprecated).
    pub const RESPONSE_ADDRESS: u16 = 0x0002;
    /// CHANGE-REQUEST (RFC 5780 §7.2, RFC 3489 §11.2.4).
    pub const CHANGE_REQUEST: u16 = 0x0003;
    /// SOURCE-ADDRESS (RFC 3489 §11.2.5; deprecated).
    pub const SOURCE_ADDRESS: u16 = 0x0004;
    /// CHANGED-ADDRESS (RFC 3489 §11.2.3; deprecated, replaced by OTHER-ADDRESS).
    pub const CHANGED_ADDRESS: u16 = 0x0005;
    /// USERNAME (RFC 8489 §14.3).
    pub const USERNAME: u16 = 0x0006;
    /// MESSAGE-INTEGRITY (RFC 8489 §14.5).
    pub const MESSAGE_INTEGRITY: u16 = 0x0008;
    /// ERROR-CODE (RFC 8489 §14.8).
    pub const ERROR_CODE: u16 = 0x0009;
    /// UNKNOWN-ATTRIBUTES (RFC 8489 §14.9).
    pub const UNKNOWN_ATTRIBUTES: u16 = 0x000A;
    /// REALM (RFC 8489 §14.9).
    pub const REALM: u16 = 0x0014;
    /// NONCE (RFC 8489 §14.10).
    pub const NONCE: u16 = 0x0015;
    /// MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6).
    pub const MESSAGE_INTEGRITY_SHA256: u16 = 0x001C;
    /// PASSWORD-ALGORITHM (RFC 8489 §14.12).
    pub const PASSWORD_ALGORITHM: u16 = 0x001D;
    /// USERHASH (RFC 8489 §14.4).
    pub const USERHASH: u16 = 0x001E;
    /// XOR-MAPPED-ADDRESS (RFC 8489 §14.2).
    pub const XOR_MAPPED_ADDRESS: u16 = 0x0020;
    /// PADDING (RFC 5780 §7.6).
    pub const PADDING: u16 = 0x0026;
    /// RESPONSE-PORT (RFC 5780 §7.5).
    pub const RESPONSE_PORT: u16 = 0x0027;
    /// SOFTWARE (RFC 8489 §14.14; SERVER in RFC 3489).
    pub const SOFTWARE: u16 = 0x8022;
    /// FINGERPRINT (RFC 8489 §14.7).
    pub const FINGERPRINT: u16 = 0x8028;
    /// RESPONSE-ORIGIN (RFC 5780 §7.3).
    pub const RESPONSE_ORIGIN: u16 = 0x802B;
    /// OTHER-ADDRESS (RFC 5780 §7.4).
    pub const OTHER_ADDRESS: u16 = 0x802C;
}

/// Whether an attribute type is comprehension-required (0x0000–0x7FFF, RFC 8489 §14).
pub fn is_comprehension_required(typ: u16) -> bool {
    typ < 0x8000
}

/// Whether the codec decodes this attribute type into a typed [`Attribute`] variant.
pub fn is_decoded(typ: u16) -> bool {
    use kind::*;
    matches!(
        typ,
        MAPPED_ADDRESS
            | RESPONSE_ADDRESS
            | CHANGE_REQUEST
            | SOURCE_ADDRESS
            | CHANGED_ADDRESS
            | ERROR_CODE
            | UNKNOWN_ATTRIBUTES
            | XOR_MAPPED_ADDRESS
            | PADDING
            | RESPONSE_PORT
            | SOFTWARE
            | FINGERPRINT
            | RESPONSE_ORIGIN
            | OTHER_ADDRESS
    )
}

/// CHANGE-REQUEST flags (RFC 5780 §7.2): "A" = change IP (0x4), "B" = change port (0x2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChangeRequest {
    /// Send the response from the other IP address.
    pub change_ip: bool,
    /// Send the response from the other port.
    pub change_port: bool,
}

impl ChangeRequest {
    const IP: u32 = 0x4;
    const PORT: u32 = 0x2;

    fn to_u32(self) -> u32 {
        (if self.change_ip { Self::IP } else { 0 })
            | (if self.change_port { Self::PORT } else { 0 })
    }
}

/// ERROR-CODE value (RFC 8489 §14.8): a code in 300..=699 and a reason phrase.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ErrorCode {
    /// The numeric code, class × 100 + number (e.g. 420).
    pub code: u16,
    /// The UTF-8 reason phrase.
    pub reason: String,
}

impl ErrorCode {
    /// An error code with a reason phrase.
    pub fn new(code: u16, reason: impl Into<String>) -> Self {
        ErrorCode {
            code,
            reason: reason.into(),
        }
    }
}

/// Common error codes (RFC 8489 §14.8).
pub mod error {
    /// 400 Bad Request.
    pub const BAD_REQUEST: u16 = 400;
    /// 420 Unknown Attribute.
    pub const UNKNOWN_ATTRIBUTE: u16 = 420;
    /// 500 Server Error.
    pub const SERVER_ERROR: u16 = 500;
}

/// An attribute kept as bytes: unknown types, and known types whose value did not decode.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// The attribute type.
    pub typ: u16,
    /// The value (without the 4-byte attribute header and without padding).
    pub value: Vec<u8>,
    /// The padding bytes that followed the value on the wire (the first
    /// `(4 - len % 4) % 4` are used on emit; zeros for attributes built locally).
    pub padding: [u8; 3],
}

impl RawAttribute {
    /// A raw attribute with zero padding.
    pub fn new(typ: u16, value: Vec<u8>) -> Self {
        RawAttribute {
            typ,
            value,
            padding: [0; 3],
        }
    }
}

/// One STUN attribute.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Attribute {
    /// MAPPED-ADDRESS (0x0001): the reflexive address, not XORed (RFC 3489 clients).
    MappedAddress(SocketAddr),
    /// RESPONSE-ADDRESS (0x0002, RFC 3489): where the client wanted the response sent.
    ResponseAddress(SocketAddr),
    /// CHANGE-REQUEST (0x0003).
    ChangeRequest(ChangeRequest),
    /// SOURCE-ADDRESS (0x0004, RFC 3489): the address the response was sent from.
    SourceAddress(SocketAddr),
    /// CHANGED-ADDRESS (0x0005, RFC 3489): the server's other IP and port.
    ChangedAddress(SocketAddr),
    /// ERROR-CODE (0x0009).
    ErrorCode(ErrorCode),
    /// UNKNOWN-ATTRIBUTES (0x000A): the comprehension-required types not understood.
    UnknownAttributes(Vec<u16>),
    /// XOR-MAPPED-ADDRESS (0x0020): the reflexive address, XORed with cookie and id.
    XorMappedAddress(SocketAddr),
    /// PADDING (0x0026): free-form bytes to enlarge the message.
    Padding(Vec<u8>),
    /// RESPONSE-PORT (0x0027): the port the response should be sent to.
    ResponsePort(u16),
    /// SOFTWARE (0x8022): the agent's name and version.
    Software(String),
    /// FINGERPRINT (0x8028). On emit the value is always recomputed (CRC-32 of the message
    /// so far XOR 0x5354554e); on parse it has been verified.
    Fingerprint(u32),
    /// RESPONSE-ORIGIN (0x802B): the address the response was sent from.
    ResponseOrigin(SocketAddr),
    /// OTHER-ADDRESS (0x802C): the server's alternate address and port.
    OtherAddress(SocketAddr),
    /// Any other attribute, or a known one whose value did not decode.
    Raw(RawAttribute),
}

const FAMILY_V4: u8 = 0x01;
const FAMILY_V6: u8 = 0x02;
const MAX_SOFTWARE_CHARS: usize = 127;
const MAX_REASON_CHARS: usize = 127;

impl Attribute {
    /// The attribute type number.
    pub fn typ(&self) -> u16 {
        use kind::*;
        match self {
            Attribute::MappedAddress(_) => MAPPED_ADDRESS,
            Attribute::ResponseAddress(_) => RESPONSE_ADDRESS,
            Attribute::ChangeRequest(_) => CHANGE_REQUEST,
            Attribute::SourceAddress(_) => SOURCE_ADDRESS,
            Attribute::ChangedAddress(_) => CHANGED_ADDRESS,
            Attribute::ErrorCode(_) => ERROR_CODE,
            Attribute::UnknownAttributes(_) => UNKNOWN_ATTRIBUTES,
            Attribute::XorMappedAddress(_) => XOR_MAPPED_ADDRESS,
            Attribute::Padding(_) => PADDING,
            Attribute::ResponsePort(_) => RESPONSE_PORT,
            Attribute::Software(_) => SOFTWARE,
            Attribute::Fingerprint(_) => FINGERPRINT,
            Attribute::ResponseOrigin(_) => RESPONSE_ORIGIN,
            Attribute::OtherAddress(_) => OTHER_ADDRESS,
            Attribute::Raw(raw) => raw.typ,
        }
    }

    /// Length of the value in bytes, without header and padding.
    pub fn value_len(&self) -> usize {
        match self {
            Attribute::MappedAddress(a)
            | Attribute::ResponseAddress(a)
            | Attribute::SourceAddress(a)
            | Attribute::ChangedAddress(a)
            | Attribute::XorMappedAddress(a)
            | Attribute::ResponseOrigin(a)
            | Attribute::OtherAddress(a) => address_len(a),
            Attribute::ChangeRequest(_)
            | Attribute::ResponsePort(_)
            | Attribute::Fingerprint(_) => 4,
            Attribute::ErrorCode(e) => 4 + e.reason.len(),
            Attribute::UnknownAttributes(types) => 2 * types.len(),
            Attribute::Padding(p) => p.len(),
            Attribute::Software(s) => s.len(),
            Attribute::Raw(raw) => raw.value.len(),
        }
    }

    /// Length on the wire: 4-byte header, value, padding to a multiple of 4.
    pub fn wire_len(&self) -> usize {
        4 + padded(self.value_len())
    }

    /// Appends the value bytes (no header, no padding). `tid` keys the XOR of
    /// XOR-MAPPED-ADDRESS. FINGERPRINT writes its stored value (the message emitter
    /// overwrites it).
    pub(crate) fn encode_value(&self, tid: &TransactionId, out: &mut Vec<u8>) {
        match self {
            Attribute::MappedAddress(a)
            | Attribute::ResponseAddress(a)
            | Attribute::SourceAddress(a)
            | Attribute::ChangedAddress(a)
            | Attribute::ResponseOrigin(a)
            | Attribute::OtherAddress(a) => encode_address(*a, None, out),
            Attribute::XorMappedAddress(a) => encode_address(*a, Some(tid), out),
            Attribute::ChangeRequest(c) => out.extend_from_slice(&c.to_u32().to_be_bytes()),
            Attribute::ErrorCode(e) => {
                let class = (e.code / 100) as u8 & 0x07;
                let number = (e.code % 100) as u8;
                out.extend_from_slice(&[0, 0, class, number]);
                out.extend_from_slice(e.reason.as_bytes());
            }
            Attribute::UnknownAttributes(types) => {
                for t in types {
                    out.extend_from_slice(&t.to_be_bytes());
                }
            }
            Attribute::Padding(p) => out.extend_from_slice(p),
            Attribute::ResponsePort(p) => {
                out.extend_from_slice(&p.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
            }
            Attribute::Software(s) => out.extend_from_slice(s.as_bytes()),
            Attribute::Fingerprint(f) => out.extend_from_slice(&f.to_be_bytes()),
            Attribute::Raw(raw) => out.extend_from_slice(&raw.value),
        }
    }

    /// The padding bytes to append after the value.
    pub(crate) fn padding_bytes(&self) -> &[u8] {
        let n = padded(self.value_len()) - self.value_len();
        match self {
            Attribute::Raw(raw) => &raw.padding[..n],
            _ => &[0, 0, 0][..n],
        }
    }

    /// Decodes one attribute. Never fails: anything that does not decode strictly (so
    /// that re-encoding gives the same bytes) becomes [`Attribute::Raw`].
    pub(crate) fn decode(typ: u16, value: &[u8], padding: &[u8], tid: &TransactionId) -> Attribute {
        let mut pad = [0u8; 3];
        let n = padding.len().min(3);
        pad[..n].copy_from_slice(&padding[..n]);
        let raw = || {
            Attribute::Raw(RawAttribute {
                typ,
                value: value.to_vec(),
                padding: pad,
            })
        };
        let decoded = if padding.iter().all(|b| *b == 0) {
            Self::decode_value(typ, value, tid)
        } else {
            // Non-zero padding bytes (RFC 8489 allows any value): decode anyway for
            // known types, but keep exotic ones raw so the bytes survive.
            match typ {
                kind::SOFTWARE | kind::ERROR_CODE | kind::UNKNOWN_ATTRIBUTES => {
                    Self::decode_value(typ, value, tid)
                }
                _ => None,
            }
        };
        match decoded {
            Some(attr) => {
                // Strictness check: re-encoding must reproduce the value bytes exactly.
                let mut check = Vec::with_capacity(value.len());
                attr.encode_value(tid, &mut check);
                if check == value { attr } else { raw() }
            }
            None => raw(),
        }
    }

    fn decode_value(typ: u16, value: &[u8], tid: &TransactionId) -> Option<Attribute> {
        use kind::*;
        Some(match typ {
            MAPPED_ADDRESS => Attribute::MappedAddress(decode_address(value, None)?),
            RESPONSE_ADDRESS => Attribute::ResponseAddress(decode_address(value, None)?),
            SOURCE_ADDRESS => Attribute::SourceAddress(decode_address(value, None)?),
            CHANGED_ADDRESS => Attribute::ChangedAddress(decode_address(value, None)?),
            RESPONSE_ORIGIN => Attribute::ResponseOrigin(decode_address(value, None)?),
            OTHER_ADDRESS => Attribute::OtherAddress(decode_address(value, None)?),
            XOR_MAPPED_ADDRESS => Attribute::XorMappedAddress(decode_address(value, Some(tid))?),
            CHANGE_REQUEST => {
                let v = u32::from_be_bytes(value.try_into().ok()?);
                Attribute::ChangeRequest(ChangeRequest {
                    change_ip: v & ChangeRequest::IP != 0,
                    change_port: v & ChangeRequest::PORT != 0,
                })
            }
            ERROR_CODE => {
                if value.len() < 4 {
                    return None;
                }
                let class = u16::from(value[2] & 0x07);
                let number = u16::from(value[3]);
                if !(3..=6).contains(&class) || number > 99 {
                    return None;
                }
                let reason = std::str::from_utf8(&value[4..]).ok()?;
                if reason.chars().count() > MAX_REASON_CHARS {
                    return None;
                }
                Attribute::ErrorCode(ErrorCode {
                    code: class * 100 + number,
                    reason: reason.to_owned(),
                })
            }
            UNKNOWN_ATTRIBUTES => {
                if !value.len().is_multiple_of(2) {
                    return None;
                }
                Attribute::UnknownAttributes(
                    value
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect(),
                )
            }
            PADDING => Attribute::Padding(value.to_vec()),
            RESPONSE_PORT => {
                if value.len() != 4 {
                    return None;
                }
                Attribute::ResponsePort(u16::from_be_bytes([value[0], value[1]]))
            }
            SOFTWARE => {
                let s = std::str::from_utf8(value).ok()?;
                if s.chars().count() > MAX_SOFTWARE_CHARS {
                    return None;
                }
                Attribute::Software(s.to_owned())
            }
            FINGERPRINT => Attribute::Fingerprint(u32::from_be_bytes(value.try_into().ok()?)),
            _ => return None,
        })
    }
}

/// `len` rounded up to a multiple of 4.
pub(crate) fn padded(len: usize) -> usize {
    (len + 3) & !3
}

fn address_len(a: &SocketAddr) -> usize {
    match a {
        SocketAddr::V4(_) => 8,
        SocketAddr::V6(_) => 20,
    }
}

/// The XOR key: the 16 bytes after the message type and length (magic cookie + 96-bit
/// transaction id for RFC 5389+ messages, RFC 8489 §14.2).
fn xor_key(tid: &TransactionId) -> [u8; 16] {
    *tid.as_bytes()
}

pub(crate) fn encode_address(addr: SocketAddr, xor: Option<&TransactionId>, out: &mut Vec<u8>) {
    let key = xor.map(xor_key).unwrap_or([0; 16]);
    let port = addr.port() ^ u16::from_be_bytes([key[0], key[1]]);
    match addr.ip() {
        IpAddr::V4(ip) => {
            out.extend_from_slice(&[0, FAMILY_V4]);
            out.extend_from_slice(&port.to_be_bytes());
            let o = ip.octets();
            out.extend((0..4).map(|i| o[i] ^ key[i]));
        }
        IpAddr::V6(ip) => {
            out.extend_from_slice(&[0, FAMILY_V6]);
            out.extend_from_slice(&port.to_be_bytes());
            let o = ip.octets();
            out.extend((0..16).map(|i| o[i] ^ key[i]));
        }
    }
}

pub(crate) fn decode_address(value: &[u8], xor: Option<&TransactionId>) -> Option<SocketAddr> {
    let key = xor.map(xor_key).unwrap_or([0; 16]);
    if value.len() < 4 {
        return None;
    }
    let port = u16::from_be_bytes([value[2], value[3]]) ^ u16::from_be_bytes([key[0], key[1]]);
    let ip = match (value[1], value.len()) {
        (FAMILY_V4, 8) => {
            let mut o = [0u8; 4];
            for i in 0..4 {
                o[i] = value[4 + i] ^ key[i];
            }
            IpAddr::V4(Ipv4Addr::from(o))
        }
        (FAMILY_V6, 20) => {
            let mut o = [0u8; 16];
            for i in 0..16 {
                o[i] = value[4 + i] ^ key[i];
            }
            IpAddr::V6(Ipv6Addr::from(o))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip, port))
}
