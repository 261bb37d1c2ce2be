//! The services a scenario host runs, behind one type so the runners keep one list.

use super::net::Net;
use super::sip::SipProxyService;
use super::stun::StunService;
use std::time::Instant;

/// A running service.
pub enum Service<N: Net> {
    /// `stun`.
    Stun(Box<StunService<N>>),
    /// `sip-proxy`.
    SipProxy(Box<SipProxyService<N>>),
}

impl<N: Net> Service<N> {
    /// Answer whatever arrived, fire what is due.
    pub fn poll(&mut self, net: &mut N) {
        match self {
            Service::Stun(s) => s.poll(net),
            Service::SipProxy(s) => s.poll(net),
        }
    }

    /// When the service needs a poll without input.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Service::Stun(s) => s.poll_timeout(),
            Service::SipProxy(s) => s.poll_timeout(),
        }
    }
}
