//! SIP and SIPS URIs (RFC 3261 §19.1, §25.1), IPv6 references included (RFC 5118), and
//! other schemes kept opaque (`tel:`, `im:`, unknown ones, RFC 3261 §8.2.2.1 / RFC 4475 §3.3.4).

use super::ParseError;
use super::text::Params;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// A URI as it appears in a Request-URI or a name-addr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uri {
    /// `sip:` or `sips:`.
    Sip(SipUri),
    /// Any other absolute URI, kept verbatim (proxies route on SIP URIs only).
    Other(String),
}

impl Uri {
    /// Parse a URI (no surrounding whitespace or angle brackets).
    pub fn parse(s: &str) -> Result<Uri, ParseError> {
        let colon = s.find(':').ok_or(ParseError::Uri("no scheme"))?;
        let scheme = &s[..colon];
        if scheme.is_empty()
            || !scheme.as_bytes()[0].is_ascii_alphabetic()
            || !scheme
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
        {
            return Err(ParseError::Uri("bad scheme"));
        }
        if s.bytes()
            .any(|c| c <= b' ' || c == 0x7f || c == b'<' || c == b'>')
        {
            return Err(ParseError::Uri("whitespace or control character"));
        }
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse(s).map(Uri::Sip)
        } else {
            Ok(Uri::Other(s.to_string()))
        }
    }

    /// The SIP URI, if it is one.
    pub fn sip(&self) -> Option<&SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other(_) => None,
        }
    }

    /// The SIP URI, mutably.
    pub fn sip_mut(&mut self) -> Option<&mut SipUri> {
        match self {
            Uri::Sip(u) => Some(u),
            Uri::Other(_) => None,
        }
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Uri::Sip(u) => u.fmt(f),
            Uri::Other(s) => f.write_str(s),
        }
    }
}

/// A `sip:`/`sips:` URI: `sip:user:password@host:port;params?headers`. User and password are
/// kept escaped as written (RFC 3261 §19.1.2); the host keeps its brackets for IPv6.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipUri {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, escaped as written (may contain `;`, RFC 4475 §3.1.1.9).
    pub user: Option<String>,
    /// The password, as written.
    pub password: Option<String>,
    /// The host: a name, an IPv4 address, or `[IPv6]`.
    pub host: String,
    /// The port, when given.
    pub port: Option<u16>,
    /// URI parameters (`transport`, `lr`, `maddr`, `user`, ...).
    pub params: Params,
    /// The `?headers` component without the `?`, as written.
    pub headers: Option<String>,
}

impl SipUri {
    /// A URI for `host` (an IP address is written in URI form).
    pub fn new(user: Option<&str>, ip: IpAddr, port: Option<u16>) -> SipUri {
        SipUri {
            secure: false,
            user: user.map(str::to_string),
            password: None,
            host: host_text(ip),
            port,
            params: Params::default(),
            headers: None,
        }
    }

    /// Parse a SIP or SIPS URI.
    pub fn parse(s: &str) -> Result<SipUri, ParseError> {
        let (secure, rest) = if let Some(r) = strip_prefix_ci(s, "sips:") {
            (true, r)
        } else if let Some(r) = strip_prefix_ci(s, "sip:") {
            (false, r)
        } else {
            return Err(ParseError::Uri("not a sip: URI"));
        };
        // The user part may hold '?', ';' and ',' (RFC 3261 §25.1 `user-unreserved`) but
        // never a raw '@', which neither parameters nor headers may hold either: the first
        // '@' ends the userinfo.
        let (user, password, hostpart) = match rest.find('@') {
            Some(at) => {
                let userinfo = &rest[..at];
                let (u, p) = match userinfo.split_once(':') {
                    Some((u, p)) => (u, Some(p.to_string())),
                    None => (userinfo, None),
                };
                if u.is_empty() {
                    return Err(ParseError::Uri("empty user"));
                }
                (Some(u.to_string()), p, &rest[at + 1..])
            }
            None => (None, None, rest),
        };
        let (hostpart, headers) = match hostpart.split_once('?') {
            Some((a, h)) => (a, Some(h.to_string())),
            None => (hostpart, None),
        };
        // host[:port] ends at the first ';' outside an IPv6 reference.
        let hp_end = if hostpart.starts_with('[') {
            let close = hostpart
                .find(']')
                .ok_or(ParseError::Uri("unterminated ["))?;
            hostpart[close..]
                .find(';')
                .map_or(hostpart.len(), |i| close + i)
        } else {
            hostpart.find(';').unwrap_or(hostpart.len())
        };
        let (host, port) = parse_hostport(&hostpart[..hp_end]).map_err(ParseError::Uri)?;
        let params = Params::parse(&hostpart[hp_end..], false).map_err(ParseError::Uri)?;
        Ok(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// The host as an IP address, when it is one.
    pub fn host_ip(&self) -> Option<IpAddr> {
        host_ip(&self.host)
    }

    /// Whether the URI carries the loose-routing `lr` parameter (RFC 3261 §19.1.1).
    pub fn lr(&self) -> bool {
        self.params.has("lr")
    }

    /// The `transport` parameter, lower-cased.
    pub fn transport(&self) -> Option<String> {
        self.params
            .get("transport")
            .flatten()
            .map(|t| t.to_ascii_lowercase())
    }

    /// `user@host` (the address-of-record key, RFC 3261 §10.3 step 5: scheme, user and
    /// host, compared case-insensitively in the host).
    pub fn aor(&self) -> String {
        match &self.user {
            Some(u) => format!("{}@{}", u, self.host.to_ascii_lowercase()),
            None => self.host.to_ascii_lowercase(),
        }
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.secure { "sips:" } else { "sip:" })?;
        if let Some(u) = &self.user {
            f.write_str(u)?;
            if let Some(p) = &self.password {
                write!(f, ":{p}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(p) = self.port {
            write!(f, ":{p}")?;
        }
        self.params.fmt(f)?;
        if let Some(h) = &self.headers {
            write!(f, "?{h}")?;
        }
        Ok(())
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    (s.len() >= prefix.len()
        && s.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes()))
    .then(|| &s[prefix.len()..])
}

/// An IP address as a URI host (`[v6]`).
pub fn host_text(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    }
}

/// A host string (`1.2.3.4`, `[::1]`, or a name) as an IP address, when it is one.
pub fn host_ip(host: &str) -> Option<IpAddr> {
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// `host[:port]` (RFC 3261 §25.1 `hostport`): a hostname, an IPv4 address or an IPv6
/// reference, with an optional port.
pub fn parse_hostport(s: &str) -> Result<(String, Option<u16>), &'static str> {
    let (host, port) = if s.starts_with('[') {
        let close = s.find(']').ok_or("unterminated [")?;
        let host = &s[..=close];
        if host[1..close].parse::<Ipv6Addr>().is_err() {
            return Err("bad IPv6 reference");
        }
        let rest = &s[close + 1..];
        let port = if rest.is_empty() {
            None
        } else {
            Some(rest.strip_prefix(':').ok_or("junk after IPv6 reference")?)
        };
        (host, port)
    } else {
        match s.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return Err("empty host");
    }
    if !host.starts_with('[')
        && !host
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
    {
        return Err("bad host character");
    }
    let port = match port {
        None => None,
        Some(p) if !p.is_empty() && p.len() <= 5 && p.bytes().all(|c| c.is_ascii_digit()) => {
            Some(p.parse::<u16>().map_err(|_| "port out of range")?)
        }
        Some(_) => return Err("bad port"),
    };
    Ok((host.to_string(), port))
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn sip_uris() {
        let u = SipUri::parse("sip:user;par=u%40example.net@example.com").unwrap();
        assert_eq!(u.user.as_deref(), Some("user;par=u%40example.net"));
        assert_eq!(u.host, "example.com");
        let u = SipUri::parse("sips:alice:pw@[2001:db8::10]:5061;transport=TCP;lr?x=y").unwrap();
        assert!(u.secure && u.lr());
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport().as_deref(), Some("tcp"));
        assert_eq!(u.host_ip(), Some("2001:db8::10".parse().unwrap()));
        assert_eq!(
            u.to_string(),
            "sips:alice:pw@[2001:db8::10]:5061;transport=TCP;lr?x=y"
        );
        assert!(SipUri::parse("sip:[2001:db8::10").is_err());
        assert!(SipUri::parse("sip:host:99999").is_err());
        assert!(SipUri::parse("sip:ho st").is_err());
        assert!(matches!(
            Uri::parse("nobodyknowsthisscheme:totallyopaquecontent"),
            Ok(Uri::Other(_))
        ));
    }
}
