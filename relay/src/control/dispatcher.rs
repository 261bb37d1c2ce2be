//! [`Dispatcher`]: several media relays behind one ng address (MediaProxy's dispatcher).
//!
//! A proxy talks to the dispatcher exactly as it would to one relay (the ng protocol of
//! [`super::ng`]); the dispatcher picks a relay for each new call, forwards the call's
//! commands to it, and hands the relay's replies back under the proxy's cookie.
//!
//! # Choosing a relay
//!
//! An `offer` for a Call-ID the dispatcher does not know starts a call: it goes to the
//! relay the offer names in pinhole's `relay` key (`"IP:PORT"`, a preferred relay) when
//! that relay is alive, else to one drawn at random (seeded) among the alive relays. Every
//! later command of the call (`offer` re-offers, `answer`, `query`, `delete`) goes to the
//! same relay. A relay that refuses a new call because it drains (`error-reason`
//! containing [`DRAINING`]) or does not answer within [`DispatcherConfig::relay_timeout`]
//! is skipped and the offer tried on the next relay, until every relay was tried: the
//! proxy sees one answer, and a relay that died takes no new call. With no relay left
//! the proxy gets `{result: error, error-reason: "no media relay available"}` (and answers
//! its caller 503).
//!
//! # Health
//!
//! Every relay is sent `ping` each [`DispatcherConfig::health_interval`]. A relay is
//! [`RelayState::Dead`] after [`DispatcherConfig::dead_after`] pings in a row went
//! unanswered (or at once when a forwarded command timed out); its running calls are lost:
//! each call's proxy is sent `media-ended` with reason `relay-lost`, so that the proxy ends
//! the dialog rather than leave both parties talking into a dead port. A dead relay that
//! answers a ping again is alive again (it restarted; it has no calls). A relay that
//! refused an offer as draining is [`RelayState::Draining`] until it is dead (it exits
//! after its last call, MediaProxy's graceful shutdown) — it keeps its running calls.
//!
//! # Notices
//!
//! A relay's own `media-ended` (idle timeout) is answered `ok` and forwarded to the
//! proxy of that call.
//!
//! # Authentication
//!
//! One shared secret ([`DispatcherConfig::secret`]) signs and verifies every message on
//! both sides: proxies → dispatcher and dispatcher → relays (see [`super::ng`]).

use super::client::{ClientConfig, ClientOutcome, NgClient, RequestId};
use super::ng::{self, AUTH_FAILED, NgCommand, NgError, NgMessage, NgReply, ReplyCache};
use crate::Transmit;
use crate::rng::SplitMix64;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The word in a relay's `error-reason` that says it takes no new session.
pub const DRAINING: &str = "draining";

/// The `error-reason` when no relay can take a new call.
pub const NO_RELAY: &str = "no media relay available";

/// Dispatcher settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DispatcherConfig {
    /// The dispatcher's ng address (proxies send here; relays are sent from here).
    pub listen: SocketAddr,
    /// The relays' ng addresses.
    pub relays: Vec<SocketAddr>,
    /// The shared secret of every control channel it is on.
    pub secret: Option<Vec<u8>>,
    /// How often each relay is pinged.
    pub health_interval: Duration,
    /// Pings in a row without a reply after which a relay is dead.
    pub dead_after: u32,
    /// How long a command forwarded to a relay may wait for its reply; below the proxies'
    /// own timeout so that a failover fits in their wait.
    pub relay_timeout: Duration,
    /// Seed of the relay choice and the cookies.
    pub seed: u64,
}

impl DispatcherConfig {
    /// `listen` over `relays`: no secret, pings every second, dead after 3 missed, 1 s
    /// relay timeout (proxies wait 2 s), seed 0.
    pub fn new(listen: SocketAddr, relays: Vec<SocketAddr>) -> DispatcherConfig {
        DispatcherConfig {
            listen,
            relays,
            secret: None,
            health_interval: Duration::from_secs(1),
            dead_after: 3,
            relay_timeout: Duration::from_secs(1),
            seed: 0,
        }
    }
}

/// What the dispatcher thinks of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayState {
    /// Answers pings, takes new calls.
    Alive,
    /// Refused a new call as draining: keeps its calls, takes no new one.
    Draining,
    /// Missed its pings (or a command): takes nothing; its calls were reported lost.
    Dead,
}

/// What happened, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DispatcherEvent {
    /// A relay answered its first ping, or again after it was dead.
    RelayUp {
        /// The relay's ng address.
        relay: SocketAddr,
    },
    /// A relay refused a new call as draining.
    RelayDraining {
        /// The relay.
        relay: SocketAddr,
    },
    /// A relay is dead; its calls were reported lost to their proxies.
    RelayDown {
        /// The relay.
        relay: SocketAddr,
        /// Calls lost with it.
        calls_lost: usize,
    },
    /// A new call was placed on a relay.
    Assigned {
        /// Call-ID.
        call_id: String,
        /// The relay.
        relay: SocketAddr,
        /// Relays tried before it (draining or silent).
        skipped: usize,
    },
    /// A new call found no relay.
    Refused {
        /// Call-ID.
        call_id: String,
    },
    /// A request was refused for its `auth`.
    AuthFailed {
        /// Who sent it.
        from: SocketAddr,
    },
}

#[derive(Debug, Clone)]
struct Relay {
    addr: SocketAddr,
    state: RelayState,
    /// Whether it ever answered (the first pong is an event).
    seen: bool,
    missed: u32,
    ping: Option<RequestId>,
    next_ping: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Call {
    relay: usize,
    /// The proxy that controls it.
    controller: SocketAddr,
    from_tag: String,
}

/// A proxy's command on its way through a relay.
#[derive(Debug, Clone)]
struct Forwarded {
    proxy: SocketAddr,
    cookie: Vec<u8>,
    command: NgCommand,
    relay: usize,
    /// For a new call: the relays tried so far.
    tried: Vec<usize>,
    new_call: bool,
}

/// The dispatcher core (sans-IO; one UDP socket at [`DispatcherConfig::listen`]).
#[derive(Debug)]
pub struct Dispatcher {
    config: DispatcherConfig,
    client: NgClient,
    served: ReplyCache,
    relays: Vec<Relay>,
    calls: BTreeMap<String, Call>,
    forwarded: BTreeMap<RequestId, Forwarded>,
    /// Notices sent to proxies, and pings: ids not to treat as forwarded commands.
    rng: SplitMix64,
    transmits: VecDeque<Transmit>,
    events: VecDeque<DispatcherEvent>,
}

impl Dispatcher {
    /// A dispatcher; the first pings go out at the first [`Dispatcher::handle_timeout`]
    /// (due at once).
    pub fn new(config: DispatcherConfig, now: Instant) -> Dispatcher {
        let mut client_config = ClientConfig::new(config.listen);
        client_config.secret.clone_from(&config.secret);
        client_config.timeout = config.relay_timeout;
        client_config.first_retransmit = config.relay_timeout / 4;
        client_config.seed = config.seed;
        let relays = config
            .relays
            .iter()
            .map(|&addr| Relay {
                addr,
                state: RelayState::Alive,
                seen: false,
                missed: 0,
                ping: None,
                next_ping: Some(now),
            })
            .collect();
        Dispatcher {
            client: NgClient::new(client_config),
            served: ReplyCache::new(ng::REPLY_CACHE_TTL),
            relays,
            calls: BTreeMap::new(),
            forwarded: BTreeMap::new(),
            rng: SplitMix64::new(config.seed ^ 0x6469_7370),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            config,
        }
    }

    /// The relays and their states, in configuration order.
    pub fn relays(&self) -> Vec<(SocketAddr, RelayState)> {
        self.relays.iter().map(|r| (r.addr, r.state)).collect()
    }

    /// Running calls, and the relay each is on.
    pub fn calls(&self) -> Vec<(String, SocketAddr)> {
        self.calls
            .iter()
            .map(|(id, c)| (id.clone(), self.relays[c.relay].addr))
            .collect()
    }

    fn secret(&self) -> Option<&[u8]> {
        self.config.secret.as_deref()
    }

    fn relay_index(&self, addr: SocketAddr) -> Option<usize> {
        self.relays.iter().position(|r| r.addr == addr)
    }

    /// A datagram that arrived on the dispatcher's socket from `from`.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        // Replies (to forwarded commands, pings and notices) and the relays' own requests
        // (media-ended) are the client's; requests from anyone else are proxies'.
        let is_reply = matches!(
            ng::decode(data, None),
            Ok(ng::Received {
                message: Ok(NgMessage::Reply(_)),
                ..
            })
        );
        if is_reply || self.relay_index(from).is_some() {
            if let Some(o) = self.client.handle_datagram(now, from, data) {
                self.outcome(now, o);
            }
        } else {
            self.proxy_request(now, from, data);
        }
        self.drain_client(now);
    }

    fn answer(&mut self, now: Instant, to: SocketAddr, cookie: &[u8], reply: &NgReply) {
        let bytes = ng::encode_reply(cookie, reply, self.secret());
        self.served.insert(now, cookie, bytes.clone());
        self.transmits
            .push_back(Transmit::udp(self.config.listen, to, bytes));
    }

    fn proxy_request(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let Ok(received) = ng::decode(data, self.secret()) else {
            return; // not ng: no cookie to answer with
        };
        if let Some(cached) = self.served.get(now, &received.cookie) {
            let bytes = cached.to_vec();
            self.transmits
                .push_back(Transmit::udp(self.config.listen, from, bytes));
            return;
        }
        let cookie = received.cookie;
        let command = match received.message {
            Ok(NgMessage::Request(c)) => c,
            Ok(NgMessage::Reply(_)) => return,
            Err(NgError::Auth) => {
                self.events.push_back(DispatcherEvent::AuthFailed { from });
                return self.answer(now, from, &cookie, &NgReply::error(AUTH_FAILED));
            }
            Err(e) => return self.answer(now, from, &cookie, &NgReply::error(e.to_string())),
        };
        let call_id = match &command {
            NgCommand::Ping => return self.answer(now, from, &cookie, &NgReply::Pong),
            NgCommand::List { limit } => {
                let limit = limit.unwrap_or(32) as usize;
                let calls = self
                    .calls
                    .keys()
                    .take(limit)
                    .map(|c| super::bencode::Value::text(c))
                    .collect();
                let mut reply = NgReply::ok();
                if let NgReply::Ok { extra, .. } = &mut reply {
                    extra.insert(b"calls".to_vec(), super::bencode::Value::List(calls));
                }
                return self.answer(now, from, &cookie, &reply);
            }
            NgCommand::Offer(oa) | NgCommand::Answer(oa) => oa.call_id.clone(),
            NgCommand::Delete(r) | NgCommand::Query(r) => r.call_id.clone(),
            other => {
                let reason = format!("`{}` is not served by a dispatcher", other.name());
                return self.answer(now, from, &cookie, &NgReply::error(reason));
            }
        };
        let (relay, new_call) = match self.calls.get_mut(&call_id) {
            Some(call) => {
                call.controller = from;
                (Some(call.relay), false)
            }
            None if matches!(command, NgCommand::Offer(_)) => (self.pick(&command, &[]), true),
            None => {
                let reason = format!("unknown call-id {call_id}");
                return self.answer(now, from, &cookie, &NgReply::error(reason));
            }
        };
        let Some(relay) = relay else {
            self.events.push_back(DispatcherEvent::Refused { call_id });
            return self.answer(now, from, &cookie, &NgReply::error(NO_RELAY));
        };
        self.forward(
            now,
            Forwarded {
                proxy: from,
                cookie,
                command,
                relay,
                tried: vec![relay],
                new_call,
            },
        );
    }

    /// A relay for a new call: the preferred one when alive, else a random alive one not
    /// tried yet.
    fn pick(&mut self, command: &NgCommand, tried: &[usize]) -> Option<usize> {
        let usable = |i: usize, r: &Relay| r.state == RelayState::Alive && !tried.contains(&i);
        if let NgCommand::Offer(oa) = command
            && let Some(preferred) = oa
                .extra
                .get(b"relay".as_slice())
                .and_then(super::bencode::Value::as_str)
                .and_then(|s| s.parse::<SocketAddr>().ok())
            && let Some(i) = self.relay_index(preferred)
            && usable(i, &self.relays[i])
        {
            return Some(i);
        }
        let alive: Vec<usize> = (0..self.relays.len())
            .filter(|&i| usable(i, &self.relays[i]))
            .collect();
        if alive.is_empty() {
            return None;
        }
        Some(alive[(self.rng.next_u64() % alive.len() as u64) as usize])
    }

    fn forward(&mut self, now: Instant, f: Forwarded) {
        let id = self.client.send(now, self.relays[f.relay].addr, &f.command);
        self.forwarded.insert(id, f);
    }

    fn outcome(&mut self, now: Instant, outcome: ClientOutcome) {
        match outcome {
            ClientOutcome::Reply { id, reply } => {
                if let Some(r) = self.relays.iter_mut().find(|r| r.ping == Some(id)) {
                    r.ping = None;
                    r.missed = 0;
                    if !r.seen || r.state == RelayState::Dead {
                        r.seen = true;
                        r.state = RelayState::Alive;
                        let relay = r.addr;
                        self.events.push_back(DispatcherEvent::RelayUp { relay });
                    }
                    return;
                }
                if let Some(f) = self.forwarded.remove(&id) {
                    self.relay_replied(now, f, reply);
                }
            }
            ClientOutcome::TimedOut(id) => {
                if let Some(i) = self.relays.iter().position(|r| r.ping == Some(id)) {
                    self.relays[i].ping = None;
                    self.relays[i].missed += 1;
                    if self.relays[i].missed >= self.config.dead_after {
                        self.relay_dead(now, i);
                    }
                    return;
                }
                if let Some(f) = self.forwarded.remove(&id) {
                    self.relay_dead(now, f.relay);
                    if f.new_call {
                        self.retry(now, f);
                    } else {
                        let reply = NgReply::error("media relay did not answer");
                        self.answer(now, f.proxy, &f.cookie, &reply);
                    }
                }
            }
            ClientOutcome::Request { from, command } => {
                // A relay's media-ended: pass it to the call's proxy.
                if let NgCommand::MediaEnded { call_id, .. } = &command
                    && let Some(call) = self.calls.get(call_id)
                    && self.relays[call.relay].addr == from
                {
                    let controller = call.controller;
                    self.calls.remove(call_id);
                    let _ = self.client.send(now, controller, &command);
                }
            }
        }
    }

    fn relay_replied(&mut self, now: Instant, f: Forwarded, reply: NgReply) {
        if f.new_call
            && let NgReply::Error { reason } = &reply
            && reason.contains(DRAINING)
        {
            let r = &mut self.relays[f.relay];
            if r.state == RelayState::Alive {
                r.state = RelayState::Draining;
                let relay = r.addr;
                self.events
                    .push_back(DispatcherEvent::RelayDraining { relay });
            }
            return self.retry(now, f);
        }
        match (&f.command, &reply) {
            (NgCommand::Offer(oa), NgReply::Ok { .. }) if f.new_call => {
                self.calls.insert(
                    oa.call_id.clone(),
                    Call {
                        relay: f.relay,
                        controller: f.proxy,
                        from_tag: oa.from_tag.clone(),
                    },
                );
                self.events.push_back(DispatcherEvent::Assigned {
                    call_id: oa.call_id.clone(),
                    relay: self.relays[f.relay].addr,
                    skipped: f.tried.len() - 1,
                });
            }
            (NgCommand::Delete(r), NgReply::Ok { .. }) => {
                // a delete of one party (to-tag only) still ends the call for the relay
                self.calls.remove(&r.call_id);
            }
            _ => {}
        }
        self.answer(now, f.proxy, &f.cookie, &reply);
    }

    /// Try a new call's offer on the next relay.
    fn retry(&mut self, now: Instant, mut f: Forwarded) {
        match self.pick(&f.command, &f.tried) {
            Some(next) => {
                f.relay = next;
                f.tried.push(next);
                self.forward(now, f);
            }
            None => {
                if let NgCommand::Offer(oa) = &f.command {
                    let call_id = oa.call_id.clone();
                    self.events.push_back(DispatcherEvent::Refused { call_id });
                }
                self.answer(now, f.proxy, &f.cookie, &NgReply::error(NO_RELAY));
            }
        }
    }

    fn relay_dead(&mut self, now: Instant, i: usize) {
        if self.relays[i].state == RelayState::Dead {
            return;
        }
        self.relays[i].state = RelayState::Dead;
        let lost: Vec<(String, Call)> = self
            .calls
            .iter()
            .filter(|(_, c)| c.relay == i)
            .map(|(id, c)| (id.clone(), c.clone()))
            .collect();
        for (call_id, call) in &lost {
            self.calls.remove(call_id);
            let notice = NgCommand::MediaEnded {
                call_id: call_id.clone(),
                from_tag: call.from_tag.clone(),
                reason: "relay-lost".to_string(),
            };
            let _ = self.client.send(now, call.controller, &notice);
        }
        self.events.push_back(DispatcherEvent::RelayDown {
            relay: self.relays[i].addr,
            calls_lost: lost.len(),
        });
    }

    fn drain_client(&mut self, now: Instant) {
        while let Some(o) = self.client.poll_outcome() {
            self.outcome(now, o);
        }
        while let Some(t) = self.client.poll_transmit() {
            self.transmits.push_back(t);
        }
    }

    /// Send pings that are due, retransmit, give up what is late.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.served.expire(now);
        self.client.handle_timeout(now);
        self.drain_client(now);
        for i in 0..self.relays.len() {
            let r = &self.relays[i];
            if r.ping.is_none() && r.next_ping.is_some_and(|t| t <= now) {
                let addr = r.addr;
                let id = self.client.send(now, addr, &NgCommand::Ping);
                let r = &mut self.relays[i];
                r.ping = Some(id);
                r.next_ping = Some(now + self.config.health_interval);
            }
        }
        self.drain_client(now);
    }

    /// When [`Dispatcher::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.relays
            .iter()
            .filter(|r| r.ping.is_none())
            .filter_map(|r| r.next_ping)
            .chain(self.client.poll_timeout())
            .chain(self.served.poll_timeout())
            .min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<DispatcherEvent> {
        self.events.pop_front()
    }
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::control::ng::{CallRef, OfferAnswer, decode, encode_reply, encode_request};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const D: &str = "203.0.113.9:2223";
    const R1: &str = "203.0.113.5:2223";
    const R2: &str = "203.0.113.6:2223";
    const PROXY: &str = "203.0.113.1:5060";

    fn offer(call: &str) -> NgCommand {
        NgCommand::Offer(OfferAnswer {
            call_id: call.into(),
            from_tag: "ft".into(),
            sdp: b"v=0\r\n".to_vec(),
            ..OfferAnswer::default()
        })
    }

    /// The test world: a dispatcher over two relays; a relay answers per `behaviour`.
    struct World {
        d: Dispatcher,
        now: Instant,
        secret: Option<Vec<u8>>,
        /// relay address -> (answers?, draining?)
        up: BTreeMap<SocketAddr, (bool, bool)>,
        /// replies the proxy got, by cookie
        proxy_got: Vec<(Vec<u8>, NgReply)>,
        /// requests the proxy got (media-ended)
        proxy_requests: Vec<NgCommand>,
        /// requests each relay got
        relay_got: Vec<(SocketAddr, NgCommand)>,
    }

    impl World {
        fn new(secret: Option<&[u8]>) -> World {
            let mut c = DispatcherConfig::new(addr(D), vec![addr(R1), addr(R2)]);
            c.secret = secret.map(<[u8]>::to_vec);
            c.seed = 3;
            #[allow(clippy::disallowed_methods)] // a test's clock origin
            let now = Instant::now();
            let mut w = World {
                d: Dispatcher::new(c, now),
                now,
                secret: secret.map(<[u8]>::to_vec),
                up: [(addr(R1), (true, false)), (addr(R2), (true, false))].into(),
                proxy_got: Vec::new(),
                proxy_requests: Vec::new(),
                relay_got: Vec::new(),
            };
            w.d.handle_timeout(now);
            w.pump();
            w
        }

        /// Deliver every transmit until quiet.
        fn pump(&mut self) {
            while let Some(t) = self.d.poll_transmit() {
                let secret = self.secret.clone();
                let r = decode(&t.data, secret.as_deref()).expect("ng");
                if t.to == addr(PROXY) {
                    match r.message.expect("valid") {
                        NgMessage::Reply(reply) => self.proxy_got.push((r.cookie, reply)),
                        NgMessage::Request(c) => {
                            self.proxy_requests.push(c);
                            let bytes = encode_reply(&r.cookie, &NgReply::ok(), secret.as_deref());
                            self.d.handle_datagram(self.now, addr(PROXY), &bytes);
                        }
                    }
                    continue;
                }
                let (answers, draining) = self.up[&t.to];
                let Ok(NgMessage::Request(command)) = r.message else {
                    continue; // replies to the relay's own requests
                };
                self.relay_got.push((t.to, command.clone()));
                if !answers {
                    continue;
                }
                let reply = match command {
                    NgCommand::Ping => NgReply::Pong,
                    NgCommand::Offer(_) if draining => NgReply::error("relay is draining"),
                    NgCommand::Offer(_) | NgCommand::Answer(_) => NgReply::Ok {
                        sdp: Some(format!("relay {}", t.to).into_bytes()),
                        extra: Default::default(),
                    },
                    _ => NgReply::ok(),
                };
                let bytes = encode_reply(&r.cookie, &reply, secret.as_deref());
                self.d.handle_datagram(self.now, t.to, &bytes);
            }
        }

        fn proxy_sends(&mut self, cookie: &str, c: &NgCommand) -> NgReply {
            let bytes = encode_request(cookie.as_bytes(), c, self.secret.as_deref());
            self.d.handle_datagram(self.now, addr(PROXY), &bytes);
            self.pump();
            self.answer(cookie).expect("an answer")
        }

        fn answer(&self, cookie: &str) -> Option<NgReply> {
            self.proxy_got
                .iter()
                .rev()
                .find(|(c, _)| c == cookie.as_bytes())
                .map(|(_, r)| r.clone())
        }

        fn advance(&mut self, by: Duration) {
            let end = self.now + by;
            while let Some(t) = self.d.poll_timeout().filter(|&t| t <= end) {
                self.now = t.max(self.now);
                self.d.handle_timeout(self.now);
                self.pump();
            }
            self.now = end;
        }

        fn relay_of(&self, call: &str) -> Option<SocketAddr> {
            self.d
                .calls()
                .into_iter()
                .find(|(c, _)| c == call)
                .map(|(_, r)| r)
        }
    }

    #[test]
    fn calls_stick_to_their_relay_and_spread() {
        let mut w = World::new(None);
        let mut used = std::collections::BTreeSet::new();
        for i in 0..20 {
            let call = format!("c{i}");
            let r = w.proxy_sends(&format!("k{i}"), &offer(&call));
            let relay = w.relay_of(&call).expect("assigned");
            assert_eq!(
                r,
                NgReply::Ok {
                    sdp: Some(format!("relay {relay}").into_bytes()),
                    extra: Default::default()
                }
            );
            used.insert(relay);
            // the answer goes to the same relay
            let answer = NgCommand::Answer(OfferAnswer {
                call_id: call.clone(),
                from_tag: "ft".into(),
                to_tag: Some("tt".into()),
                sdp: b"v=0\r\n".to_vec(),
                ..OfferAnswer::default()
            });
            w.proxy_sends(&format!("a{i}"), &answer);
            assert_eq!(w.relay_got.last().unwrap().0, relay);
        }
        assert_eq!(used.len(), 2, "random choice uses both relays");
        let del = NgCommand::Delete(CallRef {
            call_id: "c0".into(),
            ..CallRef::default()
        });
        assert_eq!(w.proxy_sends("d0", &del), NgReply::ok());
        assert!(w.relay_of("c0").is_none());
        assert_eq!(w.d.calls().len(), 19);
        let unknown = NgCommand::Query(CallRef {
            call_id: "nope".into(),
            ..CallRef::default()
        });
        assert!(matches!(
            w.proxy_sends("q", &unknown),
            NgReply::Error { .. }
        ));
    }

    #[test]
    fn a_dead_relay_takes_no_new_call_and_its_calls_are_lost() {
        let mut w = World::new(None);
        for i in 0..10 {
            w.proxy_sends(&format!("k{i}"), &offer(&format!("c{i}")));
        }
        let on_r1 = w.d.calls().iter().filter(|(_, r)| *r == addr(R1)).count();
        assert!(on_r1 > 0);
        w.up.insert(addr(R1), (false, false));
        w.advance(Duration::from_secs(5));
        assert_eq!(w.d.relays()[0], (addr(R1), RelayState::Dead));
        assert_eq!(
            w.proxy_requests
                .iter()
                .filter(
                    |c| matches!(c, NgCommand::MediaEnded { reason, .. } if reason == "relay-lost")
                )
                .count(),
            on_r1
        );
        for i in 10..20 {
            w.proxy_sends(&format!("k{i}"), &offer(&format!("c{i}")));
            assert_eq!(w.relay_of(&format!("c{i}")), Some(addr(R2)));
        }
        // it comes back: alive again
        w.up.insert(addr(R1), (true, false));
        w.advance(Duration::from_secs(2));
        assert_eq!(w.d.relays()[0], (addr(R1), RelayState::Alive));
    }

    #[test]
    fn an_offer_to_a_silent_relay_fails_over_within_one_proxy_wait() {
        let mut w = World::new(None);
        w.up.insert(addr(R1), (false, false));
        // until the pings notice, an offer may go to R1: it times out and goes to R2
        for i in 0..6 {
            let cookie = format!("k{i}");
            let bytes = encode_request(cookie.as_bytes(), &offer(&format!("c{i}")), None);
            w.d.handle_datagram(w.now, addr(PROXY), &bytes);
            w.pump();
            w.advance(Duration::from_millis(1500));
            assert!(matches!(w.answer(&cookie), Some(NgReply::Ok { .. })), "{i}");
            assert_eq!(w.relay_of(&format!("c{i}")), Some(addr(R2)));
        }
    }

    #[test]
    fn a_draining_relay_is_skipped_and_keeps_its_calls() {
        let mut w = World::new(None);
        let pref = NgCommand::Offer(OfferAnswer {
            call_id: "old".into(),
            from_tag: "ft".into(),
            sdp: b"v=0\r\n".to_vec(),
            extra: [(b"relay".to_vec(), super::super::bencode::Value::text(R1))].into(),
            ..OfferAnswer::default()
        });
        w.proxy_sends("k0", &pref);
        assert_eq!(w.relay_of("old"), Some(addr(R1)), "the preferred relay");
        w.up.insert(addr(R1), (true, true));
        for i in 1..8 {
            let call = format!("c{i}");
            assert!(matches!(
                w.proxy_sends(&format!("k{i}"), &offer(&call)),
                NgReply::Ok { .. }
            ));
            assert_eq!(w.relay_of(&call), Some(addr(R2)));
        }
        assert_eq!(w.d.relays()[0].1, RelayState::Draining);
        assert_eq!(w.relay_of("old"), Some(addr(R1)), "running calls stay");
        // no relay at all
        w.up.insert(addr(R2), (true, true));
        assert_eq!(w.proxy_sends("k9", &offer("c9")), NgReply::error(NO_RELAY));
    }

    #[test]
    fn a_relays_media_ended_reaches_the_proxy() {
        let mut w = World::new(None);
        w.proxy_sends("k0", &offer("c0"));
        let relay = w.relay_of("c0").unwrap();
        let notice = NgCommand::MediaEnded {
            call_id: "c0".into(),
            from_tag: "ft".into(),
            reason: "idle-timeout".into(),
        };
        let bytes = encode_request(b"r_1", &notice, None);
        w.d.handle_datagram(w.now, relay, &bytes);
        w.pump();
        assert_eq!(w.proxy_requests, vec![notice]);
        assert!(w.relay_of("c0").is_none());
        // a relay that does not hold the call cannot end it
        w.proxy_sends("k1", &offer("c1"));
        let other = if w.relay_of("c1") == Some(addr(R1)) {
            R2
        } else {
            R1
        };
        let bytes = encode_request(
            b"r_2",
            &NgCommand::MediaEnded {
                call_id: "c1".into(),
                from_tag: "ft".into(),
                reason: "x".into(),
            },
            None,
        );
        w.d.handle_datagram(w.now, addr(other), &bytes);
        w.pump();
        assert_eq!(w.proxy_requests.len(), 1);
        assert!(w.relay_of("c1").is_some());
    }

    #[test]
    fn the_secret_guards_both_sides() {
        let mut w = World::new(Some(b"s3cret"));
        assert!(matches!(
            w.proxy_sends("k0", &offer("c0")),
            NgReply::Ok { .. }
        ));
        // a proxy with the wrong secret
        let bytes = encode_request(b"bad", &offer("c1"), Some(b"wrong"));
        w.d.handle_datagram(w.now, addr(PROXY), &bytes);
        let t = w.d.poll_transmit().expect("an error reply");
        let r = decode(&t.data, Some(b"s3cret")).unwrap();
        assert_eq!(r.message, Ok(NgMessage::Reply(NgReply::error(AUTH_FAILED))));
        assert!(w.relay_of("c1").is_none());
        assert!(matches!(
            w.d.poll_event(),
            Some(DispatcherEvent::RelayUp { .. })
        ));
    }

    #[test]
    fn a_repeated_cookie_gets_the_same_reply_without_a_second_call() {
        let mut w = World::new(None);
        w.proxy_sends("k0", &offer("c0"));
        let offers = w
            .relay_got
            .iter()
            .filter(|(_, c)| matches!(c, NgCommand::Offer(_)))
            .count();
        let bytes = encode_request(b"k0", &offer("c0"), None);
        w.d.handle_datagram(w.now, addr(PROXY), &bytes);
        w.pump();
        let again = w
            .relay_got
            .iter()
            .filter(|(_, c)| matches!(c, NgCommand::Offer(_)))
            .count();
        assert_eq!(offers, again);
        assert_eq!(w.proxy_got.len(), 2);
        assert_eq!(w.proxy_got[0], w.proxy_got[1]);
    }
}
