//! The SDP description as its lines (RFC 8866 §5): a session part, then one [`Media`]
//! section per `m=` line. Every line keeps its bytes and its own line ending, so that
//! [`Sdp::to_bytes`] gives back the input exactly until something is rewritten, and a
//! rewrite changes only the lines it must.
//!
//! Parsing is strict where a relay depends on the content (`v=0` first, `m=`, `c=` and
//! `a=rtcp` syntax) and lenient elsewhere: unknown line types, unknown attributes and
//! out-of-order lines are kept as they are (RFC 8866 §5 asks parsers to ignore what they do
//! not understand; a proxy must not drop it).

use super::fields::{Connection, HoldKind, MediaDirection, MediaLine, Rtcp};
use super::{Error, Limits};
use std::fmt;

/// How a line ended: RFC 8866 §5 says CRLF, and asks parsers to accept a bare LF.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Eol {
    /// `\r\n`.
    CrLf,
    /// `\n`.
    Lf,
    /// None: the last line of a body that ends without a line terminator.
    None,
}

impl Eol {
    fn as_str(self) -> &'static str {
        match self {
            Eol::CrLf => "\r\n",
            Eol::Lf => "\n",
            Eol::None => "",
        }
    }
}

/// One `<type>=<value>` line, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    text: String,
    eol: Eol,
}

impl Line {
    /// A new line `<kind>=<value>` ending with `eol`.
    pub fn new(kind: char, value: &str, eol: Eol) -> Line {
        Line {
            text: format!("{kind}={value}"),
            eol,
        }
    }

    /// The type letter (`v`, `o`, `c`, `m`, `a`, …).
    pub fn kind(&self) -> char {
        self.text.chars().next().unwrap_or('\0')
    }

    /// The text after `<type>=`.
    pub fn value(&self) -> &str {
        self.text.get(2..).unwrap_or_default()
    }

    /// The whole line without its line ending.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The line ending.
    pub fn eol(&self) -> Eol {
        self.eol
    }

    /// For an `a=` line: the attribute name and, for `a=<name>:<value>`, the value
    /// (RFC 8866 §5.13).
    pub fn attribute(&self) -> Option<(&str, Option<&str>)> {
        if self.kind() != 'a' {
            return None;
        }
        let v = self.value();
        Some(match v.split_once(':') {
            Some((n, val)) => (n, Some(val)),
            None => (v, None),
        })
    }

    /// Whether this is `a=<name>` or `a=<name>:…`.
    pub fn is_attribute(&self, name: &str) -> bool {
        self.attribute().is_some_and(|(n, _)| n == name)
    }

    pub(crate) fn set_value(&mut self, kind: char, value: &str) {
        self.text = format!("{kind}={value}");
    }
}

/// One media description: its `m=` line and the lines up to the next `m=`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    /// `lines[0]` is the `m=` line; `mline` is its parsed form, kept in step.
    lines: Vec<Line>,
    mline: MediaLine,
}

impl Media {
    /// The parsed `m=` line.
    pub fn media_line(&self) -> &MediaLine {
        &self.mline
    }

    /// All lines of the section, the `m=` line first.
    pub fn lines(&self) -> &[Line] {
        &self.lines
    }

    /// The media-level `c=` line, if any (the first one: several are only meaningful for
    /// layered multicast, RFC 8866 §5.7, which a relay does not do).
    pub fn connection(&self) -> Option<Connection> {
        first_connection(&self.lines)
    }

    /// The `a=rtcp` attribute (RFC 3605), if any.
    pub fn rtcp(&self) -> Option<Rtcp> {
        self.lines
            .iter()
            .find_map(|l| match l.attribute() {
                Some(("rtcp", Some(v))) => Some(v),
                _ => None,
            })
            .and_then(Rtcp::parse)
    }

    /// Whether `a=rtcp-mux` is present (RFC 5761 §5.1.1: RTP and RTCP share the port).
    pub fn rtcp_mux(&self) -> bool {
        self.lines.iter().any(|l| l.is_attribute("rtcp-mux"))
    }

    /// The media-level direction attribute, if any (the last one wins if several are
    /// written, which RFC 3264 forbids but clients send).
    pub fn direction(&self) -> Option<MediaDirection> {
        direction_of(&self.lines)
    }

    /// Whether the section has any ICE attribute of RFC 8839 (candidates or credentials).
    pub fn has_ice(&self) -> bool {
        self.lines.iter().any(|l| {
            l.attribute()
                .is_some_and(|(n, _)| super::fields::is_ice_attribute(n))
        })
    }

    pub(crate) fn lines_mut(&mut self) -> &mut Vec<Line> {
        &mut self.lines
    }

    pub(crate) fn set_port(&mut self, port: u16) {
        self.mline.port = port;
        let text = self.mline.to_string();
        self.lines[0].set_value('m', &text);
    }
}

/// A parsed SDP description. `Display`/[`Sdp::to_bytes`] write it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    session: Vec<Line>,
    media: Vec<Media>,
    /// Blank lines after the last line, verbatim (some stacks end the body with an extra
    /// CRLF).
    trailer: String,
}

impl Sdp {
    /// Parses `body` with the default [`Limits`].
    pub fn parse(body: &[u8]) -> Result<Sdp, Error> {
        Sdp::parse_with(body, &Limits::default())
    }

    /// Parses `body` within `limits`.
    pub fn parse_with(body: &[u8], limits: &Limits) -> Result<Sdp, Error> {
        if body.len() > limits.max_bytes {
            return Err(Error::TooLarge {
                size: body.len(),
                limit: limits.max_bytes,
            });
        }
        let text = std::str::from_utf8(body).map_err(|_| Error::NotUtf8)?;
        let mut session = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        let mut trailer = String::new();
        let mut rest = text;
        let mut n = 0usize;
        while !rest.is_empty() {
            n += 1;
            if n > limits.max_lines {
                return Err(Error::TooManyLines {
                    limit: limits.max_lines,
                });
            }
            let (raw, eol, next) = match rest.find('\n') {
                Some(i) => match rest[..i].strip_suffix('\r') {
                    Some(t) => (t, Eol::CrLf, &rest[i + 1..]),
                    None => (&rest[..i], Eol::Lf, &rest[i + 1..]),
                },
                None => (rest, Eol::None, ""),
            };
            if raw.is_empty() {
                // A blank line: only allowed when nothing but blank lines follows.
                if rest.bytes().all(|b| b == b'\r' || b == b'\n') && n > 1 {
                    trailer = rest.to_owned();
                    break;
                }
                return Err(Error::MalformedLine { line: n });
            }
            rest = next;
            if raw.len() > limits.max_line_len {
                return Err(Error::LineTooLong {
                    line: n,
                    limit: limits.max_line_len,
                });
            }
            if raw.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
                return Err(Error::ControlCharacter { line: n });
            }
            let b = raw.as_bytes();
            if b.len() < 2 || !b[0].is_ascii_alphabetic() || b[1] != b'=' {
                return Err(Error::MalformedLine { line: n });
            }
            let line = Line {
                text: raw.to_owned(),
                eol,
            };
            if n == 1 && line.text != "v=0" {
                return Err(Error::NoVersion);
            }
            match line.kind() {
                'm' => {
                    if media.len() >= limits.max_media {
                        return Err(Error::TooManyMedia {
                            limit: limits.max_media,
                        });
                    }
                    let mline = MediaLine::parse(line.value())
                        .map_err(|why| Error::BadMedia { line: n, why })?;
                    media.push(Media {
                        lines: vec![line],
                        mline,
                    });
                    continue;
                }
                'c' => {
                    Connection::parse(line.value())
                        .map_err(|why| Error::BadConnection { line: n, why })?;
                }
                'a' => {
                    if let Some(("rtcp", v)) = line.attribute()
                        && v.and_then(Rtcp::parse).is_none()
                    {
                        return Err(Error::BadRtcp { line: n });
                    }
                }
                _ => {}
            }
            match media.last_mut() {
                Some(m) => m.lines.push(line),
                None => session.push(line),
            }
        }
        if session.is_empty() {
            return Err(Error::NoVersion);
        }
        Ok(Sdp {
            session,
            media,
            trailer,
        })
    }

    /// The session-level lines (`v=` first).
    pub fn session_lines(&self) -> &[Line] {
        &self.session
    }

    /// The media sections, in order.
    pub fn media(&self) -> &[Media] {
        &self.media
    }

    /// The session-level `c=`, if any.
    pub fn session_connection(&self) -> Option<Connection> {
        first_connection(&self.session)
    }

    /// The session-level direction attribute, if any.
    pub fn session_direction(&self) -> Option<MediaDirection> {
        direction_of(&self.session)
    }

    /// The `c=` that applies to media section `index`: its own, else the session's
    /// (RFC 8866 §5.7).
    pub fn effective_connection(&self, index: usize) -> Option<Connection> {
        let m = self.media.get(index)?;
        m.connection().or_else(|| self.session_connection())
    }

    /// The direction of media section `index`: its own attribute, else the session's,
    /// else `sendrecv` (RFC 8866 §6.7).
    pub fn effective_direction(&self, index: usize) -> Option<MediaDirection> {
        let m = self.media.get(index)?;
        Some(
            m.direction()
                .or_else(|| self.session_direction())
                .unwrap_or(MediaDirection::SendRecv),
        )
    }

    /// Whether media section `index` is put on hold, and how (RFC 3264 §8.4): `inactive`
    /// or `sendonly` at either level, or an unspecified `c=` address. A port-0 stream is
    /// disabled, not held, and gives `None`.
    pub fn hold(&self, index: usize) -> Option<HoldKind> {
        let m = self.media.get(index)?;
        if m.media_line().port == 0 {
            return None;
        }
        if self
            .effective_connection(index)
            .is_some_and(|c| c.is_unspecified())
        {
            return Some(HoldKind::UnspecifiedAddress);
        }
        match self.effective_direction(index)? {
            MediaDirection::Inactive => Some(HoldKind::Inactive),
            MediaDirection::SendOnly => Some(HoldKind::SendOnly),
            MediaDirection::SendRecv | MediaDirection::RecvOnly => None,
        }
    }

    /// Whether every enabled stream is on hold (and there is at least one).
    pub fn is_on_hold(&self) -> bool {
        let enabled: Vec<usize> = (0..self.media.len())
            .filter(|&i| self.media[i].media_line().port != 0)
            .collect();
        !enabled.is_empty() && enabled.iter().all(|&i| self.hold(i).is_some())
    }

    /// The line ending new lines get: that of the first line.
    pub fn eol(&self) -> Eol {
        match self.session.first().map(|l| l.eol) {
            Some(Eol::Lf) => Eol::Lf,
            _ => Eol::CrLf,
        }
    }

    /// The serialised description.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.to_string().into_bytes()
    }

    pub(crate) fn session_lines_mut(&mut self) -> &mut Vec<Line> {
        &mut self.session
    }

    pub(crate) fn media_mut(&mut self) -> &mut [Media] {
        &mut self.media
    }

    /// Whether the body ends without a line terminator.
    pub(crate) fn ends_unterminated(&self) -> bool {
        self.trailer.is_empty() && self.last_line().is_some_and(|l| l.eol == Eol::None)
    }

    fn last_line(&self) -> Option<&Line> {
        match self.media.last() {
            Some(m) => m.lines.last(),
            None => self.session.last(),
        }
    }

    /// After lines were inserted: every line but the last has a line ending, and the last
    /// has one unless the body had none (`unterminated`), so the body keeps its style.
    pub(crate) fn fix_line_endings(&mut self, unterminated: bool) {
        let eol = self.eol();
        let mut all: Vec<&mut Line> = self
            .session
            .iter_mut()
            .chain(self.media.iter_mut().flat_map(|m| m.lines.iter_mut()))
            .collect();
        let n = all.len();
        for (i, l) in all.iter_mut().enumerate() {
            if i + 1 == n && unterminated {
                l.eol = Eol::None;
            } else if l.eol == Eol::None {
                l.eol = eol;
            }
        }
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self
            .session
            .iter()
            .chain(self.media.iter().flat_map(|m| m.lines.iter()))
        {
            f.write_str(&l.text)?;
            f.write_str(l.eol.as_str())?;
        }
        f.write_str(&self.trailer)
    }
}

fn first_connection(lines: &[Line]) -> Option<Connection> {
    lines
        .iter()
        .find(|l| l.kind() == 'c')
        .and_then(|l| Connection::parse(l.value()).ok())
}

fn direction_of(lines: &[Line]) -> Option<MediaDirection> {
    lines
        .iter()
        .filter_map(|l| l.attribute())
        .filter(|(_, v)| v.is_none())
        .filter_map(|(n, _)| MediaDirection::from_attribute(n))
        .next_back()
}

#[cfg(test)]
mod test {
    use super::*;

    const OFFER: &str = "v=0\r\no=alice 2890844526 2890844526 IN IP4 host.atlanta.example.com\r\ns=\r\nc=IN IP4 host.atlanta.example.com\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0 8 97\r\na=rtpmap:0 PCMU/8000\r\nm=video 51372 RTP/AVP 31 32\r\na=rtpmap:31 H261/90000\r\n";

    #[test]
    fn round_trip_and_sections() {
        let s = Sdp::parse(OFFER.as_bytes()).unwrap();
        assert_eq!(s.to_string(), OFFER);
        assert_eq!(s.media().len(), 2);
        assert_eq!(s.media()[1].media_line().port, 51372);
        assert_eq!(s.session_lines().len(), 5);
    }

    #[test]
    fn line_endings_kept() {
        let mixed =
            "v=0\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\nc=IN IP4 10.0.0.1\nt=0 0\nm=audio 4000 RTP/AVP 0";
        let s = Sdp::parse(mixed.as_bytes()).unwrap();
        assert_eq!(s.to_string(), mixed);
        assert_eq!(s.eol(), Eol::Lf);
        let trailing = format!("{OFFER}\r\n");
        assert_eq!(
            Sdp::parse(trailing.as_bytes()).unwrap().to_string(),
            trailing
        );
    }

    #[test]
    fn rejects() {
        assert_eq!(Sdp::parse(b""), Err(Error::NoVersion));
        assert_eq!(Sdp::parse(b"v=1\r\n"), Err(Error::NoVersion));
        assert_eq!(Sdp::parse(b"o=x\r\nv=0\r\n"), Err(Error::NoVersion));
        assert_eq!(
            Sdp::parse(b"v=0\r\n\r\ns=x\r\n"),
            Err(Error::MalformedLine { line: 2 })
        );
        assert_eq!(
            Sdp::parse(b"v=0\r\nbogus\r\n"),
            Err(Error::MalformedLine { line: 2 })
        );
        assert_eq!(
            Sdp::parse(b"v=0\r\ns=a\x01\r\n"),
            Err(Error::ControlCharacter { line: 2 })
        );
        assert_eq!(Sdp::parse(b"v=0\r\ns=\xff\r\n"), Err(Error::NotUtf8));
        assert!(matches!(
            Sdp::parse(b"v=0\r\nm=audio x RTP/AVP 0\r\n"),
            Err(Error::BadMedia { line: 2, .. })
        ));
        assert!(matches!(
            Sdp::parse(b"v=0\r\nc=IN IP4\r\n"),
            Err(Error::BadConnection { line: 2, .. })
        ));
        assert_eq!(
            Sdp::parse(b"v=0\r\nm=audio 1 RTP/AVP 0\r\na=rtcp:x\r\n"),
            Err(Error::BadRtcp { line: 3 })
        );
        let small = Limits {
            max_bytes: 10,
            ..Limits::default()
        };
        assert!(matches!(
            Sdp::parse_with(OFFER.as_bytes(), &small),
            Err(Error::TooLarge { .. })
        ));
        let few = Limits {
            max_lines: 3,
            ..Limits::default()
        };
        assert_eq!(
            Sdp::parse_with(OFFER.as_bytes(), &few),
            Err(Error::TooManyLines { limit: 3 })
        );
        let one = Limits {
            max_media: 1,
            ..Limits::default()
        };
        assert_eq!(
            Sdp::parse_with(OFFER.as_bytes(), &one),
            Err(Error::TooManyMedia { limit: 1 })
        );
        let short = Limits {
            max_line_len: 20,
            ..Limits::default()
        };
        assert!(matches!(
            Sdp::parse_with(OFFER.as_bytes(), &short),
            Err(Error::LineTooLong { line: 2, .. })
        ));
    }

    #[test]
    fn hold_detection() {
        let base = "v=0\r\no=- 1 2 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n";
        let s = Sdp::parse(format!("{base}m=audio 4000 RTP/AVP 0\r\n").as_bytes()).unwrap();
        assert_eq!(s.hold(0), None);
        assert!(!s.is_on_hold());
        let s = Sdp::parse(format!("{base}a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\n").as_bytes())
            .unwrap();
        assert_eq!(s.hold(0), Some(HoldKind::SendOnly));
        let s = Sdp::parse(
            format!("{base}a=sendonly\r\nm=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n").as_bytes(),
        )
        .unwrap();
        assert_eq!(s.hold(0), None, "media level overrides session level");
        let s = Sdp::parse(
            format!("{base}m=audio 4000 RTP/AVP 0\r\na=inactive\r\nm=video 0 RTP/AVP 31\r\n")
                .as_bytes(),
        )
        .unwrap();
        assert_eq!(s.hold(0), Some(HoldKind::Inactive));
        assert_eq!(s.hold(1), None);
        assert!(s.is_on_hold());
        let s =
            Sdp::parse(format!("{base}m=audio 4000 RTP/AVP 0\r\nc=IN IP4 0.0.0.0\r\n").as_bytes())
                .unwrap();
        assert_eq!(s.hold(0), Some(HoldKind::UnspecifiedAddress));
    }
}
