//! A session's state (streams, legs, counters) and its accounting record.

use super::{DropReason, EndReason, Latching, SessionId};
use crate::sdp::Party;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

/// Drops by reason, for one direction of one stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounts {
    /// [`DropReason::WrongSource`].
    pub wrong_source: u64,
    /// [`DropReason::WindowClosed`].
    pub window_closed: u64,
    /// [`DropReason::WrongAddress`].
    pub wrong_address: u64,
    /// [`DropReason::Implausible`].
    pub implausible: u64,
    /// [`DropReason::NoDestination`].
    pub no_destination: u64,
}

impl DropCounts {
    /// All drops together.
    pub fn total(&self) -> u64 {
        self.wrong_source
            + self.window_closed
            + self.wrong_address
            + self.implausible
            + self.no_destination
    }

    pub(super) fn count(&mut self, reason: DropReason) {
        let c = match reason {
            DropReason::WrongSource => &mut self.wrong_source,
            DropReason::WindowClosed => &mut self.window_closed,
            DropReason::WrongAddress => &mut self.wrong_address,
            DropReason::Implausible => &mut self.implausible,
            DropReason::NoDestination => &mut self.no_destination,
            DropReason::UnknownPort => return,
        };
        *c += 1;
    }

    /// The source-based rejections (everything but no-destination).
    pub fn rejected(&self) -> u64 {
        self.total() - self.no_destination
    }
}

/// An `a=rtpmap` entry (RFC 8866 §6.6): payload type, encoding name, clock rate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Codec {
    pub(super) pt: u8,
    pub(super) name: Box<str>,
    pub(super) clock: u32,
}

/// RFC 3551 §6 static payload types: name and clock rate.
pub(super) fn static_codec(pt: u8) -> Option<(&'static str, u32)> {
    Some(match pt {
        0 => ("PCMU", 8000),
        3 => ("GSM", 8000),
        4 => ("G723", 8000),
        5 => ("DVI4", 8000),
        6 => ("DVI4", 16000),
        7 => ("LPC", 8000),
        8 => ("PCMA", 8000),
        9 => ("G722", 8000),
        10 | 11 => ("L16", 44100),
        12 => ("QCELP", 8000),
        13 => ("CN", 8000),
        14 => ("MPA", 90000),
        15 => ("G728", 8000),
        16 => ("DVI4", 11025),
        17 => ("DVI4", 22050),
        18 => ("G729", 8000),
        25 => ("CelB", 90000),
        26 => ("JPEG", 90000),
        28 => ("nv", 90000),
        31 => ("H261", 90000),
        32 => ("MPV", 90000),
        33 => ("MP2T", 90000),
        34 => ("H263", 90000),
        _ => return None,
    })
}

/// Counters of the packets a side sends (one direction of a stream).
#[derive(Debug, Clone, Default)]
pub(super) struct DirStats {
    pub(super) packets: u64,
    pub(super) bytes: u64,
    pub(super) drops: DropCounts,
    pub(super) first_packet: Option<Instant>,
    pub(super) first_pt: Option<u8>,
    /// The last report block the *receiving* side sent about this direction:
    /// fraction lost, cumulative lost, jitter (timestamp units).
    pub(super) rtcp: Option<(u8, i32, u32)>,
}

/// One side's leg of a stream.
#[derive(Debug)]
pub(super) struct Leg {
    /// Index of the relay address in the config.
    pub(super) addr: u8,
    /// The local RTP port (RTCP is +1).
    pub(super) rtp_port: u16,
    /// Whether the RTCP port is bound now.
    pub(super) rtcp_bound: bool,
    /// This side's SDP: where it receives RTP and RTCP.
    pub(super) sdp: Option<[SocketAddr; 2]>,
    /// This side's `a=rtcp-mux`, once its SDP is known.
    pub(super) mux: Option<bool>,
    /// The IP a strict leg may latch from.
    pub(super) allowed_ip: Option<IpAddr>,
    /// End of the latching window.
    pub(super) window_until: Option<Instant>,
    /// Latched source per local port (RTP, RTCP).
    pub(super) latched: [Option<SocketAddr>; 2],
    /// The effective latching mode.
    pub(super) mode: Latching,
    /// Payload types of this side's `m=` line (bit n = PT n).
    pub(super) formats: u128,
    /// This side's `a=rtpmap`s.
    pub(super) codecs: Box<[Codec]>,
    /// This side's ICE ufrag and pwd.
    pub(super) ice: Option<Box<(Box<str>, Box<str>)>>,
    /// Packets this side sent.
    pub(super) stats: DirStats,
    /// Rejections reported so far / since the last event, and when the last went out.
    pub(super) rejected_unreported: u64,
    pub(super) last_reject_event: Option<Instant>,
}

impl Leg {
    pub(super) fn new(addr: u8, rtp_port: u16, mode: Latching) -> Leg {
        Leg {
            addr,
            rtp_port,
            rtcp_bound: false,
            sdp: None,
            mux: None,
            allowed_ip: None,
            window_until: None,
            latched: [None, None],
            mode,
            formats: 0,
            codecs: Box::new([]),
            ice: None,
            stats: DirStats::default(),
            rejected_unreported: 0,
            last_reject_event: None,
        }
    }

    pub(super) fn codec(&self, pt: u8) -> Option<(&str, u32)> {
        self.codecs
            .iter()
            .find(|c| c.pt == pt)
            .map(|c| (&*c.name, c.clock))
    }
}

/// One stream (`m=` position) of a session.
#[derive(Debug)]
pub(super) struct Stream {
    pub(super) index: usize,
    pub(super) media: Box<str>,
    /// RTP-based (`RTP/…` proto): plausibility by RTP/RTCP headers, RTCP demux.
    pub(super) rtp: bool,
    pub(super) held: bool,
    pub(super) legs: [Leg; 2],
}

/// One call.
#[derive(Debug)]
pub(super) struct Session {
    pub(super) call_id: Box<str>,
    /// Side A's and side B's tags.
    pub(super) tags: [Option<Box<str>>; 2],
    pub(super) user_agents: [Option<Box<str>>; 2],
    pub(super) created: Instant,
    pub(super) last_activity: Instant,
    pub(super) media_started: bool,
    pub(super) streams: Vec<Stream>,
    /// The deadline currently in the timer index.
    pub(super) timer: Option<Instant>,
}

impl Session {
    pub(super) fn side_of_tag(&self, tag: &str) -> Option<usize> {
        self.tags.iter().position(|t| t.as_deref() == Some(tag))
    }

    pub(super) fn all_held(&self) -> bool {
        !self.streams.is_empty() && self.streams.iter().all(|s| s.held)
    }

    pub(super) fn record(
        &self,
        id: SessionId,
        now: Instant,
        reason: Option<EndReason>,
    ) -> Accounting {
        Accounting {
            session: id,
            call_id: self.call_id.to_string(),
            from_tag: self.tags[0].as_deref().unwrap_or_default().to_owned(),
            to_tag: self.tags[1].as_deref().map(str::to_owned),
            user_agents: [
                self.user_agents[0].as_deref().map(str::to_owned),
                self.user_agents[1].as_deref().map(str::to_owned),
            ],
            duration: now.saturating_duration_since(self.created),
            reason,
            streams: self
                .streams
                .iter()
                .map(|s| StreamRecord {
                    index: s.index,
                    media: s.media.to_string(),
                    held: s.held,
                    directions: [direction(s, 0, self.created), direction(s, 1, self.created)],
                })
                .collect(),
        }
    }
}

fn direction(s: &Stream, from: usize, created: Instant) -> DirectionRecord {
    let leg = &s.legs[from];
    let to = &s.legs[1 - from];
    let st = &leg.stats;
    // PT numbers are the receiver's (RFC 3264 §6.1), the sender's map as a fallback.
    let codec = st.first_pt.and_then(|pt| {
        to.codec(pt)
            .or_else(|| leg.codec(pt))
            .map(|(n, c)| (n.to_owned(), c))
            .or_else(|| static_codec(pt).map(|(n, c)| (n.to_owned(), c)))
    });
    let clock = codec.as_ref().map_or(8000, |(_, c)| *c);
    DirectionRecord {
        from: if from == 0 {
            Party::Caller
        } else {
            Party::Callee
        },
        source: leg.latched[0],
        packets: st.packets,
        bytes: st.bytes,
        drops: st.drops,
        codec: codec.map(|(n, c)| format!("{n}/{c}")),
        setup_delay: st
            .first_packet
            .map(|t| t.saturating_duration_since(created)),
        rtcp_fraction_lost: st.rtcp.map(|(f, _, _)| f64::from(f) / 256.0),
        rtcp_cumulative_lost: st.rtcp.map(|(_, c, _)| c),
        rtcp_jitter_ms: st
            .rtcp
            .map(|(_, _, j)| f64::from(j) * 1000.0 / f64::from(clock.max(1))),
    }
}

/// What one side sent in one stream, at the end of the session (MediaProxy's accounting).
#[derive(Debug, Clone, PartialEq)]
pub struct DirectionRecord {
    /// The sending side.
    pub from: Party,
    /// The sender's latched RTP source, if it latched.
    pub source: Option<SocketAddr>,
    /// Packets relayed.
    pub packets: u64,
    /// Bytes relayed (UDP payload).
    pub bytes: u64,
    /// Packets dropped, by reason.
    pub drops: DropCounts,
    /// `NAME/RATE` of the first payload type relayed (`a=rtpmap`, else RFC 3551 §6).
    pub codec: Option<String>,
    /// Session creation → the first packet relayed in this direction.
    pub setup_delay: Option<Duration>,
    /// The receiver's last RTCP report: fraction lost (0.0–1.0, RFC 3550 §6.4.1).
    pub rtcp_fraction_lost: Option<f64>,
    /// … cumulative packets lost (24-bit signed).
    pub rtcp_cumulative_lost: Option<i32>,
    /// … interarrival jitter in ms (at the codec's clock rate, 8000 Hz when unknown).
    pub rtcp_jitter_ms: Option<f64>,
}

/// One stream's record.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamRecord {
    /// The `m=` position.
    pub index: usize,
    /// `audio`, `video`, `application`, `image`, …
    pub media: String,
    /// On hold at the end.
    pub held: bool,
    /// A→B, then B→A.
    pub directions: [DirectionRecord; 2],
}

/// A session's accounting record, written when it ends ([`super::MediaEvent::SessionEnded`])
/// and available while it runs ([`super::MediaRelay::query`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Accounting {
    /// The session.
    pub session: SessionId,
    /// Call-ID.
    pub call_id: String,
    /// Side A's tag.
    pub from_tag: String,
    /// Side B's tag, once known.
    pub to_tag: Option<String>,
    /// User-Agents of side A and side B, as signalled.
    pub user_agents: [Option<String>; 2],
    /// Creation → end (or now).
    pub duration: Duration,
    /// Why it ended (`None` while running).
    pub reason: Option<EndReason>,
    /// Per stream.
    pub streams: Vec<StreamRecord>,
}

fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn json_opt_str(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => json_str(out, s),
        None => out.push_str("null"),
    }
}

fn json_f64(out: &mut String, v: Option<f64>) {
    match v {
        Some(v) if v.is_finite() => {
            let _ = write!(out, "{v}");
        }
        _ => out.push_str("null"),
    }
}

impl Accounting {
    /// The record as one line of JSON (no trailing newline): MediaProxy's accounting
    /// records, one per session, for a JSON-lines log. Durations are in milliseconds.
    pub fn to_json_line(&self) -> String {
        let mut o = String::with_capacity(512);
        o.push_str("{\"session\":");
        json_str(&mut o, &self.session.to_string());
        o.push_str(",\"call_id\":");
        json_str(&mut o, &self.call_id);
        o.push_str(",\"from_tag\":");
        json_str(&mut o, &self.from_tag);
        o.push_str(",\"to_tag\":");
        json_opt_str(&mut o, self.to_tag.as_deref());
        o.push_str(",\"user_agents\":[");
        json_opt_str(&mut o, self.user_agents[0].as_deref());
        o.push(',');
        json_opt_str(&mut o, self.user_agents[1].as_deref());
        let _ = write!(o, "],\"duration_ms\":{}", self.duration.as_millis());
        o.push_str(",\"reason\":");
        json_opt_str(&mut o, self.reason.map(EndReason::as_str));
        o.push_str(",\"streams\":[");
        for (i, s) in self.streams.iter().enumerate() {
            if i > 0 {
                o.push(',');
            }
            let _ = write!(o, "{{\"index\":{},\"media\":", s.index);
            json_str(&mut o, &s.media);
            let _ = write!(o, ",\"held\":{},\"directions\":[", s.held);
            for (k, d) in s.directions.iter().enumerate() {
                if k > 0 {
                    o.push(',');
                }
                o.push_str("{\"from\":");
                json_str(&mut o, if d.from == Party::Caller { "a" } else { "b" });
                o.push_str(",\"source\":");
                json_opt_str(&mut o, d.source.map(|a| a.to_string()).as_deref());
                let _ = write!(
                    o,
                    ",\"packets\":{},\"bytes\":{},\"drops\":{{",
                    d.packets, d.bytes
                );
                let _ = write!(
                    o,
                    "\"wrong_source\":{},\"window_closed\":{},\"wrong_address\":{},\"implausible\":{},\"no_destination\":{}}}",
                    d.drops.wrong_source,
                    d.drops.window_closed,
                    d.drops.wrong_address,
                    d.drops.implausible,
                    d.drops.no_destination
                );
                o.push_str(",\"codec\":");
                json_opt_str(&mut o, d.codec.as_deref());
                o.push_str(",\"setup_delay_ms\":");
                match d.setup_delay {
                    Some(t) => {
                        let _ = write!(o, "{}", t.as_millis());
                    }
                    None => o.push_str("null"),
                }
                o.push_str(",\"rtcp_fraction_lost\":");
                json_f64(&mut o, d.rtcp_fraction_lost);
                o.push_str(",\"rtcp_cumulative_lost\":");
                match d.rtcp_cumulative_lost {
                    Some(c) => {
                        let _ = write!(o, "{c}");
                    }
                    None => o.push_str("null"),
                }
                o.push_str(",\"rtcp_jitter_ms\":");
                json_f64(&mut o, d.rtcp_jitter_ms);
                o.push('}');
            }
            o.push_str("]}");
        }
        o.push_str("]}");
        o
    }
}
