//! Bencode (BitTorrent BEP 3) and the framing of rtpengine's "ng" control protocol, which
//! carries one bencoded dictionary per UDP datagram behind a cookie:
//! `COOKIE SP d7:command4:pinge` → `COOKIE SP d6:result4:ponge`.
//!
//! Values: integers `i-42e` (no leading zeros, no `-0`), byte strings `4:ping`, lists
//! `l…e`, dictionaries `d…e` with byte-string keys. BEP 3 wants dictionary keys sorted;
//! real senders do not all sort them (Kamailio's bencode library appends in the order the
//! module adds them), so any order is accepted, a repeated key is refused (its meaning
//! would be ambiguous), and [`Value::emit`] writes keys sorted. Parsing is bounded in
//! nesting depth ([`MAX_DEPTH`]) and never panics on input.

use std::collections::BTreeMap;

/// Deepest nesting of lists and dictionaries accepted (ng messages nest 3–4 levels).
pub const MAX_DEPTH: usize = 32;

/// A bencoded value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// An integer.
    Int(i64),
    /// A byte string (ng carries text and SDP in these).
    Bytes(Vec<u8>),
    /// A list.
    List(Vec<Value>),
    /// A dictionary, keys sorted.
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Why bytes are not bencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input ended inside a value.
    #[error("bencode ends inside a value (at byte {0})")]
    Truncated(usize),
    /// A byte that starts no value, or a malformed integer or length.
    #[error("bencode: unexpected byte {byte:#04x} at byte {at}")]
    Unexpected {
        /// The byte.
        byte: u8,
        /// Its offset.
        at: usize,
    },
    /// An integer with leading zeros, `-0`, or out of the `i64` range.
    #[error("bencode: invalid integer at byte {0}")]
    Integer(usize),
    /// A dictionary key that is not a byte string.
    #[error("bencode: a dictionary key must be a byte string (at byte {0})")]
    KeyNotBytes(usize),
    /// The same dictionary key twice.
    #[error("bencode: a dictionary key repeats at byte {0}")]
    DuplicateKey(usize),
    /// Nesting deeper than [`MAX_DEPTH`].
    #[error("bencode: nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Bytes after the value.
    #[error("bencode: {0} byte(s) after the value")]
    Trailing(usize),
    /// An ng datagram without the space between cookie and message.
    #[error("ng: no space between the cookie and the message")]
    NoCookie,
}

impl Value {
    /// Parse exactly one value filling `input`.
    ///
    /// # Errors
    ///
    /// The first problem found ([`Error`]), with its offset.
    pub fn parse(input: &[u8]) -> Result<Value, Error> {
        let mut p = Parser { input, at: 0 };
        let v = p.value(0)?;
        if p.at != input.len() {
            return Err(Error::Trailing(input.len() - p.at));
        }
        Ok(v)
    }

    /// Append the value's bencoding (dictionary keys sorted) to `out`.
    pub fn emit(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(n) => {
                out.push(b'i');
                out.extend_from_slice(n.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => emit_bytes(b, out),
            Value::List(items) => {
                out.push(b'l');
                for v in items {
                    v.emit(out);
                }
                out.push(b'e');
            }
            Value::Dict(map) => {
                out.push(b'd');
                for (k, v) in map {
                    emit_bytes(k, out);
                    v.emit(out);
                }
                out.push(b'e');
            }
        }
    }

    /// The bencoding as a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.emit(&mut out);
        out
    }

    /// A byte string from text.
    pub fn text(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// The value of `key` in a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Dict(m) => m.get(key.as_bytes()),
            _ => None,
        }
    }

    /// A byte string's bytes as UTF-8 text, if it is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Bytes(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }
}

fn emit_bytes(b: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(b);
}

struct Parser<'a> {
    input: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Result<u8, Error> {
        self.input
            .get(self.at)
            .copied()
            .ok_or(Error::Truncated(self.at))
    }

    fn value(&mut self, depth: usize) -> Result<Value, Error> {
        if depth > MAX_DEPTH {
            return Err(Error::TooDeep);
        }
        match self.peek()? {
            b'i' => {
                self.at += 1;
                let start = self.at;
                let end = self.input[start..]
                    .iter()
                    .position(|&b| b == b'e')
                    .map(|i| start + i)
                    .ok_or(Error::Truncated(self.input.len()))?;
                let n = integer(&self.input[start..end]).ok_or(Error::Integer(start))?;
                self.at = end + 1;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?.to_vec())),
            b'l' => {
                self.at += 1;
                let mut items = Vec::new();
                while self.peek()? != b'e' {
                    items.push(self.value(depth + 1)?);
                }
                self.at += 1;
                Ok(Value::List(items))
            }
            b'd' => {
                self.at += 1;
                let mut map = BTreeMap::new();
                while self.peek()? != b'e' {
                    let key_at = self.at;
                    if !self.peek()?.is_ascii_digit() {
                        return Err(Error::KeyNotBytes(key_at));
                    }
                    let key = self.bytes()?.to_vec();
                    let v = self.value(depth + 1)?;
                    if map.insert(key, v).is_some() {
                        return Err(Error::DuplicateKey(key_at));
                    }
                }
                self.at += 1;
                Ok(Value::Dict(map))
            }
            byte => Err(Error::Unexpected { byte, at: self.at }),
        }
    }

    /// `LEN:BYTES`.
    fn bytes(&mut self) -> Result<&[u8], Error> {
        let start = self.at;
        let colon = self.input[start..]
            .iter()
            .position(|&b| !b.is_ascii_digit())
            .map(|i| start + i)
            .ok_or(Error::Truncated(self.input.len()))?;
        if self.input[colon] != b':' {
            return Err(Error::Unexpected {
                byte: self.input[colon],
                at: colon,
            });
        }
        let digits = &self.input[start..colon];
        if digits.is_empty() || (digits.len() > 1 && digits[0] == b'0') {
            return Err(Error::Integer(start));
        }
        let len: usize = std::str::from_utf8(digits)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or(Error::Integer(start))?;
        let from = colon + 1;
        let to = from.checked_add(len).ok_or(Error::Integer(start))?;
        let b = self
            .input
            .get(from..to)
            .ok_or(Error::Truncated(self.input.len()))?;
        self.at = to;
        Ok(b)
    }
}

/// The digits of `i…e`: optional `-`, no leading zeros, no `-0`, within `i64`.
fn integer(s: &[u8]) -> Option<i64> {
    let digits = s.strip_prefix(b"-").unwrap_or(s);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    if (digits.len() > 1 && digits[0] == b'0') || (s[0] == b'-' && digits == b"0") {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Split an ng datagram into its cookie and its message.
///
/// # Errors
///
/// No space after the cookie ([`Error::NoCookie`]), or the message is not one bencoded
/// value.
pub fn parse_ng(datagram: &[u8]) -> Result<(&[u8], Value), Error> {
    let space = datagram
        .iter()
        .position(|&b| b == b' ')
        .ok_or(Error::NoCookie)?;
    let (cookie, rest) = (&datagram[..space], &datagram[space + 1..]);
    Ok((cookie, Value::parse(rest)?))
}

/// An ng datagram: `cookie`, a space, the bencoded `message`.
pub fn emit_ng(cookie: &[u8], message: &Value) -> Vec<u8> {
    let mut out = Vec::with_capacity(cookie.len() + 64);
    out.extend_from_slice(cookie);
    out.push(b' ');
    message.emit(&mut out);
    out
}

#[cfg(test)]
mod test {
    use super::*;

    fn dict(pairs: &[(&str, Value)]) -> Value {
        Value::Dict(
            pairs
                .iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
                .collect(),
        )
    }

    #[test]
    fn ng_ping_and_pong() {
        let (cookie, msg) = parse_ng(b"5323_1 d7:command4:pinge").unwrap();
        assert_eq!(cookie, b"5323_1");
        assert_eq!(msg.get("command").and_then(Value::as_str), Some("ping"));
        let pong = dict(&[("result", Value::text("pong"))]);
        assert_eq!(emit_ng(cookie, &pong), b"5323_1 d6:result4:ponge");
    }

    #[test]
    fn an_offer_with_nested_values_round_trips() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 10.0.1.10\r\ns=-\r\nc=IN IP4 10.0.1.10\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n";
        let offer = dict(&[
            ("command", Value::text("offer")),
            ("call-id", Value::text("a84b4c76e66710")),
            ("from-tag", Value::text("1928301774")),
            ("sdp", Value::text(sdp)),
            (
                "received-from",
                Value::List(vec![Value::text("IP4"), Value::text("203.0.113.11")]),
            ),
            ("flags", Value::List(vec![Value::text("trust-address")])),
            ("ICE", Value::text("force")),
            ("ttl", Value::Int(-1)),
        ]);
        let bytes = offer.to_bytes();
        assert_eq!(Value::parse(&bytes).unwrap(), offer);
        // keys come out sorted: `ICE` (0x49) before `call-id`
        assert!(bytes.starts_with(b"d3:ICE5:force7:call-id"));
    }

    #[test]
    fn unsorted_keys_are_read_and_written_sorted() {
        let v = Value::parse(b"d1:bi2e1:ai1ee").unwrap();
        assert_eq!(v.to_bytes(), b"d1:ai1e1:bi2ee");
    }

    #[test]
    fn malformed_input_is_refused_with_its_place() {
        for (bad, err) in [
            (&b"i01e"[..], Error::Integer(1)),
            (b"i-0e", Error::Integer(1)),
            (b"ie", Error::Integer(1)),
            (b"i9223372036854775808e", Error::Integer(1)),
            (b"i12", Error::Truncated(3)),
            (b"5:abc", Error::Truncated(5)),
            (b"05:abcde", Error::Integer(0)),
            (b"4x", Error::Unexpected { byte: b'x', at: 1 }),
            (b"l", Error::Truncated(1)),
            (b"di1ei2ee", Error::KeyNotBytes(1)),
            (b"d1:ai1e1:ai2ee", Error::DuplicateKey(7)),
            (b"i1ei2e", Error::Trailing(3)),
            (b"x", Error::Unexpected { byte: b'x', at: 0 }),
        ] {
            assert_eq!(
                Value::parse(bad),
                Err(err),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(parse_ng(b"d7:command4:pinge"), Err(Error::NoCookie));
        let deep = [vec![b'l'; MAX_DEPTH + 2], vec![b'e'; MAX_DEPTH + 2]].concat();
        assert_eq!(Value::parse(&deep), Err(Error::TooDeep));
        let ok = [vec![b'l'; MAX_DEPTH + 1], vec![b'e'; MAX_DEPTH + 1]].concat();
        assert!(Value::parse(&ok).is_ok());
    }

    #[test]
    fn extreme_integers_and_empty_strings() {
        for n in [i64::MIN, -1, 0, 1, i64::MAX] {
            let v = Value::Int(n);
            assert_eq!(Value::parse(&v.to_bytes()).unwrap(), v);
        }
        assert_eq!(Value::parse(b"0:").unwrap(), Value::Bytes(Vec::new()));
        assert_eq!(Value::parse(b"de").unwrap(), Value::Dict(BTreeMap::new()));
    }
}
