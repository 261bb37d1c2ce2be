//! Media relay engagement: the proxy has the SDP of a call's offers and answers rewritten
//! by a media relay (or a dispatcher in front of several) over rtpengine's "ng" control
//! protocol ([`crate::control`]), the MediaProxy / nat_traversal model: the proxy sees
//! every offer and answer, the relay owns the ports. The relay's session is deleted when
//! the dialog ends, and a relay that ends a session on its own (`media-ended`, idle
//! timeout) makes the proxy end the dialog with a BYE to both sides.
//!
//! # Asynchronous control
//!
//! The relay may sit on another host, so asking it takes a round trip. A message whose
//! SDP goes to the relay is parked — request or response, at the point where its SDP is
//! read, after routing and before forwarding — until the reply comes; then its body is
//! replaced (Content-Length with it) and forwarding resumes exactly where it stopped.
//! Messages of the same call (by Call-ID) that reach that point meanwhile queue behind it
//! in arrival order, whatever they carry: a 180 or a 200 after a parked 183 never
//! overtakes it, and a message is read by the media rules only once the one before it is
//! done (so a 200 that repeats a 183's answer finds that rewrite and reuses it).
//!
//! The requests go from the proxy's SIP UDP socket to [`MediaConfig::relay`]; datagrams
//! arriving on that socket from that address are ng, everything else SIP. An [`NgClient`]
//! retransmits (500 ms, doubling) and gives up after [`MediaConfig::reply_timeout`]
//! (default 2 s). With [`MediaConfig::secret`] every message is signed and every reply
//! must verify (the ng `auth` key).
//!
//! # What the relay is told
//!
//! `offer` or `answer` with rtpengine's keys and tag semantics (in an `answer` `from-tag`
//! is still the offerer's and `to-tag` the answerer's), the SDP of the message, and of
//! the party that wrote it: `received-from` and pinhole's `received-from-port` — the
//! source address of the message as the proxy saw it (its NAT binding, where strict
//! latching expects its media from) — and `user-agent` (its User-Agent, or Server for a
//! response: the relay's asymmetric-clients list matches it). `sip-proxy.ice` becomes
//! the `ICE` key: `strip` → `ICE=remove`, `add-relay-candidate` → `ICE=force-relay` (for
//! pinhole's relay: rewrite `c=`/`m=` to the relay and add it as a `typ relay` candidate
//! next to the endpoint's own; rtpengine adds the candidate and leaves `c=`/`m=`),
//! `passthrough` → no `ICE` key (ICE attributes pass as they are); with
//! `add-relay-candidate` pinhole's `ice-priority` (`lowest` | `highest`,
//! [`MediaConfig::ice_priority`]) goes too. `delete {call-id, from-tag, to-tag}` when the
//! dialog ends; its reply is not waited for.
//!
//! # What is rewritten
//!
//! Offers and answers follow RFC 3264 as carried by SIP (RFC 3261 §13.2.1, RFC 6337 §2):
//!
//! - an INVITE (initial or re-INVITE), UPDATE (RFC 3311) or PRACK (RFC 3262) with SDP is an
//!   offer, except a PRACK (or an ACK) that answers an offer made in a response;
//! - a 18x or 2xx response with SDP to a request that carried an offer is the answer (a
//!   183 and the 200 after it repeat it; both are sent, the relay keys them alike);
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
//! The [`ProxyEvent::MediaRewritten`] report is read from the two descriptions (what the
//! relay changed per stream); a stream the relay returned unchanged though it carries
//! media is [`crate::sdp::SkipReason::LeftByRelay`].
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
//! `when-natted` relays nothing. Without a relay address ([`MediaConfig::relay`]) SDP is
//! never touched.
//!
//! # Failures
//!
//! A message is never forwarded with half its streams rewritten. When a request's offer
//! cannot be relayed:
//!
//! - the relay answered an error (no ports, draining, …) or no reply came within the
//!   timeout: the proxy answers `503 Service Unavailable` (RFC 3261 §21.5.4: the server is
//!   temporarily unable to process the request — the shortage is the proxy's own, not the
//!   caller's SDP; rtpengine- and MediaProxy-based Kamailio setups answer the same when
//!   the relay is out of resources or unreachable);
//! - the SDP is not a description this parser accepts: `488 Not Acceptable Here` (§21.4.26:
//!   the session description is what is not acceptable), without asking the relay.
//!
//! An ACK and responses cannot be refused: they are forwarded with the SDP as the
//! endpoint wrote it and a [`ProxyEvent::MediaFailed`] says so. When the initial INVITE is
//! refused, the relay's session is deleted at once (streams it may have allocated).
//! A CANCEL for an INVITE still parked is answered 200, the INVITE 487, and the session
//! deleted; the INVITE is never forwarded.
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
//! The relay's session is deleted when the dialog ends: BYE, CANCEL (the 487), any final
//! failure response to the initial INVITE, Timer B, and the dialog timeout — exactly the
//! [`ProxyEvent::DialogEnded`] cases — followed by [`ProxyEvent::MediaReleased`]. A
//! rejected re-offer (a failure response to a re-INVITE) keeps the session: the relay may
//! still hold the streams of that offer until the end.
//!
//! A relay's `media-ended {call-id, reason}` ends a confirmed dialog from the proxy: a BYE
//! to each side built from the dialog state (the side's Contact as Request-URI, its route
//! set, From/To with both tags, a CSeq above the highest the proxy saw from the other
//! side), sent on the flow that side signalled from (or to its first route); the 200s are
//! absorbed; [`ProxyEvent::DialogEnded`] with [`DialogEndReason::MediaEnded`]. An
//! unconfirmed call is left to its transaction (the relay's session is gone; a later
//! answer fails and is forwarded unchanged).
//!
//! Out of scope: forking (one callee per call), offers in in-dialog requests of a call
//! the proxy has not seen start.
//!
//! [`NgClient`]: crate::control::NgClient
//! [`DialogEndReason::MediaEnded`]: super::DialogEndReason::MediaEnded

use super::config::{MediaConfig, MediaPolicy, ProxyEvent};
use crate::Transmit;
use crate::control::ng::{CallRef, Ice, NgCommand, NgReply, OfferAnswer};
use crate::control::{ClientConfig, ClientOutcome, NgClient, RequestId};
use crate::sdp::{IcePolicy, Party, RewriteReport, Role, Sdp};
use crate::sip::message::{Message, Method};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Instant;

mod body;
mod report;

use body::sdp_in;
use report::describe;

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
    /// The relay was asked about this call: delete it at the end.
    asked: bool,
    recent: VecDeque<Recent>,
}

/// Where a message came from, as the media rules need it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source {
    /// Its signalling source address (ng `received-from` + `received-from-port`).
    pub(crate) remote: SocketAddr,
    /// Its sender, or the target a request is routed to, is behind a NAT.
    pub(crate) natted: bool,
}

/// A message waiting for its turn or for the relay's reply.
#[derive(Debug)]
struct Parked<R> {
    msg: Message,
    source: Source,
    /// The server transaction of a request (a CANCEL finds its INVITE by it).
    server: Option<u64>,
    resume: R,
    asked: Option<Asked>,
}

/// What was asked of the relay for a parked message.
#[derive(Debug)]
struct Asked {
    id: RequestId,
    key: RepeatKey,
    role: Role,
    range: Range<usize>,
    original: Vec<u8>,
    /// The initial INVITE: on refusal the call's session goes.
    initial: bool,
    /// It can be refused (a request other than ACK).
    refusable: bool,
}

/// A message the core may move on with: forward it (`refuse: None`) or answer it.
#[derive(Debug)]
pub(crate) struct Ready<R> {
    pub(crate) msg: Message,
    pub(crate) resume: R,
    pub(crate) refuse: Option<(u16, &'static str)>,
}

/// What one message's turn came to.
enum Step {
    Ready(Option<(u16, &'static str)>),
    Asked(Asked),
}

/// The proxy's media side: policy, the ng client, per-call offer/answer state, and the
/// messages parked per call. `R` is the core's note of where to resume a message.
#[derive(Debug)]
pub(crate) struct MediaSessions<R> {
    config: MediaConfig,
    client: Option<NgClient>,
    calls: BTreeMap<String, Call>,
    queues: BTreeMap<String, VecDeque<Parked<R>>>,
    waiting: BTreeMap<RequestId, String>,
    ready: VecDeque<Ready<R>>,
    ended: VecDeque<(String, String)>,
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

impl<R> MediaSessions<R> {
    /// `local`: the proxy's SIP UDP address, which ng requests are sent from.
    pub(crate) fn new(config: MediaConfig, local: SocketAddr, seed: u64) -> Self {
        let client = config.relay.map(|_| {
            let mut c = ClientConfig::new(local);
            c.secret = config.secret.as_ref().map(|s| s.as_bytes().to_vec());
            c.timeout = config.reply_timeout;
            c.seed = seed;
            NgClient::new(c)
        });
        MediaSessions {
            config,
            client,
            calls: BTreeMap::new(),
            queues: BTreeMap::new(),
            waiting: BTreeMap::new(),
            ready: VecDeque::new(),
            ended: VecDeque::new(),
        }
    }

    /// Whether SDP may be rewritten at all (a relay and a policy other than `never`).
    pub(crate) fn active(&self) -> bool {
        self.client.is_some() && self.config.policy != MediaPolicy::Never
    }

    /// The ng address of the relay (datagrams from it are ng).
    pub(crate) fn relay(&self) -> Option<SocketAddr> {
        self.config.relay
    }

    /// Calls with media state (for leak checks).
    pub(crate) fn session_count(&self) -> usize {
        self.calls.len()
    }

    /// Messages parked (waiting for the relay or behind one that is).
    pub(crate) fn parked_count(&self) -> usize {
        self.queues.values().map(VecDeque::len).sum()
    }

    /// A message reached the point where its SDP is read: it comes back from
    /// [`MediaSessions::poll_ready`], at once or after the relay's reply.
    pub(crate) fn submit(
        &mut self,
        now: Instant,
        msg: Message,
        source: Source,
        server: Option<u64>,
        resume: R,
        events: &mut VecDeque<ProxyEvent>,
    ) {
        let call_id = msg.call_id().ok().map(str::to_string);
        let Some(call_id) = call_id.filter(|_| self.active()) else {
            self.ready.push_back(Ready {
                msg,
                resume,
                refuse: None,
            });
            return;
        };
        self.queues
            .entry(call_id.clone())
            .or_default()
            .push_back(Parked {
                msg,
                source,
                server,
                resume,
                asked: None,
            });
        self.pump(now, &call_id, events);
    }

    /// The next message the core may move on with.
    pub(crate) fn poll_ready(&mut self) -> Option<Ready<R>> {
        self.ready.pop_front()
    }

    /// The next `media-ended` notice: (Call-ID, reason).
    pub(crate) fn poll_ended(&mut self) -> Option<(String, String)> {
        self.ended.pop_front()
    }

    /// The next ng datagram to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.client.as_mut()?.poll_transmit()
    }

    /// When [`MediaSessions::handle_timeout`] is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.client.as_ref()?.poll_timeout()
    }

    /// Retransmit ng requests; a request without reply in time fails its message.
    pub(crate) fn handle_timeout(&mut self, now: Instant, events: &mut VecDeque<ProxyEvent>) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        client.handle_timeout(now);
        let timeout = self.config.reply_timeout;
        while let Some(o) = self.client.as_mut().and_then(NgClient::poll_outcome) {
            if let ClientOutcome::TimedOut(id) = o {
                let why = format!("no reply from the media relay within {timeout:?}");
                self.complete(now, id, Err(why), events);
            }
        }
    }

    /// A datagram from the relay's address.
    pub(crate) fn handle_ng(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
        events: &mut VecDeque<ProxyEvent>,
    ) {
        let Some(client) = self.client.as_mut() else {
            return;
        };
        match client.handle_datagram(now, from, data) {
            Some(ClientOutcome::Reply { id, reply }) => self.complete(now, id, Ok(reply), events),
            Some(ClientOutcome::Request {
                command:
                    NgCommand::MediaEnded {
                        call_id, reason, ..
                    },
                ..
            }) => self.ended.push_back((call_id, reason)),
            _ => {}
        }
    }

    /// A CANCEL for the request of server transaction `server`: if it is parked it is
    /// dropped (and the call's session deleted when it was the initial INVITE). Whether it
    /// was.
    pub(crate) fn cancel_parked(
        &mut self,
        now: Instant,
        server: u64,
        events: &mut VecDeque<ProxyEvent>,
    ) -> bool {
        let found = self.queues.iter().find_map(|(call_id, q)| {
            q.iter()
                .position(|p| p.server == Some(server))
                .map(|i| (call_id.clone(), i))
        });
        let Some((call_id, i)) = found else {
            return false;
        };
        let Some(p) = self.queues.get_mut(&call_id).and_then(|q| q.remove(i)) else {
            return false;
        };
        let initial = match &p.asked {
            Some(a) => {
                self.waiting.remove(&a.id);
                if let Some(c) = self.client.as_mut() {
                    c.cancel(a.id);
                }
                a.initial
            }
            None => {
                p.msg.method() == Some(&Method::Invite)
                    && p.msg
                        .to()
                        .ok()
                        .and_then(|t| t.tag().map(str::to_string))
                        .is_none()
            }
        };
        if initial {
            self.end(now, &call_id, events);
        }
        self.pump(now, &call_id, events);
        true
    }

    /// The call ended (the proxy's dialog did): delete the relay's session.
    pub(crate) fn end(&mut self, now: Instant, call_id: &str, events: &mut VecDeque<ProxyEvent>) {
        let asked = self.calls.get(call_id).is_some_and(|c| c.asked);
        self.release(now, call_id, asked, events);
    }

    /// The relay ended the call's session itself: forget it without a `delete`.
    pub(crate) fn forget(
        &mut self,
        now: Instant,
        call_id: &str,
        events: &mut VecDeque<ProxyEvent>,
    ) {
        self.release(now, call_id, false, events);
    }

    fn release(
        &mut self,
        now: Instant,
        call_id: &str,
        tell_relay: bool,
        events: &mut VecDeque<ProxyEvent>,
    ) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        if !call.asked {
            return;
        }
        if tell_relay && let (Some(client), Some(relay)) = (self.client.as_mut(), self.config.relay)
        {
            client.send(
                now,
                relay,
                &NgCommand::Delete(CallRef {
                    call_id: call_id.to_string(),
                    from_tag: Some(call.from_tag.clone()),
                    to_tag: call.to_tag.clone(),
                    ..CallRef::default()
                }),
            );
        }
        events.push_back(ProxyEvent::MediaReleased {
            call_id: call_id.to_string(),
        });
    }

    /// Give each message of the call at the head of its queue its turn, until one waits
    /// for the relay.
    fn pump(&mut self, now: Instant, call_id: &str, events: &mut VecDeque<ProxyEvent>) {
        loop {
            let Some(q) = self.queues.get_mut(call_id) else {
                return;
            };
            let Some(head) = q.front() else {
                self.queues.remove(call_id);
                return;
            };
            if head.asked.is_some() {
                return;
            }
            let Some(mut p) = q.pop_front() else { return };
            match self.step(now, &mut p, events) {
                Step::Ready(refuse) => self.ready.push_back(Ready {
                    msg: p.msg,
                    resume: p.resume,
                    refuse,
                }),
                Step::Asked(asked) => {
                    self.waiting.insert(asked.id, call_id.to_string());
                    p.asked = Some(asked);
                    self.queues
                        .entry(call_id.to_string())
                        .or_default()
                        .push_front(p);
                    return;
                }
            }
        }
    }

    /// One message's turn: decide what its SDP is, and ask the relay or let it go.
    fn step(&mut self, now: Instant, p: &mut Parked<R>, events: &mut VecDeque<ProxyEvent>) -> Step {
        let Some(f) = facts(&p.msg) else {
            return Step::Ready(None);
        };
        match p.msg.status() {
            None => self.step_request(now, p, f, events),
            Some(status) => self.step_response(now, p, f, status, events),
        }
    }

    fn step_request(
        &mut self,
        now: Instant,
        p: &mut Parked<R>,
        f: Facts,
        events: &mut VecDeque<ProxyEvent>,
    ) -> Step {
        let method = p.msg.method().cloned().unwrap_or(Method::Options);
        if !matches!(
            method,
            Method::Invite | Method::Ack | Method::Prack | Method::Update
        ) {
            return Step::Ready(None);
        }
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
        let policy = self.config.policy;
        let Some(call) = self.calls.get_mut(&f.call_id) else {
            return Step::Ready(None);
        };
        call.natted |= p.source.natted;
        if call.to_tag.is_none() && f.to_tag.is_some() && f.from_tag == call.from_tag {
            call.to_tag.clone_from(&f.to_tag);
        }
        let party = if f.from_tag == call.from_tag {
            Party::Caller
        } else {
            Party::Callee
        };
        let Some(range) = sdp_in(&p.msg) else {
            return Step::Ready(None);
        };
        let key = RepeatKey {
            party,
            seq: f.seq,
            method: method.as_str().to_string(),
            status: None,
        };
        if repeat(call, &key, &mut p.msg, &f.call_id, events) {
            return Step::Ready(None);
        }
        if !decide(call, policy) {
            return Step::Ready(None);
        }
        let is_ack = method == Method::Ack;
        let role = if matches!(method, Method::Ack | Method::Prack) && call.offer_in_response {
            Role::Answer
        } else if is_ack {
            // RFC 3264 §2 / RFC 6337 §2.1: an ACK carries no offer; nothing to relay
            return Step::Ready(None);
        } else {
            Role::Offer
        };
        let refusable = !is_ack;
        self.ask(now, p, &f, key, range, role, initial, refusable, events)
    }

    fn step_response(
        &mut self,
        now: Instant,
        p: &mut Parked<R>,
        f: Facts,
        status: u16,
        events: &mut VecDeque<ProxyEvent>,
    ) -> Step {
        if !(101..300).contains(&status)
            || !matches!(f.method.as_str(), "INVITE" | "UPDATE" | "PRACK")
        {
            return Step::Ready(None);
        }
        let policy = self.config.policy;
        let Some(call) = self.calls.get_mut(&f.call_id) else {
            return Step::Ready(None);
        };
        call.natted |= p.source.natted;
        // the responder is the party the request went to
        let party = if f.from_tag == call.from_tag {
            if call.to_tag.is_none() {
                call.to_tag.clone_from(&f.to_tag);
            }
            Party::Callee
        } else {
            Party::Caller
        };
        let Some(range) = sdp_in(&p.msg) else {
            return Step::Ready(None);
        };
        let key = RepeatKey {
            party,
            seq: f.seq,
            method: f.method.clone(),
            status: Some(status),
        };
        if repeat(call, &key, &mut p.msg, &f.call_id, events) {
            return Step::Ready(None);
        }
        if !decide(call, policy) {
            return Step::Ready(None);
        }
        let role = if call.offer_request.as_ref() == Some(&(f.seq, f.method.clone())) {
            Role::Answer
        } else if f.method == "INVITE" {
            Role::Offer
        } else {
            // an UPDATE/PRACK response with SDP to a request without an offer is not an
            // answer to anything (RFC 3311 §5.2, RFC 3262 §5): left alone
            return Step::Ready(None);
        };
        self.ask(now, p, &f, key, range, role, false, false, events)
    }

    /// Send the offer or answer of `p` to the relay (or refuse an SDP that does not parse).
    #[allow(clippy::too_many_arguments)]
    fn ask(
        &mut self,
        now: Instant,
        p: &mut Parked<R>,
        f: &Facts,
        key: RepeatKey,
        range: Range<usize>,
        role: Role,
        initial: bool,
        refusable: bool,
        events: &mut VecDeque<ProxyEvent>,
    ) -> Step {
        let original = p.msg.body().to_vec();
        let sdp = &original[range.clone()];
        if let Err(e) = Sdp::parse(sdp) {
            let status = refusable.then_some((488, "Not Acceptable Here"));
            events.push_back(ProxyEvent::MediaFailed {
                call_id: f.call_id.clone(),
                party: key.party,
                method: key.method.clone(),
                why: e.to_string(),
                status: status.map(|s| s.0),
            });
            if initial && status.is_some() {
                self.release(now, &f.call_id, false, events);
            }
            return Step::Ready(status);
        }
        let (Some(client), Some(relay), Some(call)) = (
            self.client.as_mut(),
            self.config.relay,
            self.calls.get_mut(&f.call_id),
        ) else {
            return Step::Ready(None);
        };
        let mine = |party: Party| match party {
            Party::Caller => Some(call.from_tag.clone()),
            Party::Callee => call.to_tag.clone(),
        };
        let other = match key.party {
            Party::Caller => Party::Callee,
            Party::Callee => Party::Caller,
        };
        // rtpengine's tags: from-tag is the offerer's, in an answer too
        let (from_tag, to_tag) = match role {
            Role::Offer => (mine(key.party), mine(other)),
            Role::Answer => (mine(other), mine(key.party)),
        };
        let user_agent = if p.msg.is_request() {
            p.msg.get("User-Agent").or_else(|| p.msg.get("Server"))
        } else {
            p.msg.get("Server").or_else(|| p.msg.get("User-Agent"))
        };
        let ice = Ice::for_policy(self.config.ice);
        let oa = OfferAnswer {
            call_id: f.call_id.clone(),
            from_tag: from_tag.unwrap_or_default(),
            to_tag,
            sdp: sdp.to_vec(),
            received_from: Some(p.source.remote.ip()),
            received_from_port: Some(p.source.remote.port()),
            user_agent: user_agent.map(str::to_string),
            ice_priority: (self.config.ice == IcePolicy::AddRelayCandidate)
                .then_some(self.config.ice_priority),
            ice,
            ..OfferAnswer::default()
        };
        let command = match role {
            Role::Offer => NgCommand::Offer(oa),
            Role::Answer => NgCommand::Answer(oa),
        };
        call.asked = true;
        let id = client.send(now, relay, &command);
        Step::Asked(Asked {
            id,
            key,
            role,
            range,
            original,
            initial,
            refusable,
        })
    }

    /// The relay's reply (or its absence, `Err`) to request `id`: the parked message at
    /// the head of its call's queue moves on, and the next one gets its turn.
    fn complete(
        &mut self,
        now: Instant,
        id: RequestId,
        reply: Result<NgReply, String>,
        events: &mut VecDeque<ProxyEvent>,
    ) {
        let Some(call_id) = self.waiting.remove(&id) else {
            return; // a delete's reply, or a request cancelled meanwhile
        };
        let head = self.queues.get_mut(&call_id).and_then(|q| {
            let is_it = q
                .front()
                .and_then(|p| p.asked.as_ref())
                .is_some_and(|a| a.id == id);
            if is_it { q.pop_front() } else { None }
        });
        let Some(mut p) = head else { return };
        let Some(asked) = p.asked.take() else { return };
        let result = match reply {
            Ok(NgReply::Ok { sdp: Some(new), .. }) => match self.calls.get_mut(&call_id) {
                Some(call) => apply(call, &asked, &mut p.msg, &new),
                None => Err("the call ended while the media relay was asked".to_string()),
            },
            Ok(NgReply::Error { reason }) => Err(format!("the media relay refused: {reason}")),
            Ok(_) => Err("the media relay's reply carries no SDP".to_string()),
            Err(why) => Err(why),
        };
        let refuse = match result {
            Ok(report) => {
                if let Some(call) = self.calls.get_mut(&call_id) {
                    match asked.role {
                        Role::Answer => call.offer_in_response = false,
                        Role::Offer if p.msg.is_request() => {
                            call.offer_request = Some((asked.key.seq, asked.key.method.clone()));
                            call.offer_in_response = false;
                        }
                        Role::Offer => call.offer_in_response = true,
                    }
                }
                events.push_back(rewritten(&call_id, &asked.key, asked.role, report, false));
                None
            }
            Err(why) => {
                let status = asked.refusable.then_some((503, "Service Unavailable"));
                events.push_back(ProxyEvent::MediaFailed {
                    call_id: call_id.clone(),
                    party: asked.key.party,
                    method: asked.key.method.clone(),
                    why,
                    status: status.map(|s| s.0),
                });
                if asked.initial && status.is_some() {
                    // the call is refused: nothing of it stays with the relay
                    self.release(now, &call_id, true, events);
                }
                status
            }
        };
        self.ready.push_back(Ready {
            msg: p.msg,
            resume: p.resume,
            refuse,
        });
        self.pump(now, &call_id, events);
    }
}

/// Relay the call or not: decided at its first offer, kept after.
fn decide(call: &mut Call, policy: MediaPolicy) -> bool {
    *call.relay.get_or_insert(match policy {
        MediaPolicy::Relay => true,
        MediaPolicy::Never => false,
        MediaPolicy::WhenNatted => call.natted,
    })
}

/// Put the relay's SDP into the message, remember it for retransmissions, and read what
/// it changed.
fn apply(
    call: &mut Call,
    asked: &Asked,
    msg: &mut Message,
    new: &[u8],
) -> Result<RewriteReport, String> {
    let before = Sdp::parse(&asked.original[asked.range.clone()])
        .map_err(|e| format!("the SDP no longer parses: {e}"))?;
    let after =
        Sdp::parse(new).map_err(|e| format!("the media relay's SDP does not parse: {e}"))?;
    if after.media().len() != before.media().len() {
        return Err(format!(
            "the media relay's SDP has {} streams for {}",
            after.media().len(),
            before.media().len()
        ));
    }
    let report = describe(&before, &after);
    let mut body = Vec::with_capacity(asked.original.len() + 64);
    body.extend_from_slice(&asked.original[..asked.range.start]);
    body.extend_from_slice(new);
    body.extend_from_slice(&asked.original[asked.range.end..]);
    if call.recent.len() == RECENT {
        call.recent.pop_front();
    }
    call.recent.push_back(Recent {
        key: asked.key.clone(),
        original: asked.original.clone(),
        rewritten: body.clone(),
        role: asked.role,
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
