//! Where the SDP is in a message body (RFC 3261 §20.15 Content-Type, RFC 5621 multipart
//! bodies, RFC 2046 §5.1.1 delimiters).

use crate::sip::message::Message;
use std::ops::Range;

/// The media type of a Content-Type value, lower-cased, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// The byte range of the SDP in the body of `msg`, if it has one (see the module docs).
pub(super) fn sdp_in(msg: &Message) -> Option<Range<usize>> {
    if msg.body().is_empty() {
        return None;
    }
    if msg
        .get("Content-Encoding")
        .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
    {
        return None;
    }
    let ct = msg.get("Content-Type")?;
    let mt = media_type(ct);
    if mt == "application/sdp" {
        return Some(0..msg.body().len());
    }
    if !mt.starts_with("multipart/") {
        return None;
    }
    let boundary = ct.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=')?;
        n.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_string())
    })?;
    multipart_sdp(msg.body(), &boundary)
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || from > hay.len() {
        return None;
    }
    hay[from..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The byte range of the first `application/sdp` part's body in a multipart body
/// (RFC 2046 §5.1.1: a delimiter is `--boundary` at the start of the body or after CRLF;
/// the CRLF before a delimiter belongs to it; `--boundary--` closes).
fn multipart_sdp(body: &[u8], boundary: &str) -> Option<std::ops::Range<usize>> {
    if boundary.is_empty() || boundary.len() > 70 {
        return None;
    }
    let delim = format!("--{boundary}").into_bytes();
    let mut at = 0;
    // the first delimiter
    let mut pos = loop {
        let p = find(body, &delim, at)?;
        if p == 0 || body[..p].ends_with(b"\r\n") {
            break p;
        }
        at = p + 1;
    };
    loop {
        let after = pos + delim.len();
        if body[after..].starts_with(b"--") {
            return None; // closed without an SDP part
        }
        let start = find(body, b"\r\n", after)? + 2;
        // the next delimiter
        let mut from = start;
        let next = loop {
            let p = find(body, &delim, from)?;
            if p >= start + 2 && body[..p].ends_with(b"\r\n") {
                break p;
            }
            from = p + 1;
        };
        let part = &body[start..next - 2];
        let (headers, content_start) = if part.starts_with(b"\r\n") {
            (&part[..0], 2)
        } else {
            let h = find(part, b"\r\n\r\n", 0)?;
            (&part[..h], h + 4)
        };
        let is_sdp = std::str::from_utf8(headers).ok().is_some_and(|h| {
            h.split("\r\n").any(|l| {
                l.split_once(':').is_some_and(|(n, v)| {
                    n.trim().eq_ignore_ascii_case("Content-Type")
                        && media_type(v) == "application/sdp"
                })
            })
        });
        if is_sdp {
            return Some(start + content_start..next - 2);
        }
        pos = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_finds_the_sdp_part() {
        let body = b"preamble\r\n--b1\r\nContent-Type: application/isup\r\n\r\nISUP\r\n--b1\r\nContent-Type: application/sdp\r\n\r\nv=0\r\nm=audio 1 RTP/AVP 0\r\n\r\n--b1--\r\n";
        let r = multipart_sdp(body, "b1").unwrap();
        assert_eq!(&body[r], b"v=0\r\nm=audio 1 RTP/AVP 0\r\n");
        assert!(
            multipart_sdp(b"--b1\r\nContent-Type: text/plain\r\n\r\nx\r\n--b1--", "b1").is_none()
        );
        assert!(
            multipart_sdp(
                b"--b1\r\nContent-Type: application/sdp\r\n\r\nunclosed",
                "b1"
            )
            .is_none()
        );
        // a delimiter-like string inside a part that is not after CRLF is content
        let body = b"--b1\r\ncontent-type: Application/SDP; x=1\r\n\r\na--b1\r\n--b1--";
        let r = multipart_sdp(body, "b1").unwrap();
        assert_eq!(&body[r], b"a--b1");
    }

    #[test]
    fn media_types() {
        assert_eq!(media_type(" Application/SDP ;charset=x"), "application/sdp");
        assert_eq!(media_type("multipart/mixed;boundary=x"), "multipart/mixed");
    }
}
