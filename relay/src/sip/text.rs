//! Lexical helpers for RFC 3261 §25: tokens, quoted strings, linear white space, lists
//! split at commas outside quotes and angle brackets, and generic parameters.

use super::ParseError;
use std::fmt;

/// `token` characters (RFC 3261 §25.1).
pub fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// Whether `s` is a non-empty `token`.
pub fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// `LWS` without the folding (the message layer has already unfolded lines).
pub fn is_ws(c: u8) -> bool {
    c == b' ' || c == b'\t'
}

/// Split a header value into its comma-separated elements (RFC 3261 §7.3.1), ignoring
/// commas inside quoted strings (with `\` escapes) and inside `<...>`. Elements are trimmed;
/// empty elements are kept so that callers can reject them.
pub fn split_list(value: &str) -> Vec<&str> {
    let b = value.as_bytes();
    let mut out = Vec::new();
    let (mut start, mut i) = (0, 0);
    let (mut quoted, mut angle) = (false, false);
    while i < b.len() {
        match b[i] {
            b'\\' if quoted => i += 1,
            b'"' if !angle => quoted = !quoted,
            b'<' if !quoted => angle = true,
            b'>' if !quoted => angle = false,
            b',' if !quoted && !angle => {
                out.push(value[start..i].trim_matches([' ', '\t']));
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    out.push(value[start..].trim_matches([' ', '\t']));
    out
}

/// The length of the quoted string at the start of `s` (which must start with `"`),
/// including both quotes; `None` when it is not terminated (RFC 3261 §25.1 `quoted-string`).
pub fn quoted_len(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while i < b.len() {
        match b[i] {
            b'\\' => {
                // quoted-pair: `\` followed by any octet except CR/LF.
                if i + 1 >= b.len() || matches!(b[i + 1], b'\r' | b'\n') {
                    return None;
                }
                i += 2;
            }
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Remove the quotes and `\` escapes of a quoted string (given with its quotes).
pub fn unquote(s: &str) -> String {
    let inner = s
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(s);
    let mut out = String::with_capacity(inner.len());
    let mut escaped = false;
    for c in inner.chars() {
        if escaped {
            out.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else {
            out.push(c);
        }
    }
    out
}

/// Header or URI parameters: `;name[=value]` in order, names compared case-insensitively
/// (RFC 3261 §7.3.1, §19.1.4). Values are kept as written (a quoted value keeps its quotes)
/// so that serialising gives back the same text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Vec<(String, Option<String>)>);

impl Params {
    /// Parse `;a=b;c` (the leading `;` included; empty input gives no parameters). LWS
    /// is allowed around `;` and `=` when `lws` (header parameters, RFC 3261 §25.1 `SEMI`,
    /// `EQUAL`) and rejected otherwise (URI parameters).
    pub fn parse(s: &str, lws: bool) -> Result<Params, &'static str> {
        let mut out = Vec::new();
        let mut rest = if lws {
            s.trim_start_matches([' ', '\t'])
        } else {
            s
        };
        while !rest.is_empty() {
            rest = rest.strip_prefix(';').ok_or("parameter without ';'")?;
            if lws {
                rest = rest.trim_start_matches([' ', '\t']);
            }
            // name
            let end = rest
                .bytes()
                .position(|c| !is_param_char(c, lws))
                .unwrap_or(rest.len());
            let name = &rest[..end];
            if name.is_empty() {
                return Err("empty parameter");
            }
            rest = &rest[end..];
            let mut probe = if lws {
                rest.trim_start_matches([' ', '\t'])
            } else {
                rest
            };
            let value = if let Some(v) = probe.strip_prefix('=') {
                probe = if lws {
                    v.trim_start_matches([' ', '\t'])
                } else {
                    v
                };
                let len = if probe.starts_with('"') {
                    if !lws {
                        return Err("quoted URI parameter");
                    }
                    quoted_len(probe).ok_or("unterminated quoted parameter")?
                } else if probe.starts_with('[') {
                    // an IPv6 reference as a value (received=, maddr=)
                    probe.find(']').map(|i| i + 1).ok_or("unterminated [")?
                } else {
                    probe
                        .bytes()
                        .position(|c| !is_param_char(c, lws))
                        .unwrap_or(probe.len())
                };
                if len == 0 {
                    return Err("empty parameter value");
                }
                let v = &probe[..len];
                rest = &probe[len..];
                Some(v.to_string())
            } else {
                None
            };
            if lws {
                rest = rest.trim_start_matches([' ', '\t']);
            }
            out.push((name.to_string(), value));
        }
        Ok(Params(out))
    }

    /// The first parameter named `name` (case-insensitive): `None` when absent,
    /// `Some(None)` when present without a value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }

    /// Whether a parameter `name` is present.
    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Set `name` (replacing the first of that name, or appending).
    pub fn set(&mut self, name: &str, value: Option<String>) {
        if let Some(p) = self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            p.1 = value;
        } else {
            self.0.push((name.to_string(), value));
        }
    }

    /// Remove every parameter named `name`.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
}

/// Characters of a parameter name or unquoted value: `token` for header parameters,
/// `paramchar` (unreserved / escaped / param-unreserved) for URI parameters.
fn is_param_char(c: u8, header: bool) -> bool {
    if header {
        is_token_char(c) || c == b':' // host:port in `received`, IPv6 already handled
    } else {
        c.is_ascii_alphanumeric() || b"-_.!~*'()%[]/:&+$".contains(&c)
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, v) in &self.0 {
            match v {
                Some(v) => write!(f, ";{n}={v}")?,
                None => write!(f, ";{n}")?,
            }
        }
        Ok(())
    }
}

/// Map a `ParseError`-free reason to a header error.
pub fn header_err(name: &'static str) -> impl Fn(&'static str) -> ParseError {
    move |reason| ParseError::Header { name, reason }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn split_respects_quotes_and_brackets() {
        assert_eq!(
            split_list(r#""a, \"b" <sip:x;p=1,2>;q=1 , <sip:y>"#),
            vec![r#""a, \"b" <sip:x;p=1,2>;q=1"#, "<sip:y>"]
        );
        assert_eq!(split_list(";;,,;;,;"), vec![";;", "", ";;", ";"]);
    }

    #[test]
    fn params_with_lws() {
        let p = Params::parse(" ;   tag    = 1918181833n", true).unwrap();
        assert_eq!(p.get("TAG"), Some(Some("1918181833n")));
        let p = Params::parse(";rport;received=[2001:db8::1];x=\"a;b\"", true).unwrap();
        assert_eq!(p.get("rport"), Some(None));
        assert_eq!(p.get("received"), Some(Some("[2001:db8::1]")));
        assert_eq!(p.get("x"), Some(Some("\"a;b\"")));
        assert!(Params::parse(";;tag=1", true).is_err());
        assert!(Params::parse("; lr", false).is_err());
    }

    #[test]
    fn quoted() {
        assert_eq!(quoted_len(r#""J Rosenberg \\\"" <x>"#), Some(18));
        assert_eq!(unquote(r#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
        assert_eq!(quoted_len("\"abc"), None);
    }
}
