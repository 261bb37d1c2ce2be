//! Shared helpers of the media relay tests: addresses, SDPs, packets, and a `World` that
//! drives one `MediaRelay` in virtual time.

#![allow(dead_code)]

use relay::media::{Command, MediaEvent, MediaRelay, RelayConfig, Role, SignalRequest, Verdict};
use relay::sdp::{RelayEndpoint, Sdp, StreamOutcome};
use relay::stun::attr::kind;
use relay::stun::{Attribute, Class, Message, Method, RawAttribute, TransactionId};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

pub const RELAY: &str = "203.0.113.1";
pub const RELAY6: &str = "2001:db8::1";
/// Caller: SDP address (private), public NAT address, media source (symmetric NAT port).
pub const A_SDP: &str = "10.0.0.2:4000";
pub const A_SIG: &str = "198.51.100.10:5060";
pub const A_MEDIA: &str = "198.51.100.10:50001";
pub const B_SDP: &str = "10.1.0.3:6000";
pub const B_SIG: &str = "198.51.100.20:5060";
pub const B_MEDIA: &str = "198.51.100.20:60001";
pub const SPRAYER: &str = "192.0.2.66:7777";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

pub fn epoch() -> Instant {
    #[allow(clippy::disallowed_methods)] // the tests' clock origin; time is virtual after it
    Instant::now()
}

pub fn config() -> RelayConfig {
    let mut c = RelayConfig::new(
        vec![RELAY.parse().unwrap(), RELAY6.parse().unwrap()],
        30000..=30099,
    );
    c.seed = 7;
    c
}

/// An audio offer/answer SDP at `media` (PCMU, PCMA, telephone-event).
pub fn sdp_text(media: SocketAddr, mux: bool, ice: Option<(&str, &str)>, extra: &str) -> String {
    let ipv = if media.is_ipv4() { "IP4" } else { "IP6" };
    let ip = media.ip();
    let mut s = format!(
        "v=0\r\no=- 1 1 IN {ipv} {ip}\r\ns=-\r\nc=IN {ipv} {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        media.port()
    );
    if mux {
        s.push_str("a=rtcp-mux\r\n");
    }
    if let Some((u, p)) = ice {
        s.push_str(&format!(
            "a=ice-ufrag:{u}\r\na=ice-pwd:{p}\r\na=candidate:1 1 UDP 2130706431 {ip} {} typ host\r\n",
            media.port()
        ));
    }
    s.push_str(extra);
    s
}

pub fn rtp(pt: u8, seq: u16) -> Vec<u8> {
    let mut v = vec![0u8; 172];
    v[0] = 0x80;
    v[1] = pt;
    v[2..4].copy_from_slice(&seq.to_be_bytes());
    v[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    v[8..12].copy_from_slice(&0x1111_2222u32.to_be_bytes());
    v
}

/// An RR from `ssrc` with one block: fraction lost, cumulative, jitter.
pub fn rr(fraction: u8, cumulative: i32, jitter: u32) -> Vec<u8> {
    use relay::rtp::rtcp::{Compound, ReceiverReport, ReportBlock, Repr};
    Compound::emit(&[Repr::ReceiverReport(ReceiverReport {
        ssrc: 0x3333_4444,
        reports: vec![ReportBlock {
            ssrc: 0x1111_2222,
            fraction_lost: fraction,
            cumulative_lost: cumulative,
            highest_seq: 100,
            jitter,
            lsr: 0,
            dlsr: 0,
        }],
    })])
    .unwrap()
}

/// An ICE connectivity check (RFC 8445 §7.2.2): USERNAME, MESSAGE-INTEGRITY with `key`,
/// FINGERPRINT.
pub fn ice_check(username: &str, key: &str) -> Vec<u8> {
    Message::new(Class::Request, Method::Binding, TransactionId::new([9; 12]))
        .with(Attribute::Raw(RawAttribute::new(
            kind::USERNAME,
            username.as_bytes().to_vec(),
        )))
        .with(Attribute::Raw(RawAttribute::new(
            kind::MESSAGE_INTEGRITY,
            vec![0; 20],
        )))
        .with(Attribute::Fingerprint(0))
        .emit_with_integrity(key.as_bytes())
}

/// The relay endpoint written into a rewritten description's first stream.
pub fn relay_of(report: &relay::sdp::RewriteReport) -> RelayEndpoint {
    match &report.streams[0] {
        StreamOutcome::Relayed { relay, .. } => *relay,
        other => panic!("not relayed: {other:?}"),
    }
}

/// One relay in virtual time, with everything it emitted.
pub struct World {
    pub relay: MediaRelay,
    pub now: Instant,
    pub events: Vec<MediaEvent>,
    pub bound: std::collections::BTreeSet<SocketAddr>,
    /// Where B sends (from the rewritten offer) and where A sends (rewritten answer).
    pub to_relay_from_b: Option<RelayEndpoint>,
    pub to_relay_from_a: Option<RelayEndpoint>,
}

impl World {
    pub fn new(config: RelayConfig) -> World {
        World {
            relay: MediaRelay::new(config).unwrap(),
            now: epoch(),
            events: Vec::new(),
            bound: Default::default(),
            to_relay_from_b: None,
            to_relay_from_a: None,
        }
    }

    pub fn drain(&mut self) {
        while let Some(c) = self.relay.poll_command() {
            match c {
                Command::BindPort(a) => assert!(self.bound.insert(a), "{a} bound twice"),
                Command::ClosePort(a) => assert!(self.bound.remove(&a), "{a} closed unbound"),
            }
        }
        while let Some(e) = self.relay.poll_event() {
            self.events.push(e);
        }
    }

    pub fn advance(&mut self, d: Duration) {
        self.now += d;
        while let Some(t) = self.relay.poll_timeout() {
            if t > self.now {
                break;
            }
            self.relay.handle_timeout(self.now);
            self.drain();
        }
    }

    pub fn req<'a>(
        &self,
        call: &'a str,
        from: &'a str,
        to: Option<&'a str>,
        sig: &str,
    ) -> SignalRequest<'a> {
        let mut r = SignalRequest::new(call, from, to, Role::Offer);
        r.received_from = Some(addr(sig));
        r
    }

    /// Offer by A (tag "ta") from A_SIG with `sdp`; returns the rewritten SDP text.
    pub fn offer(
        &mut self,
        req: &SignalRequest<'_>,
        sdp: &str,
    ) -> Result<String, relay::media::MediaError> {
        let mut s = Sdp::parse(sdp.as_bytes()).unwrap();
        let r = self.relay.offer(self.now, req, &mut s);
        self.drain();
        let r = r?;
        self.to_relay_from_b = Some(relay_of(&r));
        Ok(String::from_utf8(s.to_bytes()).unwrap())
    }

    pub fn answer(
        &mut self,
        req: &SignalRequest<'_>,
        sdp: &str,
    ) -> Result<String, relay::media::MediaError> {
        let mut s = Sdp::parse(sdp.as_bytes()).unwrap();
        let r = self.relay.answer(self.now, req, &mut s);
        self.drain();
        let r = r?;
        self.to_relay_from_a = Some(relay_of(&r));
        Ok(String::from_utf8(s.to_bytes()).unwrap())
    }

    /// A standard call: A offers from behind its NAT, B answers from behind its NAT.
    pub fn call(&mut self, mux: bool) {
        let ra = self.req("call-1", "ta", None, A_SIG);
        self.offer(&ra, &sdp_text(addr(A_SDP), mux, None, ""))
            .unwrap();
        let rb = self.req("call-1", "ta", Some("tb"), B_SIG);
        self.answer(&rb, &sdp_text(addr(B_SDP), mux, None, ""))
            .unwrap();
    }

    pub fn packet(&mut self, local: SocketAddr, remote: &str, data: &[u8]) -> Verdict {
        let v = self
            .relay
            .handle_packet(self.now, local, addr(remote), data);
        self.drain();
        v
    }

    /// A packet from A's source to the relay port A sends RTP to.
    pub fn send_a(&mut self, src: &str, data: &[u8]) -> Verdict {
        let to = self.to_relay_from_a.unwrap().rtp;
        self.packet(to, src, data)
    }

    pub fn send_b(&mut self, src: &str, data: &[u8]) -> Verdict {
        let to = self.to_relay_from_b.unwrap().rtp;
        self.packet(to, src, data)
    }
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}
