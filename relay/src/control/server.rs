//! [`NgServer`]: a [`MediaRelay`] served over rtpengine's ng protocol — what a pinhole
//! proxy, a dispatcher, Kamailio's `rtpengine` module or `pinhole bench relay` talk to.
//!
//! # Commands
//!
//! | command | what the relay does |
//! |---|---|
//! | `ping` | `pong` |
//! | `offer`, `answer` | [`MediaRelay::signal`] on the SDP, `ok` with the rewritten SDP; a refused one is `error` with the [`MediaError`] as reason (a draining relay's reason contains `draining`, which a [`super::Dispatcher`] reads) |
//! | `delete` | [`MediaRelay::delete`] of the call (by `from-tag`, else the whole Call-ID); `error` when no session matched, as rtpengine answers |
//! | `query` | `ok` with `created` (seconds the oldest session has run), `totals` `{RTP: {packets, bytes, errors}}` over both directions (rtpengine's keys), and pinhole's `records`: each session's accounting record as a JSON line |
//! | `list` | `ok` with `calls` (at most `limit`, default 32, rtpengine's) |
//! | `drain` | [`MediaRelay::set_draining`]; `ok` |
//!
//! How the keys map: `received-from` (+ pinhole's `received-from-port`) is the party's
//! signalling source — the IP strict latching accepts media from — unless `flags` holds
//! `trust-address` (rtpengine's flag: trust the SDP address; the source is then left out
//! and the SDP address used). `ICE`: [`Ice::policy`]. `ice-priority`: the relay
//! candidate's priority. `user-agent`: the asymmetric-clients list. `replace`
//! (`origin`, `session-connection`) needs nothing: the rewrite always points the
//! session-level `c=` at the relay when every stream is relayed and never touches `o=`
//! (RFC 3264 §8: the version would have to move with every change, which an endpoint
//! whose re-offers pass through the same rewrite keeps consistent by itself).
//!
//! # Notices
//!
//! A session the relay ends on its own ([`MediaRelay::poll_notice`]: idle timeouts, a
//! port it could not bind) is reported with pinhole's `media-ended {call-id, from-tag,
//! reason}` to the address that last sent an offer or answer for the call (the proxy or
//! dispatcher), retransmitted by an [`NgClient`] until it is answered or times out.
//!
//! # Authentication
//!
//! With a secret ([`ServerConfig::secret`]) every request must carry a valid `auth` and
//! every reply and notice is signed ([`super::ng`]). A request that fails is answered
//! `authentication failed` and changes nothing.

use super::bencode::Value;
use super::client::{ClientConfig, ClientOutcome, NgClient};
use super::ng::{
    self, AUTH_FAILED, Extra, Ice, NgCommand, NgError, NgMessage, NgReply, OfferAnswer, ReplyCache,
};
use crate::Transmit;
use crate::media::{MediaError, MediaRelay, SignalRequest};
use crate::sdp::{Role, Sdp};
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Server settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The ng control address.
    pub listen: SocketAddr,
    /// The shared secret (proxies, dispatchers and this relay share one).
    pub secret: Option<Vec<u8>>,
    /// How long a `media-ended` notice is retransmitted before it is given up.
    pub notice_timeout: Duration,
    /// Seed of the notices' cookies.
    pub seed: u64,
}

impl ServerConfig {
    /// On `listen`, no secret, notices given up after 5 s.
    pub fn new(listen: SocketAddr) -> ServerConfig {
        ServerConfig {
            listen,
            secret: None,
            notice_timeout: Duration::from_secs(5),
            seed: 0,
        }
    }
}

/// What the control side did, for reports (the relay's own events come from
/// [`MediaRelay::poll_event`] through [`NgServer::relay_mut`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// A command was served.
    Served {
        /// Who sent it.
        from: SocketAddr,
        /// `offer`, `answer`, …
        command: &'static str,
        /// Its Call-ID, if it has one.
        call_id: Option<String>,
        /// `None` when the reply was `ok`/`pong`, else the error reason.
        error: Option<String>,
    },
    /// A request failed authentication.
    AuthFailed {
        /// Who sent it.
        from: SocketAddr,
    },
    /// A `media-ended` notice was sent.
    NoticeSent {
        /// To whom.
        to: SocketAddr,
        /// The call.
        call_id: String,
        /// Why the session ended.
        reason: String,
    },
    /// A notice was never answered.
    NoticeLost {
        /// The call.
        call_id: String,
    },
}

/// The relay behind its ng control socket (sans-IO).
#[derive(Debug)]
pub struct NgServer {
    config: ServerConfig,
    relay: MediaRelay,
    cache: ReplyCache,
    client: NgClient,
    /// The address that last signalled each call: where its notice goes.
    controllers: BTreeMap<String, SocketAddr>,
    notices: BTreeMap<super::RequestId, String>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<ServerEvent>,
}

impl NgServer {
    /// Serve `relay` on `config.listen`.
    pub fn new(config: ServerConfig, relay: MediaRelay) -> NgServer {
        let mut c = ClientConfig::new(config.listen);
        c.secret.clone_from(&config.secret);
        c.timeout = config.notice_timeout;
        c.seed = config.seed;
        NgServer {
            client: NgClient::new(c),
            cache: ReplyCache::new(ng::REPLY_CACHE_TTL),
            controllers: BTreeMap::new(),
            notices: BTreeMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            relay,
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// The relay.
    pub fn relay(&self) -> &MediaRelay {
        &self.relay
    }

    /// The relay, for its data path and its `poll_*` (commands, events, transmits).
    pub fn relay_mut(&mut self) -> &mut MediaRelay {
        &mut self.relay
    }

    fn secret(&self) -> Option<&[u8]> {
        self.config.secret.as_deref()
    }

    /// A datagram on the control socket.
    pub fn handle_control(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let Ok(received) = ng::decode(data, self.secret()) else {
            return; // not ng: nothing to answer with
        };
        match received.message {
            Ok(NgMessage::Reply(_)) => {
                // a controller answering a notice
                if let Some(o) = self.client.handle_datagram(now, from, data) {
                    self.client_outcome(o);
                }
                self.drain_client();
                return;
            }
            Err(NgError::Auth) if !is_request(data) => {
                let _ = self.client.handle_datagram(now, from, data); // counted as ignored
                return;
            }
            _ => {}
        }
        if let Some(cached) = self.cache.get(now, &received.cookie) {
            let bytes = cached.to_vec();
            self.transmits
                .push_back(Transmit::udp(self.config.listen, from, bytes));
            return;
        }
        let cookie = received.cookie;
        let (name, call_id, reply) = match received.message {
            Ok(NgMessage::Request(command)) => {
                let name = command.name();
                let call_id = call_id_of(&command);
                (name, call_id, self.serve(now, from, command))
            }
            Err(NgError::Auth) => {
                self.events.push_back(ServerEvent::AuthFailed { from });
                ("?", None, NgReply::error(AUTH_FAILED))
            }
            Err(e) => ("?", None, NgReply::error(e.to_string())),
            Ok(NgMessage::Reply(_)) => return,
        };
        let error = match &reply {
            NgReply::Error { reason } => Some(reason.clone()),
            _ => None,
        };
        self.events.push_back(ServerEvent::Served {
            from,
            command: name,
            call_id,
            error,
        });
        let bytes = ng::encode_reply(&cookie, &reply, self.secret());
        self.cache.insert(now, &cookie, bytes.clone());
        self.transmits
            .push_back(Transmit::udp(self.config.listen, from, bytes));
    }

    fn serve(&mut self, now: Instant, from: SocketAddr, command: NgCommand) -> NgReply {
        match command {
            NgCommand::Ping => NgReply::Pong,
            NgCommand::Offer(oa) => self.signal(now, from, &oa, Role::Offer),
            NgCommand::Answer(oa) => self.signal(now, from, &oa, Role::Answer),
            NgCommand::Delete(r) => {
                let ended = self.relay.delete(now, &r.call_id, r.from_tag.as_deref());
                if ended == 0 && r.from_tag.is_some() {
                    // a delete with the callee's tag as from-tag (a BYE from the callee
                    // through a proxy that does not swap tags) still ends the call
                    if self.relay.delete(now, &r.call_id, r.to_tag.as_deref()) == 0 {
                        return NgReply::error("Call-ID not found or tags didn't match");
                    }
                } else if ended == 0 {
                    return NgReply::error("Call-ID not found");
                }
                if self.relay.query(now, &r.call_id).is_empty() {
                    self.controllers.remove(&r.call_id);
                }
                NgReply::ok()
            }
            NgCommand::Query(r) => {
                let records = self.relay.query(now, &r.call_id);
                if records.is_empty() {
                    return NgReply::error("Call-ID not found");
                }
                query_reply(&records)
            }
            NgCommand::List { limit } => {
                let calls = self
                    .relay
                    .calls()
                    .into_iter()
                    .take(usize::try_from(limit.unwrap_or(32)).unwrap_or(usize::MAX))
                    .map(|c| Value::text(&c))
                    .collect();
                let mut extra = Extra::new();
                extra.insert(b"calls".to_vec(), Value::List(calls));
                NgReply::Ok { sdp: None, extra }
            }
            NgCommand::Drain => {
                self.relay.set_draining(true);
                NgReply::ok()
            }
            other => NgReply::error(format!("`{}` is not served by a relay", other.name())),
        }
    }

    fn signal(&mut self, now: Instant, from: SocketAddr, oa: &OfferAnswer, role: Role) -> NgReply {
        let mut sdp = match Sdp::parse(&oa.sdp) {
            Ok(s) => s,
            Err(e) => return NgReply::error(format!("invalid SDP: {e}")),
        };
        let trust_address = oa.flags.iter().any(|f| {
            f.eq_ignore_ascii_case("trust-address") || f.eq_ignore_ascii_case("trust address")
        });
        let received_from = oa
            .received_from
            .filter(|_| !trust_address)
            .map(|ip| SocketAddr::new(ip, oa.received_from_port.unwrap_or(0)));
        let req = SignalRequest {
            call_id: &oa.call_id,
            from_tag: &oa.from_tag,
            to_tag: oa.to_tag.as_deref(),
            role,
            received_from,
            user_agent: oa.user_agent.as_deref(),
            ice: Ice::policy(oa.ice.as_ref()),
            ice_priority: oa.ice_priority.unwrap_or_default(),
        };
        match self.relay.signal(now, &req, &mut sdp) {
            Ok(_) => {
                self.controllers.insert(oa.call_id.clone(), from);
                NgReply::Ok {
                    sdp: Some(sdp.to_bytes()),
                    extra: Extra::new(),
                }
            }
            Err(e @ MediaError::Draining) => NgReply::error(format!("{e} ({})", super::DRAINING)),
            Err(e) => NgReply::error(e.to_string()),
        }
    }

    fn client_outcome(&mut self, o: ClientOutcome) {
        match o {
            ClientOutcome::Reply { id, .. } => {
                self.notices.remove(&id);
            }
            ClientOutcome::TimedOut(id) => {
                if let Some(call_id) = self.notices.remove(&id) {
                    self.events.push_back(ServerEvent::NoticeLost { call_id });
                }
            }
            ClientOutcome::Request { .. } => {}
        }
    }

    fn drain_client(&mut self) {
        while let Some(o) = self.client.poll_outcome() {
            self.client_outcome(o);
        }
        while let Some(t) = self.client.poll_transmit() {
            self.transmits.push_back(t);
        }
    }

    /// Send the notices of sessions the relay ended (call after any relay input or
    /// timeout; [`NgServer::handle_timeout`] does).
    pub fn send_notices(&mut self, now: Instant) {
        while let Some(n) = self.relay.poll_notice() {
            let Some(to) = self.controllers.remove(&n.call_id) else {
                continue; // signalled by nobody we can tell: nothing to send
            };
            let reason = n.reason.as_str().to_string();
            let command = NgCommand::MediaEnded {
                call_id: n.call_id.clone(),
                from_tag: n.from_tag,
                reason: reason.clone(),
            };
            let id = self.client.send(now, to, &command);
            self.notices.insert(id, n.call_id.clone());
            self.events.push_back(ServerEvent::NoticeSent {
                to,
                call_id: n.call_id,
                reason,
            });
        }
        self.drain_client();
    }

    /// Ends every session (the relay is shutting down) and tells each call's controller
    /// with `media-ended` (reason `relay-stopped`), sent once: a stopping relay does not
    /// stay to retransmit. Returns how many calls ended.
    pub fn stop_all(&mut self, now: Instant) -> usize {
        let calls = self.relay.calls();
        for call_id in &calls {
            let from_tag = self
                .relay
                .query(now, call_id)
                .first()
                .map(|r| r.from_tag.clone())
                .unwrap_or_default();
            self.relay.delete(now, call_id, None);
            if let Some(to) = self.controllers.remove(call_id) {
                let command = NgCommand::MediaEnded {
                    call_id: call_id.clone(),
                    from_tag,
                    reason: "relay-stopped".to_string(),
                };
                let id = self.client.send(now, to, &command);
                self.client.cancel(id);
                self.events.push_back(ServerEvent::NoticeSent {
                    to,
                    call_id: call_id.clone(),
                    reason: "relay-stopped".to_string(),
                });
            }
        }
        self.drain_client();
        calls.len()
    }

    /// The relay's timers (idle timeouts), the notices' retransmissions, the reply cache.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.relay.handle_timeout(now);
        self.client.handle_timeout(now);
        self.cache.expire(now);
        self.send_notices(now);
    }

    /// When [`NgServer::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.relay.poll_timeout(),
            self.client.poll_timeout(),
            self.cache.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The next control datagram to send (replies, notices). Media comes from
    /// [`MediaRelay::handle_packet`]'s verdicts, or [`MediaRelay::poll_transmit`].
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next control event.
    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }
}

fn is_request(data: &[u8]) -> bool {
    super::bencode::parse_ng(data)
        .ok()
        .is_some_and(|(_, v)| v.get("command").is_some())
}

fn call_id_of(c: &NgCommand) -> Option<String> {
    match c {
        NgCommand::Offer(oa) | NgCommand::Answer(oa) => Some(oa.call_id.clone()),
        NgCommand::Delete(r) | NgCommand::Query(r) => Some(r.call_id.clone()),
        NgCommand::MediaEnded { call_id, .. } => Some(call_id.clone()),
        _ => None,
    }
}

fn int(v: u64) -> Value {
    Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// rtpengine's `query` keys from the accounting records, plus pinhole's `records`.
fn query_reply(records: &[crate::media::Accounting]) -> NgReply {
    let (mut packets, mut bytes, mut errors) = (0u64, 0u64, 0u64);
    for r in records {
        for s in &r.streams {
            for d in &s.directions {
                packets += d.packets;
                bytes += d.bytes;
                errors += d.drops.total();
            }
        }
    }
    let created = records.iter().map(|r| r.duration).max().unwrap_or_default();
    let mut rtp = BTreeMap::new();
    rtp.insert(b"packets".to_vec(), int(packets));
    rtp.insert(b"bytes".to_vec(), int(bytes));
    rtp.insert(b"errors".to_vec(), int(errors));
    let mut totals = BTreeMap::new();
    totals.insert(b"RTP".to_vec(), Value::Dict(rtp));
    let mut extra = Extra::new();
    extra.insert(b"created".to_vec(), int(created.as_secs()));
    extra.insert(b"totals".to_vec(), Value::Dict(totals));
    extra.insert(
        b"records".to_vec(),
        Value::List(
            records
                .iter()
                .map(|r| Value::text(&r.to_json_line()))
                .collect(),
        ),
    );
    NgReply::Ok { sdp: None, extra }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::control::ng::{CallRef, decode, encode_request};
    use crate::media::{RelayConfig, Verdict};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const NG: &str = "203.0.113.5:2223";
    const PROXY: &str = "203.0.113.1:5060";
    const KAMAILIO_OFFER: &[u8] = b"0_4669_2 d8:supportsl10:load limite3:sdp129:v=0\r\no=alice 53655765 2353687637 IN IP4 10.0.1.10\r\ns=-\r\nc=IN IP4 10.0.1.10\r\nt=0 0\r\nm=audio 6000 RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\n7:replacel6:origin18:session-connectione7:call-id16:1-4723@127.0.0.113:received-froml3:IP412:203.0.113.11e8:from-tag8:4723uac17:command5:offere";

    fn server(secret: Option<&[u8]>) -> (NgServer, Instant) {
        let mut rc = RelayConfig::new(vec!["203.0.113.5".parse().unwrap()], 40000..=40099);
        rc.idle_timeout_before_media = Duration::from_secs(10);
        let relay = MediaRelay::new(rc).unwrap();
        let mut c = ServerConfig::new(addr(NG));
        c.secret = secret.map(<[u8]>::to_vec);
        #[allow(clippy::disallowed_methods)] // a test's clock origin
        let now = Instant::now();
        (NgServer::new(c, relay), now)
    }

    fn ask(s: &mut NgServer, now: Instant, datagram: &[u8], secret: Option<&[u8]>) -> NgReply {
        s.handle_control(now, addr(PROXY), datagram);
        let t = s.poll_transmit().expect("a reply");
        assert_eq!((t.from, t.to), (addr(NG), addr(PROXY)));
        match decode(&t.data, secret).unwrap().message.unwrap() {
            NgMessage::Reply(r) => r,
            other => panic!("{other:?}"),
        }
    }

    fn sdp_port(reply: &NgReply) -> (String, u16) {
        let NgReply::Ok { sdp: Some(sdp), .. } = reply else {
            panic!("{reply:?}")
        };
        let sdp = Sdp::parse(sdp).unwrap();
        let c = sdp.effective_connection(0).unwrap().ip().unwrap();
        (c.to_string(), sdp.media()[0].media_line().port)
    }

    #[test]
    fn a_kamailio_call_is_relayed_and_latched_to_the_signalling_source() {
        let (mut s, now) = server(None);
        let offer = ask(&mut s, now, KAMAILIO_OFFER, None);
        let (ip, callee_facing) = sdp_port(&offer);
        assert_eq!(ip, "203.0.113.5");
        let answer = NgCommand::Answer(OfferAnswer {
            call_id: "1-4723@127.0.0.1".into(),
            from_tag: "4723uac1".into(),
            to_tag: Some("4698uas".into()),
            sdp: b"v=0\r\no=bob 1 1 IN IP4 10.0.2.20\r\ns=-\r\nc=IN IP4 10.0.2.20\r\nt=0 0\r\nm=audio 6100 RTP/AVP 8\r\n".to_vec(),
            received_from: Some("203.0.113.12".parse().unwrap()),
            ..OfferAnswer::default()
        });
        let answer = ask(&mut s, now, &encode_request(b"k2", &answer, None), None);
        let (_, caller_facing) = sdp_port(&answer);
        let mut rtp = vec![0x80, 8, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        rtp.extend([0xd5; 160]);
        // a sprayer from another IP is not latched
        let sprayer = addr("198.51.100.66:4000");
        let v = s.relay_mut().handle_packet(
            now,
            addr(&format!("203.0.113.5:{caller_facing}")),
            sprayer,
            &rtp,
        );
        assert!(matches!(v, Verdict::Drop(_)), "{v:?}");
        // the caller's NAT (its signalling source IP, another port) is
        let alice = addr("203.0.113.11:31000");
        let bob = addr("203.0.113.12:32000");
        let v = s.relay_mut().handle_packet(
            now,
            addr(&format!("203.0.113.5:{caller_facing}")),
            alice,
            &rtp,
        );
        assert!(matches!(v, Verdict::Forward { .. }), "{v:?}");
        let v = s.relay_mut().handle_packet(
            now,
            addr(&format!("203.0.113.5:{callee_facing}")),
            bob,
            &rtp,
        );
        assert_eq!(
            v,
            Verdict::Forward {
                from: addr(&format!("203.0.113.5:{caller_facing}")),
                to: alice
            }
        );
        let q = ask(
            &mut s,
            now,
            &encode_request(
                b"k3",
                &NgCommand::Query(CallRef {
                    call_id: "1-4723@127.0.0.1".into(),
                    ..CallRef::default()
                }),
                None,
            ),
            None,
        );
        let NgReply::Ok { extra, .. } = &q else {
            panic!("{q:?}")
        };
        let totals = extra.get(b"totals".as_slice()).unwrap();
        assert_eq!(
            totals.get("RTP").and_then(|r| r.get("packets")),
            Some(&Value::Int(2))
        );
        let list = ask(
            &mut s,
            now,
            &encode_request(b"k4", &NgCommand::List { limit: None }, None),
            None,
        );
        let NgReply::Ok { extra, .. } = list else {
            panic!()
        };
        assert_eq!(
            extra.get(b"calls".as_slice()),
            Some(&Value::List(vec![Value::text("1-4723@127.0.0.1")]))
        );
        let del = NgCommand::Delete(CallRef {
            call_id: "1-4723@127.0.0.1".into(),
            from_tag: Some("4723uac1".into()),
            ..CallRef::default()
        });
        assert_eq!(
            ask(&mut s, now, &encode_request(b"k5", &del, None), None),
            NgReply::ok()
        );
        assert_eq!(s.relay().session_count(), 0);
        assert!(matches!(
            ask(&mut s, now, &encode_request(b"k6", &del, None), None),
            NgReply::Error { .. }
        ));
        // a retransmitted offer gets the cached reply, no second session
        assert_eq!(ask(&mut s, now, KAMAILIO_OFFER, None), offer);
        assert_eq!(s.relay().session_count(), 0);
    }

    #[test]
    fn idle_sessions_are_reported_to_their_controller() {
        let (mut s, now) = server(Some(b"k"));
        let mut d = KAMAILIO_OFFER.to_vec();
        // re-sign Kamailio's offer with the secret
        let r = decode(&d, None).unwrap();
        let Ok(NgMessage::Request(c)) = r.message else {
            panic!()
        };
        d = encode_request(&r.cookie, &c, Some(b"k"));
        assert!(matches!(
            ask(&mut s, now, &d, Some(b"k")),
            NgReply::Ok { .. }
        ));
        let later = now + Duration::from_secs(11);
        assert!(s.poll_timeout().unwrap() <= later);
        s.handle_timeout(later);
        let t = s.poll_transmit().expect("a notice");
        assert_eq!(t.to, addr(PROXY));
        let n = decode(&t.data, Some(b"k")).unwrap();
        assert_eq!(
            n.message,
            Ok(NgMessage::Request(NgCommand::MediaEnded {
                call_id: "1-4723@127.0.0.1".into(),
                from_tag: "4723uac1".into(),
                reason: "idle_before_media".into()
            }))
        );
        assert!(matches!(s.poll_event(), Some(ServerEvent::Served { .. })));
        assert!(matches!(
            s.poll_event(),
            Some(ServerEvent::NoticeSent { .. })
        ));
        // the proxy answers: nothing retransmitted afterwards
        let ok = ng::encode_reply(&n.cookie, &NgReply::ok(), Some(b"k"));
        s.handle_control(later, addr(PROXY), &ok);
        s.handle_timeout(later + Duration::from_secs(1));
        assert!(s.poll_transmit().is_none());
    }

    #[test]
    fn wrong_secret_changes_nothing_and_draining_refuses_new_calls() {
        let (mut s, now) = server(Some(b"k"));
        let r = ask(&mut s, now, KAMAILIO_OFFER, Some(b"k"));
        assert_eq!(r, NgReply::error(AUTH_FAILED));
        assert_eq!(s.relay().session_count(), 0);
        let drain = encode_request(b"d", &NgCommand::Drain, Some(b"k"));
        assert_eq!(ask(&mut s, now, &drain, Some(b"k")), NgReply::ok());
        let r = decode(KAMAILIO_OFFER, None).unwrap();
        let Ok(NgMessage::Request(c)) = r.message else {
            panic!()
        };
        let signed = encode_request(b"again", &c, Some(b"k"));
        let NgReply::Error { reason } = ask(&mut s, now, &signed, Some(b"k")) else {
            panic!()
        };
        assert!(reason.contains(super::super::DRAINING), "{reason}");
        assert!(s.relay().is_drained());
    }
}
