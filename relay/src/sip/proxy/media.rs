//! Media relay engagement: the proxy rewrites the SDP of a call's offers and answers
//! through a [`MediaControl`] (the MediaProxy / nat_traversal model: the proxy sees every
//! offer and answer, the relay owns the ports), and releases the relay's session when the
//! dialog ends.
//!
//! # What is rewritten
//!
//! Offers and answers follow RFC 3264 as carried by SIP (RFC 3261 §13.2.1, RFC 6337 §2):
//!
//! - an INVITE (initial or re-INVITE), UPDATE (RFC 3311) or PRACK (RFC 3262) with SDP is an
//!   offer, except a PRACK (or an ACK) that answers an offer made in a response;
//! - a 18x or 2xx response with SDP to a request that carried an offer is the answer (a
//!   183 and the 200 after it repeat it; both are rewritten, the relay keys them alike);
//! - a 18x or 2xx response with SDP to an offerless INVITE is an offer, and the SDP of the
//!   ACK (2xx) or PRACK (reliable 18x) that follows is its answer.
//!
//! Failure responses (3xx–6xx) are never rewritten: RFC 3261 §13.2.1 gives them no
//! session description role. SDP in any other method passes unchanged.
//!
//! A body is SDP when its Content-Type is `application/sdp` (RFC 3261 §20.15). In a
//! `multipart/*` body (RFC 5621) the first `application/sdp` part is rewritten and every
//! other part and byte passes unchanged; a part's own headers are not touched (MIME parts
//! carry no Content-Length). A body with a Content-Encoding other than `identity` is not
//! read. After a rewrite the message's Content-Length is set to the new body's length.
//!
//! # Which calls (`sip-proxy.media`)
//!
//! - `relay`: every call.
//! - `never`: none; SDP is never parsed.
//! - `when-natted`: the call is relayed when a party is known to be behind a NAT by the
//!   configured NAT tests (`sip-proxy.nat.test`) when the call's first offer passes: the
//!   caller when the tests hit on its INVITE or its registration binding is NATed (the
//!   INVITE came from a binding's NAT path), the callee when the binding the INVITE is
//!   routed to is NATed. For an offerless INVITE the first offer is in the callee's
//!   response, so that response counts too: its source is a NATed binding, or its Contact
//!   is private (the `private-contact` test). This is MediaProxy's
//!   `client_nat_test()` + registrar NAT flag before `engage_media_proxy()`.
//!
//! The decision is taken once per dialog and kept for all its re-offers, so the relay
//! never sees half a session. Consequence: a callee whose NAT shows only in its 2xx to an
//! INVITE that carried an offer (it is not registered through a NAT, and the caller is
//! not NATed) is not relayed — the offer already went out unrewritten, and rewriting the
//! answer alone would relay only one direction. With no NAT tests configured,
//! `when-natted` relays nothing.
//!
//! # Failures
//!
//! The rewrite is all-or-nothing (see [`crate::sdp::rewrite`]); a message is never
//! forwarded with half its streams rewritten. When a request's offer cannot be relayed:
//!
//! - the relay refused (no ports, …): the proxy answers `503 Service Unavailable` (RFC
//!   3261 §21.5.4: the server is temporarily unable to process the request — the
//!   shortage is the proxy's own, not the caller's SDP; rtpengine- and MediaProxy-based
//!   Kamailio setups answer the same when the relay is out of resources);
//! - the SDP is not a description this parser accepts: `488 Not Acceptable Here` (§21.4.26:
//!   the session description is what is not acceptable).
//!
//! An ACK and responses cannot be refused: they are forwarded with the SDP as the
//! endpoint wrote it and a [`ProxyEvent::MediaFailed`] says so. When the initial INVITE is
//! refused, the relay's session is released at once (streams it allocated before
//! refusing are its own to free).
//!
//! # Retransmissions
//!
//! A retransmitted INVITE is absorbed by its server transaction before it gets here. A
//! retransmitted 2xx (forwarded statelessly, RFC 3261 §16.7), a repeated 18x and a
//! retransmitted ACK carry the same body in the same transaction: the last few rewrites
//! of each call are kept, and a message whose party, CSeq, kind and body match one is
//! sent with that rewrite again without asking the relay ([`ProxyEvent::MediaRewritten`]
//! with `repeated: true`).
//!
//! # Session end
//!
//! The session ([`MediaControl::end_session`]) ends with the dialog: BYE, CANCEL (the 487),
//! any final failure response to the initial INVITE, Timer B, and the dialog timeout —
//! exactly the [`ProxyEvent::DialogEnded`] cases — followed by
//! [`ProxyEvent::MediaReleased`]. A rejected re-offer (a failure response to a re-INVITE)
//! keeps the session: the relay may still hold the streams of that offer until the end.
//!
//! Out of scope: forking (one callee per call), offers in in-dialog requests of a call
//! the proxy has not seen start.

use super::config::{MediaConfig, MediaPolicy, ProxyEvent};
use crate::sdp::{
    self, IcePolicy, MediaControl, Party, RelayEndpoint, RewriteReport, Role, Sdp, SessionKey,
    StreamRequest,
};
use crate::sip::message::{Message, Method};
use std::collections::{BTreeMap, VecDeque};

/// Why a boxed media controller refused a stream: the controller's own error, as text
/// (the proxy only reports it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct RelayRefused(pub String);

/// A [`MediaControl`] with its error type erased, so that a [`super::Proxy`] can own any
/// relay behind one box. Every `MediaControl + Send` is one (blanket implementation);
/// implement [`MediaControl`], not this.
pub trait DynMediaControl: Send {
    /// [`MediaControl::relay_stream`], the error rendered as text.
    fn relay_stream_dyn(
        &mut self,
        request: &StreamRequest<'_>,
    ) -> Result<RelayEndpoint, RelayRefused>;
    /// [`MediaControl::end_session`].
    fn end_session_dyn(&mut self, session: SessionKey<'_>);
}

impl<M: MediaControl + Send> DynMediaControl for M {
    fn relay_stream_dyn(
        &mut self,
        request: &StreamRequest<'_>,
    ) -> Result<RelayEndpoint, RelayRefused> {
        self.relay_stream(request)
            .map_err(|e| RelayRefused(e.to_string()))
    }

    fn end_session_dyn(&mut self, session: SessionKey<'_>) {
        self.end_session(session);
    }
}

/// The box seen as a [`MediaControl`] again, for [`sdp::rewrite_offer`].
struct Erased<'a>(&'a mut dyn DynMediaControl);

impl MediaControl for Erased<'_> {
    type Error = RelayRefused;

    fn relay_stream(&mut self, request: &StreamRequest<'_>) -> Result<RelayEndpoint, RelayRefused> {
        self.0.relay_stream_dyn(request)
    }

    fn end_session(&mut self, session: SessionKey<'_>) {
        self.0.end_session_dyn(session);
    }
}

/// Rewrites kept per call for retransmissions.
const RECENT: usize = 4;

/// Identifies one message of a transaction for the retransmission cache.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RepeatKey {
    party: Party,
    seq: u32,
    method: String,
    /// `None` for a request; for responses the status class (a 183 and its 200 differ).
    status: Option<u16>,
}

#[derive(Debug, Clone)]
struct Recent {
    key: RepeatKey,
    original: Vec<u8>,
    rewritten: Vec<u8>,
    role: Role,
    report: RewriteReport,
}

/// Media state of one call (keyed by Call-ID, as the proxy's dialogs are).
#[derive(Debug, Clone)]
struct Call {
    from_tag: String,
    to_tag: Option<String>,
    /// A party was seen behind a NAT (accumulated until the decision).
    natted: bool,
    /// Relay or not, taken at the first offer and kept.
    relay: Option<bool>,
    /// CSeq (number, method) of the request whose offer is the latest.
    offer_request: Option<(u32, String)>,
    /// An offer in a response waits for its answer in the ACK or PRACK.
    offer_in_response: bool,
    /// The relay was asked about this call: release it at the end.
    asked: bool,
    recent: VecDeque<Recent>,
}

/// Where the SDP sits in a body.
enum SdpAt {
    /// The whole body.
    Whole,
    /// This byte range of a multipart body.
    Part(std::ops::Range<usize>),
}

/// What went wrong with a body.
enum BodyError {
    Parse(sdp::Error),
    Refused(sdp::RewriteError<RelayRefused>),
}

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BodyError::Parse(e) => write!(f, "{e}"),
            BodyError::Refused(e) => write!(f, "{e}"),
        }
    }
}

/// The proxy's media side: policy, the controller, and per-call offer/answer state.
pub(crate) struct MediaSessions {
    config: MediaConfig,
    control: Option<Box<dyn DynMediaControl>>,
    calls: BTreeMap<String, Call>,
}

impl std::fmt::Debug for MediaSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MediaSessions")
            .field("config", &self.config)
            .field("control", &self.control.is_some())
            .field("calls", &self.calls)
            .finish()
    }
}

/// A message's facts the media side needs.
struct Facts {
    call_id: String,
    from_tag: String,
    to_tag: Option<String>,
    seq: u32,
    method: String,
}

fn facts(msg: &Message) -> Option<Facts> {
    let cseq = msg.cseq().ok()?;
    Some(Facts {
        call_id: msg.call_id().ok()?.to_string(),
        from_tag: msg.from().ok()?.tag()?.to_string(),
        to_tag: msg.to().ok().and_then(|t| t.tag().map(str::to_string)),
        seq: cseq.seq,
        method: cseq.method,
    })
}

impl MediaSessions {
    pub(crate) fn new(config: MediaConfig, control: Option<Box<dyn DynMediaControl>>) -> Self {
        MediaSessions {
            config,
            control,
            calls: BTreeMap::new(),
        }
    }

    /// Whether SDP may be rewritten at all (a controller and a policy other than `never`).
    pub(crate) fn active(&self) -> bool {
        self.control.is_some() && self.config.policy != MediaPolicy::Never
    }

    /// Calls with media state (for leak checks).
    pub(crate) fn session_count(&self) -> usize {
        self.calls.len()
    }

    /// A request about to be forwarded; `natted`: its sender, or the target it is routed
    /// to, is behind a NAT. `Err` is the status to refuse it with (never for ACK).
    pub(crate) fn on_request(
        &mut self,
        msg: &mut Message,
        natted: bool,
        events: &mut VecDeque<ProxyEvent>,
    ) -> Result<(), (u16, &'static str)> {
        if !self.active() {
            return Ok(());
        }
        let method = msg.method().cloned().unwrap_or(Method::Options);
        if !matches!(
            method,
            Method::Invite | Method::Ack | Method::Prack | Method::Update
        ) {
            return Ok(());
        }
        let Some(f) = facts(msg) else { return Ok(()) };
        let initial = method == Method::Invite && f.to_tag.is_none();
        if initial && !self.calls.contains_key(&f.call_id) {
            self.calls.insert(
                f.call_id.clone(),
                Call {
                    from_tag: f.from_tag.clone(),
                    to_tag: None,
                    natted: false,
                    relay: None,
                    offer_request: None,
                    offer_in_response: false,
                    asked: false,
                    recent: VecDeque::new(),
                },
            );
        }
        let MediaSessions {
            config,
            control,
            calls,
        } = self;
        let (Some(control), Some(call)) = (control.as_mut(), calls.get_mut(&f.call_id)) else {
            return Ok(());
        };
        call.natted |= natted;
        if call.to_tag.is_none() && f.to_tag.is_some() && f.from_tag == call.from_tag {
            call.to_tag.clone_from(&f.to_tag);
        }
        let party = if f.from_tag == call.from_tag {
            Party::Caller
        } else {
            Party::Callee
        };
        let Some(at) = sdp_in(msg) else { return Ok(()) };
        let key = RepeatKey {
            party,
            seq: f.seq,
            method: method.as_str().to_string(),
            status: None,
        };
        if repeat(call, &key, msg, &f.call_id, events) {
            return Ok(());
        }
        let relay = *call.relay.get_or_insert(match config.policy {
            MediaPolicy::Relay => true,
            MediaPolicy::Never => false,
            MediaPolicy::WhenNatted => call.natted,
        });
        if !relay {
            return Ok(());
        }
        let is_ack = method == Method::Ack;
        let role = if matches!(method, Method::Ack | Method::Prack) && call.offer_in_response {
            Role::Answer
        } else if is_ack {
            // RFC 3264 §2 / RFC 6337 §2.1: an ACK carries no offer; nothing to relay
            return Ok(());
        } else {
            Role::Offer
        };
        match rewrite(control.as_mut(), call, config.ice, &f, &key, msg, &at, role) {
            Ok(report) => {
                match role {
                    Role::Answer => call.offer_in_response = false,
                    Role::Offer => {
                        call.offer_request = Some((f.seq, key.method.clone()));
                        call.offer_in_response = false;
                    }
                }
                events.push_back(rewritten(&f.call_id, &key, role, report, false));
                Ok(())
            }
            Err(e) => {
                let status = match (&e, is_ack) {
                    (_, true) => None,
                    (BodyError::Refused(_), false) => Some((503, "Service Unavailable")),
                    (BodyError::Parse(_), false) => Some((488, "Not Acceptable Here")),
                };
                events.push_back(ProxyEvent::MediaFailed {
                    call_id: f.call_id.clone(),
                    party,
                    method: key.method.clone(),
                    why: e.to_string(),
                    status: status.map(|s| s.0),
                });
                if initial && status.is_some() {
                    // the call is refused: nothing of it stays with the relay
                    self.release(&f.call_id, true, events);
                }
                status.map_or(Ok(()), Err)
            }
        }
    }

    /// A 1xx–2xx response about to be forwarded upstream; `natted`: its sender is behind a
    /// NAT. Never refuses: on failure the response goes on unchanged.
    pub(crate) fn on_response(
        &mut self,
        msg: &mut Message,
        natted: bool,
        events: &mut VecDeque<ProxyEvent>,
    ) {
        if !self.active() {
            return;
        }
        let Some(status) = msg.status() else { return };
        if !(101..300).contains(&status) {
            return;
        }
        let Some(f) = facts(msg) else { return };
        if !matches!(f.method.as_str(), "INVITE" | "UPDATE" | "PRACK") {
            return;
        }
        let MediaSessions {
            config,
            control,
            calls,
        } = self;
        let (Some(control), Some(call)) = (control.as_mut(), calls.get_mut(&f.call_id)) else {
            return;
        };
        call.natted |= natted;
        // the responder is the party the request went to
        let party = if f.from_tag == call.from_tag {
            if call.to_tag.is_none() {
                call.to_tag.clone_from(&f.to_tag);
            }
            Party::Callee
        } else {
            Party::Caller
        };
        let Some(at) = sdp_in(msg) else { return };
        let key = RepeatKey {
            party,
            seq: f.seq,
            method: f.method.clone(),
            status: Some(status),
        };
        if repeat(call, &key, msg, &f.call_id, events) {
            return;
        }
        let relay = *call.relay.get_or_insert(match config.policy {
            MediaPolicy::Relay => true,
            MediaPolicy::Never => false,
            MediaPolicy::WhenNatted => call.natted,
        });
        if !relay {
            return;
        }
        let role = if call.offer_request.as_ref() == Some(&(f.seq, f.method.clone())) {
            Role::Answer
        } else if f.method == "INVITE" {
            Role::Offer
        } else {
            // an UPDATE/PRACK response with SDP to a request without an offer is not an
            // answer to anything (RFC 3311 §5.2, RFC 3262 §5): left alone
            return;
        };
        match rewrite(control.as_mut(), call, config.ice, &f, &key, msg, &at, role) {
            Ok(report) => {
                if role == Role::Offer {
                    call.offer_in_response = true;
                }
                events.push_back(rewritten(&f.call_id, &key, role, report, false));
            }
            Err(e) => events.push_back(ProxyEvent::MediaFailed {
                call_id: f.call_id.clone(),
                party,
                method: f.method.clone(),
                why: e.to_string(),
                status: None,
            }),
        }
    }

    /// The call ended (the proxy's dialog did): release the relay's session.
    pub(crate) fn end(&mut self, call_id: &str, events: &mut VecDeque<ProxyEvent>) {
        let asked = self.calls.get(call_id).is_some_and(|c| c.asked);
        self.release(call_id, asked, events);
    }

    fn release(&mut self, call_id: &str, tell_relay: bool, events: &mut VecDeque<ProxyEvent>) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        if !tell_relay {
            return;
        }
        if let Some(control) = self.control.as_mut() {
            control.end_session_dyn(SessionKey {
                call_id,
                from_tag: &call.from_tag,
                to_tag: call.to_tag.as_deref(),
            });
            events.push_back(ProxyEvent::MediaReleased {
                call_id: call_id.to_string(),
            });
        }
    }
}

/// Rewrite the SDP at `at` in `msg` as `role` of `key.party`, and remember it for
/// retransmissions; the message is changed only on success.
#[allow(clippy::too_many_arguments)]
fn rewrite(
    control: &mut dyn DynMediaControl,
    call: &mut Call,
    ice: IcePolicy,
    f: &Facts,
    key: &RepeatKey,
    msg: &mut Message,
    at: &SdpAt,
    role: Role,
) -> Result<RewriteReport, BodyError> {
    let original = msg.body().to_vec();
    let range = match at {
        SdpAt::Whole => 0..original.len(),
        SdpAt::Part(r) => r.clone(),
    };
    let mut sdp = Sdp::parse(&original[range.clone()]).map_err(BodyError::Parse)?;
    let session = SessionKey {
        call_id: &f.call_id,
        from_tag: &call.from_tag,
        to_tag: call.to_tag.as_deref(),
    };
    call.asked = true;
    let mut relay = Erased(control);
    let report = match role {
        Role::Offer => sdp::rewrite_offer(&mut sdp, session, key.party, ice, &mut relay),
        Role::Answer => sdp::rewrite_answer(&mut sdp, session, key.party, ice, &mut relay),
    }
    .map_err(BodyError::Refused)?;
    let mut body = Vec::with_capacity(original.len() + 64);
    body.extend_from_slice(&original[..range.start]);
    body.extend_from_slice(&sdp.to_bytes());
    body.extend_from_slice(&original[range.end..]);
    if call.recent.len() == RECENT {
        call.recent.pop_front();
    }
    call.recent.push_back(Recent {
        key: key.clone(),
        original,
        rewritten: body.clone(),
        role,
        report: report.clone(),
    });
    msg.set_body(body);
    Ok(report)
}

fn rewritten(
    call_id: &str,
    key: &RepeatKey,
    role: Role,
    report: RewriteReport,
    repeated: bool,
) -> ProxyEvent {
    ProxyEvent::MediaRewritten {
        call_id: call_id.to_string(),
        party: key.party,
        role,
        method: key.method.clone(),
        status: key.status,
        report,
        repeated,
    }
}

/// A retransmission of a message already rewritten: send the same rewrite again.
fn repeat(
    call: &Call,
    key: &RepeatKey,
    msg: &mut Message,
    call_id: &str,
    events: &mut VecDeque<ProxyEvent>,
) -> bool {
    let Some(r) = call
        .recent
        .iter()
        .find(|r| r.key == *key && r.original == msg.body())
    else {
        return false;
    };
    msg.set_body(r.rewritten.clone());
    events.push_back(rewritten(call_id, key, r.role, r.report.clone(), true));
    true
}

/// The media type of a Content-Type value, lower-cased, without parameters.
fn media_type(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// Where the SDP of `msg` is, if it has one (see the module docs).
fn sdp_in(msg: &Message) -> Option<SdpAt> {
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
        return Some(SdpAt::Whole);
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
    multipart_sdp(msg.body(), &boundary).map(SdpAt::Part)
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
