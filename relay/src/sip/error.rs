//! Errors of the SIP message layer (RFC 3261 §7, §25).
//!
//! One enum for everything that makes a message unusable for a proxy: syntax the grammar of
//! RFC 3261 §25 rejects, limits this implementation sets, and the semantic checks of
//! RFC 3261 §8.2.2 / §16.3 (mandatory header fields, single-valued fields, the CSeq method).
//! The proxy answers a request that fails with 400 (or 505 for a foreign version) when it can
//! find a Via to answer to, and drops it otherwise (RFC 3261 §16.3).

use thiserror::Error;

/// Why bytes are not a usable SIP message.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The message is larger than [`crate::sip::Limits::max_message`].
    #[error("message of {len} bytes exceeds the limit of {max}")]
    TooLarge {
        /// The size seen (or buffered) so far.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// More header fields than [`crate::sip::Limits::max_headers`].
    #[error("more than {max} header fields")]
    TooManyHeaders {
        /// The configured limit.
        max: usize,
    },
    /// A line longer than [`crate::sip::Limits::max_line`].
    #[error("a line longer than {max} bytes")]
    LineTooLong {
        /// The configured limit.
        max: usize,
    },
    /// No empty line ends the header section (RFC 3261 §7).
    #[error("the header section is not terminated by an empty line")]
    Incomplete,
    /// Nothing but CRLFs (or nothing at all).
    #[error("empty message")]
    Empty,
    /// The start line is not a Request-Line or Status-Line (RFC 3261 §7.1, §7.2).
    #[error("malformed start line: {0}")]
    StartLine(&'static str),
    /// The SIP-Version is not `SIP/2.0` (RFC 3261 §7.1; answered with 505).
    #[error("unsupported SIP version {0:?}")]
    Version(String),
    /// The header section is not UTF-8 (RFC 3261 §7.3.1 allows UTF-8 text only).
    #[error("header section is not UTF-8")]
    Utf8,
    /// A header line without a valid `name:` (RFC 3261 §7.3.1).
    #[error("malformed header line {line}")]
    HeaderLine {
        /// 1-based line number within the message.
        line: usize,
    },
    /// A header field value that its grammar in RFC 3261 §25 rejects.
    #[error("malformed {name} header: {reason}")]
    Header {
        /// The header name (full form).
        name: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// A URI that the `SIP-URI` grammar (RFC 3261 §19.1, §25) rejects.
    #[error("malformed URI: {0}")]
    Uri(&'static str),
    /// A header field every request/response must carry is absent (RFC 3261 §8.1.1).
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A header field that allows one value has several (RFC 3261 §7.3.1, §20).
    #[error("more than one {0} header value")]
    Multiple(&'static str),
    /// Content-Length disagrees with the bytes present (RFC 3261 §18.3, §20.14).
    #[error("Content-Length {declared} but {available} body bytes")]
    BodyLength {
        /// The declared length.
        declared: usize,
        /// The bytes present after the header section.
        available: usize,
    },
    /// A stream message without Content-Length (RFC 3261 §18.3: mandatory on streams).
    #[error("stream message without Content-Length")]
    NoContentLength,
    /// The CSeq method differs from the request method (RFC 3261 §8.1.1.5).
    #[error("CSeq method {cseq:?} differs from the request method {method:?}")]
    CseqMethod {
        /// The Request-Line method.
        method: String,
        /// The CSeq method.
        cseq: String,
    },
}
