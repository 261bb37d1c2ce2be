//! Message framing on stream transports (TCP, TLS): RFC 3261 §18.3 (Content-Length
//! delimits the body and is mandatory) and the RFC 5626 §4.4.1 CRLF keepalive (a double
//! CRLF "ping" is answered with a single CRLF "pong"; lone CRLFs between messages are
//! ignored, RFC 3261 §7.5).
//!
//! Sans-IO: the driver pushes received chunks with [`StreamFramer::push`] and drains
//! [`StreamFramer::poll`]. After an error the stream has lost its framing: the driver
//! closes the connection (the framer yields nothing more).

use super::ParseError;
use super::headers::name_is;
use super::message::Limits;

/// What [`StreamFramer::poll`] cuts out of the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The bytes of one whole message (parse with [`crate::sip::Framing::Stream`]).
    Message(Vec<u8>),
    /// A double-CRLF keepalive ping: answer `\r\n` (RFC 5626 §4.4.1).
    Ping,
}

/// The response to a [`Frame::Ping`] (RFC 5626 §4.4.1 "pong").
pub const PONG: &[u8] = b"\r\n";

/// Cuts a byte stream into SIP messages.
#[derive(Debug, Clone)]
pub struct StreamFramer {
    buf: Vec<u8>,
    limits: Limits,
    failed: bool,
}

impl StreamFramer {
    /// A framer enforcing `limits` (a message over `max_message` is an error, so a peer
    /// cannot make it buffer without bound).
    pub fn new(limits: Limits) -> StreamFramer {
        StreamFramer {
            buf: Vec::new(),
            limits,
            failed: false,
        }
    }

    /// Append received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if !self.failed {
            self.buf.extend_from_slice(data);
        }
    }

    /// Bytes buffered and not yet returned.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Whether the framing was lost (the connection should be closed).
    pub fn is_failed(&self) -> bool {
        self.failed
    }

    /// The next frame, `None` when more bytes are needed (or after an error).
    pub fn poll(&mut self) -> Option<Result<Frame, ParseError>> {
        if self.failed {
            return None;
        }
        match self.next_frame() {
            Ok(f) => f.map(Ok),
            Err(e) => {
                self.failed = true;
                self.buf = Vec::new();
                Some(Err(e))
            }
        }
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, ParseError> {
        loop {
            let b = &self.buf;
            if b.starts_with(b"\r\n\r\n") {
                self.buf.drain(..4);
                return Ok(Some(Frame::Ping));
            }
            match b.first() {
                Some(b'\r' | b'\n') => {
                    if b"\r\n\r\n".starts_with(b) {
                        return Ok(None); // maybe the start of a ping
                    }
                    // a pong, or CR/LF before a start line (RFC 3261 §7.5)
                    self.buf.drain(..1);
                }
                _ => break,
            }
        }
        let Some(head_end) = header_end(&self.buf) else {
            if self.buf.len() > self.limits.max_message {
                return Err(ParseError::TooLarge {
                    len: self.buf.len(),
                    max: self.limits.max_message,
                });
            }
            return Ok(None);
        };
        let body_len = content_length(&self.buf[..head_end])?;
        let total = head_end
            .checked_add(body_len)
            .filter(|&t| t <= self.limits.max_message)
            .ok_or(ParseError::TooLarge {
                len: head_end.saturating_add(body_len),
                max: self.limits.max_message,
            })?;
        if self.buf.len() < total {
            return Ok(None);
        }
        let rest = self.buf.split_off(total);
        let msg = std::mem::replace(&mut self.buf, rest);
        Ok(Some(Frame::Message(msg)))
    }
}

/// The offset just past the empty line ending the header section (CRLF or LF line ends).
fn header_end(b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(nl) = b[i..].iter().position(|&c| c == b'\n') {
        let end = i + nl + 1;
        let line = &b[i..i + nl];
        if line.is_empty() || line == b"\r" {
            return Some(end);
        }
        i = end;
    }
    None
}

/// Content-Length from a header section (unfolded; exactly one, RFC 3261 §18.3).
fn content_length(head: &[u8]) -> Result<usize, ParseError> {
    let text = String::from_utf8_lossy(head);
    let mut found: Option<String> = None;
    let mut current: Option<String> = None;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    lines.next(); // start line
    let finish = |cur: &mut Option<String>, found: &mut Option<String>| {
        if let Some(v) = cur.take() {
            if found.is_some() {
                return Err(ParseError::Multiple("Content-Length"));
            }
            *found = Some(v);
        }
        Ok(())
    };
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if let Some(c) = &mut current {
                c.push_str(line.trim());
            }
            continue;
        }
        finish(&mut current, &mut found)?;
        if let Some((name, value)) = line.split_once(':')
            && name_is(name.trim_end_matches([' ', '\t']), "Content-Length")
        {
            current = Some(value.trim().to_string());
        }
    }
    finish(&mut current, &mut found)?;
    let v = found.ok_or(ParseError::NoContentLength)?;
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|c| c.is_ascii_digit()) {
        return Err(ParseError::Header {
            name: "Content-Length",
            reason: "not a number below 10**9",
        });
    }
    v.parse().map_err(|_| ParseError::Header {
        name: "Content-Length",
        reason: "not a number",
    })
}

#[cfg(test)]
mod test {
    use super::*;

    const MSG: &[u8] = b"OPTIONS sip:a@b SIP/2.0\r\nl: 3\r\n\r\nabc";

    #[test]
    fn frames_split_anywhere() {
        let stream = [b"\r\n\r\n".as_slice(), MSG, b"\r\n", MSG].concat();
        for cut in 0..stream.len() {
            let mut f = StreamFramer::new(Limits::default());
            let mut out = Vec::new();
            for chunk in [&stream[..cut], &stream[cut..]] {
                f.push(chunk);
                while let Some(x) = f.poll() {
                    out.push(x.unwrap());
                }
            }
            assert_eq!(
                out,
                vec![
                    Frame::Ping,
                    Frame::Message(MSG.to_vec()),
                    Frame::Message(MSG.to_vec())
                ],
                "cut at {cut}"
            );
            assert_eq!(f.buffered(), 0);
        }
    }

    #[test]
    fn errors_poison() {
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nX: y\r\n\r\n");
        assert_eq!(f.poll(), Some(Err(ParseError::NoContentLength)));
        assert!(f.is_failed());
        assert_eq!(f.poll(), None);
        let mut f = StreamFramer::new(Limits {
            max_message: 100,
            ..Limits::default()
        });
        f.push(&[b'a'; 101]);
        assert!(matches!(f.poll(), Some(Err(ParseError::TooLarge { .. }))));
        let mut f = StreamFramer::new(Limits::default());
        f.push(b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 1\r\n\r\nab");
        assert_eq!(f.poll(), Some(Err(ParseError::Multiple("Content-Length"))));
    }
}
