//! The proxy core: the [`Proxy`] state and its drive API (`handle_input`,
//! `handle_timeout`, `poll_*`); each concern lives in a file of its own:
//!
//! - `routing`: the request preamble, target lookup and forwarding (RFC 3261 §16);
//! - `transactions`: server and client transactions, responses, timers A–K (§17);
//! - `register`: REGISTER answered by the registrar (§10);
//! - `dialog`: dialog tracking and its timeout (§12);
//! - `keepalive`: OPTIONS/NOTIFY pings towards NATed contacts;
//! - `connections`: open connections, reuse and response targets (§18);
//! - `failure`: transport errors (§18.4);
//! - `parking`: messages parked while the media relay is asked, resumed where they
//!   stopped, and the dialog ended by the relay (`media-ended`).

use super::config::*;
use super::media::{MediaSessions, Source};
use super::transaction::{ClientTx, ServerTx, State, TIMERS, TimerIndex, TxId, slot};
use crate::rng::SplitMix64;
use crate::sip::headers::{NameAddr, Via};
use crate::sip::message::{Framing, Header, Limits, Message, Method};
use crate::sip::nat::{self, NatTests};
use crate::sip::registrar::{RegisterOutcome, Registrar, RemovalReason};
use crate::sip::transport::{ConnId, Flow, Transport};
use crate::sip::uri::{SipUri, Uri, host_ip, host_text};
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

mod connections;
mod dialog;
mod failure;
mod keepalive;
mod parking;
mod register;
mod routing;
mod transactions;

use dialog::Dialog;
use parking::Resume;

/// Counters for reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Messages received.
    pub received: u64,
    /// Messages sent (retransmissions included).
    pub sent: u64,
    /// Retransmissions sent by timers A, E, G.
    pub retransmissions: u64,
    /// Drops by reason.
    pub dropped: BTreeMap<DropReason, u64>,
}

/// The proxy.
#[derive(Debug)]
pub struct Proxy {
    config: ProxyConfig,
    registrar: Registrar,
    servers: BTreeMap<TxId, ServerTx>,
    server_keys: BTreeMap<String, TxId>,
    clients: BTreeMap<TxId, ClientTx>,
    client_keys: BTreeMap<(String, String), TxId>,
    timers: TimerIndex,
    next_id: u64,
    rng: SplitMix64,
    dialogs: BTreeMap<String, Dialog>,
    dialog_timers: BTreeSet<(Instant, String)>,
    keepalive_due: BTreeSet<(Instant, String, String)>,
    keepalive_branches: BTreeMap<String, (String, String)>,
    /// Open connections (learnt from the messages that arrive on them) and their peers.
    conns: BTreeMap<ConnId, (Transport, SocketAddr)>,
    /// The newest open connection to each peer (RFC 3261 §18.1.1, §18.2.2 reuse).
    conn_by_peer: BTreeMap<(Transport, SocketAddr), ConnId>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ProxyEvent>,
    stats: ProxyStats,
    media: MediaSessions<Resume>,
}

const MAGIC: &str = "z9hG4bK";

/// FNV-1a, for branch ids derived from incoming ones (RFC 3261 §16.11: deterministic).
fn fnv(parts: &[&str], seed: u64) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for p in parts {
        for b in p.bytes().chain([0xff]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x100_0000_01b3);
        }
    }
    h
}

/// What the SIP ladder shows of a message sent or received: its summary line, its
/// Call-ID and its CSeq ("1 INVITE"), empty where the message lacks them.
fn ladder_fields(msg: &Message) -> (String, String, String) {
    let call_id = msg.call_id().unwrap_or_default().to_string();
    let cseq = msg
        .cseq()
        .map(|c| format!("{} {}", c.seq, c.method))
        .unwrap_or_default();
    (msg.summary(), call_id, cseq)
}

impl Proxy {
    /// A proxy with an empty registrar. It has SDP rewritten by a media relay when
    /// `config.media.relay` names one (see [`super::media`] for which messages, which
    /// calls, and what happens when the relay refuses or does not answer); without one it
    /// never touches SDP.
    pub fn new(config: ProxyConfig) -> Proxy {
        let rng = SplitMix64::new(config.seed ^ 0x9e37_79b9_7f4a_7c15);
        let udp = config
            .listen
            .iter()
            .find(|(t, _)| *t == Transport::Udp)
            .or(config.listen.first())
            .map(|(_, a)| *a)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5060)));
        Proxy {
            media: MediaSessions::new(config.media.clone(), udp, config.seed),
            registrar: Registrar::new(config.registrar),
            config,
            servers: BTreeMap::new(),
            server_keys: BTreeMap::new(),
            clients: BTreeMap::new(),
            client_keys: BTreeMap::new(),
            timers: TimerIndex::default(),
            next_id: 1,
            rng,
            dialogs: BTreeMap::new(),
            dialog_timers: BTreeSet::new(),
            keepalive_due: BTreeSet::new(),
            keepalive_branches: BTreeMap::new(),
            conns: BTreeMap::new(),
            conn_by_peer: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: ProxyStats::default(),
        }
    }

    /// The registrar (bindings, lookups).
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// Counters.
    pub fn stats(&self) -> &ProxyStats {
        &self.stats
    }

    /// Live server and client transactions.
    pub fn transaction_count(&self) -> (usize, usize) {
        (self.servers.len(), self.clients.len())
    }

    /// Calls the media side keeps offer/answer state for (released with their dialogs).
    pub fn media_session_count(&self) -> usize {
        self.media.session_count()
    }

    /// Messages parked while the media relay is asked (or queued behind one that is).
    pub fn parked_count(&self) -> usize {
        self.media.parked_count()
    }

    /// The next message to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<ProxyEvent> {
        self.events.pop_front()
    }

    /// When [`Proxy::handle_timeout`] is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.timers.first(),
            self.registrar.poll_timeout(),
            self.dialog_timers.first().map(|e| e.0),
            self.keepalive_due.first().map(|e| e.0),
            self.media.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn next_u64(&mut self) -> u64 {
        // Deterministic from the configured seed.
        self.rng.next_u64()
    }

    fn new_id(&mut self) -> TxId {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn drop_msg(&mut self, reason: DropReason, from: SocketAddr) {
        *self.stats.dropped.entry(reason).or_default() += 1;
        self.events.push_back(ProxyEvent::Dropped { reason, from });
    }

    fn send(&mut self, flow: Flow, msg: &Message) -> Vec<u8> {
        // Content-Length is optional on UDP but mandatory on streams (RFC 3261 §18.3,
        // §20.14): a UDP request relayed to a TCP hop gets one.
        let bytes = if flow.transport.is_reliable() && !matches!(msg.content_length(), Ok(Some(_)))
        {
            let mut m = msg.clone();
            m.set("Content-Length", m.body().len().to_string());
            m.to_bytes()
        } else {
            msg.to_bytes()
        };
        let (summary, call_id, cseq) = ladder_fields(msg);
        self.events.push_back(ProxyEvent::MessageSent {
            flow,
            summary,
            call_id,
            cseq,
        });
        self.stats.sent += 1;
        self.transmits.push_back(Transmit::on(flow, bytes.clone()));
        bytes
    }

    fn resend(&mut self, flow: Flow, bytes: Vec<u8>) {
        self.stats.sent += 1;
        self.stats.retransmissions += 1;
        self.transmits.push_back(Transmit::on(flow, bytes));
    }

    /// A message, a closed connection or a transport error from the driver.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        match input {
            Input::Message { flow, bytes } => self.handle_message(now, flow, &bytes),
            Input::Closed(conn) => self.handle_closed(conn),
            Input::TransportError { flow, bytes } => self.handle_transport_error(now, flow, &bytes),
        }
        self.run_media(now);
    }

    fn handle_message(&mut self, now: Instant, flow: Flow, bytes: &[u8]) {
        if flow.transport == Transport::Udp && self.media.relay() == Some(flow.remote) {
            // the relay's (or dispatcher's) ng datagrams share the SIP UDP socket
            self.media
                .handle_ng(now, flow.remote, bytes, &mut self.events);
            return;
        }
        self.stats.received += 1;
        self.learn_connection(flow);
        let framing = if flow.transport.is_reliable() {
            Framing::Stream
        } else {
            Framing::Datagram
        };
        let msg = match Message::parse_with(bytes, &Limits::default(), framing) {
            Ok(m) => m,
            Err(e) => {
                self.reject_malformed(flow, bytes, &e);
                return;
            }
        };
        let (summary, call_id, cseq) = ladder_fields(&msg);
        self.events.push_back(ProxyEvent::MessageReceived {
            flow,
            summary,
            call_id,
            cseq,
        });
        if msg.is_request() {
            self.handle_request(now, flow, msg);
        } else {
            self.handle_response(now, flow, msg);
        }
    }

    /// A request that fails the checks is answered 400 (505 for another version) when a
    /// response can be addressed (RFC 3261 §16.3); anything else is dropped.
    fn reject_malformed(&mut self, flow: Flow, bytes: &[u8], e: &crate::sip::ParseError) {
        let lenient = Limits::default();
        let answered = (|| {
            let text = std::str::from_utf8(bytes).ok()?;
            let head = text.split("\r\n\r\n").next()?;
            let mut lines = head.split("\r\n");
            let start = lines.next()?.trim_start_matches(['\r', '\n']);
            if start.starts_with("SIP/") || start.starts_with("ACK ") {
                return None;
            }
            // Copy the fields a response needs, as they are.
            let mut req = Message::request(Method::Options, Uri::Other("x:x".into()));
            for l in lines {
                if let Some((n, v)) = l.split_once(':') {
                    let h = Header::new(n.trim(), v.trim());
                    if h.is("Via") || h.is("From") || h.is("To") || h.is("Call-ID") || h.is("CSeq")
                    {
                        req.push_header(h);
                    }
                }
            }
            let mut via = req.top_via().ok()?;
            let _ = lenient;
            // received/rport as for any request (RFC 3261 §18.2.1, RFC 3581 §4)
            via.params
                .set("received", Some(host_text(flow.remote.ip())));
            if via.rport().is_some() {
                via.params
                    .set("rport", Some(flow.remote.port().to_string()));
            }
            req.set_front("Via", via.to_string());
            let (code, reason) = match e {
                crate::sip::ParseError::Version(_) => (505, "Version Not Supported"),
                _ => (400, "Bad Request"),
            };
            let resp = Message::response_to(&req, code, reason, None);
            Some((self.response_dest(&via, flow), resp))
        })();
        match answered {
            Some((dest, resp)) => {
                self.send(dest, &resp);
            }
            None => self.drop_msg(DropReason::Unparseable, flow.remote),
        }
    }

    /// Fire everything due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        for (aor, contact) in self.registrar.handle_timeout(now) {
            self.events.push_back(ProxyEvent::RegistrationRemoved {
                aor,
                contact,
                reason: RemovalReason::Expired,
            });
        }
        while let Some((at, id, timer)) = self.timers.pop_due(now) {
            self.fire(now, at, id, timer);
        }
        self.expire_dialogs(now);
        self.send_due_keepalives(now);
        self.media.handle_timeout(now, &mut self.events);
        self.run_media(now);
    }
}
