//! The proxy core driven by scripted UAs under a virtual clock: what `sip_proxy.rs` and
//! `sip_proxy_media.rs` share (each adds its own UAs and message builders).

use relay::sip::proxy::{Input, Proxy, ProxyEvent, Transmit};
use relay::sip::{Flow, Message, Transport};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The proxy's address.
pub const PROXY: &str = "203.0.113.1:5060";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// A UDP flow from `remote` to the proxy.
pub fn udp_flow(remote: &str) -> Flow {
    Flow {
        transport: Transport::Udp,
        local: addr(PROXY),
        remote: addr(remote),
        conn: None,
    }
}

/// A proxy, its clock, and what it sent and reported so far.
pub struct Driver {
    pub proxy: Proxy,
    pub now: Instant,
    pub out: Vec<Transmit>,
    pub events: Vec<ProxyEvent>,
}

impl Driver {
    pub fn new(proxy: Proxy) -> Driver {
        #[allow(clippy::disallowed_methods)] // the virtual clock's origin
        let now = Instant::now();
        Driver {
            proxy,
            now,
            out: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Collect what the proxy sent and reported.
    pub fn drain(&mut self) {
        while let Some(t) = self.proxy.poll_transmit() {
            self.out.push(t);
        }
        while let Some(e) = self.proxy.poll_event() {
            self.events.push(e);
        }
    }

    /// The driver reports `input` now.
    pub fn handle(&mut self, input: Input) {
        self.proxy.handle_input(self.now, input);
        self.drain();
    }

    /// `bytes` arrive on `flow`.
    pub fn input_on(&mut self, flow: Flow, bytes: Vec<u8>) {
        self.handle(Input::Message { flow, bytes });
    }

    /// Advance virtual time by `d`, firing every timer on the way.
    pub fn advance(&mut self, d: Duration) {
        let end = self.now + d;
        while let Some(t) = self.proxy.poll_timeout() {
            if t > end {
                break;
            }
            self.now = self.now.max(t);
            self.proxy.handle_timeout(self.now);
            self.drain();
        }
        self.now = end;
    }

    /// Take the messages sent to `remote`, each checked: it parses, and its
    /// Content-Length matches its body.
    pub fn take_to(&mut self, remote: SocketAddr) -> Vec<Message> {
        let (mine, rest): (Vec<_>, Vec<_>) = std::mem::take(&mut self.out)
            .into_iter()
            .partition(|t| t.to == remote);
        self.out = rest;
        mine.into_iter()
            .map(|t| {
                let m = Message::parse(&t.data).expect("the proxy sends valid SIP");
                if let Ok(Some(n)) = m.content_length() {
                    assert_eq!(n, m.body().len(), "Content-Length of {}", m.summary());
                }
                m
            })
            .collect()
    }
}
