//! The latching decision of one received packet (see the module docs, *Latching*).

use super::session::Stream;
use super::{Component, DropReason, LatchVia, Latching};
use crate::demux::{MultiplexKind, classify};
use crate::rtp;
use crate::stun::attr::kind;
use crate::stun::integrity::check_integrity;
use crate::stun::{Class, Method};
use std::net::SocketAddr;
use std::time::Instant;

/// Whether `data` is a verified ICE check (or check response) from side `side` of
/// `stream` (see the module docs).
fn ice_verified(stream: &Stream, side: usize, data: &[u8]) -> bool {
    let (Some(mine), Some(theirs)) = (&stream.legs[side].ice, &stream.legs[1 - side].ice) else {
        return false;
    };
    let Ok(p) = crate::stun::Packet::new_checked(data) else {
        return false;
    };
    if p.method() != Method::Binding {
        return false;
    }
    match p.class() {
        Class::Request => {
            // RFC 8445 §7.2.2: USERNAME "their-ufrag:my-ufrag", key: their password.
            let want = (theirs.0.as_bytes(), mine.0.as_bytes());
            let user_ok = p.attributes().flatten().any(|a| {
                a.typ == kind::USERNAME
                    && a.value.len() == want.0.len() + 1 + want.1.len()
                    && a.value.starts_with(want.0)
                    && a.value[want.0.len()] == b':'
                    && a.value.ends_with(want.1)
            });
            user_ok && check_integrity(data, theirs.1.as_bytes()) == Some(true)
        }
        // §7.2.5.? responses are protected with the responder's (this side's) password.
        Class::Success => check_integrity(data, mine.1.as_bytes()) == Some(true),
        _ => false,
    }
}

fn plausible(stream: &Stream, data: &[u8], component: Component) -> bool {
    if !stream.rtp {
        return !data.is_empty();
    }
    if classify(data) != MultiplexKind::Rtp {
        return false;
    }
    match component {
        Component::Rtcp => rtp::Compound::new_checked(data).is_ok(),
        Component::Rtp => rtp::Packet::new_checked(data).is_ok_and(|p| {
            (stream.legs[0].formats | stream.legs[1].formats) >> p.payload_type() & 1 == 1
        }),
    }
}

/// Latching decision for a packet on `side`'s leg, port `socket`.
pub(super) fn accept(
    now: Instant,
    stream: &Stream,
    side: usize,
    socket: usize,
    remote: SocketAddr,
    data: &[u8],
    component: Component,
) -> Result<Option<LatchVia>, DropReason> {
    let leg = &stream.legs[side];
    if leg.mode == Latching::Off {
        return Ok(None);
    }
    let latched = leg.latched[socket];
    if latched == Some(remote) {
        return Ok(None);
    }
    if stream.rtp && classify(data) == MultiplexKind::Stun && ice_verified(stream, side, data) {
        return Ok(Some(LatchVia::IceCheck));
    }
    match leg.mode {
        Latching::Off => Ok(None),
        Latching::FirstPacket if latched.is_none() => Ok(Some(LatchVia::FirstPacket)),
        Latching::FirstPacket => Err(DropReason::WrongSource),
        Latching::Strict => {
            if leg.window_until.is_none_or(|t| now > t) {
                return Err(if latched.is_some() {
                    DropReason::WrongSource
                } else {
                    DropReason::WindowClosed
                });
            }
            if leg.allowed_ip != Some(remote.ip()) {
                return Err(DropReason::WrongAddress);
            }
            if plausible(stream, data, component) {
                Ok(Some(LatchVia::Window))
            } else {
                Err(DropReason::Implausible)
            }
        }
    }
}
