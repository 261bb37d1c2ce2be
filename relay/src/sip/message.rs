//! SIP messages (RFC 3261 §7): parse, inspect, edit, serialise.
//!
//! Lossless where it does not change things: every header field keeps the exact bytes it was
//! received with (folding, case, compact name, spacing) until it is edited, and the start line
//! likewise; serialising an unedited message gives back the received bytes (minus CRLFs
//! before the start line and octets after the Content-Length body, RFC 3261 §7.5, §18.3).
//! Typed views ([`Via`], [`NameAddr`], [`CSeq`], ...) are parsed on demand from the
//! unfolded values; [`Message::parse`] runs them once so that a message it accepts has
//! well-formed proxy-relevant fields.

use super::ParseError;
use super::headers::{CSeq, Contacts, NameAddr, Via, full_name, name_is, parse_delta_seconds};
use super::text::{is_token, split_list};
use super::uri::Uri;
use std::fmt;

mod parse;

/// Size limits applied while parsing (a message over a limit is rejected, never truncated).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest message (header section plus body), in bytes.
    pub max_message: usize,
    /// Most header fields (counted as lines starting a field, not comma-separated values).
    pub max_headers: usize,
    /// Longest line, in bytes.
    pub max_line: usize,
}

impl Default for Limits {
    /// 64 KiB messages (the largest UDP datagram), 256 fields, 8 KiB lines.
    fn default() -> Limits {
        Limits {
            max_message: 65_535,
            max_headers: 256,
            max_line: 8192,
        }
    }
}

/// How the message arrived, which decides how its body is delimited (RFC 3261 §18.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// One datagram is one message: no Content-Length means "to the end"; octets past
    /// Content-Length are discarded; a Content-Length beyond the datagram is an error.
    Datagram,
    /// Bytes cut out by a [`crate::sip::StreamFramer`]: Content-Length is mandatory and
    /// must match exactly.
    Stream,
}

/// A SIP method (RFC 3261 §7.1 and extensions). Methods are case-sensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    /// INVITE (RFC 3261).
    Invite,
    /// ACK (RFC 3261).
    Ack,
    /// BYE (RFC 3261).
    Bye,
    /// CANCEL (RFC 3261).
    Cancel,
    /// OPTIONS (RFC 3261).
    Options,
    /// REGISTER (RFC 3261).
    Register,
    /// UPDATE (RFC 3311).
    Update,
    /// MESSAGE (RFC 3428).
    Message,
    /// PRACK (RFC 3262).
    Prack,
    /// INFO (RFC 6086).
    Info,
    /// SUBSCRIBE (RFC 6665).
    Subscribe,
    /// NOTIFY (RFC 6665).
    Notify,
    /// REFER (RFC 3515).
    Refer,
    /// PUBLISH (RFC 3903).
    Publish,
    /// Any other token.
    Other(String),
}

impl Method {
    /// The method for a token.
    pub fn from_token(s: &str) -> Method {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "UPDATE" => Method::Update,
            "MESSAGE" => Method::Message,
            "PRACK" => Method::Prack,
            "INFO" => Method::Info,
            "SUBSCRIBE" => Method::Subscribe,
            "NOTIFY" => Method::Notify,
            "REFER" => Method::Refer,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other.to_string()),
        }
    }

    /// The token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Update => "UPDATE",
            Method::Message => "MESSAGE",
            Method::Prack => "PRACK",
            Method::Info => "INFO",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The first line (RFC 3261 §7.1 Request-Line, §7.2 Status-Line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `Method SP Request-URI SP SIP/2.0`.
    Request {
        /// The method.
        method: Method,
        /// The Request-URI.
        uri: Uri,
    },
    /// `SIP/2.0 SP Status-Code SP Reason-Phrase`.
    Response {
        /// 100..=699.
        code: u16,
        /// The reason phrase (may be empty).
        reason: String,
    },
}

impl fmt::Display for StartLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartLine::Request { method, uri } => write!(f, "{method} {uri} SIP/2.0"),
            StartLine::Response { code, reason } => write!(f, "SIP/2.0 {code} {reason}"),
        }
    }
}

/// One header field line (possibly folded over several lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    name: String,
    value: String,
    /// The received bytes of the field, terminator included, until it is edited.
    raw: Option<Vec<u8>>,
}

impl Header {
    /// A new field (serialised as `name: value`).
    pub fn new(name: &str, value: impl Into<String>) -> Header {
        Header {
            name: name.to_string(),
            value: value.into(),
            raw: None,
        }
    }

    /// The name as written (maybe compact, any case).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value, unfolded (folding replaced by one space) and trimmed.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether this field is `full` (compact forms and case folded).
    pub fn is(&self, full: &str) -> bool {
        name_is(&self.name, full)
    }

    /// Replace the value; the field is then serialised afresh.
    pub fn set_value(&mut self, value: impl Into<String>) {
        self.value = value.into();
        self.raw = None;
    }

    /// Whether the field still carries its received bytes.
    pub fn is_original(&self) -> bool {
        self.raw.is_some()
    }

    fn write(&self, out: &mut Vec<u8>) {
        match &self.raw {
            Some(raw) => out.extend_from_slice(raw),
            None => {
                out.extend_from_slice(self.name.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(self.value.as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
    }
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    start: StartLine,
    start_raw: Option<Vec<u8>>,
    headers: Vec<Header>,
    /// The empty line ending the header section, as received.
    blank: Vec<u8>,
    body: Vec<u8>,
}

impl Message {
    /// A request with no header fields (add them with [`Message::push_header`]).
    pub fn request(method: Method, uri: Uri) -> Message {
        Message {
            start: StartLine::Request { method, uri },
            start_raw: None,
            headers: Vec::new(),
            blank: b"\r\n".to_vec(),
            body: Vec::new(),
        }
    }

    /// A response to `req` (RFC 3261 §8.2.6.2): its Via fields, From, To (with `to_tag`
    /// added when the To has none), Call-ID and CSeq are copied (byte-exact), and
    /// `Content-Length: 0` is added.
    pub fn response_to(req: &Message, code: u16, reason: &str, to_tag: Option<&str>) -> Message {
        let mut headers = Vec::new();
        for h in &req.headers {
            if h.is("Via") || h.is("From") || h.is("Call-ID") || h.is("CSeq") {
                headers.push(h.clone());
            } else if h.is("To") {
                let mut h = h.clone();
                if let (Some(tag), Ok(mut to)) = (to_tag, NameAddr::parse(h.value(), "To"))
                    && to.tag().is_none()
                {
                    to.params.set("tag", Some(tag.to_string()));
                    h.set_value(to.to_string());
                }
                headers.push(h);
            }
        }
        headers.push(Header::new("Content-Length", "0"));
        Message {
            start: StartLine::Response {
                code,
                reason: reason.to_string(),
            },
            start_raw: None,
            headers,
            blank: b"\r\n".to_vec(),
            body: Vec::new(),
        }
    }

    // ----- start line -----

    /// The start line.
    pub fn start_line(&self) -> &StartLine {
        &self.start
    }

    /// Whether this is a request.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method.
    pub fn method(&self) -> Option<&Method> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The Request-URI.
    pub fn request_uri(&self) -> Option<&Uri> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// Replace the Request-URI (requests only; ignored on a response).
    pub fn set_request_uri(&mut self, new: Uri) {
        if let StartLine::Request { uri, .. } = &mut self.start {
            *uri = new;
            self.start_raw = None;
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    // ----- header fields -----

    /// All header fields in order.
    pub fn headers(&self) -> &[Header] {
        &self.headers
    }

    /// All header fields, to edit (an edited field loses its original bytes).
    pub fn headers_mut(&mut self) -> &mut Vec<Header> {
        &mut self.headers
    }

    /// The value of the first field named `name` (full name; compact forms match).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|h| h.is(name)).map(Header::value)
    }

    /// All comma-separated values of the fields named `name`, in order.
    pub fn values<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |h| h.is(name))
            .flat_map(|h| split_list(h.value()))
    }

    /// Append a field.
    pub fn push_header(&mut self, h: Header) {
        self.headers.push(h);
    }

    /// Insert a field at `index` (clamped to the end).
    pub fn insert_header(&mut self, index: usize, h: Header) {
        let i = index.min(self.headers.len());
        self.headers.insert(i, h);
    }

    /// Remove every field named `name`; returns how many were removed.
    pub fn remove_all(&mut self, name: &str) -> usize {
        let before = self.headers.len();
        self.headers.retain(|h| !h.is(name));
        before - self.headers.len()
    }

    /// Set the single field `name` to `value`: the first one is rewritten in place, any
    /// others removed; appended when absent.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self.headers.iter().position(|h| h.is(name)) {
            Some(i) => {
                if self.headers[i].value != value || !self.headers[i].is_original() {
                    self.headers[i].set_value(value);
                }
                let mut seen = 0;
                self.headers.retain(|h| {
                    if h.is(name) {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                });
            }
            None => self.headers.push(Header::new(name, value)),
        }
    }

    /// Insert `value` as the first value of `name` (a new field before the first field of
    /// that name, or at the top when there is none): how a proxy pushes Via and
    /// Record-Route (RFC 3261 §16.6 steps 4 and 8).
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        let i = self.headers.iter().position(|h| h.is(name)).unwrap_or(0);
        self.headers.insert(i, Header::new(name, value));
    }

    /// Remove and return the first value of `name` (other values of that field stay, the
    /// field is rewritten): popping the top Via (RFC 3261 §16.7 step 3) or Route (§16.4).
    pub fn pop_front(&mut self, name: &str) -> Option<String> {
        let i = self.headers.iter().position(|h| h.is(name))?;
        let values = split_list(self.headers[i].value());
        let first = values[0].to_string();
        if values.len() == 1 {
            self.headers.remove(i);
        } else {
            let rest = values[1..].join(", ");
            self.headers[i].set_value(rest);
        }
        Some(first)
    }

    /// Replace the first value of `name` (the field's other values are kept).
    pub fn set_front(&mut self, name: &str, value: impl Into<String>) -> bool {
        let Some(i) = self.headers.iter().position(|h| h.is(name)) else {
            return false;
        };
        let mut values: Vec<String> = split_list(self.headers[i].value())
            .into_iter()
            .map(str::to_string)
            .collect();
        values[0] = value.into();
        self.headers[i].set_value(values.join(", "));
        true
    }

    // ----- typed views -----

    /// Every Via value, top first (RFC 3261 §20.42).
    pub fn via(&self) -> Result<Vec<Via>, ParseError> {
        self.values("Via").map(Via::parse).collect()
    }

    /// The top Via.
    pub fn top_via(&self) -> Result<Via, ParseError> {
        let v = self
            .values("Via")
            .next()
            .ok_or(ParseError::Missing("Via"))?;
        Via::parse(v)
    }

    fn single(&self, name: &'static str) -> Result<&str, ParseError> {
        let mut it = self.values(name);
        let v = it.next().ok_or(ParseError::Missing(name))?;
        if it.next().is_some() {
            return Err(ParseError::Multiple(name));
        }
        Ok(v)
    }

    /// The From address (RFC 3261 §20.20).
    pub fn from(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(self.single("From")?, "From")
    }

    /// The To address (RFC 3261 §20.39).
    pub fn to(&self) -> Result<NameAddr, ParseError> {
        NameAddr::parse(self.single("To")?, "To")
    }

    /// The Call-ID (RFC 3261 §20.8). Not split at commas: it is a single word.
    pub fn call_id(&self) -> Result<&str, ParseError> {
        let mut it = self.headers.iter().filter(|h| h.is("Call-ID"));
        let h = it.next().ok_or(ParseError::Missing("Call-ID"))?;
        if it.next().is_some() {
            return Err(ParseError::Multiple("Call-ID"));
        }
        Ok(h.value())
    }

    /// The CSeq (RFC 3261 §20.16).
    pub fn cseq(&self) -> Result<CSeq, ParseError> {
        let mut it = self.headers.iter().filter(|h| h.is("CSeq"));
        let h = it.next().ok_or(ParseError::Missing("CSeq"))?;
        if it.next().is_some() {
            return Err(ParseError::Multiple("CSeq"));
        }
        CSeq::parse(h.value())
    }

    /// Max-Forwards (RFC 3261 §20.22), absent as `None`; values above 255 are errors.
    pub fn max_forwards(&self) -> Result<Option<u8>, ParseError> {
        let mut it = self.headers.iter().filter(|h| h.is("Max-Forwards"));
        let Some(h) = it.next() else { return Ok(None) };
        if it.next().is_some() {
            return Err(ParseError::Multiple("Max-Forwards"));
        }
        let v = h.value();
        if v.is_empty() || v.len() > 5 || !v.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::Header {
                name: "Max-Forwards",
                reason: "not a number",
            });
        }
        v.parse::<u8>().map(Some).map_err(|_| ParseError::Header {
            name: "Max-Forwards",
            reason: "above 255",
        })
    }

    /// The Contact values (RFC 3261 §20.10), or `*`.
    pub fn contacts(&self) -> Result<Contacts, ParseError> {
        let values: Vec<&str> = self.values("Contact").collect();
        if values.len() == 1 && values[0] == "*" {
            return Ok(Contacts::Star);
        }
        values
            .into_iter()
            .map(|v| NameAddr::parse(v, "Contact"))
            .collect::<Result<_, _>>()
            .map(Contacts::List)
    }

    /// The values of a name-addr list header (`Route`, `Record-Route`, `Path`).
    pub fn name_addrs(&self, name: &'static str) -> Result<Vec<NameAddr>, ParseError> {
        self.values(name)
            .map(|v| NameAddr::parse(v, name))
            .collect()
    }

    /// The Expires header (RFC 3261 §20.19) as delta-seconds; `None` when absent or not a
    /// number (RFC 3261 §10.2.1.1 lets a registrar then use its default).
    pub fn expires(&self) -> Option<u32> {
        self.get("Expires").and_then(parse_delta_seconds)
    }

    /// The Content-Length (RFC 3261 §20.14): `None` when absent; an error when repeated
    /// (RFC 4475 §3.3.10) or not a number (§3.1.2.3).
    pub fn content_length(&self) -> Result<Option<usize>, ParseError> {
        let mut it = self.headers.iter().filter(|h| h.is("Content-Length"));
        let Some(h) = it.next() else { return Ok(None) };
        if it.next().is_some() {
            return Err(ParseError::Multiple("Content-Length"));
        }
        let v = h.value();
        if v.is_empty() || v.len() > 9 || !v.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::Header {
                name: "Content-Length",
                reason: "not a number below 10**9",
            });
        }
        v.parse().map(Some).map_err(|_| ParseError::Header {
            name: "Content-Length",
            reason: "not a number",
        })
    }

    // ----- body -----

    /// The body.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Replace the body and set Content-Length to match.
    pub fn set_body(&mut self, body: Vec<u8>) {
        self.set("Content-Length", body.len().to_string());
        self.body = body;
    }

    // ----- output -----

    /// Serialise: original bytes for untouched parts, `Name: value` CRLF for edited ones.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match &self.start_raw {
            Some(raw) => out.extend_from_slice(raw),
            None => {
                out.extend_from_slice(self.start.to_string().as_bytes());
                out.extend_from_slice(b"\r\n");
            }
        }
        for h in &self.headers {
            h.write(out);
        }
        out.extend_from_slice(&self.blank);
        out.extend_from_slice(&self.body);
    }

    /// Serialise into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        self.write_to(&mut out);
        out
    }

    /// A one-line summary for logs and SIP ladders (`INVITE sip:bob@x` / `200 OK`).
    pub fn summary(&self) -> String {
        match &self.start {
            StartLine::Request { method, uri } => format!("{method} {uri}"),
            StartLine::Response { code, reason } => {
                let m = self.cseq().map(|c| c.method).unwrap_or_default();
                format!("{code} {reason} ({m})")
            }
        }
    }
}

/// The canonical (full) name of a header field name; compact forms expanded.
pub fn canonical(name: &str) -> &str {
    full_name(name)
}

#[cfg(test)]
mod test {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9\r\n\
v: SIP/2.0/UDP a.example.com;branch=z9hG4bK1, SIP/2.0/TCP b.example.com;branch=z9hG4bK2\r\n\
Max-Forwards: 70\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 1 INVITE\r\n\
Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    #[test]
    fn round_trip_is_exact() {
        let m = Message::parse(INVITE).unwrap();
        assert_eq!(m.to_bytes(), INVITE);
        assert_eq!(m.via().unwrap().len(), 3);
        assert_eq!(m.max_forwards().unwrap(), Some(70));
        assert_eq!(m.from().unwrap().tag(), Some("9fxced76sl"));
        assert_eq!(m.body(), b"v=0\n");
    }

    #[test]
    fn edits_touch_only_what_changes() {
        let mut m = Message::parse(INVITE).unwrap();
        m.push_front("Via", "SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1");
        m.set("Max-Forwards", "69");
        let out = String::from_utf8(m.to_bytes()).unwrap();
        assert!(out.contains(
            "Via: SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1\r\nVia: SIP/2.0/UDP client"
        ));
        assert!(out.contains("Max-Forwards: 69\r\n"));
        let mut m = Message::parse(out.as_bytes()).unwrap();
        assert_eq!(
            m.pop_front("Via").as_deref(),
            Some("SIP/2.0/UDP proxy.example.com;branch=z9hG4bKp1")
        );
        m.pop_front("Via");
        // the compact field with two values keeps the second
        assert_eq!(
            m.pop_front("Via").as_deref(),
            Some("SIP/2.0/UDP a.example.com;branch=z9hG4bK1")
        );
        assert_eq!(m.top_via().unwrap().host, "b.example.com");
    }

    #[test]
    fn rejects() {
        assert!(matches!(
            Message::parse(b"\r\n\r\n"),
            Err(ParseError::Empty)
        ));
        assert!(matches!(
            Message::parse(b"INVITE sip:a@b SIP/2.0\r\nVia: x\r\n"),
            Err(ParseError::Incomplete)
        ));
        let too_long = [
            &b"OPTIONS sip:a@b SIP/2.0\r\nX: "[..],
            &[b'a'; 9000],
            b"\r\n\r\n",
        ]
        .concat();
        assert!(matches!(
            Message::parse(&too_long),
            Err(ParseError::LineTooLong { .. })
        ));
    }

    #[test]
    fn response_copies_fields() {
        let m = Message::parse(INVITE).unwrap();
        let r = Message::response_to(&m, 180, "Ringing", Some("abc"));
        let r = Message::parse(&r.to_bytes()).unwrap();
        assert_eq!(r.status(), Some(180));
        assert_eq!(r.to().unwrap().tag(), Some("abc"));
        assert_eq!(r.via().unwrap().len(), 3);
    }
}
