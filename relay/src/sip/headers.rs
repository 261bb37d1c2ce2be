//! Typed header values a proxy needs (RFC 3261 §20): Via, name-addr forms (From, To,
//! Contact, Route, Record-Route), CSeq, and the compact header names (RFC 3261 §7.3.3).

use super::ParseError;
use super::text::{Params, is_token, is_ws, quoted_len};
use super::uri::{Uri, parse_hostport};
use std::fmt;

/// The full name of a compact header name (RFC 3261 §7.3.3 and the extensions registered
/// since: RFC 3265 `o`/`u`, RFC 3515 `r`, RFC 3892 `b`, RFC 3841 `a`/`j`/`d`, RFC 4028 `x`,
/// RFC 8224 `y`); any other name is returned unchanged.
pub fn full_name(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'a' => "Accept-Contact",
        b'b' => "Referred-By",
        b'c' => "Content-Type",
        b'd' => "Request-Disposition",
        b'e' => "Content-Encoding",
        b'f' => "From",
        b'i' => "Call-ID",
        b'j' => "Reject-Contact",
        b'k' => "Supported",
        b'l' => "Content-Length",
        b'm' => "Contact",
        b'o' => "Event",
        b'r' => "Refer-To",
        b's' => "Subject",
        b't' => "To",
        b'u' => "Allow-Events",
        b'v' => "Via",
        b'x' => "Session-Expires",
        b'y' => "Identity",
        _ => name,
    }
}

/// Whether header `name` (any case, compact or full) is `full` (RFC 3261 §7.3.1: names are
/// case-insensitive).
pub fn name_is(name: &str, full: &str) -> bool {
    full_name(name).eq_ignore_ascii_case(full)
}

// ===== Via =====

/// One Via value (RFC 3261 §20.42): `SIP/2.0/UDP host:port;params`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// The transport, upper-cased (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or any token).
    pub transport: String,
    /// The sent-by host (name, IPv4, or `[IPv6]`).
    pub host: String,
    /// The sent-by port, when given.
    pub port: Option<u16>,
    /// Via parameters (`branch`, `received`, `rport`, `maddr`, `ttl`, ...).
    pub params: Params,
}

impl Via {
    /// A Via for `transport` with a branch.
    pub fn new(transport: &str, host: String, port: Option<u16>, branch: &str) -> Via {
        let mut params = Params::default();
        params.set("branch", Some(branch.to_string()));
        Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        }
    }

    /// Parse one via-parm (LWS allowed around `/`, RFC 3261 §25.1 `SLASH`).
    pub fn parse(s: &str) -> Result<Via, ParseError> {
        let err = |reason| ParseError::Header {
            name: "Via",
            reason,
        };
        let mut rest = s.trim_matches([' ', '\t']);
        let mut parts = [""; 3];
        for (i, part) in parts.iter_mut().enumerate() {
            if i > 0 {
                rest = rest
                    .trim_start_matches([' ', '\t'])
                    .strip_prefix('/')
                    .ok_or(err("sent-protocol without '/'"))?
                    .trim_start_matches([' ', '\t']);
            }
            let end = rest
                .bytes()
                .position(|c| !super::text::is_token_char(c))
                .unwrap_or(rest.len());
            *part = &rest[..end];
            if part.is_empty() {
                return Err(err("empty sent-protocol element"));
            }
            rest = &rest[end..];
        }
        if !parts[0].eq_ignore_ascii_case("SIP") || parts[1] != "2.0" {
            return Err(err("not SIP/2.0"));
        }
        if !rest.starts_with([' ', '\t']) {
            return Err(err("no space before sent-by"));
        }
        rest = rest.trim_start_matches([' ', '\t']);
        let end = if rest.starts_with('[') {
            let close = rest.find(']').ok_or(err("unterminated ["))?;
            close
                + rest[close..]
                    .find([';', ' ', '\t'])
                    .unwrap_or(rest.len() - close)
        } else {
            rest.find([';', ' ', '\t']).unwrap_or(rest.len())
        };
        // sent-by = host [ COLON port ]; COLON allows LWS, collapse it.
        let sent_by: String = rest[..end].to_string();
        rest = &rest[end..];
        let mut sent_by = sent_by;
        let trimmed = rest.trim_start_matches([' ', '\t']);
        if let Some(after) = trimmed.strip_prefix(':') {
            // "host : port"
            let after = after.trim_start_matches([' ', '\t']);
            let pend = after
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(after.len());
            sent_by = format!("{sent_by}:{}", &after[..pend]);
            rest = &after[pend..];
        }
        let (host, port) = parse_hostport(&sent_by).map_err(err)?;
        let params = Params::parse(rest, true).map_err(err)?;
        let via = Via {
            transport: parts[2].to_ascii_uppercase(),
            host,
            port,
            params,
        };
        if let Some(Some(p)) = via.params.get("rport")
            && p.parse::<u16>().is_err()
        {
            return Err(err("bad rport"));
        }
        Ok(via)
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.get("branch").flatten()
    }

    /// The `received` parameter (RFC 3261 §18.2.1).
    pub fn received(&self) -> Option<&str> {
        self.params.get("received").flatten()
    }

    /// The `rport` parameter (RFC 3581 §4): `None` absent, `Some(None)` asked for,
    /// `Some(Some(port))` filled in.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params
            .get("rport")
            .map(|v| v.and_then(|p| p.parse().ok()))
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        self.params.fmt(f)
    }
}

// ===== name-addr =====

/// A `name-addr` or `addr-spec` with header parameters (RFC 3261 §20.10 Contact, §20.20
/// From, §20.39 To, §20.34 Route, §20.30 Record-Route).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name as written (tokens, or a quoted string with its quotes).
    pub display: Option<String>,
    /// The URI.
    pub uri: Uri,
    /// Whether the URI was enclosed in `<>` (always written with them).
    pub angle: bool,
    /// Header parameters after the address (`tag`, `expires`, `q`, ...).
    pub params: Params,
}

impl NameAddr {
    /// An address in angle brackets without display name or parameters.
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display: None,
            uri,
            angle: true,
            params: Params::default(),
        }
    }

    /// Parse one value; `name` names the header in errors.
    pub fn parse(s: &str, name: &'static str) -> Result<NameAddr, ParseError> {
        let err = |reason| ParseError::Header { name, reason };
        let s = s.trim_matches([' ', '\t']);
        if s.is_empty() {
            return Err(err("empty value"));
        }
        // Find '<' outside a quoted display name.
        let (display, after_display) = if s.starts_with('"') {
            let q = quoted_len(s).ok_or(err("unterminated quoted display name"))?;
            let rest = s[q..].trim_start_matches([' ', '\t']);
            if !rest.starts_with('<') {
                return Err(err("quoted display name without <URI>"));
            }
            (Some(s[..q].to_string()), rest)
        } else if let Some(lt) = s.find('<') {
            let d = s[..lt].trim_end_matches([' ', '\t']);
            if d.is_empty() {
                (None, &s[lt..])
            } else {
                // *(token LWS)
                if !d.split([' ', '\t']).filter(|w| !w.is_empty()).all(is_token) {
                    return Err(err("display name is neither tokens nor a quoted string"));
                }
                (Some(d.to_string()), &s[lt..])
            }
        } else {
            (None, s)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let gt = inner.find('>').ok_or(err("unterminated <"))?;
            let uri_text = &inner[..gt];
            if uri_text.starts_with([' ', '\t']) || uri_text.ends_with([' ', '\t']) {
                return Err(err("whitespace inside <>"));
            }
            let uri = Uri::parse(uri_text)?;
            let params = Params::parse(&inner[gt + 1..], true).map_err(err)?;
            Ok(NameAddr {
                display,
                uri,
                angle: true,
                params,
            })
        } else {
            // addr-spec: the URI must not contain ';', ',' or '?' (RFC 3261 §20): a ';'
            // starts the header parameters.
            let end = s.find([';', ' ', '\t']).unwrap_or(s.len());
            let uri_text = &s[..end];
            if uri_text.contains('?') || uri_text.contains(',') {
                return Err(err("URI with '?' or ',' must be in <>"));
            }
            let uri = Uri::parse(uri_text)?;
            let params = Params::parse(&s[end..], true).map_err(err)?;
            Ok(NameAddr {
                display: None,
                uri,
                angle: false,
                params,
            })
        }
    }

    /// The `tag` parameter (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&str> {
        self.params.get("tag").flatten()
    }

    /// The Contact `expires` parameter (RFC 3261 §10.2.1.1), saturated to `u32::MAX`;
    /// `None` when absent or not a number.
    pub fn expires_param(&self) -> Option<u32> {
        self.params
            .get("expires")
            .flatten()
            .and_then(parse_delta_seconds)
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = &self.display {
            write!(f, "{d} ")?;
        }
        write!(f, "<{}>", self.uri)?;
        self.params.fmt(f)
    }
}

// ===== Contact =====

/// The value of the Contact header fields of a message (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Contacts {
    /// `Contact: *` (REGISTER only, removes all bindings, RFC 3261 §10.2.2).
    Star,
    /// Zero or more addresses.
    List(Vec<NameAddr>),
}

/// `delta-seconds` (RFC 3261 §25.1), saturating at `u32::MAX` for overlong values
/// (RFC 4475 §3.1.2.4 lets an element treat them as the largest value); `None` when not
/// digits.
pub fn parse_delta_seconds(s: &str) -> Option<u32> {
    let s = s.trim_matches([' ', '\t']);
    if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    Some(s.parse::<u32>().unwrap_or(u32::MAX))
}

// ===== CSeq =====

/// The CSeq header (RFC 3261 §20.16): a sequence number below 2^31 and a method.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    /// The sequence number.
    pub seq: u32,
    /// The method (case-sensitive).
    pub method: String,
}

impl CSeq {
    /// Parse `number LWS method`.
    pub fn parse(s: &str) -> Result<CSeq, ParseError> {
        let err = |reason| ParseError::Header {
            name: "CSeq",
            reason,
        };
        let s = s.trim_matches([' ', '\t']);
        let sp = s.find([' ', '\t']).ok_or(err("no method"))?;
        let (n, m) = (&s[..sp], s[sp..].trim_start_matches([' ', '\t']));
        if n.is_empty() || n.len() > 10 || !n.bytes().all(|c| c.is_ascii_digit()) {
            return Err(err("bad sequence number"));
        }
        let seq: u32 = n.parse().map_err(|_| err("bad sequence number"))?;
        if seq >= 1 << 31 {
            return Err(err("sequence number not below 2**31"));
        }
        if !is_token(m) {
            return Err(err("bad method"));
        }
        Ok(CSeq {
            seq,
            method: m.to_string(),
        })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

/// Whether a header value is made of folded-away whitespace only.
pub fn is_blank(s: &str) -> bool {
    s.bytes().all(is_ws)
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn via_forms() {
        let v = Via::parse("SIP  /   2.0 /UDP    192.0.2.2;rport;branch=390skdjuw").unwrap();
        assert_eq!(
            (v.transport.as_str(), v.host.as_str()),
            ("UDP", "192.0.2.2")
        );
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert_eq!(v.rport(), Some(None));
        let v = Via::parse("SIP/2.0/TCP [2001:db8::9:1]:5061 ;received=[2001:db8::9:255];rport=7")
            .unwrap();
        assert_eq!(v.port, Some(5061));
        assert_eq!(v.received(), Some("[2001:db8::9:255]"));
        assert_eq!(v.rport(), Some(Some(7)));
        assert!(Via::parse("SIP/2.0/UDP 192.0.2.15;;,").is_err());
        assert!(Via::parse("SIP/3.0/UDP h").is_err());
        let v = Via::parse("SIP/2.0/UDP h.example.com : 5070;branch=z9hG4bK1").unwrap();
        assert_eq!(v.port, Some(5070));
        assert_eq!(
            v.to_string(),
            "SIP/2.0/UDP h.example.com:5070;branch=z9hG4bK1"
        );
    }

    #[test]
    fn name_addrs() {
        let a = NameAddr::parse(
            r#""J Rosenberg \\\""       <sip:jdrosen@example.com> ; tag = 98asjd8"#,
            "From",
        )
        .unwrap();
        assert_eq!(a.tag(), Some("98asjd8"));
        assert_eq!(a.display.as_deref(), Some(r#""J Rosenberg \\\"""#));
        let a = NameAddr::parse("caller<sip:caller@example.com>;tag=323", "From").unwrap();
        assert_eq!(a.display.as_deref(), Some("caller"));
        let a = NameAddr::parse("sip:user@example.com;tag=1", "To").unwrap();
        assert!(!a.angle);
        assert_eq!(a.tag(), Some("1"));
        assert!(NameAddr::parse(r#""Watson, Thomas" < sip:t.watson@example.org >"#, "To").is_err());
        assert!(NameAddr::parse("sip:user@example.com?Route=%3Csip:x%3E", "Contact").is_err());
        assert!(NameAddr::parse(r#""unterminated <sip:x@y>"#, "To").is_err());
    }

    #[test]
    fn cseq() {
        assert_eq!(CSeq::parse("0009 INVITE").unwrap().seq, 9);
        assert!(CSeq::parse("36893488147419103232 REGISTER").is_err());
        assert!(CSeq::parse("2147483648 INVITE").is_err());
    }
}
