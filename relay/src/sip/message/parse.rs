//! Parsing a message off the wire (RFC 3261 §7, §25): the start line, header fields with
//! folding and compact names, the body by Content-Length or to the end of a datagram
//! (§18.3), and the checks of §8.2.2 and §16.3 a proxy relies on.

use super::*;

/// Split off the next line: (line without terminator, terminator length).
fn next_line(b: &[u8]) -> Option<(&[u8], usize)> {
    let nl = b.iter().position(|&c| c == b'\n')?;
    if nl > 0 && b[nl - 1] == b'\r' {
        Some((&b[..nl - 1], 2))
    } else {
        Some((&b[..nl], 1))
    }
}

impl Message {
    /// Parse one datagram with the default [`Limits`].
    pub fn parse(bytes: &[u8]) -> Result<Message, ParseError> {
        Message::parse_with(bytes, &Limits::default(), Framing::Datagram)
    }

    /// Parse with explicit limits and framing. Accepts LF as well as CRLF line ends
    /// (RFC 3261 §7.5 asks for CRLF; tolerated as most stacks do) and skips CRLFs before
    /// the start line (RFC 3261 §7.5).
    pub fn parse_with(
        bytes: &[u8],
        limits: &Limits,
        framing: Framing,
    ) -> Result<Message, ParseError> {
        if bytes.len() > limits.max_message {
            return Err(ParseError::TooLarge {
                len: bytes.len(),
                max: limits.max_message,
            });
        }
        let mut pos = 0;
        while pos < bytes.len() && (bytes[pos] == b'\r' || bytes[pos] == b'\n') {
            pos += 1;
        }
        if pos == bytes.len() {
            return Err(ParseError::Empty);
        }
        // Start line.
        let (line, term) = next_line(&bytes[pos..]).ok_or(ParseError::Incomplete)?;
        if line.len() > limits.max_line {
            return Err(ParseError::LineTooLong {
                max: limits.max_line,
            });
        }
        let start_text = std::str::from_utf8(line).map_err(|_| ParseError::Utf8)?;
        let start = parse_start_line(start_text)?;
        let start_raw = bytes[pos..pos + line.len() + term].to_vec();
        pos += line.len() + term;
        // Header fields.
        let mut headers: Vec<Header> = Vec::new();
        let mut line_no = 1;
        let blank = loop {
            let (line, term) = next_line(&bytes[pos..]).ok_or(ParseError::Incomplete)?;
            line_no += 1;
            if line.len() > limits.max_line {
                return Err(ParseError::LineTooLong {
                    max: limits.max_line,
                });
            }
            let whole = &bytes[pos..pos + line.len() + term];
            pos += whole.len();
            if line.is_empty() {
                break whole.to_vec();
            }
            let text = std::str::from_utf8(line).map_err(|_| ParseError::Utf8)?;
            if line[0] == b' ' || line[0] == b'\t' {
                // Continuation (RFC 3261 §7.3.1 folding): one SP replaces the fold.
                let h = headers
                    .last_mut()
                    .ok_or(ParseError::HeaderLine { line: line_no })?;
                let more = text.trim_matches([' ', '\t']);
                if !more.is_empty() {
                    if !h.value.is_empty() {
                        h.value.push(' ');
                    }
                    h.value.push_str(more);
                }
                if let Some(raw) = &mut h.raw {
                    raw.extend_from_slice(whole);
                }
                continue;
            }
            if headers.len() == limits.max_headers {
                return Err(ParseError::TooManyHeaders {
                    max: limits.max_headers,
                });
            }
            let colon = text
                .find(':')
                .ok_or(ParseError::HeaderLine { line: line_no })?;
            let name = text[..colon].trim_end_matches([' ', '\t']);
            if !is_token(name) {
                return Err(ParseError::HeaderLine { line: line_no });
            }
            headers.push(Header {
                name: name.to_string(),
                value: text[colon + 1..].trim_matches([' ', '\t']).to_string(),
                raw: Some(whole.to_vec()),
            });
        };
        let mut msg = Message {
            start,
            start_raw: Some(start_raw),
            headers,
            blank,
            body: Vec::new(),
        };
        // Body (RFC 3261 §18.3, §20.14).
        let available = bytes.len() - pos;
        let declared = msg.content_length()?;
        let len = match (declared, framing) {
            (Some(n), _) if n > available => {
                return Err(ParseError::BodyLength {
                    declared: n,
                    available,
                });
            }
            (Some(n), Framing::Stream) if n != available => {
                return Err(ParseError::BodyLength {
                    declared: n,
                    available,
                });
            }
            (Some(n), _) => n,
            (None, Framing::Datagram) => available,
            (None, Framing::Stream) => return Err(ParseError::NoContentLength),
        };
        msg.body = bytes[pos..pos + len].to_vec();
        msg.check()?;
        Ok(msg)
    }

    /// The checks of RFC 3261 §8.2.2 and §16.3 a proxy relies on: one each of From, To,
    /// Call-ID, CSeq; at least one Via; all of them, Max-Forwards, Contact, Route and
    /// Record-Route well-formed; the CSeq method equal to the request method; no headers
    /// component in a SIP Request-URI (RFC 3261 §19.1.1 table 1).
    pub fn check(&self) -> Result<(), ParseError> {
        if self.via()?.is_empty() {
            return Err(ParseError::Missing("Via"));
        }
        self.from()?;
        self.to()?;
        let call_id = self.call_id()?;
        if call_id.is_empty() || call_id.contains([' ', '\t']) {
            return Err(ParseError::Header {
                name: "Call-ID",
                reason: "empty or with whitespace",
            });
        }
        let cseq = self.cseq()?;
        self.max_forwards()?;
        self.contacts()?;
        self.name_addrs("Route")?;
        self.name_addrs("Record-Route")?;
        if let StartLine::Request { method, uri } = &self.start {
            if cseq.method != method.as_str() {
                return Err(ParseError::CseqMethod {
                    method: method.to_string(),
                    cseq: cseq.method,
                });
            }
            if uri.sip().is_some_and(|u| u.headers.is_some()) {
                return Err(ParseError::Uri("headers in a Request-URI"));
            }
        }
        Ok(())
    }
}

fn parse_start_line(s: &str) -> Result<StartLine, ParseError> {
    // Exactly single spaces between the elements (RFC 3261 §7.1 SP; RFC 4475 §3.1.2.9/10).
    if let Some(rest) = s.strip_prefix("SIP/") {
        let (version, rest) = rest
            .split_once(' ')
            .ok_or(ParseError::StartLine("status line without code"))?;
        if version != "2.0" {
            return Err(ParseError::Version(format!("SIP/{version}")));
        }
        let (code, reason) = match rest.split_once(' ') {
            Some((c, r)) => (c, r),
            None => (rest, ""),
        };
        if code.len() != 3 || !code.bytes().all(|c| c.is_ascii_digit()) {
            return Err(ParseError::StartLine("status code is not 3 digits"));
        }
        let code: u16 = code
            .parse()
            .map_err(|_| ParseError::StartLine("status code"))?;
        if !(100..=699).contains(&code) {
            return Err(ParseError::StartLine("status code outside 100..=699"));
        }
        if reason.bytes().any(|c| c < b' ' && c != b'\t') {
            return Err(ParseError::StartLine("control character in reason phrase"));
        }
        return Ok(StartLine::Response {
            code,
            reason: reason.to_string(),
        });
    }
    let mut parts = s.split(' ');
    let (Some(method), Some(uri), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ParseError::StartLine(
            "request line is not 'Method SP Request-URI SP SIP-Version'",
        ));
    };
    if !is_token(method) {
        return Err(ParseError::StartLine("method is not a token"));
    }
    if !version.starts_with("SIP/") {
        return Err(ParseError::StartLine("no SIP version"));
    }
    if version != "SIP/2.0" {
        return Err(ParseError::Version(version.to_string()));
    }
    let uri = Uri::parse(uri)?;
    Ok(StartLine::Request {
        method: Method::from_token(method),
        uri,
    })
}
