//! SDP, the Session Description Protocol (RFC 8866, which obsoletes and stays compatible
//! with RFC 4566): a lossless parser and serialiser, typed views of the fields a media
//! relay needs, hold detection, and the offer/answer rewrite that points media at a relay.
//!
//! - [`session`]: [`Sdp`], [`Media`], [`Line`]: the description as its lines, kept
//!   byte-exact (line endings included) so that what a rewrite does not touch is sent on
//!   unchanged, unknown line types and attributes included (RFC 8866 §5).
//! - [`fields`]: typed views: [`Connection`] (`c=`, RFC 8866 §5.7), [`MediaLine`] (`m=`,
//!   §5.14), [`Rtcp`] (`a=rtcp`, RFC 3605), [`MediaDirection`] (RFC 8866 §6.7), and the
//!   ICE attributes (RFC 8839 §5).
//! - [`rewrite`]: the [`MediaControl`] trait a media relay implements, the [`IcePolicy`]
//!   of the `sip-proxy.ice` scenario key, and [`rewrite_offer`]/[`rewrite_answer`], which
//!   rewrite `c=`, `m=` ports and `a=rtcp` per stream and report what they did.
//!
//! Nothing here panics on input: every failure is an [`Error`], and input size is bounded
//! by [`Limits`].

pub mod fields;
pub mod rewrite;
pub mod session;

pub use fields::{
    AddrType, Connection, ConnectionAddress, HoldKind, MediaDirection, MediaLine, Rtcp,
    is_ice_attribute,
};
pub use rewrite::{
    IcePolicy, IcePriority, MediaControl, Party, RelayEndpoint, RewriteError, RewriteReport, Role,
    SessionKey, SkipReason, StreamOutcome, StreamRequest, relay_candidate_priority,
    relay_candidate_priority_with, rewrite_answer, rewrite_offer, rewrite_with,
};
pub use session::{Eol, Line, Media, Sdp};

/// Bounds on what [`Sdp::parse_with`] accepts, so that a hostile body costs bounded memory
/// and time. SDP itself has no limits (RFC 8866 §5); these are generous for real calls
/// (a WebRTC bundle with many candidates is a few kilobytes and under 200 lines).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest body in bytes (default 64 KiB).
    pub max_bytes: usize,
    /// Most lines, all levels together (default 2,000).
    pub max_lines: usize,
    /// Most `m=` sections (default 64).
    pub max_media: usize,
    /// Longest single line in bytes, line ending excluded (default 4,096).
    pub max_line_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 64 * 1024,
            max_lines: 2_000,
            max_media: 64,
            max_line_len: 4_096,
        }
    }
}

/// Why a body is not an SDP description this module accepts. Line numbers count from 1.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The body is larger than [`Limits::max_bytes`].
    #[error("SDP body of {size} bytes exceeds the limit of {limit}")]
    TooLarge {
        /// Body size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// More lines than [`Limits::max_lines`].
    #[error("SDP has more than {limit} lines")]
    TooManyLines {
        /// The limit.
        limit: usize,
    },
    /// More `m=` sections than [`Limits::max_media`].
    #[error("SDP has more than {limit} media sections")]
    TooManyMedia {
        /// The limit.
        limit: usize,
    },
    /// A line longer than [`Limits::max_line_len`].
    #[error("SDP line {line} is longer than {limit} bytes")]
    LineTooLong {
        /// Line number.
        line: usize,
        /// The limit.
        limit: usize,
    },
    /// The body is not UTF-8 (RFC 8866 §5: text is ISO 10646 in UTF-8 unless `a=charset`
    /// says otherwise; we do not support other charsets).
    #[error("SDP is not valid UTF-8")]
    NotUtf8,
    /// The body does not start with `v=0` (RFC 8866 §5.1).
    #[error("SDP does not start with v=0")]
    NoVersion,
    /// A line is not `<type>=<value>` with a one-letter type (RFC 8866 §5).
    #[error("SDP line {line} is not <type>=<value>")]
    MalformedLine {
        /// Line number.
        line: usize,
    },
    /// A line holds a control character other than tab (RFC 8866 §9: text is any byte but
    /// NUL, CR and LF; we also refuse the other C0 controls, which no real SDP uses).
    #[error("SDP line {line} holds a control character")]
    ControlCharacter {
        /// Line number.
        line: usize,
    },
    /// A `c=` line does not follow RFC 8866 §5.7.
    #[error("SDP line {line}: bad c= line: {why}")]
    BadConnection {
        /// Line number.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// An `m=` line does not follow RFC 8866 §5.14.
    #[error("SDP line {line}: bad m= line: {why}")]
    BadMedia {
        /// Line number.
        line: usize,
        /// What is wrong.
        why: &'static str,
    },
    /// An `a=rtcp` attribute does not follow RFC 3605 §2.1.
    #[error("SDP line {line}: bad a=rtcp attribute")]
    BadRtcp {
        /// Line number.
        line: usize,
    },
}
