//! [`NgClient`]: the sans-IO ng control client a proxy uses towards a relay or a
//! dispatcher.
//!
//! ng runs over UDP and has no transactions of its own beyond the cookie: the client
//! retransmits a request with the same cookie until a reply with that cookie comes (first
//! after [`ClientConfig::first_retransmit`], 500 ms, doubling each time, as RFC 3261
//! §17.1.2.2 does for non-INVITE requests over UDP) and gives up after [`ClientConfig::timeout`] (default 2 s):
//! [`ClientOutcome::TimedOut`]. The server's reply cache makes the retransmissions
//! harmless (the command runs once). Cookies are `PREFIX_N`, a seeded random prefix per
//! client and a counter, so two clients of one relay do not share cookies (a driver that
//! restarts a client within the relay's 30 s reply cache must give it another seed, or the
//! relay answers the new requests from its cache). A reply with a pending cookie that
//! cannot be read (rtpengine's `result: load limit`, a malformed `sdp`) fails that request
//! at once, as an error reply; one failing `auth` is ignored (anyone can forge it).
//!
//! The client also serves the requests a relay sends to it (pinhole's `media-ended`): it
//! answers `{result: ok}` (`ping` gets `pong`; any other command an error) with the reply
//! cached by cookie, so a retransmitted notice is answered again but handed out once
//! ([`ClientOutcome::Request`]).
//!
//! Drive it like every core (crate docs): `send`/`handle_datagram`/`handle_timeout`, then
//! drain [`NgClient::poll_transmit`] and [`NgClient::poll_outcome`], and wake at
//! [`NgClient::poll_timeout`].

use super::ng::{self, AUTH_FAILED, NgCommand, NgError, NgMessage, NgReply, ReplyCache};
use crate::Transmit;
use crate::rng::SplitMix64;
use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Client settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// The local address requests are sent from (a proxy's SIP UDP socket).
    pub local: SocketAddr,
    /// The shared secret: every message sent is signed, every one received must verify.
    pub secret: Option<Vec<u8>>,
    /// The first retransmission interval (doubles after each).
    pub first_retransmit: Duration,
    /// How long a request waits for its reply before [`ClientOutcome::TimedOut`].
    pub timeout: Duration,
    /// Seed of the cookie prefix.
    pub seed: u64,
}

impl ClientConfig {
    /// From `local`, no secret, 500 ms first retransmission, 2 s timeout, seed 0.
    pub fn new(local: SocketAddr) -> ClientConfig {
        ClientConfig {
            local,
            secret: None,
            first_retransmit: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            seed: 0,
        }
    }
}

/// Names one request sent with [`NgClient::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RequestId(pub u64);

/// What a datagram or a timeout meant.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // one per datagram, handed out at once
pub enum ClientOutcome {
    /// The reply to a request.
    Reply {
        /// Which request.
        id: RequestId,
        /// The reply.
        reply: NgReply,
    },
    /// No reply within the timeout; the request is forgotten (a late reply is ignored).
    TimedOut(RequestId),
    /// A request from a peer (a relay's `media-ended`), already answered `ok`.
    Request {
        /// Who sent it.
        from: SocketAddr,
        /// The command.
        command: NgCommand,
    },
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientStats {
    /// Requests sent (first copies).
    pub sent: u64,
    /// Retransmissions.
    pub retransmitted: u64,
    /// Replies matched to a request.
    pub replies: u64,
    /// Requests given up.
    pub timed_out: u64,
    /// Datagrams ignored: not ng, a reply to no pending request (a late or repeated one,
    /// or from another address than the request went to), or failing `auth`.
    pub ignored: u64,
    /// Requests from peers answered (repeats included).
    pub served: u64,
}

#[derive(Debug, Clone)]
struct Pending {
    peer: SocketAddr,
    cookie: Vec<u8>,
    bytes: Vec<u8>,
    next: Instant,
    interval: Duration,
    deadline: Instant,
}

/// The client.
#[derive(Debug, Clone)]
pub struct NgClient {
    config: ClientConfig,
    prefix: u32,
    counter: u64,
    pending: BTreeMap<RequestId, Pending>,
    by_cookie: BTreeMap<Vec<u8>, RequestId>,
    served: ReplyCache,
    transmits: VecDeque<Transmit>,
    outcomes: VecDeque<ClientOutcome>,
    stats: ClientStats,
}

impl NgClient {
    /// A client with nothing pending.
    pub fn new(config: ClientConfig) -> NgClient {
        let prefix = SplitMix64::new(config.seed ^ 0x6e67_636c_6965_6e74).next_u64() as u32;
        NgClient {
            config,
            prefix,
            counter: 0,
            pending: BTreeMap::new(),
            by_cookie: BTreeMap::new(),
            served: ReplyCache::new(ng::REPLY_CACHE_TTL),
            transmits: VecDeque::new(),
            outcomes: VecDeque::new(),
            stats: ClientStats::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Counters.
    pub fn stats(&self) -> &ClientStats {
        &self.stats
    }

    /// Requests waiting for their reply.
    pub fn pending_count(&self) -> usize {
        self.pending.len()
    }

    fn secret(&self) -> Option<&[u8]> {
        self.config.secret.as_deref()
    }

    /// Send `command` to `peer` now; its reply (or timeout) comes back under the id.
    pub fn send(&mut self, now: Instant, peer: SocketAddr, command: &NgCommand) -> RequestId {
        self.counter += 1;
        let id = RequestId(self.counter);
        let cookie = format!("{:08x}_{}", self.prefix, self.counter).into_bytes();
        let bytes = ng::encode_request(&cookie, command, self.secret());
        self.transmits
            .push_back(Transmit::udp(self.config.local, peer, bytes.clone()));
        self.stats.sent += 1;
        let interval = self.config.first_retransmit;
        self.pending.insert(
            id,
            Pending {
                peer,
                cookie: cookie.clone(),
                bytes,
                next: now + interval,
                interval,
                deadline: now + self.config.timeout,
            },
        );
        self.by_cookie.insert(cookie, id);
        id
    }

    /// Forget a pending request (its reply, if one comes, is ignored).
    pub fn cancel(&mut self, id: RequestId) {
        if let Some(p) = self.pending.remove(&id) {
            self.by_cookie.remove(&p.cookie);
        }
    }

    /// A datagram from `from`: a reply to a pending request, or a request to serve.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: SocketAddr,
        data: &[u8],
    ) -> Option<ClientOutcome> {
        let Ok(received) = ng::decode(data, self.secret()) else {
            self.stats.ignored += 1;
            return None;
        };
        let cookie = received.cookie;
        match received.message {
            Ok(NgMessage::Reply(reply)) => {
                let id = self.by_cookie.get(&cookie).copied();
                match id {
                    Some(id) if self.pending.get(&id).is_some_and(|p| p.peer == from) => {
                        self.cancel(id);
                        self.stats.replies += 1;
                        Some(ClientOutcome::Reply { id, reply })
                    }
                    _ => {
                        self.stats.ignored += 1;
                        None
                    }
                }
            }
            Ok(NgMessage::Request(command)) => {
                self.stats.served += 1;
                if let Some(cached) = self.served.get(now, &cookie) {
                    let bytes = cached.to_vec();
                    self.transmits
                        .push_back(Transmit::udp(self.config.local, from, bytes));
                    return None;
                }
                let (reply, hand_out) = match &command {
                    NgCommand::Ping => (NgReply::Pong, false),
                    NgCommand::MediaEnded { .. } => (NgReply::ok(), true),
                    other => (
                        NgReply::error(format!(
                            "`{}` is not served by a control client",
                            other.name()
                        )),
                        false,
                    ),
                };
                self.answer(now, from, &cookie, &reply);
                hand_out.then_some(ClientOutcome::Request { from, command })
            }
            Err(NgError::Auth) => {
                // a reply failing auth is not answered (it is no request); a request is
                let is_request = ng::decode(data, None)
                    .ok()
                    .is_some_and(|r| matches!(r.message, Ok(NgMessage::Request(_))));
                self.stats.ignored += 1;
                if is_request {
                    self.answer(now, from, &cookie, &NgReply::error(AUTH_FAILED));
                }
                None
            }
            Err(e) => {
                if bencode_has_command(data) {
                    self.stats.ignored += 1;
                    self.answer(now, from, &cookie, &NgReply::error(e.to_string()));
                    return None;
                }
                // a reply this side cannot read (rtpengine's `result: load limit`, a
                // malformed `sdp`): the request failed, no use waiting for the timeout
                let id = self.by_cookie.get(&cookie).copied();
                match id {
                    Some(id) if self.pending.get(&id).is_some_and(|p| p.peer == from) => {
                        self.cancel(id);
                        self.stats.replies += 1;
                        Some(ClientOutcome::Reply {
                            id,
                            reply: NgReply::error(e.to_string()),
                        })
                    }
                    _ => {
                        self.stats.ignored += 1;
                        None
                    }
                }
            }
        }
    }

    fn answer(&mut self, now: Instant, to: SocketAddr, cookie: &[u8], reply: &NgReply) {
        let bytes = ng::encode_reply(cookie, reply, self.secret());
        self.served.insert(now, cookie, bytes.clone());
        self.transmits
            .push_back(Transmit::udp(self.config.local, to, bytes));
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next outcome of [`NgClient::handle_timeout`] (timeouts).
    pub fn poll_outcome(&mut self) -> Option<ClientOutcome> {
        self.outcomes.pop_front()
    }

    /// When [`NgClient::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.pending
            .values()
            .map(|p| p.next.min(p.deadline))
            .chain(self.served.poll_timeout())
            .min()
    }

    /// Retransmit what is due, give up what is late.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.served.expire(now);
        let mut expired = Vec::new();
        for (&id, p) in &mut self.pending {
            if p.deadline <= now {
                expired.push(id);
                continue;
            }
            if p.next <= now {
                self.transmits
                    .push_back(Transmit::udp(self.config.local, p.peer, p.bytes.clone()));
                self.stats.retransmitted += 1;
                p.interval *= 2;
                p.next = now + p.interval;
            }
        }
        for id in expired {
            self.cancel(id);
            self.stats.timed_out += 1;
            self.outcomes.push_back(ClientOutcome::TimedOut(id));
        }
    }
}

/// Whether an unusable datagram was meant as a request (its dictionary has `command`),
/// so that it deserves an error reply.
fn bencode_has_command(data: &[u8]) -> bool {
    super::bencode::parse_ng(data)
        .ok()
        .is_some_and(|(_, v)| v.get("command").is_some())
}

#[cfg(test)]
mod test {
    use super::*;
    use crate::control::ng::{CallRef, decode, encode_reply, encode_request};

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    const RELAY: &str = "203.0.113.5:2223";

    fn client(secret: Option<&[u8]>) -> (NgClient, Instant) {
        let mut c = ClientConfig::new(addr("203.0.113.1:5060"));
        c.secret = secret.map(<[u8]>::to_vec);
        c.seed = 7;
        #[allow(clippy::disallowed_methods)] // a test's clock origin
        let now = Instant::now();
        (NgClient::new(c), now)
    }

    fn sent(c: &mut NgClient) -> Vec<Transmit> {
        std::iter::from_fn(|| c.poll_transmit()).collect()
    }

    #[test]
    fn retransmits_doubling_then_times_out() {
        let (mut c, t0) = client(None);
        let id = c.send(t0, addr(RELAY), &NgCommand::Ping);
        let first = sent(&mut c);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].to, addr(RELAY));
        let mut at = Vec::new();
        while let Some(t) = c.poll_timeout() {
            c.handle_timeout(t);
            for tx in sent(&mut c) {
                assert_eq!(tx.data, first[0].data, "same cookie, same bytes");
                at.push(t - t0);
            }
            if let Some(o) = c.poll_outcome() {
                assert_eq!(o, ClientOutcome::TimedOut(id));
                assert_eq!(t - t0, Duration::from_secs(2));
                break;
            }
        }
        assert_eq!(
            at,
            [Duration::from_millis(500), Duration::from_millis(1500)]
        );
        assert_eq!(c.pending_count(), 0);
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn a_reply_matches_its_cookie_and_peer_once() {
        let (mut c, t0) = client(None);
        let a = c.send(t0, addr(RELAY), &NgCommand::Ping);
        let b = c.send(t0, addr(RELAY), &NgCommand::Ping);
        let out = sent(&mut c);
        let cookie_a = decode(&out[0].data, None).unwrap().cookie;
        let cookie_b = decode(&out[1].data, None).unwrap().cookie;
        assert_ne!(cookie_a, cookie_b);
        // another client's cookies differ (seeded prefix)
        let mut other = NgClient::new(ClientConfig::new(addr("203.0.113.1:5060")));
        other.send(t0, addr(RELAY), &NgCommand::Ping);
        assert_ne!(
            decode(&sent(&mut other)[0].data, None).unwrap().cookie,
            cookie_a
        );
        let pong_b = encode_reply(&cookie_b, &NgReply::Pong, None);
        // from another address: ignored
        assert_eq!(
            c.handle_datagram(t0, addr("203.0.113.9:2223"), &pong_b),
            None
        );
        assert_eq!(
            c.handle_datagram(t0, addr(RELAY), &pong_b),
            Some(ClientOutcome::Reply {
                id: b,
                reply: NgReply::Pong
            })
        );
        // a repeated reply: nothing
        assert_eq!(c.handle_datagram(t0, addr(RELAY), &pong_b), None);
        assert_eq!(c.pending_count(), 1);
        c.cancel(a);
        assert_eq!(c.pending_count(), 0);
        assert_eq!(c.stats().ignored, 2);
    }

    #[test]
    fn media_ended_is_answered_and_handed_out_once() {
        let (mut c, t0) = client(Some(b"k"));
        let ended = NgCommand::MediaEnded {
            call_id: "c1".into(),
            from_tag: "f1".into(),
            reason: "idle-timeout".into(),
        };
        let req = encode_request(b"r_1", &ended, Some(b"k"));
        assert_eq!(
            c.handle_datagram(t0, addr(RELAY), &req),
            Some(ClientOutcome::Request {
                from: addr(RELAY),
                command: ended.clone()
            })
        );
        let reply = sent(&mut c);
        assert_eq!(reply[0].to, addr(RELAY));
        let r = decode(&reply[0].data, Some(b"k")).unwrap();
        assert_eq!(r.cookie, b"r_1");
        assert_eq!(r.message, Ok(NgMessage::Reply(NgReply::ok())));
        // the relay retransmits: same reply, not handed out again
        assert_eq!(c.handle_datagram(t0, addr(RELAY), &req), None);
        assert_eq!(sent(&mut c)[0].data, reply[0].data);
        // unsigned or wrongly signed: refused
        let bad = encode_request(b"r_2", &ended, Some(b"other"));
        assert_eq!(c.handle_datagram(t0, addr(RELAY), &bad), None);
        let r = decode(&sent(&mut c)[0].data, Some(b"k")).unwrap();
        assert_eq!(r.message, Ok(NgMessage::Reply(NgReply::error(AUTH_FAILED))));
        // a command a client does not serve
        let del = NgCommand::Delete(CallRef {
            call_id: "c".into(),
            ..CallRef::default()
        });
        let req = encode_request(b"r_3", &del, Some(b"k"));
        assert_eq!(c.handle_datagram(t0, addr(RELAY), &req), None);
        let r = decode(&sent(&mut c)[0].data, Some(b"k")).unwrap();
        assert!(matches!(
            r.message,
            Ok(NgMessage::Reply(NgReply::Error { .. }))
        ));
    }

    #[test]
    fn an_unreadable_reply_fails_the_request_at_once() {
        let (mut c, t0) = client(None);
        let id = c.send(t0, addr(RELAY), &NgCommand::Ping);
        let cookie = decode(&sent(&mut c)[0].data, None).unwrap().cookie;
        let mut load_limit = cookie.clone();
        load_limit.extend_from_slice(b" d6:result10:load limite");
        match c.handle_datagram(t0, addr(RELAY), &load_limit) {
            Some(ClientOutcome::Reply {
                id: got,
                reply: NgReply::Error { reason },
            }) => {
                assert_eq!(got, id);
                assert!(reason.contains("load limit"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(c.pending_count(), 0);
    }

    #[test]
    fn signed_replies_only_with_a_secret() {
        let (mut c, t0) = client(Some(b"k"));
        let id = c.send(t0, addr(RELAY), &NgCommand::Ping);
        let out = sent(&mut c);
        let r = decode(&out[0].data, Some(b"k")).unwrap();
        assert_eq!(r.message, Ok(NgMessage::Request(NgCommand::Ping)));
        let unsigned = encode_reply(&r.cookie, &NgReply::Pong, None);
        assert_eq!(c.handle_datagram(t0, addr(RELAY), &unsigned), None);
        let signed = encode_reply(&r.cookie, &NgReply::Pong, Some(b"k"));
        assert_eq!(
            c.handle_datagram(t0, addr(RELAY), &signed),
            Some(ClientOutcome::Reply {
                id,
                reply: NgReply::Pong
            })
        );
    }
}
